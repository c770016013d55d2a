//! What a finished search says to its user: the counts, what the candidates' accuracies
//! are, the Pareto front with each figure's source, and where the report is.

use kiln_search::evaluator::accuracy_kind_in_brief;
use kiln_search::objective::keys;

use crate::search::SearchOutcome;

impl SearchOutcome {
    /// The closing summary, one line per entry: why the search stopped and its counts;
    /// with weight sharing, how many candidates were judged, built and measured, and
    /// fine-tuned; the front (accuracy, latency and size with their sources, and what each
    /// accuracy is); the report.
    pub fn summary_lines(&self) -> Vec<String> {
        let (summary, files) = (&self.summary, &self.files);
        let s = &summary.state;
        let mut lines = vec![format!(
            "stopped: {}. {} trials evaluated ({} this run): {} feasible, {} infeasible, {} \
             failed; {} rejected before training.",
            summary.stopped,
            s.finished,
            summary.evaluated_now,
            s.feasible,
            s.infeasible,
            s.failed,
            s.rejected_analytic
        )];
        if self.weight_sharing {
            let (built, how) = if self.judge_only {
                (self.confirmed, ", latency predicted")
            } else {
                (s.finished, "")
            };
            let ft = &self.fine_tuned;
            let mut parts = Vec::new();
            if ft.reused > 0 {
                parts.push(format!(
                    "{} reused from earlier searches of this supernet",
                    ft.reused
                ));
            }
            if ft.left_inherited > 0 {
                parts.push(format!(
                    "{} more left inherited, dominated within the judge's noise by one \
                     fine-tuned earlier",
                    ft.left_inherited
                ));
            }
            let counts = if parts.is_empty() {
                String::new()
            } else {
                format!(" ({})", parts.join("; "))
            };
            let earlier = match self.judgments_reused {
                0 => String::new(),
                n => format!("; {n} of them judged by earlier searches, their accuracy reused"),
            };
            lines.push(format!(
                "{} candidates judged (accuracy inherited{how}{earlier}), {built} built and \
                 measured, {} fine-tuned{counts}",
                s.finished, ft.done
            ));
        }
        lines.push(format!("Pareto front ({} models):", files.front.len()));
        for m in &files.front {
            let fig = |k: &str| {
                m.metrics.get(k).map_or("-".into(), |f| {
                    format!("{} ({})", f.value_with_unit(), f.source)
                })
            };
            // what the accuracy is beside where it was measured: a front mixes inherited
            // and fine-tuned models
            let accuracy = match (m.metrics.get(keys::ACCURACY), m.accuracy_kind()) {
                (Some(f), Some(kind)) => format!(
                    "{} ({}, {})",
                    f.value_with_unit(),
                    f.source,
                    accuracy_kind_in_brief(kind)
                ),
                _ => fig(keys::ACCURACY),
            };
            lines.push(format!(
                "  {}  accuracy {}  latency {}  size {}",
                m.folder,
                accuracy,
                fig("latency_ms"),
                fig("size_bytes")
            ));
            // An int8 model: its f32 figures beside, labelled.
            if m.metrics.contains_key("f32_accuracy") {
                lines.push(format!(
                    "      int8 vs f32: accuracy {} vs {}  weights {} vs {}  arena {} vs {}",
                    fig("accuracy"),
                    fig("f32_accuracy"),
                    fig("weights_bytes"),
                    fig("f32_weights_bytes"),
                    fig("arena_bytes"),
                    fig("f32_arena_bytes")
                ));
            }
        }
        lines.push(format!("report: {}", files.report_html.display()));
        lines
    }
}

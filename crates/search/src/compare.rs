//! Comparing finished searches: how fast each strategy finds good feasible
//! models (issue "search", quality benchmarks), and how the fronts stand
//! against a hand-designed baseline evaluated by the same pipeline.
//!
//! Everything here is computed from journals, so a comparison can be redone
//! at any time from the run folders alone.

use std::fmt::Write as _;

use plotters::prelude::*;

use crate::evaluator::{ACCURACY_KIND, accuracy_kind_in_brief};
use crate::objective::keys;
use crate::{Journal, Metric, Objective, SearchError, Source, Status, TrialRecord};

/// One run's best-feasible-accuracy curve.
#[derive(Debug, Clone)]
pub struct RunCurve {
    /// What the run is called in tables and the legend (its folder name).
    pub label: String,
    /// `evolution` or `random` (the journal's `strategy`).
    pub strategy: String,
    /// The run's seed (journal field `seed`).
    pub seed: String,
    /// The device profile searched for (journal field `target`).
    pub target: String,
    /// `best[k]`: the best validation accuracy of a feasible trial among the
    /// first k + 1 finished trials (in the order they were asked); `None`
    /// while none was feasible.
    pub best: Vec<Option<f64>>,
    /// The run's Pareto front over accuracy and latency.
    pub front: Vec<TrialRecord>,
}

impl RunCurve {
    /// Builds the curve of a journal. `label` names the run in outputs;
    /// missing meta fields read `?`.
    ///
    /// Errors: [`SearchError::Journal`] reading the journal; [`SearchError::Config`] for a
    /// run that began from trials earlier searches judged (origin
    /// [`crate::journal::JUDGED_EARLIER`]): its curve is not its strategy's alone.
    pub fn from_journal(label: &str, journal: &Journal) -> Result<RunCurve, SearchError> {
        let meta = journal.meta()?;
        let trials = journal.trials()?;
        let earlier = trials
            .iter()
            .filter(|t| t.origin == crate::journal::JUDGED_EARLIER)
            .count();
        if earlier > 0 {
            let s = if earlier == 1 { "" } else { "s" };
            return Err(SearchError::Config(format!(
                "run {label} began from {earlier} candidate{s} earlier searches judged on its \
                 supernet, so its curve is not its strategy's alone; search again with \
                 --no-warm-start to compare strategies"
            )));
        }
        Ok(RunCurve::from_trials(
            label,
            meta.get("strategy").unwrap_or("?"),
            meta.get("seed").unwrap_or("?"),
            meta.get("target").unwrap_or("?"),
            &trials,
        ))
    }

    /// Builds the curve of `trials` with the given run fields: finished
    /// trials ordered by number, `done` ones counting towards the best.
    pub fn from_trials(
        label: &str,
        strategy: &str,
        seed: &str,
        target: &str,
        trials: &[TrialRecord],
    ) -> RunCurve {
        let mut finished: Vec<&TrialRecord> =
            trials.iter().filter(|t| t.status.is_finished()).collect();
        finished.sort_by_key(|t| t.number);
        let mut best: Vec<Option<f64>> = Vec::with_capacity(finished.len());
        let mut so_far: Option<f64> = None;
        for t in finished {
            if t.status == Status::Done
                && let Some(a) = accuracy(t)
            {
                so_far = Some(so_far.map_or(a, |b: f64| b.max(a)));
            }
            best.push(so_far);
        }
        let objectives = [Objective::Accuracy, Objective::Latency];
        let front = crate::report::front(trials, &objectives)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        RunCurve {
            label: label.to_string(),
            strategy: strategy.to_string(),
            seed: seed.to_string(),
            target: target.to_string(),
            best,
            front,
        }
    }

    /// The best feasible accuracy (fraction) within the first `budget`
    /// finished trials (all of them when the run has fewer).
    pub fn best_within(&self, budget: usize) -> Option<f64> {
        self.best
            .get(budget.min(self.best.len()).checked_sub(1)?)
            .copied()
            .flatten()
    }

    /// How many finished trials (1-based) this run needed to reach `goal`,
    /// looking only at the first `budget`; `None` if it did not.
    pub fn trials_to_reach(&self, goal: f64, budget: usize) -> Option<usize> {
        self.best
            .iter()
            .take(budget)
            .position(|b| b.is_some_and(|b| b >= goal))
            .map(|i| i + 1)
    }
}

fn figure<'a>(t: &'a TrialRecord, key: &str) -> Option<&'a Metric> {
    t.evaluation.as_ref()?.metrics.get(key)
}

fn accuracy(t: &TrialRecord) -> Option<f64> {
    figure(t, keys::ACCURACY).map(|f| f.value)
}

/// Evolution against random search with the same seed and trial budget.
#[derive(Debug, Clone)]
pub struct SeedPair {
    /// The seed both runs share.
    pub seed: String,
    /// Finished trials both runs have (the shorter run's count).
    pub budget: usize,
    /// The random search's best feasible accuracy within the budget.
    pub random_best: Option<f64>,
    /// The evolution run's best feasible accuracy within the budget.
    pub evolution_best: Option<f64>,
    /// Trials evolution needed to reach `random_best` (None: never did).
    pub evolution_trials_to_reach: Option<usize>,
}

impl SeedPair {
    /// `evolution_trials_to_reach / budget`; infinite when evolution never
    /// reached the random search's best (or random found nothing feasible,
    /// which makes the comparison empty: NaN).
    pub fn fraction(&self) -> f64 {
        if self.random_best.is_none() || self.budget == 0 {
            return f64::NAN;
        }
        self.evolution_trials_to_reach
            .map_or(f64::INFINITY, |n| n as f64 / self.budget as f64)
    }
}

/// Pairs every `evolution` run with the first `random` run of the same
/// seed; an evolution run without one is left out.
pub fn seed_pairs(curves: &[RunCurve]) -> Vec<SeedPair> {
    let mut pairs = Vec::new();
    for evo in curves.iter().filter(|c| c.strategy == "evolution") {
        let Some(rnd) = curves
            .iter()
            .find(|c| c.strategy == "random" && c.seed == evo.seed)
        else {
            continue;
        };
        let budget = evo.best.len().min(rnd.best.len());
        let random_best = rnd.best_within(budget);
        pairs.push(SeedPair {
            seed: evo.seed.clone(),
            budget,
            random_best,
            evolution_best: evo.best_within(budget),
            evolution_trials_to_reach: random_best.and_then(|g| evo.trials_to_reach(g, budget)),
        });
    }
    pairs
}

/// The median of the pairs' fractions (NaN pairs left out); `None` if no pair
/// has a random best to reach.
pub fn median_fraction(pairs: &[SeedPair]) -> Option<f64> {
    let mut f: Vec<f64> = pairs
        .iter()
        .map(SeedPair::fraction)
        .filter(|f| !f.is_nan())
        .collect();
    if f.is_empty() {
        return None;
    }
    f.sort_by(f64::total_cmp);
    let n = f.len();
    Some(if n % 2 == 1 {
        f[n / 2]
    } else {
        (f[n / 2 - 1] + f[n / 2]) / 2.0
    })
}

/// A front model set against the baseline.
#[derive(Debug, Clone)]
pub struct BaselineRow {
    /// The run's label.
    pub run: String,
    /// Trial number in that run's journal.
    pub trial: u64,
    /// The genome's content id.
    pub genome_id: String,
    /// Validation accuracy, a fraction in 0..1.
    pub accuracy: f64,
    /// Where the accuracy was measured (`host`; `sim` for an int8 build).
    pub accuracy_source: Source,
    /// What the accuracy is, in brief ([`crate::evaluator::accuracy_kind_in_brief`]:
    /// `inherited`, `fine-tuned 2 epochs`, `trained from scratch`); `None` when the
    /// journal does not say.
    pub accuracy_kind: Option<String>,
    /// Latency (p50, ms) at the chosen power mode.
    pub latency_ms: f64,
    /// Where the latency comes from (`sim` or `device`).
    pub latency_source: Source,
    /// Parameter count, if recorded.
    pub params: Option<f64>,
    /// Multiply-accumulates per image, if recorded.
    pub macs: Option<f64>,
}

impl BaselineRow {
    fn of(run: &str, t: &TrialRecord) -> Option<BaselineRow> {
        let lat = figure(t, keys::LATENCY_MS)?;
        let acc = figure(t, keys::ACCURACY)?;
        let kind = t.evaluation.as_ref()?.labels.get(ACCURACY_KIND);
        Some(BaselineRow {
            run: run.to_string(),
            trial: t.number,
            genome_id: t.genome_id.clone(),
            accuracy: acc.value,
            accuracy_source: acc.source,
            accuracy_kind: kind.map(|k| accuracy_kind_in_brief(k)),
            latency_ms: lat.value,
            latency_source: lat.source,
            params: figure(t, "params").map(|f| f.value),
            macs: figure(t, "macs").map(|f| f.value),
        })
    }
}

/// The outcome of "front's best vs the baseline".
#[derive(Debug, Clone)]
pub struct BaselineComparison {
    /// The baseline run's evaluated trial.
    pub baseline: BaselineRow,
    /// The baseline's status in its own run (it may itself break a
    /// constraint of the target).
    pub baseline_status: Status,
    /// The fastest front model (over all given runs) whose accuracy is within
    /// `tolerance` of the baseline's (or better); None if no front model is.
    pub fastest_within: Option<BaselineRow>,
    /// The most accurate front model over all runs.
    pub most_accurate: Option<BaselineRow>,
    /// Accuracy tolerance, as a fraction (0.005 = half a point).
    pub tolerance: f64,
}

impl BaselineComparison {
    /// Baseline latency / the latency of [`Self::fastest_within`] (above 1:
    /// the front model is faster); `None` without such a model or when its
    /// latency is not above 0.
    pub fn speedup(&self) -> Option<f64> {
        let m = self.fastest_within.as_ref()?;
        (m.latency_ms > 0.0).then(|| self.baseline.latency_ms / m.latency_ms)
    }
}

/// Compares the fronts of `curves` with the single evaluated trial of a
/// baseline run (e.g. MobileNetV2-0.5 searched in its one-point space with
/// the same epochs, data and target): its first `done` or `infeasible` trial
/// with accuracy and latency. `tolerance` is a fraction of accuracy (0.005 =
/// half a point).
///
/// Errors: [`SearchError::Report`] when the baseline has no such trial.
pub fn versus_baseline(
    curves: &[RunCurve],
    baseline_label: &str,
    baseline_trials: &[TrialRecord],
    tolerance: f64,
) -> Result<BaselineComparison, SearchError> {
    let base = baseline_trials
        .iter()
        .filter(|t| matches!(t.status, Status::Done | Status::Infeasible))
        .find_map(|t| Some((BaselineRow::of(baseline_label, t)?, t.status)))
        .ok_or_else(|| {
            SearchError::Report(format!(
                "baseline run {baseline_label}: no evaluated trial with accuracy and latency"
            ))
        })?;
    let rows: Vec<BaselineRow> = curves
        .iter()
        .flat_map(|c| c.front.iter().filter_map(|t| BaselineRow::of(&c.label, t)))
        .collect();
    let fastest_within = rows
        .iter()
        .filter(|r| r.accuracy >= base.0.accuracy - tolerance)
        .min_by(|a, b| a.latency_ms.total_cmp(&b.latency_ms))
        .cloned();
    let most_accurate = rows
        .iter()
        .max_by(|a, b| {
            a.accuracy
                .total_cmp(&b.accuracy)
                .then(b.latency_ms.total_cmp(&a.latency_ms))
        })
        .cloned();
    Ok(BaselineComparison {
        baseline: base.0,
        baseline_status: base.1,
        fastest_within,
        most_accurate,
        tolerance,
    })
}

fn pct(v: Option<f64>) -> String {
    v.map_or("none feasible".into(), |v| format!("{:.2}", v * 100.0))
}

/// The comparison as Markdown (tables for the README and the terminal):
/// the runs, the seed pairs with their median (goal <= 0.50 of the budget),
/// and the baseline rows with the speed-up (goal >= 1.5x). Accuracies are
/// shown in percent for reading.
pub fn markdown(
    curves: &[RunCurve],
    pairs: &[SeedPair],
    baseline: Option<&BaselineComparison>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| run | strategy | seed | finished trials | best feasible val. acc. % (host) | front size |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for c in curves {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            c.label,
            c.strategy,
            c.seed,
            c.best.len(),
            pct(c.best.last().copied().flatten()),
            c.front.len()
        );
    }
    if !pairs.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| seed | budget | random best % | evolution best % | trials evolution needed to reach random's best | fraction of budget |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for p in pairs {
            let f = p.fraction();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                p.seed,
                p.budget,
                pct(p.random_best),
                pct(p.evolution_best),
                p.evolution_trials_to_reach
                    .map_or("not reached".into(), |n| n.to_string()),
                if f.is_finite() {
                    format!("{f:.2}")
                } else {
                    "-".into()
                }
            );
        }
        let _ = writeln!(s);
        match median_fraction(pairs) {
            Some(m) if m.is_finite() => {
                let _ = writeln!(
                    s,
                    "Median fraction of the budget evolution needed: {m:.2} (goal <= 0.50: {}).",
                    if m <= 0.5 { "met" } else { "missed" }
                );
            }
            Some(_) => {
                let _ = writeln!(
                    s,
                    "Median: evolution did not reach the random search's best within the budget (goal <= 0.50: missed)."
                );
            }
            None => {
                let _ = writeln!(s, "No pair had a feasible random result to compare with.");
            }
        }
    }
    if let Some(b) = baseline {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| model | run | trial | val. acc. % | accuracy is | latency ms | params | MACs |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        let row = |s: &mut String, name: &str, r: &BaselineRow| {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {:.2} ({}) | {} | {:.2} ({}) | {} | {} |",
                r.run,
                r.trial,
                r.accuracy * 100.0,
                r.accuracy_source,
                r.accuracy_kind.as_deref().unwrap_or("-"),
                r.latency_ms,
                r.latency_source,
                r.params.map_or("-".into(), |v| format!("{v:.0}")),
                r.macs.map_or("-".into(), |v| format!("{v:.0}")),
            );
        };
        row(&mut s, "baseline", &b.baseline);
        if let Some(m) = &b.fastest_within {
            row(
                &mut s,
                &format!("fastest front model within {:.1} pt", b.tolerance * 100.0),
                m,
            );
        }
        if let Some(m) = &b.most_accurate {
            row(&mut s, "most accurate front model", m);
        }
        let _ = writeln!(s);
        if b.baseline_status == Status::Infeasible {
            let _ = writeln!(
                s,
                "The baseline itself breaks a hard constraint of {}.",
                curves.first().map_or("the target", |c| c.target.as_str())
            );
        }
        match b.speedup() {
            Some(x) => {
                let _ = writeln!(
                    s,
                    "Speed-up of the fastest front model within {:.1} pt over the baseline: {x:.2}x (goal >= 1.5x: {}).",
                    b.tolerance * 100.0,
                    if x >= 1.5 { "met" } else { "missed" }
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "No front model is within {:.1} pt of the baseline's accuracy (goal missed).",
                    b.tolerance * 100.0
                );
            }
        }
    }
    s
}

/// Best feasible accuracy against finished trials, one line per run
/// (evolution orange, random blue), as an SVG string; accuracy shown in
/// percent.
///
/// Errors: [`SearchError::Report`] when plotting fails.
pub fn curves_svg(curves: &[RunCurve]) -> Result<String, SearchError> {
    let err = |e: &dyn std::fmt::Display| SearchError::Report(format!("plot: {e}"));
    let points = |c: &RunCurve| -> Vec<(f64, f64)> {
        c.best
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Some(((i + 1) as f64, (*b)? * 100.0)))
            .collect()
    };
    let all: Vec<(f64, f64)> = curves.iter().flat_map(points).collect();
    let x_max = curves
        .iter()
        .map(|c| c.best.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let y_min = all.iter().map(|p| p.1).fold(100.0, f64::min);
    let y_min = (y_min - 1.0).clamp(0.0, 99.0).floor();
    let y_max = all.iter().map(|p| p.1).fold(y_min + 1.0, f64::max);
    let y_max = (y_max + 0.5).min(100.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (820, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .caption(
                "best feasible validation accuracy vs finished trials",
                ("sans-serif", 18),
            )
            .build_cartesian_2d(1.0..x_max, y_min..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("finished trials")
            .y_desc("accuracy % (host)")
            .draw()
            .map_err(|e| err(&e))?;
        let orange = RGBColor(230, 120, 0);
        for c in curves {
            let colour = if c.strategy == "evolution" {
                orange
            } else {
                BLUE
            };
            // A step line: the best so far holds until the next improvement.
            let mut steps = Vec::new();
            for (x, y) in points(c) {
                if let Some(&(_, py)) = steps.last() {
                    steps.push((x, py));
                }
                steps.push((x, y));
            }
            chart
                .draw_series(LineSeries::new(steps, colour.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(format!("{} ({}, seed {})", c.label, c.strategy, c.seed))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{Evaluation, Unit};

    fn trial(number: u64, status: Status, acc: f64, lat: f64) -> TrialRecord {
        let mut metrics = BTreeMap::new();
        metrics.insert(
            keys::ACCURACY.to_string(),
            Metric::new(acc, Unit::Fraction, Source::Host),
        );
        metrics.insert(
            keys::LATENCY_MS.to_string(),
            Metric::new(lat, Unit::Milliseconds, Source::Sim),
        );
        TrialRecord {
            number,
            genome_id: format!("g{number}"),
            genome: "{}".into(),
            origin: "random".into(),
            status,
            evaluation: Some(Evaluation {
                metrics,
                ..Default::default()
            }),
            error: None,
            created_at: 0.0,
            started_at: None,
            finished_at: None,
            attempts: 1,
        }
    }

    #[test]
    fn curve_counts_only_feasible_trials_and_keeps_the_best() {
        let trials = vec![
            trial(1, Status::Infeasible, 0.99, 50.0),
            trial(2, Status::Done, 0.90, 10.0),
            trial(3, Status::Failed, 0.0, 0.0),
            trial(4, Status::Done, 0.85, 5.0),
            trial(5, Status::Done, 0.95, 20.0),
        ];
        let c = RunCurve::from_trials("r", "random", "1", "jetson", &trials);
        assert_eq!(
            c.best,
            vec![None, Some(0.90), Some(0.90), Some(0.90), Some(0.95)]
        );
        assert_eq!(c.trials_to_reach(0.9, 5), Some(2));
        assert_eq!(c.trials_to_reach(0.95, 4), None);
        // The front: 4 (fastest), 2, 5 (most accurate); the infeasible 0.99 is out.
        let ids: Vec<u64> = c.front.iter().map(|t| t.number).collect();
        assert_eq!(ids, vec![4, 2, 5]);
    }

    #[test]
    fn a_run_that_began_from_earlier_judgments_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(dir.path(), &crate::RunMeta::default()).unwrap();
        let eval = trial(1, Status::Done, 0.9, 10.0).evaluation.unwrap();
        journal
            .insert("a", "{}", "random", Status::Done, Some(&eval))
            .unwrap();
        assert!(RunCurve::from_journal("own", &journal).is_ok());
        journal
            .insert(
                "b",
                "{}",
                crate::journal::JUDGED_EARLIER,
                Status::Done,
                Some(&eval),
            )
            .unwrap();
        let e = RunCurve::from_journal("warm", &journal).unwrap_err();
        assert!(
            e.to_string()
                .contains("run warm began from 1 candidate earlier"),
            "{e}"
        );
    }

    #[test]
    fn pairs_use_the_shorter_runs_budget_and_the_median() {
        let rnd = RunCurve::from_trials(
            "r1",
            "random",
            "1",
            "jetson",
            &[
                trial(1, Status::Done, 0.90, 10.0),
                trial(2, Status::Done, 0.93, 10.0),
                trial(3, Status::Done, 0.99, 10.0),
            ],
        );
        let evo = RunCurve::from_trials(
            "e1",
            "evolution",
            "1",
            "jetson",
            &[
                trial(1, Status::Done, 0.94, 10.0),
                trial(2, Status::Done, 0.80, 10.0),
            ],
        );
        let pairs = seed_pairs(&[evo, rnd]);
        assert_eq!(pairs.len(), 1);
        // Budget 2: random's best within it is 0.93, evolution had 0.94 at trial 1.
        assert_eq!(pairs[0].budget, 2);
        assert_eq!(pairs[0].random_best, Some(0.93));
        assert_eq!(pairs[0].evolution_trials_to_reach, Some(1));
        assert_eq!(median_fraction(&pairs), Some(0.5));
    }

    #[test]
    fn baseline_picks_the_fastest_front_model_within_tolerance() {
        let run = RunCurve::from_trials(
            "e1",
            "evolution",
            "1",
            "jetson",
            &[
                trial(1, Status::Done, 0.950, 4.0),
                trial(2, Status::Done, 0.962, 8.0),
                trial(3, Status::Done, 0.970, 20.0),
            ],
        );
        let mut base = [trial(1, Status::Done, 0.966, 24.0)];
        let scratch = "trained from scratch (10 epochs)".to_string();
        let labels = &mut base[0].evaluation.as_mut().unwrap().labels;
        labels.insert(ACCURACY_KIND.into(), scratch);
        let b = versus_baseline(&[run], "mbv2", &base, 0.005).expect("baseline");
        let m = b.fastest_within.as_ref().expect("a model within 0.5 pt");
        assert_eq!(m.trial, 2);
        assert_eq!(b.speedup(), Some(3.0));
        assert_eq!(b.most_accurate.as_ref().map(|m| m.trial), Some(3));
        let text = markdown(&[], &[], Some(&b));
        assert!(text.contains("3.00x (goal >= 1.5x: met)"), "{text}");
        // each accuracy says where it was measured and what it is, where the journal says
        let says = "| baseline | mbv2 | 1 | 96.60 (host) | trained from scratch | 24.00 (sim) |";
        assert!(text.contains(says), "{text}");
        assert!(text.contains("| 96.20 (host) | - |"), "{text}");
        assert!(curves_svg(&[]).is_ok());
    }
}

//! Run outputs, all regenerated from the journal: `front.json`,
//! `trials.csv`, `report.html` (SVG scatter of accuracy vs latency and a
//! table of the front) and `front/` (each front model's ONNX file,
//! generated crate and binaries, copied from its trial folder).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kiln_target::Target;
use plotters::prelude::*;

use crate::constraints::Violation;
use crate::driver::{is_analytic_rejection, trial_dir};
use crate::objective::{keys, objective_vector};
use crate::pareto::{crowding_distance, non_dominated_sort};
use crate::{Journal, Objective, SearchError, Source, Status, TrialRecord};
use kiln_target::Constraint;

pub use crate::front_file::{FrontFile, FrontModel};

/// The feasible (`done`) trials on the Pareto front over `objectives`, each
/// with its NSGA-II crowding distance, in order of increasing latency (or
/// the first objective's value when latency is not one; ties by trial
/// number). Trials missing an objective's metric are left out.
pub fn front(trials: &[TrialRecord], objectives: &[Objective]) -> Vec<(TrialRecord, f64)> {
    let feasible: Vec<(&TrialRecord, Vec<f64>)> = trials
        .iter()
        .filter(|t| t.status == Status::Done)
        .filter_map(|t| {
            let v = objective_vector(&t.evaluation.as_ref()?.metrics, objectives)?;
            Some((t, v))
        })
        .collect();
    let points: Vec<Vec<f64>> = feasible.iter().map(|(_, v)| v.clone()).collect();
    let directions: Vec<_> = objectives.iter().map(|o| o.direction()).collect();
    let Some(first) = non_dominated_sort(&points, &directions).into_iter().next() else {
        return Vec::new();
    };
    let crowding = crowding_distance(&first, &points);
    let sort_key = objectives
        .iter()
        .position(|o| *o == Objective::Latency)
        .unwrap_or(0);
    let mut out: Vec<(TrialRecord, f64, f64)> = first
        .iter()
        .zip(crowding)
        .map(|(&i, c)| (feasible[i].0.clone(), c, points[i][sort_key]))
        .collect();
    out.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.number.cmp(&b.0.number)));
    out.into_iter().map(|(t, c, _)| (t, c)).collect()
}

/// How far a broken constraint is from being met (0 = met), relative to its limit.
fn excess(v: &Violation) -> f64 {
    match v.actual {
        None => f64::INFINITY,
        Some(a) if v.constraint == Constraint::MinFps => {
            (v.limit / a.value.max(1e-12) - 1.0).max(0.0)
        }
        Some(a) => (a.value / v.limit.max(1e-12) - 1.0).max(0.0),
    }
}

/// The `n` infeasible trials closest to feasibility (smallest summed
/// relative excess over their broken constraints: actual / limit - 1, or
/// limit / actual - 1 for minimum FPS; an unmeasured figure counts as
/// infinite), measured ones first.
pub fn closest_infeasible(trials: &[TrialRecord], n: usize) -> Vec<&TrialRecord> {
    let mut infeasible: Vec<(&TrialRecord, f64)> = trials
        .iter()
        .filter(|t| t.status == Status::Infeasible)
        .filter_map(|t| {
            let e = t.evaluation.as_ref()?;
            let analytic = if is_analytic_rejection(t) { 1e6 } else { 0.0 };
            Some((t, analytic + e.violations.iter().map(excess).sum::<f64>()))
        })
        .collect();
    infeasible.sort_by(|a, b| a.1.total_cmp(&b.1));
    infeasible.into_iter().take(n).map(|(t, _)| t).collect()
}

/// The "nothing feasible" message for device profile `target`: the five
/// closest candidates ([`closest_infeasible`]) and what each broke.
pub fn impossible_message(trials: &[TrialRecord], target: &str) -> String {
    let mut s = format!(
        "no candidate met every hard constraint of `{target}` ({} trials). Closest candidates:\n",
        trials.len()
    );
    let closest = closest_infeasible(trials, 5);
    if closest.is_empty() {
        s.push_str("  (none was measured: every trial failed; see trials.csv for errors)\n");
    }
    for t in closest {
        let broke: Vec<String> = t
            .evaluation
            .iter()
            .flat_map(|e| e.violations.iter().map(|v| v.to_string()))
            .collect();
        let _ = writeln!(
            s,
            "  trial {} {}: broke {}",
            t.number,
            t.genome_id,
            broke.join("; ")
        );
    }
    s
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// `front.json` ([`FrontFile`]).
    pub front_json: PathBuf,
    /// `trials.csv`: every trial, each metric followed by its source.
    pub trials_csv: PathBuf,
    /// `report.html`: the scatter plot and the front's table.
    pub report_html: PathBuf,
    /// The front's models as written to `front.json`, in [`front`]'s order.
    pub front: Vec<FrontModel>,
}

/// The latency in ms a model must not exceed under `target` (the tightest
/// of p50, p95 and 1000 / min FPS), for the plot's constraint line and the
/// MnasNet target; `None` when the profile limits none of them.
pub fn latency_limit_ms(target: &Target) -> Option<f64> {
    let c = &target.constraints;
    [
        c.max_latency_p50_ms,
        c.max_latency_p95_ms,
        c.min_fps.map(|f| 1000.0 / f),
    ]
    .into_iter()
    .flatten()
    .min_by(f64::total_cmp)
}

/// Writes front.json, trials.csv, report.html and front/ into `run_dir`,
/// replacing earlier ones. `front/NN-ID/` is a copy of the trial's folder
/// (model.onnx, generated crate and binaries; for a shared run's trial evaluated
/// elsewhere, the files its worker stored in the database); `target` adds its constraints
/// and latency limit to the page.
///
/// Errors: [`SearchError::Journal`] reading the journal,
/// [`SearchError::Io`] writing or copying, [`SearchError::Report`] when the
/// plot or `front.json` cannot be made.
pub fn write_report(
    run_dir: &Path,
    journal: &Journal,
    target: Option<&Target>,
    objectives: &[Objective],
) -> Result<ReportFiles, SearchError> {
    let trials = journal.trials()?;
    let meta = journal.meta()?;
    let front_trials = front(&trials, objectives);

    let front_dir = run_dir.join("front");
    if front_dir.exists() {
        std::fs::remove_dir_all(&front_dir).map_err(|e| SearchError::io(&front_dir, e))?;
    }
    let mut front_models = Vec::new();
    for (rank, (t, crowding)) in front_trials.iter().enumerate() {
        let folder = format!("{:02}-{}", rank + 1, t.genome_id);
        let dest = front_dir.join(&folder);
        let src = trial_dir(run_dir, t.number, &t.genome_id);
        copy_model(&src, &dest)?;
        // a shared run's trial evaluated on another machine: its files from the database
        journal.restore_trial_files(&t.genome_id, &dest)?;
        front_models.push(FrontModel {
            trial: t.number,
            genome_id: t.genome_id.clone(),
            genome: serde_json::from_str(&t.genome).unwrap_or(serde_json::Value::Null),
            metrics: t
                .evaluation
                .as_ref()
                .map(|e| e.metrics.clone())
                .unwrap_or_default(),
            folder: format!("front/{folder}"),
            crowding_distance: *crowding,
            labels: t
                .evaluation
                .as_ref()
                .map(|e| e.labels.clone())
                .unwrap_or_default(),
        });
    }
    let front_json = FrontFile {
        run: meta.fields.clone(),
        objectives: objectives.iter().map(|o| o.name().to_string()).collect(),
        front: front_models.clone(),
    }
    .write(run_dir)?;

    let trials_csv = run_dir.join("trials.csv");
    std::fs::write(&trials_csv, trials_csv_text(&trials))
        .map_err(|e| SearchError::io(&trials_csv, e))?;

    let report_html = run_dir.join("report.html");
    let html = html_report(&trials, &front_trials, &meta.fields, target, objectives)?;
    std::fs::write(&report_html, html).map_err(|e| SearchError::io(&report_html, e))?;
    Ok(ReportFiles {
        front_json,
        trials_csv,
        report_html,
        front: front_models,
    })
}

fn copy_model(src: &Path, dest: &Path) -> Result<(), SearchError> {
    std::fs::create_dir_all(dest).map_err(|e| SearchError::io(dest, e))?;
    let Ok(entries) = std::fs::read_dir(src) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let to = dest.join(entry.file_name());
        if path.is_dir() {
            copy_model(&path, &to)?;
        } else {
            std::fs::copy(&path, &to).map_err(|e| SearchError::io(&to, e))?;
        }
    }
    Ok(())
}

const CSV_METRICS: [&str; 19] = [
    keys::ACCURACY,
    // An int8 search's f32 figures beside its int8 ones (`accuracy` is then int8's).
    "f32_accuracy",
    keys::TEST_ACCURACY,
    "f32_test_accuracy",
    keys::LATENCY_MS,
    keys::LATENCY_P95_MS,
    "fps",
    // Beside a device's latency, the simulation's (the same as latency_ms
    // when there is no device).
    keys::SIM_LATENCY_MS,
    "sim_fps",
    keys::SIZE_BYTES,
    keys::PEAK_MEMORY_BYTES,
    "device_peak_rss_bytes",
    "fuel",
    "arena_bytes",
    "f32_arena_bytes",
    "weights_bytes",
    "f32_weights_bytes",
    "params",
    "macs",
];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The text of `trials.csv`: one row per trial; each metric column (in the
/// metric's own unit: accuracy a fraction, latency ms, sizes bytes) is
/// followed by its source column; then stage seconds, attempts, violations,
/// error text and the device that measured the trial (`measured_on`).
pub fn trials_csv_text(trials: &[TrialRecord]) -> String {
    let mut s = String::from("trial,genome_id,origin,status,accuracy_kind");
    for m in CSV_METRICS {
        let _ = write!(s, ",{m},{m}_source");
    }
    s.push_str(",train_s,build_s,measure_s,device_s,attempts,violations,error,measured_on\n");
    for t in trials {
        let _ = write!(
            s,
            "{},{},{},{}",
            t.number,
            t.genome_id,
            t.origin,
            t.status.as_str()
        );
        let e = t.evaluation.as_ref();
        let kind = e.and_then(|e| e.labels.get(crate::evaluator::ACCURACY_KIND));
        let _ = write!(s, ",{}", csv_field(kind.map_or("", String::as_str)));
        for m in CSV_METRICS {
            match e.and_then(|e| e.metrics.get(m)) {
                Some(f) => {
                    let _ = write!(s, ",{},{}", f.value, f.source);
                }
                None => s.push_str(",,"),
            }
        }
        for k in ["train_s", "build_s", "measure_s", "device_s"] {
            match e.and_then(|e| e.timings.get(k)) {
                Some(v) => {
                    let _ = write!(s, ",{v:.2}");
                }
                None => s.push(','),
            }
        }
        let violations: Vec<String> = e
            .map(|e| e.violations.iter().map(|v| v.to_string()).collect())
            .unwrap_or_default();
        let device = e.and_then(|e| e.labels.get(crate::evaluator::MEASURED_ON));
        let _ = writeln!(
            s,
            ",{},{},{},{}",
            t.attempts,
            csv_field(&violations.join("; ")),
            csv_field(t.error.as_deref().unwrap_or("")),
            csv_field(device.map_or("", String::as_str))
        );
    }
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn metric_of(t: &TrialRecord, key: &str) -> Option<f64> {
    t.evaluation.as_ref()?.metrics.get(key).map(|f| f.value)
}

/// The accuracy-vs-latency scatter as an SVG string: latency in ms on x
/// (labelled with its source), validation accuracy shown in percent on y
/// for reading (stored as a fraction); feasible trials blue, infeasible grey,
/// the front orange, `latency_limit` (ms) a red line.
///
/// Errors: [`SearchError::Report`] when plotting fails.
pub fn scatter_svg(
    trials: &[TrialRecord],
    front: &[(TrialRecord, f64)],
    latency_limit: Option<f64>,
) -> Result<String, SearchError> {
    let mut svg = String::new();
    // `device` when the search measured on one, else `sim`.
    let latency_source = trials
        .iter()
        .filter_map(|t| t.evaluation.as_ref()?.metrics.get(keys::LATENCY_MS))
        .map(|f| f.source)
        .next()
        .unwrap_or(Source::Sim);
    let pts = |status: Status| -> Vec<(f64, f64)> {
        trials
            .iter()
            .filter(|t| t.status == status)
            .filter_map(|t| {
                Some((
                    metric_of(t, keys::LATENCY_MS)?,
                    metric_of(t, keys::ACCURACY)? * 100.0,
                ))
            })
            .collect()
    };
    let feasible = pts(Status::Done);
    let infeasible = pts(Status::Infeasible);
    let front_pts: Vec<(f64, f64)> = front
        .iter()
        .filter_map(|(t, _)| {
            Some((
                metric_of(t, keys::LATENCY_MS)?,
                metric_of(t, keys::ACCURACY)? * 100.0,
            ))
        })
        .collect();
    let all: Vec<&(f64, f64)> = feasible.iter().chain(&infeasible).collect();
    let mut x_max = all.iter().map(|p| p.0).fold(0.0, f64::max);
    if let Some(l) = latency_limit {
        x_max = x_max.max(l);
    }
    let x_max = if x_max > 0.0 { x_max * 1.1 } else { 1.0 };
    let y_min = all.iter().map(|p| p.1).fold(100.0, f64::min);
    let y_min = (y_min - 5.0).clamp(0.0, 95.0);
    {
        let err = |e: &dyn std::fmt::Display| SearchError::Report(format!("plot: {e}"));
        let root = SVGBackend::with_string(&mut svg, (820, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .caption(
                format!("validation accuracy vs latency ({latency_source}, chosen power mode)"),
                ("sans-serif", 18),
            )
            .build_cartesian_2d(0.0..x_max, y_min..100.0)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(format!("latency ms ({latency_source})"))
            .y_desc("accuracy % (host)")
            .draw()
            .map_err(|e| err(&e))?;
        if let Some(l) = latency_limit {
            chart
                .draw_series(LineSeries::new(
                    vec![(l, y_min), (l, 100.0)],
                    RED.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(format!("latency limit {l:.1} ms"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
        }
        let grey = RGBColor(170, 170, 170);
        chart
            .draw_series(infeasible.iter().map(|p| Circle::new(*p, 4, grey.filled())))
            .map_err(|e| err(&e))?
            .label("infeasible")
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, grey.filled()));
        chart
            .draw_series(feasible.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))
            .map_err(|e| err(&e))?
            .label("feasible")
            .legend(|(x, y)| Circle::new((x + 8, y), 4, BLUE.filled()));
        let orange = RGBColor(230, 120, 0);
        chart
            .draw_series(LineSeries::new(front_pts.clone(), orange.stroke_width(2)))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(
                front_pts
                    .iter()
                    .map(|p| Circle::new(*p, 6, orange.filled())),
            )
            .map_err(|e| err(&e))?
            .label("Pareto front")
            .legend(move |(x, y)| Circle::new((x + 8, y), 6, orange.filled()));
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

fn html_report(
    trials: &[TrialRecord],
    front: &[(TrialRecord, f64)],
    meta: &std::collections::BTreeMap<String, String>,
    target: Option<&Target>,
    objectives: &[Objective],
) -> Result<String, SearchError> {
    let svg = scatter_svg(trials, front, target.and_then(latency_limit_ms))?;
    let count = |s: Status| trials.iter().filter(|t| t.status == s).count();
    let mut h = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kiln search report</title>\n<style>body{font-family:sans-serif;margin:2em}.front{overflow-x:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}th{background:#eee}.src{color:#777;font-size:11px}</style></head><body>\n<h1>kiln search report</h1>\n",
    );
    h.push_str("<p>");
    for (k, v) in meta {
        let _ = write!(h, "<b>{}</b>: {} &nbsp; ", escape(k), escape(v));
    }
    h.push_str("</p>\n");
    if let Some(t) = target {
        let _ = writeln!(
            h,
            "<p>Hard constraints of <b>{}</b>: {}</p>",
            escape(&t.name),
            escape(&t.constraint_summary())
        );
    }
    let _ = writeln!(
        h,
        "<p>{} trials: {} feasible, {} infeasible ({} rejected before training by an analytic bound), {} failed. Pareto front over {}: {} models.</p>",
        trials.len(),
        count(Status::Done),
        count(Status::Infeasible),
        trials.iter().filter(|t| is_analytic_rejection(t)).count(),
        count(Status::Failed),
        objectives
            .iter()
            .map(|o| o.name())
            .collect::<Vec<_>>()
            .join(", "),
        front.len()
    );
    h.push_str("<p>Sources: <b>host</b> = measured on this machine (accuracy from training here), <b>sim</b> = wasm fuel under the device profile, <b>predicted</b> = analytic, a profile figure or the latency lookup table, <b>device</b> = measured on the device.</p>\n");
    h.push_str(&accuracy_kinds(trials));
    h.push_str(&svg);
    h.push_str("\n<h2>Pareto front</h2>\n");
    let mut keys_all: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for (t, _) in front {
        if let Some(e) = &t.evaluation {
            keys_all.extend(e.metrics.keys().cloned());
        }
    }
    // The front has a column per figure: it scrolls in its own box, the
    // page keeps its width.
    h.push_str("<div class=\"front\"><table><tr><th>trial</th><th>genome</th><th>folder</th><th>accuracy is</th>");
    for k in &keys_all {
        let _ = write!(h, "<th>{}</th>", escape(k));
    }
    h.push_str("</tr>\n");
    for (rank, (t, _)) in front.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>front/{:02}-{}</td>",
            t.number,
            escape(&t.genome_id),
            rank + 1,
            escape(&t.genome_id)
        );
        let kind = t
            .evaluation
            .as_ref()
            .and_then(|e| e.labels.get(crate::evaluator::ACCURACY_KIND));
        let _ = write!(h, "<td>{}</td>", escape(kind.map_or("", |k| k)));
        for k in &keys_all {
            match t.evaluation.as_ref().and_then(|e| e.metrics.get(k)) {
                Some(f) => {
                    let _ = write!(
                        h,
                        "<td>{} {} <span class=\"src\">({})</span></td>",
                        fmt_value(f.value),
                        escape(f.unit.symbol()),
                        f.source
                    );
                }
                None => h.push_str("<td></td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table></div>\n");
    if front.is_empty() {
        let _ = writeln!(
            h,
            "<h2>Nothing feasible</h2><pre>{}</pre>",
            escape(&impossible_message(
                trials,
                meta.get("target").map_or("?", |s| s)
            ))
        );
    }
    h.push_str("<p>Every trial with its metrics, sources, timings and errors: <a href=\"trials.csv\">trials.csv</a>; the front as JSON: <a href=\"front.json\">front.json</a>.</p>\n</body></html>\n");
    Ok(h)
}

/// How many evaluated trials' accuracies are of each kind (inherited from a supernet,
/// fine-tuned, trained from scratch), as a paragraph; empty without any label.
fn accuracy_kinds(trials: &[TrialRecord]) -> String {
    let mut kinds: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for t in trials {
        if let Some(k) = t
            .evaluation
            .as_ref()
            .and_then(|e| e.labels.get(crate::evaluator::ACCURACY_KIND))
        {
            *kinds.entry(k.as_str()).or_default() += 1;
        }
    }
    if kinds.is_empty() {
        return String::new();
    }
    let items: Vec<String> = kinds
        .iter()
        .map(|(k, n)| format!("<li>{n} {}</li>", escape(k)))
        .collect();
    format!(
        "<p>What the accuracies are (each measured here, <b>host</b>; an int8 model's through its int8 build, <b>sim</b>):</p><ul>{}</ul>\n",
        items.concat()
    )
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() < 10.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Evaluation, Metric, RunMeta, Unit};

    fn eval(acc: f64, lat: f64, violated: bool) -> Evaluation {
        let mut e = Evaluation::default();
        e.metrics.insert(
            keys::ACCURACY.into(),
            Metric::new(acc, Unit::Fraction, Source::Host),
        );
        e.metrics.insert(
            keys::LATENCY_MS.into(),
            Metric::new(lat, Unit::Milliseconds, Source::Sim),
        );
        let kind = if acc > 0.85 {
            "fine-tuned 2 epochs"
        } else {
            "inherited from a supernet"
        };
        e.labels
            .insert(crate::evaluator::ACCURACY_KIND.into(), kind.into());
        if violated {
            e.violations.push(Violation::failed(
                Constraint::MaxLatencyP50Ms,
                50.0,
                Metric::new(lat, Unit::Milliseconds, Source::Sim),
            ));
        }
        e
    }

    #[test]
    fn report_files_show_the_front_and_grey_infeasible_trials() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::create(dir.path(), &RunMeta::default().with("target", "jetson")).unwrap();
        let rows = [
            ("a", 0.90, 40.0, false),
            ("b", 0.80, 10.0, false),
            ("c", 0.70, 30.0, false), // dominated by b
            ("d", 0.95, 80.0, true),  // infeasible
        ];
        for (id, acc, lat, bad) in rows {
            let n = j.insert(id, "{}", "random", Status::Pending, None).unwrap();
            let status = if bad {
                Status::Infeasible
            } else {
                Status::Done
            };
            j.finish(n, status, Some(&eval(acc, lat, bad)), None)
                .unwrap();
        }
        let n = j
            .insert("e", "{}", "random", Status::Pending, None)
            .unwrap();
        j.finish(
            n,
            Status::Failed,
            None,
            Some("wasm build: cargo failed, \"x\""),
        )
        .unwrap();
        let files = write_report(
            dir.path(),
            &j,
            None,
            &[Objective::Accuracy, Objective::Latency],
        )
        .unwrap();
        let ids: Vec<&str> = files.front.iter().map(|m| m.genome_id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        // front.json says what each accuracy is, as the trial's label does
        let kinds: Vec<_> = FrontFile::read(dir.path())
            .unwrap()
            .front
            .iter()
            .map(|m| m.accuracy_kind().map(str::to_string))
            .collect();
        assert_eq!(
            kinds,
            [
                Some("inherited from a supernet".into()),
                Some("fine-tuned 2 epochs".into())
            ]
        );
        let html = std::fs::read_to_string(&files.report_html).unwrap();
        assert!(html.contains("<svg"), "no plot");
        assert!(html.contains("Pareto front"));
        assert!(html.contains("(sim)") && html.contains("(host)"));
        // accuracies of different kinds stay apart: counted, and named per front model
        assert!(html.contains("<li>2 fine-tuned 2 epochs</li>"), "{html}");
        assert!(
            html.contains("<li>2 inherited from a supernet</li>"),
            "{html}"
        );
        assert!(html.contains("<td>fine-tuned 2 epochs</td>"), "{html}");
        let csv = std::fs::read_to_string(&files.trials_csv).unwrap();
        assert_eq!(csv.lines().count(), 6);
        assert!(csv.contains("\"wasm build: cargo failed, \"\"x\"\"\""));
        let msg = impossible_message(&j.trials().unwrap(), "jetson");
        assert!(
            msg.contains("trial 4 d: broke max_latency_p50_ms: 80.000 ms (sim) vs limit 50 ms"),
            "{msg}"
        );
    }
}

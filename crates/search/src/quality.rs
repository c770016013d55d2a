//! The strategy quality benchmark's curves: per run, after each candidate
//! judged, the best feasible accuracy so far and the hypervolume of the
//! feasible (accuracy, latency) points so far; per strategy, the median and
//! the spread over seeds; written as CSV and hand-drawn SVG.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::driver::is_analytic_rejection;
use crate::objective::keys;
use crate::pareto::{Direction, hypervolume_2d};
use crate::{Status, TrialRecord};

/// One run's curves, indexed by candidates judged minus one.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityCurve {
    /// The strategy's name.
    pub strategy: String,
    /// The run's seed.
    pub seed: u64,
    /// Best validation accuracy (fraction) of a feasible trial so far; `None` before one.
    pub best_accuracy: Vec<Option<f64>>,
    /// Hypervolume of the feasible points so far in (accuracy, latency / limit)
    /// against the reference (accuracy 0, the latency limit): a fraction of the
    /// unit square, 0 before a feasible trial.
    pub hypervolume: Vec<f64>,
}

impl QualityCurve {
    /// The curves of `trials` (a journal's, in ask order): every evaluated
    /// trial counts as judged (analytic rejections, free, do not; pending ones
    /// are skipped); feasible trials (`done`) add their accuracy and latency
    /// ([`keys::LATENCY_MS`], ms) against `limit_ms`.
    pub fn from_trials(strategy: &str, seed: u64, trials: &[TrialRecord], limit_ms: f64) -> Self {
        let mut points: Vec<Vec<f64>> = Vec::new();
        let (mut best_accuracy, mut hypervolume) = (Vec::new(), Vec::new());
        let mut best: Option<f64> = None;
        for t in trials {
            if is_analytic_rejection(t) || matches!(t.status, Status::Pending | Status::Running) {
                continue;
            }
            if t.status == Status::Done
                && let Some(e) = &t.evaluation
                && let (Some(a), Some(l)) = (
                    e.metrics.get(keys::ACCURACY),
                    e.metrics.get(keys::LATENCY_MS),
                )
            {
                best = Some(best.map_or(a.value, |b: f64| b.max(a.value)));
                points.push(vec![a.value, l.value / limit_ms]);
            }
            best_accuracy.push(best);
            hypervolume.push(hypervolume_2d(
                &points,
                [Direction::Maximize, Direction::Minimize],
                [0.0, 1.0],
            ));
        }
        Self {
            strategy: strategy.into(),
            seed,
            best_accuracy,
            hypervolume,
        }
    }
}

/// Per strategy: its name and, per candidates judged, (median, min, max) over seeds.
pub type Spread = Vec<(String, Vec<(f64, f64, f64)>)>;

/// `strategy,seed,judged,best_accuracy,hypervolume`, one row per candidate
/// judged of every curve (best accuracy empty before a feasible trial).
pub fn csv(curves: &[QualityCurve]) -> String {
    let mut out = String::from("strategy,seed,judged,best_accuracy,hypervolume\n");
    for c in curves {
        for (i, (a, h)) in c.best_accuracy.iter().zip(&c.hypervolume).enumerate() {
            let a = a.map_or(String::new(), |a| format!("{a:.4}"));
            let _ = writeln!(out, "{},{},{},{a},{h:.5}", c.strategy, c.seed, i + 1);
        }
    }
    out
}

/// Reads back what [`csv`] wrote (a committed benchmark's curves, so a run whose journal
/// is gone still counts), curves in first-seen order. The figures are as rounded by
/// [`csv`] (accuracy to 4 decimals, hypervolume to 5).
///
/// Errors: the header, a row without five fields, a number that does not parse, or a
/// row whose `judged` does not follow its curve's previous row (the message names the
/// line).
pub fn parse_csv(text: &str) -> Result<Vec<QualityCurve>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, "strategy,seed,judged,best_accuracy,hypervolume")) => {}
        _ => return Err("line 1: not a quality curves header".into()),
    }
    let mut curves: Vec<QualityCurve> = Vec::new();
    for (i, line) in lines {
        let bad = |what: &str| format!("line {}: {what}: `{line}`", i + 1);
        let f: Vec<&str> = line.split(',').collect();
        let [strategy, seed, judged, acc, hv] = f[..] else {
            return Err(bad("expected 5 fields"));
        };
        let seed: u64 = seed.parse().map_err(|_| bad("seed"))?;
        let judged: usize = judged.parse().map_err(|_| bad("judged"))?;
        let acc = match acc {
            "" => None,
            a => Some(a.parse::<f64>().map_err(|_| bad("best_accuracy"))?),
        };
        let hv: f64 = hv.parse().map_err(|_| bad("hypervolume"))?;
        let found = curves
            .iter()
            .position(|c| c.strategy == strategy && c.seed == seed);
        let k = found.unwrap_or_else(|| {
            curves.push(QualityCurve {
                strategy: strategy.into(),
                seed,
                best_accuracy: Vec::new(),
                hypervolume: Vec::new(),
            });
            curves.len() - 1
        });
        let curve = &mut curves[k];
        if judged != curve.hypervolume.len() + 1 {
            return Err(bad("candidates judged out of order"));
        }
        curve.best_accuracy.push(acc);
        curve.hypervolume.push(hv);
    }
    Ok(curves)
}

/// Per strategy (in first-seen order) and candidates judged: (median, min,
/// max) over the seeds whose run got that far, of `value` (a best accuracy
/// before any feasible trial counts as 0).
pub fn spread(curves: &[QualityCurve], value: impl Fn(&QualityCurve, usize) -> f64) -> Spread {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Vec<&QualityCurve>> = BTreeMap::new();
    for c in curves {
        if !order.contains(&c.strategy) {
            order.push(c.strategy.clone());
        }
        by.entry(c.strategy.clone()).or_default().push(c);
    }
    order
        .into_iter()
        .map(|s| {
            let runs = &by[&s];
            let len = runs.iter().map(|c| c.hypervolume.len()).max().unwrap_or(0);
            let rows = (0..len)
                .map(|i| {
                    let mut v: Vec<f64> = runs
                        .iter()
                        .filter(|c| i < c.hypervolume.len())
                        .map(|c| value(c, i))
                        .collect();
                    v.sort_by(f64::total_cmp);
                    let median = if v.len() % 2 == 1 {
                        v[v.len() / 2]
                    } else {
                        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
                    };
                    (median, v[0], v[v.len() - 1])
                })
                .collect();
            (s, rows)
        })
        .collect()
}

/// The best-accuracy value [`spread`] reads (0 before a feasible trial).
pub fn accuracy_at(c: &QualityCurve, i: usize) -> f64 {
    c.best_accuracy[i].unwrap_or(0.0)
}

/// The hypervolume value [`spread`] reads.
pub fn hypervolume_at(c: &QualityCurve, i: usize) -> f64 {
    c.hypervolume[i]
}

/// One strategy's run against random search's run of the same seed.
#[derive(Debug, Clone, PartialEq)]
pub struct VersusRandom {
    /// The strategy's name.
    pub strategy: String,
    /// The seed both runs used.
    pub seed: u64,
    /// Candidates the strategy judged before its best feasible accuracy
    /// reached random search's final one (within the shorter run's length);
    /// `None`: not reached.
    pub to_reach: Option<usize>,
    /// The shorter run's length (candidates judged).
    pub budget: usize,
    /// The strategy's final hypervolume minus random search's, at that length.
    pub hypervolume_gain: f64,
}

/// Every non-random run against the `random` run of its seed (the issue's
/// goals: evolution reaches random's final best in at most half the
/// candidates, median over seeds; the best strategy's final hypervolume
/// beats random's in most seeds). Runs without a random twin are skipped.
pub fn versus_random(curves: &[QualityCurve]) -> Vec<VersusRandom> {
    let mut out = Vec::new();
    for c in curves.iter().filter(|c| c.strategy != "random") {
        let Some(r) = curves
            .iter()
            .find(|r| r.strategy == "random" && r.seed == c.seed)
        else {
            continue;
        };
        let budget = c.hypervolume.len().min(r.hypervolume.len());
        if budget == 0 {
            continue;
        }
        let goal = r.best_accuracy[budget - 1];
        let to_reach = goal.and_then(|g| {
            c.best_accuracy[..budget]
                .iter()
                .position(|b| b.is_some_and(|b| b >= g))
                .map(|i| i + 1)
        });
        out.push(VersusRandom {
            strategy: c.strategy.clone(),
            seed: c.seed,
            to_reach,
            budget,
            hypervolume_gain: c.hypervolume[budget - 1] - r.hypervolume[budget - 1],
        });
    }
    out
}

const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// An SVG (640 x 400 px) of [`spread`]'s rows: per strategy the median as a
/// line and the min-max band shaded, x candidates judged, y `label` between
/// the smallest minimum and the largest maximum.
pub fn svg(rows: &Spread, label: &str) -> String {
    let (w, h, left, bottom, top, right) = (640.0, 400.0, 60.0, 40.0, 20.0, 130.0);
    let n = rows.iter().map(|(_, r)| r.len()).max().unwrap_or(1).max(2);
    let all = rows
        .iter()
        .flat_map(|(_, r)| r.iter().flat_map(|t| [t.1, t.2]));
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (lo, hi) = if lo < hi { (lo, hi) } else { (0.0, 1.0) };
    let x = |i: usize| left + (w - left - right) * i as f64 / (n - 1) as f64;
    let y = |v: f64| h - bottom - (h - bottom - top) * (v - lo) / (hi - lo);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    for k in 0..=4 {
        let v = lo + (hi - lo) * f64::from(k) / 4.0;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.3}</text>",
            left - 4.0,
            y(v) + 4.0
        );
        let i = (n - 1) * k as usize / 4;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(i),
            h - bottom + 16.0,
            i + 1
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">candidates judged</text>\n\
         <text x=\"14\" y=\"{top}\" transform=\"rotate(-90 14 {top})\" text-anchor=\"end\">{label}</text>",
        left + (w - left - right) / 2.0,
        h - 4.0
    );
    for (k, (name, r)) in rows.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let upper: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{:.1},{:.1}", x(i), y(t.2)))
            .collect();
        let lower: Vec<String> = r
            .iter()
            .enumerate()
            .rev()
            .map(|(i, t)| format!("{:.1},{:.1}", x(i), y(t.1)))
            .collect();
        let median: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{:.1},{:.1}", x(i), y(t.0)))
            .collect();
        let _ = writeln!(
            out,
            "<polygon points=\"{} {}\" fill=\"{colour}\" fill-opacity=\"0.12\" stroke=\"none\"/>\n\
             <polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\n\
             <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>",
            upper.join(" "),
            lower.join(" "),
            median.join(" "),
            w - right + 10.0,
            top + 16.0 * (k as f64 + 1.0)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Evaluation, Metric, Source, Unit};

    fn trial(status: Status, acc: f64, lat: f64) -> TrialRecord {
        let mut e = Evaluation::default();
        e.metrics.insert(
            keys::ACCURACY.into(),
            Metric::new(acc, Unit::Fraction, Source::Host),
        );
        e.metrics.insert(
            keys::LATENCY_MS.into(),
            Metric::new(lat, Unit::Milliseconds, Source::Predicted),
        );
        TrialRecord {
            number: 0,
            genome_id: String::new(),
            genome: String::new(),
            origin: String::new(),
            status,
            evaluation: Some(e),
            error: None,
            created_at: 0.0,
            started_at: None,
            finished_at: None,
            attempts: 0,
        }
    }

    #[test]
    fn curves_count_judged_trials_and_feasible_points() {
        let trials = [
            trial(Status::Infeasible, 0.9, 30.0),
            trial(Status::Done, 0.5, 5.0),
            trial(Status::Done, 0.8, 6.0),
            trial(Status::Done, 0.6, 8.0),
        ];
        let c = QualityCurve::from_trials("tpe", 1, &trials, 10.0);
        assert_eq!(c.best_accuracy, vec![None, Some(0.5), Some(0.8), Some(0.8)]);
        // 0.5 x 0.5 + 0.3 x 0.4 = 0.37; the last point is dominated.
        assert!((c.hypervolume[2] - 0.37).abs() < 1e-12 && c.hypervolume[3] == c.hypervolume[2]);
        assert!(csv(std::slice::from_ref(&c)).contains("tpe,1,3,0.8000,0.37000\n"));
        let rows = spread(&[c], accuracy_at);
        assert_eq!(rows[0].1[0], (0.0, 0.0, 0.0));
        assert!(svg(&rows, "best accuracy").contains("<polyline"));
        let mut random = QualityCurve::from_trials("random", 1, &trials[..2], 10.0);
        random.strategy = "random".into();
        let tpe = QualityCurve::from_trials("tpe", 1, &trials, 10.0);
        let v = versus_random(&[random, tpe]);
        // random's best at 2 candidates is 0.5: tpe had it at its second.
        assert_eq!((v[0].to_reach, v[0].budget), (Some(2), 2));
    }

    #[test]
    fn curves_read_back_as_written() {
        let t = [
            trial(Status::Failed, 0.5, 1.0),
            trial(Status::Done, 0.8125, 5.0),
            trial(Status::Done, 0.75, 2.0),
        ];
        let curves = vec![
            QualityCurve::from_trials("random", 0, &t, 10.0),
            QualityCurve::from_trials("tpe", 3, &t[1..], 10.0),
        ];
        let back = parse_csv(&csv(&curves)).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].strategy, "tpe");
        assert_eq!(back[1].seed, 3);
        assert_eq!(
            back[0].best_accuracy,
            vec![None, Some(0.8125), Some(0.8125)]
        );
        for (b, c) in back.iter().zip(&curves) {
            for (x, y) in b.hypervolume.iter().zip(&c.hypervolume) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
        let gap = "strategy,seed,judged,best_accuracy,hypervolume\nrandom,0,2,,0.1\n";
        assert!(parse_csv(gap).unwrap_err().contains("line 2"));
        assert!(parse_csv("judged\n").is_err());
    }
}

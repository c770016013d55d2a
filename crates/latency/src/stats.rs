//! Agreement between predictions and measurements: the per-network constant's fit and
//! the check's figures (share within 5% and 10%, largest error, Kendall's tau-b).

use std::cmp::Ordering;

use kiln_metric::{Metric, Source, Unit};

use crate::table::{Agreement, Overhead};

/// Fits `measured = scale x sum + constant + per_layer x layers` by least squares over
/// the fit networks (`sums` of their entries, their layer counts, their measurements, in
/// `unit`: fuel or us), with the largest relative error left on them. With fewer networks
/// than the terms need, or terms too alike to tell apart, the fit drops `per_layer`,
/// then `scale` (1), keeping at least the constant (the mean residual); when that lone
/// constant comes out negative, the fit is a ratio instead (`scale` = mean measured / mean
/// sum, constant 0), so no prediction goes negative. `None` when there is nothing to fit
/// on or a measurement is not positive.
pub fn fit_overhead(
    sums: &[f64],
    layers: &[usize],
    measured: &[f64],
    unit: Unit,
) -> Option<Overhead> {
    let n = sums.len();
    if n == 0 || layers.len() != n || measured.len() != n || measured.iter().any(|m| *m <= 0.0) {
        return None;
    }
    let l: Vec<f64> = layers.iter().map(|&x| x as f64).collect();
    // (scale, per_layer) from the centred normal equations, then the constant
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n as f64;
    let (ms, ml, mm) = (mean(sums), mean(&l), mean(measured));
    let dot = |a: &[f64], ma: f64, b: &[f64], mb: f64| -> f64 {
        a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum()
    };
    let (sss, sll, ssl) = (
        dot(sums, ms, sums, ms),
        dot(&l, ml, &l, ml),
        dot(sums, ms, &l, ml),
    );
    let (ssy, sly) = (dot(sums, ms, measured, mm), dot(&l, ml, measured, mm));
    let det = sss * sll - ssl * ssl;
    let tell_apart = |v: f64, scale: f64| v > 1e-9 * scale.max(f64::MIN_POSITIVE);
    let (scale, per_layer, lone) = if n >= 4 && tell_apart(det, sss * sll) {
        (
            (ssy * sll - sly * ssl) / det,
            (sly * sss - ssy * ssl) / det,
            false,
        )
    } else if n >= 3 && tell_apart(sss, ms * ms) {
        (ssy / sss, 0.0, false)
    } else {
        (1.0, 0.0, true)
    };
    let c = mm - scale * ms - per_layer * ml;
    // With the constant the only free term, a negative one (the layers measured alone cost more than
    // the whole network: noise, or call overhead counted per layer) can make a small
    // network's prediction negative. A ratio through the origin stays positive.
    let (scale, c) = if lone && c < 0.0 && ms > 0.0 {
        (mm / ms, 0.0)
    } else {
        (scale, c)
    };
    let predicted: Vec<f64> = sums
        .iter()
        .zip(&l)
        .map(|(s, x)| scale * s + per_layer * x + c)
        .collect();
    Some(Overhead {
        cost: Metric::new(c, unit, Source::Predicted),
        scale,
        per_layer,
        fitted_on: n,
        max_relative_error: relative_errors(&predicted, measured)
            .into_iter()
            .fold(0.0, f64::max),
    })
}

/// |predicted - measured| / measured, per pair.
pub fn relative_errors(predicted: &[f64], measured: &[f64]) -> Vec<f64> {
    predicted
        .iter()
        .zip(measured)
        .map(|(p, m)| (p - m).abs() / m.abs().max(f64::MIN_POSITIVE))
        .collect()
}

/// Kendall's tau-b between two rankings (ties counted as tau-b does), from the
/// `kendalls` crate; `None` for fewer than two pairs or a constant series.
pub fn kendall_tau(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() < 2 || a.len() != b.len() {
        return None;
    }
    kendalls::tau_b_with_comparator(a, b, |x: &f64, y: &f64| {
        x.partial_cmp(y).unwrap_or(Ordering::Equal)
    })
    .ok()
    .map(|(tau, _significance)| tau)
    .filter(|t| t.is_finite())
}

/// The check's figures for `predicted` against `measured` (same order, same unit).
/// `None` for fewer than two pairs.
pub fn agreement(predicted: &[f64], measured: &[f64], seed: u64, date: &str) -> Option<Agreement> {
    let tau = kendall_tau(predicted, measured)?;
    let errors = relative_errors(predicted, measured);
    let n = errors.len() as f64;
    let share = |limit: f64| errors.iter().filter(|e| **e <= limit).count() as f64 / n;
    Some(Agreement {
        samples: errors.len(),
        seed,
        within_5: share(0.05),
        within_10: share(0.10),
        max_relative_error: errors.iter().copied().fold(0.0, f64::max),
        kendall_tau: tau,
        date: date.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_least_squares_and_the_constant_alone_for_two_networks() {
        // exactly 0.9 x sum + 50 (three networks: no per-layer term)
        let o = fit_overhead(
            &[100.0, 200.0, 400.0],
            &[3, 4, 5],
            &[140.0, 230.0, 410.0],
            Unit::Fuel,
        )
        .unwrap();
        assert!((o.scale - 0.9).abs() < 1e-12 && (o.cost.value - 50.0).abs() < 1e-9);
        assert_eq!(o.per_layer, 0.0);
        assert!(o.max_relative_error < 1e-12);
        // exactly 1.1 x sum - 7 x layers + 30
        let sums = [100.0, 220.0, 400.0, 90.0, 300.0];
        let layers = [3, 5, 4, 6, 8];
        let measured: Vec<f64> = sums
            .iter()
            .zip(layers)
            .map(|(s, l)| 1.1 * s - 7.0 * l as f64 + 30.0)
            .collect();
        let o = fit_overhead(&sums, &layers, &measured, Unit::Fuel).unwrap();
        assert!((o.scale - 1.1).abs() < 1e-9, "{o:?}");
        assert!(
            (o.per_layer + 7.0).abs() < 1e-6 && (o.cost.value - 30.0).abs() < 1e-6,
            "{o:?}"
        );
        let o = fit_overhead(&[100.0, 200.0], &[3, 3], &[110.0, 214.0], Unit::Fuel).unwrap();
        assert_eq!(o.scale, 1.0);
        assert_eq!(o.cost.value, 12.0);
        assert_eq!(o.cost.source, Source::Predicted);
        // 112 vs 110 is the worst: 2/110
        assert!((o.max_relative_error - 2.0 / 110.0).abs() < 1e-12);
        // the layers alone cost more than the networks: a ratio, never a negative constant
        let o = fit_overhead(
            &[1700.0, 600.0],
            &[9, 5],
            &[1385.0, 470.0],
            Unit::Microseconds,
        )
        .unwrap();
        assert_eq!(o.cost.value, 0.0);
        assert!((o.scale - 1855.0 / 2300.0).abs() < 1e-12, "{o:?}");
        assert!(o.scale * 10.0 + o.cost.value > 0.0);
        // three networks whose sums cannot be told apart: the same
        let o = fit_overhead(
            &[1700.0; 3],
            &[9; 3],
            &[1385.0, 1390.0, 1380.0],
            Unit::Microseconds,
        )
        .unwrap();
        assert_eq!(o.cost.value, 0.0);
        assert!((o.scale - 1385.0 / 1700.0).abs() < 1e-12, "{o:?}");
        assert!(fit_overhead(&[], &[], &[], Unit::Fuel).is_none());
        assert!(fit_overhead(&[1.0], &[1], &[0.0], Unit::Fuel).is_none());
    }

    #[test]
    fn kendall_tau_of_known_rankings() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(kendall_tau(&a, &[10.0, 20.0, 30.0, 40.0]), Some(1.0));
        assert_eq!(kendall_tau(&a, &[4.0, 3.0, 2.0, 1.0]), Some(-1.0));
        // one discordant pair of six: (5 - 1) / 6
        let t = kendall_tau(&a, &[1.0, 2.0, 4.0, 3.0]).unwrap();
        assert!((t - 4.0 / 6.0).abs() < 1e-12, "{t}");
        assert_eq!(kendall_tau(&[1.0], &[1.0]), None);
    }

    #[test]
    fn agreement_shares() {
        let g = agreement(
            &[100.0, 104.0, 120.0],
            &[100.0, 100.0, 100.0],
            7,
            "2026-11-30",
        );
        // measured is constant: tau is undefined
        assert!(g.is_none());
        let g = agreement(&[100.0, 209.0, 330.0], &[100.0, 200.0, 300.0], 7, "d").unwrap();
        assert_eq!(g.samples, 3);
        assert!((g.within_5 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(g.within_10, 1.0);
        assert!((g.max_relative_error - 0.1).abs() < 1e-12);
        assert_eq!(g.kendall_tau, 1.0);
    }
}

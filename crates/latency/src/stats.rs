//! Agreement between predictions and measurements: the per-network constant's fit and
//! the check's figures (share within 5% and 10%, largest error, Kendall's tau-b).

use std::cmp::Ordering;

use kiln_metric::{Metric, Source, Unit};

use crate::table::{Agreement, Overhead};

/// Fits the line `measured = scale x sum + constant` by least squares over the fit
/// networks (in `unit`: fuel or us), with the largest relative error left on them. With
/// fewer than three networks, or sums too alike to fix a slope, the scale is 1 and the
/// constant the mean residual. `None` when there is nothing to fit on or a measurement
/// is not positive.
pub fn fit_overhead(sums: &[f64], measured: &[f64], unit: Unit) -> Option<Overhead> {
    if sums.is_empty() || sums.len() != measured.len() || measured.iter().any(|m| *m <= 0.0) {
        return None;
    }
    let n = sums.len() as f64;
    let mean_s = sums.iter().sum::<f64>() / n;
    let mean_m = measured.iter().sum::<f64>() / n;
    let sxx: f64 = sums.iter().map(|s| (s - mean_s).powi(2)).sum();
    let sxy: f64 = sums
        .iter()
        .zip(measured)
        .map(|(s, m)| (s - mean_s) * (m - mean_m))
        .sum();
    let spread = sxx.sqrt() / mean_s.abs().max(f64::MIN_POSITIVE);
    let scale = if sums.len() >= 3 && spread > 1e-3 {
        sxy / sxx
    } else {
        1.0
    };
    let c = mean_m - scale * mean_s;
    let predicted: Vec<f64> = sums.iter().map(|s| scale * s + c).collect();
    Some(Overhead {
        cost: Metric::new(c, unit, Source::Predicted),
        scale,
        fitted_on: sums.len(),
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
        // exactly 0.9 x sum + 50
        let o = fit_overhead(&[100.0, 200.0, 400.0], &[140.0, 230.0, 410.0], Unit::Fuel).unwrap();
        assert!((o.scale - 0.9).abs() < 1e-12 && (o.cost.value - 50.0).abs() < 1e-9);
        assert!(o.max_relative_error < 1e-12);
        let o = fit_overhead(&[100.0, 200.0], &[110.0, 214.0], Unit::Fuel).unwrap();
        assert_eq!(o.scale, 1.0);
        assert_eq!(o.cost.value, 12.0);
        assert_eq!(o.cost.source, Source::Predicted);
        // 112 vs 110 is the worst: 2/110
        assert!((o.max_relative_error - 2.0 / 110.0).abs() < 1e-12);
        assert!(fit_overhead(&[], &[], Unit::Fuel).is_none());
        assert!(fit_overhead(&[1.0], &[0.0], Unit::Fuel).is_none());
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

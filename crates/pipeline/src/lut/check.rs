//! `lut check`: sampled genomes built and measured whole on the table's path, against
//! the table's prediction and the analytic MAC bound.

use std::time::Instant;

use kiln_latency::{Agreement, LatencyTable, agreement, predict};
use kiln_space::Precision;
use serde::Serialize;

use super::{LutRequest, MeasurePath, invalid, measure_networks, sample_networks, save};
use crate::PipelineError;

/// One sampled genome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckRow {
    /// The genome's id.
    pub genome: String,
    /// The precision it is built in (its table entries and line are that precision's).
    pub precision: Precision,
    /// Its multiply-accumulates (analytic).
    pub macs: u64,
    /// The analytic lower bound kiln-search's precheck uses (each MAC at least one
    /// fuel through the profile's sim model), ms, `predicted`; `sim` tables only.
    pub mac_bound_ms: Option<f64>,
    /// The table's prediction, ms, `predicted`.
    pub predicted_ms: f64,
    /// The whole network built alone (as the search builds it) and measured on the
    /// table's path, ms (`sim` or `host`).
    pub measured_ms: f64,
    /// (predicted - measured) / measured.
    pub relative_error: f64,
}

/// How the three judges of latency compare at one limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectionAt {
    /// The limit, ms.
    pub limit_ms: f64,
    /// Genomes the MAC bound rejects (bound > limit).
    pub by_mac_bound: usize,
    /// Genomes the predictor rejects (predicted / (1 + margin of its precision) > limit).
    pub by_prediction: usize,
    /// Genomes over the limit as measured.
    pub measured_over: usize,
    /// Genomes the predictor rejects that measured within the limit (should be 0).
    pub rejected_but_feasible: usize,
}

/// What `lut check` found; written to JSON for the README.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// The device profile.
    pub target: String,
    /// Where the networks were measured (`sim`, `host` or `device`).
    pub source: String,
    /// `device`: the device, as the table names it (`host:port`, `adb:SERIAL`).
    pub device: Option<String>,
    /// `device`: the program the device ran the builds under; `qemu-aarch64` (any
    /// emulator) means the figures are emulated, not the board's latency.
    pub runner: Option<String>,
    /// The power mode latencies are given for.
    pub mode: String,
    /// Per genome, in sampling order.
    pub rows: Vec<CheckRow>,
    /// Share within 5% / 10%, largest error, Kendall's tau, over every sampled genome.
    pub agreement: Agreement,
    /// The margin the search rejects an f32 network with after this check
    /// ([`LatencyTable::margin_of`]: this check's f32 genomes, an earlier check's when it
    /// sampled fewer than two).
    pub margin: f64,
    /// The same for int8 networks, when the table has an int8 line.
    pub int8_margin: Option<f64>,
    /// Mean time of one prediction on this machine, microseconds (`host`).
    pub predict_us: f64,
    /// At the target's own p50 limit, if it has one.
    pub at_target_limit: Option<RejectionAt>,
    /// At the sample's median measured latency (a limit that binds half of them).
    pub at_median: RejectionAt,
}

/// Refuses fewer than 2 samples for [`check_table`]: one network ranks nothing (two rank
/// one pair; the default, 50, ranks 1,225). A caller that builds the table first checks
/// this before.
///
/// Errors: [`PipelineError::Invalid`] naming `--samples`.
pub fn check_samples(samples: usize) -> Result<(), PipelineError> {
    if samples < 2 {
        return Err(PipelineError::Invalid(format!(
            "--samples {samples}: the check ranks the table's predictions against whole \
             networks measured, which needs at least 2 (the default is 50)"
        )));
    }
    Ok(())
}

/// Samples `samples` genomes with `seed` (use a seed other than the build's, whose
/// networks fitted the constant), measures them whole, compares with the table, and
/// writes the agreement of each precision sampled (and so the search's margins) into the
/// table file.
///
/// Errors: as [`super::build_table`]; a table without a fitted constant; fewer than 2
/// samples ([`check_samples`]).
pub fn check_table(
    req: &LutRequest,
    table: &mut LatencyTable,
    samples: usize,
    seed: u64,
    date: &str,
) -> Result<CheckReport, PipelineError> {
    check_samples(samples)?;
    let mode = req
        .target
        .modes_within_budget()
        .first()
        .map(|m| (m.name.clone(), m.clock_mhz))
        .unwrap_or_default();
    let nets = sample_networks(&req.space, req.input, samples, seed)?;
    let costs = match &req.path {
        MeasurePath::Device(on) => {
            let restore = on.begin()?;
            let costs = measure_networks(&nets, &req.work_dir, &req.path);
            on.end(restore);
            costs?
        }
        path => measure_networks(&nets, &req.work_dir, path)?,
    };
    let started = Instant::now();
    let mut predicted = Vec::with_capacity(nets.len());
    for (_, arch, _) in &nets {
        predicted.push(predict(arch, table, &mode.0).map_err(invalid)?.value);
    }
    let predict_us = started.elapsed().as_secs_f64() * 1e6 / nets.len() as f64;
    let to_ms = |cost: f64| match req.path {
        MeasurePath::Sim => req.target.sim.latency_ms(cost.round() as u64, mode.1),
        _ => cost / 1e3,
    };
    let measured: Vec<f64> = costs.iter().map(|&c| to_ms(c)).collect();
    let found = agreement(&predicted, &measured, seed, date).ok_or_else(|| {
        PipelineError::Invalid("the sampled genomes all measured the same: nothing to rank".into())
    })?;
    let of = |want: Precision| {
        let pick = |v: &[f64]| -> Vec<f64> {
            (nets.iter().zip(v))
                .filter(|((_, arch, _), _)| arch.precision == want)
                .map(|(_, &x)| x)
                .collect()
        };
        agreement(&pick(&predicted), &pick(&measured), seed, date)
    };
    let (f32_agreement, int8_agreement) = (of(Precision::F32), of(Precision::Int8));
    let rows: Vec<CheckRow> = nets
        .iter()
        .zip(predicted.iter().zip(&measured))
        .map(|((g, arch, _), (&p, &m))| {
            let macs = arch.totals().macs;
            CheckRow {
                genome: g.id(),
                precision: arch.precision,
                macs,
                mac_bound_ms: matches!(req.path, MeasurePath::Sim)
                    .then(|| req.target.sim.latency_ms(macs, mode.1)),
                predicted_ms: p,
                measured_ms: m,
                relative_error: (p - m) / m,
            }
        })
        .collect();
    // each precision sampled (two genomes or more) replaces its own agreement, and one
    // not sampled keeps the last check's; a check that could split neither stores all
    let split = f32_agreement.is_some() || int8_agreement.is_some();
    if let Some(a) = f32_agreement.or((!split).then_some(found.clone())) {
        table.agreement = Some(a);
    }
    if let Some(a) = int8_agreement {
        table.int8_agreement = Some(a);
    }
    // the margins the search rejects with from now on (the report judges its rows by them;
    // an int8 row was predicted, so the table has an int8 line and a margin for it)
    let margin_of = |p| table.margin_of(p).unwrap_or(found.max_relative_error);
    let (margin, int8_margin) = (margin_of(Precision::F32), table.margin_of(Precision::Int8));
    let rejects =
        |r: &CheckRow, limit_ms: f64| r.predicted_ms / (1.0 + margin_of(r.precision)) > limit_ms;
    let at = |limit_ms: f64| RejectionAt {
        limit_ms,
        by_mac_bound: rows
            .iter()
            .filter(|r| r.mac_bound_ms.is_some_and(|b| b > limit_ms))
            .count(),
        by_prediction: rows.iter().filter(|r| rejects(r, limit_ms)).count(),
        measured_over: rows.iter().filter(|r| r.measured_ms > limit_ms).count(),
        rejected_but_feasible: rows
            .iter()
            .filter(|r| rejects(r, limit_ms) && r.measured_ms <= limit_ms)
            .count(),
    };
    let mut sorted = measured.clone();
    sorted.sort_by(f64::total_cmp);
    let report = CheckReport {
        target: req.target.name.clone(),
        source: req.path.source().to_string(),
        device: table.identity.device.clone(),
        runner: table.identity.runner.clone(),
        mode: mode.0,
        at_target_limit: req.target.constraints.max_latency_p50_ms.map(at),
        at_median: at(sorted[sorted.len() / 2]),
        rows,
        agreement: found.clone(),
        margin,
        int8_margin,
        predict_us,
    };
    save(table, &req.table_path)?;
    Ok(report)
}

impl CheckReport {
    /// The report as the terminal shows it: one row per genome (MAC bound, prediction,
    /// measurement, error), then the agreement and the rejection counts.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let src = &self.source;
        let _ = writeln!(
            s,
            "{:<18} {:>12} {:>16} {:>16} {:>16} {:>8}",
            "genome",
            "MACs",
            "MAC bound ms",
            "predicted ms",
            format!("{src} ms"),
            "error"
        );
        for r in &self.rows {
            let bound = r.mac_bound_ms.map_or("-".into(), |b| format!("{b:.4}"));
            let _ = writeln!(
                s,
                "{:<18} {:>12} {:>16} {:>16.4} {:>16.4} {:>7.2}%",
                r.genome,
                r.macs,
                bound,
                r.predicted_ms,
                r.measured_ms,
                100.0 * r.relative_error
            );
        }
        if let Some(device) = &self.device {
            let how = match &self.runner {
                Some(r) if r.contains("qemu") => {
                    format!(" under {r}: emulated, not the board's latency")
                }
                Some(r) => format!(" under {r}"),
                None => String::new(),
            };
            let _ = writeln!(s, "measured on the device {device}{how}");
        }
        let a = &self.agreement;
        let _ = writeln!(
            s,
            "{} genomes, {} at power mode {}: {:.0}% within 5%, {:.0}% within 10%, largest error \
             {:.2}%, Kendall's tau {:.3} (predicted vs {src}); one prediction {:.1} us (host)",
            a.samples,
            self.target,
            self.mode,
            100.0 * a.within_5,
            100.0 * a.within_10,
            100.0 * a.max_relative_error,
            a.kendall_tau,
            self.predict_us
        );
        let margin = match self.int8_margin {
            Some(q) => format!("{:.2}% f32, {:.2}% int8", 100.0 * self.margin, 100.0 * q),
            None => format!("{:.2}%", 100.0 * self.margin),
        };
        for (what, r) in [
            ("the target's limit", self.at_target_limit.as_ref()),
            ("the median", Some(&self.at_median)),
        ] {
            if let Some(r) = r {
                let _ = writeln!(
                    s,
                    "at {what} ({:.4} ms): MAC bound rejects {}, the table rejects {} (margin \
                     {margin}), {} measure over it; rejected but feasible: {}",
                    r.limit_ms,
                    r.by_mac_bound,
                    r.by_prediction,
                    r.measured_over,
                    r.rejected_but_feasible
                );
            }
        }
        s
    }
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the system clock (the civil-from-days
/// conversion of the proleptic Gregorian calendar).
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn today_is_a_plausible_date() {
        let d = super::today();
        assert_eq!(d.len(), 10, "{d}");
        assert!(d.as_str() >= "2026-01-01", "{d}");
    }
}

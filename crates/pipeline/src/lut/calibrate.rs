//! Fitting a profile's sim model to this machine's measurements (`lut check
//! --calibrate`): the same sampled networks run under the wasm sim (fuel) and natively
//! (wall clock), and `cycles_per_fuel` becomes the median ratio.

use std::path::Path;

use kiln_latency::{kendall_tau, relative_errors};
use kiln_metric::Source;
use kiln_target::Calibration;

use super::{LutRequest, MeasurePath, measure_networks, sample_networks};
use crate::PipelineError;

/// Measures `samples` networks (sampled with `seed`) as fuel and as native wall clock,
/// fits `cycles_per_fuel` = median of measured ms x clock (MHz) x 1000 / fuel at the
/// fastest power mode within budget, and writes the calibration beside `profile`
/// (`<stem>.calibration.json`, atomically).
///
/// Errors: a target whose programs do not run natively here (its calibration needs the
/// device); building or measuring a network.
pub fn calibrate(
    req: &LutRequest,
    profile: &Path,
    samples: usize,
    seed: u64,
    date: &str,
) -> Result<Calibration, PipelineError> {
    if !req.target.triple.is_host() {
        return Err(PipelineError::Invalid(format!(
            "--calibrate: {} programs ({}) do not run natively here, so only its device can \
             calibrate it (device calibration is not built yet)",
            req.target.name, req.target.triple
        )));
    }
    let mode = req
        .target
        .modes_within_budget()
        .first()
        .map(|m| (m.name.clone(), m.clock_mhz));
    let (mode, clock) = mode.unwrap_or_default();
    let nets = sample_networks(&req.space, req.input, samples.max(2), seed)?;
    let fuel: Vec<f64> = measure_networks(&nets, &req.work_dir, &MeasurePath::Sim)?;
    let host_path = MeasurePath::Host {
        warmup: 5,
        runs: 30,
    };
    let host_ms: Vec<f64> = measure_networks(&nets, &req.work_dir, &host_path)?
        .iter()
        .map(|us| us / 1e3)
        .collect();
    let mut ratios: Vec<f64> = fuel
        .iter()
        .zip(&host_ms)
        .map(|(f, t)| t * clock * 1e3 / f)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let cycles_per_fuel = ratios[ratios.len() / 2];
    let sim_ms: Vec<f64> = fuel
        .iter()
        .map(|f| f * cycles_per_fuel / (clock * 1e3))
        .collect();
    let mut errors = relative_errors(&sim_ms, &host_ms);
    errors.sort_by(f64::total_cmp);
    let assumed = req
        .target
        .sim
        .calibration
        .as_ref()
        .map_or(req.target.sim.cycles_per_fuel, |c| {
            c.assumed_cycles_per_fuel
        });
    let calibration = Calibration {
        cycles_per_fuel,
        assumed_cycles_per_fuel: assumed,
        measured_on: Source::Host,
        power_mode: mode,
        samples: nets.len(),
        median_relative_error: errors[errors.len() / 2],
        max_relative_error: errors.last().copied().unwrap_or(0.0),
        kendall_tau: kendall_tau(&fuel, &host_ms).unwrap_or(0.0),
        date: date.into(),
    };
    crate::files::write(
        &Calibration::path_for(profile),
        calibration.to_json().as_bytes(),
    )?;
    Ok(calibration)
}

/// The line `lut check --calibrate` prints: the fitted `cycles_per_fuel` of `target`,
/// what it was, its errors, and the file it went to (beside `profile`).
pub fn calibration_text(c: &Calibration, target: &str, profile: &Path) -> String {
    format!(
        "calibrated {target}: cycles_per_fuel {:.4} (was {}), fitted on {} networks run \
         natively (host): median error {:.1}%, largest {:.1}%, Kendall's tau of fuel vs host \
         time {:.3}; written to {}",
        c.cycles_per_fuel,
        c.assumed_cycles_per_fuel,
        c.samples,
        100.0 * c.median_relative_error,
        100.0 * c.max_relative_error,
        c.kendall_tau,
        Calibration::path_for(profile).display()
    )
}

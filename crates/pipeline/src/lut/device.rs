//! Tables measured on the device itself (`lut build --source device`), through the
//! search's device path (kiln-deploy): a batch's bundle, built for the profile's triple,
//! is installed once (uploaded under a temporary name, sha256 checked, renamed into
//! place) and each member is timed there on its own, whole and its I/O alone; whole
//! networks (the fit, `lut check`) are built alone and flashed as a search candidate is,
//! their output checked against the wasm simulation's. Everything goes into the
//! profile's kiln folder's `lut/` subfolder, so a flashed model is left alone.

use std::path::Path;

use kiln_codegen::program::BenchLine;
use kiln_deploy::{Bundle, DeployError, Device, Transport};
use kiln_measure::host::encode_f32_le;
use kiln_measure::report::fixed_input;
use kiln_measure::sim::{SimLimits, SimModule};
use kiln_target::{Target, Triple};

use super::{MeasurePath, MemberCost};
use crate::PipelineError;
use crate::device::{DeviceFlags, SearchDeviceChoice};

/// A device layers are measured on, and how.
#[derive(Debug, Clone)]
pub struct OnDevice {
    /// The device (its folder is `<profile's kiln folder>/lut`), the warm-up, runs and
    /// runner of each timing, and the power mode held while measuring.
    pub choice: SearchDeviceChoice,
    /// The profile's triple: what the bundles and networks are built for.
    pub triple: Triple,
}

/// The `device` measurement path for `target`, reached as `flags` say, each layer
/// timed `runs` times after `warmup` untimed runs.
///
/// Errors: flags that do not fit the profile's deploy method (naming the flag), the
/// simulated device, `runs` of 0.
pub fn device_path(
    target: &Target,
    flags: &DeviceFlags<'_>,
    warmup: u32,
    runs: u32,
) -> Result<MeasurePath, PipelineError> {
    let mut choice = SearchDeviceChoice::new(target, flags, warmup.into(), runs.into())?;
    if crate::build::build_target(target.triple).is_none() || target.triple.is_wasm() {
        return Err(PipelineError::Invalid(format!(
            "--source device: kiln cannot build {} programs for target {}",
            target.triple, target.name
        )));
    }
    choice.device.dir = format!("{}/lut", choice.device.dir.trim_end_matches('/'));
    Ok(MeasurePath::Device(Box::new(OnDevice {
        choice,
        triple: target.triple,
    })))
}

/// The device as a table names it: `host:port` (no user, key or option) or
/// `adb:SERIAL`.
pub fn device_name(device: &Device) -> String {
    match &device.transport {
        Transport::Ssh(s) => {
            let host = s.destination.rsplit('@').next().unwrap_or_default();
            format!("{host}:{}", s.port.unwrap_or(22))
        }
        Transport::Adb(_) => device.name(),
    }
}

impl OnDevice {
    /// Checks that the device answers and holds the power mode for the measurements;
    /// returns the mode to put back ([`OnDevice::end`]).
    ///
    /// Errors: the device cannot be reached.
    pub(super) fn begin(&self) -> Result<Option<u32>, PipelineError> {
        self.check_reachable()?;
        Ok(self.choice.clone().hold_power_mode().0)
    }

    /// Errors: the device does not answer (naming it).
    pub(super) fn check_reachable(&self) -> Result<(), PipelineError> {
        let mut device = self.choice.device.clone();
        device.check_reachable().map_err(|e| self.failed(e))
    }

    /// Puts back the power mode [`OnDevice::begin`] changed, if it did.
    pub(super) fn end(&self, restore: Option<u32>) {
        if let Some(before) = restore {
            let _ = self.choice.clone().restore_power_mode(before);
        }
    }

    fn failed(&self, e: DeployError) -> PipelineError {
        PipelineError::Invalid(format!("on the device {}: {e}", self.choice.device.name()))
    }

    /// Installs the bundle `program` once, with one input file serving every member (a
    /// member reads the first `input_lens[i]` values of [`fixed_input`]), and times each
    /// member there: `INDEX --bench` (whole) then `INDEX --io --bench` (its I/O alone).
    ///
    /// Errors: the device stops answering, the upload fails its check, a member fails.
    pub(super) fn measure_members(
        &self,
        program: &Path,
        input_lens: &[usize],
        work_dir: &Path,
    ) -> Result<Vec<MemberCost>, PipelineError> {
        let longest = input_lens.iter().copied().max().unwrap_or(0);
        let input = work_dir.join(format!("bundle-input-{}.bin", std::process::id()));
        crate::files::write(&input, &encode_f32_le(&fixed_input(longest)))?;
        let mut device = self.choice.device.clone();
        let version = device
            .install_program(program, &input)
            .map_err(|e| self.failed(e))?;
        let bench = &self.choice.bench;
        let mut time = |i: usize, io: bool| -> Result<BenchLine, PipelineError> {
            let mut args = vec![i.to_string()];
            if io {
                args.push("--io".into());
            }
            args.extend([
                "--bench".into(),
                "--warmup".into(),
                bench.warmup.to_string(),
                "--runs".into(),
                bench.runs.max(1).to_string(),
            ]);
            let out = device
                .run_installed(&version, bench.runner.as_deref(), &args, input_lens[i] * 4)
                .map_err(|e| self.failed(e))?;
            // The bundle's program labels its line `host` wherever it runs; these
            // figures are the device's and are labelled so in the table.
            BenchLine::parse(&out, "host").map_err(|e| {
                PipelineError::Invalid(format!("member {i} on the device {}: {e}", device.name()))
            })
        };
        (0..input_lens.len())
            .map(|i| {
                let infer = time(i, false)?;
                let io = time(i, true)?;
                Ok(MemberCost {
                    infer_median: infer.p50_us,
                    infer_best: infer.min_us,
                    io_median: io.p50_us,
                    io_best: io.min_us,
                })
            })
            .collect()
    }

    /// Builds the model alone as the search builds a candidate (wasm32 for the
    /// expected output, the profile's triple for the device), flashes it as a search
    /// candidate is flashed (its output checked on the device) and returns the median of
    /// its timed runs there, microseconds.
    ///
    /// Errors: building, the simulation, or the device (naming the model).
    pub(super) fn measure_alone(
        &self,
        source: &crate::ModelSource<'_>,
        work_dir: &Path,
    ) -> Result<f64, PipelineError> {
        let name = source.name;
        let built = crate::build_model(source, &[Triple::Wasm32, self.triple])?;
        let program = built.program(self.triple).ok_or_else(|| {
            PipelineError::Invalid(format!("{name}: no {} program was built", self.triple))
        })?;
        let input = fixed_input(built.input_len);
        let sim = SimModule::load(built.wasm()?)?.run(&input, &SimLimits::default())?;
        let file = |what: &str| work_dir.join(format!("alone-{what}-{}.bin", std::process::id()));
        let bundle = Bundle {
            program: program.to_path_buf(),
            input: file("input"),
            expected: file("expected"),
        };
        crate::files::write(&bundle.input, &encode_f32_le(&input))?;
        crate::files::write(&bundle.expected, &encode_f32_le(&sim.output))?;
        let report = self
            .choice
            .device
            .clone()
            .flash(&bundle, &self.choice.bench)
            .map_err(|e| PipelineError::Invalid(format!("{name}: {}", self.failed(e))))?;
        let bench = report.bench.ok_or_else(|| {
            PipelineError::Invalid(format!("{name}: the device returned no figures"))
        })?;
        Ok(bench.p50_us)
    }
}

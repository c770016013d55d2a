//! Measuring every candidate on a real device during a search, as MnasNet
//! did on phones. Each candidate's program goes to the device with
//! kiln-deploy (upload under a temporary name, sha256 check, rename into
//! place) and runs its bench mode there with its output checked against the
//! wasm simulation's; the figures come back labelled `device`.
//!
//! Each worker deploys into a folder of its own on the device
//! (`<dir>/search-w<N>`): kiln-deploy's preparation step clears leftover
//! uploads of its folder, so two workers sharing one would delete each
//! other's. kiln-deploy keeps only the current and the previous version of a
//! folder, so a search leaves at most two models per worker on the device.

use kiln_deploy::{BenchSettings, Bundle, DeployError, Device, FlashReport};

use kiln_search::EvalError;

/// A device and how candidates are benchmarked on it.
#[derive(Debug, Clone)]
pub struct SearchDevice {
    /// Transport, tools and timeouts; its `dir` is the kiln folder the
    /// workers' folders go under.
    template: Device,
    /// Warm-up, runs and runner of each candidate's benchmark.
    pub bench: BenchSettings,
    /// The power mode the device runs in, as found out when the search
    /// began (set with nvpmodel, or why not); written beside each trial's
    /// device figures.
    pub power_mode: String,
}

impl SearchDevice {
    /// Candidates go into folders under `device.dir`, benchmarked with `bench`.
    pub fn new(device: Device, bench: BenchSettings) -> Self {
        Self {
            template: device,
            bench,
            power_mode: "as found on the device (not set by kiln)".into(),
        }
    }

    /// How the device is named in messages and in the run identity.
    pub fn name(&self) -> String {
        self.template.name()
    }

    /// The folder worker `worker` deploys into.
    pub fn worker_dir(&self, worker: usize) -> String {
        format!(
            "{}/search-w{worker}",
            self.template.dir.trim_end_matches('/')
        )
    }

    /// Deploys `bundle` into `worker`'s folder and benchmarks it there.
    ///
    /// A device that cannot be reached (or whose tool, ssh or adb, cannot be
    /// started) stops the search: every later candidate would fail the same
    /// way and say nothing about itself. Any other failure (a benchmark that
    /// crashes, an output check that fails, a checksum mismatch, a timeout)
    /// is the candidate's, provided the device still answers afterwards.
    pub fn measure(&self, worker: usize, bundle: &Bundle) -> Result<FlashReport, EvalError> {
        let mut device = self.template.clone();
        device.dir = self.worker_dir(worker);
        device.dry_run = false;
        let err = match device.flash(bundle, &self.bench) {
            Ok(report) => return Ok(report),
            Err(e) => e,
        };
        if is_connection_failure(&err) {
            return Err(EvalError::Stop(err.to_string()));
        }
        match device.check_reachable() {
            Err(again) if is_connection_failure(&again) => {
                Err(EvalError::Stop(format!("{again} (after: {err})")))
            }
            _ => Err(EvalError::Failed(format!("on the device: {err}"))),
        }
    }
}

/// The device (or the program that reaches it) is not there at all.
fn is_connection_failure(e: &DeployError) -> bool {
    matches!(
        e,
        DeployError::Unreachable { .. } | DeployError::Spawn { .. }
    )
}

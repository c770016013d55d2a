//! Power modes (nvpmodel on Jetson-class boards) and power read from the
//! sysfs rails the profile names, sampled while the benchmark runs. Where a
//! step is impossible the outcome says so in `notes`; no figure is made up.

use serde::Serialize;

use crate::{Device, PROGRAM_NAME};

/// What the profile allows for the requested power mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerPlan {
    /// The profile's mode name.
    pub mode: String,
    /// `nvpmodel -m N`; `None` when the profile gives no id (the mode cannot be set).
    pub nvpmodel_id: Option<u32>,
    /// sysfs files on the device, each holding one rail's power in
    /// milliwatts; summed per sample.
    pub rails: Vec<String>,
}

/// What happened to power during a flash.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PowerOutcome {
    /// The profile's mode name the benchmark was asked to run in, if any.
    pub requested_mode: Option<String>,
    /// The nvpmodel id set for the benchmark, if one was set.
    pub nvpmodel_set: Option<u32>,
    /// The mode found before, restored afterwards.
    pub nvpmodel_before: Option<u32>,
    /// Whether the mode found before was put back; `None` when nothing was
    /// changed.
    pub restored: Option<bool>,
    /// Power samples read (one per ~50 ms).
    pub samples: usize,
    /// Mean of the summed rails over the benchmark, watts, `device`-measured;
    /// `None` with fewer than 3 samples.
    pub average_watts: Option<f64>,
    /// average_watts x the p50 latency, millijoules.
    pub energy_per_inference_mj: Option<f64>,
    /// What could not be done, and why.
    pub notes: Vec<String>,
}

impl PowerOutcome {
    /// Adds a note: a step that could not be done, and why.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Reads `kiln-power-mw N` sample lines from the bench output.
    pub(crate) fn read_samples(&mut self, stdout: &str, p50_us: f64, plan: Option<&PowerPlan>) {
        let Some(plan) = plan else { return };
        if plan.rails.is_empty() {
            self.note(format!(
                "power not measured: the profile names no power rails (deploy.power_rails) for mode `{}`",
                plan.mode
            ));
            return;
        }
        for line in stdout.lines() {
            if let Some(rail) = line.strip_prefix("kiln-rail-unreadable ") {
                self.note(format!(
                    "power not measured: rail {} is not readable on the device",
                    rail.trim()
                ));
            }
        }
        let mw: Vec<f64> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("kiln-power-mw "))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .collect();
        self.samples = mw.len();
        if mw.len() < 3 {
            if self.notes.iter().all(|n| !n.contains("not readable")) {
                self.note(format!(
                    "power not measured: only {} sample(s) while the benchmark ran; raise --runs",
                    mw.len()
                ));
            }
            return;
        }
        let watts = mw.iter().sum::<f64>() / mw.len() as f64 / 1000.0;
        self.average_watts = Some(watts);
        self.energy_per_inference_mj = Some(watts * p50_us / 1000.0);
    }
}

/// Runs nvpmodel as root (directly or with passwordless sudo).
fn nvpmodel(args: &str) -> String {
    format!(
        "command -v nvpmodel >/dev/null 2>&1 || {{ echo kiln-no-nvpmodel; exit 0; }}; if [ \"$(id -u)\" = 0 ]; then nvpmodel {args}; else sudo -n nvpmodel {args}; fi"
    )
}

/// The mode id in `nvpmodel -q` output: its last line that is a number.
pub(crate) fn parse_nvpmodel_query(stdout: &str) -> Option<u32> {
    stdout.lines().rev().find_map(|l| l.trim().parse().ok())
}

impl Device {
    /// Sets the plan's mode (`nvpmodel -m`, as root or with passwordless
    /// sudo); returns the mode to restore, if one was changed (in a dry run
    /// `u32::MAX`, for a mode not read). `flash` does this around one
    /// benchmark; a search holds one mode for all its candidates (set once,
    /// restored at the end). Never fails: what cannot be done becomes a note
    /// in `out`.
    pub fn set_power_mode(&mut self, plan: &PowerPlan, out: &mut PowerOutcome) -> Option<u32> {
        out.requested_mode = Some(plan.mode.clone());
        let Some(id) = plan.nvpmodel_id else {
            out.note(format!(
                "power mode `{}` not set: the profile gives it no nvpmodel_id; figures are at the device's current mode",
                plan.mode
            ));
            return None;
        };
        let query = match self.remote("nvpmodel -q", &nvpmodel("-q")) {
            Ok(f) => f,
            Err(e) => {
                out.note(format!("power mode `{}` not set: {e}", plan.mode));
                return None;
            }
        };
        if self.dry_run {
            out.nvpmodel_set = Some(id);
            let _ = self.remote("nvpmodel -m", &nvpmodel(&format!("-m {id}")));
            return Some(u32::MAX);
        }
        if query.stdout_text().contains("kiln-no-nvpmodel") {
            out.note(format!(
                "power mode `{}` not set: the device has no nvpmodel; figures are at its current mode",
                plan.mode
            ));
            return None;
        }
        let Some(before) = parse_nvpmodel_query(&query.stdout_text()) else {
            out.note(format!(
                "power mode `{}` not set: cannot read the current mode from `nvpmodel -q`",
                plan.mode
            ));
            return None;
        };
        out.nvpmodel_before = Some(before);
        if before == id {
            out.nvpmodel_set = Some(id);
            return None;
        }
        match self.remote("nvpmodel -m", &nvpmodel(&format!("-m {id}"))) {
            Ok(_) => {
                out.nvpmodel_set = Some(id);
                Some(before)
            }
            Err(e) => {
                out.note(format!("power mode `{}` not set: {e}", plan.mode));
                None
            }
        }
    }

    /// Puts back the mode found before the benchmark (`before`, as
    /// [`Device::set_power_mode`] returned it); a failure becomes a note in
    /// `out` and `restored: Some(false)`.
    pub fn restore_power_mode(&mut self, before: u32, out: &mut PowerOutcome) {
        let arg = if before == u32::MAX {
            "-m <mode read by nvpmodel -q>".to_string()
        } else {
            format!("-m {before}")
        };
        match self.remote("restoring the power mode", &nvpmodel(&arg)) {
            Ok(_) => out.restored = Some(true),
            Err(e) => {
                out.restored = Some(false);
                out.note(format!(
                    "could not restore nvpmodel mode {before} after running {PROGRAM_NAME}: {e}"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvpmodel_query_reads_the_id() {
        let out = "NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n";
        assert_eq!(parse_nvpmodel_query(out), Some(0));
        assert_eq!(parse_nvpmodel_query("NV Power Mode: 5W\n1"), Some(1));
        assert_eq!(parse_nvpmodel_query("garbage"), None);
    }

    fn plan(rails: &[&str]) -> PowerPlan {
        PowerPlan {
            mode: "5W".into(),
            nvpmodel_id: Some(1),
            rails: rails.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn samples_give_watts_and_energy() {
        let mut p = PowerOutcome::default();
        let out = "kiln-power-mw 4000\n{\"x\":1}\nkiln-power-mw 6000\nkiln-power-mw 5000\n";
        p.read_samples(out, 2000.0, Some(&plan(&["/r"])));
        assert_eq!(p.samples, 3);
        assert_eq!(p.average_watts, Some(5.0));
        // 5 W x 2 ms = 10 mJ
        assert_eq!(p.energy_per_inference_mj, Some(10.0));
        assert!(p.notes.is_empty());
    }

    #[test]
    fn no_rails_or_too_few_samples_give_no_figure() {
        let mut p = PowerOutcome::default();
        p.read_samples("kiln-power-mw 5000\n", 2000.0, Some(&plan(&[])));
        assert_eq!(p.average_watts, None);
        assert!(p.notes[0].contains("no power rails"), "{:?}", p.notes);
        let mut p = PowerOutcome::default();
        p.read_samples("kiln-power-mw 5000\n", 2000.0, Some(&plan(&["/r"])));
        assert_eq!(p.average_watts, None);
        assert!(p.notes[0].contains("raise --runs"), "{:?}", p.notes);
        let mut p = PowerOutcome::default();
        p.read_samples(
            "kiln-rail-unreadable /sys/x\n",
            2000.0,
            Some(&plan(&["/sys/x"])),
        );
        assert_eq!(p.average_watts, None);
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        assert!(p.notes[0].contains("/sys/x"), "{:?}", p.notes);
    }
}

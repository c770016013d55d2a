//! Reaching the device a profile describes: the transport from the command
//! line's device flags, and the power mode a whole search runs in. Shared by
//! `flash` and `search --device`.

use std::path::{Path, PathBuf};

use kiln_deploy::{
    AdbTarget, BenchSettings, Device, PowerOutcome, PowerPlan, SshTarget, Transport,
};
use kiln_target::{DeployMethod, PowerMode, Target};

use crate::PipelineError;

/// The device flags of a command line (`flash --host`, `search --device`).
#[derive(Debug, Clone, Default)]
pub struct DeviceFlags<'a> {
    /// How the USER@ADDR flag is spelled in messages (`--host`, `--device`).
    pub host_flag: &'static str,
    /// USER@ADDR of an ssh device (or `adb` with `--device`).
    pub host: Option<&'a str>,
    /// ssh port.
    pub port: Option<u16>,
    /// ssh private key file.
    pub identity: Option<&'a Path>,
    /// Extra `-o OPT` options for ssh and scp.
    pub ssh_options: &'a [String],
    /// adb serial.
    pub serial: Option<&'a str>,
}

/// [`DeviceFlags`] owned: a device given before the profile it belongs to is known (a
/// worker learns its run's target from the database).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceSpec {
    /// USER@ADDR of an ssh device (or `adb`).
    pub host: Option<String>,
    /// ssh port.
    pub port: Option<u16>,
    /// ssh private key file.
    pub identity: Option<PathBuf>,
    /// Extra `-o OPT` options for ssh and scp.
    pub ssh_options: Vec<String>,
    /// adb serial.
    pub serial: Option<String>,
}

impl DeviceSpec {
    /// Whether a device was given (USER@ADDR or a serial).
    pub fn is_given(&self) -> bool {
        self.host.is_some() || self.serial.is_some()
    }

    /// [`DeviceSpec::is_given`], refusing ssh settings without a device.
    ///
    /// Errors: `--port`, `--identity` or `--ssh-option` without `--device`.
    pub fn given(&self) -> Result<bool, PipelineError> {
        let ssh = self.port.is_some() || self.identity.is_some() || !self.ssh_options.is_empty();
        if ssh && !self.is_given() {
            return Err(invalid(
                "--port, --identity and --ssh-option need --device USER@ADDR".into(),
            ));
        }
        Ok(self.is_given())
    }

    /// The flags, spelled `host_flag` in messages.
    pub fn flags(&self, host_flag: &'static str) -> DeviceFlags<'_> {
        DeviceFlags {
            host_flag,
            host: self.host.as_deref(),
            port: self.port,
            identity: self.identity.as_deref(),
            ssh_options: &self.ssh_options,
            serial: self.serial.as_deref(),
        }
    }
}

fn invalid(message: String) -> PipelineError {
    PipelineError::Invalid(message)
}

/// How the profile's device is reached, from the flags given.
///
/// Errors: flags that do not fit the profile's deploy method (ssh flags for
/// an adb phone, no USER@ADDR for an ssh board, any device for the
/// simulated one), each naming the flag.
pub fn transport(target: &Target, f: &DeviceFlags<'_>) -> Result<Transport, PipelineError> {
    let (name, host_flag) = (&target.name, f.host_flag);
    match target.deploy.method {
        DeployMethod::Ssh => {
            if f.serial.is_some() {
                return Err(invalid(format!(
                    "--serial is for adb devices; target {name} deploys over ssh (give {host_flag} USER@ADDR)"
                )));
            }
            let Some(host) = f.host else {
                return Err(invalid(format!(
                    "target {name} deploys over ssh: give {host_flag} USER@ADDR (and --port, --identity if needed)"
                )));
            };
            if host.starts_with('-') || host.contains(char::is_whitespace) {
                return Err(invalid(format!("{host_flag} `{host}`: expected USER@ADDR")));
            }
            Ok(Transport::Ssh(SshTarget {
                destination: host.to_string(),
                port: f.port,
                identity: f.identity.map(Path::to_path_buf),
                options: f.ssh_options.to_vec(),
            }))
        }
        DeployMethod::Adb => {
            // `search --device adb` means the only attached phone.
            let host_given = f
                .host
                .is_some_and(|h| !(host_flag == "--device" && h == "adb"));
            if host_given || f.port.is_some() || f.identity.is_some() || !f.ssh_options.is_empty() {
                return Err(invalid(format!(
                    "target {name} deploys with adb: use --serial SERIAL, not {host_flag} USER@ADDR/--port/--identity/--ssh-option"
                )));
            }
            Ok(Transport::Adb(AdbTarget {
                serial: f.serial.map(str::to_string),
            }))
        }
        DeployMethod::Wasmtime => Err(invalid(format!(
            "target {name} is the simulated device (wasmtime); nothing to flash: `cargo xtask measure MODEL.onnx --target {name}` measures it"
        ))),
    }
}

/// The profile's device, reached as the flags say, in its kiln folder.
pub fn device(target: &Target, flags: &DeviceFlags<'_>) -> Result<Device, PipelineError> {
    Ok(Device::new(
        transport(target, flags)?,
        target.deploy.device_dir(),
    ))
}

/// The plan to put the device in the profile's power mode `name` and read
/// its power rails during the benchmark (flash).
///
/// Errors: a mode the profile does not have, listing those it has.
pub fn power_plan(target: &Target, name: &str) -> Result<PowerPlan, PipelineError> {
    let mode = target
        .power_modes
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = target.power_modes.iter().map(|m| m.name.as_str()).collect();
            invalid(format!(
                "--power-mode {name}: target {} has modes {}",
                target.name,
                known.join(", ")
            ))
        })?;
    Ok(PowerPlan {
        mode: mode.name.clone(),
        nvpmodel_id: mode.nvpmodel_id,
        rails: target.deploy.power_rails.clone(),
    })
}

/// The device a search measures every candidate on.
#[derive(Debug, Clone)]
pub struct SearchDeviceChoice {
    /// The device (its folder is the profile's kiln folder).
    pub device: Device,
    /// Warm-up and runs per candidate, and the profile's runner.
    pub bench: BenchSettings,
    /// The power mode the candidates run in, for the run identity.
    pub power_identity: String,
    /// The mode to hold for the whole search, when it can be set.
    pub plan: Option<PowerPlan>,
}

impl SearchDeviceChoice {
    /// Candidates run in the mode the sim figures are for: the fastest
    /// within the power budget. Phones get no mode set (kiln sets none).
    pub fn new(
        target: &Target,
        flags: &DeviceFlags<'_>,
        warmup: u64,
        runs: u64,
    ) -> Result<Self, PipelineError> {
        let transport = transport(target, flags)?;
        let is_adb = matches!(transport, Transport::Adb(_));
        if runs == 0 {
            return Err(invalid("--device-runs must be at least 1".into()));
        }
        let mode = target.modes_within_budget().first().map(|m| (*m).clone());
        let (power_identity, plan) = search_power_mode(mode, is_adb);
        Ok(Self {
            device: Device::new(transport, target.deploy.device_dir()),
            bench: BenchSettings {
                warmup,
                runs,
                runner: target.deploy.runner.clone(),
                power: None,
            },
            power_identity,
            plan,
        })
    }

    /// Sets the chosen power mode once for the whole search (not per
    /// candidate: switching modes before every benchmark would measure the
    /// clocks settling). Returns the mode to restore, what the device runs
    /// in, and notes for the user.
    pub fn hold_power_mode(&mut self) -> (Option<u32>, String, Vec<String>) {
        let Some(plan) = self.plan.clone() else {
            let note = format!("note: power mode {}", self.power_identity);
            return (None, self.power_identity.clone(), vec![note]);
        };
        let mut outcome = PowerOutcome::default();
        let restore = self.device.set_power_mode(&plan, &mut outcome);
        let mut notes = Vec::new();
        let held = match outcome.nvpmodel_set {
            Some(id) => {
                let held = format!("{} (nvpmodel -m {id}, held for the search)", plan.mode);
                let restored = outcome
                    .nvpmodel_before
                    .filter(|b| *b != id)
                    .map(|b| format!("; mode {b} is restored at the end"))
                    .unwrap_or_default();
                notes.push(format!("power mode {held}{restored}"));
                held
            }
            None => format!("as found on the device: {}", outcome.notes.join("; ")),
        };
        notes.extend(outcome.notes.iter().map(|n| format!("note: {n}")));
        (restore, held, notes)
    }

    /// Puts the device back in mode `before`; returns notes for the user.
    pub fn restore_power_mode(&mut self, before: u32) -> Vec<String> {
        let mut outcome = PowerOutcome::default();
        self.device.restore_power_mode(before, &mut outcome);
        outcome.notes.iter().map(|n| format!("note: {n}")).collect()
    }
}

/// What a search on a device runs in: its identity text and the plan.
fn search_power_mode(mode: Option<PowerMode>, is_adb: bool) -> (String, Option<PowerPlan>) {
    match mode {
        None => (
            "as found on the device (no power mode of the profile is within its budget)".into(),
            None,
        ),
        Some(m) if is_adb => (
            format!(
                "as found on the phone (kiln sets no phone modes; the sim figures are for mode {})",
                m.name
            ),
            None,
        ),
        Some(m) => {
            let identity = match m.nvpmodel_id {
                Some(id) => format!("{} (nvpmodel -m {id}, if the device has nvpmodel)", m.name),
                None => format!(
                    "as found on the device (mode {} has no nvpmodel_id in the profile)",
                    m.name
                ),
            };
            let plan = PowerPlan {
                mode: m.name.clone(),
                nvpmodel_id: m.nvpmodel_id,
                rails: Vec::new(),
            };
            (identity, Some(plan))
        }
    }
}

//! A device and how kiln reaches it: the transport (ssh/scp or adb), the
//! programs that speak it, the deadlines, and the kiln folder there.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// How the device is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A Linux board (a Jetson, a Raspberry Pi) over ssh and scp.
    Ssh(SshTarget),
    /// An Android phone over adb.
    Adb(AdbTarget),
}

/// A Linux board reached with ssh/scp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// `user@address`.
    pub destination: String,
    /// TCP port of its sshd; `None` is ssh's default (22).
    pub port: Option<u16>,
    /// Private key file (`-i`).
    pub identity: Option<PathBuf>,
    /// Extra `-o` options, e.g. `UserKnownHostsFile=...`.
    pub options: Vec<String>,
}

/// An Android device reached with adb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdbTarget {
    /// `adb -s SERIAL`: picks one of several attached devices; `None` when
    /// only one is attached.
    pub serial: Option<String>,
}

/// The external programs, overridable with KILN_SSH, KILN_SCP and KILN_ADB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// The ssh client (`ssh` on PATH unless KILN_SSH names another).
    pub ssh: OsString,
    /// The scp client (`scp` unless KILN_SCP).
    pub scp: OsString,
    /// adb (`adb` unless KILN_ADB).
    pub adb: OsString,
}

impl Tools {
    /// The programs named by KILN_SSH, KILN_SCP and KILN_ADB, or `ssh`,
    /// `scp` and `adb` on PATH.
    pub fn from_env() -> Self {
        let get =
            |var: &str, default: &str| std::env::var_os(var).unwrap_or_else(|| default.into());
        Self {
            ssh: get("KILN_SSH", "ssh"),
            scp: get("KILN_SCP", "scp"),
            adb: get("KILN_ADB", "adb"),
        }
    }
}

/// Deadlines for each kind of step; a command that runs past its deadline is
/// killed and the step fails with [`crate::DeployError::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// ssh `ConnectTimeout` (whole seconds, at least 1); default 10 s.
    pub connect: Duration,
    /// A short remote command (prepare, verify, install, rollback, nvpmodel);
    /// default 60 s.
    pub command: Duration,
    /// One file upload; default 300 s.
    pub upload: Duration,
    /// The benchmark run, warm-up included; default 900 s. It also bounds
    /// the power sampler (one sample per 50 ms at most).
    pub bench: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(60),
            upload: Duration::from_secs(300),
            bench: Duration::from_secs(900),
        }
    }
}

/// A device and how to talk to it. Each method runs its commands one after
/// another and records them ([`Device::commands`]).
#[derive(Debug, Clone)]
pub struct Device {
    /// How the device is reached.
    pub transport: Transport,
    /// The programs that reach it.
    pub tools: Tools,
    /// Deadlines for each kind of step.
    pub timeouts: Timeouts,
    /// The kiln folder on the device (absolute): version folders `m-<hash>`
    /// and the `current`/`previous` pointer files live there.
    pub dir: String,
    /// Print-only: commands are recorded, none is run.
    pub dry_run: bool,
    /// Every command run (or, in a dry run, that would run) since the last
    /// flash began.
    pub(crate) commands: Vec<String>,
}

impl Device {
    /// A device reached over `transport` with its kiln folder at `dir`
    /// (absolute, on the device); tools from the environment
    /// ([`Tools::from_env`]), default deadlines, not a dry run.
    pub fn new(transport: Transport, dir: impl Into<String>) -> Self {
        Self {
            transport,
            tools: Tools::from_env(),
            timeouts: Timeouts::default(),
            dir: dir.into(),
            dry_run: false,
            commands: Vec::new(),
        }
    }

    /// How the device is named in messages: `user@address:port` or
    /// `adb:SERIAL`.
    pub fn name(&self) -> String {
        match &self.transport {
            Transport::Ssh(s) => format!("{}:{}", s.destination, s.port.unwrap_or(22)),
            Transport::Adb(a) => format!("adb:{}", a.serial.as_deref().unwrap_or("(only device)")),
        }
    }

    /// The commands of the last flash (also of a failed one), as shell lines,
    /// in order; other calls since then are included.
    pub fn commands(&self) -> &[String] {
        &self.commands
    }
}

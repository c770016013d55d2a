//! kiln-deploy: the device side of measurement. It puts a built kiln program
//! on a device the way its users reach it (ssh/scp for Linux boards such as
//! Jetson, adb for Android phones), proves it arrived intact, runs its bench
//! mode there and reads back figures labelled `device`.
//!
//! The protocol on the device, in the kiln folder `dir`:
//! 1. upload the program, its fixed input and its expected output into
//!    `dir/.incoming-<nonce>/` (a temporary name);
//! 2. check their sha256 there (`sha256sum`) against the local files;
//! 3. rename the folder to `dir/<version>/` (one atomic rename; the version is
//!    derived from the three files' hashes) and point `dir/current` at it
//!    (written to a temporary file, then renamed), the old `current` becoming
//!    `dir/previous`;
//! 4. run the bench mode; if it fails, put both pointers back and remove the
//!    new version, so the device is as it was; if it succeeds, remove
//!    versions other than `current` and `previous`.
//!
//! An upload cut off mid-way never touches `current`, so the old version
//! keeps working. External programs run through kiln-process (stdin closed,
//! output collected, killed at a deadline), ssh/scp with `BatchMode=yes` and
//! a connect timeout.
//!
//! Modules: `device` (who the device is, how it is reached), `transport`
//! (the ssh/scp/adb command lines and running them), `adb` (adb's exit
//! status), `flash` (the protocol's steps), `bench` (the benchmark and its
//! output), `power` (power modes and rails), `error`.

mod adb;
mod bench;
mod device;
mod error;
mod flash;
mod power;
mod transport;

pub use bench::BenchSettings;
pub use device::{AdbTarget, Device, SshTarget, Timeouts, Tools, Transport};
pub use error::DeployError;
pub use flash::{Bundle, FlashReport, sha256_file};
/// A command line as [`Device::shell_command`] and [`Device::upload_command`]
/// build it (kiln-process's).
pub use kiln_process::Cmd;
pub use power::{PowerOutcome, PowerPlan};

/// The program's file name inside a version folder on the device.
pub const PROGRAM_NAME: &str = "kiln-model";
/// The fixed input's file name inside a version folder (LE f32).
pub const INPUT_NAME: &str = "input.bin";
/// The expected output's file name inside a version folder (LE f32).
pub const EXPECTED_NAME: &str = "expected.bin";

//! `cargo xtask flash` over adb, without a phone: against the adb stand-in
//! of tests/common/adb.rs (a script, not a phone; see there what it checks
//! and what it cannot).

#[path = "common/adb.rs"]
mod adb;
#[path = "common/sshd.rs"]
mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use adb::{Phone, SERIAL};
use sshd::{current, listing};

fn serial_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn models() -> &'static (PathBuf, PathBuf, PathBuf) {
    static MODELS: OnceLock<(PathBuf, PathBuf, PathBuf)> = OnceLock::new();
    MODELS.get_or_init(|| sshd::two_models("kiln-flash-adb-test"))
}

/// `cargo xtask flash --target phone --serial S --model MODEL ...`.
fn flash(
    phone: &Phone,
    serial: &str,
    model: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Output {
    flash_to(phone, "phone", serial, model, extra, envs)
}

fn flash_to(
    phone: &Phone,
    target: &str,
    serial: &str,
    model: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Output {
    let out = phone.dir.path().join(format!("out-{}", unique()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["flash", "--target", target, "--serial", serial, "--model"])
        .arg(model)
        .arg("--out")
        .arg(&out)
        .arg("--targets-dir")
        .arg(phone.profiles())
        .args(["--warmup", "1", "--runs", "5"])
        .args(extra);
    phone.env(&mut cmd);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("xtask starts")
}

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Flashes model A; returns its version.
fn install_first(phone: &Phone) -> String {
    let (a, _, _) = models();
    let o = flash(phone, SERIAL, a, &[], &[]);
    assert!(o.status.success(), "{}", text(&o));
    current(&phone.kiln_dir()).expect("a current version")
}

#[test]
fn adb_flash_deploys_verifies_benchmarks_and_keeps_the_previous_version() {
    let _g = serial_lock();
    let phone = Phone::new();
    let (a, b, _) = models();
    let o = flash(&phone, SERIAL, a, &["--power-mode", "performance"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains(&format!("to adb:{SERIAL}")), "{stdout}");
    assert!(stdout.contains("latency [device]"), "{stdout}");
    assert!(stdout.contains("PASS"), "{stdout}");
    // Phones get no invented power figures, and are told so.
    assert!(
        stdout.contains("power mode `performance` not set"),
        "{stdout}"
    );
    assert!(!stdout.contains("power [device]"), "{stdout}");
    let calls = phone.adb_calls();
    for needle in [
        format!("-s {SERIAL} push"),
        format!("-s {SERIAL} shell sh -c"),
        "sha256sum kiln-model input.bin expected.bin".to_string(),
        "--source device".to_string(),
    ] {
        assert!(calls.contains(&needle), "no `{needle}` in\n{calls}");
    }
    // Every push goes to a temporary folder first.
    for line in calls.lines().filter(|l| l.contains(" push ")) {
        assert!(line.contains("/data/local/tmp/kiln/.incoming-"), "{line}");
    }
    let first = current(&phone.kiln_dir()).unwrap();
    assert!(phone.installed_version_runs());

    let o = flash(&phone, SERIAL, b, &[], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("previous version {first} kept")),
        "{}",
        text(&o)
    );
    let second = current(&phone.kiln_dir()).unwrap();
    assert_ne!(first, second);
    let mut expected = vec![first, second, "current".into(), "previous".into()];
    expected.sort();
    assert_eq!(listing(&phone.kiln_dir()), expected);
}

#[test]
fn a_push_cut_off_midway_leaves_the_old_version_working() {
    let _g = serial_lock();
    let phone = Phone::new();
    let first = install_first(&phone);
    let (_, b, _) = models();
    let o = flash(&phone, SERIAL, b, &[], &[("FAKE_ADB_PUSH", "cut")]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("upload of kiln-model"), "{err}");
    assert!(err.contains("Connection reset by peer"), "{err}");
    assert!(err.contains("keeps its previous version"), "{err}");
    assert_eq!(current(&phone.kiln_dir()).as_deref(), Some(first.as_str()));
    assert_eq!(listing(&phone.kiln_dir()), ["current".to_string(), first]);
    assert!(phone.installed_version_runs());
}

#[test]
fn a_corrupted_push_is_caught_by_the_checksum() {
    let _g = serial_lock();
    let phone = Phone::new();
    let first = install_first(&phone);
    let (_, b, _) = models();
    let o = flash(&phone, SERIAL, b, &[], &[("FAKE_ADB_PUSH", "corrupt")]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("checksum mismatch for kiln-model"), "{err}");
    assert_eq!(current(&phone.kiln_dir()).as_deref(), Some(first.as_str()));
    assert_eq!(listing(&phone.kiln_dir()), ["current".to_string(), first]);
    assert!(phone.installed_version_runs());
}

#[test]
fn a_program_that_cannot_start_on_the_phone_rolls_back_and_is_not_called_unreachable() {
    let _g = serial_lock();
    let phone = Phone::new();
    let first = install_first(&phone);
    // The phone's sh answers `kiln-no-such-runner: not found` (exit 127):
    // the program's failure, not adb's.
    phone.add_profile("phone-broken", Some("kiln-no-such-runner"));
    let (_, b, _) = models();
    let o = flash_to(&phone, "phone-broken", SERIAL, b, &[], &[]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("cannot reach the device"), "{err}");
    assert!(err.contains("the benchmark on adb:"), "{err}");
    assert!(err.contains("cannot be started on the device"), "{err}");
    assert!(
        err.contains(&format!("rolled back to the previous version {first}")),
        "{err}"
    );
    assert_eq!(current(&phone.kiln_dir()).as_deref(), Some(first.as_str()));
    assert_eq!(listing(&phone.kiln_dir()), ["current".to_string(), first]);
    assert!(phone.installed_version_runs());
}

#[test]
fn an_adb_that_hides_exit_codes_still_catches_a_failing_benchmark() {
    let _g = serial_lock();
    let phone = Phone::new();
    let legacy = [("FAKE_ADB_LEGACY", "1")];
    // A whole flash works through it (CRLF output, status from kiln's line).
    let (a, b, _) = models();
    let o = flash(&phone, SERIAL, a, &[], &legacy);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("PASS"));
    let first = current(&phone.kiln_dir()).unwrap();
    // A program dying as one built for the wrong CPU would: adb says 0.
    phone.add_profile(
        "phone-sigill",
        Some("sh -c 'echo Illegal instruction >&2; exit 132' kiln"),
    );
    let o = flash_to(&phone, "phone-sigill", SERIAL, b, &[], &legacy);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("exit 132"), "{err}");
    assert!(err.contains("Illegal instruction"), "{err}");
    assert!(
        err.contains(&format!("rolled back to the previous version {first}")),
        "{err}"
    );
    assert_eq!(current(&phone.kiln_dir()).as_deref(), Some(first.as_str()));
    assert_eq!(listing(&phone.kiln_dir()), ["current".to_string(), first]);
    assert!(phone.installed_version_runs());
}

#[test]
fn a_phone_that_is_not_attached_is_named() {
    let _g = serial_lock();
    let phone = Phone::new();
    let (a, _, _) = models();
    let o = flash(&phone, "OTHER42", a, &[], &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot reach the device adb:OTHER42"), "{err}");
    assert!(err.contains("device 'OTHER42' not found"), "{err}");
    assert!(!phone.kiln_dir().exists(), "nothing may be created");
}

#[test]
fn dry_run_lists_the_adb_commands_and_runs_none() {
    let _g = serial_lock();
    let phone = Phone::new();
    let (a, _, _) = models();
    let o = flash(&phone, SERIAL, a, &["--dry-run"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for needle in [
        format!("dry run: commands for adb:{SERIAL}"),
        format!("adb -s {SERIAL} shell 'sh -c"),
        format!("adb -s {SERIAL} push"),
        "/data/local/tmp/kiln/.incoming-".to_string(),
        "sha256sum kiln-model input.bin expected.bin".to_string(),
        "--source device".to_string(),
    ] {
        assert!(stdout.contains(&needle), "no `{needle}` in\n{stdout}");
    }
    assert_eq!(phone.adb_calls(), "", "a dry run must not call adb");
    assert!(!phone.kiln_dir().exists());
}

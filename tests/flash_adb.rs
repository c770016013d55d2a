//! `cargo xtask flash` over adb, without a phone.
//!
//! A STAND-IN, not a phone: the test writes a small `adb` script into a temp
//! folder put first on PATH. It implements the subset kiln-deploy uses
//! (`[-s SERIAL] push LOCAL REMOTE`, `[-s SERIAL] shell CMD...`, `devices`)
//! against a local folder playing the phone's filesystem: `/data/local/tmp`
//! on the "phone" is `<root>/data/local/tmp` here, and shell commands run with
//! this machine's `sh` (not Android's mksh/toybox). It answers as adb does
//! (`adb: device 'X' not found`, `adb: error: failed to copy ...`, the
//! remote exit status as with adb's shell protocol v2). So these tests check
//! kiln's adb command lines and its handling of adb's results; they say
//! nothing about a real phone's shell, SELinux rules or speed.
//!
//! The phone-like profile is written by the test: deploy method adb, the
//! Pixel's constraints and folder, but this machine's triple, so the program
//! the stand-in runs is the native build.

#[path = "common/sshd.rs"]
mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use sshd::{current, listing, script};

const SERIAL: &str = "FAKE0123";

fn serial_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn models() -> &'static (PathBuf, PathBuf, PathBuf) {
    static MODELS: OnceLock<(PathBuf, PathBuf, PathBuf)> = OnceLock::new();
    MODELS.get_or_init(|| sshd::two_models("kiln-flash-adb-test"))
}

/// The stand-in adb. Environment: FAKE_ADB_ROOT (the phone's filesystem),
/// FAKE_ADB_SERIAL (the one attached phone), FAKE_ADB_LOG (every call is
/// appended), FAKE_ADB_PUSH=cut|corrupt (a push that breaks off after 4 KiB,
/// or delivers the file with a byte added and says it went well),
/// FAKE_ADB_LEGACY=1 (an adb without shell protocol v2, as before Android 7:
/// `shell` exits 0 whatever the command did, its stderr comes on stdout, and
/// lines end in CRLF as through a pty).
const FAKE_ADB: &str = r#"
root=${FAKE_ADB_ROOT:?}
printf '%s\n' "$*" >> "${FAKE_ADB_LOG:?}"
serial=
if [ "$1" = "-s" ]; then serial=$2; shift 2; fi
if [ "$1" = devices ]; then
  printf 'List of devices attached\n%s\tdevice\n\n' "$FAKE_ADB_SERIAL"; exit 0
fi
if [ -n "$serial" ] && [ "$serial" != "$FAKE_ADB_SERIAL" ]; then
  echo "adb: device '$serial' not found" >&2; exit 1
fi
phone() { case "$1" in /*) printf '%s%s' "$root" "$1" ;; *) printf '%s/%s' "$root" "$1" ;; esac; }
case "$1" in
  push)
    [ $# -eq 3 ] || { echo "adb: usage: push requires LOCAL and REMOTE" >&2; exit 1; }
    local_file=$2; remote=$(phone "$3")
    [ -f "$local_file" ] || { echo "adb: error: cannot stat '$local_file': No such file or directory" >&2; exit 1; }
    [ -d "$(dirname "$remote")" ] || { echo "adb: error: failed to copy '$local_file' to '$3': remote couldn't create file: No such file or directory" >&2; exit 1; }
    case "$FAKE_ADB_PUSH" in
      cut) head -c 4096 "$local_file" > "$remote"
           echo "adb: error: failed to copy '$local_file' to '$3': no response: Connection reset by peer" >&2; exit 1 ;;
      corrupt) cp "$local_file" "$remote"; printf X >> "$remote" ;;
      *) cp "$local_file" "$remote" ;;
    esac
    echo "$local_file: 1 file pushed, 0 skipped."; exit 0 ;;
  shell)
    shift
    # adb joins its arguments with spaces; the phone's sh runs the line.
    line="$*"
    line=${line//\/data\/local\/tmp/$root\/data\/local\/tmp}
    cd "$root" || exit 1
    if [ -n "$FAKE_ADB_LEGACY" ]; then
      sh -c "$line" 2>&1 | sed 's/$/\r/'; exit 0
    fi
    exec sh -c "$line" ;;
  *) echo "adb: unknown command $1" >&2; exit 1 ;;
esac
"#;

/// A fake phone: its filesystem, the `adb` on PATH, a phone-like profile.
struct Phone {
    dir: tempfile::TempDir,
}

impl Phone {
    fn new() -> Phone {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("root/data/local/tmp")).unwrap();
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::create_dir_all(d.join("profiles")).unwrap();
        script(&d.join("bin"), "adb", FAKE_ADB);
        std::fs::write(d.join("adb.log"), "").unwrap();
        let phone = Phone { dir };
        phone.add_profile("phone", None);
        phone
    }

    /// Writes profile `name`, running the program under `runner` if given.
    fn add_profile(&self, name: &str, runner: Option<&str>) {
        let profile = format!(
            r#"description = "phone-like profile for the adb stand-in"
triple = "{triple}"
[constraints]
max_latency_p50_ms = 80.0
max_latency_p95_ms = 120.0
max_size_mb = 20.0
[[power_mode]]
name = "performance"
watts = 2.5
cores = 1
clock_mhz = 2420
[sim]
cycles_per_fuel = 0.125
[deploy]
method = "adb"
dir = "/data/local/tmp/kiln"
{runner}"#,
            triple = host_triple(),
            runner = runner
                .map(|r| format!("runner = {}\n", sshd::toml_string(r)))
                .unwrap_or_default()
        );
        let path = self.dir.path().join(format!("profiles/{name}.toml"));
        std::fs::write(path, profile).unwrap();
    }

    /// The kiln folder as the phone sees it, on this machine.
    fn kiln_dir(&self) -> PathBuf {
        self.dir.path().join("root/data/local/tmp/kiln")
    }

    /// Every adb call so far, one line each.
    fn adb_calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("adb.log")).unwrap()
    }

    /// `cargo xtask flash --target phone --serial S --model MODEL ...`.
    fn flash(&self, serial: &str, model: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Output {
        self.flash_to("phone", serial, model, extra, envs)
    }

    fn flash_to(
        &self,
        target: &str,
        serial: &str,
        model: &Path,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Output {
        let d = self.dir.path();
        let path = format!(
            "{}:{}",
            d.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = d.join(format!("out-{}", unique()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(["flash", "--target", target, "--serial", serial, "--model"])
            .arg(model)
            .arg("--out")
            .arg(&out)
            .arg("--targets-dir")
            .arg(d.join("profiles"))
            .args(["--warmup", "1", "--runs", "5"])
            .args(extra)
            .env("PATH", path)
            .env_remove("KILN_ADB")
            .env("FAKE_ADB_ROOT", d.join("root"))
            .env("FAKE_ADB_SERIAL", SERIAL)
            .env("FAKE_ADB_LOG", d.join("adb.log"));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().expect("xtask starts")
    }

    /// Runs the installed version's benchmark in the phone's folder directly.
    fn installed_version_runs(&self) -> bool {
        let Some(v) = current(&self.kiln_dir()) else {
            return false;
        };
        let folder = self.kiln_dir().join(v);
        Command::new(folder.join("kiln-model"))
            .current_dir(&folder)
            .args(["--bench", "--warmup", "0", "--runs", "1"])
            .args(["--expect", "expected.bin", "input.bin"])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn host_triple() -> String {
    let out = sshd::run(Command::new("rustc").arg("-vV"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_string()
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
    let o = phone.flash(SERIAL, a, &[], &[]);
    assert!(o.status.success(), "{}", text(&o));
    current(&phone.kiln_dir()).expect("a current version")
}

#[test]
fn adb_flash_deploys_verifies_benchmarks_and_keeps_the_previous_version() {
    let _g = serial_lock();
    let phone = Phone::new();
    let (a, b, _) = models();
    let o = phone.flash(SERIAL, a, &["--power-mode", "performance"], &[]);
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

    let o = phone.flash(SERIAL, b, &[], &[]);
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
    let o = phone.flash(SERIAL, b, &[], &[("FAKE_ADB_PUSH", "cut")]);
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
    let o = phone.flash(SERIAL, b, &[], &[("FAKE_ADB_PUSH", "corrupt")]);
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
    let o = phone.flash_to("phone-broken", SERIAL, b, &[], &[]);
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
    let o = phone.flash(SERIAL, a, &[], &legacy);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("PASS"));
    let first = current(&phone.kiln_dir()).unwrap();
    // A program dying as one built for the wrong CPU would: adb says 0.
    phone.add_profile(
        "phone-sigill",
        Some("sh -c 'echo Illegal instruction >&2; exit 132' kiln"),
    );
    let o = phone.flash_to("phone-sigill", SERIAL, b, &[], &legacy);
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
    let o = phone.flash("OTHER42", a, &[], &[]);
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
    let o = phone.flash(SERIAL, a, &["--dry-run"], &[]);
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

//! A STAND-IN for adb and a phone, for tests of kiln's adb path without a
//! phone. The test writes a small `adb` script into a temp folder put first
//! on PATH. It implements the subset kiln-deploy uses (`[-s SERIAL] push
//! LOCAL REMOTE`, `[-s SERIAL] shell CMD...`, `devices`) against a local
//! folder playing the phone's filesystem: `/data/local/tmp` on the "phone" is
//! `<root>/data/local/tmp` here, and shell commands run with this machine's
//! `sh` (not Android's mksh/toybox). It answers as adb does (`adb: device 'X'
//! not found`, `adb: error: failed to copy ...`, the remote exit status as
//! with adb's shell protocol v2, or none as before it). So these tests check
//! kiln's adb command lines and its handling of adb's results; they say
//! nothing about a real phone's shell, SELinux rules or speed.
//!
//! The phone-like profiles are written by the test: deploy method adb, the
//! Pixel's constraints and folder, but this machine's triple, so the program
//! the stand-in runs is the native build.
//!
//! Included with `#[path = "common/adb.rs"] mod adb;` next to
//! `#[path = "common/sshd.rs"] mod sshd;` (it uses its helpers).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The serial of the one phone the stand-in has attached.
pub const SERIAL: &str = "FAKE0123";

/// The stand-in adb. Environment: FAKE_ADB_ROOT (the phone's filesystem),
/// FAKE_ADB_SERIAL (the one attached phone), FAKE_ADB_LOG (every call is
/// appended), FAKE_ADB_PUSH=cut|corrupt (a push that breaks off after 4 KiB,
/// or delivers the file with a byte added and says it went well),
/// FAKE_ADB_LEGACY=1 (an adb without shell protocol v2, as before Android 7:
/// `shell` exits 0 whatever the command did, its stderr comes on stdout, and
/// lines end in CRLF as through a pty).
pub const FAKE_ADB: &str = r#"
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
pub struct Phone {
    pub dir: tempfile::TempDir,
}

impl Phone {
    pub fn new() -> Phone {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("root/data/local/tmp")).unwrap();
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::create_dir_all(d.join("profiles")).unwrap();
        super::sshd::script(&d.join("bin"), "adb", FAKE_ADB);
        std::fs::write(d.join("adb.log"), "").unwrap();
        let phone = Phone { dir };
        phone.add_profile("phone", None);
        phone
    }

    /// Writes profile `name`, running the program under `runner` if given.
    pub fn add_profile(&self, name: &str, runner: Option<&str>) {
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
                .map(|r| format!("runner = {}\n", super::sshd::toml_string(r)))
                .unwrap_or_default()
        );
        let path = self.dir.path().join(format!("profiles/{name}.toml"));
        std::fs::write(path, profile).unwrap();
    }

    /// The kiln folder as the phone sees it, on this machine.
    pub fn kiln_dir(&self) -> PathBuf {
        self.dir.path().join("root/data/local/tmp/kiln")
    }

    /// Every adb call so far, one line each.
    pub fn adb_calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("adb.log")).unwrap()
    }

    /// Points `cmd` at this phone: the stand-in `adb` first on PATH, the
    /// phone's folder and serial, the call log.
    pub fn env(&self, cmd: &mut Command) {
        let d = self.dir.path();
        let path = format!(
            "{}:{}",
            d.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path)
            .env_remove("KILN_ADB")
            .env("FAKE_ADB_ROOT", d.join("root"))
            .env("FAKE_ADB_SERIAL", SERIAL)
            .env("FAKE_ADB_LOG", d.join("adb.log"));
    }

    /// The folder of the phone-like profiles.
    pub fn profiles(&self) -> PathBuf {
        self.dir.path().join("profiles")
    }

    /// Runs the installed version's benchmark in the phone's folder directly.
    pub fn installed_version_runs(&self) -> bool {
        let Some(v) = super::sshd::current(&self.kiln_dir()) else {
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

pub fn host_triple() -> String {
    let out = super::sshd::run(Command::new("rustc").arg("-vV"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_string()
}

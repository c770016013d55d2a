//! The flash protocol against a stand-in device: `ssh`, `scp` and `adb` are
//! small shell scripts written by the test that run the remote side with this
//! machine's `sh` in a temporary folder, and the "program" is a script that
//! prints a bench line. So these tests pin kiln-deploy's command lines, its
//! folder layout on the device and its messages; they say nothing about a
//! real ssh, adb or device.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_deploy::{
    AdbTarget, BenchSettings, Bundle, DeployError, Device, PowerPlan, SshTarget, Timeouts, Tools,
    Transport,
};

/// Stand-in ssh: skips the options up to `--`, runs the remote line with sh.
/// `FAKE_DOWN=1` answers as ssh does when the host does not.
const FAKE_SSH: &str = r#"#!/bin/sh
if [ -n "$FAKE_DOWN" ]; then echo "ssh: connect to host board port 22: Connection refused" >&2; exit 255; fi
while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
exec sh -c "$1"
"#;

/// Stand-in scp: copies its second-to-last argument to the path part of its
/// last. `FAKE_CORRUPT=1` adds a byte on the way.
const FAKE_SCP: &str = r#"#!/bin/sh
n=$#
eval "src=\${$((n - 1))}"
eval "dst=\${$n}"
cp "$src" "${dst#*:}" || exit 1
if [ -n "$FAKE_CORRUPT" ]; then printf X >> "${dst#*:}"; fi
"#;

/// Stand-in adb without shell protocol v2: `shell` exits 0 whatever the line
/// did and its stderr comes on stdout. `-s` must name `PHONE1`.
const FAKE_ADB: &str = r#"#!/bin/sh
if [ "$1" = -s ]; then
  [ "$2" = PHONE1 ] || { echo "adb: device '$2' not found" >&2; exit 1; }
  shift 2
fi
case "$1" in
  push) cp "$2" "$3" ;;
  shell) shift; sh -c "$*" 2>&1; exit 0 ;;
  *) echo "adb: unknown command $1" >&2; exit 1 ;;
esac
"#;

const GOOD_LINE: &str = r#"{"source":"device","runs":5,"p50_us":2000.0,"p95_us":2100.0,"min_us":1900.0,"max_us":2200.0,"peak_rss_kib":812,"output_check":{"max_abs_err":1e-7,"tolerance":1e-4,"passed":true}}"#;
const BAD_LINE: &str = r#"{"source":"device","runs":5,"p50_us":2000.0,"p95_us":2100.0,"min_us":1900.0,"max_us":2200.0,"peak_rss_kib":812,"output_check":{"max_abs_err":0.25,"tolerance":1e-4,"passed":false}}"#;

/// A "program" that records its arguments, takes `seconds` and prints `line`
/// (then exits `code`, with `stderr` on stderr).
fn program(line: &str, seconds: &str, code: i32, stderr: &str) -> String {
    format!(
        "#!/bin/sh\necho \"$@\" > args.txt\nsleep {seconds}\nprintf '%s\\n' '{line}'\n[ -z '{stderr}' ] || echo '{stderr}' >&2\nexit {code}\n"
    )
}

struct Stage {
    tmp: tempfile::TempDir,
}

impl Stage {
    fn new() -> Stage {
        let tmp = tempfile::tempdir().unwrap();
        for (name, text) in [("ssh", FAKE_SSH), ("scp", FAKE_SCP), ("adb", FAKE_ADB)] {
            write_exe(&tmp.path().join("bin").join(name), text);
        }
        std::fs::create_dir_all(tmp.path().join("local")).unwrap();
        std::fs::create_dir_all(tmp.path().join("device")).unwrap();
        Stage { tmp }
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn device_dir(&self) -> PathBuf {
        self.root().join("device").join("kiln")
    }

    fn tools(&self) -> Tools {
        let bin = self.root().join("bin");
        Tools {
            ssh: bin.join("ssh").into(),
            scp: bin.join("scp").into(),
            adb: bin.join("adb").into(),
        }
    }

    fn device(&self, transport: Transport) -> Device {
        let mut d = Device::new(transport, self.device_dir().display().to_string());
        d.tools = self.tools();
        d.timeouts = Timeouts {
            connect: Duration::from_secs(5),
            command: Duration::from_secs(20),
            upload: Duration::from_secs(20),
            bench: Duration::from_secs(20),
        };
        d
    }

    fn ssh(&self) -> Device {
        self.device(Transport::Ssh(SshTarget {
            destination: "root@board".into(),
            port: Some(2222),
            identity: Some(PathBuf::from("/keys/id")),
            options: vec!["UserKnownHostsFile=/dev/null".into()],
        }))
    }

    fn adb(&self, serial: &str) -> Device {
        self.device(Transport::Adb(AdbTarget {
            serial: Some(serial.into()),
        }))
    }

    /// A bundle whose program is `text`; `tag` keeps bundles apart.
    fn bundle(&self, tag: &str, text: &str) -> Bundle {
        let local = self.root().join("local").join(tag);
        std::fs::create_dir_all(&local).unwrap();
        write_exe(&local.join("prog"), text);
        std::fs::write(local.join("in.bin"), [1u8, 2, 3, 4]).unwrap();
        std::fs::write(local.join("out.bin"), [5u8, 6, 7, 8]).unwrap();
        Bundle {
            program: local.join("prog"),
            input: local.join("in.bin"),
            expected: local.join("out.bin"),
        }
    }

    fn pointer(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.device_dir().join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn versions(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.device_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("m-") || n.starts_with(".incoming-"))
            .collect();
        v.sort();
        v
    }

    /// `text` with the stage's folder and the upload nonce made constant.
    fn normalize(&self, text: &str) -> String {
        let text = text.replace(&self.root().display().to_string(), "<tmp>");
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(pos) = rest.find(".incoming-") {
            let (head, tail) = rest.split_at(pos + ".incoming-".len());
            out.push_str(head);
            let nonce = tail.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
            if nonce.len() < tail.len() {
                out.push_str("<nonce>");
            }
            rest = nonce;
        }
        out.push_str(rest);
        out
    }
}

fn write_exe(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn settings(power: Option<PowerPlan>) -> BenchSettings {
    BenchSettings {
        warmup: 1,
        runs: 5,
        runner: None,
        power,
    }
}

/// Appends `text` to the transcript file named by KILN_DEPLOY_TRANSCRIPT, if
/// any (for comparing two versions of the crate by hand).
fn transcript(name: &str, text: &str) {
    if let Some(path) = std::env::var_os("KILN_DEPLOY_TRANSCRIPT") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{}-{name}", path.to_string_lossy()))
            .unwrap();
        writeln!(f, "{text}").unwrap();
    }
}

#[test]
fn ssh_flash_installs_keeps_one_previous_version_and_reads_the_figures() {
    let s = Stage::new();
    let mut log = String::new();
    let mut versions = Vec::new();
    for tag in ["a", "b", "c"] {
        let text = program(GOOD_LINE, "0", 0, "") + &format!("# {tag}\n");
        let mut d = s.ssh();
        let r = d.flash(&s.bundle(tag, &text), &settings(None)).unwrap();
        let b = r.bench.as_ref().expect("figures");
        assert_eq!((b.runs, b.p50_us, b.peak_rss_kib), (5, 2000.0, Some(812)));
        assert!(b.output_check.as_ref().unwrap().passed);
        assert_eq!(r.device, "root@board:2222");
        assert_eq!(s.pointer("current").as_deref(), Some(r.version.as_str()));
        assert_eq!(s.pointer("previous"), versions.last().cloned());
        assert_eq!(r.previous, versions.last().cloned());
        versions.push(r.version.clone());
        log.push_str(&format!(
            "{}\n",
            s.normalize(&format!("{:?}\n{}", r, r.commands.join("\n")))
        ));
    }
    let args = std::fs::read_to_string(s.device_dir().join(&versions[2]).join("args.txt")).unwrap();
    assert_eq!(
        args.trim(),
        "--bench --warmup 1 --runs 5 --expect expected.bin --source device input.bin"
    );
    // Only current and previous are left, no upload folder.
    let mut kept = vec![versions[1].clone(), versions[2].clone()];
    kept.sort();
    assert_eq!(s.versions(), kept);
    transcript("ssh-ok", &log);
}

#[test]
fn dry_run_records_the_commands_and_runs_none() {
    let s = Stage::new();
    let mut d = s.ssh();
    d.dry_run = true;
    let plan = PowerPlan {
        mode: "5W".into(),
        nvpmodel_id: Some(1),
        rails: vec!["/sys/rail0".into()],
    };
    let r = d
        .flash(
            &s.bundle("a", &program(GOOD_LINE, "0", 0, "")),
            &settings(Some(plan)),
        )
        .unwrap();
    assert!(r.dry_run && r.bench.is_none());
    assert!(
        !s.device_dir().exists(),
        "a dry run must not touch the device"
    );
    let commands = s.normalize(&d.commands().join("\n"));
    transcript("dry-run", &commands);
    let lines: Vec<&str> = commands.lines().collect();
    assert_eq!(lines.len(), 11, "{commands}");
    let ssh = "<tmp>/bin/ssh -o BatchMode=yes -o ConnectTimeout=5 -o ServerAliveInterval=5 -o ServerAliveCountMax=3 -p 2222 -i /keys/id -o UserKnownHostsFile=/dev/null root@board --";
    assert_eq!(
        lines[0],
        format!(
            "{ssh} 'sh -c '\\''mkdir -p <tmp>/device/kiln && cd <tmp>/device/kiln && rm -rf .incoming-* && mkdir .incoming-<nonce> && echo \"kiln-current $(cat current 2>/dev/null)\" && echo \"kiln-previous $(cat previous 2>/dev/null)\"'\\'''"
        )
    );
    assert_eq!(
        lines[1],
        "<tmp>/bin/scp -q -o BatchMode=yes -o ConnectTimeout=5 -o ServerAliveInterval=5 -o ServerAliveCountMax=3 -P 2222 -i /keys/id -o UserKnownHostsFile=/dev/null <tmp>/local/a/prog root@board:<tmp>/device/kiln/.incoming-<nonce>/kiln-model"
    );
    assert!(lines[4].ends_with("&& sha256sum kiln-model input.bin expected.bin'\\'''"));
    assert!(lines[6].contains("nvpmodel -q"), "{}", lines[6]);
    assert!(lines[7].contains("nvpmodel -m 1"), "{}", lines[7]);
    assert!(lines[8].contains("kiln-power-mw"), "{}", lines[8]);
    assert!(
        lines[9].contains("-m <mode read by nvpmodel -q>"),
        "{}",
        lines[9]
    );
    assert!(lines[10].contains("for d in m-*"), "{}", lines[10]);
}

#[test]
fn a_failed_output_check_rolls_back_and_says_why() {
    let s = Stage::new();
    let first = s
        .ssh()
        .flash(
            &s.bundle("a", &program(GOOD_LINE, "0", 0, "")),
            &settings(None),
        )
        .unwrap();
    let err = s
        .ssh()
        .flash(
            &s.bundle(
                "b",
                &program(BAD_LINE, "0", 3, "kiln-model: output differs"),
            ),
            &settings(None),
        )
        .unwrap_err();
    let msg = err.to_string();
    transcript("check-failed", &s.normalize(&msg));
    assert!(matches!(err, DeployError::Bench { .. }), "{msg}");
    assert!(
        msg.contains("output check failed: max abs error 2.5e-1 > tolerance 0.0001: kiln-model: output differs"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "rolled back to the previous version {}",
            first.version
        )),
        "{msg}"
    );
    assert_eq!(s.pointer("current"), Some(first.version.clone()));
    assert_eq!(s.pointer("previous"), None);
    assert_eq!(s.versions(), vec![first.version]);
}

#[test]
fn a_program_that_cannot_start_or_prints_nothing_is_named() {
    let s = Stage::new();
    let mut bench = settings(None);
    bench.runner = Some("kiln-no-such-runner".into());
    let err = s
        .ssh()
        .flash(&s.bundle("a", &program(GOOD_LINE, "0", 0, "")), &bench)
        .unwrap_err()
        .to_string();
    transcript("no-runner", &s.normalize(&err));
    assert!(
        err.contains(
            "the program or its runner `kiln-no-such-runner` cannot be started on the device"
        ),
        "{err}"
    );
    assert!(
        err.contains("the new version was removed (there was no previous one)"),
        "{err}"
    );
    let err = s
        .ssh()
        .flash(&s.bundle("b", "#!/bin/sh\necho hello\n"), &settings(None))
        .unwrap_err()
        .to_string();
    transcript("no-line", &s.normalize(&err));
    assert!(
        err.contains("no bench JSON line in the output: hello"),
        "{err}"
    );
}

#[test]
fn power_samples_come_back_with_the_figures() {
    let s = Stage::new();
    let rail = s.root().join("rail0");
    std::fs::write(&rail, "1500\n").unwrap();
    let plan = PowerPlan {
        mode: "5W".into(),
        nvpmodel_id: None,
        rails: vec![rail.display().to_string()],
    };
    let r = s
        .ssh()
        .flash(
            &s.bundle("a", &program(GOOD_LINE, "0.5", 0, "")),
            &settings(Some(plan)),
        )
        .unwrap();
    transcript("power", &s.normalize(&format!("{:?}", r.power)));
    assert!(r.power.samples >= 3, "{:?}", r.power);
    assert_eq!(r.power.average_watts, Some(1.5));
    assert_eq!(r.power.energy_per_inference_mj, Some(3.0));
    assert!(r.power.notes[0].contains("no nvpmodel_id"), "{:?}", r.power);
}

#[test]
fn uploads_that_break_or_arrive_changed_leave_the_device_as_it_was() {
    let s = Stage::new();
    let bundle = s.bundle("a", &program(GOOD_LINE, "0", 0, ""));
    let mut d = s.ssh();
    d.tools.scp = s.root().join("bin").join("kiln-no-such-scp").into();
    let err = d.flash(&bundle, &settings(None)).unwrap_err().to_string();
    transcript("no-scp", &s.normalize(&err));
    assert!(
        err.starts_with("upload of kiln-model to root@board:2222 failed: cannot run `<tmp>/bin/kiln-no-such-scp`".replace("<tmp>", &s.root().display().to_string()).as_str()),
        "{err}"
    );
    assert!(
        err.contains("(install it, or point KILN_SCP at it)"),
        "{err}"
    );
    assert!(
        err.ends_with("the device keeps its previous version"),
        "{err}"
    );
    assert!(s.versions().is_empty(), "{:?}", s.versions());

    let mut d = s.ssh();
    let corrupt = s.root().join("bin").join("scp-corrupt");
    write_exe(&corrupt, &FAKE_SCP.replace("$FAKE_CORRUPT", "1"));
    d.tools.scp = corrupt.into();
    let err = d.flash(&bundle, &settings(None)).unwrap_err();
    let msg = err.to_string();
    transcript("corrupt", &s.normalize(&msg));
    assert!(matches!(err, DeployError::ChecksumMismatch { .. }), "{msg}");
    assert!(
        msg.starts_with("checksum mismatch for kiln-model on root@board:2222: local sha256 "),
        "{msg}"
    );
    assert!(s.versions().is_empty(), "{:?}", s.versions());
    assert_eq!(s.pointer("current"), None);
}

#[test]
fn an_unreachable_host_or_a_missing_ssh_is_a_connection_failure() {
    let s = Stage::new();
    let mut d = s.ssh();
    let down = s.root().join("bin").join("ssh-down");
    write_exe(&down, &FAKE_SSH.replace("$FAKE_DOWN", "1"));
    d.tools.ssh = down.into();
    let err = d.check_reachable().unwrap_err();
    let msg = err.to_string();
    transcript("down", &s.normalize(&msg));
    assert!(matches!(err, DeployError::Unreachable { .. }), "{msg}");
    assert_eq!(
        msg,
        "cannot reach the device root@board:2222: ssh: connect to host board port 22: Connection refused"
    );

    let mut d = s.ssh();
    d.tools.ssh = "kiln-no-such-ssh".into();
    let err = d.check_reachable().unwrap_err();
    let msg = err.to_string();
    transcript("no-ssh", &s.normalize(&msg));
    assert!(matches!(err, DeployError::Spawn { .. }), "{msg}");
    assert!(msg.starts_with("cannot run `kiln-no-such-ssh`: "), "{msg}");
    assert!(
        msg.ends_with(" (install it, or point KILN_SSH at it)"),
        "{msg}"
    );
}

#[test]
fn a_hanging_device_is_stopped_at_the_deadline() {
    let s = Stage::new();
    let mut d = s.ssh();
    d.timeouts.bench = Duration::from_millis(500);
    // The stand-in ssh is killed at the deadline, but the "program" it
    // started keeps the output pipes open until it ends (kiln-process reads
    // them to their end), so it sleeps only a few seconds.
    let err = d
        .flash(
            &s.bundle("a", &program(GOOD_LINE, "3", 0, "")),
            &settings(None),
        )
        .unwrap_err()
        .to_string();
    transcript("hang", &s.normalize(&err));
    assert!(
        err.starts_with("the benchmark on root@board:2222 failed; "),
        "{err}"
    );
    assert!(
        err.contains("did not finish within 0.5 s and was stopped"),
        "{err}"
    );
}

#[test]
fn adb_takes_the_status_from_the_scripts_own_line() {
    let s = Stage::new();
    let r = s
        .adb("PHONE1")
        .flash(
            &s.bundle("a", &program(GOOD_LINE, "0", 0, "")),
            &settings(None),
        )
        .unwrap();
    assert_eq!(r.device, "adb:PHONE1");
    assert_eq!(r.bench.as_ref().map(|b| b.p95_us), Some(2100.0));
    transcript(
        "adb-ok",
        &s.normalize(&format!("{:?}\n{}", r, r.commands.join("\n"))),
    );
    // The old adb exits 0 and puts stderr on stdout; the status line tells.
    let err = s
        .adb("PHONE1")
        .flash(
            &s.bundle(
                "b",
                &program(BAD_LINE, "0", 3, "kiln-model: output differs"),
            ),
            &settings(None),
        )
        .unwrap_err()
        .to_string();
    transcript("adb-check-failed", &s.normalize(&err));
    assert!(
        err.contains("output check failed: max abs error 2.5e-1 > tolerance 0.0001"),
        "{err}"
    );
    assert_eq!(s.pointer("current"), Some(r.version));
    // A phone that is not attached is unreachable.
    let err = s.adb("OTHER").check_reachable().unwrap_err();
    let msg = err.to_string();
    transcript("adb-down", &s.normalize(&msg));
    assert!(matches!(err, DeployError::Unreachable { .. }), "{msg}");
    assert_eq!(
        msg,
        "cannot reach the device adb:OTHER: adb: device 'OTHER' not found"
    );
}

//! `cargo xtask search --device`: every candidate measured on a device, here
//! the loopback sshd stand-in (tests/common/sshd.rs) with the `host` profile,
//! so the native build runs "on the device" and the test can look at what
//! arrived there; and `--serial` against the adb stand-in
//! (tests/common/adb.rs, a script, not a phone).

#[path = "common/adb.rs"]
mod adb;
#[path = "common/sshd.rs"]
mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_search::{Journal, Status, TrialRecord};
use sshd::{Sshd, current, profile, script};

fn tiny_space() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/tiny-space.toml"
    )
    .to_string()
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `search --target host` into `run`, on the stand-in device when `device`.
fn search(
    sshd: &Sshd,
    profiles: &Path,
    run: &Path,
    workers: &str,
    device: bool,
    resume: bool,
) -> Command {
    let mut c = base_search("host", profiles, run, workers);
    if device {
        c.args(sshd.ssh_args("--device"));
    }
    if resume {
        c.arg("--resume");
    }
    c
}

/// `search --target TARGET` of 2 trials of the tiny space into `run`.
fn base_search(target: &str, profiles: &Path, run: &Path, workers: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args([
        "search",
        "--evaluator",
        "train",
        "--target",
        target,
        "--targets-dir",
    ])
    .arg(profiles)
    .args([
        "--trials",
        "2",
        "--epochs",
        "1",
        "--train-limit",
        "300",
        "--population",
        "2",
        "--seed",
        "5",
        "--workers",
        workers,
        "--space",
        &tiny_space(),
        "--device-warmup",
        "1",
        "--device-runs",
        "5",
        "-o",
    ])
    .arg(run);
    c
}

/// Trials that were evaluated (not rejected before training).
fn evaluated(run: &Path) -> Vec<TrialRecord> {
    Journal::open(run)
        .and_then(|j| j.trials())
        .unwrap()
        .into_iter()
        .filter(|t| !kiln_search::driver::is_analytic_rejection(t))
        .collect()
}

fn trial_dir(run: &Path, t: &TrialRecord) -> PathBuf {
    kiln_search::driver::trial_dir(run, t.number, &t.genome_id)
}

/// Every finished trial's latency is the device's, the sim's stays beside
/// it, its output check passed there, and trials.csv / front.json agree.
fn assert_device_figures(run: &Path, out: &Output) {
    // `host` gives its mode no nvpmodel id: the figures are at whatever
    // mode the device was in, and that is written down.
    assert_device_figures_of(run, out, "as found on the device");
}

fn assert_device_figures_of(run: &Path, out: &Output, power_mode: &str) {
    let trials = evaluated(run);
    assert_eq!(trials.len(), 2, "{}", text(out));
    for t in &trials {
        assert!(
            matches!(t.status, Status::Done | Status::Infeasible),
            "trial {} {:?}: {:?}\n{}",
            t.number,
            t.status,
            t.error,
            text(out)
        );
        let m = &t.evaluation.as_ref().unwrap().metrics;
        for key in [
            "latency_ms",
            "latency_p95_ms",
            "fps",
            "device_peak_rss_bytes",
        ] {
            assert_eq!(m[key].source.name(), "device", "trial {} {key}", t.number);
        }
        assert_eq!(m["sim_latency_ms"].source.name(), "sim");
        assert!(m["latency_p95_ms"].value >= m["latency_ms"].value);
        let device: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(trial_dir(run, t).join("device.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(device["bench"]["source"], "device");
        assert_eq!(device["bench"]["runs"], 5);
        assert_eq!(device["bench"]["output_check"]["passed"], true);
        let mode = device["power_mode"].as_str().unwrap();
        assert!(mode.starts_with(power_mode), "{mode}");
    }

    let csv = std::fs::read_to_string(run.join("trials.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "latency_ms_source")
        .expect("a latency_ms_source column");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{csv}");
    let sim_col = header
        .iter()
        .position(|h| *h == "sim_latency_ms_source")
        .expect("a sim_latency_ms_source column");
    for row in rows {
        assert_eq!(row.split(',').nth(col), Some("device"), "{csv}");
        assert_eq!(row.split(',').nth(sim_col), Some("sim"), "{csv}");
    }

    let front: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("front.json")).unwrap()).unwrap();
    let models = front["front"].as_array().unwrap();
    assert!(!models.is_empty(), "{}", text(out));
    for m in models {
        assert_eq!(m["metrics"]["latency_ms"]["source"], "device", "{m}");
    }
}

#[test]
fn every_candidate_is_measured_on_the_device() {
    let sshd = Sshd::start();
    let profiles = profile("host", &sshd.device_dir(), None);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = search(&sshd, profiles.path(), &run, "2", true, false)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("(device)"), "{}", text(&o));
    assert!(
        text(&o).contains("power mode `default` not set"),
        "{}",
        text(&o)
    );
    assert_device_figures(&run, &o);
    let meta = Journal::open(&run).unwrap().meta().unwrap();
    assert_eq!(
        meta.get("device"),
        Some(format!("{}@127.0.0.1:{}", sshd::whoami(), sshd.port).as_str())
    );
    assert!(
        meta.get("device_power_mode")
            .unwrap()
            .starts_with("as found")
    );

    // What the device runs is the candidates' own builds: each worker's
    // installed version is the program a trial built, byte for byte.
    let trials = evaluated(&run);
    let mut found = 0;
    for w in 0..2 {
        let folder = sshd.device_dir().join(format!("search-w{w}"));
        let Some(v) = current(&folder) else { continue };
        let on_device = std::fs::read(folder.join(&v).join("kiln-model")).unwrap();
        let owner = trials.iter().find(|t| {
            let d: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(trial_dir(&run, t).join("device.json")).unwrap(),
            )
            .unwrap();
            d["version"] == v.as_str()
        });
        let owner = owner.unwrap_or_else(|| panic!("{v} on the device is no trial's"));
        // crate/out holds the wasm build and the native one, `kiln-model-<target>`.
        let native = std::fs::read_dir(trial_dir(&run, owner).join("crate/out"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("kiln-model-"))
            })
            .expect("a native build in crate/out");
        let built = std::fs::read(native).unwrap();
        assert!(
            built == on_device,
            "trial {}'s program differs",
            owner.number
        );
        found += 1;
    }
    assert!(found >= 1, "no candidate installed on the device");
}

#[test]
fn a_device_that_goes_away_stops_the_search_and_resume_finishes_it() {
    let sshd = Sshd::start();
    let profiles = profile("host", &sshd.device_dir(), None);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // An ssh whose link dies after the first candidate: its first six calls
    // (the search's connection check, then prepare, verify, install, bench
    // and clean-up of candidate 1) go through, later ones are refused.
    let calls = dir.path().join("ssh-calls");
    let flaky = script(
        dir.path(),
        "ssh-flaky",
        &format!(
            r#"echo x >> '{calls}'
if [ "$(wc -l < '{calls}')" -gt 6 ]; then
  echo 'ssh: connect to host 127.0.0.1 port {port}: Connection refused' >&2; exit 255
fi
exec ssh "$@""#,
            calls = calls.display(),
            port = sshd.port
        ),
    );
    let o = search(&sshd, profiles.path(), &run, "1", true, false)
        .env("KILN_SSH", &flaky)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the search stopped"), "{err}");
    assert!(err.contains("cannot reach the device"), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(err.contains("--resume"), "{err}");
    // The first candidate is done; the second waits, not failed.
    let trials = evaluated(&run);
    let statuses: Vec<Status> = trials.iter().map(|t| t.status).collect();
    assert_eq!(statuses.len(), 2, "{}", text(&o));
    assert!(statuses[0].is_finished() && statuses[0] != Status::Failed);
    assert_eq!(statuses[1], Status::Pending);

    // Resuming without the device is refused: its figures would mix sources.
    let o = search(&sshd, profiles.path(), &run, "1", false, true)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("device: journal has `"), "{}", text(&o));

    // With the device back, --resume evaluates the waiting trial on it.
    let o = search(&sshd, profiles.path(), &run, "1", true, true)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_device_figures(&run, &o);
}

#[test]
fn an_unreachable_device_is_refused_before_training() {
    let sshd = Sshd::start();
    let profiles = profile("host", &sshd.device_dir(), None);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut c = search(&sshd, profiles.path(), &run, "1", false, false);
    let mut args = sshd.ssh_args("--device");
    args[3] = sshd::free_port().to_string();
    let o = c.args(args).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("must answer before the search starts"),
        "{err}"
    );
    assert!(err.contains("cannot reach the device"), "{err}");
    // No journal yet: the same command works once the device answers.
    assert!(!run.join("journal.sqlite").exists());
}

#[test]
fn a_search_on_a_phone_goes_through_adb() {
    let phone = adb::Phone::new();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut c = base_search("phone", &phone.profiles(), &run, "2");
    c.args(["--serial", adb::SERIAL]);
    phone.env(&mut c);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_device_figures_of(&run, &o, "as found on the phone");
    // Each worker has its own folder on the phone, reached with -s SERIAL.
    let calls = phone.adb_calls();
    let pushes: Vec<&str> = calls.lines().filter(|l| l.contains(" push ")).collect();
    assert!(!pushes.is_empty(), "{calls}");
    for p in pushes {
        assert!(p.starts_with(&format!("-s {} push", adb::SERIAL)), "{p}");
        assert!(p.contains("/data/local/tmp/kiln/search-w"), "{p}");
    }
    let meta = Journal::open(&run).unwrap().meta().unwrap();
    assert_eq!(
        meta.get("device"),
        Some(format!("adb:{}", adb::SERIAL).as_str())
    );
}

#[test]
fn a_jetson_search_on_an_emulated_board_says_which_power_mode_it_ran_in() {
    // jetson's profile, its aarch64 builds run under qemu on the stand-in.
    let sshd = Sshd::start();
    let profiles = profile("jetson", &sshd.device_dir(), Some("qemu-aarch64"));
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut c = base_search("jetson", profiles.path(), &run, "2");
    c.args(sshd.ssh_args("--device"));
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // The profile wants 10W (nvpmodel -m 0); this "board" has no nvpmodel.
    assert!(
        text(&o).contains("power mode `10W` not set: the device has no nvpmodel"),
        "{}",
        text(&o)
    );
    let meta = Journal::open(&run).unwrap().meta().unwrap();
    assert_eq!(
        meta.get("device_power_mode"),
        Some("10W (nvpmodel -m 0, if the device has nvpmodel)")
    );
    assert!(
        meta.get("device_bench")
            .unwrap()
            .contains("runner qemu-aarch64")
    );
    assert_device_figures_of(&run, &o, "as found on the device: power mode `10W` not set");
    // What ran on the "board" is the aarch64 build.
    let folder = sshd.device_dir().join("search-w0");
    let v = current(&folder).expect("worker 0 installed a candidate");
    let elf = std::fs::read(folder.join(v).join("kiln-model")).unwrap();
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 183, "EM_AARCH64");
}

#[test]
fn a_candidate_failing_its_output_check_on_the_device_fails_alone() {
    let sshd = Sshd::start();
    // A runner that zeroes the first expected value on the device before the
    // program compares its output with it: every output check fails there.
    let profiles = profile(
        "host",
        &sshd.device_dir(),
        Some(
            "sh -c 'dd if=/dev/zero of=expected.bin bs=4 count=1 conv=notrunc 2>/dev/null; exec \"$@\"' kiln",
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut c = base_search("host", profiles.path(), &run, "1");
    c.args(sshd.ssh_args("--device"));
    let o = c.output().unwrap();
    // Nothing feasible, so the search ends with an error, but not a stop:
    // both trials were evaluated and failed with the device's reason.
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("the search stopped"), "{}", text(&o));
    let trials = evaluated(&run);
    assert_eq!(trials.len(), 2, "{}", text(&o));
    for t in &trials {
        assert_eq!(t.status, Status::Failed, "{}", text(&o));
        let e = t.error.as_deref().unwrap();
        assert!(e.contains("on the device"), "{e}");
        assert!(e.contains("output check failed"), "{e}");
    }
    // Each failed version was rolled back: nothing of them stays installed.
    assert_eq!(current(&sshd.device_dir().join("search-w0")), None);
}

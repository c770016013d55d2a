//! End-to-end tests of `cargo xtask flash` against a stand-in device: an
//! sshd started by the test on a free loopback port (tests/common/sshd.rs).
//! The "device" is this machine, so the tests can look at the kiln folder
//! directly to see that it is as it was after each failure. Needs
//! openssh-server, openssh-client and qemu-user (scripts/setup.sh). The tests
//! run one at a time: they share built models.

#[path = "common/sshd.rs"]
mod sshd;

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_search::front_file::{FrontFile, FrontModel};
use kiln_search::{Metric, Source, Unit};
use std::sync::{Mutex, MutexGuard, OnceLock};

use sshd::{Sshd, current, free_port, listing, profile, script};

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Two ONNX models of one genome (random weights, seeds 1 and 2), made once.
fn models() -> &'static (PathBuf, PathBuf, PathBuf) {
    static MODELS: OnceLock<(PathBuf, PathBuf, PathBuf)> = OnceLock::new();
    MODELS.get_or_init(|| sshd::two_models("kiln-flash-test"))
}

struct Flash {
    ok: bool,
    out: PathBuf,
    stdout: String,
    stderr: String,
}

/// A fresh output folder for each flash: kiln-codegen copies its artifact
/// out of a shared target dir, and a crate that is already built there
/// (fresh) may come back with another model's artifact (see the report);
/// flash's own check refuses such a program, but tests want the model.
fn out_dir(model: &Path, target: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, Ordering::SeqCst);
    let stem = model.file_stem().unwrap().to_string_lossy();
    models()
        .2
        .join(format!("out-{}-{stem}-{target}-{n}", std::process::id()))
}

/// `cargo xtask flash` with the stand-in device; `envs` set for the run.
fn flash(
    sshd: &Sshd,
    target: &str,
    profiles: &Path,
    model: &Path,
    extra: &[&str],
    envs: &[(&str, &Path)],
) -> Flash {
    let out = out_dir(model, target);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["flash", "--target", target])
        .args(sshd.ssh_args("--host"))
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(&out)
        .arg("--targets-dir")
        .arg(profiles)
        .args(["--warmup", "1", "--runs", "5"])
        .args(extra);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("xtask starts");
    Flash {
        ok: o.status.success(),
        out,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs the installed version's benchmark on the "device" directly.
fn installed_version_runs(device: &Path) -> bool {
    let Some(v) = current(device) else {
        return false;
    };
    let folder = device.join(v);
    Command::new(folder.join("kiln-model"))
        .current_dir(&folder)
        .args([
            "--bench",
            "--warmup",
            "0",
            "--runs",
            "1",
            "--expect",
            "expected.bin",
            "input.bin",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn metrics(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap()
}

/// Flashes model A with the host profile; returns (profiles, out, version).
fn install_first(sshd: &Sshd) -> (tempfile::TempDir, PathBuf, String) {
    let (a, _, _) = models();
    let profiles = profile("host", &sshd.device_dir(), None);
    let f = flash(sshd, "host", profiles.path(), a, &[], &[]);
    assert!(f.ok, "first flash failed:\n{}\n{}", f.stdout, f.stderr);
    let v = current(&sshd.device_dir()).expect("a current version");
    (profiles, f.out, v)
}

#[test]
fn host_flash_checks_the_output_and_keeps_the_previous_version() {
    let _g = serial();
    let sshd = Sshd::start();
    let (profiles, out, first) = install_first(&sshd);
    let device = sshd.device_dir();
    let m = metrics(&out);
    assert_eq!(m["device"]["source"], "device");
    assert_eq!(m["device"]["bench"]["source"], "device");
    assert_eq!(m["device"]["bench"]["runs"], 5);
    assert_eq!(m["device"]["bench"]["output_check"]["passed"], true);
    assert!(
        m["device"]["bench"]["output_check"]["max_abs_err"]
            .as_f64()
            .unwrap()
            <= 1e-4
    );
    assert!(m["device"]["bench"]["peak_rss_kib"].as_u64().unwrap() > 0);
    // the sim and host figures of the same model sit next to it
    assert_eq!(m["local"]["fuel"]["source"], "sim");
    assert!(m["local"]["host_timing"]["p50"]["value"].as_f64().unwrap() > 0.0);
    assert!(installed_version_runs(&device));

    // A second model replaces it; the first stays for rollback.
    let (_, b, _) = models();
    let f = flash(&sshd, "host", profiles.path(), b, &[], &[]);
    assert!(f.ok, "{}\n{}", f.stdout, f.stderr);
    assert!(f.stdout.contains("latency [device]"), "{}", f.stdout);
    assert!(f.stdout.contains("PASS"), "{}", f.stdout);
    assert!(
        f.stdout.contains(&format!("previous version {first} kept")),
        "{}",
        f.stdout
    );
    let second = current(&device).unwrap();
    assert_ne!(second, first);
    assert_eq!(
        std::fs::read_to_string(device.join("previous"))
            .unwrap()
            .trim(),
        first
    );
    let mut expected = vec![
        first.clone(),
        second.clone(),
        "current".to_string(),
        "previous".to_string(),
    ];
    expected.sort();
    assert_eq!(listing(&device), expected);
}

#[test]
fn emulated_aarch64_device_runs_the_musl_build_under_qemu() {
    let _g = serial();
    let sshd = Sshd::start();
    let (a, _, _) = models();
    let profiles = profile("qemu-aarch64", &sshd.device_dir(), None);
    let f = flash(&sshd, "qemu-aarch64", profiles.path(), a, &[], &[]);
    let out = f.out.clone();
    assert!(f.ok, "{}\n{}", f.stdout, f.stderr);
    assert!(
        f.stdout.contains("run under qemu-aarch64, emulated"),
        "{}",
        f.stdout
    );
    let m = metrics(&out);
    assert_eq!(m["device"]["bench"]["output_check"]["passed"], true);
    assert_eq!(m["device"]["runner"], "qemu-aarch64");
    // what was deployed is an aarch64 ELF
    let v = current(&sshd.device_dir()).unwrap();
    let elf = std::fs::read(sshd.device_dir().join(v).join("kiln-model")).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(
        u16::from_le_bytes([elf[18], elf[19]]),
        183,
        "e_machine is EM_AARCH64"
    );
}

#[test]
fn a_device_that_refuses_the_connection_is_named() {
    let _g = serial();
    let sshd = Sshd::start();
    let (a, _, _) = models();
    let work = tempfile::tempdir().unwrap();
    let profiles = profile("host", &sshd.device_dir(), None);
    // same keys, but a port where nothing listens
    let closed = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    let mut args = sshd.ssh_args("--host");
    args[3] = closed.to_string();
    let o = cmd
        .args(["flash", "--target", "host"])
        .args(&args)
        .arg("--model")
        .arg(a)
        .arg("--out")
        .arg(work.path())
        .arg("--targets-dir")
        .arg(profiles.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("cannot reach the device"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{closed}")), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert!(!sshd.device_dir().exists(), "nothing may be created");
}

#[test]
fn an_upload_cut_off_midway_leaves_the_old_version_working() {
    let _g = serial();
    let sshd = Sshd::start();
    let work = tempfile::tempdir().unwrap();
    let (profiles, _, first) = install_first(&sshd);
    // scp that loses the link after the first 4 KiB of each file
    let cut = script(
        work.path(),
        "scp-cut",
        r#"args=("$@"); n=${#args[@]}; tmp=$(mktemp)
head -c 4096 "${args[n-2]}" > "$tmp"; args[n-2]=$tmp
scp "${args[@]}"; rm -f "$tmp"
echo 'client_loop: send disconnect: Broken pipe' >&2; exit 255"#,
    );
    let (_, b, _) = models();
    let f = flash(
        &sshd,
        "host",
        profiles.path(),
        b,
        &[],
        &[("KILN_SCP", &cut)],
    );
    assert!(!f.ok, "{}", f.stdout);
    assert!(f.stderr.contains("upload of kiln-model"), "{}", f.stderr);
    assert!(f.stderr.contains("Broken pipe"), "{}", f.stderr);
    assert!(
        f.stderr.contains("keeps its previous version"),
        "{}",
        f.stderr
    );
    let device = sshd.device_dir();
    assert_eq!(current(&device).as_deref(), Some(first.as_str()));
    assert_eq!(listing(&device), ["current".to_string(), first.clone()]);
    assert!(installed_version_runs(&device));
}

#[test]
fn a_checksum_mismatch_discards_the_upload() {
    let _g = serial();
    let sshd = Sshd::start();
    let work = tempfile::tempdir().unwrap();
    let (profiles, _, first) = install_first(&sshd);
    // scp that delivers every file with its last byte changed, and says it went well
    let corrupt = script(
        work.path(),
        "scp-corrupt",
        r#"args=("$@"); n=${#args[@]}; tmp=$(mktemp)
cp "${args[n-2]}" "$tmp"; printf X >> "$tmp"; args[n-2]=$tmp
scp "${args[@]}"; rc=$?; rm -f "$tmp"; exit $rc"#,
    );
    let (_, b, _) = models();
    let f = flash(
        &sshd,
        "host",
        profiles.path(),
        b,
        &[],
        &[("KILN_SCP", &corrupt)],
    );
    assert!(!f.ok, "{}", f.stdout);
    assert!(
        f.stderr.contains("checksum mismatch for kiln-model"),
        "{}",
        f.stderr
    );
    assert!(
        f.stderr.contains("keeps its previous version"),
        "{}",
        f.stderr
    );
    let device = sshd.device_dir();
    assert_eq!(current(&device).as_deref(), Some(first.as_str()));
    assert_eq!(listing(&device), ["current".to_string(), first.clone()]);
    assert!(installed_version_runs(&device));
}

#[test]
fn a_failing_benchmark_rolls_back() {
    let _g = serial();
    let sshd = Sshd::start();
    let (_, _, first) = install_first(&sshd);
    // a runner that dies as a program built for the wrong CPU would
    let broken = profile(
        "host",
        &sshd.device_dir(),
        Some("sh -c 'echo Illegal instruction >&2; exit 132' kiln"),
    );
    let (_, b, _) = models();
    let f = flash(&sshd, "host", broken.path(), b, &[], &[]);
    assert!(!f.ok, "{}", f.stdout);
    assert!(f.stderr.contains("the benchmark on"), "{}", f.stderr);
    assert!(f.stderr.contains("exit 132"), "{}", f.stderr);
    assert!(f.stderr.contains("Illegal instruction"), "{}", f.stderr);
    assert!(
        f.stderr
            .contains(&format!("rolled back to the previous version {first}")),
        "{}",
        f.stderr
    );
    let device = sshd.device_dir();
    assert_eq!(current(&device).as_deref(), Some(first.as_str()));
    assert_eq!(listing(&device), ["current".to_string(), first.clone()]);
    assert!(installed_version_runs(&device));
}

#[test]
fn dry_run_prints_every_command_and_touches_nothing() {
    let _g = serial();
    let sshd = Sshd::start();
    let (a, _, _) = models();
    let profiles = profile("jetson", &sshd.device_dir(), None);
    let f = flash(
        &sshd,
        "jetson",
        profiles.path(),
        a,
        &["--dry-run", "--power-mode", "5W"],
        &[],
    );
    assert!(f.ok, "{}\n{}", f.stdout, f.stderr);
    for needle in [
        "BatchMode=yes",
        "ConnectTimeout=",
        "scp -q",
        "sha256sum kiln-model input.bin expected.bin",
        "nvpmodel -q",
        "nvpmodel -m 1",
        "in_power0_input",
        "--source device",
    ] {
        assert!(f.stdout.contains(needle), "no `{needle}` in\n{}", f.stdout);
    }
    assert!(
        !sshd.device_dir().exists(),
        "a dry run must not touch the device"
    );
}

#[test]
fn a_run_folder_gives_its_fronts_most_accurate_model() {
    let _g = serial();
    let sshd = Sshd::start();
    let (a, b, _) = models();
    // a run folder as kiln-search writes it: front.json fastest first, models under front/
    let run = tempfile::tempdir().unwrap();
    for (folder, model) in [("01-fast", b), ("02-accurate", a)] {
        let dir = run.path().join("front").join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(model, dir.join("model.onnx")).unwrap();
    }
    let model = |trial: u64, folder: &str, accuracy: f64| FrontModel {
        trial,
        genome_id: folder.to_string(),
        genome: serde_json::Value::Null,
        metrics: [(
            "accuracy".to_string(),
            Metric::new(accuracy, Unit::Fraction, Source::Host),
        )]
        .into(),
        folder: format!("front/{folder}"),
        // a front's ends are infinitely crowded-apart (`null` in the file), as the report
        // writes them
        crowding_distance: f64::INFINITY,
        labels: Default::default(),
    };
    let mut front = FrontFile {
        run: [("target".to_string(), "host".to_string())].into(),
        objectives: vec!["accuracy".into(), "latency".into()],
        front: vec![model(1, "01-fast", 0.91), model(2, "02-accurate", 0.97)],
    };
    front.write(run.path()).unwrap();
    let profiles = profile("host", &sshd.device_dir(), None);
    let flash_run = || {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["flash", "--target", "host", "--dry-run"])
            .args(sshd.ssh_args("--host"))
            .arg("--model")
            .arg(run.path())
            .arg("--out")
            .arg(out_dir(a, "host"))
            .arg("--targets-dir")
            .arg(profiles.path())
            .output()
            .unwrap()
    };
    let o = flash_run();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("02-accurate/model.onnx"), "{err}");

    // an empty front is an error that says why
    front.front.clear();
    front.write(run.path()).unwrap();
    let o = flash_run();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("the front is empty"), "{err}");
}

//! `cargo xtask lut build / check --source device` against the stand-in device of
//! tests/flash.rs: an sshd on a free loopback port, with the qemu-aarch64 profile (the
//! aarch64 musl builds run under qemu-aarch64 on this machine, so the figures are
//! emulated). A device that stops answering leaves a partial table that the next build
//! resumes; the check measures whole networks on the same path; a table measured on
//! another device is refused naming the field. Needs openssh-server, openssh-client and
//! qemu-user (scripts/setup.sh).

#[path = "common/cli.rs"]
#[allow(dead_code)]
mod cli;
#[path = "common/sshd.rs"]
mod sshd;

use std::path::Path;
use std::process::{Command, Output};

use cli::{text, tiny_space};
use sshd::{Sshd, profile, script};

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `cargo xtask lut VERB --source device` on the stand-in with the tiny space.
fn lut(verb: &str, sshd: &Sshd, profile: &Path, table: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["lut", verb, "--source", "device", "--target"])
        .arg(profile)
        .args(["--space", &tiny_space(), "--table"])
        .arg(table)
        .args(sshd.ssh_args("--device"))
        .args(["--runs", "5", "--fit", "2"])
        .args(extra);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("xtask starts")
}

#[test]
fn a_device_table_resumes_after_the_device_drops_and_checks_on_the_device() {
    let sshd = Sshd::start();
    let profiles = profile("qemu-aarch64", &sshd.device_dir(), None);
    let profile = profiles.path().join("qemu-aarch64.toml");
    let work = tempfile::tempdir().unwrap();
    let table = work.path().join("device.json");

    // An ssh that stops answering once the first batch is in the table file.
    let dropping = script(
        work.path(),
        "ssh-drops",
        &format!(
            "if [ -e '{}' ]; then echo 'ssh: connect to host 127.0.0.1 port {}: Connection \
             refused' >&2; exit 255; fi\nexec ssh \"$@\"",
            table.display(),
            sshd.port
        ),
    );
    let o =
        run(lut("build", &sshd, &profile, &table, &["--batch", "6"]).env("KILN_SSH", &dropping));
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot reach the device"), "{}", text(&o));
    assert!(
        err.contains("keeps the 6 layers measured so far"),
        "{}",
        text(&o)
    );
    assert!(
        err.contains("run the same command again to resume"),
        "{}",
        text(&o)
    );
    let t = json(&table);
    assert_eq!(t["entries"].as_array().unwrap().len(), 6, "{t}");
    let id = &t["identity"];
    assert_eq!(id["source"], "device");
    assert_eq!(id["device"], format!("127.0.0.1:{}", sshd.port));
    assert_eq!(id["runner"], "qemu-aarch64");
    assert!(t["overhead"].is_null());

    // The same command with a device that answers measures only what is missing.
    let o = run(&mut lut("build", &sshd, &profile, &table, &[]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("6 entries from"), "{}", text(&o));
    eprintln!("{}", text(&o));
    let t = json(&table);
    let entries = t["entries"].as_array().unwrap();
    assert!(entries.len() > 20, "{t}");
    for e in entries {
        assert_eq!(e["cost"]["source"], "device", "{e}");
        assert_eq!(e["cost"]["unit"], "us", "{e}");
        assert_eq!(e["best"]["source"], "device", "{e}");
        assert!(e["per_mode_ms"].as_object().unwrap().is_empty(), "{e}");
    }
    assert_eq!(t["overhead"]["fitted_on"], 2);
    assert_eq!(t["overhead"]["cost"]["unit"], "us");
    // the bundles went into the profile's kiln folder's lut/, nothing else
    let kiln = sshd::listing(&sshd.device_dir());
    assert_eq!(kiln, vec!["lut".to_string()], "{kiln:?}");

    // Whole networks measured on the device against the table's prediction.
    let report = work.path().join("check.json");
    let o = run(lut("check", &sshd, &profile, &table, &["--samples", "2"])
        .arg("--json")
        .arg(&report));
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // the figures, for the README (run with --nocapture)
    eprintln!("{}\n{}", String::from_utf8_lossy(&o.stderr), out);
    assert!(out.contains("device ms"), "{out}");
    assert!(out.contains("under qemu-aarch64: emulated"), "{out}");
    let r = json(&report);
    assert_eq!(r["source"], "device");
    assert_eq!(r["runner"], "qemu-aarch64");
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert!(row["measured_ms"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["predicted_ms"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["mac_bound_ms"].is_null(), "{row}");
    }
    assert_eq!(json(&table)["agreement"], r["agreement"]);

    // A table measured on another device is refused, naming the field.
    let mut t = json(&table);
    t["identity"]["device"] = "other-board:22".into();
    std::fs::write(&table, t.to_string()).unwrap();
    let o = run(&mut lut("build", &sshd, &profile, &table, &[]));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "device: table other-board:22, wanted 127.0.0.1:{}",
            sshd.port
        )),
        "{}",
        text(&o)
    );
}

#[test]
fn device_flags_must_fit_the_source_and_the_profile() {
    let o = cli::xtask(&["lut", "build", "--target", "jetson", "--source", "device"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("deploys over ssh: give --device USER@ADDR"),
        "{}",
        text(&o)
    );
    let o = cli::xtask(&["lut", "build", "--target", "jetson", "--device", "me@board"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("are for --source device"), "{}", text(&o));
}

//! `cargo xtask sizes` as a user runs it: the generated aarch64 program's
//! sections with the weights apart, and clear errors before anything is built.
//! (`--vs-tract` itself builds all of tract with LTO, minutes when cold, so it
//! is run by hand, not here.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A small sampled network (1x28x28, seeded random weights) as ONNX.
fn small_model(dir: &Path) -> PathBuf {
    let sampled = xtask(&["space", "sample", "--seed", "11"]);
    assert!(sampled.status.success(), "{}", text(&sampled.stderr));
    let genome = dir.join("g.json");
    std::fs::write(&genome, &sampled.stdout).unwrap();
    let model = dir.join("small.onnx");
    let o = xtask(&[
        "export-onnx",
        "--genome",
        genome.to_str().unwrap(),
        "--input",
        "1x28x28",
        "-o",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    model
}

/// The first byte count on the report line starting with `label`.
fn bytes_after(report: &str, label: &str) -> u64 {
    let line = report
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no line `{label}` in\n{report}"));
    line[label.len()..]
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in `{line}`"))
}

#[test]
fn aarch64_sizes_put_the_weights_apart_from_code() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(dir.path());
    let crate_dir = dir.path().join("crate");
    let o = xtask(&[
        "sizes",
        model.to_str().unwrap(),
        "--target",
        "jetson",
        "--out",
        crate_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report = text(&o.stdout);
    assert!(report.contains("[host]"), "figures unlabelled:\n{report}");

    let weights = std::fs::metadata(crate_dir.join("weights.bin"))
        .unwrap()
        .len();
    let program = crate_dir.join("out/kiln-model-aarch64-unknown-linux-musl");
    let file = std::fs::metadata(&program).unwrap().len();
    let text_bytes = bytes_after(&report, "text (code)");
    let rodata = bytes_after(&report, "rodata");
    let data = bytes_after(&report, "data");
    assert!(text_bytes > 0, "{report}");
    assert_eq!(bytes_after(&report, "file"), file, "{report}");
    // The weight blob is embedded in rodata and reported as its own figure.
    let weights_line = report
        .lines()
        .find(|l| l.trim_start().starts_with("rodata"))
        .unwrap();
    assert!(
        weights_line.contains(&format!("weights {weights} B")),
        "weights.bin is {weights} B; report:\n{report}"
    );
    assert!(rodata >= weights, "{report}");
    assert_eq!(
        bytes_after(&report, "size without weights"),
        text_bytes + rodata + data - weights,
        "{report}"
    );
    assert!(report.contains("goal: text <= 64 KiB"), "{report}");
    assert!(
        !report.contains("ratio"),
        "no tract figures without --vs-tract"
    );
}

#[test]
fn vs_tract_on_the_wasm_target_is_refused_before_building() {
    let o = xtask(&[
        "sizes",
        "does-not-matter.onnx",
        "--target",
        "wasm-sim",
        "--vs-tract",
    ]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("--vs-tract") && err.contains("aarch64"),
        "unclear error: {err}"
    );
}

#[test]
fn missing_aarch64_compiler_names_the_package_to_install() {
    // An empty PATH: no aarch64-linux-gnu-gcc, and no compiler named by the user.
    let empty = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["sizes", "m.onnx", "--target", "jetson", "--vs-tract"])
        .env("PATH", empty.path())
        .env_remove("CC_aarch64_unknown_linux_musl")
        .env_remove("TARGET_CC")
        .output()
        .expect("xtask starts");
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("apt-get install") && err.contains("gcc-aarch64-linux-gnu"),
        "error does not say what to install: {err}"
    );
}

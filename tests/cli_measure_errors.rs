//! `cargo xtask measure` when the toolchain cannot build for a profile: the
//! error names the target and the command that fixes it; no panic.

use std::path::Path;
use std::process::{Command, Output};

use kiln_onnx::{Attribute, Dim, GraphBuilder};

/// A one-conv ONNX model written to `dir/name.onnx`.
fn write_model(dir: &Path, name: &str) -> std::path::PathBuf {
    let mut g = GraphBuilder::new(name);
    g.input("input", &[1, 2, 4, 4].map(Dim::Fixed));
    g.initializer("w", &[2, 2, 1, 1], &[0.5, -0.25, 1.0, 0.75]);
    g.node(
        "conv",
        "Conv",
        &["input", "w"],
        &["logits"],
        vec![Attribute::ints("kernel_shape", &[1, 1])],
    );
    g.output("logits", None);
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, g.encode()).expect("write model");
    path
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn profiles() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets")
}

/// A Rust target whose standard library is missing. All of kiln's triples are
/// installed here, so the wasm32 std is hidden from the nested build by
/// pointing rustc at an empty sysroot for that target only: rustc then fails
/// exactly as on a machine without `rustup target add wasm32-unknown-unknown`.
#[test]
fn a_missing_rust_target_names_the_triple_and_the_install_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = write_model(dir.path(), "missing-target");
    let empty_sysroot = dir.path().join("empty-sysroot");
    std::fs::create_dir_all(&empty_sysroot).expect("sysroot dir");
    // A target dir of its own, so the crippled sysroot never touches the
    // shared one's builds; nothing is ever built there.
    let out = dir.path().join("kiln-missing-target-test");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("measure")
        .arg(&model)
        .args(["--target", "wasm-sim", "--runs", "0", "--targets-dir"])
        .arg(profiles())
        .arg("--out")
        .arg(&out)
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            format!("--sysroot={}", empty_sysroot.display()),
        )
        .output()
        .expect("xtask runs");
    let t = text(&o);
    assert!(!o.status.success(), "measure succeeded without a std:\n{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(
        t.contains("wasm32-unknown-unknown is missing")
            && t.contains("rustup target add wasm32-unknown-unknown"),
        "the error should name the target and `rustup target add`:\n{t}"
    );
}

/// A profile for a triple kiln cannot build for is refused when loaded, with
/// the triple and the supported ones named, before anything is built.
#[test]
fn a_profile_for_an_unsupported_triple_is_refused_with_the_supported_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = write_model(dir.path(), "riscv");
    let targets = dir.path().join("targets");
    std::fs::create_dir_all(&targets).expect("targets dir");
    let wasm_sim = std::fs::read_to_string(profiles().join("wasm-sim.toml")).expect("profile");
    let riscv = wasm_sim.replace("wasm32-unknown-unknown", "riscv64gc-unknown-linux-gnu");
    std::fs::write(targets.join("riscv-board.toml"), riscv).expect("profile");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("measure")
        .arg(&model)
        .args(["--target", "riscv-board", "--targets-dir"])
        .arg(&targets)
        .arg("--out")
        .arg(dir.path().join("crate"))
        .output()
        .expect("xtask runs");
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(
        t.contains("riscv-board")
            && t.contains("riscv64gc-unknown-linux-gnu")
            && t.contains("aarch64-unknown-linux-musl"),
        "the error should name the profile, its triple and the supported ones:\n{t}"
    );
}

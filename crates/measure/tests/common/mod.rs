//! Builds the fixture crates under tests/fixtures (stand-ins for generated
//! models) once per test binary, into the shared target dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const WASM: &str = "wasm32-unknown-unknown";
pub const AARCH64: &str = "aarch64-unknown-linux-musl";

fn fixtures_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/Cargo.toml")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

fn cargo_build(args: &[&str], what: &str) {
    cargo(&["build"], args, what);
}

fn cargo(command: &[&str], args: &[&str], what: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = fixtures_manifest();
    let status = Command::new(cargo)
        .args(command)
        .args(["--release", "--manifest-path"])
        .arg(&manifest)
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building the {what} fixtures failed; if the target is missing: `rustup target add {WASM} {AARCH64}`"
    );
}

/// The fixture's wasm module `name` (fixture_model, fixture_trap, fixture_spin, fixture_bigmem).
pub fn wasm(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        // The model as kiln-codegen builds a generated crate for wasm
        // (`build_bin` with `BuildTarget::Wasm32`, crates/codegen/src/build.rs).
        cargo(
            &["rustc"],
            &[
                "-p",
                "fixture-model",
                "--lib",
                "--crate-type",
                "cdylib",
                "--target",
                WASM,
                "--",
                "-C",
                "link-arg=-zstack-size=65536",
            ],
            "wasm",
        );
        let others = [
            "--target",
            WASM,
            "--workspace",
            "--exclude",
            "fixture-model",
            "--lib",
        ];
        cargo_build(&others, "wasm");
    });
    target_dir()
        .join(WASM)
        .join("release")
        .join(format!("{name}.wasm"))
}

/// The fixture model's command-line program for this machine.
pub fn host_model() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| cargo_build(&["-p", "fixture-model", "--bin", "fixture-model"], "host"));
    target_dir().join("release").join("fixture-model")
}

/// The fixture model's program for aarch64 (static musl, rust-lld; settings
/// from the workspace's .cargo/config.toml).
pub fn aarch64_model() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        cargo_build(
            &[
                "--target",
                AARCH64,
                "-p",
                "fixture-model",
                "--bin",
                "fixture-model",
            ],
            "aarch64",
        )
    });
    target_dir()
        .join(AARCH64)
        .join("release")
        .join("fixture-model")
}

pub const INPUT_LEN: usize = 64;
pub const HIDDEN_LEN: usize = 32;
pub const OUTPUT_LEN: usize = 16;
/// Bytes of the fixture model's weights and biases.
pub const WEIGHT_BYTES: u64 =
    ((INPUT_LEN * HIDDEN_LEN + HIDDEN_LEN + HIDDEN_LEN * OUTPUT_LEN + OUTPUT_LEN) * 4) as u64;

fn weights(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + salt) % 13) as f32 * 0.0625 - 0.375)
        .collect()
}

/// The fixture model computed independently, in plain Rust.
pub fn reference(input: &[f32]) -> Vec<f32> {
    let (w1, b1) = (weights(INPUT_LEN * HIDDEN_LEN, 1), weights(HIDDEN_LEN, 2));
    let (w2, b2) = (weights(HIDDEN_LEN * OUTPUT_LEN, 3), weights(OUTPUT_LEN, 4));
    let hidden: Vec<f32> = (0..HIDDEN_LEN)
        .map(|j| {
            (b1[j]
                + (0..INPUT_LEN)
                    .map(|i| input[i] * w1[i * HIDDEN_LEN + j])
                    .sum::<f32>())
            .max(0.0)
        })
        .collect();
    (0..OUTPUT_LEN)
        .map(|j| {
            b2[j]
                + (0..HIDDEN_LEN)
                    .map(|i| hidden[i] * w2[i * OUTPUT_LEN + j])
                    .sum::<f32>()
        })
        .collect()
}

pub fn sample_input(seed: u32) -> Vec<f32> {
    (0..INPUT_LEN as u32)
        .map(|i| ((i * 37 + seed * 11) % 29) as f32 / 29.0 - 0.5)
        .collect()
}

pub fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "value {i}: {x} vs {y}");
    }
}

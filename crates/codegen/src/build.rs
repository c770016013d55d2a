//! The toolchain: cargo invocations that build a generated crate (and the
//! tract reference program `cargo xtask sizes --vs-tract` compares with).
//! cargo runs through kiln-process with [`BUILD_TIMEOUT`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_process::Cmd;

use crate::CodegenError;

/// The longest one cargo build may take before it is stopped: a cold build
/// of the runtime is seconds, of the tract reference (all of tract with LTO)
/// tens of minutes on a small machine.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Variables an outer cargo sets for build scripts and tests that must not
/// leak into a nested build.
const OUTER_CARGO_VARS: [&str; 5] = [
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_MAKEFLAGS",
    "CARGO_PRIMARY_PACKAGE",
];

/// `cargo` (the one running kiln, if any) with the outer cargo's variables removed.
pub(crate) fn cargo() -> Cmd {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    OUTER_CARGO_VARS
        .iter()
        .fold(Cmd::new(cargo), |cmd, var| cmd.env_remove(var))
}

/// Runs a cargo build; a failure carries the last 40 lines of cargo's stderr
/// and, when the Rust target is missing, the command that installs it.
pub(crate) fn run_cargo(cmd: &Cmd, triple: Option<&str>) -> Result<(), String> {
    let out = kiln_process::run(cmd, None, BUILD_TIMEOUT).map_err(|e| e.to_string())?;
    if out.success() {
        return Ok(());
    }
    let stderr = out.stderr_text();
    let missing = ["may not be installed", "can't find crate for `core`"]
        .iter()
        .any(|m| stderr.contains(m));
    let hint = match triple {
        Some(t) if missing => {
            format!("\nthe Rust target {t} is missing; install it with `rustup target add {t}`")
        }
        _ => String::new(),
    };
    Err(format!(
        "cargo failed ({}):\n{}{hint}",
        out.status_text(),
        out.stderr_tail(40)
    ))
}

/// What to build a generated crate for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildTarget {
    /// This machine, the `kiln-model` binary, tuned for this CPU.
    Host,
    /// Static `kiln-model` binary for aarch64 Linux (musl, linked by rust-lld).
    Aarch64Musl,
    /// `kiln_model.wasm`: a cdylib with the exports of `wasm_entry!` and its
    /// linear memory, 64 KiB stack (`-zstack-size=65536`).
    Wasm32,
}

impl BuildTarget {
    /// The `--target` cargo is given; `None` for the host (no `--target`, so
    /// the program lands in `release/` and may use `-Ctarget-cpu=native`).
    pub fn triple(self) -> Option<&'static str> {
        match self {
            BuildTarget::Host => None,
            BuildTarget::Aarch64Musl => Some("aarch64-unknown-linux-musl"),
            BuildTarget::Wasm32 => Some("wasm32-unknown-unknown"),
        }
    }

    fn name(self) -> &'static str {
        self.triple().unwrap_or("host")
    }
}

/// The target dir generated crates share: `$CARGO_TARGET_DIR/kiln-models`, or
/// `target/kiln-models` under the kiln workspace. A subdirectory, so a nested
/// build never waits on the lock of the cargo that runs kiln itself.
pub fn default_target_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    base.join("kiln-models")
}

/// Builds the crate in `crate_dir` (release) and copies the artifact into
/// `crate_dir/out/`, since all models share `target_dir`. Returns its path:
/// `out/kiln-model-host`, `out/kiln-model-aarch64-unknown-linux-musl` or
/// `out/kiln_model.wasm`.
///
/// Builds into one `target_dir` are serialised by a file lock
/// (`target_dir/.kiln-build.lock`), across threads and processes.
///
/// Errors: [`CodegenError::Build`] when cargo fails or times out (naming
/// `rustup target add` when the Rust target is missing);
/// [`CodegenError::Io`] for the lock, a stale wasm file or the copy.
pub fn build(
    crate_dir: &Path,
    target: BuildTarget,
    target_dir: &Path,
) -> Result<PathBuf, CodegenError> {
    build_bin(crate_dir, "kiln-model", target, target_dir)
}

/// Takes `target_dir/.kiln-build.lock` exclusively, waiting for whoever holds
/// it; released when the returned file is dropped.
fn lock_target_dir(target_dir: &Path) -> Result<std::fs::File, CodegenError> {
    let path = target_dir.join(".kiln-build.lock");
    let io = |source| CodegenError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(target_dir).map_err(io)?;
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    file.lock().map_err(io)?;
    Ok(file)
}

/// [`build`] for a crate whose binary is called `bin` (`kiln-bundle`); the
/// artifact is `out/<bin>-<triple or host>` or `out/<bin with _>.wasm`.
pub fn build_bin(
    crate_dir: &Path,
    bin: &str,
    target: BuildTarget,
    target_dir: &Path,
) -> Result<PathBuf, CodegenError> {
    let err = |message: String| CodegenError::Build {
        crate_dir: crate_dir.to_path_buf(),
        target: target.name().to_string(),
        message,
    };
    // Every model's binary is uplifted to the same path of the target dir
    // (`release/kiln-model`); building and copying it out must not interleave
    // with another build there, or we would copy its model. A file lock, so
    // it holds across threads (each opens its own handle) and across
    // processes (a search, a measure and a test sharing the dir).
    let _lock = lock_target_dir(target_dir)?;
    let profile_dir = match target.triple() {
        None => target_dir.join("release"),
        Some(t) => target_dir.join(t).join("release"),
    };
    let wasm_file = format!("{}.wasm", bin.replace('-', "_"));
    if target == BuildTarget::Wasm32 {
        // A cdylib's file name carries no metadata hash: every generated crate
        // writes the same `deps/kiln_model.wasm`, while cargo keeps each
        // model's fingerprint apart, so a model rebuilt after another one is
        // "fresh" and the file left there is the other model's. Without the
        // file, cargo rebuilds this model (the runtime stays built).
        for stale in [
            profile_dir.join("deps").join(&wasm_file),
            profile_dir.join(&wasm_file),
        ] {
            match std::fs::remove_file(&stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(CodegenError::Io {
                        path: stale,
                        source: e,
                    });
                }
                _ => {}
            }
        }
    }
    let mut cmd = cargo();
    cmd = match target {
        BuildTarget::Host => cmd
            .args(["build", "--release", "--bin", bin])
            .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-cpu=native"),
        BuildTarget::Aarch64Musl => cmd
            .args(["build", "--release", "--bin", bin, "--target"])
            .arg("aarch64-unknown-linux-musl")
            .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld")
            .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static"),
        BuildTarget::Wasm32 => cmd.args([
            "rustc",
            "--release",
            "--lib",
            "--crate-type",
            "cdylib",
            "--target",
            "wasm32-unknown-unknown",
        ]),
    };
    cmd = cmd
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .arg("--quiet");
    if target == BuildTarget::Wasm32 {
        cmd = cmd.args(["--", "-C", "link-arg=-zstack-size=65536"]);
    }
    run_cargo(&cmd, target.triple()).map_err(err)?;
    let (artifact, file_name) = match target {
        BuildTarget::Wasm32 => (profile_dir.join(&wasm_file), wasm_file),
        _ => (profile_dir.join(bin), format!("{bin}-{}", target.name())),
    };
    let dest_dir = crate_dir.join("out");
    std::fs::create_dir_all(&dest_dir).map_err(|e| CodegenError::Io {
        path: dest_dir.clone(),
        source: e,
    })?;
    let dest = dest_dir.join(file_name);
    std::fs::copy(&artifact, &dest).map_err(|e| CodegenError::Io {
        path: artifact.clone(),
        source: e,
    })?;
    Ok(dest)
}

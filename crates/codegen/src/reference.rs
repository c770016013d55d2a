//! The tract reference program (`crates/lower/examples/tract_infer.rs`) built
//! for a triple, so `cargo xtask sizes --vs-tract` compares two programs built
//! with the same settings. Building it is the toolchain's job, so it lives
//! beside the generated crate's build.

use std::path::{Path, PathBuf};

use crate::CodegenError;
use crate::build::{cargo, run_cargo};

/// The cargo profile of the tract reference: release with the settings every
/// generated crate gets (root Cargo.toml, `[profile.tract-size]`).
pub const TRACT_PROFILE: &str = "tract-size";
const TRACT_EXAMPLE: &str = "tract_infer";

/// The aarch64 C compiler tract-linalg's assembly kernels need, and what
/// installs it on Debian.
const AARCH64_CC: &str = "aarch64-linux-gnu-gcc";
const AARCH64_CC_INSTALL: &str =
    "apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross";

/// The variables cargo needs to build tract for `triple`: rust-lld for
/// aarch64 and, since tract-linalg assembles its NEON kernels with the `cc`
/// crate, an aarch64 C compiler unless the user has set one (`CC_<triple>`
/// or `TARGET_CC`). `host` is whether `triple` is this machine's.
///
/// Errors: [`CodegenError::Build`] naming the missing compiler and its
/// install command; checked before anything is built.
pub fn tract_toolchain_env(
    triple: &str,
    host: bool,
) -> Result<Vec<(String, String)>, CodegenError> {
    if !triple.starts_with("aarch64") || host {
        return Ok(Vec::new());
    }
    let env_triple = triple.replace('-', "_");
    let mut env = vec![(
        format!("CARGO_TARGET_{}_LINKER", env_triple.to_uppercase()),
        "rust-lld".to_string(),
    )];
    let cc_var = format!("CC_{env_triple}");
    if std::env::var_os(&cc_var).is_some() || std::env::var_os("TARGET_CC").is_some() {
        return Ok(env);
    }
    if !kiln_process::on_path(AARCH64_CC) {
        return Err(CodegenError::Build {
            crate_dir: PathBuf::from("crates/lower"),
            target: triple.to_string(),
            message: format!(
                "building tract for {triple} needs an aarch64 C compiler for tract-linalg's assembly kernels, and {AARCH64_CC} is not on PATH; install it with `{AARCH64_CC_INSTALL}` (or set {cc_var} to another aarch64 compiler)"
            ),
        });
    }
    env.push((cc_var, AARCH64_CC.to_string()));
    env.push((
        format!("AR_{env_triple}"),
        "aarch64-linux-gnu-ar".to_string(),
    ));
    Ok(env)
}

/// Builds the tract reference example of the kiln workspace at
/// `workspace_root` for `triple` into `target_dir` (profile
/// [`TRACT_PROFILE`]) and returns the binary's path. `env` comes from
/// [`tract_toolchain_env`]. Runs from the workspace so its
/// `.cargo/config.toml` (rust-lld, self-contained musl) applies.
///
/// Errors: [`CodegenError::Build`] when cargo fails (with a hint when an
/// aarch64 C compiler seems missing) or the binary is not where expected.
pub fn build_tract_reference(
    workspace_root: &Path,
    triple: &str,
    target_dir: &Path,
    env: &[(String, String)],
) -> Result<PathBuf, CodegenError> {
    let err = |message: String| CodegenError::Build {
        crate_dir: workspace_root.join("crates/lower"),
        target: triple.to_string(),
        message,
    };
    let cmd = env.iter().fold(
        cargo()
            .current_dir(workspace_root)
            .args(["build", "--quiet", "--package", "kiln-lower", "--example"])
            .arg(TRACT_EXAMPLE)
            .args([
                "--profile",
                TRACT_PROFILE,
                "--target",
                triple,
                "--manifest-path",
            ])
            .arg(workspace_root.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir),
        |cmd, (k, v)| cmd.env(k, v),
    );
    run_cargo(&cmd, Some(triple)).map_err(|m| {
        let hint = if m.contains("failed to find tool") || m.contains("No such file or directory") {
            format!(
                "\nan aarch64 C compiler may be missing; install one with `{AARCH64_CC_INSTALL}`"
            )
        } else {
            String::new()
        };
        err(format!("building the tract reference: {m}{hint}"))
    })?;
    let binary = target_dir
        .join(triple)
        .join(TRACT_PROFILE)
        .join("examples")
        .join(TRACT_EXAMPLE);
    if !binary.is_file() {
        return Err(err(format!(
            "cargo built the tract reference but {} is missing",
            binary.display()
        )));
    }
    Ok(binary)
}

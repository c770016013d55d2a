//! Running `cargo xtask` as a user does, for the end-to-end tests.

use std::process::{Command, Output};

/// Runs the xtask binary with `args`.
pub fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask starts")
}

/// stdout and stderr of `o`, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The small search space whose networks train and build in seconds.
pub fn tiny_space() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/tiny-space.toml"
    )
    .to_string()
}

/// `lut build --target TARGET --space <tiny space> --table TABLE` with `extra` flags.
pub fn lut_build(target: &str, table: &std::path::Path, extra: &[&str]) -> Output {
    lut("build", target, table, extra)
}

/// `lut check --target TARGET --space <tiny space> --table TABLE` with `extra` flags.
#[allow(dead_code)] // each test binary compiles this module; not all check tables
pub fn lut_check(target: &str, table: &std::path::Path, extra: &[&str]) -> Output {
    lut("check", target, table, extra)
}

fn lut(command: &str, target: &str, table: &std::path::Path, extra: &[&str]) -> Output {
    let space = tiny_space();
    let mut args = vec![
        "lut",
        command,
        "--target",
        target,
        "--space",
        &space,
        "--table",
        table.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    xtask(&args)
}

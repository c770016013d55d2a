//! `host::run` against small shell-script stand-ins for a generated program,
//! one per behaviour the protocol allows or forbids.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use kiln_measure::host::{self, run, run_with};
use kiln_measure::{MeasureError, Runner};

fn script(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn echoing_program_returns_its_input_values() {
    let dir = tempfile::tempdir().unwrap();
    let echo = script(&dir, "echo-model", "exec cat");
    let input = [1.5f32, -2.25, 0.0, 1e-7, f32::MAX];
    assert_eq!(run(&echo, &input).unwrap(), input);
}

#[test]
fn large_input_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let echo = script(&dir, "echo-model", "exec cat");
    let input: Vec<f32> = (0..300_000).map(|i| i as f32).collect();
    assert_eq!(run(&echo, &input).unwrap(), input);
}

#[test]
fn missing_binary_is_named() {
    let err = run(std::path::Path::new("/nonexistent/kiln-model"), &[1.0]).unwrap_err();
    assert!(matches!(err, MeasureError::BinaryMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/kiln-model"), "{err}");
}

#[test]
fn non_zero_exit_carries_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let bad = script(
        &dir,
        "short-input",
        "cat >/dev/null; echo 'expected 12 bytes of input, got 4' >&2; exit 2",
    );
    let err = run(&bad, &[1.0]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, MeasureError::ProgramFailed { .. }), "{err:?}");
    assert!(text.contains("expected 12 bytes of input, got 4"), "{text}");
    assert!(text.contains("exit status: 2"), "{text}");
}

#[test]
fn program_exiting_without_reading_input_is_reported_not_hung() {
    let dir = tempfile::tempdir().unwrap();
    let bad = script(&dir, "refuses", "echo refused >&2; exit 3");
    let input = vec![0.0f32; 1 << 20];
    let err = run(&bad, &input).unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
}

#[test]
fn partial_f32_output_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let odd = script(&dir, "odd", "cat >/dev/null; printf abcdef");
    let err = run(&odd, &[1.0]).unwrap_err();
    assert!(
        matches!(err, MeasureError::WrongOutputLength { bytes: 6, .. }),
        "{err:?}"
    );
}

#[test]
fn empty_output_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let silent = script(&dir, "silent", "cat >/dev/null");
    let err = run(&silent, &[1.0]).unwrap_err();
    assert!(
        matches!(err, MeasureError::WrongOutputLength { bytes: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn output_length_is_checked_when_known() {
    let dir = tempfile::tempdir().unwrap();
    let echo = script(&dir, "echo-model", "exec cat");
    let err = run_with(
        &Runner::Native,
        &echo,
        &[1.0, 2.0, 3.0],
        Some(10),
        host::DEFAULT_RUN_TIMEOUT,
    )
    .unwrap_err();
    assert!(err.to_string().contains("expected 10 f32 values"), "{err}");
}

#[test]
fn hanging_program_is_killed_after_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let hang = script(&dir, "hang", "exec sleep 600");
    let err = run_with(
        &Runner::Native,
        &hang,
        &[1.0],
        None,
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(matches!(err, MeasureError::Timeout { .. }), "{err:?}");
}

#[test]
fn missing_emulator_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let echo = script(&dir, "echo-model", "exec cat");
    let runner = Runner::Emulator {
        program: PathBuf::from("kiln-no-such-emulator"),
        install: "apt-get install -y qemu-user".into(),
    };
    let err = run_with(&runner, &echo, &[1.0], None, host::DEFAULT_RUN_TIMEOUT).unwrap_err();
    assert!(matches!(err, MeasureError::ToolMissing { .. }), "{err:?}");
    assert!(
        err.to_string().contains("apt-get install -y qemu-user"),
        "{err}"
    );
}

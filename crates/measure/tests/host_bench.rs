//! Host and emulated (qemu-aarch64) runs of the fixture model's program.

mod common;

use std::os::unix::fs::PermissionsExt;

use kiln_measure::host::{self, DEFAULT_BENCH_TIMEOUT, DEFAULT_RUN_TIMEOUT};
use kiln_measure::{MeasureError, Runner, Source, Unit};

#[test]
fn native_program_output_matches_the_reference() {
    let input = common::sample_input(4);
    let output = host::run(&common::host_model(), &input).unwrap();
    common::assert_close(&output, &common::reference(&input), 1e-5);
}

#[test]
fn aarch64_program_under_qemu_matches_the_native_program() {
    let input = common::sample_input(5);
    let native = host::run(&common::host_model(), &input).unwrap();
    let emulated = host::run_with(
        &Runner::qemu_aarch64(),
        &common::aarch64_model(),
        &input,
        Some(common::OUTPUT_LEN),
        DEFAULT_RUN_TIMEOUT,
    )
    .unwrap();
    common::assert_close(&emulated, &native, 1e-5);
}

#[test]
fn wrong_input_length_exit_is_reported_with_the_programs_message() {
    let err = host::run(&common::host_model(), &[1.0; 3]).unwrap_err();
    assert!(matches!(err, MeasureError::ProgramFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("expected 256 bytes"), "{err}");
}

#[test]
fn native_bench_reports_ordered_host_timings() {
    let timing = host::bench(
        &Runner::Native,
        &common::host_model(),
        &common::sample_input(6),
        3,
        25,
        DEFAULT_BENCH_TIMEOUT,
    )
    .unwrap();
    assert_eq!(timing.runs, 25);
    assert!(!timing.emulated);
    assert_eq!(timing.label(), "host");
    let figures = [timing.min, timing.p50, timing.p95, timing.max];
    assert!(
        figures
            .iter()
            .all(|m| m.source == Source::Host && m.unit == Unit::Microseconds)
    );
    assert!(
        figures.windows(2).all(|w| w[0].value <= w[1].value),
        "{figures:?}"
    );
}

#[test]
fn emulated_bench_is_labelled_as_emulated() {
    let timing = host::bench(
        &Runner::qemu_aarch64(),
        &common::aarch64_model(),
        &common::sample_input(7),
        1,
        5,
        DEFAULT_BENCH_TIMEOUT,
    )
    .unwrap();
    assert!(timing.emulated);
    assert!(
        timing.label().contains("emulated under qemu-aarch64"),
        "{}",
        timing.label()
    );
    assert!(timing.label().contains("not device latency"));
}

fn script(dir: &tempfile::TempDir, body: &str) -> std::path::PathBuf {
    let path = dir.path().join("bench-model");
    std::fs::write(&path, format!("#!/bin/sh\ncat >/dev/null\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn malformed_bench_reports_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("echo 'all good'", "no line starting"),
        ("echo '{\"runs\": 3}'", "not a bench report"),
        (
            r#"echo '{"source":"device","runs":3,"p50_us":2,"p95_us":3,"min_us":1,"max_us":4}'"#,
            "source is `device`",
        ),
        (
            r#"echo '{"source":"host","runs":3,"p50_us":5,"p95_us":3,"min_us":1,"max_us":4}'"#,
            "not ordered",
        ),
    ];
    for (body, expected) in cases {
        let program = script(&dir, body);
        let err = host::bench(
            &Runner::Native,
            &program,
            &[1.0],
            1,
            3,
            DEFAULT_BENCH_TIMEOUT,
        )
        .unwrap_err();
        assert!(
            matches!(err, MeasureError::BadBenchReport { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(expected), "{body}: {err}");
    }
}

#[test]
fn bench_report_with_extra_fields_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        &dir,
        r#"echo 'warming up'; echo '{"source":"host","runs":3,"p50_us":2,"p95_us":3,"min_us":1,"max_us":4,"peak_rss_kb":900,"output_ok":true}'"#,
    );
    let timing = host::bench(
        &Runner::Native,
        &program,
        &[1.0],
        1,
        3,
        DEFAULT_BENCH_TIMEOUT,
    )
    .unwrap();
    assert_eq!(timing.p95.value, 3.0);
}

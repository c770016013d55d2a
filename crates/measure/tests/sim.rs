//! The simulated device on fixture wasm modules shaped like generated models.

mod common;

use std::time::Duration;

use kiln_measure::sim::{SimError, SimLimits, SimModule};
use kiln_measure::{Source, Unit};

#[test]
fn model_output_matches_the_reference_and_fuel_is_reported() {
    let module = SimModule::load(&common::wasm("fixture_model")).unwrap();
    let input = common::sample_input(1);
    let run = module.run(&input, &SimLimits::default()).unwrap();
    common::assert_close(&run.output, &common::reference(&input), 1e-5);
    // Two dense layers: at least one operator per multiply-add.
    let macs =
        (common::INPUT_LEN * common::HIDDEN_LEN + common::HIDDEN_LEN * common::OUTPUT_LEN) as u64;
    assert!(run.fuel >= macs, "fuel {} for {macs} MACs", run.fuel);
    assert_eq!(run.fuel_metric().source, Source::Sim);
    assert_eq!(run.fuel_metric().unit, Unit::Fuel);
}

#[test]
fn fuel_is_deterministic_across_runs_and_compilations() {
    let path = common::wasm("fixture_model");
    let input = common::sample_input(2);
    let first = SimModule::load(&path).unwrap();
    let a = first.run(&input, &SimLimits::default()).unwrap();
    let b = first.run(&input, &SimLimits::default()).unwrap();
    let c = SimModule::load(&path)
        .unwrap()
        .run(&input, &SimLimits::default())
        .unwrap();
    assert_eq!(a.fuel, b.fuel);
    assert_eq!(a.fuel, c.fuel);
    assert_eq!(a.output, c.output);
}

#[test]
fn peak_memory_covers_the_modules_linear_memory() {
    let module = SimModule::load(&common::wasm("fixture_model")).unwrap();
    let run = module
        .run(&common::sample_input(3), &SimLimits::default())
        .unwrap();
    // At least the 64 KiB stack plus the weights; whole wasm pages.
    assert!(
        run.peak_memory_bytes >= 65536 + common::WEIGHT_BYTES,
        "{}",
        run.peak_memory_bytes
    );
    assert_eq!(run.peak_memory_bytes % 65536, 0);
    let big = SimModule::load(&common::wasm("fixture_bigmem")).unwrap();
    let big_run = big.run(&[1.0; 4], &SimLimits::default()).unwrap();
    assert!(
        big_run.peak_memory_bytes >= 64 << 20,
        "{}",
        big_run.peak_memory_bytes
    );
}

#[test]
fn panic_in_the_model_is_an_unreachable_trap_with_advice() {
    let module = SimModule::load(&common::wasm("fixture_trap")).unwrap();
    let err = module.run(&[1.0; 4], &SimLimits::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SimError::Trap { .. }), "{err:?}");
    assert!(text.contains("unreachable"), "{text}");
    assert!(text.contains("panicked"), "{text}");
    assert!(text.contains("fixture_trap"), "{text}");
}

#[test]
fn runaway_model_runs_out_of_fuel() {
    let module = SimModule::load(&common::wasm("fixture_spin")).unwrap();
    let limits = SimLimits {
        fuel: 1_000_000,
        ..SimLimits::default()
    };
    let err = module.run(&[1.0; 4], &limits).unwrap_err();
    assert!(
        matches!(
            err,
            SimError::OutOfFuel {
                limit: 1_000_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("raise the fuel limit"), "{err}");
}

#[test]
fn runaway_model_is_stopped_by_the_epoch_deadline() {
    let module = SimModule::load(&common::wasm("fixture_spin")).unwrap();
    let limits = SimLimits {
        fuel: u64::MAX,
        timeout: Duration::from_millis(200),
        ..SimLimits::default()
    };
    let err = module.run(&[1.0; 4], &limits).unwrap_err();
    assert!(matches!(err, SimError::Timeout { .. }), "{err:?}");
}

#[test]
fn model_over_the_memory_limit_is_refused() {
    let module = SimModule::load(&common::wasm("fixture_bigmem")).unwrap();
    let limits = SimLimits {
        max_memory_bytes: 16 << 20,
        ..SimLimits::default()
    };
    let err = module.run(&[1.0; 4], &limits).unwrap_err();
    assert!(
        matches!(err, SimError::OutOfMemory { limit, requested, .. } if limit == 16 << 20 && requested >= 64 << 20),
        "{err:?}"
    );
}

#[test]
fn wrong_input_length_is_named() {
    let module = SimModule::load(&common::wasm("fixture_model")).unwrap();
    let err = module.run(&[1.0; 3], &SimLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            SimError::InputLength {
                expected: 64,
                got: 3,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn module_without_kiln_exports_is_rejected() {
    // The smallest valid wasm module: magic and version, no sections.
    let empty = b"\0asm\x01\0\0\0";
    let module = SimModule::from_bytes(empty, "empty.wasm").unwrap();
    let err = module.run(&[], &SimLimits::default()).unwrap_err();
    assert!(matches!(err, SimError::MissingExport { .. }), "{err:?}");
    assert!(err.to_string().contains("empty.wasm"), "{err}");
}

#[test]
fn non_wasm_bytes_are_a_compile_error_and_missing_files_are_named() {
    let err = SimModule::from_bytes(b"not wasm", "junk.wasm").unwrap_err();
    assert!(matches!(err, SimError::Compile { .. }), "{err:?}");
    let err = SimModule::load(std::path::Path::new("/nonexistent/model.wasm")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/model.wasm"), "{err}");
}

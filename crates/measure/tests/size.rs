//! Section sizes of the fixture model's wasm and aarch64 builds.

mod common;

use kiln_measure::Source;
use kiln_measure::size::{BinaryFormat, SizeError, model_size, section_sizes};

#[test]
fn wasm_code_and_data_sections_are_read() {
    let path = common::wasm("fixture_model");
    let sizes = section_sizes(&path).unwrap();
    assert_eq!(sizes.format, BinaryFormat::Wasm);
    assert!(sizes.text > 0);
    // The weights are initialised data, so they sit in the data section.
    assert!(sizes.data >= common::WEIGHT_BYTES, "{sizes:?}");
    assert!(sizes.text + sizes.data <= sizes.file_bytes);
    assert_eq!(sizes.bss, 0);
}

#[test]
fn aarch64_elf_sections_are_grouped_and_weights_told_apart() {
    let path = common::aarch64_model();
    let size = model_size(&path, Some(common::WEIGHT_BYTES), Some(512)).unwrap();
    let s = &size.sections;
    assert_eq!(s.format, BinaryFormat::Elf);
    assert!(s.text > 0 && s.data > 0 && s.bss > 0, "{s:?}");
    assert!(s.rodata >= common::WEIGHT_BYTES, "{s:?}");
    assert!(s.text + s.rodata + s.data <= s.file_bytes, "{s:?}");
    assert_eq!(size.code.value as u64, s.text);
    assert_eq!(size.weights.unwrap().value as u64, common::WEIGHT_BYTES);
    assert_eq!(
        size.constants_other_than_weights.unwrap().value as u64,
        s.rodata - common::WEIGHT_BYTES
    );
    assert_eq!(size.static_memory.value as u64, s.data + s.bss);
    assert_eq!(size.arena.unwrap().value, 512.0);
    assert!(
        [size.code, size.static_memory, size.file]
            .iter()
            .all(|m| m.source == Source::Host)
    );
}

#[test]
fn host_elf_is_read() {
    let sizes = section_sizes(&common::host_model()).unwrap();
    assert_eq!(sizes.format, BinaryFormat::Elf);
    assert!(sizes.text > 0);
}

#[test]
fn non_binary_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "not a binary").unwrap();
    let err = section_sizes(&path).unwrap_err();
    assert!(matches!(err, SizeError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    let err = section_sizes(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, SizeError::Read { .. }), "{err:?}");
}

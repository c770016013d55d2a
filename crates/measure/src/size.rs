//! Per-section sizes of built programs, read with the `object` crate.
//!
//! ELF: allocated sections grouped into text (code), rodata, data and bss.
//! Wasm: the code section and the data section (initialised linear memory);
//! zero-initialised wasm memory (its "bss") is not in the file, so wasm memory
//! is measured at run time instead (see `sim`).

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, SectionKind};
use serde::Serialize;

use crate::{Metric, Source, Unit};

/// Errors reading a binary's sections.
#[derive(Debug, thiserror::Error)]
pub enum SizeError {
    #[error("cannot read binary {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an ELF or wasm file kiln can read: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("{path} is a {format} file; kiln measures ELF and wasm builds")]
    UnsupportedFormat { path: PathBuf, format: String },
}

/// The container format of a measured binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BinaryFormat {
    Elf,
    Wasm,
}

/// Section sizes of one binary, in bytes.
///
/// For wasm, `text` is the code section, `data` the data section, `rodata` is
/// 0 (read-only data lives in the data section) and `bss` is 0 (not in the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionSizes {
    pub format: BinaryFormat,
    pub file_bytes: u64,
    pub text: u64,
    pub rodata: u64,
    pub data: u64,
    pub bss: u64,
}

impl SectionSizes {
    /// Memory the binary claims before running: initialised plus zeroed data.
    pub fn static_footprint(&self) -> u64 {
        self.data + self.bss
    }
}

/// Sizes of a generated model's binary with its weights told apart from code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSize {
    pub sections: SectionSizes,
    /// Machine code (ELF `.text`, wasm code section).
    pub code: Metric,
    /// The weight blob (size of the generated crate's `weights.bin`), if known.
    pub weights: Option<Metric>,
    /// Read-only data (ELF) or data section (wasm) other than the weights.
    pub constants_other_than_weights: Option<Metric>,
    /// Data + bss: static memory the program holds while running (ELF only;
    /// wasm's zeroed memory is not in the file).
    pub static_memory: Metric,
    /// The model's intermediate-tensor arena, as planned by the compiler.
    pub arena: Option<Metric>,
    /// The whole file on disk.
    pub file: Metric,
}

/// Reads the section sizes of the ELF or wasm file at `path`.
pub fn section_sizes(path: &Path) -> Result<SectionSizes, SizeError> {
    let bytes = std::fs::read(path).map_err(|source| SizeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    section_sizes_of(&bytes, path)
}

/// Like [`section_sizes`] for bytes already in memory; `path` names them in errors.
pub fn section_sizes_of(bytes: &[u8], path: &Path) -> Result<SectionSizes, SizeError> {
    let file = object::File::parse(bytes).map_err(|e| SizeError::Parse {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let format = match file.format() {
        object::BinaryFormat::Elf => BinaryFormat::Elf,
        object::BinaryFormat::Wasm => BinaryFormat::Wasm,
        other => {
            return Err(SizeError::UnsupportedFormat {
                path: path.to_path_buf(),
                format: format!("{other:?}"),
            });
        }
    };
    let mut sizes = SectionSizes {
        format,
        file_bytes: bytes.len() as u64,
        text: 0,
        rodata: 0,
        data: 0,
        bss: 0,
    };
    for section in file.sections() {
        let size = section.size();
        match format {
            BinaryFormat::Elf => {
                if !is_allocated_elf_section(&section) {
                    continue;
                }
                match section.kind() {
                    SectionKind::Text => sizes.text += size,
                    SectionKind::ReadOnlyData
                    | SectionKind::ReadOnlyDataWithRel
                    | SectionKind::ReadOnlyString => sizes.rodata += size,
                    SectionKind::Data | SectionKind::Tls => sizes.data += size,
                    SectionKind::UninitializedData
                    | SectionKind::UninitializedTls
                    | SectionKind::Common => sizes.bss += size,
                    _ => {}
                }
            }
            BinaryFormat::Wasm => match section.name() {
                Ok("<code>") => sizes.text += size,
                Ok("<data>") => sizes.data += size,
                _ => {}
            },
        }
    }
    Ok(sizes)
}

fn is_allocated_elf_section(section: &object::Section<'_, '_>) -> bool {
    match section.flags() {
        object::SectionFlags::Elf { sh_flags } => sh_flags & u64::from(object::elf::SHF_ALLOC) != 0,
        _ => false,
    }
}

/// Sizes of a generated model's binary: `weights_bytes` is the size of its
/// `weights.bin` (the blob is embedded in rodata on ELF and in the data
/// section on wasm), `arena_bytes` the planned arena size, both if known.
pub fn model_size(
    binary: &Path,
    weights_bytes: Option<u64>,
    arena_bytes: Option<u64>,
) -> Result<ModelSize, SizeError> {
    let sections = section_sizes(binary)?;
    Ok(model_size_from(sections, weights_bytes, arena_bytes))
}

/// [`model_size`] for section sizes already read.
pub fn model_size_from(
    sections: SectionSizes,
    weights_bytes: Option<u64>,
    arena_bytes: Option<u64>,
) -> ModelSize {
    let bytes = |value: u64| Metric::new(value as f64, Unit::Bytes, Source::Host);
    let constants = match sections.format {
        BinaryFormat::Elf => sections.rodata,
        BinaryFormat::Wasm => sections.data,
    };
    ModelSize {
        code: bytes(sections.text),
        weights: weights_bytes.map(bytes),
        constants_other_than_weights: weights_bytes.map(|w| bytes(constants.saturating_sub(w))),
        static_memory: bytes(sections.static_footprint()),
        arena: arena_bytes.map(bytes),
        file: bytes(sections.file_bytes),
        sections,
    }
}

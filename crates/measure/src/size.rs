//! Per-section sizes of built programs, read with the `object` crate.
//!
//! ELF: allocated sections grouped into text (code), rodata, data and bss.
//! Wasm: the code section and the data section (initialised linear memory);
//! zero-initialised wasm memory (its "bss") is not in the file, so wasm memory
//! is measured at run time instead (see [`crate::sim`]).
//!
//! Every figure is in bytes and labelled `host` (read from a file here).

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, SectionKind};
use serde::Serialize;

use crate::{Metric, Source, Unit};

/// Errors reading a binary's sections.
#[derive(Debug, thiserror::Error)]
pub enum SizeError {
    /// The file could not be read.
    #[error("cannot read binary {path}: {source}")]
    Read {
        /// The binary.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The `object` crate could not parse the file.
    #[error("{path} is not an ELF or wasm file kiln can read: {detail}")]
    Parse {
        /// The binary.
        path: PathBuf,
        /// The `object` crate's message.
        detail: String,
    },
    /// An object format other than ELF or wasm (Mach-O, PE, ...).
    #[error("{path} is a {format} file; kiln measures ELF and wasm builds")]
    UnsupportedFormat {
        /// The binary.
        path: PathBuf,
        /// The format, as `object` names it.
        format: String,
    },
}

/// The container format of a measured binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BinaryFormat {
    /// ELF (host and aarch64 programs); serialised `elf`.
    Elf,
    /// WebAssembly (the wasm32 cdylib); serialised `wasm`.
    Wasm,
}

/// Section sizes of one binary, in bytes.
///
/// For wasm, `text` is the code section, `data` the data section, `rodata` is
/// 0 (read-only data lives in the data section) and `bss` is 0 (not in the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionSizes {
    /// The container format.
    pub format: BinaryFormat,
    /// The whole file, bytes.
    pub file_bytes: u64,
    /// Code: ELF allocated text sections, or the wasm code section.
    pub text: u64,
    /// ELF allocated read-only data (incl. strings and data with
    /// relocations); 0 for wasm.
    pub rodata: u64,
    /// ELF allocated writable data and TLS data, or the wasm data section.
    pub data: u64,
    /// ELF zero-initialised sections (bss, TLS bss, common); 0 for wasm.
    pub bss: u64,
}

impl SectionSizes {
    /// Memory the binary claims before running: initialised plus zeroed
    /// data (`data + bss`), bytes.
    pub fn static_footprint(&self) -> u64 {
        self.data + self.bss
    }
}

/// Sizes of a generated model's binary with its weights told apart from code.
/// Every metric is in bytes, source `host`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSize {
    /// The raw section sizes the metrics come from.
    pub sections: SectionSizes,
    /// Machine code (ELF `.text`, wasm code section).
    pub code: Metric,
    /// The weight blob (size of the generated crate's `weights.bin`), if known.
    pub weights: Option<Metric>,
    /// Read-only data (ELF) or data section (wasm) minus the weights (0 if
    /// the weights are larger); present when the weights are known.
    pub constants_other_than_weights: Option<Metric>,
    /// Data + bss: static memory the program holds while running. For wasm
    /// this is only the data section (zeroed memory is not in the file):
    /// use the sim's peak linear memory there.
    pub static_memory: Metric,
    /// The model's intermediate-tensor arena in bytes (f32 count x 4), as
    /// planned by `kiln_ir::plan` for kiln-codegen, if known. Labelled `host`
    /// like the rest, though it is the compiler's plan, not read from the file.
    pub arena: Option<Metric>,
    /// The whole file on disk.
    pub file: Metric,
}

/// Reads the section sizes of the ELF or wasm file at `path`.
///
/// Errors: [`SizeError::Read`], [`SizeError::Parse`],
/// [`SizeError::UnsupportedFormat`].
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
///
/// Errors: those of [`section_sizes`].
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

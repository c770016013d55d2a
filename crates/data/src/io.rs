//! Reading data files: whole-file reads and transparent gunzip, with errors that name the file.
//! Shared by the IDX, CSV and CIFAR-10 readers.

use std::io::{ErrorKind, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::DataError;

/// The whole file at `path`, as stored (no decompression).
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|error| DataError::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// The whole file at `path`, gunzipped if it is gzip'd ([`maybe_gunzip`]).
pub(crate) fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>, DataError> {
    maybe_gunzip(&read_bytes(path)?, path)
}

/// Gunzips `bytes` if they start with the gzip magic, else returns them as they are.
/// A gzip stream that ends early is [`DataError::Truncated`]; `path` names the file.
pub(crate) fn maybe_gunzip(bytes: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    read_all(MultiGzDecoder::new(bytes), path).map_err(|e| match e {
        DataError::Io { path, error } if error.kind() == ErrorKind::UnexpectedEof => {
            DataError::Truncated {
                path,
                message: "the gzip stream ends early".into(),
            }
        }
        other => other,
    })
}

/// Reads all of `reader`, mapping errors to the file.
fn read_all(mut reader: impl Read, path: &Path) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|error| DataError::Io {
            path: path.to_path_buf(),
            error,
        })?;
    Ok(out)
}

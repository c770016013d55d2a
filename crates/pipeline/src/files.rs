//! Reading and writing the files a run keeps, each error naming the file.
//! Writes are atomic: a reader never sees half a metrics.json or model.onnx.

use std::path::Path;

use crate::PipelineError;

/// Reads all of `path`.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, PipelineError> {
    std::fs::read(path).map_err(|e| PipelineError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes `bytes` to `path` atomically (a temporary file renamed into place),
/// creating its folder.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    let io = |e: std::io::Error| PipelineError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    // A name of this process's own, so two writers never rename each other's file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}-{n}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

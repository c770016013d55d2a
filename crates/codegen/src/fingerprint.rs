//! A fingerprint of everything that decides the code a generated model runs
//! besides its graph: the runtime's kernels and kiln-codegen's emitter. A
//! latency table stores it and is invalid once it changes.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::CodegenError;
use crate::emit::{BUNDLE_MAIN_RS, MAIN_RS};

/// The version of the code kiln-codegen's emitter writes: bump when emit
/// changes generated code (a kernel call, the arena use, `infer` or `io`),
/// so [`runtime_fingerprint`] changes and stored latency tables are rebuilt.
pub const EMIT_VERSION: u32 = 4;

/// Hex SHA-256 over the runtime crate at `runtime_path` (its `Cargo.toml` and
/// every file under `src/`, in order of relative path, each path and content
/// hashed) and over kiln-codegen's side of generated code: its crate
/// version, [`EMIT_VERSION`] and the program templates (`src/main.rs` of a
/// model and of a bundle). Equal fingerprints mean a graph compiles to the
/// same program, so a per-layer latency table measured under one holds under
/// the other; a changed kernel, template or emitter version gives another.
///
/// It does not cover the Rust toolchain (pinned by `rust-toolchain.toml`) or
/// build flags.
///
/// Errors: [`CodegenError::Io`] when a file or folder cannot be read (e.g.
/// `runtime_path` is not the runtime crate).
pub fn runtime_fingerprint(runtime_path: &Path) -> Result<String, CodegenError> {
    let mut files = vec![("Cargo.toml".to_string(), runtime_path.join("Cargo.toml"))];
    let src = runtime_path.join("src");
    let mut sources = Vec::new();
    walk(&src, &src, &mut sources)?;
    sources.sort();
    files.extend(sources);

    let mut h = Sha256::new();
    let mut field = |tag: &str, bytes: &[u8]| {
        h.update(tag.as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field("kiln-runtime-fingerprint", b"1");
    for (rel, path) in &files {
        let bytes = std::fs::read(path).map_err(|source| CodegenError::Io {
            path: path.clone(),
            source,
        })?;
        field(&format!("runtime/{rel}"), &bytes);
    }
    field("kiln-codegen-version", env!("CARGO_PKG_VERSION").as_bytes());
    field("emit-version", &EMIT_VERSION.to_le_bytes());
    field("model-main", MAIN_RS.as_bytes());
    field("bundle-main", BUNDLE_MAIN_RS.as_bytes());
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Appends `(path relative to root with '/', path)` of every file under `dir`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), CodegenError> {
    let io = |path: &Path, source| CodegenError::Io {
        path: path.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.is_dir() {
            walk(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((rel.join("/"), path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let dest = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy_tree(&path, &dest);
            } else {
                std::fs::copy(&path, &dest).unwrap();
            }
        }
    }

    #[test]
    fn the_fingerprint_follows_the_runtime_sources_and_nothing_else() {
        let runtime = crate::default_runtime_path();
        let here = runtime_fingerprint(&runtime).unwrap();
        assert_eq!(here.len(), 64, "{here}");
        assert!(here.bytes().all(|b| b.is_ascii_hexdigit()), "{here}");
        assert_eq!(runtime_fingerprint(&runtime).unwrap(), here);

        let base = std::env::temp_dir().join(format!("kiln-fingerprint-{}", std::process::id()));
        let copy = base.join("a/runtime");
        copy_tree(&runtime, &copy);
        // where the runtime lives does not matter, only what it holds
        assert_eq!(runtime_fingerprint(&copy).unwrap(), here);
        // a kernel changed by one byte
        let conv = copy.join("src/conv.rs");
        let mut text = std::fs::read(&conv).unwrap();
        text.push(b'\n');
        std::fs::write(&conv, &text).unwrap();
        let edited = runtime_fingerprint(&copy).unwrap();
        assert_ne!(edited, here);
        // a new file under src/, even empty, in a subfolder
        std::fs::create_dir_all(copy.join("src/extra")).unwrap();
        std::fs::write(copy.join("src/extra/k.rs"), b"").unwrap();
        let extra = runtime_fingerprint(&copy).unwrap();
        assert_ne!(extra, edited);
        // a file renamed, same bytes
        std::fs::rename(copy.join("src/extra/k.rs"), copy.join("src/extra/l.rs")).unwrap();
        let renamed = runtime_fingerprint(&copy).unwrap();
        assert_ne!(renamed, extra);
        // the manifest counts too
        let mut manifest = std::fs::read(copy.join("Cargo.toml")).unwrap();
        manifest.extend_from_slice(b"# changed\n");
        std::fs::write(copy.join("Cargo.toml"), &manifest).unwrap();
        assert_ne!(runtime_fingerprint(&copy).unwrap(), renamed);
        let err = runtime_fingerprint(&base.join("nowhere")).unwrap_err();
        assert!(matches!(err, CodegenError::Io { .. }), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}

//! The disk cache of a decoded image folder: `DIR/.kiln-cache/images-<settings>.bin`.
//!
//! One file per setting (resolution, channels, fit as asked, and [`CACHE_VERSION`]), named by
//! the first 16 hex digits of their SHA-256; inside, the folder's content fingerprint
//! (relative paths, sizes, modification times): a file that changed makes the cache stale and
//! the next load decodes again and overwrites it. Layout: the magic `KILNIMG1`, the header's
//! length (u64 LE), the header (JSON: fingerprint, shape, fit, class names, image count per
//! part, the notes of the decoding run), then per part its labels (one byte per image) and
//! pixels (`u8`, CHW, image after image). Written to a temporary file and renamed, so a
//! reader sees the old file or the whole new one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::images::{Fit, ImageOptions, Pool};
use crate::{ImageShape, Split};

/// Bump when decoding or fitting changes what a setting produces.
pub(crate) const CACHE_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"KILNIMG1";

#[derive(Serialize, Deserialize)]
struct Header {
    version: u32,
    fingerprint: String,
    shape: ImageShape,
    fit: Fit,
    class_names: Vec<String>,
    counts: Vec<usize>,
    notes: Vec<String>,
}

/// The cache file of `dir` for `options`.
pub(crate) fn path(dir: &Path, options: &ImageOptions) -> PathBuf {
    let key = format!(
        "v{CACHE_VERSION} resolution {:?} channels {:?} fit {}",
        options.resolution.map(|r| r.to_string()),
        options.channels,
        options.fit
    );
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(".kiln-cache").join(format!("images-{hex}.bin"))
}

/// What reading the cache found.
pub(crate) enum Read {
    /// No cache file.
    Missing,
    /// A cache of other files (the folder changed).
    Stale,
    /// A file that cannot be read or parsed, and why.
    Corrupt(String),
    /// The decoded folder.
    Hit(Pool),
}

/// Reads the cache at `path` if it was written for the folder with `fingerprint`.
pub(crate) fn read(path: &Path, fingerprint: &str) -> Read {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Read::Missing,
        Err(e) => return Read::Corrupt(e.to_string()),
    };
    match parse(&bytes, fingerprint) {
        Ok(Some(pool)) => Read::Hit(pool),
        Ok(None) => Read::Stale,
        Err(e) => Read::Corrupt(e),
    }
}

fn parse(bytes: &[u8], fingerprint: &str) -> Result<Option<Pool>, String> {
    let rest = bytes.strip_prefix(MAGIC).ok_or("not a kiln image cache")?;
    let (len, rest) = rest.split_at_checked(8).ok_or("cut in its header")?;
    let len = u64::from_le_bytes(len.try_into().map_err(|_| "cut in its header")?);
    let len = usize::try_from(len).map_err(|_| "header too long")?;
    let (header, mut rest) = rest.split_at_checked(len).ok_or("cut in its header")?;
    let header: Header = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    if header.version != CACHE_VERSION || header.fingerprint != fingerprint {
        return Ok(None);
    }
    let mut parts = Vec::new();
    for &count in &header.counts {
        let (labels, r) = rest.split_at_checked(count).ok_or("cut in its labels")?;
        let size = count.checked_mul(header.shape.len()).ok_or("bad shape")?;
        let (pixels, r) = r.split_at_checked(size).ok_or("cut in its pixels")?;
        rest = r;
        parts.push(Split::new(header.shape, pixels.to_vec(), labels.to_vec()).ok_or("bad counts")?);
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last image", rest.len()));
    }
    if parts
        .iter()
        .flat_map(|p| p.labels())
        .any(|&l| usize::from(l) >= header.class_names.len())
    {
        return Err("a label out of range".into());
    }
    Ok(Some(Pool {
        shape: header.shape,
        fit: header.fit,
        class_names: header.class_names,
        parts,
        notes: header.notes,
    }))
}

/// Writes `pool` to `path` (temporary file, then rename); on error nothing is left behind.
pub(crate) fn write(path: &Path, fingerprint: &str, pool: &Pool) -> std::io::Result<()> {
    let header = Header {
        version: CACHE_VERSION,
        fingerprint: fingerprint.to_string(),
        shape: pool.shape,
        fit: pool.fit,
        class_names: pool.class_names.clone(),
        counts: pool.parts.iter().map(Split::len).collect(),
        notes: pool.notes.clone(),
    };
    let header = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(
        16 + header.len()
            + pool
                .parts
                .iter()
                .map(|p| p.len() * (1 + p.shape().len()))
                .sum::<usize>(),
    );
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&header);
    for part in &pool.parts {
        bytes.extend_from_slice(part.labels());
        for i in 0..part.len() {
            bytes.extend_from_slice(part.image(i));
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = path.with_extension(format!("tmp-{}-{nanos}", std::process::id()));
    let result = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

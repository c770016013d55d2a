//! The fine-tuned models of a supernet's searches, kept in the supernet's folder so no
//! search fine-tunes the same sub-network twice. Once-for-All's point is that one
//! trained supernet serves every device; a sub-network's fine-tuned weights depend on
//! the supernet, the genome, the data and the training settings, never on the target,
//! so a search for a second target whose front shares models with the first's reuses
//! them and only builds and measures them for its own device.
//!
//! Layout: `SUPERNET/fine-tuned/<id>/` holding `model.onnx`, `metrics.json` (kiln-train's)
//! and `inherited.json` (the validation top-1 before fine-tuning), `id` the content id of
//! everything the result depends on ([`key`]). A folder is written whole under a
//! temporary name and renamed into place, so a reader sees all of an entry or none.

use std::path::{Path, PathBuf};

use kiln_train::{Metrics, TrainConfig};
use serde::{Deserialize, Serialize};

use crate::PipelineError;
use crate::build::content_id;

/// Sub-folder of a supernet's folder holding its fine-tuned models.
pub const FOLDER: &str = "fine-tuned";

/// Enters every key: raise it when a change to training or the exporter changes what a
/// fine-tuned model would be, so older entries stop being reused (2: the model's
/// metadata says it was fine-tuned, where 1 said trained from scratch).
pub const FORMAT: u32 = 2;

/// One fine-tuned sub-network, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFineTune {
    /// The fine-tuned model (normalisation baked in, as `kiln_train::export_onnx` writes).
    pub onnx: Vec<u8>,
    /// What its fine-tuning measured (validation and test top-1, `host`).
    pub metrics: Metrics,
    /// Its validation top-1 as inherited, before fine-tuning (a fraction, `host`).
    pub inherited: f64,
}

#[derive(Serialize, Deserialize)]
struct InheritedFile {
    validation_top1: f64,
}

/// The id of a fine-tuning result: the supernet's weights (content id), the genome's
/// content id, the data's content id ([`kiln_data::Dataset::content_id`]; not its folder) and
/// the fine-tuning settings (seed and shards included) but the two that do not change the
/// result: the threads it trains on and the evaluation batch.
pub fn key(weights_id: &str, genome_id: &str, data_content: &str, config: &TrainConfig) -> String {
    let result_settings = TrainConfig {
        threads: 1,
        eval_batch_size: TrainConfig::default().eval_batch_size,
        ..config.clone()
    };
    let k = serde_json::json!({
        "format": FORMAT,
        "supernet_weights": weights_id,
        "genome": genome_id,
        "data_content": data_content,
        "config": result_settings,
    });
    content_id(k.to_string().as_bytes())[..16].to_string()
}

/// Where the entry `key` lives under the supernet folder `supernet`.
pub fn entry_dir(supernet: &Path, key: &str) -> PathBuf {
    supernet.join(FOLDER).join(key)
}

/// When the entry `key` of `supernet` was stored: its folder's modification time (its
/// files are written in it just before it is renamed into place); `None` when there is
/// none.
pub fn stored_at(supernet: &Path, key: &str) -> Option<std::time::SystemTime> {
    std::fs::metadata(entry_dir(supernet, key))
        .and_then(|m| m.modified())
        .ok()
}

/// The stored entry `key` of `supernet`: `Ok(None)` when there is none.
///
/// Errors: an entry that exists but cannot be read or parsed, naming the file.
pub fn get(supernet: &Path, key: &str) -> Result<Option<StoredFineTune>, PipelineError> {
    let dir = entry_dir(supernet, key);
    if !dir.is_dir() {
        return Ok(None);
    }
    let onnx = crate::files::read(&dir.join("model.onnx"))?;
    let metrics = json(&dir.join("metrics.json"))?;
    let inherited: InheritedFile = json(&dir.join("inherited.json"))?;
    Ok(Some(StoredFineTune {
        onnx,
        metrics,
        inherited: inherited.validation_top1,
    }))
}

/// Stores `entry` as `key` of `supernet`; returns its folder. An entry already there
/// (another search stored the same result first) is kept; an unreadable one is replaced.
///
/// Errors: the folder cannot be written (a read-only supernet folder), naming it.
pub fn put(supernet: &Path, key: &str, entry: &StoredFineTune) -> Result<PathBuf, PipelineError> {
    let dir = entry_dir(supernet, key);
    // a name of this writer's own: process id, a counter, and the time
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = supernet
        .join(FOLDER)
        .join(format!(".{key}-{}-{n}-{nanos}.tmp", std::process::id()));
    let io = |path: &Path, e: std::io::Error| PipelineError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let inherited = InheritedFile {
        validation_top1: entry.inherited,
    };
    let text = |v: serde_json::Result<String>| {
        v.map_err(|e| PipelineError::Invalid(format!("cannot serialise a fine-tuned model: {e}")))
    };
    let written = (|| {
        crate::files::write(&tmp.join("model.onnx"), &entry.onnx)?;
        crate::files::write(
            &tmp.join("metrics.json"),
            text(serde_json::to_string_pretty(&entry.metrics))?.as_bytes(),
        )?;
        crate::files::write(
            &tmp.join("inherited.json"),
            text(serde_json::to_string_pretty(&inherited))?.as_bytes(),
        )
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.is_dir() && get(supernet, key).is_err() {
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.is_dir() {
            return Err(io(&dir, e));
        }
    }
    Ok(dir)
}

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, PipelineError> {
    let bytes = crate::files::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| PipelineError::Io {
        path: path.to_path_buf(),
        message: format!("not a stored fine-tuning result: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> StoredFineTune {
        let metrics = Metrics {
            source: "host".into(),
            accuracy_engine: "burn (flex backend), eval mode".into(),
            dataset: "mnist-5k".into(),
            input: kiln_space::InputSpec {
                channels: 1,
                height: 28,
                width: 28,
                classes: 10,
            },
            class_names: (0..10).map(|c| c.to_string()).collect(),
            genome_id: "4a0bcd5fe57e904d".into(),
            params: 12_345,
            macs: 678_910,
            train_images: 4000,
            validation_images: 400,
            test_images: 1000,
            config: TrainConfig::default(),
            normalization: kiln_train::InputNormalization {
                scale: 1.0 / 255.0,
                mean: vec![0.13],
                std: vec![0.31],
                applied_by: "onnx".into(),
                onnx_input: "pixels".into(),
            },
            epochs: Vec::new(),
            validation_top1: Some(0.9625),
            test_top1: 0.968,
            train_seconds: 150.0,
            train_images_per_second: 53.3,
        };
        StoredFineTune {
            onnx: vec![8, 1, 2, 3],
            metrics,
            inherited: 0.7825,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-ft-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_stored_entry_reads_back_whole() {
        let sn = scratch("roundtrip");
        assert_eq!(get(&sn, "abc").expect("empty store reads"), None);
        let e = entry();
        let dir = put(&sn, "abc", &e).expect("put");
        assert_eq!(dir, entry_dir(&sn, "abc"));
        assert_eq!(get(&sn, "abc").expect("get"), Some(e.clone()));
        // a second put of the same key keeps the first and leaves no temporary folder
        put(&sn, "abc", &e).expect("second put");
        let names: Vec<_> = std::fs::read_dir(sn.join(FOLDER))
            .expect("store folder")
            .map(|d| d.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("abc")]);
        let _ = std::fs::remove_dir_all(&sn);
    }

    #[test]
    fn a_damaged_entry_names_its_file_and_is_replaced_by_the_next_put() {
        let sn = scratch("damaged");
        let e = entry();
        put(&sn, "k1", &e).expect("put");
        let metrics = entry_dir(&sn, "k1").join("metrics.json");
        std::fs::write(&metrics, b"{ not json").expect("damage");
        let err = get(&sn, "k1")
            .expect_err("damaged entry refused")
            .to_string();
        assert!(err.contains("metrics.json"), "{err}");
        put(&sn, "k1", &e).expect("replaced");
        assert_eq!(get(&sn, "k1").expect("get"), Some(e));
        let _ = std::fs::remove_dir_all(&sn);
    }

    #[test]
    fn the_key_changes_with_each_thing_the_result_depends_on() {
        let c = kiln_train::TrainConfig::default();
        let base = key("w", "g", "c", &c);
        assert_eq!(base, key("w", "g", "c", &c));
        assert_ne!(base, key("w2", "g", "c", &c));
        assert_ne!(base, key("w", "g2", "c", &c));
        assert_ne!(base, key("w", "g", "c2", &c), "other files");
        let seeded = TrainConfig {
            seed: c.seed + 1,
            ..c.clone()
        };
        assert_ne!(base, key("w", "g", "c", &seeded));
        let sharded = TrainConfig {
            shards: 2,
            ..c.clone()
        };
        assert_ne!(base, key("w", "g", "c", &sharded));
        let elsewhere = TrainConfig {
            threads: 2,
            eval_batch_size: 7,
            ..c.clone()
        };
        assert_eq!(
            base,
            key("w", "g", "c", &elsewhere),
            "same weights, same key"
        );
    }
}

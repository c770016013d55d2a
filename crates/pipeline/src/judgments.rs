//! The inherited accuracies a supernet's searches measured, kept in the supernet's folder
//! (`judged.jsonl`). A sub-network's inherited accuracy depends on the supernet's weights,
//! the genome, the data and the recalibration settings, never on the target: Once-for-All
//! judges sub-networks once and specialises for each device from what it knows. A search
//! on a supernet that earlier searches judged with starts from their candidates (judged
//! again in no time: only this target's latency is predicted anew) before it asks for new
//! ones, so a second target's front is chosen from at least what the first saw.
//!
//! One JSON object a line: `key` (the content id of weights, data and settings: lines of
//! other keys are ignored), `genome_id`, `genome` (its JSON) and `validation_top1` (a
//! fraction, `host`). Lines are appended whole, each with one `write` on a file opened for
//! appending, so two searches may append at once; a line that does not parse (a torn
//! last line after a crash) is skipped.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kiln_supernet::JudgeSettings;
use serde::{Deserialize, Serialize};

use crate::PipelineError;
use crate::build::content_id;

/// The file in a supernet's folder.
pub const FILE: &str = "judged.jsonl";

/// Enters every key: raise it when a change to judging (recalibration, the kernels)
/// changes what an accuracy would be, so older judgments stop being reused.
pub const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    genome_id: String,
    genome: String,
    validation_top1: f64,
}

/// The judgments of one supernet for one data set and recalibration setting.
pub struct Judgments {
    path: PathBuf,
    key: String,
    known: Mutex<Known>,
}

/// The judgments read and made so far.
#[derive(Default)]
struct Known {
    /// (genome id, genome JSON) in file order: the order earlier searches judged them.
    order: Vec<(String, String)>,
    /// Validation top-1 by genome id.
    by_id: HashMap<String, f64>,
    /// The file ends in a torn line (a crash mid-append): the next line starts on a new one.
    torn: bool,
}

/// The key of judgments made with the supernet weights `weights_id` (content id) on the
/// data whose splits hold `data_content` ([`kiln_data::Dataset::content_id`]; wherever its
/// files are) with `settings`.
pub fn key(weights_id: &str, data_content: &str, settings: &JudgeSettings) -> String {
    let k = serde_json::json!({
        "format": FORMAT,
        "supernet_weights": weights_id,
        "data_content": data_content,
        "recalibration_images": settings.recalibration_images,
        "batch": settings.batch,
    });
    content_id(k.to_string().as_bytes())[..16].to_string()
}

impl Judgments {
    /// The judgments of `key` stored in the supernet folder `dir`: none when there is no
    /// file yet, or when it cannot be read (then only the reuse is lost; appending will
    /// say why it fails, if it does).
    pub fn open(dir: &Path, key: String) -> Judgments {
        let path = dir.join(FILE);
        let mut known = Known::default();
        if let Ok(text) = std::fs::read(&path) {
            known.torn = text.last().is_some_and(|b| *b != b'\n');
            for line in String::from_utf8_lossy(&text).lines() {
                let Ok(l) = serde_json::from_str::<Line>(line) else {
                    continue;
                };
                if l.key == key && !known.by_id.contains_key(&l.genome_id) {
                    known.by_id.insert(l.genome_id.clone(), l.validation_top1);
                    known.order.push((l.genome_id, l.genome));
                }
            }
        }
        Judgments {
            path,
            key,
            known: Mutex::new(known),
        }
    }

    /// The stored validation top-1 of `genome_id`, if an earlier judgment made it.
    pub fn get(&self, genome_id: &str) -> Option<f64> {
        let known = self.known.lock().ok()?;
        known.by_id.get(genome_id).copied()
    }

    /// Every stored genome (id, JSON), in the order they were first judged.
    pub fn genomes(&self) -> Vec<(String, String)> {
        self.known
            .lock()
            .map(|k| k.order.clone())
            .unwrap_or_default()
    }

    /// Appends a judgment (kept in memory too). A genome already stored is not appended
    /// again.
    ///
    /// Errors: the file cannot be opened or written (a read-only supernet folder).
    pub fn record(
        &self,
        genome_id: &str,
        genome_json: &str,
        validation_top1: f64,
    ) -> Result<(), PipelineError> {
        let mut known = self
            .known
            .lock()
            .map_err(|_| PipelineError::Invalid("the judgments' lock was poisoned".into()))?;
        if known.by_id.contains_key(genome_id) {
            return Ok(());
        }
        let line = Line {
            key: self.key.clone(),
            genome_id: genome_id.into(),
            // one line: the genome's JSON without its line breaks
            genome: compact(genome_json),
            validation_top1,
        };
        let mut text = if known.torn {
            "\n".to_string()
        } else {
            String::new()
        };
        text += &serde_json::to_string(&line)
            .map_err(|e| PipelineError::Invalid(format!("cannot serialise a judgment: {e}")))?;
        text.push('\n');
        let io = |e: std::io::Error| PipelineError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        known.torn = false;
        known.by_id.insert(genome_id.into(), validation_top1);
        known.order.push((genome_id.into(), line.genome));
        Ok(())
    }
}

fn compact(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json).map_or_else(|_| json.into(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-judged-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    }

    #[test]
    fn judgments_survive_a_reopen_in_order_and_other_keys_are_ignored() {
        let dir = scratch("reopen");
        let j = Judgments::open(&dir, "k".into());
        assert_eq!(j.get("a"), None);
        j.record("b", "{\n \"x\": 2\n}", 0.5).expect("record b");
        j.record("a", "{\"x\": 1}", 0.75).expect("record a");
        j.record("a", "{\"x\": 1}", 0.25)
            .expect("a again is kept once");
        let other = Judgments::open(&dir, "other".into());
        other.record("c", "{}", 0.1).expect("record c");
        // a torn last line, as a crash mid-append would leave
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(FILE))
            .expect("append");
        f.write_all(b"{\"key\":\"k\",\"genome_id\":\"d\"")
            .expect("torn");
        let j = Judgments::open(&dir, "k".into());
        // the next judgment starts on a line of its own, not on the torn one
        j.record("e", "{}", 0.9).expect("record after a torn line");
        let j = Judgments::open(&dir, "k".into());
        assert_eq!(j.get("e"), Some(0.9));
        assert_eq!(j.get("a"), Some(0.75));
        assert_eq!(j.get("b"), Some(0.5));
        assert_eq!(j.get("c"), None);
        assert_eq!(j.get("d"), None);
        let ids: Vec<_> = j.genomes().into_iter().map(|g| g.0).collect();
        assert_eq!(ids, ["b", "a", "e"]);
        assert_eq!(j.genomes()[0].1, "{\"x\":2}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_key_changes_with_weights_data_and_settings() {
        let s = JudgeSettings::default();
        let base = key("w", "c", &s);
        assert_ne!(base, key("w2", "c", &s));
        assert_ne!(base, key("w", "c2", &s), "other files");
        let more = JudgeSettings {
            recalibration_images: s.recalibration_images + 1,
            ..s.clone()
        };
        assert_ne!(base, key("w", "c", &more));
    }
}

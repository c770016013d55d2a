//! A shared run's trial artefacts in its database, so the report (front.json, the
//! front's model files) can be made on any machine from the database alone.
//!
//! A worker writes its trials' folders on its own disk; when a trial ends feasible, the
//! folder's top-level files (the model's ONNX file, `measure.json`, `genome.json`,
//! fine-tuning metrics: whatever the evaluator wrote there) are stored beside the run as
//! `trials/<content id>/<file name>`. The generated crate and its binaries, which the
//! model rebuilds, stay on the worker. This module owns those names.

use std::path::Path;

use super::Journal;
use crate::SearchError;

/// A file larger than this (bytes) is not stored (a trial's ONNX file is well under it;
/// PostgreSQL's `bytea` takes up to 1 GB, but a row that large slows every worker).
pub const MAX_ARTEFACT_BYTES: u64 = 64 << 20;

fn prefix(genome_id: &str) -> String {
    format!("trials/{genome_id}/")
}

impl Journal {
    /// Whether the journal is shared (a database other machines reach).
    pub fn is_shared(&self) -> bool {
        self.backend.is_shared()
    }

    /// Shared runs: stores the top-level files of the trial folder `dir` (those up to
    /// [`MAX_ARTEFACT_BYTES`]) as the artefacts of `genome_id`; returns how many. A
    /// folder journal stores nothing (its report reads the folder itself).
    ///
    /// Errors: [`SearchError::Io`] reading the folder; the back end's.
    pub fn put_trial_files(&self, genome_id: &str, dir: &Path) -> Result<usize, SearchError> {
        if !self.is_shared() {
            return Ok(0);
        }
        let entries = std::fs::read_dir(dir).map_err(|e| SearchError::io(dir, e))?;
        let mut stored = 0;
        for entry in entries {
            let entry = entry.map_err(|e| SearchError::io(dir, e))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(|e| SearchError::io(&path, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !meta.is_file() || meta.len() > MAX_ARTEFACT_BYTES {
                continue;
            }
            let content = std::fs::read(&path).map_err(|e| SearchError::io(&path, e))?;
            self.backend
                .put_file(&format!("{}{name}", prefix(genome_id)), &content)?;
            stored += 1;
        }
        Ok(stored)
    }

    /// Shared runs: writes the stored artefacts of `genome_id` into `dest` (created if
    /// needed), leaving files already there alone; returns how many it wrote. A folder
    /// journal writes nothing.
    ///
    /// Errors: [`SearchError::Io`] writing; the back end's.
    pub fn restore_trial_files(&self, genome_id: &str, dest: &Path) -> Result<usize, SearchError> {
        if !self.is_shared() {
            return Ok(0);
        }
        let prefix = prefix(genome_id);
        let mut written = 0;
        for name in self.backend.file_names(&prefix)? {
            let file = &name[prefix.len()..];
            // names are the worker's file names; refuse anything that would leave `dest`
            if file.is_empty() || file.contains(['/', '\\']) || file == ".." {
                continue;
            }
            let to = dest.join(file);
            if to.exists() {
                continue;
            }
            let Some(content) = self.backend.file(&name)? else {
                continue;
            };
            std::fs::create_dir_all(dest).map_err(|e| SearchError::io(dest, e))?;
            let tmp = dest.join(format!(".{file}.part"));
            std::fs::write(&tmp, &content).map_err(|e| SearchError::io(&tmp, e))?;
            std::fs::rename(&tmp, &to).map_err(|e| SearchError::io(&to, e))?;
            written += 1;
        }
        Ok(written)
    }
}

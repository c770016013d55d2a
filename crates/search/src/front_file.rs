//! `front.json`: the Pareto front of a run, written by [`write_report`]
//! and read back by `cargo xtask flash` (the model to deploy). This module is
//! the file's one owner: both sides use [`FrontFile`].
//!
//! [`write_report`]: crate::report::write_report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::evaluator::ACCURACY_KIND;
use crate::objective::keys;
use crate::{Metric, SearchError};

/// One model of the front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontModel {
    /// Its trial number in the journal.
    pub trial: u64,
    /// The genome's content id.
    pub genome_id: String,
    /// The genome as JSON.
    pub genome: serde_json::Value,
    /// Every figure of the trial, labelled.
    pub metrics: BTreeMap<String, Metric>,
    /// Its folder relative to the run folder (`front/01-ID`), holding
    /// `model.onnx` and the generated crate.
    pub folder: String,
    /// NSGA-II crowding distance within the front: infinite for the front's end points
    /// (and a front of one or two), written `null` since JSON has no infinity.
    #[serde(deserialize_with = "infinite_if_null")]
    pub crowding_distance: f64,
    /// The trial's labels ([`crate::Evaluation::labels`]): above all
    /// [`ACCURACY_KIND`], what its accuracy is (inherited, fine-tuned, trained from
    /// scratch). Fronts written before it read as empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl FrontModel {
    /// Its validation accuracy (a fraction in 0..1), if it has one.
    pub fn accuracy(&self) -> Option<f64> {
        self.metrics.get(keys::ACCURACY).map(|m| m.value)
    }

    /// What its accuracy is, in the label's words ([`ACCURACY_KIND`]), if known.
    pub fn accuracy_kind(&self) -> Option<&str> {
        self.labels.get(ACCURACY_KIND).map(String::as_str)
    }
}

/// A crowding distance as `front.json` holds it: a number, or `null` for infinity
/// (serde_json writes a non-finite number as `null`).
fn infinite_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
}

/// The whole `front.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontFile {
    /// The run's identity (the journal's meta table: target, space, data ...).
    pub run: BTreeMap<String, String>,
    /// The objectives the front is over, by name.
    pub objectives: Vec<String>,
    /// The models, fastest first when latency is an objective (else by
    /// the first objective's value, ascending: see
    /// [`crate::report::front`]).
    pub front: Vec<FrontModel>,
}

impl FrontFile {
    /// The file's name in a run folder.
    pub const NAME: &'static str = "front.json";

    /// Reads `run_dir/front.json`.
    ///
    /// Errors: [`SearchError::Report`] naming the file when it is missing
    /// (not a search run folder) or is not a front file.
    pub fn read(run_dir: &Path) -> Result<FrontFile, SearchError> {
        let path = run_dir.join(Self::NAME);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            SearchError::Report(format!(
                "{}: {e} (is {} a search run folder?)",
                path.display(),
                run_dir.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| SearchError::Report(format!("{}: not a front file: {e}", path.display())))
    }

    /// Writes `run_dir/front.json` atomically (a temporary file renamed
    /// into place, so a reader never sees half a file); returns its path.
    ///
    /// Errors: [`SearchError::Io`] writing or renaming,
    /// [`SearchError::Report`] if serialising fails.
    pub fn write(&self, run_dir: &Path) -> Result<PathBuf, SearchError> {
        let path = run_dir.join(Self::NAME);
        let tmp = run_dir.join(format!(".{}.tmp", Self::NAME));
        let text =
            serde_json::to_string_pretty(self).map_err(|e| SearchError::Report(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| SearchError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| SearchError::io(&path, e))?;
        Ok(path)
    }

    /// The device profile the run searched for.
    pub fn target(&self) -> Option<&str> {
        self.run.get("target").map(String::as_str)
    }

    /// The most accurate model of the front (the first of equals).
    pub fn most_accurate(&self) -> Option<&FrontModel> {
        let acc = |m: &FrontModel| m.accuracy().unwrap_or(f64::NEG_INFINITY);
        self.front
            .iter()
            .fold(None, |best: Option<&FrontModel>, m| match best {
                Some(b) if acc(b) >= acc(m) => Some(b),
                _ => Some(m),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Source, Unit};

    fn model(trial: u64, acc: f64) -> FrontModel {
        let mut metrics = BTreeMap::new();
        metrics.insert(
            keys::ACCURACY.to_string(),
            Metric::new(acc, Unit::Fraction, Source::Host),
        );
        FrontModel {
            trial,
            genome_id: format!("g{trial}"),
            genome: serde_json::Value::Null,
            metrics,
            folder: format!("front/0{trial}-g{trial}"),
            crowding_distance: 0.0,
            labels: BTreeMap::from([(ACCURACY_KIND.to_string(), "inherited".to_string())]),
        }
    }

    #[test]
    fn written_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = FrontFile {
            run: BTreeMap::from([("target".to_string(), "jetson".to_string())]),
            objectives: vec!["accuracy".into(), "latency".into()],
            front: vec![model(1, 0.9), model(2, 0.95), model(3, 0.95)],
        };
        // the ends of a front are infinitely far from their neighbours, as the report
        // computes them
        let mut file = file;
        file.front[0].crowding_distance = f64::INFINITY;
        file.front[2].crowding_distance = f64::INFINITY;
        file.write(dir.path()).unwrap();
        let back = FrontFile::read(dir.path()).unwrap();
        assert_eq!(back, file);
        assert_eq!(back.target(), Some("jetson"));
        assert_eq!(back.most_accurate().unwrap().trial, 2);
        assert_eq!(back.front[0].accuracy_kind(), Some("inherited"));
        // a front written before the labels were kept still reads, without them
        let text = std::fs::read_to_string(dir.path().join(FrontFile::NAME)).unwrap();
        let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
        for m in old["front"].as_array_mut().unwrap() {
            m.as_object_mut().unwrap().remove("labels");
        }
        let old: FrontFile = serde_json::from_value(old).unwrap();
        assert_eq!(old.front[0].accuracy_kind(), None);
        let err = FrontFile::read(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("front.json"), "{err}");
    }
}

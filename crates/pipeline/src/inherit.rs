//! The weight-sharing path of the search's evaluator: a candidate's weights and accuracy
//! inherited from a supernet (kiln-supernet) instead of training it, then built and
//! measured like any candidate, so its hard constraints are judged on measured figures.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kiln_data::Dataset;
use kiln_metric::{Metric, Source, Unit};
use kiln_search::Evaluation;
use kiln_search::evaluator::ACCURACY_KIND;
use kiln_search::objective::keys;
use kiln_space::{Genome, Space};
use kiln_supernet::{JudgeSettings, SuperNet, SupernetIdentity, SupernetWeights};

use crate::PipelineError;
use crate::judgments::Judgments;

/// A trained supernet, ready to judge and export sub-networks.
pub struct SupernetJudge {
    // Judging runs kiln-runtime's kernels on plain arrays, shared by every worker;
    // exporting (a model to build or fine-tune) slices burn's tensors, one copy behind
    // a lock.
    weights: Arc<SupernetWeights>,
    net: Mutex<SuperNet>,
    /// The supernet's folder.
    pub dir: PathBuf,
    /// Epochs it was trained for.
    pub epochs: usize,
    /// Epochs its training was asked for (fewer trained: stopped before its end).
    pub planned_epochs: usize,
    /// Batch-norm recalibration and batch size.
    pub settings: JudgeSettings,
    /// The content id of its weights file ([`crate::supernet_cache::weights_id`]): what
    /// a fine-tuned sub-network is stored under, with the data's content.
    pub weights_id: String,
    /// The content id of the data it judges on ([`kiln_data::Dataset::content_id`]): what
    /// judgments and fine-tunings are kept under, so files changed under the same name
    /// are not mistaken for the ones measured before, and the same files moved are found.
    pub data_content: String,
    /// What earlier judgments with these weights, data and settings measured
    /// (`judged.jsonl` in the folder), and where new ones are kept.
    pub judgments: Judgments,
}

/// Label of an evaluation whose inherited accuracy an earlier judgment measured (read
/// from the supernet's `judged.jsonl`, not judged again).
pub const REUSED_JUDGMENT: &str = "judgment_reused";

/// Label saying why a judgment was not kept for later searches (the store's error).
pub const JUDGMENT_STORE: &str = "judgment_store";

/// A sub-network judged by [`SupernetJudge::judge`]: accuracies inherited, measured
/// here (`host`), fractions.
#[derive(Debug, Clone)]
pub struct Inherited {
    /// Validation top-1 (batch norm recalibrated).
    pub validation_top1: f64,
    /// Test top-1 and the ONNX model, when asked for.
    pub exported: Option<(f64, Vec<u8>)>,
}

impl SupernetJudge {
    /// Loads the supernet in `dir`, refusing one trained for another space, input or
    /// data than `space` (`None`: its own) and `data` (by the splits' content where the
    /// supernet recorded what it was trained on, so the same files in another folder
    /// match; by `data_identity`, as the search records it, where it did not). Any number
    /// of workers judge with it at once.
    ///
    /// Errors: the checkpoint cannot be read; a mismatch, naming the field.
    pub fn load(
        dir: &Path,
        space: Option<&Space>,
        data: &Dataset,
        data_identity: &str,
    ) -> Result<SupernetJudge, PipelineError> {
        let (net, identity, epochs, _) = kiln_supernet::load(dir, &kiln_train::device())?;
        let data_content = data.content_id();
        let wanted = SupernetIdentity {
            space: space.unwrap_or(&identity.space).clone(),
            input: kiln_train::input_spec(data),
            data: data_identity.into(),
            data_content: Some(data_content.clone()),
            config: identity.config.clone(),
        };
        identity.check(&wanted, dir)?;
        let weights_id = crate::supernet_cache::weights_id(dir)?;
        let settings = JudgeSettings {
            recalibration_images: identity.config.recalibration_images,
            ..JudgeSettings::default()
        };
        let judgments = Judgments::open(
            dir,
            crate::judgments::key(&weights_id, &data_content, &settings),
        );
        Ok(SupernetJudge {
            weights: Arc::new(SupernetWeights::of(&net)?),
            net: Mutex::new(net),
            dir: dir.to_path_buf(),
            epochs,
            planned_epochs: identity.config.epochs,
            settings,
            weights_id,
            data_content,
            judgments,
        })
    }

    /// The [`crate::finetune_store`] key of `genome_id` fine-tuned with `config` from
    /// these weights on this data.
    pub fn fine_tune_key(&self, genome_id: &str, config: &kiln_train::TrainConfig) -> String {
        crate::finetune_store::key(&self.weights_id, genome_id, &self.data_content, config)
    }

    /// The burn copy, for exporting.
    fn net(&self) -> Result<std::sync::MutexGuard<'_, SuperNet>, PipelineError> {
        self.net.lock().map_err(|_| poisoned())
    }

    /// The space the supernet was trained on (genomes are read against it).
    pub fn space(&self) -> Result<Space, PipelineError> {
        Ok(self.weights.space().clone())
    }

    /// `genome`'s weights as inherited (batch norm recalibrated), the starting point of
    /// fine-tuning, with its inherited validation top-1 (a fraction); `data` as for
    /// [`SupernetJudge::judge`].
    ///
    /// Errors: a genome outside the supernet's space; burn's errors.
    pub fn inherited_weights(
        &self,
        genome: &Genome,
        data: &Dataset,
    ) -> Result<(f64, kiln_onnx::Weights), PipelineError> {
        let resized = crate::resolution::data_at(data, genome);
        let data = &*resized;
        let j = self
            .weights
            .judge(genome, data, &self.settings)
            .map_err(failed)?;
        let net = self.net()?;
        let run = || kiln_supernet::subnet_weights(&net, genome, &j.bn);
        let weights = kiln_train::with_threads(1, run)?.map_err(failed)?;
        Ok((j.top1, weights))
    }

    /// Judges `genome` on kiln-runtime's kernels: batch norm recalibrated, validation
    /// top-1; with `export`, also its test top-1 and its ONNX model (the test split is
    /// run only then: judging many candidates, the search's judge-only mode, skips it).
    /// A genome that chose its resolution is judged on `data` resized to it (pass the data
    /// at that resolution to resize once for many judgements).
    ///
    /// Errors: a genome outside the supernet's space; burn's or the exporter's errors.
    pub fn judge(
        &self,
        genome: &Genome,
        data: &Dataset,
        export: bool,
    ) -> Result<Inherited, PipelineError> {
        let resized = crate::resolution::data_at(data, genome);
        let data = &*resized;
        let mut j = self
            .weights
            .judge(genome, data, &self.settings)
            .map_err(failed)?;
        let exported = if export {
            let (test, _) = self
                .weights
                .accuracy(genome, &mut j.bn, &data.test, data, self.settings.batch)
                .map_err(failed)?;
            let net = self.net()?;
            let run = || kiln_supernet::export_subnet(&net, genome, &j.bn, data, test);
            Some((test, kiln_train::with_threads(1, run)?.map_err(failed)?))
        } else {
            None
        };
        Ok(Inherited {
            validation_top1: j.top1,
            exported,
        })
    }

    /// [`SupernetJudge::judge`] recorded in `eval`: the accuracies (`host`) with what
    /// they are (`accuracy_kind`) and the time taken; returns the model when exported.
    /// Without `export`, a genome an earlier judgment measured ([`Judgments`]) is not
    /// judged again: its stored accuracy is recorded, labelled [`REUSED_JUDGMENT`]. New
    /// judgments are kept for later searches.
    ///
    /// Errors: the message for the trial's failure.
    pub(crate) fn judge_into(
        &self,
        genome: &Genome,
        data: &Dataset,
        eval: &mut Evaluation,
        export: bool,
    ) -> Result<Option<Vec<u8>>, String> {
        let started = Instant::now();
        let fraction = |v: f64| Metric::new(v, Unit::Fraction, Source::Host);
        let id = genome.id();
        let stored = if export {
            None
        } else {
            self.judgments.get(&id)
        };
        let judged = match stored {
            Some(top1) => {
                eval.labels.insert(
                    REUSED_JUDGMENT.into(),
                    self.dir.join(crate::judgments::FILE).display().to_string(),
                );
                Inherited {
                    validation_top1: top1,
                    exported: None,
                }
            }
            None => {
                let judged = self
                    .judge(genome, data, export)
                    .map_err(|e| e.to_string())?;
                // a supernet folder that cannot be written only loses the reuse
                if let Err(e) =
                    self.judgments
                        .record(&id, &genome.to_json(), judged.validation_top1)
                {
                    eval.labels.insert(JUDGMENT_STORE.into(), e.to_string());
                }
                judged
            }
        };
        eval.metrics
            .insert(keys::ACCURACY.into(), fraction(judged.validation_top1));
        if let Some((test, _)) = &judged.exported {
            eval.metrics
                .insert(keys::TEST_ACCURACY.into(), fraction(*test));
        }
        eval.labels
            .insert(ACCURACY_KIND.into(), self.accuracy_kind(data));
        eval.timings
            .insert("judge_s".into(), started.elapsed().as_secs_f64());
        Ok(judged.exported.map(|(_, onnx)| onnx))
    }

    /// What an accuracy from this supernet is, in words, for `data`.
    pub fn accuracy_kind(&self, data: &Dataset) -> String {
        format!(
            "inherited from the supernet in {} ({}), batch norm recalibrated on {} training \
             images",
            self.dir.display(),
            kiln_onnx::metadata::epochs_in_words(self.epochs),
            self.settings.images_used(data.train.len())
        )
    }
}

fn failed(e: kiln_supernet::SupernetError) -> PipelineError {
    PipelineError::Invalid(format!("supernet: {e}"))
}

fn poisoned() -> PipelineError {
    PipelineError::Invalid("the supernet's lock was poisoned by a panic".into())
}

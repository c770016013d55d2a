//! Judging a sub-network: batch norm recalibrated for it, then top-1 on a split.

use burn::tensor::{Tensor, TensorData};
use kiln_data::{Dataset, Split};
use kiln_space::{Genome, Space};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::bn::{BnContext, BnMode};
use crate::{SuperNet, SupernetError};

/// The genomes of the ranking benchmark (the `judge` bench, the `ranking` example of
/// kiln-pipeline): `n` samples of `space` from a ChaCha8 generator seeded 0, candidate `i`
/// the `(i+1)`-th, so the first `n` of a longer list are the same genomes and a file of
/// pairs names each by its index.
pub fn ranking_genomes(space: &Space, n: usize) -> Vec<Genome> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    (0..n).map(|_| Genome::sample(space, &mut rng)).collect()
}

/// How a sub-network is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeSettings {
    /// Training images (the first ones, no augmentation: the same for every candidate)
    /// the batch-norm statistics are recalibrated on.
    pub recalibration_images: usize,
    /// Images per forward pass (memory only; at least 2).
    pub batch: usize,
}

impl JudgeSettings {
    /// How many training images a recalibration runs when the training split has
    /// `train_images`: at most `recalibration_images`, less one when the last batch
    /// would hold a single image (it has no variance to normalise with).
    pub fn images_used(&self, train_images: usize) -> usize {
        let n = self.recalibration_images.min(train_images);
        if n % self.batch.max(2) == 1 { n - 1 } else { n }
    }
}

impl Default for JudgeSettings {
    fn default() -> Self {
        JudgeSettings {
            recalibration_images: 250,
            batch: 250,
        }
    }
}

/// A judged sub-network.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// Top-1 on the validation split (the test split when there is no validation), a
    /// fraction; inherited from the supernet, measured here (`host`).
    pub top1: f64,
    /// Its recalibrated batch-norm statistics (fixed mode), for export.
    pub bn: BnContext,
}

fn images(net: &SuperNet, split: &Split, idx: &[usize], data: &Dataset) -> Tensor<4> {
    let batch = split.batch::<ChaCha8Rng>(idx, &data.normalization, None);
    let s = data.shape;
    let device = net.stem.gamma.val().device();
    Tensor::<4>::from_data(
        TensorData::new(batch.images, [idx.len(), s.channels, s.height, s.width]),
        &device,
    )
}

/// Recalibrates `genome`'s batch-norm statistics on the first
/// `settings.recalibration_images` training images. Pass a supernet without autodiff
/// (`net.valid()` of one being trained).
///
/// Errors: as [`SuperNet::forward`].
pub fn recalibrate(
    net: &SuperNet,
    genome: &Genome,
    data: &Dataset,
    settings: &JudgeSettings,
) -> Result<BnContext, SupernetError> {
    recalibrate_with(data, settings, |idx, bn| {
        net.forward(genome, images(net, &data.train, idx, data), bn)
            .map(drop)
    })
}

/// The recalibration loop of both judges: `forward` runs the training images `idx`
/// with batch norm collecting statistics, in batches of at least two
/// ([`JudgeSettings::images_used`] of them).
pub(crate) fn recalibrate_with(
    data: &Dataset,
    settings: &JudgeSettings,
    mut forward: impl FnMut(&[usize], &mut BnContext) -> Result<(), SupernetError>,
) -> Result<BnContext, SupernetError> {
    let all: Vec<usize> = (0..settings.images_used(data.train.len())).collect();
    let mut bn = BnContext::collect();
    for idx in all.chunks(settings.batch.max(2)) {
        forward(idx, &mut bn)?;
    }
    bn.mode = BnMode::Fixed;
    Ok(bn)
}

/// The top-1 loop of both judges: `forward` gives the logits `[idx.len(), classes]`
/// row-major of images `idx` of `split`; returns top-1 (a fraction) and all logits.
pub(crate) fn accuracy_with(
    split: &Split,
    classes: usize,
    batch: usize,
    mut forward: impl FnMut(&[usize]) -> Result<Vec<f32>, SupernetError>,
) -> Result<(f64, Vec<f32>), SupernetError> {
    let all: Vec<usize> = (0..split.len()).collect();
    let (mut correct, mut logits) = (0, Vec::with_capacity(split.len() * classes));
    for idx in all.chunks(batch.max(1)) {
        let out = forward(idx)?;
        for (row, &i) in out.chunks_exact(classes).zip(idx) {
            correct += usize::from(kiln_train::argmax(row) == split.label(i));
        }
        logits.extend(out);
    }
    Ok((correct as f64 / split.len().max(1) as f64, logits))
}

/// Top-1 (a fraction) of `genome`'s sub-network on `split` with the statistics of `bn`,
/// and its logits `[n, classes]` row-major.
///
/// Errors: as [`SuperNet::forward`]; [`SupernetError::Tensor`].
pub fn accuracy(
    net: &SuperNet,
    genome: &Genome,
    bn: &mut BnContext,
    split: &Split,
    data: &Dataset,
    batch: usize,
) -> Result<(f64, Vec<f32>), SupernetError> {
    accuracy_with(split, data.classes, batch, |idx| {
        let out = net.forward(genome, images(net, split, idx, data), bn)?;
        kiln_train::values(out, "logits").map_err(|e| SupernetError::Tensor(e.to_string()))
    })
}

/// The split inherited accuracy ranks by: validation, or test when there is none.
pub(crate) fn ranked_split(data: &Dataset) -> &Split {
    if data.validation.is_empty() {
        &data.test
    } else {
        &data.validation
    }
}

/// Recalibrates and measures `genome`'s validation top-1 (test top-1 without a validation
/// split): the inherited accuracy a weight-sharing search ranks by.
///
/// Errors: as [`recalibrate`] and [`accuracy`].
pub fn judge(
    net: &SuperNet,
    genome: &Genome,
    data: &Dataset,
    settings: &JudgeSettings,
) -> Result<Judgement, SupernetError> {
    let mut bn = recalibrate(net, genome, data, settings)?;
    let split = ranked_split(data);
    let (top1, _) = accuracy(net, genome, &mut bn, split, data, settings.batch)?;
    Ok(Judgement { top1, bn })
}

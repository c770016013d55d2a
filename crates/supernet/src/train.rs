//! Training a supernet once: the sandwich rule with in-place distillation.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use kiln_data::{Augment, Dataset, Resolution};
use kiln_space::{Genome, Space};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::bn::BnContext;
use crate::checkpoint::{SupernetIdentity, load, save};
use crate::init::Seeded;
use crate::judge::{JudgeSettings, judge};
use crate::{SuperNet, SupernetError, largest, smallest};

/// How a supernet is trained. `Default` is what `cargo xtask supernet train` uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupernetConfig {
    /// Passes over the training split.
    pub epochs: usize,
    /// Images per step (at least 2).
    pub batch_size: usize,
    /// Adam's peak learning rate (linear warm-up over the first 5% of steps, cosine decay
    /// to 1% of it).
    pub lr: f64,
    /// Random sub-networks per step besides the largest and the smallest (BigNAS uses 2).
    pub random_subnets: usize,
    /// Largest random shift of a training image, pixels (0: none).
    pub max_shift: usize,
    /// Seeds the weights, the batch order, the shifts and the random sub-networks.
    pub seed: u64,
    /// Worker threads of the tensor kernels.
    pub threads: usize,
    /// Training images the batch-norm statistics of a judged sub-network are
    /// recalibrated on (default 250: against 1,000 images, 30 sub-networks of the
    /// default space rank with Kendall's tau 0.87 at 250 and 0.85 at 500, whose
    /// largest difference is 1.5 points against 2.75: the 400 validation images'
    /// own granularity dominates either way, and 250 is one batch, half the work).
    pub recalibration_images: usize,
}

impl Default for SupernetConfig {
    fn default() -> Self {
        SupernetConfig {
            epochs: 10,
            batch_size: 32,
            lr: 0.003,
            random_subnets: 2,
            max_shift: 2,
            seed: 0,
            threads: 1,
            recalibration_images: 250,
        }
    }
}

impl SupernetConfig {
    fn validate(&self) -> Result<(), SupernetError> {
        let bad = |m: &str| Err(SupernetError::Config(m.into()));
        if self.epochs == 0 {
            return bad("epochs must be at least 1");
        }
        if self.batch_size < 2 {
            return bad("batch_size must be at least 2 (batch norm needs two images)");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr must be a positive number");
        }
        if self.threads == 0 {
            return bad("threads must be at least 1");
        }
        Ok(())
    }

    fn lr_at(&self, step: usize, total: usize) -> f64 {
        let warm = (total / 20).max(1);
        if step < warm {
            return self.lr * (0.1 + 0.9 * step as f64 / warm as f64);
        }
        let t = (step - warm) as f64 / (total - warm).max(1) as f64;
        self.lr * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
    }
}

/// One epoch's figures. Accuracies are validation top-1 fractions of the largest and the
/// smallest sub-network, inherited (batch norm recalibrated), measured here (`host`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Mean training loss per step (cross-entropy of the largest + distillation losses).
    pub loss: f64,
    /// Validation top-1 of the largest sub-network.
    pub largest_top1: f64,
    /// Validation top-1 of the smallest sub-network.
    pub smallest_top1: f64,
    /// Wall-clock seconds of the epoch's training steps (`host`).
    pub seconds: f64,
}

/// `metrics.json` of a supernet.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SupernetMetrics {
    /// Where the figures were measured.
    pub source: String,
    /// What the accuracies are.
    pub accuracy_kind: String,
    /// Per epoch.
    pub epochs: Vec<EpochRecord>,
}

/// Trains a supernet for `space` on `data` into `dir`, checkpointing after every epoch;
/// a space that chooses its input resolution trains each sub-network of a step on the
/// batch resized to the side its genome chose (the largest at the largest side, the
/// smallest at the smallest; Once-for-All's elastic resolution);
/// with `resume`, continues from the checkpoint in `dir` (refused if it was trained for
/// another space, input or data). `progress` hears every step (epoch, step, steps, loss)
/// and every epoch's record. Returns the supernet (without autodiff) and its metrics.
///
/// Errors: bad settings; a checkpoint that does not match or cannot be read or written;
/// a diverged loss; burn's errors.
pub fn train(
    space: &Space,
    data: &Dataset,
    data_identity: &str,
    config: &SupernetConfig,
    dir: &Path,
    resume: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(SuperNet, SupernetMetrics), SupernetError> {
    config.validate()?;
    let identity = SupernetIdentity {
        space: space.clone(),
        input: kiln_train::input_spec(data),
        data: data_identity.into(),
        config: config.clone(),
    };
    kiln_train::with_threads(config.threads, || {
        train_on_pool(&identity, data, dir, resume, progress)
    })?
}

/// What [`train`] reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A step finished.
    Step {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step of the epoch.
        step: usize,
        /// Steps per epoch.
        steps: usize,
        /// Mean loss of the epoch so far.
        loss: f64,
    },
    /// An epoch finished and was checkpointed.
    Epoch(EpochRecord),
    /// Training resumed after this many epochs.
    Resumed(usize),
}

fn train_on_pool(
    identity: &SupernetIdentity,
    data: &Dataset,
    dir: &Path,
    resume: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(SuperNet, SupernetMetrics), SupernetError> {
    let config = &identity.config;
    let ad = kiln_train::device().autodiff();
    let (mut net, done, mut metrics) = if resume && dir.join("supernet.json").is_file() {
        let (net, found, done, mut metrics) = load(dir, &ad)?;
        found.check(identity, dir)?;
        // a kill between writing metrics.json and supernet.json leaves one record ahead
        metrics.epochs.truncate(done);
        progress(Progress::Resumed(done));
        (net, done, metrics)
    } else {
        let mut init = Seeded::new(config.seed);
        let net = SuperNet::build(&identity.space, identity.input, &mut init, &ad)?;
        (net, 0, SupernetMetrics::default())
    };
    metrics.source = "host".into();
    metrics.accuracy_kind =
        "inherited from the supernet, batch norm recalibrated, validation split".into();
    let mut optim = AdamConfig::new().init();
    let ce = CrossEntropyLossConfig::new().init(&ad);
    let n = data.train.len();
    let steps = if n % config.batch_size == 1 {
        n / config.batch_size
    } else {
        n.div_ceil(config.batch_size)
    };
    let total = steps * config.epochs;
    let (big, small) = (largest(&identity.space), smallest(&identity.space));
    let augment = (config.max_shift > 0).then_some(Augment {
        max_shift: config.max_shift,
    });
    let sized = Resolutions::of(&identity.space, data);
    for epoch in done + 1..=config.epochs {
        // seeded per epoch, so a resumed run sees the batches it would have seen
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ (epoch as u64) << 32);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let (started, mut loss_sum, mut lr) = (Instant::now(), 0.0, config.lr);
        for (s, idx) in order.chunks(config.batch_size).take(steps).enumerate() {
            lr = config.lr_at((epoch - 1) * steps + s, total);
            // the same shifts for the batch at every resolution
            let shifts = rng.clone();
            let batch = data.train.batch(
                idx,
                &data.normalization,
                augment.as_ref().map(|a| (a, &mut rng)),
            );
            let x = images(batch.images, idx.len(), data, &ad);
            // a sub-network that chose another resolution sees the batch resized to it,
            // built once per side in a step (sub-networks of one side share it)
            let mut at_side = BTreeMap::new();
            let mut input = |g: &Genome| match sized.other(g) {
                None => x.clone(),
                Some((side, d)) => at_side
                    .entry(side)
                    .or_insert_with(|| {
                        let mut r = shifts.clone();
                        let augment = augment.as_ref().map(|a| (a, &mut r));
                        let b = d.train.batch(idx, &d.normalization, augment);
                        images(b.images, idx.len(), d, &ad)
                    })
                    .clone(),
            };
            let labels: Vec<i64> = batch.labels.iter().map(|&l| l as i64).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [idx.len()]), &ad);
            let mut bn = BnContext::batch();
            let logits = net.forward(&big, input(&big), &mut bn)?;
            let mut loss = ce.forward(logits.clone(), y);
            // in-place distillation: the others learn the largest's predictions
            let teacher = softmax(logits.detach(), 1);
            let mut students: Vec<Genome> = vec![small.clone()];
            students.extend(
                (0..config.random_subnets).map(|_| Genome::sample(&identity.space, &mut rng)),
            );
            for g in &students {
                let out = net.forward(g, input(g), &mut bn)?;
                let kd = (teacher.clone() * log_softmax(out, 1))
                    .sum_dim(1)
                    .mean()
                    .neg();
                loss = loss + kd;
            }
            let value: f32 = loss.clone().into_scalar();
            if !value.is_finite() {
                return Err(SupernetError::Diverged {
                    epoch,
                    batch: s + 1,
                    loss: value,
                });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
            loss_sum += f64::from(value);
            progress(Progress::Step {
                epoch,
                step: s + 1,
                steps,
                loss: loss_sum / (s + 1) as f64,
            });
        }
        let seconds = started.elapsed().as_secs_f64();
        let plain = net.valid();
        let settings = JudgeSettings {
            recalibration_images: config.recalibration_images,
            ..JudgeSettings::default()
        };
        let record = EpochRecord {
            epoch,
            lr,
            loss: loss_sum / steps.max(1) as f64,
            largest_top1: judge(&plain, &big, sized.at(&big, data), &settings)?.top1,
            smallest_top1: judge(&plain, &small, sized.at(&small, data), &settings)?.top1,
            seconds,
        };
        metrics.epochs.push(record.clone());
        save(dir, &plain, identity, epoch, &metrics)?;
        progress(Progress::Epoch(record));
    }
    Ok((net.valid(), metrics))
}

/// `n` normalised CHW images of `data`'s shape as a batch tensor.
fn images(values: Vec<f32>, n: usize, data: &Dataset, device: &Device) -> Tensor<4> {
    let s = data.shape;
    Tensor::<4>::from_data(
        TensorData::new(values, [n, s.channels, s.height, s.width]),
        device,
    )
}

/// The training data at each resolution a space lists other than the data's own (a space
/// that chooses its input resolution, as Once-for-All trains elastic resolution): every
/// sub-network trains and is judged on images resized to the side its genome chose
/// ([`Dataset::resized`], as the search resizes them for that genome).
struct Resolutions {
    other: BTreeMap<usize, Dataset>,
}

impl Resolutions {
    /// `data` resized to each of `space`'s resolutions that is not its own size (none for a
    /// space without resolutions).
    fn of(space: &Space, data: &Dataset) -> Resolutions {
        let own = (data.shape.height, data.shape.width);
        let other = space
            .resolution
            .iter()
            .flatten()
            .filter(|&&side| (side, side) != own)
            .map(|&side| {
                let to = Resolution {
                    height: side,
                    width: side,
                };
                (side, data.resized(to))
            })
            .collect();
        Resolutions { other }
    }

    /// The side and resized data `genome` runs on, or `None` when it runs on the data as
    /// given.
    fn other(&self, genome: &Genome) -> Option<(usize, &Dataset)> {
        let side = genome.resolution?;
        self.other.get(&side).map(|d| (side, d))
    }

    /// The data `genome` runs on: resized, or `data` itself.
    fn at<'a>(&'a self, genome: &Genome, data: &'a Dataset) -> &'a Dataset {
        self.other(genome).map_or(data, |(_, d)| d)
    }
}

//! Training a supernet once: the sandwich rule with in-place distillation.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams};
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
use crate::config::SupernetConfig;
use crate::init::Seeded;
use crate::judge::{JudgeSettings, judge};
use crate::schedule::Phases;
use crate::{SuperNet, SupernetError, largest, smallest};

/// Bumped when a change to training changes the weights a seed gives, so caches keyed by
/// it (kiln-pipeline's supernet cache) train again: 2 sums each step's gradients in two
/// groups ([`SupernetConfig::threads`]).
pub const TRAINING_FORMAT: u32 = 2;

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
    has_validation(data)?;
    if dir.join(crate::split::SPLIT_FILE).is_file() {
        return Err(crate::checkpoint::io(
            dir,
            "holds a few-shot split (split.json): train one supernet in another folder, or \
             continue the split with --few-shot",
        ));
    }
    if !resume && dir.join(crate::STATE_FILE).is_file() {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let done = crate::epochs_done(dir).map_or(String::new(), |n| {
            format!(" trained {n} epoch{}", plural(n))
        });
        return Err(crate::checkpoint::io(
            dir,
            format!(
                "holds a supernet{done}: --resume continues it (to --epochs); train a new one \
                 in another folder (or delete this one)"
            ),
        ));
    }
    if !dir.join(crate::STATE_FILE).is_file() {
        // trained afresh, with --resume or without
        crate::checkpoint::new_folder(dir)?;
    }
    let identity = SupernetIdentity::of(space, data, data_identity, config);
    kiln_train::with_threads(config.threads, || {
        train_on_pool(&identity, data, dir, resume, progress)
    })?
}

/// Refuses data without a validation split: each epoch's record and every judged
/// sub-network are scored on it (the test split stays for reporting).
///
/// Errors: [`SupernetError::Config`].
pub(crate) fn has_validation(data: &Dataset) -> Result<(), SupernetError> {
    if data.validation.is_empty() {
        return Err(SupernetError::Config(
            "no validation split (--validation 0, or too few training images to hold one \
             out): each epoch's record and every judged sub-network are scored on it; give \
             a share above 0 or more images"
                .into(),
        ));
    }
    Ok(())
}

/// What [`train`] reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A step finished.
    Step {
        /// 1-based epoch.
        epoch: usize,
        /// Epochs this supernet trains to (a split's shared supernet: its shared epochs).
        epochs: usize,
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
    /// A few-shot split ([`crate::split::train_split`]) starts training one of its parts;
    /// that part's steps and epochs follow.
    Part {
        /// The part's label (its folder's name).
        label: String,
        /// 1-based; 0 for the whole space's supernet the parts start from
        /// ([`SupernetConfig::shared_epochs`]).
        index: usize,
        /// Parts in the split.
        parts: usize,
    },
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
    let mut identity = identity.clone();
    let (mut net, done, mut metrics) = if resume && dir.join(crate::STATE_FILE).is_file() {
        let (net, found, done, mut metrics) = load(dir, &ad)?;
        found.check_resume(&identity, dir)?;
        // a folder that did not record what its first epochs saw does not learn it now
        identity.data_content = found.data_content;
        // a kill between writing metrics.json and supernet.json leaves one record ahead
        metrics.epochs.truncate(done);
        progress(Progress::Resumed(done));
        (net, done, metrics)
    } else {
        let mut init = Seeded::new(config.seed);
        let per_activation = config.bn_per_activation;
        let net = SuperNet::build(
            &identity.space,
            identity.input,
            per_activation,
            &mut init,
            &ad,
        )?;
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
    let phases = Phases::new(&identity.space, config.schedule);
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
            let elastic = phases.at((epoch - 1) * steps + s, total);
            let students = phases.students(elastic, config.random_subnets, &mut rng);
            let students: Vec<(&Genome, Tensor<4>)> =
                students.iter().map(|g| (g, input(g))).collect();
            let sandwich = Sandwich {
                largest: (&big, input(&big)),
                labels: y,
                students,
            };
            let (grads, value) = sandwich.gradients(&net, &ce, &ad, config.threads >= 2)?;
            if !value.is_finite() {
                return Err(SupernetError::Diverged {
                    epoch,
                    batch: s + 1,
                    loss: value,
                });
            }
            net = optim.step(lr, net, grads);
            loss_sum += f64::from(value);
            progress(Progress::Step {
                epoch,
                epochs: config.epochs,
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
        save(dir, &plain, &identity, epoch, &metrics)?;
        progress(Progress::Epoch(record));
    }
    Ok((net.valid(), metrics))
}

/// One step of the sandwich rule with in-place distillation (BigNAS): the largest
/// sub-network learns the labels (cross-entropy), every student (the smallest, then the
/// random ones) learns the largest's predictions (its softmax, detached; the loss is the
/// cross-entropy against it).
struct Sandwich<'a> {
    /// The largest sub-network and its batch.
    largest: (&'a Genome, Tensor<4>),
    /// The batch's labels, `[n]`.
    labels: Tensor<1, Int>,
    /// The smallest sub-network first, then the random ones, each with its batch.
    students: Vec<(&'a Genome, Tensor<4>)>,
}

impl Sandwich<'_> {
    /// The gradients of the step's summed loss and that loss, computed in two groups: the
    /// largest with the first [`STUDENTS_BESIDE_LARGEST`] students on `net`, the other
    /// students on a fork of `net` (the same parameters with an autodiff graph of their
    /// own, so the two backward passes do not wait on burn's lock of one graph). With
    /// `parallel` the second group runs on a thread of its own, its forward passes beside
    /// the largest's (only its loss waits for the largest's predictions). The groups'
    /// gradients are summed in that order either way: a seed gives the same weights with
    /// one thread or two.
    ///
    /// Errors: a genome that is not a sub-network of `net`.
    fn gradients(
        self,
        net: &SuperNet,
        ce: &CrossEntropyLoss,
        device: &Device,
        parallel: bool,
    ) -> Result<(GradientsParams, f32), SupernetError> {
        let (big, x) = self.largest;
        let mut own = self.students;
        let forked = own.split_off(own.len().min(STUDENTS_BESIDE_LARGEST));
        // no second group (no random sub-networks): no fork and no thread
        let fork = (!forked.is_empty()).then(|| net.clone().fork(device));
        let parallel = parallel && fork.is_some();
        let (send, teacher) = mpsc::sync_channel(1);
        let first = move || {
            let logits = net.forward(big, x, &mut BnContext::batch())?;
            // in-place distillation: the students learn the largest's predictions
            let teacher = softmax(logits.clone().detach(), 1);
            // the other group may wait for them (it is gone when it has no students)
            let _ = send.send(teacher.clone());
            let mut loss = ce.forward(logits, self.labels);
            for (g, x) in own {
                let out = net.forward(g, x, &mut BnContext::batch())?;
                loss = loss + distillation(&teacher, out);
            }
            Ok::<_, SupernetError>(backward(loss, net))
        };
        let second = move || match &fork {
            Some(fork) => forked_gradients(fork, forked, &teacher),
            None => Ok(None),
        };
        let (first, second) = if parallel {
            std::thread::scope(|s| {
                let second = s.spawn(second);
                let first = first();
                let second = second
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (first, second)
            })
        } else {
            (first(), second())
        };
        let (grads, mut value) = first?;
        let Some((more, more_value)) = second? else {
            return Ok((grads, value));
        };
        value += more_value;
        let mut sum = GradientsAccumulator::<SuperNet>::new();
        sum.accumulate(net, grads);
        sum.accumulate(net, more);
        Ok((sum.grads(), value))
    }
}

/// How many students (the smallest first) run in the largest's group; the others run in
/// the second group, on the fork. The largest's backward pass with the smallest about
/// balances two random sub-networks' passes: 0 (the largest alone) trained no faster
/// (whole-process wall ratio 1.02, 3 alternating pairs, README).
const STUDENTS_BESIDE_LARGEST: usize = 1;

/// The second group of [`Sandwich::gradients`]: `students`' forward passes on `fork`, then
/// their distillation losses against the largest's predictions from `teacher`, summed, and
/// that sum's gradients and value. `None` without students, or when the largest's
/// forward pass failed (its error is the step's).
///
/// Errors: a genome that is not a sub-network of `fork`.
fn forked_gradients(
    fork: &SuperNet,
    students: Vec<(&Genome, Tensor<4>)>,
    teacher: &mpsc::Receiver<Tensor<2>>,
) -> Result<Option<(GradientsParams, f32)>, SupernetError> {
    if students.is_empty() {
        return Ok(None);
    }
    let outs = students
        .into_iter()
        .map(|(g, x)| fork.forward(g, x, &mut BnContext::batch()))
        .collect::<Result<Vec<_>, _>>()?;
    let Ok(teacher) = teacher.recv() else {
        return Ok(None);
    };
    let loss = outs
        .into_iter()
        .map(|out| distillation(&teacher, out))
        .reduce(|a, b| a + b);
    Ok(loss.map(|loss| backward(loss, fork)))
}

/// The distillation loss of a student's `logits` against the `teacher`'s probabilities
/// (both `[n, classes]`): their cross-entropy, averaged over the batch.
fn distillation(teacher: &Tensor<2>, logits: Tensor<2>) -> Tensor<1> {
    (teacher.clone() * log_softmax(logits, 1))
        .sum_dim(1)
        .mean()
        .neg()
}

/// The gradients of `loss` for `net`'s parameters, and its value.
fn backward(loss: Tensor<1>, net: &SuperNet) -> (GradientsParams, f32) {
    let value: f32 = loss.clone().into_scalar();
    (GradientsParams::from_grads(loss.backward(), net), value)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{data, one_epoch, space, train_once};

    /// A batch of `n` training images of `data` and their labels.
    fn batch(data: &Dataset, n: usize, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let idx: Vec<usize> = (0..n).collect();
        let b = data
            .train
            .batch::<ChaCha8Rng>(&idx, &data.normalization, None);
        let labels = b.labels.iter().map(|&l| l as i64).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device);
        (images(b.images, n, data, device), y)
    }

    fn sandwich<'a>(
        big: &'a Genome,
        students: &'a [Genome],
        x: &Tensor<4>,
        y: &Tensor<1, Int>,
    ) -> Sandwich<'a> {
        Sandwich {
            largest: (big, x.clone()),
            labels: y.clone(),
            students: students.iter().map(|g| (g, x.clone())).collect(),
        }
    }

    #[test]
    fn the_two_groups_gradients_sum_to_the_whole_losses() {
        let (data, space) = (data(), space());
        let ad = kiln_train::device().autodiff();
        let input = kiln_train::input_spec(&data);
        let net = SuperNet::build(&space, input, false, &mut Seeded::new(5), &ad).unwrap();
        let ce = CrossEntropyLossConfig::new().init(&ad);
        let (x, y) = batch(&data, 8, &ad);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut students = vec![smallest(&space)];
        students.extend((0..2).map(|_| Genome::sample(&space, &mut rng)));
        let big = largest(&space);
        let sandwich = |students| sandwich(&big, students, &x, &y);
        let (grads, value) = sandwich(&students).gradients(&net, &ce, &ad, true).unwrap();

        // the same loss as one graph: the largest's cross-entropy plus every distillation
        let logits = net
            .forward(&big, x.clone(), &mut BnContext::batch())
            .unwrap();
        let teacher = softmax(logits.clone().detach(), 1);
        let mut whole = ce.forward(logits, y.clone());
        for g in &students {
            let out = net.forward(g, x.clone(), &mut BnContext::batch()).unwrap();
            whole = whole + distillation(&teacher, out);
        }
        let (expected, whole_value) = backward(whole, &net);
        assert!((value - whole_value).abs() < 1e-5 * whole_value.abs());

        // the stem and the classifier learn from every sub-network, so a group's lost
        // gradients would show in both
        let close = |a: Vec<f32>, b: Vec<f32>| {
            let scale = b.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
            assert!(scale > 0.0);
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() <= 1e-4 * scale, "{a} vs {b} (scale {scale})");
            }
        };
        let of4 = |g: &GradientsParams, p: &burn::module::Param<Tensor<4>>| {
            kiln_train::values(g.get::<4>(p.id).unwrap(), "grad").unwrap()
        };
        let of2 = |g: &GradientsParams, p: &burn::module::Param<Tensor<2>>| {
            kiln_train::values(g.get::<2>(p.id).unwrap(), "grad").unwrap()
        };
        close(
            of4(&grads, &net.stem.weight),
            of4(&expected, &net.stem.weight),
        );
        close(
            of2(&grads, &net.classifier_weight),
            of2(&expected, &net.classifier_weight),
        );
        // without the random group, the stem's gradient differs
        let (alone, _) = sandwich(&students[..1])
            .gradients(&net, &ce, &ad, true)
            .unwrap();
        assert_ne!(of4(&alone, &net.stem.weight), of4(&grads, &net.stem.weight));
    }

    #[test]
    fn two_threads_train_the_weights_one_thread_trains() {
        let (data, space) = (data(), space());
        let config = one_epoch(16);
        let (one, m1) = train_once(&space, &data, &config, &mut |_| {});
        let two_threads = SupernetConfig {
            threads: 2,
            ..config
        };
        let (two, m2) = train_once(&space, &data, &two_threads, &mut |_| {});
        assert_eq!(m1.epochs[0].loss, m2.epochs[0].loss);
        let device = kiln_train::device();
        let (x, _) = batch(&data, 4, &device);
        for g in [largest(&space), smallest(&space)] {
            let out = |n: &SuperNet| {
                let logits = n.forward(&g, x.clone(), &mut BnContext::batch()).unwrap();
                kiln_train::values(logits, "logits").unwrap()
            };
            assert_eq!(out(&one), out(&two), "genome {}", g.id());
        }
    }
}

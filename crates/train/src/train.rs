//! The training loop and evaluation.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use kiln_data::{Dataset, Normalization, Split};
use kiln_space::{Architecture, InputSpec};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::metrics::InputNormalization;
use crate::shard;
use crate::{EpochMetrics, Metrics, Network, Observer, OptimizerConfig, TrainConfig, TrainError};

/// A trained network with its architecture and what training measured.
pub struct Trained {
    /// The architecture the network was built from.
    pub architecture: Architecture,
    /// In eval mode (batch norm uses running statistics), on the plain flex device. Takes
    /// normalised images.
    pub network: Network,
    /// What training measured (`metrics.json`).
    pub metrics: Metrics,
}

/// The input description kiln-space needs, from a data set.
pub fn input_spec(data: &Dataset) -> InputSpec {
    InputSpec {
        channels: data.shape.channels,
        height: data.shape.height,
        width: data.shape.width,
        classes: data.classes,
    }
}

/// The architecture `genome` describes for `data`'s input shape and class count; a genome
/// that does not fit the input (e.g. downsamples more than the image allows) is an error.
///
/// Errors: [`TrainError::Space`] with the `kiln_space::SpaceError` of
/// `kiln_space::Architecture::new`.
pub fn architecture_for(
    space: &kiln_space::Space,
    genome: &kiln_space::Genome,
    data: &Dataset,
) -> Result<Architecture, TrainError> {
    Ok(Architecture::new(space, genome, input_spec(data))?)
}

/// The CPU device kiln trains on (burn's flex backend).
pub fn device() -> Device {
    Device::flex()
}

/// Runs `f` on a rayon pool of `threads` workers, the pool burn-flex's kernels use.
///
/// Errors: [`TrainError::Threads`] when the pool cannot be built.
pub fn with_threads<R: Send>(
    threads: usize,
    f: impl FnOnce() -> R + Send,
) -> Result<R, TrainError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| TrainError::Threads(e.to_string()))?;
    Ok(pool.install(f))
}

/// Trains a fresh network for `arch` on `data`. `genome_id` only labels the metrics.
/// Runs on a pool of `config.threads` workers; `observer` hears about every batch and epoch.
/// Accuracies in the metrics are top-1 fractions, times in seconds, throughput in images/s.
///
/// Errors: [`TrainError::Config`] for a bad `config`; [`TrainError::InputMismatch`] when
/// `arch` was built for another input than `data` has; [`TrainError::EmptySplit`] when the
/// training or test split is empty; [`TrainError::Diverged`] when the loss stops being
/// finite; [`TrainError::Threads`] and [`TrainError::Tensor`] from the machinery.
pub fn train(
    arch: &Architecture,
    genome_id: &str,
    data: &Dataset,
    config: &TrainConfig,
    observer: &mut dyn Observer,
) -> Result<Trained, TrainError> {
    train_from(arch, None, genome_id, data, config, observer)
}

/// [`train`] starting from `start` (every weight and batch-norm statistic of `arch`, as
/// [`Network::from_weights`] reads them) instead of a seeded initialisation: fine-tuning,
/// e.g. of a sub-network whose weights were inherited from a supernet. `None` is [`train`].
///
/// Errors: as [`train`]; [`TrainError::Export`] for starting weights that do not fit
/// `arch`.
pub fn train_from(
    arch: &Architecture,
    start: Option<&kiln_onnx::Weights>,
    genome_id: &str,
    data: &Dataset,
    config: &TrainConfig,
    observer: &mut dyn Observer,
) -> Result<Trained, TrainError> {
    config.validate()?;
    let spec = input_spec(data);
    if arch.input != spec {
        return Err(TrainError::InputMismatch {
            expected: arch.input.to_string(),
            found: spec.to_string(),
            dataset: data.name.clone(),
        });
    }
    if data.train.is_empty() {
        return Err(TrainError::EmptySplit {
            dataset: data.name.clone(),
            split: "train",
        });
    }
    if data.test.is_empty() {
        return Err(TrainError::EmptySplit {
            dataset: data.name.clone(),
            split: "test",
        });
    }
    with_threads(config.threads, || {
        train_on_pool(arch, start, genome_id, data, config, observer)
    })?
}

fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let decay = |wd: f32| (wd > 0.0).then(|| WeightDecayConfig::new(wd));
    match config.optimizer {
        OptimizerConfig::Adam { weight_decay } => AdamConfig::new()
            .with_weight_decay(decay(weight_decay))
            .init(),
        OptimizerConfig::Sgd {
            momentum,
            nesterov,
            weight_decay,
        } => SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0)
                    .with_nesterov(nesterov),
            ))
            .with_weight_decay(decay(weight_decay))
            .init(),
    }
}

fn train_on_pool(
    arch: &Architecture,
    start: Option<&kiln_onnx::Weights>,
    genome_id: &str,
    data: &Dataset,
    config: &TrainConfig,
    observer: &mut dyn Observer,
) -> Result<Trained, TrainError> {
    let plain = device();
    let autodiff = plain.clone().autodiff();
    let mut network = match start {
        Some(w) => Network::from_weights(arch, w, &autodiff)?,
        None => Network::new(arch, config.seed, &autodiff),
    };
    let mut optim = optimizer(config);
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing((config.label_smoothing > 0.0).then_some(config.label_smoothing))
        .init(&autodiff);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5ee_d0fb_a7c4);
    let norm = &data.normalization;
    let n = data.train.len();
    // A last batch of one image would make batch-norm statistics degenerate: drop it.
    let batches = if n % config.batch_size == 1 && n > 1 {
        n / config.batch_size
    } else {
        n.div_ceil(config.batch_size)
    };
    let total_steps = batches * config.epochs;
    let mut order: Vec<usize> = (0..n).collect();
    let mut epochs = Vec::with_capacity(config.epochs);
    let mut step = 0;
    let mut train_seconds = 0.0;
    let mut images_seen = 0usize;

    for epoch in 1..=config.epochs {
        observer.epoch_start(epoch, config.epochs, batches);
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = config.lr;
        let started = Instant::now();
        for (b, idx) in order.chunks(config.batch_size).take(batches).enumerate() {
            lr = config.lr_at(step, total_steps, batches);
            let augment = config.augment.as_ref().map(|a| (a, &mut rng));
            let batch = data.train.batch(idx, norm, augment);
            let sharded = shard::gradients(
                &network,
                &loss_fn,
                &batch,
                image_shape(data),
                &autodiff,
                config.shards,
                config.threads > 1,
            )?;
            let loss_value = sharded.loss;
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: b + 1,
                    loss: loss_value,
                });
            }
            correct += count_correct(&sharded.logits, &batch.labels, data.classes);
            let grads = sharded.grads;
            network = optim.step(lr, network, grads);
            loss_sum += f64::from(loss_value) * idx.len() as f64;
            seen += idx.len();
            step += 1;
            observer.batch(b + 1, loss_sum / seen as f64, correct as f64 / seen as f64);
        }
        let seconds = started.elapsed().as_secs_f64();
        train_seconds += seconds;
        images_seen += seen;
        let validation_top1 = if data.validation.is_empty() {
            None
        } else {
            Some(evaluate(
                &network.valid(),
                &data.validation,
                data,
                config.eval_batch_size,
            )?)
        };
        let m = EpochMetrics {
            epoch,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_top1: correct as f64 / seen.max(1) as f64,
            validation_top1,
            train_seconds: seconds,
            images_per_second: seen as f64 / seconds.max(1e-9),
        };
        observer.epoch_end(&m);
        epochs.push(m);
    }

    if config.bn_recalibration_images > 0 {
        network = recalibrate_bn(network, data, config, &autodiff);
        if let (Some(last), false) = (epochs.last_mut(), data.validation.is_empty()) {
            last.validation_top1 = Some(evaluate(
                &network.valid(),
                &data.validation,
                data,
                config.eval_batch_size,
            )?);
        }
    }
    let network = network.valid();
    let test_top1 = evaluate(&network, &data.test, data, config.eval_batch_size)?;
    let totals = arch.totals();
    let metrics = Metrics {
        source: "host".into(),
        accuracy_engine: "burn (flex backend), eval mode".into(),
        dataset: data.name.clone(),
        input: arch.input,
        class_names: data.class_names.clone(),
        genome_id: genome_id.to_string(),
        params: totals.params,
        macs: totals.macs,
        train_images: data.train.len(),
        validation_images: data.validation.len(),
        test_images: data.test.len(),
        config: config.clone(),
        normalization: InputNormalization::from_data(&data.normalization),
        validation_top1: epochs.last().and_then(|e| e.validation_top1),
        epochs,
        test_top1,
        train_seconds,
        train_images_per_second: images_seen as f64 / train_seconds.max(1e-9),
    };
    Ok(Trained {
        architecture: arch.clone(),
        network,
        metrics,
    })
}

/// Recomputes the batch-norm running statistics as the average over the first
/// `config.bn_recalibration_images` training images, in train-mode forward passes.
fn recalibrate_bn(
    network: Network,
    data: &Dataset,
    config: &TrainConfig,
    device: &Device,
) -> Network {
    // Training is over: untracked parameters keep the forward passes from building autodiff
    // graphs that nothing would consume (batch norm still takes its train path).
    let mut network = network.no_grad();
    let n = config.bn_recalibration_images.min(data.train.len());
    let all: Vec<usize> = (0..n).collect();
    for (k, idx) in all.chunks(config.batch_size.max(2)).enumerate() {
        if idx.len() < 2 {
            break;
        }
        network.set_bn_momentum(1.0 / (k + 1) as f64);
        let batch = data
            .train
            .batch::<ChaCha8Rng>(idx, &data.normalization, None);
        let x = images_tensor(batch.images, idx.len(), image_shape(data), device);
        let _ = network.forward(x.detach());
    }
    network.set_bn_momentum(0.1);
    network
}

/// The `[channels, height, width]` of `data`'s images.
fn image_shape(data: &Dataset) -> [usize; 3] {
    let s = data.shape;
    [s.channels, s.height, s.width]
}

/// `n` normalised images (`[n, c, h, w]` row-major) as a tensor on `device`.
pub(crate) fn images_tensor(
    images: Vec<f32>,
    n: usize,
    [c, h, w]: [usize; 3],
    device: &Device,
) -> Tensor<4> {
    Tensor::<4>::from_data(TensorData::new(images, [n, c, h, w]), device)
}

/// Reads a tensor's values back as `f32`, row-major; `what` names it in errors.
///
/// Errors: [`TrainError::Tensor`] when burn cannot convert the data.
pub fn values<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>, TrainError> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| TrainError::Tensor {
            what: what.to_string(),
            message: format!("{e:?}"),
        })
}

fn count_correct(logits: &[f32], labels: &[usize], classes: usize) -> usize {
    logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, label)| argmax(row) == **label)
        .count()
}

/// Index of the largest value (the first on ties); 0 for an empty row.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Logits `[n, classes]` (flattened, row-major) of `network` (eval mode) for images
/// `indices` of `split`, normalised with `norm`; `data` gives the image shape.
///
/// Errors: [`TrainError::Tensor`] when burn cannot hand the logits back.
pub fn logits(
    network: &Network,
    split: &Split,
    indices: &[usize],
    data: &Dataset,
    norm: &Normalization,
) -> Result<Vec<f32>, TrainError> {
    let batch = split.batch::<ChaCha8Rng>(indices, norm, None);
    let x = images_tensor(batch.images, indices.len(), image_shape(data), &device());
    values(network.forward(x), "logits")
}

/// Top-1 (a fraction in [0, 1]; 0 for an empty split) of `network` (eval mode) on `split`,
/// normalised with `data.normalization`, `batch` (at least 1) images at a time;
/// the result does not depend on it.
///
/// Errors: [`TrainError::Tensor`] when burn cannot hand the logits back.
pub fn evaluate(
    network: &Network,
    split: &Split,
    data: &Dataset,
    batch: usize,
) -> Result<f64, TrainError> {
    let all: Vec<usize> = (0..split.len()).collect();
    let mut correct = 0;
    for idx in all.chunks(batch) {
        let out = logits(network, split, idx, data, &data.normalization)?;
        let labels: Vec<usize> = idx.iter().map(|&i| split.label(i)).collect();
        correct += count_correct(&out, &labels, data.classes);
    }
    Ok(correct as f64 / split.len().max(1) as f64)
}

//! FBNet's differentiable architecture search (Wu et al., 2019) on a trained supernet.
//!
//! Every decision of the space gets architecture parameters (one logit per option). Each
//! step draws a Gumbel-softmax sample of every decision (temperature annealed from
//! `tau.0` to `tau.1`), runs the supernet's shared weights under those soft choices
//! ([`soft`]), and lowers FBNet's loss
//!
//! `CE(a, w) x alpha x ln(1 + LAT(a))^beta`
//!
//! by the architecture parameters alone: `LAT(a)` is the expected sum of the latency
//! lookup table's layer figures (ms) under the sampled choices ([`cost`]), so a slow
//! option is pushed down in proportion to what it costs on the target. FBNet writes
//! `log(LAT)^beta`; kiln takes `ln(1 + LAT)` so sub-millisecond networks keep a positive
//! term. The supernet's weights stay as trained (the sandwich rule already trained every
//! sub-network; FBNet trains its own super net's weights in alternation). The result is
//! a categorical distribution per decision; its argmax is the found architecture, and
//! further candidates are drawn from it (FBNet samples its final candidates so).
//!
//! FBNet's term trades latency for accuracy but knows no limit: on a target whose limit
//! binds, the distribution can settle on networks the search then rejects (measured:
//! every one of 499 draws over an 11.94 ms limit in one seed of docs/quality-dnas). With
//! a [`LatencyLimit`], kiln adds a hinge on the predicted latency,
//! `weight x max(0, PRED(a) / T - 1)`, where `PRED` is the table's predictor (its fitted
//! line over the expected layer sum and the expected layer count, both exact
//! expectations): zero inside the limit, so FBNet's trade-off alone acts there, and a
//! push back over it (the hard-constraint penalty of ProxylessNAS-style searches).

mod cost;
mod soft;

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use kiln_data::Dataset;
use kiln_space::{Genome, LayerKey, Space};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::SupernetError;

/// Settings of the differentiable search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnasSettings {
    /// Passes over the training split.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Adam's learning rate for the architecture parameters (FBNet: 0.01 over 90 epochs;
    /// higher here, since kiln runs one or two).
    pub lr: f64,
    /// Gumbel-softmax temperature at the first and the last step, annealed geometrically
    /// (FBNet starts at 5).
    pub tau: (f64, f64),
    /// FBNet's alpha: the latency term's scale (0: accuracy alone).
    pub alpha: f64,
    /// FBNet's beta: the latency term's exponent.
    pub beta: f64,
    /// Seeds the batch order and the Gumbel noise.
    pub seed: u64,
    /// The target's latency limit as a hinge on the loss (`None`: FBNet's term alone).
    #[serde(default)]
    pub limit: Option<LatencyLimit>,
}

/// A hard latency limit for [`search`], in the table's predictor's terms: a network
/// whose expected layer sum is `LAT` ms over `N` layers is predicted at
/// `scale x LAT + per_layer_ms x N + constant_ms` ms (kiln-latency's fitted line), and
/// the loss gains `weight x max(0, predicted / ms - 1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyLimit {
    /// The limit, ms (the tightest of the target's p50, p95 and 1000 / min FPS).
    pub ms: f64,
    /// The predictor's factor on the layer sum.
    pub scale: f64,
    /// The predictor's term per layer, ms.
    pub per_layer_ms: f64,
    /// The predictor's per-network constant, ms.
    pub constant_ms: f64,
    /// The hinge's weight (1: 10% over the limit costs 0.1, about a third of FBNet's
    /// loss at a cross-entropy of 1).
    pub weight: f64,
}

impl LatencyLimit {
    /// The predicted latency, ms, of a layer sum `layer_sum_ms` over `layers` layers.
    pub fn predicted_ms(&self, layer_sum_ms: f64, layers: f64) -> f64 {
        self.scale * layer_sum_ms + self.per_layer_ms * layers + self.constant_ms
    }
}

impl Default for DnasSettings {
    /// FBNet's alpha 0.2 and beta 0.6; one epoch at batch 32; temperature 5 to 0.5.
    fn default() -> Self {
        DnasSettings {
            epochs: 1,
            batch_size: 32,
            lr: 0.05,
            tau: (5.0, 0.5),
            alpha: 0.2,
            beta: 0.6,
            seed: 0,
            limit: None,
        }
    }
}

/// One epoch of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnasEpoch {
    /// 1-based.
    pub epoch: usize,
    /// Mean cross-entropy of the soft network (training images).
    pub cross_entropy: f64,
    /// Mean expected latency of the sampled choices, ms (`predicted`, from the table).
    pub expected_latency_ms: f64,
    /// Temperature at the epoch's end.
    pub tau: f64,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnasResult {
    /// Per decision (`Space::choice_counts` order), the probability of each option:
    /// the softmax of its architecture parameters.
    pub probabilities: Vec<Vec<f64>>,
    /// The most probable option of every decision.
    pub genome: Genome,
    /// The lookup table's latency of `genome`, ms (sum of its layers, no per-network
    /// constant; `predicted`).
    pub latency_ms: f64,
    /// With a [`LatencyLimit`]: `genome`'s latency by the predictor's line, ms
    /// (`predicted`), comparable with the limit.
    #[serde(default)]
    pub predicted_ms: Option<f64>,
    /// Per epoch.
    pub epochs: Vec<DnasEpoch>,
    /// The settings it ran with.
    pub settings: DnasSettings,
}

/// Hears each step of [`search`]: (step, steps, the epoch's mean cross-entropy so far);
/// returning false stops the search ([`SupernetError::Stopped`]).
pub type DnasProgress<'a> = &'a mut dyn FnMut(usize, usize, f64) -> bool;

/// The architecture parameters: one logit per option of every decision.
#[derive(Module, Debug)]
struct Logits {
    theta: Vec<Param<Tensor<1>>>,
}

/// Runs FBNet's search on the supernet in `dir` (trained for `data`'s images) with the
/// latency of each layer from `cost_ms` (the lookup table, ms in the target's mode).
///
/// Errors: [`SupernetError::Checkpoint`] for the folder; [`SupernetError::Config`] for
/// settings that cannot run or a space that chooses its input resolution;
/// [`SupernetError::MissingLatency`] for a layer `cost_ms`
/// has no figure for; [`SupernetError::Diverged`].
pub fn search(
    dir: &Path,
    data: &Dataset,
    cost_ms: &dyn Fn(&LayerKey) -> Option<f64>,
    settings: &DnasSettings,
    progress: DnasProgress,
) -> Result<DnasResult, SupernetError> {
    check(settings, data.train.len())?;
    let ad = kiln_train::device().autodiff();
    let (net, _, _, _) = crate::load(dir, &ad)?;
    if let Some(sides) = &net.space.resolution {
        return Err(SupernetError::Config(format!(
            "the differentiable search does not choose the input resolution, and the \
             supernet's space lists {sides:?}"
        )));
    }
    let theirs = kiln_train::input_spec(data);
    if theirs != net.input {
        return Err(SupernetError::Input {
            data: theirs.to_string(),
            supernet: net.input.to_string(),
        });
    }
    let net = net.no_grad();
    let space = net.space.clone();
    let input = [data.shape.channels, data.shape.height, data.shape.width];
    let classes = net.input.classes;
    let counts = space.choice_counts();
    let mut logits = Logits {
        theta: counts
            .iter()
            .map(|&n| Param::from_data(TensorData::new(vec![0.0f32; n], [n]), &ad))
            .collect(),
    };
    let mut optim = AdamConfig::new().init();
    let ce = CrossEntropyLossConfig::new().init(&ad);
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let n = data.train.len();
    let steps_per_epoch = n / settings.batch_size;
    let steps = steps_per_epoch * settings.epochs;
    let (tau0, tau1) = settings.tau;
    let mut epochs = Vec::new();
    let mut step = 0;
    for epoch in 1..=settings.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let (mut ce_sum, mut lat_sum, mut tau) = (0.0, 0.0, tau0);
        for idx in order.chunks_exact(settings.batch_size) {
            tau = tau0 * (tau1 / tau0).powf(step as f64 / steps.saturating_sub(1).max(1) as f64);
            let g = gumbel_softmax(&logits, tau, &mut rng, &ad);
            let p: Vec<Vec<f64>> = g
                .iter()
                .map(|t| floats(t.clone().detach()))
                .collect::<Result<_, _>>()?;
            let missing = |key: LayerKey| SupernetError::MissingLatency(key.to_string());
            let (lat, grad) = cost::expected_with_gradient(&space, input, classes, &p, cost_ms)
                .map_err(missing)?;
            let lat_t = surrogate(lat, &grad, &g, &ad);
            let hinge = match &settings.limit {
                Some(limit) => {
                    let (n, n_grad) =
                        cost::expected_with_gradient(&space, input, classes, &p, &|_| Some(1.0))
                            .map_err(missing)?;
                    let n_t = surrogate(n, &n_grad, &g, &ad);
                    let pred = lat_t.clone() * limit.scale as f32
                        + n_t * limit.per_layer_ms as f32
                        + limit.constant_ms as f32;
                    Some(relu(pred / limit.ms as f32 - 1.0) * limit.weight as f32)
                }
                None => None,
            };
            let batch = data
                .train
                .batch::<ChaCha8Rng>(idx, &data.normalization, None);
            let x = Tensor::<4>::from_data(
                TensorData::new(batch.images, [idx.len(), input[0], input[1], input[2]]),
                &ad,
            );
            let labels: Vec<i64> = batch.labels.iter().map(|&l| l as i64).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [idx.len()]), &ad);
            let out = soft::forward(&net, &g, x)?;
            let cross = ce.forward(out, y);
            let term =
                (lat_t + 1.0).log().powf_scalar(settings.beta as f32) * settings.alpha as f32;
            let mut loss = if settings.alpha > 0.0 {
                cross.clone() * term
            } else {
                cross.clone()
            };
            if let Some(h) = hinge {
                loss = loss + h;
            }
            let value: f32 = loss.clone().into_scalar();
            if !value.is_finite() {
                return Err(SupernetError::Diverged {
                    epoch,
                    batch: step % steps_per_epoch.max(1) + 1,
                    loss: value,
                });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &logits);
            logits = optim.step(settings.lr, logits, grads);
            let cross: f32 = cross.into_scalar();
            ce_sum += f64::from(cross);
            lat_sum += lat;
            step += 1;
            if !progress(
                step,
                steps,
                ce_sum / (step - (epoch - 1) * steps_per_epoch) as f64,
            ) {
                return Err(SupernetError::Stopped);
            }
        }
        epochs.push(DnasEpoch {
            epoch,
            cross_entropy: ce_sum / steps_per_epoch.max(1) as f64,
            expected_latency_ms: lat_sum / steps_per_epoch.max(1) as f64,
            tau,
        });
    }
    let probabilities: Vec<Vec<f64>> = logits
        .theta
        .iter()
        .map(|t| floats(softmax(t.val().detach(), 0)))
        .collect::<Result<_, _>>()?;
    let genome = argmax(&space, &probabilities)?;
    let arch = net.architecture(&genome)?;
    let keys = arch.layer_keys();
    let latency_ms = keys.iter().try_fold(0.0, |sum, key| {
        cost_ms(key)
            .map(|ms| sum + ms)
            .ok_or_else(|| SupernetError::MissingLatency(key.to_string()))
    })?;
    let predicted_ms =
        (settings.limit.as_ref()).map(|l| l.predicted_ms(latency_ms, keys.len() as f64));
    Ok(DnasResult {
        probabilities,
        genome,
        latency_ms,
        predicted_ms,
        epochs,
        settings: settings.clone(),
    })
}

/// One Gumbel-softmax sample of every decision at temperature `tau` (Jang et al., 2017):
/// `softmax((theta + g) / tau)` with `g = -ln(-ln u)`, `u` uniform in (0, 1).
fn gumbel_softmax(logits: &Logits, tau: f64, rng: &mut ChaCha8Rng, ad: &Device) -> Vec<Tensor<1>> {
    logits
        .theta
        .iter()
        .map(|t| {
            let len = t.val().dims()[0];
            let noise: Vec<f32> = (0..len)
                .map(|_| {
                    let u: f64 = rng.random_range(1e-12..1.0);
                    -(-u.ln()).ln() as f32
                })
                .collect();
            let noise = Tensor::<1>::from_data(TensorData::new(noise, [len]), ad);
            softmax((t.val() + noise) / tau, 0)
        })
        .collect()
}

/// A one-element tensor whose value is `value` and whose gradient by each sample `g[d]`
/// is `grad[d]`: `value + sum_d (g_d - stop(g_d)) . grad_d`. Exact for an expectation
/// that is linear in each decision's weights, as [`cost`]'s are.
fn surrogate(value: f64, grad: &[Vec<f64>], g: &[Tensor<1>], ad: &Device) -> Tensor<1> {
    let mut t = Tensor::<1>::from_data(TensorData::new(vec![value as f32], [1]), ad);
    for (gd, gr) in g.iter().zip(grad) {
        let gr: Vec<f32> = gr.iter().map(|&v| v as f32).collect();
        let len = gr.len();
        let gr = Tensor::<1>::from_data(TensorData::new(gr, [len]), ad);
        t = t + ((gd.clone() - gd.clone().detach()) * gr).sum();
    }
    t
}

/// Refuses settings that cannot search `train_images` images.
fn check(settings: &DnasSettings, train_images: usize) -> Result<(), SupernetError> {
    let bad = |m: String| Err(SupernetError::Config(m));
    let (t0, t1) = settings.tau;
    if settings.epochs == 0 || settings.batch_size < 2 {
        return bad("dnas needs at least 1 epoch and batches of at least 2 images".into());
    }
    if train_images < settings.batch_size {
        return bad(format!(
            "dnas needs at least one batch of {} training images; the split has {train_images}",
            settings.batch_size
        ));
    }
    if !(t0.is_finite() && t1.is_finite() && t0 > 0.0 && t1 > 0.0) {
        return bad(format!(
            "dnas temperatures must be above 0, not {t0} and {t1}"
        ));
    }
    let ok = |v: f64| v.is_finite() && v >= 0.0;
    if !(ok(settings.alpha) && ok(settings.beta) && settings.lr.is_finite() && settings.lr > 0.0) {
        return bad("dnas: alpha and beta must be 0 or more, the learning rate above 0".into());
    }
    Ok(())
}

fn floats(t: Tensor<1>) -> Result<Vec<f64>, SupernetError> {
    Ok(kiln_train::values(t, "architecture weights")
        .map_err(|e| SupernetError::Tensor(e.to_string()))?
        .into_iter()
        .map(f64::from)
        .collect())
}

/// The first most probable option.
fn best(p: &[f64]) -> usize {
    let mut at = 0;
    for (i, v) in p.iter().enumerate() {
        if *v > p[at] {
            at = i;
        }
    }
    at
}

/// The genome of the most probable option of every decision.
///
/// Errors: [`SupernetError::Genome`] when the vector does not fit the space.
pub fn argmax(space: &Space, probabilities: &[Vec<f64>]) -> Result<Genome, SupernetError> {
    let choices: Vec<usize> = probabilities.iter().map(|p| best(p)).collect();
    Genome::from_choices(space, &choices).map_err(|e| SupernetError::Genome(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests;

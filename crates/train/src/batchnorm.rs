//! Batch normalisation for training (Ioffe & Szegedy, 2015), with a backward pass of its own.
//!
//! burn 0.22's flex backend computes a training batch norm out of general tensor operations:
//! the statistics by swapping the batch and channel axes, copying that to a contiguous buffer
//! and reducing it, the backward pass by four more such reductions and their broadcasts. `perf`
//! on a fine-tuning here put a fifth of the time in them, half of it in the copies.
//! [`batch_norm_train`] computes the same function as one autodiff operation whose forward and
//! backward passes are direct loops over each channel's planes of the NCHW tensor.
//!
//! Each channel's sums run in a fixed order (images in turn, each plane in [`LANES`] partial
//! sums, added in `f64`), whatever the number of threads, so a seed still gives the same
//! weights.

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::nn::BatchNorm;
use burn::tensor::module::BatchNormTrainOutput;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use crate::flex::{Train, TrainTensor, f32s, flex};

/// Partial sums per plane: enough independent additions for the compiler to vectorise.
const LANES: usize = 16;

/// The sizes of an NCHW activation as batch norm sees it: `n` images of `c` channels, each
/// channel a plane of `plane` (= h w) values; statistics are per channel, over `n * plane`
/// values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub n: usize,
    pub c: usize,
    pub plane: usize,
}

impl Layout {
    /// The plane of image `n`, channel `c` in `t` (`[n, c, plane]` row-major).
    fn plane<'a>(&self, t: &'a [f32], n: usize, c: usize) -> &'a [f32] {
        &t[(n * self.c + c) * self.plane..][..self.plane]
    }

    /// Values per channel (the statistics' count, `M`).
    fn count(&self) -> f64 {
        (self.n * self.plane) as f64
    }

    /// `f(image, channel)` summed over the images for each channel, channels in parallel.
    fn per_channel(&self, f: impl Fn(usize, usize) -> f64 + Sync) -> Vec<f64> {
        (0..self.c)
            .into_par_iter()
            .map(|c| (0..self.n).map(|n| f(n, c)).sum())
            .collect()
    }

    /// A new tensor of this layout whose plane `(n, c)` is written by `f(n, c, plane)`,
    /// planes in parallel.
    fn planes(&self, f: impl Fn(usize, usize, &mut [f32]) + Sync) -> Vec<f32> {
        let mut out = vec![0.0f32; self.n * self.c * self.plane];
        if self.plane > 0 {
            out.par_chunks_mut(self.plane)
                .enumerate()
                .for_each(|(p, dst)| f(p / self.c, p % self.c, dst));
        }
        out
    }
}

/// `sum of f(a[i], b[i])` over `a` in [`LANES`] partial sums (a single running sum fixes the
/// order of the additions and keeps it scalar), in `f64` at the end.
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let b = &b[..a.len()];
    let mut acc = [0.0f32; LANES];
    let (a16, b16) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = a16
        .remainder()
        .iter()
        .zip(b16.remainder())
        .map(|(&x, &y)| f64::from(f(x, y)))
        .sum();
    for (x, y) in a16.zip(b16) {
        for i in 0..LANES {
            acc[i] += f(x[i], y[i]);
        }
    }
    acc.iter().map(|&v| f64::from(v)).sum::<f64>() + tail
}

/// Batch statistics of `x` (`[n, c, plane]`): each channel's mean and biased (population)
/// variance over its `n * plane` values, two passes (the variance from centred values).
pub fn statistics(l: &Layout, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let m = l.count().max(1.0);
    let mean: Vec<f64> = l
        .per_channel(|n, c| {
            let p = l.plane(x, n, c);
            lane_sum(p, p, |v, _| v)
        })
        .into_iter()
        .map(|s| s / m)
        .collect();
    let var = l.per_channel(|n, c| {
        let (p, mu) = (l.plane(x, n, c), mean[c] as f32);
        lane_sum(p, p, |v, _| (v - mu) * (v - mu))
    });
    (
        mean.iter().map(|&v| v as f32).collect(),
        var.iter().map(|&v| (v / m) as f32).collect(),
    )
}

/// `1 / sqrt(var + epsilon)` per channel.
fn inverse_std(var: &[f32], epsilon: f64) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (f64::from(v) + epsilon).sqrt()) as f32)
        .collect()
}

/// Forward: `y = (x - mean[c]) / sqrt(var[c] + epsilon) * gamma[c] + beta[c]` over `x`
/// (`[n, c, plane]`), with the statistics of [`statistics`].
pub fn normalize(
    l: &Layout,
    x: &[f32],
    (mean, var): (&[f32], &[f32]),
    (gamma, beta): (&[f32], &[f32]),
    epsilon: f64,
) -> Vec<f32> {
    let inv = inverse_std(var, epsilon);
    l.planes(|n, c, dst| {
        let (scale, mu, b) = (gamma[c] * inv[c], mean[c], beta[c]);
        for (d, &v) in dst.iter_mut().zip(l.plane(x, n, c)) {
            *d = (v - mu) * scale + b;
        }
    })
}

/// The gradients of [`normalize`] with batch statistics, given the output's gradient `dy`:
/// `(dx, dgamma, dbeta)`. With `xhat = (x - mean) / std`, per channel over its `M` values:
/// `dbeta = sum dy`, `dgamma = sum dy xhat`, `dx = gamma / std (dy - dbeta / M - xhat dgamma
/// / M)` (the statistics' own dependence on `x` included; Ioffe & Szegedy 2015, section 3).
pub fn gradients(
    l: &Layout,
    x: &[f32],
    dy: &[f32],
    (mean, var): (&[f32], &[f32]),
    gamma: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let inv = inverse_std(var, epsilon);
    let m = l.count().max(1.0);
    let dbeta = l.per_channel(|n, c| {
        let p = l.plane(dy, n, c);
        lane_sum(p, p, |g, _| g)
    });
    // sum of dy (x - mean); times 1 / std it is dgamma
    let centred = l.per_channel(|n, c| {
        let mu = mean[c];
        lane_sum(l.plane(dy, n, c), l.plane(x, n, c), |g, v| g * (v - mu))
    });
    let dx = l.planes(|n, c, dst| {
        let (inv, mu) = (inv[c], mean[c]);
        let scale = gamma[c] * inv;
        let shift = (dbeta[c] / m) as f32;
        let slope = (centred[c] / m) as f32 * inv * inv;
        let (xs, gs) = (l.plane(x, n, c), l.plane(dy, n, c));
        for ((d, &v), &g) in dst.iter_mut().zip(xs).zip(gs) {
            *d = scale * (g - shift - (v - mu) * slope);
        }
    });
    let dgamma = centred
        .iter()
        .zip(&inv)
        .map(|(&s, &i)| s as f32 * i)
        .collect();
    (dx, dgamma, dbeta.iter().map(|&v| v as f32).collect())
}

/// Batch normalisation with the batch's own statistics, as burn's
/// `burn::tensor::module::batch_norm_train`: `x` NCHW `[n, c, h, w]`, `gamma` and `beta`
/// `[c]` -> the normalised `[n, c, h, w]` with the batch mean and biased variance `[c]`
/// (detached, without `epsilon`).
///
/// On the training backend (flex under autodiff, f32) the operation carries its own backward
/// pass (module docs); anywhere else, for `gamma` or `beta` not `[c]` or for an empty `x`, it
/// is burn's, with the same result (burn checks the shapes and reports them).
pub fn batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> BatchNormTrainOutput<4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    // an empty batch goes to burn's too, whose statistics are NaN there: visible, where
    // zeros would quietly pull the running statistics
    let shapes_fit = gamma.dims() == [c] && beta.dims() == [c] && n * c * h * w > 0;
    let on_train_backend = (
        x.clone().try_into_primitive::<Train>(),
        gamma.clone().try_into_primitive::<Train>(),
        beta.clone().try_into_primitive::<Train>(),
    );
    match on_train_backend {
        (Ok(x), Ok(gamma), Ok(beta))
            if shapes_fit
                && [&x, &gamma, &beta]
                    .iter()
                    .all(|t| t.primitive().dtype() == DType::F32) =>
        {
            let (output, mean, var) = tracked([n, c, h, w], x, gamma, beta, epsilon);
            let stat = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [c]), &device);
            BatchNormTrainOutput {
                output: Tensor::from_primitive::<Train>(output),
                mean: stat(mean),
                variance: stat(var),
            }
        }
        _ => burn::tensor::module::batch_norm_train(x, gamma, beta, epsilon),
    }
}

/// The forward pass of burn's `BatchNorm` module through [`batch_norm_train`]: on an autodiff
/// device with the layer in training, the batch's statistics, and the running statistics
/// updated with the layer's momentum as burn's module updates them; otherwise the module's own
/// (inference) forward. `x` NCHW `[n, c, h, w]` -> `[n, c, h, w]`.
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    if !(x.device().is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(x);
    }
    let device = x.device();
    let result = batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let momentum = bn.momentum;
    let update = |running: Tensor<1>, batch: Tensor<1>| {
        running
            .to_device(&device)
            .mul_scalar(1.0 - momentum)
            .add(batch.detach().mul_scalar(momentum))
            .detach()
    };
    bn.running_mean
        .update(update(bn.running_mean.value_sync(), result.mean));
    bn.running_var
        .update(update(bn.running_var.value_sync(), result.variance));
    result.output
}

/// The operation on the training backend: output, mean, variance.
fn tracked(
    shape: [usize; 4],
    x: TrainTensor,
    gamma: TrainTensor,
    beta: TrainTensor,
    epsilon: f64,
) -> (TrainTensor, Vec<f32>, Vec<f32>) {
    let [n, c, h, w] = shape;
    let l = Layout { n, c, plane: h * w };
    let xs = f32s(x.primitive());
    let (mean, var) = statistics(&l, &xs);
    let gamma_values = f32s(gamma.primitive()).into_owned();
    let y = normalize(
        &l,
        &xs,
        (&mean, &var),
        (&gamma_values, &f32s(beta.primitive())),
        epsilon,
    );
    drop(xs);
    let y = flex(y, &shape);
    let output = match BatchNormBackward
        .prepare::<NoCheckpointing>([x.node(), gamma.node(), beta.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let saved = Saved {
                shape,
                mean: mean.clone(),
                var: var.clone(),
                gamma: gamma_values,
                epsilon,
            };
            let state = (prep.checkpoint(&x), saved);
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    (output, mean, var)
}

/// What the backward pass needs besides the input (checkpointed by the graph).
#[derive(Clone, Debug)]
struct Saved {
    shape: [usize; 4],
    mean: Vec<f32>,
    var: Vec<f32>,
    gamma: Vec<f32>,
    epsilon: f64,
}

#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = (NodeId, Saved);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, cp: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_id, s) = ops.state;
        let x: FlexTensor = cp.retrieve_node_output(x_id);
        let [n, c, h, w] = s.shape;
        let l = Layout { n, c, plane: h * w };
        let (dx, dgamma, dbeta) = gradients(
            &l,
            &f32s(&x),
            &f32s(&dy),
            (&s.mean, &s.var),
            &s.gamma,
            s.epsilon,
        );
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex(dx, &s.shape));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex(dgamma, &[c]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, flex(dbeta, &[c]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(i: usize, salt: usize) -> f32 {
        ((i * 7919 + salt * 104_729) % 201) as f32 / 50.0 - 1.5
    }

    /// The definition in `f64`: `y = (x - mean) / sqrt(var + eps) gamma + beta` per channel.
    fn definition(l: &Layout, x: &[f64], gamma: &[f64], beta: &[f64]) -> Vec<f64> {
        let m = (l.n * l.plane) as f64;
        let mut y = vec![0.0; x.len()];
        for c in 0..l.c {
            let at = |n: usize, i: usize| (n * l.c + c) * l.plane + i;
            let every = || (0..l.n).flat_map(|n| (0..l.plane).map(move |i| at(n, i)));
            let mean = every().map(|j| x[j]).sum::<f64>() / m;
            let var = every().map(|j| (x[j] - mean).powi(2)).sum::<f64>() / m;
            for j in every() {
                y[j] = (x[j] - mean) / (var + 1e-5).sqrt() * gamma[c] + beta[c];
            }
        }
        y
    }

    /// The kernels against the definition: the forward pass directly, the gradients of
    /// `sum(y * r)` against central differences of the definition.
    #[test]
    fn the_kernels_compute_the_definition() {
        for (n, c, plane) in [(2, 3, 5), (1, 2, 1), (3, 2, 17), (2, 1, 40)] {
            let l = Layout { n, c, plane };
            let len = n * c * plane;
            let x: Vec<f32> = (0..len).map(|i| value(i, 1) + 2.0).collect();
            let r: Vec<f32> = (0..len).map(|i| value(i, 2)).collect();
            let gamma: Vec<f32> = (0..c).map(|i| 1.0 + value(i, 3) / 4.0).collect();
            let beta: Vec<f32> = (0..c).map(|i| value(i, 4)).collect();
            let wide = |v: &[f32]| v.iter().map(|&a| f64::from(a)).collect::<Vec<f64>>();
            let (xw, gw, bw, rw) = (wide(&x), wide(&gamma), wide(&beta), wide(&r));
            let loss = |x: &[f64], g: &[f64], b: &[f64]| {
                let y = definition(&l, x, g, b);
                y.iter().zip(&rw).map(|(a, b)| a * b).sum::<f64>()
            };
            let stats = statistics(&l, &x);
            let y = normalize(&l, &x, (&stats.0, &stats.1), (&gamma, &beta), 1e-5);
            for (i, (a, b)) in y.iter().zip(definition(&l, &xw, &gw, &bw)).enumerate() {
                assert!(
                    (f64::from(*a) - b).abs() < 1e-4,
                    "y[{i}] {a} vs {b} ({l:?})"
                );
            }
            let (dx, dgamma, dbeta) = gradients(&l, &x, &r, (&stats.0, &stats.1), &gamma, 1e-5);
            // the loss with input `which` (0 x, 1 gamma, 2 beta) element `i` moved by `delta`
            let moved = |which: usize, i: usize, delta: f64| {
                let mut t = [xw.clone(), gw.clone(), bw.clone()];
                t[which][i] += delta;
                loss(&t[0], &t[1], &t[2])
            };
            let h = 1e-4;
            let numeric = |which, i| (moved(which, i, h) - moved(which, i, -h)) / (2.0 * h);
            for (which, got) in [(0, &dx), (1, &dgamma), (2, &dbeta)] {
                for (i, &g) in got.iter().enumerate() {
                    let want = numeric(which, i);
                    assert!(
                        (f64::from(g) - want).abs() < 2e-3 * want.abs().max(1.0),
                        "gradient {which}[{i}] {g} vs {want} ({l:?})"
                    );
                }
            }
        }
    }

    /// kiln-train's training device is the backend [`batch_norm_train`] recognises: its output
    /// there is the kernels' to the bit (burn's fallback would pass every comparison).
    #[test]
    fn the_training_device_takes_kilns_path() {
        let dev = crate::device().autodiff();
        let l = Layout {
            n: 2,
            c: 3,
            plane: 4,
        };
        let x: Vec<f32> = (0..24).map(|i| value(i, 5)).collect();
        let (gamma, beta) = (vec![1.5f32, 0.5, 1.0], vec![0.1f32, -0.2, 0.3]);
        let t = |v: &[f32], shape: Vec<usize>| {
            Tensor::<4>::from_data(TensorData::new(v.to_vec(), shape), &dev)
        };
        let out = batch_norm_train(
            t(&x, vec![2, 3, 2, 2]).require_grad(),
            t(&gamma, vec![1, 1, 1, 3]).reshape([3]),
            t(&beta, vec![1, 1, 1, 3]).reshape([3]),
            1e-5,
        );
        let stats = statistics(&l, &x);
        let want = normalize(&l, &x, (&stats.0, &stats.1), (&gamma, &beta), 1e-5);
        let got = crate::values(out.output, "output").expect("f32 values");
        assert_eq!(got, want);
    }
}

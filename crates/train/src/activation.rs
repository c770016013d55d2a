//! The activations of kiln's blocks for training (relu6, hard swish), each one elementwise pass
//! forward and one backward.
//!
//! burn 0.22 composes both from general operations: relu6 as a clamp (a comparison, a mask fill
//! and their copies each way), hard swish as `x * clamp(x / 6 + 1/2, 0, 1)` (five operations,
//! each recorded and differentiated on its own, with its own tensor). [`activate`] computes the
//! same functions as one autodiff operation each, on the training backend; elsewhere it is
//! burn's.

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::activation::hard_swish;
use burn::tensor::{DType, Tensor};
use kiln_space::Activation;
use rayon::prelude::*;

use crate::flex::{Train, f32s, flex};

/// Values per parallel task: large enough that rayon's overhead stays small.
const CHUNK: usize = 1 << 14;

/// relu6: `min(max(x, 0), 6)`.
fn relu6(x: f32) -> f32 {
    x.clamp(0.0, 6.0)
}

/// Its derivative: 1 on `[0, 6]`, else 0 (burn's clamp passes the gradient at the bounds).
fn relu6_slope(x: f32) -> f32 {
    if (0.0..=6.0).contains(&x) { 1.0 } else { 0.0 }
}

/// Hard swish (Howard et al. 2019, MobileNetV3): `x * clamp(x / 6 + 1/2, 0, 1)`, the
/// division as burn's multiplication by an f32 sixth (the same bits as its `hard_swish`).
fn hswish(x: f32) -> f32 {
    x * (x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0)
}

/// Its derivative: 0 below -3, 1 above 3, `x / 3 + 1/2` between.
fn hswish_slope(x: f32) -> f32 {
    if x < -3.0 {
        0.0
    } else if x > 3.0 {
        1.0
    } else {
        x / 3.0 + 0.5
    }
}

/// `f` over `x`, in parallel chunks.
fn map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| {
            for (o, &v) in o.iter_mut().zip(x) {
                *o = f(v);
            }
        });
    out
}

/// `dy * slope(x)` elementwise, in parallel chunks.
fn chain(x: &[f32], dy: &[f32], slope: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(o, (x, dy))| {
            for ((o, &v), &g) in o.iter_mut().zip(x).zip(dy) {
                *o = g * slope(v);
            }
        });
    out
}

/// The forward pass of `a` over plain values (the kernel the operation runs).
pub fn forward(a: Activation, x: &[f32]) -> Vec<f32> {
    match a {
        Activation::Relu6 => map(x, relu6),
        Activation::Hswish => map(x, hswish),
    }
}

/// The input gradient of `a` given the output's gradient `dy`.
pub fn input_grad(a: Activation, x: &[f32], dy: &[f32]) -> Vec<f32> {
    match a {
        Activation::Relu6 => chain(x, dy, relu6_slope),
        Activation::Hswish => chain(x, dy, hswish_slope),
    }
}

/// Activation `a` elementwise over `x` (any shape): burn's `clamp(0, 6)` (relu6) and
/// `hard_swish` (equal within an f32 rounding; the gradient of hard swish just above 3 is 1,
/// the function's slope there). On the training backend (flex under autodiff, f32) one operation
/// with its own backward pass (module docs); anywhere else burn's.
pub fn activate<const D: usize>(x: Tensor<D>, a: Activation) -> Tensor<D> {
    match x.clone().try_into_primitive::<Train>() {
        Ok(t) if t.primitive().dtype() == DType::F32 => {
            let shape = x.dims().to_vec();
            let y = flex(forward(a, &f32s(t.primitive())), &shape);
            let out = match (ActivationBackward { a })
                .prepare::<NoCheckpointing>([t.node()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(mut prep) => {
                    let state = (prep.checkpoint(&t), shape);
                    prep.finish(state, y)
                }
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            Tensor::from_primitive::<Train>(out)
        }
        _ => match a {
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Hswish => hard_swish(x),
        },
    }
}

#[derive(Debug)]
struct ActivationBackward {
    a: Activation,
}

impl Backward<Flex, 1> for ActivationBackward {
    /// The input (checkpointed by the graph) and its shape.
    type State = (NodeId, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, cp: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_id, shape) = ops.state;
        let x: FlexTensor = cp.retrieve_node_output(x_id);
        if let Some(node) = node_x {
            let dx = input_grad(self.a, &f32s(&x), &f32s(&dy));
            grads.register::<Flex>(node.id, flex(dx, &shape));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// The slopes are the functions' derivatives: central differences away from the bends.
    #[test]
    fn the_slopes_are_the_derivatives() {
        for i in -80..=80 {
            let x = i as f32 / 10.0 + 0.05;
            let h = 1e-3;
            for (f, slope) in [
                (relu6 as fn(f32) -> f32, relu6_slope as fn(f32) -> f32),
                (hswish, hswish_slope),
            ] {
                let numeric = (f(x + h) - f(x - h)) / (2.0 * h);
                assert!(
                    (numeric - slope(x)).abs() < 1e-2,
                    "at {x}: {numeric} vs {}",
                    slope(x)
                );
            }
        }
    }

    /// On kiln-train's training device [`activate`] gives the kernel's output to the bit. It
    /// cannot tell the paths apart (burn's arithmetic is the same); the backend check is the
    /// one `depthwise` and `batchnorm` use, whose tests can.
    #[test]
    fn the_training_device_takes_kilns_path() {
        let dev = crate::device().autodiff();
        let x: Vec<f32> = (0..40).map(|i| i as f32 / 3.0 - 6.5).collect();
        let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [4, 10]), &dev).require_grad();
        for a in [Activation::Relu6, Activation::Hswish] {
            let got = crate::values(activate(t.clone(), a), "activation").expect("f32 values");
            assert_eq!(got, forward(a, &x), "{a:?}");
        }
    }
}

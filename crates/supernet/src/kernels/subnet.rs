//! One genome's sub-network sliced out of [`SupernetWeights`] into kiln-runtime's weight
//! layouts (NHWC activations; see kiln-runtime's crate docs for each kernel's layout).

use kiln_runtime::Activation as Act;
use kiln_space::{Activation, ConvBn, Genome, SqueezeExcite};

use super::{ConvWeights, SeWeights, SupernetWeights};
use crate::SupernetError;
use crate::bn::BN_EPSILON;
use crate::net::{block_index, kernel_offset, takes_hswish_pair};

/// Which kernel runs a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConvKind {
    /// 1x1, stride 1, one group: one packed GEMM over every pixel of the batch.
    Pointwise,
    /// A full (one-group) convolution with a larger kernel or a stride: per image.
    Full,
    /// One group per channel: per image.
    Depthwise,
}

/// A conv and its batch norm, weights in the runtime's layout.
pub(crate) struct SubConv {
    /// The layer's name in the architecture (the batch-norm statistics' key).
    pub name: String,
    pub kind: ConvKind,
    /// Shape and attributes for the runtime (activation left out: see [`SubConv::act`]).
    pub geometry: kiln_runtime::Conv2d,
    /// `Pointwise`/`Full`: `[k_h][k_w][in_c][out_c]`; `Depthwise`: `[k_h][k_w][c]`.
    pub weight: Vec<f32>,
    /// Batch-norm scale and shift, `[out_c]` each.
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    /// The activation after batch norm.
    pub act: Act,
}

/// Squeeze-excite: the runtime's dense layers on the pooled channels.
pub(crate) struct SubSe {
    pub channels: usize,
    pub reduced: usize,
    /// `[channels][reduced]`.
    pub reduce_weight: Vec<f32>,
    pub reduce_bias: Vec<f32>,
    /// `[reduced][channels]`.
    pub expand_weight: Vec<f32>,
    pub expand_bias: Vec<f32>,
}

/// One inverted-residual block.
pub(crate) struct SubBlock {
    pub expand: Option<SubConv>,
    pub depthwise: SubConv,
    pub se: Option<SubSe>,
    pub project: SubConv,
    pub residual: bool,
}

/// A genome's sub-network, ready for [`super::forward`].
pub(crate) struct SubNet {
    pub stem: SubConv,
    pub blocks: Vec<SubBlock>,
    pub head: Option<SubConv>,
    /// `[features][classes]`.
    pub classifier_weight: Vec<f32>,
    pub classifier_bias: Vec<f32>,
    pub classes: usize,
    /// Input (channels, height, width).
    pub input: (usize, usize, usize),
}

impl SubNet {
    /// Slices `genome`'s layers out of `w`.
    ///
    /// Errors: [`SupernetError::Genome`] for a genome outside the supernet's space.
    pub fn of(w: &SupernetWeights, genome: &Genome) -> Result<SubNet, SupernetError> {
        let arch = w.architecture(genome)?;
        let mut blocks = Vec::with_capacity(arch.blocks.len());
        let mut at = 0;
        for (i, stage) in genome.stages.iter().enumerate() {
            for j in 0..stage.blocks.len() {
                let (spec, sb) = (&arch.blocks[at], &w.blocks[block_index(&w.space, i, j)]);
                let expand = match (&spec.expand, &sb.expand) {
                    (Some(e), Some(we)) => Some(conv(we, e)),
                    _ => None,
                };
                let se = match (&spec.se, &sb.se) {
                    (Some(s), Some(ws)) => Some(squeeze_excite(ws, s)),
                    _ => None,
                };
                blocks.push(SubBlock {
                    expand,
                    depthwise: conv(&sb.depthwise, &spec.depthwise),
                    se,
                    project: conv(&sb.project, &spec.project),
                    residual: spec.residual,
                });
                at += 1;
            }
        }
        let head = match (&arch.head, &w.head) {
            (Some(h), Some(wh)) => Some(conv(wh, h)),
            _ => None,
        };
        let (features, classes) = (arch.classifier.in_features, arch.classifier.out_features);
        Ok(SubNet {
            stem: conv(&w.stem, &arch.stem),
            blocks,
            head,
            // `[features_max][classes]`: the first rows are the sub-network's
            classifier_weight: w.classifier_weight[..features * classes].to_vec(),
            classifier_bias: w.classifier_bias.clone(),
            classes,
            input: (arch.input.channels, arch.input.height, arch.input.width),
        })
    }
}

fn activation(a: Option<Activation>) -> Act {
    match a {
        None => Act::None,
        Some(Activation::Relu6) => Act::Clip { min: 0.0, max: 6.0 },
        Some(Activation::Hswish) => Act::HardSwish,
    }
}

/// The centre `k x k` of the first channels of `w` (OIHW at its largest), reordered to
/// `[k][k][in / groups][out]` (for a depthwise conv, `[k][k][c]`).
fn conv(w: &ConvWeights, spec: &ConvBn) -> SubConv {
    let [_, in_max, k_max, _] = w.dims;
    let (k, off) = (spec.kernel, kernel_offset(k_max, spec.kernel));
    let (cin, cout) = (spec.in_channels / spec.groups, spec.out_channels);
    let mut weight = vec![0.0; k * k * cin * cout];
    for ky in 0..k {
        for kx in 0..k {
            for ci in 0..cin {
                let row = ((ky * k + kx) * cin + ci) * cout;
                for (co, dst) in weight[row..row + cout].iter_mut().enumerate() {
                    *dst = w.weight[((co * in_max + ci) * k_max + off + ky) * k_max + off + kx];
                }
            }
        }
    }
    let kind = if spec.groups > 1 {
        ConvKind::Depthwise
    } else if k == 1 && spec.stride == 1 {
        ConvKind::Pointwise
    } else {
        ConvKind::Full
    };
    let ((in_h, in_w), (out_h, out_w)) = (spec.input_hw, spec.output_hw);
    let p = spec.padding();
    let (gamma, beta) = match &w.hswish_affine {
        Some([g, b]) if takes_hswish_pair(spec.activation) => (g, b),
        _ => (&w.gamma, &w.beta),
    };
    SubConv {
        name: spec.name.clone(),
        kind,
        geometry: kiln_runtime::Conv2d {
            in_h,
            in_w,
            in_c: spec.in_channels,
            out_h,
            out_w,
            out_c: cout,
            k_h: k,
            k_w: k,
            stride_h: spec.stride,
            stride_w: spec.stride,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: p,
            pad_left: p,
            groups: spec.groups,
            act: Act::None,
        },
        weight,
        gamma: gamma[..cout].to_vec(),
        beta: beta[..cout].to_vec(),
        act: activation(spec.activation),
    }
}

fn squeeze_excite(w: &SeWeights, spec: &SqueezeExcite) -> SubSe {
    let (c, r) = (spec.channels, spec.reduced);
    let mut reduce_weight = vec![0.0; c * r];
    let mut expand_weight = vec![0.0; r * c];
    for ci in 0..c {
        for ri in 0..r {
            // reduce `[r_max][c_max]` -> `[c][r]`; expand `[c_max][r_max]` -> `[r][c]`
            reduce_weight[ci * r + ri] = w.reduce_weight[ri * w.channels + ci];
            expand_weight[ri * c + ci] = w.expand_weight[ci * w.reduced + ri];
        }
    }
    SubSe {
        channels: c,
        reduced: r,
        reduce_weight,
        reduce_bias: w.reduce_bias[..r].to_vec(),
        expand_weight,
        expand_bias: w.expand_bias[..c].to_vec(),
    }
}

impl SubConv {
    /// The weights with batch norm folded in for `mean`, `var` (`[out_c]` each), and
    /// the bias it leaves: `w' = w * s`, `b = beta - mean * s` with
    /// `s = gamma / sqrt(var + eps)`, per output channel.
    pub fn folded(&self, mean: &[f32], var: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let c = self.geometry.out_c;
        let scale: Vec<f32> = (0..c)
            .map(|o| self.gamma[o] / (var[o] + BN_EPSILON as f32).sqrt())
            .collect();
        let bias = (0..c).map(|o| self.beta[o] - mean[o] * scale[o]).collect();
        let mut weight = self.weight.clone();
        for row in weight.chunks_exact_mut(c) {
            for (x, s) in row.iter_mut().zip(&scale) {
                *x *= s;
            }
        }
        (weight, bias)
    }
}

//! The supernet: every layer of a space at its largest, and the forward pass of any
//! genome's sub-network through slices of it.
//!
//! Sharing (Once-for-All, Cai et al., 2020; BigNAS, Yu et al., 2020):
//! - depth: a stage of depth d runs its first d blocks;
//! - width and expand ratio: the first channels of each layer's weight;
//! - kernel: the centre k x k of the largest depthwise kernel;
//! - squeeze-excite: its weights (the first channels) are skipped when the genome turns it
//!   off;
//! - activation: relu6 and hswish share the weights (an activation has none of its own),
//!   so the space keeps its per-block choice. The two differ where batch norm puts most
//!   values: on [-3, 3], hswish(x) = x (x + 3) / 6 has half relu6's slope at 0 and passes
//!   small negatives (down to -0.375); they agree on [3, 6]. One set of weights serves two
//!   functions, the next batch norm (recalibrated per sub-network) taking up scale, not
//!   shape: a known interference, chosen over a weight set per activation (twice the
//!   blocks' weights) and over one activation per stage (which would leave genomes of the
//!   default space outside the supernet);
//! - batch norm: gamma and beta shared (the first channels), statistics never shared
//!   (see [`crate::bn`]); with [`crate::SupernetConfig::bn_per_activation`], a block conv
//!   followed by hswish has a gamma and beta of its own ([`SuperConv::affine`]).

use burn::module::{Module, Param};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use kiln_space::{Activation, Architecture, ConvBn, Genome, InputSpec, Space, SqueezeExcite};
use kiln_train::conv2d_no_bias;

use crate::bn::BnContext;
use crate::init::Init;
use crate::{SupernetError, shapes};

/// A conv's weight at its largest with its batch norm's gamma and beta.
#[derive(Module, Debug)]
pub struct SuperConv {
    /// OIHW `[out_max, in_max / groups, k_max, k_max]`.
    pub weight: Param<Tensor<4>>,
    /// Batch-norm scale `[out_max]`.
    pub gamma: Param<Tensor<1>>,
    /// Batch-norm shift `[out_max]`.
    pub beta: Param<Tensor<1>>,
    /// With [`crate::SupernetConfig::bn_per_activation`], a block conv's own gamma and
    /// beta (`[out_max]` each) for sub-networks that follow it with hswish; `None`: one
    /// pair for every activation.
    pub hswish_affine: Option<Affine>,
}

/// A batch norm's learned scale and shift.
#[derive(Module, Debug)]
pub struct Affine {
    /// Scale `[out_max]`.
    pub gamma: Param<Tensor<1>>,
    /// Shift `[out_max]`.
    pub beta: Param<Tensor<1>>,
}

impl SuperConv {
    /// The batch norm's gamma and beta (`[c]` each, the first channels) for a conv
    /// followed by `activation`.
    pub(crate) fn affine(&self, activation: Option<Activation>, c: usize) -> [Tensor<1>; 2] {
        let (gamma, beta) = match &self.hswish_affine {
            Some(a) if takes_hswish_pair(activation) => (&a.gamma, &a.beta),
            _ => (&self.gamma, &self.beta),
        };
        [gamma.val().narrow(0, 0, c), beta.val().narrow(0, 0, c)]
    }
}

/// Whether a conv followed by `activation` takes its hswish gamma and beta, where it has
/// them ([`SuperConv::hswish_affine`]): the one rule burn's forward pass, the export and
/// kiln-runtime's judge share.
pub(crate) fn takes_hswish_pair(activation: Option<Activation>) -> bool {
    activation == Some(Activation::Hswish)
}

/// Squeeze-excite at its largest.
#[derive(Module, Debug)]
pub struct SuperSe {
    /// `[reduced_max, channels_max, 1, 1]`.
    pub reduce_weight: Param<Tensor<4>>,
    /// `[reduced_max]`.
    pub reduce_bias: Param<Tensor<1>>,
    /// `[channels_max, reduced_max, 1, 1]`.
    pub expand_weight: Param<Tensor<4>>,
    /// `[channels_max]`.
    pub expand_bias: Param<Tensor<1>>,
}

/// One block position of a stage at its largest.
#[derive(Module, Debug)]
pub struct SuperBlock {
    /// 1x1 expansion; absent when the stage offers only ratio 1.
    pub expand: Option<SuperConv>,
    /// Depthwise conv, `[mid_max, 1, k_max, k_max]`.
    pub depthwise: SuperConv,
    /// Absent when the stage never offers squeeze-excite.
    pub se: Option<SuperSe>,
    /// 1x1 projection, `[out_max, mid_max, 1, 1]`.
    pub project: SuperConv,
}

/// Every choice of a space at its largest, for one input shape and class count.
#[derive(Module, Debug)]
pub struct SuperNet {
    /// The stem conv.
    pub stem: SuperConv,
    /// Every block position of every stage (each stage at its largest depth), in order.
    pub blocks: Vec<SuperBlock>,
    /// The head conv, when the space offers one.
    pub head: Option<SuperConv>,
    /// Classifier weight `[features_max, classes]` (burn's `[in, out]`).
    pub classifier_weight: Param<Tensor<2>>,
    /// Classifier bias `[classes]`.
    pub classifier_bias: Param<Tensor<1>>,
    /// The space it holds.
    #[module(skip)]
    pub space: Space,
    /// Input shape and classes it was built for.
    #[module(skip)]
    pub input: InputSpec,
}

impl SuperNet {
    /// A supernet for `space` on `input` with weights from `init` (seeded random, or a
    /// checkpoint's), on `device`. Parameter names: see [`shapes::parameters`].
    ///
    /// Errors: [`SupernetError::Checkpoint`] when `init` lacks a tensor or has another
    /// shape.
    pub(crate) fn build(
        space: &Space,
        input: InputSpec,
        bn_per_activation: bool,
        init: &mut dyn Init,
        device: &Device,
    ) -> Result<SuperNet, SupernetError> {
        let layout = shapes::Layout::of(space, input);
        let stem = super_conv(init, "stem", layout.stem, false, device)?;
        let mut blocks = Vec::new();
        for (n, b) in layout.blocks.iter().enumerate() {
            let name = format!("blocks.{n}");
            // only where a block may choose hswish among others
            let own = bn_per_activation && b.activation_choice;
            blocks.push(SuperBlock {
                expand: match b.expand {
                    Some(s) => Some(super_conv(init, &format!("{name}.expand"), s, own, device)?),
                    None => None,
                },
                depthwise: super_conv(init, &format!("{name}.dw"), b.depthwise, own, device)?,
                se: None,
                project: super_conv(init, &format!("{name}.project"), b.project, false, device)?,
            });
        }
        let head = match layout.head {
            Some(s) => Some(super_conv(init, "head", s, false, device)?),
            None => None,
        };
        for (n, b) in layout.blocks.iter().enumerate() {
            if let Some((reduced, channels)) = b.se {
                let name = format!("blocks.{n}.se");
                blocks[n].se = Some(SuperSe {
                    reduce_weight: param4(
                        init,
                        &format!("{name}.reduce_weight"),
                        [reduced, channels, 1, 1],
                        device,
                    )?,
                    reduce_bias: vector(init, &format!("{name}.reduce_bias"), reduced, device)?,
                    expand_weight: param4(
                        init,
                        &format!("{name}.expand_weight"),
                        [channels, reduced, 1, 1],
                        device,
                    )?,
                    expand_bias: vector(init, &format!("{name}.expand_bias"), channels, device)?,
                });
            }
        }
        let [features, classes] = layout.classifier;
        let w = init.values("classifier.weight", &[features, classes])?;
        Ok(SuperNet {
            stem,
            blocks,
            head,
            classifier_weight: Param::from_data(TensorData::new(w, [features, classes]), device),
            classifier_bias: vector(init, "classifier.bias", classes, device)?,
            space: space.clone(),
            input,
        })
    }

    /// The architecture of `genome` on this supernet's input.
    ///
    /// Errors: [`SupernetError::Genome`] for a genome outside the supernet's space.
    pub fn architecture(&self, genome: &Genome) -> Result<Architecture, SupernetError> {
        Architecture::new(&self.space, genome, self.input)
            .map_err(|e| SupernetError::Genome(e.to_string()))
    }

    /// Index into [`SuperNet::blocks`] of stage `stage`, block `block`.
    pub(crate) fn block_index(&self, stage: usize, block: usize) -> usize {
        block_index(&self.space, stage, block)
    }

    /// Logits `[n, classes]` of `genome`'s sub-network for normalised images `[n, C, H, W]`,
    /// `C x H x W` the supernet's input at the genome's resolution
    /// ([`Genome::input`]: `side x side` when its space chooses one), batch norm as `bn`
    /// says.
    ///
    /// Errors: [`SupernetError::Input`] for images of another channel count or side
    /// (naming both shapes); [`SupernetError::Genome`] for a genome outside the space;
    /// [`SupernetError::Stats`] in fixed mode without recalibrated statistics.
    pub fn forward(
        &self,
        genome: &Genome,
        images: Tensor<4>,
        bn: &mut BnContext,
    ) -> Result<Tensor<2>, SupernetError> {
        // global pooling would run any side: a sub-network fed another side than its
        // genome's would train and judge at the wrong resolution without a word
        let ([_, c, h, w], wanted) = (images.dims(), genome.input(self.input));
        if (c, h, w) != (wanted.channels, wanted.height, wanted.width) {
            return Err(SupernetError::Input {
                data: format!("{c}x{h}x{w}"),
                supernet: format!("{wanted} for genome {}", genome.id()),
            });
        }
        let arch = self.architecture(genome)?;
        let mut x = conv_bn(&self.stem, &arch.stem, images, bn)?;
        let mut at = 0;
        for (i, stage) in genome.stages.iter().enumerate() {
            for j in 0..stage.blocks.len() {
                let spec = &arch.blocks[at];
                let sb = &self.blocks[self.block_index(i, j)];
                let input = x.clone();
                let mut y = match (&spec.expand, &sb.expand) {
                    (Some(e), Some(se)) => conv_bn(se, e, x, bn)?,
                    _ => x,
                };
                y = conv_bn(&sb.depthwise, &spec.depthwise, y, bn)?;
                if let (Some(s), Some(ss)) = (&spec.se, &sb.se) {
                    y = squeeze_excite(ss, s, y);
                }
                y = conv_bn(&sb.project, &spec.project, y, bn)?;
                x = if spec.residual { y + input } else { y };
                at += 1;
            }
        }
        if let (Some(h), Some(sh)) = (&arch.head, &self.head) {
            x = conv_bn(sh, h, x, bn)?;
        }
        let [n, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([n, c]);
        let classes = arch.classifier.out_features;
        let w = self.classifier_weight.val().slice([0..c, 0..classes]);
        let b = self.classifier_bias.val().reshape([1, classes]);
        Ok(pooled.matmul(w) + b)
    }
}

fn param4(
    init: &mut dyn Init,
    name: &str,
    shape: [usize; 4],
    device: &Device,
) -> Result<Param<Tensor<4>>, SupernetError> {
    let v = init.values(name, &shape)?;
    Ok(Param::from_data(TensorData::new(v, shape), device))
}

/// Its parameters are named `{name}.weight`, `.gamma`, `.beta` and, with
/// `hswish_affine`, `.gamma_hswish` and `.beta_hswish`.
fn super_conv(
    init: &mut dyn Init,
    name: &str,
    shape: [usize; 4],
    hswish_affine: bool,
    device: &Device,
) -> Result<SuperConv, SupernetError> {
    let c = shape[0];
    let hswish_affine = match hswish_affine {
        true => Some(Affine {
            gamma: vector(init, &format!("{name}.gamma_hswish"), c, device)?,
            beta: vector(init, &format!("{name}.beta_hswish"), c, device)?,
        }),
        false => None,
    };
    Ok(SuperConv {
        weight: param4(init, &format!("{name}.weight"), shape, device)?,
        gamma: vector(init, &format!("{name}.gamma"), c, device)?,
        beta: vector(init, &format!("{name}.beta"), c, device)?,
        hswish_affine,
    })
}

fn vector(
    init: &mut dyn Init,
    name: &str,
    n: usize,
    device: &Device,
) -> Result<Param<Tensor<1>>, SupernetError> {
    let v = init.values(name, &[n])?;
    Ok(Param::from_data(TensorData::new(v, [n]), device))
}

/// Index of stage `stage`, block `block` among a supernet's block positions (every stage
/// at its largest depth, in order).
pub(crate) fn block_index(space: &Space, stage: usize, block: usize) -> usize {
    let before: usize = space.stages[..stage]
        .iter()
        .map(|s| s.depth.iter().copied().max().unwrap_or(0))
        .sum();
    before + block
}

/// The centre `k x k` of a `k_max x k_max` kernel starts here.
pub(crate) fn kernel_offset(k_max: usize, k: usize) -> usize {
    (k_max - k) / 2
}

/// The sliced weight of `spec` from `sc`: `[out, in / groups, k, k]`.
pub(crate) fn conv_weight(sc: &SuperConv, spec: &ConvBn) -> Tensor<4> {
    let w = sc.weight.val();
    let k_max = w.dims()[2];
    let (k, off) = (spec.kernel, kernel_offset(k_max, spec.kernel));
    w.slice([
        0..spec.out_channels,
        0..spec.in_channels / spec.groups,
        off..off + k,
        off..off + k,
    ])
}

fn conv_bn(
    sc: &SuperConv,
    spec: &ConvBn,
    x: Tensor<4>,
    bn: &mut BnContext,
) -> Result<Tensor<4>, SupernetError> {
    let p = spec.padding();
    let y = conv2d_no_bias(x, conv_weight(sc, spec), spec.stride, p, spec.groups);
    let [gamma, beta] = sc.affine(spec.activation, spec.out_channels);
    let y = bn.apply(&spec.name, y, gamma, beta)?;
    Ok(match spec.activation {
        None => y,
        Some(a) => kiln_train::activate(y, a),
    })
}

fn squeeze_excite(ss: &SuperSe, spec: &SqueezeExcite, x: Tensor<4>) -> Tensor<4> {
    let (c, r) = (spec.channels, spec.reduced);
    let pooled = x.clone().mean_dim(3).mean_dim(2);
    let one = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
    let reduced = conv2d(
        pooled,
        ss.reduce_weight.val().slice([0..r, 0..c, 0..1, 0..1]),
        Some(ss.reduce_bias.val().narrow(0, 0, r)),
        one.clone(),
    );
    let gate = conv2d(
        relu(reduced),
        ss.expand_weight.val().slice([0..c, 0..r, 0..1, 0..1]),
        Some(ss.expand_bias.val().narrow(0, 0, c)),
        one,
    );
    x * sigmoid(gate)
}

//! Judging on kiln-runtime's kernels: the same batch-norm recalibration and top-1 as
//! [`crate::judge`], computed by the inference kernels kiln generates models with
//! instead of burn. Why: a judgement is inference only (batch norm with the batch's
//! statistics, then with the recalibrated ones), and burn's CPU backend spent about
//! half of it in a depthwise convolution written for training; kiln's NHWC kernels
//! run the whole batch's pointwise layers as one packed GEMM.
//!
//! [`SupernetWeights`] reads the supernet's tensors out of burn once; it is plain data
//! (`Send + Sync`), so any number of workers judge with one copy. Each judgement slices
//! its genome's weights into the runtime's layouts ([`subnet`]) and runs them
//! ([`forward`]). This crate's tests check that both paths agree.

mod forward;
mod subnet;

use kiln_data::{Dataset, Split};
use kiln_space::{Architecture, Genome, InputSpec, Space};
use rand_chacha::ChaCha8Rng;

use crate::bn::BnContext;
use crate::judge::{JudgeSettings, Judgement, accuracy_with, ranked_split, recalibrate_with};
use crate::net::SuperConv;
use crate::{SuperNet, SupernetError};
use forward::Maps;
use subnet::SubNet;

/// A conv at its largest: OIHW `[out_max, in_max / groups, k_max, k_max]`, with its
/// batch norm's gamma and beta (`[out_max]` each), and those for hswish when it has its
/// own ([`SuperConv::hswish_affine`]).
pub(crate) struct ConvWeights {
    pub weight: Vec<f32>,
    pub dims: [usize; 4],
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub hswish_affine: Option<[Vec<f32>; 2]>,
}

/// Squeeze-excite at its largest: reduce `[reduced_max][channels_max]`, expand
/// `[channels_max][reduced_max]`, their biases.
pub(crate) struct SeWeights {
    pub channels: usize,
    pub reduced: usize,
    pub reduce_weight: Vec<f32>,
    pub reduce_bias: Vec<f32>,
    pub expand_weight: Vec<f32>,
    pub expand_bias: Vec<f32>,
}

/// One block position at its largest.
pub(crate) struct BlockWeights {
    pub expand: Option<ConvWeights>,
    pub depthwise: ConvWeights,
    pub se: Option<SeWeights>,
    pub project: ConvWeights,
}

/// A supernet's weights as plain `f32` arrays (the layouts of [`SuperNet`]'s tensors),
/// shared by every worker that judges with kiln-runtime's kernels.
pub struct SupernetWeights {
    pub(crate) stem: ConvWeights,
    pub(crate) blocks: Vec<BlockWeights>,
    pub(crate) head: Option<ConvWeights>,
    /// `[features_max][classes]`.
    pub(crate) classifier_weight: Vec<f32>,
    pub(crate) classifier_bias: Vec<f32>,
    pub(crate) space: Space,
    input: InputSpec,
}

fn values<const D: usize>(t: burn::tensor::Tensor<D>) -> Result<Vec<f32>, SupernetError> {
    kiln_train::values(t, "supernet weight").map_err(|e| SupernetError::Tensor(e.to_string()))
}

fn conv_weights(sc: &SuperConv) -> Result<ConvWeights, SupernetError> {
    let w = sc.weight.val();
    Ok(ConvWeights {
        dims: w.dims(),
        weight: values(w)?,
        gamma: values(sc.gamma.val())?,
        beta: values(sc.beta.val())?,
        hswish_affine: match &sc.hswish_affine {
            Some(a) => Some([values(a.gamma.val())?, values(a.beta.val())?]),
            None => None,
        },
    })
}

impl SupernetWeights {
    /// Reads every tensor of `net` (a few MB).
    ///
    /// Errors: [`SupernetError::Tensor`] when burn cannot hand a tensor back.
    pub fn of(net: &SuperNet) -> Result<SupernetWeights, SupernetError> {
        let mut blocks = Vec::with_capacity(net.blocks.len());
        for b in &net.blocks {
            let se = match &b.se {
                Some(s) => {
                    let [reduced, channels, _, _] = s.reduce_weight.val().dims();
                    Some(SeWeights {
                        channels,
                        reduced,
                        reduce_weight: values(s.reduce_weight.val())?,
                        reduce_bias: values(s.reduce_bias.val())?,
                        expand_weight: values(s.expand_weight.val())?,
                        expand_bias: values(s.expand_bias.val())?,
                    })
                }
                None => None,
            };
            blocks.push(BlockWeights {
                expand: b.expand.as_ref().map(conv_weights).transpose()?,
                depthwise: conv_weights(&b.depthwise)?,
                se,
                project: conv_weights(&b.project)?,
            });
        }
        Ok(SupernetWeights {
            stem: conv_weights(&net.stem)?,
            blocks,
            head: net.head.as_ref().map(conv_weights).transpose()?,
            classifier_weight: values(net.classifier_weight.val())?,
            classifier_bias: values(net.classifier_bias.val())?,
            space: net.space.clone(),
            input: net.input,
        })
    }

    /// The space the supernet holds.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// `genome`'s sub-network, for images of `data` (at the genome's resolution when its
    /// space chooses one).
    ///
    /// Errors: [`SupernetError::Input`] when `data`'s images or classes are not the
    /// supernet's (resized to the genome's resolution); [`SupernetError::Genome`] for a
    /// genome outside the space.
    fn subnet(&self, genome: &Genome, data: &Dataset) -> Result<SubNet, SupernetError> {
        let (theirs, wanted) = (kiln_train::input_spec(data), genome.input(self.input));
        if theirs != wanted {
            return Err(SupernetError::Input {
                data: theirs.to_string(),
                supernet: wanted.to_string(),
            });
        }
        SubNet::of(self, genome)
    }

    pub(crate) fn architecture(&self, genome: &Genome) -> Result<Architecture, SupernetError> {
        Architecture::new(&self.space, genome, self.input)
            .map_err(|e| SupernetError::Genome(e.to_string()))
    }

    /// [`crate::recalibrate`] on kiln-runtime's kernels: `genome`'s batch-norm statistics
    /// over the first `settings.recalibration_images` training images.
    ///
    /// Errors: [`SupernetError::Input`] for data of another shape or class count;
    /// [`SupernetError::Genome`] for a genome outside the space.
    pub fn recalibrate(
        &self,
        genome: &Genome,
        data: &Dataset,
        settings: &JudgeSettings,
    ) -> Result<BnContext, SupernetError> {
        recalibrate(&self.subnet(genome, data)?, data, settings)
    }

    /// [`crate::accuracy`] on kiln-runtime's kernels: top-1 (a fraction) on `split` with
    /// the statistics of `bn`, and the logits `[n, classes]` row-major.
    ///
    /// Errors: [`SupernetError::Input`]; [`SupernetError::Genome`];
    /// [`SupernetError::Stats`] when `bn` was not recalibrated for this genome.
    pub fn accuracy(
        &self,
        genome: &Genome,
        bn: &mut BnContext,
        split: &Split,
        data: &Dataset,
        batch: usize,
    ) -> Result<(f64, Vec<f32>), SupernetError> {
        accuracy(&self.subnet(genome, data)?, bn, split, data, batch)
    }

    /// [`crate::judge`] on kiln-runtime's kernels: recalibrated, then validation top-1
    /// (test top-1 without a validation split), an accuracy inherited from the supernet.
    ///
    /// Errors: as [`SupernetWeights::recalibrate`] and [`SupernetWeights::accuracy`].
    pub fn judge(
        &self,
        genome: &Genome,
        data: &Dataset,
        settings: &JudgeSettings,
    ) -> Result<Judgement, SupernetError> {
        let net = self.subnet(genome, data)?;
        let mut bn = recalibrate(&net, data, settings)?;
        let split = ranked_split(data);
        let (top1, _) = accuracy(&net, &mut bn, split, data, settings.batch)?;
        Ok(Judgement { top1, bn })
    }
}

/// Normalised images `idx` of `split`, NHWC.
fn images(net: &SubNet, split: &Split, idx: &[usize], data: &Dataset) -> Maps {
    let batch = split.batch::<ChaCha8Rng>(idx, &data.normalization, None);
    let (c, h, w) = net.input;
    let mut nhwc = vec![0.0; batch.images.len()];
    for (x, out) in batch
        .images
        .chunks_exact(c * h * w)
        .zip(nhwc.chunks_exact_mut(c * h * w))
    {
        kiln_runtime::nchw_to_nhwc(x, out, c, h, w);
    }
    Maps {
        data: nhwc,
        n: idx.len(),
        pixels: h * w,
        c,
    }
}

fn recalibrate(
    net: &SubNet,
    data: &Dataset,
    settings: &JudgeSettings,
) -> Result<BnContext, SupernetError> {
    recalibrate_with(data, settings, |idx, bn| {
        forward::forward(net, images(net, &data.train, idx, data), bn).map(drop)
    })
}

fn accuracy(
    net: &SubNet,
    bn: &mut BnContext,
    split: &Split,
    data: &Dataset,
    batch: usize,
) -> Result<(f64, Vec<f32>), SupernetError> {
    accuracy_with(split, net.classes, batch, |idx| {
        forward::forward(net, images(net, split, idx, data), bn)
    })
}

#[cfg(test)]
pub(crate) mod tests;

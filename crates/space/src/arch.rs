//! The layer-level network a genome describes, with analytic parameter, MAC and memory figures.

use std::fmt;

use serde::Serialize;

use crate::{Activation, BlockGene, Genome, InputSpec, Precision, Space, SpaceError};

/// A convolution followed by batch norm and an optional activation.
/// Padding is `kernel / 2` on every side ("same" for stride 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConvBn {
    /// Layer name; its weights are named `{name}.weight`, `{name}.bn.*`.
    pub name: String,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size, in pixels.
    pub kernel: usize,
    /// Stride in pixels, the same along height and width.
    pub stride: usize,
    /// Convolution groups: 1 for a full conv, `in_channels` (= `out_channels`) for depthwise.
    pub groups: usize,
    /// The activation after batch norm; `None` for the linear projection.
    pub activation: Option<Activation>,
    /// (height, width) of the input feature map.
    pub input_hw: (usize, usize),
    /// (height, width) of the output feature map: `ceil(input / stride)` each.
    pub output_hw: (usize, usize),
}

impl ConvBn {
    pub(crate) fn new(
        name: String,
        (cin, cout): (usize, usize),
        kernel: usize,
        stride: usize,
        groups: usize,
        act: Option<Activation>,
        hw: (usize, usize),
    ) -> ConvBn {
        let out = |x: usize| x.div_ceil(stride);
        ConvBn {
            name,
            in_channels: cin,
            out_channels: cout,
            kernel,
            stride,
            groups,
            activation: act,
            input_hw: hw,
            output_hw: (out(hw.0), out(hw.1)),
        }
    }

    /// Zero padding on each of the four sides, in pixels: `kernel / 2`.
    pub fn padding(&self) -> usize {
        self.kernel / 2
    }

    /// Shape of the conv weight, OIHW: `[out_channels, in_channels / groups, kernel, kernel]`.
    pub fn weight_shape(&self) -> Vec<usize> {
        vec![
            self.out_channels,
            self.in_channels / self.groups,
            self.kernel,
            self.kernel,
        ]
    }

    /// The conv weight and the four batch-norm tensors (`{name}.weight`, `{name}.bn.*`).
    pub fn parameters(&self) -> Vec<ParamSpec> {
        let mut out = vec![ParamSpec {
            name: format!("{}.weight", self.name),
            shape: self.weight_shape(),
        }];
        for stat in ["weight", "bias", "running_mean", "running_var"] {
            out.push(ParamSpec {
                name: format!("{}.bn.{stat}", self.name),
                shape: vec![self.out_channels],
            });
        }
        out
    }

    fn params(&self) -> u64 {
        let w = self.out_channels * (self.in_channels / self.groups) * self.kernel * self.kernel;
        (w + 2 * self.out_channels) as u64 // + BN gamma and beta
    }

    fn macs(&self) -> u64 {
        let (h, w) = self.output_hw;
        (h * w * self.out_channels * (self.in_channels / self.groups) * self.kernel * self.kernel)
            as u64
    }
}

/// Squeeze-and-excite (Hu et al., 2018, placed after the depthwise conv as in MnasNet and
/// MobileNetV3): global pool, 1x1 reduce + ReLU, 1x1 expand + sigmoid, scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqueezeExcite {
    /// `{block}.se`; weights `{name}.reduce.*` and `{name}.expand.*`.
    pub name: String,
    /// Channels of the feature map it scales (the block's hidden width).
    pub channels: usize,
    /// Bottleneck width: `max(4, channels / 4)`.
    pub reduced: usize,
    /// (height, width) of the feature map it scales.
    pub hw: (usize, usize),
}

impl SqueezeExcite {
    fn params(&self) -> u64 {
        (2 * self.channels * self.reduced + self.reduced + self.channels) as u64
    }

    fn macs(&self) -> u64 {
        // pooling + two 1x1 convs on a 1x1 map + the per-channel scale
        let pixels = self.hw.0 * self.hw.1 * self.channels;
        (pixels + 2 * self.channels * self.reduced + pixels) as u64
    }
}

/// An inverted-residual (MBConv) block, as in MobileNetV2 (Sandler et al., 2018).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MbBlock {
    /// `s{stage}.b{block}`.
    pub name: String,
    /// 1x1 expansion; absent when the expand ratio is 1.
    pub expand: Option<ConvBn>,
    /// kxk depthwise conv; carries the block's stride.
    pub depthwise: ConvBn,
    /// Squeeze-excite after the depthwise conv, if the genome chose it.
    pub se: Option<SqueezeExcite>,
    /// 1x1 projection, batch norm, no activation.
    pub project: ConvBn,
    /// Input added to the output (stride 1 and equal channel counts).
    pub residual: bool,
}

impl MbBlock {
    /// The block named `name` taking `cin` channels at `hw` to `cout` channels, with the
    /// choices of `gene` and `stride` on its depthwise conv. The one constructor: the
    /// architecture and the latency table's layer keys both build blocks here.
    pub(crate) fn new(
        name: String,
        (cin, cout): (usize, usize),
        gene: &BlockGene,
        stride: usize,
        hw: (usize, usize),
    ) -> MbBlock {
        let mid = cin * gene.expand;
        let act = Some(gene.activation);
        let expand = (gene.expand != 1)
            .then(|| ConvBn::new(format!("{name}.expand"), (cin, mid), 1, 1, 1, act, hw));
        let depthwise = ConvBn::new(
            format!("{name}.dw"),
            (mid, mid),
            gene.kernel,
            stride,
            mid,
            act,
            hw,
        );
        let out_hw = depthwise.output_hw;
        let se = gene.se.then(|| SqueezeExcite {
            name: format!("{name}.se"),
            channels: mid,
            reduced: se_reduced(mid),
            hw: out_hw,
        });
        let project = ConvBn::new(
            format!("{name}.project"),
            (mid, cout),
            1,
            1,
            1,
            None,
            out_hw,
        );
        MbBlock {
            residual: stride == 1 && cin == cout,
            name,
            expand,
            depthwise,
            se,
            project,
        }
    }

    /// The block's weight tensors, in order (see [`Architecture::parameters`]).
    pub fn parameters(&self) -> Vec<ParamSpec> {
        let mut out = Vec::new();
        if let Some(e) = &self.expand {
            out.extend(e.parameters());
        }
        out.extend(self.depthwise.parameters());
        if let Some(se) = &self.se {
            let p = |name: String, shape: Vec<usize>| ParamSpec { name, shape };
            out.push(p(
                format!("{}.reduce.weight", se.name),
                vec![se.reduced, se.channels, 1, 1],
            ));
            out.push(p(format!("{}.reduce.bias", se.name), vec![se.reduced]));
            out.push(p(
                format!("{}.expand.weight", se.name),
                vec![se.channels, se.reduced, 1, 1],
            ));
            out.push(p(format!("{}.expand.bias", se.name), vec![se.channels]));
        }
        out.extend(self.project.parameters());
        out
    }
}

/// The fully connected classifier after global average pooling.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Linear {
    /// Layer name; weights `{name}.weight` (`[out, in]`) and `{name}.bias`.
    pub name: String,
    /// Input features: the channels of the last feature map.
    pub in_features: usize,
    /// Output features: the class count.
    pub out_features: usize,
}

impl Linear {
    /// `{name}.weight` (`[out, in]`) and `{name}.bias` (`[out]`).
    pub fn parameters(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec {
                name: format!("{}.weight", self.name),
                shape: vec![self.out_features, self.in_features],
            },
            ParamSpec {
                name: format!("{}.bias", self.name),
                shape: vec![self.out_features],
            },
        ]
    }
}

/// The network a genome describes for one input shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Architecture {
    /// The input the network was built for (NCHW with batch 1: `[1, C, H, W]`).
    pub input: InputSpec,
    /// The first conv.
    pub stem: ConvBn,
    /// Every block of every stage, in order.
    pub blocks: Vec<MbBlock>,
    /// The optional 1x1 conv before global average pooling.
    pub head: Option<ConvBn>,
    /// The classifier after global average pooling.
    pub classifier: Linear,
    /// The number format it is built in: the genome's precision, f32 when it has none
    /// (its latency-table keys are at this precision).
    pub precision: Precision,
}

/// One weight tensor the network needs, named as in the ONNX model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// E.g. `s0.b1.dw.weight`, `stem.bn.running_var`, `classifier.bias`.
    pub name: String,
    /// ONNX/PyTorch order: conv weights OIHW, linear weights `[out, in]`, the rest `[C]`.
    pub shape: Vec<usize>,
}

/// One row of the architecture table. Shapes are (channels, height, width).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSummary {
    /// Layer name (`stem`, `s0.b0.dw`, `s0.b0.add`, `pool`, ...).
    pub name: String,
    /// Short description, e.g. `dwconv 3x3/2+relu6`, `se /4`, `add`, `linear`.
    pub op: String,
    /// Input shape (channels, height, width).
    pub input: [usize; 3],
    /// Output shape (channels, height, width).
    pub output: [usize; 3],
    /// Trainable parameters (weights, biases, BN gamma and beta; not BN running statistics).
    pub params: u64,
    /// Multiply-accumulates for one image (convs and linear; batch norm is not counted,
    /// it folds into the conv; pooling and the SE scale count one per value).
    pub macs: u64,
    /// Bytes of the f32 output activation.
    pub output_bytes: u64,
}

/// Whole-network analytic figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Trainable parameters, the sum over [`LayerSummary::params`].
    pub params: u64,
    /// Multiply-accumulates for one image, the sum over [`LayerSummary::macs`].
    pub macs: u64,
    /// The largest f32 activation of any layer (the input image included), in bytes.
    pub max_activation_bytes: u64,
    /// The largest input + output pair of any layer, in bytes: a lower bound
    /// for the arena of a runtime that keeps only those two alive.
    pub max_layer_io_bytes: u64,
}

/// Squeeze-excite bottleneck width: a quarter of the channels as in MobileNetV3, at least 4.
pub fn se_reduced(channels: usize) -> usize {
    (channels / 4).max(4)
}

impl Architecture {
    /// Builds the layer list for `genome` on `input` (the genome is validated against `space`);
    /// a genome with a resolution ([`Genome::resolution`]) replaces `input`'s height and width.
    ///
    /// Errors: [`SpaceError::Invalid`] when the genome does not belong to `space`;
    /// [`SpaceError::DoesNotFit`] when a dimension is 0, `classes` is below 2, or the space
    /// downsamples by more than the input's height or width.
    pub fn new(
        space: &Space,
        genome: &Genome,
        input: InputSpec,
    ) -> Result<Architecture, SpaceError> {
        // A genome that chooses its resolution takes side x side images of `input`'s channels.
        let input = genome.input(input);
        let dims = |message: String| SpaceError::DoesNotFit {
            input: input.to_string(),
            message,
        };
        if input.channels == 0 || input.height == 0 || input.width == 0 || input.classes < 2 {
            return Err(dims(
                "channels, height and width must be positive and classes at least 2".into(),
            ));
        }
        genome.validate(space, "genome")?;
        let downsampling =
            space.stem.stride * space.stages.iter().map(|s| s.stride).product::<usize>();
        if input.height < downsampling || input.width < downsampling {
            return Err(dims(format!(
                "the space downsamples by {downsampling}, more than the {}x{} input allows",
                input.height, input.width
            )));
        }

        let mut hw = (input.height, input.width);
        let stem = ConvBn::new(
            "stem".into(),
            (input.channels, genome.stem_width),
            space.stem.kernel,
            space.stem.stride,
            1,
            Some(space.stem.activation),
            hw,
        );
        hw = stem.output_hw;
        let mut channels = stem.out_channels;
        let mut blocks = Vec::new();
        for (i, (stage, choices)) in genome.stages.iter().zip(&space.stages).enumerate() {
            for (j, b) in stage.blocks.iter().enumerate() {
                let name = format!("s{i}.b{j}");
                let stride = if j == 0 { choices.stride } else { 1 };
                let block = MbBlock::new(name, (channels, stage.width), b, stride, hw);
                let out_hw = block.project.output_hw;
                blocks.push(block);
                channels = stage.width;
                hw = out_hw;
            }
        }
        let head = (genome.head_width > 0).then(|| {
            ConvBn::new(
                "head".into(),
                (channels, genome.head_width),
                1,
                1,
                1,
                Some(space.head.activation),
                hw,
            )
        });
        if let Some(h) = &head {
            channels = h.out_channels;
        }
        Ok(Architecture {
            input,
            stem,
            blocks,
            head,
            classifier: Linear {
                name: "classifier".into(),
                in_features: channels,
                out_features: input.classes,
            },
            precision: genome.precision_or(Precision::F32),
        })
    }

    /// Every weight tensor, in network order, with ONNX/PyTorch shapes (conv OIHW, linear
    /// `[out, in]`). The single source of truth for weight names: the trainer and the ONNX
    /// exporter both check against it.
    pub fn parameters(&self) -> Vec<ParamSpec> {
        let mut out = self.stem.parameters();
        for b in &self.blocks {
            out.extend(b.parameters());
        }
        if let Some(h) = &self.head {
            out.extend(h.parameters());
        }
        out.extend(self.classifier.parameters());
        out
    }

    /// One row per layer, with analytic parameter and MAC counts and f32 output sizes in
    /// bytes (for one image).
    pub fn layers(&self) -> Vec<LayerSummary> {
        let mut rows = Vec::new();
        let row = |name: &str,
                   op: String,
                   input: [usize; 3],
                   output: [usize; 3],
                   params: u64,
                   macs: u64| LayerSummary {
            name: name.to_owned(),
            op,
            input,
            output,
            params,
            macs,
            output_bytes: (output.iter().product::<usize>() * 4) as u64,
        };
        let conv_row = |c: &ConvBn| {
            let kind = if c.groups == 1 { "conv" } else { "dwconv" };
            let act = c.activation.map(|a| format!("+{a}")).unwrap_or_default();
            row(
                &c.name,
                format!("{kind} {k}x{k}/{s}{act}", k = c.kernel, s = c.stride),
                [c.in_channels, c.input_hw.0, c.input_hw.1],
                [c.out_channels, c.output_hw.0, c.output_hw.1],
                c.params(),
                c.macs(),
            )
        };
        rows.push(conv_row(&self.stem));
        for b in &self.blocks {
            if let Some(e) = &b.expand {
                rows.push(conv_row(e));
            }
            rows.push(conv_row(&b.depthwise));
            if let Some(se) = &b.se {
                let shape = [se.channels, se.hw.0, se.hw.1];
                rows.push(row(
                    &se.name,
                    format!("se /{}", se.channels / se.reduced.max(1)),
                    shape,
                    shape,
                    se.params(),
                    se.macs(),
                ));
            }
            rows.push(conv_row(&b.project));
            if b.residual {
                let p = &b.project;
                let shape = [p.out_channels, p.output_hw.0, p.output_hw.1];
                rows.push(row(
                    &format!("{}.add", b.name),
                    "add".into(),
                    shape,
                    shape,
                    0,
                    0,
                ));
            }
        }
        let last = match &self.head {
            Some(h) => {
                rows.push(conv_row(h));
                h
            }
            None => self.blocks.last().map(|b| &b.project).unwrap_or(&self.stem),
        };
        let (c, h, w) = (last.out_channels, last.output_hw.0, last.output_hw.1);
        rows.push(row(
            "pool",
            "global avg pool".into(),
            [c, h, w],
            [c, 1, 1],
            0,
            (c * h * w) as u64,
        ));
        let l = &self.classifier;
        rows.push(row(
            &l.name,
            "linear".into(),
            [l.in_features, 1, 1],
            [l.out_features, 1, 1],
            (l.in_features * l.out_features + l.out_features) as u64,
            (l.in_features * l.out_features) as u64,
        ));
        rows
    }

    /// Whole-network figures from [`Architecture::layers`].
    pub fn totals(&self) -> Totals {
        let rows = self.layers();
        let input_bytes = (self.input.channels * self.input.height * self.input.width * 4) as u64;
        Totals {
            params: rows.iter().map(|r| r.params).sum(),
            macs: rows.iter().map(|r| r.macs).sum(),
            max_activation_bytes: rows
                .iter()
                .map(|r| r.output_bytes)
                .max()
                .unwrap_or(0)
                .max(input_bytes),
            max_layer_io_bytes: rows
                .iter()
                .map(|r| (r.input.iter().product::<usize>() * 4) as u64 + r.output_bytes)
                .max()
                .unwrap_or(0),
        }
    }

    /// The architecture as a fixed-width text table (one row per [`Architecture::layers`]
    /// entry) with a totals line: params, MACs and the largest activation in bytes.
    pub fn table(&self) -> String {
        use fmt::Write;
        let mut s = String::new();
        let shape = |d: [usize; 3]| format!("{}x{}x{}", d[0], d[1], d[2]);
        let _ = writeln!(
            s,
            "{:<16} {:<22} {:>12} {:>12} {:>10} {:>12}",
            "layer", "op", "input", "output", "params", "MACs"
        );
        for r in self.layers() {
            let _ = writeln!(
                s,
                "{:<16} {:<22} {:>12} {:>12} {:>10} {:>12}",
                r.name,
                r.op,
                shape(r.input),
                shape(r.output),
                r.params,
                r.macs
            );
        }
        let t = self.totals();
        let _ = writeln!(
            s,
            "total: {} params, {} MACs, largest activation {} bytes (predicted from the genome)",
            t.params, t.macs, t.max_activation_bytes
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn space() -> Space {
        Space::from_toml(include_str!("../../../spaces/mobile.toml"), "mobile.toml").unwrap()
    }

    #[test]
    fn parameter_list_matches_param_count() {
        let space = space();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..20 {
            let g = Genome::sample(&space, &mut rng);
            let a = Architecture::new(&space, &g, InputSpec::MNIST).unwrap();
            // Trainable parameters = every tensor but the BN running statistics.
            let from_list: usize = a
                .parameters()
                .iter()
                .filter(|p| !p.name.ends_with("running_mean") && !p.name.ends_with("running_var"))
                .map(|p| p.shape.iter().product::<usize>())
                .sum();
            assert_eq!(from_list as u64, a.totals().params);
        }
    }

    #[test]
    fn mobilenetv2_half_width_figures() {
        let space = Space::from_toml(
            include_str!("../../../spaces/mobilenetv2.toml"),
            "mobilenetv2.toml",
        )
        .unwrap();
        let g = Genome::from_json(
            include_str!("../../../spaces/mobilenetv2-0.5.json"),
            "mbv2.json",
            &space,
        )
        .unwrap();
        let input = InputSpec {
            channels: 3,
            height: 96,
            width: 96,
            classes: 10,
        };
        let a = Architecture::new(&space, &g, input).unwrap();
        assert_eq!(a.blocks.len(), 17);
        assert_eq!(a.blocks.iter().filter(|b| b.residual).count(), 10);
        assert_eq!(a.head.as_ref().map(|h| h.output_hw), Some((3, 3)));
        // Hand count for the first block: dw 3x3 on 16 channels at 48x48, then
        // project 16 -> 8: MACs = 48*48*16*9 + 48*48*16*8.
        let rows = a.layers();
        let b0: u64 = rows
            .iter()
            .filter(|r| r.name.starts_with("s0.b0."))
            .map(|r| r.macs)
            .sum();
        assert_eq!(b0, 48 * 48 * 16 * 9 + 48 * 48 * 16 * 8);
    }

    #[test]
    fn too_small_input_is_an_error() {
        let space = space();
        let g = Genome::sample(&space, &mut ChaCha8Rng::seed_from_u64(1));
        let input = InputSpec {
            channels: 1,
            height: 4,
            width: 4,
            classes: 10,
        };
        let err = Architecture::new(&space, &g, input)
            .unwrap_err()
            .to_string();
        assert!(err.contains("downsamples"), "{err}");
    }
}

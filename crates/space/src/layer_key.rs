//! Layer keys: the configuration of one layer of a network, the unit a latency lookup
//! table measures and sums (FBNet's per-operator table, nn-Meter's per-kernel one; here
//! one key per stem, inverted-residual block, head and pooled classifier).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::arch::{ConvBn, Linear, MbBlock, ParamSpec};
use crate::{Activation, Architecture, BlockGene, InputSpec, Precision, Space, SpaceError};

/// Everything that decides one layer's cost: two layers with the same key run the same
/// code on tensors of the same shape. Shapes are channels and the input's height and
/// width in pixels; output sizes follow (`ceil(input / stride)`, padding `kernel / 2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum LayerKey {
    /// A full convolution + batch norm + activation: the stem, or the 1x1 head.
    Conv {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Square kernel, pixels.
        kernel: usize,
        /// Stride, pixels.
        stride: usize,
        /// Activation after batch norm.
        activation: Activation,
        /// Input height, pixels.
        height: usize,
        /// Input width, pixels.
        width: usize,
        /// The number format it is built in (`f32` is absent from the JSON, so tables
        /// written before int8 entries existed read as they were).
        #[serde(default, skip_serializing_if = "Precision::is_f32")]
        precision: Precision,
    },
    /// An inverted-residual block (expand, depthwise, optional squeeze-excite, project,
    /// residual add when `stride == 1` and `in_channels == out_channels`).
    Block {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Depthwise kernel, pixels.
        kernel: usize,
        /// Expand ratio (1 = no expand conv).
        expand: usize,
        /// Stride of the depthwise conv, pixels.
        stride: usize,
        /// Squeeze-excite after the depthwise conv.
        se: bool,
        /// Activation after the expand and depthwise convs.
        activation: Activation,
        /// Input height, pixels.
        height: usize,
        /// Input width, pixels.
        width: usize,
        /// The number format it is built in (`f32` is absent from the JSON, so tables
        /// written before int8 entries existed read as they were).
        #[serde(default, skip_serializing_if = "Precision::is_f32")]
        precision: Precision,
    },
    /// Global average pooling over the last feature map, flatten, and the linear
    /// classifier.
    Classifier {
        /// Channels of the last feature map (the classifier's input features).
        features: usize,
        /// Classes (output features).
        classes: usize,
        /// Height of the pooled feature map, pixels.
        height: usize,
        /// Width of the pooled feature map, pixels.
        width: usize,
        /// The number format it is built in (`f32` is absent from the JSON, so tables
        /// written before int8 entries existed read as they were).
        #[serde(default, skip_serializing_if = "Precision::is_f32")]
        precision: Precision,
    },
}

/// The layer a [`LayerKey`] describes, built by the same constructors as
/// [`Architecture::new`], named `layer`.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// A conv + batch norm + activation.
    Conv(ConvBn),
    /// An inverted-residual block.
    Block(Box<MbBlock>),
    /// Global average pooling over `(height, width)`, then the linear classifier.
    Classifier {
        /// (height, width) pooled.
        hw: (usize, usize),
        /// The classifier.
        linear: Linear,
    },
}

impl Layer {
    /// The layer's weight tensors, named as in [`Architecture::parameters`].
    pub fn parameters(&self) -> Vec<ParamSpec> {
        match self {
            Layer::Conv(c) => c.parameters(),
            Layer::Block(b) => b.parameters(),
            Layer::Classifier { linear, .. } => linear.parameters(),
        }
    }
}

impl LayerKey {
    /// The layer's input, `[channels, height, width]`.
    pub fn input_shape(&self) -> [usize; 3] {
        match *self {
            LayerKey::Conv {
                in_channels,
                height,
                width,
                ..
            }
            | LayerKey::Block {
                in_channels,
                height,
                width,
                ..
            } => [in_channels, height, width],
            LayerKey::Classifier {
                features,
                height,
                width,
                ..
            } => [features, height, width],
        }
    }

    /// The layer itself, with weights named under `layer`.
    pub fn layer(&self) -> Layer {
        match *self {
            LayerKey::Conv {
                in_channels,
                out_channels,
                kernel,
                stride,
                activation,
                height,
                width,
                ..
            } => Layer::Conv(ConvBn::new(
                "layer".into(),
                (in_channels, out_channels),
                kernel,
                stride,
                1,
                Some(activation),
                (height, width),
            )),
            LayerKey::Block {
                in_channels,
                out_channels,
                kernel,
                expand,
                stride,
                se,
                activation,
                height,
                width,
                ..
            } => {
                let gene = BlockGene {
                    kernel,
                    expand,
                    se,
                    activation,
                };
                Layer::Block(Box::new(MbBlock::new(
                    "layer".into(),
                    (in_channels, out_channels),
                    &gene,
                    stride,
                    (height, width),
                )))
            }
            LayerKey::Classifier {
                features,
                classes,
                height,
                width,
                ..
            } => Layer::Classifier {
                hw: (height, width),
                linear: Linear {
                    name: "layer".into(),
                    in_features: features,
                    out_features: classes,
                },
            },
        }
    }

    fn of_conv(c: &ConvBn) -> LayerKey {
        LayerKey::Conv {
            in_channels: c.in_channels,
            out_channels: c.out_channels,
            kernel: c.kernel,
            stride: c.stride,
            // stem and head always have one; a projection never stands alone
            activation: c.activation.unwrap_or(Activation::Relu6),
            height: c.input_hw.0,
            width: c.input_hw.1,
            precision: Precision::F32,
        }
    }

    fn of_block(b: &MbBlock, expand: usize) -> LayerKey {
        let d = &b.depthwise;
        LayerKey::Block {
            in_channels: b.expand.as_ref().map_or(d.in_channels, |e| e.in_channels),
            out_channels: b.project.out_channels,
            kernel: d.kernel,
            expand,
            stride: d.stride,
            se: b.se.is_some(),
            activation: d.activation.unwrap_or(Activation::Relu6),
            height: d.input_hw.0,
            width: d.input_hw.1,
            precision: Precision::F32,
        }
    }
}

impl fmt::Display for LayerKey {
    /// E.g. `conv 1->8 k3/1 relu6 @28x28`, `block 8->16 k5/2 e4 se hswish @28x28`,
    /// `classifier 96->10 @7x7`; an int8 key ends ` int8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_shape(f)?;
        match self.precision() {
            Precision::F32 => Ok(()),
            p => write!(f, " {p}"),
        }
    }
}

impl LayerKey {
    /// The number format the layer is built in.
    pub fn precision(&self) -> Precision {
        match *self {
            LayerKey::Conv { precision, .. }
            | LayerKey::Block { precision, .. }
            | LayerKey::Classifier { precision, .. } => precision,
        }
    }

    /// The same layer built in `to`.
    pub fn at(mut self, to: Precision) -> LayerKey {
        match &mut self {
            LayerKey::Conv { precision, .. }
            | LayerKey::Block { precision, .. }
            | LayerKey::Classifier { precision, .. } => *precision = to,
        }
        self
    }

    fn fmt_shape(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerKey::Conv {
                in_channels,
                out_channels,
                kernel,
                stride,
                activation,
                height,
                width,
                ..
            } => write!(
                f,
                "conv {in_channels}->{out_channels} k{kernel}/{stride} {activation} @{height}x{width}"
            ),
            LayerKey::Block {
                in_channels,
                out_channels,
                kernel,
                expand,
                stride,
                se,
                activation,
                height,
                width,
                ..
            } => write!(
                f,
                "block {in_channels}->{out_channels} k{kernel}/{stride} e{expand}{} {activation} @{height}x{width}",
                if *se { " se" } else { "" }
            ),
            LayerKey::Classifier {
                features,
                classes,
                height,
                width,
                ..
            } => write!(f, "classifier {features}->{classes} @{height}x{width}"),
        }
    }
}

impl Architecture {
    /// The network as layer keys, input to output: stem, every block, the head if any, the
    /// pooled classifier. A latency lookup table predicts the network as the sum of these.
    /// Each key is at the network's [`Architecture::precision`].
    pub fn layer_keys(&self) -> Vec<LayerKey> {
        let mut keys = self.layer_keys_f32();
        for k in &mut keys {
            *k = k.at(self.precision);
        }
        keys
    }

    fn layer_keys_f32(&self) -> Vec<LayerKey> {
        let mut keys = vec![LayerKey::of_conv(&self.stem)];
        for b in &self.blocks {
            let expand = b
                .expand
                .as_ref()
                .map_or(1, |e| e.out_channels / e.in_channels.max(1));
            keys.push(LayerKey::of_block(b, expand));
        }
        if let Some(h) = &self.head {
            keys.push(LayerKey::of_conv(h));
        }
        let last = self
            .head
            .as_ref()
            .or(self.blocks.last().map(|b| &b.project))
            .unwrap_or(&self.stem);
        keys.push(LayerKey::Classifier {
            features: self.classifier.in_features,
            classes: self.classifier.out_features,
            height: last.output_hw.0,
            width: last.output_hw.1,
            precision: Precision::F32,
        });
        keys
    }
}

impl Space {
    /// Every layer key a genome of this space can produce on `input`: the set a latency
    /// lookup table for the space must hold. Each stage's input height and width is fixed
    /// by the strides; its input channels are any width of the stage (or stem) before.
    /// A space that chooses the input resolution ([`Space::resolution`]) gives the union
    /// over its resolutions, each `side x side` with `input`'s channels and classes (as
    /// [`Architecture::new`] builds a genome that chose it); without resolutions the set
    /// is the one of `input`'s own height and width. A space that chooses the precision
    /// ([`Space::precision`]) has every key once per listed format; without it, f32 only.
    ///
    /// Errors: [`SpaceError::DoesNotFit`] when the input (or one of the resolutions) is
    /// too small for the space's downsampling or a dimension is 0, as for
    /// [`Architecture::new`].
    pub fn layer_keys(&self, input: InputSpec) -> Result<BTreeSet<LayerKey>, SpaceError> {
        let f32_keys = match &self.resolution {
            None => self.layer_keys_at(input)?,
            Some(sides) => {
                let mut keys = BTreeSet::new();
                for &side in sides {
                    keys.extend(self.layer_keys_at(InputSpec {
                        height: side,
                        width: side,
                        ..input
                    })?);
                }
                keys
            }
        };
        let Some(formats) = &self.precision else {
            return Ok(f32_keys);
        };
        Ok(formats
            .iter()
            .flat_map(|&p| f32_keys.iter().map(move |k| k.at(p)))
            .collect())
    }

    /// [`Space::layer_keys`] at one input size.
    fn layer_keys_at(&self, input: InputSpec) -> Result<BTreeSet<LayerKey>, SpaceError> {
        let downsampling =
            self.stem.stride * self.stages.iter().map(|s| s.stride).product::<usize>();
        if input.channels == 0
            || input.classes < 2
            || input.height < downsampling
            || input.width < downsampling
        {
            return Err(SpaceError::DoesNotFit {
                input: input.to_string(),
                message: format!(
                    "a {}x{} input with {} channels and {} classes does not fit a space that \
                     downsamples by {downsampling}",
                    input.height, input.width, input.channels, input.classes
                ),
            });
        }
        let mut keys = BTreeSet::new();
        let mut hw = (input.height, input.width);
        for &w in &self.stem.widths {
            keys.insert(LayerKey::Conv {
                in_channels: input.channels,
                out_channels: w,
                kernel: self.stem.kernel,
                stride: self.stem.stride,
                activation: self.stem.activation,
                height: hw.0,
                width: hw.1,
                precision: Precision::F32,
            });
        }
        hw = (
            hw.0.div_ceil(self.stem.stride),
            hw.1.div_ceil(self.stem.stride),
        );
        let mut widths_in: Vec<usize> = self.stem.widths.clone();
        for stage in &self.stages {
            let first = stage_blocks(stage, &widths_in, stage.stride, hw, false);
            keys.extend(first);
            hw = (hw.0.div_ceil(stage.stride), hw.1.div_ceil(stage.stride));
            if stage.depth.iter().any(|&d| d > 1) {
                keys.extend(stage_blocks(stage, &stage.widths, 1, hw, true));
            }
            widths_in = stage.widths.clone();
        }
        let mut features: BTreeSet<usize> = widths_in.iter().copied().collect();
        for &h in self.head.widths.iter().filter(|&&h| h > 0) {
            features.insert(h);
            for &c in &widths_in {
                keys.insert(LayerKey::Conv {
                    in_channels: c,
                    out_channels: h,
                    kernel: 1,
                    stride: 1,
                    activation: self.head.activation,
                    height: hw.0,
                    width: hw.1,
                    precision: Precision::F32,
                });
            }
        }
        if !self.head.widths.contains(&0) {
            features = self.head.widths.iter().copied().collect();
        }
        for f in features {
            keys.insert(LayerKey::Classifier {
                features: f,
                classes: input.classes,
                height: hw.0,
                width: hw.1,
                precision: Precision::F32,
            });
        }
        Ok(keys)
    }
}

/// The block keys of one stage position: every input width of `widths_in` (or, for
/// `same_width`, only the block's own output width) x every choice of the stage.
fn stage_blocks(
    stage: &crate::StageSpace,
    widths_in: &[usize],
    stride: usize,
    hw: (usize, usize),
    same_width: bool,
) -> Vec<LayerKey> {
    let mut keys = Vec::new();
    for &cin in widths_in {
        for &cout in &stage.widths {
            if same_width && cin != cout {
                continue;
            }
            for &kernel in &stage.kernels {
                for &expand in &stage.expand {
                    for &se in &stage.se {
                        for &activation in &stage.activations {
                            keys.push(LayerKey::Block {
                                in_channels: cin,
                                out_channels: cout,
                                kernel,
                                expand,
                                stride,
                                se,
                                activation,
                                height: hw.0,
                                width: hw.1,
                                precision: Precision::F32,
                            });
                        }
                    }
                }
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Genome;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn space() -> Space {
        Space::from_toml(include_str!("../../../spaces/mobile.toml"), "mobile.toml").unwrap()
    }

    #[test]
    fn every_sampled_genomes_keys_are_enumerated() {
        let space = space();
        for input in [
            InputSpec::MNIST,
            InputSpec {
                channels: 3,
                height: 96,
                width: 96,
                classes: 10,
            },
        ] {
            let all = space.layer_keys(input).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            for _ in 0..200 {
                let g = Genome::sample(&space, &mut rng);
                let arch = Architecture::new(&space, &g, input).unwrap();
                let keys = arch.layer_keys();
                assert_eq!(
                    keys.len(),
                    arch.blocks.len() + 2 + arch.head.is_some() as usize
                );
                for k in keys {
                    assert!(all.contains(&k), "{k} of genome {} not enumerated", g.id());
                }
            }
        }
    }

    #[test]
    fn the_default_space_has_the_hand_counted_number_of_keys() {
        // stem 3; stage 0: first 3x3x3x4x2x2 = 432, later 3x3x4x2x2 = 144;
        // stages 1-3: first 3x3x3x3x2x2 = 324, later 3x3x3x2x2 = 108;
        // head 2 widths x 3 inputs = 6; classifier features {64, 80, 96, 128, 256} = 5.
        // Stages 1 and 2 both run stride-1 32->32 blocks at 7x7 (stage 1's later
        // blocks, stage 2's first and later ones) with the same 3x3x2x2 choices: 2 x 36
        // keys are shared, and a shared key is measured once.
        let n = space().layer_keys(InputSpec::MNIST).unwrap().len();
        assert_eq!(n, 3 + 432 + 144 + 3 * (324 + 108) + 6 + 5 - 2 * 36);
    }

    #[test]
    fn a_key_builds_the_layer_it_was_taken_from() {
        let space = space();
        let g = Genome::sample(&space, &mut ChaCha8Rng::seed_from_u64(9));
        let arch = Architecture::new(&space, &g, InputSpec::MNIST).unwrap();
        let keys = arch.layer_keys();
        for (b, k) in arch.blocks.iter().zip(&keys[1..]) {
            let Layer::Block(built) = k.layer() else {
                panic!("{k} is not a block")
            };
            // the same layer up to its name
            let rename = |s: &str| s.replacen(&b.name, "layer", 1);
            let theirs: Vec<_> = b
                .parameters()
                .iter()
                .map(|p| (rename(&p.name), p.shape.clone()))
                .collect();
            let ours: Vec<_> = built
                .parameters()
                .iter()
                .map(|p| (p.name.clone(), p.shape.clone()))
                .collect();
            assert_eq!(ours, theirs, "{k}");
            assert_eq!(built.residual, b.residual, "{k}");
        }
        assert_eq!(
            k_text(&keys[0]),
            format!("conv 1->{} k3/1 relu6 @28x28", g.stem_width)
        );
    }

    #[test]
    fn a_space_with_resolutions_enumerates_every_resolutions_keys() {
        let text = include_str!("../../../spaces/mobile-96.toml");
        let one = Space::from_toml(text, "mobile-96.toml").unwrap();
        let space = Space::from_toml(&format!("resolution = [64, 96]\n{text}"), "r.toml").unwrap();
        // the data's own size does not matter: each resolution replaces it
        let input = InputSpec {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        };
        let all = space.layer_keys(input).unwrap();
        let at = |side| {
            one.layer_keys(InputSpec {
                height: side,
                width: side,
                ..input
            })
            .unwrap()
        };
        let (k64, k96) = (at(64), at(96));
        assert_eq!(all, k64.union(&k96).copied().collect::<BTreeSet<_>>());
        assert!(all.len() > k64.len().max(k96.len()));
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut sides = BTreeSet::new();
        for _ in 0..200 {
            let g = Genome::sample(&space, &mut rng);
            sides.insert(g.resolution.unwrap());
            let arch = Architecture::new(&space, &g, input).unwrap();
            for k in arch.layer_keys() {
                assert!(all.contains(&k), "{k} of genome {} not enumerated", g.id());
            }
        }
        assert_eq!(sides.into_iter().collect::<Vec<_>>(), [64, 96]);
        // a resolution the space's downsampling does not fit is named
        let small = Space::from_toml(&format!("resolution = [8, 96]\n{text}"), "s.toml");
        let err = small.unwrap().layer_keys(input).unwrap_err().to_string();
        assert!(
            err.contains("8x8") && err.contains("downsamples by 16"),
            "{err}"
        );
    }

    fn k_text(k: &LayerKey) -> String {
        k.to_string()
    }

    #[test]
    fn keys_round_trip_through_json() {
        let k = LayerKey::Block {
            in_channels: 8,
            out_channels: 16,
            kernel: 5,
            expand: 4,
            stride: 2,
            se: true,
            activation: Activation::Hswish,
            height: 28,
            width: 28,
            precision: Precision::F32,
        };
        let json = serde_json::to_string(&k).unwrap();
        assert!(json.contains("\"kind\":\"block\""), "{json}");
        // An f32 key's JSON is the one written before keys had a precision.
        assert_eq!(
            json,
            "{\"kind\":\"block\",\"in_channels\":8,\"out_channels\":16,\"kernel\":5,\
             \"expand\":4,\"stride\":2,\"se\":true,\"activation\":\"hswish\",\"height\":28,\
             \"width\":28}"
        );
        assert_eq!(serde_json::from_str::<LayerKey>(&json).unwrap(), k);
        assert_eq!(k.to_string(), "block 8->16 k5/2 e4 se hswish @28x28");
        let q = k.at(Precision::Int8);
        let json = serde_json::to_string(&q).unwrap();
        assert!(json.ends_with(",\"precision\":\"int8\"}"), "{json}");
        assert_eq!(serde_json::from_str::<LayerKey>(&json).unwrap(), q);
        assert_eq!(q.to_string(), "block 8->16 k5/2 e4 se hswish @28x28 int8");
        assert_ne!(q, k);
    }

    #[test]
    fn a_space_with_precisions_has_every_key_in_each_and_genomes_use_their_own() {
        let plain = space();
        let text = include_str!("../../../spaces/mobile-int8.toml");
        let q = Space::from_toml(text, "mobile-int8.toml").unwrap();
        let f32_keys = plain.layer_keys(InputSpec::MNIST).unwrap();
        let all = q.layer_keys(InputSpec::MNIST).unwrap();
        assert_eq!(all.len(), 2 * f32_keys.len());
        assert!(
            f32_keys
                .iter()
                .all(|k| all.contains(k) && all.contains(&k.at(Precision::Int8)))
        );
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for _ in 0..50 {
            let g = Genome::sample(&q, &mut rng);
            let arch = Architecture::new(&q, &g, InputSpec::MNIST).unwrap();
            assert_eq!(Some(arch.precision), g.precision);
            for k in arch.layer_keys() {
                assert_eq!(Some(k.precision()), g.precision, "{k}");
                assert!(all.contains(&k), "{k} of genome {} not enumerated", g.id());
            }
        }
    }
}

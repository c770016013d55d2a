//! The burn network for a `kiln_space::Architecture`, layer for layer.

use crate::activation::activate;
use crate::batchnorm::batch_norm;
use crate::conv::conv2d_no_bias;
use burn::module::{Module, Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};
use kiln_space::{Activation, Architecture, ConvBn, MbBlock, SqueezeExcite};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Batch-norm epsilon (PyTorch's default); the ONNX export writes the same value.
pub const BN_EPSILON: f64 = 1e-5;

/// Convolution (no bias), batch norm, optional activation.
#[derive(Module, Debug)]
pub struct ConvBnLayer {
    /// The convolution: weight OIHW `[out, in / groups, k, k]`, no bias, padding `k / 2`.
    pub conv: Conv2d,
    /// Batch norm over the output channels (epsilon [`BN_EPSILON`], momentum 0.1).
    pub bn: BatchNorm,
    /// The activation after batch norm; `None` for the linear projection.
    #[module(skip)]
    pub activation: Option<Activation>,
}

/// Squeeze-excite: pool, 1x1 reduce + ReLU, 1x1 expand + sigmoid, scale.
#[derive(Module, Debug)]
pub struct SeLayer {
    /// 1x1 conv with bias, channels -> reduced (`[reduced, channels, 1, 1]`).
    pub reduce: Conv2d,
    /// 1x1 conv with bias, reduced -> channels (`[channels, reduced, 1, 1]`).
    pub expand: Conv2d,
}

/// Inverted-residual block (MobileNetV2's MBConv), as `kiln_space::MbBlock` describes it.
#[derive(Module, Debug)]
pub struct BlockLayer {
    /// 1x1 expansion; absent when the expand ratio is 1.
    pub expand: Option<ConvBnLayer>,
    /// kxk depthwise conv (`groups` = channels); carries the block's stride.
    pub depthwise: ConvBnLayer,
    /// Squeeze-excite after the depthwise conv.
    pub se: Option<SeLayer>,
    /// 1x1 projection, no activation.
    pub project: ConvBnLayer,
    /// Whether the block's input is added to its output (stride 1, equal channels).
    #[module(skip)]
    pub residual: bool,
}

/// The whole network: stem, blocks, optional head, global average pool, classifier.
#[derive(Module, Debug)]
pub struct Network {
    /// The first conv.
    pub stem: ConvBnLayer,
    /// Every block of every stage, in order.
    pub blocks: Vec<BlockLayer>,
    /// The optional 1x1 conv before pooling.
    pub head: Option<ConvBnLayer>,
    /// Weight stored `[in, out]` as burn's `Linear` keeps it; the export transposes.
    pub classifier: Linear,
}

/// Weight initialisation from one seeded stream, independent of burn's global RNG, so the
/// same seed gives the same starting point whatever else ran in the process.
struct Init {
    rng: ChaCha8Rng,
}

impl Init {
    fn normal(&mut self, n: usize, std: f32) -> Vec<f32> {
        // Box-Muller: two uniforms give one standard normal (the second is dropped for clarity).
        (0..n)
            .map(|_| {
                let u1: f32 = self.rng.random_range(f32::EPSILON..1.0);
                let u2: f32 = self.rng.random();
                std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect()
    }

    /// He (Kaiming) normal with fan-out (He et al., 2015: std `sqrt(2 / (cout * k * k))`), as
    /// torchvision initialises MobileNet convolutions. Shape OIHW.
    fn conv(
        &mut self,
        cout: usize,
        cin_per_group: usize,
        k: usize,
        device: &Device,
    ) -> Param<Tensor<4>> {
        let fan_out = (cout * k * k) as f32;
        let values = self.normal(cout * cin_per_group * k * k, (2.0 / fan_out).sqrt());
        Param::from_data(TensorData::new(values, [cout, cin_per_group, k, k]), device)
    }
}

fn zeros(n: usize, device: &Device) -> Param<Tensor<1>> {
    Param::from_data(TensorData::new(vec![0f32; n], [n]), device)
}

fn conv2d(
    weight: Param<Tensor<4>>,
    bias: Option<Param<Tensor<1>>>,
    kernel: usize,
    stride: usize,
    groups: usize,
) -> Conv2d {
    let p = kernel / 2;
    Conv2d {
        weight,
        bias,
        stride: [stride, stride],
        kernel_size: [kernel, kernel],
        dilation: [1, 1],
        groups,
        padding: PaddingConfig2d::Explicit(p, p, p, p),
    }
}

impl ConvBnLayer {
    fn new(spec: &ConvBn, init: &mut Init, device: &Device) -> ConvBnLayer {
        let weight = init.conv(
            spec.out_channels,
            spec.in_channels / spec.groups,
            spec.kernel,
            device,
        );
        ConvBnLayer {
            conv: conv2d(weight, None, spec.kernel, spec.stride, spec.groups),
            bn: BatchNormConfig::new(spec.out_channels)
                .with_epsilon(BN_EPSILON)
                .init(device),
            activation: spec.activation,
        }
    }

    /// Conv, batch norm, activation: NCHW `[n, in, h, w]` -> `[n, out, ceil(h / s),
    /// ceil(w / s)]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = batch_norm(&self.bn, self.convolve(x));
        match self.activation {
            None => x,
            Some(a) => activate(x, a),
        }
    }

    /// The convolution, through [`conv2d_no_bias`] (kiln's faster training ops where they
    /// apply); padding `k / 2` as the layer was built.
    fn convolve(&self, x: Tensor<4>) -> Tensor<4> {
        let [kernel, _] = self.conv.kernel_size;
        let [stride, _] = self.conv.stride;
        conv2d_no_bias(
            x,
            self.conv.weight.val(),
            stride,
            kernel / 2,
            self.conv.groups,
        )
    }
}

impl SeLayer {
    fn new(spec: &SqueezeExcite, init: &mut Init, device: &Device) -> SeLayer {
        let reduce = init.conv(spec.reduced, spec.channels, 1, device);
        let expand = init.conv(spec.channels, spec.reduced, 1, device);
        SeLayer {
            reduce: conv2d(reduce, Some(zeros(spec.reduced, device)), 1, 1, 1),
            expand: conv2d(expand, Some(zeros(spec.channels, device)), 1, 1, 1),
        }
    }

    /// Scales each channel of NCHW `x` by its gate in (0, 1); the shape is unchanged.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let pooled = x.clone().mean_dim(3).mean_dim(2);
        let scale = sigmoid(self.expand.forward(relu(self.reduce.forward(pooled))));
        x * scale
    }
}

impl BlockLayer {
    fn new(spec: &MbBlock, init: &mut Init, device: &Device) -> BlockLayer {
        BlockLayer {
            expand: spec
                .expand
                .as_ref()
                .map(|e| ConvBnLayer::new(e, init, device)),
            depthwise: ConvBnLayer::new(&spec.depthwise, init, device),
            se: spec.se.as_ref().map(|s| SeLayer::new(s, init, device)),
            project: ConvBnLayer::new(&spec.project, init, device),
            residual: spec.residual,
        }
    }

    /// The block on NCHW `input`: `[n, in, h, w]` -> `[n, out, ceil(h / s), ceil(w / s)]`.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = match &self.expand {
            Some(e) => e.forward(input.clone()),
            None => input.clone(),
        };
        x = self.depthwise.forward(x);
        if let Some(se) = &self.se {
            x = se.forward(x);
        }
        x = self.project.forward(x);
        if self.residual { x + input } else { x }
    }
}

impl Network {
    /// A freshly initialised network for `arch`, its weights drawn from `seed` on `device`:
    /// convs He normal with fan-out, SE and classifier biases 0, classifier weights
    /// N(0, 0.01^2) (as torchvision initialises MobileNet's classifier), batch norm gamma 1,
    /// beta 0.
    pub fn new(arch: &Architecture, seed: u64, device: &Device) -> Network {
        let mut init = Init {
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        let stem = ConvBnLayer::new(&arch.stem, &mut init, device);
        let blocks = arch
            .blocks
            .iter()
            .map(|b| BlockLayer::new(b, &mut init, device))
            .collect();
        let head = arch
            .head
            .as_ref()
            .map(|h| ConvBnLayer::new(h, &mut init, device));
        let c = &arch.classifier;
        let weight = init.normal(c.in_features * c.out_features, 0.01);
        let classifier = Linear {
            weight: Param::from_data(
                TensorData::new(weight, [c.in_features, c.out_features]),
                device,
            ),
            bias: Some(zeros(c.out_features, device)),
        };
        Network {
            stem,
            blocks,
            head,
            classifier,
        }
    }

    /// Logits `[batch, classes]` for normalised images `[batch, C, H, W]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.forward(images);
        for b in &self.blocks {
            x = b.forward(x);
        }
        if let Some(h) = &self.head {
            x = h.forward(x);
        }
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([batch, channels]);
        self.classifier.forward(pooled)
    }
}

impl Network {
    /// Every batch-norm layer, in network order.
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let mut out = vec![&mut self.stem.bn];
        for b in &mut self.blocks {
            if let Some(e) = &mut b.expand {
                out.push(&mut e.bn);
            }
            out.push(&mut b.depthwise.bn);
            out.push(&mut b.project.bn);
        }
        if let Some(h) = &mut self.head {
            out.push(&mut h.bn);
        }
        out
    }

    /// Sets the running-statistics momentum of every batch norm (1/k over k batches gives
    /// their plain average, which is how the statistics are recalibrated after training).
    pub fn set_bn_momentum(&mut self, momentum: f64) {
        for bn in self.batch_norms_mut() {
            bn.momentum = momentum;
        }
    }

    /// This network with batch-norm running statistics of its own, starting from the
    /// same values. A clone or fork shares them with its original (burn keeps one running
    /// state behind a lock and merges the updates of different threads by timing), so
    /// the updates of a fork run on another thread would reach the original's moving
    /// averages in an order that depends on the threads' timing.
    pub(crate) fn with_own_bn_statistics(mut self) -> Self {
        for bn in self.batch_norms_mut() {
            bn.running_mean = RunningState::new(bn.running_mean.value());
            bn.running_var = RunningState::new(bn.running_var.value());
        }
        self
    }
}

//! Architecture + weights -> ONNX model.

use kiln_space::{Activation, Architecture, ConvBn, Layer, LayerKey, Linear, MbBlock};

use crate::builder::{Attribute, Dim, GraphBuilder};
use crate::{OnnxError, Weights};

/// Input normalisation baked into the model as its first two ops,
/// `(x - mean) / std` per channel, so a deployed model takes raw pixel values.
/// Mean and std are in the units of the model's input (raw pixels 0..255 for kiln-train's
/// models), one value per input channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Per-channel mean, subtracted first (written as an Add of `-mean`).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation, positive (written as a Mul by `1 / std`).
    pub std: Vec<f32>,
}

/// What goes into an exported model besides the network.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportOptions {
    /// Normalise the input in the model; `None` means the input is fed as the network
    /// expects it.
    pub normalization: Option<Normalization>,
    /// Extra metadata_props (the genome id, the data set, ...).
    pub metadata: Vec<(String, String)>,
}

/// The name of the model's input: f32 `[1, C, H, W]` (NCHW).
pub const INPUT_NAME: &str = "input";
/// The name of the model's output: f32 logits `[1, classes]` (no softmax).
pub const OUTPUT_NAME: &str = "logits";

/// Writes the network of `arch` with `weights` as an ONNX model (opset 17):
/// input `input` [1, C, H, W], output `logits` [1, classes]. Batch norm uses epsilon 1e-5.
///
/// Errors: [`OnnxError::Weight`] when a weight is missing, extra, misshapen or not finite
/// ([`Weights::check`]), or when the normalisation does not have one mean and one positive,
/// finite std per input channel (named `normalization`).
pub fn export(
    arch: &Architecture,
    weights: &Weights,
    options: &ExportOptions,
) -> Result<Vec<u8>, OnnxError> {
    weights.check(arch)?;
    let mut g = GraphBuilder::new("kiln");
    let i = arch.input;
    g.input(
        INPUT_NAME,
        &[
            Dim::Fixed(1),
            i.channels.into(),
            i.height.into(),
            i.width.into(),
        ],
    );
    g.output(OUTPUT_NAME, Some(&[Dim::Fixed(1), i.classes.into()]));
    for (k, v) in &options.metadata {
        g.metadata(k, v);
    }
    for (name, t) in &weights.tensors {
        g.initializer(name, &t.shape, &t.data);
    }
    // Clip(0, 6) takes its bounds as inputs since opset 11.
    g.initializer("const.zero", &[], &[0.0]);
    g.initializer("const.six", &[], &[6.0]);

    let mut x = INPUT_NAME.to_string();
    if let Some(n) = &options.normalization {
        if n.mean.len() != i.channels
            || n.std.len() != i.channels
            || n.std.iter().any(|s| !s.is_finite() || *s <= 0.0)
        {
            return Err(OnnxError::Weight {
                name: "normalization".into(),
                message: format!(
                    "needs {} means and {} positive stds",
                    i.channels, i.channels
                ),
            });
        }
        let neg: Vec<f32> = n.mean.iter().map(|m| -m).collect();
        let inv: Vec<f32> = n.std.iter().map(|s| 1.0 / s).collect();
        g.initializer("normalize.neg_mean", &[1, i.channels, 1, 1], &neg);
        g.initializer("normalize.inv_std", &[1, i.channels, 1, 1], &inv);
        g.node(
            "normalize.sub",
            "Add",
            &[&x, "normalize.neg_mean"],
            &["normalize.centered"],
            vec![],
        );
        g.node(
            "normalize.scale",
            "Mul",
            &["normalize.centered", "normalize.inv_std"],
            &["normalize.out"],
            vec![],
        );
        x = "normalize.out".into();
    }

    x = conv_bn(&mut g, &arch.stem, &x);
    for b in &arch.blocks {
        x = block(&mut g, b, &x);
    }
    if let Some(h) = &arch.head {
        x = conv_bn(&mut g, h, &x);
    }
    pooled_classifier(&mut g, &arch.classifier, &x, OUTPUT_NAME);
    Ok(g.encode())
}

/// Writes one layer alone as an ONNX model (opset 17), with seeded random weights
/// ([`Weights::random_for`]): input `input` `[1, C, H, W]` from the key's input shape,
/// the layer's output (named after its last node), written exactly as [`export`] writes that layer inside a network.
/// A latency lookup table builds and measures these.
pub fn export_layer(key: &LayerKey, seed: u64) -> Vec<u8> {
    let layer = key.layer();
    let [c, h, w] = key.input_shape();
    let mut g = GraphBuilder::new("kiln-layer");
    g.input(INPUT_NAME, &[Dim::Fixed(1), c.into(), h.into(), w.into()]);
    g.metadata("kiln.layer", &key.to_string());
    for (name, t) in &Weights::random_for(layer.parameters(), seed).tensors {
        g.initializer(name, &t.shape, &t.data);
    }
    g.initializer("const.zero", &[], &[0.0]);
    g.initializer("const.six", &[], &[6.0]);
    let out = match &layer {
        Layer::Conv(conv) => conv_bn(&mut g, conv, INPUT_NAME),
        Layer::Block(b) => block(&mut g, b, INPUT_NAME),
        Layer::Classifier { linear, .. } => {
            pooled_classifier(&mut g, linear, INPUT_NAME, "logits");
            "logits".into()
        }
    };
    g.output(&out, None);
    g.encode()
}

/// Global average pool, flatten and the Gemm of `c`, from `x` into `out`.
fn pooled_classifier(g: &mut GraphBuilder, c: &Linear, x: &str, out: &str) {
    g.node("pool", "GlobalAveragePool", &[x], &["pool"], vec![]);
    g.node(
        "flatten",
        "Flatten",
        &["pool"],
        &["flatten"],
        vec![Attribute::int("axis", 1)],
    );
    let (w, b) = (format!("{}.weight", c.name), format!("{}.bias", c.name));
    g.node(
        &c.name,
        "Gemm",
        &["flatten", &w, &b],
        &[out],
        vec![Attribute::int("transB", 1)],
    );
}

fn block(g: &mut GraphBuilder, b: &MbBlock, input: &str) -> String {
    let mut x = input.to_string();
    if let Some(e) = &b.expand {
        x = conv_bn(g, e, &x);
    }
    x = conv_bn(g, &b.depthwise, &x);
    if let Some(se) = &b.se {
        let n = &se.name;
        let pooled = format!("{n}.pool");
        g.node(&pooled, "GlobalAveragePool", &[&x], &[&pooled], vec![]);
        let (rw, rb) = (format!("{n}.reduce.weight"), format!("{n}.reduce.bias"));
        let reduced = format!("{n}.reduce");
        g.node(
            &reduced,
            "Conv",
            &[&pooled, &rw, &rb],
            &[&reduced],
            vec![Attribute::ints("kernel_shape", &[1, 1])],
        );
        let relu = format!("{n}.relu");
        g.node(&relu, "Relu", &[&reduced], &[&relu], vec![]);
        let (ew, eb) = (format!("{n}.expand.weight"), format!("{n}.expand.bias"));
        let expanded = format!("{n}.expand");
        g.node(
            &expanded,
            "Conv",
            &[&relu, &ew, &eb],
            &[&expanded],
            vec![Attribute::ints("kernel_shape", &[1, 1])],
        );
        let gate = format!("{n}.gate");
        g.node(&gate, "Sigmoid", &[&expanded], &[&gate], vec![]);
        let scaled = format!("{n}.scale");
        g.node(&scaled, "Mul", &[&x, &gate], &[&scaled], vec![]);
        x = scaled;
    }
    x = conv_bn(g, &b.project, &x);
    if b.residual {
        let sum = format!("{}.add", b.name);
        g.node(&sum, "Add", &[input, &x], &[&sum], vec![]);
        x = sum;
    }
    x
}

/// Conv (no bias) -> BatchNormalization -> optional activation; returns the output name.
fn conv_bn(g: &mut GraphBuilder, c: &ConvBn, input: &str) -> String {
    let n = &c.name;
    let (k, s, p) = (c.kernel as i64, c.stride as i64, c.padding() as i64);
    let conv = format!("{n}.conv");
    g.node(
        &conv,
        "Conv",
        &[input, &format!("{n}.weight")],
        &[&conv],
        vec![
            Attribute::ints("kernel_shape", &[k, k]),
            Attribute::ints("strides", &[s, s]),
            Attribute::ints("pads", &[p, p, p, p]),
            Attribute::ints("dilations", &[1, 1]),
            Attribute::int("group", c.groups as i64),
        ],
    );
    let bn = format!("{n}.bn");
    let stat = |s: &str| format!("{n}.bn.{s}");
    g.node(
        &bn,
        "BatchNormalization",
        &[
            &conv,
            &stat("weight"),
            &stat("bias"),
            &stat("running_mean"),
            &stat("running_var"),
        ],
        &[&bn],
        vec![Attribute::float("epsilon", 1e-5)],
    );
    match c.activation {
        None => bn,
        Some(Activation::Relu6) => {
            let out = format!("{n}.relu6");
            g.node(
                &out,
                "Clip",
                &[&bn, "const.zero", "const.six"],
                &[&out],
                vec![],
            );
            out
        }
        Some(Activation::Hswish) => {
            let out = format!("{n}.hswish");
            g.node(&out, "HardSwish", &[&bn], &[&out], vec![]);
            out
        }
    }
}

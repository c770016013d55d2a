//! kiln-quant: post-training static quantization of an f32 ONNX model into
//! an int8 QDQ ONNX model (QuantizeLinear/DequantizeLinear pairs), which
//! kiln-lower lowers to integer-only kernels and onnxruntime and tract also
//! run.
//!
//! Steps: batch norm after a convolution is folded into its weights and
//! bias; the float model runs on calibration images (tract) and every
//! activation to be quantized records its range (min/max, or a percentile
//! of the values); then weights become int8 symmetric per output channel
//! (`scale[o] = max|w[o]| / 127`, values in -127..=127), activations int8
//! asymmetric per tensor (`scale = (max - min) / 255` over a range widened
//! to hold 0, `zero_point = round(-128 - min / scale)`), biases int32 in
//! units of `input scale * weight scale[o]` (zero point 0). As onnxruntime's
//! `quantize_static` does, a ReLU/Clip right after a Conv/Gemm/Add is
//! quantized at its output only (the integer kernel folds it into its output
//! range), and the model's input and output stay f32.
//!
//! Quantized: Conv, Gemm, Add and Mul of two tensors (a squeeze-excite gate
//! included), GlobalAveragePool, Flatten, Relu, Clip, HardSwish,
//! HardSigmoid, Sigmoid. Anything else (an Add or Mul by a constant such as
//! the input normalisation) is left in f32 between dequantized inputs and a
//! quantized output.

mod calibrate;
mod fold;
mod insert;

use kiln_onnx::proto::ModelProto;
use prost::Message;

pub use calibrate::Range;

/// How activation ranges are taken from the calibration run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Calibration {
    /// The smallest and largest value seen.
    MinMax,
    /// The `p`-th and `(100 - p)`-th percentiles of the values seen (e.g.
    /// 99.99), which clips rare outliers.
    Percentile(f64),
}

/// Options of [`quantize`].
#[derive(Clone, Copy, Debug)]
pub struct QuantizeOptions {
    /// Range estimate.
    pub calibration: Calibration,
    /// Fewer calibration images than this gives a warning (default 100).
    pub min_images: usize,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            calibration: Calibration::MinMax,
            min_images: 100,
        }
    }
}

/// What [`quantize`] produced.
#[derive(Clone, Debug)]
pub struct Quantized {
    /// The QDQ ONNX model's bytes.
    pub onnx: Vec<u8>,
    /// Warnings (e.g. too few calibration images, with the count).
    pub warnings: Vec<String>,
    /// Number of activation tensors quantized.
    pub activations: usize,
    /// Number of weight tensors quantized (Conv and Gemm).
    pub weights: usize,
    /// Bytes of the f32 weights replaced, and of their int8 + int32 + scale
    /// replacements.
    pub weight_bytes: (usize, usize),
}

impl Quantized {
    /// One line for the command line: what was quantized and the weight
    /// bytes before and after.
    pub fn summary(&self) -> String {
        let (f, i) = self.weight_bytes;
        format!(
            "quantized {} weight tensors and {} activations; weights {f} B f32 -> {i} B (int8 weights, int32 biases, scales and zero points: {:.2}x smaller)",
            self.weights,
            self.activations,
            f as f64 / i.max(1) as f64
        )
    }
}

/// The first `n` training images of `data` as the model's input: raw pixel
/// values (0..255 as f32), NCHW, as kiln's trained models take them; and the
/// input shape `[1, C, H, W]`.
pub fn calibration_images(data: &kiln_data::Dataset, n: usize) -> (Vec<usize>, Vec<Vec<f32>>) {
    let s = &data.shape;
    let images = (0..n.min(data.train.len()))
        .map(|i| data.train.image(i).iter().map(|p| *p as f32).collect())
        .collect();
    (vec![1, s.channels, s.height, s.width], images)
}

/// What went wrong while quantizing.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// The bytes are not an ONNX model kiln can read.
    #[error("not an ONNX model kiln can read: {0}")]
    Parse(String),
    /// No calibration images.
    #[error("no calibration images: quantization needs at least one")]
    NoImages,
    /// An image does not have the model's input length.
    #[error("calibration image {index} has {got} values; the model's input takes {want}")]
    ImageShape {
        /// Index of the image.
        index: usize,
        /// Its length.
        got: usize,
        /// The input's element count.
        want: usize,
    },
    /// A node the quantizer cannot handle (named).
    #[error("node '{node}' ({op}): {message}")]
    Node {
        /// The node's name.
        node: String,
        /// Its op_type.
        op: String,
        /// What is wrong.
        message: String,
    },
    /// tract could not run the float model for calibration.
    #[error("calibration run failed: {0}")]
    Calibrate(String),
    /// A percentile that does not name a range: it must lie above 50 and at most 100.
    #[error(
        "percentile {0}: the range runs from the (100 - p)-th to the p-th percentile, so p \
         must be above 50 and at most 100 (e.g. 99.99)"
    )]
    Percentile(f64),
}

/// Quantizes the f32 ONNX model `onnx` (batch 1, NCHW input of
/// `input_shape`) with `images` (each the model's input in NCHW order, as
/// the model takes it: raw pixels for kiln's models) for calibration.
///
/// # Errors
/// [`QuantError::Parse`] for bytes that are not ONNX, [`QuantError::NoImages`],
/// [`QuantError::ImageShape`] for an image of the wrong length,
/// [`QuantError::Node`] naming a node (e.g. a batch norm not after a
/// convolution), [`QuantError::Calibrate`] when tract cannot run the model,
/// [`QuantError::Percentile`] for a percentile outside (50, 100].
pub fn quantize(
    onnx: &[u8],
    input_shape: &[usize],
    images: &[Vec<f32>],
    options: &QuantizeOptions,
) -> Result<Quantized, QuantError> {
    if let Calibration::Percentile(p) = options.calibration
        && !(p > 50.0 && p <= 100.0)
    {
        return Err(QuantError::Percentile(p));
    }
    if images.is_empty() {
        return Err(QuantError::NoImages);
    }
    let want: usize = input_shape.iter().product();
    if let Some((index, im)) = images.iter().enumerate().find(|(_, im)| im.len() != want) {
        return Err(QuantError::ImageShape {
            index,
            got: im.len(),
            want,
        });
    }
    let mut warnings = Vec::new();
    if images.len() < options.min_images {
        warnings.push(format!(
            "calibration on {} images (fewer than {}): activation ranges may be too narrow",
            images.len(),
            options.min_images
        ));
    }
    let mut model = ModelProto::decode(onnx).map_err(|e| QuantError::Parse(e.to_string()))?;
    fold::fold_batch_norms(&mut model)?;
    let plan = insert::plan(&model)?;
    let folded = model.encode_to_vec();
    let ranges = calibrate::ranges(
        &folded,
        input_shape,
        images,
        &plan.activations,
        options.calibration,
    )?;
    let report = insert::insert(&mut model, &plan, &ranges)?;
    Ok(Quantized {
        onnx: model.encode_to_vec(),
        warnings,
        activations: plan.activations.len(),
        weights: report.weights,
        weight_bytes: report.weight_bytes,
    })
}

//! kiln-ir: the intermediate representation between ONNX (via tract) and the
//! generated Rust code.
//!
//! A [`Graph`] is a flat, ordered list of [`Op`]s over [`Tensor`]s with static
//! shapes. Shapes are ONNX-logical (a rank-4 image is `[1, C, H, W]`), but
//! images (`[1, C, H, W]`, and `[C, H, W]` where tract dropped the batch axis)
//! are *stored* NHWC (channels innermost); every other tensor is stored in
//! logical order (see [`Tensor::storage_axes`]). Shapes and axes in the op
//! descriptions below are ONNX-logical; the kernels work on the storage.
//! Constants keep ONNX layout (conv weights OIHW, dense weights `[out, in]`);
//! kiln-codegen rearranges them for the kernels. Data is f32 except the i8
//! tensors and integer data of quantized models ([`int8`]); lengths are in
//! elements and arena offsets in f32 elements (an i8 tensor takes
//! [`Tensor::storage_len`] of them) unless a name says bytes.
//!
//! [`plan()`] assigns every tensor an offset in one arena.

mod display;
pub mod int8;
mod ops;
mod plan;

pub use int8::{QOp, QParams, QWeights, quantize_multiplier};
pub use ops::{ConvTranspose, Lrn, PadMode, Tap, UnaryOp};
pub use plan::{ArenaPlan, PlanError, plan};

/// Index into [`Graph::tensors`].
pub type TensorId = usize;
/// Index into [`Graph::constants`].
pub type ConstId = usize;

/// An activation tensor (the network input, an intermediate, or the output).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Name of the ONNX/tract outlet that produced it.
    pub name: String,
    /// ONNX-logical shape, batch included.
    pub shape: Vec<usize>,
    /// Element type: f32, or i8 (one byte each) for quantized tensors.
    pub dtype: DType,
}

/// Element type of a [`Tensor`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float, one arena element.
    #[default]
    F32,
    /// Quantized i8 (see [`int8`]), one byte; four share an arena element.
    I8,
}

impl Tensor {
    /// Arena elements (4 bytes each) the tensor's storage takes: `len()` for
    /// f32, `ceil(len / 4)` for i8.
    pub fn storage_len(&self) -> usize {
        match self.dtype {
            DType::F32 => self.len(),
            DType::I8 => self.len().div_ceil(4),
        }
    }
    /// Number of elements (f32 values, not bytes): the product of the shape.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// True when some dimension is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Images (`[1, C, H, W]`, or `[C, H, W]` where tract dropped the batch
    /// axis) are stored HWC; everything else in logical order.
    pub fn is_nhwc(&self) -> bool {
        self.hwc().is_some()
    }
    /// `(h, w, c)` of an image tensor (`[1, C, H, W]` or `[C, H, W]`); `None`
    /// for any other shape.
    pub fn hwc(&self) -> Option<(usize, usize, usize)> {
        match self.shape[..] {
            [1, c, h, w] | [c, h, w] => Some((h, w, c)),
            _ => None,
        }
    }
    /// Logical axes in storage order, outermost first: `[0, 2, 3, 1]` for a
    /// `[1, C, H, W]` image (NHWC), `[1, 2, 0]` for rank 3 (HWC), identity
    /// otherwise.
    pub fn storage_axes(&self) -> Vec<usize> {
        match self.shape.len() {
            4 if self.is_nhwc() => vec![0, 2, 3, 1],
            3 => vec![1, 2, 0],
            r => (0..r).collect(),
        }
    }
    /// The logical channel axis of an image (1 for `[1, C, H, W]`, 0 for
    /// `[C, H, W]`); `None` for non-images.
    pub fn channel_axis(&self) -> Option<usize> {
        self.is_nhwc().then(|| self.shape.len() - 3)
    }
    /// True when storage and logical order coincide: non-images, and images
    /// with H*W = 1 or C = 1 (so their NHWC storage is also NCHW).
    pub fn storage_is_logical(&self) -> bool {
        match self.hwc() {
            Some((h, w, c)) => h * w == 1 || c == 1,
            None => true,
        }
    }
}

/// Constant data (weights, biases, broadcast operands), ONNX layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    /// Name for generated code and diagnostics (e.g. `conv1.weight`).
    pub name: String,
    /// ONNX-logical shape (conv weight OIHW, dense weight `[out, in]`).
    pub shape: Vec<usize>,
    /// The values, row-major over `shape` (logical order, not NHWC);
    /// `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

/// Element-wise activation, fused into a producer or standing alone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// Identity (no activation).
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)`; either bound may be infinite.
    Clip {
        /// Lower bound (may be `-inf`).
        min: f32,
        /// Upper bound (may be `inf`).
        max: f32,
    },
    /// `x * relu6(x + 3) / 6`.
    HardSwish,
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
}

/// Element-wise binary operation `lhs op rhs`; which side is the data input
/// is [`OpKind::Binary::data_is_lhs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `lhs + rhs`.
    Add,
    /// `lhs - rhs`.
    Sub,
    /// `lhs * rhs`.
    Mul,
    /// `lhs / rhs`.
    Div,
    /// `max(lhs, rhs)`.
    Max,
    /// `min(lhs, rhs)`.
    Min,
    /// ONNX PRelu / LeakyRelu: `lhs * rhs` where `lhs < 0`, else `lhs` (a
    /// NaN `lhs` stays NaN); `rhs` is the slope.
    PRelu,
}

/// How the second operand of a binary op lines up with the first (`data`).
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// Another activation tensor of the same shape.
    Tensor(TensorId),
    /// An activation tensor with one value per channel of `data`
    /// (`[1, C, 1, 1]` against `[1, C, H, W]`, or `[1, C]` against `[1, C]`).
    ChannelTensor(TensorId),
    /// A constant with one value per channel: shape `[C]` (index into
    /// [`Graph::constants`]).
    ChannelConst(ConstId),
    /// A constant of the output's logical shape, stored in logical order
    /// (index into [`Graph::constants`]).
    Const(ConstId),
    /// One value for every element.
    Scalar(f32),
}

/// A 2-D convolution: `[1, in, H, W] -> [1, out, OH, OW]` logical (or the
/// batch-less rank-3 form), both stored NHWC.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    /// Kernel height and width, in pixels.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride, in pixels.
    pub stride: [usize; 2],
    /// Vertical and horizontal dilation (1 = dense kernel).
    pub dilation: [usize; 2],
    /// Zero padding in pixels: top, left, bottom, right.
    pub pads: [usize; 4],
    /// Number of groups; `in_channels` and `out_channels` are multiples of it.
    pub groups: usize,
    /// Input channels (C of the input image).
    pub in_channels: usize,
    /// Output channels (C of the output image).
    pub out_channels: usize,
    /// OIHW: `[out, in/groups, kh, kw]`.
    pub weight: ConstId,
    /// `[out]`; `None` means zero.
    pub bias: Option<ConstId>,
    /// Applied to every output element after the bias.
    pub act: Activation,
}

impl Conv {
    /// One group per channel, as many outputs as inputs (channel multiplier 1).
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_channels && self.groups == self.out_channels
    }
    /// A 1x1 ungrouped convolution with stride 1 and no padding: a matrix
    /// product over the channels of every pixel.
    pub fn is_pointwise(&self) -> bool {
        self.groups == 1 && self.kernel == [1, 1] && self.stride == [1, 1] && self.pads == [0; 4]
    }
}

/// A 2-D max or average pool: `[1, C, H, W] -> [1, C, OH, OW]` logical (or
/// the batch-less rank-3 form), both stored NHWC.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// Window height and width, in pixels.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride, in pixels.
    pub stride: [usize; 2],
    /// Vertical and horizontal dilation (1 = dense window).
    pub dilation: [usize; 2],
    /// Padding in pixels: top, left, bottom, right.
    pub pads: [usize; 4],
    /// Average pools only: divide by the whole window, padding included
    /// (otherwise by the number of real pixels in it).
    pub count_include_pad: bool,
}

/// What an op computes. Input tensors are in [`Op::inputs`]; `inputs[0]` is
/// the main data input.
#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    /// Logical NCHW input (outside the arena) -> NHWC or logical tensor.
    Input,
    /// A 2-D convolution with fused bias and activation.
    Conv(Conv),
    /// `in` inputs -> `out` outputs (`[1, in] -> [1, out]`, or any input
    /// shape of `in` elements, e.g. a whole `[1, C, H, W]` map when a
    /// Flatten was folded into the product); the output is stored in
    /// logical order.
    Dense {
        /// `[out, in]` (ONNX Gemm with transB = 1), `in` running over the
        /// input's elements in its *storage* order (the same as logical
        /// order for `[1, in]`; HWC for an image).
        weight: ConstId,
        /// `[out]`; `None` means zero.
        bias: Option<ConstId>,
        /// Applied to every output after the bias.
        act: Activation,
    },
    /// Max pool.
    MaxPool(Pool),
    /// Average pool.
    AvgPool(Pool),
    /// `[1, C, H, W] -> [1, C, 1, 1]`: per channel, scale * sum over pixels.
    GlobalSumPool {
        /// Factor applied to each sum: `1 / (H * W)` for an average pool.
        scale: f32,
    },
    /// `[1, C, H, W] -> [1, C, 1, 1]`: per channel, the max over pixels.
    GlobalMaxPool,
    /// Element-wise `data op rhs` (or `rhs op data`); the output has the data
    /// input's shape and storage.
    Binary {
        /// The operation.
        op: BinaryOp,
        /// The second operand and how it broadcasts against the data input.
        rhs: Operand,
        /// True when the data input (`inputs[0]`) is the left operand.
        data_is_lhs: bool,
    },
    /// A standalone element-wise activation (not fused into a producer).
    Activation(Activation),
    /// An element-wise function of one value; output shape and storage are
    /// the input's.
    Unary(UnaryOp),
    /// Softmax over the channels (rank 4) or the last axis (rank 2).
    Softmax,
    /// Concat along a logical axis; all inputs share the other dims.
    Concat {
        /// Logical (ONNX) axis, e.g. 1 for the channels of `[1, C, H, W]`.
        axis: usize,
    },
    /// Same elements in logical order, new shape. Storage changes only when
    /// an NHWC side needs it (see [`Tensor::storage_is_logical`]).
    Reshape,
    /// Logical transpose: output axis `i` is input axis `perm[i]`.
    Transpose {
        /// Permutation of the logical axes (as ONNX Transpose's `perm`).
        perm: Vec<usize>,
    },
    /// The elements `start..end` of logical axis `axis` (ONNX Slice with
    /// step 1, and each output of Split); input and output share their
    /// storage convention.
    Slice {
        /// Logical (ONNX) axis, e.g. 1 for the channels of `[1, C, H, W]`.
        axis: usize,
        /// First index kept.
        start: usize,
        /// One past the last index kept.
        end: usize,
    },
    /// An image resampled in H and W (ONNX Resize / Upsample, nearest or
    /// linear): `[1, C, H, W] -> [1, C, rows.len(), cols.len()]` (or the
    /// batch-less rank-3 form), each output pixel blended from the input
    /// rows and columns its [`Tap`]s name.
    Resize {
        /// One tap per output row.
        rows: Vec<Tap>,
        /// One tap per output column.
        cols: Vec<Tap>,
    },
    /// An image padded in H and W: `pads` = top, left, bottom, right pixels.
    Pad {
        /// Pixels added on each side: top, left, bottom, right.
        pads: [usize; 4],
        /// How the border is filled.
        mode: PadMode,
    },
    /// A transposed convolution.
    ConvTranspose(ConvTranspose),
    /// ONNX LRN over the channels of an image (same shape out).
    Lrn(Lrn),
    /// Every `stride`-th row / column of an image (from stride-2 1x1 convs).
    Downsample {
        /// Vertical and horizontal step, in pixels (1 = keep every one).
        stride: [usize; 2],
    },
    /// An int8 op (see [`int8`]).
    Int8(QOp),
}

/// One op of the schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// The ONNX node (tract node name) it came from.
    pub node: String,
    /// What it computes.
    pub kind: OpKind,
    /// Activation tensors read; `inputs[0]` is the data input. A tensor
    /// operand of [`OpKind::Binary`] is in its [`Operand`], not here.
    pub inputs: Vec<TensorId>,
    /// The tensor it writes.
    pub output: TensorId,
}

impl Op {
    /// Activation tensors read by this op, including a tensor operand.
    pub fn reads(&self) -> Vec<TensorId> {
        let mut r = self.inputs.clone();
        if let OpKind::Binary {
            rhs: Operand::Tensor(t) | Operand::ChannelTensor(t),
            ..
        } = &self.kind
        {
            r.push(*t);
        }
        r
    }

    /// Whether the output may share memory with `inputs[0]` when that dies here:
    /// element-wise ops that read each element before writing it.
    pub fn can_run_in_place(&self) -> bool {
        matches!(
            self.kind,
            OpKind::Binary { .. } | OpKind::Activation(_) | OpKind::Unary(_) | OpKind::Softmax
        )
    }

    /// Whether output and `inputs[0]` hold the same bytes, so no code runs.
    pub fn is_alias(&self, graph: &Graph) -> bool {
        matches!(self.kind, OpKind::Reshape)
            && graph.tensors[self.inputs[0]].storage_is_logical()
            && graph.tensors[self.output].storage_is_logical()
    }
}

/// The whole model: ops in execution order.
///
/// The ops and tensors describe one image (shapes with batch 1); a model
/// compiled for a static batch of N images has `batch = N` and its `infer`
/// runs the ops once per image, the program's input and output holding all
/// N (see [`Graph::input_len`]). kiln-lower sets `batch` only after checking
/// that no op mixes the images of the batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// Every activation tensor, indexed by [`TensorId`].
    pub tensors: Vec<Tensor>,
    /// Every constant, indexed by [`ConstId`].
    pub constants: Vec<Constant>,
    /// The schedule: ops in execution order, each after its inputs' producers.
    pub ops: Vec<Op>,
    /// The network input tensor (produced by the `Input` op).
    pub input: TensorId,
    /// The network output tensor, copied out in logical order at the end.
    pub output: TensorId,
    /// Images per call (the ONNX input's static batch, axis 0), at least 1;
    /// the tensors above hold one image each.
    pub batch: usize,
    /// What lowering decided that the user should hear about, one sentence
    /// each (e.g. a symbolic batch compiled for one image); callers print
    /// them as warnings.
    pub notes: Vec<String>,
}

impl Default for Graph {
    /// An empty graph of batch 1.
    fn default() -> Self {
        Graph {
            tensors: Vec::new(),
            constants: Vec::new(),
            ops: Vec::new(),
            input: 0,
            output: 0,
            batch: 1,
            notes: Vec::new(),
        }
    }
}

impl Graph {
    /// Elements of the program's input: `batch` images of the input tensor,
    /// in ONNX (NCHW) order, image after image.
    pub fn input_len(&self) -> usize {
        self.batch.max(1) * self.tensors[self.input].len()
    }

    /// Elements of the program's output: `batch` outputs of the output
    /// tensor, in ONNX order, image after image.
    pub fn output_len(&self) -> usize {
        self.batch.max(1) * self.tensors[self.output].len()
    }

    /// The program's input shape (ONNX order): the input tensor's, axis 0
    /// multiplied by `batch`.
    pub fn input_shape(&self) -> Vec<usize> {
        self.batched(self.input)
    }

    /// The program's output shape (ONNX order): the output tensor's, axis 0
    /// multiplied by `batch`.
    pub fn output_shape(&self) -> Vec<usize> {
        self.batched(self.output)
    }

    /// For a batch above 1, one line saying so: the program's input and
    /// output shapes, and that the ops run once per image; `None` for 1.
    pub fn batch_note(&self) -> Option<String> {
        (self.batch > 1).then(|| {
            format!(
                "batch of {} images: input {:?}, output {:?}; the ops below run once per \
                 image (shapes and arena of one image)",
                self.batch,
                self.input_shape(),
                self.output_shape()
            )
        })
    }

    fn batched(&self, t: TensorId) -> Vec<usize> {
        let mut s = self.tensors[t].shape.clone();
        if let Some(d) = s.first_mut() {
            *d *= self.batch.max(1);
        }
        s
    }

    /// Appends a tensor with the ONNX-logical `shape`; returns its id.
    pub fn add_tensor(&mut self, name: impl Into<String>, shape: Vec<usize>) -> TensorId {
        self.tensors.push(Tensor {
            name: name.into(),
            shape,
            dtype: DType::F32,
        });
        self.tensors.len() - 1
    }

    /// Appends an i8 tensor (see [`DType::I8`]) with the ONNX-logical `shape`.
    pub fn add_tensor_i8(&mut self, name: impl Into<String>, shape: Vec<usize>) -> TensorId {
        let t = self.add_tensor(name, shape);
        self.tensors[t].dtype = DType::I8;
        t
    }

    /// Appends a constant; `data` is row-major over the ONNX-logical `shape`
    /// (the caller keeps `data.len()` equal to its product). Returns its id.
    pub fn add_constant(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Vec<f32>,
    ) -> ConstId {
        self.constants.push(Constant {
            name: name.into(),
            shape,
            data,
        });
        self.constants.len() - 1
    }

    /// For each tensor, the index of the last op reading it (the output is
    /// read at the end, `ops.len()`).
    pub fn last_uses(&self) -> Vec<Option<usize>> {
        let mut last = vec![None; self.tensors.len()];
        for (i, op) in self.ops.iter().enumerate() {
            for t in op.reads() {
                last[t] = Some(i);
            }
        }
        last[self.output] = Some(self.ops.len());
        last
    }

    /// For each tensor, the index of the op producing it (`None` if none does).
    pub fn producers(&self) -> Vec<Option<usize>> {
        let mut p = vec![None; self.tensors.len()];
        for (i, op) in self.ops.iter().enumerate() {
            p[op.output] = Some(i);
        }
        p
    }

    /// The constants holding NaN or infinite values, with how many each: a
    /// damaged or badly exported file, which runs without error and gives
    /// NaN or meaningless outputs (callers warn about it).
    pub fn nonfinite_constants(&self) -> Vec<(&str, usize)> {
        self.constants
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.data.iter().filter(|v| !v.is_finite()).count(),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Number of ops reading each tensor (the graph output counts once more).
    pub fn consumer_counts(&self) -> Vec<usize> {
        let mut n = vec![0; self.tensors.len()];
        for op in &self.ops {
            for t in op.reads() {
                n[t] += 1;
            }
        }
        n[self.output] += 1;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonfinite_constants_are_counted_by_name() {
        let mut g = Graph::default();
        g.add_constant("w", vec![4], vec![1.0, f32::NAN, f32::INFINITY, 2.0]);
        g.add_constant("b", vec![2], vec![0.0, 1.0]);
        g.add_constant("s", vec![1], vec![f32::NEG_INFINITY]);
        assert_eq!(g.nonfinite_constants(), [("w", 2), ("s", 1)]);
    }
}

//! kiln-ir: the intermediate representation between ONNX (via tract) and the
//! generated Rust code.
//!
//! A [`Graph`] is a flat, ordered list of [`Op`]s over [`Tensor`]s with static
//! shapes. Shapes are ONNX-logical (a rank-4 image is `[1, C, H, W]`), but
//! rank-4 tensors are *stored* NHWC; every op's semantics below is in terms of
//! that storage. Constants keep ONNX layout (conv weights OIHW, dense weights
//! `[out, in]`); kiln-codegen rearranges them for the kernels.
//!
//! [`plan`] assigns every tensor an offset in one arena.

mod plan;

pub use plan::{ArenaPlan, PlanError, plan};

use std::fmt;

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
}

impl Tensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Images (`[1, C, H, W]`, or `[C, H, W]` where tract dropped the batch
    /// axis) are stored HWC; everything else in logical order.
    pub fn is_nhwc(&self) -> bool {
        self.hwc().is_some()
    }
    /// `(h, w, c)` of an image tensor.
    pub fn hwc(&self) -> Option<(usize, usize, usize)> {
        match self.shape[..] {
            [1, c, h, w] | [c, h, w] => Some((h, w, c)),
            _ => None,
        }
    }
    /// Logical axes in storage order (HWC for images).
    pub fn storage_axes(&self) -> Vec<usize> {
        match self.shape.len() {
            4 if self.is_nhwc() => vec![0, 2, 3, 1],
            3 => vec![1, 2, 0],
            r => (0..r).collect(),
        }
    }
    /// The logical channel axis of an image.
    pub fn channel_axis(&self) -> Option<usize> {
        self.is_nhwc().then(|| self.shape.len() - 3)
    }
    /// True when NHWC storage and logical (NCHW) order coincide.
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
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Element-wise activation, fused into a producer or standing alone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    None,
    Relu,
    Clip { min: f32, max: f32 },
    HardSwish,
    HardSigmoid { alpha: f32, beta: f32 },
    Sigmoid,
}

/// Element-wise binary operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

/// How the second operand of a binary op lines up with the first (`data`).
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// Another activation tensor of the same shape.
    Tensor(TensorId),
    /// An activation tensor with one value per channel of `data`
    /// (`[1, C, 1, 1]` against `[1, C, H, W]`, or `[1, C]` against `[1, C]`).
    ChannelTensor(TensorId),
    /// A constant with one value per channel (index into constants).
    ChannelConst(ConstId),
    /// A constant of the same shape.
    Const(ConstId),
    Scalar(f32),
}

/// A 2-D convolution over an NHWC image.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
    pub groups: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// OIHW: `[out, in/groups, kh, kw]`.
    pub weight: ConstId,
    /// `[out]`.
    pub bias: Option<ConstId>,
    pub act: Activation,
}

impl Conv {
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_channels && self.groups == self.out_channels
    }
    pub fn is_pointwise(&self) -> bool {
        self.groups == 1 && self.kernel == [1, 1] && self.stride == [1, 1] && self.pads == [0; 4]
    }
}

/// A 2-D max or average pool over an NHWC image.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
    pub count_include_pad: bool,
}

/// What an op computes. Input tensors are in [`Op::inputs`]; `inputs[0]` is
/// the main data input.
#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    /// Logical NCHW input (outside the arena) -> NHWC or logical tensor.
    Input,
    Conv(Conv),
    /// `[1, in] -> [1, out]`; weight `[out, in]`.
    Dense {
        weight: ConstId,
        bias: Option<ConstId>,
        act: Activation,
    },
    MaxPool(Pool),
    AvgPool(Pool),
    /// `[1, C, H, W] -> [1, C, 1, 1]`: per channel, scale * sum over pixels.
    GlobalSumPool {
        scale: f32,
    },
    GlobalMaxPool,
    Binary {
        op: BinaryOp,
        rhs: Operand,
        data_is_lhs: bool,
    },
    Activation(Activation),
    /// Softmax over the channels (rank 4) or the last axis (rank 2).
    Softmax,
    /// Concat along a logical axis; all inputs share the other dims.
    Concat {
        axis: usize,
    },
    /// Same elements in logical order, new shape. Storage changes only when
    /// an NHWC side needs it (see [`Tensor::storage_is_logical`]).
    Reshape,
    /// Logical transpose: output axis `i` is input axis `perm[i]`.
    Transpose {
        perm: Vec<usize>,
    },
    /// Every `stride`-th row / column of an image (from stride-2 1x1 convs).
    Downsample {
        stride: [usize; 2],
    },
}

/// One op of the schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// The ONNX node (tract node name) it came from.
    pub node: String,
    pub kind: OpKind,
    pub inputs: Vec<TensorId>,
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
            OpKind::Binary { .. } | OpKind::Activation(_) | OpKind::Softmax
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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub constants: Vec<Constant>,
    pub ops: Vec<Op>,
    /// The network input tensor (produced by the `Input` op).
    pub input: TensorId,
    /// The network output tensor, copied out in logical order at the end.
    pub output: TensorId,
}

impl Graph {
    pub fn add_tensor(&mut self, name: impl Into<String>, shape: Vec<usize>) -> TensorId {
        self.tensors.push(Tensor {
            name: name.into(),
            shape,
        });
        self.tensors.len() - 1
    }

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

    /// For each tensor, the index of the op producing it.
    pub fn producers(&self) -> Vec<Option<usize>> {
        let mut p = vec![None; self.tensors.len()];
        for (i, op) in self.ops.iter().enumerate() {
            p[op.output] = Some(i);
        }
        p
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

    /// Total number of f32 weights.
    pub fn weight_count(&self) -> usize {
        self.constants.iter().map(|c| c.data.len()).sum()
    }
}

fn fmt_shape(s: &[usize]) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(","))
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpKind::Input => write!(f, "input"),
            OpKind::Conv(c) => {
                let kind = if c.is_depthwise() {
                    "dwconv"
                } else if c.is_pointwise() {
                    "pwconv"
                } else {
                    "conv"
                };
                write!(
                    f,
                    "{kind} {}x{} s{}x{} d{}x{} pad{:?} g{}",
                    c.kernel[0],
                    c.kernel[1],
                    c.stride[0],
                    c.stride[1],
                    c.dilation[0],
                    c.dilation[1],
                    c.pads,
                    c.groups
                )?;
                if c.act != Activation::None {
                    write!(f, " +{:?}", c.act)?;
                }
                Ok(())
            }
            OpKind::Dense { act, .. } => {
                write!(f, "dense")?;
                if *act != Activation::None {
                    write!(f, " +{act:?}")?;
                }
                Ok(())
            }
            OpKind::MaxPool(p) => write!(
                f,
                "maxpool {}x{} s{}x{} pad{:?}",
                p.kernel[0], p.kernel[1], p.stride[0], p.stride[1], p.pads
            ),
            OpKind::AvgPool(p) => write!(
                f,
                "avgpool {}x{} s{}x{} pad{:?}",
                p.kernel[0], p.kernel[1], p.stride[0], p.stride[1], p.pads
            ),
            OpKind::GlobalSumPool { scale } => write!(f, "global-pool sum*{scale}"),
            OpKind::GlobalMaxPool => write!(f, "global-max-pool"),
            OpKind::Binary { op, rhs, .. } => {
                let r = match rhs {
                    Operand::Tensor(t) => format!("t{t}"),
                    Operand::ChannelTensor(t) => format!("t{t} per channel"),
                    Operand::ChannelConst(_) => "const per channel".into(),
                    Operand::Const(_) => "const".into(),
                    Operand::Scalar(s) => format!("{s}"),
                };
                write!(f, "{op:?} {r}")
            }
            OpKind::Activation(a) => write!(f, "{a:?}"),
            OpKind::Softmax => write!(f, "softmax"),
            OpKind::Concat { axis } => write!(f, "concat axis {axis}"),
            OpKind::Reshape => write!(f, "reshape"),
            OpKind::Transpose { perm } => write!(f, "transpose {perm:?}"),
            OpKind::Downsample { stride } => write!(f, "downsample {}x{}", stride[0], stride[1]),
        }
    }
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, op) in self.ops.iter().enumerate() {
            let ins: Vec<String> = op
                .inputs
                .iter()
                .map(|t| format!("t{t}{}", fmt_shape(&self.tensors[*t].shape)))
                .collect();
            writeln!(
                f,
                "{i:4} {:<28} {:<40} {} -> t{}{}",
                op.node,
                op.kind.to_string(),
                ins.join(" "),
                op.output,
                fmt_shape(&self.tensors[op.output].shape)
            )?;
        }
        Ok(())
    }
}

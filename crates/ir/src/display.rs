//! The text forms of [`OpKind`] and [`Graph`]: one line per op, as
//! `cargo xtask lower` and error messages show them.

use std::fmt;

use crate::{Activation, Graph, OpKind, Operand};

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
            OpKind::Unary(u) => write!(f, "{u:?}"),
            OpKind::Softmax => write!(f, "softmax"),
            OpKind::Concat { axis } => write!(f, "concat axis {axis}"),
            OpKind::Reshape => write!(f, "reshape"),
            OpKind::Transpose { perm } => write!(f, "transpose {perm:?}"),
            OpKind::Slice { axis, start, end } => write!(f, "slice axis {axis} {start}..{end}"),
            OpKind::Downsample { stride } => write!(f, "downsample {}x{}", stride[0], stride[1]),
            OpKind::Pad { pads, mode } => write!(f, "pad {pads:?} {mode:?}"),
            OpKind::Lrn(l) => write!(
                f,
                "lrn size {} alpha {} beta {} bias {}",
                l.size, l.alpha, l.beta, l.bias
            ),
            OpKind::ConvTranspose(d) => write!(
                f,
                "conv-transpose {}x{} s{}x{} d{}x{} pad{:?} g{}",
                d.kernel[0],
                d.kernel[1],
                d.stride[0],
                d.stride[1],
                d.dilation[0],
                d.dilation[1],
                d.pads,
                d.groups
            ),
            OpKind::Resize { rows, cols } => {
                let linear = rows.iter().chain(cols).any(|t| t.frac != 0.0);
                let mode = if linear { "linear" } else { "nearest" };
                write!(f, "resize {mode} to {}x{}", rows.len(), cols.len())
            }
            OpKind::Int8(q) => write!(f, "{q}"),
        }
    }
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(note) = self.batch_note() {
            writeln!(f, "{note}")?;
        }
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

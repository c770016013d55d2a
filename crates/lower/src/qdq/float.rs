//! Ops of a QDQ model kept in f32 (between an explicit Dequantize and
//! Quantize): the float subset kiln's exporter and onnxruntime's quantizer
//! leave unquantized (input normalisation, an op without an int8 kernel).

use kiln_ir::{Activation, BinaryOp, OpKind, Operand, TensorId};

use super::layers::conv_out;
use super::{Qdq, Val};
use crate::LowerError;

impl Qdq<'_> {
    /// Input `slot` of node `i` as an f32 tensor (dequantized if needed);
    /// the flag says whether it was quantized.
    fn f32_input(&mut self, i: usize, slot: usize) -> Result<(TensorId, bool), LowerError> {
        let name = self.nodes[i].input[slot].clone();
        match self.val(i, slot)? {
            Val::F32(t) => Ok((t, false)),
            Val::Deq(t, p) | Val::I8(t, p) => Ok((self.dequantized(t, p, &name), true)),
            Val::Const(_) => Err(self.unsupported(
                i,
                format!("input {slot} is a constant where kiln expects a tensor"),
            )),
        }
    }

    /// Node `i` in f32.
    pub(super) fn float_op(&mut self, i: usize) -> Result<(), LowerError> {
        let n = &self.nodes[i];
        let (op, node, out) = (
            n.op_type.clone(),
            super::node_name(n, i),
            n.output[0].clone(),
        );
        let (x, was_q) = self.f32_input(i, 0)?;
        let xs = self.graph.tensors[x].shape.clone();
        let (kind, shape, rhs_q) = match op.as_str() {
            "Conv" => {
                let Val::Const(w) = self.val(i, 1)? else {
                    return Err(self.unsupported(i, "the weights are not a constant"));
                };
                let (&[o, cig, kh, kw], &[1, c, h, wd]) = (&w.shape[..], &xs[..]) else {
                    return Err(self.unsupported(i, "kiln takes 2-D NCHW convolutions"));
                };
                let mut conv = self.conv_geometry(i, [o, cig, kh, kw], [c, h, wd])?;
                conv.weight = self.graph.add_constant(
                    format!("{node}.weight"),
                    w.shape.clone(),
                    w.real.clone(),
                );
                conv.bias = self.float_bias(i, 2, o)?;
                let (oh, ow) = conv_out(&conv, h, wd);
                (OpKind::Conv(conv), vec![1, o, oh, ow], false)
            }
            "Gemm" | "MatMul" => self.float_dense(i, &xs)?,
            "Add" | "Sub" | "Mul" | "Div" => {
                let (rhs, q) = self.operand(i, &xs)?;
                let bop = match op.as_str() {
                    "Add" => BinaryOp::Add,
                    "Sub" => BinaryOp::Sub,
                    "Mul" => BinaryOp::Mul,
                    _ => BinaryOp::Div,
                };
                (
                    OpKind::Binary {
                        op: bop,
                        rhs,
                        data_is_lhs: true,
                    },
                    xs.clone(),
                    q,
                )
            }
            "GlobalAveragePool" => {
                let [1, c, h, w] = xs[..] else {
                    return Err(self.unsupported(i, "kiln pools [1, C, H, W] images"));
                };
                (
                    OpKind::GlobalSumPool {
                        scale: 1.0 / (h * w) as f32,
                    },
                    vec![1, c, 1, 1],
                    false,
                )
            }
            "Flatten" | "Reshape" => (OpKind::Reshape, self.reshape_target(i, &xs)?, false),
            "Relu" => (OpKind::Activation(Activation::Relu), xs.clone(), false),
            "Sigmoid" => (OpKind::Activation(Activation::Sigmoid), xs.clone(), false),
            "HardSwish" => (OpKind::Activation(Activation::HardSwish), xs.clone(), false),
            "HardSigmoid" => {
                let alpha = super::params::attr_float(n, "alpha", 0.2);
                let beta = super::params::attr_float(n, "beta", 0.5);
                (
                    OpKind::Activation(Activation::HardSigmoid { alpha, beta }),
                    xs.clone(),
                    false,
                )
            }
            "Clip" => {
                let (min, max) = self
                    .clip_range(i)?
                    .ok_or_else(|| self.unsupported(i, "Clip bounds are not constants"))?;
                (
                    OpKind::Activation(Activation::Clip { min, max }),
                    xs.clone(),
                    false,
                )
            }
            _ => {
                return Err(self.unsupported(i, "no kiln kernel for this operation in a QDQ model"));
            }
        };
        let quantized_out = self
            .single_consumer(&out)
            .is_some_and(|c| self.nodes[c].op_type == "QuantizeLinear");
        if was_q || rhs_q || quantized_out {
            self.report.float_ops.push(format!("{node} ({op})"));
        }
        let y = self.push(&node, &out, kind, vec![x], shape, false);
        self.vals.insert(out, Val::F32(y));
        Ok(())
    }

    /// The bias of input `slot` as an f32 constant of `n` values (or none).
    fn float_bias(&mut self, i: usize, slot: usize, n: usize) -> Result<Option<usize>, LowerError> {
        if self.nodes[i].input.get(slot).is_none_or(|s| s.is_empty()) {
            return Ok(None);
        }
        let Val::Const(b) = self.val(i, slot)? else {
            return Err(self.unsupported(i, "the bias is not a constant"));
        };
        let data = match b.real.len() {
            1 => vec![b.real[0]; n],
            m if m == n => b.real.clone(),
            m => return Err(self.unsupported(i, format!("{m} biases for {n} outputs"))),
        };
        let name = format!("{}.bias", self.nodes[i].name);
        Ok(Some(self.graph.add_constant(name, vec![n], data)))
    }

    /// Gemm / MatMul in f32: a Dense layer (weights `[out, in]`).
    fn float_dense(
        &mut self,
        i: usize,
        xs: &[usize],
    ) -> Result<(OpKind, Vec<usize>, bool), LowerError> {
        let n = &self.nodes[i];
        let gemm = n.op_type == "Gemm";
        let p = super::params::attr_int;
        let trans_b = gemm && p(n, "transB", 0) != 0;
        let alpha = if gemm {
            super::params::attr_float(n, "alpha", 1.0)
        } else {
            1.0
        };
        let beta = if gemm {
            super::params::attr_float(n, "beta", 1.0)
        } else {
            1.0
        };
        if gemm && p(n, "transA", 0) != 0 {
            return Err(self.unsupported(i, "transA"));
        }
        let Val::Const(w) = self.val(i, 1)? else {
            return Err(self.unsupported(i, "the weights are not a constant"));
        };
        let [r, c] = w.shape[..] else {
            return Err(self.unsupported(i, "weights are not a matrix"));
        };
        let (k, m) = if trans_b { (c, r) } else { (r, c) };
        if xs.iter().product::<usize>() != k {
            return Err(self.unsupported(i, format!("input {xs:?} against weights {:?}", w.shape)));
        }
        let data: Vec<f32> = (0..m)
            .flat_map(|o| (0..k).map(move |j| (o, j)))
            .map(|(o, j)| {
                alpha
                    * if trans_b {
                        w.real[o * k + j]
                    } else {
                        w.real[j * m + o]
                    }
            })
            .collect();
        let name = self.nodes[i].name.clone();
        let weight = self
            .graph
            .add_constant(format!("{name}.weight"), vec![m, k], data);
        let bias = if gemm {
            self.float_bias(i, 2, m)?
        } else {
            None
        };
        if let Some(b) = bias {
            self.graph.constants[b]
                .data
                .iter_mut()
                .for_each(|v| *v *= beta);
        }
        Ok((
            OpKind::Dense {
                weight,
                bias,
                act: Activation::None,
            },
            vec![1, m],
            false,
        ))
    }

    /// The second operand of a binary node against data of shape `xs`.
    fn operand(&mut self, i: usize, xs: &[usize]) -> Result<(Operand, bool), LowerError> {
        let v = self.val(i, 1)?;
        let name = format!("{}.operand", self.nodes[i].name);
        match v {
            Val::Const(c) => {
                let len: usize = xs.iter().product();
                let channels = match xs {
                    [1, ch, _, _] | [1, ch] => Some(*ch),
                    _ => None,
                };
                if c.real.len() == 1 {
                    Ok((Operand::Scalar(c.real[0]), false))
                } else if Some(c.real.len()) == channels
                    && c.shape.iter().filter(|d| **d != 1).count() <= 1
                {
                    Ok((
                        Operand::ChannelConst(self.graph.add_constant(
                            name,
                            vec![c.real.len()],
                            c.real,
                        )),
                        false,
                    ))
                } else if c.real.len() == len {
                    Ok((
                        Operand::Const(self.graph.add_constant(name, xs.to_vec(), c.real)),
                        false,
                    ))
                } else {
                    Err(self.unsupported(
                        i,
                        format!("constant {:?} does not broadcast to {xs:?}", c.shape),
                    ))
                }
            }
            _ => {
                let (t, q) = self.f32_input(i, 1)?;
                let ts = &self.graph.tensors[t].shape;
                if ts == xs {
                    Ok((Operand::Tensor(t), q))
                } else if matches!((&ts[..], xs), ([1, c, 1, 1], [1, d, _, _]) if c == d) {
                    Ok((Operand::ChannelTensor(t), q))
                } else {
                    Err(self.unsupported(i, format!("operand {ts:?} does not broadcast to {xs:?}")))
                }
            }
        }
    }
}

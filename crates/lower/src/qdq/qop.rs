//! The QOperator forms (onnxruntime's `quantize_static` with
//! `QuantFormat.QOperator`): QLinearConv, QLinearMatMul, QGemm, QLinearAdd,
//! QLinearMul, QLinearGlobalAveragePool, QLinearSigmoid, each with its
//! scales and zero points as inputs. They lower to the same int8 ops as
//! the QDQ groups they stand for.

use kiln_ir::{BinaryOp, OpKind, Operand, QOp, QParams, QWeights};
use tract_onnx::prelude::DatumType;

use super::layers::conv_out;
use super::params::{self, QData, attr_float, attr_int};
use super::{Qdq, Val};
use crate::LowerError;

/// An int8 op, its inputs, its output's logical shape and quantization.
type Lowered = (QOp, Vec<usize>, Vec<usize>, QParams);

/// The QOperator op types kiln lowers.
pub(super) const QOPERATORS: &[&str] = &[
    "QLinearConv",
    "QLinearMatMul",
    "QGemm",
    "QLinearAdd",
    "QLinearMul",
    "QLinearGlobalAveragePool",
    "QLinearSigmoid",
];

impl Qdq<'_> {
    /// Per-tensor parameters from inputs `s` (scale) and `z` (zero point).
    fn qop_params(&self, i: usize, s: usize, z: usize) -> Result<QParams, LowerError> {
        let c = self.qop_checked(i, s, z, None)?;
        params::per_tensor(&c).map_err(|m| self.qerr(i, m))
    }

    fn qop_checked(
        &self,
        i: usize,
        s: usize,
        z: usize,
        dt: Option<DatumType>,
    ) -> Result<params::Checked, LowerError> {
        let Val::Const(scale) = self.val(i, s)? else {
            return Err(self.qerr(i, format!("input {s} (a scale) is not a constant")));
        };
        let zp = match self.nodes[i].input.get(z).filter(|n| !n.is_empty()) {
            None => None,
            Some(_) => match self.val(i, z)? {
                Val::Const(c) => Some(c),
                _ => {
                    return Err(self.qerr(i, format!("input {z} (a zero point) is not a constant")));
                }
            },
        };
        params::check(&scale, zp.as_ref(), dt).map_err(|m| self.qerr(i, m))
    }

    /// An int8 input tensor.
    fn qop_input(&self, i: usize, slot: usize) -> Result<usize, LowerError> {
        match self.val(i, slot)? {
            Val::I8(t, _) | Val::Deq(t, _) => Ok(t),
            _ => Err(self.unsupported(i, format!("input {slot} is not a quantized tensor"))),
        }
    }

    /// Int8 weights (input `w`, scales `s`, zero points `z`) per output
    /// channel along `axis` of `n` outputs.
    fn qop_weights(
        &self,
        i: usize,
        (w, s, z): (usize, usize, usize),
        axis: usize,
        n: usize,
    ) -> Result<(Vec<i8>, Vec<f32>), LowerError> {
        let Val::Const(c) = self.val(i, w)? else {
            return Err(self.unsupported(i, "the weights are not a constant"));
        };
        let (values, dt) = c
            .ints
            .clone()
            .ok_or_else(|| self.qerr(i, "the weights are not integers"))?;
        let ch = self.qop_checked(i, s, z, Some(dt))?;
        let per_axis = ch.scales.len() > 1;
        if per_axis && c.shape.get(axis) != Some(&ch.scales.len()) {
            return Err(self.qerr(
                i,
                format!(
                    "{} weight scales for weights {:?} (axis {axis}): shapes do not match",
                    ch.scales.len(),
                    c.shape
                ),
            ));
        }
        let q = QData {
            values,
            scales: ch.scales,
            zero_points: ch.zero_points,
            axis: per_axis.then_some(axis),
            dtype: dt,
        };
        let (wq, scales) = self.int8_weights(i, &q, axis, n)?;
        Ok((wq, scales))
    }

    /// Raw int32 biases (input `slot`), `n` of them, or zeros.
    fn qop_bias(&self, i: usize, slot: usize, n: usize) -> Result<Vec<i32>, LowerError> {
        if self.nodes[i].input.get(slot).is_none_or(|s| s.is_empty()) {
            return Ok(vec![0; n]);
        }
        match self.val(i, slot)? {
            Val::Const(c) => match c.ints {
                Some((v, DatumType::I32)) if v.len() == n => {
                    Ok(v.iter().map(|x| *x as i32).collect())
                }
                _ => Err(self.qerr(i, format!("the bias is not {n} int32 values"))),
            },
            _ => Err(self.unsupported(i, "the bias is not a constant")),
        }
    }

    /// QLinearConv `i`: an int8 convolution.
    fn qlinear_conv(&self, i: usize) -> Result<Lowered, LowerError> {
        let x = self.qop_input(i, 0)?;
        let (px, py) = (self.qop_params(i, 1, 2)?, self.qop_params(i, 6, 7)?);
        let xs = self.graph.tensors[x].shape.clone();
        let [1, c, h, wd] = xs[..] else {
            return Err(self.unsupported(i, "kiln takes 2-D NCHW convolutions"));
        };
        let Val::Const(w) = self.val(i, 3)? else {
            return Err(self.unsupported(i, "the weights are not a constant"));
        };
        let [o, cig, kh, kw] = w.shape[..] else {
            return Err(self.unsupported(i, "weights are not OIHW"));
        };
        let conv = self.conv_geometry(i, [o, cig, kh, kw], [c, h, wd])?;
        let (weight, weight_scales) = self.qop_weights(i, (3, 4, 5), 0, o)?;
        let bias = self.qop_bias(i, 8, o)?;
        let (oh, ow) = conv_out(&conv, h, wd);
        let q = QWeights {
            weight,
            weight_scales,
            bias,
            input: px,
            output: py,
            clamp: (-128, 127),
        };
        Ok((QOp::Conv { conv, q }, vec![x], vec![1, o, oh, ow], py))
    }

    /// QLinearMatMul / QGemm `i` (quantized output): an int8 dense layer.
    fn qlinear_matmul(&self, i: usize) -> Result<Lowered, LowerError> {
        let gemm = self.nodes[i].op_type == "QGemm";
        let n = &self.nodes[i];
        if gemm
            && (attr_int(n, "transA", 0) != 0
                || attr_float(n, "alpha", 1.0) != 1.0
                || n.input.get(7).is_none_or(|s| s.is_empty()))
        {
            return Err(self.unsupported(i, "QGemm with transA, alpha != 1 or a float output"));
        }
        let trans_b = gemm && attr_int(n, "transB", 0) != 0;
        let x = self.qop_input(i, 0)?;
        let px = self.qop_params(i, 1, 2)?;
        let py = if gemm {
            self.qop_params(i, 7, 8)?
        } else {
            self.qop_params(i, 6, 7)?
        };
        let Val::Const(w) = self.val(i, 3)? else {
            return Err(self.unsupported(i, "the weights are not a constant"));
        };
        let [r, cols] = w.shape[..] else {
            return Err(self.unsupported(i, "weights are not a matrix"));
        };
        let (k, nout, axis) = if trans_b { (cols, r, 0) } else { (r, cols, 1) };
        if self.graph.tensors[x].len() != k {
            return Err(self.unsupported(
                i,
                format!(
                    "input {:?} against weights {:?}",
                    self.graph.tensors[x].shape, w.shape
                ),
            ));
        }
        let (mut weight, weight_scales) = self.qop_weights(i, (3, 4, 5), axis, nout)?;
        if !trans_b {
            weight = (0..nout)
                .flat_map(|o| (0..k).map(move |j| (o, j)))
                .map(|(o, j)| weight[j * nout + o])
                .collect();
        }
        let bias = if gemm {
            self.qop_bias(i, 6, nout)?
        } else {
            vec![0; nout]
        };
        let q = QWeights {
            weight,
            weight_scales,
            bias,
            input: px,
            output: py,
            clamp: (-128, 127),
        };
        Ok((QOp::Dense(q), vec![x], vec![1, nout], py))
    }

    /// QLinearAdd / QLinearMul of a tensor (input 0) and a quantized
    /// constant (input 3): kept in f32 (dequantize, the f32 op with the
    /// constant's real values, quantize), and named in the report. False
    /// when input 3 is not a constant.
    fn qop_const_operand(&mut self, i: usize) -> Result<bool, LowerError> {
        let Val::Const(c) = self.val(i, 3)? else {
            return Ok(false);
        };
        let x = self.qop_input(i, 0)?;
        let (px, py) = (self.qop_params(i, 1, 2)?, self.qop_params(i, 6, 7)?);
        let (ints, dt) = c
            .ints
            .clone()
            .ok_or_else(|| self.qerr(i, "input 3 is not integer"))?;
        let pc = params::per_tensor(&self.qop_checked(i, 4, 5, Some(dt))?)
            .map_err(|m| self.qerr(i, m))?;
        // uint8 data is stored 0..=255; its per-tensor zero point moved by -128
        let shift = if dt == DatumType::U8 { 128 } else { 0 };
        let real: Vec<f32> = ints
            .iter()
            .map(|q| pc.dequantize(*q as i32 - shift))
            .collect();
        let n = &self.nodes[i];
        let (node, name) = (super::node_name(n, i), n.output[0].clone());
        let xs = self.graph.tensors[x].shape.clone();
        let channels = match xs[..] {
            [1, ch, _, _] | [1, ch] => Some(ch),
            _ => None,
        };
        let rhs = if real.len() == 1 {
            Operand::Scalar(real[0])
        } else if Some(real.len()) == channels {
            Operand::ChannelConst(self.graph.add_constant(
                format!("{node}.operand"),
                vec![real.len()],
                real,
            ))
        } else if real.len() == self.graph.tensors[x].len() {
            Operand::Const(
                self.graph
                    .add_constant(format!("{node}.operand"), xs.clone(), real),
            )
        } else {
            return Err(self.unsupported(
                i,
                format!("constant {:?} does not broadcast to {xs:?}", c.shape),
            ));
        };
        let bop = if n.op_type == "QLinearAdd" {
            BinaryOp::Add
        } else {
            BinaryOp::Mul
        };
        let xf = self.dequantized(x, px, &node);
        let f = self.push(
            &node,
            &format!("{name}.float"),
            OpKind::Binary {
                op: bop,
                rhs,
                data_is_lhs: true,
            },
            vec![xf],
            xs.clone(),
            false,
        );
        let y = self.push(
            &node,
            &name,
            OpKind::Int8(QOp::Quantize(py)),
            vec![f],
            xs,
            true,
        );
        self.report
            .float_ops
            .push(format!("{node} ({})", n.op_type));
        self.vals.insert(name, Val::I8(y, py));
        Ok(true)
    }

    /// Emits QOperator node `i`; false when it is not one.
    pub(super) fn qoperator(&mut self, i: usize) -> Result<bool, LowerError> {
        let op = self.nodes[i].op_type.clone();
        if !QOPERATORS.contains(&op.as_str()) {
            return Ok(false);
        }
        let (kind, inputs, shape, out) = match op.as_str() {
            "QLinearConv" => self.qlinear_conv(i)?,
            "QLinearMatMul" | "QGemm" => self.qlinear_matmul(i)?,
            "QLinearAdd" | "QLinearMul" if self.qop_const_operand(i)? => return Ok(true),
            "QLinearAdd" | "QLinearMul" => {
                let (a, b) = (self.qop_input(i, 0)?, self.qop_input(i, 3)?);
                let (pa, pb, py) = (
                    self.qop_params(i, 1, 2)?,
                    self.qop_params(i, 4, 5)?,
                    self.qop_params(i, 6, 7)?,
                );
                let (sa, sb) = (
                    self.graph.tensors[a].shape.clone(),
                    self.graph.tensors[b].shape.clone(),
                );
                let clamp = (-128, 127);
                if op == "QLinearAdd" {
                    if sa != sb {
                        return Err(self.unsupported(
                            i,
                            format!("{sa:?} + {sb:?}: kiln adds tensors of one shape"),
                        ));
                    }
                    (
                        QOp::Add {
                            a: pa,
                            b: pb,
                            output: py,
                            clamp,
                        },
                        vec![a, b],
                        sa,
                        py,
                    )
                } else {
                    let (inputs, qa, qb, per_channel) = match (&sa[..], &sb[..]) {
                        _ if sa == sb => (vec![a, b], pa, pb, false),
                        ([1, c, _, _], [1, d, 1, 1]) if c == d => (vec![a, b], pa, pb, true),
                        ([1, d, 1, 1], [1, c, _, _]) if c == d => (vec![b, a], pb, pa, true),
                        _ => {
                            return Err(self.unsupported(
                                i,
                                format!("{sa:?} * {sb:?} does not broadcast per channel"),
                            ));
                        }
                    };
                    let shape = self.graph.tensors[inputs[0]].shape.clone();
                    (
                        QOp::Mul {
                            a: qa,
                            b: qb,
                            output: py,
                            clamp,
                            per_channel,
                        },
                        inputs,
                        shape,
                        py,
                    )
                }
            }
            "QLinearGlobalAveragePool" => {
                if attr_int(&self.nodes[i], "channels_last", 0) != 0 {
                    return Err(self.unsupported(i, "channels_last"));
                }
                let x = self.qop_input(i, 0)?;
                let (px, py) = (self.qop_params(i, 1, 2)?, self.qop_params(i, 3, 4)?);
                let [1, c, _, _] = self.graph.tensors[x].shape[..] else {
                    return Err(self.unsupported(i, "kiln pools [1, C, H, W] images"));
                };
                (
                    QOp::GlobalAvgPool {
                        input: px,
                        output: py,
                    },
                    vec![x],
                    vec![1, c, 1, 1],
                    py,
                )
            }
            _ => {
                let x = self.qop_input(i, 0)?;
                let (px, py) = (self.qop_params(i, 1, 2)?, self.qop_params(i, 3, 4)?);
                let table = (0..256u32)
                    .map(|b| {
                        py.quantize(1.0 / (1.0 + (-px.dequantize(b as u8 as i8 as i32)).exp()))
                            as i8
                    })
                    .collect();
                let shape = self.graph.tensors[x].shape.clone();
                (
                    QOp::Lut {
                        table,
                        what: "Sigmoid".into(),
                    },
                    vec![x],
                    shape,
                    py,
                )
            }
        };
        let node = super::node_name(&self.nodes[i], i);
        let name = self.nodes[i].output[0].clone();
        let y = self.push(&node, &name, OpKind::Int8(kind), inputs, shape, true);
        self.vals.insert(name, Val::I8(y, out));
        Ok(true)
    }
}

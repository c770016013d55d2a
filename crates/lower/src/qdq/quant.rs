//! QuantizeLinear, DequantizeLinear and the float ops between them that
//! become int8 ops.

use kiln_ir::{OpKind, QOp, QParams};
use tract_onnx::prelude::DatumType;

use super::params::{self, QConst, QData, attr_float, attr_int, norm_axis};
use super::{Qdq, Val};
use crate::LowerError;

/// Element-wise ops lowered as a 256-entry table between int8 tensors.
const LUT_OPS: &[&str] = &[
    "Relu",
    "Clip",
    "HardSwish",
    "HardSigmoid",
    "Sigmoid",
    "LeakyRelu",
    "Tanh",
];

/// A real function of one value (the float op a table tabulates).
type RealFn = Box<dyn Fn(f32) -> f32>;

/// An int8 op, its inputs and its output's logical shape.
pub(super) type Emitted = (QOp, Vec<usize>, Vec<usize>);

/// The QuantizeLinear closing an int8 pattern: its node, the nodes folded on
/// the way (ReLU/Clip), and the real clamp range they impose.
struct Closing {
    q: usize,
    folded: Vec<usize>,
    range: (f32, f32),
}

impl Qdq<'_> {
    fn checked(&self, i: usize, data_dt: Option<DatumType>) -> Result<params::Checked, LowerError> {
        let scale = match self.val(i, 1)? {
            Val::Const(c) => c,
            _ => return Err(self.qerr(i, "the scale is not a constant")),
        };
        let zp = match self.nodes[i].input.get(2).filter(|s| !s.is_empty()) {
            None => None,
            Some(_) => match self.val(i, 2)? {
                Val::Const(c) => Some(c),
                _ => return Err(self.qerr(i, "the zero point is not a constant")),
            },
        };
        params::check(&scale, zp.as_ref(), data_dt).map_err(|m| self.qerr(i, m))
    }

    /// Per-tensor parameters of QuantizeLinear / DequantizeLinear `i`.
    fn act_params(&self, i: usize, data_dt: Option<DatumType>) -> Result<QParams, LowerError> {
        let c = self.checked(i, data_dt)?;
        if c.dtype == DatumType::I32 {
            return Err(self.qerr(
                i,
                "int32 quantization of an activation; kiln lowers int8 and uint8 activations",
            ));
        }
        params::per_tensor(&c).map_err(|m| {
            let axis = attr_int(&self.nodes[i], "axis", 1);
            self.qerr(i, format!("{m} (axis {axis})"))
        })
    }

    pub(super) fn quantize_linear(&mut self, i: usize) -> Result<(), LowerError> {
        let n = &self.nodes[i];
        let out = n.output[0].clone();
        let x = self.val(i, 0)?;
        if let Val::Const(c) = &x {
            let ch = self.checked(i, None)?;
            let axis = norm_axis(attr_int(n, "axis", 1), c.shape.len());
            let v = quantize_const(c, &ch, axis).map_err(|m| self.qerr(i, m))?;
            self.vals.insert(out, Val::Const(v));
            return Ok(());
        }
        let p = self.act_params(i, None)?;
        let v = match x {
            Val::F32(t) => {
                let shape = self.graph.tensors[t].shape.clone();
                let y = self.push(
                    &n.name,
                    &out,
                    OpKind::Int8(QOp::Quantize(p)),
                    vec![t],
                    shape,
                    true,
                );
                Val::I8(y, p)
            }
            Val::Deq(t, p0) => Val::I8(self.requantize(&n.name, &out, t, p0, p), p),
            Val::I8(..) => {
                return Err(self.qerr(i, "QuantizeLinear of a tensor that is already quantized"));
            }
            Val::Const(_) => unreachable!("handled above"),
        };
        self.vals.insert(out, v);
        Ok(())
    }

    pub(super) fn dequantize_linear(&mut self, i: usize) -> Result<(), LowerError> {
        let n = &self.nodes[i];
        let out = n.output[0].clone();
        let v = match self.val(i, 0)? {
            Val::I8(t, _) => Val::Deq(t, self.act_params(i, Some(DatumType::I8))?),
            Val::Const(c) => {
                let (ints, dt) = c
                    .ints
                    .clone()
                    .ok_or_else(|| self.qerr(i, "DequantizeLinear of a float constant"))?;
                let ch = self.checked(i, Some(dt))?;
                if ch.dtype != dt {
                    return Err(self.qerr(
                        i,
                        format!("data is {dt:?} but the zero point {:?}", ch.dtype),
                    ));
                }
                let axis = if ch.scales.len() > 1 {
                    let a = attr_int(n, "axis", 1);
                    let ax = norm_axis(a, c.shape.len()).ok_or_else(|| {
                        self.qerr(i, format!("axis {a} out of range for shape {:?}", c.shape))
                    })?;
                    if c.shape[ax] != ch.scales.len() {
                        return Err(self.qerr(
                            i,
                            format!(
                                "{} scales along axis {ax} of a {:?} tensor: shapes do not match",
                                ch.scales.len(),
                                c.shape
                            ),
                        ));
                    }
                    Some(ax)
                } else {
                    None
                };
                let q = QData {
                    values: ints,
                    scales: ch.scales,
                    zero_points: ch.zero_points,
                    axis,
                    dtype: dt,
                };
                let real = dequantize_const(&c.shape, &q);
                Val::Const(QConst {
                    shape: c.shape.clone(),
                    real,
                    ints: None,
                    q: Some(q),
                })
            }
            Val::Deq(..) | Val::F32(_) => {
                return Err(self.qerr(i, "DequantizeLinear of a tensor that is not quantized"));
            }
        };
        self.vals.insert(out, v);
        Ok(())
    }

    /// `t` (quantized by `from`) as an i8 tensor quantized by `to`: itself
    /// when they are equal, else a table lookup.
    fn requantize(
        &mut self,
        node: &str,
        name: &str,
        t: usize,
        from: QParams,
        to: QParams,
    ) -> usize {
        if from == to {
            return t;
        }
        let table = table(from, to, |x| x);
        let shape = self.graph.tensors[t].shape.clone();
        let kind = OpKind::Int8(QOp::Lut {
            table,
            what: "requantize".into(),
        });
        self.push(node, name, kind, vec![t], shape, true)
    }

    /// The QuantizeLinear that closes node `i`'s output, through one ReLU or
    /// Clip when `fold` (their range returned), if every step has one consumer.
    fn closing(&self, i: usize, fold: bool) -> Result<Option<Closing>, LowerError> {
        let mut out = self.nodes[i].output[0].clone();
        let mut folded = Vec::new();
        let mut range = (f32::NEG_INFINITY, f32::INFINITY);
        loop {
            let Some(c) = self.single_consumer(&out) else {
                return Ok(None);
            };
            let n = &self.nodes[c];
            if n.input.first() != Some(&out) {
                return Ok(None);
            }
            match n.op_type.as_str() {
                "QuantizeLinear" => {
                    return Ok(Some(Closing {
                        q: c,
                        folded,
                        range,
                    }));
                }
                "Relu" if fold && folded.is_empty() => range = (0.0, f32::INFINITY),
                "Clip" if fold && folded.is_empty() => match self.clip_range(c)? {
                    Some(r) => range = r,
                    None => return Ok(None),
                },
                _ => return Ok(None),
            }
            folded.push(c);
            out = n.output[0].clone();
        }
    }

    /// A Clip's `(min, max)`: constant inputs (opset 11+) or attributes.
    pub(super) fn clip_range(&self, i: usize) -> Result<Option<(f32, f32)>, LowerError> {
        let n = &self.nodes[i];
        let mut r = (
            attr_float(n, "min", f32::NEG_INFINITY),
            attr_float(n, "max", f32::INFINITY),
        );
        for (slot, dst) in [(1, &mut r.0), (2, &mut r.1)] {
            if n.input.get(slot).is_some_and(|s| !s.is_empty()) {
                match self.val(i, slot)? {
                    Val::Const(c) if c.real.len() == 1 => *dst = c.real[0],
                    _ => return Ok(None),
                }
            }
        }
        Ok(Some(r))
    }

    /// Emits node `i` as an int8 op when its pattern allows; false otherwise.
    pub(super) fn try_int8(&mut self, i: usize) -> Result<bool, LowerError> {
        let op = self.nodes[i].op_type.clone();
        if matches!(op.as_str(), "Flatten" | "Reshape") {
            return self.int8_reshape(i);
        }
        if !matches!(
            op.as_str(),
            "Conv" | "Gemm" | "MatMul" | "Add" | "Mul" | "GlobalAveragePool"
        ) && !LUT_OPS.contains(&op.as_str())
        {
            return Ok(false);
        }
        let Val::Deq(x, px) = self.val(i, 0)? else {
            return Ok(false);
        };
        let fold = matches!(op.as_str(), "Conv" | "Gemm" | "MatMul" | "Add" | "Mul");
        let Some(close) = self.closing(i, fold)? else {
            return Ok(false);
        };
        let out = self.act_params(close.q, None)?;
        let clamp = (
            out.quantize(close.range.0).max(-128),
            out.quantize(close.range.1).min(127),
        );
        let name = self.nodes[close.q].output[0].clone();
        let node = super::node_name(&self.nodes[i], i);
        let (kind, inputs, shape) = match op.as_str() {
            "Conv" => match self.int8_conv(i, x, px, out, clamp)? {
                Some(k) => k,
                None => return Ok(false),
            },
            "Gemm" | "MatMul" => match self.int8_dense(i, x, px, out, clamp)? {
                Some(k) => k,
                None => return Ok(false),
            },
            "Mul" => {
                let Val::Deq(b, pb) = self.val(i, 1)? else {
                    return Ok(false);
                };
                let (sa, sb) = (
                    self.graph.tensors[x].shape.clone(),
                    self.graph.tensors[b].shape.clone(),
                );
                let (inputs, a, bq, per_channel) = match (&sa[..], &sb[..]) {
                    _ if sa == sb => (vec![x, b], px, pb, false),
                    ([1, c, _, _], [1, d, 1, 1]) if c == d => (vec![x, b], px, pb, true),
                    ([1, d, 1, 1], [1, c, _, _]) if c == d => (vec![b, x], pb, px, true),
                    _ => return Ok(false),
                };
                let shape = self.graph.tensors[inputs[0]].shape.clone();
                let kind = QOp::Mul {
                    a,
                    b: bq,
                    output: out,
                    clamp,
                    per_channel,
                };
                (kind, inputs, shape)
            }
            "Add" => {
                let Val::Deq(b, pb) = self.val(i, 1)? else {
                    return Ok(false);
                };
                let shape = self.graph.tensors[x].shape.clone();
                if self.graph.tensors[b].shape != shape {
                    return Ok(false);
                }
                (
                    QOp::Add {
                        a: px,
                        b: pb,
                        output: out,
                        clamp,
                    },
                    vec![x, b],
                    shape,
                )
            }
            "GlobalAveragePool" => {
                let s = self.graph.tensors[x].shape.clone();
                let [1, c, _, _] = s[..] else {
                    return Ok(false);
                };
                (
                    QOp::GlobalAvgPool {
                        input: px,
                        output: out,
                    },
                    vec![x],
                    vec![1, c, 1, 1],
                )
            }
            _ => {
                let Some(f) = self.unary_fn(i)? else {
                    return Ok(false);
                };
                let shape = self.graph.tensors[x].shape.clone();
                (
                    QOp::Lut {
                        table: table(px, out, f),
                        what: op.clone(),
                    },
                    vec![x],
                    shape,
                )
            }
        };
        let y = self.push(&node, &name, OpKind::Int8(kind), inputs, shape, true);
        self.done
            .extend(close.folded.iter().copied().chain([close.q]));
        self.vals.insert(name, Val::I8(y, out));
        Ok(true)
    }

    /// Flatten / Reshape of an i8 tensor (or of a dequantized one whose
    /// consumer quantizes again): the same bytes, a new shape.
    fn int8_reshape(&mut self, i: usize) -> Result<bool, LowerError> {
        let (x, p, close) = match self.val(i, 0)? {
            Val::I8(x, p) => (x, p, None),
            Val::Deq(x, p) => match self.closing(i, false)? {
                Some(c) => (x, p, Some(c)),
                None => return Ok(false),
            },
            _ => return Ok(false),
        };
        let shape = self.reshape_target(i, &self.graph.tensors[x].shape.clone())?;
        let node = super::node_name(&self.nodes[i], i);
        let mut name = self.nodes[i].output[0].clone();
        let y = self.graph.add_tensor_i8(name.clone(), shape);
        self.graph.ops.push(kiln_ir::Op {
            node: node.clone(),
            kind: OpKind::Reshape,
            inputs: vec![x],
            output: y,
        });
        let (mut y, mut p) = (y, p);
        if let Some(c) = close {
            let out = self.act_params(c.q, None)?;
            name = self.nodes[c.q].output[0].clone();
            y = self.requantize(&node, &name, y, p, out);
            p = out;
            self.done.insert(c.q);
        }
        self.vals.insert(name, Val::I8(y, p));
        Ok(true)
    }

    /// The output shape of Flatten / Reshape node `i` for input `shape`.
    pub(super) fn reshape_target(
        &self,
        i: usize,
        shape: &[usize],
    ) -> Result<Vec<usize>, LowerError> {
        let n = &self.nodes[i];
        let total: usize = shape.iter().product();
        if n.op_type == "Flatten" {
            let axis = norm_axis(attr_int(n, "axis", 1), shape.len() + 1).unwrap_or(1);
            let outer: usize = shape[..axis.min(shape.len())].iter().product();
            return Ok(vec![outer, total / outer.max(1)]);
        }
        let Val::Const(c) = self.val(i, 1)? else {
            return Err(self.unsupported(i, "the target shape is not a constant"));
        };
        let ints = c
            .ints
            .map(|(v, _)| v)
            .ok_or_else(|| self.unsupported(i, "the target shape is not integer"))?;
        let mut out: Vec<usize> = Vec::new();
        let mut infer = None;
        for (k, d) in ints.iter().enumerate() {
            match *d {
                0 => {
                    out.push(*shape.get(k).ok_or_else(|| {
                        self.unsupported(i, "0 in the shape past the input's rank")
                    })?)
                }
                -1 => {
                    infer = Some(k);
                    out.push(1);
                }
                d if d > 0 => out.push(d as usize),
                d => return Err(self.unsupported(i, format!("target dimension {d}"))),
            }
        }
        let known: usize = out.iter().product();
        if let Some(k) = infer {
            out[k] = total / known.max(1);
        }
        if out.iter().product::<usize>() != total {
            return Err(self.unsupported(i, format!("cannot reshape {shape:?} into {ints:?}")));
        }
        Ok(out)
    }

    /// The real function of unary node `i`, f32 as onnxruntime computes it.
    fn unary_fn(&self, i: usize) -> Result<Option<RealFn>, LowerError> {
        let n = &self.nodes[i];
        Ok(Some(match n.op_type.as_str() {
            "Relu" => Box::new(|x: f32| x.max(0.0)),
            "Clip" => match self.clip_range(i)? {
                Some((lo, hi)) => Box::new(move |x: f32| x.max(lo).min(hi)),
                None => return Ok(None),
            },
            "HardSwish" => Box::new(|x: f32| x * (x + 3.0).clamp(0.0, 6.0) / 6.0),
            "HardSigmoid" => {
                let (a, b) = (attr_float(n, "alpha", 0.2), attr_float(n, "beta", 0.5));
                Box::new(move |x: f32| (a * x + b).clamp(0.0, 1.0))
            }
            "Sigmoid" => Box::new(|x: f32| 1.0 / (1.0 + (-x).exp())),
            "Tanh" => Box::new(|x: f32| x.tanh()),
            "LeakyRelu" => {
                let a = attr_float(n, "alpha", 0.01);
                Box::new(move |x: f32| if x < 0.0 { a * x } else { x })
            }
            _ => return Ok(None),
        }))
    }
}

/// The 256-entry table of `f` from `input` to `output` quantization, indexed
/// by the input byte.
fn table(input: QParams, output: QParams, f: impl Fn(f32) -> f32) -> Vec<i8> {
    (0..256u32)
        .map(|b| output.quantize(f(input.dequantize(b as u8 as i8 as i32))) as i8)
        .collect()
}

/// Real values of quantized integers (per tensor or along `q.axis`).
fn dequantize_const(shape: &[usize], q: &QData) -> Vec<f32> {
    let inner: usize = q.axis.map_or(1, |a| shape[a + 1..].iter().product());
    let n = q.scales.len();
    q.values
        .iter()
        .enumerate()
        .map(|(k, v)| {
            let j = if n == 1 { 0 } else { (k / inner) % n };
            (*v - q.zero_points[j]) as f32 * q.scales[j]
        })
        .collect()
}

/// QuantizeLinear of a float constant (weights written as Q(float) -> DQ).
fn quantize_const(c: &QConst, ch: &params::Checked, axis: Option<usize>) -> Result<QConst, String> {
    let n = ch.scales.len();
    let inner: usize = if n > 1 {
        let a = axis.ok_or("axis out of range")?;
        if c.shape[a] != n {
            return Err(format!(
                "{n} scales along axis {a} of a {:?} tensor: shapes do not match",
                c.shape
            ));
        }
        c.shape[a + 1..].iter().product()
    } else {
        1
    };
    let (lo, hi) = if ch.dtype == DatumType::I8 {
        (-128, 127)
    } else {
        (0, 255)
    };
    let ints: Vec<i64> = c
        .real
        .iter()
        .enumerate()
        .map(|(k, x)| {
            let j = if n == 1 { 0 } else { (k / inner) % n };
            ((x / ch.scales[j]).round_ties_even() as i64 + ch.zero_points[j]).clamp(lo, hi)
        })
        .collect();
    Ok(QConst {
        shape: c.shape.clone(),
        real: ints.iter().map(|v| *v as f32).collect(),
        ints: Some((ints, ch.dtype)),
        q: None,
    })
}

//! tract's decluttered TypedModel -> kiln IR, node by node.

use std::collections::HashMap;
use std::sync::Arc;

use kiln_ir::{Activation, BinaryOp, Conv, Graph, OpKind, Operand, Pool, TensorId};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_core::ops::Downsample;
use tract_onnx::tract_core::ops::array::TypedConcat;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{
    Conv as TractConv, KernelFormat, MaxPool, PoolSpec, SumPool,
};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::identity::Identity;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::nn::{DataFormat, Reduce, Reducer, Softmax, SoftmaxKind};
use tract_onnx::tract_core::ops::source::TypedSource;
use tract_onnx::tract_hir::infer::Factoid;

use crate::{LowerError, LowerOptions};

/// Parses, fixes the input shape, types and declutters.
pub(crate) fn load_decluttered(
    bytes: &[u8],
    source_name: &str,
    options: &LowerOptions,
) -> Result<TypedModel, LowerError> {
    let src = || source_name.to_string();
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(|e| LowerError::Parse {
            source_name: src(),
            message: format!("{e:#}"),
        })?;
    let inputs = model
        .input_outlets()
        .map_err(|e| tract_err(source_name, e))?
        .to_vec();
    if inputs.len() != 1 {
        return Err(LowerError::Input {
            source_name: src(),
            message: format!(
                "the model has {} inputs; kiln lowers models with exactly one",
                inputs.len()
            ),
        });
    }
    let input_name = model.node(inputs[0].node).name.clone();
    let fact = model
        .input_fact(0)
        .map_err(|e| tract_err(source_name, e))?
        .clone();
    let shape: Vec<usize> = match &options.input_shape {
        Some(s) => {
            // A given shape fills in symbolic dimensions; it may not contradict
            // one the model fixes (a CNN with global pooling would otherwise
            // silently run at another resolution than it was made for).
            if !fact.shape.is_open() {
                let declared: Vec<Option<usize>> = fact
                    .shape
                    .dims()
                    .map(|d| d.concretize().and_then(|d| d.to_usize().ok()))
                    .collect();
                let clash = declared.len() != s.len()
                    || declared
                        .iter()
                        .zip(s)
                        .any(|(d, given)| d.is_some_and(|d| d != *given));
                if clash {
                    let shown: Vec<String> = declared
                        .iter()
                        .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
                        .collect();
                    return Err(LowerError::Input {
                        source_name: src(),
                        message: format!(
                            "input '{input_name}' is declared [{}], the given shape is {s:?}",
                            shown.join(", ")
                        ),
                    });
                }
            }
            s.clone()
        }
        None => {
            if fact.shape.is_open() {
                return Err(LowerError::Input {
                    source_name: src(),
                    message: format!(
                        "input '{input_name}' has no declared rank; give the input shape explicitly"
                    ),
                });
            }
            let mut shape = Vec::new();
            for (axis, d) in fact.shape.dims().enumerate() {
                let value = d.concretize().and_then(|d| d.to_usize().ok());
                match value {
                    Some(v) => shape.push(v),
                    None if axis == 0 => shape.push(1),
                    None => {
                        return Err(LowerError::SymbolicDim {
                            source_name: src(),
                            input: input_name,
                            dim: d
                                .concretize()
                                .map(|d| d.to_string())
                                .unwrap_or_else(|| "?".into()),
                            axis,
                        });
                    }
                }
            }
            shape
        }
    };
    if shape.first().is_some_and(|n| *n != 1) {
        return Err(LowerError::Input {
            source_name: src(),
            message: format!(
                "input '{input_name}' has batch size {}; kiln compiles batch 1",
                shape[0]
            ),
        });
    }
    model
        .set_input_fact(0, f32::fact(&shape).into())
        .map_err(|e| tract_err(source_name, e))?;
    let onnx_types = onnx_op_types(&model);
    let typed = model
        .into_typed()
        .map_err(|e| typed_err(source_name, &onnx_types, e))?;
    typed
        .into_decluttered()
        .map_err(|e| tract_err(source_name, e))
}

fn tract_err(source_name: &str, e: impl std::fmt::Display) -> LowerError {
    LowerError::Tract {
        source_name: source_name.to_string(),
        message: format!("{e:#}"),
    }
}

/// tract fails typing on ops it does not implement; name the node when possible.
fn typed_err(source_name: &str, onnx_types: &HashMap<String, String>, e: TractError) -> LowerError {
    let message = format!("{e:#}");
    for (node, op) in onnx_types {
        if op.starts_with("Unimplemented") && message.contains(node.as_str()) {
            return LowerError::Unsupported {
                source_name: source_name.to_string(),
                node: node.clone(),
                op: op.clone(),
                reason: "tract-onnx does not implement it".into(),
            };
        }
    }
    tract_err(source_name, message)
}

/// ONNX-level op name of each node of the inference model.
fn onnx_op_types(model: &InferenceModel) -> HashMap<String, String> {
    model
        .nodes()
        .iter()
        .map(|n| (n.name.clone(), n.op.name().to_string()))
        .collect()
}

#[derive(Clone)]
enum Value {
    Act(TensorId),
    Const(Arc<Tensor>),
}

struct Translator<'a> {
    model: &'a TypedModel,
    source_name: &'a str,
    graph: Graph,
    values: HashMap<OutletId, TensorId>,
}

/// Translates the decluttered model into kiln IR (before fusion).
pub(crate) fn translate(model: &TypedModel, source_name: &str) -> Result<Graph, LowerError> {
    let mut t = Translator {
        model,
        source_name,
        graph: Graph::default(),
        values: HashMap::new(),
    };
    let order = model.eval_order().map_err(|e| tract_err(source_name, e))?;
    for id in order {
        t.node(model.node(id))?;
    }
    let outputs = model
        .output_outlets()
        .map_err(|e| tract_err(source_name, e))?;
    if outputs.len() != 1 {
        return Err(LowerError::Input {
            source_name: source_name.into(),
            message: format!(
                "the model has {} outputs; kiln lowers models with exactly one",
                outputs.len()
            ),
        });
    }
    let out = *t.values.get(&outputs[0]).ok_or_else(|| LowerError::Input {
        source_name: source_name.into(),
        message: "the model output is a constant".into(),
    })?;
    t.graph.output = out;
    Ok(t.graph)
}

fn image_format(fmt: DataFormat, shape: &[usize]) -> bool {
    (fmt == DataFormat::NCHW && shape.len() == 4 && shape[0] == 1)
        || (fmt == DataFormat::CHW && shape.len() == 3)
}

/// Same elements in the same storage order (leading unit axes aside).
fn same_storage(a: &kiln_ir::Tensor, b: &kiln_ir::Tensor) -> bool {
    let strip = |s: &[usize]| -> Vec<usize> { s.iter().copied().skip_while(|d| *d == 1).collect() };
    strip(&a.shape) == strip(&b.shape)
        && (a.is_nhwc() == b.is_nhwc() || (a.storage_is_logical() && b.storage_is_logical()))
}

fn dims(fact: &TypedFact) -> Option<Vec<usize>> {
    fact.shape.as_concrete().map(|s| s.to_vec())
}

impl Translator<'_> {
    fn unsupported(&self, node: &TypedNode, reason: impl Into<String>) -> LowerError {
        LowerError::Unsupported {
            source_name: self.source_name.into(),
            node: node.name.clone(),
            op: node.op.name().to_string(),
            reason: reason.into(),
        }
    }

    fn fact(&self, outlet: OutletId) -> Result<&TypedFact, LowerError> {
        self.model
            .outlet_fact(outlet)
            .map_err(|e| tract_err(self.source_name, e))
    }

    fn value(&self, node: &TypedNode, slot: usize) -> Result<Value, LowerError> {
        let outlet = node.inputs[slot];
        let fact = self.fact(outlet)?;
        if let Some(k) = &fact.konst {
            return Ok(Value::Const(k.clone()));
        }
        self.values
            .get(&outlet)
            .map(|t| Value::Act(*t))
            .ok_or_else(|| self.unsupported(node, "input is not computed by a supported op"))
    }

    fn act_input(&self, node: &TypedNode, slot: usize) -> Result<TensorId, LowerError> {
        match self.value(node, slot)? {
            Value::Act(t) => Ok(t),
            Value::Const(_) => Err(self.unsupported(
                node,
                format!("input {slot} is a constant where kiln expects a tensor"),
            )),
        }
    }

    fn const_f32(&self, node: &TypedNode, t: &Tensor) -> Result<Vec<f32>, LowerError> {
        let c = t
            .cast_to::<f32>()
            .map_err(|e| self.unsupported(node, format!("constant is not numeric: {e}")))?;
        let view = c
            .to_plain_array_view::<f32>()
            .map_err(|e| self.unsupported(node, e.to_string()))?;
        Ok(view.iter().copied().collect())
    }

    fn output_shape(&self, node: &TypedNode) -> Result<Vec<usize>, LowerError> {
        let fact = self.fact(OutletId::new(node.id, 0))?;
        if fact.datum_type != f32::datum_type() {
            return Err(self.unsupported(
                node,
                format!("output type {:?}; kiln computes f32 only", fact.datum_type),
            ));
        }
        dims(fact).ok_or_else(|| self.unsupported(node, "output shape is not static"))
    }

    fn emit(
        &mut self,
        node: &TypedNode,
        kind: OpKind,
        inputs: Vec<TensorId>,
    ) -> Result<TensorId, LowerError> {
        let shape = self.output_shape(node)?;
        let out = self.graph.add_tensor(node.name.clone(), shape);
        self.graph.ops.push(kiln_ir::Op {
            node: node.name.clone(),
            kind,
            inputs,
            output: out,
        });
        self.values.insert(OutletId::new(node.id, 0), out);
        Ok(out)
    }

    fn node(&mut self, node: &TypedNode) -> Result<(), LowerError> {
        // Constant-valued outlets are read from their facts where used.
        if node.outputs.iter().all(|o| o.fact.konst.is_some()) || node.op_is::<Const>() {
            return Ok(());
        }
        let op = &node.op;
        if op.is::<TypedSource>() {
            let out = self.emit(node, OpKind::Input, vec![])?;
            self.graph.input = out;
        } else if let Some(conv) = op.downcast_ref::<TractConv>() {
            self.conv(node, conv)?;
        } else if let Some(e) = op.downcast_ref::<EinSum>() {
            self.einsum(node, e)?;
        } else if let Some(b) = op.downcast_ref::<TypedBinOp>() {
            self.binary(node, b)?;
        } else if let Some(e) = op.downcast_ref::<ElementWiseOp>() {
            let act = match e.0.name().as_ref() {
                "Sigmoid" => Activation::Sigmoid,
                "HardSwish" => Activation::HardSwish,
                other => return Err(self.unsupported(node, format!("element-wise {other}"))),
            };
            let x = self.act_input(node, 0)?;
            self.emit(node, OpKind::Activation(act), vec![x])?;
        } else if let Some(r) = op.downcast_ref::<Reduce>() {
            let x = self.act_input(node, 0)?;
            let mut axes = r.axes.to_vec();
            axes.sort_unstable();
            let rank = self.graph.tensors[x].shape.len();
            if !self.graph.tensors[x].is_nhwc() || axes != [rank - 2, rank - 1] {
                return Err(self.unsupported(
                    node,
                    format!("reduction over axes {axes:?}; kiln reduces H and W of images only"),
                ));
            }
            let kind = match r.reducer {
                Reducer::Sum => OpKind::GlobalSumPool { scale: 1.0 },
                Reducer::Max => OpKind::GlobalMaxPool,
                other => return Err(self.unsupported(node, format!("reducer {other:?}"))),
            };
            self.emit(node, kind, vec![x])?;
        } else if let Some(p) = op.downcast_ref::<MaxPool>() {
            if p.with_index_outputs.is_some() {
                return Err(self.unsupported(node, "MaxPool with index output"));
            }
            let pool = self.pool(node, &p.pool_spec, false)?;
            let x = self.act_input(node, 0)?;
            self.emit(node, OpKind::MaxPool(pool), vec![x])?;
        } else if let Some(p) = op.downcast_ref::<SumPool>() {
            if !p.normalize {
                return Err(self.unsupported(node, "un-normalised sum pool"));
            }
            let pool = self.pool(node, &p.pool_spec, p.count_include_pad)?;
            let x = self.act_input(node, 0)?;
            self.emit(node, OpKind::AvgPool(pool), vec![x])?;
        } else if let Some(a) = op.downcast_ref::<AxisOp>() {
            let x = self.act_input(node, 0)?;
            let kind = match a {
                AxisOp::Move(from, to) => {
                    let rank = self.graph.tensors[x].shape.len();
                    let mut perm: Vec<usize> = (0..rank).collect();
                    let moved = perm.remove(*from);
                    perm.insert(*to, moved);
                    OpKind::Transpose { perm }
                }
                _ => OpKind::Reshape,
            };
            self.emit(node, kind, vec![x])?;
        } else if op.is::<Identity>()
            || op
                .downcast_ref::<Cast>()
                .is_some_and(|c| c.to == f32::datum_type())
        {
            let x = self.act_input(node, 0)?;
            self.emit(node, OpKind::Reshape, vec![x])?;
        } else if let Some(c) = op.downcast_ref::<TypedConcat>() {
            let inputs = (0..node.inputs.len())
                .map(|i| self.act_input(node, i))
                .collect::<Result<Vec<_>, _>>()?;
            self.emit(node, OpKind::Concat { axis: c.axis }, inputs)?;
        } else if let Some(s) = op.downcast_ref::<Softmax>() {
            let x = self.act_input(node, 0)?;
            let rank = self.graph.tensors[x].shape.len();
            let xt = &self.graph.tensors[x];
            let ok_axis = match xt.channel_axis() {
                Some(c) => s.axes[..] == [c],
                None => rank >= 1 && s.axes[..] == [rank - 1],
            };
            if s.kind != SoftmaxKind::Softmax || !ok_axis {
                return Err(self.unsupported(
                    node,
                    format!(
                        "{:?} over axes {:?} of a rank-{rank} tensor",
                        s.kind, s.axes
                    ),
                ));
            }
            self.emit(node, OpKind::Softmax, vec![x])?;
        } else if let Some(d) = op.downcast_ref::<Downsample>() {
            let x = self.act_input(node, 0)?;
            let rank = self.graph.tensors[x].shape.len();
            if !self.graph.tensors[x].is_nhwc()
                || !(rank - 2..rank).contains(&d.axis)
                || d.modulo != 0
                || d.stride <= 0
            {
                return Err(self.unsupported(
                    node,
                    format!(
                        "downsample on axis {} stride {} modulo {}",
                        d.axis, d.stride, d.modulo
                    ),
                ));
            }
            let mut stride = [1, 1];
            stride[d.axis + 2 - rank] = d.stride as usize;
            self.emit(node, OpKind::Downsample { stride }, vec![x])?;
        } else {
            return Err(self.unsupported(node, "no kiln kernel for this operation"));
        }
        Ok(())
    }

    fn pool(
        &self,
        node: &TypedNode,
        spec: &PoolSpec,
        count_include_pad: bool,
    ) -> Result<Pool, LowerError> {
        let x = self.fact(node.inputs[0])?;
        let shape = dims(x).ok_or_else(|| self.unsupported(node, "input shape is not static"))?;
        if !image_format(spec.data_format, &shape) || spec.kernel_shape.len() != 2 {
            return Err(self.unsupported(node, "only 2-D pooling over NCHW images"));
        }
        let padded = spec.computed_padding(&shape[shape.len() - 2..]);
        let strides = spec.strides();
        let dil = spec.dilations();
        Ok(Pool {
            kernel: [spec.kernel_shape[0], spec.kernel_shape[1]],
            stride: [strides[0], strides[1]],
            dilation: [dil[0], dil[1]],
            pads: [
                padded[0].pad_before,
                padded[1].pad_before,
                padded[0].pad_after,
                padded[1].pad_after,
            ],
            count_include_pad,
        })
    }

    fn conv(&mut self, node: &TypedNode, conv: &TractConv) -> Result<(), LowerError> {
        if conv.q_params.is_some() {
            return Err(self.unsupported(node, "quantized convolution"));
        }
        let spec = &conv.pool_spec;
        let x = self.act_input(node, 0)?;
        let shape = self.graph.tensors[x].shape.clone();
        if !image_format(spec.data_format, &shape) || spec.kernel_shape.len() != 2 {
            return Err(self.unsupported(node, "only 2-D convolution over NCHW images"));
        }
        let Value::Const(kernel) = self.value(node, 1)? else {
            return Err(self.unsupported(node, "weights are computed at run time"));
        };
        let (ci, co, g) = (spec.input_channels, spec.output_channels, conv.group);
        let (kh, kw) = (spec.kernel_shape[0], spec.kernel_shape[1]);
        let raw = self.const_f32(node, &kernel)?;
        let expected = co * (ci / g.max(1)) * kh * kw;
        if g == 0 || ci % g != 0 || co % g != 0 || raw.len() != expected {
            return Err(self.unsupported(
                node,
                format!(
                    "inconsistent weights: {} values for {co}x{ci}/{g}x{kh}x{kw}",
                    raw.len()
                ),
            ));
        }
        let oihw = match conv.kernel_fmt {
            KernelFormat::OIHW => raw,
            fmt => {
                // bring HWIO / OHWI into OIHW
                let cig = ci / g;
                let mut out = vec![0.0; raw.len()];
                for o in 0..co {
                    for i in 0..cig {
                        for y in 0..kh {
                            for xk in 0..kw {
                                let src = match fmt {
                                    KernelFormat::HWIO => ((y * kw + xk) * cig + i) * co + o,
                                    _ => ((o * kh + y) * kw + xk) * cig + i,
                                };
                                out[((o * cig + i) * kh + y) * kw + xk] = raw[src];
                            }
                        }
                    }
                }
                out
            }
        };
        let bias = match node
            .inputs
            .get(2)
            .map(|_| self.value(node, 2))
            .transpose()?
        {
            None => None,
            Some(Value::Act(_)) => {
                return Err(self.unsupported(node, "bias is computed at run time"));
            }
            Some(Value::Const(b)) => {
                let b = self.const_f32(node, &b)?;
                if b.iter().all(|v| *v == 0.0) {
                    None
                } else if b.len() == 1 {
                    Some(vec![b[0]; co])
                } else if b.len() == co {
                    Some(b)
                } else {
                    return Err(self.unsupported(
                        node,
                        format!("bias has {} values for {co} channels", b.len()),
                    ));
                }
            }
        };
        let padded = spec.computed_padding(&shape[shape.len() - 2..]);
        let strides = spec.strides();
        let dil = spec.dilations();
        let weight = self.graph.add_constant(
            format!("{}.weight", node.name),
            vec![co, ci / g, kh, kw],
            oihw,
        );
        let bias = bias.map(|b| {
            self.graph
                .add_constant(format!("{}.bias", node.name), vec![co], b)
        });
        let ir = Conv {
            kernel: [kh, kw],
            stride: [strides[0], strides[1]],
            dilation: [dil[0], dil[1]],
            pads: [
                padded[0].pad_before,
                padded[1].pad_before,
                padded[0].pad_after,
                padded[1].pad_after,
            ],
            groups: g,
            in_channels: ci,
            out_channels: co,
            weight,
            bias,
            act: Activation::None,
        };
        self.emit(node, OpKind::Conv(ir), vec![x])?;
        Ok(())
    }

    /// EinSum with one constant operand: a 1x1 convolution (contracting the
    /// channel axis of an image) or a dense layer (contracting the last axis of
    /// `[1, K]`).
    fn einsum(&mut self, node: &TypedNode, e: &EinSum) -> Result<(), LowerError> {
        if e.q_params.is_some() || node.inputs.len() != 2 {
            return Err(self.unsupported(node, "quantized or multi-operand einsum"));
        }
        let (xs, ws, w) = match (self.value(node, 0)?, self.value(node, 1)?) {
            (Value::Act(_), Value::Const(w)) => (0, 1, w),
            (Value::Const(w), Value::Act(_)) => (1, 0, w),
            _ => return Err(self.unsupported(node, "matrix product of two run-time tensors")),
        };
        let x = self.act_input(node, xs)?;
        let x_shape = self.graph.tensors[x].shape.clone();
        let out_shape = self.output_shape(node)?;
        let w_shape = w.shape().to_vec();
        let (mut k_axis, mut n_axis) = (None, None);
        let mut passthrough = Vec::new();
        for axis in e.axes.iter_all_axes() {
            let (ix, iw, o) = (&axis.inputs[xs], &axis.inputs[ws], &axis.outputs[0]);
            match (ix.len(), iw.len(), o.len()) {
                (1, 1, 0) if k_axis.is_none() => k_axis = Some((ix[0], iw[0])),
                (0, 1, 1) if n_axis.is_none() => n_axis = Some((iw[0], o[0])),
                (1, 0, 1) => passthrough.push((ix[0], o[0])),
                // axes of extent 1 that only one side carries
                (1, 0, 0) if x_shape[ix[0]] == 1 => {}
                (0, 1, 0) if w_shape[iw[0]] == 1 => {}
                (0, 0, 1) if out_shape[o[0]] == 1 => {}
                _ => {
                    return Err(self.unsupported(
                        node,
                        format!("einsum {} is not a matrix-vector form kiln knows", e.axes),
                    ));
                }
            }
        }
        let (Some((kx, kw)), Some((nw, no))) = (k_axis, n_axis) else {
            return Err(self.unsupported(
                node,
                format!("einsum {} has no contracted/output axis pair", e.axes),
            ));
        };
        passthrough.sort_unstable();
        if passthrough.windows(2).any(|p| p[0].1 > p[1].1) {
            return Err(self.unsupported(node, format!("einsum {} moves axes", e.axes)));
        }
        let (k, n) = (w_shape[kw], w_shape[nw]);
        // weight as [n][k] from whatever layout w has
        let data = self.const_f32(node, &w)?;
        let mut strides = vec![1usize; w_shape.len()];
        for i in (0..w_shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * w_shape[i + 1];
        }
        let mut nk = vec![0.0; n * k];
        for r in 0..n {
            for c in 0..k {
                nk[r * k + c] = data[r * strides[nw] + c * strides[kw]];
            }
        }
        let xt = self.graph.tensors[x].clone();
        let ot = kiln_ir::Tensor {
            name: String::new(),
            shape: out_shape.clone(),
        };
        let pointwise = match (xt.hwc(), ot.hwc()) {
            (Some((h, w, _)), Some((oh, ow, _))) => {
                (h, w) == (oh, ow) && xt.channel_axis() == Some(kx) && ot.channel_axis() == Some(no)
            }
            _ => false,
        };
        let dense = xt.len() == k && ot.len() == n;
        let kind = match () {
            _ if pointwise => {
                let weight =
                    self.graph
                        .add_constant(format!("{}.weight", node.name), vec![n, k, 1, 1], nk);
                OpKind::Conv(Conv {
                    kernel: [1, 1],
                    stride: [1, 1],
                    dilation: [1, 1],
                    pads: [0; 4],
                    groups: 1,
                    in_channels: k,
                    out_channels: n,
                    weight,
                    bias: None,
                    act: Activation::None,
                })
            }
            _ if dense => {
                let weight =
                    self.graph
                        .add_constant(format!("{}.weight", node.name), vec![n, k], nk);
                OpKind::Dense {
                    weight,
                    bias: None,
                    act: Activation::None,
                }
            }
            _ => {
                return Err(self.unsupported(
                    node,
                    format!("einsum {} over a rank-{} tensor", e.axes, x_shape.len()),
                ));
            }
        };
        self.emit(node, kind, vec![x])?;
        Ok(())
    }

    fn binary(&mut self, node: &TypedNode, b: &TypedBinOp) -> Result<(), LowerError> {
        let op = match b.0.name() {
            "Add" => BinaryOp::Add,
            "Sub" => BinaryOp::Sub,
            "Mul" => BinaryOp::Mul,
            "Div" => BinaryOp::Div,
            "Max" => BinaryOp::Max,
            "Min" => BinaryOp::Min,
            other => return Err(self.unsupported(node, format!("binary {other}"))),
        };
        let out_shape = self.output_shape(node)?;
        let (a, c) = (self.value(node, 0)?, self.value(node, 1)?);
        let out_t = kiln_ir::Tensor {
            name: String::new(),
            shape: out_shape.clone(),
        };
        // one value per channel of the output: [1, C, 1, 1] / [C, 1, 1] for
        // images, [1, C] / [C] for vectors
        let per_channel = |s: &[usize]| -> bool {
            let n: usize = s.iter().product();
            let c = match out_t.hwc() {
                Some((_, _, c)) => c,
                None if out_t.len() == *out_shape.last().unwrap_or(&0) => out_t.len(),
                None => return false,
            };
            if n != c || n == 1 {
                return false;
            }
            // the non-unit axis must line up with the channel axis
            let chan = out_t
                .channel_axis()
                .unwrap_or(out_shape.len().saturating_sub(1));
            let offset = out_shape.len() as isize - s.len() as isize;
            s.iter()
                .enumerate()
                .all(|(i, d)| *d == 1 || i as isize + offset == chan as isize)
        };
        let (data, rhs, data_is_lhs) = match (a, c) {
            (Value::Act(x), Value::Act(y)) => {
                let (tx, ty) = (self.graph.tensors[x].clone(), self.graph.tensors[y].clone());
                if same_storage(&tx, &out_t) && same_storage(&ty, &out_t) {
                    (x, Operand::Tensor(y), true)
                } else if same_storage(&tx, &out_t) && per_channel(&ty.shape) {
                    (x, Operand::ChannelTensor(y), true)
                } else if same_storage(&ty, &out_t) && per_channel(&tx.shape) {
                    (y, Operand::ChannelTensor(x), false)
                } else {
                    return Err(self.unsupported(
                        node,
                        format!("broadcast of {:?} with {:?}", tx.shape, ty.shape),
                    ));
                }
            }
            (Value::Act(x), Value::Const(k)) | (Value::Const(k), Value::Act(x)) => {
                let data_is_lhs = matches!(self.value(node, 0)?, Value::Act(_));
                let tx = self.graph.tensors[x].clone();
                if !same_storage(&tx, &out_t) {
                    return Err(self.unsupported(
                        node,
                        format!("tensor {:?} broadcast up to {out_shape:?}", tx.shape),
                    ));
                }
                let vals = self.const_f32(node, &k)?;
                let ks = k.shape().to_vec();
                let rhs = if vals.len() == 1 {
                    Operand::Scalar(vals[0])
                } else if per_channel(&ks) {
                    Operand::ChannelConst(self.graph.add_constant(
                        format!("{}.operand", node.name),
                        vec![vals.len()],
                        vals,
                    ))
                } else if same_storage(
                    &kiln_ir::Tensor {
                        name: String::new(),
                        shape: ks.clone(),
                    },
                    &out_t,
                ) {
                    Operand::Const(self.graph.add_constant(
                        format!("{}.operand", node.name),
                        out_shape.clone(),
                        vals,
                    ))
                } else {
                    return Err(self.unsupported(
                        node,
                        format!("constant {ks:?} broadcast against {:?}", tx.shape),
                    ));
                };
                (x, rhs, data_is_lhs)
            }
            _ => return Err(self.unsupported(node, "both operands constant")),
        };
        self.emit(
            node,
            OpKind::Binary {
                op,
                rhs,
                data_is_lhs,
            },
            vec![data],
        )?;
        Ok(())
    }
}

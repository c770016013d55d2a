//! QDQ graphs (ONNX QuantizeLinear/DequantizeLinear around float ops, as
//! onnxruntime's `quantize_static` and kiln's quantizer write them) -> int8
//! IR ops.
//!
//! These models are read from the ONNX protobuf directly, not through tract's
//! decluttered graph: tract folds a DequantizeLinear of a constant weight
//! into f32 (the per-channel scales are gone), rewrites a DequantizeLinear ->
//! element-wise -> QuantizeLinear chain into an opaque lookup table, and its
//! QuantizeLinear multiplies by `1 / scale` where ONNX divides (so a tie may
//! round the other way). The QDQ subset is small and its semantics are
//! ONNX's own, so it is translated here node by node in the file's
//! (topological) order.
//!
//! A float op whose inputs are dequantized and whose one consumer is a
//! QuantizeLinear (through at most one ReLU/Clip, folded into the output
//! range) becomes an int8 op ([`kiln_ir::QOp`]). Any other op stays f32: its
//! quantized inputs get an explicit Dequantize, a later QuantizeLinear an
//! explicit Quantize, and [`QdqReport::float_ops`] names it. uint8 tensors
//! are lowered as int8 with the zero point moved by -128 (the same real
//! values, the same integer arithmetic).

mod float;
mod layers;
mod params;
mod qop;
mod quant;

use std::collections::{HashMap, HashSet};

use kiln_ir::{Graph, OpKind, QOp, QParams, TensorId};
use tract_onnx::pb::{self, NodeProto};
use tract_onnx::prelude::*;

use crate::{LowerError, LowerOptions};

pub(crate) use params::QConst;

/// What the QDQ lowering did beyond the int8 ops: the float ops it kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QdqReport {
    /// `node (op)` of each op kept in f32 between quantized tensors.
    pub float_ops: Vec<String>,
    /// Number of int8 ops (Quantize and Dequantize included).
    pub int8_ops: usize,
}

/// True when the model has any QuantizeLinear or DequantizeLinear node.
pub(crate) fn is_qdq(model: &pb::ModelProto) -> bool {
    model.graph.as_ref().is_some_and(|g| {
        g.node.iter().any(|n| {
            n.op_type == "QuantizeLinear"
                || n.op_type == "DequantizeLinear"
                || qop::QOPERATORS.contains(&n.op_type.as_str())
        })
    })
}

/// A value of the ONNX graph as the translation sees it.
#[derive(Clone, Debug)]
enum Val {
    /// An f32 tensor of the IR.
    F32(TensorId),
    /// An i8 tensor of the IR with its quantization.
    I8(TensorId, QParams),
    /// DequantizeLinear of an i8 tensor (materialised as f32 on demand).
    Deq(TensorId, QParams),
    /// A constant (initializer, Constant node, or DequantizeLinear of one).
    Const(QConst),
}

pub(crate) struct Qdq<'a> {
    source_name: &'a str,
    nodes: &'a [NodeProto],
    graph: Graph,
    vals: HashMap<String, Val>,
    /// Node indices reading each value (graph outputs read once more).
    consumers: HashMap<String, Vec<usize>>,
    /// Nodes already handled as part of an earlier node's pattern.
    done: HashSet<usize>,
    /// Dequantized f32 copies of i8 tensors, made once.
    deq_cache: HashMap<TensorId, TensorId>,
    report: QdqReport,
}

/// Lowers a QDQ model (see the module docs) into a [`Graph`] with int8 ops.
pub(crate) fn lower(
    model: &pb::ModelProto,
    source_name: &str,
    options: &LowerOptions,
) -> Result<(Graph, QdqReport), LowerError> {
    let g = model.graph.as_ref().ok_or_else(|| LowerError::Parse {
        source_name: source_name.into(),
        message: "the model has no graph".into(),
    })?;
    let mut t = Qdq {
        source_name,
        nodes: &g.node,
        graph: Graph::default(),
        vals: HashMap::new(),
        consumers: HashMap::new(),
        done: HashSet::new(),
        deq_cache: HashMap::new(),
        report: QdqReport::default(),
    };
    for init in &g.initializer {
        let c = params::load_const(init)
            .map_err(|m| t.input_err(&format!("initializer '{}': {m}", init.name)))?;
        t.vals.insert(init.name.clone(), Val::Const(c));
    }
    for (i, n) in g.node.iter().enumerate() {
        for input in n.input.iter().filter(|s| !s.is_empty()) {
            t.consumers.entry(input.clone()).or_default().push(i);
        }
    }
    for o in &g.output {
        t.consumers
            .entry(o.name.clone())
            .or_default()
            .push(usize::MAX);
    }
    t.input(g, options)?;
    for i in 0..g.node.len() {
        if !t.done.contains(&i) {
            t.node(i)?;
        }
    }
    if g.output.len() != 1 {
        return Err(t.input_err(&format!(
            "the model has {} outputs; kiln lowers models with exactly one",
            g.output.len()
        )));
    }
    let out = g.output[0].name.clone();
    let out = match t.vals.get(&out).cloned() {
        Some(Val::F32(x)) => x,
        Some(Val::Deq(x, p)) | Some(Val::I8(x, p)) => t.dequantized(x, p, &out),
        _ => return Err(t.input_err("the model output is a constant or not computed")),
    };
    t.graph.output = out;
    Ok((t.graph, t.report))
}

impl Qdq<'_> {
    fn input_err(&self, message: &str) -> LowerError {
        LowerError::Input {
            source_name: self.source_name.into(),
            message: message.into(),
        }
    }

    /// A bad quantization parameter or pattern at node `i`.
    fn qerr(&self, i: usize, message: impl Into<String>) -> LowerError {
        let n = &self.nodes[i];
        LowerError::Quantization {
            source_name: self.source_name.into(),
            node: node_name(n, i),
            op: n.op_type.clone(),
            message: message.into(),
        }
    }

    fn unsupported(&self, i: usize, reason: impl Into<String>) -> LowerError {
        let n = &self.nodes[i];
        LowerError::Unsupported {
            source_name: self.source_name.into(),
            node: node_name(n, i),
            op: n.op_type.clone(),
            reason: reason.into(),
        }
    }

    /// The graph input (one, not an initializer): `Input` op, f32.
    fn input(&mut self, g: &pb::GraphProto, options: &LowerOptions) -> Result<(), LowerError> {
        let inits: HashSet<&str> = g.initializer.iter().map(|i| i.name.as_str()).collect();
        let inputs: Vec<&pb::ValueInfoProto> = g
            .input
            .iter()
            .filter(|i| !inits.contains(i.name.as_str()))
            .collect();
        let [input] = inputs[..] else {
            return Err(self.input_err(&format!(
                "the model has {} inputs; kiln lowers models with exactly one",
                inputs.len()
            )));
        };
        let declared = params::declared_shape(input);
        let shape = match (&options.input_shape, declared) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) => s,
            (None, None) => {
                return Err(self.input_err(&format!(
                    "input '{}' has symbolic dimensions other than the batch; give the input shape explicitly",
                    input.name
                )));
            }
        };
        if shape.len() == 4 && shape[0] != 1 {
            return Err(self.input_err(&format!(
                "input '{}' has batch size {} ({shape:?}); kiln compiles quantized (QDQ) models \
                 for batch 1 only: export or quantize the model with batch 1",
                input.name, shape[0]
            )));
        }
        let x = self.graph.add_tensor(input.name.clone(), shape);
        self.graph.ops.push(kiln_ir::Op {
            node: input.name.clone(),
            kind: OpKind::Input,
            inputs: vec![],
            output: x,
        });
        self.graph.input = x;
        self.vals.insert(input.name.clone(), Val::F32(x));
        Ok(())
    }

    /// Translates node `i`.
    fn node(&mut self, i: usize) -> Result<(), LowerError> {
        let n = &self.nodes[i];
        match n.op_type.as_str() {
            "QuantizeLinear" => self.quantize_linear(i),
            "DequantizeLinear" => self.dequantize_linear(i),
            "Constant" => {
                let c = params::constant_node(n).map_err(|m| self.qerr(i, m))?;
                self.vals.insert(n.output[0].clone(), Val::Const(c));
                Ok(())
            }
            "Identity" => {
                let v = self.val(i, 0)?;
                self.vals.insert(n.output[0].clone(), v);
                Ok(())
            }
            _ => {
                if !self.qoperator(i)? && !self.try_int8(i)? {
                    self.float_op(i)?;
                }
                Ok(())
            }
        }
    }

    /// The value of input `slot` of node `i`.
    fn val(&self, i: usize, slot: usize) -> Result<Val, LowerError> {
        let n = &self.nodes[i];
        let name = n
            .input
            .get(slot)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.unsupported(i, format!("input {slot} is missing")))?;
        self.vals.get(name).cloned().ok_or_else(|| {
            self.unsupported(
                i,
                format!("input '{name}' is not computed by a supported op"),
            )
        })
    }

    /// The single consumer of `value`, if exactly one node reads it.
    fn single_consumer(&self, value: &str) -> Option<usize> {
        match self.consumers.get(value).map(|v| &v[..]) {
            Some([c]) if *c != usize::MAX => Some(*c),
            _ => None,
        }
    }

    /// An f32 view of an i8 tensor (a Dequantize op, made once per tensor).
    fn dequantized(&mut self, x: TensorId, p: QParams, name: &str) -> TensorId {
        if let Some(t) = self.deq_cache.get(&x) {
            return *t;
        }
        let shape = self.graph.tensors[x].shape.clone();
        let y = self.graph.add_tensor(format!("{name}.dequantized"), shape);
        self.graph.ops.push(kiln_ir::Op {
            node: name.to_string(),
            kind: OpKind::Int8(QOp::Dequantize(p)),
            inputs: vec![x],
            output: y,
        });
        self.report.int8_ops += 1;
        self.deq_cache.insert(x, y);
        y
    }

    /// Appends an op writing a new tensor named `name`; returns it.
    fn push(
        &mut self,
        node: &str,
        name: &str,
        kind: OpKind,
        inputs: Vec<TensorId>,
        shape: Vec<usize>,
        i8: bool,
    ) -> TensorId {
        let y = if i8 {
            self.graph.add_tensor_i8(name.to_string(), shape)
        } else {
            self.graph.add_tensor(name.to_string(), shape)
        };
        if matches!(kind, OpKind::Int8(_)) {
            self.report.int8_ops += 1;
        }
        self.graph.ops.push(kiln_ir::Op {
            node: node.to_string(),
            kind,
            inputs,
            output: y,
        });
        y
    }
}

/// The node's name, or `#index op_type` when the file leaves it empty.
fn node_name(n: &NodeProto, i: usize) -> String {
    if n.name.is_empty() {
        format!("#{i} {}", n.op_type)
    } else {
        n.name.clone()
    }
}

/// Parses ONNX bytes into the protobuf model.
pub(crate) fn parse(bytes: &[u8], source_name: &str) -> Result<pb::ModelProto, LowerError> {
    let mut r = bytes;
    tract_onnx::onnx()
        .proto_model_for_read(&mut r)
        .map_err(|e| LowerError::Parse {
            source_name: source_name.into(),
            message: format!("{e:#}"),
        })
}

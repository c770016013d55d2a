//! Where QuantizeLinear/DequantizeLinear go, and writing them.

use std::collections::{HashMap, HashSet};

use kiln_onnx::proto::{AttributeProto, ModelProto, NodeProto, TensorProto, attribute_type};

use crate::fold::{f32_tensor, floats};
use crate::{QuantError, Range};

const INT8: i32 = 3;
const INT32: i32 = 6;

/// Ops quantized (their data inputs and outputs get QDQ pairs).
const QUANTIZED: &[&str] = &[
    "Conv",
    "Gemm",
    "Add",
    "Mul",
    "GlobalAveragePool",
    "Flatten",
    "Relu",
    "Clip",
    "HardSwish",
    "HardSigmoid",
    "Sigmoid",
];

/// The activations to quantize, in graph order.
pub(crate) struct Plan {
    pub activations: Vec<String>,
}

pub(crate) struct Report {
    pub weights: usize,
    pub weight_bytes: (usize, usize),
}

fn is_init(m: &ModelProto, name: &str) -> bool {
    m.graph
        .as_ref()
        .is_some_and(|g| g.initializer.iter().any(|t| t.name == name))
}

/// Data inputs of node `n` that are quantized (not initializers).
fn data_inputs<'a>(m: &ModelProto, n: &'a NodeProto) -> Vec<&'a String> {
    let k = match n.op_type.as_str() {
        "Add" | "Mul" => 2,
        _ => 1,
    };
    n.input
        .iter()
        .take(k)
        .filter(|s| !s.is_empty() && !is_init(m, s))
        .collect()
}

/// Chooses the tensors to quantize (see the crate docs).
pub(crate) fn plan(m: &ModelProto) -> Result<Plan, QuantError> {
    let g = m
        .graph
        .as_ref()
        .ok_or_else(|| QuantError::Parse("no graph".into()))?;
    let consumers = |t: &str| {
        g.node
            .iter()
            .filter(|n| n.input.iter().any(|i| i == t))
            .collect::<Vec<_>>()
    };
    let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let quantized = |n: &NodeProto| {
        QUANTIZED.contains(&n.op_type.as_str())
            && !(matches!(n.op_type.as_str(), "Add" | "Mul") && data_inputs(m, n).len() < 2)
    };
    // a Conv/Gemm/Add output read only by a ReLU/Clip: that one's output is quantized
    let folded = |t: &str| {
        let c = consumers(t);
        let producer = g
            .node
            .iter()
            .find(|n| n.output.first().map(|s| s.as_str()) == Some(t));
        matches!(c[..], [r] if matches!(r.op_type.as_str(), "Relu" | "Clip"))
            && producer.is_some_and(|p| {
                matches!(p.op_type.as_str(), "Conv" | "Gemm" | "Add") && quantized(p)
            })
            && !outputs.contains(t)
    };
    let mut seen = HashSet::new();
    let mut acts = Vec::new();
    for n in g.node.iter().filter(|n| quantized(n)) {
        for t in data_inputs(m, n) {
            if !folded(t) && seen.insert(t.clone()) {
                acts.push(t.clone());
            }
        }
        let o = &n.output[0];
        if !folded(o) && seen.insert(o.clone()) {
            acts.push(o.clone());
        }
    }
    Ok(Plan { activations: acts })
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: v,
        r#type: attribute_type::INT,
        ..Default::default()
    }
}

fn int_tensor(name: &str, dims: &[i64], dt: i32, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: dt,
        name: name.into(),
        raw_data: raw,
    }
}

fn node(name: &str, op: &str, inputs: &[&str], output: &str, axis: Option<i64>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: name.into(),
        op_type: op.into(),
        attribute: axis.map(|a| vec![attr_int("axis", a)]).unwrap_or_default(),
    }
}

/// `(scale, zero_point)` of an activation range (widened to hold 0).
pub(crate) fn act_params(r: Range) -> (f32, i8) {
    let lo = r.min.min(0.0);
    let mut hi = r.max.max(0.0);
    if hi - lo < 1e-8 {
        hi = lo + 1e-8;
    }
    let scale = (hi - lo) / 255.0;
    let zp = (-128.0 - lo / scale).round_ties_even().clamp(-128.0, 127.0) as i8;
    (scale, zp)
}

/// A DequantizeLinear of initializers `{name}.quantized`, `.scale`,
/// `.zero_point` into `name` (per `axis` when given).
fn dequantize(name: &str, axis: Option<i64>) -> NodeProto {
    let (q, s, z) = (
        format!("{name}.quantized"),
        format!("{name}.scale"),
        format!("{name}.zero_point"),
    );
    node(
        &format!("{name}.dequantize"),
        "DequantizeLinear",
        &[&q, &s, &z],
        name,
        axis,
    )
}

/// QuantizeLinear of `src` and DequantizeLinear into `dst` with `t`'s
/// scale and zero point.
fn qdq(t: &str, src: &str, dst: &str) -> [NodeProto; 2] {
    let (q, s, z) = (
        format!("{t}.q"),
        format!("{t}.scale"),
        format!("{t}.zero_point"),
    );
    [
        node(
            &format!("{t}.quantize"),
            "QuantizeLinear",
            &[src, &s, &z],
            &q,
            None,
        ),
        node(
            &format!("{t}.dequantize"),
            "DequantizeLinear",
            &[&q, &s, &z],
            dst,
            None,
        ),
    ]
}

/// Replaces the f32 weights (and bias) of Conv / Gemm node `n`, whose input
/// has scale `sx`, by int8 per output channel (and int32) initializers and
/// returns their DequantizeLinear nodes.
fn quantize_weights(
    g: &mut kiln_onnx::proto::GraphProto,
    n: &NodeProto,
    sx: f32,
    report: &mut Report,
) -> Result<Vec<NodeProto>, QuantError> {
    let trans_b = n.attribute.iter().any(|a| a.name == "transB" && a.i != 0);
    let axis = if n.op_type == "Gemm" && !trans_b {
        1
    } else {
        0
    };
    let wi = g
        .initializer
        .iter()
        .position(|t| t.name == n.input[1])
        .ok_or_else(|| QuantError::Node {
            node: n.name.clone(),
            op: n.op_type.clone(),
            message: "weights are not an initializer".into(),
        })?;
    let wt = g.initializer.remove(wi);
    let w = floats(&wt);
    let o = wt.dims[axis] as usize;
    let at = |k: usize| if axis == 0 { k / (w.len() / o) } else { k % o };
    let mut scales = vec![0f32; o];
    for (k, v) in w.iter().enumerate() {
        scales[at(k)] = scales[at(k)].max(v.abs());
    }
    scales
        .iter_mut()
        .for_each(|s| *s = if *s > 0.0 { *s / 127.0 } else { 1.0 });
    let q: Vec<u8> = w
        .iter()
        .enumerate()
        .map(|(k, v)| (v / scales[at(k)]).round_ties_even().clamp(-127.0, 127.0) as i8 as u8)
        .collect();
    let wn = wt.name.clone();
    report.weights += 1;
    report.weight_bytes.0 += w.len() * 4;
    report.weight_bytes.1 += q.len() + o * 5;
    g.initializer
        .push(int_tensor(&format!("{wn}.quantized"), &wt.dims, INT8, q));
    g.initializer
        .push(f32_tensor(&format!("{wn}.scale"), &[o as i64], &scales));
    g.initializer.push(int_tensor(
        &format!("{wn}.zero_point"),
        &[o as i64],
        INT8,
        vec![0; o],
    ));
    let mut out = vec![dequantize(&wn, Some(axis as i64))];
    let bias = n.input.get(2).filter(|s| !s.is_empty());
    if let Some(bn) = bias
        && let Some(bi) = g.initializer.iter().position(|t| &t.name == bn)
    {
        let b = floats(&g.initializer.remove(bi));
        let bs: Vec<f32> = (0..o).map(|c| sx * scales[c]).collect();
        let qb: Vec<u8> = (0..o)
            .flat_map(|c| {
                (((b[c] as f64) / bs[c] as f64).round().clamp(-2e9, 2e9) as i32).to_le_bytes()
            })
            .collect();
        report.weight_bytes.0 += b.len() * 4;
        report.weight_bytes.1 += o * 12;
        g.initializer.push(int_tensor(
            &format!("{bn}.quantized"),
            &[o as i64],
            INT32,
            qb,
        ));
        g.initializer
            .push(f32_tensor(&format!("{bn}.scale"), &[o as i64], &bs));
        g.initializer.push(int_tensor(
            &format!("{bn}.zero_point"),
            &[o as i64],
            INT32,
            vec![0; o * 4],
        ));
        out.push(dequantize(bn, Some(0)));
    }
    Ok(out)
}

/// Writes the QDQ pairs and quantized weights into `m`.
pub(crate) fn insert(
    m: &mut ModelProto,
    plan: &Plan,
    ranges: &HashMap<String, Range>,
) -> Result<Report, QuantError> {
    let g = m
        .graph
        .as_mut()
        .ok_or_else(|| QuantError::Parse("no graph".into()))?;
    let input = g.input.first().map(|i| i.name.clone()).unwrap_or_default();
    let mut params: HashMap<String, (f32, i8)> = HashMap::new();
    for t in &plan.activations {
        let r = ranges
            .get(t)
            .copied()
            .ok_or_else(|| QuantError::Calibrate(format!("no range recorded for '{t}'")))?;
        let (s, z) = act_params(r);
        params.insert(t.clone(), (s, z));
        g.initializer
            .push(f32_tensor(&format!("{t}.scale"), &[], &[s]));
        g.initializer.push(int_tensor(
            &format!("{t}.zero_point"),
            &[],
            INT8,
            vec![z as u8],
        ));
    }
    let mut report = Report {
        weights: 0,
        weight_bytes: (0, 0),
    };
    // weights and biases of Conv / Gemm whose input is quantized go first
    let mut out_nodes = Vec::new();
    for n in g.node.clone() {
        let sx = n.input.first().and_then(|x| params.get(x));
        if let (true, Some((sx, _))) = (matches!(n.op_type.as_str(), "Conv" | "Gemm"), sx) {
            out_nodes.extend(quantize_weights(g, &n, *sx, &mut report)?);
        }
    }
    // activations: the producer writes `t.float`, Q/DQ give `t` back
    if params.contains_key(&input) {
        let dq = format!("{input}.dequantized");
        out_nodes.extend(qdq(&input, &input, &dq));
        for n in g.node.iter_mut() {
            n.input
                .iter_mut()
                .filter(|i| **i == input)
                .for_each(|i| *i = dq.clone());
        }
    }
    for mut n in std::mem::take(&mut g.node) {
        let mut after = Vec::new();
        for o in n.output.iter_mut() {
            if params.contains_key(o.as_str()) {
                let t = o.clone();
                *o = format!("{t}.float");
                after.extend(qdq(&t, &format!("{t}.float"), &t));
            }
        }
        out_nodes.push(n);
        out_nodes.extend(after);
    }
    g.node = out_nodes;
    Ok(report)
}

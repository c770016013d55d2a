//! What a user of the lowering checks: ONNX models built with
//! `kiln_onnx::GraphBuilder`, lowered, and the IR asserted op by op (kinds,
//! shapes, attributes, constant layout). `translated` stops before fusion, so
//! the translation itself is seen; `lowered` is the public result.

use kiln_ir::{Activation, BinaryOp, Constant, Conv, Graph, OpKind, Operand, Pool};
use kiln_onnx::{Attribute, Dim, GraphBuilder};

use crate::{LowerError, LowerOptions};

mod errors;
mod layers;
mod operands;
mod resize;
mod spatial;
mod unary;

/// A model with input `x` of `shape`; `body` adds nodes ending in output `y`.
fn model(shape: &[usize], body: impl FnOnce(&mut GraphBuilder)) -> Vec<u8> {
    let mut g = GraphBuilder::new("t");
    let dims: Vec<Dim> = shape.iter().map(|d| Dim::Fixed(*d)).collect();
    g.input("x", &dims);
    body(&mut g);
    g.output("y", None);
    g.encode()
}

/// The IR straight out of translation (no fusion).
fn translated(onnx: &[u8]) -> Result<Graph, LowerError> {
    let typed = super::load_decluttered(onnx, "test.onnx", &LowerOptions::default())?;
    let proto = crate::qdq::parse(onnx, "test.onnx")?;
    super::translate(&typed, "test.onnx", &super::OnnxNodes::new(&proto))
}

/// The public result: translation then fusion.
fn lowered(onnx: &[u8]) -> Graph {
    crate::lower_bytes(onnx, "test.onnx", &LowerOptions::default())
        .unwrap_or_else(|e| panic!("lowering failed: {e}"))
}

/// Distinct values, so a transposed or shuffled constant shows.
fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32 * 0.01 - 0.5).collect()
}

fn conv_attrs(k: i64, stride: i64, pads: [i64; 4], group: i64) -> Vec<Attribute> {
    vec![
        Attribute::ints("kernel_shape", &[k, k]),
        Attribute::ints("strides", &[stride, stride]),
        Attribute::ints("pads", &pads),
        Attribute::int("group", group),
    ]
}

/// The graph is `[Input, <one op>]` reading the input; returns that op's kind.
fn single_op(g: &Graph) -> &OpKind {
    assert_eq!(g.ops.len(), 2, "expected Input + one op:\n{g}");
    assert_eq!(g.ops[0].kind, OpKind::Input);
    assert_eq!(g.ops[0].output, g.input);
    assert_eq!(g.ops[1].inputs, vec![g.input]);
    assert_eq!(g.ops[1].output, g.output);
    &g.ops[1].kind
}

fn single_conv(g: &Graph) -> &Conv {
    match single_op(g) {
        OpKind::Conv(c) => c,
        other => panic!("expected a conv, got {other:?}"),
    }
}

fn constant(g: &Graph, id: Option<usize>) -> &Constant {
    &g.constants[id.expect("constant present")]
}

fn out_shape(g: &Graph) -> &[usize] {
    &g.tensors[g.output].shape
}

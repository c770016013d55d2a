//! The table against the lowering: a small model for every entry lowers
//! (float and quantized separately), a model with an op the table does not
//! list is refused, the repository's ONNX fixtures only hold listed ops, and
//! `docs/onnx-ops.md` is the table's rendering.

use kiln_ir::{OpKind, QOp};
use kiln_onnx::{Attribute, Dim, GraphBuilder};

use super::{OPS, markdown};
use crate::{LowerError, LowerOptions};

/// A model with input `x` of `shape` at `opset`; `body` ends in output `y`.
fn model(shape: &[usize], opset: i64, body: impl FnOnce(&mut GraphBuilder)) -> Vec<u8> {
    let mut g = GraphBuilder::new("t");
    g.opset(opset);
    let dims: Vec<Dim> = shape.iter().map(|d| Dim::Fixed(*d)).collect();
    g.input("x", &dims);
    body(&mut g);
    g.output("y", None);
    g.encode()
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32 * 0.01 - 0.3).collect()
}

const IMG: [usize; 4] = [1, 4, 6, 6];

/// `x -> op -> y` over an image, with `attrs` and constant inputs `extra`
/// (each `(name, shape, data)`).
fn unary(op: &str, opset: i64, attrs: Vec<Attribute>) -> Vec<u8> {
    model(&IMG, opset, |g| {
        g.node("n", op, &["x"], &["y"], attrs);
    })
}

/// `op(x, c)` with a per-channel constant `c` `[4, 1, 1]`.
fn with_const(op: &str) -> Vec<u8> {
    model(&IMG, 17, |g| {
        g.initializer("c", &[4, 1, 1], &[0.5, 1.5, 2.0, 3.0]);
        g.node("n", op, &["x", "c"], &["y"], vec![]);
    })
}

/// `op(x, Relu(x), Neg(x))`.
fn variadic(op: &str) -> Vec<u8> {
    model(&IMG, 17, |g| {
        g.node("r", "Relu", &["x"], &["a"], vec![]);
        g.node("m", "Neg", &["x"], &["b"], vec![]);
        g.node("n", op, &["x", "a", "b"], &["y"], vec![]);
    })
}

/// PRelu written as a selection: `Where(x cmp 0, x, 0.1x)` for `cmp`
/// Greater(OrEqual), `Where(x cmp 0, 0.1x, x)` for Less(OrEqual).
fn select(cmp: &str) -> Vec<u8> {
    model(&IMG, 17, |g| {
        g.initializer("zero", &[], &[0.0])
            .initializer("a", &[], &[0.1]);
        g.node("c", cmp, &["x", "zero"], &["c"], vec![]);
        g.node("m", "Mul", &["x", "a"], &["m"], vec![]);
        let picks: [&str; 3] = if cmp.starts_with("Greater") {
            ["c", "x", "m"]
        } else {
            ["c", "m", "x"]
        };
        g.node("w", "Where", &picks, &["y"], vec![]);
    })
}

/// `x [1, 8] -> op -> y [1, 3]` with constant weights.
fn dense(op: &str) -> Vec<u8> {
    model(&[1, 8], 17, |g| {
        if op == "Gemm" {
            g.initializer("w", &[3, 8], &ramp(24));
            g.node(
                "n",
                "Gemm",
                &["x", "w"],
                &["y"],
                vec![Attribute::int("transB", 1)],
            );
        } else {
            g.initializer("w", &[8, 3], &ramp(24));
            g.node("n", "MatMul", &["x", "w"], &["y"], vec![]);
        }
    })
}

/// `x -> head -> Gemm -> y`, where `head` flattens the image into `f`.
fn flat_head(head: impl FnOnce(&mut GraphBuilder)) -> Vec<u8> {
    model(&IMG, 17, |g| {
        head(g);
        g.initializer("w", &[3, 144], &ramp(432));
        g.node(
            "fc",
            "Gemm",
            &["f", "w"],
            &["y"],
            vec![Attribute::int("transB", 1)],
        );
    })
}

fn conv3(g: &mut GraphBuilder, x: &str, y: &str) {
    g.initializer("w", &[4, 4, 3, 3], &ramp(144));
    let attrs = vec![
        Attribute::ints("kernel_shape", &[3, 3]),
        Attribute::ints("pads", &[1, 1, 1, 1]),
    ];
    g.node("conv", "Conv", &[x, "w"], &[y], attrs);
}

/// A float model built around `op`, for every op with a float entry.
fn float_example(op: &str) -> Option<Vec<u8>> {
    let f = |n: &str, v: f32| Attribute::float(n, v);
    let ints = |n: &str, v: &[i64]| Attribute::ints(n, v);
    Some(match op {
        "Relu" | "Sigmoid" | "Tanh" | "Abs" | "Neg" | "Exp" | "Log" | "Sqrt" | "Reciprocal"
        | "Erf" | "Softplus" | "Softsign" | "HardSwish" | "Identity" | "GlobalAveragePool"
        | "GlobalMaxPool" | "Dropout" => unary(op, 17, vec![]),
        "LeakyRelu" | "Elu" => unary(op, 17, vec![f("alpha", 0.2)]),
        "Selu" => unary(op, 17, vec![f("alpha", 1.5), f("gamma", 1.1)]),
        "HardSigmoid" => unary(op, 17, vec![f("alpha", 0.25), f("beta", 0.4)]),
        "Mish" => unary(op, 18, vec![]),
        "Gelu" => unary(op, 20, vec![Attribute::string("approximate", "tanh")]),
        "LRN" => unary(op, 17, vec![Attribute::int("size", 3)]),
        "LogSoftmax" | "Celu" => unary(op, 17, vec![]),
        "DepthToSpace" | "SpaceToDepth" => unary(op, 17, vec![Attribute::int("blocksize", 2)]),
        "ReduceL1" | "ReduceL2" | "ReduceSumSquare" | "ReduceLogSumExp" => {
            unary(op, 17, vec![ints("axes", &[2, 3])])
        }
        "Where" => select("Greater"),
        "Greater" | "Less" | "GreaterOrEqual" | "LessOrEqual" => select(op),
        "Softmax" => unary(op, 17, vec![Attribute::int("axis", 1)]),
        "MaxPool" | "AveragePool" => unary(
            op,
            17,
            vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
        ),
        "ReduceMean" | "ReduceMax" => unary(
            op,
            17,
            vec![ints("axes", &[2, 3]), Attribute::int("keepdims", 0)],
        ),
        "ReduceSum" => model(&IMG, 17, |g| {
            g.initializer_i64("axes", &[2], &[2, 3]);
            g.node("n", op, &["x", "axes"], &["y"], vec![]);
        }),
        "Add" | "Sub" | "Mul" | "Div" | "PRelu" => with_const(op),
        "Max" | "Min" | "Sum" | "Mean" => variadic(op),
        "Gemm" | "MatMul" => dense(op),
        "Clip" => model(&IMG, 17, |g| {
            g.initializer("lo", &[], &[0.0])
                .initializer("hi", &[], &[6.0]);
            g.node("n", op, &["x", "lo", "hi"], &["y"], vec![]);
        }),
        "Pow" => model(&IMG, 17, |g| {
            g.initializer("e", &[], &[2.0]);
            g.node("n", op, &["x", "e"], &["y"], vec![]);
        }),
        "Conv" => model(&IMG, 17, |g| conv3(g, "x", "y")),
        "BatchNormalization" => model(&IMG, 17, |g| {
            conv3(g, "x", "c");
            for (n, v) in [("s", 1.5), ("b", 0.1), ("m", 0.2), ("v", 2.0)] {
                g.initializer(n, &[4], &[v; 4]);
            }
            g.node("n", op, &["c", "s", "b", "m", "v"], &["y"], vec![]);
        }),
        "ConvTranspose" => model(&IMG, 17, |g| {
            g.initializer("w", &[4, 2, 2, 2], &ramp(32));
            g.node("n", op, &["x", "w"], &["y"], vec![ints("strides", &[2, 2])]);
        }),
        "Resize" => model(&IMG, 17, |g| {
            g.initializer("s", &[4], &[1.0, 1.0, 2.0, 2.0]);
            g.node(
                "n",
                op,
                &["x", "", "s"],
                &["y"],
                vec![Attribute::string("mode", "linear")],
            );
        }),
        "Upsample" => model(&IMG, 9, |g| {
            g.initializer("s", &[4], &[1.0, 1.0, 2.0, 2.0]);
            g.node("n", op, &["x", "s"], &["y"], vec![]);
        }),
        "Pad" => model(&IMG, 17, |g| {
            g.initializer_i64("p", &[8], &[0, 0, 1, 1, 0, 0, 1, 1]);
            g.node(
                "n",
                op,
                &["x", "p"],
                &["y"],
                vec![Attribute::string("mode", "reflect")],
            );
        }),
        "Concat" => model(&IMG, 17, |g| {
            g.node("r", "Relu", &["x"], &["a"], vec![]);
            g.node(
                "n",
                op,
                &["x", "a"],
                &["y"],
                vec![Attribute::int("axis", 1)],
            );
        }),
        "Split" => model(&IMG, 17, |g| {
            g.node(
                "n",
                op,
                &["x"],
                &["a", "b"],
                vec![Attribute::int("axis", 1)],
            );
            g.node(
                "c",
                "Concat",
                &["b", "a"],
                &["y"],
                vec![Attribute::int("axis", 1)],
            );
        }),
        _ => return layout_example(op),
    })
}

/// [`float_example`] for the ops that move, cut or name data.
fn layout_example(op: &str) -> Option<Vec<u8>> {
    let ints = |n: &str, v: &[i64]| Attribute::ints(n, v);
    Some(match op {
        "Slice" => model(&IMG, 17, |g| {
            g.initializer_i64("st", &[1], &[1])
                .initializer_i64("en", &[1], &[3]);
            g.initializer_i64("ax", &[1], &[1]);
            g.node("n", op, &["x", "st", "en", "ax"], &["y"], vec![]);
        }),
        "Flatten" => flat_head(|g| {
            g.node("n", op, &["x"], &["f"], vec![Attribute::int("axis", 1)]);
        }),
        "Reshape" => flat_head(|g| {
            g.initializer_i64("s", &[2], &[1, -1]);
            g.node("n", op, &["x", "s"], &["f"], vec![]);
        }),
        "Shape" | "Gather" | "Cast" => flat_head(|g| {
            g.initializer_i64("i0", &[], &[0])
                .initializer_i64("a0", &[1], &[0]);
            g.initializer_i64("m1", &[1], &[-1]);
            g.node("sh", "Shape", &["x"], &["s"], vec![]);
            g.node(
                "ga",
                "Gather",
                &["s", "i0"],
                &["n"],
                vec![Attribute::int("axis", 0)],
            );
            g.node("ca", "Cast", &["n"], &["nc"], vec![Attribute::int("to", 7)]);
            g.node("un", "Unsqueeze", &["nc", "a0"], &["n1"], vec![]);
            g.node(
                "co",
                "Concat",
                &["n1", "m1"],
                &["t"],
                vec![Attribute::int("axis", 0)],
            );
            g.node("re", "Reshape", &["x", "t"], &["f"], vec![]);
        }),
        "Transpose" => model(&[1, 6, 6, 4], 17, |g| {
            g.node("n", op, &["x"], &["t"], vec![ints("perm", &[0, 3, 1, 2])]);
            conv3(g, "t", "y");
        }),
        "Squeeze" | "Unsqueeze" => model(&IMG, 17, |g| {
            g.initializer_i64("ax", &[2], &[2, 3]);
            g.node("p", "GlobalAveragePool", &["x"], &["p"], vec![]);
            g.node("s", "Squeeze", &["p", "ax"], &["q"], vec![]);
            g.node("u", "Unsqueeze", &["q", "ax"], &["y"], vec![]);
        }),
        "Constant" => model(&IMG, 17, |g| {
            let c = Attribute::tensor("value", &[4, 1, 1], &[1.0, 2.0, 3.0, 4.0]);
            g.node("k", op, &[], &["c"], vec![c]);
            g.node("n", "Add", &["x", "c"], &["y"], vec![]);
        }),
        _ => return None,
    })
}

/// Adds `x -> QuantizeLinear -> DequantizeLinear -> y` with scale `s`
/// (an initializer every quantized example declares; uint8, zero point 0).
fn qdq(g: &mut GraphBuilder, x: &str, y: &str) {
    let q = format!("{y}.q");
    g.node(
        &format!("{y}.quantize"),
        "QuantizeLinear",
        &[x, "s"],
        &[&q],
        vec![],
    );
    g.node(
        &format!("{y}.dequantize"),
        "DequantizeLinear",
        &[&q, "s"],
        &[y],
        vec![],
    );
}

/// `onnx` with an int8 scalar initializer `wz` = 0 (the weights' zero point;
/// kiln_onnx's builder writes f32 and int64 initializers only).
fn with_int8_zero(onnx: &[u8]) -> Vec<u8> {
    use prost::Message;
    use tract_onnx::pb;
    let mut m = pb::ModelProto::decode(onnx).expect("builder output decodes");
    let g = m.graph.as_mut().expect("graph");
    g.initializer.push(pb::TensorProto {
        name: "wz".into(),
        data_type: pb::tensor_proto::DataType::Int8 as i32,
        raw_data: vec![0],
        ..Default::default()
    });
    m.encode_to_vec()
}

/// A quantized model: `x` quantized to `xd`, `body` from `xd` to `r`, then
/// `r` quantized to `y`.
fn qmodel(shape: &[usize], body: impl FnOnce(&mut GraphBuilder)) -> Vec<u8> {
    with_int8_zero(&model(shape, 17, |g| {
        g.initializer("s", &[], &[0.05]);
        qdq(g, "x", "xd");
        body(g);
        qdq(g, "r", "y");
    }))
}

/// `w = DQ(Q(wf))`: float weights of `shape` folded to int8 (zero point `wz`).
fn qweights(g: &mut GraphBuilder, shape: &[usize]) {
    let n = shape.iter().product();
    g.initializer("wf", shape, &ramp(n));
    g.node("wq", "QuantizeLinear", &["wf", "s", "wz"], &["wi"], vec![]);
    g.node("wd", "DequantizeLinear", &["wi", "s", "wz"], &["w"], vec![]);
}

/// A quantized model built around `op`, for every op with a quantized entry.
fn quantized_example(op: &str) -> Option<Vec<u8>> {
    Some(match op {
        "QuantizeLinear" | "DequantizeLinear" => qmodel(&IMG, |g| {
            g.node("n", "Identity", &["xd"], &["r"], vec![]);
        }),
        "Relu" | "Sigmoid" | "Tanh" | "HardSwish" | "HardSigmoid" | "LeakyRelu"
        | "GlobalAveragePool" | "Identity" | "Flatten" => qmodel(&IMG, |g| {
            g.node("n", op, &["xd"], &["r"], vec![]);
        }),
        "Clip" => qmodel(&IMG, |g| {
            g.initializer("lo", &[], &[0.0])
                .initializer("hi", &[], &[6.0]);
            g.node("n", op, &["xd", "lo", "hi"], &["r"], vec![]);
        }),
        "Add" | "Mul" => qmodel(&IMG, |g| {
            g.node("n", op, &["xd", "xd"], &["r"], vec![]);
        }),
        "Sub" | "Div" => qmodel(&IMG, |g| {
            g.initializer("c", &[4, 1, 1], &[0.5, 1.5, 2.0, 3.0]);
            g.node("n", op, &["xd", "c"], &["r"], vec![]);
        }),
        "Reshape" => qmodel(&IMG, |g| {
            g.initializer_i64("t", &[2], &[1, -1]);
            g.node("n", op, &["xd", "t"], &["r"], vec![]);
        }),
        "Conv" => qmodel(&IMG, |g| {
            qweights(g, &[4, 4, 3, 3]);
            g.node("n", op, &["xd", "w"], &["r"], vec![]);
        }),
        "Gemm" => qmodel(&[1, 8], |g| {
            qweights(g, &[3, 8]);
            g.node(
                "n",
                op,
                &["xd", "w"],
                &["r"],
                vec![Attribute::int("transB", 1)],
            );
        }),
        "MatMul" => qmodel(&[1, 8], |g| {
            qweights(g, &[8, 3]);
            g.node("n", op, &["xd", "w"], &["r"], vec![]);
        }),
        "Constant" => model(&IMG, 17, |g| {
            let s = Attribute::tensor("value", &[], &[0.05]);
            g.node("k", op, &[], &["s"], vec![s]);
            qdq(g, "x", "y");
        }),
        _ => return qoperator_example(op),
    })
}

/// A QOperator model around `op`: `x` quantized, `op` over the integers
/// (zero points and weights are QuantizeLinear of float constants, folded
/// into integer constants), the result dequantized to `y`.
fn qoperator_example(op: &str) -> Option<Vec<u8>> {
    let body = |g: &mut GraphBuilder, inputs: &[&str]| {
        g.node("n", op, inputs, &["yq"], vec![]);
    };
    let shape: &[usize] = if matches!(op, "QLinearMatMul" | "QGemm") {
        &[1, 8]
    } else {
        &IMG
    };
    if !matches!(
        op,
        "QLinearConv"
            | "QLinearMatMul"
            | "QGemm"
            | "QLinearAdd"
            | "QLinearMul"
            | "QLinearGlobalAveragePool"
            | "QLinearSigmoid"
    ) {
        return None;
    }
    Some(with_int8_zero(&model(shape, 17, |g| {
        g.initializer("s", &[], &[0.05])
            .initializer("zf", &[], &[0.0]);
        g.node("zq", "QuantizeLinear", &["zf", "s"], &["z"], vec![]);
        g.node("xq", "QuantizeLinear", &["x", "s"], &["xi"], vec![]);
        match op {
            "QLinearConv" => {
                g.initializer("wf", &[4, 4, 3, 3], &ramp(144));
                g.node("wq", "QuantizeLinear", &["wf", "s", "wz"], &["w"], vec![]);
                body(g, &["xi", "s", "z", "w", "s", "wz", "s", "z"]);
            }
            "QLinearMatMul" | "QGemm" => {
                g.initializer("wf", &[8, 3], &ramp(24));
                g.node("wq", "QuantizeLinear", &["wf", "s", "wz"], &["w"], vec![]);
                if op == "QGemm" {
                    body(g, &["xi", "s", "z", "w", "s", "wz", "", "s", "z"]);
                } else {
                    body(g, &["xi", "s", "z", "w", "s", "wz", "s", "z"]);
                }
            }
            "QLinearAdd" | "QLinearMul" => body(g, &["xi", "s", "z", "xi", "s", "z", "s", "z"]),
            _ => body(g, &["xi", "s", "z", "s", "z"]),
        }
        g.node("yd", "DequantizeLinear", &["yq", "s", "z"], &["y"], vec![]);
    })))
}

fn lower(onnx: &[u8]) -> Result<(kiln_ir::Graph, Option<crate::QdqReport>), LowerError> {
    crate::lower_bytes_reported(onnx, "example.onnx", &LowerOptions::default())
}

/// The op types of a model's nodes.
fn op_types(onnx: &[u8]) -> Vec<String> {
    let proto = crate::qdq::parse(onnx, "example.onnx").expect("example parses");
    proto
        .graph
        .map(|g| g.node.into_iter().map(|n| n.op_type).collect())
        .unwrap_or_default()
}

#[test]
fn every_float_entry_lowers_a_model_that_uses_it() {
    let mut failed = Vec::new();
    for o in OPS {
        let example = float_example(o.op);
        assert_eq!(
            o.float.is_some(),
            example.is_some(),
            "{}: the float column and float_example disagree (add or drop the example)",
            o.op
        );
        let Some(onnx) = example else { continue };
        assert!(
            op_types(&onnx).iter().any(|t| t == o.op),
            "{}: example lacks the op",
            o.op
        );
        match lower(&onnx) {
            Ok((_, None)) => {}
            Ok((_, Some(_))) => failed.push(format!("{}: lowered as a quantized model", o.op)),
            Err(e) => failed.push(format!("{}: {e}", o.op)),
        }
    }
    assert!(
        failed.is_empty(),
        "table entries that do not lower:\n{}",
        failed.join("\n")
    );
}

#[test]
fn every_quantized_entry_lowers_a_model_that_uses_it() {
    let mut failed = Vec::new();
    for o in OPS {
        let example = quantized_example(o.op);
        assert_eq!(
            o.quantized.is_some(),
            example.is_some(),
            "{}: the quantized column and quantized_example disagree",
            o.op
        );
        let Some(onnx) = example else { continue };
        assert!(
            op_types(&onnx).iter().any(|t| t == o.op),
            "{}: example lacks the op",
            o.op
        );
        let (graph, report) = match lower(&onnx) {
            Ok(r) => r,
            Err(e) => {
                failed.push(format!("{}: {e}", o.op));
                continue;
            }
        };
        assert!(report.is_some(), "{}: not read as a quantized model", o.op);
        // An entry promising int8 arithmetic gets an integer kernel, not only
        // the quantize/dequantize around an f32 op.
        let int8_kernel = graph.ops.iter().any(|op| {
            matches!(&op.kind, OpKind::Int8(q) if !matches!(q, QOp::Quantize(_) | QOp::Dequantize(_)))
        });
        let promises = o.quantized.is_some_and(|n| {
            n.starts_with("int8") || o.op.starts_with("QLinear") || o.op == "QGemm"
        });
        if promises && !int8_kernel {
            failed.push(format!("{}: no int8 kernel in\n{graph}", o.op));
        }
    }
    assert!(
        failed.is_empty(),
        "table entries that do not lower:\n{}",
        failed.join("\n")
    );
}

#[test]
fn ops_outside_the_table_are_refused_naming_node_and_table() {
    let cos = unary("Cos", 17, vec![]);
    let msg = lower(&cos)
        .expect_err("Cos is not in the table")
        .to_string();
    assert!(
        msg.contains("node 'n' (Cos)") && msg.contains("not in kiln's op table"),
        "{msg}"
    );
    // Softmax has a float entry only: refused in a quantized model.
    let q = qmodel(&IMG, |g| {
        g.node("sm", "Softmax", &["xd"], &["r"], vec![]);
    });
    let msg = lower(&q).expect_err("no quantized Softmax").to_string();
    assert!(
        msg.contains("node 'sm' (Softmax)") && msg.contains("not in a quantized"),
        "{msg}"
    );
}

/// Shape arithmetic an exporter writes and tract folds into constants lowers although
/// the table does not list it, with a note naming it; its error returns when the
/// model does not lower.
#[test]
fn ops_tract_folds_away_need_no_table_entry() {
    // y = Relu(x) + ConstantOfShape([1, 4, 6, 6], value 0.5)
    let folded = model(&IMG, 17, |g| {
        g.initializer_i64("s", &[4], &[1, 4, 6, 6]);
        g.node(
            "fill",
            "ConstantOfShape",
            &["s"],
            &["c"],
            vec![Attribute::tensor("value", &[1], &[0.5])],
        );
        g.node("r", "Relu", &["x"], &["a"], vec![]);
        g.node("n", "Add", &["a", "c"], &["y"], vec![]);
    });
    assert!(super::find("ConstantOfShape").is_none());
    let (graph, _) = lower(&folded).expect("folded by tract");
    assert!(
        graph
            .notes
            .iter()
            .any(|n| n.contains("ConstantOfShape") && n.contains("folded")),
        "{:?}",
        graph.notes
    );
}

/// Every ONNX fixture committed in the repository (exporters' patterns,
/// onnxruntime's quantizer output) holds only ops listed for its kind.
#[test]
fn repository_fixtures_hold_only_listed_ops() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in [
        "crates/codegen/tests/fixtures",
        "crates/quant/tests/fixtures",
        "tests/fixtures",
    ] {
        collect_onnx(&root.join(dir), &mut files);
    }
    assert!(files.len() >= 10, "found only {} fixtures", files.len());
    for f in files {
        let bytes = std::fs::read(&f).expect("fixture readable");
        let proto = crate::qdq::parse(&bytes, "fixture").expect("fixture parses");
        let quantized = crate::qdq::is_qdq(&proto);
        let g = proto.graph.expect("fixture has a graph");
        if let Err(e) = super::check_listed(&g, &f.display().to_string(), quantized) {
            panic!("{e}");
        }
    }
}

fn collect_onnx(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_onnx(&p, out);
        } else if p.extension().is_some_and(|x| x == "onnx") {
            out.push(p);
        }
    }
}

#[test]
fn docs_onnx_ops_md_is_the_rendered_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/onnx-ops.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == markdown(),
        "docs/onnx-ops.md differs from kiln_lower::ops::markdown(); regenerate it with \
         `cargo xtask onnx-ops > docs/onnx-ops.md`"
    );
}

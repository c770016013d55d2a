//! Patterns from models people export (issue 19, "bring your own model"):
//! each a small model written with kiln_onnx::GraphBuilder, lowered,
//! generated into one bundle, built once and compared with tract on the same
//! ONNX. Max abs error per pattern <= 1e-5. Each case says where its pattern
//! comes from.

mod common;

use common::{Case, run_bundle, values};
use kiln_onnx::{Attribute, Dim, GraphBuilder};

fn dims(s: &[usize]) -> Vec<Dim> {
    s.iter().map(|d| Dim::Fixed(*d)).collect()
}

/// A graph with input `x` of `shape`; `body` adds nodes ending in output `y`.
fn case(name: &str, shape: &[usize], body: impl FnOnce(&mut GraphBuilder)) -> Case {
    let mut g = GraphBuilder::new(name);
    g.input("x", &dims(shape));
    body(&mut g);
    g.output("y", None);
    Case {
        name: name.into(),
        onnx: g.encode(),
        shape: shape.to_vec(),
    }
}

/// A 3x3 conv with padding 1 from `input` (`ci` channels) to `output`.
fn conv3x3(g: &mut GraphBuilder, name: &str, (input, output): (&str, &str), ci: usize, co: usize) {
    let (w, b) = (format!("{name}.w"), format!("{name}.b"));
    g.initializer(&w, &[co, ci, 3, 3], &values(co * ci * 9, co as u64 + 31));
    g.initializer(&b, &[co], &values(co, ci as u64 + 37));
    g.node(
        name,
        "Conv",
        &[input, &w, &b],
        &[output],
        vec![
            Attribute::ints("kernel_shape", &[3, 3]),
            Attribute::ints("pads", &[1, 1, 1, 1]),
        ],
    );
}

/// The LeNet / VGG / Keras head: conv features, Flatten of the whole
/// `C x H x W` map (H*W > 1), a Gemm. tract folds the Flatten into the matrix
/// product, so the dense layer contracts three axes at once.
fn flatten_gemm() -> Case {
    case("flatten_chw_gemm", &[1, 2, 5, 4], |g| {
        conv3x3(g, "c", ("x", "c"), 2, 3);
        g.node("r", "Relu", &["c"], &["r"], vec![]);
        g.node(
            "flat",
            "Flatten",
            &["r"],
            &["f"],
            vec![Attribute::int("axis", 1)],
        );
        g.initializer("w", &[6, 60], &values(360, 3))
            .initializer("b", &[6], &values(6, 4));
        g.node(
            "fc",
            "Gemm",
            &["f", "w", "b"],
            &["y"],
            vec![Attribute::int("transB", 1)],
        );
    })
}

/// PyTorch's `x.view(x.size(0), -1)` then `nn.Linear` exported as a constant
/// Reshape, MatMul and Add (older exporters write Linear this way).
fn reshape_matmul_add() -> Case {
    case("reshape_chw_matmul_add", &[1, 3, 4, 4], |g| {
        g.initializer_i64("s", &[2], &[1, -1]);
        g.node("reshape", "Reshape", &["x", "s"], &["f"], vec![]);
        g.initializer("w", &[48, 5], &values(240, 5))
            .initializer("b", &[5], &values(5, 6));
        g.node("mm", "MatMul", &["f", "w"], &["m"], vec![]);
        g.node("add", "Add", &["m", "b"], &["y"], vec![]);
    })
}

/// Darknet / YOLO exports: every conv followed by LeakyRelu (alpha 0.1).
fn leaky_relu() -> Case {
    case("conv_leaky_relu", &[1, 3, 7, 6], |g| {
        conv3x3(g, "c", ("x", "c"), 3, 4);
        g.node(
            "leaky",
            "LeakyRelu",
            &["c"],
            &["y"],
            vec![Attribute::float("alpha", 0.1)],
        );
    })
}

/// PyTorch's `nn.PReLU(C)` exports a slope of shape `[C, 1, 1]`, `nn.PReLU()`
/// one of shape `[1]` (face and super-resolution models use both).
fn prelu() -> Case {
    case("conv_prelu_channel_scalar", &[1, 2, 6, 6], |g| {
        conv3x3(g, "c", ("x", "c"), 2, 5);
        g.initializer("slope", &[5, 1, 1], &values(5, 41));
        g.node("p", "PRelu", &["c", "slope"], &["p"], vec![]);
        conv3x3(g, "c2", ("p", "c2"), 5, 3);
        g.initializer("s1", &[1], &[0.25]);
        g.node("p2", "PRelu", &["c2", "s1"], &["y"], vec![]);
    })
}

/// ShuffleNetV2's unit: Split of the channels into halves, one half through
/// a branch, Concat back.
fn split_concat() -> Case {
    case("split_branch_concat", &[1, 6, 5, 5], |g| {
        g.node(
            "split",
            "Split",
            &["x"],
            &["a", "b"],
            vec![Attribute::int("axis", 1)],
        );
        conv3x3(g, "branch", ("b", "bc"), 3, 3);
        g.node("r", "Relu", &["bc"], &["br"], vec![]);
        g.node(
            "cat",
            "Concat",
            &["a", "br"],
            &["y"],
            vec![Attribute::int("axis", 1)],
        );
    })
}

/// tf2onnx keeps TensorFlow's channels-last layout: an NHWC input,
/// Transpose(0,3,1,2) before each Conv, Transpose(0,2,3,1) after it; tract
/// folds the transposes into channels-last convolutions.
fn nhwc_transposes() -> Case {
    case("nhwc_transpose_conv", &[1, 7, 6, 3], |g| {
        g.node(
            "to_nchw",
            "Transpose",
            &["x"],
            &["t"],
            vec![Attribute::ints("perm", &[0, 3, 1, 2])],
        );
        conv3x3(g, "c", ("t", "c"), 3, 4);
        g.node("r", "Relu", &["c"], &["r"], vec![]);
        g.initializer("pw", &[2, 4, 1, 1], &values(8, 43));
        g.node(
            "pwc",
            "Conv",
            &["r", "pw"],
            &["p"],
            vec![Attribute::ints("kernel_shape", &[1, 1])],
        );
        g.node(
            "to_nhwc",
            "Transpose",
            &["p"],
            &["y"],
            vec![Attribute::ints("perm", &[0, 2, 3, 1])],
        );
    })
}

/// Feature vectors and sequences as inputs: the first axis of a rank-2
/// (`[3, 5]`) or rank-3 (`[2, 3, 4]`) input is data, not a batch kiln should
/// refuse (issue 19: such inputs were refused as "batch size 3").
fn rank2_input() -> Case {
    case("rank2_input_not_a_batch", &[3, 5], |g| {
        g.initializer("k", &[5], &values(5, 51));
        g.node("m", "Mul", &["x", "k"], &["m"], vec![]);
        g.node("t", "Tanh", &["m"], &["y"], vec![]);
    })
}

fn rank3_input() -> Case {
    case("rank3_input_not_a_batch", &[2, 3, 4], |g| {
        g.initializer("k", &[1], &[0.5]);
        g.node("a", "Add", &["x", "k"], &["a"], vec![]);
        g.node("s", "Sigmoid", &["a"], &["y"], vec![]);
    })
}

#[test]
fn exported_patterns_match_tract() {
    let cases = vec![
        flatten_gemm(),
        reshape_matmul_add(),
        leaky_relu(),
        prelu(),
        split_concat(),
        nhwc_transposes(),
        rank2_input(),
        rank3_input(),
    ];
    let results = run_bundle("patterns", &cases);
    for (n, e) in &results {
        eprintln!("{n:<28} max abs err {e:.2e}");
    }
    let bad: Vec<String> = results
        .iter()
        .filter(|(_, e)| e.is_nan() || *e > 1e-5)
        .map(|(n, e)| format!("{n}: max abs err {e}"))
        .collect();
    assert!(bad.is_empty(), "outside 1e-5:\n{}", bad.join("\n"));
}

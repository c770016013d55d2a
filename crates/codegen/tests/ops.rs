//! Per-op correctness: single-op ONNX models (kiln_onnx::GraphBuilder), lowered,
//! generated into one bundle, built once, each compared with tract on the same
//! ONNX. Max abs error per op <= 1e-5.

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

#[derive(Clone, Copy)]
struct ConvSpec {
    c: (usize, usize),
    hw: (usize, usize),
    k: (usize, usize),
    s: (usize, usize),
    d: usize,
    pads: [usize; 4],
    group: usize,
    bias: bool,
}

fn conv_case(name: &str, p: ConvSpec, seed: u64) -> Case {
    let (ci, co) = p.c;
    case(name, &[1, ci, p.hw.0, p.hw.1], |g| {
        let wshape = [co, ci / p.group, p.k.0, p.k.1];
        g.initializer("w", &wshape, &values(wshape.iter().product(), seed));
        let mut inputs = vec!["x", "w"];
        if p.bias {
            g.initializer("b", &[co], &values(co, seed + 1));
            inputs.push("b");
        }
        g.node(
            name,
            "Conv",
            &inputs,
            &["y"],
            vec![
                Attribute::ints("kernel_shape", &[p.k.0 as i64, p.k.1 as i64]),
                Attribute::ints("strides", &[p.s.0 as i64, p.s.1 as i64]),
                Attribute::ints("dilations", &[p.d as i64, p.d as i64]),
                Attribute::ints("pads", &p.pads.map(|v| v as i64)),
                Attribute::int("group", p.group as i64),
            ],
        );
    })
}

fn check(bundle: &str, cases: &[Case], tol: f32) {
    let results = run_bundle(bundle, cases);
    for (n, e) in &results {
        eprintln!("{n:<28} max abs err {e:.2e}");
    }
    let bad: Vec<String> = results
        .iter()
        .filter(|(_, e)| e.is_nan() || *e > tol)
        .map(|(n, e)| format!("{n}: max abs err {e}"))
        .collect();
    assert!(bad.is_empty(), "outside {tol}:\n{}", bad.join("\n"));
}

#[test]
fn every_op_and_attribute_matches_tract() {
    let mut cases = Vec::new();
    // conv: kernels 1/3/5/7 x strides 1/2 x groups 1 / depthwise / grouped
    for k in [1, 3, 5, 7] {
        for s in [1, 2] {
            for (gname, c, group) in [("g1", (4, 6), 1), ("dw", (6, 6), 6), ("g2", (4, 6), 2)] {
                let pad = k / 2;
                let spec = ConvSpec {
                    c,
                    hw: (11, 10),
                    k: (k, k),
                    s: (s, s),
                    d: 1,
                    pads: [pad; 4],
                    group,
                    bias: k != 5,
                };
                cases.push(conv_case(
                    &format!("conv_k{k}_s{s}_{gname}"),
                    spec,
                    cases.len() as u64,
                ));
            }
        }
    }
    let base = ConvSpec {
        c: (3, 8),
        hw: (12, 9),
        k: (3, 3),
        s: (1, 1),
        d: 1,
        pads: [1; 4],
        group: 1,
        bias: true,
    };
    cases.push(conv_case(
        "conv_asym_pad",
        ConvSpec {
            pads: [0, 1, 2, 0],
            s: (2, 2),
            ..base
        },
        101,
    ));
    cases.push(conv_case(
        "conv_asym_stride",
        ConvSpec { s: (2, 1), ..base },
        102,
    ));
    cases.push(conv_case(
        "conv_dilation2",
        ConvSpec {
            d: 2,
            pads: [2; 4],
            ..base
        },
        103,
    ));
    cases.push(conv_case(
        "dwconv_dilation2",
        ConvSpec {
            c: (5, 5),
            group: 5,
            d: 2,
            pads: [2; 4],
            ..base
        },
        104,
    ));
    cases.push(conv_case(
        "dwconv_asym_pad_s2",
        ConvSpec {
            c: (5, 5),
            group: 5,
            s: (2, 2),
            pads: [0, 0, 1, 1],
            ..base
        },
        105,
    ));
    cases.push(conv_case(
        "conv_1x1_s2_nopad",
        ConvSpec {
            k: (1, 1),
            s: (2, 2),
            pads: [0; 4],
            ..base
        },
        106,
    ));
    cases.push(conv_case(
        "conv_rect_kernel",
        ConvSpec {
            k: (1, 3),
            pads: [0, 1, 0, 1],
            ..base
        },
        107,
    ));
    cases.push(conv_case(
        "dw_multiplier2",
        ConvSpec {
            c: (3, 6),
            group: 3,
            ..base
        },
        108,
    ));

    let img = [1, 6, 9, 8];
    let unary = |name: &str, op: &str, attrs: Vec<Attribute>| {
        case(name, &img, |g| {
            g.node(name, op, &["x"], &["y"], attrs);
        })
    };
    cases.push(unary("relu", "Relu", vec![]));
    cases.push(unary("sigmoid", "Sigmoid", vec![]));
    cases.push(unary("hardswish", "HardSwish", vec![]));
    cases.push(unary("hardsigmoid_default", "HardSigmoid", vec![]));
    cases.push(unary(
        "hardsigmoid_alpha",
        "HardSigmoid",
        vec![
            Attribute::float("alpha", 1.0 / 6.0),
            Attribute::float("beta", 0.5),
        ],
    ));
    cases.push(case("clip_relu6", &img, |g| {
        g.initializer("lo", &[], &[0.0])
            .initializer("hi", &[], &[6.0]);
        g.node("clip", "Clip", &["x", "lo", "hi"], &["y"], vec![]);
    }));
    cases.push(unary(
        "maxpool_k3_s2_p1",
        "MaxPool",
        vec![
            Attribute::ints("kernel_shape", &[3, 3]),
            Attribute::ints("strides", &[2, 2]),
            Attribute::ints("pads", &[1, 1, 1, 1]),
        ],
    ));
    cases.push(unary(
        "maxpool_k2_s2",
        "MaxPool",
        vec![
            Attribute::ints("kernel_shape", &[2, 2]),
            Attribute::ints("strides", &[2, 2]),
        ],
    ));
    cases.push(unary(
        "avgpool_k3_s1_p1_exclude",
        "AveragePool",
        vec![
            Attribute::ints("kernel_shape", &[3, 3]),
            Attribute::ints("strides", &[1, 1]),
            Attribute::ints("pads", &[1, 1, 1, 1]),
        ],
    ));
    cases.push(unary(
        "avgpool_k3_s2_p1_include",
        "AveragePool",
        vec![
            Attribute::ints("kernel_shape", &[3, 3]),
            Attribute::ints("strides", &[2, 2]),
            Attribute::ints("pads", &[1, 1, 1, 1]),
            Attribute::int("count_include_pad", 1),
        ],
    ));
    cases.push(unary("global_avg_pool", "GlobalAveragePool", vec![]));
    cases.push(unary("global_max_pool", "GlobalMaxPool", vec![]));
    cases.push(unary("flatten", "Flatten", vec![Attribute::int("axis", 1)]));
    cases.push(unary(
        "transpose_nhwc",
        "Transpose",
        vec![Attribute::ints("perm", &[0, 2, 3, 1])],
    ));
    cases.push(case("softmax_after_flatten", &img, |g| {
        g.node(
            "flat",
            "Flatten",
            &["x"],
            &["f"],
            vec![Attribute::int("axis", 1)],
        );
        g.node(
            "softmax",
            "Softmax",
            &["f"],
            &["y"],
            vec![Attribute::int("axis", 1)],
        );
    }));
    cases.push(case("softmax_channels", &img, |g| {
        g.node(
            "softmax",
            "Softmax",
            &["x"],
            &["y"],
            vec![Attribute::int("axis", 1)],
        );
    }));
    cases.push(case("reshape_to_vector", &img, |g| {
        g.initializer_i64("s", &[2], &[1, -1]);
        g.node("reshape", "Reshape", &["x", "s"], &["y"], vec![]);
    }));
    cases.push(case("add_same_shape", &img, |g| {
        g.node("r", "Relu", &["x"], &["r"], vec![]);
        g.node("add", "Add", &["x", "r"], &["y"], vec![]);
    }));
    cases.push(case("mul_channel_tensor_se", &img, |g| {
        g.node("gap", "GlobalAveragePool", &["x"], &["s"], vec![]);
        g.node("sig", "Sigmoid", &["s"], &["t"], vec![]);
        g.node("scale", "Mul", &["x", "t"], &["y"], vec![]);
    }));
    cases.push(case("add_channel_const", &img, |g| {
        g.initializer("k", &[1, 6, 1, 1], &values(6, 5));
        g.node("add", "Add", &["x", "k"], &["y"], vec![]);
    }));
    cases.push(case("sub_scalar_lhs", &img, |g| {
        g.initializer("k", &[], &[0.25]);
        g.node("sub", "Sub", &["k", "x"], &["y"], vec![]);
    }));
    cases.push(case("mul_full_const", &img, |g| {
        g.initializer("k", &[1, 6, 9, 8], &values(6 * 72, 6));
        g.node("mul", "Mul", &["x", "k"], &["y"], vec![]);
    }));
    cases.push(case("concat_channels", &img, |g| {
        g.node("r", "Relu", &["x"], &["r"], vec![]);
        g.node(
            "cat",
            "Concat",
            &["x", "r"],
            &["y"],
            vec![Attribute::int("axis", 1)],
        );
    }));
    cases.push(case("hardswish_written_out", &img, |g| {
        g.initializer("three", &[], &[3.0])
            .initializer("zero", &[], &[0.0])
            .initializer("six", &[], &[6.0]);
        g.node("add3", "Add", &["x", "three"], &["a"], vec![]);
        g.node("clip", "Clip", &["a", "zero", "six"], &["c"], vec![]);
        g.node("mul", "Mul", &["x", "c"], &["m"], vec![]);
        g.node("div6", "Div", &["m", "six"], &["y"], vec![]);
    }));
    cases.push(case("gemm_transb_bias", &[1, 12], |g| {
        g.initializer("w", &[5, 12], &values(60, 8))
            .initializer("b", &[5], &values(5, 9));
        g.node(
            "fc",
            "Gemm",
            &["x", "w", "b"],
            &["y"],
            vec![Attribute::int("transB", 1)],
        );
    }));
    cases.push(case("matmul_const", &[1, 12], |g| {
        g.initializer("w", &[12, 7], &values(84, 10));
        g.node("mm", "MatMul", &["x", "w"], &["y"], vec![]);
    }));
    cases.push(case("constant_node_weights", &[1, 3, 6, 6], |g| {
        g.node(
            "wconst",
            "Constant",
            &[],
            &["w"],
            vec![Attribute::tensor("value", &[4, 3, 3, 3], &values(108, 11))],
        );
        g.node(
            "conv",
            "Conv",
            &["x", "w"],
            &["c"],
            vec![
                Attribute::ints("kernel_shape", &[3, 3]),
                Attribute::ints("pads", &[1, 1, 1, 1]),
            ],
        );
        g.node("relu", "Relu", &["c"], &["y"], vec![]);
    }));
    cases.push(case("depthwise_bn_relu6", &[1, 4, 7, 7], |g| {
        g.initializer("w", &[4, 1, 3, 3], &values(36, 12));
        for (n, v) in [
            ("gamma", values(4, 13)),
            ("beta", values(4, 14)),
            ("mean", values(4, 15)),
        ] {
            g.initializer(n, &[4], &v);
        }
        g.initializer("var", &[4], &[0.5, 1.0, 1.5, 2.0]);
        g.initializer("lo", &[], &[0.0])
            .initializer("hi", &[], &[6.0]);
        g.node(
            "dw",
            "Conv",
            &["x", "w"],
            &["c"],
            vec![
                Attribute::ints("kernel_shape", &[3, 3]),
                Attribute::ints("pads", &[1, 1, 1, 1]),
                Attribute::int("group", 4),
            ],
        );
        g.node(
            "bn",
            "BatchNormalization",
            &["c", "gamma", "beta", "mean", "var"],
            &["b"],
            vec![],
        );
        g.node("relu6", "Clip", &["b", "lo", "hi"], &["y"], vec![]);
    }));
    check("ops", &cases, 1e-5);
}

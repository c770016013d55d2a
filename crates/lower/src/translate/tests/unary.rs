//! The unary math ops, Elu/Selu (tract's Iff form) and SiLU lower to one
//! [`OpKind::Unary`] each; the arithmetic tract wires around them is gone.

use kiln_ir::UnaryOp;

use super::*;

fn one_node(op: &str, attrs: Vec<Attribute>) -> Graph {
    lowered(&model(&[1, 3, 4, 5], |g| {
        g.node("n", op, &["x"], &["y"], attrs);
    }))
}

#[test]
fn unary_math_ops_are_one_unary_op_each() {
    let cases = [
        ("Abs", UnaryOp::Abs),
        ("Neg", UnaryOp::Neg),
        ("Exp", UnaryOp::Exp),
        ("Log", UnaryOp::Log),
        ("Sqrt", UnaryOp::Sqrt),
        ("Reciprocal", UnaryOp::Reciprocal),
        ("Tanh", UnaryOp::Tanh),
        ("Erf", UnaryOp::Erf),
    ];
    for (onnx_op, want) in cases {
        let g = one_node(onnx_op, vec![]);
        assert_eq!(single_op(&g), &OpKind::Unary(want), "{onnx_op}");
        assert_eq!(out_shape(&g), [1, 3, 4, 5]);
    }
}

#[test]
fn pow_by_a_constant_is_square_sqrt_or_pow() {
    for (e, want) in [
        (2.0, UnaryOp::Square),
        (0.5, UnaryOp::Sqrt),
        (3.0, UnaryOp::Pow { exponent: 3.0 }),
    ] {
        let g = lowered(&model(&[1, 3, 4, 5], |g| {
            g.initializer("e", &[], &[e]);
            g.node("p", "Pow", &["x", "e"], &["y"], vec![]);
        }));
        assert_eq!(single_op(&g), &OpKind::Unary(want), "Pow by {e}");
    }
}

#[test]
fn elu_is_one_op_and_selu_an_elu_times_gamma() {
    let g = one_node("Elu", vec![Attribute::float("alpha", 0.3)]);
    assert_eq!(single_op(&g), &OpKind::Unary(UnaryOp::Elu { alpha: 0.3 }));

    let g = one_node(
        "Selu",
        vec![
            Attribute::float("alpha", 1.5),
            Attribute::float("gamma", 1.25),
        ],
    );
    let kinds: Vec<&OpKind> = g.ops.iter().map(|o| &o.kind).collect();
    assert_eq!(
        kinds,
        [
            &OpKind::Input,
            &OpKind::Unary(UnaryOp::Elu { alpha: 1.5 }),
            &OpKind::Binary {
                op: BinaryOp::Mul,
                rhs: Operand::Scalar(1.25),
                data_is_lhs: true
            }
        ],
        "{g}"
    );
}

#[test]
fn x_times_sigmoid_x_is_silu() {
    let g = lowered(&model(&[1, 3, 4, 5], |g| {
        g.node("s", "Sigmoid", &["x"], &["s"], vec![]);
        g.node("m", "Mul", &["x", "s"], &["y"], vec![]);
    }));
    assert_eq!(single_op(&g), &OpKind::Unary(UnaryOp::Silu));
}

#[test]
fn a_selection_of_another_form_names_the_node_and_the_forms() {
    // Where(x > 0, x, 2x + 1): neither PRelu's nor Elu's negative branch
    let onnx = model(&[1, 3, 4, 5], |g| {
        g.initializer("zero", &[], &[0.0])
            .initializer("two", &[], &[2.0])
            .initializer("one", &[], &[1.0]);
        g.node("gt", "Greater", &["x", "zero"], &["c"], vec![]);
        g.node("m", "Mul", &["x", "two"], &["m"], vec![]);
        g.node("a", "Add", &["m", "one"], &["n"], vec![]);
        g.node("w", "Where", &["c", "x", "n"], &["y"], vec![]);
    });
    let err = translated(&onnx).unwrap_err();
    let LowerError::Unsupported { node, reason, .. } = &err else {
        panic!("expected Unsupported, got {err}");
    };
    assert!(node.starts_with('w'), "{node}");
    assert!(
        reason.contains("PRelu") && reason.contains("Elu"),
        "{reason}"
    );
}

#[test]
fn elu_with_the_default_alpha_is_one_op() {
    // tract drops the multiplication by alpha = 1
    let g = one_node("Elu", vec![]);
    assert_eq!(single_op(&g), &OpKind::Unary(UnaryOp::Elu { alpha: 1.0 }));
}

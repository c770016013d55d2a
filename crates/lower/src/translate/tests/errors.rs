//! What the user sees when kiln cannot lower a model: the node, its op
//! type and why.

use super::*;

/// The `Unsupported` fields of an error, or a panic showing what came instead.
fn unsupported(err: LowerError) -> (String, String, String) {
    match err {
        LowerError::Unsupported {
            source_name,
            node,
            op,
            reason,
        } => {
            assert_eq!(source_name, "test.onnx");
            (node, op, reason)
        }
        other => panic!("expected Unsupported, got {other}"),
    }
}

#[test]
fn unsupported_ops_name_the_node_and_op_type() {
    let sin = model(&[1, 3, 4, 4], |g| {
        g.node("my_sin", "Sin", &["x"], &["y"], vec![]);
    });
    let (node, op, reason) = unsupported(translated(&sin).unwrap_err());
    assert_eq!((node.as_str(), op.as_str()), ("my_sin", "Sin"));
    assert!(reason.contains("Sin"), "{reason}");

    let over_channels = model(&[1, 3, 4, 4], |g| {
        g.node(
            "rm",
            "ReduceMean",
            &["x"],
            &["y"],
            vec![Attribute::ints("axes", &[1])],
        );
    });
    let (node, op, reason) = unsupported(translated(&over_channels).unwrap_err());
    assert!(node.starts_with("rm"), "{node}");
    assert!(op.starts_with("Reduce"), "{op}");
    assert!(reason.contains("axes [1]"), "{reason}");

    // over H (axis 2): neither the channels, the last axis nor all of them
    let softmax_h = model(&[1, 3, 4, 4], |g| {
        g.node(
            "sm",
            "Softmax",
            &["x"],
            &["y"],
            vec![Attribute::int("axis", 2)],
        );
    });
    let (node, op, _) = unsupported(translated(&softmax_h).unwrap_err());
    assert_eq!((node.as_str(), op.as_str()), ("sm", "Softmax"));
}

#[test]
fn broadcast_kiln_cannot_store_is_an_error_not_a_wrong_op() {
    // a [1, C, H, 1] constant is expanded to the output's shape
    let onnx = model(&[1, 3, 4, 5], |g| {
        g.initializer("k", &[1, 3, 4, 1], &ramp(12));
        g.node("mul", "Mul", &["x", "k"], &["y"], vec![]);
    });
    translated(&onnx).expect("a constant that broadcasts is expanded");
    // but the run-time tensor itself may not grow
    let onnx = model(&[1, 3, 1, 5], |g| {
        g.initializer("k", &[1, 3, 4, 5], &ramp(60));
        g.node("mul", "Mul", &["x", "k"], &["y"], vec![]);
    });
    let (node, _, reason) = unsupported(translated(&onnx).unwrap_err());
    assert_eq!(node, "mul");
    assert!(reason.contains("broadcast"), "{reason}");
}

#[test]
fn front_end_takes_a_static_batch_and_rejects_contradicting_shapes() {
    let onnx = model(&[2, 3, 4, 4], |g| {
        g.node("r", "Relu", &["x"], &["y"], vec![]);
    });
    let g = translated(&onnx).expect("a batch of 2 lowers image by image");
    assert_eq!((g.batch, g.input_shape()), (2, vec![2, 3, 4, 4]));
    assert_eq!(g.tensors[g.output].shape, [1, 3, 4, 4]);

    let onnx = model(&[1, 3, 4, 4], |g| {
        g.node("r", "Relu", &["x"], &["y"], vec![]);
    });
    let opts = LowerOptions {
        input_shape: Some(vec![1, 3, 8, 8]),
    };
    let err = crate::lower_bytes(&onnx, "test.onnx", &opts).unwrap_err();
    assert!(
        matches!(&err, LowerError::Input { message, .. } if message.contains("declared [1, 3, 4, 4]")),
        "{err}"
    );
}

/// tract expands PRelu into a comparison, a multiplication and an `Iff`;
/// a slope kiln cannot take (one per column) is reported at the user's
/// PRelu node, with tract's piece only as a detail.
#[test]
fn errors_name_the_onnx_node_not_tracts_pieces() {
    let onnx = model(&[1, 2, 3, 4], |g| {
        g.initializer("slope", &[1, 1, 4], &[0.1, 0.2, 0.3, 0.4]);
        g.node("p1", "PRelu", &["x", "slope"], &["y"], vec![]);
    });
    let (node, op, reason) = unsupported(translated(&onnx).unwrap_err());
    assert_eq!((node.as_str(), op.as_str()), ("p1", "PRelu"), "{reason}");
    assert!(reason.contains("tract's"), "{reason}");

    let unnamed = model(&[1, 2, 3, 4], |g| {
        g.node("", "Sin", &["x"], &["y"], vec![]);
    });
    let (node, op, _) = unsupported(translated(&unnamed).unwrap_err());
    assert_eq!((node.as_str(), op.as_str()), ("#0 Sin", "Sin"));
}

#[test]
fn a_zero_sized_input_dimension_is_named() {
    let onnx = model(&[1, 3, 0, 4], |g| {
        g.node("r", "Relu", &["x"], &["y"], vec![]);
    });
    let err = translated(&onnx).unwrap_err();
    assert!(
        matches!(&err, LowerError::Input { message, .. }
            if message.contains("zero-sized dimension at axis 2")),
        "{err}"
    );
}

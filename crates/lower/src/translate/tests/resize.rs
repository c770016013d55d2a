//! ONNX Resize lowers to one [`OpKind::Resize`] with the taps of its mode;
//! modes kiln has no kernel for are refused naming the node.

use super::*;

/// `Resize(x, roi = "", scales = [1, 1, 2, 2])` with `attrs`.
fn resize_x2(attrs: Vec<Attribute>) -> Vec<u8> {
    model(&[1, 2, 3, 4], |g| {
        g.initializer("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
        g.node("up", "Resize", &["x", "", "scales"], &["y"], attrs);
    })
}

#[test]
fn nearest_x2_repeats_each_row_and_column() {
    let g = lowered(&resize_x2(vec![
        Attribute::string("mode", "nearest"),
        Attribute::string("coordinate_transformation_mode", "asymmetric"),
        Attribute::string("nearest_mode", "floor"),
    ]));
    let OpKind::Resize { rows, cols } = single_op(&g) else {
        panic!("expected a resize:\n{g}");
    };
    let lo = |t: &[kiln_ir::Tap]| t.iter().map(|t| (t.lo, t.frac)).collect::<Vec<_>>();
    assert_eq!(
        lo(rows),
        [(0, 0.0), (0, 0.0), (1, 0.0), (1, 0.0), (2, 0.0), (2, 0.0)]
    );
    assert_eq!(cols.len(), 8);
    assert_eq!(out_shape(&g), [1, 2, 6, 8]);
}

#[test]
fn linear_half_pixel_blends_quarter_steps() {
    let g = lowered(&resize_x2(vec![
        Attribute::string("mode", "linear"),
        Attribute::string("coordinate_transformation_mode", "half_pixel"),
    ]));
    let OpKind::Resize { rows, .. } = single_op(&g) else {
        panic!("expected a resize:\n{g}");
    };
    let at: Vec<f32> = rows.iter().map(|t| t.lo as f32 + t.frac).collect();
    assert_eq!(at, [0.0, 0.25, 0.75, 1.25, 1.75, 2.0]);
}

#[test]
fn cubic_is_refused_naming_the_node() {
    let onnx = resize_x2(vec![Attribute::string("mode", "cubic")]);
    let err = translated(&onnx).unwrap_err();
    let LowerError::Unsupported { node, reason, .. } = &err else {
        panic!("expected Unsupported, got {err}");
    };
    assert!(node.starts_with("up"), "{node}");
    assert!(reason.contains("cubic"), "{reason}");
}

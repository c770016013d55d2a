//! Pad and ConvTranspose lower to one op each with the ONNX attributes;
//! what kiln cannot pad is refused naming the node.

use kiln_ir::PadMode;

use super::*;

fn pad(pads: &[i64], mode: &str) -> Vec<u8> {
    model(&[1, 2, 4, 5], |g| {
        g.initializer_i64("pads", &[8], pads);
        g.node(
            "p",
            "Pad",
            &["x", "pads"],
            &["y"],
            vec![Attribute::string("mode", mode)],
        );
    })
}

#[test]
fn pad_of_h_and_w_keeps_its_mode() {
    let g = lowered(&pad(&[0, 0, 1, 2, 0, 0, 3, 1], "reflect"));
    assert_eq!(
        single_op(&g),
        &OpKind::Pad {
            pads: [1, 2, 3, 1],
            mode: PadMode::Reflect
        }
    );
    assert_eq!(out_shape(&g), [1, 2, 8, 8]);
}

#[test]
fn pad_of_the_channels_is_refused_naming_the_node() {
    let err = translated(&pad(&[0, 1, 0, 0, 0, 1, 0, 0], "edge")).unwrap_err();
    let LowerError::Unsupported { node, reason, .. } = &err else {
        panic!("expected Unsupported, got {err}");
    };
    assert!(node.starts_with('p'), "{node}");
    assert!(reason.contains("H and W"), "{reason}");
}

#[test]
fn conv_transpose_keeps_stride_pads_and_groups() {
    let onnx = model(&[1, 4, 3, 3], |g| {
        g.initializer("w", &[4, 3, 2, 2], &ramp(48));
        g.node(
            "up",
            "ConvTranspose",
            &["x", "w"],
            &["y"],
            vec![
                Attribute::ints("strides", &[2, 2]),
                Attribute::ints("pads", &[1, 0, 0, 1]),
                Attribute::int("group", 2),
            ],
        );
    });
    let g = lowered(&onnx);
    let OpKind::ConvTranspose(d) = single_op(&g) else {
        panic!("expected a transposed conv:\n{g}");
    };
    assert_eq!(
        (d.stride, d.pads, d.groups, d.kernel),
        ([2, 2], [1, 0], 2, [2, 2])
    );
    // ONNX [in 4, out/g 3, 2, 2] -> [out 6, in/g 2, 2, 2]
    assert_eq!(g.constants[d.weight].shape, [6, 2, 2, 2]);
    // (3 - 1) * 2 + 2 - pads: 5 rows, 5 columns
    assert_eq!(out_shape(&g), [1, 6, 5, 5]);
}

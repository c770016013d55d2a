//! Layers: convolutions (general, depthwise, 1x1), dense layers from Gemm
//! and MatMul, activations alone and fused, pools.

use super::*;

#[test]
fn conv_1x1_becomes_a_pointwise_conv_with_its_weights_and_bias() {
    let w = ramp(3 * 4);
    let b = vec![0.5, -1.0, 2.0];
    let onnx = model(&[1, 4, 5, 6], |g| {
        g.initializer("w", &[3, 4, 1, 1], &w)
            .initializer("b", &[3], &b);
        g.node(
            "pw",
            "Conv",
            &["x", "w", "b"],
            &["y"],
            conv_attrs(1, 1, [0; 4], 1),
        );
    });
    let g = lowered(&onnx);
    let c = single_conv(&g);
    assert!(c.is_pointwise(), "{c:?}");
    assert_eq!((c.in_channels, c.out_channels, c.groups), (4, 3, 1));
    assert_eq!(c.act, Activation::None);
    let weight = constant(&g, Some(c.weight));
    assert_eq!(weight.shape, vec![3, 4, 1, 1]);
    assert_eq!(weight.data, w, "OIHW [out][in] as in the ONNX");
    assert_eq!(constant(&g, c.bias).data, b);
    assert_eq!(g.tensors[g.input].shape, vec![1, 4, 5, 6]);
    assert_eq!(out_shape(&g), [1, 3, 5, 6]);
}

#[test]
fn strided_1x1_conv_is_a_downsample_then_a_pointwise_conv() {
    let onnx = model(&[1, 4, 6, 6], |g| {
        g.initializer("w", &[2, 4, 1, 1], &ramp(8));
        g.node(
            "pw",
            "Conv",
            &["x", "w"],
            &["y"],
            conv_attrs(1, 2, [0; 4], 1),
        );
    });
    let g = translated(&onnx).expect("translates");
    let kinds: Vec<&OpKind> = g.ops.iter().map(|o| &o.kind).collect();
    let downsample_strides: Vec<[usize; 2]> = kinds
        .iter()
        .filter_map(|k| match k {
            OpKind::Downsample { stride } => Some(*stride),
            _ => None,
        })
        .collect();
    let total = downsample_strides
        .iter()
        .fold([1, 1], |acc, s| [acc[0] * s[0], acc[1] * s[1]]);
    assert_eq!(total, [2, 2], "{g}");
    let OpKind::Conv(c) = kinds.last().expect("ops") else {
        panic!("the last op is the 1x1 conv:\n{g}");
    };
    assert!(c.is_pointwise());
    assert_eq!(out_shape(&g), [1, 2, 3, 3]);
}

#[test]
fn gemm_becomes_a_dense_layer_with_out_by_in_weights() {
    // transB = 1: w is already [out, in]
    let w = ramp(5 * 12);
    let b = ramp(5);
    let onnx = model(&[1, 12], |g| {
        g.initializer("w", &[5, 12], &w).initializer("b", &[5], &b);
        g.node(
            "fc",
            "Gemm",
            &["x", "w", "b"],
            &["y"],
            vec![Attribute::int("transB", 1)],
        );
    });
    let g = lowered(&onnx);
    let OpKind::Dense { weight, bias, act } = single_op(&g) else {
        panic!("expected dense:\n{g}");
    };
    assert_eq!(*act, Activation::None);
    assert_eq!(constant(&g, Some(*weight)).shape, vec![5, 12]);
    assert_eq!(constant(&g, Some(*weight)).data, w);
    assert_eq!(constant(&g, *bias).data, b);
    assert_eq!(out_shape(&g), [1, 5]);
}

#[test]
fn matmul_with_in_by_out_weights_is_transposed_to_out_by_in() {
    let w = ramp(12 * 7); // [in = 12, out = 7]
    let onnx = model(&[1, 12], |g| {
        g.initializer("w", &[12, 7], &w);
        g.node("mm", "MatMul", &["x", "w"], &["y"], vec![]);
    });
    let g = translated(&onnx).expect("translates");
    let OpKind::Dense { weight, bias, .. } = single_op(&g) else {
        panic!("expected dense:\n{g}");
    };
    assert_eq!(*bias, None);
    let weight = constant(&g, Some(*weight));
    assert_eq!(weight.shape, vec![7, 12]);
    for o in 0..7 {
        for i in 0..12 {
            assert_eq!(weight.data[o * 12 + i], w[i * 7 + o], "w[{o}][{i}]");
        }
    }
}

fn conv3x3_then(act: impl FnOnce(&mut GraphBuilder)) -> Vec<u8> {
    model(&[1, 3, 8, 8], |g| {
        g.initializer("w", &[4, 3, 3, 3], &ramp(108));
        g.node(
            "conv",
            "Conv",
            &["x", "w"],
            &["c"],
            conv_attrs(3, 1, [1; 4], 1),
        );
        act(g);
    })
}

#[test]
fn relu_after_a_conv_is_a_max_with_zero_then_the_convs_fused_activation() {
    let onnx = conv3x3_then(|g| {
        g.node("relu", "Relu", &["c"], &["y"], vec![]);
    });
    // translation: ReLU arrives as Max(x, 0)
    let t = translated(&onnx).expect("translates");
    assert_eq!(t.ops.len(), 3, "{t}");
    assert!(matches!(
        t.ops[1].kind,
        OpKind::Conv(Conv {
            act: Activation::None,
            ..
        })
    ));
    assert_eq!(
        t.ops[2].kind,
        OpKind::Binary {
            op: BinaryOp::Max,
            rhs: Operand::Scalar(0.0),
            data_is_lhs: true
        }
    );
    assert_eq!(t.ops[2].inputs, vec![t.ops[1].output]);
    // lowering: one conv with the activation fused
    let g = lowered(&onnx);
    let c = single_conv(&g);
    assert_eq!(c.act, Activation::Relu);
    assert_eq!(out_shape(&g), [1, 4, 8, 8]);
}

#[test]
fn clip_after_a_conv_becomes_the_convs_clip_activation() {
    let onnx = conv3x3_then(|g| {
        g.initializer("lo", &[], &[0.0])
            .initializer("hi", &[], &[6.0]);
        g.node("relu6", "Clip", &["c", "lo", "hi"], &["y"], vec![]);
    });
    let g = lowered(&onnx);
    assert_eq!(single_conv(&g).act, Activation::Clip { min: 0.0, max: 6.0 });
}

#[test]
fn sigmoid_and_hardswish_are_activation_ops() {
    for (op, act) in [
        ("Sigmoid", Activation::Sigmoid),
        ("HardSwish", Activation::HardSwish),
    ] {
        let onnx = model(&[1, 6, 4, 4], |g| {
            g.node("a", op, &["x"], &["y"], vec![]);
        });
        let g = translated(&onnx).expect("translates");
        assert_eq!(single_op(&g), &OpKind::Activation(act), "{op}");
        assert_eq!(out_shape(&g), [1, 6, 4, 4]);
    }
}

#[test]
fn global_average_pool_is_one_global_sum_pool_scaled_by_one_over_hw() {
    let onnx = model(&[1, 6, 9, 8], |g| {
        g.node("gap", "GlobalAveragePool", &["x"], &["y"], vec![]);
    });
    let g = lowered(&onnx);
    let OpKind::GlobalSumPool { scale } = single_op(&g) else {
        panic!("expected a global sum pool:\n{g}");
    };
    assert!((scale - 1.0 / 72.0).abs() < 1e-8, "scale {scale}");
    assert_eq!(out_shape(&g), [1, 6, 1, 1]);

    let max = model(&[1, 6, 9, 8], |g| {
        g.node("gmp", "GlobalMaxPool", &["x"], &["y"], vec![]);
    });
    assert_eq!(single_op(&lowered(&max)), &OpKind::GlobalMaxPool);
}

#[test]
fn depthwise_conv_keeps_groups_equal_to_channels() {
    let w = ramp(6 * 9);
    let onnx = model(&[1, 6, 8, 8], |g| {
        g.initializer("w", &[6, 1, 3, 3], &w);
        g.node(
            "dw",
            "Conv",
            &["x", "w"],
            &["y"],
            conv_attrs(3, 2, [1; 4], 6),
        );
    });
    let g = lowered(&onnx);
    let c = single_conv(&g);
    assert!(c.is_depthwise(), "{c:?}");
    assert_eq!((c.groups, c.in_channels, c.out_channels), (6, 6, 6));
    assert_eq!((c.kernel, c.stride, c.pads), ([3, 3], [2, 2], [1; 4]));
    assert_eq!(c.bias, None);
    let weight = constant(&g, Some(c.weight));
    assert_eq!(
        (weight.shape.as_slice(), &weight.data),
        (&[6, 1, 3, 3][..], &w)
    );
    assert_eq!(out_shape(&g), [1, 6, 4, 4]);
}

#[test]
fn conv_geometry_pads_are_top_left_bottom_right() {
    // ONNX pads are [top, left, bottom, right] for 2-D, as kiln's
    let onnx = model(&[1, 2, 9, 10], |g| {
        g.initializer("w", &[4, 1, 3, 3], &ramp(36))
            .initializer("b", &[4], &[0.0; 4]);
        let attrs = vec![
            Attribute::ints("kernel_shape", &[3, 3]),
            Attribute::ints("strides", &[2, 1]),
            Attribute::ints("dilations", &[2, 2]),
            Attribute::ints("pads", &[0, 1, 2, 0]),
            Attribute::int("group", 2),
        ];
        g.node("conv", "Conv", &["x", "w", "b"], &["y"], attrs);
    });
    let g = translated(&onnx).expect("translates");
    let c = single_conv(&g);
    assert_eq!(c.pads, [0, 1, 2, 0]);
    assert_eq!((c.stride, c.dilation), ([2, 1], [2, 2]));
    assert_eq!((c.groups, c.in_channels, c.out_channels), (2, 2, 4));
    assert!(!c.is_depthwise() && !c.is_pointwise());
    assert_eq!(c.bias, None, "an all-zero bias is dropped");
    // H: (9 + 0 + 2 - 5) / 2 + 1 = 4; W: (10 + 1 + 0 - 5) / 1 + 1 = 7
    assert_eq!(out_shape(&g), [1, 4, 4, 7]);
}

#[test]
fn pools_keep_kernel_stride_pads_and_the_padding_rule() {
    let attrs = |include: i64| {
        vec![
            Attribute::ints("kernel_shape", &[3, 3]),
            Attribute::ints("strides", &[2, 2]),
            Attribute::ints("pads", &[1, 1, 1, 1]),
            Attribute::int("count_include_pad", include),
        ]
    };
    let expected = |count_include_pad| Pool {
        kernel: [3, 3],
        stride: [2, 2],
        dilation: [1, 1],
        pads: [1; 4],
        count_include_pad,
    };
    let avg = |include| {
        model(&[1, 3, 9, 8], |g| {
            g.node("ap", "AveragePool", &["x"], &["y"], attrs(include));
        })
    };
    for include in [0, 1] {
        let g = translated(&avg(include)).expect("translates");
        assert_eq!(single_op(&g), &OpKind::AvgPool(expected(include == 1)));
        assert_eq!(out_shape(&g), [1, 3, 5, 4]);
    }
    let max = model(&[1, 3, 9, 8], |g| {
        let mut a = attrs(0);
        a.pop();
        g.node("mp", "MaxPool", &["x"], &["y"], a);
    });
    let g = translated(&max).expect("translates");
    assert_eq!(single_op(&g), &OpKind::MaxPool(expected(false)));
}

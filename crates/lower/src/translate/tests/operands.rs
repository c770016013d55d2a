//! Element-wise binary operands and the layout ops (reshape, transpose,
//! concat, softmax).

use super::*;

const IMG: [usize; 4] = [1, 6, 5, 4];

#[test]
fn per_channel_constant_becomes_a_c_vector_operand() {
    // [1, C, 1, 1] in the ONNX -> a [C] constant
    let k = ramp(6);
    let g = translated(&model(&IMG, |g| {
        g.initializer("k", &[1, 6, 1, 1], &k);
        g.node("add", "Add", &["x", "k"], &["y"], vec![]);
    }))
    .expect("translates");
    let OpKind::Binary {
        op: BinaryOp::Add,
        rhs: Operand::ChannelConst(c),
        data_is_lhs: true,
    } = single_op(&g)
    else {
        panic!("expected Add of a per-channel constant:\n{g}");
    };
    assert_eq!(
        (g.constants[*c].shape.as_slice(), &g.constants[*c].data),
        (&[6][..], &k)
    );
}

#[test]
fn scalar_on_the_left_makes_the_data_the_right_operand() {
    let g = translated(&model(&IMG, |g| {
        g.initializer("k", &[], &[0.25]);
        g.node("sub", "Sub", &["k", "x"], &["y"], vec![]);
    }))
    .expect("translates");
    assert_eq!(
        single_op(&g),
        &OpKind::Binary {
            op: BinaryOp::Sub,
            rhs: Operand::Scalar(0.25),
            data_is_lhs: false
        }
    );
}

#[test]
fn full_constant_keeps_the_outputs_logical_shape() {
    let g = translated(&model(&IMG, |g| {
        g.initializer("k", &[1, 6, 5, 4], &ramp(120));
        g.node("mul", "Mul", &["x", "k"], &["y"], vec![]);
    }))
    .expect("translates");
    let OpKind::Binary {
        rhs: Operand::Const(c),
        ..
    } = single_op(&g)
    else {
        panic!("expected Mul by a full constant:\n{g}");
    };
    assert_eq!(g.constants[*c].shape, vec![1, 6, 5, 4]);
    assert_eq!(g.constants[*c].data, ramp(120), "kept in logical order");
}

#[test]
fn squeeze_excite_scale_is_a_per_channel_tensor_operand() {
    let g = translated(&model(&IMG, |g| {
        g.node("gap", "GlobalAveragePool", &["x"], &["s"], vec![]);
        g.node("sig", "Sigmoid", &["s"], &["t"], vec![]);
        g.node("scale", "Mul", &["t", "x"], &["y"], vec![]);
    }))
    .expect("translates");
    let last = g.ops.last().expect("ops");
    let gate = g.ops[g.ops.len() - 2].output;
    assert_eq!(
        g.ops[g.ops.len() - 2].kind,
        OpKind::Activation(Activation::Sigmoid)
    );
    // Mul commutes: whichever side tract puts the gate on, the image is the
    // data input and the gate the per-channel operand
    let OpKind::Binary {
        op: BinaryOp::Mul,
        rhs: Operand::ChannelTensor(t),
        ..
    } = last.kind
    else {
        panic!("expected Mul by a per-channel tensor:\n{g}");
    };
    assert_eq!(t, gate);
    assert_eq!(last.inputs, vec![g.input]);
    assert_eq!(out_shape(&g), [1, 6, 5, 4]);
}

#[test]
fn per_channel_tensor_on_the_left_of_a_sub_stays_on_the_left() {
    let g = translated(&model(&IMG, |g| {
        g.node("gap", "GlobalMaxPool", &["x"], &["s"], vec![]);
        g.node("sub", "Sub", &["s", "x"], &["y"], vec![]);
    }))
    .expect("translates");
    let gate = g.ops[1].output;
    let last = g.ops.last().expect("ops");
    assert_eq!(
        last.kind,
        OpKind::Binary {
            op: BinaryOp::Sub,
            rhs: Operand::ChannelTensor(gate),
            data_is_lhs: false
        }
    );
    assert_eq!(last.inputs, vec![g.input]);
}

#[test]
fn flatten_is_reshapes_and_softmax_runs_over_the_vector() {
    let g = translated(&model(&[1, 6, 1, 1], |g| {
        g.node(
            "flat",
            "Flatten",
            &["x"],
            &["f"],
            vec![Attribute::int("axis", 1)],
        );
        g.node(
            "sm",
            "Softmax",
            &["f"],
            &["y"],
            vec![Attribute::int("axis", 1)],
        );
    }))
    .expect("translates");
    // Flatten arrives as axis removals: one Reshape each, then the Softmax
    let kinds: Vec<&OpKind> = g.ops.iter().map(|o| &o.kind).collect();
    assert_eq!(kinds.first(), Some(&&OpKind::Input), "{g}");
    assert_eq!(kinds.last(), Some(&&OpKind::Softmax), "{g}");
    assert!(kinds.len() > 2, "{g}");
    assert!(
        kinds[1..kinds.len() - 1]
            .iter()
            .all(|k| **k == OpKind::Reshape),
        "{g}"
    );
    assert_eq!(g.tensors[g.ops[kinds.len() - 2].output].shape, vec![1, 6]);
    assert_eq!(out_shape(&g), [1, 6]);
}

#[test]
fn transpose_keeps_its_permutation() {
    let g = translated(&model(&IMG, |g| {
        g.node(
            "t",
            "Transpose",
            &["x"],
            &["y"],
            vec![Attribute::ints("perm", &[0, 2, 3, 1])],
        );
    }))
    .expect("translates");
    assert_eq!(
        single_op(&g),
        &OpKind::Transpose {
            perm: vec![0, 2, 3, 1]
        }
    );
    assert_eq!(out_shape(&g), [1, 5, 4, 6]);
}

#[test]
fn concat_reads_every_input_along_its_axis() {
    let g = translated(&model(&IMG, |g| {
        g.node("r", "Sigmoid", &["x"], &["r"], vec![]);
        g.node(
            "cat",
            "Concat",
            &["x", "r"],
            &["y"],
            vec![Attribute::int("axis", 1)],
        );
    }))
    .expect("translates");
    let cat = g.ops.last().expect("ops");
    assert_eq!(cat.kind, OpKind::Concat { axis: 1 });
    assert_eq!(cat.inputs, vec![g.input, g.ops[1].output]);
    assert_eq!(out_shape(&g), [1, 12, 5, 4]);
}

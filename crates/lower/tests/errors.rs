//! What a user sees when a model cannot be lowered: errors naming the node,
//! its op and the supported set; clear errors for broken files and symbolic
//! shapes; never a panic.

use kiln_lower::{LowerError, LowerOptions, lower_bytes};
use kiln_onnx::{Attribute, Dim, GraphBuilder};

fn model(input: &[Dim], body: impl FnOnce(&mut GraphBuilder)) -> Vec<u8> {
    let mut g = GraphBuilder::new("t");
    g.input("x", input);
    body(&mut g);
    g.output("y", None);
    g.encode()
}

fn img() -> Vec<Dim> {
    [1, 3, 8, 8].map(Dim::Fixed).to_vec()
}

fn conv_relu(g: &mut GraphBuilder) {
    g.initializer("w", &[4, 3, 3, 3], &[0.1; 108]);
    g.node(
        "conv",
        "Conv",
        &["x", "w"],
        &["c"],
        vec![Attribute::ints("kernel_shape", &[3, 3])],
    );
    g.node("relu", "Relu", &["c"], &["y"], vec![]);
}

#[test]
fn op_tract_knows_but_kiln_does_not_names_node_op_and_supported_set() {
    let onnx = model(&img(), |g| {
        g.node("my_cos", "Cos", &["x"], &["y"], vec![]);
    });
    let err = lower_bytes(&onnx, "cos.onnx", &LowerOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LowerError::Unsupported { .. }), "{msg}");
    assert!(
        msg.contains("my_cos") && msg.contains("Cos") && msg.contains("kiln supports: Conv"),
        "{msg}"
    );
    assert!(msg.contains("cos.onnx"), "{msg}");
}

#[test]
fn op_unknown_to_onnx_runtime_names_node() {
    let onnx = model(&img(), |g| {
        g.node("weird", "FrobnicateV2", &["x"], &["y"], vec![]);
    });
    let err = lower_bytes(&onnx, "weird.onnx", &LowerOptions::default()).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("weird") && msg.contains("FrobnicateV2"),
        "{msg}"
    );
}

#[test]
fn garbage_and_truncated_files_are_reported_not_panicked() {
    let err = lower_bytes(
        b"this is not a protobuf \xff\xfe",
        "junk.onnx",
        &LowerOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, LowerError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("junk.onnx"));

    let good = model(&img(), conv_relu);
    for cut in [good.len() / 3, good.len() / 2, good.len() - 7] {
        let err = lower_bytes(&good[..cut], "cut.onnx", &LowerOptions::default());
        let err = err.expect_err("a truncated model must not lower");
        eprintln!("{err}");
        assert!(err.to_string().contains("cut.onnx"), "{err}");
    }
    let err = kiln_lower::lower_file(
        std::path::Path::new("/nonexistent/m.onnx"),
        &LowerOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, LowerError::Io { .. }) && err.to_string().contains("/nonexistent/m.onnx")
    );
}

#[test]
fn symbolic_batch_is_fixed_to_one_other_symbols_need_a_shape() {
    let batch = [
        Dim::Symbolic("N".into()),
        Dim::Fixed(3),
        Dim::Fixed(8),
        Dim::Fixed(8),
    ];
    let g = lower_bytes(
        &model(&batch, conv_relu),
        "b.onnx",
        &LowerOptions::default(),
    )
    .expect("batch fixed to 1");
    assert_eq!(g.tensors[g.input].shape, vec![1, 3, 8, 8]);
    assert_eq!(g.tensors[g.output].shape, vec![1, 4, 6, 6]);

    let hw = [
        Dim::Symbolic("N".into()),
        Dim::Fixed(3),
        Dim::Symbolic("H".into()),
        Dim::Symbolic("W".into()),
    ];
    let onnx = model(&hw, conv_relu);
    let err = lower_bytes(&onnx, "hw.onnx", &LowerOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, LowerError::SymbolicDim { axis: 2, .. }),
        "{msg}"
    );
    assert!(msg.contains("'H'") && msg.contains("shape"), "{msg}");

    let opts = LowerOptions {
        input_shape: Some(vec![1, 3, 10, 12]),
    };
    let g = lower_bytes(&onnx, "hw.onnx", &opts).expect("shape given");
    assert_eq!(g.tensors[g.output].shape, vec![1, 4, 8, 10]);
}

#[test]
fn conv_bn_relu_fuses_into_one_op() {
    let onnx = model(&img(), |g| {
        g.initializer("w", &[4, 3, 3, 3], &[0.1; 108]);
        for n in ["gamma", "beta", "mean"] {
            g.initializer(n, &[4], &[0.5, 0.1, -0.2, 0.3]);
        }
        g.initializer("var", &[4], &[1.0; 4]);
        g.node(
            "conv",
            "Conv",
            &["x", "w"],
            &["c"],
            vec![Attribute::ints("kernel_shape", &[3, 3])],
        );
        g.node(
            "bn",
            "BatchNormalization",
            &["c", "gamma", "beta", "mean", "var"],
            &["b"],
            vec![],
        );
        g.node("relu", "Relu", &["b"], &["y"], vec![]);
    });
    let g = lower_bytes(&onnx, "cbr.onnx", &LowerOptions::default()).expect("lowers");
    let kinds: Vec<String> = g.ops.iter().map(|o| o.kind.to_string()).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(
        kinds[1].starts_with("conv 3x3") && kinds[1].ends_with("+Relu"),
        "{kinds:?}"
    );
}

//! A static batch of N > 1 images: the model lowers as its one-image graph
//! with `batch = N` when no op mixes the images (a symbolic batch is 1, with
//! a note saying so, unless the shape is given), and is refused, naming the
//! user's node, when one does (a Concat, reduction, Flatten or Transpose
//! over axis 0, or a constant that differs per image). The numbers are
//! checked against onnxruntime by kiln-codegen's `onnx_cases` fixtures
//! (onnx-ops/batch*).

use kiln_lower::{LowerError, LowerOptions, lower_bytes};
use kiln_onnx::{Attribute, Dim, GraphBuilder};

fn model(input: &[Dim], body: impl FnOnce(&mut GraphBuilder)) -> Vec<u8> {
    let mut g = GraphBuilder::new("t");
    g.opset(13);
    g.input("x", input);
    body(&mut g);
    g.output("y", None);
    g.encode()
}

fn batch(n: usize) -> Vec<Dim> {
    [n, 3, 8, 8].map(Dim::Fixed).to_vec()
}

fn conv(g: &mut GraphBuilder, y: &str) {
    g.initializer("w", &[4, 3, 3, 3], &[0.1; 108]);
    g.node(
        "conv",
        "Conv",
        &["x", "w"],
        &[y],
        vec![Attribute::ints("kernel_shape", &[3, 3])],
    );
}

/// The error lowering `onnx` gives; it must name `node` and `op` and say
/// why a batch of 3 cannot be compiled image by image.
fn refused(onnx: &[u8], node: &str, op: &str) -> String {
    let err = lower_bytes(onnx, "b.onnx", &LowerOptions::default()).unwrap_err();
    let msg = err.to_string();
    eprintln!("{}", msg.split(". kiln supports").next().unwrap_or(&msg));
    assert!(matches!(err, LowerError::Unsupported { .. }), "{msg}");
    assert!(
        msg.contains(&format!("'{node}' ({op})")) && msg.contains("batch of 3 images"),
        "{msg}"
    );
    msg
}

#[test]
fn static_batch_lowers_as_one_image_run_n_times() {
    let onnx = model(&batch(3), |g| {
        conv(g, "c");
        g.node("relu", "Relu", &["c"], &["r"], vec![]);
        g.node("gap", "GlobalAveragePool", &["r"], &["p"], vec![]);
        g.node("flat", "Flatten", &["p"], &["f"], vec![]);
        g.initializer(
            "fc.w",
            &[2, 4],
            &[0.5, -0.5, 0.25, 1.0, 0.0, 0.5, 0.5, -1.0],
        );
        g.node(
            "fc",
            "Gemm",
            &["f", "fc.w"],
            &["s"],
            vec![Attribute::int("transB", 1)],
        );
        g.node(
            "softmax",
            "Softmax",
            &["s"],
            &["y"],
            vec![Attribute::int("axis", 1)],
        );
    });
    let g = lower_bytes(&onnx, "b.onnx", &LowerOptions::default()).expect("lowers");
    assert_eq!(g.batch, 3);
    assert!(
        g.notes.is_empty(),
        "a fixed batch needs no note: {:?}",
        g.notes
    );
    assert_eq!(g.tensors[g.input].shape, [1, 3, 8, 8]);
    assert_eq!(g.tensors[g.output].shape, [1, 2]);
    assert_eq!(g.input_shape(), [3, 3, 8, 8]);
    assert_eq!(g.output_shape(), [3, 2]);
    assert_eq!((g.input_len(), g.output_len()), (3 * 192, 6));
    assert!(g.tensors.iter().all(|t| t.shape[0] == 1), "{g}");
}

#[test]
fn a_symbolic_batch_takes_the_given_size() {
    let dims = [
        Dim::Symbolic("N".into()),
        Dim::Fixed(3),
        Dim::Fixed(8),
        Dim::Fixed(8),
    ];
    let onnx = model(&dims, |g| conv(g, "y"));
    let one = lower_bytes(&onnx, "b.onnx", &LowerOptions::default()).expect("lowers");
    assert_eq!(one.batch, 1);
    assert_eq!(one.notes.len(), 1, "{:?}", one.notes);
    assert!(
        one.notes[0].contains("input 'x' has a symbolic batch 'N'")
            && one.notes[0].contains("one image per call")
            && one.notes[0].contains("--input-shape"),
        "{:?}",
        one.notes
    );
    let opts = LowerOptions {
        input_shape: Some(vec![4, 3, 8, 8]),
    };
    let four = lower_bytes(&onnx, "b.onnx", &opts).expect("lowers");
    assert_eq!(four.batch, 4);
    assert!(four.notes.is_empty(), "{:?}", four.notes);
    assert_eq!(four.output_shape(), [4, 4, 6, 6]);
    // the same one-image program
    assert_eq!(four.ops, one.ops);
}

#[test]
fn ops_across_the_batch_are_refused_naming_the_node() {
    let concat = model(&batch(3), |g| {
        conv(g, "c");
        g.node(
            "stack",
            "Concat",
            &["c", "c"],
            &["y"],
            vec![Attribute::int("axis", 0)],
        );
    });
    refused(&concat, "stack", "Concat");

    let reduce = model(&batch(3), |g| {
        conv(g, "c");
        g.node(
            "batch_mean",
            "ReduceMean",
            &["c"],
            &["y"],
            vec![Attribute::ints("axes", &[0])],
        );
    });
    refused(&reduce, "batch_mean", "ReduceMean");

    let flatten = model(&batch(3), |g| {
        conv(g, "c");
        g.node(
            "flat0",
            "Flatten",
            &["c"],
            &["y"],
            vec![Attribute::int("axis", 0)],
        );
    });
    refused(&flatten, "flat0", "Flatten");

    let transpose = model(&batch(3), |g| {
        conv(g, "c");
        g.node(
            "swap",
            "Transpose",
            &["c"],
            &["y"],
            vec![Attribute::ints("perm", &[1, 0, 2, 3])],
        );
    });
    refused(&transpose, "swap", "Transpose");

    let softmax = model(&batch(3), |g| {
        conv(g, "c");
        g.node(
            "over_images",
            "Softmax",
            &["c"],
            &["y"],
            vec![Attribute::int("axis", 0)],
        );
    });
    let msg = refused(&softmax, "over_images", "Softmax");
    assert!(msg.contains("a softmax over axis 0"), "{msg}");

    let per_image = model(&batch(3), |g| {
        conv(g, "c");
        g.initializer("k", &[3, 1, 1, 1], &[1.0, 2.0, 3.0]);
        g.node("scale", "Mul", &["c", "k"], &["y"], vec![]);
    });
    let msg = refused(&per_image, "scale", "Mul");
    assert!(msg.contains("differs along the batch axis"), "{msg}");
}

#[test]
fn quantized_models_keep_batch_one() {
    let mut g = GraphBuilder::new("q");
    g.opset(13);
    g.input("x", &batch(2));
    g.initializer("s", &[], &[0.1]);
    g.initializer_i64("z", &[], &[0]);
    g.node("q", "QuantizeLinear", &["x", "s"], &["xq"], vec![]);
    g.node("dq", "DequantizeLinear", &["xq", "s"], &["y"], vec![]);
    g.output("y", None);
    let err = lower_bytes(&g.encode(), "q.onnx", &LowerOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("'x'") && msg.contains("batch size 2") && msg.contains("batch 1"),
        "{msg}"
    );
}

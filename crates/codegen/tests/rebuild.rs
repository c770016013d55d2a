//! Rebuilding a model after another one in the shared target dir gives the
//! model's own program again, not a stale artifact: models A, B, A built in
//! turn, A's third build must behave as its first and unlike B.
//!
//! Host programs are run on one input; wasm modules (no runner in this
//! crate) are compared byte for byte, since a stale module would be B's file.

mod common;

use std::path::{Path, PathBuf};

use common::{run_binary, scratch, values};
use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_lower::LowerOptions;
use kiln_onnx::{Attribute, Dim, GraphBuilder};

const SHAPE: [usize; 4] = [1, 3, 6, 6];

/// A 3x3 conv model on `SHAPE`: same shapes for A and B, so a stale program
/// would still accept the input and only its numbers would differ.
fn model(weight_seed: u64) -> kiln_ir::Graph {
    let mut g = GraphBuilder::new("rebuild");
    g.input("x", &SHAPE.map(Dim::Fixed));
    g.initializer("w", &[4, 3, 3, 3], &values(4 * 3 * 3 * 3, weight_seed));
    g.node(
        "conv",
        "Conv",
        &["x", "w"],
        &["y"],
        vec![
            Attribute::ints("kernel_shape", &[3, 3]),
            Attribute::ints("pads", &[1, 1, 1, 1]),
        ],
    );
    g.output("y", None);
    kiln_lower::lower_bytes(&g.encode(), "rebuild", &LowerOptions::default())
        .expect("the conv model lowers")
}

/// Generates `graph` into `crate_dir` and builds it for `target` into the
/// shared generated-crate target dir; returns the artifact's bytes or, for a
/// program, its output on a fixed input.
fn build_and_observe(graph: &kiln_ir::Graph, crate_dir: &Path, target: BuildTarget) -> Vec<u8> {
    kiln_codegen::generate(graph, crate_dir, &GenerateOptions::new("rebuild")).expect("generates");
    let artifact = kiln_codegen::build(crate_dir, target, &kiln_codegen::default_target_dir())
        .unwrap_or_else(|e| panic!("{e}"));
    match target {
        BuildTarget::Wasm32 => std::fs::read(&artifact).expect("wasm module"),
        _ => {
            let input = values(SHAPE.iter().product(), 5);
            run_binary(&artifact, &[], &input)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()
        }
    }
}

fn a_b_a(dirs: [PathBuf; 3], target: BuildTarget) {
    let (a, b) = (model(1), model(2));
    let first = build_and_observe(&a, &dirs[0], target);
    let other = build_and_observe(&b, &dirs[1], target);
    let again = build_and_observe(&a, &dirs[2], target);
    assert_ne!(first, other, "{target:?}: models A and B must differ");
    assert!(
        again == first,
        "{target:?}: A rebuilt after B is not A's first build{}",
        if again == other { " (it is B's)" } else { "" }
    );
}

#[test]
fn a_model_rebuilt_after_another_in_its_own_folder_is_itself() {
    for target in [BuildTarget::Host, BuildTarget::Wasm32] {
        let base = scratch(&format!("rebuild-folders-{target:?}"));
        let (a, b) = (base.join("a"), base.join("b"));
        a_b_a([a.clone(), b, a], target);
    }
}

#[test]
fn a_model_rebuilt_after_another_in_the_same_folder_is_itself() {
    // As `xtask measure --out DIR` does for successive models.
    for target in [BuildTarget::Host, BuildTarget::Wasm32] {
        let dir = scratch(&format!("rebuild-shared-folder-{target:?}"));
        a_b_a([dir.clone(), dir.clone(), dir], target);
    }
}

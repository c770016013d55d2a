//! A bundle of generated one-layer models built once for wasm32 and run model
//! by model under the simulated device, each's `infer` and its `io` alone.

use std::path::PathBuf;
use std::sync::OnceLock;

use kiln_codegen::{BuildTarget, GenerateOptions, Generated};
use kiln_measure::sim::{BundlePart, SimBundle, SimError, SimLimits, SimModule};
use kiln_onnx::{Attribute, Dim, GraphBuilder};

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| ((i * 37 + seed * 11) % 29) as f32 / 14.5 - 1.0)
        .collect()
}

fn graph(name: &str, shape: &[usize], body: impl FnOnce(&mut GraphBuilder)) -> kiln_ir::Graph {
    let mut g = GraphBuilder::new(name);
    g.input(
        "x",
        &shape.iter().map(|d| Dim::Fixed(*d)).collect::<Vec<_>>(),
    );
    body(&mut g);
    g.output("y", None);
    kiln_lower::lower_bytes(&g.encode(), name, &Default::default()).expect("lowers")
}

/// A 3x3 conv on an image, a ReLU (in place on its input) and a dense layer.
fn graphs() -> Vec<kiln_ir::Graph> {
    vec![
        graph("conv", &[1, 3, 8, 8], |g| {
            g.initializer("w", &[6, 3, 3, 3], &values(162, 1));
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
        }),
        graph("relu", &[1, 4, 5, 3], |g| {
            g.node("relu", "Relu", &["x"], &["y"], vec![]);
        }),
        graph("dense", &[1, 24], |g| {
            g.initializer("w", &[10, 24], &values(240, 2))
                .initializer("b", &[10], &values(10, 3));
            g.node(
                "fc",
                "Gemm",
                &["x", "w", "b"],
                &["y"],
                vec![Attribute::int("transB", 1)],
            );
        }),
    ]
}

fn scratch(name: &str) -> PathBuf {
    kiln_codegen::default_target_dir().join("tests").join(name)
}

struct Built {
    bundle: PathBuf,
    generated: Vec<Generated>,
    /// Each graph built alone, wasm32.
    singles: Vec<PathBuf>,
}

/// The bundle and each model alone, generated and built for wasm32 once.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let graphs = graphs();
        let refs: Vec<_> = graphs.iter().collect();
        let target = kiln_codegen::default_target_dir();
        let dir = scratch("sim-bundle");
        let generated = kiln_codegen::generate_bundle(&refs, &dir, &GenerateOptions::new("sim"))
            .expect("bundle generates");
        let bundle = kiln_codegen::build_bin(&dir, "kiln-bundle", BuildTarget::Wasm32, &target)
            .unwrap_or_else(|e| panic!("{e}"));
        let singles = graphs
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let dir = scratch(&format!("sim-bundle-single-{i}"));
                kiln_codegen::generate(g, &dir, &GenerateOptions::new("single"))
                    .expect("generates");
                kiln_codegen::build(&dir, BuildTarget::Wasm32, &target)
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        Built {
            bundle,
            generated,
            singles,
        }
    })
}

#[test]
fn the_bundle_lists_its_models_and_runs_each_like_its_own_build() {
    let b = built();
    let bundle = SimBundle::load(&b.bundle).unwrap();
    assert_eq!(bundle.count(), 3);
    for (i, g) in b.generated.iter().enumerate() {
        assert_eq!(bundle.input_len(i).unwrap(), g.input_len, "model {i}");
        assert_eq!(bundle.output_len(i).unwrap(), g.output_len, "model {i}");
    }
    assert_eq!(b.generated[0].input_len, 3 * 8 * 8);
    assert_eq!(b.generated[2].output_len, 10);
    let limits = SimLimits::default();
    for (i, single) in b.singles.iter().enumerate() {
        let x = values(b.generated[i].input_len, 7 + i as u32);
        let alone = SimModule::load(single).unwrap().run(&x, &limits).unwrap();
        let run = bundle.run(i, &x, BundlePart::Infer, &limits).unwrap();
        assert_eq!(run.output, alone.output, "model {i}");
        assert!(run.peak_memory_bytes >= 65536, "{}", run.peak_memory_bytes);
    }
    // The ReLU runs in place on the input's buffer: `io` gives the input back
    // through both moves (negatives kept), `infer` clips it.
    let x = values(60, 4);
    assert!(x.iter().any(|v| *v < 0.0));
    let io = bundle.run(1, &x, BundlePart::Io, &limits).unwrap();
    assert_eq!(io.output, x);
    let infer = bundle.run(1, &x, BundlePart::Infer, &limits).unwrap();
    let relu: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
    assert_eq!(infer.output, relu);
}

#[test]
fn io_costs_less_than_infer_and_both_are_deterministic() {
    let b = built();
    let limits = SimLimits::default();
    let first = SimBundle::load(&b.bundle).unwrap();
    let again = SimBundle::load(&b.bundle).unwrap();
    for i in 0..first.count() {
        let x = values(first.input_len(i).unwrap(), 11);
        let fuel = |bundle: &SimBundle, part| bundle.run(i, &x, part, &limits).unwrap().fuel;
        let (infer, io) = (
            fuel(&first, BundlePart::Infer),
            fuel(&first, BundlePart::Io),
        );
        eprintln!("model {i}: fuel infer {infer}, io {io}");
        assert!(io > 0, "model {i}: io fuel {io}");
        assert!(io < infer, "model {i}: io {io} >= infer {infer}");
        assert_eq!(fuel(&first, BundlePart::Infer), infer, "model {i}");
        assert_eq!(fuel(&first, BundlePart::Io), io, "model {i}");
        assert_eq!(fuel(&again, BundlePart::Infer), infer, "model {i}");
        assert_eq!(fuel(&again, BundlePart::Io), io, "model {i}");
        // another input, the same work: the layer's figure does not move
        let y = values(x.len(), 12);
        let run = |part| first.run(i, &y, part, &limits).unwrap().fuel;
        assert_eq!(
            run(BundlePart::Infer) - run(BundlePart::Io),
            infer - io,
            "model {i}"
        );
    }
}

#[test]
fn an_index_out_of_range_or_a_wrong_input_is_an_error() {
    let b = built();
    let bundle = SimBundle::load(&b.bundle).unwrap();
    let limits = SimLimits::default();
    let err = bundle
        .run(3, &[0.0; 4], BundlePart::Infer, &limits)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SimError::BundleIndex {
                index: 3,
                count: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("no model 3"), "{err}");
    assert!(matches!(
        bundle.input_len(usize::MAX),
        Err(SimError::BundleIndex { count: 3, .. })
    ));
    assert!(bundle.output_len(3).is_err());
    let err = bundle
        .run(2, &[0.0; 23], BundlePart::Io, &limits)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SimError::InputLength {
                expected: 24,
                got: 23,
                ..
            }
        ),
        "{err:?}"
    );
    // a single model's build is not a bundle
    let err = SimBundle::load(&b.singles[0]).unwrap_err();
    assert!(
        matches!(
            err,
            SimError::MissingExport {
                name: "kiln_bundle_count",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn the_wasm_traps_on_an_index_out_of_range() {
    use wasmtime::{Engine, Instance, Module, Store, Trap};
    let b = built();
    let engine = Engine::default();
    let module = Module::from_file(&engine, &b.bundle).unwrap();
    for export in ["kiln_bundle_infer", "kiln_bundle_io"] {
        for index in [3, -1] {
            let mut store = Store::new(&engine, ());
            let instance = Instance::new(&mut store, &module, &[]).unwrap();
            let f = instance
                .get_typed_func::<i32, ()>(&mut store, export)
                .unwrap();
            let err = f.call(&mut store, index).unwrap_err();
            assert_eq!(
                err.downcast_ref::<Trap>(),
                Some(&Trap::UnreachableCodeReached),
                "{export}({index}): {err:#}"
            );
        }
    }
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    for export in ["kiln_bundle_input_len", "kiln_bundle_output_len"] {
        let f = instance
            .get_typed_func::<i32, i32>(&mut store, export)
            .unwrap();
        assert_eq!(
            f.call(&mut store, 2).unwrap(),
            if export.contains("input") { 24 } else { 10 }
        );
        assert!(f.call(&mut store, 3).is_err(), "{export}(3)");
    }
}

//! A bundle's models each get `io` beside `infer` (the input move and the
//! final copy out alone, which latency tables subtract), the bundle's program
//! runs it with `--io`, and its wasm32 build gets the bundle exports.

mod common;

use std::process::{Command, Stdio};

use common::{Case, max_abs_diff, run_binary, scratch, tract_run, values};
use kiln_codegen::program::BenchLine;
use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_onnx::{Attribute, Dim, GraphBuilder};

fn case(name: &str, shape: &[usize], body: impl FnOnce(&mut GraphBuilder)) -> Case {
    let mut g = GraphBuilder::new(name);
    g.input(
        "x",
        &shape.iter().map(|d| Dim::Fixed(*d)).collect::<Vec<_>>(),
    );
    body(&mut g);
    g.output("y", None);
    Case {
        name: name.into(),
        onnx: g.encode(),
        shape: shape.to_vec(),
    }
}

/// A 3x3 conv on an image, a ReLU (in place on the input) and a dense layer.
fn cases() -> Vec<Case> {
    vec![
        case("conv", &[1, 3, 6, 6], |g| {
            g.initializer("w", &[4, 3, 3, 3], &values(108, 11));
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
        case("relu", &[1, 4, 5, 3], |g| {
            g.node("relu", "Relu", &["x"], &["y"], vec![]);
        }),
        case("dense", &[1, 12], |g| {
            g.initializer("w", &[5, 12], &values(60, 8))
                .initializer("b", &[5], &values(5, 9));
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

fn graphs(cases: &[Case]) -> Vec<kiln_ir::Graph> {
    cases
        .iter()
        .map(|c| kiln_lower::lower_bytes(&c.onnx, &c.name, &Default::default()).expect("lowers"))
        .collect()
}

/// The statements of function `name` in `src` (from `pub fn name(` to the
/// first line that is `}`), each without its trailing comment.
fn body(src: &str, name: &str) -> Vec<String> {
    let start = src
        .find(&format!("pub fn {name}("))
        .unwrap_or_else(|| panic!("no fn {name} in\n{src}"));
    src[start..]
        .lines()
        .skip(1)
        .take_while(|l| *l != "}")
        .map(|l| l.split(" // ").next().unwrap_or(l).trim().to_string())
        .collect()
}

/// `io` is `infer`'s arena lock, its first op (the input in) and its last
/// statement (the copy out), nothing else.
fn assert_io_matches_infer(src: &str) {
    let infer = body(src, "infer");
    let io = body(src, "io");
    assert!(infer.len() >= 5, "{infer:?}");
    let lock = &infer[..2];
    assert_eq!(
        lock,
        [
            "let mut arena = ARENA.lock();",
            "let a: &mut [f32] = &mut arena;"
        ]
    );
    assert!(infer[2].starts_with("let w = "), "{infer:?}");
    let (input, copy_out) = (&infer[3], &infer[infer.len() - 1]);
    assert!(
        input.contains("(input"),
        "the first op reads the input: {infer:?}"
    );
    assert!(
        copy_out.contains("output"),
        "the last statement writes the output: {infer:?}"
    );
    let want = [
        lock[0].as_str(),
        lock[1].as_str(),
        input.as_str(),
        copy_out.as_str(),
    ];
    assert_eq!(io, want, "infer: {infer:?}");
}

#[test]
fn io_repeats_exactly_the_input_move_and_copy_out_of_infer() {
    let cases = cases();
    let graphs = graphs(&cases);
    for (g, c) in graphs.iter().zip(&cases) {
        let dir = scratch(&format!("io-single-{}", c.name));
        kiln_codegen::generate(g, &dir, &GenerateOptions::new(&c.name)).expect("generates");
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("lib.rs");
        assert_io_matches_infer(&lib);
        assert!(lib.contains("wasm_entry!(crate::infer,"), "{lib}");
    }
    let refs: Vec<_> = graphs.iter().collect();
    let dir = scratch("io-bundle-source");
    kiln_codegen::generate_bundle(&refs, &dir, &GenerateOptions::new("io")).expect("generates");
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("lib.rs");
    for i in 0..refs.len() {
        let module = lib
            .split(&format!("pub mod m{i} {{"))
            .nth(1)
            .unwrap_or_else(|| panic!("no module m{i}"));
        assert_io_matches_infer(module);
    }
    assert!(
        lib.trim_end()
            .ends_with("kiln_runtime::wasm_bundle_entry!(m0, m1, m2);"),
        "{lib}"
    );
    // the bundle's sources, like a model's, leave `unsafe` to the runtime
    let main = std::fs::read_to_string(dir.join("src/main.rs")).expect("main.rs");
    for (file, text) in [("lib.rs", &lib), ("main.rs", &main)] {
        assert!(!text.contains("unsafe"), "the bundle's {file} has `unsafe`");
    }
    // the planted mismatch is caught
    let broken = lib.replacen("pub fn io(", "pub fn io_gone(", 1);
    assert!(std::panic::catch_unwind(|| assert_io_matches_infer(&broken)).is_err());
}

#[test]
fn the_bundle_program_runs_infer_or_io_and_benches_either() {
    let cases = cases();
    let graphs = graphs(&cases);
    let refs: Vec<_> = graphs.iter().collect();
    let dir = scratch("io-bundle-host");
    let generated =
        kiln_codegen::generate_bundle(&refs, &dir, &GenerateOptions::new("io")).expect("generates");
    let bin = kiln_codegen::build_bin(
        &dir,
        "kiln-bundle",
        BuildTarget::Host,
        &kiln_codegen::default_target_dir(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    for (i, (c, g)) in cases.iter().zip(&generated).enumerate() {
        let x = values(g.input_len, 30 + i as u64);
        let infer = run_binary(&bin, &[&i.to_string()], &x);
        let want = tract_run(&c.onnx, &c.shape, &x);
        assert!(max_abs_diff(&infer, &want) <= 1e-5, "{}", c.name);
        let io = run_binary(&bin, &[&i.to_string(), "--io"], &x);
        assert_eq!(io.len(), g.output_len, "{}", c.name);
    }
    // The ReLU runs in place on the input's buffer, so `io` hands the input
    // back through both moves, negatives and all, where `infer` clips them.
    let x = values(generated[1].input_len, 5);
    assert!(x.iter().any(|v| *v < 0.0));
    assert_eq!(run_binary(&bin, &["1", "--io"], &x), x);
    assert_ne!(run_binary(&bin, &["1"], &x), x);

    for part in [&["--io"][..], &[]] {
        let args = [&["0"], part, &["--bench", "--warmup", "2", "--runs", "5"]].concat();
        let out = Command::new(&bin)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                let bytes: Vec<u8> = values(generated[0].input_len, 1)
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                child.stdin.take().expect("stdin").write_all(&bytes)?;
                child.wait_with_output()
            })
            .expect("the bundle program runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = BenchLine::parse(&String::from_utf8_lossy(&out.stdout), "host")
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(line.runs, 5, "{args:?}");
    }
}

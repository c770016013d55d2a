//! The generated `no_std` device program (`src/main.rs` of a model crate)
//! keeps the command-line contract kiln-measure and kiln-deploy rely on
//! (specified in `kiln_codegen::program`, crates/codegen/src/program.rs), and
//! the aarch64 build of MobileNetV2-0.5 keeps its code within the issue's
//! 64 KiB, matching the host build under qemu.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{max_abs_diff, run_binary, scratch, values};
use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_onnx::{Attribute, Dim, ExportOptions, GraphBuilder, Weights};
use kiln_space::{Architecture, Genome, InputSpec, Space};

const SHAPE: [usize; 4] = [1, 3, 6, 6];
const INPUT_LEN: usize = 3 * 6 * 6;
const OUTPUT_LEN: usize = 4 * 6 * 6;

fn conv_model() -> kiln_ir::Graph {
    let mut g = GraphBuilder::new("program");
    g.input("x", &SHAPE.map(Dim::Fixed));
    g.initializer("w", &[4, 3, 3, 3], &values(4 * 3 * 3 * 3, 11));
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
    kiln_lower::lower_bytes(&g.encode(), "program", &Default::default()).expect("lowers")
}

fn build(graph: &kiln_ir::Graph, name: &str, target: BuildTarget) -> PathBuf {
    let dir = scratch(name);
    kiln_codegen::generate(graph, &dir, &GenerateOptions::new(name)).expect("generates");
    kiln_codegen::build(&dir, target, &kiln_codegen::default_target_dir())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Runs `runner program args` with `stdin`, whatever its exit status.
fn run(runner: Option<&str>, program: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = match runner {
        Some(r) => {
            let mut c = Command::new(r);
            c.arg(program);
            c
        }
        None => Command::new(program),
    };
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program starts");
    // a program that rejects its arguments may exit before reading stdin
    let _ = child.stdin.take().expect("stdin").write_all(stdin);
    child.wait_with_output().expect("the program runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The bench JSON line (the last line starting with `{`), checked coherent.
fn bench_json(o: &Output, runs: u64, source: &str) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in {stdout:?}; stderr {}", stderr(o)));
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("`{line}` is not JSON: {e}"));
    assert_eq!(v["source"], source, "{line}");
    assert_eq!(v["runs"], runs, "{line}");
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {line}"));
    assert!(
        0.0 <= f("min_us")
            && f("min_us") <= f("p50_us")
            && f("p50_us") <= f("p95_us")
            && f("p95_us") <= f("max_us"),
        "{line}"
    );
    assert!(v["peak_rss_kib"].as_u64().is_some_and(|k| k > 0), "{line}");
    v
}

#[test]
fn the_program_keeps_the_command_line_contract() {
    let bin = build(&conv_model(), "program-cli", BuildTarget::Host);
    let dir = bin.parent().expect("out dir").to_path_buf();
    let x = values(INPUT_LEN, 3);
    let input = dir.join("input.bin");
    std::fs::write(&input, le_bytes(&x)).expect("input file");
    let input = input.to_str().expect("utf-8 path");

    // inference: stdin or file, LE f32 out, exit 0
    let from_stdin = run(None, &bin, &[], &le_bytes(&x));
    let from_file = run(None, &bin, &[input], &[]);
    assert_eq!(from_stdin.status.code(), Some(0), "{}", stderr(&from_stdin));
    assert_eq!(from_file.status.code(), Some(0), "{}", stderr(&from_file));
    assert_eq!(from_stdin.stdout.len(), OUTPUT_LEN * 4);
    assert_eq!(from_stdin.stdout, from_file.stdout);
    assert_eq!(le_bytes(&run_binary(&bin, &[], &x)), from_stdin.stdout);

    // wrong input, unknown option, bad numbers: exit 2 with a message
    let short = run(None, &bin, &[], &[0; 8]);
    assert_eq!(short.status.code(), Some(2));
    assert!(
        stderr(&short).contains("expected 432 bytes (108 f32), got 8"),
        "{}",
        stderr(&short)
    );
    let long = run(None, &bin, &[], &vec![0; INPUT_LEN * 4 + 10_000]);
    assert_eq!(long.status.code(), Some(2));
    assert!(stderr(&long).contains("got 10432"), "{}", stderr(&long));
    let missing = run(None, &bin, &["/nonexistent/kiln-input.bin"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("cannot read /nonexistent/kiln-input.bin: No such file"),
        "{}",
        stderr(&missing)
    );
    let unknown = run(None, &bin, &["--fast"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("unknown option --fast\nusage: kiln-model"));
    for args in [
        &["--bench", "--runs", "ten"][..],
        &["--bench", "--warmup"],
        &["--expect"],
        &["--source", "a b"],
    ] {
        let o = run(None, &bin, args, &le_bytes(&x));
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains("usage: kiln-model"), "{args:?}");
    }
    let help = run(None, &bin, &["--help"], &[]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: kiln-model"));

    // bench: one JSON line; the timing samples have a stated maximum
    let bench = run(
        None,
        &bin,
        &["--bench", "--warmup", "1", "--runs", "7"],
        &le_bytes(&x),
    );
    assert_eq!(bench.status.code(), Some(0), "{}", stderr(&bench));
    assert!(bench_json(&bench, 7, "host")["output_check"].is_null());
    let too_many = run(None, &bin, &["--bench", "--runs", "10001", input], &[]);
    assert_eq!(too_many.status.code(), Some(2));
    assert!(stderr(&too_many).contains("10000"), "{}", stderr(&too_many));
    let at_most = run(
        None,
        &bin,
        &["--bench", "--warmup", "0", "--runs", "10000", input],
        &[],
    );
    assert_eq!(at_most.status.code(), Some(0), "{}", stderr(&at_most));
    bench_json(&at_most, 10_000, "host");
    let zero = run(None, &bin, &["--bench", "--runs", "0", input], &[]);
    assert_eq!(zero.status.code(), Some(0), "{}", stderr(&zero));
    bench_json(&zero, 1, "host");

    // output check (kiln flash): pass, fail by a margin, fail by NaN
    let expected = dir.join("expected.bin");
    std::fs::write(&expected, &from_file.stdout).expect("expected file");
    let expected = expected.to_str().expect("utf-8 path");
    let check = |expect: &str| {
        let args = [
            "--bench", "--warmup", "0", "--runs", "3", "--expect", expect,
        ];
        run(
            None,
            &bin,
            &[&args[..], &["--source", "device", input]].concat(),
            &[],
        )
    };
    let ok = check(expected);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let c = &bench_json(&ok, 3, "device")["output_check"];
    assert_eq!(c["passed"], true);
    assert_eq!(c["max_abs_err"].as_f64(), Some(0.0));
    assert_eq!(c["tolerance"].as_f64(), Some(1e-4));

    let mut y: Vec<f32> = from_file
        .stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    y[5] += 0.01;
    let off = dir.join("off.bin");
    std::fs::write(&off, le_bytes(&y)).expect("off file");
    let failed = check(off.to_str().expect("utf-8"));
    assert_eq!(failed.status.code(), Some(3), "{}", stderr(&failed));
    let c = &bench_json(&failed, 3, "device")["output_check"];
    assert_eq!(c["passed"], false);
    let err = c["max_abs_err"].as_f64().expect("a number");
    assert!((err - 0.01).abs() < 1e-6, "max abs err {err}");
    assert!(stderr(&failed).contains("output differs from"));

    y[5] = f32::NAN;
    std::fs::write(&off, le_bytes(&y)).expect("nan file");
    let nan = check(off.to_str().expect("utf-8"));
    assert_eq!(nan.status.code(), Some(3));
    let c = &bench_json(&nan, 3, "device")["output_check"];
    assert!(c["max_abs_err"].is_null() && c["passed"] == false);

    let wrong = check(input);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(stderr(&wrong).contains("expected 576 bytes (144 f32), got 432"));
}

/// `.text` bytes of an ELF file.
fn text_bytes(path: &Path) -> u64 {
    use object::{Object, ObjectSection};
    let data = std::fs::read(path).expect("read the program");
    let file = object::File::parse(&*data).expect("an ELF file");
    file.section_by_name(".text")
        .expect("a .text section")
        .size()
}

#[test]
fn mobilenetv2_half_aarch64_code_fits_64_kib_and_matches_the_host_under_qemu() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let space = Space::load(&root.join("spaces/mobilenetv2.toml")).expect("space");
    let genome = Genome::load(&root.join("spaces/mobilenetv2-0.5.json"), &space).expect("genome");
    let input = InputSpec {
        channels: 3,
        height: 96,
        width: 96,
        classes: 10,
    };
    let arch = Architecture::new(&space, &genome, input).expect("fits");
    let onnx = kiln_onnx::export(&arch, &Weights::random(&arch, 7), &ExportOptions::default())
        .expect("exports");
    let graph =
        kiln_lower::lower_bytes(&onnx, "mobilenetv2-0.5", &Default::default()).expect("lowers");
    let host = build(&graph, "program-mnv2-host", BuildTarget::Host);
    let device = build(&graph, "program-mnv2-aarch64", BuildTarget::Aarch64Musl);

    let text = text_bytes(&device);
    eprintln!("mobilenetv2-0.5 aarch64 .text: {text} bytes");
    assert!(text <= 64 * 1024, "aarch64 code is {text} bytes");

    let x = values(3 * 96 * 96, 21);
    let want = run_binary(&host, &[], &x);
    let out = run(Some("qemu-aarch64"), &device, &[], &le_bytes(&x));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got: Vec<f32> = out
        .stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let err = max_abs_diff(&got, &want);
    assert!(err <= 1e-5, "aarch64 under qemu vs host: max abs err {err}");

    // the flash-style bench, as the device runs it
    let dir = device.parent().expect("out dir");
    std::fs::write(dir.join("expected.bin"), le_bytes(&want)).expect("expected");
    std::fs::write(dir.join("input.bin"), le_bytes(&x)).expect("input");
    let bench = run(
        Some("qemu-aarch64"),
        &device,
        &[
            "--bench",
            "--warmup",
            "0",
            "--runs",
            "2",
            "--expect",
            dir.join("expected.bin").to_str().expect("utf-8"),
            "--source",
            "device",
            dir.join("input.bin").to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(bench.status.code(), Some(0), "{}", stderr(&bench));
    assert_eq!(
        bench_json(&bench, 2, "device")["output_check"]["passed"],
        true
    );
}

/// A `no_std` program on `kiln_runtime::linux_main!`: its exit status is
/// what its main returns, and a panic names its source line and aborts
/// (SIGABRT, as std's `panic = "abort"`), without `core::fmt`.
#[test]
fn linux_main_returns_the_status_and_a_panic_names_its_location() {
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch("program-panic-probe");
    std::fs::create_dir_all(dir.join("src")).expect("crate dir");
    let runtime = kiln_codegen::default_runtime_path();
    let toml = format!(
        "[package]\nname = \"kiln-panic-probe\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\nkiln-runtime = {{ path = \"{}\" }}\n\n\
         [profile.release]\npanic = \"abort\"\n\n[profile.dev]\npanic = \"abort\"\n\n[workspace]\n",
        runtime.display()
    );
    std::fs::write(dir.join("Cargo.toml"), toml).expect("Cargo.toml");
    let main = "#![no_std]\n#![no_main]\nkiln_runtime::linux_main!(crate::run);\n\
                fn run(args: kiln_runtime::linux::Args) -> u8 {\n    let n = args.count();\n    \
                let statuses = [40u8, 41];\n    statuses[core::hint::black_box(n)]\n}\n";
    std::fs::write(dir.join("src/main.rs"), main).expect("main.rs");
    let bin = kiln_codegen::build_bin(
        &dir,
        "kiln-panic-probe",
        BuildTarget::Host,
        &kiln_codegen::default_target_dir(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let ok = run(None, &bin, &[], &[]);
    assert_eq!(ok.status.code(), Some(41), "{}", stderr(&ok));
    let panicked = run(None, &bin, &["one", "two"], &[]);
    assert_eq!(panicked.status.signal(), Some(6), "{:?}", panicked.status);
    assert_eq!(
        stderr(&panicked),
        "kiln program panicked at src/main.rs:7\n"
    );
}

/// A batch of N images (issue 19): the program reads N inputs and writes N
/// outputs, each what the one-image program gives for that image; the
/// arena is the one-image program's, and a batch-1 crate has no loop.
#[test]
fn a_batch_runs_the_one_image_program_image_by_image() {
    let one = conv_model();
    let mut three = one.clone();
    three.batch = 3;
    let generate = |g: &kiln_ir::Graph, name: &str| {
        let dir = scratch(name);
        let out = kiln_codegen::generate(g, &dir, &GenerateOptions::new(name)).expect("generates");
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("lib.rs");
        (out, lib)
    };
    let (g1, lib1) = generate(&one, "program-batch1");
    let (g3, lib3) = generate(&three, "program-batch3");
    assert_eq!((g1.input_len, g1.output_len), (INPUT_LEN, OUTPUT_LEN));
    assert_eq!(
        (g3.input_len, g3.output_len),
        (3 * INPUT_LEN, 3 * OUTPUT_LEN)
    );
    assert_eq!(g3.plan.arena_len, g1.plan.arena_len);
    assert!(
        !lib1.contains("chunks_exact") && !lib1.contains("BATCH"),
        "{lib1}"
    );
    assert!(
        lib3.contains("pub const BATCH: usize = 3;")
            && lib3.contains("the [3,3,6,6] tensor")
            && lib3.contains("chunks_exact(IMAGE_INPUT_LEN)"),
        "{lib3}"
    );
    let bin1 = build(&one, "program-batch1", BuildTarget::Host);
    let bin3 = build(&three, "program-batch3", BuildTarget::Host);
    let images: Vec<Vec<f32>> = (0..3).map(|i| values(INPUT_LEN, 20 + i)).collect();
    let got = run_binary(&bin3, &[], &images.concat());
    let want: Vec<f32> = images
        .iter()
        .flat_map(|x| run_binary(&bin1, &[], x))
        .collect();
    assert_eq!(got, want);
    assert_ne!(got[..OUTPUT_LEN], got[OUTPUT_LEN..2 * OUTPUT_LEN]);
}

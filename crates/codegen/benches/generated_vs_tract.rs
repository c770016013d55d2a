//! Generated code vs tract (optimized plan, one thread) and onnxruntime (CPU
//! provider, one thread) on the same ONNX: MobileNetV2-0.5, MnasNet-0.5, an
//! FBNet-style network (`bench/nets/`) and two random genomes of the default
//! space, all at 96x96x3 / 10 classes. Everything is measured on this machine
//! (source: host).
//!
//! Besides the criterion groups (kiln and tract), an alternating run prints
//! per model the best time of each engine over `ROUNDS` rounds (kiln, tract,
//! onnxruntime in turn; each engine `WARMUP` runs then `RUNS` timed ones per
//! round; kiln and onnxruntime in a fresh process each round), the ratios of
//! the best times and the median of the per-round p50 ratios, the arena
//! against its lower bound, and the lower + generate + build time of a fresh
//! candidate.
//!
//! onnxruntime runs through `scripts/ort-bench.py` under the interpreter named
//! by `KILN_ORT_PYTHON` (a Python with the `onnxruntime` and `numpy` wheels);
//! without it the onnxruntime column is left out.
//!
//! kiln's program is one bundle of the five networks; with `KILN_BENCH_ALONE`
//! set (to anything) each network is built as a bundle of its own instead,
//! by the same path (to compare: the code LLVM makes of a kernel depends on
//! the other call sites in the program). `KILN_BENCH_ONLY=NAME[,NAME]` times
//! only those networks (the bundle still holds all five) and
//! `KILN_BENCH_ROUNDS=N` sets the rounds (default 5).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_main};
use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_onnx::{ExportOptions, Weights};
use kiln_space::{Architecture, Genome, InputSpec, Space};
use rand::SeedableRng;
use tract_onnx::prelude::*;

const INPUT: InputSpec = InputSpec {
    channels: 3,
    height: 96,
    width: 96,
    classes: 10,
};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

struct Model {
    name: String,
    onnx: Vec<u8>,
}

fn models() -> Vec<Model> {
    let export = |space: &Space, genome: &Genome, seed| {
        let arch = Architecture::new(space, genome, INPUT).expect("fits");
        kiln_onnx::export(
            &arch,
            &Weights::random(&arch, seed),
            &ExportOptions::default(),
        )
        .expect("export")
    };
    let mnv2 = Space::load(&repo("spaces/mobilenetv2.toml")).expect("space");
    let g = Genome::load(&repo("spaces/mobilenetv2-0.5.json"), &mnv2).expect("genome");
    let mut out = vec![Model {
        name: "mobilenetv2-0.5".into(),
        onnx: export(&mnv2, &g, 1),
    }];
    // Spaces of one choice per decision have one genome; the FBNet space's
    // is a fixed sample.
    for (name, seed) in [("mnasnet-0.5", 2), ("fbnet", 3)] {
        let space = Space::load(&repo(&format!("bench/nets/{name}.toml"))).expect("space");
        let g = Genome::sample(&space, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        out.push(Model {
            name: name.into(),
            onnx: export(&space, &g, seed),
        });
    }
    let space = Space::load(&repo("spaces/mobile.toml")).expect("space");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(77);
    for i in 0..2 {
        let g = Genome::sample(&space, &mut rng);
        out.push(Model {
            name: format!("genome-{}", g.id()),
            onnx: export(&space, &g, 10 + i),
        });
    }
    out
}

fn input() -> Vec<f32> {
    (0..INPUT.channels * INPUT.height * INPUT.width)
        .map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}

type Plan = Box<dyn Fn(&Tensor)>;

/// tract's optimized plan of `onnx`, as a closure running it once.
fn tract_plan(onnx: &[u8]) -> Plan {
    let runnable = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .expect("parse")
        .with_input_fact(
            0,
            f32::fact([1, INPUT.channels, INPUT.height, INPUT.width]).into(),
        )
        .expect("fact")
        .into_optimized()
        .expect("optimize")
        .into_runnable()
        .expect("runnable");
    Box::new(move |x: &Tensor| {
        let out = runnable.run(tvec!(x.clone().into())).expect("tract runs");
        std::hint::black_box(out);
    })
}

fn tract_once(plan: &Plan, x: &Tensor) {
    plan(x)
}

/// Rounds of the alternating run, and each engine's runs per round.
const ROUNDS: usize = 5;
const WARMUP: usize = 20;
const RUNS: usize = 200;

/// One engine's figures for one round, microseconds per run.
#[derive(Clone, Copy)]
struct Times {
    min_us: f64,
    p50_us: f64,
}

/// A number following `"key":` in a one-line JSON report.
fn field(line: &str, key: &str) -> f64 {
    line.split(&format!("\"{key}\":"))
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

fn tract_times(plan: &Plan, x: &Tensor) -> Times {
    for _ in 0..WARMUP {
        tract_once(plan, x);
    }
    let mut t: Vec<f64> = (0..RUNS)
        .map(|_| {
            let s = Instant::now();
            tract_once(plan, x);
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    Times {
        min_us: t[0],
        p50_us: t[t.len() / 2],
    }
}

/// The generated program's own timing loop (a fresh process).
fn kiln_times(bin: &Path, index: usize, input: &[f32], warmup: usize, runs: usize) -> Times {
    let mut child = Command::new(bin)
        .args([
            &index.to_string(),
            "--bench",
            "--warmup",
            &warmup.to_string(),
            "--runs",
            &runs.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run bundle");
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("input");
    let out = child.wait_with_output().expect("bundle finishes");
    let line = String::from_utf8_lossy(&out.stdout);
    Times {
        min_us: field(&line, "min_us"),
        p50_us: field(&line, "p50_us"),
    }
}

/// onnxruntime through `scripts/ort-bench.py` (a fresh process), if
/// `KILN_ORT_PYTHON` names an interpreter that has it.
fn ort_times(python: &Path, onnx: &Path, input: &Path) -> Option<Times> {
    let out = Command::new(python)
        .arg(repo("scripts/ort-bench.py"))
        .arg(onnx)
        .arg(input)
        .args(["--warmup", &WARMUP.to_string(), "--runs", &RUNS.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "onnxruntime left out: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout);
    Some(Times {
        min_us: field(&line, "min_us"),
        p50_us: field(&line, "p50_us"),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Best of each engine over the rounds, and the median per-round p50 ratio.
struct Summary {
    best: [f64; 3],
    p50_ratio: [f64; 2],
}

fn summarise(rounds: &[[Option<Times>; 3]]) -> Summary {
    let best = |e: usize| {
        rounds
            .iter()
            .filter_map(|r| r[e].map(|t| t.min_us))
            .fold(f64::NAN, f64::min)
    };
    let ratio = |e: usize| {
        let v: Vec<f64> = rounds
            .iter()
            .filter_map(|r| Some(r[0]?.p50_us / r[e]?.p50_us))
            .collect();
        if v.is_empty() { f64::NAN } else { median(v) }
    };
    Summary {
        best: [best(0), best(1), best(2)],
        p50_ratio: [ratio(1), ratio(2)],
    }
}

fn bench(c: &mut Criterion) {
    let models = models();
    let graphs: Vec<_> = models
        .iter()
        .map(|m| kiln_lower::lower_bytes(&m.onnx, &m.name, &Default::default()).expect("lowers"))
        .collect();
    let dir = kiln_codegen::default_target_dir()
        .join("bench")
        .join("bundle");
    let refs: Vec<_> = graphs.iter().collect();
    let gens = kiln_codegen::generate_bundle(&refs, &dir, &GenerateOptions::new("bench"))
        .expect("generate");
    let build = |dir: &Path| {
        kiln_codegen::build_bin(
            dir,
            "kiln-bundle",
            BuildTarget::Host,
            &kiln_codegen::default_target_dir(),
        )
        .expect("build")
    };
    let only = std::env::var("KILN_BENCH_ONLY").ok();
    let timed = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|n| n == name))
    };
    // (program, model index in it) per model
    let programs: Vec<(PathBuf, usize)> = if std::env::var_os("KILN_BENCH_ALONE").is_some() {
        println!("KILN_BENCH_ALONE: each network built as a bundle of its own");
        graphs
            .iter()
            .zip(&models)
            .map(|(g, m)| {
                if !timed(&m.name) {
                    return (PathBuf::new(), 0);
                }
                let d = dir.with_file_name(format!("alone-{}", m.name));
                kiln_codegen::generate_bundle(&[g], &d, &GenerateOptions::new("bench"))
                    .expect("generate");
                (build(&d), 0)
            })
            .collect()
    } else {
        let bin = build(&dir);
        (0..models.len()).map(|i| (bin.clone(), i)).collect()
    };
    let x = input();
    let xt = Tensor::from_shape(
        &[1, INPUT.channels, INPUT.height, INPUT.width],
        x.as_slice(),
    )
    .expect("tensor");
    let input_path = dir.join("input.f32");
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input_path, bytes).expect("write input");
    let python = std::env::var_os("KILN_ORT_PYTHON").map(PathBuf::from);
    if python.is_none() {
        println!("KILN_ORT_PYTHON not set: onnxruntime left out (see scripts/ort-bench.py)");
    }

    let rounds_n = std::env::var("KILN_BENCH_ROUNDS")
        .ok()
        .map(|v| v.parse::<usize>().expect("KILN_BENCH_ROUNDS: a number"))
        .unwrap_or(ROUNDS)
        .max(1);
    println!(
        "\n== kiln vs tract vs onnxruntime, one thread, source: host; best of {rounds_n} alternating rounds of {WARMUP} + {RUNS} runs =="
    );
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>10} {:>10} {:>11} {:>11}  arena / lower bound",
        "model",
        "kiln us",
        "tract us",
        "ort us",
        "kiln/ort",
        "kiln/tract",
        "p50 k/ort",
        "p50 k/tract"
    );
    for (i, m) in models.iter().enumerate() {
        if !timed(&m.name) {
            continue;
        }
        let onnx_path = dir.join(format!("{}.onnx", m.name));
        std::fs::write(&onnx_path, &m.onnx).expect("write onnx");
        let plan = tract_plan(&m.onnx);
        let rounds: Vec<[Option<Times>; 3]> = (0..rounds_n)
            .map(|_| {
                let (bin, index) = &programs[i];
                let k = kiln_times(bin, *index, &x, WARMUP, RUNS);
                let t = tract_times(&plan, &xt);
                let o = python
                    .as_deref()
                    .and_then(|py| ort_times(py, &onnx_path, &input_path));
                [Some(k), Some(t), o]
            })
            .collect();
        let s = summarise(&rounds);
        let p = &gens[i].plan;
        println!(
            "{:<24} {:>9.1} {:>9.1} {:>9.1} {:>10.3} {:>10.3} {:>11.3} {:>11.3}  {} B / {} B = {:.3}",
            m.name,
            s.best[0],
            s.best[1],
            s.best[2],
            s.best[0] / s.best[2],
            s.best[0] / s.best[1],
            s.p50_ratio[1],
            s.p50_ratio[0],
            p.arena_bytes(),
            p.lower_bound_bytes(),
            p.arena_len as f64 / p.lower_bound as f64
        );
    }

    // lower + generate + build of a fresh candidate, runtime already built
    let space = Space::load(&repo("spaces/mobile.toml")).expect("space");
    let mut rng =
        rand_chacha::ChaCha8Rng::seed_from_u64(Instant::now().elapsed().subsec_nanos() as u64 + 5);
    let g = Genome::sample(&space, &mut rng);
    let arch = Architecture::new(&space, &g, INPUT).expect("fits");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(3);
    let onnx = kiln_onnx::export(
        &arch,
        &Weights::random(&arch, seed),
        &ExportOptions::default(),
    )
    .expect("export");
    let start = Instant::now();
    let graph = kiln_lower::lower_bytes(&onnx, "candidate", &Default::default()).expect("lowers");
    let cdir = kiln_codegen::default_target_dir()
        .join("bench")
        .join("candidate");
    kiln_codegen::generate(&graph, &cdir, &GenerateOptions::new("candidate")).expect("generate");
    kiln_codegen::build(
        &cdir,
        BuildTarget::Host,
        &kiln_codegen::default_target_dir(),
    )
    .expect("build");
    println!(
        "lower + generate + build of a fresh candidate (host, warm runtime): {:.1} s\n",
        start.elapsed().as_secs_f64()
    );

    for (i, m) in models.iter().enumerate() {
        let plan = tract_plan(&m.onnx);
        let mut group = c.benchmark_group(&m.name);
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1));
        group.bench_function("tract", |b| b.iter(|| tract_once(&plan, &xt)));
        group.bench_function("kiln", |b| {
            b.iter_custom(|iters| {
                let (bin, index) = &programs[i];
                let t = kiln_times(bin, *index, &x, 3, iters.max(1) as usize);
                Duration::from_secs_f64(t.p50_us * 1e-6 * iters as f64)
            })
        });
        group.finish();
    }
}

// `criterion_group!` expands to an undocumented `pub fn`; inside a private
// module it is not public API, so `missing_docs` has nothing to report.
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);

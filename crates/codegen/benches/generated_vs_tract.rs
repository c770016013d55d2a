//! Generated code vs tract (optimized plan, one thread) on the same ONNX:
//! MobileNetV2-0.5 at 96x96x3 / 10 classes and two random genomes of the
//! default space at the same input. Everything is measured on this machine
//! (source: host).
//!
//! Besides the criterion groups, an alternating run (tract, kiln, tract, ...)
//! prints the latency ratio kiln/tract per model, the arena against its lower
//! bound, and the lower + generate + build time of a fresh candidate.

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

/// The generated program's own timing loop: p50 per run in microseconds.
fn kiln_p50_us(bin: &Path, index: usize, input: &[f32], runs: usize) -> f64 {
    let mut child = Command::new(bin)
        .args([
            &index.to_string(),
            "--bench",
            "--warmup",
            "3",
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
    let p50 = line
        .split("\"p50_us\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.parse().ok());
    p50.unwrap_or_else(|| panic!("no p50 in {line}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
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
    let bin = kiln_codegen::build_bin(
        &dir,
        "kiln-bundle",
        BuildTarget::Host,
        &kiln_codegen::default_target_dir(),
    )
    .expect("build");
    let x = input();
    let xt = Tensor::from_shape(
        &[1, INPUT.channels, INPUT.height, INPUT.width],
        x.as_slice(),
    )
    .expect("tensor");

    println!("\n== kiln vs tract, alternating, source: host ==");
    for (i, m) in models.iter().enumerate() {
        let plan = tract_plan(&m.onnx);
        let mut ratios = Vec::new();
        for _round in 0..7 {
            let runs = 30;
            let mut t = Vec::new();
            for _ in 0..runs {
                let s = Instant::now();
                tract_once(&plan, &xt);
                t.push(s.elapsed().as_secs_f64() * 1e6);
            }
            let tract_us = median(t);
            let kiln_us = kiln_p50_us(&bin, i, &x, runs);
            ratios.push(kiln_us / tract_us);
        }
        let p = &gens[i].plan;
        println!(
            "{:<28} latency kiln/tract (host, median of 7 alternating rounds): {:.3}   arena {} B / lower bound {} B = {:.3}",
            m.name,
            median(ratios),
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
                let p50 = kiln_p50_us(&bin, i, &x, iters.max(1) as usize);
                Duration::from_secs_f64(p50 * 1e-6 * iters as f64)
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

//! Whole networks: 20 random genomes of the default search space and the
//! MobileNetV2-0.5 baseline, exported to ONNX with random weights, lowered,
//! generated, built and run; logits within 1e-4 of tract on the same ONNX.

mod common;

use std::path::Path;

use common::{Case, max_abs_diff, run_binary, run_bundle, scratch, tract_run, values};
use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_onnx::{ExportOptions, Weights};
use kiln_space::{Architecture, Genome, InputSpec, Space};
use rand::SeedableRng;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn exported(space: &Space, genome: &Genome, input: InputSpec, seed: u64) -> Vec<u8> {
    let arch = Architecture::new(space, genome, input).expect("genome fits the input");
    let weights = Weights::random(&arch, seed);
    kiln_onnx::export(&arch, &weights, &ExportOptions::default()).expect("export")
}

#[test]
fn twenty_random_genomes_match_tract() {
    let space = Space::load(&repo("spaces/mobile.toml")).expect("default space");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let cases: Vec<Case> = (0..20)
        .map(|i| {
            let genome = Genome::sample(&space, &mut rng);
            // alternate CIFAR-like and MNIST-like inputs
            let input = if i % 2 == 0 {
                InputSpec {
                    channels: 3,
                    height: 32,
                    width: 32,
                    classes: 10,
                }
            } else {
                InputSpec {
                    channels: 1,
                    height: 28,
                    width: 28,
                    classes: 10,
                }
            };
            let shape = vec![1, input.channels, input.height, input.width];
            Case {
                name: format!("genome{i}-{}", genome.id()),
                onnx: exported(&space, &genome, input, i),
                shape,
            }
        })
        .collect();
    let results = run_bundle("genomes", &cases);
    for (n, e) in &results {
        eprintln!("{n:<40} max abs err {e:.2e}");
    }
    let bad: Vec<_> = results
        .iter()
        .filter(|(_, e)| e.is_nan() || *e > 1e-4)
        .collect();
    assert!(bad.is_empty(), "outside 1e-4: {bad:?}");
}

/// The MobileNetV2-0.5 baseline at 96x96x3 as a standalone `kiln-model`
/// crate, run through its stdin/stdout protocol.
#[test]
fn mobilenetv2_half_matches_tract_as_a_standalone_program() {
    let space = Space::load(&repo("spaces/mobilenetv2.toml")).expect("mobilenetv2 space");
    let genome =
        Genome::load(&repo("spaces/mobilenetv2-0.5.json"), &space).expect("mobilenetv2-0.5 genome");
    let input = InputSpec {
        channels: 3,
        height: 96,
        width: 96,
        classes: 10,
    };
    let onnx = exported(&space, &genome, input, 7);
    std::fs::write(scratch("onnx").join("mobilenetv2-0.5.onnx"), &onnx)
        .expect("keep the ONNX for inspection");
    let graph =
        kiln_lower::lower_bytes(&onnx, "mobilenetv2-0.5", &Default::default()).expect("lowers");
    let dir = scratch("mobilenetv2-0.5");
    let generated = kiln_codegen::generate(&graph, &dir, &GenerateOptions::new("mobilenetv2-0.5"))
        .expect("generates");
    assert_eq!(generated.input_len, 3 * 96 * 96);
    assert_eq!(generated.output_len, 10);
    // the arena figure the README quotes: within 1.1x of the lower bound
    let ratio = generated.plan.arena_len as f64 / generated.plan.lower_bound as f64;
    eprintln!(
        "arena {} B, lower bound {} B, ratio {ratio:.3}",
        generated.plan.arena_bytes(),
        generated.plan.lower_bound_bytes()
    );
    assert!(ratio <= 1.1, "arena {ratio:.3}x the lower bound");
    // Every residual sum is fused into its block's projection (the sums
    // are the network's only binary ops).
    assert!(
        generated.kernels.contains(&"gemm_add"),
        "{:?}",
        generated.kernels
    );
    assert!(
        !generated.kernels.contains(&"binary_inplace"),
        "{:?}",
        generated.kernels
    );
    let bin = kiln_codegen::build(&dir, BuildTarget::Host, &kiln_codegen::default_target_dir())
        .unwrap_or_else(|e| panic!("{e}"));
    let x = values(3 * 96 * 96, 99);
    let got = run_binary(&bin, &[], &x);
    let want = tract_run(&onnx, &[1, 3, 96, 96], &x);
    let err = max_abs_diff(&got, &want);
    eprintln!("mobilenetv2-0.5 max abs err {err:.2e}; logits {got:?}");
    assert!(err <= 1e-4, "max abs err {err}");
    // wrong input length: exit 2 with a message, per the contract
    let out = std::process::Command::new(&bin)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected"));
}

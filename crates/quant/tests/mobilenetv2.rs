//! MobileNetV2-0.5 at 96x96x3 (seeded weights), quantized by kiln-quant on
//! 32 noise images: its weight blob, arena and aarch64 program against the
//! f32 model's. Sizes only (the weights are random, so no accuracy); run
//! with `cargo test -p kiln-quant --test mobilenetv2 -- --ignored --nocapture`
//! (a few minutes: two aarch64 builds).

use std::path::Path;

use kiln_codegen::{BuildTarget, GenerateOptions};

fn sizes(name: &str, onnx: &[u8]) -> (usize, usize, u64) {
    let g = kiln_lower::lower_bytes(onnx, name, &Default::default()).expect("lowers");
    let dir = kiln_codegen::default_target_dir().join("tests").join(name);
    let generated =
        kiln_codegen::generate(&g, &dir, &GenerateOptions::new(name)).expect("generates");
    let bin = kiln_codegen::build(
        &dir,
        BuildTarget::Aarch64Musl,
        &kiln_codegen::default_target_dir(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let file = std::fs::metadata(&bin).expect("built").len();
    (generated.weight_bytes, generated.plan.arena_bytes(), file)
}

#[test]
#[ignore = "two aarch64 builds of MobileNetV2-0.5; run by hand for the figures"]
fn mobilenetv2_int8_weights_arena_and_program() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let space = kiln_space::Space::load(&root.join("spaces/mobilenetv2.toml")).expect("space");
    let genome = kiln_space::Genome::load(&root.join("spaces/mobilenetv2-0.5.json"), &space)
        .expect("genome");
    let input = kiln_space::InputSpec {
        channels: 3,
        height: 96,
        width: 96,
        classes: 10,
    };
    let arch = kiln_space::Architecture::new(&space, &genome, input).expect("fits");
    let onnx = kiln_onnx::export(
        &arch,
        &kiln_onnx::Weights::random(&arch, 7),
        &Default::default(),
    )
    .expect("exports");
    let mut s = 1u64;
    let images: Vec<Vec<f32>> = (0..32)
        .map(|_| {
            (0..3 * 96 * 96)
                .map(|_| {
                    s = s
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect()
        })
        .collect();
    let options = kiln_quant::QuantizeOptions {
        min_images: 1,
        ..Default::default()
    };
    let q = kiln_quant::quantize(&onnx, &[1, 3, 96, 96], &images, &options).expect("quantizes");
    eprintln!("{}", q.summary());
    let (fw, fa, ff) = sizes("mnv2_f32", &onnx);
    let (qw, qa, qf) = sizes("mnv2_int8", &q.onnx);
    eprintln!(
        "weights blob: f32 {fw} B, int8 {qw} B ({:.2}x smaller)",
        fw as f64 / qw as f64
    );
    eprintln!(
        "arena: f32 {fa} B, int8 {qa} B ({:.3}x)",
        qa as f64 / fa as f64
    );
    eprintln!("aarch64 program file: f32 {ff} B, int8 {qf} B");
    assert!(qw * 4 <= fw * 105 / 100 + 4 * 4096, "weights {qw} vs {fw}");
    assert!(qa * 10 <= fa * 3, "arena {qa} vs {fa}");
}

//! Exported models load and run in tract-onnx, an independent ONNX runtime.

use kiln_onnx::{ExportOptions, Normalization, Weights, export};
use kiln_space::{Architecture, Genome, InputSpec, Space};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tract_onnx::prelude::*;

fn run_in_tract(model: &[u8], input: &InputSpec) -> Vec<f32> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &model[..])
        .expect("tract parses the model")
        .into_optimized()
        .expect("tract types and optimises the model")
        .into_runnable()
        .expect("tract plans the model");
    let shape = [1, input.channels, input.height, input.width];
    let n: usize = shape.iter().product();
    // A smooth, non-constant image in [0, 1).
    let data: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
    let x = tract_ndarray::Array4::from_shape_vec(shape, data).unwrap();
    let out = model
        .run(tvec!(Tensor::from(x).into()))
        .expect("tract runs the model");
    let logits = out[0].to_plain_array_view::<f32>().unwrap();
    assert_eq!(logits.shape(), &[1, input.classes]);
    logits.iter().copied().collect()
}

fn check_logits(logits: &[f32], what: &str) {
    assert!(
        logits.iter().all(|v| v.is_finite()),
        "{what}: non-finite logits {logits:?}"
    );
    let first = logits[0];
    assert!(
        logits.iter().any(|v| (v - first).abs() > 1e-6),
        "{what}: all logits equal {logits:?}"
    );
}

#[test]
fn twenty_random_genomes_run_in_tract() {
    let space = Space::load("../../spaces/mobile.toml".as_ref()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    for i in 0..20 {
        let genome = Genome::sample(&space, &mut rng);
        let arch = Architecture::new(&space, &genome, InputSpec::MNIST).unwrap();
        let weights = Weights::random(&arch, i);
        let model = export(&arch, &weights, &ExportOptions::default()).unwrap();
        let logits = run_in_tract(&model, &InputSpec::MNIST);
        check_logits(&logits, &format!("genome {i} ({})", genome.id()));
    }
}

#[test]
fn mobilenetv2_half_width_runs_in_tract_with_normalisation() {
    let space = Space::load("../../spaces/mobilenetv2.toml".as_ref()).unwrap();
    let genome = Genome::load("../../spaces/mobilenetv2-0.5.json".as_ref(), &space).unwrap();
    let input = InputSpec {
        channels: 3,
        height: 96,
        width: 96,
        classes: 10,
    };
    let arch = Architecture::new(&space, &genome, input).unwrap();
    let weights = Weights::random(&arch, 1);
    let options = ExportOptions {
        normalization: Some(Normalization {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }),
        metadata: vec![("kiln.genome_id".into(), genome.id())],
    };
    let model = export(&arch, &weights, &options).unwrap();
    check_logits(&run_in_tract(&model, &input), "mobilenetv2-0.5");
}

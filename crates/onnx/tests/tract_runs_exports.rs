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

#[test]
fn every_kind_of_layer_exports_alone_and_runs_with_its_output_shape() {
    use kiln_space::{Activation, LayerKey};
    let keys = [
        LayerKey::Conv {
            in_channels: 3,
            out_channels: 8,
            kernel: 3,
            stride: 2,
            activation: Activation::Relu6,
            height: 9,
            width: 9,
            precision: kiln_space::Precision::F32,
        },
        LayerKey::Block {
            in_channels: 8,
            out_channels: 8,
            kernel: 5,
            expand: 3,
            stride: 1,
            se: true,
            activation: Activation::Hswish,
            height: 5,
            width: 5,
            precision: kiln_space::Precision::F32,
        },
        LayerKey::Block {
            in_channels: 8,
            out_channels: 12,
            kernel: 3,
            expand: 1,
            stride: 2,
            se: false,
            activation: Activation::Relu6,
            height: 5,
            width: 5,
            precision: kiln_space::Precision::F32,
        },
        LayerKey::Classifier {
            features: 12,
            classes: 10,
            height: 3,
            width: 3,
            precision: kiln_space::Precision::F32,
        },
    ];
    let expected: [&[usize]; 4] = [&[1, 8, 5, 5], &[1, 8, 5, 5], &[1, 12, 3, 3], &[1, 10]];
    for (key, want) in keys.iter().zip(expected) {
        let bytes = kiln_onnx::export_layer(key, 7);
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .unwrap_or_else(|e| panic!("{key}: {e}"))
            .into_optimized()
            .unwrap_or_else(|e| panic!("{key}: {e}"))
            .into_runnable()
            .unwrap();
        let [c, h, w] = key.input_shape();
        let data: Vec<f32> = (0..c * h * w).map(|i| (i % 13) as f32 / 13.0).collect();
        let x = tract_ndarray::Array4::from_shape_vec([1, c, h, w], data).unwrap();
        let out = model.run(tvec!(Tensor::from(x).into())).unwrap();
        let y = out[0].to_plain_array_view::<f32>().unwrap();
        assert_eq!(y.shape(), want, "{key}");
        assert!(y.iter().all(|v| v.is_finite()), "{key}");
        assert_eq!(bytes, kiln_onnx::export_layer(key, 7), "{key}: seeded");
    }
}

//! Both judges agree: kiln-runtime's kernels against burn's forward pass, on the tiny
//! test space and the default space, same supernet, same images.

use kiln_data::{Dataset, Source, SplitOptions};
use kiln_space::{Genome, Space};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::init::Seeded;
use crate::{JudgeSettings, SuperNet, SupernetWeights, accuracy, judge, largest, smallest};

fn data() -> Dataset {
    kiln_data::load(
        &Source::Mnist5k,
        &SplitOptions {
            seed: kiln_data::DEFAULT_SPLIT_SEED,
            validation_fraction: 0.1,
            train_limit: Some(200),
        },
    )
    .unwrap()
}

fn close(a: f32, b: f32, what: &str) {
    let tol = 2e-3 * a.abs().max(b.abs()).max(1.0);
    assert!((a - b).abs() <= tol, "{what}: kernels {a}, burn {b}");
}

/// A supernet of `space` on `input`, seeded weights.
fn seeded(space: &Space, input: kiln_space::InputSpec) -> SuperNet {
    let dev = kiln_train::device();
    SuperNet::build(space, input, false, &mut Seeded::new(5), &dev).unwrap()
}

fn agree(space: &Space, genomes: usize) {
    agree_on(space, &data(), genomes);
}

fn agree_on(space: &Space, data: &Dataset, genomes: usize) {
    let input = kiln_train::input_spec(data);
    let net = seeded(space, input);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut all = vec![largest(space), smallest(space)];
    all.extend((0..genomes).map(|_| Genome::sample(space, &mut rng)));
    agree_with(&net, data, &all);
}

/// Batch-norm statistics, logits and top-1 of each genome on `net`: kiln-runtime's
/// kernels against burn's forward pass.
pub(crate) fn agree_with(net: &SuperNet, data: &Dataset, all: &[Genome]) {
    let weights = SupernetWeights::of(net).unwrap();
    let settings = JudgeSettings {
        recalibration_images: 100,
        batch: 40,
    };
    for g in all {
        let id = g.id();
        let burn = judge(net, g, data, &settings).unwrap();
        let ours = weights.judge(g, data, &settings).unwrap();
        assert_eq!(burn.bn.stats.len(), ours.bn.stats.len(), "{id}: layers");
        for (name, s) in &burn.bn.stats {
            let o = &ours.bn.stats[name];
            for (a, b) in o.mean().iter().zip(s.mean()) {
                close(*a, b, &format!("{id} {name} mean"));
            }
            for (a, b) in o.var().iter().zip(s.var()) {
                close(*a, b, &format!("{id} {name} var"));
            }
        }
        // the same statistics give the same logits
        let mut bn = burn.bn.clone();
        let (top1, logits) = accuracy(net, g, &mut bn, &data.validation, data, 64).unwrap();
        let (our_top1, our_logits) = weights
            .accuracy(g, &mut bn, &data.validation, data, 64)
            .unwrap();
        assert_eq!(logits.len(), our_logits.len());
        for (a, b) in our_logits.iter().zip(&logits) {
            close(*a, *b, &format!("{id} logit"));
        }
        // a near tie may flip one image
        let one = 1.0 / data.validation.len() as f64;
        assert!(
            (top1 - our_top1).abs() <= one + 1e-12,
            "{id}: {top1} vs {our_top1}"
        );
        assert!((burn.top1 - ours.top1).abs() <= 2.0 * one + 1e-12, "{id}");
    }
}

#[test]
fn the_tiny_space_judges_the_same_on_both_paths() {
    let space = Space::from_toml(
        include_str!("../../../../tests/fixtures/tiny-space.toml"),
        "tiny",
    )
    .unwrap();
    agree(&space, 4);
}

#[test]
fn the_default_space_judges_the_same_on_both_paths() {
    let space = Space::from_toml(include_str!("../../../../spaces/mobile.toml"), "mobile").unwrap();
    agree(&space, 3);
}

#[test]
fn fixed_statistics_are_required() {
    let data = data();
    let space = Space::from_toml(include_str!("../../../../spaces/mobile.toml"), "mobile").unwrap();
    let input = kiln_train::input_spec(&data);
    let net = seeded(&space, input);
    let weights = SupernetWeights::of(&net).unwrap();
    let mut bn = crate::bn::BnContext::collect();
    bn.mode = crate::bn::BnMode::Fixed;
    let err = weights
        .accuracy(&largest(&space), &mut bn, &data.test, &data, 64)
        .unwrap_err();
    assert!(err.to_string().contains("`stem`"), "{err}");
}

#[test]
fn data_of_another_shape_is_refused() {
    let data = data();
    let space = Space::from_toml(include_str!("../../../../spaces/mobile.toml"), "mobile").unwrap();
    let mut input = kiln_train::input_spec(&data);
    input.height = 32;
    input.width = 32;
    let net = seeded(&space, input);
    let weights = SupernetWeights::of(&net).unwrap();
    let settings = JudgeSettings::default();
    let err = weights
        .judge(&largest(&space), &data, &settings)
        .expect_err("refused");
    assert!(
        err.to_string().contains("1x28x28 (10 classes)")
            && err.to_string().contains("1x32x32 (10 classes)"),
        "{err}"
    );
}

/// Seeded random 3-channel images, 15 x 15 (odd sizes through stride 2), 4 classes.
fn rgb_data() -> Dataset {
    let shape = kiln_data::ImageShape {
        channels: 3,
        height: 15,
        width: 15,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut split = |n: usize| {
        let images: Vec<u8> = (0..n * 3 * 15 * 15)
            .map(|_| rand::Rng::random(&mut rng))
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 4) as u8).collect();
        kiln_data::Split::new(shape, images, labels).unwrap()
    };
    let (train, test) = (split(120), split(40));
    let names = (0..4).map(|i| format!("c{i}")).collect();
    let options = SplitOptions {
        seed: 1,
        validation_fraction: 0.25,
        train_limit: None,
    };
    Dataset::from_splits("rgb".into(), names, train, test, &options).unwrap()
}

fn rgb_space(stem_kernel: usize, stem_stride: usize) -> Space {
    let text = format!(
        "name = \"rgb\"\n[stem]\nwidths = [4, 8]\nkernel = {stem_kernel}\nstride = \
         {stem_stride}\nactivation = \"hswish\"\n[[stage]]\nstride = 2\ndepth = [1, 2]\n\
         widths = [8]\nkernels = [1, 3, 7]\nexpand = [1, 2]\nse = [false, true]\n\
         activations = [\"relu6\", \"hswish\"]\n[[stage]]\nstride = 1\ndepth = [1]\n\
         widths = [8, 12]\nkernels = [3]\nexpand = [2]\nse = [true]\n\
         activations = [\"relu6\"]\n[head]\nwidths = [0, 8]\nactivation = \"hswish\"\n"
    );
    Space::from_toml(&text, "rgb").unwrap()
}

#[test]
fn three_channels_odd_sizes_and_every_conv_kind_judge_the_same() {
    let data = rgb_data();
    // an 11 x 11 stem on 3 channels is a 363-value patch, past the GEMM's buffer:
    // the general convolution; a 1 x 1 stem at stride 1 is a pointwise GEMM
    agree_on(&rgb_space(11, 2), &data, 4);
    agree_on(&rgb_space(1, 1), &data, 4);
}

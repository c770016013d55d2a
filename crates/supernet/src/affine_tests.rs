//! A batch norm gamma and beta per activation ([`SupernetConfig::bn_per_activation`]): only
//! blocks that may choose hswish among others get a second pair; a hswish block
//! normalises with it and a relu6 block does not; the pair is saved and loaded, judged
//! alike on kiln-runtime's kernels, exported, and mixed per activation by the DNAS soft
//! pass; without the setting the settings' JSON is what it was.

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use kiln_data::Dataset;
use kiln_space::{Activation, Genome};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::bn::BnContext;
use crate::init::Seeded;
use crate::net::SuperConv;
use crate::tests::{data, space};

/// A supernet of the tiny space with a pair per activation, its hswish pairs moved away
/// from the shared ones (a seeded supernet starts them equal: gamma 1, beta 0).
fn per_activation_net(data: &Dataset) -> SuperNet {
    let input = kiln_train::input_spec(data);
    let dev = kiln_train::device();
    let mut net = SuperNet::build(&space(), input, true, &mut Seeded::new(3), &dev).unwrap();
    let moved = |p: &Param<Tensor<1>>, f: fn(usize) -> f32| {
        let v = p.val();
        let c = v.dims()[0];
        let d: Vec<f32> = (0..c).map(f).collect();
        Param::from_tensor(v + Tensor::from_data(TensorData::new(d, [c]), &dev))
    };
    for b in &mut net.blocks {
        let convs: [Option<&mut SuperConv>; 2] = [b.expand.as_mut(), Some(&mut b.depthwise)];
        for a in convs
            .into_iter()
            .flatten()
            .filter_map(|c| c.hswish_affine.as_mut())
        {
            a.gamma = moved(&a.gamma, |i| -0.4 + 0.1 * (i % 5) as f32);
            a.beta = moved(&a.beta, |i| 0.3 - 0.2 * (i % 4) as f32);
        }
    }
    net
}

/// `g` with every block of the stages that offer hswish set to `a`.
fn with_activation(g: &Genome, a: Activation) -> Genome {
    let mut g = g.clone();
    for (stage, choices) in g.stages.iter_mut().zip(&space().stages) {
        for b in &mut stage.blocks {
            if choices.activations.contains(&a) {
                b.activation = a;
            }
        }
    }
    g
}

fn genomes() -> Vec<Genome> {
    let s = space();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut out = vec![with_activation(&largest(&s), Activation::Hswish)];
    out.push(with_activation(&smallest(&s), Activation::Hswish));
    out.extend((0..3).map(|_| Genome::sample(&s, &mut rng)));
    out
}

fn logits(net: &SuperNet, g: &Genome, data: &Dataset) -> Vec<f32> {
    let batch = (data.train).batch::<ChaCha8Rng>(&[0, 1, 2, 3], &data.normalization, None);
    let s = data.shape;
    let shape = [4, s.channels, s.height, s.width];
    let images = Tensor::from_data(TensorData::new(batch.images, shape), &kiln_train::device());
    let out = net.forward(g, images, &mut BnContext::batch()).unwrap();
    kiln_train::values(out, "logits").unwrap()
}

#[test]
fn only_blocks_that_may_choose_hswish_have_a_pair_of_their_own_and_it_is_used_by_hswish() {
    let data = data();
    let net = per_activation_net(&data);
    let own = |c: &SuperConv| c.hswish_affine.is_some();
    assert!(!own(&net.stem) && !net.head.as_ref().is_some_and(own));
    // the tiny space's first stage offers relu6 alone, its second both
    let (relu6_only, both) = (&net.blocks[0], &net.blocks[1..]);
    assert!(!own(&relu6_only.depthwise) && !relu6_only.expand.as_ref().is_some_and(own));
    for b in both {
        assert!(own(&b.depthwise) && b.expand.as_ref().is_some_and(own));
        assert!(!own(&b.project));
    }
    // the same weights with one pair for both: relu6 genomes compute the same, hswish
    // genomes not
    let input = kiln_train::input_spec(&data);
    let dev = kiln_train::device();
    let shared = SuperNet::build(&space(), input, false, &mut Seeded::new(3), &dev).unwrap();
    let g = largest(&space());
    let relu6 = with_activation(&g, Activation::Relu6);
    assert_eq!(logits(&net, &relu6, &data), logits(&shared, &relu6, &data));
    let hswish = with_activation(&g, Activation::Hswish);
    let (a, b) = (
        logits(&net, &hswish, &data),
        logits(&shared, &hswish, &data),
    );
    let moved = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(moved > 1e-3, "the hswish pair changed nothing: {moved}");
}

#[test]
fn a_pair_per_activation_is_saved_loaded_judged_on_both_paths_and_exported() {
    let data = data();
    let net = per_activation_net(&data);
    let config = SupernetConfig {
        bn_per_activation: true,
        ..SupernetConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let id = SupernetIdentity::of(&space(), &data, "mnist-5k test", &config);
    save(dir.path(), &net, &id, 1, &Default::default()).unwrap();
    let (loaded, found, _, _) = load(dir.path(), &kiln_train::device()).unwrap();
    assert!(found.config.bn_per_activation);
    for g in genomes() {
        assert_eq!(
            logits(&loaded, &g, &data),
            logits(&net, &g, &data),
            "{}",
            g.id()
        );
    }
    crate::kernels::tests::agree_with(&net, &data, &genomes());
    crate::tests::export_matches(&net, &data, &genomes()[..3]);
    crate::dnas::tests::soft_is_hard(&net, &data);
}

#[test]
fn the_setting_is_left_out_of_the_json_unless_on_and_a_resume_must_keep_it() {
    let off = serde_json::to_value(SupernetConfig::default()).unwrap();
    assert!(off.get("bn_per_activation").is_none(), "{off}");
    let config = SupernetConfig {
        bn_per_activation: true,
        ..SupernetConfig::default()
    };
    let on = serde_json::to_value(&config).unwrap();
    assert_eq!(on["bn_per_activation"], true);
    let back: SupernetConfig = serde_json::from_value(on).unwrap();
    assert_eq!(back, config);
    let e = (config.check_resumed_with(&SupernetConfig::default(), "dir".as_ref()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("batch norm per activation true, not false"),
        "{e}"
    );
}

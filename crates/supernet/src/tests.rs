//! A supernet of a tiny space: sub-networks run, their extracted weights are exactly the
//! architecture's, the exported model computes what the supernet computes (tract as the
//! reference), checkpoints round-trip, and a short training resumes.

use kiln_data::{Dataset, Source, SplitOptions};
use kiln_space::{Genome, Space};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tract_onnx::prelude::*;

use super::*;
use crate::bn::BnContext;
use crate::init::Seeded;

pub(crate) fn space() -> Space {
    Space::from_toml(
        include_str!("../../../tests/fixtures/tiny-space.toml"),
        "tiny",
    )
    .unwrap()
}

pub(crate) fn data() -> Dataset {
    kiln_data::load(
        &Source::Mnist5k,
        &SplitOptions {
            seed: kiln_data::DEFAULT_SPLIT_SEED,
            validation_fraction: 0.1,
            train_limit: Some(96),
        },
    )
    .unwrap()
}

pub(crate) fn net(data: &Dataset) -> SuperNet {
    let input = kiln_train::input_spec(data);
    SuperNet::build(
        &space(),
        input,
        false,
        &mut Seeded::new(3),
        &kiln_train::device(),
    )
    .unwrap()
}

fn genomes() -> Vec<Genome> {
    let s = space();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut out = vec![largest(&s), smallest(&s)];
    out.extend((0..3).map(|_| Genome::sample(&s, &mut rng)));
    out
}

fn settings() -> JudgeSettings {
    JudgeSettings {
        recalibration_images: 64,
        batch: 32,
    }
}

#[test]
fn every_sub_network_extracts_exactly_its_architectures_weights() {
    let data = data();
    let net = net(&data);
    for g in genomes() {
        let j = judge(&net, &g, &data, &settings()).unwrap();
        assert!((0.0..=1.0).contains(&j.top1));
        let w = subnet_weights(&net, &g, &j.bn).unwrap();
        let arch = net.architecture(&g).unwrap();
        w.check(&arch)
            .unwrap_or_else(|e| panic!("genome {}: {e}", g.id()));
    }
}

#[test]
fn the_exported_sub_network_computes_what_the_supernet_computes() {
    let data = data();
    export_matches(&net(&data), &data, &genomes()[..3]);
}

/// Each genome's exported model (run by tract) gives the supernet's logits on 3 images.
pub(crate) fn export_matches(net: &SuperNet, data: &Dataset, genomes: &[Genome]) {
    for g in genomes {
        let mut j = judge(net, g, data, &settings()).unwrap();
        let idx = [0usize, 1, 2];
        let (_, ours) = accuracy(net, g, &mut j.bn, &data.test, data, 250).unwrap();
        let onnx = export_subnet(net, g, &j.bn, data, 0.5).unwrap();
        let model = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let s = data.shape;
        for (k, &i) in idx.iter().enumerate() {
            // the model takes raw pixels: its first ops normalise
            let raw: Vec<f32> = data.test.image(i).iter().map(|&p| f32::from(p)).collect();
            let x = tract_ndarray::Array4::from_shape_vec([1, s.channels, s.height, s.width], raw)
                .unwrap();
            let out = model.run(tvec!(Tensor::from(x).into())).unwrap();
            let theirs: Vec<f32> = out[0]
                .to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect();
            let mine = &ours[k * data.classes..(k + 1) * data.classes];
            for (a, b) in mine.iter().zip(&theirs) {
                assert!(
                    (a - b).abs() < 1e-3 * (1.0 + b.abs()),
                    "genome {}: {mine:?} vs {theirs:?}",
                    g.id()
                );
            }
        }
    }
}

#[test]
fn training_checkpoints_every_epoch_and_resumes() {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let config = one_epoch(48);
    let mut events = Vec::new();
    let (trained, m) = train(
        &space(),
        &data,
        "mnist-5k test",
        &config,
        dir.path(),
        false,
        &mut |p| events.push(p),
    )
    .unwrap();
    assert_eq!(m.epochs.len(), 1);
    assert!(m.epochs[0].loss.is_finite());
    assert!(events.iter().any(|e| matches!(e, Progress::Epoch(_))));

    // the checkpoint holds the same network
    let (loaded, id, done, _) = load(dir.path(), &kiln_train::device()).unwrap();
    assert_eq!(done, 1);
    assert_eq!(crate::epochs_done(dir.path()).unwrap(), 1);
    let g = largest(&space());
    let x = |n: &SuperNet| {
        let mut bn = BnContext::batch();
        let imgs = data
            .train
            .batch::<ChaCha8Rng>(&[0, 1, 2, 3], &data.normalization, None);
        let s = data.shape;
        let t = burn::tensor::Tensor::<4>::from_data(
            burn::tensor::TensorData::new(imgs.images, [4, s.channels, s.height, s.width]),
            &kiln_train::device(),
        );
        kiln_train::values(n.forward(&g, t, &mut bn).unwrap(), "logits").unwrap()
    };
    assert_eq!(x(&trained), x(&loaded));

    // a kill after the next epoch's weights were written, before its commit: the folder
    // still holds epoch 1, with epoch 1's weights
    let other = SuperNet::build(
        &space(),
        id.input,
        false,
        &mut Seeded::new(9),
        &kiln_train::device(),
    )
    .unwrap();
    crate::checkpoint::write_weights(dir.path(), &other, 2).unwrap();
    let (reloaded, _, done, _) = load(dir.path(), &kiln_train::device()).unwrap();
    assert_eq!(done, 1);
    assert_eq!(x(&trained), x(&reloaded));
    assert_ne!(x(&other), x(&reloaded));

    // a kill after metrics.json but before supernet.json recorded a second epoch
    let path = dir.path().join("metrics.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let first = v["epochs"][0].clone();
    v["epochs"].as_array_mut().unwrap().push(first);
    std::fs::write(&path, v.to_string()).unwrap();

    // two epochs with --resume: one more is trained, recorded once
    let more = SupernetConfig {
        epochs: 2,
        ..config
    };
    let mut resumed = None;
    let (_, m) = train(
        &space(),
        &data,
        "mnist-5k test",
        &more,
        dir.path(),
        true,
        &mut |p| {
            if let Progress::Resumed(n) = p {
                resumed = Some(n)
            }
        },
    )
    .unwrap();
    assert_eq!(resumed, Some(1));
    assert_eq!(m.epochs.len(), 2);

    // another data set (another name, other images) is refused, naming it
    let err = id
        .check(
            &SupernetIdentity {
                data: "cifar-10".into(),
                data_content: Some("fedcba9876543210".into()),
                ..id.clone()
            },
            dir.path(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another data (") && err.contains("cifar-10"),
        "{err}"
    );

    // the commit of epoch 2 removed the weights of epoch 1 and the uncommitted file
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    assert_eq!(files, ["supernet-2.safetensors"]);

    // a damaged checkpoint is an error naming the file
    std::fs::write(
        dir.path().join("supernet-2.safetensors"),
        b"not a checkpoint",
    )
    .unwrap();
    let err = load(dir.path(), &kiln_train::device())
        .unwrap_err()
        .to_string();
    assert!(err.contains("supernet-2.safetensors"), "{err}");
}

/// The tiny space choosing its input side among `sides` (TOML, e.g. `[16, 28]`).
fn sized_space(sides: &str) -> Space {
    let text = include_str!("../../../tests/fixtures/tiny-space.toml");
    Space::from_toml(&format!("resolution = {sides}\n{text}"), "sized").unwrap()
}

/// Training records the content of the data it saw: a run whose files changed under the
/// same data name is refused, naming the content; the same content under another name is
/// accepted; a folder written before the content was recorded still loads and is matched by
/// the name alone.
#[test]
fn training_records_its_datas_content() {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let config = one_epoch(16);
    let train_into_dir = |config: &SupernetConfig, resume: bool| {
        train_in(dir.path(), &data, config, resume).unwrap()
    };
    train_into_dir(&config, false);
    let id = crate::identity(dir.path()).unwrap();
    let trained_on = id
        .data_content
        .clone()
        .expect("training records its data's content");
    assert_eq!(trained_on, data.content_id());
    id.check(&id, dir.path()).unwrap();

    let changed = SupernetIdentity {
        data_content: Some("0123456789abcdef".into()),
        ..id.clone()
    };
    let err = id.check(&changed, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("another data content") && err.contains(&trained_on),
        "{err}"
    );
    // the same files in another folder are the same data; other files there are not
    let moved = SupernetIdentity {
        data: "mnist-5k moved elsewhere".into(),
        ..id.clone()
    };
    id.check(&moved, dir.path()).unwrap();
    let moved_and_changed = SupernetIdentity {
        data: moved.data.clone(),
        ..changed.clone()
    };
    let err = id.check(&moved_and_changed, dir.path()).unwrap_err();
    let said = err.to_string();
    assert!(
        said.contains("another data (") && said.contains("moved elsewhere"),
        "{err}"
    );

    let json = dir.path().join("supernet.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let recorded = state["identity"]
        .as_object_mut()
        .unwrap()
        .remove("data_content");
    assert_eq!(recorded, Some(serde_json::Value::from(trained_on)));
    std::fs::write(&json, state.to_string()).unwrap();
    let before = crate::identity(dir.path()).unwrap();
    assert_eq!(before.data_content, None);
    before.check(&changed, dir.path()).unwrap();
    // without a recorded content on either side only the name can tell
    let err = before.check(&moved, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("another data (") && err.contains("moved elsewhere"),
        "{err}"
    );
    let unrecorded_run = SupernetIdentity {
        data_content: None,
        ..moved.clone()
    };
    assert!(id.check(&unrecorded_run, dir.path()).is_err());
    id.check(
        &SupernetIdentity {
            data_content: None,
            ..id.clone()
        },
        dir.path(),
    )
    .unwrap();
    // another space or input is refused whatever the data
    let other_space = SupernetIdentity {
        space: sized_space("[16, 28]"),
        ..id.clone()
    };
    let err = id.check(&other_space, dir.path()).unwrap_err().to_string();
    assert!(err.contains("another space"), "{err}");
    let mut input = id.input;
    input.classes += 1;
    let err = id
        .check(
            &SupernetIdentity {
                input,
                ..id.clone()
            },
            dir.path(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("another input"), "{err}");
    // resumed, it does not claim to know what its first epoch saw
    let two = SupernetConfig {
        epochs: 2,
        ..config
    };
    train_into_dir(&two, true);
    let resumed = crate::identity(dir.path()).unwrap();
    assert_eq!(
        (
            crate::epochs_done(dir.path()).unwrap(),
            resumed.data_content
        ),
        (2, None)
    );
}

/// [`train`] of the tiny space on `data` into `dir`, silently.
pub(crate) fn train_in(
    dir: &std::path::Path,
    data: &Dataset,
    config: &SupernetConfig,
    resume: bool,
) -> Result<(SuperNet, SupernetMetrics), SupernetError> {
    train(
        &space(),
        data,
        "mnist-5k test",
        config,
        dir,
        resume,
        &mut |_| {},
    )
}

/// One epoch in batches of 16, batch norm recalibrated on `recalibration_images`.
pub(crate) fn one_epoch(recalibration_images: usize) -> SupernetConfig {
    SupernetConfig {
        epochs: 1,
        batch_size: 16,
        recalibration_images,
        ..SupernetConfig::default()
    }
}

/// A supernet of `space` trained afresh with `config` in a folder dropped afterwards.
pub(crate) fn train_once(
    space: &Space,
    data: &Dataset,
    config: &SupernetConfig,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> (SuperNet, SupernetMetrics) {
    let dir = tempfile::tempdir().unwrap();
    train(
        space,
        data,
        "mnist-5k test",
        config,
        dir.path(),
        false,
        progress,
    )
    .unwrap()
}

/// Once-for-All's elastic resolution: a space that chooses its input side trains one
/// supernet whose sub-networks each run at their genome's side (the smallest at 16x16,
/// the largest at 28x28 here); each is judged on the data resized to it, the same on
/// kiln-runtime's kernels as on burn's forward pass and as the epoch's record; data at
/// another side is refused naming both shapes; the export takes the genome's side.
#[test]
fn a_space_with_resolutions_trains_and_judges_each_genome_at_its_side() {
    let space = sized_space("[16, 28]");
    let data = data();
    let config = one_epoch(48);
    let (net, m) = train_once(&space, &data, &config, &mut |_| {});
    let at = |side| {
        data.resized(kiln_data::Resolution {
            height: side,
            width: side,
        })
    };
    let (small, big) = (smallest(&space), largest(&space));
    assert_eq!((small.resolution, big.resolution), (Some(16), Some(28)));
    let settings = JudgeSettings {
        recalibration_images: 48,
        batch: 250,
    };
    // the epoch's record judged each end at its side (on training's one thread, as here)
    let top1 = |g: &Genome, d: &Dataset| {
        kiln_train::with_threads(1, || judge(&net, g, d, &settings).unwrap().top1).unwrap()
    };
    let record = &m.epochs[0];
    assert_eq!(top1(&small, &at(16)), record.smallest_top1);
    assert_eq!(top1(&big, &data), record.largest_top1);

    let weights = SupernetWeights::of(&net).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut genomes = vec![small.clone(), big];
    genomes.extend((0..4).map(|_| Genome::sample(&space, &mut rng)));
    let one = 1.0 / data.validation.len() as f64;
    for g in &genomes {
        let d = at(g.resolution.unwrap());
        let (burn, ours) = (
            judge(&net, g, &d, &settings).unwrap(),
            weights.judge(g, &d, &settings),
        );
        let ours = ours.unwrap();
        assert!(
            (burn.top1 - ours.top1).abs() <= 2.0 * one + 1e-12,
            "{}",
            g.id()
        );
    }
    let err = weights
        .judge(&small, &data, &settings)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1x28x28") && err.contains("1x16x16"), "{err}");

    let d16 = at(16);
    let j = judge(&net, &small, &d16, &settings).unwrap();
    let onnx = export_subnet(&net, &small, &j.bn, &d16, j.top1).unwrap();
    let model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let raw: Vec<f32> = d16.test.image(0).iter().map(|&p| f32::from(p)).collect();
    let x = tract_ndarray::Array4::from_shape_vec([1, 1, 16, 16], raw).unwrap();
    let out = model.run(tvec!(Tensor::from(x).into())).unwrap();
    assert_eq!(out[0].shape(), [1, data.classes]);
}

/// A sub-network takes images at its genome's side only: burn's judge refuses data at
/// another side naming both shapes, as kiln-runtime's kernels do (before, global pooling
/// ran it at the wrong side and gave a top-1 of a network nobody would deploy).
#[test]
fn a_sub_network_refuses_images_at_another_side_than_its_genomes() {
    let space = sized_space("[16, 28]");
    let data = data();
    let input = kiln_train::input_spec(&data);
    let dev = kiln_train::device();
    let net = SuperNet::build(&space, input, false, &mut Seeded::new(3), &dev).unwrap();
    let small = smallest(&space);
    let err = judge(&net, &small, &data, &settings())
        .unwrap_err()
        .to_string();
    assert!(err.contains("1x28x28") && err.contains("1x16x16"), "{err}");
    let d16 = data.resized(kiln_data::Resolution {
        height: 16,
        width: 16,
    });
    assert!(judge(&net, &small, &d16, &settings()).is_ok());
    // a genome without a resolution takes the supernet's own input, and only it
    let plain = largest(&self::space());
    let net = SuperNet::build(&self::space(), input, false, &mut Seeded::new(3), &dev).unwrap();
    assert!(judge(&net, &plain, &d16, &settings()).is_err());
}

/// The training step runs every sub-network at its genome's side: with sides 16 and 20,
/// neither the data's 28, a step that fed any sub-network (the largest, the smallest or a
/// random one) the batch as given would be refused by [`SuperNet::forward`], which checks
/// each input's side against its genome's (see the test above), so one epoch training at
/// all says each forward pass received its genome's side.
#[test]
fn training_runs_each_sub_network_on_the_batch_at_its_genomes_side() {
    let space = sized_space("[16, 20]");
    let config = SupernetConfig {
        epochs: 1,
        batch_size: 48,
        random_subnets: 4,
        recalibration_images: 16,
        ..SupernetConfig::default()
    };
    let mut steps = 0;
    let (_, m) = train_once(&space, &data(), &config, &mut |p| {
        steps += usize::from(matches!(p, Progress::Step { .. }))
    });
    assert_eq!((steps, m.epochs.len()), (2, 1));
    assert!(m.epochs[0].loss.is_finite());
}

/// The ranking benchmark's genomes are fixed by the space alone: a shorter list is a prefix
/// of a longer one, and the default space's are the ones every committed pairs file
/// (docs/ranking/, digits and Fashion-MNIST) names, so those files stay readable.
#[test]
fn the_ranking_genomes_are_the_committed_ones() {
    let text = include_str!("../../../spaces/mobile.toml");
    let space = Space::from_toml(text, "spaces/mobile.toml").unwrap();
    let ids = |n| -> Vec<String> { ranking_genomes(&space, n).iter().map(|g| g.id()).collect() };
    assert_eq!(ids(3), ids(30)[..3]);
    // the 30 of the benchmark and the 30 after them (`--candidates 60`, genomes the split
    // was not chosen on)
    let genomes = ranking_genomes(&space, 60);
    let mut files = Vec::new();
    let mut folders = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/ranking"
    ))];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.file_name().is_some_and(|n| n == "pairs.csv") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 10, "{files:?}");
    for path in files {
        let file = crate::pairs::PairsFile::read(&path).unwrap();
        let scored = file.scored.as_deref().unwrap_or(crate::pairs::VALIDATION);
        // the file's own data and scoring: what is checked is each genome against the sample
        let pairs = file.for_run(&file.data, scored, &genomes).unwrap();
        assert_eq!(pairs.len(), file.pairs.len(), "{}", path.display());
        assert!(pairs.len() >= 10, "{}", path.display());
    }
}

/// Without a validation split (`--validation 0`) every judgement would fall back to the
/// test images: training a supernet or a split is refused before anything is written.
#[test]
fn data_without_a_validation_split_is_refused() {
    let mut data = data();
    data.validation = kiln_data::Split::new(data.shape, Vec::new(), Vec::new()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let one = train(
        &space(),
        &data,
        "t",
        &one_epoch(16),
        &dir,
        false,
        &mut |_| {},
    );
    let by = kiln_space::SplitBy::Head;
    let split = crate::split::train_split(
        &space(),
        by,
        &data,
        "t",
        &one_epoch(16),
        &dir,
        false,
        &mut |_| {},
    );
    for e in [
        one.err().map(|e| e.to_string()),
        split.err().map(|e| e.to_string()),
    ] {
        let e = e.expect("refused");
        assert!(
            e.contains("no validation split (--validation 0, or too few"),
            "{e}"
        );
    }
    assert!(!dir.exists(), "nothing written");
}

/// A trained supernet's epochs are not trained over without `--resume`, nor continued
/// with other settings than it began with (epochs may grow: training further).
#[test]
fn a_trained_supernet_is_not_trained_over_nor_resumed_with_other_settings() {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let config = one_epoch(16);
    let train_with =
        |config: &SupernetConfig, resume: bool| train_in(dir.path(), &data, config, resume);
    train_with(&config, false).unwrap();
    let refused = |config: &SupernetConfig, resume: bool| {
        let Err(e) = train_with(config, resume) else {
            panic!("trained")
        };
        e.to_string()
    };
    let e = refused(&config, false);
    // a search run's folder is refused, --resume or not; what an interrupted first epoch
    // left, or a file of the user's, is not
    let search_run = tempfile::tempdir().unwrap();
    std::fs::write(search_run.path().join("journal.sqlite"), b"").unwrap();
    for resume in [false, true] {
        let Err(other) = train_in(search_run.path(), &data, &config, resume) else {
            panic!("trained into a search's folder")
        };
        let other = other.to_string();
        assert!(
            other.contains("holds journal.sqlite, not a supernet's"),
            "{other}"
        );
    }
    let interrupted = tempfile::tempdir().unwrap();
    for file in [
        "supernet-1.safetensors",
        "supernet-2.tmp-77",
        "metrics.json",
        ".gitkeep",
    ] {
        std::fs::write(interrupted.path().join(file), b"").unwrap();
    }
    train_in(interrupted.path(), &data, &config, false).unwrap();
    let flash = tempfile::tempdir().unwrap();
    std::fs::write(flash.path().join("input.bin"), b"").unwrap();
    let Err(flashed) = train_in(flash.path(), &data, &config, false) else {
        panic!("trained into another command's folder")
    };
    assert!(flashed.to_string().contains("holds input.bin"), "{flashed}");
    assert!(
        e.contains("holds a supernet trained 1 epoch:") && e.contains("--resume"),
        "{e}"
    );
    let other = SupernetConfig {
        seed: 3,
        batch_size: 8,
        epochs: 2,
        ..config.clone()
    };
    let e = refused(&other, true);
    assert!(
        e.contains("batch size 16, not 8") && e.contains("seed 0, not 3"),
        "{e}"
    );
    assert_eq!(
        crate::epochs_done(dir.path()).unwrap(),
        1,
        "nothing trained"
    );
    // a weight that is not a number is refused when the supernet loads, naming the file
    let file = crate::weights_path(dir.path()).unwrap();
    let mut weights = kiln_onnx::Weights::load(&file).unwrap();
    let stem = weights.tensors.values_mut().next().unwrap();
    stem.data[0] = f32::NAN;
    std::fs::write(&file, weights.to_safetensors().unwrap()).unwrap();
    let Err(e) = load(dir.path(), &kiln_train::device()) else {
        panic!("loaded NaN weights")
    };
    let e = e.to_string();
    assert!(
        e.contains("supernet-1.safetensors") && e.contains("holds NaN"),
        "{e}"
    );
}

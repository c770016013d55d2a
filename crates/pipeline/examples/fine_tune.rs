//! Fine-tuning schedules compared (issue 14's accuracy benchmark; outside CI): each
//! genome's weights inherited from a supernet (batch norm recalibrated), trained `--epochs`
//! more under each schedule, on the bundled data; prints validation and test top-1 (host)
//! per genome and schedule, as a markdown table, one row as soon as it is trained.
//!
//! `cargo run --profile dev -p kiln-pipeline --example fine_tune -- --supernet DIR
//! --genomes A.json,B.json [--epochs 10] [--schedules 0.1:0,1:0.3] [--seed 0]
//! [--shards 1] [--threads 1]`
//!
//! A schedule is `LR_SCALE:WARMUP_EPOCHS`: the peak learning rate as a multiple of
//! kiln-train's default (Adam, 0.005) and the linear warm-up in epochs, then cosine decay
//! as in training from scratch. `1:0.3` is the search's fine-tuning
//! (`kiln_pipeline::finetune::fine_tune_config`); `0.1:0` was its first rule.

use std::path::{Path, PathBuf};

use kiln_data::SplitOptions;
use kiln_pipeline::SupernetJudge;
use kiln_space::Genome;
use kiln_train::{Silent, TrainConfig};

type Error = Box<dyn std::error::Error>;

struct Args {
    supernet: PathBuf,
    genomes: Vec<PathBuf>,
    epochs: usize,
    schedules: Vec<(f64, f64)>,
    seed: u64,
    shards: usize,
    threads: usize,
}

fn args() -> Result<Args, Error> {
    let mut a = Args {
        supernet: PathBuf::new(),
        genomes: Vec::new(),
        epochs: 10,
        schedules: vec![(0.1, 0.0), (1.0, 0.3)],
        seed: 0,
        shards: 1,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--supernet" => a.supernet = v.into(),
            "--genomes" => a.genomes = v.split(',').map(PathBuf::from).collect(),
            "--epochs" => a.epochs = v.parse()?,
            "--seed" => a.seed = v.parse()?,
            "--shards" => a.shards = v.parse()?,
            "--threads" => a.threads = v.parse()?,
            "--schedules" => {
                a.schedules = v
                    .split(',')
                    .map(|s| -> Result<(f64, f64), Error> {
                        let (lr, warm) = s
                            .split_once(':')
                            .ok_or(format!("schedule {s}: expected LR_SCALE:WARMUP_EPOCHS"))?;
                        Ok((lr.parse()?, warm.parse()?))
                    })
                    .collect::<Result<_, _>>()?
            }
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    if a.supernet.as_os_str().is_empty() || a.genomes.is_empty() {
        return Err("--supernet DIR and --genomes A.json,B.json are required".into());
    }
    Ok(a)
}

fn read_genome(path: &Path) -> Result<Genome, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

fn main() -> Result<(), Error> {
    let a = args()?;
    let source = kiln_data::Source::Mnist5k;
    let split = SplitOptions::default();
    let data = kiln_data::load(&source, &split)?;
    let judge = SupernetJudge::load(&a.supernet, None, &data, &source.identity(&split))?;
    let space = judge.space()?;
    let base = TrainConfig {
        threads: a.threads,
        shards: a.shards,
        ..Default::default()
    };
    println!("| genome | inherited validation | schedule (lr, warm-up) | validation | test |");
    println!("|---|---|---|---|---|");
    for path in &a.genomes {
        let genome = read_genome(path)?;
        let arch = kiln_train::architecture_for(&space, &genome, &data)?;
        let (inherited, start) = judge.inherited_weights(&genome, &data)?;
        for &(scale, warmup) in &a.schedules {
            let config = TrainConfig {
                epochs: a.epochs,
                lr: base.lr * scale,
                warmup_epochs: warmup,
                seed: a.seed,
                ..base.clone()
            };
            let trained = kiln_train::train_from(
                &arch,
                Some(&start),
                &genome.id(),
                &data,
                &config,
                &mut Silent,
            )?;
            let m = &trained.metrics;
            println!(
                "| {} | {:.2}% | {:.4}, {warmup} epochs | {:.2}% | {:.2}% |",
                genome.id(),
                inherited * 100.0,
                config.lr,
                m.validation_top1.unwrap_or(f64::NAN) * 100.0,
                m.test_top1 * 100.0
            );
        }
    }
    Ok(())
}

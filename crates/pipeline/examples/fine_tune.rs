//! Fine-tuning schedules compared (issue 14's accuracy benchmark; outside CI): each
//! genome's weights inherited from a supernet (batch norm recalibrated), trained `--epochs`
//! more under each schedule, on the bundled data (or `--idx DIR` with `--validation SHARE`,
//! as the supernet was trained); prints validation and test top-1 (host) per genome and
//! schedule, as a markdown table, one row as soon as it is trained.
//!
//! `cargo run --profile dev -p kiln-pipeline --example fine_tune -- --supernet DIR
//! (--genomes A.json,B.json | --ranking N) [--epochs 10] [--schedules 0.1:0,1:0.3]
//! [--seed 0] [--shards 1] [--threads 1] [--idx DIR --validation SHARE]
//! [--stand-alone-from PAIRS.csv]`
//!
//! `--ranking N` takes the ranking benchmark's first `N` genomes
//! ([`kiln_supernet::ranking_genomes`]); `--stand-alone-from` (a judge bench pairs file of
//! them, `done,index,genome,inherited,stand_alone`) then also prints Kendall's tau-b of the
//! inherited and of each schedule's fine-tuned validation top-1 against the file's
//! stand-alone accuracies: how well a short fine-tune ranks where inheritance alone does
//! not (a proxy that costs a training per candidate).
//!
//! A schedule is `LR_SCALE:WARMUP_EPOCHS`: the peak learning rate as a multiple of
//! kiln-train's default (Adam, 0.005) and the linear warm-up in epochs, then cosine decay
//! as in training from scratch. `1:0.3` is the search's fine-tuning
//! (`kiln_pipeline::finetune::fine_tune_config`); `0.1:0` was its first rule.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kiln_data::SplitOptions;
use kiln_pipeline::SupernetJudge;
use kiln_space::Genome;
use kiln_supernet::pairs;
use kiln_train::{Silent, TrainConfig};

type Error = Box<dyn std::error::Error>;

struct Args {
    supernet: PathBuf,
    genomes: Vec<PathBuf>,
    ranking: Option<usize>,
    idx: Option<PathBuf>,
    validation: f64,
    stand_alone_from: Option<PathBuf>,
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
        ranking: None,
        idx: None,
        validation: SplitOptions::default().validation_fraction,
        stand_alone_from: None,
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
            "--ranking" => a.ranking = Some(v.parse()?),
            "--idx" => a.idx = Some(v.into()),
            "--validation" => a.validation = v.parse()?,
            "--stand-alone-from" => a.stand_alone_from = Some(v.into()),
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
    if a.supernet.as_os_str().is_empty() || (a.genomes.is_empty() == a.ranking.is_none()) {
        return Err("--supernet DIR and one of --genomes A.json,B.json or --ranking N".into());
    }
    Ok(a)
}

fn read_genome(path: &Path) -> Result<Genome, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// The stand-alone accuracy of each genome id in the pairs file at `path`, refused unless
/// it was measured on `data`'s validation split ([`pairs::PairsFile`]): what this example
/// measures fine-tuned models on.
fn stand_alone(path: &Path, data: &str) -> Result<HashMap<String, f64>, Error> {
    let file = pairs::PairsFile::read(path)?;
    if file.data != data || file.scored.is_some() {
        return Err(format!(
            "{}: measured on {}, but this run measures the validation split of {data}",
            path.display(),
            file.scored_on()
        )
        .into());
    }
    Ok(file
        .pairs
        .into_iter()
        .map(|p| (p.genome, p.stand_alone))
        .collect())
}

fn main() -> Result<(), Error> {
    let a = args()?;
    let source = a
        .idx
        .clone()
        .map_or(kiln_data::Source::Mnist5k, kiln_data::Source::Idx);
    let split = SplitOptions {
        validation_fraction: a.validation,
        ..SplitOptions::default()
    };
    let data = kiln_data::load(&source, &split)?;
    let identity = source.identity(&split);
    let judge = SupernetJudge::load(&a.supernet, None, &data, &identity)?;
    let space = judge.space()?;
    let genomes = match a.ranking {
        Some(n) => kiln_supernet::ranking_genomes(&space, n),
        None => a
            .genomes
            .iter()
            .map(|p| read_genome(p))
            .collect::<Result<_, _>>()?,
    };
    let truth = match &a.stand_alone_from {
        Some(path) => {
            let found = stand_alone(path, &identity)?;
            // before any training, not after hours of it
            if let Some(g) = genomes.iter().find(|g| !found.contains_key(&g.id())) {
                let msg = format!(
                    "{}: no stand-alone accuracy of genome {}",
                    path.display(),
                    g.id()
                );
                return Err(msg.into());
            }
            Some(found)
        }
        None => None,
    };
    // per genome: the stand-alone accuracy, the inherited one, and each schedule's
    let mut rows: Vec<(f64, Vec<f64>)> = Vec::new();
    let base = TrainConfig {
        threads: a.threads,
        shards: a.shards,
        ..Default::default()
    };
    println!("| genome | inherited validation | schedule (lr, warm-up) | validation | test |");
    println!("|---|---|---|---|---|");
    for genome in &genomes {
        let mut row = Vec::new();
        let arch = kiln_train::architecture_for(&space, genome, &data)?;
        let (inherited, start) = judge.inherited_weights(genome, &data)?;
        row.push(inherited);
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
            row.push(m.validation_top1.unwrap_or(f64::NAN));
            println!(
                "| {} | {:.2}% | {:.4}, {warmup} epochs | {:.2}% | {:.2}% |",
                genome.id(),
                inherited * 100.0,
                config.lr,
                m.validation_top1.unwrap_or(f64::NAN) * 100.0,
                m.test_top1 * 100.0
            );
        }
        if let Some(t) = &truth {
            rows.push((t[&genome.id()], row));
        }
    }
    if truth.is_some() {
        let alone: Vec<f64> = rows.iter().map(|(s, _)| *s).collect();
        let mut names = vec!["inherited".to_string()];
        names.extend(
            a.schedules
                .iter()
                .map(|(l, w)| format!("fine-tuned ({l}:{w})")),
        );
        for (i, name) in names.iter().enumerate() {
            let column: Vec<f64> = rows.iter().map(|(_, r)| r[i]).collect();
            let tau = kiln_latency::kendall_tau(&column, &alone)
                .map_or("undefined".to_string(), |t| format!("{t:.3}"));
            println!(
                "{name} vs stand-alone, validation top-1 (host), {} genomes: Kendall tau-b {tau}",
                rows.len()
            );
        }
    }
    Ok(())
}

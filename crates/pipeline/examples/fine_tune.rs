//! Fine-tuning schedules compared (issue 14's accuracy benchmark; outside CI): each
//! genome's weights inherited from a supernet (batch norm recalibrated), trained `--epochs`
//! more under each schedule, on the bundled data (or `--idx DIR` with `--validation SHARE`,
//! as the supernet was trained); prints validation and test top-1 (host) per genome and
//! schedule, as a markdown table, one row as soon as it is trained.
//!
//! `cargo run --profile dev -p kiln-pipeline --example fine_tune -- --supernet DIR
//! (--genomes A.json,B.json | --ranking N) [--epochs 10] [--schedules 0.1:0,1:0.3]
//! [--seed 0] [--shards 1] [--threads 1] [--idx DIR --validation SHARE]
//! [--held-out DIR] [--stand-alone-from PAIRS.csv]...`
//!
//! `DIR` is one supernet's folder or a few-shot split's (each genome inherits from the part
//! that holds it, as in the search). `--ranking N` takes the ranking benchmark's first `N`
//! genomes ([`kiln_supernet::ranking_genomes`]); `--stand-alone-from` (a judge bench pairs
//! file of them, `done,index,genome,inherited,stand_alone`; given several times, the mean of
//! the files' stand-alone accuracies) then also prints Kendall's tau-b of the inherited and
//! of each schedule's fine-tuned top-1 against the stand-alone accuracies: how well a short
//! fine-tune ranks where inheritance alone does not (a proxy that costs a training per
//! candidate). `--held-out DIR` (an IDX folder sharing no image with the training or
//! validation images) scores the fine-tuned models on DIR's test images, the judge bench's
//! `--held-out`: the pairs files must be scored there too, and the inherited accuracy is
//! then ranked on them too (every row also gives it on the test split, whichever it is).
//!
//! A schedule is `LR_SCALE:WARMUP_EPOCHS`: the peak learning rate as a multiple of
//! kiln-train's default (Adam, 0.005) and the linear warm-up in epochs, then cosine decay
//! as in training from scratch. `1:0.3` is the search's fine-tuning
//! (`kiln_pipeline::finetune::fine_tune_config`); `0.1:0` was its first rule.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kiln_data::SplitOptions;
use kiln_pipeline::Supernets;
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
    stand_alone_from: Vec<PathBuf>,
    held_out: Option<PathBuf>,
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
        stand_alone_from: Vec::new(),
        held_out: None,
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
            "--stand-alone-from" => a.stand_alone_from.push(v.into()),
            "--held-out" => a.held_out = Some(v.into()),
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

/// The mean stand-alone accuracy of each of `genomes` over the pairs files at `paths`,
/// refused unless every file was measured on `data` and scored where this run scores
/// (`held_out`: how a `scored` line on the `--held-out` images ends; else `data`'s
/// validation split, [`pairs::PairsFile`]), no file is given twice or lists a genome
/// twice, and every file holds every genome (naming the files that lack one).
fn stand_alone(
    paths: &[PathBuf],
    data: &str,
    held_out: Option<&str>,
    genomes: &[Genome],
) -> Result<HashMap<String, f64>, Error> {
    let mut found: HashMap<String, Vec<f64>> = HashMap::new();
    for (i, path) in paths.iter().enumerate() {
        if paths[..i].contains(path) {
            return Err(format!("{}: given twice as --stand-alone-from", path.display()).into());
        }
        let file = pairs::PairsFile::read(path)?;
        let scored_here = match (held_out, &file.scored) {
            (Some(ending), Some(s)) => s.ends_with(ending),
            (None, None) => true,
            _ => false,
        };
        if file.data != data || !scored_here {
            let here = held_out.map_or(format!("the validation split of {data}"), |end| {
                format!("the --held-out images{end} of {data}")
            });
            return Err(format!(
                "{}: measured on {} ({}), but this run scores {here}",
                path.display(),
                file.data,
                file.scored_on()
            )
            .into());
        }
        for p in file.pairs {
            let all = found.entry(p.genome.clone()).or_default();
            if all.len() > i {
                let msg = format!(
                    "{} line {}: genome {} again",
                    path.display(),
                    p.line,
                    p.genome
                );
                return Err(msg.into());
            }
            all.push(p.stand_alone);
        }
        // before any training, not after hours of it
        if let Some(g) = genomes
            .iter()
            .find(|g| found.get(&g.id()).map_or(0, Vec::len) <= i)
        {
            let msg = format!(
                "{}: no stand-alone accuracy of genome {}",
                path.display(),
                g.id()
            );
            return Err(msg.into());
        }
    }
    Ok(found
        .into_iter()
        .map(|(g, all)| (g, pairs::mean_accuracy(&all)))
        .collect())
}

/// `data` with the test images of the IDX folder `dir` (`--held-out`) as its test split
/// ([`pairs::held_out_images`], the judge bench's check), and how a pairs file's `scored`
/// line scored on them ends: `(N images, content ID)`, wherever its folder was named from.
fn with_held_out(
    data: kiln_data::Dataset,
    dir: &Path,
    split: &SplitOptions,
) -> Result<(kiln_data::Dataset, String), Error> {
    let (test, scored) = pairs::held_out_images(dir, &dir.to_string_lossy(), &data, split)?;
    let ending = scored
        .rfind(" (")
        .map_or(scored.as_str(), |at| &scored[at..]);
    Ok((kiln_data::Dataset { test, ..data }, ending.to_owned()))
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
    let judges = Supernets::load(&a.supernet, None, &data, &identity)?;
    let space = judges.space().clone();
    // after the supernets' data check, which reads the data's own splits
    let (data, held_out) = match &a.held_out {
        Some(dir) => {
            let (d, id) = with_held_out(data, dir, &split)?;
            (d, Some(id))
        }
        None => (data, None),
    };
    eprintln!("fine-tuning from {}", judges.describe());
    let genomes = match a.ranking {
        Some(n) => kiln_supernet::ranking_genomes(&space, n),
        None => a
            .genomes
            .iter()
            .map(|p| read_genome(p))
            .collect::<Result<_, _>>()?,
    };
    let truth = if a.stand_alone_from.is_empty() {
        None
    } else {
        let ids = (identity.as_str(), held_out.as_deref());
        Some(stand_alone(&a.stand_alone_from, ids.0, ids.1, &genomes)?)
    };
    // per genome: the stand-alone accuracy, the inherited one, and each schedule's
    let mut rows: Vec<(f64, Vec<f64>)> = Vec::new();
    let base = TrainConfig {
        threads: a.threads,
        shards: a.shards,
        ..Default::default()
    };
    let scored = if held_out.is_some() {
        "held-out"
    } else {
        "validation"
    };
    println!(
        "| genome | inherited validation | inherited test | schedule (lr, warm-up) | validation \
         | test |"
    );
    println!("|---|---|---|---|---|---|");
    for genome in &genomes {
        let mut row = Vec::new();
        let arch = kiln_train::architecture_for(&space, genome, &data)?;
        let judge = judges.for_genome(genome)?;
        let (inherited, start) = judge.inherited_weights(genome, &data)?;
        // the inherited test top-1 (with --held-out, on the held-out images)
        let inherited_test = match judge.judge(genome, &data, true)?.exported {
            Some((test, _)) => test,
            None => f64::NAN,
        };
        row.push(if held_out.is_some() {
            inherited_test
        } else {
            inherited
        });
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
            row.push(if held_out.is_some() {
                m.test_top1
            } else {
                m.validation_top1.unwrap_or(f64::NAN)
            });
            println!(
                "| {} | {:.2}% | {:.2}% | {:.4}, {warmup} epochs | {:.2}% | {:.2}% |",
                genome.id(),
                inherited * 100.0,
                inherited_test * 100.0,
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
                "{name} vs stand-alone (mean of {}), {scored} top-1 (host), {} genomes: \
                 Kendall tau-b {tau}",
                a.stand_alone_from.len(),
                rows.len()
            );
        }
    }
    Ok(())
}

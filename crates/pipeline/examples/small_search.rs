//! A real search through the library, without the xtask command line:
//! `cargo run -p kiln-pipeline --example small_search -- TARGET RUN_DIR TRIALS EPOCHS TRAIN_LIMIT [evolution|random] [SEED] [WORKERS]`
//! Used to check the pipeline end to end and for the strategy benchmarks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_data::SplitOptions;
use kiln_pipeline::PipelineEvaluator;
use kiln_search::driver::{NoProgress, ProgressState};
use kiln_search::report::write_report;
use kiln_search::strategy::EvolutionConfig;
use kiln_search::{
    AgingEvolution, Journal, Objective, Progress, RandomSearch, RunMeta, SearchConfig, Strategy,
};
use kiln_space::{Genome, Space};

struct Lines;
impl Progress for Lines {
    fn update(&self, _s: &ProgressState) {}
    fn trial_finished(&self, line: &str) {
        eprintln!("{line}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 5 {
        return Err(
            "usage: TARGET RUN_DIR TRIALS EPOCHS TRAIN_LIMIT [evolution|random] [SEED] [WORKERS]"
                .into(),
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = kiln_target::load(&root.join("targets"), &a[0])?;
    let run_dir = PathBuf::from(&a[1]);
    let trials: usize = a[2].parse()?;
    let epochs: usize = a[3].parse()?;
    let limit: usize = a[4].parse()?;
    let strategy = a.get(5).map_or("evolution", |s| s.as_str()).to_string();
    let seed: u64 = a.get(6).map_or(Ok(0), |s| s.parse())?;
    let workers: usize = a.get(7).map_or(Ok(2), |s| s.parse())?;
    let space = Space::load(&root.join("spaces/mobile.toml"))?;
    let data = kiln_data::load(
        &kiln_data::Source::Mnist5k,
        &SplitOptions {
            train_limit: Some(limit),
            ..SplitOptions::default()
        },
    )?;
    let meta = RunMeta::default()
        .with("target", &target.name)
        .with("strategy", &strategy)
        .with("seed", seed)
        .with("epochs", epochs)
        .with("train_limit", limit);
    let journal = if Journal::exists_in(&run_dir) {
        Journal::resume(&run_dir, &meta)?
    } else {
        Journal::create(&run_dir, &meta)?
    };
    let gs = Arc::new(kiln_search::GenomeSpace::new(space.clone()));
    let mut s: Box<dyn Strategy<Genome>> = if strategy == "random" {
        Box::new(RandomSearch::new(gs.clone(), seed))
    } else {
        Box::new(AgingEvolution::new(
            gs.clone(),
            EvolutionConfig {
                population: 8,
                tournament: 3,
                crossover: 0.2,
            },
            seed,
        ))
    };
    let train = kiln_train::TrainConfig {
        epochs,
        batch_size: 32,
        seed,
        threads: 1,
        ..Default::default()
    };
    let evaluator = PipelineEvaluator::new(space, target.clone(), Arc::new(data), train);
    let config = SearchConfig {
        trials: Some(trials),
        workers,
        ..SearchConfig::default()
    };
    let quiet = std::env::var_os("QUIET").is_some();
    let progress: &dyn Progress = if quiet { &NoProgress } else { &Lines };
    let summary = kiln_search::run_search(
        &*gs,
        s.as_mut(),
        &evaluator,
        &journal,
        &run_dir,
        &config,
        progress,
    )?;
    let files = write_report(
        &run_dir,
        &journal,
        Some(&target),
        &[Objective::Accuracy, Objective::Latency],
    )?;
    println!("{summary:?}");
    println!("front: {}", files.front.len());
    Ok(())
}

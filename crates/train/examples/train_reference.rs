//! Trains the reference genome on the bundled MNIST subset and prints the metrics.
//! `cargo run --release -p kiln-train --example train_reference -- [EPOCHS] [TRAIN_LIMIT] [CONFIG_JSON]`
use kiln_data::{Source, SplitOptions};
use kiln_space::{Architecture, Genome, Space};
use kiln_train::{ProgressBars, TrainConfig, input_spec, train};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let epochs = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let limit = args
        .get(2)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse())
        .transpose()?;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let space = Space::load(format!("{root}/spaces/mobile.toml").as_ref())?;
    let genome_path = std::env::var("KILN_GENOME")
        .unwrap_or_else(|_| format!("{root}/crates/train/genomes/mnist-reference.json"));
    let genome = Genome::load(genome_path.as_ref(), &space)?;
    let data = kiln_data::load(
        &Source::Mnist5k,
        &SplitOptions {
            train_limit: limit,
            ..SplitOptions::default()
        },
    )?;
    let arch = Architecture::new(&space, &genome, input_spec(&data))?;
    println!("{}", arch.table());
    // Optional third argument: a (partial) TrainConfig as JSON, e.g. '{"lr": 0.01}'.
    let mut config: TrainConfig = match args.get(3) {
        Some(json) => serde_json::from_str(json)?,
        None => TrainConfig::default(),
    };
    config.epochs = epochs;
    let trained = train(
        &arch,
        &genome.id(),
        &data,
        &config,
        &mut ProgressBars::default(),
    )?;
    println!("{}", serde_json::to_string_pretty(&trained.metrics.epochs)?);
    println!(
        "test top-1 {:.2}%  {:.0} img/s",
        trained.metrics.test_top1 * 100.0,
        trained.metrics.train_images_per_second
    );
    Ok(())
}

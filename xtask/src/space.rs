//! `cargo xtask space`: sample and inspect genomes.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use kiln_space::{Architecture, Genome};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::common::{InputArgs, load_genome, load_space};

#[derive(Subcommand)]
pub enum SpaceCommand {
    /// Print a genome drawn uniformly from the space, as JSON. The same seed
    /// gives the same genome.
    Sample {
        /// Seed of the draw.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Space file (default: spaces/mobile.toml).
        #[arg(long)]
        space: Option<PathBuf>,
    },
    /// Print the architecture a genome describes as a table with parameters
    /// and MACs per layer (analytic figures, computed from the genome).
    Show {
        /// Genome JSON file, or `-` for standard input.
        genome: PathBuf,
        /// Space file (default: spaces/<the genome's space>.toml).
        #[arg(long)]
        space: Option<PathBuf>,
        #[command(flatten)]
        input: InputArgs,
        /// Print the layers and totals as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: SpaceCommand) -> Result<()> {
    match cmd {
        SpaceCommand::Sample { seed, space } => {
            let space = load_space(space.as_deref())?;
            let genome = Genome::sample(&space, &mut ChaCha8Rng::seed_from_u64(seed));
            println!("{}", genome.to_json());
        }
        SpaceCommand::Show {
            genome,
            space,
            input,
            json,
        } => {
            let (genome, space) = load_genome(&genome, space.as_deref())?;
            let arch = Architecture::new(&space, &genome, input.spec()?)?;
            if json {
                let value = serde_json::json!({
                    "genome_id": genome.id(),
                    "source": "predicted",
                    "layers": arch.layers(),
                    "totals": arch.totals(),
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!(
                    "genome {} (space `{}`, input {})",
                    genome.id(),
                    space.name,
                    arch.input
                );
                print!("{}", arch.table());
            }
        }
    }
    Ok(())
}

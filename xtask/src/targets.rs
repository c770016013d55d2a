//! `cargo xtask targets`: the device profiles.

use std::path::PathBuf;

use anyhow::Result;

use crate::common::targets_dir;

/// List the device profiles (targets/*.toml): triple, power modes and the
/// hard constraints a model must meet on each.
#[derive(clap::Args)]
pub struct Args {
    /// Folder of profiles (default: targets/ of the checkout; `--dir` also works).
    #[arg(long = "targets-dir", visible_alias = "dir", value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print the profiles as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let dir = args.dir.unwrap_or_else(targets_dir);
    let targets = kiln_target::load_all(&dir)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&targets)?);
        return Ok(());
    }
    println!(
        "{:<12} {:<28} {:<8} {:<22} constraints",
        "target", "triple", "deploy", "power modes"
    );
    for t in &targets {
        let modes = t
            .power_modes
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "{:<12} {:<28} {:<8} {:<22} {}",
            t.name,
            t.triple.to_string(),
            t.deploy.method.to_string(),
            modes,
            t.constraint_summary()
        );
    }
    Ok(())
}

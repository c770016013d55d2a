//! Helpers shared by subcommands: where the workspace's data lives, and
//! reading the inputs most commands take.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kiln_space::{Genome, InputSpec, Space};

/// The kiln checkout (spaces/, targets/, data/ live here).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn targets_dir() -> PathBuf {
    workspace_root().join("targets")
}

/// The space file for a space name: `spaces/<name>.toml`.
pub fn space_path(name: &str) -> PathBuf {
    workspace_root().join("spaces").join(format!("{name}.toml"))
}

/// Loads the space from `explicit`, else the default `spaces/mobile.toml`.
pub fn load_space(explicit: Option<&Path>) -> Result<Space> {
    let path = explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| space_path("mobile"));
    Ok(Space::load(&path)?)
}

/// Reads a genome from a file or `-` (stdin). Unless `space_file` is given,
/// the space is the one the genome names, from `spaces/<name>.toml`.
pub fn load_genome(path: &Path, space_file: Option<&Path>) -> Result<(Genome, Space)> {
    let (text, origin) = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the genome from standard input")?;
        (s, "<stdin>".to_string())
    } else {
        let s = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        (s, path.display().to_string())
    };
    let space = match space_file {
        Some(p) => Space::load(p)?,
        None => {
            #[derive(serde::Deserialize)]
            struct SpaceName {
                space: String,
            }
            let name: SpaceName = serde_json::from_str(&text).with_context(|| {
                format!("{origin}: not a genome (a JSON object with a `space` field)")
            })?;
            let p = space_path(&name.space);
            if !p.is_file() {
                bail!(
                    "{origin}: field `space`: no space file {} (give one with --space)",
                    p.display()
                );
            }
            Space::load(&p)?
        }
    };
    let genome = Genome::from_json(&text, &origin, &space)?;
    Ok((genome, space))
}

/// Parses `CxHxW` (e.g. `1x28x28`) and a class count into an input spec.
pub fn input_spec(shape: &str, classes: usize) -> Result<InputSpec> {
    let dims: Vec<usize> = shape
        .split('x')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--input `{shape}`: expected CxHxW, e.g. 1x28x28"))?;
    let [channels, height, width] = dims[..] else {
        bail!("--input `{shape}`: expected three dimensions CxHxW, e.g. 1x28x28");
    };
    Ok(InputSpec {
        channels,
        height,
        width,
        classes,
    })
}

/// The input shape arguments shared by commands that build a network.
#[derive(clap::Args, Debug, Clone)]
pub struct InputArgs {
    /// Input shape as CxHxW. Defaults to the bundled MNIST subset's.
    #[arg(long, default_value = "1x28x28")]
    pub input: String,
    /// Number of classes.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
}

impl InputArgs {
    pub fn spec(&self) -> Result<InputSpec> {
        input_spec(&self.input, self.classes)
    }
}

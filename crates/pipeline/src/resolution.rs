//! Input resolution as a decision of the search space (`resolution = [64, 96]` in a space
//! file, as Once-for-All searches 128-224): every candidate trains (or is judged on the
//! supernet) and is measured on the search's data resized to the resolution its genome
//! chose, so its latency, memory and accuracy are those of that input. A latency table of
//! such a space holds the layers of every resolution ([`kiln_space::Space::layer_keys`]),
//! and its supernet trains each sub-network at its resolution (kiln-supernet). The
//! differentiable search does not choose the resolution and refuses such a space.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use kiln_data::{Dataset, Resolution};
use kiln_space::{Genome, Space};

use rand::SeedableRng;

use crate::PipelineError;

/// Refuses what cannot search a space with resolution choices (`what` names it, e.g.
/// `the differentiable search`).
///
/// Errors: [`PipelineError::Invalid`] naming the space file, its resolutions and what to
/// use instead.
pub fn refuse_with_resolutions(
    space: &Space,
    path: &Path,
    what: &str,
) -> Result<(), PipelineError> {
    match &space.resolution {
        None => Ok(()),
        Some(sides) => Err(PipelineError::Invalid(format!(
            "{}: the space chooses the input resolution ({sides:?}), which {what} does not \
             choose; search it with another strategy, or remove `resolution` from the space",
            path.display()
        ))),
    }
}

/// A space whose networks downsample more than the images allow is refused up front
/// rather than failing every trial: 8 sampled genomes (`seed`) are checked, and one
/// genome at each resolution the space lists (whether a genome fits depends on its side,
/// which 8 samples may miss; a space without resolutions draws the same 8 as before).
///
/// Errors: [`PipelineError::Invalid`] naming the space file, the data set and its shape,
/// and the side that does not fit.
pub(crate) fn check_space_fits(
    space: &Space,
    path: &Path,
    data: &Dataset,
    seed: u64,
) -> Result<(), PipelineError> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut genomes: Vec<Genome> = (0..8).map(|_| Genome::sample(space, &mut rng)).collect();
    let at = |side| Genome {
        resolution: Some(side),
        ..genomes[0].clone()
    };
    let sides: Vec<Genome> = space.resolution.iter().flatten().map(|&s| at(s)).collect();
    genomes.extend(sides);
    for g in &genomes {
        kiln_train::architecture_for(space, g, data).map_err(|e| {
            PipelineError::Invalid(format!(
                "space {} does not fit data set {} ({}x{}x{}, {} classes): {e}",
                path.display(),
                data.name,
                data.shape.channels,
                data.shape.height,
                data.shape.width,
                data.classes
            ))
        })?;
    }
    Ok(())
}

/// `data` at `genome`'s resolution (`side x side`, resized as the search resizes it), or
/// `data` itself when the genome has none or it is `data`'s own: for judging or exporting
/// one genome (a search keeps each resolution's data, see `PerResolution`).
pub fn data_at<'a>(data: &'a Dataset, genome: &Genome) -> Cow<'a, Dataset> {
    match genome.resolution {
        Some(side) if (data.shape.height, data.shape.width) != (side, side) => {
            Cow::Owned(data.resized(Resolution {
                height: side,
                width: side,
            }))
        }
        _ => Cow::Borrowed(data),
    }
}

/// The search's data at each genome's resolution, resized once per resolution and kept.
#[derive(Debug, Default)]
pub(crate) struct PerResolution {
    resized: Mutex<HashMap<usize, Arc<Dataset>>>,
}

impl PerResolution {
    /// `data` resized to `genome`'s resolution (`side x side`), or `data` itself when the
    /// genome has none or it is `data`'s own.
    pub(crate) fn data_for(&self, data: &Arc<Dataset>, genome: &Genome) -> Arc<Dataset> {
        let Some(side) = genome.resolution else {
            return data.clone();
        };
        if (data.shape.height, data.shape.width) == (side, side) {
            return data.clone();
        }
        let mut resized = self.resized.lock().unwrap_or_else(PoisonError::into_inner);
        resized
            .entry(side)
            .or_insert_with(|| {
                Arc::new(data.resized(Resolution {
                    height: side,
                    width: side,
                }))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A side the space's downsampling does not fit is refused before any trial, whatever
    /// the seed: 8 sampled genomes miss one side of 8 about a third of the time.
    #[test]
    fn every_resolution_is_checked_to_fit_before_the_search() {
        let text = include_str!("../../../spaces/mobile-96.toml");
        let data = kiln_data::load(
            &kiln_data::Source::Mnist5k,
            &kiln_data::SplitOptions {
                seed: kiln_data::DEFAULT_SPLIT_SEED,
                validation_fraction: 0.1,
                train_limit: Some(16),
            },
        )
        .unwrap();
        let path = Path::new("r.toml");
        let sides = "[8, 32, 48, 64, 80, 96, 112, 128]";
        let space = Space::from_toml(&format!("resolution = {sides}\n{text}"), "r").unwrap();
        for seed in 0..12 {
            let err = check_space_fits(&space, path, &data, seed).unwrap_err();
            let err = err.to_string();
            assert!(
                err.contains("r.toml") && err.contains("8x8"),
                "seed {seed}: {err}"
            );
        }
        let fits = Space::from_toml(&format!("resolution = [32, 64]\n{text}"), "f").unwrap();
        check_space_fits(&fits, path, &data, 0).unwrap();
    }
}

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

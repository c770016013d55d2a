//! Input resolution as a decision of the search space (`resolution = [64, 96]` in a space
//! file, as Once-for-All searches 128-224): every candidate trains and is measured on the
//! search's data resized to the resolution its genome chose, so its latency and memory are
//! those of that input. The supernet and the latency tables are built for one input size
//! (their layers are keyed by height and width), so a space with resolutions is searched
//! with `--evaluator train` and without a table.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use kiln_data::{Dataset, Resolution};
use kiln_space::{Genome, Space};

use crate::PipelineError;

/// Refuses what cannot search a space with resolution choices: a supernet (`what` names
/// it, e.g. `the supernet evaluator`).
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
            "{}: the space chooses the input resolution ({sides:?}), and {what} is built for \
             one input size (its layers are keyed by height and width); search it with \
             --evaluator train and --lut off, or remove `resolution` from the space",
            path.display()
        ))),
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

//! kiln-supernet: weight sharing. One [`SuperNet`] holds every choice of a search space at
//! its largest; any genome of the space is a sub-network of it (first blocks, first
//! channels, centre of the kernel; see [`net`]). It is trained once ([`train`]) with the
//! sandwich rule and in-place distillation (BigNAS, Yu et al., 2020; slimmable networks,
//! Yu and Huang, 2019): each step trains the largest sub-network on the labels and the
//! smallest and a few random ones on the largest's predictions. A sub-network is then
//! judged in a second or so ([`judge`]): its batch-norm statistics recalibrated on a fixed
//! set of training images, its validation top-1 measured. That accuracy is *inherited*
//! (from the supernet), never to be confused with one trained from scratch or
//! fine-tuned. [`extract`] slices a sub-network's weights out under the names
//! `kiln_space::Architecture::parameters` gives, so the existing exporter and compile
//! path take it as they take a trained network. A few-shot [`split`] trains one supernet
//! per part of a space divided by one decision.

pub mod bn;
mod checkpoint;
mod config;
pub mod dnas;
mod extract;
mod init;
mod judge;
mod kernels;
pub mod net;
pub mod pairs;
mod sandwich;
pub mod schedule;
pub mod shapes;
pub mod split;
mod train;

pub use checkpoint::{
    CHECKPOINT_VERSION, STATE_FILE, SupernetIdentity, epochs_done, identity, load, save,
    weights_id, weights_path,
};
pub use config::SupernetConfig;
pub use extract::{export_subnet, subnet_weights};
pub use judge::{JudgeSettings, Judgement, accuracy, judge, ranking_genomes, recalibrate};
pub use kernels::SupernetWeights;
pub use net::SuperNet;
pub use sandwich::{largest, smallest};
pub use schedule::Schedule;
pub use train::{EpochRecord, Progress, SupernetMetrics, TRAINING_FORMAT, train};

/// What went wrong with a supernet, in the user's words.
#[derive(Debug, thiserror::Error)]
pub enum SupernetError {
    /// A genome that is not a sub-network of this supernet.
    #[error("the genome is not a sub-network of this supernet: {0}")]
    Genome(String),
    /// A layer judged without recalibrated batch-norm statistics (a bug, not user input).
    #[error("batch norm of layer `{0}` was not recalibrated for this sub-network")]
    Stats(String),
    /// burn could not hand a tensor back.
    #[error("tensor error: {0}")]
    Tensor(String),
    /// A checkpoint that cannot be used.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The checkpoint file or folder.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A supernet trained for something else than what it is used for.
    #[error(
        "the supernet in {path} was trained for another {field} ({supernet}; this run has \
         {wanted}): train one for this run with `cargo xtask supernet train`"
    )]
    Mismatch {
        /// The supernet's folder.
        path: String,
        /// `space`, `input`, `classes`, `data`, `data content`, `split`.
        field: &'static str,
        /// The supernet's value.
        supernet: String,
        /// The run's value.
        wanted: String,
    },
    /// Data whose images or classes are not the ones the supernet was built for.
    #[error(
        "the data's images are {data} but this supernet was built for {supernet}: judge it \
         on the data it was trained on"
    )]
    Input {
        /// The data's `CxHxW (K classes)`.
        data: String,
        /// The supernet's.
        supernet: String,
    },
    /// A layer the latency lookup table has no figure for (the differentiable search).
    #[error(
        "the latency table has no figure for layer `{0}`: build the table for this space \
         and input with `cargo xtask lut build`"
    )]
    MissingLatency(String),
    /// The differentiable search was asked to stop (Ctrl-C).
    #[error("the differentiable search was stopped before its end")]
    Stopped,
    /// Settings that cannot train.
    #[error("supernet settings: {0}")]
    Config(String),
    /// The loss stopped being finite.
    #[error("training diverged in epoch {epoch}, batch {batch}: loss {loss}; lower --lr")]
    Diverged {
        /// Epoch (1-based).
        epoch: usize,
        /// Batch (1-based).
        batch: usize,
        /// The loss.
        loss: f32,
    },
    /// Training machinery (thread pool, data).
    #[error(transparent)]
    Train(#[from] kiln_train::TrainError),
    /// The ONNX export.
    #[error(transparent)]
    Onnx(#[from] kiln_onnx::OnnxError),
}

#[cfg(test)]
mod affine_tests;
#[cfg(test)]
mod tests;

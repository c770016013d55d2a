//! The search space: what a candidate network is.
//!
//! - [`Space`]: the decisions and their choices, read from a TOML file
//!   (`spaces/mobile.toml` ships as the default).
//! - [`Genome`]: one choice per decision, a small serde value with a stable
//!   content id ([`Genome::id`]); sampled, mutated and crossed over with a seed;
//!   as a choice vector ([`Space::choice_counts`], [`Genome::choices`],
//!   [`Genome::from_choices`]) for strategies with one distribution per decision.
//! - [`Architecture`]: the layer-level network a genome describes for a given
//!   input shape and class count, with analytic parameter, MAC and activation
//!   figures. The trainer and the ONNX exporter both build from it, so layer
//!   and weight names agree by construction.
//! - [`LayerKey`]: one layer's configuration, the unit of a latency lookup
//!   table; [`Space::layer_keys`] enumerates every key a space can produce.
//! - [`SplitBy`]: a few-shot split, the space divided by one decision into
//!   [`SpacePart`]s, one supernet each.

mod arch;
mod choices;
mod error;
mod genome;
mod input;
mod layer_key;
mod precision;
mod space;
mod split;

pub use arch::{
    Architecture, ConvBn, LayerSummary, Linear, MbBlock, ParamSpec, SqueezeExcite, Totals,
    se_reduced,
};
pub use error::SpaceError;
pub use genome::{BlockGene, Genome, StageGene};
pub use input::InputSpec;
pub use layer_key::{Layer, LayerKey};
pub use precision::Precision;
pub use space::{Activation, HeadSpace, Space, StageSpace, StemSpace};
pub use split::{SpacePart, SplitBy};

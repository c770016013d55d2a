//! The `kiln.*` metadata keys of a model kiln trained, owned here: kiln-train
//! writes them through [`ExportOptions::metadata`](crate::ExportOptions), and
//! [`read`] reads any model's `metadata_props` back without tract.

use std::collections::BTreeMap;

use prost::Message;

use crate::OnnxError;
use crate::proto::ModelProto;

/// The genome's content id.
pub const GENOME_ID: &str = "kiln.genome_id";
/// The genome itself, as JSON (models written by `cargo xtask export-onnx`).
pub const GENOME: &str = "kiln.genome";
/// The data set the model was trained on (its name, e.g. `mnist-5k`).
pub const DATASET: &str = "kiln.dataset";
/// The class names in output order (output `i` is class `names[i]`), as a JSON array of
/// strings, e.g. `["cat","dog"]`.
pub const CLASS_NAMES: &str = "kiln.class_names";
/// How the input is fed (raw pixel values 0..255 as f32, NCHW).
pub const INPUT: &str = "kiln.input";
/// The input normalisation baked into the model, as JSON.
pub const NORMALIZATION: &str = "kiln.normalization";
/// The model's test top-1 when it was written, a fraction with four decimals (what it
/// is says [`ACCURACY_KIND`]; burn's at training when that key is absent).
pub const TEST_TOP1: &str = "kiln.test_top1";
/// What [`TEST_TOP1`] is, in words: `trained from scratch (N epochs)`, `inherited
/// from a supernet` (kiln-supernet's exports) or `fine-tuned N epochs from weights
/// inherited from the supernet in DIR` (a weight-sharing search's front); `1 epoch` in the
/// singular ([`epochs_in_words`]).
pub const ACCURACY_KIND: &str = "kiln.accuracy_kind";

/// A count of epochs as the [`ACCURACY_KIND`] texts write it: `1 epoch`, `4 epochs`.
pub fn epochs_in_words(epochs: usize) -> String {
    format!("{epochs} epoch{}", if epochs == 1 { "" } else { "s" })
}

/// The `metadata_props` of the ONNX model in `bytes`, key -> value.
///
/// Errors: [`OnnxError::Model`] when the bytes are not an ONNX model.
pub fn read(bytes: &[u8], origin: &str) -> Result<BTreeMap<String, String>, OnnxError> {
    let model = ModelProto::decode(bytes).map_err(|e| OnnxError::Model {
        origin: origin.to_string(),
        message: e.to_string(),
    })?;
    Ok(model
        .metadata_props
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dim, GraphBuilder};

    #[test]
    fn epochs_are_counted_in_words() {
        assert_eq!(epochs_in_words(1), "1 epoch");
        assert_eq!(epochs_in_words(4), "4 epochs");
    }

    #[test]
    fn reads_back_what_a_builder_wrote_and_refuses_garbage() {
        let mut g = GraphBuilder::new("m");
        g.input("x", &[Dim::Fixed(1)]);
        g.node("id", "Identity", &["x"], &["y"], vec![]);
        g.output("y", None);
        let bytes = g.encode();
        assert!(read(&bytes, "m.onnx").unwrap().is_empty());
        let err = read(b"\xff\xff\xff", "junk.onnx").unwrap_err();
        assert!(err.to_string().contains("junk.onnx"), "{err}");
    }
}

//! The supernet's folder: `supernet-<epochs>.safetensors` (every parameter by name, after
//! that many epochs), `supernet.json` (what it was trained for, how far, and which weights
//! file holds that state), `metrics.json` (per epoch). After every epoch the new weights
//! file, then the metrics, then `supernet.json` are written atomically; `supernet.json`'s
//! rename is the one commit point, so a training killed anywhere resumes from the last
//! epoch it committed, with that epoch's weights (the optimiser's moments start afresh;
//! the weights do not). Weights files of older epochs are removed after the commit.
//! Folders written before the weights were named per epoch hold `supernet.safetensors`.

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Device, Tensor};
use kiln_onnx::Weights;
use kiln_space::{InputSpec, Space};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::init::FromTensors;
use crate::net::SuperConv;
use crate::{SuperNet, SupernetConfig, SupernetError, SupernetMetrics};

/// The file that makes a folder one supernet's checkpoint (the commit point).
pub const STATE_FILE: &str = "supernet.json";

/// Version of `supernet.json`; another is refused.
pub const CHECKPOINT_VERSION: u32 = 1;

/// What a supernet was trained for: a supernet is used only where all of it matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupernetIdentity {
    /// The space (its whole definition).
    pub space: Space,
    /// Input shape and classes.
    pub input: InputSpec,
    /// The data set and split (`kiln_data` identity string).
    pub data: String,
    /// The content id of the splits it was trained on ([`kiln_data::Dataset::content_id`]):
    /// the same name with other images in it is other data. `None` in folders written
    /// before it was recorded; those are matched by `data` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_content: Option<String>,
    /// The training settings.
    pub config: SupernetConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format_version: u32,
    identity: SupernetIdentity,
    epochs_done: usize,
    /// The weights file of this state, in the same folder.
    #[serde(default = "legacy_weights")]
    weights: String,
}

/// The weights file of a folder written before weights files were named per epoch.
fn legacy_weights() -> String {
    "supernet.safetensors".into()
}

/// The weights file written after `epochs` epochs.
fn weights_file(epochs: usize) -> String {
    format!("supernet-{epochs}.safetensors")
}

pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> SupernetError {
    SupernetError::Checkpoint {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SupernetError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

fn add<const D: usize>(
    w: &mut Weights,
    name: String,
    p: &Param<Tensor<D>>,
) -> Result<(), SupernetError> {
    let t = p.val();
    let shape = t.dims().to_vec();
    let data = kiln_train::values(t, &name).map_err(|e| SupernetError::Tensor(e.to_string()))?;
    w.insert(&name, shape, data)?;
    Ok(())
}

fn add_conv(w: &mut Weights, name: &str, c: &SuperConv) -> Result<(), SupernetError> {
    add(w, format!("{name}.weight"), &c.weight)?;
    add(w, format!("{name}.gamma"), &c.gamma)?;
    add(w, format!("{name}.beta"), &c.beta)?;
    if let Some(a) = &c.hswish_affine {
        add(w, format!("{name}.gamma_hswish"), &a.gamma)?;
        add(w, format!("{name}.beta_hswish"), &a.beta)?;
    }
    Ok(())
}

/// Every parameter of `net` by the names [`SuperNet`]'s builder reads them under.
fn tensors(net: &SuperNet) -> Result<Weights, SupernetError> {
    let mut w = Weights::default();
    add_conv(&mut w, "stem", &net.stem)?;
    for (n, b) in net.blocks.iter().enumerate() {
        if let Some(e) = &b.expand {
            add_conv(&mut w, &format!("blocks.{n}.expand"), e)?;
        }
        add_conv(&mut w, &format!("blocks.{n}.dw"), &b.depthwise)?;
        if let Some(se) = &b.se {
            add(
                &mut w,
                format!("blocks.{n}.se.reduce_weight"),
                &se.reduce_weight,
            )?;
            add(
                &mut w,
                format!("blocks.{n}.se.reduce_bias"),
                &se.reduce_bias,
            )?;
            add(
                &mut w,
                format!("blocks.{n}.se.expand_weight"),
                &se.expand_weight,
            )?;
            add(
                &mut w,
                format!("blocks.{n}.se.expand_bias"),
                &se.expand_bias,
            )?;
        }
        add_conv(&mut w, &format!("blocks.{n}.project"), &b.project)?;
    }
    if let Some(h) = &net.head {
        add_conv(&mut w, "head", h)?;
    }
    add(&mut w, "classifier.weight".into(), &net.classifier_weight)?;
    add(&mut w, "classifier.bias".into(), &net.classifier_bias)?;
    Ok(w)
}

/// Writes the checkpoint of `net` after `epochs_done` epochs into `dir` (created).
///
/// Errors: [`SupernetError::Checkpoint`] naming the file that could not be written.
pub fn save(
    dir: &Path,
    net: &SuperNet,
    identity: &SupernetIdentity,
    epochs_done: usize,
    metrics: &SupernetMetrics,
) -> Result<(), SupernetError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let weights = write_weights(dir, net, epochs_done)?;
    let state = State {
        format_version: CHECKPOINT_VERSION,
        identity: identity.clone(),
        epochs_done,
        weights: weights.clone(),
    };
    write_atomic(&dir.join("metrics.json"), pretty(metrics).as_bytes())?;
    write_atomic(&dir.join(STATE_FILE), pretty(&state).as_bytes())?;
    remove_stale_weights(dir, &weights);
    Ok(())
}

/// Writes `net`'s weights after `epochs` epochs as their own file in `dir`; returns its
/// name. Not yet the folder's state: [`save`] commits it by writing `supernet.json`.
pub(crate) fn write_weights(
    dir: &Path,
    net: &SuperNet,
    epochs: usize,
) -> Result<String, SupernetError> {
    let name = weights_file(epochs);
    let bytes = tensors(net)?.to_safetensors()?;
    write_atomic(&dir.join(&name), &bytes)?;
    Ok(name)
}

/// Removes the weights files in `dir` other than `keep` (older epochs, or one written
/// by a training killed before its commit). Best effort: a file left behind costs disk
/// space only, since `supernet.json` names the one that counts.
fn remove_stale_weights(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != keep && name.starts_with("supernet") && name.ends_with(".safetensors") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Pretty JSON of plain data (numbers, strings, enums: cannot fail).
fn pretty<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// The weights file the supernet in `dir` holds its state in (named in `supernet.json`):
/// what a benchmark names the supernet by (its content id).
///
/// Errors: as [`load`] for `supernet.json`.
pub fn weights_path(dir: &Path) -> Result<PathBuf, SupernetError> {
    Ok(read_state(dir)?.1)
}

/// Whether `name`, in a folder without `supernet.json`, is what a supernet's interrupted
/// first epoch (or the cache's lock) leaves: `train.lock`, `metrics.json`,
/// `supernet-<N>.safetensors`, and the temporaries `supernet-<N>.tmp-<PID>`,
/// `metrics.tmp-<PID>`, `supernet.tmp-<PID>`; or a hidden file (`.gitkeep`).
fn interrupted_epochs_file(name: &str) -> bool {
    let numbered = |rest: &str, tail: &str| {
        rest.strip_suffix(tail)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let temporary = |rest: &str| {
        rest.split_once(".tmp-")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    matches!(name, "train.lock" | "metrics.json")
        || name.starts_with('.')
        // write_atomic's temporaries of metrics.json and supernet.json
        || name.starts_with("metrics.tmp-")
        || name.starts_with("supernet.tmp-")
        || name
            .strip_prefix("supernet-")
            .is_some_and(|rest| numbered(rest, ".safetensors") || temporary(rest))
}

/// A supernet trained afresh goes into a folder of its own: refused when `dir` holds
/// anything but what an interrupted first epoch of a supernet leaves (and hidden files),
/// since training writes `metrics.json` and deletes other `supernet-*` weights there: a
/// search's or a training run's folder, a `flash` folder, `-o .` by mistake. A missing
/// folder is fine.
///
/// Errors: [`SupernetError::Checkpoint`] naming the folder and a file in it.
pub(crate) fn new_folder(dir: &Path) -> Result<(), SupernetError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let names = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned());
    match names.filter(|n| !interrupted_epochs_file(n)).min() {
        Some(name) => Err(io(
            dir,
            format!("holds {name}, not a supernet's: a supernet needs a folder of its own"),
        )),
        None => Ok(()),
    }
}

/// The content id of the weights in `dir`: the first 16 hex digits of the SHA-256 of the
/// weights file `supernet.json` names (kiln's content ids), or for a few-shot split's
/// folder its parts' ids in `split.json`'s order, joined by commas. What a search's run
/// identity and the ranking benchmark's pairs file name a supernet by, so results of other
/// weights under the same folder name are not mixed in.
///
/// Errors: as [`load`] for `supernet.json` (each part's); `split.json`; the weights file.
pub fn weights_id(dir: &Path) -> Result<String, SupernetError> {
    let one = |dir: &Path| {
        let path = weights_path(dir)?;
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        let digest = Sha256::digest(&bytes);
        Ok::<_, SupernetError>(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
    };
    let ids = (crate::split::supernet_dirs(dir)?.iter())
        .map(|d| one(d))
        .collect::<Result<Vec<String>, _>>()?;
    Ok(ids.join(","))
}

/// Epochs the supernet in `dir` was trained for (committed in `supernet.json`), without
/// loading its weights.
///
/// Errors: as [`load`] for `supernet.json`.
pub fn epochs_done(dir: &Path) -> Result<usize, SupernetError> {
    Ok(read_state(dir)?.0.epochs_done)
}

/// What the supernet in `dir` was trained for and on (space, input, data and split,
/// settings; committed in `supernet.json`), without loading its weights.
///
/// Errors: as [`load`] for `supernet.json`.
pub fn identity(dir: &Path) -> Result<SupernetIdentity, SupernetError> {
    Ok(read_state(dir)?.0.identity)
}

/// `dir/supernet.json`, checked (format version; a weights file in the same folder), and
/// the path of its weights file.
fn read_state(dir: &Path) -> Result<(State, PathBuf), SupernetError> {
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| {
        if dir.join(crate::split::SPLIT_FILE).is_file() {
            // a tool that reads one supernet, given a few-shot split's folder
            io(
                dir,
                "is a few-shot split (split.json), not one supernet: give one of its parts \
                 (DIR/head0, ...), or `cargo xtask search --supernet DIR`, which judges with \
                 every part",
            )
        } else {
            io(&state_path, e)
        }
    })?;
    let state: State = serde_json::from_str(&text).map_err(|e| io(&state_path, e))?;
    if state.format_version != CHECKPOINT_VERSION {
        return Err(io(
            &state_path,
            format!(
                "format version {}, this kiln reads {CHECKPOINT_VERSION}",
                state.format_version
            ),
        ));
    }
    if state.weights.contains(['/', '\\']) {
        return Err(io(
            &state_path,
            "its weights file must be a file name in the same folder",
        ));
    }
    let weights_path = dir.join(&state.weights);
    Ok((state, weights_path))
}

/// Loads the supernet in `dir` onto `device`: its identity, the epochs done, and the
/// per-epoch metrics so far.
///
/// Errors: [`SupernetError::Checkpoint`] for a missing or corrupt file (naming it), another
/// format version, or a tensor missing or misshapen.
pub fn load(
    dir: &Path,
    device: &Device,
) -> Result<(SuperNet, SupernetIdentity, usize, SupernetMetrics), SupernetError> {
    let (state, weights_path) = read_state(dir)?;
    // its errors name the file
    let weights = Weights::load(&weights_path)?;
    // a NaN would fail every sub-network judged; say so once, naming the file
    let not_finite = (weights.tensors.iter())
        .find_map(|(name, t)| Some((name, t.data.iter().find(|v| !v.is_finite())?)));
    if let Some((name, v)) = not_finite {
        return Err(io(
            &weights_path,
            format!(
                "weight `{name}` holds {v}: the checkpoint is damaged (or its training \
                 diverged); train the supernet again"
            ),
        ));
    }
    let origin = weights_path.display().to_string();
    let mut init = FromTensors {
        tensors: &weights.tensors,
        origin: &origin,
    };
    let id = state.identity;
    let per_activation = id.config.bn_per_activation;
    let net = SuperNet::build(&id.space, id.input, per_activation, &mut init, device)?;
    let metrics_path = dir.join("metrics.json");
    let metrics = std::fs::read_to_string(&metrics_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok((net, id, state.epochs_done, metrics))
}

/// The first field where two spaces differ, in the space file's names
/// (`stage[1].widths`), and its two values as JSON.
pub(crate) fn first_difference(a: &Space, b: &Space) -> Option<(String, String, String)> {
    let (a, b) = (serde_json::to_value(a).ok()?, serde_json::to_value(b).ok()?);
    value_difference(&a, &b, "")
}

fn value_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    at: &str,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    let field = |name: &str| match at {
        "" => name.to_owned(),
        _ => format!("{at}.{name}"),
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => (x.keys().chain(y.keys())).find_map(|k| {
            let none = Value::Null;
            let (u, v) = (x.get(k).unwrap_or(&none), y.get(k).unwrap_or(&none));
            value_difference(u, v, &field(k))
        }),
        // a list of tables (the stages) element by element; a list of choices whole
        (Value::Array(x), Value::Array(y))
            if x.len() == y.len() && x.iter().all(Value::is_object) =>
        {
            (x.iter().zip(y).enumerate())
                .find_map(|(i, (u, v))| value_difference(u, v, &format!("{at}[{i}]")))
        }
        _ if a != b => Some((at.to_owned(), a.to_string(), b.to_string())),
        _ => None,
    }
}

impl SupernetIdentity {
    /// The identity of a supernet of `space` trained on `data` (named `data_identity`)
    /// with `config`: what [`crate::train`] records and checks a checkpoint against.
    pub(crate) fn of(
        space: &Space,
        data: &kiln_data::Dataset,
        data_identity: &str,
        config: &SupernetConfig,
    ) -> SupernetIdentity {
        SupernetIdentity {
            space: space.clone(),
            input: kiln_train::input_spec(data),
            data: data_identity.into(),
            data_content: Some(data.content_id()),
            config: config.clone(),
        }
    }

    /// What a resume of the supernet this identity was read from must match: `wanted`'s
    /// space, input and data ([`Self::check`]) and the training settings it began with
    /// ([`SupernetConfig::check_resumed_with`]); [`crate::train`] checks it, and a split
    /// checks every part with it before any trains.
    ///
    /// Errors: as theirs.
    pub(crate) fn check_resume(
        &self,
        wanted: &SupernetIdentity,
        dir: &Path,
    ) -> Result<(), SupernetError> {
        self.check(wanted, dir)?;
        self.config.check_resumed_with(&wanted.config, dir)
    }

    /// Refuses a supernet trained for another space, input or data, naming the first
    /// field that differs. Where both sides record the data's content
    /// ([`kiln_data::Dataset::content_id`]) the data is judged by it alone, so the same
    /// files under another folder name (or split options spelled otherwise that split
    /// them alike) are the same data; where either does not, by the data's name.
    /// Training settings may differ.
    ///
    /// Errors: [`SupernetError::Mismatch`].
    pub fn check(&self, wanted: &SupernetIdentity, dir: &Path) -> Result<(), SupernetError> {
        let mismatch = |field: &'static str, supernet: String, wanted: String| {
            Err(SupernetError::Mismatch {
                path: dir.display().to_string(),
                field,
                supernet,
                wanted,
            })
        };
        if self.space != wanted.space {
            let (ours, theirs) = (&self.space.name, &wanted.space.name);
            // two definitions of one name: say where they part
            return match first_difference(&self.space, &wanted.space) {
                Some((at, a, b)) if ours == theirs => mismatch(
                    "space",
                    format!("space `{ours}` with {at} = {a}"),
                    format!("{at} = {b}"),
                ),
                _ => mismatch(
                    "space",
                    format!("space `{ours}`"),
                    format!("space `{theirs}` (or another definition of it)"),
                ),
            };
        }
        if self.input != wanted.input {
            return mismatch("input", self.input.to_string(), wanted.input.to_string());
        }
        match (&self.data_content, &wanted.data_content) {
            (Some(a), Some(b)) if a != b && self.data == wanted.data => mismatch(
                "data content",
                format!("`{}`, content id {a}", self.data),
                format!(
                    "content id {b}: the files of `{}` changed since it was trained",
                    self.data
                ),
            ),
            // another name and other content: the folder, or the split options, differ
            (Some(a), Some(b)) if a != b => mismatch(
                "data",
                format!("`{}`, content id {a}", self.data),
                format!("`{}`, content id {b}", wanted.data),
            ),
            (Some(_), Some(_)) => Ok(()),
            _ if self.data != wanted.data => {
                mismatch("data", self.data.clone(), wanted.data.clone())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SupernetConfig;
    use crate::tests::{data, space};

    /// A space file edited since the supernet was trained (the same name, another definition)
    /// is refused naming the first field where the two part, in the file's names.
    #[test]
    fn another_definition_of_a_space_is_named_where_it_differs() {
        let id = SupernetIdentity {
            space: space(),
            input: kiln_train::input_spec(&data()),
            data: "d".into(),
            data_content: None,
            config: SupernetConfig::default(),
        };
        let mut edited = space();
        edited.stages[1].widths.push(64);
        let wanted = SupernetIdentity {
            space: edited,
            ..id.clone()
        };
        let e = id.check(&wanted, std::path::Path::new("net"));
        let e = e.unwrap_err().to_string();
        let widths = |s: &Space| serde_json::to_string(&s.stages[1].widths).unwrap();
        let says = format!(
            "(space `{}` with stage[1].widths = {}; this run has stage[1].widths = {})",
            id.space.name,
            widths(&id.space),
            widths(&wanted.space)
        );
        assert!(e.contains(&says), "{e}");
    }
}

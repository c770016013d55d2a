//! ONNX -> kiln IR -> generated crate -> builds: the compile half of a
//! candidate's path, composed once. Every command that builds a model
//! (search, measure, sizes, run-onnx, eval-onnx, flash, bench) comes here.

use std::path::{Path, PathBuf};

use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_measure::report::Artifacts;
use kiln_target::{Target, Triple};
use sha2::{Digest, Sha256};

use crate::PipelineError;

/// The one mapping from a profile's triple to what kiln-codegen builds;
/// `None` for a triple this machine cannot cross-build (x86_64 elsewhere
/// than on an x86_64 host).
pub fn build_target(triple: Triple) -> Option<BuildTarget> {
    match triple {
        Triple::Wasm32 => Some(BuildTarget::Wasm32),
        t if t.is_host() => Some(BuildTarget::Host),
        Triple::Aarch64LinuxMusl => Some(BuildTarget::Aarch64Musl),
        Triple::X86_64LinuxGnu => None,
    }
}

/// The first 16 hex digits of the SHA-256 of `bytes`: the content key of
/// work folders and file fingerprints.
pub fn content_id(bytes: &[u8]) -> String {
    hex16(Sha256::digest(bytes).as_slice())
}

fn hex16(digest: &[u8]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A work folder for a model that two runs can share without colliding:
/// `base/<file stem>-<content id>`, the id over the ONNX bytes and the input
/// shape given for symbolic dimensions (both decide the generated crate).
/// Two different models both called `model.onnx` get different folders; the
/// same model gets the same one (and its crate is then rebuilt in no time).
pub fn content_dir(
    base: &Path,
    model_path: &Path,
    onnx: &[u8],
    input_shape: Option<&[usize]>,
) -> PathBuf {
    let stem = model_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let mut key = Sha256::new();
    key.update(onnx);
    if let Some(shape) = input_shape {
        key.update(format!("\ninput shape {shape:?}"));
    }
    base.join(format!("{stem}-{}", hex16(key.finalize().as_slice())))
}

/// Reads the ONNX file `model` and builds it for `triples` with
/// [`build_model`], the generated crate in `out` or else in
/// [`content_dir`]`(work_base, ...)`, builds in kiln-codegen's default
/// target dir. `measure` and `sizes` start here.
///
/// Errors: the file cannot be read (named), or [`build_model`]'s.
pub fn build_file(
    model: &Path,
    work_base: &Path,
    out: Option<&Path>,
    input_shape: Option<Vec<usize>>,
    triples: &[Triple],
) -> Result<BuiltModel, PipelineError> {
    let onnx = crate::files::read(model)?;
    let crate_dir = match out {
        Some(dir) => dir.to_path_buf(),
        None => content_dir(work_base, model, &onnx, input_shape.as_deref()),
    };
    build_model(
        &ModelSource {
            onnx: &onnx,
            name: &model.display().to_string(),
            crate_dir: &crate_dir,
            target_dir: &kiln_codegen::default_target_dir(),
            input_shape,
        },
        triples,
    )
}

/// What to build: an ONNX model, where its generated crate goes, and which
/// cargo target dir the builds use.
#[derive(Debug, Clone)]
pub struct ModelSource<'a> {
    /// The ONNX bytes.
    pub onnx: &'a [u8],
    /// How the model is named in messages and the generated sources (its path).
    pub name: &'a str,
    /// Folder of the generated crate (created if missing).
    pub crate_dir: &'a Path,
    /// Cargo target dir; builds in it are serialised by kiln-codegen's lock.
    pub target_dir: &'a Path,
    /// The full input shape N,C,H,W when the model has symbolic dimensions.
    pub input_shape: Option<Vec<usize>>,
}

/// A generated model and its builds.
#[derive(Debug, Clone)]
pub struct BuiltModel {
    /// The wasm32 cdylib (the simulated device), when wasm32 was asked for.
    pub wasm: Option<PathBuf>,
    /// One program per native triple asked for.
    pub programs: Vec<(Triple, PathBuf)>,
    /// Bytes of the generated crate's `weights.bin`.
    pub weight_bytes: u64,
    /// Bytes of the planned arena.
    pub arena_bytes: u64,
    /// f32 values the program reads (the input's element count).
    pub input_len: usize,
    /// f32 values the program writes.
    pub output_len: usize,
    /// The output's ONNX (logical) shape.
    pub output_shape: Vec<usize>,
    /// The generated crate's folder.
    pub crate_dir: PathBuf,
    /// What the user should know that did not stop the build: the
    /// lowering's notes (a symbolic batch compiled for one image) and
    /// constants of the model holding NaN or infinite values (a damaged file).
    pub warnings: Vec<String>,
}

impl BuiltModel {
    /// The program built for `triple`, if one was.
    pub fn program(&self, triple: Triple) -> Option<&Path> {
        self.programs
            .iter()
            .find(|(t, _)| *t == triple)
            .map(|(_, p)| p.as_path())
    }

    /// The wasm32 build.
    ///
    /// Errors: wasm32 was not among the triples built.
    pub fn wasm(&self) -> Result<&Path, PipelineError> {
        self.wasm.as_deref().ok_or_else(|| {
            PipelineError::Invalid(
                "the model was not built for wasm32 (the simulated device)".into(),
            )
        })
    }

    /// What kiln-measure needs to measure this model for `target`.
    ///
    /// Errors: no wasm32 build (the simulation needs it).
    pub fn artifacts_for(&self, target: &Target) -> Result<Artifacts, PipelineError> {
        Ok(Artifacts {
            wasm: self.wasm()?.to_path_buf(),
            program: self.program(target.triple).map(Path::to_path_buf),
            weight_bytes: self.weight_bytes,
            arena_bytes: self.arena_bytes,
            input_len: self.input_len,
            output_len: self.output_len,
        })
    }
}

/// Lowers `source.onnx`, writes the generated crate and builds it for each
/// triple in `triples` once (include [`Triple::Wasm32`] for the simulated
/// device, which every measurement needs).
///
/// Errors: the lowering's (naming the ONNX node and op), code generation's
/// (a model too big for one of the targets, before anything is built), or a
/// build's (cargo's last lines; a missing Rust target names the
/// `rustup target add` that installs it).
pub fn build_model(
    source: &ModelSource<'_>,
    triples: &[Triple],
) -> Result<BuiltModel, PipelineError> {
    let options = kiln_lower::LowerOptions {
        input_shape: source.input_shape.clone(),
    };
    let graph = kiln_lower::lower_bytes(source.onnx, source.name, &options)?;
    let generated =
        kiln_codegen::generate(&graph, source.crate_dir, &GenerateOptions::new(source.name))?;
    // before any build: a model too big for a target is named, not left to rustc
    for &triple in triples {
        let target = match triple.is_wasm() {
            true => Some(BuildTarget::Wasm32),
            false => build_target(triple),
        };
        if let Some(t) = target {
            kiln_codegen::check_fits(&graph, &generated, t)?;
        }
    }
    let build = |t: BuildTarget| kiln_codegen::build(source.crate_dir, t, source.target_dir);
    let wasm = match triples.contains(&Triple::Wasm32) {
        true => Some(build(BuildTarget::Wasm32)?),
        false => None,
    };
    let mut programs: Vec<(Triple, PathBuf)> = Vec::new();
    for &triple in triples {
        if triple.is_wasm() || programs.iter().any(|(t, _)| *t == triple) {
            continue;
        }
        let target = build_target(triple).ok_or_else(|| {
            PipelineError::Invalid(format!(
                "kiln cannot build {triple} programs on this machine"
            ))
        })?;
        programs.push((triple, build(target)?));
    }
    Ok(BuiltModel {
        wasm,
        programs,
        weight_bytes: generated.weight_bytes as u64,
        arena_bytes: generated.plan.arena_bytes() as u64,
        input_len: generated.input_len,
        output_len: generated.output_len,
        output_shape: graph.output_shape(),
        crate_dir: source.crate_dir.to_path_buf(),
        warnings: graph_warnings(&graph, source.name),
    })
}

/// Every warning about `graph` for the user, each naming `model`: the
/// lowering's notes (`kiln_ir::Graph::notes`), then [`nonfinite_warnings`].
pub fn graph_warnings(graph: &kiln_ir::Graph, model: &str) -> Vec<String> {
    let notes = graph.notes.iter().map(|n| format!("{model}: {n}"));
    notes.chain(nonfinite_warnings(graph, model)).collect()
}

/// One warning per constant of `graph` holding NaN or infinite values.
pub fn nonfinite_warnings(graph: &kiln_ir::Graph, model: &str) -> Vec<String> {
    graph
        .nonfinite_constants()
        .into_iter()
        .map(|(name, n)| {
            format!(
                "{model}: constant '{name}' holds {n} NaN or infinite value(s); the file may be \
                 damaged, and outputs computed from it will be NaN or meaningless"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_different_models_get_different_folders() {
        let base = Path::new("/runs/measure");
        let a = content_dir(base, Path::new("a/model.onnx"), b"one", None);
        let b = content_dir(base, Path::new("b/model.onnx"), b"two", None);
        let a2 = content_dir(base, Path::new("c/model.onnx"), b"one", None);
        let shaped = content_dir(base, Path::new("a/model.onnx"), b"one", Some(&[1, 3, 8, 8]));
        assert_ne!(a, b);
        assert_eq!(a, a2);
        assert_ne!(a, shaped);
        assert!(
            a.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("model-")
        );
    }

    #[test]
    fn nonfinite_weights_are_warned_about_by_name() {
        let mut g = kiln_ir::Graph::default();
        g.add_constant("conv1.weight", vec![2], vec![f32::NAN, 1.0]);
        g.add_constant("conv1.bias", vec![1], vec![0.5]);
        let w = nonfinite_warnings(&g, "m.onnx");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("m.onnx") && w[0].contains("'conv1.weight' holds 1 NaN"));
    }

    #[test]
    fn every_triple_maps_to_a_build() {
        assert_eq!(build_target(Triple::Wasm32), Some(BuildTarget::Wasm32));
        if Triple::host() == Some(Triple::X86_64LinuxGnu) {
            assert_eq!(
                build_target(Triple::X86_64LinuxGnu),
                Some(BuildTarget::Host)
            );
            assert_eq!(
                build_target(Triple::Aarch64LinuxMusl),
                Some(BuildTarget::Aarch64Musl)
            );
        }
    }
}

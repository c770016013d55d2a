//! kiln-codegen: kiln IR -> a generated `no_std` Rust crate, and the cargo
//! invocations ("the toolchain") that build it for a target.
//!
//! The crate (package `kiln-model`) holds `weights.bin` (one little-endian f32
//! blob, each constant already rearranged into the layout its kernel reads),
//! `src/lib.rs` (one kernel call per IR op over a static arena planned by
//! [`kiln_ir::plan`], ending in `kiln_runtime::wasm_entry!`, which gives the
//! wasm32 build its exports) and `src/main.rs` (the host/aarch64 program
//! speaking the stdin/stdout protocol of [`program`]).
//!
//! Layouts: the generated `infer` takes and gives tensors in ONNX (NCHW)
//! order; inside, images are stored NHWC in the arena. Weights are LE f32 in
//! each kernel's order: depthwise `[kh][kw][c]`, pointwise `[ci][co]`,
//! general conv `[g][kh][kw][ci/g][co/g]`, dense `[in][out]`.

mod build;
mod emit;
mod fingerprint;
mod fits;
pub mod program;
pub mod reference;
mod weights;

use std::path::{Path, PathBuf};

pub use build::{BUILD_TIMEOUT, BuildTarget, build, build_bin, default_target_dir};
pub use fingerprint::{EMIT_VERSION, runtime_fingerprint};
pub use fits::check_fits;
use kiln_ir::{ArenaPlan, Graph, PlanError};

/// What went wrong generating or building a crate.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// A file or folder could not be created, written, locked or copied.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// [`kiln_ir::plan`] could not lay out the arena.
    #[error("arena planning failed: {0}")]
    Plan(#[from] PlanError),
    /// An op the emitter cannot express: an operand that is not an image
    /// where a kernel needs one, a transpose above rank 6, a concat of mixed
    /// ranks or with its axis out of range, a reshape between two NHWC-stored
    /// images of different shapes.
    #[error("node '{node}': {reason}")]
    Unsupported {
        /// The ONNX node's name.
        node: String,
        /// Why it is not supported.
        reason: String,
    },
    /// The model cannot exist on the target: its arena or weights exceed
    /// the largest static or the address space (see [`check_fits`]).
    #[error("the model does not fit {target}: {message}")]
    TooBig {
        /// The Rust target triple, or `host`.
        target: String,
        /// What is too big, by how many bytes, and the largest tensor.
        message: String,
    },
    /// cargo failed or outlived [`BUILD_TIMEOUT`], a compiler the build
    /// needs is missing, or the artifact it should have made is missing.
    #[error("building {crate_dir} for {target}: {message}")]
    Build {
        /// The crate being built.
        crate_dir: PathBuf,
        /// The Rust target triple, or `host`.
        target: String,
        /// cargo's exit status and the last 40 lines of its stderr, or what
        /// is missing, with the install command where kiln knows it.
        message: String,
    },
}

/// Options for [`generate`].
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Path of the kiln-runtime crate the generated crate depends on.
    pub runtime_path: PathBuf,
    /// Shown in the generated sources' header (e.g. the ONNX file).
    pub source_name: String,
}

impl GenerateOptions {
    /// Options with [`default_runtime_path`] and `source_name`.
    pub fn new(source_name: impl Into<String>) -> Self {
        Self {
            runtime_path: default_runtime_path(),
            source_name: source_name.into(),
        }
    }
}

/// The runtime/ directory of this workspace (absolute).
///
/// The path is fixed when kiln-codegen is compiled. Cargo does not rebuild for
/// a checkout that moved (or a copy of it built into the same target dir), so
/// if that path no longer holds the runtime, the runtime/ of the current
/// directory or its nearest ancestor that has one is used instead.
pub fn default_runtime_path() -> PathBuf {
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtime");
    let cwd = std::env::current_dir().unwrap_or_default();
    let p = runtime_path_from(&compiled, &cwd);
    p.canonicalize().unwrap_or(p)
}

fn runtime_path_from(compiled: &Path, cwd: &Path) -> PathBuf {
    let is_runtime = |dir: &Path| {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|toml| toml.contains("name = \"kiln-runtime\""))
    };
    if is_runtime(compiled) {
        return compiled.to_path_buf();
    }
    cwd.ancestors()
        .map(|d| d.join("runtime"))
        .find(|d| is_runtime(d))
        .unwrap_or_else(|| compiled.to_path_buf())
}

/// What [`generate`] produced.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The crate's folder (for a bundle, the bundle's).
    pub crate_dir: PathBuf,
    /// The arena plan `src/lib.rs` was written against (sizes in f32;
    /// `arena_bytes()` in bytes).
    pub plan: ArenaPlan,
    /// Number of f32 input values (the input tensor in NCHW order; every
    /// image of a batch, [`kiln_ir::Graph::input_len`]).
    pub input_len: usize,
    /// Number of f32 output values (ONNX order; every image of a batch).
    pub output_len: usize,
    /// Size of weights.bin, bytes (4 per f32).
    pub weight_bytes: usize,
    /// Runtime kernels the generated code calls, sorted by name.
    pub kernels: Vec<&'static str>,
}

/// Writes the crate for `graph` into `crate_dir` (created if missing):
/// `Cargo.toml` (package `kiln-model`, version from a hash of the content),
/// `weights.bin`, `src/lib.rs`, `src/main.rs`. Files whose content is
/// unchanged are not rewritten, so cargo does not rebuild them.
///
/// Errors: [`CodegenError::Plan`], [`CodegenError::Unsupported`],
/// [`CodegenError::Io`].
pub fn generate(
    graph: &Graph,
    crate_dir: &Path,
    options: &GenerateOptions,
) -> Result<Generated, CodegenError> {
    let plan = kiln_ir::plan(graph)?;
    let rendered = emit::render(graph, &plan, &options.source_name)?;
    let write = crate_writer(crate_dir)?;
    let version = content_version(&[rendered.lib_rs.as_bytes(), &rendered.weights]);
    write(
        "Cargo.toml",
        cargo_toml(&options.runtime_path, "kiln-model", &version).as_bytes(),
    )?;
    write("weights.bin", &rendered.weights)?;
    write("src/lib.rs", rendered.lib_rs.as_bytes())?;
    write("src/main.rs", emit::MAIN_RS.as_bytes())?;
    Ok(Generated {
        crate_dir: crate_dir.to_path_buf(),
        plan,
        input_len: graph.input_len(),
        output_len: graph.output_len(),
        weight_bytes: rendered.weights.len(),
        kernels: rendered.kernels,
    })
}

/// Creates `crate_dir/src` and returns a writer of files relative to
/// `crate_dir` that leaves unchanged files alone, keeping their mtimes so
/// cargo does not rebuild for nothing.
fn crate_writer(
    crate_dir: &Path,
) -> Result<impl Fn(&str, &[u8]) -> Result<(), CodegenError> + '_, CodegenError> {
    let io = |path: &Path, source| CodegenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let src = crate_dir.join("src");
    std::fs::create_dir_all(&src).map_err(|e| io(&src, e))?;
    Ok(move |name: &str, bytes: &[u8]| {
        let path = crate_dir.join(name);
        if std::fs::read(&path).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        std::fs::write(&path, bytes).map_err(|e| io(&path, e))
    })
}

/// Writes several models into one crate (package `kiln-bundle`, modules
/// `m0`, `m1`, ...), so a test suite, a benchmark or a latency table builds
/// them all at once. Each module has `infer` and `io` (the input and output
/// moves alone, which a latency table subtracts from `infer`).
///
/// Its binary is `kiln-bundle INDEX [--io] [--bench --warmup W --runs N]`:
/// LE f32 on stdin only (no input file), LE f32 on stdout, and a bench line
/// with source `host` and neither `peak_rss_kib` nor `output_check`; `--io`
/// runs model INDEX's `io` instead of its `infer`. The bundle's program uses
/// std, unlike `kiln-model`'s.
///
/// Its wasm32 build (`build_bin(dir, "kiln-bundle", BuildTarget::Wasm32, ..)`)
/// exports, from `kiln_runtime::wasm_bundle_entry!`, `kiln_bundle_count`,
/// `kiln_bundle_input_len(i)`, `kiln_bundle_output_len(i)`, `kiln_input_ptr`,
/// `kiln_output_ptr` (buffers shared by all models, sized for the largest),
/// `kiln_bundle_infer(i)` and `kiln_bundle_io(i)`; an index out of range
/// traps. kiln-measure's `SimBundle` runs it.
///
/// One [`Generated`] per graph, in order.
///
/// Errors: as [`generate`].
pub fn generate_bundle(
    graphs: &[&Graph],
    crate_dir: &Path,
    options: &GenerateOptions,
) -> Result<Vec<Generated>, CodegenError> {
    let write = crate_writer(crate_dir)?;
    let mut lib = String::from(
        "//! Generated by kiln-codegen: a bundle of models. Do not edit.\n#![no_std]\n#![allow(clippy::all, unused_variables)]\n",
    );
    let mut arms = String::new();
    let mut out = Vec::new();
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    for (i, graph) in graphs.iter().enumerate() {
        let plan = kiln_ir::plan(graph)?;
        let r = emit::render(graph, &plan, &format!("{} #{i}", options.source_name))?;
        let items = r
            .items
            .replace("@WEIGHTS_FILE@", &format!("../weights_{i}.bin"));
        lib.push_str(&format!(
            "\n{}pub mod m{i} {{\nuse kiln_runtime as rt;\n{items}}}\n",
            r.header.replace("//!", "//")
        ));
        arms.push_str(&format!(
            "        {i} => run(if io {{ kiln_bundle::m{i}::io }} else {{ kiln_bundle::m{i}::infer }}, &input, bench),\n"
        ));
        write(&format!("weights_{i}.bin"), &r.weights)?;
        blobs.push(r.weights.clone());
        out.push(Generated {
            crate_dir: crate_dir.to_path_buf(),
            plan,
            input_len: graph.input_len(),
            output_len: graph.output_len(),
            weight_bytes: r.weights.len(),
            kernels: r.kernels,
        });
    }
    let members: Vec<String> = (0..graphs.len()).map(|i| format!("m{i}")).collect();
    lib.push_str(&format!(
        "\nkiln_runtime::wasm_bundle_entry!({});\n",
        members.join(", ")
    ));
    let mut parts: Vec<&[u8]> = vec![lib.as_bytes()];
    parts.extend(blobs.iter().map(|b| b.as_slice()));
    let toml = cargo_toml(
        &options.runtime_path,
        "kiln-bundle",
        &content_version(&parts),
    );
    write("Cargo.toml", toml.as_bytes())?;
    write("src/lib.rs", lib.as_bytes())?;
    write(
        "src/main.rs",
        emit::BUNDLE_MAIN_RS.replace("@ARMS@", &arms).as_bytes(),
    )?;
    Ok(out)
}

/// A version unique to the generated content. Generated crates share one
/// target dir, and cargo tells same-named path packages apart only by name and
/// version: with a fixed version, a new model would be taken for the previous
/// one's fresh build.
fn content_version(parts: &[&[u8]]) -> String {
    // FNV-1a, 64 bit: stable across Rust versions, unlike DefaultHasher
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("0.1.0-m{h:016x}")
}

fn cargo_toml(runtime: &Path, name: &str, version: &str) -> String {
    let rt = runtime.display().to_string().replace('\\', "/");
    format!(
        r#"# Generated by kiln-codegen.
[package]
name = "{name}"
version = "{version}"
edition = "2024"
publish = false

[lib]
path = "src/lib.rs"

[[bin]]
name = "{name}"
path = "src/main.rs"

[dependencies]
kiln-runtime = {{ path = "{rt}" }}

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"

# The program is no_std: it has no unwinder, in debug builds either.
[profile.dev]
panic = "abort"

# A workspace of its own, even when generated inside another one.
[workspace]
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_path_falls_back_to_the_checkout_around_the_current_directory() {
        let base = std::env::temp_dir().join(format!("kiln-codegen-rt-{}", std::process::id()));
        let runtime = base.join("checkout/runtime");
        std::fs::create_dir_all(&runtime).unwrap();
        std::fs::create_dir_all(base.join("checkout/crates/x")).unwrap();
        std::fs::write(
            runtime.join("Cargo.toml"),
            "[package]\nname = \"kiln-runtime\"\n",
        )
        .unwrap();
        let gone = base.join("moved-away/runtime");
        let here = base.join("checkout/crates/x");
        assert_eq!(runtime_path_from(&gone, &here), runtime);
        // the compiled-in path wins while it holds the runtime
        assert_eq!(runtime_path_from(&runtime, &base), runtime);
        // nowhere to be found: the compiled-in path, for cargo's error to name
        assert_eq!(runtime_path_from(&gone, &base), gone);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_default_runtime_path_is_this_workspaces_runtime() {
        let p = default_runtime_path();
        assert!(p.join("src/linux.rs").is_file(), "{}", p.display());
    }
}

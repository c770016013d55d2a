//! Top-1 of an ONNX model on a data set's test split, through kiln's
//! generated program (the path a device deployment takes) and/or tract-onnx
//! (the reference), and how far the two agree. All figures are `host`.

use std::path::Path;

use kiln_data::Dataset;
use kiln_target::Triple;
use serde::Serialize;
use tract_onnx::prelude::*;

use crate::PipelineError;
use crate::build::ModelSource;
use crate::run::Program;

/// Which engines compute the logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engines {
    /// kiln's generated program, built for this host.
    pub runtime: bool,
    /// tract-onnx.
    pub tract: bool,
}

/// kiln metadata of a trained model (absent in models from elsewhere).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KilnMetadata {
    /// `kiln.input`: how the input is fed (raw pixels 0..255).
    pub input: Option<String>,
    /// `kiln.dataset`: the data set it was trained on.
    pub dataset: Option<String>,
    /// `kiln.test_top1`: the model's test top-1 when it was written, a fraction.
    pub test_top1: Option<f64>,
    /// `kiln.accuracy_kind`: what that top-1 is (trained from scratch, inherited from a
    /// supernet); absent in models written before the key.
    pub accuracy_kind: Option<String>,
    /// `kiln.class_names`: the class of each output, in order.
    pub class_names: Option<Vec<String>>,
}

/// Top-1 on the test images of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassTop1 {
    /// The class name (the model's, which [`evaluate`] checked against the data set's).
    pub name: String,
    /// Test images of the class among those evaluated.
    pub images: usize,
    /// Share of them predicted as the class (a fraction; 0 when `images` is 0).
    pub top1: f64,
}

/// What [`evaluate`] found; accuracies are fractions (0..=1), source `host`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EvalReport {
    /// Test images evaluated.
    pub images: usize,
    /// Top-1 through the generated program.
    pub runtime_top1: Option<f64>,
    /// Top-1 through tract.
    pub tract_top1: Option<f64>,
    /// Share of images where both engines predict the same class.
    pub agreement: Option<f64>,
    /// Largest absolute logit difference between the engines.
    pub max_logit_difference: Option<f64>,
    /// The model's kiln metadata.
    pub metadata: KilnMetadata,
    /// Top-1 per class, named (the runtime's logits, else tract's).
    pub per_class: Vec<ClassTop1>,
}

/// Runs the first `n` test images of `data` (raw pixel values 0..255 as
/// f32, NCHW) through the chosen engines. The generated crate goes to
/// `work_dir`.
///
/// Errors: a model that does not load or lower, whose input or output does
/// not fit the data set (naming both), whose `kiln.class_names` differ from
/// the data set's (outputs would be read as the wrong classes), or a program
/// that fails on an image.
pub fn evaluate(
    onnx: &[u8],
    name: &str,
    data: &Dataset,
    n: usize,
    engines: Engines,
    work_dir: &Path,
) -> Result<EvalReport, PipelineError> {
    let metadata = read_metadata(onnx, name)?;
    if let Some(names) = metadata
        .class_names
        .as_ref()
        .filter(|n| **n != data.class_names)
    {
        return Err(PipelineError::Invalid(format!(
            "{name} was trained on the classes [{}], data set {} has [{}]",
            names.join(", "),
            data.name,
            data.class_names.join(", ")
        )));
    }
    let runtime = match engines.runtime {
        true => Some(run_runtime(onnx, name, work_dir, data, n)?),
        false => None,
    };
    let tract = match engines.tract {
        true => Some(run_tract(onnx, name, data, n)?),
        false => None,
    };
    let mut report = EvalReport {
        images: n,
        runtime_top1: runtime.as_ref().map(|l| top1(l, data, n)),
        tract_top1: tract.as_ref().map(|l| top1(l, data, n)),
        per_class: runtime
            .as_ref()
            .or(tract.as_ref())
            .map(|l| per_class(l, data, n))
            .unwrap_or_default(),
        metadata,
        ..EvalReport::default()
    };
    if let (Some(a), Some(b)) = (&runtime, &tract) {
        let c = data.classes;
        let agree = (0..n)
            .filter(|&i| argmax(&a[i * c..(i + 1) * c]) == argmax(&b[i * c..(i + 1) * c]))
            .count();
        let max_diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        report.agreement = Some(agree as f64 / n as f64);
        report.max_logit_difference = Some(f64::from(max_diff));
    }
    Ok(report)
}

impl EvalReport {
    /// [`EvalReport::per_class`] in words: `cat 90.0% of 10, dog 85.0% of 20`.
    pub fn per_class_line(&self) -> String {
        let named = self
            .per_class
            .iter()
            .map(|c| format!("{} {:.1}% of {}", c.name, c.top1 * 100.0, c.images));
        named.collect::<Vec<_>>().join(", ")
    }
}

/// The f32 model an int8 model at `path` was quantized from, by the naming
/// `cargo xtask quantize`, `train --precision int8` and the int8 search use:
/// `X.onnx` beside `X.int8.onnx`, when that file exists; else `None`.
pub fn f32_twin(path: &Path) -> Option<std::path::PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".int8.onnx")?;
    Some(path.with_file_name(format!("{stem}.onnx"))).filter(|p| p.is_file())
}

/// Reads the `kiln.*` metadata properties of an ONNX model (keys owned by
/// [`kiln_onnx::metadata`]).
pub fn read_metadata(onnx: &[u8], name: &str) -> Result<KilnMetadata, PipelineError> {
    use kiln_onnx::metadata;
    let props = metadata::read(onnx, name).map_err(|e| PipelineError::Invalid(e.to_string()))?;
    Ok(KilnMetadata {
        input: props.get(metadata::INPUT).cloned(),
        dataset: props.get(metadata::DATASET).cloned(),
        test_top1: props.get(metadata::TEST_TOP1).and_then(|s| s.parse().ok()),
        accuracy_kind: props.get(metadata::ACCURACY_KIND).cloned(),
        class_names: props
            .get(metadata::CLASS_NAMES)
            .and_then(|s| serde_json::from_str(s).ok()),
    })
}

fn raw_image(data: &Dataset, i: usize) -> Vec<f32> {
    data.test.image(i).iter().map(|&p| f32::from(p)).collect()
}

fn run_runtime(
    onnx: &[u8],
    name: &str,
    dir: &Path,
    data: &Dataset,
    n: usize,
) -> Result<Vec<f32>, PipelineError> {
    let host = Triple::host().ok_or_else(|| {
        PipelineError::Invalid("kiln cannot build programs for this machine".into())
    })?;
    let program = Program::build(
        &ModelSource {
            onnx,
            name,
            crate_dir: dir,
            target_dir: &kiln_codegen::default_target_dir(),
            input_shape: None,
        },
        host,
    )?;
    check_lengths(
        program.built.input_len,
        program.built.output_len,
        data,
        name,
    )?;
    let mut logits = Vec::with_capacity(n * data.classes);
    for i in 0..n {
        logits.extend(program.run(&raw_image(data, i), &format!("test image {i}"))?);
    }
    Ok(logits)
}

fn run_tract(onnx: &[u8], name: &str, data: &Dataset, n: usize) -> Result<Vec<f32>, PipelineError> {
    let tract_err = |e: TractError| PipelineError::Invalid(format!("{name}: tract: {e}"));
    let model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(tract_err)?;
    let s = data.shape;
    let mut logits = Vec::with_capacity(n * data.classes);
    for i in 0..n {
        let x = tract_ndarray::Array4::from_shape_vec(
            [1, s.channels, s.height, s.width],
            raw_image(data, i),
        )
        .map_err(|e| PipelineError::Invalid(format!("{name}: test image {i}: {e}")))?;
        let out = model
            .run(tvec!(Tensor::from(x).into()))
            .map_err(tract_err)?;
        let view = out[0].to_plain_array_view::<f32>().map_err(tract_err)?;
        check_lengths(s.len(), view.len(), data, name)?;
        logits.extend(view.iter().copied());
    }
    Ok(logits)
}

fn check_lengths(
    input_len: usize,
    output_len: usize,
    data: &Dataset,
    name: &str,
) -> Result<(), PipelineError> {
    if input_len != data.shape.len() {
        return Err(PipelineError::Invalid(format!(
            "{name}: the model takes {input_len} input values, data set {} has images of {} ({} values)",
            data.name,
            data.shape,
            data.shape.len()
        )));
    }
    if output_len != data.classes {
        return Err(PipelineError::Invalid(format!(
            "{name}: {output_len} outputs, but data set {} has {} classes",
            data.name, data.classes
        )));
    }
    Ok(())
}

fn argmax(row: &[f32]) -> usize {
    kiln_train::argmax(row)
}

/// Top-1 of `logits` (`n` rows of `data.classes`) against the test labels.
pub fn top1(logits: &[f32], data: &Dataset, n: usize) -> f64 {
    let c = data.classes;
    let correct = (0..n)
        .filter(|&i| argmax(&logits[i * c..(i + 1) * c]) == data.test.label(i))
        .count();
    correct as f64 / n.max(1) as f64
}

/// Top-1 of `logits` per class of `data`, named by `data.class_names`.
pub fn per_class(logits: &[f32], data: &Dataset, n: usize) -> Vec<ClassTop1> {
    let c = data.classes;
    let mut seen = vec![0usize; c];
    let mut right = vec![0usize; c];
    for i in 0..n {
        let label = data.test.label(i);
        seen[label] += 1;
        if argmax(&logits[i * c..(i + 1) * c]) == label {
            right[label] += 1;
        }
    }
    data.class_names
        .iter()
        .enumerate()
        .map(|(k, name)| ClassTop1 {
            name: name.clone(),
            images: seen[k],
            top1: right[k] as f64 / seen[k].max(1) as f64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_int8_model_finds_its_f32_twin_only_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let int8 = dir.path().join("model.int8.onnx");
        assert_eq!(f32_twin(&int8), None);
        std::fs::write(dir.path().join("model.onnx"), b"x").unwrap();
        assert_eq!(f32_twin(&int8), Some(dir.path().join("model.onnx")));
        assert_eq!(f32_twin(&dir.path().join("model.onnx")), None);
    }
}

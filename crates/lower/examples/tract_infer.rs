//! The reference program for the size comparison (`cargo xtask sizes
//! --vs-tract`): runs an ONNX file through tract with the same contract as
//! kiln's generated `kiln-model` program, so the two binaries do the same job.
//! Not shipped.
//!
//! `tract_infer MODEL.onnx [INPUT_FILE]` reads exactly as many little-endian
//! f32 as the model's input has (from the file, else stdin), runs tract's
//! optimised plan and writes the first output as little-endian f32 to stdout.
//! Wrong input length: message on stderr, exit 2. The weights are read from
//! the ONNX file at run time, so this binary's size excludes them by
//! construction.

use std::io::{Read, Write};
use std::process::ExitCode;

use tract_onnx::prelude::*;

const USAGE: &str = "usage: tract_infer MODEL.onnx [INPUT_FILE]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model, input_file) = match args.as_slice() {
        [model] => (model, None),
        [model, input] => (model, Some(input)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(model, input_file.map(String::as_str)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tract_infer: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(model_path: &str, input_file: Option<&str>) -> TractResult<ExitCode> {
    let model = tract_onnx::onnx()
        .model_for_path(model_path)
        .map_err(|e| e.context(format!("loading {model_path}")))?;
    let model = model
        .into_optimized()
        .map_err(|e| e.context(format!("optimising {model_path}")))?;
    let fact = model.input_fact(0)?;
    let Some(shape) = fact.shape.as_concrete().map(<[usize]>::to_vec) else {
        eprintln!(
            "tract_infer: {model_path}: input shape {:?} is not concrete",
            fact.shape
        );
        return Ok(ExitCode::from(2));
    };
    let plan = model.into_runnable()?;

    let mut bytes = Vec::new();
    let read = match input_file {
        Some(f) => std::fs::File::open(f).and_then(|mut h| h.read_to_end(&mut bytes)),
        None => std::io::stdin().read_to_end(&mut bytes),
    };
    if let Err(e) = read {
        eprintln!(
            "tract_infer: cannot read {}: {e}",
            input_file.unwrap_or("stdin")
        );
        return Ok(ExitCode::from(2));
    }
    let input_len: usize = shape.iter().product();
    if bytes.len() != input_len * 4 {
        eprintln!(
            "tract_infer: expected {} bytes ({input_len} f32), got {}",
            input_len * 4,
            bytes.len()
        );
        return Ok(ExitCode::from(2));
    }
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let input = Tensor::from_shape(&shape, &values)?;
    let outputs = plan.run(tvec!(input.into()))?;
    let output = outputs[0].to_plain_array_view::<f32>()?;
    let out: Vec<u8> = output.iter().flat_map(|v| v.to_le_bytes()).collect();
    if let Err(e) = std::io::stdout().lock().write_all(&out) {
        eprintln!("tract_infer: cannot write output: {e}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

//! Running a model's generated program on inputs here: once on one input
//! (`run-onnx`), or once per image of a data set's test split
//! (`eval-onnx`), natively or under the triple's emulator.

use std::path::Path;

use kiln_measure::Runner;
use kiln_target::Triple;

use crate::PipelineError;
use crate::build::{BuiltModel, ModelSource, build_model};

/// A model built for one native triple, ready to run on inputs.
#[derive(Debug)]
pub struct Program {
    /// The built model (only the triple's program; no wasm).
    pub built: BuiltModel,
    triple: Triple,
    runner: Runner,
}

impl Program {
    /// Lowers and builds `source` for `triple` (the host, or aarch64 run
    /// under qemu here).
    ///
    /// Errors: the build's, or a triple that cannot run here (wasm32 runs
    /// under wasmtime, not as a program).
    pub fn build(source: &ModelSource<'_>, triple: Triple) -> Result<Program, PipelineError> {
        let runner = Runner::for_triple(triple).map_err(|e| {
            PipelineError::Invalid(format!(
                "--target {triple}: {e}; expected host or aarch64-unknown-linux-musl"
            ))
        })?;
        let built = build_model(source, &[triple])?;
        Ok(Program {
            built,
            triple,
            runner,
        })
    }

    /// Runs the program once on `input` (f32 values in the model's input
    /// order, NCHW) and returns its output values.
    ///
    /// Errors: an input of the wrong length (naming `input_name`), a program
    /// that fails or writes the wrong number of values.
    pub fn run(&self, input: &[f32], input_name: &str) -> Result<Vec<f32>, PipelineError> {
        if input.len() != self.built.input_len {
            return Err(PipelineError::Invalid(format!(
                "{input_name}: {} values, the model takes {}",
                input.len(),
                self.built.input_len
            )));
        }
        let binary = self.binary()?;
        Ok(kiln_measure::host::run_with(
            &self.runner,
            binary,
            input,
            Some(self.built.output_len),
            kiln_measure::host::DEFAULT_RUN_TIMEOUT,
        )?)
    }

    fn binary(&self) -> Result<&Path, PipelineError> {
        self.built
            .program(self.triple)
            .ok_or_else(|| PipelineError::Invalid(format!("no {} program was built", self.triple)))
    }
}

//! A bundle's wasm build under the simulated device: many models in one
//! module (`kiln_codegen::generate_bundle`), each run on its own, its
//! `infer` or its `io` (the input and output moves alone). A latency table
//! takes a one-layer model's cost as fuel(infer) - fuel(io): inside a whole
//! network that layer has no program I/O.

use std::path::Path;

use crate::sim::{
    EXPORT_BUNDLE_COUNT, EXPORT_BUNDLE_INFER, EXPORT_BUNDLE_INPUT_LEN, EXPORT_BUNDLE_IO,
    EXPORT_BUNDLE_OUTPUT_LEN, EXPORT_INPUT_PTR, EXPORT_OUTPUT_PTR, Sim, SimError, SimLimits,
    SimRun, as_len,
};

/// Which entry of a bundle's model [`SimBundle::run`] calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BundlePart {
    /// The whole model: `kiln_bundle_infer`.
    Infer,
    /// Only the program's I/O (the input transpose in, the final copy out):
    /// `kiln_bundle_io`.
    Io,
}

/// A compiled bundle, ready to run its models many times. As with
/// [`crate::sim::SimModule`], each run gets a fresh instance (no state is
/// shared between runs) and only the one call's fuel is counted. The
/// bundle's table (count and lengths) is read once, when it is loaded.
pub struct SimBundle {
    sim: Sim,
    /// `(input_len, output_len)` of each model, f32 counts.
    lens: Vec<(usize, usize)>,
}

impl std::fmt::Debug for SimBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimBundle")
            .field("name", &self.sim.name)
            .field("count", &self.lens.len())
            .finish()
    }
}

impl SimBundle {
    /// Compiles the bundle's wasm file at `path` and reads its table.
    ///
    /// Errors: [`SimError::Read`], and as [`SimBundle::from_bytes`].
    pub fn load(path: &Path) -> Result<Self, SimError> {
        Self::with_table(Sim::load(path)?)
    }

    /// Compiles wasm `bytes` (fuel metering and epoch interruption on, as
    /// [`crate::sim::SimModule`]) and reads the bundle's table from one
    /// instance under [`SimLimits::default`]; `name` identifies it in errors.
    ///
    /// Errors: [`SimError::Compile`]; [`SimError::MissingExport`] for a module
    /// that is not a bundle; those of instantiation (`Instantiate`,
    /// `OutOfMemory`).
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self, SimError> {
        Self::with_table(Sim::from_bytes(bytes, name)?)
    }

    fn with_table(sim: Sim) -> Result<Self, SimError> {
        let limits = SimLimits::default();
        let mut inst = sim.instantiate(&limits)?;
        let count = inst.func::<(), i32>(EXPORT_BUNDLE_COUNT)?;
        let input_len = inst.func::<i32, i32>(EXPORT_BUNDLE_INPUT_LEN)?;
        let output_len = inst.func::<i32, i32>(EXPORT_BUNDLE_OUTPUT_LEN)?;
        let count = as_len(inst.call(&count, ())?);
        let lens = (0..count)
            .map(|i| {
                // i < count <= u32::MAX: the wasm i32 argument, read unsigned
                let i = i as u32 as i32;
                let x = as_len(inst.call(&input_len, i)?);
                let y = as_len(inst.call(&output_len, i)?);
                Ok((x, y))
            })
            .collect::<Result<Vec<_>, SimError>>()?;
        drop(inst);
        Ok(Self { sim, lens })
    }

    /// The number of models in the bundle.
    pub fn count(&self) -> usize {
        self.lens.len()
    }

    /// Model `index`'s number of f32 input values (NCHW order).
    ///
    /// Errors: [`SimError::BundleIndex`].
    pub fn input_len(&self, index: usize) -> Result<usize, SimError> {
        self.lens(index).map(|(x, _)| x)
    }

    /// Model `index`'s number of f32 output values (ONNX order).
    ///
    /// Errors: [`SimError::BundleIndex`].
    pub fn output_len(&self, index: usize) -> Result<usize, SimError> {
        self.lens(index).map(|(_, y)| y)
    }

    fn lens(&self, index: usize) -> Result<(usize, usize), SimError> {
        self.lens
            .get(index)
            .copied()
            .ok_or_else(|| SimError::BundleIndex {
                module: self.sim.name.clone(),
                index,
                count: self.lens.len(),
            })
    }

    /// Instantiates the bundle, writes `input` (model `index`'s input, f32
    /// in ONNX NCHW order) to the shared input buffer, calls model `index`'s
    /// `part` once, counting its fuel alone, and reads its
    /// [`SimBundle::output_len`] values back (for [`BundlePart::Io`], whatever
    /// the copy out left there).
    ///
    /// Errors: [`SimError::BundleIndex`] (checked before anything runs),
    /// [`SimError::InputLength`], and as [`crate::sim::SimModule::run`].
    pub fn run(
        &self,
        index: usize,
        input: &[f32],
        part: BundlePart,
        limits: &SimLimits,
    ) -> Result<SimRun, SimError> {
        let (expected, out_len) = self.lens(index)?;
        if input.len() != expected {
            return Err(SimError::InputLength {
                module: format!("{} model {index}", self.sim.name),
                expected,
                got: input.len(),
            });
        }
        let mut inst = self.sim.instantiate(limits)?;
        let input_ptr = inst.func::<(), i32>(EXPORT_INPUT_PTR)?;
        let output_ptr = inst.func::<(), i32>(EXPORT_OUTPUT_PTR)?;
        let entry = inst.func::<i32, ()>(match part {
            BundlePart::Infer => EXPORT_BUNDLE_INFER,
            BundlePart::Io => EXPORT_BUNDLE_IO,
        })?;
        let in_at = as_len(inst.call(&input_ptr, ())?);
        let out_at = as_len(inst.call(&output_ptr, ())?);
        // index < count <= u32::MAX: the wasm i32 argument, read unsigned
        inst.counted_run(in_at, input, &entry, index as u32 as i32, out_at, out_len)
    }
}

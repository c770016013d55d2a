//! The simulated device: a generated model's wasm build run under wasmtime
//! with fuel metering.
//!
//! Fuel counts executed wasm operators, so it is deterministic (the same
//! module and input give the same fuel on every run) and linear in work. A
//! device profile turns it into milliseconds (see [`crate::power`]: fuel x
//! cycles_per_fuel / clock); those figures are labelled `sim`. Peak linear
//! memory is recorded by a `ResourceLimiter`; an epoch deadline stops a
//! module that runs away.
//!
//! [`SimModule`] runs one model's build; [`SimBundle`] runs the models of a
//! bundle's build one at a time, each's `infer` or its `io` alone.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use wasmtime::{
    Config, Engine, Instance, Memory, Module, ResourceLimiter, Store, Trap, TypedFunc, WasmParams,
    WasmResults,
};

pub use crate::sim_bundle::{BundlePart, SimBundle};
use crate::{Metric, Source, Unit};

/// How often the engine's epoch advances; wall-clock deadlines are counted in
/// these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(50);

// The exports a generated model's wasm build provides: the functions come
// from `kiln_runtime::wasm_entry!`, which kiln-codegen writes at the end of
// the generated `src/lib.rs` (crates/codegen/src/emit.rs, `render`); the
// memory is the one the Rust wasm32 linker exports by default for a cdylib
// (kiln-codegen's `BuildTarget::Wasm32`). Pointers and lengths are wasm i32,
// read as unsigned.

/// Export `() -> i32`: address in linear memory of the input buffer,
/// `kiln_input_len` f32 in ONNX (NCHW) order, written LE by the host.
pub const EXPORT_INPUT_PTR: &str = "kiln_input_ptr";
/// Export `() -> i32`: address of the output buffer, `kiln_output_len` LE
/// f32 in ONNX order, valid after `kiln_infer`.
pub const EXPORT_OUTPUT_PTR: &str = "kiln_output_ptr";
/// Export `() -> i32`: number of f32 input values (not bytes).
pub const EXPORT_INPUT_LEN: &str = "kiln_input_len";
/// Export `() -> i32`: number of f32 output values (not bytes).
pub const EXPORT_OUTPUT_LEN: &str = "kiln_output_len";
/// Export `() -> ()`: one inference from the input buffer into the output
/// buffer; the only call whose fuel is counted.
pub const EXPORT_INFER: &str = "kiln_infer";
/// The module's exported linear memory.
pub const EXPORT_MEMORY: &str = "memory";

// A bundle's wasm build (`kiln_codegen::generate_bundle`, several models in
// one module) exports, from `kiln_runtime::wasm_bundle_entry!`, the memory,
// `kiln_input_ptr` and `kiln_output_ptr` (buffers shared by all its models,
// sized for the largest; each model uses a prefix) and the functions below.
// An index out of range executes `unreachable`.

/// Bundle export `() -> i32`: the number of models in the bundle.
pub const EXPORT_BUNDLE_COUNT: &str = "kiln_bundle_count";
/// Bundle export `(i32) -> i32`: model i's number of f32 input values.
pub const EXPORT_BUNDLE_INPUT_LEN: &str = "kiln_bundle_input_len";
/// Bundle export `(i32) -> i32`: model i's number of f32 output values.
pub const EXPORT_BUNDLE_OUTPUT_LEN: &str = "kiln_bundle_output_len";
/// Bundle export `(i32) -> ()`: model i's `infer`, from the input buffer into
/// the output buffer.
pub const EXPORT_BUNDLE_INFER: &str = "kiln_bundle_infer";
/// Bundle export `(i32) -> ()`: model i's `io` alone: the same input move
/// and final output copy as its `infer`, nothing else.
pub const EXPORT_BUNDLE_IO: &str = "kiln_bundle_io";

/// Errors of a simulated run; each says what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The wasm file could not be read.
    #[error("cannot read wasm module {path}: {source}")]
    Read {
        /// The wasm file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// wasmtime refused the bytes (not valid wasm, or an engine error).
    #[error("wasmtime could not compile {module}: {detail}")]
    Compile {
        /// The module's name (its path, for a file).
        module: String,
        /// wasmtime's message.
        detail: String,
    },
    /// Instantiation failed for a reason other than the memory limit
    /// (e.g. the module imports something).
    #[error(
        "{module} could not be instantiated: {detail}; a generated model imports nothing and \
         exports its memory, build it with `--crate-type cdylib --target wasm32-unknown-unknown`"
    )]
    Instantiate {
        /// The module's name.
        module: String,
        /// wasmtime's message.
        detail: String,
    },
    /// An export of [`EXPORT_INPUT_PTR`] .. [`EXPORT_MEMORY`] (for a bundle,
    /// [`EXPORT_BUNDLE_COUNT`] .. [`EXPORT_BUNDLE_IO`]) is absent or has
    /// another type.
    #[error(
        "{module} does not export `{name}` with the expected type ({detail}); is it a kiln generated model built for wasm32?"
    )]
    MissingExport {
        /// The module's name.
        module: String,
        /// The export's name.
        name: &'static str,
        /// wasmtime's message.
        detail: String,
    },
    /// A bundle has no model at this index.
    #[error("{module} holds {count} models (indices 0..{count}); there is no model {index}")]
    BundleIndex {
        /// The module's name.
        module: String,
        /// The index asked for.
        index: usize,
        /// The number of models in the bundle.
        count: usize,
    },
    /// The input does not have `kiln_input_len` values.
    #[error("{module} takes {expected} input values, got {got}")]
    InputLength {
        /// The module's name.
        module: String,
        /// f32 values the module takes.
        expected: usize,
        /// f32 values given.
        got: usize,
    },
    /// The run used up [`SimLimits::fuel`].
    #[error(
        "{module} ran out of fuel after {limit} units: the model needs more work than the \
         simulation budget allows; raise the fuel limit or choose a smaller model"
    )]
    OutOfFuel {
        /// The module's name.
        module: String,
        /// The fuel limit, in fuel units (wasm operators).
        limit: u64,
    },
    /// The module asked for more linear memory than
    /// [`SimLimits::max_memory_bytes`] (at instantiation or by `memory.grow`).
    #[error(
        "{module} needs {requested} bytes of linear memory, over the limit of {limit} bytes: \
         the model's arena or weights are too large for the device; choose a smaller model \
         or raise the memory limit"
    )]
    OutOfMemory {
        /// The module's name.
        module: String,
        /// Linear memory size asked for, bytes.
        requested: u64,
        /// The limit, bytes.
        limit: u64,
    },
    /// The epoch deadline ([`SimLimits::timeout`], wall clock) passed.
    #[error(
        "{module} was still running after {timeout:?} and was stopped (epoch deadline): \
         it loops forever or is far too slow for simulation"
    )]
    Timeout {
        /// The module's name.
        module: String,
        /// The wall-clock limit.
        timeout: Duration,
    },
    /// Any other wasm trap: `unreachable` (a panic in the model), stack
    /// overflow, out-of-bounds access, ...
    #[error("{module} trapped: {trap}; {advice}")]
    Trap {
        /// The module's name.
        module: String,
        /// wasmtime's description of the trap.
        trap: String,
        /// What the trap usually means and what to do.
        advice: &'static str,
    },
    /// An error on the host side: fuel bookkeeping, or an input/output
    /// buffer outside linear memory.
    #[error("{module}: {detail}")]
    Host {
        /// The module's name.
        module: String,
        /// What failed.
        detail: String,
    },
}

/// Limits of one simulated run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimLimits {
    /// Fuel available to one run (wasm operators; the export calls before
    /// `kiln_infer` draw from it too).
    pub fuel: u64,
    /// Most linear memory the module may hold, in bytes (default 512 MiB).
    pub max_memory_bytes: u64,
    /// Wall-clock time after which the run is stopped, counted in 50 ms
    /// epoch ticks.
    pub timeout: Duration,
}

impl Default for SimLimits {
    fn default() -> Self {
        Self {
            // About 2e10 operators: minutes of work; MobileNet-class models
            // need well under 1e10.
            fuel: 20_000_000_000,
            max_memory_bytes: 512 << 20,
            timeout: Duration::from_secs(300),
        }
    }
}

/// What one simulated inference produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimRun {
    /// The model's output, `kiln_output_len` f32 in ONNX order.
    pub output: Vec<f32>,
    /// Fuel consumed by the one measured call alone, `kiln_infer` (for a
    /// bundle, `kiln_bundle_infer` or `kiln_bundle_io`); exact, deterministic.
    pub fuel: u64,
    /// Largest linear memory the module held, in bytes (initial size plus growth).
    pub peak_memory_bytes: u64,
}

impl SimRun {
    /// [`SimRun::fuel`] as a metric: unit `fuel`, source `sim`.
    pub fn fuel_metric(&self) -> Metric {
        Metric::new(self.fuel as f64, Unit::Fuel, Source::Sim)
    }

    /// [`SimRun::peak_memory_bytes`] as a metric: bytes, source `sim`.
    pub fn peak_memory_metric(&self) -> Metric {
        Metric::new(self.peak_memory_bytes as f64, Unit::Bytes, Source::Sim)
    }
}

/// A compiled wasm model, ready to run many times. Each run gets a fresh
/// instance, so runs do not share state. A thread advances the engine's epoch
/// every 50 ms while the module lives.
pub struct SimModule {
    sim: Sim,
}

impl std::fmt::Debug for SimModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimModule")
            .field("name", &self.sim.name)
            .finish()
    }
}

impl SimModule {
    /// Compiles the wasm file at `path`.
    ///
    /// Errors: [`SimError::Read`], [`SimError::Compile`].
    pub fn load(path: &Path) -> Result<Self, SimError> {
        Sim::load(path).map(|sim| Self { sim })
    }

    /// Compiles wasm `bytes` with fuel metering and epoch interruption on;
    /// `name` identifies the module in errors.
    ///
    /// Errors: [`SimError::Compile`].
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self, SimError> {
        Sim::from_bytes(bytes, name).map(|sim| Self { sim })
    }

    /// Instantiates the module, writes `input` (f32 in ONNX NCHW order, LE
    /// in linear memory) to its input buffer, calls `kiln_infer` once and
    /// reads the output back.
    ///
    /// Errors: every [`SimError`] but `Read`, `Compile` and `BundleIndex`; a
    /// trap is named (fuel, memory limit, deadline, `unreachable`, ...).
    pub fn run(&self, input: &[f32], limits: &SimLimits) -> Result<SimRun, SimError> {
        let mut inst = self.sim.instantiate(limits)?;
        let input_ptr = inst.func::<(), i32>(EXPORT_INPUT_PTR)?;
        let output_ptr = inst.func::<(), i32>(EXPORT_OUTPUT_PTR)?;
        let input_len = inst.func::<(), i32>(EXPORT_INPUT_LEN)?;
        let output_len = inst.func::<(), i32>(EXPORT_OUTPUT_LEN)?;
        let infer = inst.func::<(), ()>(EXPORT_INFER)?;

        let expected = as_len(inst.call(&input_len, ())?);
        if input.len() != expected {
            return Err(SimError::InputLength {
                module: self.sim.name.clone(),
                expected,
                got: input.len(),
            });
        }
        let out_len = as_len(inst.call(&output_len, ())?);
        let in_at = as_len(inst.call(&input_ptr, ())?);
        let out_at = as_len(inst.call(&output_ptr, ())?);
        inst.counted_run(in_at, input, &infer, (), out_at, out_len)
    }
}

/// The wasmtime side that [`SimModule`] and [`SimBundle`] share: the engine
/// (fuel metering, epoch interruption), the compiled module and the thread
/// that advances the epoch, stopped on drop.
pub(crate) struct Sim {
    /// The module's name in errors (its path, for a file).
    pub(crate) name: String,
    engine: Engine,
    module: Module,
    ticker: Option<(Sender<()>, JoinHandle<()>)>,
}

impl Sim {
    /// Reads and compiles the wasm file at `path`.
    pub(crate) fn load(path: &Path) -> Result<Self, SimError> {
        let bytes = std::fs::read(path).map_err(|source| SimError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Compiles `bytes` with fuel metering and epoch interruption on.
    pub(crate) fn from_bytes(bytes: &[u8], name: &str) -> Result<Self, SimError> {
        let mut config = Config::new();
        config.consume_fuel(true).epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| SimError::Compile {
            module: name.to_string(),
            detail: format!("{e:#}"),
        })?;
        let module = Module::new(&engine, bytes).map_err(|e| SimError::Compile {
            module: name.to_string(),
            detail: format!("{e:#}"),
        })?;
        let ticker = start_epoch_ticker(&engine);
        Ok(Self {
            name: name.to_string(),
            engine,
            module,
            ticker: Some(ticker),
        })
    }

    /// A fresh instance under `limits`: memory limiter, epoch deadline and
    /// fuel set, the exported memory found.
    pub(crate) fn instantiate<'a>(
        &'a self,
        limits: &'a SimLimits,
    ) -> Result<Instantiated<'a>, SimError> {
        let mut store = Store::new(
            &self.engine,
            PeakMemory {
                limit: limits.max_memory_bytes,
                peak: 0,
                refused: None,
            },
        );
        store.limiter(|state| state);
        let ticks = limits
            .timeout
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis())
            .max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        store
            .set_fuel(limits.fuel)
            .map_err(|e| self.host_error(e))?;

        let instance = match Instance::new(&mut store, &self.module, &[]) {
            Ok(instance) => instance,
            Err(e) => {
                if let Some(requested) = store.data().refused {
                    return Err(SimError::OutOfMemory {
                        module: self.name.clone(),
                        requested,
                        limit: limits.max_memory_bytes,
                    });
                }
                return Err(SimError::Instantiate {
                    module: self.name.clone(),
                    detail: format!("{e:#}"),
                });
            }
        };
        let memory = instance
            .get_memory(&mut store, EXPORT_MEMORY)
            .ok_or_else(|| SimError::MissingExport {
                module: self.name.clone(),
                name: EXPORT_MEMORY,
                detail: "no exported memory".into(),
            })?;
        Ok(Instantiated {
            sim: self,
            limits,
            store,
            instance,
            memory,
        })
    }

    fn host_error(&self, e: wasmtime::Error) -> SimError {
        SimError::Host {
            module: self.name.clone(),
            detail: format!("{e:#}"),
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            drop(stop);
            let _ = handle.join();
        }
    }
}

/// One instance of a [`Sim`] module, with its store and limits.
pub(crate) struct Instantiated<'a> {
    sim: &'a Sim,
    limits: &'a SimLimits,
    store: Store<PeakMemory>,
    instance: Instance,
    memory: Memory,
}

impl Instantiated<'_> {
    /// The exported function `name` with type `P -> R`.
    pub(crate) fn func<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &'static str,
    ) -> Result<TypedFunc<P, R>, SimError> {
        self.instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .map_err(|e| SimError::MissingExport {
                module: self.sim.name.clone(),
                name,
                detail: format!("{e:#}"),
            })
    }

    /// Calls `f`; a failure is named (fuel, deadline, memory, trap).
    pub(crate) fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        f: &TypedFunc<P, R>,
        args: P,
    ) -> Result<R, SimError> {
        f.call(&mut self.store, args).map_err(|e| self.classify(e))
    }

    /// Writes `input` (LE f32) at `in_at`, calls `f(args)` counting its fuel
    /// alone, and reads `out_len` f32 at `out_at`.
    pub(crate) fn counted_run<P: WasmParams>(
        &mut self,
        in_at: usize,
        input: &[f32],
        f: &TypedFunc<P, ()>,
        args: P,
        out_at: usize,
        out_len: usize,
    ) -> Result<SimRun, SimError> {
        let module = || self.sim.name.clone();
        self.memory
            .write(&mut self.store, in_at, &crate::host::encode_f32_le(input))
            .map_err(|e| SimError::Host {
                module: module(),
                detail: format!(
                    "input buffer at {in_at} ({} f32) is outside linear memory: {e}",
                    input.len()
                ),
            })?;
        let fuel_before = self.fuel()?;
        self.call(f, args)?;
        let fuel_after = self.fuel()?;
        let mut bytes = vec![0u8; out_len * 4];
        self.memory
            .read(&self.store, out_at, &mut bytes)
            .map_err(|e| SimError::Host {
                module: module(),
                detail: format!(
                    "output buffer at {out_at} ({out_len} f32) is outside linear memory: {e}"
                ),
            })?;
        let peak = self
            .store
            .data()
            .peak
            .max(self.memory.data_size(&self.store) as u64);
        Ok(SimRun {
            output: crate::host::decode_f32_le(&bytes),
            fuel: fuel_before - fuel_after,
            peak_memory_bytes: peak,
        })
    }

    fn fuel(&self) -> Result<u64, SimError> {
        self.store.get_fuel().map_err(|e| self.sim.host_error(e))
    }

    /// Names a failed call: fuel, deadline, memory limit or a wasm trap.
    fn classify(&self, e: wasmtime::Error) -> SimError {
        let module = self.sim.name.clone();
        let limits = self.limits;
        if let Some(requested) = self.store.data().refused {
            return SimError::OutOfMemory {
                module,
                requested,
                limit: limits.max_memory_bytes,
            };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => SimError::OutOfFuel {
                module,
                limit: limits.fuel,
            },
            Some(Trap::Interrupt) => SimError::Timeout {
                module,
                timeout: limits.timeout,
            },
            Some(trap) => SimError::Trap {
                module,
                trap: trap.to_string(),
                advice: advice_for(trap),
            },
            None => SimError::Host {
                module,
                detail: format!("{e:#}"),
            },
        }
    }
}

fn advice_for(trap: &Trap) -> &'static str {
    match trap {
        Trap::UnreachableCodeReached => {
            "the model panicked (its panic handler executes `unreachable`): an index out of \
             bounds or a failed check in the generated code or runtime; run the host build \
             to see the panic message"
        }
        Trap::StackOverflow => {
            "the wasm stack is too small for the model; raise `-zstack-size` in the wasm build"
        }
        Trap::MemoryOutOfBounds => {
            "the model read or wrote outside its linear memory: a bug in the generated code \
             or runtime; compare with the host build"
        }
        _ => "a bug in the generated code or runtime; compare with the host build",
    }
}

/// Pointers and lengths cross the wasm32 boundary as i32; they are unsigned.
pub(crate) fn as_len(value: i32) -> usize {
    value as u32 as usize
}

/// Records the largest linear memory a module asks for and refuses growth
/// beyond the limit.
struct PeakMemory {
    limit: u64,
    peak: u64,
    refused: Option<u64>,
}

impl ResourceLimiter for PeakMemory {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let desired = desired as u64;
        if desired > self.limit {
            self.refused = Some(desired);
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the sender is dropped.
fn start_epoch_ticker(engine: &Engine) -> (Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = mpsc::channel::<()>();
    let engine = engine.clone();
    let handle = std::thread::spawn(move || {
        loop {
            match stopped.recv_timeout(EPOCH_TICK) {
                Err(RecvTimeoutError::Timeout) => engine.increment_epoch(),
                _ => return,
            }
        }
    });
    (stop, handle)
}

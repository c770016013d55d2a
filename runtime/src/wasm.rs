//! The wasm32 exports of a generated model (see `wasm_entry!`) and of a
//! bundle of models (see `wasm_bundle_entry!`).

use core::cell::UnsafeCell;

/// A fixed buffer of `N` f32 the wasm host writes the input into / reads the
/// output from (a model's input in ONNX NCHW order, or its output), through
/// the pointer [`WasmBuffer::as_mut_ptr`] exports.
pub struct WasmBuffer<const N: usize>(UnsafeCell<[f32; N]>);

// SAFETY: only used on wasm32-unknown-unknown, which runs one thread; the host
// touches the buffer between calls, never during `run_wasm_infer`.
unsafe impl<const N: usize> Sync for WasmBuffer<N> {}

impl<const N: usize> WasmBuffer<N> {
    /// `N` zeros; `const`, so it can initialise a `static`.
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0.0; N]))
    }

    /// A pointer to the first of the `N` f32, valid as long as the buffer.
    /// Reading or writing through it is up to the caller: only while no
    /// [`run_wasm_infer`] on this buffer is running.
    pub fn as_mut_ptr(&self) -> *mut f32 {
        self.0.get().cast()
    }
}

impl<const N: usize> Default for WasmBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `infer` from the input buffer into the output buffer (both in ONNX
/// order, as the model's `infer` takes and gives them).
///
/// # Safety
/// No other reference to either buffer may be alive during the call, i.e. the
/// caller is single-threaded and not re-entrant (the wasm export guarantees it).
pub unsafe fn run_wasm_infer<const I: usize, const O: usize>(
    input: &WasmBuffer<I>,
    output: &WasmBuffer<O>,
    infer: fn(&[f32; I], &mut [f32; O]),
) {
    // SAFETY: the caller guarantees exclusive access to both buffers; they are
    // distinct statics, so the shared and the mutable borrow do not alias.
    let (x, y) = unsafe { (&*input.0.get(), &mut *output.0.get()) };
    infer(x, y);
}

/// One model of a bundle, as `wasm_bundle_entry!` lists them: its lengths and
/// its `infer` and `io` behind a uniform signature (see [`call_prefix`]).
#[derive(Clone, Copy)]
pub struct BundleMember {
    /// f32 input values (the model's `INPUT_LEN`).
    pub input_len: usize,
    /// f32 output values (the model's `OUTPUT_LEN`).
    pub output_len: usize,
    /// The model's `infer` on the first `input_len` / `output_len` values.
    pub infer: fn(&[f32], &mut [f32]),
    /// The model's `io` (its input and output moves only), likewise.
    pub io: fn(&[f32], &mut [f32]),
}

/// Which entry of a [`BundleMember`] [`run_wasm_bundle`] calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleCall {
    /// The whole model (`infer`).
    Infer,
    /// The program's I/O only (`io`).
    Io,
}

/// Calls `f` on the first `I` values of `x` and the first `O` of `y`; panics
/// when either slice is shorter.
pub fn call_prefix<const I: usize, const O: usize>(
    f: fn(&[f32; I], &mut [f32; O]),
    x: &[f32],
    y: &mut [f32],
) {
    match (x.first_chunk::<I>(), y.first_chunk_mut::<O>()) {
        (Some(x), Some(y)) => f(x, y),
        _ => panic!("bundle buffer shorter than the model's input or output"),
    }
}

/// The largest of `lens` (0 when empty); `const`, for the bundle's buffer sizes.
pub const fn max_len(lens: &[usize]) -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < lens.len() {
        if lens[i] > max {
            max = lens[i];
        }
        i += 1;
    }
    max
}

/// Runs `members[index]`'s `infer` or `io` from the shared input buffer into
/// the shared output buffer (each member uses a prefix of both). Returns
/// `false`, touching nothing, when `index` is out of range; panics when a
/// member is longer than a buffer.
///
/// # Safety
/// As [`run_wasm_infer`]: no other reference to either buffer may be alive
/// during the call.
pub unsafe fn run_wasm_bundle<const I: usize, const O: usize>(
    members: &[BundleMember],
    index: u32,
    call: BundleCall,
    input: &WasmBuffer<I>,
    output: &WasmBuffer<O>,
) -> bool {
    let Some(m) = usize::try_from(index).ok().and_then(|i| members.get(i)) else {
        return false;
    };
    // SAFETY: the caller guarantees exclusive access to both buffers; they are
    // distinct statics, so the shared and the mutable borrow do not alias.
    let (x, y) = unsafe { (&*input.0.get(), &mut *output.0.get()) };
    let f = match call {
        BundleCall::Infer => m.infer,
        BundleCall::Io => m.io,
    };
    f(x, y);
    true
}

/// Emits the wasm32 exports of a generated model:
/// `kiln_input_ptr`, `kiln_output_ptr`, `kiln_input_len`, `kiln_output_len`,
/// `kiln_infer`, and a panic handler. Expands to nothing on other targets.
#[macro_export]
macro_rules! wasm_entry {
    ($infer:path, $input_len:path, $output_len:path) => {
        #[cfg(target_arch = "wasm32")]
        mod kiln_wasm_entry {
            static INPUT: $crate::WasmBuffer<{ $input_len }> = $crate::WasmBuffer::new();
            static OUTPUT: $crate::WasmBuffer<{ $output_len }> = $crate::WasmBuffer::new();

            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_input_ptr() -> *mut f32 {
                INPUT.as_mut_ptr()
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_output_ptr() -> *const f32 {
                OUTPUT.as_mut_ptr().cast_const()
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_input_len() -> u32 {
                $input_len as u32
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_output_len() -> u32 {
                $output_len as u32
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_infer() {
                // SAFETY: wasm32-unknown-unknown is single-threaded and the
                // host does not call back into the module during inference.
                unsafe { $crate::run_wasm_infer(&INPUT, &OUTPUT, $infer) }
            }
            #[panic_handler]
            fn panic(_: &core::panic::PanicInfo) -> ! {
                core::arch::wasm32::unreachable()
            }
        }
    };
}

/// Emits the wasm32 exports of a bundle whose models are the modules listed
/// (children of the module where it is invoked, each with `INPUT_LEN`,
/// `OUTPUT_LEN`, `infer` and `io`), in index order:
/// `kiln_bundle_count`, `kiln_bundle_input_len(i)`, `kiln_bundle_output_len(i)`
/// (f32 counts), `kiln_input_ptr` and `kiln_output_ptr` (buffers shared by all
/// models, sized for the largest input and output), `kiln_bundle_infer(i)`,
/// `kiln_bundle_io(i)`, and a panic handler. An index out of range executes
/// `unreachable`. Expands to nothing on other targets.
#[macro_export]
macro_rules! wasm_bundle_entry {
    ($($model:ident),* $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        mod kiln_wasm_bundle_entry {
            const MEMBERS: &[$crate::BundleMember] = &[$(
                $crate::BundleMember {
                    input_len: super::$model::INPUT_LEN,
                    output_len: super::$model::OUTPUT_LEN,
                    infer: |x, y| $crate::call_prefix(super::$model::infer, x, y),
                    io: |x, y| $crate::call_prefix(super::$model::io, x, y),
                },
            )*];
            const INPUT_MAX: usize = $crate::max_len(&[$(super::$model::INPUT_LEN),*]);
            const OUTPUT_MAX: usize = $crate::max_len(&[$(super::$model::OUTPUT_LEN),*]);
            static INPUT: $crate::WasmBuffer<INPUT_MAX> = $crate::WasmBuffer::new();
            static OUTPUT: $crate::WasmBuffer<OUTPUT_MAX> = $crate::WasmBuffer::new();

            fn member(i: u32) -> &'static $crate::BundleMember {
                match MEMBERS.get(i as usize) {
                    Some(m) => m,
                    None => core::arch::wasm32::unreachable(),
                }
            }
            fn call(i: u32, part: $crate::BundleCall) {
                // SAFETY: wasm32-unknown-unknown is single-threaded and the
                // host does not call back into the module during the call.
                if !unsafe { $crate::run_wasm_bundle(MEMBERS, i, part, &INPUT, &OUTPUT) } {
                    core::arch::wasm32::unreachable()
                }
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_bundle_count() -> u32 {
                MEMBERS.len() as u32
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_bundle_input_len(i: u32) -> u32 {
                member(i).input_len as u32
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_bundle_output_len(i: u32) -> u32 {
                member(i).output_len as u32
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_input_ptr() -> *mut f32 {
                INPUT.as_mut_ptr()
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_output_ptr() -> *const f32 {
                OUTPUT.as_mut_ptr().cast_const()
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_bundle_infer(i: u32) {
                call(i, $crate::BundleCall::Infer)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn kiln_bundle_io(i: u32) {
                call(i, $crate::BundleCall::Io)
            }
            #[panic_handler]
            fn panic(_: &core::panic::PanicInfo) -> ! {
                core::arch::wasm32::unreachable()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: &[f32; 2], y: &mut [f32; 3]) {
        y[0] = x[0] * 2.0;
        y[1] = x[1] * 2.0;
        y[2] = 1.0;
    }

    #[test]
    fn wasm_infer_reads_input_buffer_and_writes_output_buffer() {
        static IN: WasmBuffer<2> = WasmBuffer::new();
        static OUT: WasmBuffer<3> = WasmBuffer::new();
        let p = IN.as_mut_ptr();
        // SAFETY: test is the only user of these statics; indices within N.
        unsafe {
            *p = 1.5;
            *p.add(1) = -2.0;
            run_wasm_infer(&IN, &OUT, double);
            let q = OUT.as_mut_ptr();
            assert_eq!([*q, *q.add(1), *q.add(2)], [3.0, -4.0, 1.0]);
        }
    }

    fn add_one(x: &[f32; 2], y: &mut [f32; 2]) {
        y[0] = x[0] + 1.0;
        y[1] = x[1] + 1.0;
    }

    fn first_only(x: &[f32; 1], y: &mut [f32; 1]) {
        y[0] = x[0];
    }

    const MEMBERS: [BundleMember; 2] = [
        BundleMember {
            input_len: 2,
            output_len: 2,
            infer: |x, y| call_prefix(add_one, x, y),
            io: |x, y| call_prefix(first_only, x, y),
        },
        BundleMember {
            input_len: 2,
            output_len: 3,
            infer: |x, y| call_prefix(double, x, y),
            io: |x, y| call_prefix(first_only, x, y),
        },
    ];

    #[test]
    fn bundle_runs_the_chosen_member_and_part_on_buffer_prefixes() {
        static IN: WasmBuffer<4> = WasmBuffer::new();
        static OUT: WasmBuffer<{ max_len(&[2, 3]) }> = WasmBuffer::new();
        let (p, q) = (IN.as_mut_ptr(), OUT.as_mut_ptr());
        // SAFETY: this test is the only user of these statics; indices < N.
        unsafe {
            *p = 1.5;
            *p.add(1) = -2.0;
            assert!(run_wasm_bundle(&MEMBERS, 1, BundleCall::Infer, &IN, &OUT));
            assert_eq!([*q, *q.add(1), *q.add(2)], [3.0, -4.0, 1.0]);
            assert!(run_wasm_bundle(&MEMBERS, 0, BundleCall::Infer, &IN, &OUT));
            assert_eq!([*q, *q.add(1), *q.add(2)], [2.5, -1.0, 1.0]);
            *q = 9.0;
            assert!(run_wasm_bundle(&MEMBERS, 0, BundleCall::Io, &IN, &OUT));
            assert_eq!([*q, *q.add(1)], [1.5, -1.0]);
            // out of range: refused, the output untouched
            *q = 7.0;
            assert!(!run_wasm_bundle(&MEMBERS, 2, BundleCall::Infer, &IN, &OUT));
            assert!(!run_wasm_bundle(
                &MEMBERS,
                u32::MAX,
                BundleCall::Io,
                &IN,
                &OUT
            ));
            assert_eq!(*q, 7.0);
        }
    }

    #[test]
    #[should_panic(expected = "shorter")]
    fn a_member_longer_than_the_buffer_panics() {
        static IN: WasmBuffer<1> = WasmBuffer::new();
        static OUT: WasmBuffer<3> = WasmBuffer::new();
        // SAFETY: this test is the only user of these statics.
        unsafe {
            run_wasm_bundle(&MEMBERS, 1, BundleCall::Infer, &IN, &OUT);
        }
    }

    #[test]
    fn max_len_is_the_largest_or_zero() {
        assert_eq!(max_len(&[]), 0);
        assert_eq!(max_len(&[3, 9, 4]), 9);
    }
}

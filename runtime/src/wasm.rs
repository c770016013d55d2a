//! The wasm32 exports of a generated model (see `wasm_entry!`).

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
}

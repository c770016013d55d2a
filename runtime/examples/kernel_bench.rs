//! Runs one kernel on one layer shape many times, so builds of the runtime
//! (portable, AVX2 at build time, AVX2 found at run time with the `std`
//! feature) can be timed against each other as whole processes, e.g. with
//! `farm-bench`:
//!
//! ```text
//! kernel_bench gemm M K N [CALLS]        pointwise: M pixels, K -> N channels
//! kernel_bench depthwise H W C KSIZE [CALLS [STRIDE]]   same padding (stride 1 by default)
//! kernel_bench peak [CALLS]               this core's FMA peak (x86-64)
//! kernel_bench table                      MobileNetV2-0.5 96x96's layers against the peak
//! ```
//!
//! Prints the mean time of one call in microseconds (host, the thread's CPU
//! time on Linux, so time the shared machine gave to other processes is not
//! counted; wall clock elsewhere) and
//! the kernel's rate in GFLOP/s (a multiply-add counted as 2 operations:
//! `2 M K N` for `gemm`, `2 H_out W_out C KSIZE^2` for `depthwise`; biases and
//! activations not counted). `peak` runs 16 independent chains of fused
//! multiply-adds on registers only (AVX-512F: of 16 lanes; AVX2+FMA: 12 chains
//! of 8 lanes), as many as the CPU has, so their rate is the core's
//! single-thread peak against which a kernel's rate is a share. `table`
//! times the distinct pointwise and depthwise shapes of MobileNetV2-0.5 at
//! 96x96x3 (`spaces/mobilenetv2-0.5.json`, as `cargo xtask lower` lists its
//! ops; the stem's product without its im2col) and prints a markdown table
//! of each one's best mean time over 5 rounds of at least 20 ms, its GFLOP/s
//! and its share of the peak (best of 5 rounds likewise). With the
//! `std` feature, `KILN_RUNTIME_NO_AVX512=1` makes the kernels take the
//! AVX2 path.
//!
//! Every buffer (input, weights, output) starts on a 64-byte boundary, as a
//! generated host program's arena and weight blob do, so a 16-lane vector
//! whose offset is a multiple of 16 values loads from one cache line;
//! `KILN_BENCH_OFFSET=N` moves each start N values (4N bytes) past it, to
//! see what lines split by a misaligned layout cost.

use std::hint::black_box;

use kiln_runtime::{Activation, Conv2d, depthwise_conv2d, gemm, pack_gemm, packed_gemm_len};

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// A copy of `values` whose first value is `KILN_BENCH_OFFSET` values (0
/// unless set) past a 64-byte boundary: `buf[at..at + n]`.
struct Buf {
    buf: Vec<f32>,
    at: usize,
    n: usize,
}

impl Buf {
    fn new(values: &[f32]) -> Self {
        let offset: usize = std::env::var("KILN_BENCH_OFFSET")
            .ok()
            .map(|v| {
                v.parse()
                    .expect("KILN_BENCH_OFFSET: a number of f32 values")
            })
            .unwrap_or(0);
        let n = values.len();
        let mut buf = vec![0.0; n + 16 + offset];
        // a Vec<f32> is 4-byte aligned, so a boundary is at most 15 values in
        let at = buf.as_ptr().align_offset(64) + offset;
        buf[at..at + n].copy_from_slice(values);
        Buf { buf, at, n }
    }

    fn get(&self) -> &[f32] {
        &self.buf[self.at..self.at + self.n]
    }

    fn get_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.at..self.at + self.n]
    }
}

fn arg(args: &[String], i: usize, default: Option<usize>) -> usize {
    match args.get(i) {
        Some(a) => a
            .parse()
            .unwrap_or_else(|_| panic!("argument {i}: not a number: {a}")),
        None => default.unwrap_or_else(|| panic!("argument {i} missing (see the file's header)")),
    }
}

/// Seconds of this thread's CPU time (Linux), or of a monotonic clock.
fn now() -> f64 {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        unsafe extern "C" {
            fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut t = Timespec { sec: 0, nsec: 0 };
        // SAFETY: `t` is a valid, writable timespec (two 64-bit fields on
        // the 64-bit Linux targets kiln builds for) that outlives the call.
        let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        t.sec as f64 + t.nsec as f64 * 1e-9
    }
    #[cfg(not(target_os = "linux"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
    }
}

/// One timed case: (seconds per call, operations per call, checksum).
type Timed = (f64, f64, f32);

/// `calls` products of `m` pixels, `k` -> `n` channels (ReLU6).
fn gemm_case(m: usize, k: usize, n: usize, calls: usize) -> Timed {
    let act = Activation::Clip { min: 0.0, max: 6.0 };
    let x = Buf::new(&values(m * k, 1));
    let mut packed = vec![0.0; packed_gemm_len(k, n)];
    pack_gemm(&values(k * n, 2), &values(n, 3), k, n, &mut packed);
    let packed = Buf::new(&packed);
    let mut out = Buf::new(&vec![0.0; m * n]);
    let start = now();
    for _ in 0..calls {
        gemm(
            black_box(x.get()),
            black_box(packed.get()),
            out.get_mut(),
            m,
            k,
            n,
            act,
        );
        black_box(out.get_mut());
    }
    let secs = (now() - start) / calls as f64;
    (secs, 2.0 * (m * k * n) as f64, out.get().iter().sum())
}

/// `calls` depthwise convolutions of `h` x `w` x `c`, `ks` x `ks` taps,
/// same padding, `stride` (ReLU6).
fn depthwise_case(h: usize, w: usize, c: usize, ks: usize, stride: usize, calls: usize) -> Timed {
    let (out_h, out_w) = ((h - 1) / stride + 1, (w - 1) / stride + 1);
    let p = Conv2d {
        in_h: h,
        in_w: w,
        in_c: c,
        out_h,
        out_w,
        out_c: c,
        k_h: ks,
        k_w: ks,
        stride_h: stride,
        stride_w: stride,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: ks / 2,
        pad_left: ks / 2,
        groups: c,
        act: Activation::Clip { min: 0.0, max: 6.0 },
    };
    let x = Buf::new(&values(h * w * c, 1));
    let weights = Buf::new(&values(ks * ks * c, 2));
    let bias = Buf::new(&values(c, 3));
    let mut out = Buf::new(&vec![0.0; out_h * out_w * c]);
    let start = now();
    for _ in 0..calls {
        depthwise_conv2d(
            black_box(x.get()),
            black_box(weights.get()),
            bias.get(),
            out.get_mut(),
            &p,
        );
        black_box(out.get_mut());
    }
    let secs = (now() - start) / calls as f64;
    (
        secs,
        2.0 * (out_h * out_w * c * ks * ks) as f64,
        out.get().iter().sum(),
    )
}

/// `calls` steps of [`peak`] timed.
fn peak_case(calls: usize) -> Timed {
    let start = now();
    let (lanes, sum) = peak(calls);
    let secs = (now() - start) / calls as f64;
    (secs, 2.0 * lanes as f64, sum)
}

/// The best (shortest) time per call of 5 rounds of at least 20 ms each.
fn best(case: impl Fn(usize) -> Timed) -> Timed {
    // Calls enough for 5 ms (which also warms the caches and the vector
    // units), then for 20 ms at that pace.
    let mut calls = 1;
    let (each, flops, _) = loop {
        let t = case(calls);
        if t.0 * calls as f64 >= 0.005 {
            break t;
        }
        calls *= 4;
    };
    let calls = ((0.02 / each.max(1e-12)) as usize).max(1);
    let mut b = case(calls);
    for _ in 0..4 {
        let t = case(calls);
        if t.0 < b.0 {
            b = t;
        }
    }
    (b.0, flops, b.2)
}

/// The distinct layer shapes of MobileNetV2-0.5 at 96x96x3 (10 classes):
/// `(name, is a GEMM, [m, k, n] or depthwise [h, w, c, k, stride], layers)`.
const MOBILENETV2_05: [(&str, bool, [usize; 5], usize); 29] = [
    ("stem 3x3 s2 (GEMM part)", true, [2304, 27, 16, 0, 0], 1),
    ("pw 16->8 @48x48", true, [2304, 16, 8, 0, 0], 1),
    ("pw 8->48 @48x48", true, [2304, 8, 48, 0, 0], 1),
    ("pw 48->16 @24x24", true, [576, 48, 16, 0, 0], 1),
    ("pw 16->96 @24x24", true, [576, 16, 96, 0, 0], 2),
    ("pw 96->16 @24x24", true, [576, 96, 16, 0, 0], 1),
    ("pw 96->16 @12x12", true, [144, 96, 16, 0, 0], 3),
    ("pw 16->96 @12x12", true, [144, 16, 96, 0, 0], 3),
    ("pw 96->32 @6x6", true, [36, 96, 32, 0, 0], 1),
    ("pw 32->192 @6x6", true, [36, 32, 192, 0, 0], 4),
    ("pw 192->32 @6x6", true, [36, 192, 32, 0, 0], 3),
    ("pw 192->48 @6x6", true, [36, 192, 48, 0, 0], 1),
    ("pw 48->288 @6x6", true, [36, 48, 288, 0, 0], 3),
    ("pw 288->48 @6x6", true, [36, 288, 48, 0, 0], 2),
    ("pw 288->80 @3x3", true, [9, 288, 80, 0, 0], 1),
    ("pw 80->480 @3x3", true, [9, 80, 480, 0, 0], 3),
    ("pw 480->80 @3x3", true, [9, 480, 80, 0, 0], 2),
    ("pw 480->160 @3x3", true, [9, 480, 160, 0, 0], 1),
    ("pw 160->1280 @3x3", true, [9, 160, 1280, 0, 0], 1),
    ("dw 3x3 16 @48x48", false, [48, 48, 16, 3, 1], 1),
    ("dw 3x3 s2 48 @48x48", false, [48, 48, 48, 3, 2], 1),
    ("dw 3x3 96 @24x24", false, [24, 24, 96, 3, 1], 1),
    ("dw 3x3 s2 96 @24x24", false, [24, 24, 96, 3, 2], 1),
    ("dw 3x3 96 @12x12", false, [12, 12, 96, 3, 1], 2),
    ("dw 3x3 s2 96 @12x12", false, [12, 12, 96, 3, 2], 1),
    ("dw 3x3 192 @6x6", false, [6, 6, 192, 3, 1], 4),
    ("dw 3x3 288 @6x6", false, [6, 6, 288, 3, 1], 2),
    ("dw 3x3 s2 288 @6x6", false, [6, 6, 288, 3, 2], 1),
    ("dw 3x3 480 @3x3", false, [3, 3, 480, 3, 1], 3),
];

/// Prints [`MOBILENETV2_05`]'s layers against this core's peak.
fn table() {
    let (ps, pf, _) = best(peak_case);
    let peak = pf / ps / 1e9;
    println!("peak: {peak:.1} GFLOP/s (host, one thread, `kernel_bench peak`)\n");
    println!("| layer | count | us | GFLOP/s | share of peak |");
    println!("|---|---|---|---|---|");
    for (name, is_gemm, s, count) in MOBILENETV2_05 {
        let (secs, flops, _) = if is_gemm {
            best(|calls| gemm_case(s[0], s[1], s[2], calls))
        } else {
            best(|calls| depthwise_case(s[0], s[1], s[2], s[3], s[4], calls))
        };
        let rate = flops / secs / 1e9;
        println!(
            "| {name} | {count} | {:.1} | {rate:.1} | {:.0}% |",
            secs * 1e6,
            100.0 * rate / peak
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (secs, flops, checksum) = match args.get(1).map(String::as_str) {
        Some("gemm") => {
            let [m, k, n] = [2, 3, 4].map(|i| arg(&args, i, None));
            gemm_case(m, k, n, arg(&args, 5, Some(2000)))
        }
        Some("depthwise") => {
            let [h, w, c, ks] = [2, 3, 4, 5].map(|i| arg(&args, i, None));
            let calls = arg(&args, 6, Some(2000));
            depthwise_case(h, w, c, ks, arg(&args, 7, Some(1)).max(1), calls)
        }
        Some("peak") => peak_case(arg(&args, 2, Some(20_000_000))),
        Some("table") => return table(),
        _ => panic!(
            "usage: kernel_bench gemm M K N [CALLS] | depthwise H W C KSIZE [CALLS [STRIDE]] | peak [CALLS] | table"
        ),
    };
    let gflops = flops / secs / 1e9;
    println!(
        "{:.3} us per call, checksum {checksum:.3}, {gflops:.1} GFLOP/s",
        secs * 1e6
    );
}

/// `calls` steps of fused multiply-adds on independent register chains with
/// the widest vectors this CPU has: (multiply-adds a step, a checksum).
#[cfg(target_arch = "x86_64")]
fn peak(calls: usize) -> (usize, f32) {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx512f")]
    fn chains512(calls: usize) -> f32 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); 16];
        for _ in 0..black_box(calls) {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }
    #[target_feature(enable = "avx2,fma")]
    fn chains256(calls: usize) -> f32 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..black_box(calls) {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut lanes = [0.0f32; 8];
        let mut sum = 0.0;
        for v in acc {
            // SAFETY: `lanes` holds the 8 values stored.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            sum += lanes.iter().sum::<f32>();
        }
        sum
    }
    let no512 = std::env::var_os("KILN_RUNTIME_NO_AVX512").is_some();
    if is_x86_feature_detected!("avx512f") && !no512 {
        // SAFETY: the CPU has AVX-512F.
        (16 * 16, unsafe { chains512(calls) })
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA.
        (12 * 8, unsafe { chains256(calls) })
    } else {
        panic!("peak: this CPU has neither AVX-512F nor AVX2+FMA")
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn peak(_calls: usize) -> (usize, f32) {
    panic!("peak: x86-64 only")
}

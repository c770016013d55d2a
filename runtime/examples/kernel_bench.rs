//! Runs one kernel on one layer shape many times, so builds of the runtime
//! (portable, AVX2 at build time, AVX2 found at run time with the `std`
//! feature) can be timed against each other as whole processes, e.g. with
//! `farm-bench`:
//!
//! ```text
//! kernel_bench gemm M K N [CALLS]        pointwise: M pixels, K -> N channels
//! kernel_bench depthwise H W C KSIZE [CALLS]   stride 1, same padding
//! ```
//!
//! Prints the mean time of one call in microseconds (host, wall clock).

use std::hint::black_box;
use std::time::Instant;

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

fn arg(args: &[String], i: usize, default: Option<usize>) -> usize {
    match args.get(i) {
        Some(a) => a
            .parse()
            .unwrap_or_else(|_| panic!("argument {i}: not a number: {a}")),
        None => default.unwrap_or_else(|| panic!("argument {i} missing (see the file's header)")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let act = Activation::Clip { min: 0.0, max: 6.0 };
    let (calls, start, checksum) = match args.get(1).map(String::as_str) {
        Some("gemm") => {
            let (m, k, n) = (
                arg(&args, 2, None),
                arg(&args, 3, None),
                arg(&args, 4, None),
            );
            let calls = arg(&args, 5, Some(2000));
            let x = values(m * k, 1);
            let mut packed = vec![0.0; packed_gemm_len(k, n)];
            pack_gemm(&values(k * n, 2), &values(n, 3), k, n, &mut packed);
            let mut out = vec![0.0; m * n];
            let start = Instant::now();
            for _ in 0..calls {
                gemm(black_box(&x), black_box(&packed), &mut out, m, k, n, act);
                black_box(&mut out);
            }
            (calls, start, out.iter().sum::<f32>())
        }
        Some("depthwise") => {
            let (h, w, c) = (
                arg(&args, 2, None),
                arg(&args, 3, None),
                arg(&args, 4, None),
            );
            let ks = arg(&args, 5, None);
            let calls = arg(&args, 6, Some(2000));
            let p = Conv2d {
                in_h: h,
                in_w: w,
                in_c: c,
                out_h: h,
                out_w: w,
                out_c: c,
                k_h: ks,
                k_w: ks,
                stride_h: 1,
                stride_w: 1,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: ks / 2,
                pad_left: ks / 2,
                groups: c,
                act,
            };
            let x = values(h * w * c, 1);
            let weights = values(ks * ks * c, 2);
            let bias = values(c, 3);
            let mut out = vec![0.0; h * w * c];
            let start = Instant::now();
            for _ in 0..calls {
                depthwise_conv2d(black_box(&x), black_box(&weights), &bias, &mut out, &p);
                black_box(&mut out);
            }
            (calls, start, out.iter().sum::<f32>())
        }
        _ => panic!("usage: kernel_bench gemm M K N [CALLS] | depthwise H W C KSIZE [CALLS]"),
    };
    let us = start.elapsed().as_secs_f64() * 1e6 / calls as f64;
    println!("{us:.3} us per call ({calls} calls, checksum {checksum:.3})");
}

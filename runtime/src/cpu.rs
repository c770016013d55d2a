//! Which instruction set's kernels run.
//!
//! A build that enables AVX2 and FMA (the generated host programs, built
//! with `-C target-cpu=native` on such a CPU) calls the AVX2 kernels, with
//! no check. With the `std` feature, an x86-64 build without them (a host
//! library built for generic x86-64, such as the supernet's judge) asks the
//! CPU (`is_x86_feature_detected!`, whose answer std caches) and calls them
//! where it has both. Every other build calls the portable kernels.
//! Generated programs do not enable `std`, so their choice stays the build's.
//!
//! AVX-512F comes first in the same way: a build that enables `avx512f`
//! (a host program built with `target-cpu=native` on such a CPU) calls the
//! AVX-512 GEMM and depthwise kernels; add `-C target-feature=-avx512f` to
//! that build to compare it with the AVX2 ones. With `std`, a CPU found to
//! have AVX-512F gets them unless the environment variable
//! `KILN_RUNTIME_NO_AVX512` is set (to anything) when the first kernel runs.

/// True when the AVX2+FMA kernels may run: the build enables both features,
/// or (with `std`) the CPU was found to have them.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn avx2_fma() -> bool {
    if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        return true;
    }
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(feature = "std"))]
    {
        false
    }
}

/// True when the AVX-512F kernels (which call the AVX2 one for a narrow
/// last panel) may run: the build enables `avx512f`, AVX2 and FMA, or
/// (with `std`) the CPU was found to have them and
/// `KILN_RUNTIME_NO_AVX512` was not set when this was first asked.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn avx512() -> bool {
    if cfg!(all(
        target_feature = "avx512f",
        target_feature = "avx2",
        target_feature = "fma"
    )) {
        return true;
    }
    #[cfg(feature = "std")]
    {
        use core::sync::atomic::{AtomicU8, Ordering};
        // 0: not asked yet, 1: no, 2: yes.
        static ANSWER: AtomicU8 = AtomicU8::new(0);
        match ANSWER.load(Ordering::Relaxed) {
            0 => {
                let yes = std::is_x86_feature_detected!("avx512f")
                    && avx2_fma()
                    && std::env::var_os("KILN_RUNTIME_NO_AVX512").is_none();
                ANSWER.store(1 + u8::from(yes), Ordering::Relaxed);
                yes
            }
            a => a == 2,
        }
    }
    #[cfg(not(feature = "std"))]
    {
        false
    }
}

#[cfg(all(test, target_arch = "x86_64", not(miri)))]
mod tests {
    extern crate std;
    use crate::gemm::tests::{packed, values};
    use crate::{Activation, Conv2d};
    use std::vec::Vec;

    fn close(a: &[f32], b: &[f32], what: &str) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-5, "{what} [{i}]: {x} vs {y}");
        }
    }

    /// The public kernels (whichever path this build and CPU take: with
    /// `--features std` on an AVX2 machine, the AVX2 one, on an AVX-512
    /// one the AVX-512 one) against the
    /// portable twins, on the layer shapes the supernet's judge runs.
    #[test]
    fn dispatched_kernels_equal_their_portable_twins() {
        let act = Activation::Clip { min: 0.0, max: 6.0 };
        for &(m, k, n) in &[(196, 96, 24), (49, 24, 10), (1, 1280, 10), (7, 16, 40)] {
            let x = values(m * k, 1);
            let w = values(k * n, 2);
            let p = packed(&w, &values(n, 3), k, n);
            let s = crate::gemm::GemmShape {
                m,
                k,
                n,
                x_stride: k,
                out_stride: n,
                add: false,
            };
            let mut got = std::vec![f32::NAN; m * n];
            let mut twin = std::vec![f32::NAN; m * n];
            crate::gemm(&x, &p, &mut got, m, k, n, act);
            crate::gemm::gemm_portable(&x, &p, &mut twin, &s, act);
            close(&got, &twin, "gemm");
        }
        let (h, c, ks) = (14, 96, 7);
        let conv = Conv2d {
            in_h: h,
            in_w: h,
            in_c: c,
            out_h: h,
            out_w: h,
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
        let x = values(h * h * c, 4);
        let (w, b) = (values(ks * ks * c, 5), values(c, 6));
        let mut got = std::vec![f32::NAN; h * h * c];
        let mut twin = std::vec![f32::NAN; h * h * c];
        crate::depthwise_conv2d(&x, &w, &b, &mut got, &conv);
        crate::conv::depthwise_portable(&x, &w, &b, &mut twin, &conv);
        close(&got, &twin, "depthwise");
        let (x, w, b) = (values(1280, 7), values(1280 * 10, 8), values(10, 9));
        let mut got: Vec<f32> = std::vec![f32::NAN; 10];
        let mut twin: Vec<f32> = std::vec![f32::NAN; 10];
        crate::dense(&x, &w, &b, &mut got, act);
        crate::conv::dense_portable(&x, &w, &b, &mut twin, act);
        // The same operations in the same order: equal, not just close.
        assert_eq!(got, twin, "dense");
    }

    #[test]
    fn the_choice_follows_the_build_and_with_std_the_cpu() {
        let cpu = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        let build = cfg!(all(target_feature = "avx2", target_feature = "fma"));
        let want = build || (cfg!(feature = "std") && cpu);
        assert_eq!(super::avx2_fma(), want);
        let cpu = std::is_x86_feature_detected!("avx512f") && super::avx2_fma();
        let build = cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx2",
            target_feature = "fma"
        ));
        let off = std::env::var_os("KILN_RUNTIME_NO_AVX512").is_some();
        let want = build || (cfg!(feature = "std") && cpu && !off);
        assert_eq!(super::avx512(), want);
    }
}

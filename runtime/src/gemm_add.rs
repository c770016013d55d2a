//! The product added to what its output holds, `out += act(x . W + bias)`:
//! an inverted residual block's projection with the block's residual sum
//! fused into it (kiln-codegen emits [`gemm_add`] when the sum's output sits
//! on the residual). Blocks of the product, computed by this build's
//! microkernel (AVX2, NEON or portable) into a stack buffer, are added to
//! `out`: the kernels' tiles stay as they are (an add branch in their
//! stores cost 3.5% more NEON instructions and 1.7-2.2% more wasm fuel on
//! products with nothing to add), and the buffer is in L1 where the sum's
//! pass read the convolution's output back from the arena.

use crate::elementwise::Activation;
use crate::gemm::{GemmShape, PANEL, gemm_rows, kernel, packed_gemm_len};

/// [`crate::gemm`] whose result is added to what `out` holds:
/// `out[m][n] += act(x . W + bias)`, the residual connection of an inverted
/// residual block fused into its projection (kiln-codegen calls it when the
/// sum's output sits on the residual). Each value is `out + act(product)`
/// rounded once, as the two ops give.
///
/// # Panics
/// As [`crate::gemm`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_add(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    act: Activation,
) {
    let s = GemmShape {
        m,
        k,
        n,
        x_stride: k,
        out_stride: n,
        add: true,
    };
    gemm_rows(x, packed, out, &s, act)
}

/// Columns (whole panels) of one block.
const ADD_COLS: usize = 16 * PANEL;
/// Rows of a block are a multiple of this (of every kernel's 8-, 6- and
/// 4-row tiles), so only a product's last block has leftover rows: blocks
/// of 8 rows cost 1.3% more wasm fuel on a genome of the `bench` suite.
const ROWS: usize = 24;
/// Values of the stack buffer (24 KiB).
const ADD_BUF: usize = ROWS * ADD_COLS;

/// The product of `s` (whose `add` is ignored) added to `out`.
pub(crate) fn add_blocks(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    act: Activation,
) {
    blocks(x, packed, out, s, act, kernel)
}

/// A product's signature: [`kernel`] or, in tests, a portable twin.
type Product = fn(&[f32], &[f32], &mut [f32], &GemmShape, Activation);

/// Blocks of at most [`ADD_COLS`] columns (whole panels, so a block's
/// packed panels are those of its own columns) by as many rows ([`ROWS`] at
/// a time) as fill [`ADD_BUF`] values, each computed by `product` into a
/// stack buffer and added to `out`.
#[inline(always)]
fn blocks(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    act: Activation,
    product: Product,
) {
    let mut buf = [0.0f32; ADD_BUF];
    let mut c0 = 0;
    while c0 < s.n {
        let n = ADD_COLS.min(s.n - c0);
        // Panels before column c0 (a multiple of PANEL): (k + 1) * c0 values.
        let panels = &packed[packed_gemm_len(s.k, c0)..];
        let mut r0 = 0;
        while r0 < s.m {
            let m = (ADD_BUF / n / ROWS * ROWS).min(s.m - r0);
            let block = GemmShape {
                m,
                n,
                out_stride: n,
                add: false,
                ..*s
            };
            product(&x[r0 * s.x_stride..], panels, &mut buf, &block, act);
            for (r, v) in buf[..m * n].chunks_exact(n).enumerate() {
                let o = &mut out[(r0 + r) * s.out_stride + c0..][..n];
                o.iter_mut().zip(v).for_each(|(o, v)| *o += v);
            }
            r0 += m;
        }
        c0 += n;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::gemm::tests::{SHAPES, packed, values};
    use crate::gemm::{gemm, gemm_portable};

    /// `gemm_add` (this build's kernel) and the portable twin's blocks equal the
    /// product stored then added, exactly: the same values rounded the same
    /// way, for every activation (in registers or after), every kind of
    /// tile, blocks of rows and of columns (300 > `ADD_COLS`, 40 x 100 >
    /// `ADD_BUF`, 29 x 3 x 256: blocks of 24 rows and 5 left over),
    /// and strided rows whose gaps stay untouched.
    #[test]
    fn gemm_add_equals_the_product_then_the_sum() {
        let acts = [
            Activation::None,
            Activation::Relu,
            Activation::Clip {
                min: -0.5,
                max: 0.7,
            },
            Activation::HardSwish,
            Activation::Sigmoid,
        ];
        let shapes = SHAPES
            .iter()
            .chain(&[(3, 5, 300), (40, 3, 100), (2, 2, 530), (29, 3, 256)]);
        for (t, &(m, k, n)) in shapes.enumerate() {
            let x = values(m * k, t as u32);
            let p = packed(&values(k * n, 100 + t as u32), &values(n, 7), k, n);
            let res = values(m * n, 300 + t as u32);
            for act in acts {
                let mut want = std::vec![f32::NAN; m * n];
                gemm(&x, &p, &mut want, m, k, n, act);
                want.iter_mut().zip(&res).for_each(|(w, r)| *w += r);
                let mut got = res.clone();
                gemm_add(&x, &p, &mut got, m, k, n, act);
                assert_eq!(got, want, "{m}x{k}x{n} {act:?}");
                // The portable one, out rows n + 2 apart.
                let s = GemmShape {
                    m,
                    k,
                    n,
                    x_stride: k,
                    out_stride: n + 2,
                    add: true,
                };
                let mut got = std::vec![-3.0; m * (n + 2)];
                let mut plain = got.clone();
                for r in 0..m {
                    got[r * (n + 2)..][..n].copy_from_slice(&res[r * n..][..n]);
                }
                blocks(&x, &p, &mut got, &s, act, gemm_portable);
                gemm_portable(&x, &p, &mut plain, &GemmShape { add: false, ..s }, act);
                for r in 0..m {
                    for c in 0..n + 2 {
                        let g = got[r * (n + 2) + c];
                        if c < n {
                            assert_eq!(g, res[r * n + c] + plain[r * (n + 2) + c]);
                        } else {
                            assert_eq!(g, -3.0, "gap written");
                        }
                    }
                }
            }
        }
    }
}

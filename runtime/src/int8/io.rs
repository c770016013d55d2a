//! Disjoint views of a byte arena for int8 kernels (the f32 arena seen
//! through [`crate::f32_bytes_mut`]).

/// Splits `arena` into `K` read-only views and one writable view; regions
/// are `(offset, len)` in elements of `T` (bytes for the int8 arena). Reads
/// may overlap each other but not the write.
///
/// # Panics
/// If a region is out of bounds or a read overlaps the write (the planner
/// never produces either).
pub fn split_io<T, const K: usize>(
    arena: &mut [T],
    reads: [(usize, usize); K],
    write: (usize, usize),
) -> ([&[T]; K], &mut [T]) {
    let (head, rest) = arena.split_at_mut(write.0);
    let (out, tail) = rest.split_at_mut(write.1);
    let (head, tail): (&[T], &[T]) = (head, tail);
    let tail_start = write.0 + write.1;
    let views = core::array::from_fn(|i| {
        let (off, len) = reads[i];
        if off + len <= write.0 {
            &head[off..off + len]
        } else {
            assert!(off >= tail_start, "arena read overlaps the written tensor");
            &tail[off - tail_start..off - tail_start + len]
        }
    });
    (views, out)
}

/// `[h][w][c]` (NHWC storage) into `[c][h][w]` (logical NCHW order), for
/// any element type (an int8 Flatten of an image).
///
/// # Panics
/// If a slice is shorter than `h * w * c`.
pub fn hwc_to_chw<T: Copy>(x: &[T], y: &mut [T], h: usize, w: usize, c: usize) {
    for p in 0..h * w {
        for ch in 0..c {
            y[ch * h * w + p] = x[p * c + ch];
        }
    }
}

/// `[c][h][w]` into `[h][w][c]`, the inverse of [`hwc_to_chw`].
///
/// # Panics
/// If a slice is shorter than `h * w * c`.
pub fn chw_to_hwc<T: Copy>(x: &[T], y: &mut [T], h: usize, w: usize, c: usize) {
    for p in 0..h * w {
        for ch in 0..c {
            y[p * c + ch] = x[ch * h * w + p];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_moves_invert_each_other() {
        let x: [u8; 12] = core::array::from_fn(|i| i as u8);
        let (mut y, mut z) = ([0u8; 12], [0u8; 12]);
        hwc_to_chw(&x, &mut y, 2, 2, 3);
        assert_eq!(y[..4], [0, 3, 6, 9]);
        chw_to_hwc(&y, &mut z, 2, 2, 3);
        assert_eq!(z, x);
    }

    #[test]
    fn byte_views_on_both_sides_of_the_write() {
        let mut a: [u8; 10] = core::array::from_fn(|i| i as u8);
        let ([x, z], y) = split_io(&mut a, [(0, 2), (8, 2)], (3, 4));
        assert_eq!((x, z), (&[0u8, 1][..], &[8u8, 9][..]));
        y.fill(0xff);
        assert_eq!(a[3..7], [0xff; 4]);
    }

    #[test]
    #[should_panic(expected = "overlaps")]
    fn overlap_is_refused() {
        let mut a = [0u8; 10];
        let _ = split_io(&mut a, [(2, 4)], (4, 4));
    }
}

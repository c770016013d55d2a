//! Order statistics of a program's timing samples, small in code: a bench
//! sorts at most a few thousand times once, so a heapsort (a few hundred
//! bytes of code, O(n log n) always) beats core's pattern-defeating sort,
//! which is several KiB.

/// Sorts `v` ascending (heapsort, in place, no allocation).
pub fn sort_u64(v: &mut [u64]) {
    for start in (0..v.len() / 2).rev() {
        sift_down(v, start, v.len());
    }
    for end in (1..v.len()).rev() {
        v.swap(0, end);
        sift_down(v, 0, end);
    }
}

/// Restores the max-heap property of `v[..end]` below `root`.
fn sift_down(v: &mut [u64], mut root: usize, end: usize) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && v[child + 1] > v[child] {
            child += 1;
        }
        if v[root] >= v[child] {
            return;
        }
        v.swap(root, child);
        root = child;
    }
}

/// The nearest-rank `num/den` quantile of ascending `sorted`: the smallest
/// sample with at least that share of the samples at or below it (p50 is
/// `1, 2`, p95 `19, 20`); exact integer arithmetic. `None` if `sorted` is
/// empty or `den` is 0.
pub fn nearest_rank(sorted: &[u64], num: usize, den: usize) -> Option<u64> {
    let n = sorted.len();
    if den == 0 {
        return None;
    }
    let rank = num.checked_mul(n)?.div_ceil(den);
    sorted.get(rank.clamp(1, n.max(1)) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heapsort_sorts_like_core() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in [0usize, 1, 2, 3, 7, 64, 257] {
            let mut v = [0u64; 257];
            for x in v[..len].iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *x = state % 50;
            }
            let mut want = v;
            want[..len].sort_unstable();
            sort_u64(&mut v[..len]);
            assert_eq!(v[..len], want[..len], "length {len}");
        }
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: [u64; 20] = core::array::from_fn(|i| i as u64 + 1);
        assert_eq!(nearest_rank(&v, 1, 2), Some(10));
        assert_eq!(nearest_rank(&v, 19, 20), Some(19));
        assert_eq!(nearest_rank(&v[..1], 19, 20), Some(1));
        assert_eq!(nearest_rank(&v[..3], 1, 2), Some(2));
        assert_eq!(nearest_rank(&v, 0, 2), Some(1));
        assert_eq!(nearest_rank(&[], 1, 2), None);
        assert_eq!(nearest_rank(&v, 1, 0), None);
    }
}

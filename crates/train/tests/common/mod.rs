//! What the training-operation tests share: seeded random tensors, values out of a tensor, and
//! the closeness kiln's operations must keep to burn's.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tensor's f32 values, row-major.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 tensor")
}

/// Uniform values in `[-scale, scale)` from a seeded stream (burn's global RNG is shared by
/// the tests running beside each other).
pub fn random(shape: [usize; 4], scale: f32, seed: u64, dev: &Device) -> Tensor<4> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
    Tensor::from_data(TensorData::new(v, shape), dev)
}

/// `a` (kiln's) equals `b` (burn's) within `1e-4` of `b`'s largest magnitude (at least 1).
pub fn assert_close(what: &str, case: impl std::fmt::Debug, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what} {case:?}: lengths");
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * scale,
            "{what} {case:?} [{i}]: kiln {x} vs burn {y}"
        );
    }
}

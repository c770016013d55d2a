//! ONNX LRN (local response normalisation across channels, AlexNet and
//! GoogLeNet era models) over NHWC images, where each pixel's channels are
//! contiguous.

/// `y = x / (bias + alpha / size * sum of x^2 over the nearby channels)^beta`
/// per pixel of `c` channels: channel `ch` sums channels
/// `ch - floor((size - 1) / 2) ..= ch + ceil((size - 1) / 2)` that exist
/// (ONNX's definition). `x` and `y` hold whole pixels; a trailing partial
/// pixel is left unwritten. The power is kiln's own (see `unary.rs`).
pub fn lrn(x: &[f32], y: &mut [f32], c: usize, size: usize, alpha: f32, beta: f32, bias: f32) {
    if c == 0 {
        return;
    }
    let (below, above) = ((size.max(1) - 1) / 2, size.max(1) / 2);
    let k = alpha / size.max(1) as f32;
    for (xp, yp) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        for (ch, out) in yp.iter_mut().enumerate() {
            let lo = ch.saturating_sub(below);
            let hi = (ch + above).min(c - 1);
            let sq: f32 = xp[lo..=hi].iter().map(|v| v * v).sum();
            *out = xp[ch] / crate::unary::pow(bias + k * sq, beta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_by_the_window_of_channels() {
        // one pixel, 4 channels, size 3: windows {0,1}, {0,1,2}, {1,2,3}, {2,3}
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mut y = [0.0; 4];
        lrn(&x, &mut y, 4, 3, 0.3, 1.0, 2.0);
        let sums = [5.0f32, 14.0, 29.0, 25.0];
        for i in 0..4 {
            let want = x[i] / (2.0 + 0.1 * sums[i]);
            assert!((y[i] - want).abs() < 1e-6, "y[{i}] = {}, want {want}", y[i]);
        }
    }
}

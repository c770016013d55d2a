//! Batch norm in a supernet. Running statistics of a shared layer mean nothing (each
//! sub-network sees other channels and other inputs), so training always normalises with
//! the batch's statistics, and a sub-network is judged with statistics recalibrated for
//! it alone (Once-for-All, BigNAS): a few training batches through that sub-network,
//! their per-channel mean and variance accumulated per layer.

use std::collections::HashMap;

use burn::tensor::{Tensor, TensorData};

use crate::SupernetError;

/// Batch-norm epsilon, as kiln-train and the ONNX export use.
pub const BN_EPSILON: f64 = kiln_train::BN_EPSILON;

/// One layer's accumulated statistics over the pixels it saw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayerStats {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    count: f64,
}

impl LayerStats {
    /// Per-channel mean.
    pub fn mean(&self) -> Vec<f32> {
        self.sum
            .iter()
            .map(|s| (s / self.count.max(1.0)) as f32)
            .collect()
    }

    /// Per-channel (biased) variance.
    pub fn var(&self) -> Vec<f32> {
        self.sum
            .iter()
            .zip(&self.sum_sq)
            .map(|(s, q)| {
                let n = self.count.max(1.0);
                let m = s / n;
                (q / n - m * m).max(0.0) as f32
            })
            .collect()
    }
}

/// How batch norm normalises during a forward pass.
#[derive(Debug, Clone, PartialEq)]
pub enum BnMode {
    /// With the batch's own statistics (training).
    Batch,
    /// With the batch's statistics, accumulating them per layer (recalibration).
    Collect,
    /// With recalibrated statistics (judging, exporting).
    Fixed,
}

/// The batch-norm state of one forward pass over one sub-network: the mode and the
/// statistics per layer name (`stem`, `s0.b1.dw`, ..., as the architecture names layers).
#[derive(Debug, Clone, PartialEq)]
pub struct BnContext {
    /// The mode.
    pub mode: BnMode,
    /// Statistics by layer name.
    pub stats: HashMap<String, LayerStats>,
}

impl BnContext {
    /// Batch statistics, nothing kept.
    pub fn batch() -> BnContext {
        BnContext {
            mode: BnMode::Batch,
            stats: HashMap::new(),
        }
    }

    /// Batch statistics, accumulated.
    pub fn collect() -> BnContext {
        BnContext {
            mode: BnMode::Collect,
            stats: HashMap::new(),
        }
    }

    /// Adds one batch's per-channel `mean` and biased `var` over `pixels` values per
    /// channel to layer `name`'s statistics (restarted when the width changed).
    pub(crate) fn accumulate(&mut self, name: &str, mean: &[f64], var: &[f64], pixels: f64) {
        let c = mean.len();
        let s = self.stats.entry(name.to_string()).or_default();
        if s.sum.len() != c {
            *s = LayerStats {
                sum: vec![0.0; c],
                sum_sq: vec![0.0; c],
                count: 0.0,
            };
        }
        for (i, (m, v)) in mean.iter().zip(var).enumerate() {
            s.sum[i] += m * pixels;
            s.sum_sq[i] += (v + m * m) * pixels;
        }
        s.count += pixels;
    }

    /// Layer `name`'s recalibrated statistics for `c` channels.
    ///
    /// Errors: [`SupernetError::Stats`] when the layer was never recalibrated or has
    /// another width.
    pub(crate) fn fixed(&self, name: &str, c: usize) -> Result<&LayerStats, SupernetError> {
        self.stats
            .get(name)
            .filter(|s| s.sum.len() == c)
            .ok_or_else(|| SupernetError::Stats(name.to_string()))
    }

    /// Normalises NCHW `y` (`[n, c, h, w]`) of layer `name` and applies `gamma`, `beta`
    /// (`[c]` each).
    ///
    /// Errors: [`SupernetError::Stats`] in `Fixed` mode when the layer was never
    /// recalibrated or has another width; [`SupernetError::Tensor`] when burn cannot hand
    /// the statistics back.
    pub fn apply(
        &mut self,
        name: &str,
        y: Tensor<4>,
        gamma: Tensor<1>,
        beta: Tensor<1>,
    ) -> Result<Tensor<4>, SupernetError> {
        let [n, c, h, w] = y.dims();
        if self.mode == BnMode::Fixed {
            let s = self.fixed(name, c)?;
            let device = y.device();
            let t = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, c, 1, 1]), &device);
            let (mean, var) = (t(s.mean()), t(s.var()));
            let scale = gamma.reshape([1, c, 1, 1]) / (var + BN_EPSILON).sqrt();
            return Ok((y - mean) * scale + beta.reshape([1, c, 1, 1]));
        }
        // the batch's statistics, differentiated through (kiln-train's fused operation)
        let out = kiln_train::batch_norm_train(y, gamma, beta, BN_EPSILON);
        if self.mode == BnMode::Collect {
            let m = kiln_train::values(out.mean, "batch mean")
                .map_err(|e| SupernetError::Tensor(e.to_string()))?;
            let v = kiln_train::values(out.variance, "batch variance")
                .map_err(|e| SupernetError::Tensor(e.to_string()))?;
            let wide = |x: Vec<f32>| x.into_iter().map(f64::from).collect::<Vec<_>>();
            self.accumulate(name, &wide(m), &wide(v), (n * h * w) as f64);
        }
        Ok(out.output)
    }
}

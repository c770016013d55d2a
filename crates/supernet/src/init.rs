//! Where a supernet's weights come from: a seeded initialisation, or a checkpoint.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::SupernetError;

/// Gives the values of each parameter by name and shape.
pub(crate) trait Init {
    /// `shape.iter().product()` values, row-major.
    fn values(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, SupernetError>;
}

/// Seeded: convs He normal with fan-out (`sqrt(2 / (out x k x k))`, as kiln-train and
/// torchvision initialise MobileNets), classifier N(0, 0.01^2), gammas 1, betas and biases
/// 0.
pub(crate) struct Seeded(pub ChaCha8Rng);

impl Seeded {
    pub(crate) fn new(seed: u64) -> Seeded {
        Seeded(ChaCha8Rng::seed_from_u64(seed))
    }

    fn normal(&mut self, n: usize, std: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let u1: f32 = self.0.random_range(f32::EPSILON..1.0);
                let u2: f32 = self.0.random();
                std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect()
    }
}

impl Init for Seeded {
    fn values(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, SupernetError> {
        let n: usize = shape.iter().product();
        Ok(if name.ends_with(".gamma") {
            vec![1.0; n]
        } else if shape.len() == 1 {
            vec![0.0; n]
        } else if name == "classifier.weight" {
            self.normal(n, 0.01)
        } else {
            let fan_out = (shape[0] * shape[2] * shape[3]) as f32;
            self.normal(n, (2.0 / fan_out).sqrt())
        })
    }
}

/// From a checkpoint's tensors, each checked against the shape the space needs.
pub(crate) struct FromTensors<'a> {
    pub(crate) tensors: &'a BTreeMap<String, kiln_onnx::Tensor>,
    pub(crate) origin: &'a str,
}

impl Init for FromTensors<'_> {
    fn values(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, SupernetError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| SupernetError::Checkpoint {
                path: self.origin.into(),
                message: format!("tensor `{name}` is missing"),
            })?;
        if t.shape != shape {
            return Err(SupernetError::Checkpoint {
                path: self.origin.into(),
                message: format!(
                    "tensor `{name}` has shape {:?}, the space needs {shape:?}: the \
                     checkpoint was trained for another space or input",
                    t.shape
                ),
            });
        }
        Ok(t.data.clone())
    }
}

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
/// torchvision initialise MobileNets), classifier N(0, 0.01^2), gammas (`.gamma`,
/// `.gamma_hswish`) 1, betas and biases 0.
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
        let gamma = name.ends_with(".gamma") || name.ends_with(".gamma_hswish");
        Ok(if gamma {
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

/// From a supernet of a larger space (a few-shot split's parent): each tensor the leading
/// slice of the parent's of the same name, as the parent serves a sub-network (the first
/// channels; kernels keep their size, the parts of a split sharing every kernel choice).
pub(crate) struct Sliced<'a>(pub(crate) FromTensors<'a>);

impl Init for Sliced<'_> {
    fn values(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, SupernetError> {
        let t = self.0.tensors.get(name);
        let Some(t) = t.filter(|t| t.shape.len() == shape.len()) else {
            // the missing tensor or the other rank is named by the plain check
            return self.0.values(name, shape);
        };
        if t.shape.iter().zip(shape).any(|(have, want)| have < want) {
            return Err(SupernetError::Checkpoint {
                path: self.0.origin.into(),
                message: format!(
                    "tensor `{name}` has shape {:?}, smaller than the part's {shape:?}",
                    t.shape
                ),
            });
        }
        Ok(leading(&t.data, &t.shape, shape))
    }
}

/// The leading `want` block of a row-major tensor of shape `have` (`want[i] <= have[i]`).
fn leading(data: &[f32], have: &[usize], want: &[usize]) -> Vec<f32> {
    match want {
        [] => data.to_vec(),
        [n] => data[..*n].to_vec(),
        [n, rest @ ..] => {
            let stride: usize = have[1..].iter().product();
            (0..*n)
                .flat_map(|r| leading(&data[r * stride..(r + 1) * stride], &have[1..], rest))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_takes_the_leading_channels_of_every_dimension() {
        // 2 x 3 x 2, values 0..12
        let data: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(leading(&data, &[2, 3, 2], &[1, 2, 1]), vec![0.0, 2.0]);
        assert_eq!(
            leading(&data, &[2, 3, 2], &[2, 1, 2]),
            vec![0.0, 1.0, 6.0, 7.0]
        );
        assert_eq!(leading(&data, &[12], &[3]), vec![0.0, 1.0, 2.0]);
        let tensors = BTreeMap::from([(
            "head.weight".to_string(),
            kiln_onnx::Tensor {
                shape: vec![2, 3, 2],
                data,
            },
        )]);
        let mut init = Sliced(FromTensors {
            tensors: &tensors,
            origin: "parent",
        });
        assert_eq!(init.values("head.weight", &[2, 3, 2]).unwrap().len(), 12);
        let e = init
            .values("head.weight", &[3, 3, 2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("head.weight") && e.contains("smaller"), "{e}");
        let e = init.values("stem.weight", &[1]).unwrap_err().to_string();
        assert!(e.contains("stem.weight") && e.contains("missing"), "{e}");
    }
}

//! Named f32 weight tensors, checked against an architecture and stored as
//! safetensors files.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_space::Architecture;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::OnnxError;

/// One weight tensor: shape (ONNX order) and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Weights by name, as [`Architecture::parameters`] names them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    pub tensors: BTreeMap<String, Tensor>,
}

impl Weights {
    /// Adds or replaces a tensor; fails when the shape does not hold the data.
    pub fn insert(
        &mut self,
        name: &str,
        shape: Vec<usize>,
        data: Vec<f32>,
    ) -> Result<(), OnnxError> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(OnnxError::Weight {
                name: name.into(),
                message: format!(
                    "shape {shape:?} needs {} values, got {}",
                    shape.iter().product::<usize>(),
                    data.len()
                ),
            });
        }
        self.tensors.insert(name.into(), Tensor { shape, data });
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Checks that every parameter of `arch` is present with its shape and
    /// finite values. Extra tensors are an error too: they mean the weights
    /// belong to another architecture.
    pub fn check(&self, arch: &Architecture) -> Result<(), OnnxError> {
        let params = arch.parameters();
        for p in &params {
            let t = self.tensors.get(&p.name).ok_or_else(|| OnnxError::Weight {
                name: p.name.clone(),
                message: "missing".into(),
            })?;
            if t.shape != p.shape {
                return Err(OnnxError::Weight {
                    name: p.name.clone(),
                    message: format!(
                        "has shape {:?}, the architecture needs {:?}",
                        t.shape, p.shape
                    ),
                });
            }
            if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
                return Err(OnnxError::Weight {
                    name: p.name.clone(),
                    message: format!("value {i} is {}", t.data[i]),
                });
            }
        }
        if let Some(extra) = self
            .tensors
            .keys()
            .find(|k| !params.iter().any(|p| &p.name == *k))
        {
            return Err(OnnxError::Weight {
                name: extra.clone(),
                message: "is not a parameter of this architecture".into(),
            });
        }
        Ok(())
    }

    /// Seeded random weights that keep activations in range: He-normal conv
    /// and linear weights; batch norm with statistics near (0, 1) and gammas
    /// near 1, but smaller on projections so residual sums do not grow with
    /// depth. Nothing is exactly the identity, so BN folding is exercised.
    pub fn random(arch: &Architecture, seed: u64) -> Weights {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut w = Weights::default();
        for p in arch.parameters() {
            let n: usize = p.shape.iter().product();
            let data: Vec<f32> = if p.name.ends_with(".bn.weight") {
                let (lo, hi) = if p.name.contains(".project.") {
                    (0.2, 0.5)
                } else {
                    (0.6, 1.2)
                };
                (0..n).map(|_| rng.random_range(lo..hi)).collect()
            } else if p.name.ends_with(".bn.bias") || p.name.ends_with(".bn.running_mean") {
                (0..n).map(|_| 0.1 * normal(&mut rng)).collect()
            } else if p.name.ends_with(".bn.running_var") {
                (0..n).map(|_| rng.random_range(0.5..1.5)).collect()
            } else if p.name.ends_with(".bias") {
                (0..n).map(|_| 0.05 * normal(&mut rng)).collect()
            } else {
                // He init: fan_in is everything but the output dimension.
                let fan_in: usize = p.shape[1..].iter().product();
                let std = (2.0 / fan_in.max(1) as f32).sqrt();
                (0..n).map(|_| std * normal(&mut rng)).collect()
            };
            w.tensors.insert(
                p.name,
                Tensor {
                    shape: p.shape,
                    data,
                },
            );
        }
        w
    }

    /// Reads a safetensors file (f32 tensors only).
    pub fn load(path: &Path) -> Result<Weights, OnnxError> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
            path: origin.clone(),
            source,
        })?;
        Weights::from_safetensors(&bytes, &origin)
    }

    /// Parses safetensors bytes; `origin` names them in errors.
    pub fn from_safetensors(bytes: &[u8], origin: &str) -> Result<Weights, OnnxError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| OnnxError::Safetensors {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        let mut w = Weights::default();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(OnnxError::Safetensors {
                    origin: origin.into(),
                    message: format!("tensor `{name}` is {:?}, kiln reads F32", view.dtype()),
                });
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            w.tensors.insert(
                name,
                Tensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(w)
    }

    /// The weights as safetensors bytes.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, OnnxError> {
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    t.shape.clone(),
                )
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(k, b, s)| {
                TensorView::new(Dtype::F32, s.clone(), b)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| OnnxError::Weight {
                        name: k.clone(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::serialize(views, None).map_err(|e| OnnxError::Safetensors {
            origin: "weights".into(),
            message: e.to_string(),
        })
    }
}

/// A standard normal draw (Box-Muller), to avoid a dependency for one function.
fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_space::{Genome, InputSpec, Space};

    fn arch() -> Architecture {
        let space =
            Space::from_toml(include_str!("../../../spaces/mobile.toml"), "mobile.toml").unwrap();
        let genome = Genome::sample(&space, &mut ChaCha8Rng::seed_from_u64(9));
        Architecture::new(&space, &genome, InputSpec::MNIST).unwrap()
    }

    #[test]
    fn random_weights_fit_and_are_seeded() {
        let a = arch();
        let w = Weights::random(&a, 3);
        w.check(&a).unwrap();
        assert_eq!(w, Weights::random(&a, 3));
        assert_ne!(w, Weights::random(&a, 4));
    }

    #[test]
    fn safetensors_round_trip() {
        let a = arch();
        let w = Weights::random(&a, 3);
        let back =
            Weights::from_safetensors(&w.to_safetensors().unwrap(), "w.safetensors").unwrap();
        assert_eq!(back, w);
    }

    #[test]
    fn wrong_weights_are_named() {
        let a = arch();
        let mut w = Weights::random(&a, 3);
        w.tensors.remove("stem.weight");
        assert!(w.check(&a).unwrap_err().to_string().contains("stem.weight"));

        let mut w = Weights::random(&a, 3);
        w.tensors.get_mut("classifier.bias").unwrap().shape = vec![5, 2];
        let err = w.check(&a).unwrap_err().to_string();
        assert!(
            err.contains("classifier.bias") && err.contains("[5, 2]"),
            "{err}"
        );

        let mut w = Weights::random(&a, 3);
        w.tensors.get_mut("stem.bn.running_var").unwrap().data[0] = f32::NAN;
        assert!(
            w.check(&a)
                .unwrap_err()
                .to_string()
                .contains("stem.bn.running_var")
        );

        let err = Weights::from_safetensors(b"garbage", "w.safetensors")
            .unwrap_err()
            .to_string();
        assert!(err.contains("w.safetensors"), "{err}");
    }
}

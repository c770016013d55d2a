//! Named f32 weight tensors, checked against an architecture and stored as
//! safetensors files.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_space::{Architecture, ParamSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::OnnxError;

/// One weight tensor: shape (ONNX order) and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions in ONNX order: conv weights OIHW, linear weights `[out, in]`, else `[C]`.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

/// Weights by name, as [`Architecture::parameters`] names them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    /// The tensors by name (sorted, so files and models come out in a stable order).
    pub tensors: BTreeMap<String, Tensor>,
}

impl Weights {
    /// Adds or replaces a tensor.
    ///
    /// Errors: [`OnnxError::Weight`] when `data.len()` is not the product of `shape`.
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

    /// The tensor called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Checks that every parameter of `arch` is present with its shape and
    /// finite values. Extra tensors are an error too: they mean the weights
    /// belong to another architecture.
    ///
    /// Errors: [`OnnxError::Weight`] naming the first tensor that is missing, misshapen,
    /// not finite or extra.
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

    /// Seeded random weights that keep activations in range; the same seed gives the same
    /// weights. For tests and untrained baselines.
    ///
    /// - conv and linear weights: He normal (He et al., 2015), std `sqrt(2 / fan_in)` with
    ///   `fan_in` the product of every dimension but the first;
    /// - other biases (squeeze-excite, classifier): N(0, 0.05^2);
    /// - batch norm: beta and running mean N(0, 0.1^2), running variance uniform in
    ///   [0.5, 1.5), gamma uniform in [0.6, 1.2), but [0.2, 0.5) on projections so residual
    ///   sums do not grow with depth.
    ///
    /// Nothing is exactly the identity, so BN folding is exercised.
    pub fn random(arch: &Architecture, seed: u64) -> Weights {
        Weights::random_for(arch.parameters(), seed)
    }

    /// Seeded random weights for any list of parameters (one layer's, for instance), drawn
    /// as [`Weights::random`] draws them.
    pub fn random_for(params: Vec<ParamSpec>, seed: u64) -> Weights {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut w = Weights::default();
        for p in params {
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
    ///
    /// Errors: [`OnnxError::Io`] when the file cannot be read, otherwise as for
    /// [`Weights::from_safetensors`].
    pub fn load(path: &Path) -> Result<Weights, OnnxError> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
            path: origin.clone(),
            source,
        })?;
        Weights::from_safetensors(&bytes, &origin)
    }

    /// Parses safetensors bytes; `origin` names them in errors. Shapes are not checked
    /// against an architecture here (see [`Weights::check`]).
    ///
    /// Errors: [`OnnxError::Safetensors`] for bytes that are not safetensors or a tensor
    /// that is not F32.
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

    /// The weights as safetensors bytes (F32, little-endian, no metadata).
    ///
    /// Errors: [`OnnxError::Weight`] for a tensor whose shape does not hold its data,
    /// [`OnnxError::Safetensors`] if serialisation fails.
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

//! A network that starts from given weights (a sub-network sliced out of a supernet, or a
//! checkpoint) instead of a seeded initialisation: the inverse of [`crate::named_weights`].

use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor, TensorData};
use kiln_onnx::Weights;
use kiln_space::{Architecture, ConvBn};

use crate::model::ConvBnLayer;
use crate::{Network, TrainError};

impl Network {
    /// The network of `arch` with every weight taken from `weights`, named and shaped as
    /// `arch.parameters()` lists them (conv OIHW, classifier `[out, in]`, batch norm
    /// `weight`, `bias`, `running_mean`, `running_var` of `[C]`), on `device`.
    ///
    /// Errors: [`TrainError::Export`] naming the first tensor missing, misshapen or not
    /// finite, or an extra tensor ([`Weights::check`]).
    pub fn from_weights(
        arch: &Architecture,
        weights: &Weights,
        device: &Device,
    ) -> Result<Network, TrainError> {
        weights
            .check(arch)
            .map_err(|e| TrainError::Export(format!("starting weights: {e}")))?;
        let mut net = Network::new(arch, 0, device);
        let w = Take { weights, device };
        w.conv_bn(&mut net.stem, &arch.stem)?;
        for (spec, layer) in arch.blocks.iter().zip(&mut net.blocks) {
            if let (Some(s), Some(l)) = (&spec.expand, &mut layer.expand) {
                w.conv_bn(l, s)?;
            }
            w.conv_bn(&mut layer.depthwise, &spec.depthwise)?;
            if let (Some(s), Some(l)) = (&spec.se, &mut layer.se) {
                w.conv(&mut l.reduce, &format!("{}.reduce", s.name))?;
                w.conv(&mut l.expand, &format!("{}.expand", s.name))?;
            }
            w.conv_bn(&mut layer.project, &spec.project)?;
        }
        if let (Some(s), Some(l)) = (&arch.head, &mut net.head) {
            w.conv_bn(l, s)?;
        }
        let c = &arch.classifier;
        // ONNX keeps the classifier [out, in]; burn's Linear keeps [in, out].
        let weight = w.tensor::<2>(&format!("{}.weight", c.name))?;
        net.classifier.weight = Param::from_tensor(weight.transpose());
        net.classifier.bias = Some(Param::from_tensor(
            w.tensor::<1>(&format!("{}.bias", c.name))?,
        ));
        Ok(net)
    }
}

struct Take<'a> {
    weights: &'a Weights,
    device: &'a Device,
}

impl Take<'_> {
    fn tensor<const D: usize>(&self, name: &str) -> Result<Tensor<D>, TrainError> {
        let t = self
            .weights
            .get(name)
            .filter(|t| t.shape.len() == D)
            .ok_or_else(|| TrainError::Export(format!("starting weights: no {D}-d `{name}`")))?;
        Ok(Tensor::<D>::from_data(
            TensorData::new(t.data.clone(), t.shape.clone()),
            self.device,
        ))
    }

    fn conv(&self, conv: &mut Conv2d, name: &str) -> Result<(), TrainError> {
        conv.weight = Param::from_tensor(self.tensor::<4>(&format!("{name}.weight"))?);
        if conv.bias.is_some() {
            conv.bias = Some(Param::from_tensor(
                self.tensor::<1>(&format!("{name}.bias"))?,
            ));
        }
        Ok(())
    }

    fn conv_bn(&self, layer: &mut ConvBnLayer, spec: &ConvBn) -> Result<(), TrainError> {
        self.conv(&mut layer.conv, &spec.name)?;
        self.bn(&mut layer.bn, &format!("{}.bn", spec.name))
    }

    fn bn(&self, bn: &mut BatchNorm, name: &str) -> Result<(), TrainError> {
        bn.gamma = Param::from_tensor(self.tensor::<1>(&format!("{name}.weight"))?);
        bn.beta = Param::from_tensor(self.tensor::<1>(&format!("{name}.bias"))?);
        bn.running_mean = RunningState::new(self.tensor::<1>(&format!("{name}.running_mean"))?);
        bn.running_var = RunningState::new(self.tensor::<1>(&format!("{name}.running_var"))?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use kiln_space::{Genome, InputSpec, Space};
    use rand::SeedableRng;

    use super::*;
    use crate::named_weights;

    #[test]
    fn weights_read_back_are_the_weights_given() {
        let space = Space::from_toml(
            include_str!("../../../tests/fixtures/tiny-space.toml"),
            "tiny",
        )
        .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let input = InputSpec {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        };
        let device = crate::device();
        for _ in 0..4 {
            let genome = Genome::sample(&space, &mut rng);
            let arch = Architecture::new(&space, &genome, input).unwrap();
            let given = Weights::random(&arch, 7);
            let net = Network::from_weights(&arch, &given, &device).unwrap();
            let back = named_weights(&arch, &net).unwrap();
            assert_eq!(back.len(), given.tensors.len());
            for (name, (shape, values)) in back {
                let t = given.get(&name).unwrap();
                assert_eq!((&t.shape, &t.data), (&shape, &values), "{name}");
            }
        }
        let arch = Architecture::new(&space, &Genome::sample(&space, &mut rng), input).unwrap();
        let mut short = Weights::random(&arch, 1);
        let first = short.tensors.keys().next().unwrap().clone();
        short.tensors.remove(&first);
        let err = Network::from_weights(&arch, &short, &device).unwrap_err();
        assert!(err.to_string().contains(&first), "{err}");
    }
}

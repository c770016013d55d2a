//! Trained weights under the names the ONNX exporter expects
//! (`kiln_space::Architecture::parameters`).

use std::collections::BTreeMap;

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use kiln_space::{Architecture, ConvBn};

use crate::model::ConvBnLayer;
use crate::train::values;
use crate::{Network, TrainError};

/// name -> (shape in ONNX order, row-major values): conv weights OIHW, the classifier weight
/// `[out, in]`, biases and batch-norm tensors `[C]`.
pub type NamedWeights = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Every weight of `network` (built for `arch`), BN running statistics included, named and
/// shaped as `arch.parameters()` lists them. Checks that the two agree.
///
/// Errors: [`TrainError::Export`] when the network has other blocks, layers or shapes than
/// the architecture; [`TrainError::Tensor`] when burn cannot hand a tensor back.
pub fn named_weights(arch: &Architecture, network: &Network) -> Result<NamedWeights, TrainError> {
    let mut out = NamedWeights::new();
    conv_bn(&mut out, &arch.stem, &network.stem)?;
    if arch.blocks.len() != network.blocks.len() {
        return Err(mismatch(format!(
            "{} blocks in the architecture, {} in the network",
            arch.blocks.len(),
            network.blocks.len()
        )));
    }
    for (spec, layer) in arch.blocks.iter().zip(&network.blocks) {
        match (&spec.expand, &layer.expand) {
            (Some(s), Some(l)) => conv_bn(&mut out, s, l)?,
            (None, None) => {}
            _ => {
                return Err(mismatch(format!(
                    "{}: expand conv present in only one of architecture and network",
                    spec.name
                )));
            }
        }
        conv_bn(&mut out, &spec.depthwise, &layer.depthwise)?;
        match (&spec.se, &layer.se) {
            (Some(s), Some(l)) => {
                conv(&mut out, &format!("{}.reduce", s.name), &l.reduce)?;
                conv(&mut out, &format!("{}.expand", s.name), &l.expand)?;
            }
            (None, None) => {}
            _ => {
                return Err(mismatch(format!(
                    "{}: squeeze-excite present in only one of architecture and network",
                    spec.name
                )));
            }
        }
        conv_bn(&mut out, &spec.project, &layer.project)?;
    }
    match (&arch.head, &network.head) {
        (Some(s), Some(l)) => conv_bn(&mut out, s, l)?,
        (None, None) => {}
        _ => {
            return Err(mismatch(
                "head conv present in only one of architecture and network".into(),
            ));
        }
    }
    let c = &arch.classifier;
    // burn keeps the linear weight [in, out]; ONNX Gemm with transB=1 wants [out, in].
    let w = values(
        network.classifier.weight.val().transpose(),
        "classifier.weight",
    )?;
    out.insert(
        format!("{}.weight", c.name),
        (vec![c.out_features, c.in_features], w),
    );
    let bias = match &network.classifier.bias {
        Some(b) => values(b.val(), "classifier.bias")?,
        None => vec![0.0; c.out_features],
    };
    out.insert(format!("{}.bias", c.name), (vec![c.out_features], bias));

    for p in arch.parameters() {
        match out.get(&p.name) {
            Some((shape, v))
                if *shape == p.shape && v.len() == p.shape.iter().product::<usize>() => {}
            Some((shape, _)) => {
                return Err(mismatch(format!(
                    "{}: network has shape {shape:?}, architecture {:?}",
                    p.name, p.shape
                )));
            }
            None => return Err(mismatch(format!("{}: not in the network", p.name))),
        }
    }
    if out.len() != arch.parameters().len() {
        return Err(mismatch(format!(
            "the network has {} weight tensors, the architecture lists {}",
            out.len(),
            arch.parameters().len()
        )));
    }
    Ok(out)
}

fn mismatch(message: String) -> TrainError {
    TrainError::Export(format!("network and architecture disagree: {message}"))
}

fn conv_bn(out: &mut NamedWeights, spec: &ConvBn, layer: &ConvBnLayer) -> Result<(), TrainError> {
    conv(out, &spec.name, &layer.conv)?;
    bn(out, &format!("{}.bn", spec.name), &layer.bn)
}

fn conv(out: &mut NamedWeights, name: &str, conv: &Conv2d) -> Result<(), TrainError> {
    let w = conv.weight.val();
    let shape = w.dims().to_vec();
    out.insert(format!("{name}.weight"), (shape, values(w, name)?));
    if let Some(b) = &conv.bias {
        let b = b.val();
        let shape = b.dims().to_vec();
        out.insert(format!("{name}.bias"), (shape, values(b, name)?));
    }
    Ok(())
}

fn bn(out: &mut NamedWeights, name: &str, bn: &BatchNorm) -> Result<(), TrainError> {
    let c = bn.gamma.val().dims()[0];
    let tensors = [
        ("weight", bn.gamma.val()),
        ("bias", bn.beta.val()),
        ("running_mean", bn.running_mean.value()),
        ("running_var", bn.running_var.value()),
    ];
    for (stat, t) in tensors {
        let key = format!("{name}.{stat}");
        let v = values(t, &key)?;
        out.insert(key, (vec![c], v));
    }
    Ok(())
}

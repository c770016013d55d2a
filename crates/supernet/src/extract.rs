//! A sub-network's weights sliced out of the supernet, named as
//! `kiln_space::Architecture::parameters` names them, and its ONNX model.

use burn::tensor::Tensor;
use kiln_data::Dataset;
use kiln_onnx::{ExportOptions, Weights, metadata};
use kiln_space::{ConvBn, Genome};

use crate::bn::BnContext;
use crate::net::{SuperConv, conv_weight};
use crate::{SuperNet, SupernetError};

fn vals<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, SupernetError> {
    kiln_train::values(t, "weight").map_err(|e| SupernetError::Tensor(e.to_string()))
}

fn put(
    w: &mut Weights,
    name: String,
    shape: Vec<usize>,
    data: Vec<f32>,
) -> Result<(), SupernetError> {
    w.insert(&name, shape, data)?;
    Ok(())
}

fn conv(
    w: &mut Weights,
    sc: &SuperConv,
    spec: &ConvBn,
    bn: &BnContext,
) -> Result<(), SupernetError> {
    let n = &spec.name;
    let c = spec.out_channels;
    let [gamma, beta] = sc.affine(spec.activation, c);
    put(
        w,
        format!("{n}.weight"),
        spec.weight_shape(),
        vals(conv_weight(sc, spec))?,
    )?;
    put(w, format!("{n}.bn.weight"), vec![c], vals(gamma)?)?;
    put(w, format!("{n}.bn.bias"), vec![c], vals(beta)?)?;
    let stats = bn.fixed(n, c)?;
    put(w, format!("{n}.bn.running_mean"), vec![c], stats.mean())?;
    put(w, format!("{n}.bn.running_var"), vec![c], stats.var())?;
    Ok(())
}

/// `genome`'s weights with the recalibrated statistics of `bn` as running statistics:
/// every tensor `Architecture::parameters()` lists, with its shape (conv OIHW,
/// classifier `[out, in]`).
///
/// Errors: [`SupernetError::Genome`]; [`SupernetError::Stats`] when `bn` was not
/// recalibrated for this genome.
pub fn subnet_weights(
    net: &SuperNet,
    genome: &Genome,
    bn: &BnContext,
) -> Result<Weights, SupernetError> {
    let arch = net.architecture(genome)?;
    let mut w = Weights::default();
    conv(&mut w, &net.stem, &arch.stem, bn)?;
    let mut at = 0;
    for (i, stage) in genome.stages.iter().enumerate() {
        for j in 0..stage.blocks.len() {
            let (spec, sb) = (&arch.blocks[at], &net.blocks[net.block_index(i, j)]);
            if let (Some(e), Some(se)) = (&spec.expand, &sb.expand) {
                conv(&mut w, se, e, bn)?;
            }
            conv(&mut w, &sb.depthwise, &spec.depthwise, bn)?;
            if let (Some(s), Some(ss)) = (&spec.se, &sb.se) {
                let (c, r) = (s.channels, s.reduced);
                let n = &s.name;
                let rw = ss.reduce_weight.val().slice([0..r, 0..c, 0..1, 0..1]);
                put(
                    &mut w,
                    format!("{n}.reduce.weight"),
                    vec![r, c, 1, 1],
                    vals(rw)?,
                )?;
                put(
                    &mut w,
                    format!("{n}.reduce.bias"),
                    vec![r],
                    vals(ss.reduce_bias.val().narrow(0, 0, r))?,
                )?;
                let ew = ss.expand_weight.val().slice([0..c, 0..r, 0..1, 0..1]);
                put(
                    &mut w,
                    format!("{n}.expand.weight"),
                    vec![c, r, 1, 1],
                    vals(ew)?,
                )?;
                put(
                    &mut w,
                    format!("{n}.expand.bias"),
                    vec![c],
                    vals(ss.expand_bias.val().narrow(0, 0, c))?,
                )?;
            }
            conv(&mut w, &sb.project, &spec.project, bn)?;
            at += 1;
        }
    }
    if let (Some(h), Some(sh)) = (&arch.head, &net.head) {
        conv(&mut w, sh, h, bn)?;
    }
    let l = &arch.classifier;
    let (fin, fout) = (l.in_features, l.out_features);
    let cw = net
        .classifier_weight
        .val()
        .slice([0..fin, 0..fout])
        .transpose();
    put(
        &mut w,
        format!("{}.weight", l.name),
        vec![fout, fin],
        vals(cw)?,
    )?;
    put(
        &mut w,
        format!("{}.bias", l.name),
        vec![fout],
        vals(net.classifier_bias.val())?,
    )?;
    Ok(w)
}

/// `genome`'s sub-network as an ONNX model, as kiln-train exports a trained network
/// (input raw pixels 0..255, the data's normalisation as its first Add/Mul), with
/// metadata naming the genome and data set, `kiln.test_top1` = `test_top1` (the
/// sub-network's inherited test accuracy, so `eval-onnx` can compare) and, when the data
/// names its classes, `kiln.class_names` (a JSON array in output order).
///
/// Errors: as [`subnet_weights`]; [`SupernetError::Onnx`] from the exporter.
pub fn export_subnet(
    net: &SuperNet,
    genome: &Genome,
    bn: &BnContext,
    data: &Dataset,
    test_top1: f64,
) -> Result<Vec<u8>, SupernetError> {
    let arch = net.architecture(genome)?;
    let weights = subnet_weights(net, genome, bn)?;
    let norm = kiln_train::InputNormalization::from_data(&data.normalization);
    let mut options = ExportOptions {
        normalization: Some(kiln_train::raw_pixel_normalization(&data.normalization)),
        metadata: vec![
            (metadata::GENOME_ID.into(), genome.id()),
            (
                metadata::GENOME.into(),
                serde_json::to_string(genome).unwrap_or_default(),
            ),
            (metadata::DATASET.into(), data.name.clone()),
            (metadata::INPUT.into(), kiln_train::ONNX_INPUT.into()),
            (
                metadata::NORMALIZATION.into(),
                serde_json::to_string(&norm).unwrap_or_default(),
            ),
            (metadata::TEST_TOP1.into(), format!("{test_top1:.4}")),
            (
                metadata::ACCURACY_KIND.into(),
                "inherited from a supernet".into(),
            ),
        ],
    };
    if !data.class_names.is_empty() {
        options.metadata.push((
            metadata::CLASS_NAMES.into(),
            serde_json::to_string(&data.class_names).unwrap_or_default(),
        ));
    }
    Ok(kiln_onnx::export(&arch, &weights, &options)?)
}

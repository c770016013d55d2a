//! Batch norm folded into the convolution before it.

use kiln_onnx::proto::{ModelProto, TensorProto};

use crate::QuantError;

/// f32 values of an initializer (raw little-endian data).
pub(crate) fn floats(t: &TensorProto) -> Vec<f32> {
    t.raw_data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub(crate) fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: kiln_onnx::proto::data_type::FLOAT,
        name: name.into(),
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// Replaces every Conv -> BatchNormalization (the conv output read by the
/// batch norm only) with one Conv whose weights and bias carry the
/// normalisation: `w' = w * g / sqrt(v + eps)`, `b' = (b - m) * g / sqrt(v + eps) + beta`.
pub(crate) fn fold_batch_norms(model: &mut ModelProto) -> Result<(), QuantError> {
    let Some(g) = model.graph.as_mut() else {
        return Err(QuantError::Parse("the model has no graph".into()));
    };
    let mut k = 0;
    while k < g.node.len() {
        if g.node[k].op_type != "BatchNormalization" {
            k += 1;
            continue;
        }
        let bn = g.node[k].clone();
        let err = |m: &str| QuantError::Node {
            node: bn.name.clone(),
            op: bn.op_type.clone(),
            message: m.into(),
        };
        let x = &bn.input[0];
        let readers = g.node.iter().filter(|n| n.input.contains(x)).count();
        let conv = g
            .node
            .iter()
            .position(|n| n.op_type == "Conv" && n.output.first() == Some(x))
            .filter(|_| readers == 1)
            .ok_or_else(|| err("batch norm not right after a convolution; kiln quantizes folded batch norms only"))?;
        let init = |name: &str| g.initializer.iter().position(|t| t.name == name);
        let get = |name: &str| -> Result<Vec<f32>, QuantError> {
            init(name)
                .map(|i| floats(&g.initializer[i]))
                .ok_or_else(|| err(&format!("'{name}' is not an f32 initializer")))
        };
        let (gamma, beta, mean, var) = (
            get(&bn.input[1])?,
            get(&bn.input[2])?,
            get(&bn.input[3])?,
            get(&bn.input[4])?,
        );
        let eps = bn
            .attribute
            .iter()
            .find(|a| a.name == "epsilon")
            .map_or(1e-5, |a| a.f);
        let wname = g.node[conv].input[1].clone();
        let wi =
            init(&wname).ok_or_else(|| err("the convolution's weights are not an initializer"))?;
        let mut w = floats(&g.initializer[wi]);
        let o = gamma.len();
        let per = w.len() / o.max(1);
        let bias_in = g.node[conv].input.get(2).filter(|s| !s.is_empty()).cloned();
        let mut b = match &bias_in {
            Some(n) => get(n)?,
            None => vec![0.0; o],
        };
        for c in 0..o {
            let f = gamma[c] / (var[c] + eps).sqrt();
            w[c * per..(c + 1) * per].iter_mut().for_each(|v| *v *= f);
            b[c] = (b[c] - mean[c]) * f + beta[c];
        }
        let dims = g.initializer[wi].dims.clone();
        g.initializer[wi] = f32_tensor(&wname, &dims, &w);
        let bname = format!("{}.folded_bias", g.node[conv].name);
        g.initializer.push(f32_tensor(&bname, &[o as i64], &b));
        let c = &mut g.node[conv];
        c.input.truncate(2);
        c.input.push(bname);
        c.output[0] = bn.output[0].clone();
        g.node.remove(k);
    }
    Ok(())
}

//! Constants and quantization parameters of a QDQ model, checked.

use kiln_ir::QParams;
use tract_onnx::data_resolver::FopenDataResolver;
use tract_onnx::pb::{self, NodeProto, TensorProto};
use tract_onnx::prelude::*;

/// An integer constant and the DequantizeLinear that made it real.
#[derive(Clone, Debug)]
pub(crate) struct QData {
    /// The stored integers (uint8 as stored, 0..=255).
    pub values: Vec<i64>,
    /// One scale (per tensor) or one per index of `axis`.
    pub scales: Vec<f32>,
    /// As many zero points as scales.
    pub zero_points: Vec<i64>,
    /// The per-axis axis (normalised), `None` per tensor.
    pub axis: Option<usize>,
    /// ONNX element type of `values` (int8, uint8, int32).
    pub dtype: DatumType,
}

/// A constant: its real values, and its integers when it is quantized.
#[derive(Clone, Debug)]
pub(crate) struct QConst {
    /// Shape, ONNX order.
    pub shape: Vec<usize>,
    /// Real values (dequantized when `q` is set), row-major.
    pub real: Vec<f32>,
    /// Integer values as stored, for integer-typed constants.
    pub ints: Option<(Vec<i64>, DatumType)>,
    /// Set when the constant is DequantizeLinear of integers.
    pub q: Option<QData>,
}

fn from_tensor(t: &Tensor) -> Result<QConst, String> {
    let shape = t.shape().to_vec();
    let dt = t.datum_type();
    let real = t
        .cast_to::<f32>()
        .map_err(|e| format!("not numeric: {e}"))?
        .to_plain_array_view::<f32>()
        .map_err(|e| e.to_string())?
        .iter()
        .copied()
        .collect();
    let ints = if dt.is_integer() {
        let v: Vec<i64> = t
            .cast_to::<i64>()
            .map_err(|e| e.to_string())?
            .to_plain_array_view::<i64>()
            .map_err(|e| e.to_string())?
            .iter()
            .copied()
            .collect();
        Some((v, dt))
    } else {
        None
    };
    Ok(QConst {
        shape,
        real,
        ints,
        q: None,
    })
}

/// An initializer as a constant.
pub(crate) fn load_const(t: &TensorProto) -> Result<QConst, String> {
    let t = tract_onnx::tensor::load_tensor(&FopenDataResolver, t, None)
        .map_err(|e| format!("{e:#}"))?;
    from_tensor(&t)
}

/// A Constant node's `value` as a constant.
pub(crate) fn constant_node(n: &NodeProto) -> Result<QConst, String> {
    let a = n
        .attribute
        .iter()
        .find(|a| a.name == "value")
        .and_then(|a| a.t.as_ref())
        .ok_or("Constant without a tensor 'value'")?;
    load_const(a)
}

/// The declared input shape with a symbolic batch (axis 0) as 1; `None` when
/// another dimension is symbolic or no shape is declared.
pub(crate) fn declared_shape(v: &pb::ValueInfoProto) -> Option<Vec<usize>> {
    let pb::type_proto::Value::TensorType(t) = v.r#type.as_ref()?.value.as_ref()?;
    let dims = &t.shape.as_ref()?.dim;
    let mut out = Vec::new();
    for (i, d) in dims.iter().enumerate() {
        match &d.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => {
                out.push(*v as usize)
            }
            _ if i == 0 => out.push(1),
            _ => return None,
        }
    }
    Some(out)
}

/// An integer attribute of a node, or `default`.
pub(crate) fn attr_int(n: &NodeProto, name: &str, default: i64) -> i64 {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.i)
}

/// A float attribute of a node, or `default`.
pub(crate) fn attr_float(n: &NodeProto, name: &str, default: f32) -> f32 {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.f)
}

/// An ints attribute of a node, if present.
pub(crate) fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

/// A string attribute of a node, if present.
pub(crate) fn attr_str(n: &NodeProto, name: &str) -> Option<String> {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// Scales and zero points of a QuantizeLinear / DequantizeLinear, checked:
/// scales positive and finite, zero points of an 8-bit type (or int32 equal
/// to 0 for an int32 DequantizeLinear), as many zero points as scales.
pub(crate) struct Checked {
    pub scales: Vec<f32>,
    pub zero_points: Vec<i64>,
    /// The 8-bit type of the quantized side (int8 or uint8; int32 for biases).
    pub dtype: DatumType,
}

/// Checks scale (input 1) and zero point (input 2) constants; `data_dt` is
/// the quantized data's type where known (DequantizeLinear).
pub(crate) fn check(
    scale: &QConst,
    zero_point: Option<&QConst>,
    data_dt: Option<DatumType>,
) -> Result<Checked, String> {
    if scale.ints.is_some() {
        return Err("the scale is not a float tensor".into());
    }
    if let Some(bad) = scale.real.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(format!(
            "scale {bad} is zero, negative or not finite; a scale must be positive"
        ));
    }
    let (zps, dtype) = match zero_point {
        None => (vec![0; scale.real.len()], data_dt.unwrap_or(DatumType::U8)),
        Some(z) => {
            let (v, dt) = z
                .ints
                .clone()
                .ok_or("the zero point is not an integer tensor")?;
            (v, dt)
        }
    };
    if zps.len() != scale.real.len()
        || (zero_point.is_some() && zero_point.map(|z| &z.shape) != Some(&scale.shape))
    {
        return Err(format!(
            "scale has shape {:?} ({} values) but zero point {:?} ({} values); they must match",
            scale.shape,
            scale.real.len(),
            zero_point.map(|z| z.shape.clone()).unwrap_or_default(),
            zps.len()
        ));
    }
    let range = match dtype {
        DatumType::I8 => -128..=127,
        DatumType::U8 => 0..=255,
        DatumType::I32 => 0..=0,
        other => {
            return Err(format!(
                "zero point type {other:?}; kiln lowers int8 and uint8 (int32 biases with zero point 0)"
            ));
        }
    };
    if let Some(z) = zps.iter().find(|z| !range.contains(*z)) {
        return Err(format!(
            "zero point {z} out of range {range:?} for {dtype:?}"
        ));
    }
    Ok(Checked {
        scales: scale.real.clone(),
        zero_points: zps,
        dtype,
    })
}

/// The per-tensor parameters of an activation as int8 (uint8 moved by -128).
pub(crate) fn per_tensor(c: &Checked) -> Result<QParams, String> {
    if c.scales.len() != 1 {
        return Err(format!(
            "{} scales: per-axis quantization of an activation is not supported (only weights are per channel)",
            c.scales.len()
        ));
    }
    let shift = if c.dtype == DatumType::U8 { 128 } else { 0 };
    Ok(QParams {
        scale: c.scales[0],
        zero_point: (c.zero_points[0] - shift) as i32,
    })
}

/// Normalises ONNX axis `axis` of a rank `rank` tensor.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

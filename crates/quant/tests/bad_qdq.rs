//! Bad QDQ input is refused by kiln-lower naming the node (zero or negative
//! scale, zero point out of range, per-axis scales on an axis kiln does not
//! take, scale / zero point / data shapes that disagree); calibration on too
//! few images warns with the count; a percentile outside (50, 100] is refused; a float
//! op between quantized ones stays f32 and the lowering names it.

use kiln_onnx::proto::{AttributeProto, ModelProto, attribute_type};
use kiln_onnx::{Attribute, Dim, GraphBuilder};
use kiln_quant::{Calibration, QuantizeOptions, quantize};
use prost::Message;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// x [1,4,5,5] -> Conv 3x3 (8 out) -> Relu -> Mul by a per-channel constant
/// (left in f32) -> Conv 1x1 -> y.
fn float_model() -> Vec<u8> {
    let mut g = GraphBuilder::new("bad");
    g.input("x", &[1, 4, 5, 5].map(Dim::Fixed));
    g.initializer("c.w", &[8, 4, 3, 3], &values(288, 1));
    g.initializer("c.b", &[8], &values(8, 2));
    g.node(
        "c",
        "Conv",
        &["x", "c.w", "c.b"],
        &["h"],
        vec![
            Attribute::ints("kernel_shape", &[3, 3]),
            Attribute::ints("pads", &[1, 1, 1, 1]),
        ],
    );
    g.node("r", "Relu", &["h"], &["hr"], vec![]);
    g.initializer("gate", &[1, 8, 1, 1], &values(8, 3));
    g.node("gate.mul", "Mul", &["hr", "gate"], &["m"], vec![]);
    g.initializer("p.w", &[3, 8, 1, 1], &values(24, 4));
    g.node(
        "p",
        "Conv",
        &["m", "p.w"],
        &["y"],
        vec![Attribute::ints("kernel_shape", &[1, 1])],
    );
    g.output("y", None);
    g.encode()
}

fn images(n: usize) -> Vec<Vec<f32>> {
    (0..n).map(|i| values(100, 10 + i as u64)).collect()
}

fn qdq() -> ModelProto {
    let q = quantize(
        &float_model(),
        &[1, 4, 5, 5],
        &images(8),
        &QuantizeOptions {
            min_images: 1,
            ..Default::default()
        },
    )
    .expect("quantizes");
    ModelProto::decode(&q.onnx[..]).expect("decodes")
}

fn lower(m: &ModelProto) -> Result<kiln_ir::Graph, String> {
    kiln_lower::lower_bytes(&m.encode_to_vec(), "bad.onnx", &Default::default())
        .map_err(|e| e.to_string())
}

/// Replaces initializer `name`'s data (f32 or raw bytes of `data_type`).
fn set(m: &mut ModelProto, name: &str, dims: &[i64], data_type: i32, raw: Vec<u8>) {
    let g = m.graph.as_mut().expect("graph");
    let t = g
        .initializer
        .iter_mut()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    t.dims = dims.to_vec();
    t.data_type = data_type;
    t.raw_data = raw;
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn the_quantized_model_lowers_and_names_its_float_op() {
    let bytes = qdq().encode_to_vec();
    let (g, report) =
        kiln_lower::lower_bytes_reported(&bytes, "ok", &Default::default()).expect("lowers");
    let report = report.expect("a QDQ model has a report");
    assert_eq!(report.float_ops, ["gate.mul (Mul)"], "{g}");
    assert!(report.int8_ops >= 4, "{g}");
    let text = g.to_string();
    assert!(
        text.contains("qconv 3x3") && text.contains("qpwconv") && text.contains("dequantize"),
        "{text}"
    );
}

#[test]
fn zero_and_negative_scales_are_refused_naming_the_node() {
    let mut m = qdq();
    set(&mut m, "x.scale", &[], 1, f32s(&[0.0]));
    let e = lower(&m).expect_err("zero scale");
    assert!(e.contains("'x.quantize'") && e.contains("scale 0"), "{e}");

    let mut m = qdq();
    set(&mut m, "c.w.scale", &[8], 1, f32s(&[-0.01; 8]));
    let e = lower(&m).expect_err("negative scale");
    assert!(
        e.contains("'c.w.dequantize'") && e.contains("negative"),
        "{e}"
    );
}

#[test]
fn zero_point_out_of_range_is_refused() {
    let mut m = qdq();
    set(
        &mut m,
        "x.zero_point",
        &[],
        6,
        300i32.to_le_bytes().to_vec(),
    );
    let e = lower(&m).expect_err("out of range");
    assert!(
        e.contains("'x.quantize'") && e.contains("zero point 300 out of range"),
        "{e}"
    );
}

#[test]
fn per_axis_on_another_axis_and_mismatched_shapes_are_refused() {
    // weights scaled per input channel (axis 1)
    let mut m = qdq();
    set(&mut m, "c.w.scale", &[4], 1, f32s(&[0.01; 4]));
    set(&mut m, "c.w.zero_point", &[4], 3, vec![0; 4]);
    let g = m.graph.as_mut().expect("graph");
    let dq = g
        .node
        .iter_mut()
        .find(|n| n.name == "c.w.dequantize")
        .expect("node");
    dq.attribute = vec![AttributeProto {
        name: "axis".into(),
        i: 1,
        r#type: attribute_type::INT,
        ..Default::default()
    }];
    let e = lower(&m).expect_err("axis 1");
    assert!(e.contains("'c' (Conv)") && e.contains("per axis 1"), "{e}");

    // 8 scales, 3 zero points
    let mut m = qdq();
    set(&mut m, "c.w.zero_point", &[3], 3, vec![0; 3]);
    let e = lower(&m).expect_err("scale vs zero point");
    assert!(
        e.contains("'c.w.dequantize'") && e.contains("must match"),
        "{e}"
    );

    // 5 scales along an axis of 8
    let mut m = qdq();
    set(&mut m, "c.w.scale", &[5], 1, f32s(&[0.01; 5]));
    set(&mut m, "c.w.zero_point", &[5], 3, vec![0; 5]);
    let e = lower(&m).expect_err("scales vs data");
    assert!(
        e.contains("'c.w.dequantize'") && e.contains("shapes do not match"),
        "{e}"
    );

    // an activation quantized per channel
    let mut m = qdq();
    set(&mut m, "hr.scale", &[8], 1, f32s(&[0.01; 8]));
    set(&mut m, "hr.zero_point", &[8], 3, vec![0; 8]);
    let e = lower(&m).expect_err("per-axis activation");
    assert!(e.contains("per-axis quantization of an activation"), "{e}");
}

#[test]
fn few_calibration_images_warn_with_the_count() {
    let q = quantize(
        &float_model(),
        &[1, 4, 5, 5],
        &images(3),
        &QuantizeOptions::default(),
    )
    .expect("quantizes");
    assert_eq!(q.warnings.len(), 1);
    assert!(q.warnings[0].contains("on 3 images"), "{:?}", q.warnings);
    let e = quantize(
        &float_model(),
        &[1, 4, 5, 5],
        &[],
        &QuantizeOptions::default(),
    )
    .expect_err("no images");
    assert!(e.to_string().contains("no calibration images"));
    let e = quantize(
        &float_model(),
        &[1, 4, 5, 5],
        &[vec![0.0; 7]],
        &QuantizeOptions::default(),
    )
    .expect_err("shape");
    assert!(e.to_string().contains("has 7 values"), "{e}");
}

#[test]
fn percentile_calibration_narrows_the_ranges() {
    let scale = |c: Calibration| {
        let q = quantize(
            &float_model(),
            &[1, 4, 5, 5],
            &images(16),
            &QuantizeOptions {
                calibration: c,
                min_images: 1,
            },
        )
        .expect("quantizes");
        let m = ModelProto::decode(&q.onnx[..]).expect("decodes");
        let g = m.graph.expect("graph");
        let t = g
            .initializer
            .iter()
            .find(|t| t.name == "hr.scale")
            .expect("relu output scale")
            .clone();
        f32::from_le_bytes(t.raw_data[..4].try_into().expect("4 bytes"))
    };
    let (full, p) = (
        scale(Calibration::MinMax),
        scale(Calibration::Percentile(99.0)),
    );
    assert!(p < full, "percentile {p} vs min/max {full}");
}

#[test]
fn a_percentile_outside_50_to_100_is_refused_naming_it() {
    for p in [150.0, 100.5, -1.0, 50.0, 0.0, f64::NAN] {
        let options = QuantizeOptions {
            calibration: Calibration::Percentile(p),
            min_images: 1,
        };
        let Err(e) = quantize(&float_model(), &[1, 4, 5, 5], &images(4), &options) else {
            panic!("percentile {p} accepted");
        };
        assert!(
            e.to_string().starts_with(&format!("percentile {p}:")),
            "{e}"
        );
    }
}

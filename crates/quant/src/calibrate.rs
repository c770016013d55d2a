//! Calibration: the float model run on images, each quantized activation's
//! range recorded.

use std::collections::HashMap;

use tract_onnx::prelude::*;

use crate::{Calibration, QuantError};

/// The range of values an activation took (widened to hold 0 when used).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// Smallest value (or low percentile).
    pub min: f32,
    /// Largest value (or high percentile).
    pub max: f32,
}

/// Values kept per tensor for a percentile.
const SAMPLE_CAP: usize = 1 << 20;

struct Acc {
    min: f32,
    max: f32,
    samples: Vec<f32>,
    stride: usize,
}

impl Acc {
    fn add(&mut self, v: &[f32], keep: bool) {
        for x in v {
            self.min = self.min.min(*x);
            self.max = self.max.max(*x);
        }
        if keep {
            self.samples.extend(v.iter().step_by(self.stride));
        }
    }
    fn range(&mut self, c: Calibration) -> Range {
        match c {
            Calibration::MinMax => Range {
                min: self.min,
                max: self.max,
            },
            Calibration::Percentile(p) => {
                self.samples.sort_by(f32::total_cmp);
                let n = self.samples.len();
                if n == 0 {
                    return Range {
                        min: self.min,
                        max: self.max,
                    };
                }
                let at = |q: f64| self.samples[((q / 100.0) * (n - 1) as f64).round() as usize];
                Range {
                    min: at(100.0 - p),
                    max: at(p),
                }
            }
        }
    }
}

/// Runs the float model `bytes` on `images` and returns the range of each
/// named tensor (the graph input included when named).
pub(crate) fn ranges(
    bytes: &[u8],
    input_shape: &[usize],
    images: &[Vec<f32>],
    names: &[String],
    c: Calibration,
) -> Result<HashMap<String, Range>, QuantError> {
    let e = |e: TractError| QuantError::Calibrate(format!("{e:#}"));
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(e)?;
    let input_name = model
        .node(model.input_outlets().map_err(e)?[0].node)
        .name
        .clone();
    let inner: Vec<&String> = names.iter().filter(|n| **n != input_name).collect();
    model
        .set_input_fact(0, f32::fact(input_shape).into())
        .map_err(e)?;
    model.select_outputs_by_name(&inner).map_err(e)?;
    let plan = model
        .into_optimized()
        .map_err(e)?
        .into_runnable()
        .map_err(e)?;
    let keep = matches!(c, Calibration::Percentile(_));
    let mut accs: Vec<Acc> = Vec::new();
    let mut input_acc: Option<Acc> = None;
    for im in images {
        let t = Tensor::from_shape(input_shape, im).map_err(e)?;
        let out = plan.run(tvec!(t.into())).map_err(e)?;
        let new = |len: usize| Acc {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            samples: Vec::new(),
            stride: (len * images.len()).div_ceil(SAMPLE_CAP).max(1),
        };
        if accs.is_empty() {
            accs = out.iter().map(|o| new(o.len())).collect();
            input_acc = Some(new(im.len()));
        }
        for (a, o) in accs.iter_mut().zip(out.iter()) {
            let v = o.cast_to::<f32>().map_err(e)?;
            let v = v.to_plain_array_view::<f32>().map_err(e)?;
            a.add(v.as_slice().unwrap_or(&[]), keep);
        }
        if let Some(a) = input_acc.as_mut() {
            a.add(im, keep);
        }
    }
    let mut r: HashMap<String, Range> = inner
        .iter()
        .zip(accs.iter_mut())
        .map(|(n, a)| ((*n).clone(), a.range(c)))
        .collect();
    if let Some(mut a) = input_acc {
        r.insert(input_name, a.range(c));
    }
    Ok(r)
}

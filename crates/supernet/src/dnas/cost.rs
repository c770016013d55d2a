//! FBNet's latency term over a factorised distribution of a space's decisions: the
//! expected sum of the lookup table's layer latencies when every decision is drawn on
//! its own (Wu et al., 2019, eq. 4: LAT(a) = sum over layers of the chosen ops' table
//! latencies, here weighted by the soft choice of each decision), and its gradient.
//!
//! Decisions are indexed as `Space::choice_counts` orders them: the stem width; per
//! stage its depth, its width, then per block slot its kernel, expand ratio,
//! squeeze-excite and activation; the head width.

use kiln_space::{LayerKey, Space};

/// Where each decision of a space sits in the choice vector.
pub(crate) struct DecisionIndex {
    /// Per stage, the index of its depth decision (its width is the next one).
    stages: Vec<usize>,
    /// The head's decision.
    pub head: usize,
}

impl DecisionIndex {
    pub fn of(space: &Space) -> DecisionIndex {
        let mut at = 1;
        let stages = space
            .stages
            .iter()
            .map(|s| {
                let base = at;
                at += 2 + 4 * s.depth.iter().copied().max().unwrap_or(0);
                base
            })
            .collect();
        DecisionIndex { stages, head: at }
    }

    /// Stage `i`'s depth decision.
    pub fn depth(&self, i: usize) -> usize {
        self.stages[i]
    }

    /// Stage `i`'s width decision.
    pub fn width(&self, i: usize) -> usize {
        self.stages[i] + 1
    }

    /// Block slot `j` of stage `i`: its kernel, expand, squeeze-excite and activation
    /// decisions, in that order.
    pub fn block(&self, i: usize, j: usize) -> [usize; 4] {
        let b = self.stages[i] + 2 + 4 * j;
        [b, b + 1, b + 2, b + 3]
    }
}

/// The expected sum of layer latencies (in the unit `cost` gives) when decision `d`
/// takes option `i` with weight `p[d][i]` (each `p[d]` summing to 1), for input
/// `[channels, height, width]` and `classes` classes.
///
/// Errors: the first layer `cost` has no figure for (`None`).
pub(crate) fn expected(
    space: &Space,
    input: [usize; 3],
    classes: usize,
    p: &[Vec<f64>],
    cost: &dyn Fn(&LayerKey) -> Option<f64>,
) -> Result<f64, LayerKey> {
    let ix = DecisionIndex::of(space);
    let look = |key: LayerKey| cost(&key).ok_or(key);
    let mut total = 0.0;
    let mut hw = (input[1], input[2]);
    for (a, &w) in space.stem.widths.iter().enumerate() {
        total += p[0][a]
            * look(LayerKey::Conv {
                in_channels: input[0],
                out_channels: w,
                kernel: space.stem.kernel,
                stride: space.stem.stride,
                activation: space.stem.activation,
                height: hw.0,
                width: hw.1,
                precision: kiln_space::Precision::F32,
            })?;
    }
    hw = (
        hw.0.div_ceil(space.stem.stride),
        hw.1.div_ceil(space.stem.stride),
    );
    let (mut prev, mut prev_widths) = (0, space.stem.widths.clone());
    for (i, s) in space.stages.iter().enumerate() {
        let (pd, pw) = (&p[ix.depth(i)], &p[ix.width(i)]);
        // the first block: always there, its input the previous width
        let mut first = 0.0;
        for (a, &w_in) in prev_widths.iter().enumerate() {
            for (b, &w_out) in s.widths.iter().enumerate() {
                let weight = p[prev][a] * pw[b];
                if weight != 0.0 {
                    first +=
                        weight * block(s, &ix.block(i, 0), p, (w_in, w_out), s.stride, hw, &look)?;
                }
            }
        }
        total += first;
        hw = (hw.0.div_ceil(s.stride), hw.1.div_ceil(s.stride));
        let slots = s.depth.iter().copied().max().unwrap_or(0);
        for j in 1..slots {
            // slot j runs when the depth is above j
            let present: f64 = s
                .depth
                .iter()
                .zip(pd)
                .filter(|(d, _)| **d > j)
                .map(|(_, q)| q)
                .sum();
            if present == 0.0 {
                continue;
            }
            for (b, &w) in s.widths.iter().enumerate() {
                if pw[b] != 0.0 {
                    total += present * pw[b] * block(s, &ix.block(i, j), p, (w, w), 1, hw, &look)?;
                }
            }
        }
        (prev, prev_widths) = (ix.width(i), s.widths.clone());
    }
    for (h, &head) in space.head.widths.iter().enumerate() {
        let ph = p[ix.head][h];
        if ph == 0.0 {
            continue;
        }
        for (a, &w) in prev_widths.iter().enumerate() {
            let q = ph * p[prev][a];
            if q == 0.0 {
                continue;
            }
            let features = if head == 0 {
                w
            } else {
                total += q * look(LayerKey::Conv {
                    in_channels: w,
                    out_channels: head,
                    kernel: 1,
                    stride: 1,
                    activation: space.head.activation,
                    height: hw.0,
                    width: hw.1,
                    precision: kiln_space::Precision::F32,
                })?;
                head
            };
            total += q * look(LayerKey::Classifier {
                features,
                classes,
                height: hw.0,
                width: hw.1,
                precision: kiln_space::Precision::F32,
            })?;
        }
    }
    Ok(total)
}

/// The expected latency of one block slot whose channels are `(in, out)`, over its
/// kernel, expand, squeeze-excite and activation decisions.
fn block(
    s: &kiln_space::StageSpace,
    d: &[usize; 4],
    p: &[Vec<f64>],
    (in_channels, out_channels): (usize, usize),
    stride: usize,
    hw: (usize, usize),
    look: &dyn Fn(LayerKey) -> Result<f64, LayerKey>,
) -> Result<f64, LayerKey> {
    let mut sum = 0.0;
    for (k, &kernel) in s.kernels.iter().enumerate() {
        for (e, &expand) in s.expand.iter().enumerate() {
            for (q, &se) in s.se.iter().enumerate() {
                for (a, &activation) in s.activations.iter().enumerate() {
                    let w = p[d[0]][k] * p[d[1]][e] * p[d[2]][q] * p[d[3]][a];
                    if w == 0.0 {
                        continue;
                    }
                    sum += w * look(LayerKey::Block {
                        in_channels,
                        out_channels,
                        kernel,
                        expand,
                        stride,
                        se,
                        activation,
                        height: hw.0,
                        width: hw.1,
                        precision: kiln_space::Precision::F32,
                    })?;
                }
            }
        }
    }
    Ok(sum)
}

/// [`expected`] and its gradient: the expectation is linear in each decision's weights
/// (no layer depends on one decision twice), so the derivative by `p[d][i]` is the
/// expectation with decision `d` fixed to option `i`.
///
/// Errors: as [`expected`].
pub(crate) fn expected_with_gradient(
    space: &Space,
    input: [usize; 3],
    classes: usize,
    p: &[Vec<f64>],
    cost: &dyn Fn(&LayerKey) -> Option<f64>,
) -> Result<(f64, Vec<Vec<f64>>), LayerKey> {
    let value = expected(space, input, classes, p, cost)?;
    let mut q = p.to_vec();
    let mut grad = Vec::with_capacity(p.len());
    for d in 0..p.len() {
        let mut g = vec![0.0; p[d].len()];
        for (i, gi) in g.iter_mut().enumerate() {
            q[d] = (0..p[d].len())
                .map(|o| f64::from(u8::from(o == i)))
                .collect();
            *gi = expected(space, input, classes, &q, cost)?;
        }
        q[d] = p[d].clone();
        grad.push(g);
    }
    Ok((value, grad))
}

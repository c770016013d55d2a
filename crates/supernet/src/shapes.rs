//! The supernet's parameter shapes for a space and input: each layer at its largest.

use kiln_space::{InputSpec, Space};

/// One block position's weight shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockShapes {
    /// Expand conv `[mid_max, in_max, 1, 1]`, when the stage offers a ratio above 1.
    pub expand: Option<[usize; 4]>,
    /// Depthwise `[mid_max, 1, k_max, k_max]`.
    pub depthwise: [usize; 4],
    /// Squeeze-excite `(reduced_max, mid_max)`, when the stage offers it.
    pub se: Option<(usize, usize)>,
    /// Projection `[out_max, mid_max, 1, 1]`.
    pub project: [usize; 4],
    /// The stage offers more than one activation.
    pub activation_choice: bool,
}

/// Every shape of a supernet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Stem `[stem_max, C, k, k]`.
    pub stem: [usize; 4],
    /// Block positions, each stage at its largest depth.
    pub blocks: Vec<BlockShapes>,
    /// Head `[head_max, last_max, 1, 1]`, when the space offers a head.
    pub head: Option<[usize; 4]>,
    /// Classifier `[features_max, classes]`.
    pub classifier: [usize; 2],
}

fn max(v: &[usize]) -> usize {
    v.iter().copied().max().unwrap_or(0)
}

impl Layout {
    /// The shapes for `space` on `input`.
    pub fn of(space: &Space, input: InputSpec) -> Layout {
        let stem_max = max(&space.stem.widths);
        let k = space.stem.kernel;
        let mut blocks = Vec::new();
        let mut in_max = stem_max;
        for stage in &space.stages {
            let out_max = max(&stage.widths);
            let e_max = max(&stage.expand);
            let k_max = max(&stage.kernels);
            for j in 0..max(&stage.depth) {
                let cin = if j == 0 { in_max } else { out_max };
                let mid = cin * e_max;
                blocks.push(BlockShapes {
                    expand: stage
                        .expand
                        .iter()
                        .any(|&e| e > 1)
                        .then_some([mid, cin, 1, 1]),
                    depthwise: [mid, 1, k_max, k_max],
                    se: stage.se.contains(&true).then_some(((mid / 4).max(4), mid)),
                    project: [out_max, mid, 1, 1],
                    activation_choice: stage.activations.len() > 1,
                });
            }
            in_max = out_max;
        }
        let head_max = max(&space.head.widths);
        Layout {
            stem: [stem_max, input.channels, k, k],
            blocks,
            head: (head_max > 0).then_some([head_max, in_max, 1, 1]),
            classifier: [head_max.max(in_max), input.classes],
        }
    }
}

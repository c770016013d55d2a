//! Pools and reductions: tract `MaxPool` / `SumPool` -> [`OpKind::MaxPool`] /
//! [`OpKind::AvgPool`]; `Reduce<Sum|Max>` over H and W -> a global pool.

use kiln_ir::{OpKind, Pool};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};

use super::conv::Window;
use super::{Translator, image_format};
use crate::LowerError;

impl Translator<'_> {
    /// `Reduce` over the H and W axes of an image: Sum becomes
    /// [`OpKind::GlobalSumPool`] with scale 1 (a following Mul by 1/HW is
    /// folded into the scale by fusion), Max becomes [`OpKind::GlobalMaxPool`].
    pub(super) fn reduce(&mut self, node: &TypedNode, r: &Reduce) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        let mut axes = r.axes.to_vec();
        axes.sort_unstable();
        let rank = self.graph.tensors[x].shape.len();
        if !self.graph.tensors[x].is_nhwc() || axes != [rank - 2, rank - 1] {
            return Err(self.unsupported(
                node,
                format!("reduction over axes {axes:?}; kiln reduces H and W of images only"),
            ));
        }
        let kind = match r.reducer {
            Reducer::Sum => OpKind::GlobalSumPool { scale: 1.0 },
            Reducer::Max => OpKind::GlobalMaxPool,
            other => return Err(self.unsupported(node, format!("reducer {other:?}"))),
        };
        self.emit(node, kind, vec![x])?;
        Ok(())
    }

    /// MaxPool without an index output.
    pub(super) fn max_pool(&mut self, node: &TypedNode, p: &MaxPool) -> Result<(), LowerError> {
        if p.with_index_outputs.is_some() {
            return Err(self.unsupported(node, "MaxPool with index output"));
        }
        let pool = self.pool(node, &p.pool_spec, false)?;
        let x = self.act_input(node, 0)?;
        self.emit(node, OpKind::MaxPool(pool), vec![x])?;
        Ok(())
    }

    /// A normalised SumPool is an average pool.
    pub(super) fn sum_pool(&mut self, node: &TypedNode, p: &SumPool) -> Result<(), LowerError> {
        if !p.normalize {
            return Err(self.unsupported(node, "un-normalised sum pool"));
        }
        let pool = self.pool(node, &p.pool_spec, p.count_include_pad)?;
        let x = self.act_input(node, 0)?;
        self.emit(node, OpKind::AvgPool(pool), vec![x])?;
        Ok(())
    }

    /// Window of a 2-D pool over the NCHW image at input 0.
    fn pool(
        &self,
        node: &TypedNode,
        spec: &PoolSpec,
        count_include_pad: bool,
    ) -> Result<Pool, LowerError> {
        let x = self.act_input(node, 0)?;
        let shape = self.graph.tensors[x].shape.clone();
        if !image_format(spec.data_format, &shape) || spec.kernel_shape.len() != 2 {
            return Err(self.unsupported(node, "only 2-D pooling over NCHW images"));
        }
        let window = Window::new(spec, &shape[shape.len() - 2..]);
        Ok(Pool {
            kernel: [spec.kernel_shape[0], spec.kernel_shape[1]],
            stride: window.stride,
            dilation: window.dilation,
            pads: window.pads,
            count_include_pad,
        })
    }
}

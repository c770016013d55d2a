//! The edge between burn's tensors and the plain `f32` slices kiln's training kernels
//! ([`crate::depthwise`], [`crate::batchnorm`]) work on: which backend those kernels join and
//! how values cross over.

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::TensorData;
use std::borrow::Cow;

/// The training backend whose graph kiln's operations join (what `device().autodiff()`
/// gives: flex, no gradient checkpointing).
pub(crate) type Train = Autodiff<Flex, NoCheckpointing>;

/// A tensor of [`Train`] as its operations take and give it.
pub(crate) type TrainTensor = burn::backend::tensor::FloatTensor<Train>;

/// A flex tensor's f32 values in row-major order (copied only when its layout is not
/// contiguous). Callers take this path for f32 tensors only.
pub(crate) fn f32s(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.to_contiguous().storage::<f32>().to_vec()),
    }
}

/// A flex tensor of `shape` holding `values` (row-major).
pub(crate) fn flex(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

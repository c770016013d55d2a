//! Data-parallel training steps: a batch split into shards whose gradients are summed.
//!
//! burn is built without its `rayon` feature, so flex's kernels run on the calling thread
//! and a second core trains faster only with work of its own: shard 0 of a
//! batch runs on the network, every other shard on a fork of it (the same parameters with
//! an autodiff graph of their own, so the backward passes do not wait on one graph's
//! lock), and with `parallel` each fork runs on a thread of its own. The shards'
//! gradients are summed in shard order either way, so the weights a seed gives depend on
//! the number of shards, never on the number of threads.
//!
//! Batch norm normalises each shard with that shard's own statistics ("ghost batch norm",
//! Hoffer, Hubara and Soudry, 2017), as data-parallel training without synchronised batch
//! norm does: a batch of 16 in 2 shards trains like two batches of 8 whose gradients are
//! averaged. The running statistics (the moving averages eval mode uses) follow shard 0
//! only, so they too do not depend on the threads; a training that recalibrates them
//! afterwards (`bn_recalibration_images`) replaces them anyway.

use std::ops::Range;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use kiln_data::Batch;

use crate::train::{images_tensor, values};
use crate::{Network, TrainError};

/// The sizes of the contiguous shards a batch of `n` images splits into: `shards` pieces
/// as equal as possible (the first ones one larger), fewer when a piece would hold fewer
/// than 2 images (batch norm needs two); one piece of `n` for `shards <= 1` or `n < 4`.
pub(crate) fn shard_sizes(n: usize, shards: usize) -> Vec<usize> {
    let k = shards.min(n / 2).max(1);
    (0..k).map(|i| n / k + usize::from(i < n % k)).collect()
}

/// One training step's outcome over all shards.
pub(crate) struct Step {
    /// The gradients of the batch's mean loss, summed over the shards in shard order.
    pub grads: GradientsParams,
    /// The batch's mean loss (each shard's mean weighted by its share of the images).
    pub loss: f32,
    /// The logits, `[n, classes]` row-major, in the batch's order.
    pub logits: Vec<f32>,
}

/// The gradients of `loss_fn` on `batch` (its images normalised, each `shape` =
/// `[c, h, w]`), split into [`shard_sizes`] shards: shard 0 on `network`, the others on
/// forks of it, each fork on its own thread when `parallel`. Every shard's loss is scaled
/// by its share of the batch, so the summed gradients are those of the batch's mean loss
/// under per-shard batch norm.
///
/// Errors: [`TrainError::Tensor`] when burn cannot read the logits back.
pub(crate) fn gradients(
    network: &Network,
    loss_fn: &CrossEntropyLoss,
    batch: &Batch,
    shape: [usize; 3],
    device: &Device,
    shards: usize,
    parallel: bool,
) -> Result<Step, TrainError> {
    let (images, labels) = (&batch.images, &batch.labels);
    let n = labels.len();
    let per_image = shape.iter().product::<usize>();
    let mut pieces = Vec::new();
    let mut start = 0;
    for size in shard_sizes(n, shards) {
        pieces.push(start..start + size);
        start += size;
    }
    let shard = |net: &Network, range: Range<usize>| {
        let size = range.len();
        let pixels = images[range.start * per_image..range.end * per_image].to_vec();
        let x = images_tensor(pixels, size, shape, device);
        let y: Vec<i64> = labels[range].iter().map(|&l| l as i64).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(y, [size]), device);
        let logits = net.forward(x);
        let mut loss = loss_fn.forward(logits.clone(), y);
        if size != n {
            // the shard's mean counts for its share of the batch's mean
            loss = loss.mul_scalar(size as f32 / n as f32);
        }
        let value: f32 = loss.clone().into_scalar();
        let logits = values(logits.detach(), "logits")?;
        let grads = GradientsParams::from_grads(loss.backward(), net);
        Ok::<_, TrainError>((grads, value, logits))
    };
    // the network's moving averages of batch-norm statistics learn from shard 0 alone:
    // the forks' updates go to statistics of their own, dropped after the step
    let forks: Vec<Network> = (1..pieces.len())
        .map(|_| network.clone().fork(device).with_own_bn_statistics())
        .collect();
    let jobs: Vec<(&Network, Range<usize>)> =
        std::iter::once(network).chain(&forks).zip(pieces).collect();
    let results: Vec<_> = if parallel && jobs.len() > 1 {
        std::thread::scope(|s| {
            let others: Vec<_> = jobs[1..]
                .iter()
                .map(|(fork, range)| s.spawn(|| shard(fork, range.clone())))
                .collect();
            let first = jobs[..1]
                .iter()
                .map(|(net, range)| shard(net, range.clone()));
            let others = others
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            first.chain(others).collect()
        })
    } else {
        jobs.iter()
            .map(|(net, range)| shard(net, range.clone()))
            .collect()
    };
    let (mut loss, mut logits, mut each) = (0.0f32, Vec::new(), Vec::new());
    for r in results {
        let (grads, value, l) = r?;
        loss += value;
        logits.extend(l);
        each.push(grads);
    }
    let grads = match each.len() {
        // one shard: its gradients as they are, as whole-batch training always had them
        1 => each.remove(0),
        _ => {
            let mut sum = GradientsAccumulator::<Network>::new();
            for grads in each {
                sum.accumulate(network, grads);
            }
            sum.grads()
        }
    };
    Ok(Step {
        grads,
        loss,
        logits,
    })
}

#[cfg(test)]
mod tests {
    use super::shard_sizes;

    #[test]
    fn shards_are_contiguous_near_equal_and_never_below_two_images() {
        assert_eq!(shard_sizes(16, 2), vec![8, 8]);
        assert_eq!(shard_sizes(15, 2), vec![8, 7]);
        assert_eq!(shard_sizes(16, 1), vec![16]);
        assert_eq!(shard_sizes(16, 0), vec![16]);
        assert_eq!(shard_sizes(3, 2), vec![3]);
        assert_eq!(shard_sizes(5, 4), vec![3, 2]);
        assert_eq!(shard_sizes(10, 3), vec![4, 3, 3]);
        for n in 2..40 {
            for k in 1..6 {
                let s = shard_sizes(n, k);
                assert_eq!(s.iter().sum::<usize>(), n);
                assert!(s.iter().all(|&x| x >= 2), "{n} in {k}: {s:?}");
            }
        }
    }
}

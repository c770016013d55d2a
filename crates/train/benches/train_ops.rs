//! A convolution's training step (forward, then backward to the input and the weight) through
//! kiln-train's ops and through burn's `conv2d`, at the default space's shapes for a 28x28 input
//! (batch 16, as a search fine-tunes): depthwise in stage one's first block (28x28, stride 2), a
//! 14x14 block and a 7x7 block, kernels 3, 5 and 7 (`depthwise_conv2d`); pointwise expansions
//! and projections of such blocks (`pointwise_conv2d`); the batch norm after each depthwise conv
//! (`batch_norm_train`, against burn's `batch_norm_train`). Measured on this machine (host), on
//! the calling thread's rayon pool.
//!
//! `cargo bench -p kiln-train --bench train_ops` (criterion: `kiln` and `burn` per shape).

use burn::tensor::module::{batch_norm_train as burns_batch_norm_train, conv2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, criterion_main};
use kiln_train::{batch_norm_train, depthwise_conv2d, device, pointwise_conv2d};

/// `(channels, height = width, stride)`.
const SHAPES: [(usize, usize, usize); 3] = [(96, 28, 2), (144, 14, 1), (384, 7, 1)];
const BATCH: usize = 16;

/// One forward and backward pass; returns the two gradients' sums so nothing is skipped.
fn step(x: &Tensor<4>, w: &Tensor<4>, stride: usize, kiln: bool) -> (f32, f32) {
    let (c, k) = (w.dims()[0], w.dims()[2]);
    let y = if kiln {
        depthwise_conv2d(x.clone(), w.clone(), stride, k / 2)
    } else {
        let options = ConvOptions::new([stride, stride], [k / 2, k / 2], [1, 1], c);
        conv2d(x.clone(), w.clone(), None, options)
    };
    let grads = y.sum().backward();
    let sum = |t: Option<Tensor<4>>| t.map_or(f32::NAN, |t| t.sum().into_scalar());
    (sum(x.grad(&grads)), sum(w.grad(&grads)))
}

fn bench(c: &mut Criterion) {
    let dev: Device = device().autodiff();
    for (channels, size, stride) in SHAPES {
        for k in [3, 5, 7] {
            let x = Tensor::<4>::random(
                [BATCH, channels, size, size],
                Distribution::Normal(0.0, 1.0),
                &dev,
            )
            .require_grad();
            let w = Tensor::<4>::random([channels, 1, k, k], Distribution::Normal(0.0, 0.3), &dev)
                .require_grad();
            let mut group =
                c.benchmark_group(format!("depthwise {channels}@{size} s{stride} k{k}"));
            group.sample_size(20);
            group.bench_function("kiln", |b| b.iter(|| step(&x, &w, stride, true)));
            group.bench_function("burn", |b| b.iter(|| step(&x, &w, stride, false)));
            group.finish();
        }
    }
    // pointwise: (in, out, size), the expansion and projection of the same blocks
    for (cin, cout, size) in [(16, 96, 28), (96, 24, 14), (64, 384, 7)] {
        let x = Tensor::<4>::random(
            [BATCH, cin, size, size],
            Distribution::Normal(0.0, 1.0),
            &dev,
        )
        .require_grad();
        let w = Tensor::<4>::random([cout, cin, 1, 1], Distribution::Normal(0.0, 0.3), &dev)
            .require_grad();
        let mut group = c.benchmark_group(format!("pointwise {cin}->{cout}@{size}"));
        group.sample_size(20);
        group.bench_function("kiln", |b| b.iter(|| pointwise_step(&x, &w, true)));
        group.bench_function("burn", |b| b.iter(|| pointwise_step(&x, &w, false)));
        group.finish();
    }
}

fn pointwise_step(x: &Tensor<4>, w: &Tensor<4>, kiln: bool) -> (f32, f32) {
    let y = if kiln {
        pointwise_conv2d(x.clone(), w.clone())
    } else {
        conv2d(
            x.clone(),
            w.clone(),
            None,
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        )
    };
    let grads = y.sum().backward();
    let sum = |t: Option<Tensor<4>>| t.map_or(f32::NAN, |t| t.sum().into_scalar());
    (sum(x.grad(&grads)), sum(w.grad(&grads)))
}

/// One batch norm forward and backward pass (to the input, gamma and beta) of `sum(bn(x) * r)`;
/// returns the input gradient's sum so nothing is skipped.
fn batch_norm_step(
    x: &Tensor<4>,
    r: &Tensor<4>,
    affine: &(Tensor<1>, Tensor<1>),
    kiln: bool,
) -> f32 {
    let (gamma, beta) = (affine.0.clone(), affine.1.clone());
    let out = if kiln {
        batch_norm_train(x.clone(), gamma, beta, 1e-5)
    } else {
        burns_batch_norm_train(x.clone(), gamma, beta, 1e-5)
    };
    let grads = (out.output * r.clone()).sum().backward();
    x.grad(&grads).map_or(f32::NAN, |t| t.sum().into_scalar())
}

fn bench_batch_norm(c: &mut Criterion) {
    let dev: Device = device().autodiff();
    let normal =
        |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
    for (channels, size, stride) in SHAPES {
        let size = size / stride;
        let x = normal([BATCH, channels, size, size]).require_grad();
        let r = normal([BATCH, channels, size, size]);
        let gamma = Tensor::<1>::ones([channels], &dev).require_grad();
        let beta = Tensor::<1>::zeros([channels], &dev).require_grad();
        let affine = (gamma, beta);
        let mut group = c.benchmark_group(format!("batch norm {channels}@{size}"));
        group.sample_size(20);
        group.bench_function("kiln", |b| {
            b.iter(|| batch_norm_step(&x, &r, &affine, true))
        });
        group.bench_function("burn", |b| {
            b.iter(|| batch_norm_step(&x, &r, &affine, false))
        });
        group.finish();
    }
}

/// The criterion entry point: every shape, kiln then burn.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    bench_batch_norm(&mut c);
    c.final_summary();
}

criterion_main!(benches);

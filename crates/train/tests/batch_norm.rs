//! kiln-train's training batch norm against burn's, its reference twin: the same output, batch
//! statistics and gradients (input, gamma, beta) on the training backend; the same bits
//! whatever the number of threads; and the layer's forward pass leaves the running statistics
//! where burn's `BatchNorm` module leaves them.

use burn::nn::BatchNormConfig;
use burn::tensor::module::batch_norm_train as burns_batch_norm_train;
use burn::tensor::{Device, Tensor};
use kiln_train::{batch_norm, batch_norm_train, device, with_threads};

mod common;
use common::{assert_close, random, values};

/// `(n, c, h, w)`: one image of one pixel (the variance 0), odd planes, a layer's size.
const CASES: [(usize, usize, usize, usize); 5] = [
    (2, 3, 5, 4),
    (1, 2, 1, 1),
    (3, 5, 7, 7),
    (4, 16, 14, 14),
    (16, 24, 3, 3),
];

const EPSILON: f64 = 1e-5;

struct Outcome {
    y: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
    dx: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
}

/// A `[c]` tensor from the first values of a seeded random one, shifted by `offset`.
fn vector(c: usize, offset: f32, seed: u64, dev: &Device) -> Tensor<1> {
    random([1, 1, 1, c], 0.5, seed, dev).reshape([c]) + offset
}

/// Output, statistics and gradients of `sum(bn(x) * r)` for fixed random `x` (off centre, so
/// the centring matters), `gamma`, `beta`, `r`, through kiln's op or burn's.
fn run(case: (usize, usize, usize, usize), kiln: bool, dev: &Device) -> Outcome {
    let (n, c, h, w) = case;
    let seed = (n * 1000 + c * 100 + h * 10 + w) as u64;
    let x = (random([n, c, h, w], 2.0, seed, dev) + 3.0).require_grad();
    let gamma = vector(c, 1.0, seed + 1, dev).require_grad();
    let beta = vector(c, 0.0, seed + 2, dev).require_grad();
    let out = if kiln {
        batch_norm_train(x.clone(), gamma.clone(), beta.clone(), EPSILON)
    } else {
        burns_batch_norm_train(x.clone(), gamma.clone(), beta.clone(), EPSILON)
    };
    let r = random([n, c, h, w], 1.0, seed + 3, dev);
    let grads = (out.output.clone() * r).sum().backward();
    Outcome {
        y: values(out.output),
        mean: values(out.mean),
        var: values(out.variance),
        dx: values(x.grad(&grads).expect("x has a gradient")),
        dgamma: values(gamma.grad(&grads).expect("gamma has a gradient")),
        dbeta: values(beta.grad(&grads).expect("beta has a gradient")),
    }
}

#[test]
fn output_statistics_and_gradients_equal_burns() {
    let dev = device().autodiff();
    for case in CASES {
        let (kiln, burn) = (run(case, true, &dev), run(case, false, &dev));
        assert_close("output", case, &kiln.y, &burn.y);
        assert_close("mean", case, &kiln.mean, &burn.mean);
        assert_close("variance", case, &kiln.var, &burn.var);
        assert_close("input gradient", case, &kiln.dx, &burn.dx);
        assert_close("gamma gradient", case, &kiln.dgamma, &burn.dgamma);
        assert_close("beta gradient", case, &kiln.dbeta, &burn.dbeta);
    }
}

#[test]
fn the_threads_do_not_change_a_bit() {
    let on = |threads| {
        with_threads(threads, || run((4, 16, 14, 14), true, &device().autodiff()))
            .expect("a thread pool")
    };
    let (one, three) = (on(1), on(3));
    assert_eq!(one.y, three.y, "output");
    assert_eq!(one.mean, three.mean, "mean");
    assert_eq!(one.var, three.var, "variance");
    assert_eq!(one.dx, three.dx, "input gradient");
    assert_eq!(one.dgamma, three.dgamma, "gamma gradient");
    assert_eq!(one.dbeta, three.dbeta, "beta gradient");
}

/// kiln's layer forward (what kiln-train's layers call) against burn's `BatchNorm::forward`
/// on two layers built alike: the same output and, after two batches, the same running
/// statistics; off the autodiff device it is the module's inference forward.
#[test]
fn the_layer_keeps_running_statistics_as_burns_module_does() {
    let dev = device().autodiff();
    let config = BatchNormConfig::new(6).with_momentum(0.3);
    let (ours, theirs) = (config.init(&dev), config.init(&dev));
    for seed in [7, 8] {
        let x = random([3, 6, 4, 5], 1.5, seed, &dev) + 0.5;
        let (a, b) = (batch_norm(&ours, x.clone()), theirs.forward(x));
        assert_close("layer output", seed, &values(a), &values(b));
    }
    let stat = |t: Tensor<1>| values(t);
    assert_close(
        "running mean",
        "after 2 batches",
        &stat(ours.running_mean.value()),
        &stat(theirs.running_mean.value()),
    );
    assert_close(
        "running variance",
        "after 2 batches",
        &stat(ours.running_var.value()),
        &stat(theirs.running_var.value()),
    );
    assert!(
        stat(ours.running_mean.value()).iter().any(|&m| m != 0.0),
        "the running mean moved"
    );
    // routing: off the autodiff device the layer normalises with its running statistics
    // (the batch's would give another output)
    let plain = device();
    let x = random([2, 6, 3, 3], 1.0, 9, &plain);
    let (ours, theirs) = (config.init(&plain), config.init(&plain));
    assert_eq!(
        values(batch_norm(&ours, x.clone())),
        values(theirs.forward(x)),
        "inference"
    );
}

//! kiln-train's convolutions against burn's `conv2d`, their reference twin. Depthwise: the same
//! output and the same gradients (input and weight) on the training backend, for strides 1 and
//! 2, kernels larger than the image, and a weight sliced from a larger kernel as the supernet
//! slices it; the same bits whatever the number of threads. Pointwise (1x1): the same output
//! and gradients.

use burn::tensor::Device;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use kiln_train::{conv2d_no_bias, depthwise_conv2d, device, pointwise_conv2d, with_threads};

mod common;
use common::{assert_close, random, values};

/// `(n, c, h, w, k, stride)`; padding is `k / 2`, as every kiln network pads.
const CASES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (2, 3, 5, 4, 3, 1),
    (2, 4, 7, 7, 5, 2),
    (1, 2, 3, 3, 7, 1),
    (3, 5, 8, 6, 3, 2),
    (2, 3, 1, 1, 7, 1),
    (2, 2, 2, 5, 7, 2),
    (4, 16, 14, 14, 7, 1),
];

struct Outcome {
    y: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
}

/// Output and gradients of `sum(conv(x, w) * r)` for fixed random `x`, `w`, `r` (seeded by
/// the case), through kiln's op or burn's.
fn run(case: (usize, usize, usize, usize, usize, usize), kiln: bool, dev: &Device) -> Outcome {
    let (n, c, h, w, k, s) = case;
    let p = k / 2;
    let seed = (n * 1000 + c * 100 + h * 10 + k + s) as u64;
    let x = random([n, c, h, w], 1.0, seed, dev);
    let wt = random([c, 1, k, k], 0.5, seed + 1, dev);
    let x = x.require_grad();
    let wt = wt.require_grad();
    let y = if kiln {
        depthwise_conv2d(x.clone(), wt.clone(), s, p)
    } else {
        let options = ConvOptions::new([s, s], [p, p], [1, 1], c);
        conv2d(x.clone(), wt.clone(), None, options)
    };
    let r = random(y.dims(), 1.0, seed + 2, dev);
    let grads = (y.clone() * r).sum().backward();
    Outcome {
        y: values(y),
        dx: values(x.grad(&grads).expect("x has a gradient")),
        dw: values(wt.grad(&grads).expect("w has a gradient")),
    }
}

#[test]
fn output_and_gradients_equal_burns_grouped_conv() {
    let dev = device().autodiff();
    for case in CASES {
        let kiln = run(case, true, &dev);
        let burn = run(case, false, &dev);
        assert_close("output", case, &kiln.y, &burn.y);
        assert_close("input gradient", case, &kiln.dx, &burn.dx);
        assert_close("weight gradient", case, &kiln.dw, &burn.dw);
    }
}

#[test]
fn off_the_training_backend_every_route_computes_burns_conv() {
    // evaluation runs without autodiff: depthwise runs kiln's forward kernel there, a 1x1
    // conv still goes through the matrix product, a 3x3 one through burn's (kiln_train's router)
    let dev = device();
    // (channels in, out, kernel, stride, groups)
    for (ci, co, k, s, groups) in [(6, 6, 5, 2, 6), (6, 10, 1, 1, 1), (3, 8, 3, 1, 1)] {
        let x = random([2, ci, 9, 9], 1.0, 1, &dev);
        let wt = random([co, ci / groups, k, k], 0.5, 2, &dev);
        let options = ConvOptions::new([s, s], [k / 2, k / 2], [1, 1], groups);
        let burn = values(conv2d(x.clone(), wt.clone(), None, options));
        let kiln = values(conv2d_no_bias(x, wt, s, k / 2, groups));
        assert_close("output", (ci, co, k, s, groups), &kiln, &burn);
    }
}

/// The supernet convolves with the centre of its largest kernel and the first channels: a
/// non-contiguous view whose gradient must land in the right places of the whole weight.
#[test]
fn a_sliced_weights_gradient_reaches_the_whole_weight() {
    let dev = device().autodiff();
    let grads_of_big = |kiln: bool| {
        let x = random([2, 3, 6, 6], 1.0, 3, &dev);
        let big = random([5, 1, 7, 7], 0.5, 4, &dev);
        let big = big.require_grad();
        let w = big.clone().slice([0..3, 0..1, 2..5, 2..5]);
        let y = if kiln {
            depthwise_conv2d(x, w, 1, 1)
        } else {
            conv2d(x, w, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 3))
        };
        let r = random(y.dims(), 1.0, 5, &dev);
        let grads = (y * r).sum().backward();
        values(big.grad(&grads).expect("the whole weight has a gradient"))
    };
    let (kiln, burn) = (grads_of_big(true), grads_of_big(false));
    assert_close(
        "sliced weight gradient",
        "5x7x7[0..3, 2..5, 2..5]",
        &kiln,
        &burn,
    );
    assert!(
        kiln.iter().any(|&v| v != 0.0),
        "the gradient is not all zero"
    );
}

#[test]
fn the_threads_do_not_change_a_bit() {
    let case = (4, 16, 14, 14, 7, 1);
    let on = |threads| {
        with_threads(threads, || run(case, true, &device().autodiff())).expect("a thread pool")
    };
    let (one, three) = (on(1), on(3));
    assert_eq!(one.y, three.y, "output");
    assert_eq!(one.dx, three.dx, "input gradient");
    assert_eq!(one.dw, three.dw, "weight gradient");
}

#[test]
fn pointwise_output_and_gradients_equal_burns_conv() {
    let dev = device().autodiff();
    for (n, c, o, h, w) in [(2, 3, 5, 4, 6), (3, 16, 96, 7, 7), (1, 8, 4, 1, 1)] {
        let seed = (n * 100 + c * 10 + o) as u64;
        let run = |kiln: bool| {
            let x = random([n, c, h, w], 1.0, seed, &dev).require_grad();
            let wt = random([o, c, 1, 1], 0.5, seed + 1, &dev).require_grad();
            let y = if kiln {
                pointwise_conv2d(x.clone(), wt.clone())
            } else {
                conv2d(
                    x.clone(),
                    wt.clone(),
                    None,
                    ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
                )
            };
            let r = random(y.dims(), 1.0, seed + 2, &dev);
            let grads = (y.clone() * r).sum().backward();
            Outcome {
                y: values(y),
                dx: values(x.grad(&grads).expect("x has a gradient")),
                dw: values(wt.grad(&grads).expect("w has a gradient")),
            }
        };
        let (kiln, burn) = (run(true), run(false));
        let case = (n, c, o, h, w);
        assert_close("pointwise output", case, &kiln.y, &burn.y);
        assert_close("pointwise input gradient", case, &kiln.dx, &burn.dx);
        assert_close("pointwise weight gradient", case, &kiln.dw, &burn.dw);
    }
}

//! kiln-train's training activations against burn's, their reference twin: relu6 (burn's
//! `clamp(0, 6)`) and hard swish (burn's `hard_swish`) give the same output and the same input
//! gradient on the training backend over inputs that cover every piece of both functions.

use burn::tensor::Device;
use burn::tensor::activation::hard_swish;
use kiln_space::Activation;
use kiln_train::{activate, device};

mod common;
use common::{assert_close, random, values};

/// Output and input gradient of `sum(f(x) * r)`, `x` uniform in `[-8, 8)` (below, inside and
/// above both functions' bends), through kiln's op or burn's.
fn run(a: Activation, shape: [usize; 4], kiln: bool, dev: &Device) -> (Vec<f32>, Vec<f32>) {
    let x = random(shape, 8.0, 11, dev).require_grad();
    let y = match (kiln, a) {
        (true, a) => activate(x.clone(), a),
        (false, Activation::Relu6) => x.clone().clamp(0.0, 6.0),
        (false, Activation::Hswish) => hard_swish(x.clone()),
    };
    let r = random(shape, 1.0, 12, dev);
    let grads = (y.clone() * r).sum().backward();
    (values(y), values(x.grad(&grads).expect("x has a gradient")))
}

#[test]
fn output_and_gradient_equal_burns() {
    let dev = device().autodiff();
    for a in [Activation::Relu6, Activation::Hswish] {
        for shape in [[2, 3, 5, 4], [16, 24, 14, 14]] {
            let (kiln, burn) = (run(a, shape, true, &dev), run(a, shape, false, &dev));
            let case = (a, shape);
            assert_close("output", case, &kiln.0, &burn.0);
            assert_close("input gradient", case, &kiln.1, &burn.1);
            assert!(
                kiln.1.contains(&0.0) && kiln.1.iter().any(|&g| g != 0.0),
                "{case:?}: the inputs reach the flat and the sloped pieces"
            );
        }
    }
}

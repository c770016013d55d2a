//! The supernet's forward pass under soft choices: every decision a weighted mixture of
//! its options (the Gumbel-softmax sample of FBNet, Wu et al., 2019), run on the shared
//! weights at their largest as FBNetV2 does (Wan et al., 2020): a width or expand ratio
//! is a soft mask over channels, a kernel size a soft mask over the largest kernel's
//! taps, a depth a soft weight on each optional block's residual branch, squeeze-excite
//! and activations weighted sums of their options. Batch norm uses the batch's
//! statistics (the supernet's weights stay frozen; only the choice weights learn).
//!
//! With every weight one-hot the pass computes exactly the chosen sub-network (tested
//! against [`SuperNet::forward`]). In between, the first block of a stride-1 stage adds
//! its input weighted by the probability that its two widths match.

use burn::tensor::activation::{hard_swish, relu, sigmoid};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use kiln_space::Activation;

use super::cost::DecisionIndex;
use crate::bn::BnContext;
use crate::net::{SuperConv, SuperSe};
use crate::{SuperNet, SupernetError};

/// `[max]`: channel c weighted by the total weight of the options whose width exceeds c.
fn mask(g: &Tensor<1>, widths: &[usize], max: usize, device: &Device) -> Tensor<1> {
    let n = widths.len();
    let m: Vec<f32> = (0..max)
        .flat_map(|c| widths.iter().map(move |&w| f32::from(u8::from(c < w))))
        .collect();
    let m = Tensor::<2>::from_data(TensorData::new(m, [max, n]), device);
    m.matmul(g.clone().reshape([n, 1])).reshape([max])
}

/// Option `i`'s weight as a `[1, 1, 1, 1]` tensor.
fn pick(g: &Tensor<1>, i: usize) -> Tensor<4> {
    g.clone().narrow(0, i, 1).reshape([1, 1, 1, 1])
}

/// `x` with channel c scaled by `m[c]`.
fn scale(x: Tensor<4>, m: Tensor<1>) -> Tensor<4> {
    let c = m.dims()[0];
    x * m.reshape([1, c, 1, 1])
}

/// `x`'s channels cut or zero-padded to `c`.
fn fit(x: Tensor<4>, c: usize) -> Tensor<4> {
    let [n, have, h, w] = x.dims();
    if have >= c {
        return x.narrow(1, 0, c);
    }
    let zeros = Tensor::<4>::zeros([n, c - have, h, w], &x.device());
    Tensor::cat(vec![x, zeros], 1)
}

fn activate(y: Tensor<4>, a: Activation) -> Tensor<4> {
    match a {
        Activation::Relu6 => y.clamp(0.0, 6.0),
        Activation::Hswish => hard_swish(y),
    }
}

/// A conv at its largest (weight `w`), batch norm over the batch, then the activations of
/// `options` mixed by `g`, each after the gamma and beta it has in `sc`
/// ([`SuperConv::affine`]).
fn conv_bn_mixed(
    sc: &SuperConv,
    w: Tensor<4>,
    x: Tensor<4>,
    (stride, groups): (usize, usize),
    bn: &mut BnContext,
    g: &Tensor<1>,
    options: &[Activation],
) -> Result<Tensor<4>, SupernetError> {
    let y = conv_at_largest(w, x, stride, groups);
    let c = y.dims()[1];
    // one pair: batch norm as everywhere else; a pair per activation: normalised once,
    // each activation then scaling and shifting it with its own
    let own = sc.hswish_affine.is_some();
    let [gamma, beta] = match own {
        true => [
            Tensor::ones([c], &y.device()),
            Tensor::zeros([c], &y.device()),
        ],
        false => sc.affine(None, c),
    };
    let normalised = bn.apply("soft", y, gamma, beta)?;
    let mut out: Option<Tensor<4>> = None;
    for (i, &a) in options.iter().enumerate() {
        let z = match own {
            true => {
                let [gamma, beta] = sc.affine(Some(a), c);
                normalised.clone() * gamma.reshape([1, c, 1, 1]) + beta.reshape([1, c, 1, 1])
            }
            false => normalised.clone(),
        };
        let t = activate(z, a) * pick(g, i);
        out = Some(match out {
            Some(o) => o + t,
            None => t,
        });
    }
    Ok(out.unwrap_or(normalised))
}

/// A conv at its largest (weight `w`, padding half its kernel), no bias.
fn conv_at_largest(w: Tensor<4>, x: Tensor<4>, stride: usize, groups: usize) -> Tensor<4> {
    let k = w.dims()[2];
    let options = ConvOptions::new([stride, stride], [k / 2, k / 2], [1, 1], groups);
    conv2d(x, w, None, options)
}

/// A conv at its largest (weight `w`), then batch norm over the batch.
fn conv_bn(
    sc: &SuperConv,
    w: Tensor<4>,
    x: Tensor<4>,
    stride: usize,
    groups: usize,
    bn: &mut BnContext,
) -> Result<Tensor<4>, SupernetError> {
    let y = conv_at_largest(w, x, stride, groups);
    let [gamma, beta] = sc.affine(None, y.dims()[1]);
    bn.apply("soft", y, gamma, beta)
}

/// Squeeze-excite at its largest, hidden unit j weighted by `hidden[j]` (the weight of
/// the choices whose bottleneck is wider than j), so a hard choice computes exactly the
/// sub-network's gate.
fn squeeze_excite(ss: &SuperSe, x: Tensor<4>, hidden: Tensor<1>) -> Tensor<4> {
    let pooled = x.clone().mean_dim(3).mean_dim(2);
    let one = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
    let c = x.dims()[1];
    let [r, _, _, _] = ss.reduce_weight.val().dims();
    let reduced = conv2d(
        pooled,
        ss.reduce_weight.val().narrow(1, 0, c),
        Some(ss.reduce_bias.val()),
        one.clone(),
    );
    let gate = conv2d(
        scale(relu(reduced), hidden),
        ss.expand_weight.val().slice([0..c, 0..r, 0..1, 0..1]),
        Some(ss.expand_bias.val().narrow(0, 0, c)),
        one,
    );
    x * sigmoid(gate)
}

/// The summed weight of the options of `g` for which `keep` holds, `[1, 1, 1, 1]`
/// (zero when none does).
fn weight_of(g: &Tensor<1>, keep: impl Fn(usize) -> bool) -> Tensor<4> {
    let n = g.dims()[0];
    let m: Vec<f32> = (0..n).map(|i| f32::from(u8::from(keep(i)))).collect();
    let m = Tensor::<1>::from_data(TensorData::new(m, [n]), &g.device());
    (g.clone() * m).sum().reshape([1, 1, 1, 1])
}

/// Logits `[n, classes]` of the soft network for images `[n, C, H, W]`: `g[d]` holds
/// decision `d`'s option weights (`Space::choice_counts` order, each summing to 1).
///
/// Errors: [`SupernetError::Stats`] cannot happen in batch mode; tensor errors.
pub(crate) fn forward(
    net: &SuperNet,
    g: &[Tensor<1>],
    images: Tensor<4>,
) -> Result<Tensor<2>, SupernetError> {
    let space = &net.space;
    let ix = DecisionIndex::of(space);
    let device = images.device();
    let mut bn = BnContext::batch();
    let stem_max = net.stem.weight.val().dims()[0];
    let y = conv_bn(
        &net.stem,
        net.stem.weight.val(),
        images,
        space.stem.stride,
        1,
        &mut bn,
    )?;
    let mut x = scale(
        activate(y, space.stem.activation),
        mask(&g[0], &space.stem.widths, stem_max, &device),
    );
    let (mut prev, mut prev_widths) = (0, space.stem.widths.clone());
    for (i, s) in space.stages.iter().enumerate() {
        let slots = s.depth.iter().copied().max().unwrap_or(0);
        let gw = &g[ix.width(i)];
        let out_max = s.widths.iter().copied().max().unwrap_or(0);
        let out_mask = mask(gw, &s.widths, out_max, &device);
        for j in 0..slots {
            let sb = &net.blocks[net.block_index(i, j)];
            let [gk, ge, gs, ga] = ix.block(i, j).map(|d| &g[d]);
            let (g_in, in_widths) = if j == 0 {
                (&g[prev], prev_widths.as_slice())
            } else {
                (gw, s.widths.as_slice())
            };
            let stride = if j == 0 { s.stride } else { 1 };
            let mid_max = sb.depthwise.weight.val().dims()[0];
            // expand: ratio 1 passes the input on, the others the expand conv's first
            // in_width x ratio channels; the mask keeps the depthwise's channels to match
            let expanded = match &sb.expand {
                Some(se) => Some(conv_bn_mixed(
                    se,
                    se.weight.val(),
                    x.clone(),
                    (1, 1),
                    &mut bn,
                    ga,
                    &s.activations,
                )?),
                None => None,
            };
            let (mut mid, mut mid_mask): (Option<Tensor<4>>, Option<Tensor<1>>) = (None, None);
            // squeeze-excite's hidden units, weighted as the depthwise's channels are
            let se_max = sb
                .se
                .as_ref()
                .map_or(0, |ss| ss.reduce_weight.val().dims()[0]);
            let mut hidden: Option<Tensor<1>> = None;
            for (e, &ratio) in s.expand.iter().enumerate() {
                let widths: Vec<usize> = in_widths.iter().map(|w| w * ratio).collect();
                if se_max > 0 {
                    let reduced: Vec<usize> =
                        widths.iter().map(|&w| kiln_space::se_reduced(w)).collect();
                    let h = mask(g_in, &reduced, se_max, &device) * ge.clone().narrow(0, e, 1);
                    hidden = Some(hidden.map_or(h.clone(), |o| o + h));
                }
                let m = mask(g_in, &widths, mid_max, &device) * ge.clone().narrow(0, e, 1);
                let t = match (&expanded, ratio) {
                    (Some(y), r) if r > 1 => scale(y.clone(), m.clone()),
                    _ => fit(x.clone(), mid_max) * pick(ge, e),
                };
                mid = Some(mid.map_or(t.clone(), |o| o + t));
                mid_mask = Some(mid_mask.map_or(m.clone(), |o| o + m));
            }
            let mid_mask = mid_mask.unwrap_or_else(|| Tensor::ones([mid_max], &device));
            let mid = mid.unwrap_or_else(|| fit(x.clone(), mid_max));
            // depthwise: the largest kernel with each size's taps weighted
            let w = sb.depthwise.weight.val();
            let k_max = w.dims()[2];
            let taps = kernel_mask(gk, &s.kernels, k_max, &device);
            let (dw, acts) = (&sb.depthwise, &s.activations);
            let y = conv_bn_mixed(dw, w * taps, mid, (stride, mid_max), &mut bn, ga, acts)?;
            let mut y = scale(y, mid_mask);
            if let (Some(ss), Some(hidden)) = (&sb.se, hidden) {
                // every option that turns it on, and every one that leaves it off
                let with = squeeze_excite(ss, y.clone(), hidden);
                y = with * weight_of(gs, |i| s.se[i]) + y * weight_of(gs, |i| !s.se[i]);
            }
            let p = sb.project.weight.val();
            let y = conv_bn(&sb.project, p.clone(), y, 1, 1, &mut bn)?;
            let y = scale(y, out_mask.clone());
            x = if j == 0 {
                match stride == 1 {
                    true => y + fit(x, out_max) * same_width(g_in, in_widths, gw, &s.widths),
                    false => y,
                }
            } else {
                // slot j runs when the depth is above j
                let gd = &g[ix.depth(i)];
                let present: Vec<f32> = s
                    .depth
                    .iter()
                    .map(|&d| f32::from(u8::from(d > j)))
                    .collect();
                let n = present.len();
                let present = Tensor::<1>::from_data(TensorData::new(present, [n]), &device);
                let p = (gd.clone() * present).sum().reshape([1, 1, 1, 1]);
                x.clone() + y * p
            };
        }
        (prev, prev_widths) = (ix.width(i), s.widths.clone());
    }
    head(net, &g[ix.head], x, &mut bn)
}

/// `[1, 1, k_max, k_max]`: each tap weighted by the weight of the kernel sizes that
/// cover it (a k x k kernel is the centre of the largest).
fn kernel_mask(g: &Tensor<1>, kernels: &[usize], k_max: usize, device: &Device) -> Tensor<4> {
    let n = kernels.len();
    let mut m = Vec::with_capacity(k_max * k_max * n);
    for y in 0..k_max {
        for x in 0..k_max {
            for &k in kernels {
                let off = (k_max - k) / 2;
                let inside = (off..off + k).contains(&y) && (off..off + k).contains(&x);
                m.push(f32::from(u8::from(inside)));
            }
        }
    }
    let m = Tensor::<2>::from_data(TensorData::new(m, [k_max * k_max, n]), device);
    m.matmul(g.clone().reshape([n, 1]))
        .reshape([1, 1, k_max, k_max])
}

/// The weight of the input and output widths being equal (a residual then exists).
fn same_width(g_in: &Tensor<1>, w_in: &[usize], g_out: &Tensor<1>, w_out: &[usize]) -> Tensor<4> {
    let mut sum: Option<Tensor<1>> = None;
    for (a, wa) in w_in.iter().enumerate() {
        for (b, wb) in w_out.iter().enumerate() {
            if wa == wb {
                let t = g_in.clone().narrow(0, a, 1) * g_out.clone().narrow(0, b, 1);
                sum = Some(sum.map_or(t.clone(), |s| s + t));
            }
        }
    }
    match sum {
        Some(s) => s.reshape([1, 1, 1, 1]),
        None => Tensor::zeros([1, 1, 1, 1], &g_in.device()),
    }
}

/// The head (each width's channels weighted, width 0 the last stage's features) and the
/// classifier on the pooled features.
fn head(
    net: &SuperNet,
    gh: &Tensor<1>,
    x: Tensor<4>,
    bn: &mut BnContext,
) -> Result<Tensor<2>, SupernetError> {
    let space = &net.space;
    let device = x.device();
    let classes = net.input.classes;
    let bias = net.classifier_bias.val().reshape([1, classes]);
    let classify = |f: Tensor<4>| {
        let [n, c, _, _] = f.dims();
        let pooled = f.mean_dim(3).mean_dim(2).reshape([n, c]);
        let w = net.classifier_weight.val().slice([0..c, 0..classes]);
        pooled.matmul(w)
    };
    let mut logits = bias;
    if let Some(z) = space.head.widths.iter().position(|&w| w == 0) {
        let w0 = gh.clone().narrow(0, z, 1).reshape([1, 1]);
        logits = logits + classify(x.clone()) * w0;
    }
    if let Some(sh) = &net.head {
        let max = sh.weight.val().dims()[0];
        let y = conv_bn(sh, sh.weight.val(), x, 1, 1, bn)?;
        let y = activate(y, space.head.activation);
        logits = logits + classify(scale(y, mask(gh, &space.head.widths, max, &device)));
    }
    Ok(logits)
}

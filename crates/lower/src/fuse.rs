//! Peephole fusion on the IR: folds what tract leaves after a conv or dense
//! layer (per-channel scale/shift from batch norm, activations written as
//! Max/Min with constants) into the layer, so one kernel call does it all.

use kiln_ir::{Activation, BinaryOp, Graph, OpKind, Operand};

/// Runs all rewrites until none applies.
pub(crate) fn fuse(g: &mut Graph) {
    loop {
        let changed = drop_unread(g) | clip_from_max_min(g) | fold_into_producer(g);
        if !changed {
            break;
        }
    }
}

/// Removes ops whose output nothing reads (e.g. the multiplication tract
/// wires for PRelu's negative branch once the PRelu reads its operand).
fn drop_unread(g: &mut Graph) -> bool {
    let counts = g.consumer_counts();
    let before = g.ops.len();
    g.ops
        .retain(|op| counts[op.output] > 0 || matches!(op.kind, OpKind::Input));
    g.ops.len() != before
}

/// Max(x, a) -> Clip{a, inf}, Min(x, b) -> Clip{-inf, b}; Clip{0, inf} -> Relu.
fn clip_from_max_min(g: &mut Graph) -> bool {
    let mut changed = false;
    for op in &mut g.ops {
        if let OpKind::Binary {
            op: bop @ (BinaryOp::Max | BinaryOp::Min),
            rhs: Operand::Scalar(s),
            ..
        } = op.kind
        {
            let act = if bop == BinaryOp::Max {
                Activation::Clip {
                    min: s,
                    max: f32::INFINITY,
                }
            } else {
                Activation::Clip {
                    min: f32::NEG_INFINITY,
                    max: s,
                }
            };
            op.kind = OpKind::Activation(normalise(act));
            changed = true;
        }
    }
    changed
}

fn normalise(act: Activation) -> Activation {
    match act {
        Activation::Clip { min, max } if min == 0.0 && max == f32::INFINITY => Activation::Relu,
        a => a,
    }
}

/// Merges two activations applied one after the other, when expressible.
fn compose(first: Activation, then: Activation) -> Option<Activation> {
    let bounds = |a: Activation| match a {
        Activation::None => Some((f32::NEG_INFINITY, f32::INFINITY)),
        Activation::Relu => Some((0.0, f32::INFINITY)),
        Activation::Clip { min, max } => Some((min, max)),
        _ => None,
    };
    match (first, then) {
        (Activation::None, t) => Some(t),
        (f, Activation::None) => Some(f),
        _ => {
            let ((a0, a1), (b0, b1)) = (bounds(first)?, bounds(then)?);
            // clamp(clamp(x, a0, a1), b0, b1) is clamp(x, max(a0,b0), min(a1,b1)) when the ranges overlap
            (a0.max(b0) <= a1.min(b1)).then(|| {
                normalise(Activation::Clip {
                    min: a0.max(b0),
                    max: a1.min(b1),
                })
            })
        }
    }
}

/// Folds op j into the op producing its only input, when that producer is a
/// conv/dense/activation and the intermediate tensor has no other reader.
fn fold_into_producer(g: &mut Graph) -> bool {
    let counts = g.consumer_counts();
    let producers = g.producers();
    for j in 0..g.ops.len() {
        let data = match g.ops[j].inputs.first() {
            Some(d) => *d,
            None => continue,
        };
        if counts[data] != 1 || data == g.output {
            continue;
        }
        let Some(i) = producers[data] else { continue };
        let consumer = g.ops[j].kind.clone();
        let out = g.ops[j].output;
        let folded = match (&mut g.ops[i].kind, consumer) {
            // activation after a layer or after another clamp-like activation
            (OpKind::Conv(c), OpKind::Activation(a)) => merge_act(&mut c.act, a),
            (OpKind::Dense { act, .. }, OpKind::Activation(a)) => merge_act(act, a),
            (OpKind::Activation(first), OpKind::Activation(a)) => merge_act(first, a),
            // per-channel / scalar affine after a layer without activation
            (
                OpKind::Conv(c),
                OpKind::Binary {
                    op,
                    rhs,
                    data_is_lhs: true,
                },
            ) if c.act == Activation::None => {
                let (w, b, n) = (c.weight, c.bias, c.out_channels);
                match fold_affine(g, w, b, n, op, &rhs) {
                    Some(bias) => {
                        if let OpKind::Conv(c) = &mut g.ops[i].kind {
                            c.bias = Some(bias);
                        }
                        true
                    }
                    None => false,
                }
            }
            (
                OpKind::Dense { weight, bias, act },
                OpKind::Binary {
                    op,
                    rhs,
                    data_is_lhs: true,
                },
            ) if *act == Activation::None => {
                let (w, b) = (*weight, *bias);
                let n = g.tensors[data].len();
                match fold_affine(g, w, b, n, op, &rhs) {
                    Some(nb) => {
                        if let OpKind::Dense { bias, .. } = &mut g.ops[i].kind {
                            *bias = Some(nb);
                        }
                        true
                    }
                    None => false,
                }
            }
            (
                OpKind::GlobalSumPool { scale },
                OpKind::Binary {
                    op: BinaryOp::Mul,
                    rhs: Operand::Scalar(s),
                    ..
                },
            ) => {
                *scale *= s;
                true
            }
            (
                OpKind::GlobalSumPool { scale },
                OpKind::Binary {
                    op: BinaryOp::Div,
                    rhs: Operand::Scalar(s),
                    data_is_lhs: true,
                },
            ) => {
                *scale /= s;
                true
            }
            _ => false,
        };
        if folded {
            g.ops[i].output = out;
            g.ops.remove(j);
            return true;
        }
    }
    false
}

fn merge_act(slot: &mut Activation, then: Activation) -> bool {
    match compose(*slot, then) {
        Some(a) => {
            *slot = a;
            true
        }
        None => false,
    }
}

/// y = (x W + b) op k per output channel, rewritten into W' and b'. Returns the
/// new bias constant, or None when `op`/`rhs` is not affine per channel.
fn fold_affine(
    g: &mut Graph,
    weight: usize,
    bias: Option<usize>,
    n: usize,
    op: BinaryOp,
    rhs: &Operand,
) -> Option<usize> {
    let k: Vec<f32> = match rhs {
        Operand::Scalar(s) => vec![*s; n],
        Operand::ChannelConst(c) if g.constants[*c].data.len() == n => g.constants[*c].data.clone(),
        _ => return None,
    };
    if op == BinaryOp::Div && k.contains(&0.0) {
        return None;
    }
    let mut b = match bias {
        Some(b) => g.constants[b].data.clone(),
        None => vec![0.0; n],
    };
    match op {
        BinaryOp::Add => b.iter_mut().zip(&k).for_each(|(b, k)| *b += k),
        BinaryOp::Sub => b.iter_mut().zip(&k).for_each(|(b, k)| *b -= k),
        BinaryOp::Mul | BinaryOp::Div => {
            let f: Vec<f32> = k
                .iter()
                .map(|k| if op == BinaryOp::Mul { *k } else { 1.0 / k })
                .collect();
            b.iter_mut().zip(&f).for_each(|(b, f)| *b *= f);
            // weights are [out, ...] for both conv (OIHW) and dense ([out, in])
            let w = &mut g.constants[weight].data;
            let per_out = w.len() / n;
            for (o, row) in w.chunks_exact_mut(per_out).enumerate() {
                row.iter_mut().for_each(|v| *v *= f[o]);
            }
        }
        BinaryOp::Max | BinaryOp::Min | BinaryOp::PRelu => return None,
    }
    let name = format!("{}.folded_bias", g.constants[weight].name);
    Some(g.add_constant(name, vec![n], b))
}

//! Arena planning: every activation tensor gets an offset in one f32 arena.
//!
//! Tensors first merge into buffers: a reshape that keeps storage shares its
//! input's buffer, and an element-wise op whose data input dies at that op
//! writes over it (in place). Buffers are then placed greedily, largest first,
//! each at the lowest offset that does not collide with an already placed
//! buffer whose lifetime overlaps (first fit over lifetimes, as TinyEngine and
//! TFLite Micro do). The lower bound is the largest total size of buffers live
//! at the same op: no placement of these buffers can use less.

use crate::{Graph, TensorId};

/// Why a graph cannot be planned.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// An op reads tensor `.0` (named `.1`) before any op has written it: the
    /// schedule is out of order or the tensor is never produced.
    #[error("tensor t{0} ({1}) is read but no op produces it")]
    Unproduced(TensorId, String),
}

/// Where each tensor lives; sizes and offsets in f32 elements (4 bytes each),
/// over each tensor's storage (NHWC for images, see [`crate::Tensor`]; an i8
/// tensor takes a quarter, [`crate::Tensor::storage_len`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ArenaPlan {
    /// Offset of each tensor in the arena (elements), indexed by tensor id;
    /// 0 for a tensor no op produces.
    pub offsets: Vec<usize>,
    /// Buffer index of each tensor; tensors sharing a buffer share memory
    /// (`usize::MAX` for a tensor no op produces).
    pub buffer_of: Vec<usize>,
    /// Arena length (elements).
    pub arena_len: usize,
    /// Largest total of buffers live at once (elements).
    pub lower_bound: usize,
    /// For each op (by index), whether it runs in place (its output shares
    /// its data input's buffer).
    pub in_place: Vec<bool>,
}

impl ArenaPlan {
    /// Arena size in bytes (`arena_len` f32 elements).
    pub fn arena_bytes(&self) -> usize {
        self.arena_len * 4
    }
    /// [`ArenaPlan::lower_bound`] in bytes.
    pub fn lower_bound_bytes(&self) -> usize {
        self.lower_bound * 4
    }
}

struct Buffer {
    len: usize,
    start: usize,
    end: usize,
    members: Vec<TensorId>,
}

/// Plans the arena of `graph`: merges tensors into buffers (aliasing
/// reshapes, in-place element-wise ops) and places the buffers first fit,
/// largest first.
///
/// # Errors
/// [`PlanError::Unproduced`] when an op reads a tensor no earlier op writes.
pub fn plan(graph: &Graph) -> Result<ArenaPlan, PlanError> {
    let last = graph.last_uses();
    let n_ops = graph.ops.len();
    let mut buffer_of: Vec<Option<usize>> = vec![None; graph.tensors.len()];
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut in_place = vec![false; n_ops];
    let end_of = |t: TensorId, def: usize| last[t].unwrap_or(def);

    for (i, op) in graph.ops.iter().enumerate() {
        for t in op.reads() {
            if buffer_of[t].is_none() {
                return Err(PlanError::Unproduced(t, graph.tensors[t].name.clone()));
            }
        }
        let out = op.output;
        let out_end = end_of(out, i);
        let shared = if let Some(&data) = op.inputs.first() {
            let b = buffer_of[data].expect("checked above");
            let same_len = graph.tensors[data].storage_len() == graph.tensors[out].storage_len();
            let rhs_elsewhere = op.reads().iter().skip(1).all(|t| buffer_of[*t] != Some(b));
            let all_die_here = buffers[b].members.iter().all(|m| end_of(*m, i) <= i);
            if op.is_alias(graph) {
                Some(b)
            } else if op.can_run_in_place() && same_len && rhs_elsewhere && all_die_here {
                in_place[i] = true;
                Some(b)
            } else {
                None
            }
        } else {
            None
        };
        match shared {
            Some(b) => {
                let buf = &mut buffers[b];
                buf.len = buf.len.max(graph.tensors[out].storage_len());
                buf.end = buf.end.max(out_end);
                buf.members.push(out);
                buffer_of[out] = Some(b);
            }
            None => {
                buffers.push(Buffer {
                    len: graph.tensors[out].storage_len(),
                    start: i,
                    end: out_end,
                    members: vec![out],
                });
                buffer_of[out] = Some(buffers.len() - 1);
            }
        }
    }

    // lower bound: largest sum of live buffers at one op
    let mut live = vec![0usize; n_ops + 1];
    for b in &buffers {
        for l in &mut live[b.start..=b.end.min(n_ops)] {
            *l += b.len;
        }
    }
    let lower_bound = live.into_iter().max().unwrap_or(0);

    // greedy placement, largest buffers first
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by(|&a, &b| {
        buffers[b]
            .len
            .cmp(&buffers[a].len)
            .then(buffers[a].start.cmp(&buffers[b].start))
    });
    let mut placed: Vec<(usize, usize)> = Vec::new(); // (buffer, offset)
    let mut buf_offset = vec![0usize; buffers.len()];
    let mut arena_len = 0;
    for &b in &order {
        let me = &buffers[b];
        let mut conflicts: Vec<(usize, usize)> = placed
            .iter()
            .filter(|(o, _)| buffers[*o].start <= me.end && me.start <= buffers[*o].end)
            .map(|(o, off)| (*off, *off + buffers[*o].len))
            .collect();
        conflicts.sort_unstable();
        let mut offset = 0;
        for (lo, hi) in conflicts {
            if offset + me.len <= lo {
                break;
            }
            offset = offset.max(hi);
        }
        buf_offset[b] = offset;
        arena_len = arena_len.max(offset + me.len);
        placed.push((b, offset));
    }

    let buffer_of: Vec<usize> = buffer_of
        .into_iter()
        .map(|b| b.unwrap_or(usize::MAX))
        .collect();
    let offsets = buffer_of
        .iter()
        .map(|&b| if b == usize::MAX { 0 } else { buf_offset[b] })
        .collect();
    Ok(ArenaPlan {
        offsets,
        buffer_of,
        arena_len,
        lower_bound,
        in_place,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, BinaryOp, Graph, Op, OpKind, Operand};

    fn op(kind: OpKind, inputs: Vec<TensorId>, output: TensorId) -> Op {
        Op {
            node: format!("n{output}"),
            kind,
            inputs,
            output,
        }
    }

    /// Checks that no two tensors whose lifetimes overlap share memory unless
    /// they are in the same buffer.
    fn assert_no_collisions(g: &Graph, p: &ArenaPlan) {
        let last = g.last_uses();
        let prod = g.producers();
        for a in 0..g.tensors.len() {
            for b in a + 1..g.tensors.len() {
                let (Some(sa), Some(sb)) = (prod[a], prod[b]) else {
                    continue;
                };
                let (ea, eb) = (last[a].unwrap_or(sa), last[b].unwrap_or(sb));
                let time = sa <= eb && sb <= ea;
                let mem = p.offsets[a] < p.offsets[b] + g.tensors[b].len()
                    && p.offsets[b] < p.offsets[a] + g.tensors[a].len();
                assert!(
                    !(time && mem) || p.buffer_of[a] == p.buffer_of[b],
                    "t{a} and t{b} collide"
                );
            }
        }
    }

    /// input -> conv a -> relu (in place) -> conv b -> add(a-branch residual)
    #[test]
    fn residual_chain_reuses_memory_and_hits_the_bound() {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![1, 4, 8, 8]);
        let a = g.add_tensor("a", vec![1, 4, 8, 8]);
        let r = g.add_tensor("r", vec![1, 4, 8, 8]);
        let b = g.add_tensor("b", vec![1, 4, 8, 8]);
        let s = g.add_tensor("s", vec![1, 4, 8, 8]);
        let f = g.add_tensor("f", vec![1, 4]);
        let flat = g.add_tensor("flat", vec![1, 4]);
        g.input = x;
        g.output = flat;
        let act = OpKind::Activation(Activation::Relu);
        let add = OpKind::Binary {
            op: BinaryOp::Add,
            rhs: Operand::Tensor(r),
            data_is_lhs: true,
        };
        g.ops = vec![
            op(OpKind::Input, vec![], x),
            op(act.clone(), vec![x], a), // x dies: in place
            op(act.clone(), vec![a], r), // in place again
            op(act, vec![r], b),         // r still needed later: not in place
            op(add, vec![b], s),         // b dies: in place over b
            op(OpKind::GlobalSumPool { scale: 1.0 }, vec![s], f),
            op(OpKind::Reshape, vec![f], flat),
        ];
        let p = plan(&g).unwrap();
        assert_eq!(
            p.in_place,
            vec![false, true, true, false, true, false, false]
        );
        assert_eq!(p.buffer_of[x], p.buffer_of[r]);
        assert_eq!(p.buffer_of[f], p.buffer_of[flat]);
        assert_eq!(p.lower_bound, 256 + 256);
        assert_eq!(p.arena_len, p.lower_bound);
        assert_no_collisions(&g, &p);
    }

    #[test]
    fn dead_end_tensor_and_unproduced_input() {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![1, 10]);
        let y = g.add_tensor("y", vec![1, 10]);
        let ghost = g.add_tensor("ghost", vec![1, 10]);
        g.input = x;
        g.output = y;
        g.ops = vec![
            op(OpKind::Input, vec![], x),
            op(
                OpKind::Binary {
                    op: BinaryOp::Mul,
                    rhs: Operand::Tensor(ghost),
                    data_is_lhs: true,
                },
                vec![x],
                y,
            ),
        ];
        assert_eq!(plan(&g), Err(PlanError::Unproduced(ghost, "ghost".into())));
    }

    #[test]
    fn first_fit_fills_gaps_left_by_dead_tensors() {
        // sizes 100, 10, 100, 10 in a chain: each op reads only the previous.
        let mut g = Graph::default();
        let lens = [100, 10, 100, 10, 50];
        let ids: Vec<_> = lens
            .iter()
            .enumerate()
            .map(|(i, l)| g.add_tensor(format!("t{i}"), vec![1, *l]))
            .collect();
        g.input = ids[0];
        g.output = ids[4];
        g.ops.push(op(OpKind::Input, vec![], ids[0]));
        for w in ids.windows(2) {
            g.ops.push(op(OpKind::Reshape, vec![w[0]], w[1]));
            g.ops.last_mut().unwrap().kind = OpKind::GlobalMaxPool;
        }
        let p = plan(&g).unwrap();
        assert_eq!(p.lower_bound, 110);
        assert!(p.arena_len <= 110, "arena {}", p.arena_len);
        assert_no_collisions(&g, &p);
    }
}

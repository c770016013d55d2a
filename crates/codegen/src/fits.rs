//! Whether a generated model can be built for a target at all: its arena
//! and weights are statics, and a 32-bit target cannot hold a static of
//! more than 2 GiB (rustc's limit is `isize::MAX` of the target) or more
//! than 4 GiB of memory in all (wasm32's linear memory). Checked before
//! cargo runs, so the user reads which tensor is too big and by how much
//! instead of rustc's const-evaluation errors.

use kiln_ir::Graph;

use crate::{BuildTarget, CodegenError, Generated};

/// `(largest single static, all memory)` in bytes that `target` can hold.
fn limits(target: BuildTarget) -> (u64, u64) {
    match target {
        BuildTarget::Wasm32 => ((1 << 31) - 1, 1 << 32),
        BuildTarget::Host | BuildTarget::Aarch64Musl => (i64::MAX as u64, u64::MAX),
    }
}

/// Checks that the arena and the weights of `generated` (written for
/// `graph`) fit `target`: each under the largest static, and together with
/// the input and output buffers under the address space.
///
/// Errors: [`CodegenError::TooBig`] naming the target, what is too big, by
/// how many bytes, and the largest tensor of the arena (its ONNX name and
/// shape).
pub fn check_fits(
    graph: &Graph,
    generated: &Generated,
    target: BuildTarget,
) -> Result<(), CodegenError> {
    let (max_static, max_total) = limits(target);
    let arena = generated.plan.arena_bytes() as u64;
    let weights = generated.weight_bytes as u64;
    let io = 4 * (generated.input_len + generated.output_len) as u64;
    let largest = graph
        .tensors
        .iter()
        .max_by_key(|t| t.storage_len())
        .map(|t| {
            format!(
                "; its largest tensor is '{}' {:?}, {} bytes",
                t.name,
                t.shape,
                4 * t.storage_len() as u64
            )
        })
        .unwrap_or_default();
    let target_name = target.triple().unwrap_or("host");
    let too_big = |what: String| CodegenError::TooBig {
        target: target_name.to_string(),
        message: what,
    };
    if arena > max_static {
        return Err(too_big(format!(
            "the activation arena needs {arena} bytes, {} over the largest static the target \
             holds ({max_static} bytes){largest}",
            arena - max_static
        )));
    }
    if weights > max_static {
        return Err(too_big(format!(
            "the weights take {weights} bytes, {} over the largest static the target holds \
             ({max_static} bytes)",
            weights - max_static
        )));
    }
    let total = arena.saturating_add(weights).saturating_add(io);
    if total > max_total {
        return Err(too_big(format!(
            "arena {arena} + weights {weights} + input/output {io} bytes is {} over the \
             target's {max_total}-byte address space{largest}",
            total - max_total
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{Activation, Op, OpKind};

    /// One ReLU over a `[1, 3, 30000, 30000]` image (issue 19's example:
    /// one Conv on such an input was planned silently, then rustc failed).
    fn huge() -> (Graph, Generated) {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![1, 3, 30000, 30000]);
        let y = g.add_tensor("y", vec![1, 3, 30000, 30000]);
        g.ops.push(Op {
            node: "x".into(),
            kind: OpKind::Input,
            inputs: vec![],
            output: x,
        });
        g.ops.push(Op {
            node: "relu".into(),
            kind: OpKind::Activation(Activation::Relu),
            inputs: vec![x],
            output: y,
        });
        g.input = x;
        g.output = y;
        let plan = kiln_ir::plan(&g).expect("plans");
        let generated = Generated {
            crate_dir: "unused".into(),
            plan,
            input_len: 2_700_000_000,
            output_len: 2_700_000_000,
            weight_bytes: 0,
            kernels: vec![],
        };
        (g, generated)
    }

    #[test]
    fn an_arena_past_wasm32s_address_space_names_the_tensor_and_the_excess() {
        let (g, gen_) = huge();
        let err = check_fits(&g, &gen_, BuildTarget::Wasm32).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CodegenError::TooBig { .. }), "{msg}");
        assert!(msg.contains("wasm32-unknown-unknown"), "{msg}");
        assert!(msg.contains("10800000000 bytes"), "{msg}");
        assert!(msg.contains("[1, 3, 30000, 30000]"), "{msg}");
        assert!(msg.contains("over"), "{msg}");
        assert!(check_fits(&g, &gen_, BuildTarget::Host).is_ok());
    }
}

#!/usr/bin/env python3
"""Runs an ONNX model under onnxruntime's CPU provider on a batch of inputs.

Used by kiln-quant's tests (crates/quant/tests/ort.rs), which find the
interpreter through KILN_ORT_PYTHON, to compare kiln's int8 results with
onnxruntime's own on QDQ models (onnxruntime fuses the QDQ groups into its
integer kernels, QLinearConv etc., at its default optimisation level).
Needs the `onnxruntime` and `numpy` packages (see scripts/ort-bench.py).

Usage: ort-run.py MODEL.onnx INPUTS.f32 N

INPUTS.f32 holds N input tensors back to back, little-endian f32 in ONNX
order; the N outputs go to stdout the same way.
"""

import sys

import numpy as np
import onnxruntime as ort


def main() -> int:
    model, inputs, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in i.shape]
    x = np.fromfile(inputs, dtype="<f4").reshape([n] + shape)
    out = sys.stdout.buffer
    for k in range(n):
        y = s.run(None, {i.name: x[k]})[0]
        out.write(np.ascontiguousarray(y, dtype="<f4").tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())

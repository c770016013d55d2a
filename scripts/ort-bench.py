#!/usr/bin/env python3
"""Times one ONNX model under onnxruntime's CPU provider on one thread.

Used by `cargo bench -p kiln-codegen --bench generated_vs_tract` as its third
engine (the benchmark finds the interpreter through KILN_ORT_PYTHON). Needs
the `onnxruntime` and `numpy` packages from PyPI, for example:

    python3 -m venv /work/venv-ort && /work/venv-ort/bin/pip install onnxruntime numpy

Usage: ort-bench.py MODEL.onnx INPUT.f32 [--warmup N] [--runs N] [--profile]

INPUT.f32 holds the input tensor as little-endian f32 in ONNX (NCHW) order.
Prints one JSON line: {"min_us":..,"p50_us":..,"runs":..,"version":..}; with
--profile, also per-node times (microseconds, best run) on stderr.
"""

import argparse
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if a.profile:
        opts.enable_profiling = True
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = np.fromfile(a.input, dtype="<f4").reshape(shape)
    feed = {inp.name: x}
    for _ in range(a.warmup):
        sess.run(None, feed)
    times = []
    for _ in range(a.runs):
        t = time.perf_counter_ns()
        sess.run(None, feed)
        times.append((time.perf_counter_ns() - t) / 1e3)
    times.sort()
    print(
        json.dumps(
            {
                "min_us": times[0],
                "p50_us": times[len(times) // 2],
                "runs": len(times),
                "version": ort.__version__,
            }
        )
    )
    if a.profile:
        path = sess.end_profiling()
        with open(path) as f:
            events = json.load(f)
        best = {}
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                n = e["name"][: -len("_kernel_time")]
                op = e.get("args", {}).get("op_name", "")
                best[n] = (min(best.get(n, (1e18, op))[0], e["dur"]), op)
        for n, (us, op) in best.items():
            print(f"{us:10d} us  {op:<24} {n}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

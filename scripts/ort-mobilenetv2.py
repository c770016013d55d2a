#!/usr/bin/env python3
"""Makes the fixture of tests/cli_int8.rs: MobileNetV2-0.5 quantized by
onnxruntime's own tool (quantize_static, QDQ), four inputs, and
onnxruntime's outputs on them, which `cargo xtask run-onnx` must match.

Made once, committed with this script:

    cargo xtask export-onnx --genome spaces/mobilenetv2-0.5.json \\
        --input 3x64x64 --seed 7 -o /tmp/mobilenetv2-0.5.onnx
    $KILN_ORT_PYTHON scripts/ort-mobilenetv2.py /tmp/mobilenetv2-0.5.onnx tests/fixtures

writes, in tests/fixtures:
  mobilenetv2-0.5.ort-int8.onnx  the QDQ model (int8 activations per tensor,
                                 int8 weights per output channel, min/max)
  mobilenetv2-0.5.inputs.npy     [4, 3, 64, 64] f32, seeded uniform in [-1, 1)
  mobilenetv2-0.5.ort-out.npy    [4, 10] f32, onnxruntime's outputs (CPU
                                 provider, all graph optimisations: its
                                 integer kernels, one thread)

The f32 model has seeded random weights (He init) and no input
normalisation, so it is calibrated on 32 images of seeded uniform noise in
[-1, 1); its accuracy means nothing, only agreement does.

Settings as scripts/ort-quantize.py: quant_pre_process first, then
quantize_static with QDQ, QInt8 activations and weights, per_channel.
Needs the `onnxruntime`, `onnx` and `numpy` wheels (scripts/setup.sh makes
a venv with the pinned versions).

Usage: ort-mobilenetv2.py MODEL.onnx OUT_DIR
"""

import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

SHAPE = [1, 3, 64, 64]


class Reader(CalibrationDataReader):
    def __init__(self, name, images):
        self.it = iter([{name: x} for x in images])

    def get_next(self):
        return next(self.it, None)


def main() -> int:
    model, out = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(17)
    calibration = [rng.uniform(-1, 1, SHAPE).astype(np.float32) for _ in range(32)]
    inputs = rng.uniform(-1, 1, [4] + SHAPE[1:]).astype(np.float32)
    name = onnx.load(model).graph.input[0].name
    q = os.path.join(out, "mobilenetv2-0.5.ort-int8.onnx")
    with tempfile.TemporaryDirectory() as d:
        pre = os.path.join(d, "pre.onnx")
        quant_pre_process(model, pre, skip_symbolic_shape=True)
        quantize_static(pre, q, Reader(name, calibration),
                        quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, per_channel=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(q, opts, providers=["CPUExecutionProvider"])
    outs = np.concatenate([s.run(None, {s.get_inputs()[0].name: x[None]})[0] for x in inputs])
    np.save(os.path.join(out, "mobilenetv2-0.5.inputs.npy"), inputs)
    np.save(os.path.join(out, "mobilenetv2-0.5.ort-out.npy"), outs.astype(np.float32))
    print(f"wrote {q} ({os.path.getsize(q)} bytes); outputs {outs.shape}, argmax {outs.argmax(1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Quantizes an f32 ONNX model with onnxruntime's own tool (quantize_static,
QDQ format): the fixture kiln-lower must read as onnxruntime writes it.

Made once, committed with this script:
crates/quant/tests/fixtures/mnist-reference.ort-int8.onnx from the model of
`cargo xtask train --genome crates/train/genomes/mnist-reference.json
--epochs 10 --seed 0`, calibrated on the first 200 rows of
data/mnist_5k.csv.gz (raw pixels, as kiln's models take them; these rows mix
kiln's train and test splits, which only the calibration sees).

Needs the `onnxruntime`, `onnx` and `numpy` wheels, e.g.
    /work/venv-ort/bin/pip install onnxruntime onnx numpy

Usage: ort-quantize.py MODEL.onnx OUT.onnx [--csv data/mnist_5k.csv.gz]
       [--raw IMAGES.f32] [--images 200] [--shape 1,1,28,28]
       [--format qdq|qoperator]

--raw calibrates on the first --images images of a file of little-endian
f32 tensors of --shape back to back instead of the CSV's rows: kiln's tests
write kiln's own training split there (crates/quant/tests/ort_mobilenetv2.rs
makes its fixture so, calibrated on the images `cargo xtask quantize` uses).

The QOperator fixture (mnist-reference.ort-qop.onnx) is the same model and
calibration with --format qoperator (QLinearConv, QLinearAdd, ...).

Settings: quant_pre_process first (batch norm folded, shapes inferred),
then QDQ, int8 activations (per tensor, asymmetric) and int8 weights per
output channel (symmetric), min/max calibration: onnxruntime's defaults
apart from per_channel.
"""

import argparse
import gzip
import os
import sys
import tempfile

import numpy as np
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process


class Reader(CalibrationDataReader):
    def __init__(self, name, images):
        self.it = iter([{name: x} for x in images])

    def get_next(self):
        return next(self.it, None)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--csv", default="data/mnist_5k.csv.gz")
    ap.add_argument("--raw")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--shape", default="1,1,28,28")
    ap.add_argument("--format", choices=["qdq", "qoperator"], default="qdq")
    a = ap.parse_args()
    shape = [int(d) for d in a.shape.split(",")]
    if a.raw:
        raw = np.fromfile(a.raw, dtype="<f4").reshape([-1] + shape[1:])
        images = [raw[i][None] for i in range(min(a.images, len(raw)))]
    else:
        rows = []
        with gzip.open(a.csv, "rt") as f:
            for line in f:
                rows.append([float(v) for v in line.split(",")[:-1]])
                if len(rows) == a.images:
                    break
        images = [np.array(r, dtype=np.float32).reshape(shape) for r in rows]
    import onnx
    name = onnx.load(a.model).graph.input[0].name
    with tempfile.TemporaryDirectory() as d:
        pre = os.path.join(d, "pre.onnx")
        quant_pre_process(a.model, pre, skip_symbolic_shape=True)
        quantize_static(pre, a.out, Reader(name, images), quant_format=QuantFormat.QDQ if a.format == "qdq" else QuantFormat.QOperator,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        per_channel=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

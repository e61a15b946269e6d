#!/usr/bin/env python3
"""Build models/resnet50_v1.onnx: a timing-realistic ResNet-50 whose answer depends on its input.

The graph is the ResNet-50 shipped inside the `onnx` wheel
(onnx/backend/test/data/light/light_resnet50.onnx, opset 9, NCHW, 1000 classes). Its
weights are all one constant, so its output ignores its input. This script:

1. replaces every weight with seeded He-init random values (real initializers, not
   ConstantOfShape nodes, so ONNX Runtime can fold BatchNorm into Conv as it would for a
   real model), with the last BatchNorm of each residual branch scaled down to 0.2 so the
   network stays a smooth function of its input (top-1 stable under the tiny
   differences between two JPEG decoders);
2. makes the batch dimension symbolic ('N') on input and output and sets the Reshape
   before the classifier to [-1, 2048];
3. calibrates each BatchNorm's mean/variance, layer by layer in graph order, on a few
   generated structured images (gradients, stripes, checkerboards, circles), so that
   activations neither blow up nor die;
4. builds the classifier from the main directions of the calibration images' features
   (whitened PCA, seeded random mix) and centres it: bias = -W . mean(feature), so
   that top-1 follows how an image differs from others, not noise or one dominant
   direction.

It is NOT an ImageNet classifier: its classes are arbitrary. It is deterministic (seeded).
Usage: make_onnx_model.py [--out models/resnet50_v1.onnx] [--seed 0] [--no-check]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MEANS_RGB = np.array([123.68, 116.78, 103.94], dtype=np.float32)
INPUT = "gpu_0/data_0"
SIZE = 224
# Scale of the last BatchNorm in each residual branch (see he_weights).
RESIDUAL_SCALE = 0.2
# Feature directions the classifier reads (see pca_classifier).
PCA_COMPONENTS = 16


def source_model_path() -> str:
    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", "light_resnet50.onnx")
    if not os.path.isfile(path):
        sys.exit(f"error: {path} is missing: this onnx wheel does not ship light_resnet50.onnx")
    return path


# ---------------------------------------------------------------- structured images


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def make_image(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One 224x224 RGB uint8 image of the given kind with random parameters."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / (SIZE - 1)
    a, b = _colour(rng), _colour(rng)
    if kind == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        t = (np.cos(angle) * (x - 0.5) + np.sin(angle) * (y - 0.5)) / math.sqrt(0.5) + 0.5
        t = np.clip(t, 0, 1)
    elif kind == "stripes":
        angle = rng.uniform(0, math.pi)
        freq = rng.uniform(2, 24)
        phase = rng.uniform(0, 2 * math.pi)
        u = np.cos(angle) * x + np.sin(angle) * y
        t = (np.sin(2 * math.pi * freq * u + phase) > 0).astype(np.float32)
    elif kind == "checker":
        cells = int(rng.integers(2, 20))
        t = ((np.floor(x * cells) + np.floor(y * cells)) % 2).astype(np.float32)
    elif kind == "circle":
        cx, cy = rng.uniform(0.2, 0.8, size=2)
        r = rng.uniform(0.1, 0.45)
        soft = rng.uniform(0.005, 0.05)
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        t = np.clip((r - d) / soft + 0.5, 0, 1)
    elif kind == "rings":
        cx, cy = rng.uniform(0.3, 0.7, size=2)
        freq = rng.uniform(3, 15)
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * freq * d)
    else:
        raise ValueError(kind)
    img = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    # A little seeded noise, as a camera would add.
    img += rng.normal(0, rng.uniform(0, 12), size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


KINDS = ("gradient", "stripes", "checker", "circle", "rings")


def make_images(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [make_image(KINDS[i % len(KINDS)], rng) for i in range(count)]


def preprocess(images: list[np.ndarray]) -> np.ndarray:
    """RGB uint8 HWC images -> float32 NCHW minus the ResNet-50 RGB means (SPEC section 7)."""
    batch = np.stack(images).astype(np.float32) - MEANS_RGB
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


# ---------------------------------------------------------------- graph surgery


def weight_shapes(graph: onnx.GraphProto) -> dict[str, tuple[int, ...]]:
    """Shape of every weight: ConstantOfShape outputs and plain initializers."""
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    shapes: dict[str, tuple[int, ...]] = {}
    for n in graph.node:
        if n.op_type == "ConstantOfShape":
            shapes[n.output[0]] = tuple(int(d) for d in inits[n.input[0]])
    for name, arr in inits.items():
        if not name.endswith("__SHAPE") and name != "OC2_DUMMY_1":
            shapes[name] = tuple(arr.shape)
    return shapes


def he_weights(graph: onnx.GraphProto, shapes: dict[str, tuple[int, ...]], rng: np.random.Generator):
    """Seeded random weights for every Conv/BN/Gemm parameter, in graph order."""
    w: dict[str, np.ndarray] = {}
    for n in graph.node:
        if n.op_type == "Conv":
            shape = shapes[n.input[1]]
            fan_in = int(np.prod(shape[1:]))
            w[n.input[1]] = rng.normal(0, math.sqrt(2.0 / fan_in), size=shape).astype(np.float32)
        elif n.op_type == "BatchNormalization":
            c = shapes[n.input[1]][0]
            w[n.input[1]] = rng.uniform(0.7, 1.3, size=c).astype(np.float32)  # scale
            if "branch2c" in n.input[1]:
                # The last BatchNorm of each residual branch: a small scale keeps the
                # network close to its shortcuts. With full-scale random branches the
                # 16 blocks compound into a chaotic function whose top-1 flips on the
                # 0.2-grey-level differences between two JPEG decoders; at 0.2 it is
                # as stable as a trained ResNet and still input dependent.
                w[n.input[1]] = np.full(c, RESIDUAL_SCALE, np.float32)
            w[n.input[2]] = rng.normal(0, 0.1, size=c).astype(np.float32)  # bias
            w[n.input[3]] = np.zeros(c, np.float32)  # mean: calibrated below
            w[n.input[4]] = np.ones(c, np.float32)  # variance: calibrated below
        elif n.op_type == "Gemm":
            shape = shapes[n.input[1]]  # [1000, 2048], transB=1
            w[n.input[1]] = rng.normal(0, math.sqrt(1.0 / shape[1]), size=shape).astype(np.float32)
            w[n.input[2]] = np.zeros(shapes[n.input[2]], np.float32)
    return w


def build_model(src: onnx.ModelProto, weights: dict[str, np.ndarray], feed_names=(), extra_outputs=()):
    """The compute graph with `weights` as initializers and a symbolic batch.

    `feed_names` stay graph inputs (fed at run time: used while calibrating), and
    `extra_outputs` are exposed as outputs.
    """
    g = src.graph
    nodes = [n for n in g.node if n.op_type != "ConstantOfShape"]
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items() if k not in feed_names]
    inits.append(numpy_helper.from_array(np.array([-1, 2048], dtype=np.int64), "OC2_DUMMY_1"))
    inputs = [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 3, SIZE, SIZE])]
    inputs += [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(weights[k].shape)) for k in feed_names]
    out_name = g.output[0].name
    outputs = [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", 1000])]
    outputs += [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in extra_outputs]
    graph = helper.make_graph(nodes, "resnet50_v1", inputs, outputs, inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 9)],
        producer_name="loadgen models/make_onnx_model.py",
        producer_version="1",
    )
    model.ir_version = 4  # initializers need not be graph inputs (so ORT may fold them)
    return model


def session(model: onnx.ModelProto, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Serialised models above 2 GB would need external data; ResNet-50 is ~100 MB.
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def calibrate(src, weights, calib: np.ndarray, threads: int) -> None:
    """Set each BatchNorm's mean/variance from its input statistics, in graph order.

    All means/variances are graph inputs of one calibration session, so each step only
    feeds the values calibrated so far and fetches the next BatchNorm's input.
    """
    bns = [n for n in src.graph.node if n.op_type == "BatchNormalization"]
    feeds = [k for n in bns for k in (n.input[3], n.input[4])]
    model = build_model(src, weights, feed_names=feeds, extra_outputs=[n.input[0] for n in bns])
    sess = session(model, threads)
    for i, bn in enumerate(bns):
        feed = {INPUT: calib}
        feed.update({k: weights[k] for k in feeds})
        (x,) = sess.run([bn.input[0]], feed)
        mean = x.mean(axis=(0, 2, 3), dtype=np.float64)
        var = x.var(axis=(0, 2, 3), dtype=np.float64)
        weights[bn.input[3]] = mean.astype(np.float32)
        weights[bn.input[4]] = np.maximum(var, 1e-6).astype(np.float32)
        if (i + 1) % 10 == 0 or i + 1 == len(bns):
            print(f"  calibrated BatchNorm {i + 1}/{len(bns)}", flush=True)


def pca_classifier(src, weights, calib: np.ndarray, threads: int, rng: np.random.Generator) -> None:
    """Classifier on the pooled features' main directions, centred.

    W = R . P, where P holds the top PCA_COMPONENTS principal directions of the
    calibration images' 2048-d features, whitened, and R is seeded random: the logits
    depend on how an image differs from the others, not on directions where only noise
    lives, so the top-1 is stable under small input changes. Bias = -W . mean feature.
    """
    gemm = next(n for n in src.graph.node if n.op_type == "Gemm")
    model = build_model(src, weights, extra_outputs=[gemm.input[0]])
    (feat,) = session(model, threads).run([gemm.input[0]], {INPUT: calib})
    feat = feat.reshape(len(feat), -1).astype(np.float64)
    mean = feat.mean(axis=0)
    _, sing, vt = np.linalg.svd(feat - mean, full_matrices=False)
    k = min(PCA_COMPONENTS, len(sing))
    whitened = vt[:k] / (sing[:k, None] / math.sqrt(len(feat)) + 1e-12)
    w = rng.normal(0, 1, size=(weights[gemm.input[1]].shape[0], k)) @ whitened
    weights[gemm.input[1]] = w.astype(np.float32)
    weights[gemm.input[2]] = (-(w @ mean)).astype(np.float32)


def check(path: str, threads: int, seed: int) -> int:
    """Batch 8 equals 8 single runs, and varied inputs give varied classes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = preprocess(make_images(40, seed + 1000))
    batch = sess.run(None, {name: x[:8]})[0]
    singles = np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(8)])
    diff = float(np.abs(batch - singles).max())
    same_top1 = bool((batch.argmax(1) == singles.argmax(1)).all())
    print(f"check: batch 8 vs 8 single runs: same top-1 {same_top1}, max |diff| {diff:.3g}")
    top1 = np.concatenate([sess.run(None, {name: x[i : i + 8]})[0].argmax(1) for i in range(0, 40, 8)])
    distinct = len(set(top1.tolist()))
    print(f"check: {distinct} distinct top-1 classes on 40 generated images")
    ok = same_top1 and diff < 1e-4 and distinct >= 10
    if not ok:
        print("check: FAILED", file=sys.stderr)
    return 0 if ok else 1


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(here, "resnet50_v1.onnx"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calib-images", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-check", action="store_true", help="skip the self-check")
    args = ap.parse_args()

    t0 = time.time()
    src_path = source_model_path()
    src = onnx.load(src_path)
    print(f"source: {src_path} ({len(src.graph.node)} nodes)")
    rng = np.random.default_rng(args.seed)
    weights = he_weights(src.graph, weight_shapes(src.graph), rng)
    n_params = sum(v.size for v in weights.values())
    print(f"weights: {len(weights)} tensors, {n_params / 1e6:.1f} M parameters, He-init, seed {args.seed}")

    calib = preprocess(make_images(args.calib_images, args.seed))
    print(f"calibrating 53 BatchNorms on {len(calib)} generated images")
    calibrate(src, weights, calib, args.threads)
    pca_classifier(src, weights, calib, args.threads, rng)
    print(f"classifier: random mix of the top {PCA_COMPONENTS} whitened feature directions, bias centred")

    model = build_model(src, weights)
    for k, v in {
        "layout": "NCHW",
        "classes": "1000",
        "label_offset": "0",
        "preprocessing": "RGB, resize shorter side 256, centre crop 224, minus means 123.68,116.78,103.94",
        "source": "onnx wheel light_resnet50.onnx, seeded He-init weights, BatchNorm calibrated on generated images",
        "note": "timing-realistic ResNet-50 with random weights: NOT an ImageNet classifier",
        "seed": str(args.seed),
    }.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), suffix=".onnx.tmp")
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB) in {time.time() - t0:.1f} s")
    if args.no_check:
        return 0
    return check(out, args.threads, args.seed)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Make the project's TensorFlow ResNet-50: a frozen GraphDef with the MLPerf
`resnet50_v1.pb` signature, from Keras ResNet-50 with seeded random weights.

Signature (as the MLPerf model):
  input   `input_tensor`    float32 NHWC [N, 224, 224, 3] (RGB minus the ImageNet means)
  outputs `ArgMax`          int64 [N]       top-1 class, 0 = background
          `softmax_tensor`  float32 [N, 1001]

Random weights alone give the same class for every image (activations blow up or one
feature direction dominates), so the script
  1. sets every BatchNorm's moving mean/variance to the statistics of a few generated
     structured images (one forward pass in training mode with momentum 0: each layer
     then sees the already normalised output of the layers before it), and
  2. centres the classifier bias on the mean pooled feature (bias = -W^T mean),
so that the top-1 class depends on the input. It then checks that at least
--min-classes distinct ArgMax classes come out over ~40 other generated images.

Everything is seeded: the same --seed writes the same bytes.

Usage: make_tf_model.py --out models/resnet50_v1.pb [--seed N]
"""

import argparse
import hashlib
import os
import sys
import time

# Quiet TF's start-up chatter and keep results reproducible; must precede the import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

import numpy as np  # noqa: E402

H = W = 224
NUM_CLASSES = 1001
# MLPerf ResNet-50 preprocessing subtracts these RGB means from 0..255 pixels.
MEANS = np.array([123.68, 116.78, 103.94], dtype=np.float32)


def structured_images(n, seed):
    """`n` RGB 224x224 images in 0..255 (gradients, stripes, circles, checkerboards,
    with varied colours), preprocessed like MLPerf (means subtracted), NHWC float32."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    yy /= H - 1
    xx /= W - 1
    out = np.empty((n, H, W, 3), dtype=np.float32)
    for i in range(n):
        c0 = rng.uniform(0, 255, size=3).astype(np.float32)
        c1 = rng.uniform(0, 255, size=3).astype(np.float32)
        kind = i % 5
        if kind == 0:  # linear gradient at a random angle
            a = rng.uniform(0, 2 * np.pi)
            t = np.cos(a) * xx + np.sin(a) * yy
            t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        elif kind == 1:  # stripes: random frequency and angle
            a = rng.uniform(0, np.pi)
            f = rng.uniform(2, 24)
            t = 0.5 + 0.5 * np.sin(2 * np.pi * f * (np.cos(a) * xx + np.sin(a) * yy))
        elif kind == 2:  # concentric rings or a filled disc
            cx, cy = rng.uniform(0.2, 0.8, size=2)
            r = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
            if rng.rand() < 0.5:
                t = (r < rng.uniform(0.1, 0.45)).astype(np.float32)
            else:
                t = 0.5 + 0.5 * np.cos(2 * np.pi * rng.uniform(3, 15) * r)
        elif kind == 3:  # checkerboard with a random cell size
            cell = rng.randint(4, 56)
            t = ((np.floor(xx * W / cell) + np.floor(yy * H / cell)) % 2).astype(np.float32)
        else:  # blobs: a smooth random field
            g = rng.normal(size=(8, 8)).astype(np.float32)
            t = np.kron(g, np.ones((28, 28), dtype=np.float32))
            t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        img = c0 + t[..., None] * (c1 - c0)
        img += rng.normal(0, rng.uniform(0, 12), size=img.shape).astype(np.float32)
        out[i] = np.clip(img, 0, 255) - MEANS
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="where to write the frozen GraphDef (.pb)")
    ap.add_argument("--seed", type=int, default=1, help="seed for weights and images (default 1)")
    ap.add_argument("--calib", type=int, default=32, help="calibration images (default 32)")
    ap.add_argument("--check", type=int, default=40, help="check images (default 40)")
    ap.add_argument("--min-classes", type=int, default=10,
                    help="fail unless the check images give this many distinct classes")
    ap.add_argument("--threads", type=int, default=2, help="TF threads (default 2)")
    args = ap.parse_args()

    t0 = time.time()
    import tensorflow as tf
    import keras
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(args.seed)
    print(f"make_tf_model: TensorFlow {tf.__version__}, Keras {keras.__version__}, seed {args.seed}")

    model = keras.applications.ResNet50(
        weights=None,
        include_top=True,
        input_shape=(H, W, 3),
        classes=NUM_CLASSES,
        classifier_activation=None,
    )
    print(f"make_tf_model: Keras ResNet-50 with random weights, {model.count_params():,} parameters")

    # 1. BatchNorm statistics from one training-mode pass with momentum 0.
    calib = structured_images(args.calib, args.seed * 1000 + 1)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    for bn in bns:
        bn.momentum = 0.0
    # As a graph, not eagerly: TF then frees each activation once used (eager Keras
    # peaked at ~5 GB here for 32 images).
    tf.function(lambda x: model(x, training=True))(tf.constant(calib))
    for bn in bns:
        bn.momentum = 0.99
    print(f"make_tf_model: calibrated {len(bns)} BatchNorm layers on {args.calib} generated images")

    # 2. Centre the classifier on the mean pooled feature.
    features = keras.Model(model.input, model.get_layer("avg_pool").output)
    f = np.concatenate([np.asarray(features(calib[i : i + 8], training=False))
                        for i in range(0, len(calib), 8)])
    dense = model.get_layer("predictions")
    kernel, _ = dense.get_weights()
    bias = -(f.mean(axis=0) @ kernel)
    dense.set_weights([kernel, bias.astype(np.float32)])
    print("make_tf_model: classifier bias centred on the mean feature")

    # 3. The MLPerf signature, frozen.
    @tf.function(input_signature=[tf.TensorSpec([None, H, W, 3], tf.float32, name="input_tensor")])
    def serve(x):
        logits = model(x, training=False)
        probs = tf.nn.softmax(logits, name="softmax_tensor")
        top1 = tf.argmax(logits, axis=1, output_type=tf.int64, name="ArgMax")
        return {"ArgMax": top1, "softmax_tensor": probs}

    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    names = {n.name: n for n in graph_def.node}
    for want in ("input_tensor", "ArgMax", "softmax_tensor"):
        if want not in names:
            sys.exit(f"make_tf_model: the frozen graph has no node '{want}'")
    if names["input_tensor"].op != "Placeholder":
        sys.exit("make_tf_model: 'input_tensor' is not a Placeholder")

    # 4. Check the frozen graph itself: input-dependent classes.
    check = structured_images(args.check, args.seed * 1000 + 2)
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    cfg = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=1
    )
    with tf.compat.v1.Session(graph=g, config=cfg) as sess:
        runs = [sess.run(["ArgMax:0", "softmax_tensor:0"], {"input_tensor:0": check[i : i + 8]})
                for i in range(0, len(check), 8)]
    top1 = np.concatenate([r[0] for r in runs])
    probs = np.concatenate([r[1] for r in runs])
    distinct = len(set(top1.tolist()))
    print(
        f"make_tf_model: {distinct} distinct ArgMax classes over {args.check} generated images "
        f"(softmax shape {list(probs.shape)}, max prob {probs.max():.3f})"
    )
    if distinct < args.min_classes:
        sys.exit(f"make_tf_model: fewer than {args.min_classes} distinct classes; try another --seed")

    data = graph_def.SerializeToString(deterministic=True)  # map fields in a fixed order
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, args.out)
    print(
        f"make_tf_model: wrote {args.out}: {len(data) / 1e6:.1f} MB, {len(graph_def.node)} nodes, "
        f"sha256 {hashlib.sha256(data).hexdigest()[:16]}, in {time.time() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()

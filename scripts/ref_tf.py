#!/usr/bin/env python3
"""Check loadgen's `tf` backend against Python TensorFlow on the same tensors.

Runs the frozen graph (--model) on the preprocessed NHWC images that loadgen dumped
(--inputs, float32 [N,224,224,3]) and compares with loadgen's results:
  - top-1 (--top1, int [N]) equal for every image,
  - softmax (--scores, float32 [N,classes], optional) within --tol (default 1e-4),
  - at least --min-classes (default 5) distinct classes, so the check means something.
Prints a summary; exits 1 on any failure, 2 on unusable arguments.

Usage: ref_tf.py --model models/resnet50_v1.pb --inputs inputs.npy --top1 top1.npy
                 [--scores scores.npy] [--label-offset 0]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def fail_args(msg):
    print(f"ref_tf: {msg}", file=sys.stderr)
    sys.exit(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="frozen GraphDef (.pb)")
    ap.add_argument("--inputs", required=True, help=".npy float32 [N,H,W,C] as fed by loadgen")
    ap.add_argument("--top1", required=True, help=".npy int [N]: loadgen's top-1 classes")
    ap.add_argument("--scores", help=".npy float32 [N,classes]: loadgen's softmax (optional)")
    ap.add_argument("--input-name", default="input_tensor:0")
    ap.add_argument("--top1-name", default="ArgMax:0")
    ap.add_argument("--scores-name", default="softmax_tensor:0")
    ap.add_argument("--label-offset", type=int, default=0,
                    help="loadgen top-1 = graph class - this (default 0: raw indices)")
    ap.add_argument("--tol", type=float, default=1e-4, help="max abs softmax difference")
    ap.add_argument("--min-classes", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8, help="images per run (memory)")
    ap.add_argument("--threads", type=int, default=2, help="TF intra-op threads")
    args = ap.parse_args()

    for p in (args.model, args.inputs, args.top1, args.scores):
        if p and not os.path.isfile(p):
            fail_args(f"{p} does not exist")
    x = np.load(args.inputs)
    got_top1 = np.load(args.top1).astype(np.int64).reshape(-1)
    got_scores = np.load(args.scores) if args.scores else None
    if x.ndim != 4 or x.dtype != np.float32:
        fail_args(f"{args.inputs} is {x.dtype} {list(x.shape)}, not float32 [N,H,W,C]")
    n = x.shape[0]
    if got_top1.shape[0] != n:
        fail_args(f"{args.top1} has {got_top1.shape[0]} classes for {n} images")
    if got_scores is not None and got_scores.shape[0] != n:
        fail_args(f"{args.scores} has {got_scores.shape[0]} rows for {n} images")

    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    with open(args.model, "rb") as fh:
        graph_def.ParseFromString(fh.read())
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    cfg = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=1
    )
    fetch = [args.top1_name] + ([args.scores_name] if got_scores is not None else [])
    ref_top1, ref_scores = [], []
    with tf.compat.v1.Session(graph=g, config=cfg) as sess:
        for i in range(0, n, args.batch):
            res = sess.run(fetch, {args.input_name: x[i : i + args.batch]})
            ref_top1.append(res[0])
            if got_scores is not None:
                ref_scores.append(res[1])
    ref_top1 = np.concatenate(ref_top1).astype(np.int64) - args.label_offset

    ok = True
    mismatch = np.nonzero(ref_top1 != got_top1)[0]
    if len(mismatch):
        ok = False
        shown = ", ".join(f"#{i}: loadgen {got_top1[i]} vs TF {ref_top1[i]}" for i in mismatch[:5])
        print(f"ref_tf: FAIL top-1 differs on {len(mismatch)}/{n} images ({shown})")
    else:
        print(f"ref_tf: top-1 equal on all {n} images")
    if got_scores is not None:
        ref_scores = np.concatenate(ref_scores)
        if ref_scores.shape != got_scores.shape:
            ok = False
            print(f"ref_tf: FAIL scores shape {list(got_scores.shape)} vs TF {list(ref_scores.shape)}")
        else:
            diff = float(np.max(np.abs(ref_scores - got_scores.astype(np.float32))))
            good = diff <= args.tol
            ok &= good
            print(f"ref_tf: {'' if good else 'FAIL '}softmax max abs diff {diff:.3g} (limit {args.tol:g})")
    distinct = len(np.unique(ref_top1))
    if distinct < args.min_classes:
        ok = False
        print(f"ref_tf: FAIL only {distinct} distinct classes (need {args.min_classes}): the check proves little")
    else:
        print(f"ref_tf: {distinct} distinct classes over {n} images")
    print("ref_tf: PASS" if ok else "ref_tf: FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

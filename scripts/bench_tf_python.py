#!/usr/bin/env python3
"""Closed-loop throughput of Python TensorFlow on a frozen graph: the baseline that
loadgen's `tf` backend is compared with.

S threads share one session (sess.run releases the GIL) and run batches of B
back to back for T seconds, after one warm-up run. Threads are set like loadgen:
intra-op = max(1, cores // S) unless --intra; inter-op = -1 unless --inter, i.e. each
step runs in the thread that called it (a positive count makes one process-wide pool
that every step queues on: with 1 thread, S threads' steps run one after the other).
Inputs are seeded random tensors (the speed does not depend on the values).

Prints `Throughput: X images/sec` (and ms per image).

Usage: bench_tf_python.py [--model models/resnet50_v1.pb] [-S 1] [-B 1] [-T 20]
"""

import argparse
import os
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/resnet50_v1.pb")
    ap.add_argument("-S", "--threads", type=int, default=1, help="client threads (default 1)")
    ap.add_argument("-B", "--batch", type=int, default=1, help="images per run (default 1)")
    ap.add_argument("-T", "--time", type=float, default=20.0, help="seconds (default 20)")
    ap.add_argument("--intra", type=int, help="intra-op threads (default cores // S)")
    ap.add_argument("--inter", type=int, default=-1,
                    help="inter-op threads (default -1: run in the calling thread)")
    ap.add_argument("--input-name", default="input_tensor:0")
    ap.add_argument("--output-name", default="ArgMax:0")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    intra = args.intra or max(1, cores // max(1, args.threads))

    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    with open(args.model, "rb") as fh:
        graph_def.ParseFromString(fh.read())
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    shape = g.get_tensor_by_name(args.input_name).shape.as_list()[1:]
    shape = [d if d else (3 if i == len(shape) - 1 else 224) for i, d in enumerate(shape)]
    cfg = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=intra, inter_op_parallelism_threads=args.inter
    )
    sess = tf.compat.v1.Session(graph=g, config=cfg)
    x = np.random.RandomState(0).normal(0, 50, size=[args.batch] + shape).astype(np.float32)

    t0 = time.time()
    sess.run(args.output_name, {args.input_name: x})
    warm = time.time() - t0

    done = [0] * args.threads
    stop = threading.Event()

    def worker(k):
        while not stop.is_set():
            sess.run(args.output_name, {args.input_name: x})
            done[k] += args.batch

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
    start = time.time()
    for t in threads:
        t.start()
    time.sleep(args.time)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.time() - start
    n = sum(done)
    print(
        f"TensorFlow {tf.__version__}: {args.threads} thread(s), batch {args.batch}, "
        f"intra {intra}, inter {args.inter}, warm-up {warm:.1f} s, {n} images in {elapsed:.1f} s"
    )
    print(f"Throughput: {n / elapsed:.2f} images/sec ({1000 * elapsed / max(n, 1):.1f} ms/image)")


if __name__ == "__main__":
    main()

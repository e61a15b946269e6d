#!/usr/bin/env python3
"""Closed-loop throughput of ONNX Runtime driven directly from Python: the baseline that
`loadgen throughput --backend onnxruntime` is compared with (SPEC section 8: loadgen may
lose at most 3 %).

S sessions, each with I intra-op threads (inter-op 1), one Python thread per session,
each running batches of B back to back on the same seeded random input for T seconds
(after a warm-up). onnxruntime releases the GIL while it runs, so the threads overlap.
Prints `Throughput: X images/sec` and, as the last line, a JSON object.

Usage: bench_ort_python.py [--model models/resnet50_v1.onnx] [-S 1] [-I 2] [-B 1] [-T 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time

import numpy as np
import onnxruntime as ort


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cores = os.cpu_count() or 1
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(root, "models", "resnet50_v1.onnx"))
    ap.add_argument("-S", "--sessions", type=int, default=1, help="sessions, one Python thread each")
    ap.add_argument("-I", "--intra", type=int, default=0, help="intra-op threads per session (0: cores / sessions)")
    ap.add_argument("-B", "--batch", type=int, default=1)
    ap.add_argument("-T", "--time", type=float, default=10.0, help="seconds measured")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds run before measuring")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not os.path.isfile(args.model):
        print(f"error: model {args.model} does not exist: run scripts/setup.sh onnxruntime", file=sys.stderr)
        return 2
    intra = args.intra or max(1, cores // args.sessions)

    sessions = []
    for _ in range(args.sessions):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra
        opts.inter_op_num_threads = 1
        sessions.append(ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"]))
    inp = sessions[0].get_inputs()[0]
    out_name = sessions[0].get_outputs()[0].name
    shape = [args.batch] + [d if isinstance(d, int) and d > 0 else 224 for d in inp.shape[1:]]
    x = np.random.default_rng(args.seed).uniform(-120, 130, size=shape).astype(np.float32)

    start_measure = threading.Event()
    stop = threading.Event()
    counts = [0] * args.sessions
    latencies: list[list[float]] = [[] for _ in range(args.sessions)]

    def worker(i: int) -> None:
        sess = sessions[i]
        feed = {inp.name: x}
        while not stop.is_set():
            t0 = time.perf_counter()
            sess.run([out_name], feed)
            t1 = time.perf_counter()
            if start_measure.is_set():
                counts[i] += 1
                latencies[i].append(t1 - t0)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.sessions)]
    for t in threads:
        t.start()
    time.sleep(args.warmup)
    start_measure.set()
    t_start = time.perf_counter()
    time.sleep(args.time)
    stop.set()
    elapsed = time.perf_counter() - t_start
    for t in threads:
        t.join()
    # A run that straddles the end counts whole; over T seconds of ~50 ms runs that is noise.
    batches = sum(counts)
    images = batches * args.batch
    lat = np.array([v for ls in latencies for v in ls]) if batches else np.array([float("nan")])
    throughput = images / elapsed
    print(f"Throughput: {throughput:.2f} images/sec")
    print(
        json.dumps(
            {
                "runtime": "onnxruntime-python",
                "version": ort.__version__,
                "model": args.model,
                "sessions": args.sessions,
                "intra_threads": intra,
                "inter_threads": 1,
                "batch": args.batch,
                "time": round(elapsed, 3),
                "batches": batches,
                "images": images,
                "throughput": round(throughput, 3),
                "batch_latency_mean": float(lat.mean()),
                "batch_latency_p50": float(np.percentile(lat, 50)),
                "batch_latency_p99": float(np.percentile(lat, 99)),
                "cores": cores,
                "machine": platform.processor() or platform.machine(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

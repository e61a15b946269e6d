#!/usr/bin/env python3
"""Serve the project's models with a real Triton server (the nvidia-pytriton wheel).

  resnet50  models/resnet50_v1.onnx through ONNX Runtime, input `data` FP32
            [-1,3,224,224], output `probabilities` FP32 [-1,1000], dynamic batching
  identity  input INPUT0 FP32 [-1,16] -> output OUTPUT0, the same values

HTTP on --port, gRPC on --port+1, metrics on --port+2. Run it through
scripts/serve_triton.sh, which sets LD_LIBRARY_PATH so that Triton's Python-backend stub
loads this interpreter's own libpython, waits for readiness and stops every process.
"""

import argparse
import os
import sys

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig
import pytriton.client.client as pytriton_client

# pytriton (0.7.0, pinned) loads each model with an HTTP call bounded by a private 60 s
# network time-out. On 2 cores busy compiling and testing, Triton's Python-backend stub
# once took longer than that to start, and the call failed with TimeoutError. Allow
# 300 s: serve_triton.sh's READY_TIMEOUT still bounds the whole start.
pytriton_client._DEFAULT_NETWORK_TIMEOUT_S = 300.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--model", required=True, help="the ONNX ResNet-50")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--queue-delay-us", type=int, default=2000,
                    help="how long the dynamic batcher waits to fill a batch")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="ONNX Runtime intra-op threads")
    a = ap.parse_args()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    out_name = sess.get_outputs()[0].name
    classes = sess.get_outputs()[0].shape[-1]

    @batch
    def resnet50(data):
        (probs,) = sess.run([out_name], {in_name: data.astype(np.float32, copy=False)})
        return {"probabilities": probs}

    @batch
    def identity(INPUT0):  # noqa: N803 (the tensor's name)
        return {"OUTPUT0": INPUT0}

    cfg = TritonConfig(http_port=a.port, grpc_port=a.port + 1, metrics_port=a.port + 2,
                       http_address="127.0.0.1", grpc_address="127.0.0.1")
    batcher = DynamicBatcher(max_queue_delay_microseconds=a.queue_delay_us)
    with Triton(config=cfg) as triton:
        triton.bind(
            model_name="resnet50",
            infer_func=resnet50,
            inputs=[Tensor(name="data", dtype=np.float32, shape=(3, 224, 224))],
            outputs=[Tensor(name="probabilities", dtype=np.float32, shape=(classes,))],
            config=ModelConfig(max_batch_size=a.max_batch, batcher=batcher),
            strict=True,
        )
        triton.bind(
            model_name="identity",
            infer_func=identity,
            inputs=[Tensor(name="INPUT0", dtype=np.float32, shape=(16,))],
            outputs=[Tensor(name="OUTPUT0", dtype=np.float32, shape=(16,))],
            config=ModelConfig(max_batch_size=a.max_batch, batcher=batcher),
            strict=True,
        )
        print(f"serve_triton.py: serving resnet50 ({in_name} -> {out_name}) and identity",
              file=sys.stderr, flush=True)
        triton.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

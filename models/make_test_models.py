#!/usr/bin/env python3
"""Write tiny bad-input model fixtures into a folder (used by tests/ort_backend.rs).

- not_image.onnx: a valid ONNX model whose input is a rank-2 float tensor [N,10]
  (a loadgen backend must refuse it: it is not an image tensor).
- not_onnx.onnx: a text file with an .onnx name.

Usage: make_test_models.py DIR
"""

from __future__ import annotations

import os
import sys

import numpy as np
from onnx import TensorProto, checker, helper, numpy_helper, save


def not_image_model():
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 10])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 4])
    w = numpy_helper.from_array(np.arange(40, dtype=np.float32).reshape(10, 4) / 40, "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["features", "w"], ["scores"])], "not_image", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    checker.check_model(model)
    return model


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    save(not_image_model(), os.path.join(out, "not_image.onnx"))
    with open(os.path.join(out, "not_onnx.onnx"), "w", encoding="utf-8") as f:
        f.write("this is not an ONNX model\n")
    print(f"wrote not_image.onnx and not_onnx.onnx in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Make models/resnet50_v1.int8.onnx from the project's fp32 ResNet-50 by static
post-training quantization (ONNX Runtime's quantization tool, the pinned wheel's).

    models/make_int8_model.py --fp32 models/resnet50_v1.onnx --out models/resnet50_v1.int8.onnx

QDQ format (QuantizeLinear/DequantizeLinear pairs around each quantized operator, which
ONNX Runtime and OpenVINO both run as int8), int8 weights per output channel
(symmetric), uint8 activations, MinMax calibration on generated ImageNet-layout images
(scripts/make_dataset.py, seed 0) preprocessed as the resnet50 profile does (the MLPerf
reference steps of scripts/compare_preprocess.py). Everything is fixed (seed, image
count, method), so the same wheel makes the same model.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))

CALIBRATION_IMAGES = 32
# The opset the quantized model is written in (per-channel QDQ needs 13).
OPSET = 13


def calibration_tensors(count):
    import cv2
    from compare_preprocess import reference

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, os.path.join(HERE, "..", "scripts", "make_dataset.py"),
             "--out", tmp, "--count", str(count), "--seed", "0"],
            check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(tmp, "val_map.txt")) as f:
            names = [line.split()[0] for line in f if line.strip()]
        out = []
        for name in names:
            t = reference(cv2, os.path.join(tmp, name), "resnet50", 224, 224, "NCHW")
            if t is not None:
                out.append(t[np.newaxis])
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fp32", required=True, help="the fp32 ONNX model")
    ap.add_argument("--out", required=True, help="the int8 model to write")
    args = ap.parse_args()

    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(args.fp32)
    input_name = model.graph.input[0].name
    tensors = calibration_tensors(CALIBRATION_IMAGES)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(tensors)

        def get_next(self):
            t = next(self.it, None)
            return None if t is None else {input_name: t}

    with tempfile.TemporaryDirectory() as tmp:
        # Per-channel Quantize/DequantizeLinear (their `axis`) need opset 13.
        source = args.fp32
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if opset < OPSET:
            from onnx import version_converter
            source = os.path.join(tmp, "opset.onnx")
            onnx.save(version_converter.convert_version(model, OPSET), source)
        prepared = os.path.join(tmp, "prepared.onnx")
        # Shape inference and graph clean-up first, as the tool's guide asks.
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        partial = args.out + ".partial"
        quantize_static(
            prepared, partial, Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        os.replace(partial, args.out)
    print(f"make_int8_model: {args.out} from {args.fp32}, {len(tensors)} calibration images")
    return 0


if __name__ == "__main__":
    sys.exit(main())

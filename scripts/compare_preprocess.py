#!/usr/bin/env python3
"""Check loadgen's preprocessed tensors against the MLPerf Python reference (OpenCV).

    scripts/compare_preprocess.py --dataset DIR --inputs inputs.npy --names names.txt \
        --layout NCHW|NHWC [--kind resnet50|mobilenet] [--ref-out ref.npy]

`inputs.npy` is loadgen's dump (N x 3 x H x W or N x H x W x 3, float32) and
`names.txt` the relative path of each dumped item, one per line, in the same order.
For each image the reference steps of the MLPerf inference repository are run with
OpenCV: cv2.imread, BGR->RGB, resize with INTER_AREA so that the short side is
int(100 * out / 87.5) keeping the aspect ratio, centre crop, float32, then ResNet-50
mean subtraction or MobileNet's (x / 255 - 0.5) * 2 (with the same INTER_AREA resize,
as loadgen does; the original MobileNet reference used INTER_LINEAR).

It prints the mean absolute difference per image on the 0-255 pixel scale, grouped by
format (from the file's content), and exits 1 unless every PNG is within 0.5 and every
JPEG within 1.5 (the decoders differ: loadgen uses a pure-Rust JPEG decoder, OpenCV
libjpeg-turbo); 2 on bad usage. `--ref-out` saves the reference tensors, same shape and
order as the dump, for comparing top-1s.

Needs numpy and opencv-python-headless.
"""

import argparse
import os
import sys

import numpy as np

PNG_LIMIT = 0.5
JPEG_LIMIT = 1.5
MEANS = np.array([123.68, 116.78, 103.94], dtype=np.float32)


def resize_with_aspectratio(cv2, img, out_height, out_width, scale=87.5, inter_pol=None):
    # As in the MLPerf reference (vision/classification_and_detection/python/dataset.py).
    height, width, _ = img.shape
    new_height = int(100. * out_height / scale)
    new_width = int(100. * out_width / scale)
    if height > width:
        w = new_width
        h = int(new_height * height / width)
    else:
        h = new_height
        w = int(new_width * width / height)
    return cv2.resize(img, (w, h), interpolation=inter_pol)


def center_crop(img, out_height, out_width):
    height, width, _ = img.shape
    left = int((width - out_width) / 2)
    right = int((width + out_width) / 2)
    top = int((height - out_height) / 2)
    bottom = int((height + out_height) / 2)
    return img[top:bottom, left:right]


def reference(cv2, path, kind, out_h, out_w, layout):
    """The reference tensor of one image (float32, in `layout`), or None if unreadable."""
    img = cv2.imread(path)
    if img is None:
        return None
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = resize_with_aspectratio(cv2, img, out_h, out_w, inter_pol=cv2.INTER_AREA)
    img = center_crop(img, out_h, out_w)
    img = np.asarray(img, dtype="float32")
    if kind == "resnet50":
        img -= MEANS
    else:
        img /= 255.0
        img -= 0.5
        img *= 2
    if layout == "NCHW":
        img = img.transpose([2, 0, 1])
    return np.ascontiguousarray(img)


def image_format(path):
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89PNG"):
        return "PNG"
    if head.startswith(b"\xff\xd8"):
        return "JPEG"
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, help="dataset folder the names are relative to")
    ap.add_argument("--inputs", required=True, help="loadgen's dump of preprocessed items (.npy)")
    ap.add_argument("--names", required=True, help="relative path of each dumped item, one a line")
    ap.add_argument("--layout", required=True, choices=["NCHW", "NHWC"])
    ap.add_argument("--kind", default="resnet50", choices=["resnet50", "mobilenet"])
    ap.add_argument("--ref-out", help="write the reference tensors here (.npy)")
    ap.add_argument("--labels", help="loadgen's dump of the items' labels (.npy, int64): "
                    "checked against the dataset's val_map.txt")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every image's figure")
    args = ap.parse_args()

    try:
        import cv2
    except ImportError:
        print("compare_preprocess.py needs OpenCV: pip install opencv-python-headless",
              file=sys.stderr)
        return 2

    inputs = np.load(args.inputs, mmap_mode="r")
    with open(args.names) as f:
        names = [line.rstrip("\n") for line in f if line.strip()]
    if inputs.ndim != 4 or inputs.shape[0] != len(names):
        print(f"{args.inputs} has shape {inputs.shape} but {args.names} lists {len(names)} "
              "names; expected one N x 3 x H x W or N x H x W x 3 tensor per name",
              file=sys.stderr)
        return 2
    if args.layout == "NCHW":
        _, c, out_h, out_w = inputs.shape
    else:
        _, out_h, out_w, c = inputs.shape
    if c != 3:
        print(f"{args.inputs} has shape {inputs.shape}, which is not {args.layout} with 3 "
              "channels; check --layout", file=sys.stderr)
        return 2

    # On the 0-255 pixel scale: ResNet-50 values are pixels minus means, MobileNet's
    # are pixels / 127.5 - 1.
    to_pixels = 1.0 if args.kind == "resnet50" else 127.5
    ref_all = np.zeros(inputs.shape, dtype=np.float32)
    per_format = {}
    failures = []
    for i, name in enumerate(names):
        path = os.path.join(args.dataset, name)
        ref = reference(cv2, path, args.kind, out_h, out_w, args.layout)
        if ref is None:
            print(f"OpenCV cannot read {path}, which loadgen loaded", file=sys.stderr)
            failures.append(name)
            continue
        ref_all[i] = ref
        mad = float(np.mean(np.abs(ref.astype(np.float64) - inputs[i]))) * to_pixels
        fmt = image_format(path)
        per_format.setdefault(fmt, []).append((mad, name))
        limit = PNG_LIMIT if fmt == "PNG" else JPEG_LIMIT
        if mad > limit:
            failures.append(name)
        if args.verbose or mad > limit:
            print(f"{name} {fmt} mad={mad:.4f}" + ("  OVER LIMIT" if mad > limit else ""))

    for fmt in sorted(per_format):
        mads = [m for m, _ in per_format[fmt]]
        worst = max(per_format[fmt])
        limit = PNG_LIMIT if fmt == "PNG" else JPEG_LIMIT
        exact = sum(1 for m in mads if m == 0.0)
        print(f"{fmt}: {len(mads)} images, mean abs diff avg={np.mean(mads):.4f} "
              f"max={worst[0]:.4f} ({worst[1]}), bit-exact {exact}/{len(mads)}, limit {limit}")

    if args.labels:
        labels = np.load(args.labels)
        listed = {}
        with open(os.path.join(args.dataset, "val_map.txt")) as f:
            for line in f:
                if line.strip():
                    name, label = line.rsplit(None, 1)
                    listed[name.strip()] = int(label)
        want = np.array([listed.get(n, -1) for n in names], dtype=np.int64)
        if labels.dtype != np.int64 or labels.shape != want.shape or (labels != want).any():
            print(f"{args.labels} (dtype {labels.dtype}, shape {labels.shape}) does not hold "
                  "the val_map.txt labels of the names", file=sys.stderr)
            failures.append(args.labels)
        else:
            print(f"labels: {len(labels)} match val_map.txt")

    if args.ref_out:
        np.save(args.ref_out, ref_all)
    if failures:
        print(f"FAIL: {len(failures)} of {len(names)} images differ from the reference "
              "beyond the limit", file=sys.stderr)
        return 1
    print(f"OK: {len(names)} images within the limits")
    return 0


if __name__ == "__main__":
    sys.exit(main())

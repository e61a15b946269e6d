#!/usr/bin/env python3
"""Make a small ImageNet-layout validation set for tests and demos.

    scripts/make_dataset.py --out DIR [--count 64] [--seed 0] [--corrupt]

DIR gets `ILSVRC2012_val_00000001.JPEG` ... (PNG files get a `.PNG` suffix; loadgen
and OpenCV go by the content, not the name) and `val_map.txt` with one
`<file name> <label>` line per image, labels 0-999.

The images cover what the preprocessing must get right: JPEG (4:2:0 and 4:4:4 chroma,
baseline and progressive, one with an EXIF orientation tag) and PNG (RGB, greyscale,
RGBA, palette, 16-bit RGB and 16-bit grey), sizes from 160 to 640 pixels in portrait
and landscape, a few exact sizes that hit special cases of the resize (short side 256:
no resize; 512x640: an exact 2x shrink; under 256: enlarging), and structured content
(gradients, stripes, circles, checkerboards, blobs) rather than flat noise.

`--corrupt` adds one more JPEG, truncated inside its headers so that no decoder can
read it, listed third in val_map.txt: loadgen must warn about it, skip it and carry on.
Its name is printed on stdout.

Same arguments, same bytes: everything comes from one seeded generator. Needs numpy
and Pillow only.
"""

import argparse
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

# Encodings cycled through, one per image.
KINDS = [
    "jpeg",
    "png",
    "jpeg",
    "jpeg_grey",
    "jpeg_444",
    "png_grey",
    "jpeg",
    "png_rgba",
    "jpeg_progressive",
    "png16",
    "jpeg",
    "png_palette",
    "jpeg_exif",
    "png16_grey",
]

# (index, (height, width)) of images with sizes chosen for the resize's special cases.
SPECIAL_SIZES = {
    1: (375, 500),  # the typical ImageNet landscape photo
    2: (512, 640),  # exact 2x shrink to 256x320 (OpenCV's integer fast path)
    3: (256, 300),  # short side already 256: no resize, only the crop
    4: (200, 180),  # under 256: INTER_AREA enlarges (bilinear-like)
    5: (640, 427),  # portrait
}


def canvas(rng, h, w):
    """A structured RGB image as float64 in [0, 255]."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    # Background: linear gradient between two colours in a random direction.
    a = rng.uniform(0, 2 * np.pi)
    t = (np.cos(a) * x / w + np.sin(a) * y / h)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    for _ in range(rng.integers(2, 6)):
        layer = rng.integers(0, 4)
        colour = rng.uniform(0, 255, 3)
        if layer == 0:  # stripes: a sinusoid at a random angle and period
            b = rng.uniform(0, np.pi)
            period = rng.uniform(4, 60)
            m = 0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(b) * x + np.sin(b) * y) / period)
            m *= rng.uniform(0.3, 0.9)
        elif layer == 1:  # filled circle with a soft edge
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            r = rng.uniform(0.05, 0.4) * min(h, w)
            d = np.sqrt((y - cy) ** 2 + (x - cx) ** 2)
            m = np.clip(r - d + 1, 0, 1)
        elif layer == 2:  # checkerboard, hard edges
            s = int(rng.integers(4, 40))
            m = (((x // s) + (y // s)) % 2) * rng.uniform(0.2, 0.7)
        else:  # gaussian blob
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            sig = rng.uniform(0.05, 0.3) * min(h, w)
            m = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sig**2))
        img = img * (1 - m[..., None]) + colour[None, None, :] * m[..., None]
    img += rng.normal(0, 2.0, img.shape)  # a little sensor noise, as in photos
    return np.clip(img, 0, 255)


def png_bytes_16(arr):
    """PNG of a uint16 array (H, W) or (H, W, 3); Pillow cannot write 16-bit RGB."""
    h, w = arr.shape[:2]
    colour_type = 2 if arr.ndim == 3 else 0
    raw = arr.astype(">u2").reshape(h, -1).tobytes()
    stride = len(raw) // h
    rows = b"".join(b"\x00" + raw[i * stride:(i + 1) * stride] for i in range(h))

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


def encode(rng, kind, img):
    """Encoded bytes and file suffix of the float image `img` as `kind`."""
    u8 = np.round(img).astype(np.uint8)
    out = io.BytesIO()
    q = int(rng.integers(75, 96))
    if kind == "jpeg":
        Image.fromarray(u8, "RGB").save(out, "JPEG", quality=q)
    elif kind == "jpeg_444":
        Image.fromarray(u8, "RGB").save(out, "JPEG", quality=q, subsampling=0)
    elif kind == "jpeg_progressive":
        Image.fromarray(u8, "RGB").save(out, "JPEG", quality=q, progressive=True)
    elif kind == "jpeg_grey":
        Image.fromarray(u8, "RGB").convert("L").save(out, "JPEG", quality=q)
    elif kind == "jpeg_exif":
        exif = Image.Exif()
        exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
        Image.fromarray(u8, "RGB").save(out, "JPEG", quality=q, exif=exif.tobytes())
    elif kind == "png":
        Image.fromarray(u8, "RGB").save(out, "PNG")
    elif kind == "png_grey":
        Image.fromarray(u8, "RGB").convert("L").save(out, "PNG")
    elif kind == "png_rgba":
        alpha = rng.integers(0, 256, img.shape[:2]).astype(np.uint8)
        Image.fromarray(np.dstack([u8, alpha]), "RGBA").save(out, "PNG")
    elif kind == "png_palette":
        Image.fromarray(u8, "RGB").quantize(colors=64, dither=Image.Dither.NONE).save(out, "PNG")
    elif kind == "png16":
        v16 = np.round(img * 257.0 + rng.uniform(-128, 128, img.shape))
        return png_bytes_16(np.clip(v16, 0, 65535).astype(np.uint16)), "PNG"
    elif kind == "png16_grey":
        grey = img @ np.array([0.299, 0.587, 0.114])
        return png_bytes_16(np.clip(np.round(grey * 257.0), 0, 65535).astype(np.uint16)), "PNG"
    else:
        raise ValueError(kind)
    return out.getvalue(), "PNG" if kind.startswith("png") else "JPEG"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--count", type=int, default=64, help="number of images (default 64)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--corrupt", action="store_true",
                    help="also add one truncated JPEG, listed third in val_map.txt")
    args = ap.parse_args()
    if args.count < 1:
        ap.error("--count must be at least 1")

    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)
    lines = []
    for i in range(1, args.count + 1):
        kind = KINDS[(i - 1) % len(KINDS)]
        if i in SPECIAL_SIZES:
            h, w = SPECIAL_SIZES[i]
        else:
            h, w = (int(v) for v in rng.integers(160, 641, 2))
        data, suffix = encode(rng, kind, canvas(rng, h, w))
        name = f"ILSVRC2012_val_{i:08d}.{suffix}"
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(data)
        lines.append(f"{name} {int(rng.integers(0, 1000))}")

    if args.corrupt:
        i = args.count + 1
        u8 = np.round(canvas(rng, 300, 400)).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(u8, "RGB").save(out, "JPEG", quality=90)
        data = out.getvalue()
        # Cut inside the headers (before the first scan), so that every decoder fails.
        sos = data.find(b"\xff\xda")
        cut = min(sos, 400) if sos > 0 else 400
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(data[:cut])
        lines.insert(min(2, len(lines)), f"{name} {int(rng.integers(0, 1000))}")
        print(name)

    with open(os.path.join(args.out, "val_map.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

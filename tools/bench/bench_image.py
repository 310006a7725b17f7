#!/usr/bin/env python3
"""Image decode + SigLIP preprocessing throughput on one core: prism against
Pillow + transformers, on the same 1024x768 JPEG.

    cmake --build build --target prism_bench_image
    python3 tools/bench/bench_image.py [--prism build/prism_bench_image] [--seconds 5]

The JPEG is a 1024x768 centre crop of ../shared/testdata/pillow/xmp_test.jpg
(a photograph), saved by Pillow at quality 90 with 4:2:0 subsampling, or a
synthetic picture when the corpus is absent. Each pipeline starts from the
bytes in memory and ends with the 3x224x224 float32 pixel_values:

  prism          image_to_pixel_values (tools/bench/bench_image.c)
  transformers   Image.open + ImageOps.exif_transpose + convert("RGB")
                 (load_image's steps) + SiglipImageProcessorPil
                 (use_fast=False / backend="pil")
  transformers   the same + SiglipImageProcessor (torchvision backend, the
  fast           default when torchvision is installed)

Everything runs pinned to one core with one thread (OMP/MKL/torch threads
set to 1). The pipelines alternate in rounds and each one's best round is
printed, in images per second, with the ratios.
"""
import argparse
import io
import os
import subprocess
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402


def make_jpeg(shared):
    src = os.path.join(shared, "pillow", "xmp_test.jpg")
    if os.path.exists(src):
        im = Image.open(src).convert("RGB")
        w, h = im.size  # 2000x1072: crop to 4:3, then 1024x768
        cw = h * 4 // 3
        im = im.crop(((w - cw) // 2, 0, (w - cw) // 2 + cw, h)).resize((1024, 768), Image.LANCZOS)
        what = "photo (xmp_test.jpg crop)"
    else:
        y, x = np.mgrid[0:768, 0:1024]
        rng = np.random.default_rng(0)
        a = np.stack([128 + 100 * np.sin(x / 50.0), 128 + 100 * np.cos(y / 40.0), (x + y) % 256], -1)
        im = Image.fromarray(np.clip(a + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8))
        what = "synthetic picture"
    b = io.BytesIO()
    im.save(b, "JPEG", quality=90, subsampling="4:2:0")
    return b.getvalue(), what


def rate(fn, seconds):
    fn()  # warm up
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        t = time.perf_counter() - t0
        if t >= seconds and n >= 3:
            return n / t


def load(data):
    """transformers.image_utils.load_image's steps for bytes in memory."""
    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im)
    return im.convert("RGB")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser()
    ap.add_argument("--prism", default=os.path.join(repo, "build", "prism_bench_image"))
    ap.add_argument("--shared", default=os.path.join(repo, "..", "shared", "testdata"))
    ap.add_argument("--seconds", type=float, default=2, help="per pipeline per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", help="also write the benchmark JPEG here")
    args = ap.parse_args()

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    core = sorted(os.sched_getaffinity(0))[0]
    data, what = make_jpeg(args.shared)
    path = args.keep or "/tmp/prism_bench_image.jpg"
    with open(path, "wb") as f:
        f.write(data)
    print(f"input: 1024x768 JPEG, {len(data)} bytes, {what}; one core (cpu {core}), one thread")

    import torch
    torch.set_num_threads(1)
    import transformers
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil
    transformers.logging.set_verbosity_error()
    slow = SiglipImageProcessorPil()
    fast = None
    import importlib.util
    if importlib.util.find_spec("torchvision") is not None:
        from transformers import SiglipImageProcessor
        fast = SiglipImageProcessor()

    # Rounds alternate the pipelines, so a busy machine slows them alike;
    # each pipeline's best round is reported.
    best = {}
    prism_line = dct_line = None
    for _ in range(args.rounds):
        if os.path.exists(args.prism):
            out = subprocess.run(["taskset", "-c", str(core), args.prism, "--seconds", str(args.seconds),
                                  "--dct", path], capture_output=True, text=True, check=True).stdout
            first, second = out.strip().split("\n")[:2]
            r = float(first.split(": ")[2].split(" images/s")[0])
            if r > best.get("prism", 0):
                best["prism"], prism_line, dct_line = r, first.split(": ", 2)[2], second.strip()
        for name, fn in (("decode", lambda: load(data)),
                         ("slow", lambda: slow(load(data), return_tensors="np")),
                         ("fast", (lambda: fast(load(data), return_tensors="pt")) if fast else None)):
            if fn:
                best[name] = max(best.get(name, 0), rate(fn, args.seconds))

    if prism_line:
        print(f"prism: {prism_line}")
        print(f"  {dct_line}")
    else:
        print(f"prism: {args.prism} not built (cmake --build build --target prism_bench_image)")
    print(f"transformers slow (Pillow {Image.__version__}, SiglipImageProcessorPil): {best['slow']:.1f} images/s "
          f"({1e3 / best['slow']:.2f} ms; Pillow decode alone {1e3 / best['decode']:.2f} ms)")
    if fast:
        print(f"transformers fast (torchvision, SiglipImageProcessor): {best['fast']:.1f} images/s "
              f"({1e3 / best['fast']:.2f} ms)")
    else:
        print("transformers fast: torchvision not installed, not measured")
    if prism_line:
        print(f"prism / slow: x{best['prism'] / best['slow']:.2f}" +
              (f", prism / fast: x{best['prism'] / best['fast']:.2f}" if fast else ""))
    print(f"best of {args.rounds} rounds of {args.seconds} s each; load average {os.getloadavg()[0]:.2f}")

if __name__ == "__main__":
    main()

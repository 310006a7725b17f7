#!/usr/bin/env python3
"""How far `--dtype bf16` or `--dtype int8` moves SigLIP's outputs from float32 on the same
inputs: the cosine of every image and text embedding with its float32
twin, and zero-shot top-1 agreement (each image's best label among
--labels texts, by the dot product of normalised embeddings).

    python3 tools/bench/dtype_accuracy.py --model DIR [--images DIR] [--n-images 200]
        [--n-labels 20] [--dtype bf16] [--threads 2] [--inputs FILE]

Images: the JPEG/PNG files of --images (default ../shared/testdata/pillow,
else tests/data/pillow) that Pillow opens, resized to the tower's size
(bicubic) and normalised with mean = std = 0.5, topped up with smooth
random patterns to --n-images; labels: the model's tokenizer is not
needed: --n-labels texts of random token ids (seeded), 64 long. With
--inputs FILE the pictures and label texts come from FILE instead
(pixel_values, input_ids, and optionally each picture's true class as
"labels", which adds both runs' accuracy), as
tools/bench/train_tiny_siglip.py writes them. Both runs
go through `build/prism embed --inputs` on the same file, so only the
arithmetic differs. Needs numpy, Pillow and safetensors.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image
from safetensors.numpy import load_file, save_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def load_images(dirs, n, size, rng):
    out, used = [], []
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "*"))):
            if len(out) == n:
                break
            if not path.lower().endswith((".png", ".jpg", ".jpeg")):
                continue
            try:
                with Image.open(path) as im:
                    x = np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC),
                                   dtype=np.float32)
            except Exception:  # the corpus holds hostile files on purpose
                continue
            out.append((x / 255.0 - 0.5) / 0.5)
            used.append(path)
    n_files = len(out)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    while len(out) < n:  # smooth random patterns
        f = rng.uniform(1, 8, size=(3, 2))
        ph = rng.uniform(0, 6.3, size=3)
        img = np.stack([np.sin(f[c, 0] * 6.3 * xx + f[c, 1] * 6.3 * yy + ph[c]) for c in range(3)], -1)
        out.append(img.astype(np.float32) * 0.9)
    return np.stack(out).transpose(0, 3, 1, 2).copy(), n_files


def embed(model, inputs, dtype, threads):
    cmd = [os.path.join(ROOT, "build", "prism"), "embed", "--model", model, "--inputs", inputs,
           "--dtype", dtype, "--device", "cpu", "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    d = json.loads(out)
    return np.array(d["image_embeddings"]), np.array(d["text_embeddings"])


def synthetic_inputs(args):
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    size = cfg["vision_config"].get("image_size", 224)
    tc = cfg["text_config"]
    vocab, length = tc.get("vocab_size", 32000), tc.get("max_position_embeddings", 64)
    rng = np.random.default_rng(0)
    dirs = [args.images] if args.images else [
        os.path.join(ROOT, "..", "shared", "testdata", "pillow"),
        os.path.join(ROOT, "tests", "data", "pillow")]
    px, n_files = load_images(dirs, args.n_images, size, rng)
    ids = rng.integers(0, vocab, size=(args.n_labels, length)).astype(np.int64)
    return px, ids, n_files


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", default=None)
    ap.add_argument("--n-images", type=int, default=200)
    ap.add_argument("--n-labels", type=int, default=20)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inputs", default=None)
    args = ap.parse_args()
    truth = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.inputs:
            path = args.inputs
            data = load_file(path)
            px, ids, truth = data["pixel_values"], data["input_ids"], data.get("labels")
            n_files = 0
        else:
            px, ids, n_files = synthetic_inputs(args)
            path = os.path.join(tmp, "inputs.safetensors")
            save_file({"pixel_values": px, "input_ids": ids}, path)
        i32, t32 = embed(args.model, path, "f32", args.threads)
        ilo, tlo = embed(args.model, path, args.dtype, args.threads)
    cos_i = np.sum(i32 * ilo, 1) / np.linalg.norm(i32, axis=1) / np.linalg.norm(ilo, axis=1)
    cos_t = np.sum(t32 * tlo, 1) / np.linalg.norm(t32, axis=1) / np.linalg.norm(tlo, axis=1)
    top32, toplo = (i32 @ t32.T).argmax(1), (ilo @ tlo.T).argmax(1)
    s32 = np.sort(i32 @ t32.T, 1)
    gap = s32[:, -1] - s32[:, -2]
    extra = {}
    if truth is not None:
        extra = {"f32_accuracy": float(np.mean(top32 == truth)),
                 "dtype_accuracy": float(np.mean(toplo == truth))}
    print(json.dumps({
        "model": args.model, "dtype": args.dtype, "images": len(px), "image_files": n_files,
        "labels": len(ids),
        "image_cosine_min": float(cos_i.min()), "image_cosine_median": float(np.median(cos_i)),
        "text_cosine_min": float(cos_t.min()), "text_cosine_median": float(np.median(cos_t)),
        "top1_agreement": float(np.mean(top32 == toplo)),
        "top1_gap_median_f32": float(np.median(gap)),
        "top1_gap_min_f32": float(gap.min()),
        "f32_gaps_where_top1_differs": [round(float(g), 5) for g in gap[top32 != toplo]],
        "max_score_change": float(np.abs(i32 @ t32.T - ilo @ tlo.T).max()),
        **extra,
    }, indent=1))


if __name__ == "__main__":
    sys.exit(main())

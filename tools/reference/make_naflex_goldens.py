#!/usr/bin/env python3
"""Reference outputs for prism's SigLIP 2 NaFlex preprocessing, from
transformers' Pillow-backed Siglip2ImageProcessorPil.

    pip install pillow numpy safetensors transformers
    python3 tools/reference/make_naflex_goldens.py [--shared ../shared/testdata] [--out tests/data]

Run tools/reference/make_image_goldens.py first: this script reads the
generated corpus it writes (tests/data/images) and shares its helpers
(load_image on the bytes, the integer formula images, CRC-32).

The reference for an image given as bytes is transformers' own path:
load_image (Image.open, ImageOps.exif_transpose, convert("RGB")) then
Siglip2ImageProcessorPil (what AutoImageProcessor(..., backend="pil") gives
for a Siglip2ImageProcessor checkpoint): convert_to_rgb when do_convert_rgb,
Pillow resize to get_image_size_for_max_num_patches' size, rescale,
normalize, patches [rows*cols, P*P*3] (channels last within a patch),
zero rows up to max_num_patches and the attention mask.

It writes
    tests/data/naflex_goldens.json         the manifest tests/test_image_naflex.c walks
    tests/data/naflex_goldens.safetensors  the size sweep (I16) and a few full
                                           pixel_values (F32 [max_num_patches, 3*P*P])

Cases:
  sizes    get_image_size_for_max_num_patches for every (width, height) of a
           sweep (1x1 .. 4000x3000, all of 1..48 x 1..48, extreme aspect ratios
           such as 1x2000 and 3000x2, seeded random sizes) at patch 14 and 16 and
           max_num_patches 64, 256, 512, 1024
  files    every JPEG/PNG of tests/data/pillow, tests/data/images (those Pillow
           loads), examples/flower.jpg and, optionally, ../shared/testdata/pillow:
           spatial shape, valid rows and the CRC-32 of pixel_values (float32) at
           patch 16 and 14 and max_num_patches 64, 256 and 1024 (the shared corpus:
           two of them); a few stored whole at a small max_num_patches
  formula  integer-formula images (the same formula as tests/test_image.c), large
           and extreme sizes
  configs  preprocessor_config.json / processor_config.json variants (the hub's
           NaFlex file, null keys, other filters, no normalisation, do_resize false)
           on a few images, and a 16x16 image holding every value 0..255
Deterministic: fixed seeds, no time stamps.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np
from PIL import Image
from safetensors.numpy import save_file
import transformers
from transformers.models.siglip2.image_processing_pil_siglip2 import (
    Siglip2ImageProcessorPil, get_image_size_for_max_num_patches)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_image_goldens import crc, formula_image, lut_image, reference_rgb  # noqa: E402

warnings.simplefilter("ignore")
try:
    transformers.logging.set_verbosity_error()
except Exception:
    pass

TENSORS = {}
try:  # the torchvision module carries its own copy of the size function
    from transformers.models.siglip2.image_processing_siglip2 import (
        get_image_size_for_max_num_patches as fast_size)
except ImportError:
    fast_size = None
SIZE_CONFIGS = [(p, n) for p in (16, 14) for n in (64, 256, 512, 1024)]
FILE_CONFIGS = [(16, 256), (16, 1024), (16, 64), (14, 256), (14, 1024), (14, 64)]
SHARED_CONFIGS = [(16, 256), (14, 1024)]
STORE_CONFIG = (14, 16)  # (patch, max_num_patches) of the pixel_values stored whole


def sweep_sizes():
    s = set()
    for w in range(1, 49):
        for h in range(1, 49):
            s.add((w, h))
    special = [1, 2, 3, 7, 13, 14, 15, 16, 17, 31, 32, 33, 100, 223, 224, 225, 255, 256, 257,
               383, 384, 448, 480, 511, 512, 640, 720, 768, 1000, 1023, 1024, 1080, 1200, 1280,
               1920, 2000, 2047, 2048, 2160, 3000, 3840, 4000]
    for a in special:
        for b in special:
            s.add((a, b))
    for n in range(1, 4001, 37):  # extreme aspect ratios both ways
        for k in (1, 2, 3):
            s.add((n, k))
            s.add((k, n))
    rng = np.random.default_rng(20250)
    for w, h in rng.integers(1, 4001, size=(1500, 2)):
        s.add((int(w), int(h)))
    for w in rng.integers(1, 4001, size=300):  # common aspect ratios
        for num, den in ((4, 3), (16, 9), (3, 2), (21, 9)):
            h = max(1, int(w) * den // num)
            if h <= 4000:
                s.add((int(w), h))
                s.add((h, int(w)))
    s.add((4000, 3000))
    s.add((3000, 4000))
    return sorted(s)


def size_cases(manifest):
    sizes = sweep_sizes()
    wh = np.array(sizes, dtype=np.int16)
    out = np.zeros((len(SIZE_CONFIGS), len(sizes), 2), dtype=np.int16)
    for k, (p, n) in enumerate(SIZE_CONFIGS):
        for i, (w, h) in enumerate(sizes):
            oh, ow = get_image_size_for_max_num_patches(h, w, p, n)
            assert fast_size is None or (oh, ow) == fast_size(h, w, p, n)
            out[k, i] = (ow, oh)
    TENSORS["sizes.in"] = wh          # [N, 2]: width, height
    TENSORS["sizes.out"] = out        # [configs, N, 2]: resized width, height
    manifest["sizes"] = {"in": "sizes.in", "out": "sizes.out",
                         "configs": [{"patch": p, "max_num_patches": n} for p, n in SIZE_CONFIGS]}
    print(f"{len(sizes)} sizes x {len(SIZE_CONFIGS)} configs")


def run(proc, im, patch, max_patches):
    """pixel_values, mask and spatial shape for one image, checked for shape."""
    o = proc(im, patch_size=patch, max_num_patches=max_patches, return_tensors="np")
    pv = o["pixel_values"][0].astype(np.float32)
    mask = o["pixel_attention_mask"][0]
    rows, cols = (int(v) for v in o["spatial_shapes"][0])
    valid = int(mask.sum())
    assert pv.shape == (max_patches, 3 * patch * patch), pv.shape
    assert valid == rows * cols and mask[:valid].all() and not mask[valid:].any()
    return pv, rows, cols


def image_runs(proc, im, configs, key):
    """One [patch, max_num_patches, rows, cols, crc] per config; one stored whole."""
    runs = []
    for p, n in configs:
        pv, rows, cols = run(proc, im, p, n)
        runs.append([p, n, rows, cols, crc(pv)])
        if key and (p, n) == STORE_CONFIG:
            TENSORS[key] = pv
    return runs


def file_cases(manifest, repo, shared):
    sources = []
    for d in ("tests/data/pillow", "tests/data/images"):
        for f in sorted(os.listdir(os.path.join(repo, d))):
            if f.lower().endswith((".png", ".jpg", ".jpeg")):
                src = "data:" + d[len("tests/data/"):] + "/" + f
                sources.append((src, os.path.join(repo, d, f)))
    sources.append(("repo:examples/flower.jpg", os.path.join(repo, "examples", "flower.jpg")))
    root = os.path.join(shared, "pillow")
    if os.path.isdir(root):
        for dp, dn, fn in os.walk(root):
            dn.sort()
            for f in sorted(fn):
                if f.lower().endswith((".png", ".jpg", ".jpeg")):
                    p = os.path.join(dp, f)
                    sources.append(("shared:" + os.path.relpath(p, shared), p))
    else:
        print(f"{root} not found: the shared corpus is not in the goldens")
    proc = Siglip2ImageProcessorPil()
    stored = 0
    for src, path in sources:
        with open(path, "rb") as f:
            data = f.read()
        try:
            im = reference_rgb(data)
        except Exception:
            continue  # refusals are tests/test_image.c's business
        configs = SHARED_CONFIGS if src.startswith("shared:") else FILE_CONFIGS
        key = None
        if src.startswith("data:pillow/") and stored < 3:
            key = f"file{stored}.pv"
            stored += 1
        case = {"src": src, "w": im.size[0], "h": im.size[1],
                "runs": image_runs(proc, im, configs, key)}
        if key:
            case["pv"] = key
        manifest["files"].append(case)
    print(f"{len(manifest['files'])} files")


FORMULA = [(4000, 3000), (3000, 4000), (1, 2000), (3000, 2), (2000, 1), (1, 1), (2, 2), (5, 7),
           (16, 16), (1024, 768), (640, 480), (97, 61), (224, 224), (513, 17), (14, 4000)]


def formula_cases(manifest):
    proc = Siglip2ImageProcessorPil()
    for i, (w, h) in enumerate(FORMULA):
        im = Image.fromarray(formula_image(w, h))
        key = f"formula{i}.pv" if w * h <= 64 else None
        case = {"w": w, "h": h, "runs": image_runs(proc, im, FILE_CONFIGS, key)}
        if key:
            case["pv"] = key
        manifest["formula"].append(case)


HUB_NAFLEX = {  # google/siglip2-base-patch16-naflex's preprocessor_config.json
    "do_convert_rgb": None, "do_normalize": True, "do_rescale": True, "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "Siglip2ImageProcessor",
    "image_std": [0.5, 0.5, 0.5], "max_num_patches": 256, "patch_size": 16,
    "processor_class": "Siglip2Processor", "resample": 2, "rescale_factor": 0.00392156862745098,
}

CONFIGS = [  # name, layout (preprocessor / processor / none), settings
    ("hub_naflex", "preprocessor", HUB_NAFLEX),
    ("convert_rgb_64", "preprocessor", {"do_convert_rgb": True, "max_num_patches": 64}),
    ("bicubic_p14_100", "preprocessor", {"resample": 3, "patch_size": 14, "max_num_patches": 100}),
    ("imagenet_lanczos", "preprocessor", {"resample": 1, "max_num_patches": 49,
                                          "image_mean": [0.485, 0.456, 0.406],
                                          "image_std": [0.229, 0.224, 0.225]}),
    ("box_hamming", "preprocessor", {"resample": 4, "max_num_patches": 30, "patch_size": 8}),
    ("hamming", "preprocessor", {"resample": 5, "max_num_patches": 30, "patch_size": 8}),
    ("no_normalize", "preprocessor", {"do_normalize": False, "max_num_patches": 40}),
    ("no_rescale", "preprocessor", {"do_rescale": False, "image_mean": 127.5, "image_std": 127.5,
                                    "max_num_patches": 40}),
    ("nulls", "preprocessor", {"resample": None, "do_normalize": None, "do_convert_rgb": None,
                               "size": None, "max_num_patches": 40}),
    ("scalar_mean", "preprocessor", {"rescale_factor": 0.00784313725490196, "image_mean": 1.0,
                                     "image_std": [1.0, 1.0, 1.0], "max_num_patches": 40}),
    ("nested_p14_64", "processor", {"patch_size": 14, "max_num_patches": 64, "resample": 3,
                                    "do_convert_rgb": True}),
    ("defaults", "none", {}),
]
CONFIG_INPUTS = ["data:pillow/hopper.jpg", "data:pillow/1_trns.png", "data:images/png_gray16.png",
                 "data:images/jpeg_orient6_progressive.jpg"]


def processor_for(layout, settings, tmp):
    if layout == "none":
        return Siglip2ImageProcessorPil()
    d = tempfile.mkdtemp(dir=tmp)
    cfg = {"image_processor_type": "Siglip2ImageProcessor", **settings}
    if layout == "processor":
        with open(os.path.join(d, "processor_config.json"), "w") as f:
            json.dump({"image_processor": cfg, "processor_class": "Siglip2Processor"}, f)
        # a stale older file beside it, which the nested object overrides
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump({"image_processor_type": "Siglip2ImageProcessor", "patch_size": 16,
                       "max_num_patches": 256}, f)
    else:
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump(cfg, f)
    return Siglip2ImageProcessorPil.from_pretrained(d)


def config_cases(manifest, repo):
    tmp = tempfile.mkdtemp()
    try:
        for ci, (name, layout, settings) in enumerate(CONFIGS):
            proc = processor_for(layout, settings, tmp)
            p, n = proc.patch_size, proc.max_num_patches
            entry = {"name": name, "layout": layout, "config": json.dumps(settings),
                     "patch": p, "max_num_patches": n, "inputs": []}
            for src in CONFIG_INPUTS:
                with open(os.path.join(repo, "tests", "data", src[len("data:"):]), "rb") as f:
                    im = reference_rgb(f.read())
                o = proc(im, return_tensors="np")
                pv = o["pixel_values"][0].astype(np.float32)
                rows, cols = (int(v) for v in o["spatial_shapes"][0])
                assert int(o["pixel_attention_mask"][0].sum()) == rows * cols
                entry["inputs"].append({"src": src, "rows": rows, "cols": cols, "crc": crc(pv)})
            # every value 0..255 in each channel: one 16x16 patch, no resize
            lut = Image.fromarray(lut_image())
            o = proc(lut, patch_size=16, max_num_patches=1, return_tensors="np")
            assert o["spatial_shapes"][0].tolist() == [1, 1]
            TENSORS[f"lut.{name}"] = o["pixel_values"][0].astype(np.float32)
            entry["lut"] = f"lut.{name}"
            manifest["configs"].append(entry)

        # do_resize false: a 48x32 image is cut into 3x2 patches of 16 as it is
        proc = processor_for("preprocessor", {"do_resize": False, "max_num_patches": 8}, tmp)
        o = proc(Image.fromarray(formula_image(48, 32)), return_tensors="np")
        TENSORS["no_resize.pv"] = o["pixel_values"][0].astype(np.float32)
        manifest["no_resize"] = {"config": json.dumps({"do_resize": False, "max_num_patches": 8}),
                                 "w": 48, "h": 32, "rows": int(o["spatial_shapes"][0][0]),
                                 "cols": int(o["spatial_shapes"][0][1]), "pv": "no_resize.pv"}
    finally:
        shutil.rmtree(tmp)


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    ap.add_argument("--shared", default=os.path.join(repo, "..", "shared", "testdata"))
    ap.add_argument("--out", default=os.path.join(repo, "tests", "data"))
    args = ap.parse_args()

    import PIL
    manifest = {
        "pillow": PIL.__version__, "transformers": transformers.__version__,
        "note": "made by tools/reference/make_naflex_goldens.py; do not edit",
        "files": [], "formula": [], "configs": [],
        "store_config": {"patch": STORE_CONFIG[0], "max_num_patches": STORE_CONFIG[1]},
    }
    size_cases(manifest)
    file_cases(manifest, repo, args.shared)
    formula_cases(manifest)
    config_cases(manifest, repo)

    with open(os.path.join(args.out, "naflex_goldens.json"), "w") as f:
        json.dump(manifest, f, indent=None, sort_keys=True, separators=(",", ":"))
        f.write("\n")
    save_file({k: np.ascontiguousarray(v) for k, v in TENSORS.items()},
              os.path.join(args.out, "naflex_goldens.safetensors"))
    print(f"{len(manifest['formula'])} formula images, {len(manifest['configs'])} configs, "
          f"{len(TENSORS)} tensors")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Model directories in each layout of the image processor settings that
transformers reads, with the pixel_values transformers computes from them.

    pip install "transformers>=5" pillow numpy safetensors sentencepiece
    python3 tools/reference/make_processor_layouts.py [--out tests/data]

transformers 5's save_pretrained writes processor_config.json, whose
"image_processor" object holds the settings, and no preprocessor_config.json;
older checkpoints (most of the hub) have preprocessor_config.json. When a
directory has both, the nested object wins. Each case below is a directory
under processor_layouts/; the settings differ from SiglipImageProcessor's
defaults (BILINEAR, ImageNet mean/std, 32x32) so that reading the wrong file,
or none, changes the pixels:

  v5          SiglipProcessor.save_pretrained from transformers 5, as written
              (the tokenizer files it writes beside are removed)
  both        v5's processor_config.json beside a preprocessor_config.json with
              other settings: the nested settings decide
  v4          processor_config.json without "image_processor" (as older
              processors wrote it) beside preprocessor_config.json: the latter
              decides

processor_layouts.golden.safetensors holds pixel_values [3, H, W] per case
for tests/data/pillow/hopper.jpg, from AutoImageProcessor.from_pretrained on
the directory (the Pillow backend). Deterministic.
"""
import argparse
import json
import os
import shutil

import numpy as np
from PIL import Image
from safetensors.numpy import save_file
from transformers import AutoImageProcessor, SiglipImageProcessor, SiglipProcessor, SiglipTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data"))
    a = ap.parse_args()
    base = os.path.join(a.out, "processor_layouts")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)

    ip = SiglipImageProcessor(size={"height": 32, "width": 32}, resample=2,
                              image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    tok = SiglipTokenizer(os.path.join(ROOT, "tests", "data", "tok_siglip", "spiece.model"))
    v5 = os.path.join(base, "v5")
    SiglipProcessor(image_processor=ip, tokenizer=tok).save_pretrained(v5)
    for f in os.listdir(v5):
        if f != "processor_config.json":
            os.remove(os.path.join(v5, f))
    assert not os.path.exists(os.path.join(v5, "preprocessor_config.json"))

    both = os.path.join(base, "both")
    os.makedirs(both)
    shutil.copy(os.path.join(v5, "processor_config.json"), both)
    other = {"image_processor_type": "SiglipImageProcessor", "resample": 3,
             "size": {"height": 32, "width": 32}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    with open(os.path.join(both, "preprocessor_config.json"), "w") as f:
        json.dump(other, f, indent=2)

    v4 = os.path.join(base, "v4")
    os.makedirs(v4)
    with open(os.path.join(v4, "processor_config.json"), "w") as f:
        json.dump({"processor_class": "SiglipProcessor"}, f, indent=2)
    older = dict(other, resample=2, size={"height": 24, "width": 24}, image_mean=[0.25, 0.5, 0.75])
    with open(os.path.join(v4, "preprocessor_config.json"), "w") as f:
        json.dump(older, f, indent=2)

    img = Image.open(os.path.join(ROOT, "tests", "data", "pillow", "hopper.jpg")).convert("RGB")
    out = {}
    for name in ("v5", "both", "v4"):
        p = AutoImageProcessor.from_pretrained(os.path.join(base, name))
        pv = p(images=[img], return_tensors="np")["pixel_values"][0]
        out[name] = np.ascontiguousarray(pv.astype(np.float32))
        print(name, type(p).__name__, pv.shape, p.resample)
    save_file(out, os.path.join(a.out, "processor_layouts.golden.safetensors"))


if __name__ == "__main__":
    main()

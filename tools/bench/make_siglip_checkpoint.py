#!/usr/bin/env python3
"""Writes a full-size SigLIP checkpoint with random weights, in hub format.

    python3 tools/bench/make_siglip_checkpoint.py --out /tmp/siglip-base-224 \
        [--preset base-patch16-224] [--dtype float32|bfloat16|float16] [--vocab N]

The architecture is the published config of the named google/siglip-*
checkpoint (MODEL-SPEC.md's table): same shapes, so the same work as the
real model; only the numbers are random. Benchmarks use it because real
checkpoints cannot be downloaded here. --vocab sets the text embedding
table's rows (32000 by default; SigLIP 2's Gemma vocabulary is 256000): a
table lookup, so it changes memory, not timings.
"""
import argparse
import json
import os

import torch
from transformers import SiglipConfig, SiglipModel

PRESETS = {
    # name: (hidden, layers, heads, mlp, patch, image)
    "base-patch16-224": (768, 12, 12, 3072, 16, 224),
    "base-patch16-384": (768, 12, 12, 3072, 16, 384),
    "large-patch16-256": (1024, 24, 16, 4096, 16, 256),
    "so400m-patch14-384": (1152, 27, 16, 4304, 14, 384),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="base-patch16-224", choices=sorted(PRESETS))
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--vocab", type=int, default=32000)
    args = ap.parse_args()
    E, L, H, I, P, S = PRESETS[args.preset]
    tower = dict(hidden_size=E, num_hidden_layers=L, num_attention_heads=H, intermediate_size=I)
    cfg = SiglipConfig(text_config=dict(tower, vocab_size=args.vocab),
                       vision_config=dict(tower, patch_size=P, image_size=S))
    torch.manual_seed(0)
    model = SiglipModel(cfg).eval().to(getattr(torch, args.dtype))
    model.save_pretrained(args.out)
    with open(os.path.join(args.out, "config.json")) as f:
        saved = json.load(f)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: google/siglip-{args.preset} shapes, {n / 1e6:.1f}M parameters, "
          f"{args.dtype}, model_type {saved['model_type']}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes a full-size PaliGemma checkpoint with random weights, in hub format.

    python3 tools/bench/make_paligemma_checkpoint.py --out /tmp/paligemma-3b-pt-224 \
        [--dtype float32|bfloat16]

The architecture is the published config of google/paligemma-3b-pt-224:
SigLIP so400m/14 at 224 (27 layers, 1152 wide, 256 image tokens), a linear
projector to 2048, and Gemma-2B (18 layers, 2048 wide, MLP 16384, 8 query
heads and 1 KV head of 256, vocabulary 257216, tied LM head): same shapes,
so the same work as the real model (2.92B parameters); only the numbers are
random (small, so that activations stay in range). The hub ships this model
in float32; --dtype bfloat16 writes the half-size variant.
"""
import argparse
import json
import os

import torch
from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = ap.parse_args()
    text = dict(model_type="gemma", hidden_size=2048, intermediate_size=16384,
                num_hidden_layers=18, num_attention_heads=8, num_key_value_heads=1,
                head_dim=256, vocab_size=257216, max_position_embeddings=8192,
                hidden_activation="gelu_pytorch_tanh")
    vision = dict(model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304,
                  num_hidden_layers=27, num_attention_heads=16, image_size=224,
                  patch_size=14, projection_dim=2048, vision_use_head=False)
    cfg = PaliGemmaConfig(text_config=text, vision_config=vision, image_token_index=257152,
                          projection_dim=2048)
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    torch.set_default_dtype(dtype)
    with torch.no_grad():
        model = PaliGemmaForConditionalGeneration(cfg).eval()
        for p in model.parameters():  # init's defaults, scaled so the 18 layers stay finite
            if p.dim() > 1:
                p.normal_(0.0, 0.02)
    model.save_pretrained(args.out)
    with open(os.path.join(args.out, "config.json")) as f:
        saved = json.load(f)
    saved["model_type"] = "paligemma"
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(saved, f, indent=2)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: google/paligemma-3b-pt-224 shapes, {args.dtype}, "
          f"{n / 1e9:.2f}B parameters")


if __name__ == "__main__":
    main()

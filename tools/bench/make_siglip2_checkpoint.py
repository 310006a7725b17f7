#!/usr/bin/env python3
"""Writes a full-size SigLIP 2 NaFlex checkpoint with random weights, in hub format.

    python3 tools/bench/make_siglip2_checkpoint.py --out /tmp/siglip2-base-naflex [--vocab N]

The architecture is the published config of google/siglip2-base-patch16-naflex
(both towers 768 wide, 12 layers, 12 heads, MLP 3072; patch 16; a 16 x 16
position grid, num_patches 256; Gemma vocabulary of 256000): same shapes, so
the same work as the real model; only the numbers are random. --vocab
shrinks the text embedding table (no effect on image timings).
"""
import argparse

import torch
from transformers import Siglip2Config, Siglip2Model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=256000)
    args = ap.parse_args()
    tower = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072)
    cfg = Siglip2Config(text_config=dict(tower, vocab_size=args.vocab),
                        vision_config=dict(tower, patch_size=16, num_patches=256))
    torch.manual_seed(0)
    model = Siglip2Model(cfg).eval()
    model.save_pretrained(args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: google/siglip2-base-patch16-naflex shapes, vocab {args.vocab}, "
          f"{n / 1e6:.1f}M parameters")


if __name__ == "__main__":
    main()

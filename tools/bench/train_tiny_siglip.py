#!/usr/bin/env python3
"""Train a tiny SigLIP on synthetic pictures, so that low-precision
accuracy can be measured on a model whose zero-shot margins were learned
rather than drawn at random.

    python3 tools/bench/train_tiny_siglip.py --out DIR [--steps 1500] [--seed 0]

Twenty classes: five shapes (disc, square, triangle, horizontal stripes,
vertical stripes) times four colours, drawn at random places and sizes on
noisy backgrounds. Each class's "label text" is a fixed sequence of token
ids (shape word, colour word, filler), so no tokenizer is needed. Both
towers are trained with a softmax over the twenty label texts.

Writes DIR/config.json and DIR/model.safetensors (SiglipModel, the hub
layout prism loads) and DIR/eval.safetensors: 200 held-out pictures (ten
per class, pixel_values float32, normalised as the processor does),
their classes ("labels", int64) and the twenty label texts ("input_ids",
int64), ready for `prism embed --inputs` and for
`tools/bench/dtype_accuracy.py --inputs`. Needs torch, transformers,
numpy and safetensors; a few minutes on two cores.
"""
import argparse
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import SiglipConfig, SiglipModel

SIZE, PATCH, TEXT_LEN, VOCAB = 32, 4, 8, 64
SHAPES, COLOURS = 5, 4
CLASSES = SHAPES * COLOURS
PALETTE = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.15, 0.25, 0.95], [0.95, 0.85, 0.1]],
                   dtype=np.float32)


def draw(cls, rng):
    shape, colour = divmod(cls, COLOURS)
    img = rng.uniform(0.3, 0.7, size=(SIZE, SIZE, 3)).astype(np.float32)
    img = img * rng.uniform(0.4, 1.0) + rng.normal(0, 0.05, size=img.shape).astype(np.float32)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    r = rng.uniform(6, 12)
    cy, cx = rng.uniform(r, SIZE - r, size=2)
    if shape == 0:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif shape == 1:
        mask = (np.abs(yy - cy) <= r * 0.8) & (np.abs(xx - cx) <= r * 0.8)
    elif shape == 2:
        mask = (yy >= cy - r) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - (cy - r)) * 0.5)
    else:
        period = rng.uniform(4, 7)
        coord = yy if shape == 3 else xx
        mask = ((coord / period) % 1.0 < 0.5) & (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
    col = PALETTE[colour] * rng.uniform(0.8, 1.0)
    img[mask] = col + rng.normal(0, 0.03, size=(int(mask.sum()), 3)).astype(np.float32)
    img = np.clip(img, 0.0, 1.0)
    return ((img - 0.5) / 0.5).transpose(2, 0, 1)


def label_ids():
    ids = np.zeros((CLASSES, TEXT_LEN), dtype=np.int64)
    for c in range(CLASSES):
        shape, colour = divmod(c, COLOURS)
        ids[c] = [3, 10 + shape, 20 + colour, 4, 5, 6, 7, 1]
    return ids


def batch(n, rng):
    cls = rng.integers(0, CLASSES, size=n)
    return np.stack([draw(c, rng) for c in cls]), cls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cfg = SiglipConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=TEXT_LEN, bos_token_id=3, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(image_size=SIZE, patch_size=PATCH, hidden_size=64,
                           intermediate_size=256, num_hidden_layers=2, num_attention_heads=4))
    model = SiglipModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    texts = torch.from_numpy(label_ids())
    for step in range(args.steps):
        px, cls = batch(64, rng)
        img = model.get_image_features(pixel_values=torch.from_numpy(px))
        txt = model.get_text_features(input_ids=texts)
        img = getattr(img, "pooler_output", img)
        txt = getattr(txt, "pooler_output", txt)
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        logits = img @ txt.T * 10.0
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(cls))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            acc = (logits.argmax(1).numpy() == cls).mean()
            print(f"step {step} loss {loss.item():.4f} batch accuracy {acc:.3f}", file=sys.stderr)
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    erng = np.random.default_rng(args.seed + 1000)
    cls = np.repeat(np.arange(CLASSES), 10)
    # C order: safetensors writes the buffer as it lies in memory
    px = np.ascontiguousarray(np.stack([draw(c, erng) for c in cls]), dtype=np.float32)
    with torch.no_grad():
        img = model.get_image_features(pixel_values=torch.from_numpy(px))
        txt = model.get_text_features(input_ids=texts)
        img = getattr(img, "pooler_output", img)
        txt = getattr(txt, "pooler_output", txt)
        acc = ((img @ txt.T).argmax(1).numpy() == cls).mean()
    print(f"held-out accuracy {acc:.3f}", file=sys.stderr)
    save_file({"pixel_values": px, "input_ids": label_ids(), "labels": cls.astype(np.int64)},
              os.path.join(args.out, "eval.safetensors"))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Builds tiny random-weight SigLIP 2 NaFlex checkpoints (transformers'
Siglip2Model) in Hugging Face hub format and dumps transformers' float32
outputs for them, for prism's golden tests; and torch's antialiased bilinear
resize on many grid sizes, for the position-embedding resize.

    pip install torch transformers safetensors
    python3 tools/reference/make_siglip2_goldens.py [--out tests/data]

It writes
    tests/data/siglip2_resize.golden.safetensors
        cases [n, 4] I64 (gh, gw, h, w); grid_<i> [gh, gw, D] F32;
        out_<i> [h, w, D] F32 = F.interpolate(mode="bilinear",
        align_corners=False, antialias=True) of the grid in float32, and
        out64_<i> the same computed in float64 (rounded to F32); an output
        width of 1 is computed on the transposed grid (see torch_resize).
    tests/data/NAME/config.json, model.safetensors   (hub layout)
    tests/data/NAME.golden.safetensors               inputs and outputs:
        pixel_values [B, L, C·P·P] F32 (patchified, channel last per patch,
            as Siglip2ImageProcessor writes them; padded rows zero),
        pixel_attention_mask [B, L] I32, spatial_shapes [B, 2] I64,
        input_ids [n, T] I64, attention_mask [n, T] I64 (the tokenizer's),
        pos_resized [B, L, E] (each image's resized position embeddings,
            padded as transformers pads them), vision_last_hidden_state,
        image_pooled, image_embeds (pooled, and L2-normalised),
        text_pooled, text_embeds (no text mask, as SigLIP),
        text_pooled_masked, text_embeds_masked (with attention_mask),
        logits_per_image (texts without mask), logits_per_image_masked.

The images of a batch have different aspect ratios and patch counts, padded
to L = the largest count plus a few rows. Every parameter is perturbed after
transformers' init (which zeroes biases and the logit scale/bias), so each
tensor changes the outputs. The reference is computed from the checkpoint as
saved and reloaded (the BF16 variant is compared against the weights prism
reads), with eager attention, in float32. Deterministic: fixed seeds.
"""
import argparse
import json
import os
import shutil

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import Siglip2Config, Siglip2Model
from transformers.models.siglip2.configuration_siglip2 import Siglip2TextConfig, Siglip2VisionConfig
from transformers.models.siglip2.modeling_siglip2 import Siglip2VisionEmbeddings

CHECKPOINTS = [
    # name, seed, storage dtype, text_config, vision_config, spatial shapes, extra pad rows
    ("siglip2_tiny_a", 11, torch.float32,
     dict(vocab_size=128, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
          num_attention_heads=4, max_position_embeddings=16, pad_token_id=0, bos_token_id=2,
          eos_token_id=1),
     dict(hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
          patch_size=4, num_patches=16),
     # 4 x 4 grid: down in one axis and up in the other, 1 x N, exact, larger than the grid
     [(3, 5), (4, 4), (1, 9), (6, 2), (5, 5)], 3),
    ("siglip2_tiny_b", 12, torch.bfloat16,
     dict(vocab_size=200, hidden_size=24, intermediate_size=40, num_hidden_layers=1,
          num_attention_heads=2, max_position_embeddings=64, projection_size=36,
          layer_norm_eps=1e-5, pad_token_id=0, bos_token_id=2, eos_token_id=1),
     dict(hidden_size=36, intermediate_size=53, num_hidden_layers=3, num_attention_heads=6,
          patch_size=3, num_patches=25, layer_norm_eps=1e-5),
     # 5 x 5 grid, images wider and taller than square, odd sizes, 1 x 1
     [(2, 7), (7, 3), (1, 1), (4, 6), (3, 3), (8, 5)], 0),
]

# (gh, gw, h, w): up, down, mixed, odd, 1 x N and N x 1, unchanged axes
RESIZE_CASES = [
    (4, 4, 4, 4), (4, 4, 3, 5), (4, 4, 1, 9), (4, 4, 9, 1), (4, 4, 2, 1), (16, 16, 40, 1), (4, 4, 1, 1), (4, 4, 7, 13),
    (4, 4, 2, 2), (5, 5, 3, 3), (5, 5, 11, 2), (16, 16, 16, 16), (16, 16, 7, 9),
    (16, 16, 1, 64), (16, 16, 32, 32), (16, 16, 5, 51), (16, 16, 13, 17), (16, 16, 3, 1),
    (16, 16, 24, 11), (16, 16, 64, 16), (7, 7, 6, 8), (7, 7, 15, 2), (3, 5, 4, 4),
    (1, 6, 1, 4), (6, 1, 9, 1), (5, 3, 2, 7), (1, 1, 3, 5), (2, 2, 1, 1), (27, 27, 10, 37), (24, 24, 48, 5),
    (9, 9, 9, 3), (12, 12, 5, 12),
]


def torch_resize(grid, h, w, dtype):
    """F.interpolate(bilinear, antialias=True) of a [gh, gw, D] grid to [h, w, D].

    torch's CPU kernel is wrong when the output width is 1 and the height
    changes (torch 2.x: every output row repeats the first; a 4 x 4 arange
    grid to 2 x 1 gives [4.357, 4.357], not [4.357, 10.643]), while an output
    height of 1 is right. The filter is separable and the same along both
    axes, so those cases are computed on the transposed grid (torch, output
    height 1) and transposed back; for square grids the result is checked
    against transformers' own formulation, which Siglip2Model runs."""
    def run(g, oh, ow):
        return F.interpolate(g.to(dtype).permute(2, 0, 1)[None], size=(oh, ow), mode="bilinear",
                             align_corners=False, antialias=True)[0].permute(1, 2, 0)
    if w == 1:
        return run(grid.transpose(0, 1), 1, h).transpose(0, 1)
    return run(grid, h, w)


def make_resize_goldens(out_dir):
    gen = torch.Generator().manual_seed(7)
    tensors = {"cases": torch.tensor(RESIZE_CASES, dtype=torch.int64)}
    D = 3
    for i, (gh, gw, h, w) in enumerate(RESIZE_CASES):
        grid = torch.randn(gh, gw, D, generator=gen)
        out = torch_resize(grid, h, w, torch.float32)
        out64 = torch_resize(grid, h, w, torch.float64)
        if gh == gw:  # transformers' formulation (what Siglip2Model runs) agrees
            ref = Siglip2VisionEmbeddings.resize_positional_embeddings(
                grid.double(), torch.tensor([[h, w]]), max_length=h * w)[0].reshape(h, w, D)
            assert (ref - out64).abs().max() < 1e-5, (gh, gw, h, w)  # ref: float32 weights
        tensors[f"grid_{i}"] = grid.contiguous()
        tensors[f"out_{i}"] = out.contiguous()
        tensors[f"out64_{i}"] = out64.float().contiguous()
    save_file(tensors, os.path.join(out_dir, "siglip2_resize.golden.safetensors"),
              metadata={"source": "torch F.interpolate bilinear antialias=True, float32 and float64"})


def hub_style_config(path, text_kw, vision_kw):
    """Writes config.json the way hub files look: only non-default keys."""
    cfg = {
        "architectures": ["Siglip2Model"],
        "model_type": "siglip2",
        "initializer_factor": 1.0,
        "text_config": {"model_type": "siglip2_text_model", **text_kw},
        "vision_config": {"model_type": "siglip2_vision_model", **vision_kw},
    }
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def perturb(model, gen):
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        model.logit_scale.fill_(2.3 + float(torch.randn(1, generator=gen)) * 0.1)
        model.logit_bias.fill_(-1.5 + float(torch.randn(1, generator=gen)) * 0.1)


def make_images(gen, shapes, extra, C, P):
    """Patchified images as Siglip2ImageProcessor lays them out: patch rows in
    raster order, each patch (py, px, c); rows past h·w zero, mask 0."""
    L = max(h * w for h, w in shapes) + extra
    pv = torch.zeros(len(shapes), L, P * P * C)
    mask = torch.zeros(len(shapes), L, dtype=torch.int32)
    for b, (h, w) in enumerate(shapes):
        img = (torch.randn(C, h * P, w * P, generator=gen) * 0.6).clamp(-1, 1)
        patches = img.reshape(C, h, P, w, P).permute(1, 3, 2, 4, 0).reshape(h * w, P * P * C)
        pv[b, :h * w] = patches
        mask[b, :h * w] = 1
    return pv, mask, torch.tensor(shapes, dtype=torch.int64)


def build(out_dir, name, seed, dtype, text_kw, vision_kw, shapes, extra):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = Siglip2Config(text_config=Siglip2TextConfig(**text_kw).to_dict(),
                        vision_config=Siglip2VisionConfig(**vision_kw).to_dict())
    model = Siglip2Model(cfg).eval()
    perturb(model, gen)

    ckpt = os.path.join(out_dir, name)
    shutil.rmtree(ckpt, ignore_errors=True)
    model.to(dtype).save_pretrained(ckpt)
    hub_style_config(os.path.join(ckpt, "config.json"), text_kw, vision_kw)
    if os.path.exists(os.path.join(ckpt, "generation_config.json")):
        os.remove(os.path.join(ckpt, "generation_config.json"))

    ref = Siglip2Model.from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager").eval()
    vc, tc = ref.config.vision_config, ref.config.text_config
    pixel_values, mask, spatial = make_images(gen, shapes, extra, vc.num_channels, vc.patch_size)
    # Gemma-style ids: tokens, </s> (1), pads (0); the tokenizer's mask marks tokens and </s>
    T = tc.max_position_embeddings
    n_txt = 4
    input_ids = torch.randint(2, tc.vocab_size, (n_txt, T), generator=gen)
    attention_mask = torch.ones(n_txt, T, dtype=torch.int64)
    for i, n in enumerate([3, T // 2, T - 1, T]):
        if n < T:
            input_ids[i, n] = 1
            input_ids[i, n + 1:] = 0
            attention_mask[i, n + 1:] = 0
    with torch.no_grad():
        emb = ref.vision_model.embeddings
        grid = emb.position_embedding.weight.reshape(emb.position_embedding_size,
                                                     emb.position_embedding_size, -1)
        pos = emb.resize_positional_embeddings(grid, spatial, max_length=pixel_values.shape[1])
        v = ref.vision_model(pixel_values=pixel_values, pixel_attention_mask=mask,
                             spatial_shapes=spatial)
        t = ref.text_model(input_ids=input_ids)
        tm = ref.text_model(input_ids=input_ids, attention_mask=attention_mask)
        out = ref(input_ids=input_ids, pixel_values=pixel_values, pixel_attention_mask=mask,
                  spatial_shapes=spatial)
        outm = ref(input_ids=input_ids, pixel_values=pixel_values, pixel_attention_mask=mask,
                   spatial_shapes=spatial, attention_mask=attention_mask)
    tensors = {
        "pixel_values": pixel_values,
        "pixel_attention_mask": mask,
        "spatial_shapes": spatial,
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "pos_resized": pos,
        "vision_last_hidden_state": v.last_hidden_state,
        "image_pooled": v.pooler_output,
        "image_embeds": out.image_embeds,
        "text_pooled": t.pooler_output,
        "text_embeds": out.text_embeds,
        "text_pooled_masked": tm.pooler_output,
        "text_embeds_masked": outm.text_embeds,
        "logits_per_image": out.logits_per_image,
        "logits_per_image_masked": outm.logits_per_image,
    }
    save_file({k: x.contiguous() for k, x in tensors.items()},
              os.path.join(out_dir, name + ".golden.safetensors"),
              metadata={"source": "transformers Siglip2Model, float32, eager attention"})
    size = sum(os.path.getsize(os.path.join(ckpt, f)) for f in os.listdir(ckpt))
    print(f"{name}: {sorted(os.listdir(ckpt))} {size} bytes, "
          f"logits {out.logits_per_image.flatten()[:3].tolist()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    make_resize_goldens(args.out)
    for c in CHECKPOINTS:
        build(args.out, *c)


if __name__ == "__main__":
    main()

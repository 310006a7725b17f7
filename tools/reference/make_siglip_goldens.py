#!/usr/bin/env python3
"""Builds tiny random-weight SigLIP checkpoints in Hugging Face hub format and
dumps transformers' float32 outputs for them, for prism's golden tests.

    pip install torch transformers safetensors
    python3 tools/reference/make_siglip_goldens.py [--out tests/data]

For each checkpoint NAME it writes
    tests/data/NAME/config.json            hub-style: keys equal to the default omitted
    tests/data/NAME/model.safetensors      (or shards + model.safetensors.index.json)
    tests/data/NAME.golden.safetensors     inputs and reference outputs:
        pixel_values [B,C,S,S] F32, input_ids [B,T] I64,
        vision_last_hidden_state, image_pooled, text_pooled (pooler outputs),
        image_embeds, text_embeds (L2-normalised), logits_per_image.

Every parameter is perturbed after transformers' init (which zeroes biases
and the logit scale/bias), so each tensor changes the outputs. The reference
is computed from the checkpoint as saved and reloaded (so the BF16/F16
variants are compared against the weights prism actually reads), with eager
attention, in float32. Deterministic: a fixed seed per checkpoint.
"""
import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import SiglipConfig, SiglipModel
from transformers.models.siglip.configuration_siglip import SiglipTextConfig, SiglipVisionConfig

CHECKPOINTS = [
    # name, seed, storage dtype, max shard size, text_config, vision_config
    ("siglip_tiny_a", 1, torch.float32, None,
     dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
          num_attention_heads=4),
     dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
          image_size=32, patch_size=8)),
    ("siglip_tiny_b", 2, torch.bfloat16, "40KB",
     dict(vocab_size=500, hidden_size=40, intermediate_size=80, num_hidden_layers=2,
          num_attention_heads=5, max_position_embeddings=16, projection_size=48,
          layer_norm_eps=1e-5),
     dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=3,
          image_size=30, patch_size=6, layer_norm_eps=1e-5)),
    ("siglip_tiny_c", 3, torch.float16, None,
     dict(vocab_size=300, hidden_size=24, intermediate_size=37, num_hidden_layers=1,
          num_attention_heads=2, max_position_embeddings=20, projection_size=36),
     dict(hidden_size=36, intermediate_size=53, num_hidden_layers=2, num_attention_heads=6,
          image_size=28, patch_size=7, num_channels=3)),
]


def hub_style_config(path, text_kw, vision_kw):
    """Rewrites config.json the way hub files look: only non-default keys."""
    cfg = {
        "architectures": ["SiglipModel"],
        "model_type": "siglip",
        "initializer_factor": 1.0,
        "text_config": {"model_type": "siglip_text_model", **text_kw},
        "vision_config": {"model_type": "siglip_vision_model", **vision_kw},
    }
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def perturb(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        model.logit_scale.fill_(2.3 + float(torch.randn(1, generator=gen)) * 0.1)
        model.logit_bias.fill_(-1.5 + float(torch.randn(1, generator=gen)) * 0.1)


def build(out_dir, name, seed, dtype, shard, text_kw, vision_kw):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = SiglipConfig(text_config=SiglipTextConfig(**text_kw).to_dict(),
                       vision_config=SiglipVisionConfig(**vision_kw).to_dict())
    model = SiglipModel(cfg).eval()
    perturb(model, gen)

    ckpt = os.path.join(out_dir, name)
    shutil.rmtree(ckpt, ignore_errors=True)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.to(dtype).save_pretrained(ckpt, **kwargs)
    hub_style_config(os.path.join(ckpt, "config.json"), text_kw, vision_kw)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(ckpt, extra)):
            os.remove(os.path.join(ckpt, extra))

    ref = SiglipModel.from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager").eval()
    vc, tc = ref.config.vision_config, ref.config.text_config
    B_img, B_txt, T = 3, 4, tc.max_position_embeddings
    pixel_values = (torch.randn(B_img, vc.num_channels, vc.image_size, vc.image_size,
                                generator=gen) * 0.6).clamp(-1, 1)
    input_ids = torch.randint(2, tc.vocab_size, (B_txt, T), generator=gen)
    for i, n in enumerate([3, T // 2, T - 1, T]):  # real tokenizer output: ids, </s>, pads (1)
        input_ids[i, n:] = 1
    with torch.no_grad():
        v = ref.vision_model(pixel_values=pixel_values)
        t = ref.text_model(input_ids=input_ids)
        out = ref(pixel_values=pixel_values, input_ids=input_ids)
    tensors = {
        "pixel_values": pixel_values.float(),
        "input_ids": input_ids.to(torch.int64),
        "vision_last_hidden_state": v.last_hidden_state,
        "image_pooled": v.pooler_output,
        "text_pooled": t.pooler_output,
        "image_embeds": out.image_embeds,
        "text_embeds": out.text_embeds,
        "logits_per_image": out.logits_per_image,
    }
    save_file({k: x.contiguous() for k, x in tensors.items()},
              os.path.join(out_dir, name + ".golden.safetensors"),
              metadata={"source": "transformers SiglipModel, float32, eager attention"})
    files = sorted(os.listdir(ckpt))
    print(f"{name}: {files}, logits {out.logits_per_image.flatten()[:3].tolist()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    for c in CHECKPOINTS:
        build(args.out, *c)


if __name__ == "__main__":
    main()

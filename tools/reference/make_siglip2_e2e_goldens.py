#!/usr/bin/env python3
"""End-to-end goldens for SigLIP 2 checkpoints as the hub ships them: image
files and strings → embeddings through transformers' own processors and
models, for prism's tests of the engine, the CLI and the server.

    pip install torch transformers safetensors sentencepiece pillow
    python3 tools/reference/make_siglip2_e2e_goldens.py

Writes two tiny random-weight checkpoints in hub layout, each with the Gemma
BPE tokenizer of tests/data/tok_gemma (tokenizer.model and
tokenizer_config.json, "tokenizer_class": "GemmaTokenizer", linked, not
copied), and a golden file for each:

  tests/data/siglip2_naflex_e2e/   Siglip2Model (model_type siglip2, NaFlex):
      preprocessor_config.json as google/siglip2-base-patch16-naflex has it
      (Siglip2ImageProcessor, bilinear, mean/std 0.5) with patch_size 8 and
      max_num_patches 64 (the hub's is 16 and 256: smaller fixtures).
  tests/data/siglip2_fixres_e2e/   SiglipModel (model_type siglip), as
      google/siglip2-base-patch16-224: SiglipImageProcessor, bilinear
      (resample 2, as the hub's SigLIP 2 files say), 32 x 32.

  tests/data/<name>.golden.safetensors, computed from the saved checkpoint
  (weights stored as BF16 to keep the files small; the reference reloads
  them in float32) with eager attention:
      input_ids, attention_mask [n, 64] I64: Siglip2Tokenizer (the Gemma
          tokenizer + lowercase; prism uses it for every SigLIP 2
          checkpoint, docs/tokenizer.md), padding="max_length",
          max_length=64, truncation=True;
      text_pooled, text_embeds: get_text_features(input_ids, attention_mask)
          and its L2 normalisation - what model(**processor(...)) computes;
      NaFlex, for each max_num_patches M in the metadata's "max_num_patches"
      (the first is the processor's default): pixel_values_M [B, M, 3*P*P],
          pixel_attention_mask_M [B, M] I64, spatial_shapes_M [B, 2] I64
          (Siglip2ImageProcessorPil, the slow PIL path), image_pooled_M,
          image_embeds_M, logits_per_image_M (texts with their mask);
      FixRes: pixel_values [B, 3, 32, 32] (SiglipImageProcessorPil),
          image_pooled, image_embeds, logits_per_image.
  Metadata: "images" (paths relative to tests/data), "texts",
  "max_num_patches" (NaFlex), all JSON. Images are opened with
  transformers.image_utils.load_image (EXIF orientation applied, then RGB).
Deterministic (fixed seeds).
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import (SiglipConfig, SiglipModel, Siglip2Config, Siglip2Model,
                          Siglip2Tokenizer)
from transformers.image_utils import load_image
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil
from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "tests", "data")
TOK = "tok_gemma"

IMAGES = [  # landscape, EXIF-rotated, grey, 1-bit with tRNS, 17 x 3, palette + orientation, RGBA
    "pillow/flower.jpg",
    "pillow/hopper_orientation_5.jpg",
    "pillow/hopper_gray.jpg",
    "pillow/1_trns.png",
    "images/jpeg_odd_17x3.jpg",
    "images/png_orient6_pal.png",
    "images/png_rgba8.png",
]
TEXTS = [
    "a photo of a cat",
    "A PHOTO of a Dog!!",
    "",
    "Ünïcödé — ÜNICODE, full-width Ｈｅｌｌｏ, 日本語のテキスト 😀",
    "two  spaces\tand a tab",
    "a very long caption " * 20,
    "<eos> inside",
]
NAFLEX_PATCHES = [64, 24]  # the processor's default first


def perturb(model, gen):
    """transformers' init zeroes biases and sets the logit scale/bias: move
    every parameter so that each one changes the outputs."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-1.5)


def save_checkpoint(model, name, config):
    ckpt = os.path.join(DATA, name)
    shutil.rmtree(ckpt, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(ckpt)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(ckpt, extra)):
            os.remove(os.path.join(ckpt, extra))
    with open(os.path.join(ckpt, "config.json"), "w") as f:  # hub style: defaults omitted
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    for fn in ("tokenizer.model", "tokenizer_config.json"):  # links: committed once
        os.symlink(os.path.join("..", TOK, fn), os.path.join(ckpt, fn))
    return ckpt


def texts_golden(model, tok):
    t = tok(TEXTS, padding="max_length", truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        pooled = model.get_text_features(input_ids=t["input_ids"],
                                         attention_mask=t["attention_mask"])
    pooled = getattr(pooled, "pooler_output", pooled)
    return t, pooled


def l2(x):
    return x / x.norm(p=2, dim=-1, keepdim=True)


def logits(model, img_pooled, txt_pooled):
    return (l2(img_pooled) @ l2(txt_pooled).t()) * model.logit_scale.exp() + model.logit_bias


def make_naflex(tok, images, gen):
    name = "siglip2_naflex_e2e"
    text_kw = dict(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=48,
                   num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64,
                   pad_token_id=0, eos_token_id=1, bos_token_id=2)
    vision_kw = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                     num_attention_heads=4, patch_size=8, num_patches=16)
    torch.manual_seed(21)
    model = Siglip2Model(Siglip2Config(text_config=text_kw, vision_config=vision_kw)).eval()
    perturb(model, gen)
    ckpt = save_checkpoint(model, name, {
        "architectures": ["Siglip2Model"], "model_type": "siglip2", "initializer_factor": 1.0,
        "text_config": {"model_type": "siglip2_text_model", **text_kw},
        "vision_config": {"model_type": "siglip2_vision_model", **vision_kw}})
    proc = Siglip2ImageProcessorPil(patch_size=8, max_num_patches=NAFLEX_PATCHES[0])
    proc.save_pretrained(ckpt)
    ref = Siglip2Model.from_pretrained(ckpt, dtype=torch.float32,
                                       attn_implementation="eager").eval()
    t, txt = texts_golden(ref, tok)
    out = {"input_ids": t["input_ids"].to(torch.int64), "attention_mask":
           t["attention_mask"].to(torch.int64), "text_pooled": txt, "text_embeds": l2(txt)}
    for M in NAFLEX_PATCHES:
        x = proc(images=images, max_num_patches=M, return_tensors="pt")
        with torch.no_grad():
            img = ref.get_image_features(pixel_values=x["pixel_values"],
                                         pixel_attention_mask=x["pixel_attention_mask"],
                                         spatial_shapes=x["spatial_shapes"])
            img = getattr(img, "pooler_output", img)
            full = ref(input_ids=t["input_ids"], attention_mask=t["attention_mask"],
                       pixel_values=x["pixel_values"],
                       pixel_attention_mask=x["pixel_attention_mask"],
                       spatial_shapes=x["spatial_shapes"])
        lg = logits(ref, img, txt)
        assert (lg - full.logits_per_image).abs().max() < 1e-5  # the forward pass agrees
        out.update({f"pixel_values_{M}": x["pixel_values"].float(),
                    f"pixel_attention_mask_{M}": x["pixel_attention_mask"].to(torch.int64),
                    f"spatial_shapes_{M}": x["spatial_shapes"].to(torch.int64),
                    f"image_pooled_{M}": img, f"image_embeds_{M}": l2(img),
                    f"logits_per_image_{M}": full.logits_per_image})
    write(name, out, {"max_num_patches": json.dumps(NAFLEX_PATCHES),
                      "source": "Siglip2ImageProcessorPil + Siglip2Tokenizer + Siglip2Model"})


def make_fixres(tok, images, gen):
    name = "siglip2_fixres_e2e"
    text_kw = dict(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=48,
                   num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64,
                   pad_token_id=0, eos_token_id=1, bos_token_id=2)
    vision_kw = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                     num_attention_heads=4, image_size=32, patch_size=8)
    torch.manual_seed(22)
    model = SiglipModel(SiglipConfig(text_config=text_kw, vision_config=vision_kw)).eval()
    perturb(model, gen)
    ckpt = save_checkpoint(model, name, {
        "architectures": ["SiglipModel"], "model_type": "siglip",
        "text_config": {"model_type": "siglip_text_model", **text_kw},
        "vision_config": {"model_type": "siglip_vision_model", **vision_kw}})
    proc = SiglipImageProcessorPil(size={"height": 32, "width": 32}, resample=2)
    proc.save_pretrained(ckpt)
    ref = SiglipModel.from_pretrained(ckpt, dtype=torch.float32,
                                      attn_implementation="eager").eval()
    t, txt = texts_golden(ref, tok)
    pv = proc(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        img = ref.get_image_features(pixel_values=pv)
        img = getattr(img, "pooler_output", img)
        full = ref(input_ids=t["input_ids"], attention_mask=t["attention_mask"], pixel_values=pv)
    assert (logits(ref, img, txt) - full.logits_per_image).abs().max() < 1e-5
    write(name, {"input_ids": t["input_ids"].to(torch.int64),
                 "attention_mask": t["attention_mask"].to(torch.int64),
                 "text_pooled": txt, "text_embeds": l2(txt), "pixel_values": pv.float(),
                 "image_pooled": img, "image_embeds": l2(img),
                 "logits_per_image": full.logits_per_image},
          {"source": "SiglipImageProcessorPil + Siglip2Tokenizer + SiglipModel"})


def write(name, tensors, meta):
    meta = dict(meta, images=json.dumps(IMAGES), texts=json.dumps(TEXTS))
    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(DATA, name + ".golden.safetensors"), metadata=meta)
    print(f"{name}: {sorted(os.listdir(os.path.join(DATA, name)))}, {len(IMAGES)} images, "
          f"{len(TEXTS)} texts")


def main():
    tok = Siglip2Tokenizer.from_pretrained(os.path.join(DATA, TOK))
    assert tok.padding_side == "left"
    images = [load_image(os.path.join(DATA, p)) for p in IMAGES]  # EXIF orientation, RGB
    gen = torch.Generator().manual_seed(7)
    make_naflex(tok, images, gen)
    make_fixres(tok, images, gen)


if __name__ == "__main__":
    main()

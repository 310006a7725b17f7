#!/usr/bin/env python3
"""End-to-end goldens: image file bytes and strings → embeddings, through
transformers' own processor and model, for prism's test_e2e.

    python3 tools/reference/make_e2e_goldens.py   (after make_tokenizer_goldens.py)

Writes tests/data/siglip_tiny_e2e/ — a tiny random-weight SigLIP checkpoint in
hub format whose text vocabulary is tests/data/tok_siglip/spiece.model (a real
sentencepiece unigram model, linked) and whose preprocessor_config.json
asks for 40×40 images — and tests/data/siglip_tiny_e2e.golden.safetensors with
the pixel_values, input_ids and normalised embeddings that
SiglipImageProcessorPil (use_fast=False) + SiglipTokenizer + SiglipModel give
for the image files and texts listed in the file's metadata (image paths are
relative to the shared test corpus, ../shared/testdata). Deterministic.
"""
import json
import os
import shutil

import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import SiglipConfig, SiglipModel, SiglipTokenizer
from transformers.image_utils import load_image
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "tests", "data")
CORPUS = os.path.join(HERE, "..", "..", "..", "shared", "testdata")
NAME = "siglip_tiny_e2e"

IMAGES = [  # relative to the corpus: colour and grey JPEG, EXIF rotation, PNG with alpha, palette
    "pillow/hopper.jpg",
    "pillow/hopper_gray.jpg",
    "pillow/hopper_orientation_5.jpg",
    "pillow/hopper.png",
    "pillow/1_trns.png",
    "pillow/flower.jpg",
]
TEXTS = [
    "a photo of a cat",
    "A PHOTO of a Dog!!",
    "",
    "Ünïcödé — ünicode, full-width Ｈｅｌｌｏ, 日本語のテキスト 😀",
    "a very long caption " * 20,
]


def main():
    torch.manual_seed(7)
    gen = torch.Generator().manual_seed(7)
    spiece = os.path.join(DATA, "tok_siglip", "spiece.model")
    tok = SiglipTokenizer(vocab_file=spiece)
    text_kw = dict(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                   num_hidden_layers=2, num_attention_heads=4)
    vision_kw = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, image_size=40, patch_size=8)
    model = SiglipModel(SiglipConfig(text_config=text_kw, vision_config=vision_kw)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-1.5)

    ckpt = os.path.join(DATA, NAME)
    shutil.rmtree(ckpt, ignore_errors=True)
    model.save_pretrained(ckpt)
    with open(os.path.join(ckpt, "config.json"), "w") as f:  # hub style: defaults omitted
        json.dump({"architectures": ["SiglipModel"], "model_type": "siglip",
                   "text_config": {"model_type": "siglip_text_model", **text_kw},
                   "vision_config": {"model_type": "siglip_vision_model", **vision_kw}},
                  f, indent=2, sort_keys=True)
        f.write("\n")
    # a link, not a copy: the tokenizer fixture is committed once
    os.symlink(os.path.join("..", "tok_siglip", "spiece.model"), os.path.join(ckpt, "spiece.model"))
    proc = SiglipImageProcessorPil(size={"height": 40, "width": 40})
    proc.save_pretrained(ckpt)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(ckpt, extra)):
            os.remove(os.path.join(ckpt, extra))

    ref = SiglipModel.from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager").eval()
    images = [load_image(os.path.join(CORPUS, p)) for p in IMAGES]  # applies EXIF orientation
    pixel_values = proc(images=images, return_tensors="pt")["pixel_values"]
    input_ids = tok(TEXTS, padding="max_length", truncation=True, max_length=64,
                    return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = ref(pixel_values=pixel_values, input_ids=input_ids)
    save_file({"pixel_values": pixel_values.contiguous().float(),
               "input_ids": input_ids.to(torch.int64).contiguous(),
               "image_embeds": out.image_embeds.contiguous(),
               "text_embeds": out.text_embeds.contiguous(),
               "logits_per_image": out.logits_per_image.contiguous()},
              os.path.join(DATA, NAME + ".golden.safetensors"),
              metadata={"images": json.dumps(IMAGES), "texts": json.dumps(TEXTS),
                        "source": "SiglipImageProcessorPil + SiglipTokenizer + SiglipModel"})
    print(f"{NAME}: {sorted(os.listdir(ckpt))}, {len(IMAGES)} images, {len(TEXTS)} texts")


if __name__ == "__main__":
    main()

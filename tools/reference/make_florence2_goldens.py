#!/usr/bin/env python3
"""Tiny random-weight Florence-2 checkpoints in the transformers-native
layout (model_type florence2, Florence2ForConditionalGeneration), and what
transformers' image processor and model compute on them, for prism's golden
tests (tests/test_florence2_golden.c).

    pip install torch transformers safetensors pillow
    python3 tools/reference/make_florence2_goldens.py

Writes
  tests/data/florence2_tiny_a/  DaViT vision tower with four stages (depths
      1 1 2 1, widths 16 32 48 64), window 4, so that windows pad at three
      of the four stages (20, 10, 5 and 3 tokens a side for 80 x 80 pixels);
      BART with 2 + 2 layers, d_model 32, scale_embedding false;
  tests/data/florence2_tiny_b/  the same shapes with scale_embedding true,
      window 3 and 96 x 96 pixels (24, 12, 6, 3 a side: no padding but the
      last stage, which is one window);
      each: config.json (non-default keys, as the hub's), model.safetensors
      as transformers 5.25's save_pretrained writes it (float32),
      generation_config.json as Florence-2 checkpoints ship it
      (decoder_start_token_id 2, forced_bos_token_id 0, forced_eos_token_id
      2, no_repeat_ngram_size 3, num_beams 3), preprocessor_config.json
      (CLIPImageProcessor: bicubic resize to the square size, no crop,
      rescale, ImageNet mean and std; image_seq_length).
  tests/data/florence2_tiny_{a,b}.golden.safetensors, for every image i and
  case k (metadata "cases": [[image, prompt ids], ...]):
      pixel_values_<i> [1, 3, S, S] (CLIPImageProcessorPil);
      vision_<i> [C, h, w]: the vision tower's last stage;
      image_features_<i> [1 + h*w, D]: after the projector;
      input_ids_<k> [n] I64: <image> x (1 + h*w), 0 (<s>), prompt ids, 2 (</s>)
          as Florence2Processor lays them out (the ids are chosen here; the
          tokenizer is tested on its own);
      encoder_<k> [n, D]: the BART encoder's output;
      logits_<k> [V]: the logits of the first decoder step (input: the
          decoder start token 2);
      steps_<k> [m, V] (case 0 only): the logits at every position of the
          teacher-forced greedy sequence;
      greedy_<k> [m] I64: generate(num_beams=1, max_new_tokens=12) new ids
          (the generation config's forced BOS / EOS and no-repeat n-grams
          apply), without the decoder start token;
      beam3_<k> [m] I64: the same with num_beams=3.
  metadata: "cases", "min_gap" (the smallest top-1 / top-2 logit gap over
  every greedy step, how far float32 summation order is from an id flip).
Deterministic (fixed seeds); eager attention, float32.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
VOCAB = 300
IMAGE_TOKEN = VOCAB - 1

GEN_CONFIG = {
    "bos_token_id": 0, "decoder_start_token_id": 2, "eos_token_id": 2,
    "forced_bos_token_id": 0, "forced_eos_token_id": 2, "no_repeat_ngram_size": 3,
    "num_beams": 3, "pad_token_id": 1,
}

VARIANTS = {
    "florence2_tiny_a": dict(size=80, window=4, scale_embedding=False, seed=1),
    "florence2_tiny_b": dict(size=96, window=3, scale_embedding=True, seed=2),
}

IMAGES = ["pillow/flower.jpg", "pillow/hopper.jpg"]

PROMPTS = [
    [17, 45, 101, 9, 250],            # a short prompt
    [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 200, 201, 33],
    [42],
]


def make_config(v):
    from transformers import Florence2Config
    vision = dict(depths=[1, 1, 2, 1], embed_dim=[16, 32, 48, 64], num_heads=[2, 2, 4, 4],
                  num_groups=[2, 4, 4, 8], window_size=v["window"], projection_dim=32,
                  drop_path_rate=0.0, max_position_embeddings=50, max_temporal_embeddings=100)
    text = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                decoder_ffn_dim=64, max_position_embeddings=128, dropout=0.0,
                scale_embedding=v["scale_embedding"], activation_function="gelu")
    return Florence2Config(vision_config=vision, text_config=text, image_token_id=IMAGE_TOKEN)


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() == 1:  # norms: around 1
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def preprocessor_config(size, n_tokens):
    return {
        "image_processor_type": "CLIPImageProcessor", "do_resize": True,
        "size": {"height": size, "width": size}, "resample": 3, "do_center_crop": False,
        "crop_size": {"height": size, "width": size}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
        "do_convert_rgb": True, "image_seq_length": n_tokens,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DATA)
    args = ap.parse_args()
    from transformers import (CLIPImageProcessorPil, Florence2ForConditionalGeneration,
                              GenerationConfig)

    for name, v in VARIANTS.items():
        torch.manual_seed(v["seed"])
        cfg = make_config(v)
        cfg._attn_implementation = "eager"
        model = Florence2ForConditionalGeneration(cfg).eval()
        randomize(model, v["seed"])
        model.generation_config = GenerationConfig(**GEN_CONFIG)
        out_dir = os.path.join(args.out, name)
        os.makedirs(out_dir, exist_ok=True)
        model.save_pretrained(out_dir, safe_serialization=True)
        side = v["size"] // 4
        for _ in range(3):
            side = (side - 1) // 2 + 1
        n_img = 1 + side * side
        pcfg = preprocessor_config(v["size"], n_img)
        with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
            json.dump(pcfg, f, indent=2, sort_keys=True)
            f.write("\n")
        proc = CLIPImageProcessorPil(**{k: pcfg[k] for k in pcfg if k != "image_processor_type"
                                        and k != "image_seq_length"})
        tensors, cases, gaps = {}, [], []
        feats = []
        for i, rel in enumerate(IMAGES):
            with Image.open(os.path.join(DATA, rel)) as im:
                px = proc(images=im.convert("RGB"), return_tensors="pt")["pixel_values"]
            tensors[f"pixel_values_{i}"] = px.float().contiguous()
            with torch.no_grad():
                vis = model.model.vision_tower(px).last_hidden_state
                f = model.model.get_image_features(px).pooler_output
            assert f.shape[1] == n_img, (f.shape, n_img)
            tensors[f"vision_{i}"] = vis[0].contiguous()
            tensors[f"image_features_{i}"] = f[0].contiguous()
            feats.append(px)
        k = 0
        for i in range(len(IMAGES)):
            for prompt in PROMPTS:
                ids = [IMAGE_TOKEN] * n_img + [0] + prompt + [2]
                input_ids = torch.tensor([ids])
                px = feats[i]
                with torch.no_grad():
                    enc = model.get_encoder()(
                        inputs_embeds=merged_embeds(model, input_ids, px)).last_hidden_state
                    out = model(input_ids=input_ids, pixel_values=px,
                                decoder_input_ids=torch.tensor([[2]]))
                    greedy = model.generate(input_ids=input_ids, pixel_values=px, num_beams=1,
                                            do_sample=False, max_new_tokens=12)
                    beam = model.generate(input_ids=input_ids, pixel_values=px, num_beams=3,
                                          do_sample=False, max_new_tokens=12)
                    seq = greedy[0]
                    steps = model(input_ids=input_ids, pixel_values=px,
                                  decoder_input_ids=seq[None, :-1]).logits[0]
                top2 = torch.topk(steps, 2, dim=-1).values
                gaps.append(float((top2[:, 0] - top2[:, 1]).min()))
                tensors[f"input_ids_{k}"] = input_ids[0].to(torch.int64)
                tensors[f"encoder_{k}"] = enc[0].contiguous()
                tensors[f"logits_{k}"] = out.logits[0, 0].contiguous()
                tensors[f"greedy_{k}"] = seq[1:].to(torch.int64).contiguous()
                tensors[f"beam3_{k}"] = beam[0, 1:].to(torch.int64).contiguous()
                if k == 0:
                    tensors[f"steps_{k}"] = steps.contiguous()
                cases.append([i, prompt])
                k += 1
        meta = {"cases": json.dumps(cases), "min_gap": repr(min(gaps)),
                "n_image_tokens": str(n_img), "images": json.dumps(IMAGES)}
        save_file(tensors, os.path.join(args.out, name + ".golden.safetensors"), metadata=meta)
        print(name, "image tokens", n_img, "min gap", min(gaps),
              "greedy", tensors["greedy_0"].tolist(), "beam", tensors["beam3_0"].tolist())


def merged_embeds(model, input_ids, px):
    emb = model.get_input_embeddings()(input_ids)
    f = model.model.get_image_features(px).pooler_output
    mask = (input_ids == model.config.image_token_id)[..., None]
    return emb.masked_scatter(mask, f)


if __name__ == "__main__":
    sys.exit(main())

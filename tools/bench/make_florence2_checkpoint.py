#!/usr/bin/env python3
"""Writes a full-size Florence-2-base checkpoint with random weights, in the
transformers-native layout (Florence2ForConditionalGeneration, model_type
florence2), as florence-community/Florence-2-base ships it.

    python3 tools/bench/make_florence2_checkpoint.py [--out /tmp/prism-bench/florence2-base]

The architecture is the published Florence-2-base config, which transformers'
Florence2VisionConfig defaults mirror (checked below):
  DaViT: depths 1 1 9 1, widths 128 256 512 1024, heads and groups 4 8 16 32,
         window 12, patch embeddings 7/4/3 then 3/2/1 (pre-norm after the
         first), MLP ratio 4, qkv bias, projection to 768; 768 x 768 pixels
         -> a 24 x 24 last stage -> 577 image tokens;
  BART:  d_model 768, 6 encoder + 6 decoder layers, 12 heads, FFN 3072, GELU,
         max_position_embeddings 1024, scale_embedding false, tied head.
Vocabulary: the original checkpoints have 51289 rows; the native layout adds
"<image>" as id 51289 (image_token_id), and transformers looks the image
placeholders up in the embedding before it overwrites them with the image
features, so the table needs a row for it: 51290 rows (the one extra row is
never produced by the head in practice and costs 768 multiply-adds a step).
Same shapes, so the same work as the real model (about 0.27B parameters);
only the numbers are random (init's normal(0, 0.02), norms at 1).

generation_config.json is the hub checkpoint's (num_beams 3, no 3-gram
repeated, forced <s> first and </s> last, decoder start 2);
preprocessor_config.json is CLIPImageProcessor at 768 x 768 with ImageNet
mean/std and image_seq_length 577. No tokenizer: the benchmarks use token ids.
"""
import argparse
import json
import os

import torch
from transformers import Florence2Config, Florence2ForConditionalGeneration, GenerationConfig
from transformers.models.florence2.configuration_florence2 import Florence2VisionConfig

VOCAB = 51290          # 51289 + "<image>"
IMAGE_TOKEN_ID = 51289
IMAGE_SIZE = 768

VISION = dict(
    in_channels=3, depths=[1, 1, 9, 1], patch_size=[7, 3, 3, 3], patch_stride=[4, 2, 2, 2],
    patch_padding=[3, 1, 1, 1], patch_prenorm=[False, True, True, True],
    embed_dim=[128, 256, 512, 1024], num_heads=[4, 8, 16, 32], num_groups=[4, 8, 16, 32],
    window_size=12, drop_path_rate=0.1, mlp_ratio=4.0, qkv_bias=True,
    activation_function="gelu", projection_dim=768, max_temporal_embeddings=100,
    max_position_embeddings=50,
)

TEXT = dict(
    model_type="bart", vocab_size=VOCAB, d_model=768, encoder_layers=6, decoder_layers=6,
    encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072,
    decoder_ffn_dim=3072, max_position_embeddings=1024, activation_function="gelu",
    scale_embedding=False, dropout=0.1, attention_dropout=0.1, activation_dropout=0.1,
    bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2,
    forced_eos_token_id=2, is_encoder_decoder=True, add_final_layer_norm=False,
    normalize_before=False,
)

GEN_CONFIG = {
    "bos_token_id": 0, "decoder_start_token_id": 2, "early_stopping": True, "eos_token_id": 2,
    "forced_bos_token_id": 0, "forced_eos_token_id": 2, "no_repeat_ngram_size": 3,
    "num_beams": 3, "pad_token_id": 1,
}

PREPROCESSOR = {
    "image_processor_type": "CLIPImageProcessor", "processor_class": "Florence2Processor",
    "do_resize": True, "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "resample": 3,
    "do_center_crop": False, "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
    "do_convert_rgb": True, "image_seq_length": 577,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/prism-bench/florence2-base")
    args = ap.parse_args()
    # transformers' defaults are base: every vision value above must match them
    dflt = Florence2VisionConfig()
    for k, v in VISION.items():
        d = getattr(dflt, k)
        d = list(d) if isinstance(d, tuple) else d
        assert d == v or k == "projection_dim", (k, d, v)
    cfg = Florence2Config(vision_config=VISION, text_config=TEXT, image_token_id=IMAGE_TOKEN_ID)
    torch.manual_seed(0)
    with torch.no_grad():
        model = Florence2ForConditionalGeneration(cfg).eval()
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.02)
            elif name.endswith("weight"):  # norms
                p.fill_(1.0)
            else:
                p.zero_()
    model.generation_config = GenerationConfig(**GEN_CONFIG)
    model.save_pretrained(args.out)
    with open(os.path.join(args.out, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROCESSOR, f, indent=2, sort_keys=True)
        f.write("\n")
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: Florence-2-base shapes, float32, {n / 1e6:.1f}M parameters")


if __name__ == "__main__":
    main()

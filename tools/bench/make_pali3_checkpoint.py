#!/usr/bin/env python3
"""A full-size random pali3 checkpoint for benchmarks: SigLIP-B/16-224 vision
tower + flan-T5-base shapes (d_model 768, d_ff 2048, 12+12 layers, 12
heads, d_kv 64, gated-gelu, vocab 32128, untied lm_head), assembled with
tools/pali3/assemble.py from a random hub-style SigLIP dir and T5 dir.

    python3 tools/bench/make_pali3_checkpoint.py OUT_DIR

Weights are random (transformers' init): throughput numbers only.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import save_file
from transformers import SiglipVisionConfig, SiglipVisionModel, T5Config, T5ForConditionalGeneration


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp()
    sdir, tdir = os.path.join(tmp, "siglip"), os.path.join(tmp, "t5")
    os.makedirs(sdir)
    os.makedirs(tdir)
    vcfg = SiglipVisionConfig()  # google/siglip-base-patch16-224's vision tower
    vision = SiglipVisionModel(vcfg)
    save_file({"vision_model." + k: v.contiguous() for k, v in vision.state_dict().items()},
              os.path.join(sdir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(sdir, "config.json"), "w") as f:
        json.dump({"model_type": "siglip", "vision_config": {}, "text_config": {}}, f)
    tkw = dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_heads=12,
               feed_forward_proj="gated-gelu", tie_word_embeddings=False, eos_token_id=1,
               pad_token_id=0, decoder_start_token_id=0)
    t5 = T5ForConditionalGeneration(T5Config(**tkw))
    sd = {k: v.contiguous() for k, v in t5.state_dict().items()
          if k not in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")}
    sd["lm_head.weight"] = torch.randn(32128, 768) * 0.05  # untied, as flan-T5
    save_file(sd, os.path.join(tdir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(tdir, "config.json"), "w") as f:
        json.dump({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"], **tkw}, f)
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.check_call([sys.executable, os.path.join(here, "..", "pali3", "assemble.py"),
                           "--siglip", sdir, "--t5", tdir, "--out", out])


if __name__ == "__main__":
    main()

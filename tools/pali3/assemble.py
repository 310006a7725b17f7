#!/usr/bin/env python3
"""Assembles a pali3 model directory (docs/pali3.md) from a Hugging Face hub
SigLIP checkpoint and a hub T5 / flan-T5 / UL2 checkpoint.

    pip install torch safetensors
    python3 tools/pali3/assemble.py --siglip DIR --t5 DIR --out DIR \
        [--projector FILE.safetensors] [--dtype keep|f32|bf16|f16] [--seed N]

--siglip  a SiglipModel directory (google/siglip-*: vision_model.* and
          text_model.*) or a SiglipVisionModel directory; only the vision
          tower up to post_layernorm is kept (the pooling head and the text
          tower are dropped).
--t5      a T5ForConditionalGeneration directory (config.json,
          model.safetensors or shards, spiece.model).
--projector  a .safetensors file with `weight` [d_model, E] and `bias`
          [d_model] (or the full multi_modal_projector.linear.* names);
          without it the projector is fresh: nn.Linear's default
          initialisation (uniform ±1/√E) from --seed. A fresh projector
          makes a loadable, runnable model whose captions are meaningless
          until the projector (and usually more) is trained.

The output has config.json (model_type "pali3", vision_config, text_config,
image_token_count, prompt_templates), model.safetensors, spiece.model and
the SigLIP preprocessor_config.json. text_config is the T5 config.json as
is, plus eos_token_id 1, pad_token_id 0 and decoder_start_token_id 0 where
the file lacks them (transformers 5 only stops generate() at </s> when the
config names it). Tensors keep their dtype unless --dtype says otherwise.
"""
import argparse
import json
import os
import shutil

import torch
from safetensors import safe_open
from safetensors.torch import save_file

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def read_checkpoint(d):
    """All tensors of DIR/model.safetensors or its shards."""
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    elif os.path.exists(os.path.join(d, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        raise SystemExit(f"{d}: no model.safetensors or model.safetensors.index.json "
                         "(convert pytorch_model.bin checkpoints to safetensors first)")
    out = {}
    for fn in files:
        with safe_open(os.path.join(d, fn), "pt") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    return out


def load_json(path):
    with open(path) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--siglip", required=True)
    ap.add_argument("--t5", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--projector")
    ap.add_argument("--dtype", default="keep", choices=["keep", *DTYPES])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    scfg = load_json(os.path.join(args.siglip, "config.json"))
    if scfg.get("model_type") == "siglip":
        vcfg = dict(scfg.get("vision_config", {}))
    elif scfg.get("model_type") == "siglip_vision_model":
        vcfg = {k: v for k, v in scfg.items() if k not in ("architectures", "transformers_version",
                                                          "torch_dtype", "dtype")}
    else:
        raise SystemExit(f"{args.siglip}: model_type must be siglip or siglip_vision_model")
    vcfg["model_type"] = "siglip_vision_model"
    tcfg = {k: v for k, v in load_json(os.path.join(args.t5, "config.json")).items()
            if k not in ("architectures", "transformers_version", "task_specific_params")}
    if tcfg.get("model_type", "t5") not in ("t5", "mt5"):
        raise SystemExit(f"{args.t5}: model_type must be t5 (T5, flan-T5, UL2) or mt5")
    tcfg["model_type"] = tcfg.get("model_type", "t5")
    for key, default in (("eos_token_id", 1), ("pad_token_id", 0), ("decoder_start_token_id", 0)):
        tcfg.setdefault(key, default)

    image_size = vcfg.get("image_size", 224)
    patch_size = vcfg.get("patch_size", 16)
    E = vcfg.get("hidden_size", 768)
    D = tcfg.get("d_model", 512)
    N = (image_size // patch_size) ** 2

    tensors = {}
    for k, v in read_checkpoint(args.siglip).items():
        if k.startswith(("text_model.", "logit_")):
            continue  # SiglipModel's text tower and score head
        name = k if k.startswith("vision_model.") else "vision_model." + k  # transformers 5
        if not name.startswith("vision_model.head."):  # the pooling head: unused
            tensors[name] = v
    if "vision_model.post_layernorm.weight" not in tensors:
        raise SystemExit(f"{args.siglip}: no vision_model.post_layernorm.weight: not a SigLIP checkpoint")
    for k, v in read_checkpoint(args.t5).items():
        if k in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
            continue  # copies of shared.weight
        if k == "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight":
            continue  # ignored by transformers too
        tensors["language_model." + k] = v
    if "language_model.shared.weight" not in tensors:
        raise SystemExit(f"{args.t5}: no shared.weight: not a T5ForConditionalGeneration checkpoint")

    if args.projector:
        with safe_open(args.projector, "pt") as f:
            keys = set(f.keys())
            pre = "multi_modal_projector.linear." if "multi_modal_projector.linear.weight" in keys else ""
            w, b = f.get_tensor(pre + "weight"), f.get_tensor(pre + "bias")
        if tuple(w.shape) != (D, E) or tuple(b.shape) != (D,):
            raise SystemExit(f"{args.projector}: projector must be weight [{D}, {E}], bias [{D}]; "
                             f"got {tuple(w.shape)}, {tuple(b.shape)}")
    else:
        torch.manual_seed(args.seed)
        lin = torch.nn.Linear(E, D)
        w, b = lin.weight.detach(), lin.bias.detach()
    ref_dtype = tensors["language_model.shared.weight"].dtype
    tensors["multi_modal_projector.linear.weight"] = w.to(ref_dtype)
    tensors["multi_modal_projector.linear.bias"] = b.to(ref_dtype)
    if args.dtype != "keep":
        tensors = {k: v.to(DTYPES[args.dtype]) for k, v in tensors.items()}

    os.makedirs(args.out, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["Pali3ForConditionalGeneration"],
        "model_type": "pali3",
        "vision_config": vcfg,
        "text_config": tcfg,
        "image_token_count": N,
        "prompt_templates": {"caption": "caption {lang}", "vqa": "answer {lang} {question}"},
        "assembled_from": {"siglip": os.path.abspath(args.siglip), "t5": os.path.abspath(args.t5),
                           "projector": os.path.abspath(args.projector) if args.projector
                           else f"fresh (seed {args.seed})"},
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    sp = os.path.join(args.t5, "spiece.model")
    if os.path.exists(sp):
        shutil.copy(sp, os.path.join(args.out, "spiece.model"))
    else:
        print(f"warning: {args.t5} has no spiece.model: prompts must be given as ids")
    pp = os.path.join(args.siglip, "preprocessor_config.json")
    if os.path.exists(pp):
        shutil.copy(pp, os.path.join(args.out, "preprocessor_config.json"))
    n = sum(v.numel() for v in tensors.values())
    print(f"{args.out}: {len(tensors)} tensors, {n / 1e6:.1f}M parameters, "
          f"{N} image tokens, d_model {D}")


if __name__ == "__main__":
    main()

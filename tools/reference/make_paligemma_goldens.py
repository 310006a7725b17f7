#!/usr/bin/env python3
"""Tiny random-weight PaliGemma checkpoints in hub layout, and what
transformers' processor and model compute on them, for prism's golden tests.

    pip install torch transformers safetensors sentencepiece protobuf tokenizers pillow
    python3 tools/reference/make_paligemma_goldens.py

Writes
  tests/data/tok_paligemma/   tokenizer.model + tokenizer_config.json (the hub
      also ships tokenizer.json, which prism does not read; the reference is
      computed from one made as GemmaConverter makes it): a
      SentencePiece BPE trained like tests/data/tok_gemma (byte fallback, the
      Gemma layout <pad> <eos> <bos> <unk> at 0-3) with PaliGemma's extra
      pieces as user-defined symbols: <loc0000>..<loc1023> and
      <seg000>..<seg127> (as the real tokenizer, whose vocabulary is Gemma's
      256,000 plus these 1,152); GemmaTokenizer, add_bos_token true,
      add_eos_token false, as google/paligemma-* ship it.
  tests/data/paligemma_tiny_a/  PaliGemmaForConditionalGeneration, text_config
      gemma (multi-query: 1 KV head), and
  tests/data/paligemma_tiny_b/  the same with text_config gemma2 (grouped-query
      attention, query_pre_attn_scalar, attention and final logit soft-capping,
      a sliding window of 6 positions so that sliding layers cut the context of
      the generated tokens);
      each: config.json (hub style: non-default keys), model.safetensors as
      transformers 5.25's save_pretrained writes it (BF16, to keep the files
      small; the reference runs on the same weights in float32),
      preprocessor_config.json (SiglipImageProcessor as the hub's, saved from the PIL
      path: bicubic,
      mean/std 0.5, here 32 x 32; image_seq_length 16) and links to the
      tokenizer files. The image token is "<image>", added by
      PaliGemmaProcessor after the vocabulary (id = pieces), below the model's
      vocab_size (padded to a multiple of 16, as the real 257,216).
  tests/data/paligemma_tiny_{a,b}.golden.safetensors, for every image x prompt
  case k (metadata "cases": [[image, prompt], ...]):
      pixel_values_<i> [1, 3, 32, 32] (SiglipImageProcessor, PIL path);
      input_ids_<k> [n] I64 (PaliGemmaProcessor: <image> x 16, <bos>, the
          prompt, "\\n"; token_type_ids all 0, attention_mask all 1);
      logits_<k> [V]: the last prompt position's logits;
      greedy_<k> [m] I64: generate(do_sample=False, max_new_tokens=12) new ids;
      beam3_<k> [m] I64: the same with num_beams=3 (transformers' defaults:
          length_penalty 1.0, early_stopping False);
      steps_<k> [m - 1, V] (case 0 only): the logits after each
          generated token but the last, from one forward pass over prompt +
          generated ids with token_type_ids 1 on the generated part (what the
          decode steps compute);
  metadata: "images" (paths relative to tests/data), "prompts", "cases",
  "decoded" (tokenizer.decode(greedy, skip_special_tokens=True) per case),
  "min_gap" (the smallest top-1 / top-2 logit gap over every greedy step: how
  far float32 summation order is from flipping an id), and "tok_cases":
  [[string, ids, decoded], ...] for GemmaTokenizer without special tokens,
  "<image>" added (as PaliGemmaProcessor adds it).
Deterministic (fixed seeds); eager attention, float32.
"""
import json
import os
import random
import shutil
import sys
import tempfile
import warnings

import torch
import transformers
from safetensors.torch import save_file
from transformers import (GemmaTokenizer, PaliGemmaConfig, PaliGemmaForConditionalGeneration,
                          PaliGemmaProcessor)
from transformers.image_utils import load_image
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_gemma_tokenizer_goldens as gemma  # noqa: E402  (train, write_dir, strings)
import make_tokenizer_goldens as base  # noqa: E402  (corpus)

DATA = os.path.join(HERE, "..", "..", "tests", "data")
TOK = "tok_paligemma"
IMAGES = ["pillow/flower.jpg", "pillow/hopper.jpg"]
PROMPTS = ["caption en", "answer en what is in the image?", "detect cat ; dog", "ocr"]
LOC = [f"<loc{i:04d}>" for i in range(1024)]
SEG = [f"<seg{i:03d}>" for i in range(128)]
MAX_NEW = 12

CONFIGS = {
    "paligemma_tiny_a": (31, 0.5, dict(
        model_type="gemma", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=8, max_position_embeddings=128,
        rope_theta=10000.0)),
    "paligemma_tiny_b": (32, 0.3, dict(
        model_type="gemma2", hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
        query_pre_attn_scalar=12, attn_logit_softcapping=5.0, final_logit_softcapping=30.0,
        sliding_window=6)),
}


def make_tokenizer(tmp):
    """Trains the tokenizer; writes tests/data/tok_paligemma (tokenizer.model,
    tokenizer_config.json) and, in tmp, the same with the tokenizer.json the
    hub ships (GemmaConverter's merges: piece score, then longer parts first),
    which the reference loads: transformers 5.25 converting tokenizer.model
    alone orders merges of equal score differently (shorter parts first),
    which changes runs of spaces; docs/tokenizer.md."""
    rng = random.Random(gemma.SEED)
    corpus = base.make_corpus(rng, 20000)
    proto = gemma.train(os.path.join(tmp, "tok"), corpus, vocab_size=5200,
                        character_coverage=0.9995,
                        user_defined_symbols=gemma.GEMMA_USER + LOC + SEG)
    d = os.path.join(DATA, TOK)
    shutil.rmtree(d, ignore_errors=True)
    model_bytes = proto.SerializeToString()
    gemma.write_dir(d, proto, model_bytes, True, False, None, with_json=False)
    hub = os.path.join(tmp, "hub")
    gemma.write_dir(hub, proto, model_bytes, True, False, None, with_json=True)
    return len(proto.pieces), hub


def tok_cases(tok):
    strings = PROMPTS + ["detect <loc0001> cat", "Mixed CASE kept", "<image> literal",
                         "tab\there", "new\nline", "ÜNICODE é 日本語 😀"]
    strings += gemma.gemma_strings(random.Random(5))[:300]
    out = []
    for s in strings:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        out.append([s, ids, tok.decode(ids, skip_special_tokens=True)])
    return out


def make_model(name, n_pieces, tok):
    seed, scale, text_kw = CONFIGS[name]
    vocab = (n_pieces + 1 + 15) // 16 * 16
    vision_kw = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=48,
                     num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8,
                     projection_dim=text_kw["hidden_size"], vision_use_head=False)
    text_kw = dict(text_kw, vocab_size=vocab)
    cfg = PaliGemmaConfig(text_config=text_kw, vision_config=vision_kw,
                          image_token_index=n_pieces, projection_dim=text_kw["hidden_size"])
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    d = os.path.join(DATA, name)
    shutil.rmtree(d, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(d)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    with open(os.path.join(d, "config.json"), "w") as f:  # hub style
        json.dump({"architectures": ["PaliGemmaForConditionalGeneration"],
                   "model_type": "paligemma", "image_token_index": n_pieces,
                   "projection_dim": text_kw["hidden_size"], "text_config": text_kw,
                   "vision_config": vision_kw}, f, indent=2, sort_keys=True)
        f.write("\n")
    for fn in ("tokenizer.model", "tokenizer_config.json"):
        os.symlink(os.path.join("..", TOK, fn), os.path.join(d, fn))
    improc = SiglipImageProcessorPil(size={"height": 32, "width": 32}, resample=3,
                                  image_mean=[0.5] * 3, image_std=[0.5] * 3)
    improc.image_seq_length = 16
    improc.save_pretrained(d)
    return d, improc


def goldens(name, d, improc, tok):
    ref = PaliGemmaForConditionalGeneration.from_pretrained(
        d, dtype=torch.float32, attn_implementation="eager").eval()
    proc = PaliGemmaProcessor(image_processor=improc, tokenizer=tok)
    images = [load_image(os.path.join(DATA, p)) for p in IMAGES]
    tensors, cases, decoded, min_gap = {}, [], [], float("inf")
    for i, im in enumerate(images):
        tensors[f"pixel_values_{i}"] = proc.image_processor(im, return_tensors="pt")["pixel_values"]
    for i, im in enumerate(images):
        for p in PROMPTS:
            k = len(cases)
            cases.append([i, p])
            x = proc(text=p, images=im, return_tensors="pt")
            assert torch.equal(x["pixel_values"], tensors[f"pixel_values_{i}"])
            assert int(x["token_type_ids"].sum()) == 0
            ids = x["input_ids"]
            with torch.no_grad():
                out = ref(**x)
                g = ref.generate(**x, do_sample=False, max_new_tokens=MAX_NEW,
                                 output_scores=True, return_dict_in_generate=True)
                b = ref.generate(**x, do_sample=False, num_beams=3, max_new_tokens=MAX_NEW)
            new = g.sequences[0, ids.shape[1]:]
            tensors[f"beam3_{k}"] = b[0, ids.shape[1]:].to(torch.int64)
            for s in g.scores:
                top = torch.topk(s[0], 2).values
                min_gap = min(min_gap, float(top[0] - top[1]))
            tensors[f"input_ids_{k}"] = ids[0].to(torch.int64)
            tensors[f"logits_{k}"] = out.logits[0, -1]
            tensors[f"greedy_{k}"] = new.to(torch.int64)
            decoded.append(tok.decode(new, skip_special_tokens=True))
            if k == 0 and len(new) > 1:
                full = torch.cat([ids, new[None, :-1]], 1)
                tt = torch.cat([torch.zeros_like(ids), torch.ones_like(new[None, :-1])], 1)
                with torch.no_grad():
                    fo = ref(input_ids=full, pixel_values=x["pixel_values"], token_type_ids=tt,
                             attention_mask=torch.ones_like(full))
                tensors[f"steps_{k}"] = fo.logits[0, ids.shape[1]:]
                # the teacher-forced pass gives the generated ids back
                assert torch.equal(fo.logits[0, ids.shape[1] - 1:].argmax(-1), new)
    meta = {"images": json.dumps(IMAGES), "prompts": json.dumps(PROMPTS),
            "cases": json.dumps(cases), "decoded": json.dumps(decoded),
            "min_gap": repr(min_gap), "tok_cases": json.dumps(tok_cases(tok)),
            "transformers": transformers.__version__}
    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(DATA, name + ".golden.safetensors"), metadata=meta)
    print(f"{name}: {len(cases)} cases, min top-2 gap {min_gap:.3g}, decoded {decoded[:3]}")


def main():
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    tmp = tempfile.mkdtemp()
    try:
        n_pieces, hub = make_tokenizer(tmp)
        for name in CONFIGS:
            tok = GemmaTokenizer.from_pretrained(hub)  # the processor adds <image> to it
            d, improc = make_model(name, n_pieces, tok)
            goldens(name, d, improc, tok)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()

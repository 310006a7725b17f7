#!/usr/bin/env python3
"""A tiny random-weight Florence-2 checkpoint with a real tokenizer, and what
transformers' Florence2Processor and generate() give for task prompts and
questions on image files, for prism's text-level test
(tests/test_florence2_e2e.c).

    pip install torch transformers safetensors pillow
    python3 tools/reference/make_florence2_e2e_goldens.py

Writes
  tests/data/florence2_tiny_tok/  the checkpoint:
      tokenizer.json, tokenizer_config.json, vocab.json, merges.txt: copied
          from tests/data/tok_bart (BART's byte-level BPE laid out as
          Florence-2's, <loc_0>...<loc_999> and the task tokens added,
          <image> last of Florence's; tools/reference/make_bytebpe_goldens.py);
      config.json, model.safetensors: Florence2ForConditionalGeneration with
          tests/data/florence2_tiny_a's vision tower at half its widths
          (8 16 24 32: the file stays near 1 MB; 80 x 80 pixels, 10 image
          tokens), BART 2 + 2 layers, d_model 32, vocab_size =
          len(tokenizer), image_token_id = the id of "<image>",
          max_position_embeddings 256; random weights (fixed seed), with the
          <loc_N> rows of the shared (tied) embedding scaled by 1.25 so that
          greedy and beam outputs hold location tokens;
      generation_config.json as Florence-2 checkpoints ship it
          (decoder_start_token_id 2, forced_bos_token_id 0,
          forced_eos_token_id 2, no_repeat_ngram_size 3, num_beams 3);
      preprocessor_config.json (CLIPImageProcessor, image_seq_length 10);
      processor_config.json (Florence2Processor with the post_processor_config
          of transformers' convert_florence2_original_pytorch_to_hf.py).
  tests/data/florence2_tiny_tok.golden.json: {"image_tokens", "image_token_id",
      "max_new_tokens", "min_gap" (the smallest top-1 / top-2 gap of the
      processed scores over every greedy step that is not forced: how far
      float32 summation order is from an id flip), "cases": [...]}, each case:
      image (under tests/data), width, height (PIL's size: what
          post_process_generation takes),
      text (what a user gives: a task token, a task token with its input, a
          question), task (post_process_generation's task: the task token, or
          the text itself when it has none, which the processor parses as pure
          text),
      prompt (Florence2Processor._construct_prompts(text)),
      input_ids: the text part of the processor's input_ids: <s>, the
          prompt's ids, </s>; the script checks that the processor's
          input_ids are <image> x image_tokens followed by exactly these,
      greedy / beam3: {ids (generate()'s new ids, without the decoder start
          token), raw (processor.batch_decode(ids, skip_special_tokens=False),
          what post_process_generation takes), pure (skip_special_tokens=True),
          answer (post_process_generation(raw, task, image_size=(w, h)); the
          script checks that the decode of generate()'s whole output, the
          decoder start token </s> in front, as the model card passes it,
          gives the same answer)}.
Deterministic (fixed seeds); eager attention, float32.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import torch
from PIL import Image

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
NAME = "florence2_tiny_tok"
TOK_DIR = os.path.join(DATA, "tok_bart")
TOK_FILES = ["tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"]
SIZE = 80          # pixels a side: 20, 10, 5, 3 tokens per stage; 1 + 3 * 3 image tokens
SEED = 7
LOC_SCALE = 1.25   # the <loc_N> embedding rows
MAX_NEW = 24

GEN_CONFIG = {
    "bos_token_id": 0, "decoder_start_token_id": 2, "eos_token_id": 2,
    "forced_bos_token_id": 0, "forced_eos_token_id": 2, "no_repeat_ngram_size": 3,
    "num_beams": 3, "pad_token_id": 1,
}

# convert_florence2_original_pytorch_to_hf.py's post_processor_config
BANNED = [
    "it", "I", "me", "mine", "you", "your", "yours", "he", "him", "his", "she", "her", "hers",
    "they", "them", "their", "theirs", "one", "oneself", "we", "us", "our", "ours", "you", "your",
    "yours", "they", "them", "their", "theirs", "mine", "yours", "his", "hers", "its", "ours",
    "yours", "theirs", "myself", "yourself", "himself", "herself", "itself", "ourselves",
    "yourselves", "themselves", "this", "that", "these", "those", "who", "whom", "whose", "which",
    "what", "who", "whom", "whose", "which", "that", "all", "another", "any", "anybody", "anyone",
    "anything", "each", "everybody", "everyone", "everything", "few", "many", "nobody", "none",
    "one", "several", "some", "somebody", "someone", "something", "each other", "one another",
    "myself", "yourself", "himself", "herself", "itself", "ourselves", "yourselves",
    "themselves", "the image", "image", "images", "the", "a", "an", "a group", "other objects",
    "lots", "a set",
]
POST_CONFIG = {
    "ocr": {
        "pattern": r"(.+?)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>"
                   r"<loc_(\d+)><loc_(\d+)>",
        "area_threshold": 0.0,
    },
    "phrase_grounding": {"banned_grounding_tokens": BANNED},
    "pure_text": {}, "description_with_bboxes": {}, "description_with_polygons": {},
    "polygons": {}, "bboxes": {}, "description_with_bboxes_or_polygons": {},
}

# (image under tests/data, what the user gives)
CASES = [
    ("pillow/flower.jpg", "<CAPTION>"),
    ("pillow/hopper.jpg", "<DETAILED_CAPTION>"),
    ("pillow/hopper_gray.jpg", "<MORE_DETAILED_CAPTION>"),
    ("pillow/flower.jpg", "<OCR>"),
    ("pillow/hopper.png", "<OCR_WITH_REGION>"),
    ("pillow/flower.jpg", "<OD>"),
    ("pillow/hopper.jpg", "<OD>"),
    ("pillow/flower.jpg", "<DENSE_REGION_CAPTION>"),
    ("pillow/hopper.jpg", "<REGION_PROPOSAL>"),
    ("pillow/flower.jpg", "<CAPTION_TO_PHRASE_GROUNDING>a dog"),
    ("pillow/hopper.jpg", "<CAPTION_TO_PHRASE_GROUNDING> a man with a hat and a feather "),
    ("pillow/flower.jpg", "<OPEN_VOCABULARY_DETECTION>flower"),
    ("pillow/hopper_gray.jpg", "<REGION_TO_DESCRIPTION><loc_100><loc_200><loc_600><loc_900>"),
    ("pillow/flower.jpg", "<REGION_TO_CATEGORY><loc_0><loc_0><loc_999><loc_999>"),
    ("pillow/hopper.png", "What is in the image?"),
    ("pillow/flower.jpg", "How many petals does the flower have?"),
    ("pillow/hopper.jpg", "Qu'est-ce que c'est ? 这是什么？ naïve café 🌸"),
    ("pillow/hopper_gray.jpg", "  spaces   and\ttabs \n"),
    ("pillow/flower.jpg", ""),
    ("pillow/hopper.jpg", "<ocr> is a token </s> and <loc_5>"),
]


def make_config(vocab, image_token_id):
    from transformers import Florence2Config
    vision = dict(depths=[1, 1, 2, 1], embed_dim=[8, 16, 24, 32], num_heads=[1, 2, 2, 2],
                  num_groups=[1, 2, 2, 4], window_size=4, projection_dim=32,
                  drop_path_rate=0.0, max_position_embeddings=50, max_temporal_embeddings=100)
    text = dict(vocab_size=vocab, d_model=32, encoder_layers=2, decoder_layers=2,
                encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                decoder_ffn_dim=64, max_position_embeddings=256, dropout=0.0,
                scale_embedding=False, activation_function="gelu")
    return Florence2Config(vision_config=vision, text_config=text, image_token_id=image_token_id)


def randomize(model, tok, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() == 1:  # norms: around 1
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
        emb = model.get_input_embeddings().weight
        loc = tok.convert_tokens_to_ids([f"<loc_{i}>" for i in range(1000)])
        emb[loc] *= LOC_SCALE


def preprocessor_config(n_tokens):
    return {
        "image_processor_type": "CLIPImageProcessor", "do_resize": True,
        "size": {"height": SIZE, "width": SIZE}, "resample": 3, "do_center_crop": False,
        "crop_size": {"height": SIZE, "width": SIZE}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
        "do_convert_rgb": True, "image_seq_length": n_tokens,
    }


def run(model, proc, tok, px, input_ids, beams, task, size):
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, pixel_values=px, num_beams=beams,
                             do_sample=False, max_new_tokens=MAX_NEW, output_scores=True,
                             return_dict_in_generate=True)
    seq = out.sequences
    gap = float("inf")
    if beams == 1:  # scores after the logits processors; forced steps have one finite score
        for s in out.scores:
            top = torch.topk(s[0], 2).values
            if torch.isfinite(top[1]):
                gap = min(gap, float(top[0] - top[1]))
    ids = seq[0, 1:].tolist()
    raw = proc.batch_decode(seq[:, 1:], skip_special_tokens=False)[0]
    pure = proc.batch_decode(seq[:, 1:], skip_special_tokens=True)[0]
    answer = proc.post_process_generation(raw, task=task, image_size=size)
    # the model card decodes generate()'s whole output, the decoder start
    # token </s> in front: the answer is the same
    whole = proc.batch_decode(seq, skip_special_tokens=False)[0]
    assert proc.post_process_generation(whole, task=task, image_size=size) == answer, task
    return {"ids": ids, "raw": raw, "pure": pure, "answer": answer}, gap


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DATA)
    args = ap.parse_args()
    from transformers import (AutoTokenizer, CLIPImageProcessorPil, Florence2ForConditionalGeneration,
                              Florence2Processor, GenerationConfig)

    out_dir = os.path.join(args.out, NAME)
    os.makedirs(out_dir, exist_ok=True)
    for f in TOK_FILES:
        shutil.copyfile(os.path.join(TOK_DIR, f), os.path.join(out_dir, f))
    tok = AutoTokenizer.from_pretrained(out_dir)
    image_token_id = tok.convert_tokens_to_ids("<image>")
    assert tok.image_token == "<image>" and tok.image_token_id == image_token_id

    side = SIZE // 4
    for _ in range(3):
        side = (side - 1) // 2 + 1
    n_img = 1 + side * side

    torch.manual_seed(SEED)
    cfg = make_config(len(tok), image_token_id)
    cfg._attn_implementation = "eager"
    model = Florence2ForConditionalGeneration(cfg).eval()
    randomize(model, tok, SEED)
    model.generation_config = GenerationConfig(**GEN_CONFIG)
    model.save_pretrained(out_dir, safe_serialization=True)
    pcfg = preprocessor_config(n_img)
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(pcfg, f, indent=2, sort_keys=True)
        f.write("\n")
    improc = CLIPImageProcessorPil(**{k: pcfg[k] for k in pcfg
                                      if k not in ("image_processor_type", "image_seq_length")})
    improc.image_seq_length = n_img
    proc = Florence2Processor(image_processor=improc, tokenizer=tok,
                              post_processor_config=POST_CONFIG)
    with tempfile.TemporaryDirectory() as tmp:  # the processor's own processor_config.json
        proc.save_pretrained(tmp)
        shutil.copyfile(os.path.join(tmp, "processor_config.json"),
                        os.path.join(out_dir, "processor_config.json"))

    cases, n_loc, min_gap = [], 0, float("inf")
    loc_lo = tok.convert_tokens_to_ids("<loc_0>")
    for rel, text in CASES:
        with Image.open(os.path.join(DATA, rel)) as im:
            im = im.convert("RGB")
            size = im.size
            inputs = proc(text=text, images=im, return_tensors="pt")
        prompt = proc._construct_prompts(text)[0]
        text_ids = [tok.bos_token_id] + tok(prompt, add_special_tokens=False)["input_ids"] + \
            [tok.eos_token_id]
        full = inputs["input_ids"][0].tolist()
        assert full == [image_token_id] * n_img + text_ids, (text, full, text_ids)
        task = text.split(">")[0] + ">" if text.startswith("<") and \
            text.split(">")[0] + ">" in proc.tasks_answer_post_processing_type else text
        case = {"image": rel, "width": size[0], "height": size[1], "text": text, "task": task,
                "prompt": prompt, "input_ids": text_ids}
        for key, beams in (("greedy", 1), ("beam3", 3)):
            case[key], gap = run(model, proc, tok, inputs["pixel_values"], inputs["input_ids"],
                                 beams, task, size)
            min_gap = min(min_gap, gap)
            n_loc += sum(1 for i in case[key]["ids"] if loc_lo <= i < loc_lo + 1000)
        cases.append(case)
        print(f"{text!r:50.50} greedy {case['greedy']['raw'][:70]!r}")
    golden = {"image_tokens": n_img, "image_token_id": image_token_id, "max_new_tokens": MAX_NEW,
              "min_gap": min_gap, "cases": cases}
    path = os.path.join(args.out, NAME + ".golden.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(path, os.path.getsize(path), "bytes;", n_loc, "location tokens generated; min gap",
          min_gap)


if __name__ == "__main__":
    sys.exit(main())

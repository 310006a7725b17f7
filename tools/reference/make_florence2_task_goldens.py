#!/usr/bin/env python3
"""What transformers' Florence2Processor makes of task prompts and generated
text, for prism's tests of engine/florence2_tasks.c
(tests/test_florence2_tasks.c).

    pip install torch transformers
    python3 tools/reference/make_florence2_task_goldens.py

The processor is the real one: Florence2Processor built from the BART
tokenizer files in tests/data/tok_bart (with the <image> token the
conversion script adds) and a CLIPImageProcessorPil made here (the image
processor takes no part in prompts or post-processing). Its
post_processor_config is the one transformers' conversion script
(convert_florence2_original_pytorch_to_hf.py) writes, copied below.

Writes tests/data/florence2_tasks.golden.json.gz, a JSON object:
  transformers, torch: the versions that made it;
  processor_config_json: processor_config.json as save_pretrained writes it
      for the default configuration (the test loads it as a checkpoint's);
  configs: [post_processor_config, ...]; configs[0] is the default;
  tasks: [[text, is_task_token, kind], ...] (kind: the processor's
      tasks_answer_post_processing_type, "pure_text" for other text);
  prompts: [[text, prompt or null, error or null], ...]
      (Florence2Processor._construct_prompts);
  sizes: [[w, h], ...]; texts: [generated text, ...];
  post: [[text index, task, size index, config index, answer or null,
      error or null], ...] where answer is post_process_generation's value
      for the task (the dict's only value); the task "<DESCRIPTION_WITH_POLYGONS>"
      is added to the processor's task table here, mapped to the
      "description_with_polygons" kind, which no real task reaches;
  dequant: {"sizes": [...], "x": [[1000 ints], ...]}: the post-processor's
      dequantize of bins 0..999 along x for an image of that width.
Deterministic (fixed seed).
"""
import gzip
import json
import os
import random
import tempfile

import torch
import transformers
from transformers import AutoTokenizer, CLIPImageProcessorPil, Florence2Processor

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
OUT = os.path.join(DATA, "florence2_tasks.golden.json.gz")

OCR_PATTERN = r"(.+?)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>"

# What convert_florence2_original_pytorch_to_hf.py (transformers 5.x) writes.
# Note the lower-case "pattern" and "area_threshold": the post-processor reads
# "PATTERN" and "AREA_THRESHOLD", so these two are never used.
BANNED = [
    "it", "I", "me", "mine", "you", "your", "yours", "he", "him", "his", "she", "her", "hers",
    "they", "them", "their", "theirs", "one", "oneself", "we", "us", "our", "ours", "you",
    "your", "yours", "they", "them", "their", "theirs", "mine", "yours", "his", "hers", "its",
    "ours", "yours", "theirs", "myself", "yourself", "himself", "herself", "itself",
    "ourselves", "yourselves", "themselves", "this", "that", "these", "those", "who", "whom",
    "whose", "which", "what", "who", "whom", "whose", "which", "that", "all", "another", "any",
    "anybody", "anyone", "anything", "each", "everybody", "everyone", "everything", "few",
    "many", "nobody", "none", "one", "several", "some", "somebody", "someone", "something",
    "each other", "one another", "myself", "yourself", "himself", "herself", "itself",
    "ourselves", "yourselves", "themselves", "the image", "image", "images", "the", "a", "an",
    "a group", "other objects", "lots", "a set",
]
KINDS = ["pure_text", "ocr", "phrase_grounding", "description_with_bboxes",
         "description_with_polygons", "polygons", "bboxes", "description_with_bboxes_or_polygons"]
DEFAULT_CONFIG = {
    "ocr": {"pattern": OCR_PATTERN, "area_threshold": 0.0},
    "phrase_grounding": {"banned_grounding_tokens": BANNED},
}
DEFAULT_CONFIG.update({k: {} for k in KINDS if k not in DEFAULT_CONFIG})

CONFIGS = [
    DEFAULT_CONFIG,
    # the keys the post-processor reads: an area threshold, another banned list
    dict({k: {} for k in KINDS},
         ocr={"PATTERN": OCR_PATTERN, "AREA_THRESHOLD": 0.01},
         phrase_grounding={"banned_grounding_tokens": ["cat", "a dog", "caf\u00e9", ""]}),
    # only some kinds: the others are "Unsupported parse task"
    {"pure_text": {}, "ocr": {"AREA_THRESHOLD": 0.5}},
]

POLY_TASK = "<DESCRIPTION_WITH_POLYGONS>"
KIND_TASKS = ["<CAPTION>", "<OCR_WITH_REGION>", "<CAPTION_TO_PHRASE_GROUNDING>", "<OD>",
              POLY_TASK, "<REFERRING_EXPRESSION_SEGMENTATION>", "<REGION_PROPOSAL>",
              "<OPEN_VOCABULARY_DETECTION>"]

SIZES = [(1, 1), (2, 3), (3, 2), (7, 5), (99, 101), (100, 100), (144, 576), (333, 777),
         (640, 480), (768, 768), (999, 1001), (1023, 1152), (1920, 1080), (4000, 3000),
         (65535, 2)]


def make_processor(config):
    tok = AutoTokenizer.from_pretrained(os.path.join(DATA, "tok_bart"),
                                        extra_special_tokens={"image_token": "<image>"})
    ip = CLIPImageProcessorPil(size={"height": 768, "width": 768}, do_center_crop=False)
    ip.image_seq_length = 577
    p = Florence2Processor(image_processor=ip, tokenizer=tok, post_processor_config=config)
    p.tasks_answer_post_processing_type[POLY_TASK] = "description_with_polygons"
    return p


def loc(n):
    return "<loc_%d>" % n


def locs(*ns):
    return "".join(loc(n) for n in ns)


def adversarial_texts():
    q = locs(10, 20, 30, 40, 50, 60, 70, 80)
    b = locs(100, 200, 300, 400)
    t = [
        "", " ", "\n", "</s>", "<s></s>", "<pad>", "</s><s></s>",
        "</s><s>A green car parked in front of a yellow building.</s>",
        "</s><s>  caption with spaces \t\n</s><pad><pad>",
        "</s><s>no locations at all</s>",
        "<s>" + b + "</s>",
        "</s><s>car" + b + "door" + locs(710, 276, 908, 537) + "</s>",
        "</s><s>car" + locs(0, 0, 999, 999) + "</s>",
        "</s><s>big" + locs(1000, 1001, 5000, 99999) + "</s>",
        "</s><s>huge" + locs(2 ** 31, 16777217, 2 ** 40, 3) + "</s>",
        "</s><s>toobig" + locs(2 ** 63, 1, 2, 3) + "</s>",
        "</s><s>digits<loc_" + "1" * 4301 + ">" + locs(1, 2, 3) + "</s>",
        "</s><s>zeros<loc_" + "0" * 40 + "7>" + locs(1, 2, 3) + "</s>",
        "</s><s>arabic<loc_\u0663\u0664><loc_\uff15><loc_\u0967\u0968\u0969>" + loc(4) + "</s>",
        "</s><s>three" + locs(1, 2, 3) + "</s>",
        "</s><s>five" + locs(1, 2, 3, 4, 5) + "</s>",
        "</s><s>eight" + locs(1, 2, 3, 4, 5, 6, 7, 8) + "nine" + locs(*range(9)) + "</s>",
        "</s><s>" + q + "</s>",
        "</s><s>hello" + q + "world" + q + "</s>",
        "</s><s>line1\nline2" + q + "</s>",
        "</s><s>line1\n" + q + "x" + q + "</s>",
        "</s><s>\n  spaced\u00a0label\u3000" + b + "</s>",
        "</s><s>caf\u00e9 \u65e5\u672c\u8a9e" + b + "</s>",
        "</s><s>\u00e9" + b + "</s>",
        "</s><s>the image" + b + "a dog" + b + "I" + b + "cat" + b + "</s>",
        "</s><s>the" + b + " it " + b + "caf\u00e9" + b + "</s>",
        "</s><s><loc_1" + b + "</s>",
        "</s><s>x<loc_1>y" + b + "</s>",
        "</s><s>a<" + b + "</s>",
        "</s><s>a>" + b + "</s>",
        "</s><s><od>a" + b + "</od></s>",
        "</s><s><ground>a" + b + "<obj>b" + b + "</s>",
        "</s><s>a<s>b" + b + "</s>",
        "</s><s>a<</s>s>b" + b + "</s>",
        "</s><s>a<<s>/s>b" + b + "</s>",
        "</s><s>a<pad>b" + b + "<p<pad>ad></s>",
        "</s><s>a<loc_1<s>>" + locs(2, 3, 4) + "</s>",
        "</s><s>a<lo<pad>c_1>" + locs(2, 3, 4) + "</s>",
        "</s><s>shape" + locs(1, 2, 3, 4, 5, 6, 7, 8) + "<sep>" + locs(9, 10, 11, 12) + "</s>",
        "</s><s>shape" + locs(1, 2, 3, 4, 5) + "<sep>" + locs(9, 10, 11) + "<sep></s>",
        "</s><s>shape<poly>" + locs(1, 2, 3, 4, 5, 6) + "</poly><poly>" + locs(7, 8, 9, 10)
        + "<sep>" + locs(11, 12) + "</poly></s>",
        "</s><s>a<poly>" + locs(1, 2, 3, 4) + "</poly>b<poly>" + locs(5, 6, 7, 8) + "</poly></s>",
        "</s><s>a<poly>" + locs(1, 2, 3, 4) + "<poly>" + locs(5, 6) + "</poly></s>",
        "</s><s>a</poly>" + locs(1, 2, 3, 4) + "<poly></s>",
        "</s><s>a<poly>" + locs(1, 2, 3, 4) + "</s>",
        "</s><s>a<poly><sep></poly><sep></s>",
        "</s><s>" + locs(1, 2, 3, 4, 5, 6) + "<sep>" + locs(7, 8) + "</s>",
        "</s><s>" + locs(1) + "<sep><sep><sep></s>",
        "</s><s>" + locs(1) + "<poly>" + locs(2, 3, 4, 5) + "</poly></s>",
        "</s><s><sep>" + locs(1, 2, 3) + "</s>",
        "</s><s>x" + locs(1, 2) + "<poly>" + locs(3, 4) + "y" + locs(5, 6, 7, 8) + "</s>",
        "</s><s>x" + locs(1, 2, 3) + "<poly>" + locs(4, 5, 6) + "\n</s>",
        "</s><s>x\ny" + locs(1, 2) + "<poly>" + locs(4, 5) + "</poly></s>",
        "</s><s>p" + locs(1, 2, 3, 4) + "<sep>" + locs(5) + "<sep>" + locs(6, 7, 8) + "</s>",
        "</s><s>p" + locs(1, 2, 3, 4) + "<sep><poly>" + locs(5, 6) + "</s>",
        "</s><s>word" + locs(1, 2, 3, 4) + "<sep>" + "\n",
        "text" + q + "\n",
        "trailing" + q + "tail without locs",
        "\u2028sep\u2029" + q + "\x1c" + q + "\x85" + b,
        "tab\there\r" + b + "\r\n",
        "<loc_999>" * 12,
        "<loc_0>" * 7,
        "<poly>" * 5 + "</poly>" * 5,
        "a" + "<sep>" * 6,
        "<>" + "<<loc_1>>" * 4,
        "<LOC_1><Loc_2>" + b,
        "<loc_ 1>" + b,
    ]
    return t


def random_texts(rng, n):
    words = ["cat", "a dog", "the image", "I", "car", " ", "  ", "\n", "\t", "\u00e9",
             "\u65e5\u672c", "\u00a0", "\u3000", "x y", "<s>", "</s>", "<pad>", "<sep>",
             "<poly>", "</poly>", "<", ">", "<loc_", "<od>", "</od>", "<ground>", "<obj>",
             "</s><s>", "\u00e9l\u00e9phant", "red car", "it"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 16)):
            r = rng.random()
            if r < 0.45:
                k = rng.choice([1, 2, 3, 4, 4, 4, 5, 6, 8, 8, 9, 12])
                for _ in range(k):
                    v = rng.randint(0, 999) if rng.random() < 0.95 else rng.randint(1000, 123456)
                    parts.append(loc(v))
            else:
                parts.append(rng.choice(words))
        text = "".join(parts)
        if rng.random() < 0.5:
            text = "</s><s>" + text + "</s>"
        out.append(text)
    return out


def prompt_texts():
    p = make_processor(DEFAULT_CONFIG)
    tokens = list(p.task_prompts_without_inputs) + list(p.task_prompts_with_input)
    texts = ["", "hello", " <od> ", "<OD >", "{input}", "caf\u00e9 \u00a0"]
    for t in tokens:
        texts += [t, t + " a red car", " " + t, t + " ", "x" + t, t + t, t + "\u00a0caf\u00e9\u3000",
                  t + "{input} {0}"]
    texts += ["<OCR><CAPTION>", "<CAPTION_TO_PHRASE_GROUNDING>a<REGION_TO_OCR>",
              "<REGION_TO_CATEGORY><OPEN_VOCABULARY_DETECTION>x",
              "<REGION_TO_OCR>a<REGION_TO_OCR>b", "a cat <OPEN_VOCABULARY_DETECTION> dog",
              "<REGION_TO_OCR>" + locs(1, 2, 3, 4), "<CAPTION_TO_PHRASE_GROUNDING>\n\t",
              "<OD><OD>", "<OCR_WITH_REGION>", "<CAPTION_TO_PHRASE_GROUNDING>"]
    return p, texts


def answer(p, text, task, size):
    try:
        r = p.post_process_generation(text, task=task, image_size=size)
        return [r[task], None]
    except (ValueError, RuntimeError, OverflowError) as e:
        return [None, "%s: %s" % (type(e).__name__, e)]


def main():
    rng = random.Random(20240611)
    p, ptexts = prompt_texts()
    prompts = []
    for t in ptexts:
        try:
            prompts.append([t, p._construct_prompts(t)[0], None])
        except ValueError as e:
            prompts.append([t, None, str(e)])

    tasks = []
    for t in list(p.tasks_answer_post_processing_type) + ["<od>", "", "OD", "<OD> ", "<UNKNOWN>"]:
        if t == POLY_TASK:
            continue
        kind = p.tasks_answer_post_processing_type.get(t, "pure_text")
        tasks.append([t, t in p.tasks_answer_post_processing_type, kind])

    procs = [make_processor(c) for c in CONFIGS]
    adv = adversarial_texts()
    rnd = random_texts(rng, 300)
    texts = adv + rnd
    post = []
    for ti, text in enumerate(adv):
        for task in KIND_TASKS:
            for si, size in enumerate(SIZES):
                post.append([ti, task, si, 0] + answer(procs[0], text, task, size))
            for ci in (1, 2):
                si = (ti + ci) % len(SIZES)
                post.append([ti, task, si, ci] + answer(procs[ci], text, task, SIZES[si]))
    for k, text in enumerate(rnd):
        ti = len(adv) + k
        for task in KIND_TASKS:
            for si in (k % len(SIZES), (k * 7 + 3) % len(SIZES)):
                post.append([ti, task, si, 0] + answer(procs[0], text, task, SIZES[si]))
            if k % 5 == 0:
                si = (k * 3) % len(SIZES)
                post.append([ti, task, si, 1] + answer(procs[1], text, task, SIZES[si]))

    dq_sizes = sorted(set([1, 2, 3, 7, 10, 99, 100, 144, 288, 333, 576, 608, 640, 768, 999,
                           1000, 1001, 1023, 1024, 1152, 1280, 1920, 2048, 2304, 3000, 4000,
                           4095, 4096, 4999, 8192, 10000, 12345, 65535, 100003]))
    pp = procs[0].post_processor
    bins = torch.tensor([[b, 0] for b in range(1000)])
    dq_x = [pp.dequantize(bins, size=(s, 1))[:, 0].tolist() for s in dq_sizes]

    with tempfile.TemporaryDirectory() as d:
        procs[0].save_pretrained(d)
        with open(os.path.join(d, "processor_config.json"), encoding="utf-8") as f:
            processor_config_json = f.read()

    doc = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "processor_config_json": processor_config_json,
        "configs": CONFIGS,
        "tasks": tasks,
        "prompts": prompts,
        "sizes": SIZES,
        "texts": texts,
        "post": post,
        "dequant": {"sizes": dq_sizes, "x": dq_x},
    }
    raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:
        f.write(raw)
    n_err = sum(1 for c in post if c[5] is not None)
    print("%s: %d prompts, %d tasks, %d texts, %d post cases (%d errors), %d dequant sizes, "
          "%d bytes (%d raw)" % (OUT, len(prompts), len(tasks), len(texts), len(post), n_err,
                                len(dq_sizes), os.path.getsize(OUT), len(raw)))


if __name__ == "__main__":
    main()

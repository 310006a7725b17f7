#!/usr/bin/env python3
"""transformers' side of the Florence-2 generation benchmark: the same
checkpoint, the same measurement as tools/bench/bench_florence2.c.

    python3 tools/bench/bench_transformers_florence2.py FLORENCE2_DIR [--threads 2]
        [--batch 1,4] [--new-tokens 16] [--repeats 3]

Florence2ForConditionalGeneration.generate (float32, or bfloat16 with --dtype bf16; the default attention
implementation, KV cache on) on what prism_bench_florence2 gives prism:
random pixel values (uniform in [-1, 1)), input_ids = <image> x 577 + the ids
of "<s>What does the image describe?</s>", greedy (num_beams=1; the
checkpoint's forced <s> / </s> and no_repeat_ngram_size 3 apply as they do in
prism), min_new_tokens = max_new_tokens so it never stops early. A
StoppingCriteria records the time after every generated position: time to
first token = start -> the first position (vision tower, projector,
encoder, first decoder step), median over --repeats; decode tokens/s = B /
the median of the later steps' times over all repeats. One warm-up run
(batch 1, 2 tokens) first. Peak RSS at the end.
"""
import argparse
import resource
import statistics
import time

import torch
import transformers
from transformers import (Florence2ForConditionalGeneration, StoppingCriteria,
                          StoppingCriteriaList)

PROMPT = [0, 2264, 473, 5, 2274, 6190, 116, 2]  # "<s>What does the image describe?</s>"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", default="1,4")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                    help="bf16: the model's weights and activations in bfloat16")
    args = ap.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.set_num_threads(args.threads)
    t_load = time.perf_counter()
    model = Florence2ForConditionalGeneration.from_pretrained(args.model,
                                                              dtype=dtype).eval()
    t_load = time.perf_counter() - t_load
    cfg = model.config
    size = 768
    with open(f"{args.model}/preprocessor_config.json") as f:
        import json
        pc = json.load(f)
        size = pc["size"]["height"]
        n_img = pc["image_seq_length"]
    ids = torch.tensor([[cfg.image_token_id] * n_img + PROMPT])
    gen = torch.Generator().manual_seed(0)

    class StepClock(StoppingCriteria):
        def __init__(self):
            self.times = []

        def __call__(self, input_ids, scores, **kwargs):
            self.times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    def generate(B, n):
        pv = (torch.rand(B, 3, size, size, generator=gen) * 2 - 1).to(dtype)
        x = ids.expand(B, -1)
        clock = StepClock()
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = model.generate(input_ids=x, pixel_values=pv, attention_mask=torch.ones_like(x),
                                 max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                 num_beams=1, stopping_criteria=StoppingCriteriaList([clock]))
        # the decoder start token, then n new ids
        assert out.shape[1] == n + 1 and len(clock.times) == n, (out.shape, len(clock.times))
        t = clock.times
        return t[0] - t0, [b - a for a, b in zip(t, t[1:])]

    generate(1, 2)  # warm-up
    print(f"transformers {transformers.__version__} / torch {torch.__version__} "
          f"({cfg._attn_implementation} attention), {dtype}, {args.threads} threads, "
          f"{n_img} image tokens + {len(PROMPT)} prompt ids, {args.new_tokens} new tokens "
          f"(greedy), {args.repeats} repeats; loaded in {t_load:.2f} s\n")
    print("| batch | time to first token ms | decode tokens/s | ms/step (median) | steps |")
    print("|-------|------------------------|-----------------|------------------|-------|")
    for B in [int(b) for b in args.batch.split(",")]:
        ttfts, steps = [], []
        for _ in range(args.repeats):
            t1, st = generate(B, args.new_tokens)
            ttfts.append(t1)
            steps += st
        med = statistics.median(steps)
        print(f"| {B:5d} | {statistics.median(ttfts) * 1e3:22.1f} | {B / med:15.2f} | "
              f"{med * 1e3:16.2f} | {len(steps):5d} |", flush=True)
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()

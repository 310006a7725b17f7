#!/usr/bin/env python3
"""transformers' side of the PaliGemma generation benchmark: the same
checkpoint, the same measurement as `prism bench --model PALIGEMMA_DIR`.

    python3 tools/bench/bench_transformers_paligemma.py PALIGEMMA_DIR [--threads 2]
        [--batch 1,8] [--max-new-tokens 16] [--repeats 2] [--dtype float32|bfloat16]

PaliGemmaForConditionalGeneration.generate on what prism bench gives prism:
random pixel values, input_ids = 256 image tokens + the 3 ids [2, 3, 5]
(token_type_ids 0: all prefix), min_new_tokens = max_new_tokens (no early
stop), greedy, KV cache on, sdpa attention. A StoppingCriteria records the
time after every generated position: time to first token = start → the
first (the prefill's) position, best of --repeats; decode tokens/s = B /
the median of the later steps' times over all repeats.
"""
import argparse
import statistics
import time

import torch
from transformers import (PaliGemmaForConditionalGeneration, StoppingCriteria,
                          StoppingCriteriaList)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    model = PaliGemmaForConditionalGeneration.from_pretrained(args.model, dtype=dtype).eval()
    cfg = model.config
    n_img = (cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2
    image_id = cfg.image_token_id if getattr(cfg, "image_token_id", None) is not None \
        else cfg.image_token_index
    ids = torch.tensor([[image_id] * n_img + [2, 3, 5]])

    class StepClock(StoppingCriteria):
        def __init__(self):
            self.times = []

        def __call__(self, input_ids, scores, **kwargs):
            self.times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    def generate(B, n):
        size = cfg.vision_config.image_size
        pv = (torch.rand(B, 3, size, size) * 2 - 1).to(dtype)
        x = ids.expand(B, -1)
        clock = StepClock()
        with torch.inference_mode():
            t0 = time.perf_counter()
            model.generate(input_ids=x, pixel_values=pv, attention_mask=torch.ones_like(x),
                           token_type_ids=torch.zeros_like(x), max_new_tokens=n,
                           min_new_tokens=n, do_sample=False, num_beams=1,
                           stopping_criteria=StoppingCriteriaList([clock]))
        t = clock.times
        return t[0] - t0, [b - a for a, b in zip(t, t[1:])]

    generate(1, 2)  # warm-up
    print(f"transformers {args.dtype}, {args.threads} threads, {args.max_new_tokens} new tokens")
    print("| batch | time to first token ms | decode tokens/s | ms/step (median) | steps |")
    print("|-------|------------------------|-----------------|------------------|-------|")
    for B in [int(b) for b in args.batch.split(",")]:
        ttft, steps = 1e30, []
        for _ in range(args.repeats):
            t1, st = generate(B, args.max_new_tokens)
            ttft = min(ttft, t1)
            steps += st
        med = statistics.median(steps)
        print(f"| {B:5d} | {ttft * 1e3:22.1f} | {B / med:15.2f} | {med * 1e3:16.2f} | "
              f"{len(steps):5d} |", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""transformers' side of the pali3 generation benchmark: the same checkpoint,
the same measurement as `prism bench --model PALI3_DIR`.

    python3 tools/bench/bench_transformers_pali3.py PALI3_DIR [--threads 2]
        [--batch 1,8] [--max-new-tokens 32] [--repeats 3]

The model is composed as in tools/reference/make_pali3_goldens.py
(SiglipVisionModel + nn.Linear + T5ForConditionalGeneration, float32, eager
attention; sdpa where noted). One "generate" = vision tower + projector +
generate(inputs_embeds=...) with min_new_tokens = max_new_tokens (no early
</s>), greedy, KV cache on. A StoppingCriteria records the time after every
decoder step: time to first token = start → first step (best of
--repeats), decode tokens/s = B / the median of the later steps' times (all
repeats), as `prism bench` measures prism.
"""
import argparse
import os
import statistics
import sys
import time

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import make_pali3_goldens as mg  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--attn", default="eager")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import json
    with open(os.path.join(args.model, "config.json")) as f:
        config = json.load(f)
    vision, proj, t5 = mg.load_reference(args.model, config)
    if args.attn != "eager":
        t5.config._attn_implementation = args.attn
    vc = vision.config
    prompt = torch.tensor([[3, 5, 1]])

    class StepClock(StoppingCriteria):
        """Called once per generated position, right after its forward pass."""

        def __init__(self):
            self.times = []

        def __call__(self, input_ids, scores, **kwargs):
            self.times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    def generate(B, n):
        pv = torch.randn(B, 3, vc.image_size, vc.image_size)
        clock = StepClock()
        with torch.inference_mode():
            t0 = time.perf_counter()
            z = vision(pixel_values=pv).last_hidden_state
            emb = torch.cat([proj(z), t5.shared(prompt.expand(B, -1))], 1)
            t5.generate(inputs_embeds=emb, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                        num_beams=1, stopping_criteria=StoppingCriteriaList([clock]))
        t = clock.times
        return t[0] - t0, [b - a for a, b in zip(t, t[1:])]

    generate(1, 2)  # warm-up
    print(f"transformers, {args.threads} threads, {args.max_new_tokens} new tokens, attn {args.attn}")
    print("| batch | time to first token ms | decode tokens/s | ms/step (median) | steps |")
    print("|-------|------------------------|-----------------|------------------|-------|")
    for B in [int(b) for b in args.batch.split(",")]:
        ttft, steps = 1e30, []
        for _ in range(args.repeats):
            t1, st = generate(B, args.max_new_tokens)
            ttft = min(ttft, t1)
            steps += st
        med = statistics.median(steps)
        print(f"| {B:5d} | {ttft * 1e3:22.1f} | {B / med:15.2f} | {med * 1e3:16.2f} | {len(steps):5d} |",
              flush=True)


if __name__ == "__main__":
    main()

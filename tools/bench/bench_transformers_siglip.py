#!/usr/bin/env python3
"""transformers' SiglipModel (or Siglip2Model, NaFlex) throughput on the CPU,
for comparison with `prism bench` on the same checkpoint, threads and batch
sizes. A NaFlex model gets what prism bench gives it: square images of the
config's num_patches (16 x 16 patches for 256), an all-ones
pixel_attention_mask, and texts with an all-ones attention_mask.

    python3 tools/bench/bench_transformers_siglip.py --model DIR --threads 2 \
        [--batch 1,8,32] [--min-time 3]

Prints one JSON object per line, with the keys prism bench --json uses:
task, batch, iters, items_per_s, ms_per_batch. float32, the default
attention implementation (SDPA), torch.inference_mode, a warm-up run first.
"""
import argparse
import json
import time

import torch
from transformers import AutoConfig, Siglip2Model, SiglipModel


def features(out):
    return out if torch.is_tensor(out) else out.pooler_output


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--min-time", type=float, default=3.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    naflex = AutoConfig.from_pretrained(args.model).model_type == "siglip2"
    cls = Siglip2Model if naflex else SiglipModel
    model = cls.from_pretrained(args.model, dtype=torch.float32).eval()
    vc, tc = model.config.vision_config, model.config.text_config
    print(json.dumps({"impl": "transformers", "torch": torch.__version__,
                      "threads": torch.get_num_threads(),
                      "attn": model.config._attn_implementation}), flush=True)
    gen = torch.Generator().manual_seed(0)
    for task in ("image", "text"):
        for b in [int(x) for x in args.batch.split(",")]:
            if task == "image" and naflex:
                side = int(vc.num_patches ** 0.5)
                L, K = side * side, 3 * vc.patch_size ** 2
                x = torch.rand(b, L, K, generator=gen) * 2 - 1
                mask = torch.ones(b, L, dtype=torch.long)
                shapes = torch.tensor([[side, side]] * b)
                run = lambda: features(model.get_image_features(
                    pixel_values=x, pixel_attention_mask=mask, spatial_shapes=shapes))
            elif task == "image":
                x = torch.rand(b, 3, vc.image_size, vc.image_size, generator=gen) * 2 - 1
                run = lambda: features(model.get_image_features(pixel_values=x))
            elif naflex:
                ids = torch.randint(0, tc.vocab_size, (b, tc.max_position_embeddings), generator=gen)
                am = torch.ones_like(ids)
                run = lambda: features(model.get_text_features(input_ids=ids, attention_mask=am))
            else:
                ids = torch.randint(0, tc.vocab_size, (b, tc.max_position_embeddings), generator=gen)
                run = lambda: features(model.get_text_features(input_ids=ids))
            with torch.inference_mode():
                y = run()
                y = y / y.norm(dim=-1, keepdim=True)
                iters, start = 0, time.perf_counter()
                while True:
                    y = run()
                    y = y / y.norm(dim=-1, keepdim=True)
                    iters += 1
                    if time.perf_counter() - start >= args.min_time:
                        break
                dt = (time.perf_counter() - start) / iters
            print(json.dumps({"task": task, "batch": b, "iters": iters,
                              "items_per_s": round(b / dt, 3),
                              "ms_per_batch": round(dt * 1e3, 3)}), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""transformers' SiglipModel on a CUDA GPU, for comparison with prism_bench_cuda
on the same checkpoint, card and batch sizes.

    python3 tools/bench/bench_transformers_gpu.py --model DIR \
        [--batches 1,32,256] [--min-time 2] [--dtype bfloat16]

bf16 weights and activations, SDPA attention, torch.inference_mode, a
warm-up first, torch.cuda.synchronize around every timed region. Two rates
per task and batch:
  items_per_s         host to host, as prism_bench_cuda measures: float32
                      pixels (or int64 ids) in pinned host memory are copied
                      to the GPU, the embeddings L2-normalised and copied
                      back, one synchronous call after another;
  items_per_s_device  inputs already on the GPU in bf16, outputs left there,
                      calls queued back to back (transformers at its best).
ms_median is the median host-to-host call time (batch 1: the latency).
Prints one JSON object per line: a header, then one per (task, batch).
(--device cpu only smoke-tests the script where there is no GPU.)
"""
import argparse
import json
import statistics
import time

import torch
from transformers import SiglipModel


def features(out):
    return out if torch.is_tensor(out) else out.pooler_output


def load(model_dir, dtype, device):
    kw = dict(attn_implementation="sdpa")
    try:
        model = SiglipModel.from_pretrained(model_dir, dtype=dtype, **kw)
    except TypeError:  # transformers < 4.56 spells it torch_dtype
        model = SiglipModel.from_pretrained(model_dir, torch_dtype=dtype, **kw)
    return model.to(device).eval()


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, min_time, sync_each, device):
    """Runs fn until min_time passed (at least 5 calls); returns (calls/s, call times)."""
    times = []
    sync(device)
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        if sync_each:
            sync(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= 5 and time.perf_counter() - start >= min_time:
            break
    sync(device)
    return len(times) / (time.perf_counter() - start), times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = ap.parse_args()
    dtype, device = getattr(torch, args.dtype), args.device
    model = load(args.model, dtype, device)
    vc, tc = model.config.vision_config, model.config.text_config
    pin = (lambda t: t.pin_memory()) if device == "cuda" else (lambda t: t)
    print(json.dumps({"impl": "transformers", "torch": torch.__version__,
                      "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                      "dtype": args.dtype,
                      "attn": model.config._attn_implementation}), flush=True)
    gen = torch.Generator().manual_seed(0)
    T = tc.max_position_embeddings
    for task in ("image", "text"):
        for b in [int(x) for x in args.batches.split(",")]:
            if task == "image":
                host = pin(torch.rand(b, 3, vc.image_size, vc.image_size, generator=gen) * 2 - 1)
                dev = host.to(device, dtype=dtype)

                def embed(x):
                    y = features(model.get_image_features(pixel_values=x))
                    return y / y.norm(dim=-1, keepdim=True)

                def host_call():
                    x = host.to(device, non_blocking=True).to(dtype)
                    return embed(x).float().cpu()
            else:
                host = pin(torch.randint(0, tc.vocab_size, (b, T), generator=gen))
                dev = host.to(device)

                def embed(x):
                    y = features(model.get_text_features(input_ids=x))
                    return y / y.norm(dim=-1, keepdim=True)

                def host_call():
                    return embed(host.to(device, non_blocking=True)).float().cpu()
            with torch.inference_mode():
                for _ in range(3):
                    host_call()
                    embed(dev)
                calls_h, times = timed(host_call, args.min_time, True, device)
                calls_d, _ = timed(lambda: embed(dev), args.min_time, False, device)
            print(json.dumps({"task": task, "batch": b, "calls": len(times),
                              "items_per_s": round(b * calls_h, 2),
                              "items_per_s_device": round(b * calls_d, 2),
                              "ms_median": round(1e3 * statistics.median(times), 4)}), flush=True)
            del host, dev
            if device == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Builds tiny random-weight pali3 checkpoints and dumps transformers' float32
outputs for them, for prism's generation golden tests.

    pip install torch transformers safetensors sentencepiece
    python3 tools/reference/make_pali3_goldens.py [--out tests/data]

The reference composes transformers' own modules, each loaded from the
checkpoint as saved (so BF16/F16 variants are compared against the weights
prism reads, and transformers 5's tie/untie rules for lm_head apply):
    z      = SiglipVisionModel(pixel_values).last_hidden_state
    v      = nn.Linear(multi_modal_projector.linear)(z)
    embeds = cat(v, T5.shared(prompt_ids))
    T5ForConditionalGeneration.generate(inputs_embeds=embeds, ...)
in float32 with eager attention, one request at a time.

For each checkpoint NAME it writes
    tests/data/NAME/config.json, model.safetensors (or shards), spiece.model
    tests/data/NAME.golden.safetensors:
        pixel_values [P,C,S,S] F32, prompt_ids [P,Lp] I64 (-1 padded), prompt_len [P],
        encoder_states [P,T,D] F32 (rows past N + prompt_len are zero),
        first_logits [P,V] F32 (decoder start token → first position),
        greedy_ids [P,G] I64 (-1 padded, </s> included), greedy_len [P],
        beam_ids [P,G] I64, beam_len [P], and scalars max_new_tokens,
        num_beams, length_penalty (as 1-element tensors).
    tests/data/pali3_text.json: prompt strings → ids (SentencePiece + </s>) and
        the text of pali3_tiny_a's greedy outputs (special ids dropped).
    tests/data/t5_buckets.safetensors: transformers' _relative_position_bucket
        for relative positions -600..600, several (num_buckets, max_distance),
        bidirectional and causal.

The text configs state eos_token_id and pad_token_id, as hub T5 configs do:
transformers 5 builds generate()'s stopping criteria from the keys written in
config.json, so a file without eos_token_id would never stop at </s> there.

Deterministic: a fixed seed per checkpoint. Every parameter is perturbed after
transformers' init (which sets norms to 1), so every tensor matters; the
</s> row of the LM head is raised so some generations stop early. The script
reports the smallest top-1/top-2 logit gap met by greedy decoding, so a
near-tie (that float rounding could flip) is visible.
"""
import argparse
import json
import os
import shutil
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import SiglipVisionConfig, SiglipVisionModel, T5Config, T5ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.t5.modeling_t5 import T5Attention

SP_VOCAB = 156      # pieces in the tiny spiece.model
EXTRA_IDS = 100     # T5Tokenizer's sentinel tokens: vocab = SP_VOCAB + 100
MAX_NEW, NUM_BEAMS = 12, 3

CHECKPOINTS = [
    # name, seed, dtype, shard, vision kw, text kw (as written to config.json), lm_head, eos boost, lp
    ("pali3_tiny_a", 11, torch.float32, None,
     dict(hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
          image_size=16, patch_size=4, vision_use_head=False),
     dict(vocab_size=256, d_model=32, d_kv=6, d_ff=32, num_layers=2, num_heads=4,
          feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0,
          eos_token_id=1, pad_token_id=0),
     "untied", 2.2, -0.4),
    ("pali3_tiny_b", 12, torch.bfloat16, "40KB",
     dict(hidden_size=12, intermediate_size=24, num_hidden_layers=1, num_attention_heads=4,
          image_size=18, patch_size=6, layer_norm_eps=1e-5),
     dict(vocab_size=256, d_model=24, d_kv=10, d_ff=32, num_layers=2, num_heads=3,
          feed_forward_proj="gated-silu", relative_attention_num_buckets=16,
          relative_attention_max_distance=20, layer_norm_epsilon=1e-5,
          decoder_start_token_id=0, eos_token_id=1, pad_token_id=0),
     "tied", 3.6, 1.6),
    ("pali3_tiny_c", 13, torch.float16, None,
     dict(hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
          image_size=16, patch_size=4, vision_use_head=False),
     dict(vocab_size=256, d_model=16, d_kv=6, d_ff=32, num_layers=1, num_heads=2,
          feed_forward_proj="relu", tie_word_embeddings=True, decoder_start_token_id=0,
          eos_token_id=1, pad_token_id=0),
     "tied+embed_tokens", 2.5, 1.0),
]

PROMPTS = [  # token ids of the prompt text (no </s>; it is appended)
    [108, 155, 153, 147],
    [5, 9],
    [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50],
    [3, 150, 60],
    [77],
    [18, 9],
    [18, 9, 120, 121, 122, 123],
    [200, 7],
    [99, 98, 97, 96, 95, 94, 93],
    [12, 13],
]


def make_spiece(path):
    """A tiny T5-style unigram model: pad 0, </s> 1, <unk> 2, identity normalisation."""
    import random
    import sentencepiece as spm
    rnd = random.Random(0)
    syl = "ka ti ro mu ne sa po li va de gu fo zi be ha yo".split()
    words = ("caption answer en de fr es what is the color of a cat dog car sky red blue green "
             "how many people are there where this picture photo man woman child sitting on "
             "table").split()
    words += ["".join(rnd.choice(syl) for _ in range(rnd.randint(1, 3))) for _ in range(300)]
    tmp = tempfile.mkdtemp()
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w") as f:
        for _ in range(5000):
            f.write(" ".join(rnd.choice(words) for _ in range(rnd.randint(3, 12))) +
                    rnd.choice(["", "?", ".", "!"]) + "\n")
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=os.path.join(tmp, "sp"), vocab_size=SP_VOCAB,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
        normalization_rule_name="identity", minloglevel=2, num_threads=1)
    shutil.copy(os.path.join(tmp, "sp.model"), path)
    shutil.rmtree(tmp)


def perturb(sd, gen, scale=0.05):
    for k, v in sd.items():
        sd[k] = v + torch.randn(v.shape, generator=gen) * scale


def build(out_dir, spiece, name, seed, dtype, shard, vkw, tkw, head, eos_boost, lp):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    vcfg = SiglipVisionConfig(**vkw)
    vision = SiglipVisionModel(vcfg).eval()
    tcfg = T5Config(**tkw)
    t5 = T5ForConditionalGeneration(tcfg).eval()
    D, E = tcfg.d_model, vcfg.hidden_size

    sd = {}
    vsd = {k: v.clone() for k, v in vision.state_dict().items()}
    perturb(vsd, gen)
    # SiglipVisionModel's own names (transformers 5 drops the old "vision_model."
    # prefix in its state dict; hub SigLIP checkpoints and pali3 keep it)
    sd.update({"vision_model." + k: v for k, v in vsd.items()})
    proj_w = torch.randn(D, E, generator=gen) * (1.0 / E ** 0.5)
    proj_b = torch.randn(D, generator=gen) * 0.1
    sd["multi_modal_projector.linear.weight"] = proj_w
    sd["multi_modal_projector.linear.bias"] = proj_b
    tsd = {k: v.clone() for k, v in t5.state_dict().items()
           if k not in ("lm_head.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")}
    perturb(tsd, gen)
    tsd["shared.weight"] = torch.randn(tcfg.vocab_size, D, generator=gen)
    if head == "untied":
        tsd["lm_head.weight"] = torch.randn(tcfg.vocab_size, D, generator=gen) * 0.5
        tsd["lm_head.weight"][1] *= eos_boost  # </s> likelier: some sequences stop early
    else:
        tsd["shared.weight"][0] *= 0.1  # a tied head otherwise favours the start token
        tsd["shared.weight"][1] *= eos_boost
        if head == "tied+embed_tokens":  # older hub files also carry the tied copies
            tsd["encoder.embed_tokens.weight"] = tsd["shared.weight"].clone()
            tsd["decoder.embed_tokens.weight"] = tsd["shared.weight"].clone()
    for k, v in tsd.items():
        sd["language_model." + k] = v

    ckpt = os.path.join(out_dir, name)
    shutil.rmtree(ckpt, ignore_errors=True)
    os.makedirs(ckpt)
    sd = {k: v.to(dtype).contiguous() for k, v in sd.items()}
    write_weights(ckpt, sd, shard)
    N = (vcfg.image_size // vcfg.patch_size) ** 2
    config = {
        "architectures": ["Pali3ForConditionalGeneration"],
        "model_type": "pali3",
        "vision_config": {"model_type": "siglip_vision_model", **vkw},
        "text_config": {"model_type": "t5", **tkw},
        "image_token_count": N,
        "prompt_templates": {"caption": "caption {lang}", "vqa": "answer {lang} {question}"},
    }
    with open(os.path.join(ckpt, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    shutil.copy(spiece, os.path.join(ckpt, "spiece.model"))

    # ---- the reference, reloaded from the files as saved ----
    vision_ref, proj, t5_ref = load_reference(ckpt, config)
    C, S = vcfg.num_channels, vcfg.image_size
    P = len(PROMPTS)
    pixel_values = (torch.randn(P, C, S, S, generator=gen) * 0.6).clamp(-1, 1)
    Lp = max(len(p) for p in PROMPTS) + 1
    prompt_ids = torch.full((P, Lp), -1, dtype=torch.int64)
    prompt_len = torch.zeros(P, dtype=torch.int64)
    T = N + Lp
    enc_states = torch.zeros(P, T, D)
    first_logits = torch.zeros(P, tcfg.vocab_size)
    greedy = torch.full((P, MAX_NEW), -1, dtype=torch.int64)
    greedy_len = torch.zeros(P, dtype=torch.int64)
    beam = torch.full((P, MAX_NEW), -1, dtype=torch.int64)
    beam_len = torch.zeros(P, dtype=torch.int64)
    min_gap = float("inf")
    with torch.no_grad():
        for i, p in enumerate(PROMPTS):
            ids = torch.tensor(p + [1])
            prompt_ids[i, :len(ids)] = ids
            prompt_len[i] = len(ids)
            z = vision_ref(pixel_values=pixel_values[i:i + 1]).last_hidden_state
            embeds = torch.cat([proj(z), t5_ref.shared(ids[None])], dim=1)
            enc = t5_ref.encoder(inputs_embeds=embeds).last_hidden_state
            enc_states[i, :enc.shape[1]] = enc[0]
            out = t5_ref(encoder_outputs=BaseModelOutput(last_hidden_state=enc),
                         decoder_input_ids=torch.tensor([[tcfg.decoder_start_token_id]]))
            first_logits[i] = out.logits[0, 0]
            g = t5_ref.generate(inputs_embeds=embeds, max_new_tokens=MAX_NEW, num_beams=1,
                                do_sample=False, output_scores=True, return_dict_in_generate=True)
            for sc in g.scores:
                top = sc[0].topk(2).values
                min_gap = min(min_gap, float(top[0] - top[1]))
            seq = strip(g.sequences[0], tcfg)
            greedy[i, :len(seq)] = torch.tensor(seq)
            greedy_len[i] = len(seq)
            b = t5_ref.generate(inputs_embeds=embeds, max_new_tokens=MAX_NEW, num_beams=NUM_BEAMS,
                                length_penalty=lp, early_stopping=False, do_sample=False)
            seq = strip(b[0], tcfg)
            beam[i, :len(seq)] = torch.tensor(seq)
            beam_len[i] = len(seq)
    tensors = {
        "pixel_values": pixel_values, "prompt_ids": prompt_ids, "prompt_len": prompt_len,
        "encoder_states": enc_states, "first_logits": first_logits,
        "greedy_ids": greedy, "greedy_len": greedy_len, "beam_ids": beam, "beam_len": beam_len,
        "max_new_tokens": torch.tensor([MAX_NEW]), "num_beams": torch.tensor([NUM_BEAMS]),
        "length_penalty": torch.tensor([lp], dtype=torch.float32),
    }
    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(out_dir, name + ".golden.safetensors"),
              metadata={"source": "transformers SiglipVisionModel + nn.Linear + "
                                  "T5ForConditionalGeneration.generate, float32, eager"})
    print(f"{name}: greedy lens {greedy_len.tolist()}, beam lens {beam_len.tolist()}, "
          f"min greedy top-2 gap {min_gap:.3g}")
    print("  greedy", [greedy[i, :greedy_len[i]].tolist() for i in range(P)])
    print("  beam  ", [beam[i, :beam_len[i]].tolist() for i in range(P)])


def strip(seq, tcfg):
    """generate()'s output without the decoder start token and trailing padding."""
    s = seq.tolist()
    assert s[0] == tcfg.decoder_start_token_id
    s = s[1:]
    if 1 in s:
        s = s[:s.index(1) + 1]
    return s


def write_weights(ckpt, sd, shard):
    if not shard:
        save_file(sd, os.path.join(ckpt, "model.safetensors"), metadata={"format": "pt"})
        return
    limit = int(shard.rstrip("KB")) * 1000
    shards, cur, size = [], {}, 0
    for k in sorted(sd):
        n = sd[k].numel() * sd[k].element_size()
        if cur and size + n > limit:
            shards.append(cur)
            cur, size = {}, 0
        cur[k] = sd[k]
        size += n
    shards.append(cur)
    index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in sd.values())},
             "weight_map": {}}
    for i, part in enumerate(shards):
        fn = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(part, os.path.join(ckpt, fn), metadata={"format": "pt"})
        for k in part:
            index["weight_map"][k] = fn
    with open(os.path.join(ckpt, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)


def read_all(ckpt):
    files = [f for f in sorted(os.listdir(ckpt)) if f.endswith(".safetensors")]
    out = {}
    for fn in files:
        with safe_open(os.path.join(ckpt, fn), "pt") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    return out


def load_reference(ckpt, config):
    """Splits the pali3 checkpoint into a SigLIP vision dir and a T5 dir and
    loads each with from_pretrained (float32, eager attention)."""
    sd = read_all(ckpt)
    tmp = tempfile.mkdtemp()
    vdir, tdir = os.path.join(tmp, "vision"), os.path.join(tmp, "t5")
    os.makedirs(vdir)
    os.makedirs(tdir)
    with open(os.path.join(vdir, "config.json"), "w") as f:
        json.dump({**config["vision_config"], "architectures": ["SiglipVisionModel"]}, f)
    save_file({k[len("vision_model."):]: v for k, v in sd.items() if k.startswith("vision_model.")},
              os.path.join(vdir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(tdir, "config.json"), "w") as f:
        json.dump({**config["text_config"], "architectures": ["T5ForConditionalGeneration"]}, f)
    save_file({k[len("language_model."):]: v for k, v in sd.items()
               if k.startswith("language_model.")},
              os.path.join(tdir, "model.safetensors"), metadata={"format": "pt"})
    vision = SiglipVisionModel.from_pretrained(vdir, dtype=torch.float32,
                                               attn_implementation="eager").eval()
    t5 = T5ForConditionalGeneration.from_pretrained(tdir, dtype=torch.float32,
                                                    attn_implementation="eager").eval()
    w = sd["multi_modal_projector.linear.weight"].float()
    proj = torch.nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        proj.weight.copy_(w)
        proj.bias.copy_(sd["multi_modal_projector.linear.bias"].float())
    shutil.rmtree(tmp)
    return vision, proj, t5


def dump_buckets(out_dir):
    rel = torch.arange(-600, 601)
    tensors = {}
    for nb, md in [(32, 128), (16, 20), (64, 256), (8, 16)]:
        for bi in (True, False):
            b = T5Attention._relative_position_bucket(rel, bidirectional=bi, num_buckets=nb,
                                                      max_distance=md)
            tensors[f"buckets_{nb}_{md}_{'bidirectional' if bi else 'causal'}"] = b.to(torch.int32)
    save_file(tensors, os.path.join(out_dir, "t5_buckets.safetensors"),
              metadata={"source": "transformers T5Attention._relative_position_bucket, rel -600..600"})


TEXTS = [
    "caption en", "answer en what is the color of the cat?", "caption  de ", "answer fr where is the dog",
    "Caption EN", "answer en how many people are sitting on the table?!", "", "kapo zibe hadego",
    "answer es \u00e9t\u00e9 ?",
]


def dump_text(out_dir, spiece, name):
    """T5Tokenizer's prompt ids (SentencePiece encode + </s>, the pipeline of
    transformers 5's tokenization_t5.py; transformers cannot build that
    tokenizer from a bare spiece.model offline here, so sentencepiece itself
    is the reference) and decodings of the greedy outputs of NAME with the
    special ids dropped (decode(skip_special_tokens=True))."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=spiece)
    g = safe_open(os.path.join(out_dir, name + ".golden.safetensors"), "pt")
    ids, lens = g.get_tensor("greedy_ids"), g.get_tensor("greedy_len")
    n_pieces = sp.get_piece_size()
    decoded = []
    for i in range(ids.shape[0]):
        seq = [int(t) for t in ids[i, :lens[i]]]
        keep = [t for t in seq if t not in (0, 1, sp.unk_id()) and t < n_pieces]
        decoded.append({"ids": seq, "text": sp.decode(keep)})
    doc = {"model": name,
           "encode": [{"text": t, "ids": sp.encode(t) + [1]} for t in TEXTS],
           "decode": decoded}
    with open(os.path.join(out_dir, "pali3_text.json"), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    spiece = os.path.join(tempfile.mkdtemp(), "spiece.model")
    make_spiece(spiece)
    for c in CHECKPOINTS:
        build(args.out, spiece, *c)
    dump_buckets(args.out)
    dump_text(args.out, spiece, "pali3_tiny_a")


if __name__ == "__main__":
    main()

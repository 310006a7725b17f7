#!/usr/bin/env python3
"""Trains small SentencePiece BPE models laid out like the Gemma tokenizer of
SigLIP 2 and dumps what transformers' Siglip2Tokenizer and sentencepiece
give for them, for prism's tests (tests/test_tokenizer_bpe.c).

    pip install sentencepiece transformers tokenizers protobuf
    python3 tools/reference/make_gemma_tokenizer_goldens.py [--out tests/data]

Writes
    tests/data/tok_gemma/tokenizer.model         BPE, byte_fallback, no dummy
        prefix, no whitespace cleanup, split_digits, identity normaliser,
        <pad>=0 <eos>=1 <bos>=2 <unk>=3, user-defined <mask> (4),
        <start_of_turn>, <end_of_turn>, newline and ▁ runs, HTML-like tags;
        no "\\t" piece (transformers then names <0x09> "\\t")
    tests/data/tok_gemma/tokenizer_config.json   as a SigLIP 2 checkpoint's:
        GemmaTokenizer, add_bos_token false, add_eos_token true, no
        padding_side (Siglip2Tokenizer's default, left)
    tests/data/tok_gemma_b/...                    a smaller model with a "\\t"
        piece, <mask> and <ctrl> control symbols; add_bos_token and
        add_eos_token true, padding_side "right"
    tests/data/tok_gemma*.golden.bin

How the reference is built: a SigLIP 2 directory on the hub holds
tokenizer.model, the tokenizer.json that transformers' GemmaConverter made
from it, and tokenizer_config.json. This script makes the same three
files from each trained model (the converter's steps: pieces 0-2 named
<pad> <eos> <bos>, <0x09> named "\\t" when there is no "\\t" piece, merges
from generate_merges ranked by piece score, every control and user-defined
piece an added token, <start_of_turn>/<end_of_turn> special, Replace(" ",
"▁") normaliser, byte-fallback BPE with fuse_unk), then loads the directory
with Siglip2Tokenizer.from_pretrained (what AutoTokenizer picks for a
model_type "siglip2" config) and calls it as Siglip2Processor does:
tokenizer(text, padding="max_length", truncation=True, max_length=64).

Golden file format: as tools/reference/make_tokenizer_goldens.py's
(varints, strings, id lists; header "PRISMTOK" 1 n_records model
unicode_version versions), with
      5 SIGLIP2   text, the 64 input_ids, the number of ids that are not
                  padding (sum of attention_mask), has_sp (0/1), then when 1
                  the SP fields of sentencepiece's own encoding of the text
                  (normalize, encode ids, piece exceptions, decode)
Deterministic: fixed seeds, one training thread.
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import warnings

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2
import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
import transformers
from transformers import Siglip2Tokenizer
from transformers.tokenization_utils_base import generate_merges

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizer_goldens as base  # noqa: E402  (corpus, strings, writers)

MAX_LEN = 64
SEED = 20250221

GEMMA_USER = ["<mask>", "<start_of_turn>", "<end_of_turn>", "\n", "\n\n", "\n\n\n",
              "▁▁", "▁▁▁", "▁▁▁▁", "<table>", "<tr>", "<td>", "</td>", "[multimodal]"]


def train(path_prefix, lines, **kw):
    spm.set_random_generator_seed(SEED)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        corpus = f.name
    try:
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=path_prefix, model_type="bpe", byte_fallback=True,
            add_dummy_prefix=False, remove_extra_whitespaces=False, split_digits=True,
            normalization_rule_name="identity", allow_whitespace_only_pieces=True,
            pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
            bos_piece="<bos>", unk_piece="<unk>", num_threads=1, minloglevel=2, **kw)
    finally:
        os.unlink(corpus)
    os.unlink(path_prefix + ".vocab")
    proto = sp_pb2.ModelProto()
    with open(path_prefix + ".model", "rb") as f:
        proto.ParseFromString(f.read())
    proto.trainer_spec.ClearField("input")
    proto.trainer_spec.ClearField("model_prefix")
    with open(path_prefix + ".model", "wb") as f:
        f.write(proto.SerializeToString())
    return proto


def convert(proto):
    """GemmaConverter's tokenizers.Tokenizer for a Gemma-layout proto."""
    vocab_scores = [(p.piece, p.score) for p in proto.pieces]
    vocab_scores[0:3] = [("<pad>", 0.0), ("<eos>", 0.0), ("<bos>", 0.0)]
    if not any(v[0] == "\t" for v in vocab_scores):
        i = next((i for i, v in enumerate(vocab_scores) if v[0] == "<0x09>"), None)
        if i is not None:
            vocab_scores[i] = ("\t", 0.0)
    vocab = {w: i for i, (w, _) in enumerate(vocab_scores)}
    merges = generate_merges(vocab, vocab_scores)
    tok = Tokenizer(BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True,
                        dropout=None))
    special = {"<start_of_turn>", "<end_of_turn>"}
    tok.add_tokens([AddedToken(p.piece, normalized=False, special=p.type == 3 or p.piece in special)
                    for p in proto.pieces if p.type in (3, 4)])
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse()])
    return tok


def write_dir(d, proto, model_bytes, add_bos, add_eos, padding_side, with_json):
    """tokenizer.model, tokenizer_config.json (and tokenizer.json when with_json)."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.model"), "wb") as f:
        f.write(model_bytes)
    tok = convert(proto)
    single = ("<bos>:0 " if add_bos else "") + "$A:0" + (" <eos>:0" if add_eos else "")
    specials = ([("<bos>", 2)] if add_bos else []) + ([("<eos>", 1)] if add_eos else [])
    tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=specials)
    added = {}
    for i, p in enumerate(proto.pieces):
        if p.type in (2, 3, 4):
            added[str(i)] = {"content": p.piece, "lstrip": False, "normalized": False,
                             "rstrip": False, "single_word": False,
                             "special": p.type in (2, 3) or p.piece in ("<mask>", "<start_of_turn>",
                                                                        "<end_of_turn>")}
    cfg = {"add_bos_token": add_bos, "add_eos_token": add_eos, "added_tokens_decoder": added,
           "bos_token": "<bos>", "clean_up_tokenization_spaces": False, "eos_token": "<eos>",
           "mask_token": "<mask>", "model_max_length": 1000000000000000019884624838656,
           "pad_token": "<pad>", "sp_model_kwargs": {}, "spaces_between_special_tokens": False,
           "tokenizer_class": "GemmaTokenizer", "unk_token": "<unk>",
           "use_default_system_prompt": False}
    if padding_side:
        cfg["padding_side"] = padding_side
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    if with_json:
        tok.save(os.path.join(d, "tokenizer.json"))
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump({"model_type": "siglip2"}, f)


def gemma_strings(rng):
    s = []
    add = s.append
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
                "<table>", "<tr>", "<td>", "</td>", "[multimodal]", "<0x41>", "<0x09>", "▁▁"]
    for x in specials:
        add(x)
        add(x.upper())
        add(f"a {x} b")
        add(f"a{x}b")
        add(f"{x}{x}")
        add(f"  {x}  ")
    add("<start_of_turn>user\nwhat is in the image?<end_of_turn>\n<start_of_turn>model\n")
    add("<start_of_turn" + ">")
    add("<start_of_<end_of_turn>turn>")
    ws = [" ", "  ", "   ", "    ", "     ", "\t", "\t\t", "\n", "\n\n", "\n\n\n\n", "\r\n", " \t ",
          "\u3000", "\xa0", "▁", "▁▁▁"]
    for w in ws:
        add(w)
        add(f"{w}photo")
        add(f"photo{w}")
        add(f"a{w}photo{w}of{w}a{w}cat")
        add(f"{w}{w}x{w}")
    for _ in range(150):
        parts = []
        for _ in range(rng.randint(1, 10)):
            parts.append(rng.choice(base.ENGLISH + base.LATIN_ACCENTED + specials + ws + ["42", "3.14", "ΣΑΣ"]))
            parts.append(rng.choice(ws + ["", " "]))
        add("".join(parts))
    # characters whose lower case is newer than Python 3.11's Unicode tables
    for c in [0x1C89, 0xA7CB, 0xA7CC, 0xA7CE, 0xA7D2, 0xA7D4, 0xA7DA, 0xA7DC, 0x10D50, 0x10D65,
              0x16EA0, 0x16EB8]:
        add(f"x{chr(c)}y {chr(c)}")
    for x in ["ΟΔΟΣ", "ὈΔΥΣΣΕΎΣ", "İstanbul", "ǅ", "ẞ", "Ꭰ", "ﬃ", "K", "Å", "123456789",
              "1,000,000", "v1.2.3", "😀😃 family 👨‍👩‍👧", "🇫🇷", "\x00", "\x00a\x00"]:
        add(x)
    for n in (60, 61, 62, 63, 64, 65, 66, 70, 200):
        add(" ".join(["photo"] * n))
        add("x" * n)
        add(" ".join(str(i) for i in range(n)))
        add("<eos>" * n)
    add("word " * 2000)
    add("  ".join(["a"] * 3000))
    add("😀" * 800)
    add("".join(rng.choice(base.CJK) for _ in range(2000)))
    add(" ".join(rng.choice(base.ENGLISH) for _ in range(3000)))
    return s


def write_goldens(out_dir, name, model_dir, strings, sp_every):
    tok = Siglip2Tokenizer.from_pretrained(model_dir)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    records = []
    for k, text in enumerate(strings):
        enc = tok(text, padding="max_length", truncation=True, max_length=MAX_LEN)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        assert len(ids) == MAX_LEN
        rec = b"\x05" + base.vstr(text) + base.vids(ids) + base.varint(sum(mask))
        if k % sp_every == 0 and len(text.encode("utf-8")) <= base.SP_MAX_TEXT:
            rec += base.varint(1) + base.sp_record(sp, text)
        else:
            rec += base.varint(0)
        records.append(rec)
    path = os.path.join(out_dir, f"{name}.golden.bin")
    versions = (f"python {sys.version.split()[0]}, transformers {transformers.__version__}, "
                f"tokenizers {tokenizers.__version__}, sentencepiece {spm.__version__}")
    import unicodedata
    head = (b"PRISMTOK" + base.varint(1) + base.varint(len(records)) + base.vstr(f"{name}")
            + base.vstr(unicodedata.unidata_version) + base.vstr(versions))
    with open(path, "wb") as f:
        f.write(head + b"".join(records))
    return path, len(records), tok.padding_side


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()

    rng = random.Random(SEED)
    corpus = base.make_corpus(rng, 30000)
    # Gemma's corpus has runs of spaces, tabs and newlines inside lines
    for i in range(0, len(corpus), 7):
        corpus[i] = corpus[i].replace(" ", rng.choice(["  ", "   ", " "]), 2)
    strings = base.test_strings(random.Random(SEED + 1)) + gemma_strings(random.Random(SEED + 2))
    assert len(strings) >= 2000, len(strings)

    tmp = tempfile.mkdtemp()
    try:
        models = [
            ("tok_gemma", dict(vocab_size=4000, character_coverage=0.9995,
                               user_defined_symbols=GEMMA_USER), False, True, None, strings, 4),
            ("tok_gemma_b", dict(vocab_size=1500, character_coverage=0.98,
                                 user_defined_symbols=GEMMA_USER[1:3] + ["\t", "\n", "▁▁"],
                                 control_symbols=["<mask>", "<ctrl>"]), True, True, "right",
             strings[::3], 2),
        ]
        for name, kw, add_bos, add_eos, side, strs, sp_every in models:
            lines = corpus if name == "tok_gemma" else [l.replace(" ", "\t", 1) for l in corpus[:8000]]
            proto = train(os.path.join(tmp, name), lines, **kw)
            model_bytes = proto.SerializeToString()
            ref = os.path.join(tmp, name + "_hub")
            write_dir(ref, proto, model_bytes, add_bos, add_eos, side, with_json=True)
            write_dir(os.path.join(out, name), proto, model_bytes, add_bos, add_eos, side,
                      with_json=False)
            print(write_goldens(out, name, ref, strs, sp_every), len(model_bytes))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Trains a small byte-level BPE laid out like the tokenizer a Florence-2
checkpoint ships (BART's: RoBERTa's byte-level BPE, plus Florence's added
tokens) and dumps what transformers gives for it, for prism's tests
(tests/test_tok_bytebpe.c).

    pip install transformers tokenizers
    python3 tools/reference/make_bytebpe_goldens.py [--out tests/data]

Writes
    tests/data/tok_bart/tokenizer.json         tokenizers' BPE model (vocab,
        merges), ByteLevel pre-tokenizer (add_prefix_space false, GPT-2's
        regex), ByteLevel decoder, RobertaProcessing, the added tokens
    tests/data/tok_bart/vocab.json, merges.txt  the same model, as BART ships it
    tests/data/tok_bart/tokenizer_config.json  BartTokenizer, the added tokens
        (added_tokens_decoder), bos/eos/pad/unk/mask, image_token,
        clean_up_tokenization_spaces true (which transformers 5 ignores for
        BPE models: see decode below)
    tests/data/tok_bart.golden.bin

The vocabulary: trained with tokenizers' BpeTrainer (vocab 4,000, the 256
byte characters as the initial alphabet) on a multilingual corpus this
script generates, with BART's layout: <s>=0 <pad>=1 </s>=2 <unk>=3, the
trained tokens, <mask> last in vocab.json. Added tokens, in id order as in
Florence-2: <s> <pad> </s> <unk> (special), <mask> (special, lstrip as
BART's), <od> </od> <ocr> </ocr>, <loc_0>...<loc_999>, <cap> </cap> <ncap>
</ncap> <dcap> </dcap> <grounding> </grounding> <seg> </seg> <sep>
<region_cap> </region_cap> <region_to_desciption> </region_to_desciption>
<proposal> </proposal> <poly> </poly> <and> (special, not normalized), then
<image> (special; transformers' florence2 image_token_id is the id after
<and>). Beyond Florence's own, three non-special tokens exercise the other
added-token paths: "<|note|>" (normalized, rstrip), "naïve" (not normalized:
matched before the normalized ones; the ByteLevel decoder turns its "ï" into
the byte 0xEF, so it decodes to "na\\ufffdve") and " (c)" (normalized,
starts with a space, which the ByteLevel decoder passes through as raw
UTF-8).

How transformers 5 reads the directory: AutoTokenizer picks
BartTokenizer (RobertaTokenizer), which rebuilds the backend from
tokenizer.json's vocab and merges (BPE without unk token or dropout,
ByteLevel(add_prefix_space) pre-tokenizer and decoder) and adds the tokens
of tokenizer_config.json's added_tokens_decoder. The script checks that the
loaded tokenizer's added tokens are exactly the ones written to
tokenizer.json.

Every string (over 2,000: the SigLIP corpus of make_tokenizer_goldens.py,
Florence prompts, <loc_N> runs and other added tokens glued to words and
spaces, whitespace runs, contractions, numbers, letters and digits of many
scripts, combining marks, emoji, CJK, NBSP and the other Unicode spaces,
code points that only a newer Unicode assigns, the empty string) is encoded
as Florence2Processor does, tokenizer(text, add_special_tokens=False), and
its ids decoded with both skip_special_tokens values; random id lists
(added tokens, single byte tokens that form invalid UTF-8, ids past the
vocabulary, which decode skips) are decoded too.

Golden file format: as tools/reference/make_tokenizer_goldens.py's
(varints, strings, id lists; header "PRISMTOK" 1 n_records model
unicode_version versions), with
      6 BYTEBPE      text, ids, decode(ids, skip_special_tokens=False),
                     decode(ids, skip_special_tokens=True); each decode a
                     varint 0 when it equals the text, else length + 1 and
                     the bytes
      7 BYTEBPE_DEC  ids, decode(ids, skip_special_tokens=False),
                     decode(ids, skip_special_tokens=True) (strings)
Deterministic: fixed seeds; rerunning reproduces every file byte for byte.
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import unicodedata
import warnings

import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors, trainers
from tokenizers.models import BPE
import transformers
from transformers import AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizer_goldens as base  # noqa: E402  (corpus, strings, writers)

SEED = 20250302
VOCAB_SIZE = 4000

FLORENCE_HEAD = ["<od>", "</od>", "<ocr>", "</ocr>"]
FLORENCE_LOC = [f"<loc_{i}>" for i in range(1000)]
FLORENCE_TAIL = ["<cap>", "</cap>", "<ncap>", "</ncap>", "<dcap>", "</dcap>", "<grounding>",
                 "</grounding>", "<seg>", "</seg>", "<sep>", "<region_cap>", "</region_cap>",
                 "<region_to_desciption>", "</region_to_desciption>", "<proposal>", "</proposal>",
                 "<poly>", "</poly>", "<and>"]
EXTRA = [AddedToken("<|note|>", special=False, normalized=True, rstrip=True),
         AddedToken("naïve", special=False, normalized=False),
         AddedToken(" (c)", special=False, normalized=True)]

FLORENCE_PROMPTS = [
    "What is the text in the image?", "What is the text in the image, with regions?",
    "What does the image describe?", "Describe in detail what is shown in the image.",
    "Describe with a paragraph what is shown in the image.",
    "Locate the objects with category name in the image.",
    "Locate the objects in the image, with their descriptions.",
    "Locate the region proposals in the image.", "Locate the phrases in the caption: {}",
    "Locate {} in the image with mask", "What is the polygon mask of region {}",
    "Locate {} in the image.", "What is the region {}?", "What does the region {} describe?",
    "What text is in the region {}?"]

# Code points whose class differs between Python's Unicode (14.0) and the
# reference's regex engine (see tools/gen_tok_bytebpe_tables.py), and other
# class edge cases.
UNICODE_EDGE = ["\u1c89", "\u1c8a", "\ua7cb", "\ua7dc", "\U000105c0", "\U00011f04",
                "\U0001e4d0", "\U00031350", "\U00010d40", "\U000116d0", "\U0001e4f0",
                "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0", "\u1680", "\u180e", "\u2000",
                "\u2007", "\u200a", "\u200b", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
                "\ufeff", "\u0301", "\u0903", "\u20dd", "\u00b2", "\u00bd", "\u2167", "\u0663",
                "\u0967", "\u0e53", "\U0001d7d8", "\u3007", "\u16ee", "\U00010140", "\u02b0",
                "\u01c5", "\u00aa", "\u2f00", "\u4e00", "\uac00", "\u0041\u030a", "\U0001f600",
                "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f1eb\U0001f1f7", "\u2764\ufe0f",
                "\U0001f44d\U0001f3fd", "_", "'", "\u2019"]


def florence_corpus(rng):
    lines = base.make_corpus(rng, 20000)
    extra = []
    for _ in range(3000):
        p = rng.choice(FLORENCE_PROMPTS).format(rng.choice(base.ENGLISH))
        extra.append(p)
    for _ in range(2000):
        words = [rng.choice(base.ENGLISH + ["it's", "don't", "we'll", "they're", "I've", "I'm",
                                            "he'd", "can't", "won't"]) for _ in range(rng.randint(3, 12))]
        s = " ".join(words)
        s = rng.choice(["", "  ", "\t", "\n"]).join([s, rng.choice(["!", "?", "...", ".", ","])])
        extra.append(s.capitalize())
    # the class edge cases inside words and after spaces, often enough that
    # the trained merges cross them: a character put in the wrong class of
    # the regex then changes the ids, not only the split
    for c in UNICODE_EDGE:
        for _ in range(120):
            w = rng.choice(base.ENGLISH)
            extra.append(rng.choice([f"ka{c}ri {w}", f"{w} {c}ka", f"{w} 1{c}2", f"{w}{c}{c}{w}"]))
    return lines + extra


def train(corpus):
    tok = Tokenizer(BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, show_progress=False,
                                  special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = dict(sorted(model["vocab"].items(), key=lambda kv: kv[1]))
    assert list(vocab.values()) == list(range(len(vocab)))
    vocab["<mask>"] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return vocab, merges


def build(vocab, merges):
    """The tokenizers.Tokenizer a BART/Florence-2 tokenizer.json holds."""
    tok = Tokenizer(BPE(vocab, merges, dropout=None, unk_token=None, continuing_subword_prefix="",
                        end_of_word_suffix="", fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                                 use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                      add_prefix_space=False)
    sp = lambda s, **kw: AddedToken(s, special=True, normalized=False, **kw)
    tok.add_special_tokens([sp("<s>"), sp("<pad>"), sp("</s>"), sp("<unk>"),
                            sp("<mask>", lstrip=True)])
    tok.add_special_tokens([sp(s) for s in FLORENCE_HEAD + FLORENCE_LOC + FLORENCE_TAIL])
    tok.add_special_tokens([sp("<image>")])
    tok.add_tokens(list(EXTRA))
    return tok


def added_entry(t):
    return {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized,
            "rstrip": t.rstrip, "single_word": t.single_word, "special": t.special}


def write_dir(d, vocab, merges):
    os.makedirs(d, exist_ok=True)
    tok = build(vocab, merges)
    tok.save(os.path.join(d, "tokenizer.json"), pretty=False)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    added = {str(i): added_entry(t) for i, t in sorted(tok.get_added_tokens_decoder().items())}
    cfg = {"add_prefix_space": False, "added_tokens_decoder": added, "bos_token": "<s>",
           "clean_up_tokenization_spaces": True, "cls_token": "<s>", "eos_token": "</s>",
           "errors": "replace", "extra_special_tokens": {"image_token": "<image>"},
           "mask_token": "<mask>", "model_max_length": 1024, "pad_token": "<pad>",
           "sep_token": "</s>", "tokenizer_class": "BartTokenizer", "trim_offsets": True,
           "unk_token": "<unk>"}
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return tok


def bart_strings(rng, added):
    s = []
    add = s.append
    glue = ["", " ", "  ", "\t", "\n", " \n ", "\xa0", "\u3000"]
    for p in FLORENCE_PROMPTS:
        add(p.format("a red car"))
        add("<s>" + p.format("<loc_12><loc_300><loc_512><loc_999>") + "</s>")
        add("<image><s>" + p.format("the cat") + "</s>")
    for _ in range(150):
        k = rng.randint(1, 12)
        locs = "".join(f"<loc_{rng.randint(0, 999)}>" for _ in range(k))
        words = " ".join(rng.choice(base.ENGLISH) for _ in range(rng.randint(0, 4)))
        add(rng.choice(["", "<od>", "<ocr>", "<poly>", "<s>"]) + words + rng.choice(glue) + locs
            + rng.choice(glue) + rng.choice(["", "</od>", "</ocr>", "</poly>", "<sep>", "</s>"]))
    for a in added:
        for g in glue[:6]:
            add(f"word{g}{a}{g}word")
        add(f"{a}{a}")
        add(a.upper())
        add(a[:-1])
    for x in ["<loc_1000>", "<loc_-1>", "<loc_01>", "<loc_5", "loc_5>", "<<loc_5>>", "<loc_<loc_5>>",
              "<mask>", " <mask>", "   <mask>", "a <mask> b", "a\t\t<mask>", "<mask> <mask>",
              "a\u3000<mask>", "\xa0<mask>", "<s> <mask>", "<|note|>   x", "<|note|>\n\nx",
              "a<|note|> <mask>", "naïve", "Naïve naïve", "naïves", "x (c) y", " (c)", "(c)",
              "  (c)", "naïve (c)", "<od> (c)</od>", "<image>" * 5, "<image><s>x</s>"]:
        add(x)
    # contractions (the regex's are lower-case ASCII only)
    for x in ["it's", "It'S", "we'll", "WE'LL", "they're", "THEY'RE", "they'Re", "I've", "I'm",
              "he'd", "don't", "can't", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "''s", "'''",
              "x's's", "rock'n'roll", "a 's", "a's", "1's", "!'s", " 's", "\u2019s", "it\u2019s",
              "'S", "'LL", "o'clock", "y'all", "'", "''", "' '"]:
        add(x)
        add(x + " " + x)
    # whitespace runs against the lookahead \s+(?!\S)
    ws = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \t", "\t ", " \n", "\n ",
          "\xa0", " \xa0", "\xa0 ", "\u2000", "\u3000 ", "\x85", "\x0b\x0c", "\x1c", " \x1c "]
    for w in ws:
        add(w)
        add(f"a{w}b")
        add(f"{w}a")
        add(f"a{w}")
        add(f"a{w}1{w}!{w}é")
        add(f"<od>{w}</od>")
        add(f"{w}<loc_1>{w}")
    # punctuation runs, numbers
    for x in ["!!!", "?!", "...", "a...b", " ...", "--", "(a)", "[1]", "{x}", "#1", "$100.00",
              "50%", "3.14159", "1,000,000", "2024-06-11", "12:30pm", "v1.2.3", "0x1F600",
              "1e-10", "x2", "2x", "H2O", "٣٤٥", "١٢٣abc", "१२३", "๓๔", "𝟘𝟙", "Ⅻ", "½", "²³",
              "①②", "〇一", "𐅀", "a_b", "__init__", "@user", "#hashtag", "C++", "a/b\\c",
              "«quoted»", "“smart”", "—", "…", "¡hola!", "¿qué?"]:
        add(x)
        add(" " + x)
        add("x" + x)
    for c in UNICODE_EDGE:
        add(c)
        add(f"a{c}b")
        add(f" {c} ")
        add(f"{c}{c}x1")
        add(f"1{c}")
        add(f"<loc_3>{c}<loc_4>")
        add(f"ka{c}ri x {c}ka 1{c}2")
    for _ in range(200):
        parts = []
        for _ in range(rng.randint(1, 10)):
            parts.append(rng.choice(base.ENGLISH + base.LATIN_ACCENTED + added[:60] + UNICODE_EDGE
                                    + ["it's", "42", "3.5", "!!", "'ll", "\n", "\t"]))
            parts.append(rng.choice(glue))
        add("".join(parts))
    # long ones
    add("<loc_7>" * 600)
    add(" ".join(f"<loc_{i}>" for i in range(1000)))
    add("supercalifragilistic" * 50)
    add("a" * 3000)
    add("ab" * 1500)
    add(" " * 500 + "x")
    add("\n" * 300)
    add("😀" * 400)
    add("".join(rng.choice(base.CJK) for _ in range(1500)))
    return s


def decode_lists(rng, tok, n_vocab):
    byte_ids = [tok.convert_tokens_to_ids(c) for c in sorted(pre_tokenizers.ByteLevel.alphabet())]
    specials = list(range(0, 5)) + [n_vocab - 1] + list(range(n_vocab, len(tok)))
    lists = [[], [0], [2], [0, 2], [1, 1], [n_vocab - 1], [len(tok) - 1], [len(tok)], [len(tok) + 7, 5],
             [10 ** 6], [tok.convert_tokens_to_ids("naïve")], [tok.convert_tokens_to_ids(" (c)")]]
    for _ in range(300):
        ids = []
        for _ in range(rng.randint(1, 25)):
            r = rng.random()
            if r < 0.25:
                ids.append(rng.choice(byte_ids))
            elif r < 0.4:
                ids.append(rng.choice(specials))
            elif r < 0.43:
                ids.append(rng.randint(len(tok), len(tok) + 50))
            else:
                ids.append(rng.randint(0, len(tok) - 1))
        lists.append(ids)
    for _ in range(100):  # runs of byte tokens: invalid and truncated UTF-8
        lists.append([rng.choice(byte_ids) for _ in range(rng.randint(1, 12))])
    return lists


def dec_field(d, text):
    if d == text:
        return base.varint(0)
    b = d.encode("utf-8")
    return base.varint(len(b) + 1) + b


def write_goldens(out_dir, model_dir, strings, rng, n_vocab):
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert type(tok).__name__ in ("RobertaTokenizer", "BartTokenizer"), type(tok)
    assert tok.image_token == "<image>" and tok.image_token_id == len(tok) - 1 - len(EXTRA)
    assert tok.convert_tokens_to_ids("<loc_0>") == n_vocab + 4
    backend = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    want = {i: added_entry(t) for i, t in backend.get_added_tokens_decoder().items()}
    got = {i: added_entry(t) for i, t in tok.added_tokens_decoder.items()}
    assert got == want, "transformers' added tokens differ from tokenizer.json's"
    records = []
    for text in strings:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == backend.encode(text, add_special_tokens=False).ids
        d0 = tok.decode(ids, skip_special_tokens=False)
        d1 = tok.decode(ids, skip_special_tokens=True)
        records.append(b"\x06" + base.vstr(text) + base.vids(ids) + dec_field(d0, text)
                       + dec_field(d1, text))
    lists = decode_lists(rng, tok, n_vocab)
    for text in strings[::7]:
        lists.append(tok(text, add_special_tokens=False)["input_ids"][:40])
    for ids in lists:
        records.append(b"\x07" + base.vids(ids) + base.vstr(tok.decode(ids, skip_special_tokens=False))
                       + base.vstr(tok.decode(ids, skip_special_tokens=True)))
    versions = (f"python {sys.version.split()[0]}, transformers {transformers.__version__}, "
                f"tokenizers {tokenizers.__version__}")
    head = (b"PRISMTOK" + base.varint(1) + base.varint(len(records)) + base.vstr("tok_bart")
            + base.vstr(unicodedata.unidata_version) + base.vstr(versions))
    path = os.path.join(out_dir, "tok_bart.golden.bin")
    with open(path, "wb") as f:
        f.write(head + b"".join(records))
    return path, len(strings), len(lists)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()

    vocab, merges = train(florence_corpus(random.Random(SEED)))
    added = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] + FLORENCE_HEAD + FLORENCE_TAIL + ["<image>"]
    added += [t.content for t in EXTRA] + FLORENCE_LOC[::37]
    strings = (base.test_strings(random.Random(SEED + 1))
               + bart_strings(random.Random(SEED + 2), added))
    assert len(strings) >= 2000, len(strings)
    d = os.path.join(out, "tok_bart")
    tmp = tempfile.mkdtemp()
    try:
        # the checkpoint's files, read back by transformers from a copy
        write_dir(d, vocab, merges)
        ref = os.path.join(tmp, "tok_bart")
        shutil.copytree(d, ref)
        print(write_goldens(out, ref, strings, random.Random(SEED + 3), len(vocab)))
    finally:
        shutil.rmtree(tmp)
    print(d, sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)), "bytes")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Trains small real SentencePiece unigram models and dumps transformers'
SiglipTokenizer and sentencepiece's own outputs for them, for prism's
tokenizer tests (tests/test_tokenizer.c).

    pip install sentencepiece transformers protobuf
    python3 tools/reference/make_tokenizer_goldens.py [--out tests/data]

Writes
    tests/data/tok_siglip/spiece.model   T5/SigLIP-style: unigram, nmt_nfkc
        normaliser, pad=0 eos=1 unk=2, no bos, ~4000 pieces, trained on a
        multilingual corpus this script generates (fixed seed)
    tests/data/tok_spm_b/spiece.model    identity normaliser, byte_fallback,
        user-defined and control symbols, remove_extra_whitespaces off
    tests/data/tok_spm_c/spiece.model    identity normaliser,
        treat_whitespace_as_suffix, split_digits, a denormaliser, a custom
        unk_surface
    tests/data/tok_<name>.golden.bin     the reference outputs (format below)

Every input string (over 2,000 of them: plain English, punctuation, digits,
accents, CJK, emoji, right-to-left scripts, control characters, very long
strings, the empty string, odd whitespace, full-width forms, special-token
look-alikes, case-mapping corner cases, random code points) goes through

    SiglipTokenizer(vocab_file=...)(text, padding="max_length",
                                    truncation=True, max_length=64)

and, for the sentencepiece layer, sp.normalize / sp.encode / sp.decode.

Golden file format (all integers unsigned LEB128 varints, strings are a
varint byte length + UTF-8 bytes, id lists a varint count + varint ids):
    "PRISMTOK" version(=1) n_records
    str model (path under tests/data) str unicode_version str versions
    records, each a kind byte then:
      1 SIGLIP      text, siglip_ids (unpadded), pad_count,
                    decode(padded ids, skip_special_tokens=True),
                    has_sp (0/1; 0 for texts over 256 bytes, to keep the file
                    small), then when 1 the SP fields below for the same text
      2 SIGLIP_DEC  ids, decode(ids), decode(ids, skip_special_tokens), sp.decode(ids)
      3 SP          text, then the SP fields
      4 SP_DEC      ids, sp.decode(ids)
    SP fields: sp.normalize(text), sp.encode(text) ids, piece exceptions,
    sp.decode(ids) as a varint 0 when it equals the text, else length + 1
    and the bytes. Piece exceptions: a count, then (index, str) for each
    piece of sp.encode(text, out_type=str) that is not the vocabulary piece
    of its id (merged runs of unknown characters).

Deterministic: fixed seeds, one training thread; rerunning reproduces every
file byte for byte (checked by running it twice).
"""
import argparse
import os
import random
import sys
import tempfile
import unicodedata
import warnings

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2
import transformers
from transformers import SiglipTokenizer

MAX_LEN = 64
SEED = 20240611

# ---------------------------------------------------------------- corpus

ENGLISH = """the a an of to in and is was for on that with as by at from it this be are
photo picture image cat dog bird car tree house person man woman child girl boy people
red blue green yellow black white orange purple brown pink gray small large big little
old new young beautiful cute happy sad running sitting standing flying eating playing
sleeping walking looking holding wearing street city beach mountain river lake forest
field sky cloud sun moon night day morning evening winter summer spring autumn snow rain
water food pizza cake coffee table chair bed room kitchen window door wall floor book
phone computer screen keyboard bicycle motorcycle bus train plane boat ship truck horse
cow sheep elephant giraffe zebra bear lion tiger monkey fish flower grass road bridge
building tower church castle park garden market shop restaurant school hospital office
art painting drawing sketch cartoon logo sign text letter number word sentence close up
view top side front back left right inside outside near far under over between
rendering of render bright dark blurry sharp cropped black-and-white vintage modern
there two three four five many some several group of together alone one another
""".split()

LATIN_ACCENTED = """café naïve résumé über straße fiancé crème brûlée façade jalapeño piñata
smörgåsbord Ångström Øresund Dvořák Łódź Kraków São Paulo Zürich Besançon élève garçon
mañana niño corazón canción peña déjà vu coöperate Škoda Čapek żółw ćma ğüşiöç İstanbul
""".split()

SYLLABLES = {
    "latin": "ka ri to ne sa mi lo pu ve da ge hi jo ku ma no pe ra si tu wa ya zo".split(),
    "cyrillic": "ка ри то не са ми ло пу ве да ге жи зо ку ма но пе ра си ту ща я ю ё".split(),
    "greek": "κα ρι το νε σα μι λο πυ βε δα γε ζη θο κυ μα νο πε ρα σι τυ φω χα ψι ως".split(),
    "arabic": "كا ري تو ني سا مي لو بو في دا جي هي جو كو ما نو بي را سي تو وا يا زو".split(),
    "hebrew": "קא רי טו נה סא מי לו פו וה דא גה חי יו קו מא נו פה רא סי טו וא יא זו".split(),
    "devanagari": "का रि तो ने सा मि लो पु वे दा गे हि जो कु मा नो पे रा सि तु वा या".split(),
    "thai": "กา ริ โต เน สา มิ โล ปุ เว ดา เก ฮิ โจ กุ มา โน เป รา สิ ตุ วา ยา".split(),
    "hangul": "가 리 토 네 사 미 로 푸 베 다 게 히 조 쿠 마 노 페 라 시 투 와 야 한 국".split(),
    "kana": "か り と ね さ み ろ ぷ べ だ げ ひ じょ く ま の ぺ ら し つ わ や カ リ ト".split(),
    "armenian": "կա րի տո նե սա մի լո պու վե դա գե հի ջո կու մա նո պե րա սի".split(),
    "georgian": "კა რი ტო ნე სა მი ლო პუ ვე და გე ჰი ჯო კუ მა ნო პე რა სი".split(),
}
CJK = [chr(c) for c in range(0x4E00, 0x4E00 + 600)]
EMOJI = [chr(c) for c in list(range(0x1F600, 0x1F640)) + list(range(0x1F300, 0x1F330))]
EMOJI += ["👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "🏳️‍🌈"]


def make_corpus(rng, n_lines):
    lines = []
    for _ in range(n_lines):
        kind = rng.random()
        words = []
        for _ in range(rng.randint(3, 14)):
            r = rng.random()
            if r < 0.45:
                words.append(rng.choice(ENGLISH))
            elif r < 0.52:
                words.append(rng.choice(LATIN_ACCENTED))
            elif r < 0.80:
                script = rng.choice(sorted(SYLLABLES))
                words.append("".join(rng.choice(SYLLABLES[script]) for _ in range(rng.randint(1, 4))))
            elif r < 0.90:
                words.append("".join(rng.choice(CJK) for _ in range(rng.randint(1, 4))))
            elif r < 0.95:
                words.append(str(rng.randint(0, 10 ** rng.randint(1, 6))))
            else:
                words.append(rng.choice(EMOJI))
        line = " ".join(words)
        if kind < 0.3:
            line = line.capitalize() + rng.choice([".", "!", "?", ",", ";", ""])
        lines.append(line)
    return lines


def train(path_prefix, lines, **kw):
    spm.set_random_generator_seed(SEED)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        corpus = f.name
    try:
        spm.SentencePieceTrainer.train(input=corpus, model_prefix=path_prefix, model_type="unigram",
                                       num_threads=1, minloglevel=2, **kw)
    finally:
        os.unlink(corpus)
    os.unlink(path_prefix + ".vocab")
    # Drop the temporary paths the trainer records, so that the file does
    # not depend on where or when it was made.
    proto = sp_pb2.ModelProto()
    with open(path_prefix + ".model", "rb") as f:
        proto.ParseFromString(f.read())
    proto.trainer_spec.ClearField("input")
    proto.trainer_spec.ClearField("model_prefix")
    proto.denormalizer_spec.ClearField("normalization_rule_tsv")
    with open(path_prefix + ".model", "wb") as f:
        f.write(proto.SerializeToString())
    return path_prefix + ".model"


# ---------------------------------------------------------------- test strings

def test_strings(rng):
    s = []
    add = s.append
    labels = ["cat", "dog", "car", "airplane", "pizza", "a red bicycle", "two people",
              "New York City", "the Eiffel Tower", "São Paulo", "東京タワー", "café",
              "mountain lake at sunset", "black-and-white photo", "3 dogs", "an X-ray"]
    templates = ["a photo of a {}.", "This is a photo of {}.", "{}", "A {} in the wild!",
                 "an image of {}", "a blurry photo of the {}.", "{}, {} and {}",
                 "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}."]
    for t in templates:
        for l in labels:
            add(t.format(l, l, l))
    # plain English sentences
    for _ in range(300):
        words = [rng.choice(ENGLISH) for _ in range(rng.randint(1, 20))]
        sent = " ".join(words)
        if rng.random() < 0.5:
            sent = sent.capitalize() + "."
        if rng.random() < 0.2:
            sent = sent.upper()
        add(sent)
    # punctuation-heavy
    punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    for _ in range(120):
        out = []
        for _ in range(rng.randint(1, 15)):
            r = rng.random()
            if r < 0.4:
                out.append(rng.choice(ENGLISH))
            elif r < 0.8:
                out.append("".join(rng.choice(punct) for _ in range(rng.randint(1, 4))))
            else:
                out.append(rng.choice(["...", "--", "(a)", "[1]", "e.g.", "U.S.A.", "it's",
                                       "don't", "rock'n'roll", "well-known", "C++", "#hashtag",
                                       "@user", "50%", "$100", "a/b", "x_y", "«quoted»", "“smart”",
                                       "‘single’", "—", "–", "…", "¡hola!", "¿qué?", "・", "。", "、"]))
        sep = rng.choice([" ", "", "  ", "\t"])
        add(sep.join(out))
    add(punct)
    add(punct * 3)
    add(" ".join(punct))
    # digits and numbers
    for x in ["0", "7", "42", "123", "2024", "3.14159", "1,000,000", "1e10", "-5", "+33 1 23 45 67 89",
              "12:30", "2024-06-11", "v1.2.3", "0x1F600", "٣٤٥", "१२३", "①②③", "²³", "½ ¼ ¾",
              "Ⅻ", "ⅻ", "１２３", "99 bottles", "route 66", "CO2", "H₂O", "10^6", "3×4=12", "π≈3.14"]:
        add(x)
    for _ in range(60):
        add(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 12))) for _ in range(rng.randint(1, 8))))
    # accents, composed and decomposed
    for w in LATIN_ACCENTED:
        add(w)
        add(unicodedata.normalize("NFD", w))
        add(w.upper())
    add("e\u0301 e\u0300 a\u030a o\u0308 n\u0303 c\u0327 e\u0301\u0301")
    # scripts: CJK, Japanese, Korean, RTL, Indic, Thai...
    for script, syl in sorted(SYLLABLES.items()):
        for _ in range(25):
            add(" ".join("".join(rng.choice(syl) for _ in range(rng.randint(1, 5)))
                         for _ in range(rng.randint(1, 8))))
    for _ in range(60):
        add("".join(rng.choice(CJK) for _ in range(rng.randint(1, 30))))
    for x in ["我爱北京天安门", "日本語のテキスト", "東京は日本の首都です。", "한국어 텍스트입니다",
              "مرحبا بالعالم", "שלום עולם", "English and العربية mixed", "abc \u202eRTL override\u202c def",
              "\u200fright-to-left mark", "\u200eleft-to-right mark", "हिन्दी पाठ", "ภาษาไทย",
              "Ελληνικά", "Русский текст", "Հայերեն", "ქართული", "ᏣᎳᎩ", "ᐃᓄᒃᑎᑐᑦ", "𐐷𐐸", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
              "𝐛𝐨𝐥𝐝", "ℌℑℜℨ", "ﬁﬂﬀﬃ", "㍿㌔㎞", "㈱", "Ⓐⓑⓒ", "🄰🄱"]:
        add(x)
    # emoji
    for _ in range(60):
        add("".join(rng.choice(EMOJI + [" ", "a", "!"]) for _ in range(rng.randint(1, 12))))
    for x in ["😀", "😀😀😀", "👍🏽 good", "👨‍👩‍👧 family", "🇫🇷🇩🇪🇯🇵", "❤️", "🏳️‍🌈", "I ❤ NY",
              "☺", "☺️", "🫠", "\U0001FAE0\U0001FAE1"]:
        add(x)
    # control characters and invisible ones
    for c in list(range(0, 32)) + [0x7F] + list(range(0x80, 0xA0)):
        add(f"a{chr(c)}b")
        add(chr(c))
    for x in ["\x00", "\x00\x00abc", "abc\x00", "\ufeffhello", "zero\u200bwidth", "joiner\u200djoin",
              "non\u200cjoiner", "soft\u00adhyphen", "word\u2060joiner", "\ufffd", "a\ufffdb",
              "\U000E0041tag", "\uE000private", "\U000F0000plane15", "\U0010FFFF", "\uFFFE\uFFFF",
              "line\u2028sep", "para\u2029sep", "nel\x85x", "\x1c\x1d\x1e\x1f", "a\x0bb\x0cc",
              "combining\u0301\u0302\u0303", "\u0301leading combining"]:
        add(x)
    # whitespace oddities
    ws = [" ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u1680", "\u2000",
          "\u2003", "\u200a", "\u2028", "\u202f", "\u205f", "\u3000", "\u180e", "\u200b", "\ufeff"]
    add("")
    for w in ws:
        add(w)
        add(w * 3)
        add(f"{w}hello{w}world{w}")
        add(f"a{w}{w}b")
    for _ in range(40):
        add("".join(rng.choice(ws + ["x", "yz", "."]) for _ in range(rng.randint(1, 20))))
    # full-width and other NFKC-changed forms
    for x in ["ＡＢＣ　ａｂｃ　１２３！？", "Ｈｅｌｌｏ，　Ｗｏｒｌｄ！", "ｶﾀｶﾅ", "ﾊﾟﾋﾟﾌﾟ", "㌀", "™", "℃", "№",
              "ǅungla", "Ǆ", "ǈ", "ﬀ", "ẞ", "ß", "ſ", "µ", "Ω", "K", "Å", "ℹ", "⅓", "ｘ²", "①", "⑴", "⒜",
              "ᴬᴮ", "ₐₑ", "ˢᵘᵖ", "\u2126hm", "Ａ\u0301"]:
        add(x)
    # case mapping corner cases (Python str.lower)
    for x in ["İ", "İSTANBUL", "i̇", "I", "ΟΔΟΣ", "ΟΔΟΣ ΟΔΟΣ", "Σ", "AΣ", "Σa", "ΑΣ'Β", "ΑΣ.", "ΑΣ\u0301",
              "Α\u0301Σ", "ΑΣ</s>", "ΑΣ<unk>Β", "1Σ", "ΣΣΣ", "ΑΣ\u00ad", "ΑΣ\u00adΒ", "Α\u00adΣ", "ὈΔΥΣΣΕΎΣ",
              "ΌΣΟΣ", "Ꭰ", "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ", "Ა", "ᲡᲐᲥᲐᲠᲗᲕᲔᲚᲝ", "𐐀𐐁", "𞤀𞤁", "ⅫⅠ", "ⒶⒷ", "ＡＢ", "Ǳ",
              "ǲ", "Ϊ́", "ΐ", "ẞẞ", "ȺȾ", "ⱯⱰ", "ꞋꞍ", "Ɜ", "Ĳĳŉǰΐΰև", "ﬓﬔ", "ᾈᾼῌ", "Ⓩ", "𖹀", "𑢠"]:
        add(x)
        add(x + " " + x.lower())
    # special-token look-alikes
    for x in ["</s>", "<unk>", "<pad>", "<s>", "</S>", "<UNK>", "< /s>", "</s", "<unk", "unk>", "a</s>b",
              "</s></s>", "<unk><unk>", "</s> hello", "hello </s>", "hello</s>", "hello </s> world",
              "<unk>hello", "hello<unk>", " <unk> ", "▁", "▁▁", "▁hello", "hello▁world", "▁</s>",
              "</s>▁", "\u2581 \u2581", "a ▁ b", "<</s>>", "<<unk>>", "</s><unk></s>", "x</s>y<unk>z",
              "\t</s>\t", "</s>" * 70, "a </s> " * 40, "<0x41>", "<0xFF>", "<ctrl>", "<sep>"]:
        add(x)
    # lengths around the 64-token limit, and very long strings
    for n in range(55, 72):
        add("a " * n)
        add(" ".join(["the"] * n))
        add(" ".join(["photo"] * (n - 2)) + " </s>")
        add(" ".join(["dog"] * n) + "</s>")
    for n in (61, 62, 63, 64, 65):
        add("x" * n)
        add(" ".join(str(i) for i in range(n)))
    add("word " * 1000)
    add("a" * 5000)
    add("😀" * 500)
    add(" ".join(rng.choice(ENGLISH) for _ in range(800)))
    add("".join(rng.choice(CJK) for _ in range(1500)))
    add("lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 30)
    # random code points: assigned, non-surrogate, sometimes private use
    cats_ok = lambda c: unicodedata.category(c) not in ("Cs", "Cn")
    planes = [(0x20, 0x2FF), (0x300, 0x36F), (0x370, 0x1FFF), (0x2000, 0x2BFF), (0x2E80, 0x9FFF),
              (0xA000, 0xFFFD), (0x10000, 0x1FFFF), (0x20000, 0x2FFFF), (0xE0000, 0xE01EF),
              (0x0, 0x10FFFF)]
    for _ in range(420):
        out = []
        lo, hi = rng.choice(planes)
        while len(out) < rng.randint(1, 25):
            c = chr(rng.randint(lo, hi))
            if cats_ok(c):
                out.append(c)
            if rng.random() < 0.15:
                out.append(" ")
        add("".join(out))
    # random ASCII
    for _ in range(150):
        add("".join(chr(rng.randint(0, 127)) for _ in range(rng.randint(0, 40))))
    # mixed-case words to exercise lowercasing against the vocabulary
    for _ in range(100):
        add(" ".join("".join(ch.upper() if rng.random() < 0.5 else ch for ch in rng.choice(ENGLISH + LATIN_ACCENTED))
                     for _ in range(rng.randint(1, 6))))
    return s


def decode_id_lists(rng, vocab_size):
    lists = [[], [0], [1], [2], [0, 1, 2], [1, 1, 1], [2, 2], [3], [vocab_size - 1]]
    for _ in range(250):
        n = rng.randint(1, 30)
        ids = []
        for _ in range(n):
            r = rng.random()
            ids.append(rng.randint(0, 2) if r < 0.2 else rng.randint(3, vocab_size - 1))
        lists.append(ids)
    return lists


# ---------------------------------------------------------------- writing

def varint(n):
    assert n >= 0
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def vstr(x):
    b = x.encode("utf-8") if isinstance(x, str) else x
    return varint(len(b)) + b


def vids(ids):
    return varint(len(ids)) + b"".join(varint(i) for i in ids)


def vpieces(sp, ids, pieces):
    exc = [(k, p) for k, (i, p) in enumerate(zip(ids, pieces)) if sp.id_to_piece(i) != p]
    return varint(len(exc)) + b"".join(varint(k) + vstr(p) for k, p in exc)


def sp_record(sp, text):
    ids = sp.encode(text)
    pieces = sp.encode(text, out_type=str)
    assert len(ids) == len(pieces)
    dec = sp.decode(ids)
    dec_field = varint(0) if dec == text else varint(len(dec.encode("utf-8")) + 1) + dec.encode("utf-8")
    return vstr(sp.normalize(text)) + vids(ids) + vpieces(sp, ids, pieces) + dec_field


SP_MAX_TEXT = 256


def header(model_rel, n_records):
    versions = (f"python {sys.version.split()[0]}, transformers {transformers.__version__}, "
                f"sentencepiece {spm.__version__}")
    return (b"PRISMTOK" + varint(1) + varint(n_records) + vstr(model_rel)
            + vstr(unicodedata.unidata_version) + vstr(versions))


def write_siglip_goldens(out_dir, model_path, strings, rng):
    tok = SiglipTokenizer(vocab_file=model_path)
    sp = spm.SentencePieceProcessor(model_file=model_path)
    pad = tok.pad_token_id
    records = []
    for text in strings:
        padded = tok(text, padding="max_length", truncation=True, max_length=MAX_LEN)["input_ids"]
        unpadded = tok(text, truncation=True, max_length=MAX_LEN)["input_ids"]
        assert len(padded) == MAX_LEN and padded == unpadded + [pad] * (MAX_LEN - len(unpadded))
        rec = b"\x01" + vstr(text) + vids(unpadded) + varint(MAX_LEN - len(unpadded))
        rec += vstr(tok.decode(padded, skip_special_tokens=True))
        if len(text.encode("utf-8")) <= SP_MAX_TEXT:
            rec += varint(1) + sp_record(sp, text)
        else:
            rec += varint(0)
        records.append(rec)
    # decode() with special tokens kept is checked on these id lists (and on
    # a sample of the encoded strings' ids, unpadded).
    lists = decode_id_lists(rng, sp.get_piece_size())
    for text in strings[::10]:
        lists.append(tok(text, truncation=True, max_length=MAX_LEN)["input_ids"])
    for ids in lists:
        rec = b"\x02" + vids(ids) + vstr(tok.decode(ids)) + vstr(tok.decode(ids, skip_special_tokens=True))
        rec += vstr(sp.decode(ids))
        records.append(rec)
    path = os.path.join(out_dir, "tok_siglip.golden.bin")
    with open(path, "wb") as f:
        f.write(header("tok_siglip/spiece.model", len(records)) + b"".join(records))
    return path, len(records)


def write_sp_goldens(out_dir, name, model_path, strings, rng):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    records = [b"\x03" + vstr(t) + sp_record(sp, t) for t in strings]
    for ids in decode_id_lists(rng, sp.get_piece_size()):
        records.append(b"\x04" + vids(ids) + vstr(sp.decode(ids)))
    path = os.path.join(out_dir, f"tok_{name}.golden.bin")
    with open(path, "wb") as f:
        f.write(header(f"tok_{name}/spiece.model", len(records)) + b"".join(records))
    return path, len(records)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()

    # The C tables must come from the same Unicode version as this Python.
    tables = os.path.join(os.path.dirname(__file__), "..", "..", "engine", "tok_unicode_tables.c")
    with open(tables, encoding="utf-8") as f:
        if f'"{unicodedata.unidata_version}"' not in f.read():
            sys.exit(f"engine/tok_unicode_tables.c is not for Unicode {unicodedata.unidata_version}: "
                     "run tools/gen_tok_unicode_tables.py first")

    rng = random.Random(SEED)
    corpus = make_corpus(rng, 30000)
    strings = test_strings(random.Random(SEED + 1))
    assert len(strings) >= 2000, len(strings)

    # A: T5/SigLIP-style.
    d = os.path.join(out, "tok_siglip")
    os.makedirs(d, exist_ok=True)
    model_a = train(os.path.join(d, "spiece"), corpus, vocab_size=4000,
                    normalization_rule_name="nmt_nfkc", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                    character_coverage=0.9995)
    # B: byte fallback, user-defined and control symbols, identity normaliser.
    d = os.path.join(out, "tok_spm_b")
    os.makedirs(d, exist_ok=True)
    model_b = train(os.path.join(d, "spiece"), corpus[:6000], vocab_size=1200,
                    normalization_rule_name="identity", byte_fallback=True,
                    user_defined_symbols=["<sep>", "@@", "ab", "₿", "hello world"],
                    control_symbols=["<ctrl>", "<ctrl2>"], remove_extra_whitespaces=False,
                    pad_id=0, eos_id=1, unk_id=2, bos_id=3, character_coverage=0.98)
    # C: whitespace as suffix, split digits, a denormaliser, custom unk surface.
    d = os.path.join(out, "tok_spm_c")
    os.makedirs(d, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False, encoding="utf-8") as f:
        f.write("61\t41\n" "2C\t20 2C\n" "E9\t65 301\n")  # a -> A, ',' -> ' ,', é -> e + U+0301
        denorm = f.name
    try:
        model_c = train(os.path.join(d, "spiece"), corpus[:4000], vocab_size=1000,
                        normalization_rule_name="identity", treat_whitespace_as_suffix=True,
                        split_digits=True, denormalization_rule_tsv=denorm,
                        unk_surface="<?>", character_coverage=0.98)
    finally:
        os.unlink(denorm)

    print(write_siglip_goldens(out, model_a, strings, random.Random(SEED + 2)))
    sub = strings[::5]
    print(write_sp_goldens(out, "spm_b", model_b, sub, random.Random(SEED + 3)))
    print(write_sp_goldens(out, "spm_c", model_c, sub, random.Random(SEED + 4)))
    for m in (model_a, model_b, model_c):
        print(m, os.path.getsize(m))


if __name__ == "__main__":
    main()

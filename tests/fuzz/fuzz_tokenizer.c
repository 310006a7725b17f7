/* fuzz_tokenizer.c - libFuzzer target for the tokenizer: the SentencePiece
 * model loader and the encoders/decoders on arbitrary bytes.
 *
 * The first input byte picks what the rest is (mod 6):
 *   0  a spiece.model / tokenizer.model file (unigram or BPE): load it; when
 *      it loads, normalise, encode (both BPE rule sets for a BPE model) and
 *      decode a few fixed strings and ids with it;
 *   1  text for tok_siglip_encode with the SigLIP test model (invalid UTF-8
 *      must be refused cleanly; valid text must give 64 in-range ids that
 *      end in </s> padding and decode again);
 *   2  raw bytes for sp_encode (invalid UTF-8 becomes U+FFFD) and decode;
 *   3  little-endian int32 ids for both decoders (out-of-range ids must be
 *      refused, not read);
 *   4  text for tok_siglip_encode with the SigLIP 2 test model (64 in-range
 *      ids, <eos> last before the padding, <pad> on the left, the same ids
 *      as tok_siglip_encode_whole);
 *   5  raw bytes for the BPE model's sp_encode and sp_bpe_encode_tokenizers.
 * A broken invariant aborts, which libFuzzer reports as a crash.
 *
 * The test models are tests/data/tok_siglip/spiece.model (or the file named
 * by $PRISM_FUZZ_SPIECE) and the directory tests/data/tok_gemma (or
 * $PRISM_FUZZ_GEMMA_DIR). Built only with -DPRISM_FUZZ=ON and clang; see
 * docs/fuzzing.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_model.h"
#include "tokenizer.h"

static tok_tokenizer *g_tok;  /* the harness's fixtures, loaded once */
static tok_tokenizer *g_tok2; /* SigLIP 2 */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_tokenizer: invariant failed: %s (%s:%d)\n", #cond,   \
                    __FILE__, __LINE__);                                               \
            abort();                                                                   \
        }                                                                              \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = getenv("PRISM_FUZZ_SPIECE");
    if (!path)
        path = PRISM_TEST_DATA "/tok_siglip/spiece.model";
    prism_error err;
    if (tok_load_file(&g_tok, path, &err) != 0) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        abort();
    }
    const char *dir = getenv("PRISM_FUZZ_GEMMA_DIR");
    if (!dir)
        dir = PRISM_TEST_DATA "/tok_gemma";
    if (tok_load(&g_tok2, dir, &err) != 0) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        abort();
    }
    return 0;
}

static void exercise_model(const sp_model *m)
{
    static const char *const texts[] = {
        "hello world", "  Ｈｅｌｌｏ,  ＷＯＲＬＤ!  ", ("a\xff\xfe" "b"),
        "日本語 😀 <unk></s>", "\xe2\x96\x81x", "",
    };
    prism_error err;
    sp_encoding e = {0};
    sp_buf b = {0};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        if (sp_normalize(m, texts[i], strlen(texts[i]), &b, &err) != 0)
            continue; /* a corrupt charsmap may be found only now */
        if (sp_encode(m, texts[i], strlen(texts[i]), &e, &err) != 0)
            continue;
        int32_t ids[128];
        size_t n = e.n_pieces < 128 ? e.n_pieces : 128;
        for (size_t k = 0; k < n; k++) {
            CHECK(e.pieces[k].id >= 0 && e.pieces[k].id < sp_model_piece_count(m));
            ids[k] = e.pieces[k].id;
        }
        CHECK(sp_decode_ids(m, ids, n, &b, &err) == 0);
        CHECK(sp_decode_pieces(m, e.pieces, e.n_pieces, &b, &err) == 0);
        if (sp_model_get_type(m) == SP_MODEL_BPE) {
            sp_ids l = {0};
            CHECK(sp_bpe_encode_tokenizers(m, texts[i], strlen(texts[i]), &l, &err) == 0);
            for (size_t k = 0; k < l.n; k++)
                CHECK(l.ids[k] >= 0 && l.ids[k] < sp_model_piece_count(m));
            free(l.ids);
        }
    }
    int32_t all[64];
    size_t n = 0;
    for (int32_t id = 0; id < sp_model_piece_count(m) && n < 64; id++)
        all[n++] = id;
    CHECK(sp_decode_ids(m, all, n, &b, &err) == 0);
    sp_encoding_free(&e);
    sp_buf_free(&b);
}

static void fuzz_siglip(const char *text, size_t len)
{
    prism_error err;
    int32_t ids[TOK_SIGLIP_MAX_LEN];
    int n = -1;
    if (tok_siglip_encode(g_tok, text, len, ids, TOK_SIGLIP_MAX_LEN, &n, &err) != 0) {
        CHECK(err.msg[0] != '\0');
        return;
    }
    const int32_t eos = tok_eos_id(g_tok), vocab = tok_vocab_size(g_tok);
    CHECK(n >= 1 && n <= TOK_SIGLIP_MAX_LEN);
    CHECK(ids[n - 1] == eos);
    for (int i = 0; i < TOK_SIGLIP_MAX_LEN; i++) {
        CHECK(ids[i] >= 0 && ids[i] < vocab);
        if (i >= n)
            CHECK(ids[i] == tok_pad_id(g_tok));
    }
    char *s = NULL;
    CHECK(tok_siglip_decode(g_tok, ids, TOK_SIGLIP_MAX_LEN, true, &s, NULL, &err) == 0);
    free(s);
}

static void fuzz_sp(const char *text, size_t len)
{
    const sp_model *m = tok_model(g_tok);
    prism_error err;
    sp_encoding e = {0};
    sp_buf b = {0};
    CHECK(sp_encode(m, text, len, &e, &err) == 0);
    size_t total = 0;
    for (size_t k = 0; k < e.n_pieces; k++)
        total += e.pieces[k].len;
    CHECK(total == e.normalized.len); /* the pieces tile the normalised text */
    CHECK(sp_decode_pieces(m, e.pieces, e.n_pieces, &b, &err) == 0);
    sp_encoding_free(&e);
    sp_buf_free(&b);
}

static void fuzz_siglip2(const char *text, size_t len)
{
    prism_error err;
    int32_t ids[TOK_SIGLIP_MAX_LEN], whole[TOK_SIGLIP_MAX_LEN];
    int n = -1, nw = -1;
    int rc = tok_siglip_encode(g_tok2, text, len, ids, TOK_SIGLIP_MAX_LEN, &n, &err);
    CHECK((tok_siglip_encode_whole(g_tok2, text, len, whole, TOK_SIGLIP_MAX_LEN, &nw, &err) ==
           0) == (rc == 0));
    if (rc != 0)
        return;
    CHECK(n == nw && memcmp(ids, whole, sizeof ids) == 0);
    const int pad = TOK_SIGLIP_MAX_LEN - n, vocab = tok_vocab_size(g_tok2);
    CHECK(n >= 1 && n <= TOK_SIGLIP_MAX_LEN && tok_pads_left(g_tok2));
    CHECK(ids[TOK_SIGLIP_MAX_LEN - 1] == tok_eos_id(g_tok2));
    for (int i = 0; i < TOK_SIGLIP_MAX_LEN; i++) {
        CHECK(ids[i] >= 0 && ids[i] < vocab);
        if (i < pad)
            CHECK(ids[i] == tok_pad_id(g_tok2));
    }
}

static void fuzz_bpe(const char *text, size_t len)
{
    const sp_model *m = tok_model(g_tok2);
    prism_error err;
    sp_encoding e = {0};
    CHECK(sp_encode(m, text, len, &e, &err) == 0);
    size_t total = 0;
    for (size_t k = 0; k < e.n_pieces; k++)
        total += e.pieces[k].len;
    CHECK(total >= e.normalized.len); /* byte pieces stand for one byte each */
    sp_encoding_free(&e);
    sp_ids l = {0};
    CHECK(sp_bpe_encode_tokenizers(m, text, len, &l, &err) == 0);
    for (size_t k = 0; k < l.n; k++)
        CHECK(l.ids[k] >= 0 && l.ids[k] < sp_model_piece_count(m));
    free(l.ids);
}

static void fuzz_decode(const uint8_t *data, size_t size)
{
    size_t n = size / 4;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        return;
    bool in_range = true;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 |
                     (uint32_t)data[4 * i + 2] << 16 | (uint32_t)data[4 * i + 3] << 24;
        /* mostly valid ids, sometimes anything */
        ids[i] = (u >> 31) ? (int32_t)u : (int32_t)(u % (uint32_t)tok_vocab_size(g_tok));
        in_range = in_range && ids[i] >= 0 && ids[i] < tok_vocab_size(g_tok);
    }
    prism_error err;
    sp_buf b = {0};
    char *s = NULL;
    CHECK((sp_decode_ids(tok_model(g_tok), ids, n, &b, &err) == 0) == in_range);
    CHECK((tok_siglip_decode(g_tok, ids, n, false, &s, NULL, &err) == 0) == in_range);
    free(s);
    sp_buf_free(&b);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t mode = data[0] % 6;
    data++;
    size--;
    if (mode == 0) {
        prism_error err;
        sp_model *m = NULL;
        if (sp_model_load_memory(&m, data, size, "fuzz.model", &err) == 0) {
            exercise_model(m);
            sp_model_free(m);
        } else {
            CHECK(m == NULL && strncmp(err.msg, "fuzz.model: ", 12) == 0);
        }
    } else if (mode == 1) {
        fuzz_siglip((const char *)data, size);
    } else if (mode == 2) {
        fuzz_sp((const char *)data, size);
    } else if (mode == 3) {
        fuzz_decode(data, size);
    } else if (mode == 4) {
        fuzz_siglip2((const char *)data, size);
    } else {
        fuzz_bpe((const char *)data, size);
    }
    return 0;
}

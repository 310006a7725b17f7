/* sp_proto.c - a hand-written, bounds-checked reader of sentencepiece's
 * ModelProto (sentencepiece_model.proto, proto2) in protobuf wire format.
 *
 * Only the fields the tokenizer uses are kept; every other field is skipped
 * by its wire type (groups included, nested at most SP_PROTO_MAX_DEPTH
 * deep). Semantics follow protobuf: the last value of a scalar field wins,
 * repeated occurrences of an embedded message merge. Where protobuf would
 * quietly keep a known field with the wrong wire type or an unknown enum
 * value as an unknown field, this reader refuses the file instead: a real
 * spiece.model never has either, and a clear error beats a silent default.
 * Every read is checked against the end of its message, so a truncated or
 * corrupt file is an error that names the file, the byte offset and what
 * is wrong.
 */
#include <stdlib.h>
#include <string.h>

#include "sp_internal.h"

#define SP_PROTO_MAX_DEPTH 32

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

typedef struct pb_reader {
    const uint8_t *base; /* start of the whole file, for offsets in messages */
    const uint8_t *p, *end;
    const char *name;
    prism_error *err;
} pb_reader;

static size_t pb_offset(const pb_reader *r)
{
    return (size_t)(r->p - r->base);
}

static int pb_read_varint(pb_reader *r, uint64_t *v)
{
    uint64_t x = 0;
    size_t start = pb_offset(r);
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end)
            return prism_errorf(r->err, "%s: truncated varint at byte %zu", r->name, start);
        uint8_t b = *r->p++;
        if (i == 9 && b > 1)
            return prism_errorf(r->err, "%s: varint longer than 64 bits at byte %zu", r->name,
                                start);
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return prism_errorf(r->err, "%s: varint longer than 10 bytes at byte %zu", r->name, start);
}

static int pb_read_tag(pb_reader *r, uint32_t *field, int *wire)
{
    size_t at = pb_offset(r);
    uint64_t tag;
    if (pb_read_varint(r, &tag) != 0)
        return -1;
    if (tag >> 32 || (tag >> 3) == 0)
        return prism_errorf(r->err, "%s: invalid field tag %llu at byte %zu", r->name,
                            (unsigned long long)tag, at);
    *field = (uint32_t)(tag >> 3);
    *wire = (int)(tag & 7);
    if (*wire > WT_I32 || *wire == 6 || *wire == 7)
        return prism_errorf(r->err, "%s: invalid wire type %d at byte %zu", r->name, *wire, at);
    return 0;
}

/* Reads the length prefix of a length-delimited field and returns a reader
 * over its bytes, advancing r past them. */
static int pb_read_len(pb_reader *r, pb_reader *sub)
{
    size_t at = pb_offset(r);
    uint64_t n;
    if (pb_read_varint(r, &n) != 0)
        return -1;
    if (n > (uint64_t)(r->end - r->p))
        return prism_errorf(r->err,
                            "%s: field at byte %zu claims %llu bytes but only %zu remain "
                            "(truncated or corrupt file)",
                            r->name, at, (unsigned long long)n, (size_t)(r->end - r->p));
    *sub = *r;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

static int pb_skip(pb_reader *r, uint32_t field, int wire, int depth)
{
    pb_reader sub = {0};
    uint64_t v;
    switch (wire) {
    case WT_VARINT:
        return pb_read_varint(r, &v);
    case WT_I64:
    case WT_I32: {
        size_t n = wire == WT_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n)
            return prism_errorf(r->err, "%s: truncated fixed-width field %u at byte %zu",
                                r->name, field, pb_offset(r));
        r->p += n;
        return 0;
    }
    case WT_LEN:
        return pb_read_len(r, &sub);
    case WT_SGROUP:
        if (depth >= SP_PROTO_MAX_DEPTH)
            return prism_errorf(r->err, "%s: groups nested more than %d deep at byte %zu",
                                r->name, SP_PROTO_MAX_DEPTH, pb_offset(r));
        for (;;) {
            uint32_t f = 0;
            int w = 0;
            if (r->p >= r->end)
                return prism_errorf(r->err, "%s: unterminated group %u", r->name, field);
            if (pb_read_tag(r, &f, &w) != 0)
                return -1;
            if (w == WT_EGROUP) {
                if (f != field)
                    return prism_errorf(r->err, "%s: group %u closed by end tag %u", r->name,
                                        field, f);
                return 0;
            }
            if (pb_skip(r, f, w, depth + 1) != 0)
                return -1;
        }
    default: /* WT_EGROUP outside a group */
        return prism_errorf(r->err, "%s: unexpected end-group tag %u at byte %zu", r->name,
                            field, pb_offset(r));
    }
}

static int pb_expect(pb_reader *r, const char *msg, uint32_t field, int wire, int want)
{
    if (wire == want)
        return 0;
    return prism_errorf(r->err, "%s: %s field %u has wire type %d, expected %d (byte %zu)",
                        r->name, msg, field, wire, want, pb_offset(r));
}

static int pb_get_bool(pb_reader *r, const char *msg, uint32_t field, int wire, bool *out)
{
    uint64_t v;
    if (pb_expect(r, msg, field, wire, WT_VARINT) != 0 || pb_read_varint(r, &v) != 0)
        return -1;
    *out = v != 0;
    return 0;
}

static int pb_get_int32(pb_reader *r, const char *msg, uint32_t field, int wire, int32_t *out)
{
    uint64_t v;
    if (pb_expect(r, msg, field, wire, WT_VARINT) != 0 || pb_read_varint(r, &v) != 0)
        return -1;
    *out = (int32_t)(uint32_t)v; /* protobuf truncates int32 varints */
    return 0;
}

static int pb_get_str(pb_reader *r, const char *msg, uint32_t field, int wire, sp_str *out)
{
    pb_reader sub = {0};
    if (pb_expect(r, msg, field, wire, WT_LEN) != 0 || pb_read_len(r, &sub) != 0)
        return -1;
    out->data = (const char *)sub.p;
    out->len = (size_t)(sub.end - sub.p);
    return 0;
}

static int parse_piece(pb_reader *r, sp_piece_def *pc, int32_t index)
{
    static const char msg[] = "SentencePiece";
    pc->str.data = "";
    pc->str.len = 0;
    pc->score = 0.0f;
    pc->type = SP_NORMAL;
    while (r->p < r->end) {
        uint32_t f = 0;
        int w = 0;
        if (pb_read_tag(r, &f, &w) != 0)
            return -1;
        if (f == 1) {
            if (pb_get_str(r, msg, f, w, &pc->str) != 0)
                return -1;
        } else if (f == 2) {
            if (pb_expect(r, msg, f, w, WT_I32) != 0)
                return -1;
            if (r->end - r->p < 4)
                return prism_errorf(r->err, "%s: truncated score of piece %d", r->name, index);
            uint32_t u = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                         (uint32_t)r->p[3] << 24;
            memcpy(&pc->score, &u, 4);
            r->p += 4;
        } else if (f == 3) {
            int32_t t;
            if (pb_get_int32(r, msg, f, w, &t) != 0)
                return -1;
            if (t < SP_NORMAL || t > SP_BYTE)
                return prism_errorf(r->err, "%s: piece %d has unknown type %d", r->name, index,
                                    t);
            pc->type = t;
        } else if (pb_skip(r, f, w, 0) != 0) {
            return -1;
        }
    }
    return 0;
}

static int parse_trainer(pb_reader *r, sp_trainer_spec *t)
{
    static const char msg[] = "TrainerSpec";
    t->present = true;
    while (r->p < r->end) {
        uint32_t f = 0;
        int w = 0;
        if (pb_read_tag(r, &f, &w) != 0)
            return -1;
        int rc = 0;
        switch (f) {
        case 3:
            rc = pb_get_int32(r, msg, f, w, &t->model_type);
            break;
        case 24:
            rc = pb_get_bool(r, msg, f, w, &t->treat_whitespace_as_suffix);
            break;
        case 35:
            rc = pb_get_bool(r, msg, f, w, &t->byte_fallback);
            break;
        case 44:
            rc = pb_get_str(r, msg, f, w, &t->unk_surface);
            t->has_unk_surface = true;
            break;
        default:
            rc = pb_skip(r, f, w, 0);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int parse_normalizer(pb_reader *r, sp_norm_spec *n, const char *msg)
{
    n->present = true;
    while (r->p < r->end) {
        uint32_t f = 0;
        int w = 0;
        if (pb_read_tag(r, &f, &w) != 0)
            return -1;
        int rc = 0;
        switch (f) {
        case 1:
            rc = pb_get_str(r, msg, f, w, &n->name);
            break;
        case 2:
            rc = pb_get_str(r, msg, f, w, &n->charsmap);
            break;
        case 3:
            rc = pb_get_bool(r, msg, f, w, &n->add_dummy_prefix);
            break;
        case 4:
            rc = pb_get_bool(r, msg, f, w, &n->remove_extra_whitespaces);
            break;
        case 5:
            rc = pb_get_bool(r, msg, f, w, &n->escape_whitespaces);
            break;
        default:
            rc = pb_skip(r, f, w, 0);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static void norm_defaults(sp_norm_spec *n)
{
    memset(n, 0, sizeof *n);
    n->name.data = n->charsmap.data = "";
    n->add_dummy_prefix = n->remove_extra_whitespaces = n->escape_whitespaces = true;
}

int sp_proto_parse(sp_proto *out, const uint8_t *data, size_t len, const char *name,
                   prism_error *err)
{
    memset(out, 0, sizeof *out);
    out->trainer.model_type = 1;
    out->trainer.unk_surface.data = " \xE2\x81\x87 ";
    out->trainer.unk_surface.len = 5;
    norm_defaults(&out->normalizer);
    norm_defaults(&out->denormalizer);

    pb_reader r = {data, data, data + len, name, err};
    while (r.p < r.end) {
        uint32_t f = 0;
        int w = 0;
        if (pb_read_tag(&r, &f, &w) != 0)
            goto fail;
        pb_reader sub = {0};
        if (f >= 1 && f <= 5 && f != 4) {
            if (pb_expect(&r, "ModelProto", f, w, WT_LEN) != 0 || pb_read_len(&r, &sub) != 0)
                goto fail;
        }
        int rc = 0;
        switch (f) {
        case 1:
            if (out->n_pieces == out->cap_pieces) {
                if (out->cap_pieces >= INT32_MAX / 2) {
                    prism_errorf(err, "%s: too many pieces", name);
                    goto fail;
                }
                int32_t cap = out->cap_pieces ? out->cap_pieces * 2 : 1024;
                sp_piece_def *np = realloc(out->pieces, (size_t)cap * sizeof *np);
                if (!np) {
                    prism_errorf(err, "%s: out of memory reading pieces", name);
                    goto fail;
                }
                out->pieces = np;
                out->cap_pieces = cap;
            }
            rc = parse_piece(&sub, &out->pieces[out->n_pieces], out->n_pieces);
            out->n_pieces++;
            break;
        case 2:
            rc = parse_trainer(&sub, &out->trainer);
            break;
        case 3:
            rc = parse_normalizer(&sub, &out->normalizer, "NormalizerSpec");
            break;
        case 5:
            rc = parse_normalizer(&sub, &out->denormalizer, "denormalizer NormalizerSpec");
            break;
        default: /* 4 self_test_data and anything unknown */
            rc = pb_skip(&r, f, w, 0);
        }
        if (rc != 0)
            goto fail;
    }
    return 0;
fail:
    sp_proto_free(out);
    return -1;
}

void sp_proto_free(sp_proto *p)
{
    free(p->pieces);
    p->pieces = NULL;
    p->n_pieces = p->cap_pieces = 0;
}

/* openapi_check.c - an OpenAPI 3.0 schema subset validator (see
 * openapi_check.h). */
#include "openapi_check.h"

#include <stdio.h>
#include <string.h>

static json_t *resolve(json_t *doc, json_t *node)
{
    for (int hops = 0; node && hops < 16; hops++) {
        json_t *ref = json_object_get(node, "$ref");
        if (!json_is_string(ref))
            return node;
        const char *r = json_string_value(ref);
        if (strncmp(r, "#/", 2) != 0)
            return NULL;
        json_t *cur = doc;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", r + 2);
        for (char *save, *tok = strtok_r(buf, "/", &save); tok && cur; tok = strtok_r(NULL, "/", &save))
            cur = json_object_get(cur, tok);
        node = cur;
    }
    return node;
}

json_t *openapi_response_schema(json_t *doc, const char *path, const char *method, int status,
                                const char *media_type)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    json_t *op = json_object_get(json_object_get(json_object_get(doc, "paths"), path), method);
    json_t *resp = resolve(doc, json_object_get(json_object_get(op, "responses"), code));
    json_t *content = json_object_get(resp, "content");
    json_t *media = json_object_get(content, media_type);
    return media ? json_object_get(media, "schema") : NULL;
}

static bool type_ok(const char *t, json_t *v)
{
    if (strcmp(t, "object") == 0)
        return json_is_object(v);
    if (strcmp(t, "array") == 0)
        return json_is_array(v);
    if (strcmp(t, "string") == 0)
        return json_is_string(v);
    if (strcmp(t, "integer") == 0)
        return json_is_integer(v);
    if (strcmp(t, "number") == 0)
        return json_is_number(v);
    if (strcmp(t, "boolean") == 0)
        return json_is_boolean(v);
    return false;
}

static bool check(json_t *doc, json_t *schema, json_t *v, const char *where, char *why, size_t n)
{
    schema = resolve(doc, schema);
    if (!schema) {
        snprintf(why, n, "%s: unresolvable $ref", where);
        return false;
    }
    if (json_is_null(v)) {
        if (json_is_true(json_object_get(schema, "nullable")) || !json_object_get(schema, "type"))
            return true;
        snprintf(why, n, "%s: null where the schema is not nullable", where);
        return false;
    }
    json_t *one = json_object_get(schema, "oneOf");
    if (json_is_array(one)) {
        int matched = 0;
        size_t i;
        json_t *alt;
        char sub[256];
        json_array_foreach(one, i, alt) matched += check(doc, alt, v, where, sub, sizeof sub);
        if (matched != 1) {
            snprintf(why, n, "%s: matches %d of the oneOf alternatives", where, matched);
            return false;
        }
        return true;
    }
    json_t *type = json_object_get(schema, "type");
    if (json_is_string(type) && !type_ok(json_string_value(type), v)) {
        snprintf(why, n, "%s: not of type %s", where, json_string_value(type));
        return false;
    }
    json_t *en = json_object_get(schema, "enum");
    if (json_is_array(en)) {
        bool found = false;
        size_t i;
        json_t *e;
        json_array_foreach(en, i, e) found |= json_equal(e, v);
        if (!found) {
            snprintf(why, n, "%s: not one of the enum values", where);
            return false;
        }
    }
    if (json_is_number(v)) {
        double x = json_number_value(v);
        json_t *mn = json_object_get(schema, "minimum"), *mx = json_object_get(schema, "maximum");
        if ((mn && x < json_number_value(mn)) || (mx && x > json_number_value(mx))) {
            snprintf(why, n, "%s: %g outside [minimum, maximum]", where, x);
            return false;
        }
    }
    if (json_is_array(v)) {
        json_t *mi = json_object_get(schema, "minItems");
        if (mi && (json_int_t)json_array_size(v) < json_integer_value(mi)) {
            snprintf(why, n, "%s: fewer than minItems", where);
            return false;
        }
        json_t *items = json_object_get(schema, "items");
        size_t i;
        json_t *it;
        if (items)
            json_array_foreach(v, i, it) {
                char w[256];
                snprintf(w, sizeof w, "%s[%zu]", where, i);
                if (!check(doc, items, it, w, why, n))
                    return false;
            }
    }
    if (json_is_object(v)) {
        json_t *props = json_object_get(schema, "properties");
        json_t *req = json_object_get(schema, "required");
        size_t i;
        json_t *r;
        json_array_foreach(req, i, r) {
            if (!json_object_get(v, json_string_value(r))) {
                snprintf(why, n, "%s: required property '%s' missing", where, json_string_value(r));
                return false;
            }
        }
        const char *key;
        json_t *val;
        json_object_foreach(v, key, val) {
            json_t *ps = json_object_get(props, key);
            char w[256];
            snprintf(w, sizeof w, "%s.%s", where, key);
            if (!ps) {
                if (json_is_false(json_object_get(schema, "additionalProperties"))) {
                    snprintf(why, n, "%s: property not in the schema", w);
                    return false;
                }
                continue;
            }
            if (!check(doc, ps, val, w, why, n))
                return false;
        }
    }
    return true;
}

bool openapi_validate(json_t *doc, json_t *schema, json_t *value, char *why, size_t why_len)
{
    return check(doc, schema, value, "$", why, why_len);
}

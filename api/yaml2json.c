/* yaml2json.c - build tool: api/openapi.yaml -> JSON, embedded in prism.
 *
 *   prism_yaml2json IN.yaml OUT.json OUT.c
 *
 * Writes the document as JSON (OUT.json, served as /openapi.json) and as a
 * C file defining `api_openapi_json` / `api_openapi_json_len` (the same
 * bytes). Scalars are typed by YAML 1.2's core schema: plain null/~,
 * true/false, integers and floats become JSON null, booleans and numbers;
 * quoted and block scalars stay strings. Aliases are refused (the OpenAPI
 * file does not use them). Runs at build time only.
 */
#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static bool matches(const char *pattern, const char *s)
{
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB))
        return false;
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

static json_t *scalar(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(v, n->data.scalar.length);
    if (matches("^(null|Null|NULL|~|)$", v))
        return json_null();
    if (matches("^(true|True|TRUE)$", v))
        return json_true();
    if (matches("^(false|False|FALSE)$", v))
        return json_false();
    if (matches("^[-+]?[0-9]+$", v))
        return json_integer(strtoll(v, NULL, 10));
    if (matches("^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$", v))
        return json_real(strtod(v, NULL));
    return json_stringn(v, n->data.scalar.length);
}

static json_t *convert(yaml_document_t *doc, yaml_node_t *n, int depth)
{
    if (!n || depth > 64)
        return NULL;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return scalar(n);
    case YAML_SEQUENCE_NODE: {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            json_t *v = convert(doc, yaml_document_get_node(doc, *it), depth + 1);
            if (!v || json_array_append_new(a, v))
                return json_decref(a), NULL;
        }
        return a;
    }
    case YAML_MAPPING_NODE: {
        json_t *o = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (!k || k->type != YAML_SCALAR_NODE) {
                fprintf(stderr, "yaml2json: a mapping key is not a scalar (line %zu)\n",
                        k ? k->start_mark.line + 1 : 0);
                return json_decref(o), NULL;
            }
            json_t *v = convert(doc, yaml_document_get_node(doc, p->value), depth + 1);
            if (!v || json_object_set_new(o, (const char *)k->data.scalar.value, v))
                return json_decref(o), NULL;
        }
        return o;
    }
    default:
        return NULL;
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: prism_yaml2json IN.yaml OUT.json OUT.c\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, in);
    if (!yaml_parser_load(&parser, &doc)) {
        fprintf(stderr, "%s:%zu: %s\n", argv[1], parser.problem_mark.line + 1,
                parser.problem ? parser.problem : "YAML error");
        return 1;
    }
    json_t *root = convert(&doc, yaml_document_get_root_node(&doc), 0);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(in);
    if (!root) {
        fprintf(stderr, "%s: cannot convert (aliases or a malformed document)\n", argv[1]);
        return 1;
    }
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (!text)
        return 1;
    size_t n = strlen(text);
    FILE *j = fopen(argv[2], "wb"), *c = fopen(argv[3], "wb");
    if (!j || !c) {
        perror("yaml2json: output");
        return 1;
    }
    fwrite(text, 1, n, j);
    fputc('\n', j);
    fprintf(c, "/* generated from api/openapi.yaml by prism_yaml2json: do not edit */\n"
               "#include <stddef.h>\nconst char api_openapi_json[] = {");
    for (size_t i = 0; i < n; i++)
        fprintf(c, "%s%d,", i % 24 ? "" : "\n", (unsigned char)text[i]);
    fprintf(c, "10,0};\nconst size_t api_openapi_json_len = %zu;\n", n + 1);
    fclose(j);
    fclose(c);
    free(text);
    return 0;
}

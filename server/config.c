/* config.c - the settings table of `prism serve` (see config.h).
 *
 * Adding a setting is adding a row: the flag name, the field, the type, the
 * default (as text, parsed like any other value), the range or choices and
 * one line of help. The environment variable is PRISM_ + the flag name in
 * upper case with '-' as '_'.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* CFG_SIZE: bytes, K/M/G are powers of 1024; CFG_COUNT: K/M/G are 10^3, 10^6, 10^9 */
typedef enum cfg_type { CFG_STR, CFG_INT, CFG_NUM, CFG_SIZE, CFG_COUNT, CFG_CHOICE } cfg_type;

typedef struct cfg_option {
    const char *name;    /* flag without "--" */
    cfg_type type;
    size_t offset;       /* into srv_config */
    const char *def;     /* default, as text */
    double min, max;     /* CFG_INT / CFG_NUM / CFG_SIZE */
    const char *choices; /* CFG_CHOICE: "a|b|c" */
    const char *help;
    bool secret;         /* never printed */
} cfg_option;

#define F(field) offsetof(srv_config, field)

static const cfg_option options[] = {
    {"model", CFG_STR, F(model), "", 0, 0, NULL,
     "model directory (hub format: config.json, model.safetensors, spiece.model, "
     "preprocessor_config.json)", false},
    {"model-name", CFG_STR, F(model_name), "", 0, 0, NULL,
     "model id in responses and /v1/models (default: the directory's name)", false},
    {"generative-model", CFG_STR, F(generative_model), "", 0, 0, NULL,
     "a pali3 model directory served beside the SigLIP --model in the same process "
     "(caption, vqa, chat); the engine worker alternates embedding batches with decode steps",
     false},
    {"host", CFG_STR, F(host), "127.0.0.1", 0, 0, NULL,
     "address to listen on (0.0.0.0 for every interface)", false},
    {"port", CFG_INT, F(port), "8080", 0, 65535, NULL, "TCP port (0: any free port, logged)",
     false},
    {"device", CFG_CHOICE, F(device), "auto", 0, 0, "auto|cpu|cuda",
     "compute device: auto takes CUDA when this build has it and a GPU is present, else the "
     "CPU (logged at start)", false},
    {"dtype", CFG_CHOICE, F(dtype), "auto", 0, 0, "auto|bf16|f16|f32",
     "matrix weights: auto = bf16 on a GPU, f32 (exact) on the CPU; bf16 on the CPU halves "
     "weight traffic; f16 is GPU only", false},
    {"threads", CFG_INT, F(threads), "0", 0, 1024, NULL, "engine threads (0: all cores)", false},
    {"prep-threads", CFG_INT, F(prep_threads), "2", 1, 256, NULL,
     "preprocessing workers (parse, decode, resize, tokenize, serialise)", false},
    {"http-threads", CFG_INT, F(http_threads), "1", 1, 64, NULL,
     "HTTP event-loop threads (waiting requests hold none)", false},
    {"max-batch-image", CFG_INT, F(max_batch_image), "32", 1, 4096, NULL,
     "images run together in one engine batch", false},
    {"max-batch-text", CFG_INT, F(max_batch_text), "64", 1, 4096, NULL,
     "texts run together in one engine batch", false},
    {"max-delay-ms", CFG_NUM, F(max_delay_ms), "0.5", 0, 10000, NULL,
     "a batch leaves when full or when its oldest item has waited this long", false},
    {"max-queue", CFG_INT, F(max_queue), "1024", 1, 1000000, NULL,
     "items admitted per task and not yet batched; more answers 503", false},
    {"request-timeout", CFG_NUM, F(request_timeout_s), "30", 0.001, 86400, NULL,
     "seconds a request may take before it is answered 504 and its queued items dropped",
     false},
    {"body-limit", CFG_SIZE, F(body_limit), "32M", 1024, 4294967296.0, NULL,
     "largest request body in bytes (K, M, G suffixes); more answers 413", false},
    {"header-timeout", CFG_NUM, F(header_timeout_s), "10", 0.1, 3600, NULL,
     "seconds from accepting a connection (or the end of its last response) until the request "
     "headers are complete; past it the connection is closed without an answer", false},
    {"body-timeout", CFG_NUM, F(body_timeout_s), "60", 0.1, 86400, NULL,
     "seconds from the end of the headers until the whole body has arrived; past it the client "
     "gets 408 body_timeout (when its socket takes it) and the connection is closed", false},
    {"max-connections", CFG_INT, F(max_connections), "4096", 1, 1000000, NULL,
     "open HTTP connections in all; more are closed as soon as they are accepted (keep it "
     "below the open-file limit)", false},
    {"max-connections-per-ip", CFG_INT, F(max_connections_per_ip), "1024", 1, 1000000, NULL,
     "open HTTP connections from one client address; more are closed as soon as they are "
     "accepted", false},
    {"body-budget", CFG_SIZE, F(body_budget), "512M", 1024, 1099511627776.0, NULL,
     "bytes of request bodies held in memory at once, all connections together (from the "
     "first byte until parsed); a body that does not fit answers 503 server_busy with "
     "Retry-After; at least --body-limit", false},
    {"max-image-pixels", CFG_COUNT, F(max_image_pixels), "25M", 1, 4294967296.0, NULL,
     "largest image (width x height, read from its header before decoding); more answers 413",
     false},
    {"max-items", CFG_INT, F(max_items), "256", 1, 100000, NULL,
     "images + texts in one request; more answers 413", false},
    {"gen-max-new-tokens", CFG_INT, F(gen_max_new_tokens), "128", 1, 32768, NULL,
     "pali3: largest max_new_tokens a request may ask for; more answers 413 (the default "
     "per request is 32, or this when smaller)", false},
    {"gen-max-beams", CFG_INT, F(gen_max_beams), "8", 1, 4096, NULL,
     "pali3: largest num_beams a request may ask for; more answers 413", false},
    {"gen-max-sequences", CFG_INT, F(gen_max_sequences), "16", 1, 4096, NULL,
     "pali3: decoder sequences (beams count one each) in one step; more requests wait their "
     "turn", false},
    {"gen-max-prompt-tokens", CFG_INT, F(gen_max_prompt_tokens), "64", 1, 32768, NULL,
     "pali3: prompt tokens per request (prefix, question and </s>); a longer prompt answers "
     "400 prompt_too_long", false},
    {"gen-max-batch", CFG_INT, F(gen_max_batch), "8", 1, 1024, NULL,
     "pali3: requests started together (vision tower + encoder in one batch)", false},
    {"label-cache", CFG_INT, F(label_cache), "4096", 0, 10000000, NULL,
     "classify label embeddings kept in an LRU cache (0: no cache)", false},
    {"label-cache-bytes", CFG_SIZE, F(label_cache_bytes), "64M", 0, 1099511627776.0, NULL,
     "memory the label cache may hold (label texts + embeddings; least recently used entries "
     "go first; a label larger than this is not cached)", false},
    {"max-text-bytes", CFG_SIZE, F(max_text_bytes), "1M", 16, 4294967296.0, NULL,
     "bytes of one text, label (after the template) or prompt; more answers 413 text_too_long "
     "(only the start that can produce the kept token ids is tokenized)", false},
    {"max-template-bytes", CFG_SIZE, F(max_template_bytes), "1K", 2, 1048576, NULL,
     "bytes of a classify template; more answers 413 template_too_long (the labels it expands "
     "to are bounded by --max-text-bytes each and --body-limit in all)", false},
    {"api-key", CFG_STR, F(api_key), "", 0, 0, NULL,
     "require 'Authorization: Bearer KEY' on /v1/* (health, readiness, metrics stay open)", true},
    {"log-format", CFG_CHOICE, F(log_format), "text", 0, 0, "text|json",
     "log lines on stderr: text (key=value) or json (one object per line)", false},
    {"log-level", CFG_CHOICE, F(log_level), "info", 0, 0, "debug|info|warn|error",
     "least severe level logged (each request is one info line)", false},
    {"test-batch-sleep-ms", CFG_NUM, F(test_batch_sleep_ms), "0", 0, 60000, NULL,
     "testing only: the engine worker sleeps this long before each batch (pali3: decode step)", false},
    {"test-fault", CFG_STR, F(test_fault), "", 0, 0, NULL,
     "testing only: OP:N[:nomem|fail|lost] - after warm-up, the N-th call of backend op OP "
     "fails once (nomem: as if device memory ran out; lost: and every op after it, as a "
     "sticky CUDA error)", false},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

static void env_name(const cfg_option *o, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "PRISM_");
    for (const char *p = o->name; *p && k + 1 < n; p++)
        buf[k++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    buf[k] = '\0';
}

static bool choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t k = bar ? (size_t)(bar - p) : strlen(p);
        if (k == n && strncmp(p, v, n) == 0)
            return true;
        p += k + (bar ? 1 : 0);
    }
    return false;
}

/* Parses v into the option's field; writes a reason into msg on failure. */
static int set_value(srv_config *cfg, const cfg_option *o, const char *v, char *msg,
                     size_t msg_len)
{
    char *field = (char *)cfg + o->offset;
    char *end;
    errno = 0;
    switch (o->type) {
    case CFG_STR:
        *(const char **)field = v;
        return 0;
    case CFG_CHOICE:
        if (!choice_ok(o->choices, v))
            goto bad;
        *(const char **)field = v;
        return 0;
    case CFG_INT: {
        long long x = strtoll(v, &end, 10);
        if (*v == '\0' || *end || errno || x < o->min || x > o->max)
            goto bad;
        *(long long *)field = x;
        return 0;
    }
    case CFG_SIZE:
    case CFG_COUNT: {
        double x = strtod(v, &end);
        const double k = o->type == CFG_SIZE ? 1024 : 1000;
        if (*end == 'K' || *end == 'k')
            x *= k, end++;
        else if (*end == 'M' || *end == 'm')
            x *= k * k, end++;
        else if (*end == 'G' || *end == 'g')
            x *= k * k * k, end++;
        if (*v == '\0' || *end || errno || !(x >= o->min && x <= o->max))
            goto bad;
        *(long long *)field = (long long)x;
        return 0;
    }
    case CFG_NUM: {
        double x = strtod(v, &end);
        if (*v == '\0' || *end || errno || !(x >= o->min && x <= o->max))
            goto bad;
        *(double *)field = x;
        return 0;
    }
    }
bad:
    if (o->type == CFG_CHOICE)
        snprintf(msg, msg_len, "must be one of %s, not '%s'", o->choices, v);
    else if (o->type == CFG_INT)
        snprintf(msg, msg_len, "must be an integer in [%.0f, %.0f], not '%s'", o->min, o->max, v);
    else if (o->type == CFG_SIZE || o->type == CFG_COUNT)
        snprintf(msg, msg_len, "must be a number in [%.0f, %.0f] (K, M, G suffixes), not '%s'",
                 o->min, o->max, v);
    else
        snprintf(msg, msg_len, "must be a number in [%g, %g], not '%s'", o->min, o->max, v);
    return -1;
}

int config_parse(srv_config *cfg, int argc, char **argv, int first, FILE *out, char *msg,
                 size_t msg_len)
{
    char why[256], env[64];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (set_value(cfg, &options[i], options[i].def, why, sizeof why)) {
            snprintf(msg, msg_len, "default of --%s %s", options[i].name, why);
            return -1;
        }
    for (size_t i = 0; i < N_OPTIONS; i++) {
        env_name(&options[i], env, sizeof env);
        const char *v = getenv(env);
        if (v && set_value(cfg, &options[i], v, why, sizeof why)) {
            snprintf(msg, msg_len, "%s %s", env, why);
            return -1;
        }
    }
    for (int a = first; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            config_print_help(out);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(msg, msg_len, "unexpected argument '%s'", arg);
            return -1;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nn = eq ? (size_t)(eq - name) : strlen(name);
        const cfg_option *o = NULL;
        for (size_t i = 0; i < N_OPTIONS; i++)
            if (strlen(options[i].name) == nn && strncmp(options[i].name, name, nn) == 0)
                o = &options[i];
        if (!o) {
            snprintf(msg, msg_len, "unknown option '%.*s' (see prism serve --help)", (int)nn + 2,
                     arg);
            return -1;
        }
        const char *v = eq ? eq + 1 : (a + 1 < argc ? argv[++a] : NULL);
        if (!v) {
            snprintf(msg, msg_len, "--%s needs a value", o->name);
            return -1;
        }
        if (set_value(cfg, o, v, why, sizeof why)) {
            snprintf(msg, msg_len, "--%s %s", o->name, why);
            return -1;
        }
    }
    if (!cfg->model[0]) {
        snprintf(msg, msg_len, "--model DIR (or PRISM_MODEL) is required");
        return -1;
    }
    return 0;
}

void config_print_help(FILE *out)
{
    fputs("usage: prism serve --model DIR [options]\n"
          "\n"
          "Serves the model over HTTP (see docs/api.md). Every option can also be set by\n"
          "the environment variable shown; a flag wins over the environment.\n\n",
          out);
    char env[64], flag[64];
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cfg_option *o = &options[i];
        env_name(o, env, sizeof env);
        const char *arg = o->type == CFG_STR ? (o->secret ? "KEY" : "TEXT")
                          : o->type == CFG_CHOICE ? o->choices
                          : o->type == CFG_SIZE ? "BYTES"
                          : o->type == CFG_COUNT ? "COUNT"
                          : o->type == CFG_INT ? "N" : "X";
        snprintf(flag, sizeof flag, "--%s %s", o->name, arg);
        fprintf(out, "  %-34s %s\n  %-34s env %s, default %s\n", flag, o->help, "", env,
                o->def[0] ? o->def : "(none)");
    }
}

void config_describe(const srv_config *cfg, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_OPTIONS && k + 1 < n; i++) {
        const cfg_option *o = &options[i];
        const char *field = (const char *)cfg + o->offset;
        char v[300];
        if (o->type == CFG_STR || o->type == CFG_CHOICE)
            snprintf(v, sizeof v, "%s", o->secret ? (**(const char *const *)field ? "(set)" : "")
                                                  : *(const char *const *)field);
        else if (o->type == CFG_NUM)
            snprintf(v, sizeof v, "%g", *(const double *)field);
        else
            snprintf(v, sizeof v, "%lld", *(const long long *)field);
        int w = snprintf(buf + k, n - k, "%s%s=%s", k ? " " : "", o->name, v);
        if (w < 0)
            break;
        k += (size_t)w;
    }
}

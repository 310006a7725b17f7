/* config.c - the settings table of `prism serve` (see config.h).
 *
 * Adding a setting is adding a row: the flag name, the field, the type, the
 * default (as text, parsed like any other value), the range or choices and
 * one line of help. The environment variable is PRISM_ + the flag name in
 * upper case with '-' as '_'. Rows marked .testing exist for the test suite
 * (fault injection, slow batches): --help lists them last under their own
 * heading and the `starting` log line leaves them out. Parsing, help and
 * the log line come from the generic option table (opts.h).
 */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "opts.h"

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

static const opt_table table = {
    .prog = "prism serve",
    .usage = "usage: prism serve --model DIR [options]\n"
             "\n"
             "Serves the model over HTTP (see docs/api.md). Every option can also be set by\n"
             "the environment variable shown; a flag wins over the environment.\n\n",
    .rows = options,
    .n_rows = N_OPTIONS,
    .env_all = true,
};

int config_parse(srv_config *cfg, int argc, char **argv, int first, FILE *out, char *msg,
                 size_t msg_len)
{
    memset(cfg, 0, sizeof *cfg);
    return opts_parse(&table, cfg, argc, argv, first, out, msg, msg_len);
}

void config_print_help(FILE *out)
{
    opts_print_help(&table, out);
}

void config_describe(const srv_config *cfg, char *buf, size_t n)
{
    opts_describe(&table, cfg, buf, n);
}

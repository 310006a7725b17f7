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

static const opt_spec options[] = {
    {"model", OPT_STR, F(model), "", 0, 0, NULL,
     .help = "model directory (hub format: config.json, model.safetensors, spiece.model, "
     "processor_config.json or preprocessor_config.json)", .required = true, .arg = "DIR"},
    {"model-name", OPT_STR, F(model_name), "", 0, 0, NULL,
     .help = "model id in responses and /v1/models (default: the directory's name)"},
    {"generative-model", OPT_STR, F(generative_model), "", 0, 0, NULL,
     .help = "a pali3 model directory served beside the SigLIP --model in the same process "
     "(caption, vqa, chat); the engine worker alternates embedding batches with decode steps"},
    {"host", OPT_STR, F(host), "127.0.0.1", 0, 0, NULL,
     .help = "address to listen on (0.0.0.0 for every interface)"},
    {"port", OPT_INT, F(port), "8080", 0, 65535, NULL,
     .help = "TCP port (0: any free port, logged)"},
    {"device", OPT_CHOICE, F(device), "auto", 0, 0, "auto|cpu|cuda",
     .help = "compute device: auto takes CUDA when this build has it and a GPU is present, else "
     "the CPU (logged at start)"},
    {"dtype", OPT_CHOICE, F(dtype), "auto", 0, 0, "auto|bf16|f16|f32|int8",
     .help = "matmul arithmetic: auto = bf16 on a GPU, f32 (exact) on the CPU; bf16 on the CPU "
     "computes in BF16 where it has AVX512-BF16 (else BF16 weights, f32 arithmetic); int8 is "
     "CPU only (AVX512-VNNI); f16 is GPU only"},
    {"threads", OPT_INT, F(threads), "0", 0, 1024, NULL, .help = "engine threads (0: all cores)"},
    {"prep-threads", OPT_INT, F(prep_threads), "2", 1, 256, NULL,
     .help = "preprocessing workers (parse, decode, resize, tokenize, serialise)"},
    {"http-threads", OPT_INT, F(http_threads), "1", 1, 64, NULL,
     .help = "HTTP event-loop threads (waiting requests hold none)"},
    {"max-batch-image", OPT_INT, F(max_batch_image), "32", 1, 4096, NULL,
     .help = "images run together in one engine batch"},
    {"max-batch-text", OPT_INT, F(max_batch_text), "64", 1, 4096, NULL,
     .help = "texts run together in one engine batch"},
    {"max-delay-ms", OPT_NUM, F(max_delay_ms), "0.5", 0, 10000, NULL,
     .help = "a batch leaves when full or when its oldest item has waited this long"},
    {"max-queue", OPT_INT, F(max_queue), "1024", 1, 1000000, NULL,
     .help = "items admitted per task and not yet batched; more answers 503"},
    {"request-timeout", OPT_NUM, F(request_timeout_s), "30", 0.001, 86400, NULL,
     .help = "seconds a request may take before it is answered 504 and its queued items dropped"},
    {"body-limit", OPT_SIZE, F(body_limit), "32M", 1024, 4294967296.0, NULL,
     .help = "largest request body in bytes (K, M, G suffixes); more answers 413"},
    {"header-timeout", OPT_NUM, F(header_timeout_s), "10", 0.1, 3600, NULL,
     .help = "seconds from accepting a connection (or the end of its last response) until the "
     "request headers are complete; past it the connection is closed without an answer"},
    {"body-timeout", OPT_NUM, F(body_timeout_s), "60", 0.1, 86400, NULL,
     .help = "seconds from the end of the headers until the whole body has arrived; past it the "
     "client gets 408 body_timeout (when its socket takes it) and the connection is closed"},
    {"max-connections", OPT_INT, F(max_connections), "4096", 1, 1000000, NULL,
     .help = "open HTTP connections in all; more are closed as soon as they are accepted (keep it "
     "below the open-file limit)"},
    {"max-connections-per-ip", OPT_INT, F(max_connections_per_ip), "1024", 1, 1000000, NULL,
     .help = "open HTTP connections from one client address; more are closed as soon as they are "
     "accepted"},
    {"body-budget", OPT_SIZE, F(body_budget), "512M", 1024, 1099511627776.0, NULL,
     .help = "bytes of request bodies held in memory at once, all connections together (from the "
     "first byte until parsed); a body that does not fit answers 503 server_busy with Retry-After; "
     "at least --body-limit"},
    {"max-image-pixels", OPT_COUNT, F(max_image_pixels), "25M", 1, 4294967296.0, NULL,
     .help = "largest image (width x height, read from its header before decoding); more answers "
     "413"},
    {"max-num-patches", OPT_INT, F(max_num_patches), "1024", 1, 16384, NULL,
     .help = "SigLIP 2 NaFlex models: largest max_num_patches a request may ask for (the default "
     "is the checkpoint's, 256); more answers 413. A queued image holds up to this many patch "
     "rows"},
    {"max-items", OPT_INT, F(max_items), "256", 1, 100000, NULL,
     .help = "images + texts in one request; more answers 413"},
    {"gen-max-new-tokens", OPT_INT, F(gen_max_new_tokens), "128", 1, 32768, NULL,
     .help = "pali3: largest max_new_tokens a request may ask for; more answers 413 (the default "
     "per request is 32, or this when smaller)"},
    {"gen-max-beams", OPT_INT, F(gen_max_beams), "8", 1, 4096, NULL,
     .help = "pali3: largest num_beams a request may ask for; more answers 413"},
    {"gen-max-sequences", OPT_INT, F(gen_max_sequences), "16", 1, 4096, NULL,
     .help = "pali3: decoder sequences (beams count one each) in one step; more requests wait "
     "their turn"},
    {"gen-max-prompt-tokens", OPT_INT, F(gen_max_prompt_tokens), "64", 1, 32768, NULL,
     .help = "pali3: prompt tokens per request (prefix, question and </s>); a longer prompt "
     "answers 400 prompt_too_long"},
    {"gen-max-batch", OPT_INT, F(gen_max_batch), "8", 1, 1024, NULL,
     .help = "pali3: requests started together (vision tower + encoder in one batch)"},
    {"label-cache", OPT_INT, F(label_cache), "4096", 0, 10000000, NULL,
     .help = "classify label embeddings kept in an LRU cache (0: no cache)"},
    {"label-cache-bytes", OPT_SIZE, F(label_cache_bytes), "64M", 0, 1099511627776.0, NULL,
     .help = "memory the label cache may hold (label texts + embeddings; least recently used "
     "entries go first; a label larger than this is not cached)"},
    {"max-text-bytes", OPT_SIZE, F(max_text_bytes), "1M", 16, 4294967296.0, NULL,
     .help = "bytes of one text, label (after the template) or prompt; more answers 413 "
     "text_too_long (only the start that can produce the kept token ids is tokenized)"},
    {"max-template-bytes", OPT_SIZE, F(max_template_bytes), "1K", 2, 1048576, NULL,
     .help = "bytes of a classify template; more answers 413 template_too_long (the labels it "
     "expands to are bounded by --max-text-bytes each and --body-limit in all)"},
    {"memory-limit", OPT_SIZE, F(memory_limit), "0", 0, 1125899906842624.0, NULL,
     .help = "refuse at start checkpoints whose weight files (--model and --generative-model "
     "together) are larger than this; 0: the container's limit (cgroup memory.max) or else "
     "the machine's RAM"},
    {"api-key", OPT_STR, F(api_key), "", 0, 0, NULL,
     .help = "require 'Authorization: Bearer KEY' on /v1/* (health, readiness, metrics stay open)",
     .secret = true},
    {"cors-origin", OPT_STR, F(cors_origin), "", 0, 0, NULL,
     .help = "let web pages from these origins call /v1/*: a comma-separated list of "
     "scheme://host[:port] (at most 4096 bytes), or * for any (default: none, no CORS)"},
    {"log-format", OPT_CHOICE, F(log_format), "text", 0, 0, "text|json",
     .help = "log lines on stderr: text (key=value) or json (one object per line)"},
    {"log-level", OPT_CHOICE, F(log_level), "info", 0, 0, "debug|info|warn|error",
     .help = "least severe level logged (each request is one info line)"},
    {"test-batch-sleep-ms", OPT_NUM, F(test_batch_sleep_ms), "0", 0, 60000, NULL,
     .help = "the engine worker sleeps this long before each batch (pali3: decode step)",
     .testing = true},
    {"test-fault", OPT_STR, F(test_fault), "", 0, 0, NULL,
     .help = "OP:N[:nomem|fail|lost] - after warm-up, the N-th call of backend op OP fails once "
     "(nomem: as if device memory ran out; lost: and every op after it, as a sticky CUDA error)",
     .testing = true},
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

/* config.h - `prism serve` settings: one declarative table.
 *
 * Every setting is a row of config.c's table: its flag (--max-batch-image),
 * its environment variable (PRISM_MAX_BATCH_IMAGE, derived from the flag),
 * its type, default, allowed range or choices, and help text. Defaults are
 * applied first, then the environment, then the command line (flags win).
 * `prism serve --help` prints the table.
 */
#ifndef PRISM_SERVER_CONFIG_H
#define PRISM_SERVER_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

typedef struct srv_config {
    const char *model;       /* model directory (required) */
    const char *model_name;  /* id in responses; "" = the directory's base name */
    const char *generative_model; /* optional pali3 directory served beside a SigLIP model */
    const char *host;
    long long port;
    const char *device;      /* auto | cpu | cuda */
    const char *dtype;       /* auto | bf16 | f16 | f32: matrix weights (device.h) */
    long long threads;       /* engine (OpenMP/BLAS) threads; 0 = all cores */
    long long prep_threads;  /* preprocessing workers */
    long long http_threads;  /* libmicrohttpd polling threads */
    long long max_batch_image;
    long long max_batch_text;
    double max_delay_ms;     /* a batch leaves when its oldest item waited this long */
    long long max_queue;     /* items admitted per task and not yet batched */
    double request_timeout_s;
    long long body_limit;    /* bytes */
    /* HTTP connection limits (http.c) */
    double header_timeout_s; /* accept (or end of the last response) to headers complete */
    double body_timeout_s;   /* headers complete to body complete */
    long long max_connections;
    long long max_connections_per_ip;
    long long body_budget;   /* bytes of request bodies held at once, all connections */
    long long max_image_pixels;
    long long max_num_patches; /* NaFlex: per-request max_num_patches at most */
    long long max_items;     /* images + texts per request */
    long long gen_max_new_tokens;    /* pali3 limits (pali_limits) */
    long long gen_max_beams;
    long long gen_max_sequences;
    long long gen_max_prompt_tokens;
    long long gen_max_batch;
    long long label_cache;   /* classify label embeddings kept (LRU); 0 = none */
    long long label_cache_bytes; /* and the bytes they may hold (keys + vectors) */
    long long max_text_bytes;    /* bytes of one text (after a classify template) */
    long long max_template_bytes; /* bytes of a classify template */
    long long memory_limit;  /* bytes the checkpoints may take; 0 = the cgroup's or the RAM */
    const char *api_key;     /* "" = no authentication */
    const char *cors_origin; /* "" = no CORS; "*" or comma-separated origins (http.c) */
    const char *log_format;  /* json | text */
    const char *log_level;   /* debug | info | warn | error */
    double test_batch_sleep_ms; /* testing: the engine worker sleeps before each batch */
    const char *test_fault;     /* testing: backend_fault.h spec, "" = none */
} srv_config;

/* Fills cfg from defaults, the environment and argv[first..argc). Returns 0,
 * 1 when --help was given (help printed to out), or -1 with a message in
 * msg. */
int config_parse(srv_config *cfg, int argc, char **argv, int first, FILE *out, char *msg,
                 size_t msg_len);

/* The help text: every option with its environment variable and default. */
void config_print_help(FILE *out);

/* Writes the effective settings as key=value pairs (the API key hidden,
 * testing-only settings left out), for the startup log line. */
void config_describe(const srv_config *cfg, char *buf, size_t n);

#endif

/* metrics.h - the server's Prometheus metrics.
 *
 * Counters and histograms are updated by the HTTP threads, the
 * preprocessing workers and the engine worker under one mutex (each update
 * is a few additions); gauges that mirror other state (queue depths, items
 * in flight) are passed in when the exposition is rendered. The names and
 * labels are listed in docs/api.md ("Metrics").
 */
#ifndef PRISM_SERVER_METRICS_H
#define PRISM_SERVER_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_buf.h"

/* Endpoints as metric labels (a closed set: unknown paths count as "other"). */
typedef enum metrics_endpoint {
    EP_EMBED, EP_SCORE, EP_CLASSIFY, EP_EMBEDDINGS, EP_CAPTION, EP_VQA, EP_CHAT, EP_DETECT,
    EP_OCR,
    EP_MODELS, EP_HEALTHZ, EP_READYZ, EP_METRICS, EP_OPENAPI, EP_WEB, EP_OTHER, EP_COUNT
} metrics_endpoint;

extern const char *const metrics_endpoint_names[EP_COUNT];

enum { METRICS_TASKS = 2 }; /* 0: image-embed, 1: text-embed */
extern const char *const metrics_task_names[METRICS_TASKS];

#define METRICS_MAX_BUCKETS 20
#define METRICS_STATUSES 16

typedef struct metrics_hist {
    const double *bounds; /* upper bounds, ascending; +Inf implied */
    int n_bounds;
    uint64_t counts[METRICS_MAX_BUCKETS + 1]; /* per bucket, not cumulative */
    double sum;
    uint64_t count;
} metrics_hist;

typedef struct metrics {
    pthread_mutex_t mu;
    int statuses[METRICS_STATUSES]; /* status codes seen, in order of first use */
    int n_statuses;
    uint64_t requests[EP_COUNT][METRICS_STATUSES];
    metrics_hist request_duration[EP_COUNT];
    metrics_hist queue_wait[METRICS_TASKS];
    metrics_hist inference[METRICS_TASKS];
    metrics_hist batch_size[METRICS_TASKS];
    metrics_hist preprocess[METRICS_TASKS]; /* per item: decode+resize / tokenize */
    uint64_t images_decoded;
    uint64_t label_cache_hits, label_cache_misses;
    double model_load_seconds;
    /* generation (a pali3 model) */
    uint64_t generated_tokens;
    metrics_hist ttft;        /* arrival -> first generated token */
    metrics_hist decode_step; /* one pali_gen_step for the running batch */
    int running_sequences;    /* gauge, beams included */
} metrics;

/* Gauges read at render time. */
typedef struct metrics_gauges {
    long queue_depth[METRICS_TASKS];
    long prep_queue_depth;
    long items_in_flight;
    long requests_in_flight;
    long label_cache_entries;
    long label_cache_bytes;
    int ready;
    /* the backend's memory_info, when it has one and it answered */
    bool have_backend_memory;
    size_t backend_held, device_total, device_free;
} metrics_gauges;

void metrics_init(metrics *m);
void metrics_destroy(metrics *m);
void metrics_request(metrics *m, metrics_endpoint ep, int status, double seconds);
void metrics_batch(metrics *m, int task, int size, double inference_s, const double *queue_waits);
void metrics_preprocess(metrics *m, int task, double seconds, int images_decoded);
/* After each engine iteration of a pali3 server: the step's wall time (<0:
 * no step ran), tokens it produced, sequences running now. */
void metrics_gen_step(metrics *m, double step_s, uint64_t tokens, int running_sequences);
void metrics_ttft(metrics *m, double seconds);
void metrics_label_cache(metrics *m, int hits, int misses);

/* Appends the exposition (text format 0.0.4) to b. */
void metrics_render(metrics *m, const metrics_gauges *g, const char *model, const char *backend,
                    api_buf *b);

#endif

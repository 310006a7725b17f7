/* metrics.c - Prometheus counters, gauges and histograms (see metrics.h). */
#include "metrics.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>


const char *const metrics_endpoint_names[EP_COUNT] = {
    "/v1/embed", "/v1/score", "/v1/classify", "/v1/embeddings", "/v1/caption", "/v1/vqa",
    "/v1/chat/completions", "/v1/detect", "/v1/ocr", "/v1/models", "/healthz", "/readyz", "/metrics", "/openapi.json",
    "/", "other"};
const char *const metrics_task_names[METRICS_TASKS] = {"image-embed", "text-embed"};

static const double seconds_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};

static void hist_init(metrics_hist *h, const double *bounds, int n)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n_bounds = n;
}

static void hist_observe(metrics_hist *h, double v)
{
    int i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void metrics_init(metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    const int ns = (int)(sizeof seconds_bounds / sizeof *seconds_bounds);
    const int nb = (int)(sizeof batch_bounds / sizeof *batch_bounds);
    for (int e = 0; e < EP_COUNT; e++)
        hist_init(&m->request_duration[e], seconds_bounds, ns);
    for (int t = 0; t < METRICS_TASKS; t++) {
        hist_init(&m->queue_wait[t], seconds_bounds, ns);
        hist_init(&m->inference[t], seconds_bounds, ns);
        hist_init(&m->preprocess[t], seconds_bounds, ns);
        hist_init(&m->batch_size[t], batch_bounds, nb);
    }
    hist_init(&m->ttft, seconds_bounds, ns);
    hist_init(&m->decode_step, seconds_bounds, ns);
}

void metrics_destroy(metrics *m)
{
    pthread_mutex_destroy(&m->mu);
}

void metrics_request(metrics *m, metrics_endpoint ep, int status, double seconds)
{
    pthread_mutex_lock(&m->mu);
    int s = 0;
    while (s < m->n_statuses && m->statuses[s] != status)
        s++;
    if (s == m->n_statuses && s < METRICS_STATUSES)
        m->statuses[m->n_statuses++] = status;
    if (s < METRICS_STATUSES)
        m->requests[ep][s]++;
    hist_observe(&m->request_duration[ep], seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_batch(metrics *m, int task, int size, double inference_s, const double *queue_waits)
{
    pthread_mutex_lock(&m->mu);
    hist_observe(&m->batch_size[task], size);
    hist_observe(&m->inference[task], inference_s);
    for (int i = 0; i < size; i++)
        hist_observe(&m->queue_wait[task], queue_waits[i]);
    pthread_mutex_unlock(&m->mu);
}

void metrics_preprocess(metrics *m, int task, double seconds, int images_decoded)
{
    pthread_mutex_lock(&m->mu);
    hist_observe(&m->preprocess[task], seconds);
    m->images_decoded += (uint64_t)images_decoded;
    pthread_mutex_unlock(&m->mu);
}

void metrics_gen_step(metrics *m, double step_s, uint64_t tokens, int running_sequences)
{
    pthread_mutex_lock(&m->mu);
    if (step_s >= 0)
        hist_observe(&m->decode_step, step_s);
    m->generated_tokens += tokens;
    m->running_sequences = running_sequences;
    pthread_mutex_unlock(&m->mu);
}

void metrics_ttft(metrics *m, double seconds)
{
    pthread_mutex_lock(&m->mu);
    hist_observe(&m->ttft, seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_label_cache(metrics *m, int hits, int misses)
{
    pthread_mutex_lock(&m->mu);
    m->label_cache_hits += (uint64_t)hits;
    m->label_cache_misses += (uint64_t)misses;
    pthread_mutex_unlock(&m->mu);
}

static void put_help(api_buf *b, const char *name, const char *type, const char *help)
{
    api_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_hist(api_buf *b, const char *name, const char *label, const char *value,
                     const metrics_hist *h)
{
    uint64_t cum = 0;
    for (int i = 0; i <= h->n_bounds; i++) {
        cum += h->counts[i];
        if (i < h->n_bounds)
            api_buf_printf(b, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", name, label, value,
                           h->bounds[i], (unsigned long long)cum);
        else
            api_buf_printf(b, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", name, label, value,
                           (unsigned long long)cum);
    }
    api_buf_printf(b, "%s_sum{%s=\"%s\"} %.9g\n%s_count{%s=\"%s\"} %llu\n", name, label, value,
                   h->sum, name, label, value, (unsigned long long)h->count);
}

/* Label values here are our own constants and the model name; the latter
 * is escaped as the text format requires (\\, \", \n). */
static void put_label_value(api_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            api_buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            api_buf_puts(b, "\\n");
        else
            api_buf_putn(b, v, 1);
    }
}

void metrics_render(metrics *m, const metrics_gauges *g, const char *model, const char *backend,
                    api_buf *b)
{
    pthread_mutex_lock(&m->mu);
    put_help(b, "prism_build_info", "gauge", "Version and backend of this prism build.");
    api_buf_printf(b, "prism_build_info{version=\"%s\",backend=\"%s\",model=\"", PRISM_VERSION,
                   backend);
    put_label_value(b, model);
    api_buf_puts(b, "\"} 1\n");
    put_help(b, "prism_model_load_seconds", "gauge", "Seconds it took to load the model.");
    api_buf_printf(b, "prism_model_load_seconds %.6f\n", m->model_load_seconds);
    put_help(b, "prism_ready", "gauge", "1 when /readyz answers 200.");
    api_buf_printf(b, "prism_ready %d\n", g->ready);

    put_help(b, "prism_http_requests_total", "counter",
             "HTTP requests answered, by endpoint and status (499: the client went away).");
    for (int e = 0; e < EP_COUNT; e++)
        for (int s = 0; s < m->n_statuses; s++)
            if (m->requests[e][s])
                api_buf_printf(b, "prism_http_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                               metrics_endpoint_names[e], m->statuses[s],
                               (unsigned long long)m->requests[e][s]);
    put_help(b, "prism_http_request_duration_seconds", "histogram",
             "Time from a request's arrival to its response, by endpoint.");
    for (int e = 0; e < EP_COUNT; e++)
        if (m->request_duration[e].count)
            put_hist(b, "prism_http_request_duration_seconds", "endpoint",
                     metrics_endpoint_names[e], &m->request_duration[e]);
    put_help(b, "prism_queue_wait_seconds", "histogram",
             "Time an item waited in its task queue before its batch started.");
    for (int t = 0; t < METRICS_TASKS; t++)
        put_hist(b, "prism_queue_wait_seconds", "task", metrics_task_names[t], &m->queue_wait[t]);
    put_help(b, "prism_inference_duration_seconds", "histogram",
             "Engine time of one batch, by task.");
    for (int t = 0; t < METRICS_TASKS; t++)
        put_hist(b, "prism_inference_duration_seconds", "task", metrics_task_names[t],
                 &m->inference[t]);
    put_help(b, "prism_batch_size", "histogram", "Items per engine batch, by task.");
    for (int t = 0; t < METRICS_TASKS; t++)
        put_hist(b, "prism_batch_size", "task", metrics_task_names[t], &m->batch_size[t]);
    put_help(b, "prism_preprocess_duration_seconds", "histogram",
             "Preprocessing time of one item: image decode + resize + normalise, or tokenize.");
    for (int t = 0; t < METRICS_TASKS; t++)
        put_hist(b, "prism_preprocess_duration_seconds", "task", metrics_task_names[t],
                 &m->preprocess[t]);
    put_help(b, "prism_images_decoded_total", "counter", "Images decoded.");
    api_buf_printf(b, "prism_images_decoded_total %llu\n", (unsigned long long)m->images_decoded);
    put_help(b, "prism_generated_tokens_total", "counter",
             "Tokens generated (output positions, one per request per decode step; 0 unless a "
             "pali3 or PaliGemma model is served).");
    api_buf_printf(b, "prism_generated_tokens_total %llu\n",
                   (unsigned long long)m->generated_tokens);
    put_help(b, "prism_time_to_first_token_seconds", "histogram",
             "Time from a generation request's arrival to its first generated token.");
    put_hist(b, "prism_time_to_first_token_seconds", "task", "generate", &m->ttft);
    put_help(b, "prism_decode_step_duration_seconds", "histogram",
             "Wall time of one decoder step of the running generation batch.");
    put_hist(b, "prism_decode_step_duration_seconds", "task", "generate", &m->decode_step);
    put_help(b, "prism_running_sequences", "gauge",
             "Decoder sequences (beams included) in the running generation batch.");
    api_buf_printf(b, "prism_running_sequences %d\n", m->running_sequences);
    put_help(b, "prism_label_cache_hits_total", "counter", "Classify labels found in the cache.");
    api_buf_printf(b, "prism_label_cache_hits_total %llu\n",
                   (unsigned long long)m->label_cache_hits);
    put_help(b, "prism_label_cache_misses_total", "counter", "Classify labels embedded anew.");
    api_buf_printf(b, "prism_label_cache_misses_total %llu\n",
                   (unsigned long long)m->label_cache_misses);
    pthread_mutex_unlock(&m->mu);

    put_help(b, "prism_label_cache_entries", "gauge", "Label embeddings in the cache.");
    api_buf_printf(b, "prism_label_cache_entries %ld\n", g->label_cache_entries);
    put_help(b, "prism_label_cache_bytes", "gauge",
             "Bytes the label cache holds (texts + embeddings), bounded by --label-cache-bytes.");
    api_buf_printf(b, "prism_label_cache_bytes %ld\n", g->label_cache_bytes);
    put_help(b, "prism_queue_depth", "gauge", "Items waiting in a task queue for the engine.");
    for (int t = 0; t < METRICS_TASKS; t++)
        api_buf_printf(b, "prism_queue_depth{task=\"%s\"} %ld\n", metrics_task_names[t],
                       g->queue_depth[t]);
    put_help(b, "prism_preprocess_queue_depth", "gauge",
             "Jobs waiting for a preprocessing worker.");
    api_buf_printf(b, "prism_preprocess_queue_depth %ld\n", g->prep_queue_depth);
    put_help(b, "prism_items_in_flight", "gauge",
             "Items admitted and not yet computed (preprocessing, queued or running).");
    api_buf_printf(b, "prism_items_in_flight %ld\n", g->items_in_flight);
    put_help(b, "prism_requests_in_flight", "gauge", "HTTP requests received and not yet answered.");
    api_buf_printf(b, "prism_requests_in_flight %ld\n", g->requests_in_flight);
    if (g->have_backend_memory) {
        put_help(b, "prism_backend_memory_bytes", "gauge",
                 "Bytes the compute backend allocated and holds: buffers, weights it copied or "
                 "converted, its workspaces.");
        api_buf_printf(b, "prism_backend_memory_bytes %zu\n", g->backend_held);
        if (g->device_total > 0) {
            put_help(b, "prism_device_memory_bytes", "gauge",
                     "The accelerator's memory: total, and free now (all processes).");
            api_buf_printf(b, "prism_device_memory_bytes{state=\"total\"} %zu\n",
                           g->device_total);
            api_buf_printf(b, "prism_device_memory_bytes{state=\"free\"} %zu\n",
                           g->device_free);
        }
    }
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    put_help(b, "prism_process_resident_memory_bytes", "gauge",
             "Resident memory of the process (the CPU backend's device memory).");
    api_buf_printf(b, "prism_process_resident_memory_bytes %lld\n",
                   (long long)rss * sysconf(_SC_PAGESIZE));
}

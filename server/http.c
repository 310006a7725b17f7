/* http.c - the HTTP front: libmicrohttpd daemon, routes, limits, responses.
 *
 * A request is a small state machine in its srv_req (MHD's per-request
 * context):
 *   first call      route (404/405), API key (401), readiness/drain (503),
 *                   Content-Type (415), Content-Length (413); GET routes
 *                   answer here
 *   body calls      the body is collected up to --body-limit (413 past it)
 *   last call       pipeline_submit: parse job queued, connection suspended
 *   resumed call    the response (or, after a hang-up, MHD_NO to close)
 *   completed       metrics, one log line, cancellation if still pending
 * Nothing slow runs here: the pipeline's workers parse, decode, tokenize
 * and write JSON; a waiting request holds no thread.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_multipart.h"
#include "api_response.h"
#include "server.h"

extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

typedef enum route_kind { ROUTE_MODEL, ROUTE_GENERATIVE, ROUTE_GET } route_kind;

typedef struct route {
    const char *path;
    metrics_endpoint ep;
    route_kind kind;
    api_op op;
    bool auth;         /* needs the API key when one is set */
    bool multipart;    /* accepts multipart/form-data */
} route;

static const route routes[] = {
    {"/v1/embed", EP_EMBED, ROUTE_MODEL, API_OP_EMBED, true, true},
    {"/v1/score", EP_SCORE, ROUTE_MODEL, API_OP_SCORE, true, true},
    {"/v1/classify", EP_CLASSIFY, ROUTE_MODEL, API_OP_CLASSIFY, true, true},
    {"/v1/embeddings", EP_EMBEDDINGS, ROUTE_MODEL, API_OP_EMBEDDINGS, true, false},
    {"/v1/caption", EP_CAPTION, ROUTE_GENERATIVE, 0, true, true},
    {"/v1/vqa", EP_VQA, ROUTE_GENERATIVE, 0, true, true},
    {"/v1/chat/completions", EP_CHAT, ROUTE_GENERATIVE, 0, true, false},
    {"/v1/models", EP_MODELS, ROUTE_GET, 0, true, false},
    {"/healthz", EP_HEALTHZ, ROUTE_GET, 0, false, false},
    {"/readyz", EP_READYZ, ROUTE_GET, 0, false, false},
    {"/metrics", EP_METRICS, ROUTE_GET, 0, false, false},
    {"/openapi.json", EP_OPENAPI, ROUTE_GET, 0, false, false},
};

static const route *route_find(const char *url)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(routes[i].path, url) == 0)
            return &routes[i];
    return NULL;
}

/* Sets an error response on a request that is still being received. */
static void respond_error(srv_req *r, int status, const char *code, const char *param,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void respond_error(srv_req *r, int status, const char *code, const char *param,
                          const char *fmt, ...)
{
    api_error e;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_errorf(&e, status, code, param, "%s", msg);
    req_fail(r, &e);
}

static void respond_text(srv_req *r, int status, char *body, size_t len, const char *type)
{
    if (!body) {
        respond_error(r, 500, "out_of_memory", NULL, "out of memory");
        return;
    }
    req_respond(r, status, body, len, type);
}

static bool request_id_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = v; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return true;
}

/* Constant-time comparison of the bearer token with the configured key. */
static bool api_key_ok(const srv_ctx *s, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *key = s->cfg.api_key;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    size_t n = strlen(h), k = strlen(key);
    unsigned diff = (unsigned)(n ^ k);
    for (size_t i = 0; i < k; i++)
        diff |= (unsigned char)key[i] ^ (unsigned char)(i < n ? h[i] : 0);
    return diff == 0;
}

static void answer_get(srv_ctx *s, srv_req *r)
{
    size_t len = 0;
    char *body;
    switch (r->ep) {
    case EP_HEALTHZ:
    case EP_READYZ:
        if (atomic_load(&s->device_lost)) { /* both fail: the process must restart */
            respond_error(r, 503, "device_lost", NULL, "the compute device failed: %s",
                          s->device_lost_msg);
        } else if (r->ep == EP_HEALTHZ) {
            body = api_status_json("ok", &len);
            respond_text(r, 200, body, len, "application/json");
        } else if (atomic_load(&s->ready)) {
            body = api_status_json("ready", &len);
            respond_text(r, 200, body, len, "application/json");
        } else {
            bool drain = atomic_load(&s->draining);
            respond_error(r, 503, drain ? "draining" : "loading", NULL,
                          drain ? "the server is draining before it exits"
                                : "the model is still loading");
        }
        break;
    case EP_MODELS:
        if (!atomic_load(&s->ready) && !atomic_load(&s->draining)) {
            respond_error(r, 503, "loading", NULL, "the model is still loading");
            break;
        }
        if (s->model && s->pali) { /* both: the SigLIP model, then the generative one */
            api_buf mb = {0};
            api_buf_puts(&mb, "{\"object\":\"list\",\"data\":[{\"id\":");
            api_buf_json_string(&mb, s->model_name, strlen(s->model_name));
            api_buf_printf(&mb, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"prism\","
                                "\"embedding_dim\":%d},{\"id\":",
                           (long long)s->created, s->dim);
            api_buf_json_string(&mb, s->gen_model_name, strlen(s->gen_model_name));
            api_buf_printf(&mb, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"prism\"}]}\n",
                           (long long)s->created);
            body = api_buf_finish(&mb, &len);
        } else {
            body = api_models_json(s->model_name, s->created, s->dim, &len);
        }
        respond_text(r, 200, body, len, "application/json");
        break;
    case EP_OPENAPI:
        body = malloc(api_openapi_json_len + 1);
        if (body)
            memcpy(body, api_openapi_json, api_openapi_json_len + 1);
        respond_text(r, 200, body, api_openapi_json_len, "application/json");
        break;
    case EP_METRICS: {
        metrics_gauges g = {0};
        pthread_mutex_lock(&s->mu);
        for (int t = 0; t < N_TASKS; t++)
            g.queue_depth[t] = s->q_len[t];
        g.items_in_flight = s->items_in_flight;
        g.requests_in_flight = s->open_requests;
        pthread_mutex_unlock(&s->mu);
        g.prep_queue_depth = s->prep ? prep_queued(s->prep) : 0;
        g.label_cache_entries = (long)lcache_size(s->labels);
        g.ready = atomic_load(&s->ready);
        api_buf b = {0};
        metrics_render(&s->metrics, &g, s->model_name, s->backend ? s->backend->ops->name : "none",
                       &b);
        body = api_buf_finish(&b, &len);
        respond_text(r, 200, body, len, "text/plain; version=0.0.4; charset=utf-8");
        break;
    }
    default:
        respond_error(r, 500, "internal_error", NULL, "no handler");
    }
}

/* The first call of a request: everything decidable from its headers. */
static void request_begin(srv_ctx *s, srv_req *r, struct MHD_Connection *c, const char *url,
                          const char *method)
{
    const route *rt = route_find(url);
    r->ep = rt ? rt->ep : EP_OTHER;
    bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool is_post = strcmp(method, "POST") == 0;
    if (!rt) {
        respond_error(r, 404, "not_found", NULL, "no route %s %.200s (see GET /openapi.json)",
                      method, url);
        return;
    }
    if ((rt->kind == ROUTE_GET && !is_get) || (rt->kind != ROUTE_GET && !is_post)) {
        r->allow = rt->kind == ROUTE_GET ? "GET, HEAD" : "POST";
        respond_error(r, 405, "method_not_allowed", NULL, "%s takes %s, not %s", rt->path,
                      r->allow, method);
        return;
    }
    if (rt->auth && s->cfg.api_key[0] && !api_key_ok(s, c)) {
        r->auth_challenge = true;
        respond_error(r, 401, "invalid_api_key", NULL,
                      "missing or wrong API key (send 'Authorization: Bearer KEY')");
        return;
    }
    if (rt->kind == ROUTE_GET) {
        answer_get(s, r);
        return;
    }
    if (atomic_load(&s->draining)) {
        r->retry_after = true;
        respond_error(r, 503, "draining", NULL, "the server is shutting down; retry elsewhere");
        return;
    }
    if (atomic_load(&s->device_lost)) {
        r->retry_after = true;
        respond_error(r, 503, "device_lost", NULL,
                      "the compute device failed; this process must restart (retry elsewhere)");
        return;
    }
    if (!atomic_load(&s->ready)) {
        respond_error(r, 503, "loading", NULL, "the model is still loading; retry shortly");
        return;
    }
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    bool json = ct && strncasecmp(ct, "application/json", 16) == 0 &&
                (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
    bool multipart = api_is_multipart(ct);
    if (!json && !(multipart && rt->multipart)) {
        respond_error(r, 415, "unsupported_media_type", NULL,
                      "Content-Type must be application/json%s, not '%.100s'",
                      rt->multipart ? " or multipart/form-data" : "", ct ? ct : "(none)");
        return;
    }
    snprintf(r->content_type, sizeof r->content_type, "%s", ct);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > (unsigned long long)s->cfg.body_limit) {
        respond_error(r, 413, "body_too_large", NULL, "the body (%s bytes) is over the limit of %lld",
                      cl, s->cfg.body_limit);
        return;
    }
    r->op = rt->op;
    r->method = rt->kind == ROUTE_GENERATIVE ? "generative" : "model";
}

static void add_ms_header(struct MHD_Response *resp, const char *name, double seconds)
{
    char v[32];
    snprintf(v, sizeof v, "%.3f", seconds * 1e3);
    MHD_add_response_header(resp, name, v);
}

/* A streamed response's body: what the engine appended so far; with nothing
 * new the connection is suspended until req_stream_push_locked resumes it. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    srv_req *r = cls;
    srv_ctx *s = r->srv;
    ssize_t ret;
    pthread_mutex_lock(&s->mu);
    if (r->s_off < r->s_len) {
        size_t n = r->s_len - r->s_off < max ? r->s_len - r->s_off : max;
        memcpy(buf, r->sbuf + r->s_off, n);
        r->s_off += n;
        if (r->s_off == r->s_len)
            r->s_off = r->s_len = 0;
        ret = (ssize_t)n;
    } else if (r->s_done) {
        ret = MHD_CONTENT_READER_END_OF_STREAM;
    } else if (!r->conn) {
        ret = MHD_CONTENT_READER_END_WITH_ERROR;
    } else {
        MHD_suspend_connection(r->conn);
        r->s_suspended = true;
        ret = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return ret;
}

static void stream_free(void *cls)
{
    req_unref(cls);
}

static enum MHD_Result send_response(srv_ctx *s, srv_req *r, struct MHD_Connection *c)
{
    struct MHD_Response *resp;
    if (r->streaming) {
        req_ref(r); /* the reader's, dropped by stream_free */
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, r,
                                                 stream_free);
        if (!resp) {
            req_unref(r);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
    } else {
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp ? r->resp : (char *)"",
                                               r->resp ? MHD_RESPMEM_MUST_FREE
                                                       : MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return MHD_NO;
        r->resp = NULL; /* MHD frees it */
    }
    MHD_add_response_header(resp, "Content-Type", r->resp_type ? r->resp_type : "application/json");
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    if (r->async) {
        add_ms_header(resp, "X-Queue-Time-Ms", r->queue_s);
        add_ms_header(resp, "X-Preprocess-Time-Ms", r->prep_s);
        add_ms_header(resp, "X-Inference-Time-Ms", r->infer_s);
    }
    if (r->status == 503 || r->retry_after)
        MHD_add_response_header(resp, "Retry-After", "1");
    if (r->allow)
        MHD_add_response_header(resp, "Allow", r->allow);
    if (r->auth_challenge)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    if (atomic_load(&s->draining))
        MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    srv_ctx *s = cls;
    srv_req *r = *con_cls;
    if (!r) {
        r = req_create(s);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        r->conn = c;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        r->fd = ci ? ci->connect_fd : -1;
        const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
        if (rid && request_id_ok(rid))
            snprintf(r->id, sizeof r->id, "%s", rid);
        else
            snprintf(r->id, sizeof r->id, "%08x-%06lu", s->id_salt,
                     (unsigned long)atomic_fetch_add(&s->req_counter, 1) + 1);
        r->method = "";
        pthread_mutex_lock(&s->mu);
        s->open_requests++;
        pthread_mutex_unlock(&s->mu);
        request_begin(s, r, c, url, method);
        /* answered from the headers: a POST gets the answer at once (no need
         * for its body; MHD then closes the connection); a GET on the next
         * call, which keeps the connection alive */
        if (r->state == REQ_DONE && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return send_response(s, r, c);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->state != REQ_PENDING)
            return MHD_YES; /* answered already (e.g. 415): the rest is discarded */
        if (r->body_len + n > (size_t)s->cfg.body_limit) {
            respond_error(r, 413, "body_too_large", NULL, "the body is over the limit of %lld bytes",
                          s->cfg.body_limit);
            free(r->body);
            r->body = NULL;
            return MHD_YES;
        }
        if (r->body_len + n + 1 > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap : 4096;
            while (cap < r->body_len + n + 1)
                cap *= 2;
            char *b = realloc(r->body, cap);
            if (!b) {
                respond_error(r, 500, "out_of_memory", NULL, "out of memory for the body");
                return MHD_YES;
            }
            r->body = b;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = '\0';
        return MHD_YES;
    }
    /* the body is complete, or the connection was resumed */
    pthread_mutex_lock(&s->mu);
    req_state st = r->state;
    bool async = r->async;
    pthread_mutex_unlock(&s->mu);
    if (st == REQ_CANCELLED)
        return MHD_NO;
    if (st == REQ_DONE)
        return send_response(s, r, c);
    if (async)
        return MHD_YES; /* spurious call while suspended work is pending */
    bool generative = r->ep == EP_CAPTION || r->ep == EP_VQA || r->ep == EP_CHAT;
    if (!s->model && !generative) {
        api_error e;
        if (api_json_object_check(r->body ? r->body : "", r->body_len, &e) == 0 ||
            api_is_multipart(r->content_type))
            api_errorf(&e, 422, "model_not_loaded", NULL,
                       "%s needs a SigLIP model; this server has the generative (pali3) model "
                       "'%s'",
                       metrics_endpoint_names[r->ep], s->model_name);
        req_fail(r, &e);
        return send_response(s, r, c);
    }
    if (generative && !s->pali) {
        api_error e;
        if (api_json_object_check(r->body ? r->body : "", r->body_len, &e) == 0)
            api_errorf(&e, 422, "model_not_loaded", NULL,
                       "%s needs a generative (PaLI-style) model; this server has only the "
                       "SigLIP model '%s'",
                       metrics_endpoint_names[r->ep], s->model_name);
        req_fail(r, &e);
        return send_response(s, r, c);
    }
    pipeline_submit(r);
    pthread_mutex_lock(&s->mu);
    st = r->state;
    bool suspended = r->suspended;
    pthread_mutex_unlock(&s->mu);
    if (st == REQ_DONE && !suspended)
        return send_response(s, r, c); /* refused at once (503) */
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    srv_ctx *s = cls;
    srv_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    pthread_mutex_lock(&s->mu);
    if (r->state == REQ_PENDING) /* the client left before its answer */
        req_cancel_locked(r);
    bool answered = r->state == REQ_DONE;
    int status = answered && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status
                 : answered && r->status ? r->status : 499;
    r->conn = NULL;
    pthread_mutex_unlock(&s->mu);

    double dur = prism_now() - r->t_arrival;
    metrics_request(&s->metrics, r->ep, status, dur);
    log_line ln;
    log_begin(&ln, &s->log, LOG_INFO, "request");
    log_str(&ln, "request_id", r->id);
    log_str(&ln, "route", metrics_endpoint_names[r->ep]);
    log_int(&ln, "status", status);
    log_num(&ln, "duration_ms", dur * 1e3);
    if (r->async) {
        log_num(&ln, "queue_ms", r->queue_s * 1e3);
        log_num(&ln, "preprocess_ms", r->prep_s * 1e3);
        log_num(&ln, "inference_ms", r->infer_s * 1e3);
        log_int(&ln, "items", r->n_items);
    }
    if (r->err_code[0])
        log_str(&ln, "error", r->err_code);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        log_str(&ln, "termination", toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? "client_abort"
                                    : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
                                    : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                                                                                    : "error");
    log_end(&ln);

    pthread_mutex_lock(&s->mu);
    if (--s->open_requests == 0)
        pthread_cond_broadcast(&s->idle);
    req_unref_locked(r);
    pthread_mutex_unlock(&s->mu);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    srv_ctx *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_msg(&s->log, LOG_WARN, "libmicrohttpd", msg);
}

int http_start(srv_ctx *s, char *msg, size_t msg_len)
{
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *addr;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, s->cfg.host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)s->cfg.port);
        addr = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, s->cfg.host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)s->cfg.port);
        addr = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(msg, msg_len, "--host '%s' is not an IPv4 or IPv6 address", s->cfg.host);
        return -1;
    }
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, s, MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
        /* a pool only when asked for: the last option, or none */
        s->cfg.http_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
        (unsigned)s->cfg.http_threads, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(msg, msg_len, "cannot listen on %s:%lld (in use, or not allowed)", s->cfg.host,
                 s->cfg.port);
        return -1;
    }
    return 0;
}

int http_port(srv_ctx *s)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return di ? di->port : (int)s->cfg.port;
}

void http_stop(srv_ctx *s)
{
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}

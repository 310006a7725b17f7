/* http.c - the HTTP front: libmicrohttpd daemon, routes, limits, responses.
 *
 * A request is a small state machine in its srv_req (MHD's per-request
 * context):
 *   first call      framing (400/411/501), route (404/405), API key (401),
 *                   readiness/drain (503), Content-Type (415),
 *                   Content-Length (413), body budget (503); GET routes
 *                   answer here
 *   body calls      the body is collected into one buffer of Content-Length
 *                   bytes
 *   last call       pipeline_submit: parse job queued, connection suspended
 *   resumed call    the response (or, after a hang-up, MHD_NO to close)
 *   completed       metrics, one log line, cancellation if still pending
 * Nothing slow runs here: the pipeline's workers parse, decode, tokenize
 * and write JSON; a waiting request holds no thread.
 *
 * Connections. MHD's own timeout is an idle timeout (each byte resets it),
 * so a client sending one byte every few seconds would hold a connection
 * for ever. Every connection is therefore kept in a table (http_state) with
 * its phase and a deadline: --header-timeout from its accept (or from the
 * end of its last response) until its headers are complete, then
 * --body-timeout until its body is complete; while the request is being
 * answered it has none (--request-timeout applies). A reaper thread shuts
 * down the socket of a connection past its deadline (a body-phase client
 * first gets a 408 when its socket takes it); MHD then sees the socket
 * closed and cleans up as for any client that left.
 *
 * Framing. Request bodies need one Content-Length: libmicrohttpd 0.9.75
 * answers an over-long chunk-size line with its own 500 and reads a body
 * with another transfer coding until the client closes, neither of which
 * this code can intercept, so a body sent with Transfer-Encoding is
 * refused from its headers (411 for chunked, 501 for other codings, 400
 * with a Content-Length too), as RFC 9112 section 6.3 allows. A
 * Content-Length that is not a number is answered 400 by MHD itself before
 * any callback runs.
 *
 * Memory. A body is allocated once, at its Content-Length, and counted
 * against --body-budget until http_body_release; a body that does not fit
 * is refused with 503 before any of it is read.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api_multipart.h"
#include "api_response.h"
#include "server.h"

extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;
/* the page at / (server/web/index.html), embedded at build time */
extern const unsigned char prism_web_index_html[];
extern const size_t prism_web_index_html_len;

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
    {"/v1/detect", EP_DETECT, ROUTE_GENERATIVE, 0, true, true},
    {"/v1/ocr", EP_OCR, ROUTE_GENERATIVE, 0, true, true},
    {"/v1/models", EP_MODELS, ROUTE_GET, 0, true, false},
    {"/healthz", EP_HEALTHZ, ROUTE_GET, 0, false, false},
    {"/readyz", EP_READYZ, ROUTE_GET, 0, false, false},
    {"/metrics", EP_METRICS, ROUTE_GET, 0, false, false},
    {"/openapi.json", EP_OPENAPI, ROUTE_GET, 0, false, false},
    {"/", EP_WEB, ROUTE_GET, 0, false, false},
};

static const route *route_find(const char *url)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(routes[i].path, url) == 0)
            return &routes[i];
    return NULL;
}

/* ---- connections: phases, deadlines, the reaper --------------------------- */

typedef enum conn_phase {
    CONN_HEADERS, /* until its request's headers are complete (--header-timeout) */
    CONN_BODY,    /* until its body is complete (--body-timeout) */
    CONN_BUSY     /* its request is being answered: no deadline here */
} conn_phase;

/* One open connection: MHD's socket context, from the STARTED to the CLOSED
 * notification. Fields under http_state.mu. */
typedef struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    conn_phase phase;
    double deadline;      /* CONN_HEADERS, CONN_BODY: prism_now() seconds */
    bool reaped;          /* the reaper shut its socket down */
    bool sent_408;        /* ... after writing a 408 to it */
    char peer[INET6_ADDRSTRLEN];
    char req_id[72];      /* the request whose body is awaited (the 408 names it) */
} http_conn;

typedef struct http_state http_state;

struct http_state {
    pthread_mutex_t mu;   /* the table below; never taken with srv->mu held, nor the reverse */
    pthread_cond_t wake;  /* the reaper: stop, or a deadline earlier than next_wake */
    pthread_cond_t closed; /* http_quiesce: a connection started or closed */
    http_conn *conns;
    long n_conns;
    double next_wake;     /* when the reaper looks again */
    bool stop;
    pthread_t reaper;
    bool reaper_started;
    int quiesced_fd;      /* the listening socket once http_quiesce took it; -1 before */
    int *handed;          /* http_quiesce: sockets given to MHD, not yet STARTED */
    size_t n_handed, cap_handed;
    _Atomic long long body_bytes; /* request bodies held (--body-budget) */
};

/* The fd's lifetime. A table entry holds a socket that MHD has not closed:
 * MHD 0.9.75 calls MHD_CONNECTION_NOTIFY_CLOSED before it closes the
 * socket, on every path that ends a connection it notified as STARTED
 * (MHD_cleanup_connections, and the failure path of
 * internal_add_connection, both in daemon.c), and on_connection removes
 * the entry under mu. So whoever holds mu and finds an entry may
 * shutdown() its fd: it is still this connection's socket, not a reused
 * number. shutdown, unlike close, leaves the descriptor to MHD, which sees
 * the end of the stream on its next read and closes the connection as for
 * a client that left. */

/* A socket http_quiesce handed to MHD is started (or closed) by it: no
 * longer waited for (h->mu held). */
static void handed_remove_locked(http_state *h, int fd)
{
    for (size_t i = 0; i < h->n_handed; i++)
        if (h->handed[i] == fd) {
            h->handed[i] = h->handed[--h->n_handed];
            break;
        }
}

/* Sets a connection's phase; a new deadline earlier than the reaper's next
 * look wakes it. */
static void conn_set_phase(http_state *h, http_conn *k, conn_phase ph, double timeout_s)
{
    if (!k)
        return;
    pthread_mutex_lock(&h->mu);
    k->phase = ph;
    if (ph != CONN_BUSY) {
        k->deadline = prism_now() + timeout_s;
        if (k->deadline < h->next_wake)
            pthread_cond_signal(&h->wake);
    }
    pthread_mutex_unlock(&h->mu);
}

static http_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode what)
{
    srv_ctx *s = cls;
    http_state *h = s->http;
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fi =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        http_conn *k = calloc(1, sizeof *k);
        *socket_context = k;
        if (!k || !fi) { /* untracked, it could outstay every deadline: refuse it */
            if (fi)
                shutdown(fi->connect_fd, SHUT_RDWR);
            return;
        }
        k->fd = fi->connect_fd;
        const union MHD_ConnectionInfo *ai =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = ai ? ai->client_addr : NULL;
        if (sa && sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, k->peer,
                      sizeof k->peer);
        else if (sa && sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                      k->peer, sizeof k->peer);
        pthread_mutex_lock(&h->mu);
        handed_remove_locked(h, k->fd);
        k->next = h->conns;
        if (h->conns)
            h->conns->prev = k;
        h->conns = k;
        h->n_conns++;
        pthread_cond_broadcast(&h->closed);
        pthread_mutex_unlock(&h->mu);
        conn_set_phase(h, k, CONN_HEADERS, s->cfg.header_timeout_s);
        return;
    }
    http_conn *k = *socket_context;
    *socket_context = NULL;
    if (!k)
        return;
    pthread_mutex_lock(&h->mu);
    if (k->prev)
        k->prev->next = k->next;
    else
        h->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    h->n_conns--;
    pthread_cond_broadcast(&h->closed);
    pthread_mutex_unlock(&h->mu);
    free(k);
}

/* Writes a complete 408 answer to a body-phase connection, without
 * blocking. MHD writes nothing while it receives a body (any
 * "100 Continue" went out when the headers were processed), so these bytes
 * cannot interleave with its own. */
static bool send_408(const srv_ctx *s, const http_conn *k)
{
    api_error e;
    api_errorf(&e, API_ERR_BODY_TIMEOUT, NULL,
               "the request body did not arrive within %g s of its headers (--body-timeout)",
               s->cfg.body_timeout_s);
    char *body = api_error_json(&e);
    if (!body)
        return false;
    char msg[1024];
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\nX-Request-Id: %s\r\n\r\n%s",
                     strlen(body), k->req_id, body);
    free(body);
    if (n <= 0 || (size_t)n >= sizeof msg)
        return false;
    return send(k->fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n;
}

/* A connection past its deadline (h->mu held): a body-phase client whose
 * socket can take it gets a 408; then both directions are shut down. */
static void reap_locked(srv_ctx *s, http_conn *k, double now)
{
    k->reaped = true;
    if (k->phase == CONN_BODY) {
        struct pollfd p = {.fd = k->fd, .events = POLLOUT};
        if (poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) && !(p.revents & (POLLERR | POLLHUP)))
            k->sent_408 = send_408(s, k);
    }
    shutdown(k->fd, SHUT_RDWR);
    log_line ln;
    log_begin(&ln, &s->log, LOG_INFO, "connection closed");
    log_str(&ln, "reason", k->phase == CONN_BODY ? "body_timeout" : "header_timeout");
    log_str(&ln, "peer", k->peer);
    if (k->phase == CONN_BODY)
        log_str(&ln, "request_id", k->req_id);
    log_num(&ln, "late_ms", (now - k->deadline) * 1e3);
    log_end(&ln);
}

static void *reaper_main(void *arg)
{
    srv_ctx *s = arg;
    http_state *h = s->http;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        double now = prism_now(), next = now + 3600;
        for (http_conn *k = h->conns; k; k = k->next) {
            if (k->phase == CONN_BUSY || k->reaped)
                continue;
            if (k->deadline <= now)
                reap_locked(s, k, now);
            else if (k->deadline < next)
                next = k->deadline;
        }
        h->next_wake = next;
        struct timespec ts;
        ts.tv_sec = (time_t)next;
        ts.tv_nsec = (long)((next - (double)ts.tv_sec) * 1e9);
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_nsec = 999999999L;
        pthread_cond_timedwait(&h->wake, &h->mu, &ts);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* ---- the body budget -------------------------------------------------------- */

/* Counts n more bytes of bodies held; false (nothing counted) when they do
 * not fit in --body-budget. */
static bool budget_take(srv_ctx *s, size_t n)
{
    http_state *h = s->http;
    long long cur = atomic_load(&h->body_bytes);
    do {
        if (cur + (long long)n > s->cfg.body_budget)
            return false;
    } while (!atomic_compare_exchange_weak(&h->body_bytes, &cur, cur + (long long)n));
    return true;
}

/* Gives r's body bytes back to --body-budget (once: the charge is taken
 * from the request atomically). */
static void body_uncharge(srv_ctx *s, srv_req *r)
{
    size_t n = atomic_exchange(&r->body_charge, 0);
    if (n && s->http) /* a charge is only held while the connection is open */
        atomic_fetch_sub(&s->http->body_bytes, (long long)n);
}

void http_body_release(srv_ctx *s, srv_req *r)
{
    body_uncharge(s, r);
    free(r->body);
    r->body = NULL;
    r->content_type = NULL;
    r->body_cap = 0;
}

/* Sets an error response on a request that is still being received. */
static void respond_error(srv_req *r, api_code code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void respond_error(srv_req *r, api_code code, const char *param, const char *fmt, ...)
{
    api_error e;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_errorf(&e, code, param, "%s", msg);
    req_fail(r, &e);
}

static void respond_text(srv_req *r, int status, char *body, size_t len, const char *type)
{
    if (!body) {
        respond_error(r, API_ERR_OUT_OF_MEMORY, NULL, "out of memory");
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

/* 200 with a copy of a document built into the binary (NUL-terminated). */
static void respond_copy(srv_req *r, const char *doc, size_t len, const char *type)
{
    char *body = malloc(len + 1);
    if (body)
        memcpy(body, doc, len + 1);
    respond_text(r, 200, body, len, type);
}

static void answer_get(srv_ctx *s, srv_req *r)
{
    size_t len = 0;
    char *body;
    switch (r->ep) {
    case EP_HEALTHZ:
    case EP_READYZ:
        if (atomic_load(&s->device_lost)) { /* both fail: the process must restart */
            respond_error(r, API_ERR_DEVICE_LOST, NULL, "the compute device failed: %s",
                          s->device_lost_msg);
        } else if (r->ep == EP_HEALTHZ) {
            body = api_status_json("ok", &len);
            respond_text(r, 200, body, len, "application/json");
        } else if (atomic_load(&s->ready)) {
            body = api_status_json("ready", &len);
            respond_text(r, 200, body, len, "application/json");
        } else {
            bool drain = atomic_load(&s->draining);
            respond_error(r, drain ? API_ERR_DRAINING : API_ERR_LOADING, NULL,
                          drain ? "the server is draining before it exits"
                                : "the model is still loading");
        }
        break;
    case EP_MODELS:
        if (!atomic_load(&s->ready) && !atomic_load(&s->draining)) {
            respond_error(r, API_ERR_LOADING, NULL, "the model is still loading");
            break;
        }
        { /* the SigLIP model, then the generative one */
            api_model_info m[2];
            int n = 0;
            if (s->model)
                m[n++] = (api_model_info){s->model_name, s->dim, "siglip"};
            if (s->pali) {
                const pali_info *info = pali_get_info(s->pali);
                m[n++] = (api_model_info){s->gen_model_name, 0,
                                          info->florence2   ? "florence2"
                                          : info->paligemma ? "paligemma"
                                                            : "pali3"};
            }
            body = api_models_json(m, n, PRISM_VERSION, s->created, &len);
        }
        respond_text(r, 200, body, len, "application/json");
        break;
    case EP_WEB:
        respond_copy(r, (const char *)prism_web_index_html, prism_web_index_html_len,
                     "text/html; charset=utf-8");
        break;
    case EP_OPENAPI:
        respond_copy(r, api_openapi_json, api_openapi_json_len, "application/json");
        break;
    case EP_METRICS: {
        metrics_gauges g = {0};
        pthread_mutex_lock(&s->mu);
        for (int t = 0; t < N_TASKS; t++)
            g.queue_depth[t] = s->q_len[t];
        g.items_in_flight = s->items_in_flight;
        g.requests_in_flight = s->open_requests;
        pthread_mutex_unlock(&s->mu);
        /* the backend, label cache and prep pointers are set while this
         * thread may already answer: read only after `loaded` published them */
        const bool loaded = atomic_load(&s->loaded);
        g.prep_queue_depth = loaded ? prep_queued(s->prep) : 0;
        g.label_cache_entries = loaded ? (long)lcache_size(s->labels) : 0;
        g.label_cache_bytes = loaded ? (long)lcache_bytes(s->labels) : 0;
        g.ready = atomic_load(&s->ready);
        prism_backend *be = loaded ? s->backend : NULL;
        prism_backend_memory mem;
        if (be && be->ops->memory_info && be->ops->memory_info(be, &mem) == 0) {
            g.have_backend_memory = true;
            g.backend_held = mem.held;
            g.device_total = mem.device_total;
            g.device_free = mem.device_free;
        }
        api_buf b = {0};
        metrics_render(&s->metrics, &g, s->model_name, be ? be->ops->name : "none", &b);
        body = api_buf_finish(&b, &len);
        respond_text(r, 200, body, len, "text/plain; version=0.0.4; charset=utf-8");
        break;
    }
    default:
        respond_error(r, API_ERR_INTERNAL_ERROR, NULL, "no handler");
    }
}

/* The headers that say how long a request's body is: every occurrence
 * (MHD's lookup finds only the first). */
typedef struct framing {
    int n_cl, n_te;
    const char *cl, *te; /* the first of each */
    bool cl_differ;      /* two Content-Length headers with different values */
} framing;

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    framing *f = cls;
    if (!value)
        value = "";
    if (strcasecmp(key, "Content-Length") == 0) {
        if (f->n_cl++ == 0)
            f->cl = value;
        else if (strcmp(f->cl, value) != 0)
            f->cl_differ = true;
    } else if (strcasecmp(key, "Transfer-Encoding") == 0) {
        if (f->n_te++ == 0)
            f->te = value;
    }
    return MHD_YES;
}

/* Refuses a request whose body length is ambiguous or not given by one
 * Content-Length (see the top of this file); true when it did. */
static bool framing_refused(srv_req *r, struct MHD_Connection *c, bool is_post)
{
    framing f = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, framing_header, &f);
    if (f.n_te && f.n_cl) {
        respond_error(r, API_ERR_INVALID_FRAMING, NULL,
                      "Content-Length and Transfer-Encoding together make the body's length "
                      "ambiguous; send only Content-Length");
    } else if (f.cl_differ) {
        respond_error(r, API_ERR_INVALID_FRAMING, NULL,
                      "several Content-Length headers with different values ('%.40s', ...)", f.cl);
    } else if (f.n_te == 1 && strcasecmp(f.te, "chunked") == 0) {
        respond_error(r, API_ERR_LENGTH_REQUIRED, NULL,
                      "a request body needs a Content-Length header (chunked uploads are not "
                      "accepted)");
    } else if (f.n_te) {
        respond_error(r, API_ERR_UNSUPPORTED_TRANSFER_ENCODING, NULL,
                      "Transfer-Encoding '%.100s'%s is not supported; send the body with a "
                      "Content-Length header", f.te, f.n_te > 1 ? " (and more)" : "");
    } else if (is_post && !f.n_cl) {
        respond_error(r, API_ERR_LENGTH_REQUIRED, NULL, "POST needs a Content-Length header");
    } else {
        return false;
    }
    return true;
}

/* A POST that passed every check: its body buffer, Content-Length bytes
 * with the Content-Type after them, if --body-budget has room (else 503). */
static void body_reserve(srv_ctx *s, srv_req *r, const char *cl, const char *ct)
{
    size_t len = (size_t)strtoull(cl, NULL, 10); /* digits only: MHD refused anything else */
    size_t ctn = strlen(ct), need = len + 1 + ctn + 1;
    if (!budget_take(s, need)) {
        r->retry_after = true;
        respond_error(r, API_ERR_SERVER_BUSY, NULL,
                      "the server is receiving too many request bodies at once (--body-budget "
                      "%lld bytes); retry shortly", s->cfg.body_budget);
        return;
    }
    r->body = malloc(need);
    if (!r->body) {
        atomic_fetch_sub(&s->http->body_bytes, (long long)need);
        r->retry_after = true;
        respond_error(r, API_ERR_OUT_OF_MEMORY, NULL, "out of memory for the body; retry shortly");
        return;
    }
    atomic_store(&r->body_charge, need);
    r->body_cap = len + 1;
    r->body_len = 0;
    r->body[0] = '\0';
    memcpy(r->body + len + 1, ct, ctn + 1);
    r->content_type = r->body + len + 1;
}

/* ---- CORS (--cors-origin) and the web page ---------------------------------
 *
 * With --cors-origin set, a page served from a listed origin may call the
 * /v1/ routes: its preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) is answered 204 from the headers alone,
 * before the API key is looked at (browsers send none with a preflight),
 * and every answer of a /v1/ route (errors and streams too) to a request
 * whose Origin is listed carries Access-Control-Allow-Origin. The list is
 * bounded at start (CORS_ORIGINS_MAX_BYTES); the Origin header by
 * libmicrohttpd's per-connection buffer, as every header is (431 past it).
 */

#define CORS_ORIGINS_MAX_BYTES 4096

/* What the page at / may load: its own inline script and style, data:
 * images (the picked image's preview, the icon), requests to this server
 * only. */
static const char web_csp[] =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

/* The next entry of a comma-separated list, spaces around it trimmed; false
 * past the last one (*p is then NULL). */
static bool list_next(const char **p, const char **item, size_t *len)
{
    if (!*p)
        return false;
    const char *s = *p, *comma = strchr(s, ',');
    size_t k = comma ? (size_t)(comma - s) : strlen(s);
    *p = comma ? comma + 1 : NULL;
    while (k && *s == ' ')
        s++, k--;
    while (k && s[k - 1] == ' ')
        k--;
    *item = s;
    *len = k;
    return true;
}

/* One listed origin as browsers write the Origin header: scheme://host or
 * scheme://host:port, lower case, no path. */
static bool cors_origin_ok(const char *o, size_t n)
{
    const char *sep = memmem(o, n, "://", 3);
    if (!sep || sep == o || (size_t)(sep - o) + 3 >= n)
        return false;
    for (const char *p = o; p < sep; p++)
        if (!((*p >= 'a' && *p <= 'z') ||
              (p > o && ((*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.'))))
            return false;
    for (const char *p = sep + 3; p < o + n; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
              *p == ':' || *p == '[' || *p == ']'))
            return false;
    return true;
}

/* --cors-origin at start: "", "*", or a list of origins; 0, or -1 with a
 * message. */
static int cors_check(const char *list, char *msg, size_t msg_len)
{
    size_t n = strlen(list);
    if (n > CORS_ORIGINS_MAX_BYTES) {
        snprintf(msg, msg_len, "--cors-origin is %zu bytes, over the limit of %d", n,
                 CORS_ORIGINS_MAX_BYTES);
        return -1;
    }
    if (n == 0 || strcmp(list, "*") == 0)
        return 0;
    const char *it;
    size_t k;
    for (const char *p = list; list_next(&p, &it, &k);)
        if (!cors_origin_ok(it, k)) {
            snprintf(msg, msg_len, "--cors-origin: '%.*s' is not an origin (scheme://host[:port] "
                     "in lower case, without a path, e.g. http://localhost:3000; or * alone)",
                     (int)(k > 200 ? 200 : k), it);
            return -1;
        }
    return 0;
}

/* The Access-Control-Allow-Origin value for a request, or NULL: CORS off,
 * not a /v1/ route, no Origin, or one that is not listed. */
static const char *cors_allowed(const srv_ctx *s, const srv_req *r, struct MHD_Connection *c)
{
    const char *list = s->cfg.cors_origin;
    if (!list || !list[0] || !r->api_path)
        return NULL;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!origin || !origin[0])
        return NULL;
    if (strcmp(list, "*") == 0)
        return "*";
    size_t n = strlen(origin);
    const char *it;
    size_t k;
    for (const char *p = list; list_next(&p, &it, &k);)
        if (k == n && memcmp(it, origin, n) == 0)
            return origin;
    return NULL;
}

/* A preflight from an allowed origin: 204 with the route's methods (sent as
 * Allow and Access-Control-Allow-Methods); true when it was one. */
static bool cors_preflight(srv_ctx *s, srv_req *r, struct MHD_Connection *c, const route *rt)
{
    if (!MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Method") ||
        !cors_allowed(s, r, c))
        return false;
    r->allow = rt->kind == ROUTE_GET ? "GET, HEAD" : "POST";
    req_respond(r, 204, NULL, 0, NULL);
    return true;
}

/* The CORS headers of an answer (a 204 is only ever a preflight's). */
static void cors_add_headers(const srv_ctx *s, const srv_req *r, struct MHD_Connection *c,
                             struct MHD_Response *resp)
{
    if (!s->cfg.cors_origin || !s->cfg.cors_origin[0] || !r->api_path)
        return;
    MHD_add_response_header(resp, "Vary", "Origin");
    const char *origin = cors_allowed(s, r, c);
    if (!origin)
        return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                            "Retry-After, WWW-Authenticate, X-Request-Id, X-Queue-Time-Ms, "
                            "X-Preprocess-Time-Ms, X-Inference-Time-Ms");
    if (r->status == 204) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", r->allow);
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, X-Request-Id");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
}

/* The first call of a request: everything decidable from its headers. */
static void request_begin(srv_ctx *s, srv_req *r, struct MHD_Connection *c, const char *url,
                          const char *method)
{
    const route *rt = route_find(url);
    r->ep = rt ? rt->ep : EP_OTHER;
    r->api_path = strncmp(url, "/v1/", 4) == 0;
    bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool is_post = strcmp(method, "POST") == 0;
    if (framing_refused(r, c, is_post))
        return;
    if (!rt) {
        respond_error(r, API_ERR_NOT_FOUND, NULL, "no route %s %.200s (see GET /openapi.json)",
                      method, url);
        return;
    }
    if (strcmp(method, "OPTIONS") == 0 && cors_preflight(s, r, c, rt))
        return;
    if ((rt->kind == ROUTE_GET && !is_get) || (rt->kind != ROUTE_GET && !is_post)) {
        r->allow = rt->kind == ROUTE_GET ? "GET, HEAD" : "POST";
        respond_error(r, API_ERR_METHOD_NOT_ALLOWED, NULL, "%s takes %s, not %s", rt->path,
                      r->allow, method);
        return;
    }
    if (rt->auth && s->cfg.api_key[0] && !api_key_ok(s, c)) {
        r->auth_challenge = true;
        respond_error(r, API_ERR_INVALID_API_KEY, NULL,
                      "missing or wrong API key (send 'Authorization: Bearer KEY')");
        return;
    }
    if (rt->kind == ROUTE_GET) {
        answer_get(s, r);
        return;
    }
    if (atomic_load(&s->draining)) {
        r->retry_after = true;
        respond_error(r, API_ERR_DRAINING, NULL, "the server is shutting down; retry elsewhere");
        return;
    }
    if (atomic_load(&s->device_lost)) {
        r->retry_after = true;
        respond_error(r, API_ERR_DEVICE_LOST, NULL,
                      "the compute device failed; this process must restart (retry elsewhere)");
        return;
    }
    if (!atomic_load(&s->ready)) {
        respond_error(r, API_ERR_LOADING, NULL, "the model is still loading; retry shortly");
        return;
    }
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    bool json = ct && strncasecmp(ct, "application/json", 16) == 0 &&
                (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
    bool multipart = api_is_multipart(ct);
    if (!json && !(multipart && rt->multipart)) {
        respond_error(r, API_ERR_UNSUPPORTED_MEDIA_TYPE, NULL,
                      "Content-Type must be application/json%s, not '%.100s'",
                      rt->multipart ? " or multipart/form-data" : "", ct ? ct : "(none)");
        return;
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (strtoull(cl, NULL, 10) > (unsigned long long)s->cfg.body_limit) {
        respond_error(r, API_ERR_BODY_TOO_LARGE, NULL, "the body (%s bytes) is over the limit of %lld",
                      cl, s->cfg.body_limit);
        return;
    }
    body_reserve(s, r, cl, ct);
    if (r->state != REQ_PENDING)
        return;
    r->op = rt->op;
    r->generative = rt->kind == ROUTE_GENERATIVE;
    r->method = r->generative ? "generative" : "model";
}

static void add_ms_header(struct MHD_Response *resp, const char *name, double seconds)
{
    char v[32];
    snprintf(v, sizeof v, "%.3f", seconds * 1e3);
    MHD_add_response_header(resp, name, v);
}

/* A streamed response's body (request.c): what the engine appended so far;
 * with nothing new the connection is suspended until the next push. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    return req_stream_read(cls, buf, max);
}

static void stream_free(void *cls)
{
    req_stream_closed(cls);
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
    if (r->status != 204) /* a preflight's answer has no body */
        MHD_add_response_header(resp, "Content-Type",
                                r->resp_type ? r->resp_type : "application/json");
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
    if (r->ep == EP_WEB) {
        MHD_add_response_header(resp, "Content-Security-Policy", web_csp);
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
    }
    cors_add_headers(s, r, c, resp);
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
        /* the headers are complete: a POST still to be answered waits for its
         * body (--body-timeout), anything else is being answered */
        http_conn *k = conn_of(c);
        bool wait_body = r->state == REQ_PENDING && r->body;
        if (k && wait_body) {
            pthread_mutex_lock(&s->http->mu);
            snprintf(k->req_id, sizeof k->req_id, "%s", r->id);
            pthread_mutex_unlock(&s->http->mu);
        }
        conn_set_phase(s->http, k, wait_body ? CONN_BODY : CONN_BUSY, s->cfg.body_timeout_s);
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
        if (r->state != REQ_PENDING || !r->body)
            return MHD_YES; /* answered already (e.g. 415): the rest is discarded */
        if (r->body_len + n + 1 > r->body_cap) { /* MHD delivers Content-Length bytes */
            respond_error(r, API_ERR_INVALID_FRAMING, NULL,
                          "the body is longer than its Content-Length");
            http_body_release(s, r);
            return MHD_YES;
        }
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = '\0';
        return MHD_YES;
    }
    /* the body is complete, or the connection was resumed; a connection the
     * reaper shut down (its body came too late) is closed */
    http_conn *k = conn_of(c);
    if (k) {
        pthread_mutex_lock(&s->http->mu);
        bool reaped = k->reaped;
        if (!reaped)
            k->phase = CONN_BUSY;
        pthread_mutex_unlock(&s->http->mu);
        if (reaped)
            return MHD_NO;
    }
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
    /* every complete body goes to the pipeline, even one for a model this
     * server lacks: a worker parses it (400) or answers 422 model_not_loaded,
     * so that no body is ever parsed on this thread */
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
    srv_ctx *s = cls;
    srv_req *r = *con_cls;
    /* the connection may carry another request: its headers are due again */
    http_conn *k = conn_of(c);
    bool timed_out = false;
    if (k) {
        pthread_mutex_lock(&s->http->mu);
        timed_out = k->reaped && k->phase == CONN_BODY;
        pthread_mutex_unlock(&s->http->mu);
        conn_set_phase(s->http, k, CONN_HEADERS, s->cfg.header_timeout_s);
    }
    if (!r)
        return;
    *con_cls = NULL;
    /* its body no longer counts against --body-budget once the request is
     * over on the HTTP side, even when a worker has not released it yet */
    body_uncharge(s, r);
    pthread_mutex_lock(&s->mu);
    if (r->state == REQ_PENDING) /* the client left before its answer */
        req_cancel_locked(r);
    bool answered = r->state == REQ_DONE;
    int status = timed_out ? 408
                 : answered && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status
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
    if (timed_out)
        log_str(&ln, "error", "body_timeout");
    else if (r->err_code[0])
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

static void http_state_free(http_state *h)
{
    if (!h)
        return;
    if (h->quiesced_fd >= 0)
        close(h->quiesced_fd);
    free(h->handed);
    pthread_cond_destroy(&h->wake);
    pthread_cond_destroy(&h->closed);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static http_state *http_state_create(void)
{
    http_state *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->quiesced_fd = -1;
    h->next_wake = prism_now() + 3600;
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* prism_now's clock */
    pthread_cond_init(&h->wake, &ca);
    pthread_cond_init(&h->closed, &ca);
    pthread_condattr_destroy(&ca);
    return h;
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
    if (cors_check(s->cfg.cors_origin, msg, msg_len))
        return -1;
    if (s->cfg.body_budget < s->cfg.body_limit) {
        snprintf(msg, msg_len, "--body-budget %lld is less than --body-limit %lld (one body "
                 "could never fit)", s->cfg.body_budget, s->cfg.body_limit);
        return -1;
    }
    s->http = http_state_create();
    if (!s->http || pthread_create(&s->http->reaper, NULL, reaper_main, s) != 0) {
        snprintf(msg, msg_len, "cannot start the connection reaper");
        http_state_free(s->http);
        s->http = NULL;
        return -1;
    }
    s->http->reaper_started = true;
    /* MHD_ALLOW_SUSPEND_RESUME includes MHD_USE_ITC, which
     * MHD_quiesce_daemon needs with an internal polling thread */
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, s, MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)60, MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections_per_ip,
        /* a pool only when asked for: the last option, or none */
        s->cfg.http_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
        (unsigned)s->cfg.http_threads, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(msg, msg_len, "cannot listen on %s:%lld (in use, or not allowed)", s->cfg.host,
                 s->cfg.port);
        http_stop(s);
        return -1;
    }
    return 0;
}

int http_port(srv_ctx *s)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return di ? di->port : (int)s->cfg.port;
}

/* The sockets http_quiesce hands to MHD, until MHD starts them (their
 * STARTED notification comes from MHD's thread, later). */
static void handed_add(http_state *h, int fd)
{
    pthread_mutex_lock(&h->mu);
    if (h->n_handed == h->cap_handed) {
        size_t cap = h->cap_handed ? 2 * h->cap_handed : 64;
        int *p = realloc(h->handed, cap * sizeof *p);
        if (p) {
            h->handed = p;
            h->cap_handed = cap;
        }
    }
    if (h->n_handed < h->cap_handed)
        h->handed[h->n_handed++] = fd;
    pthread_mutex_unlock(&h->mu);
}

static void handed_remove(http_state *h, int fd)
{
    pthread_mutex_lock(&h->mu);
    handed_remove_locked(h, fd);
    pthread_mutex_unlock(&h->mu);
}

void http_quiesce(srv_ctx *s)
{
    http_state *h = s->http;
    if (!s->daemon || !h || h->quiesced_fd >= 0)
        return;
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd == MHD_INVALID_SOCKET)
        return;
    /* MHD no longer accepts, but the kernel still completes handshakes into
     * the listen backlog, and a connection left there would be reset unseen
     * when the socket closes. So: (1) a filter that drops every packet to
     * the listening socket lets no further handshake complete (a client's
     * SYN is retried and then refused); (2) the connections the kernel
     * completed before it are accepted here and handed to MHD, which
     * answers them (503 while draining); (3) the socket stops listening:
     * new connections are refused. The descriptor stays open (MHD's thread
     * may still hold it) until http_stop. */
    struct sock_filter drop_all[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    struct sock_fprog prog = {.len = 1, .filter = drop_all};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0)
        log_msg(&s->log, LOG_WARN, "cannot filter the listening socket", strerror(errno));
    for (int i = 0; i < 1000000; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) != 1)
            break;
        struct sockaddr_storage a;
        socklen_t al = sizeof a;
        int c = accept4(fd, (struct sockaddr *)&a, &al, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0 && errno == EINTR)
            continue;
        if (c < 0)
            break;
        handed_add(h, c);
        if (MHD_add_connection(s->daemon, c, (struct sockaddr *)&a, al) != MHD_YES)
            handed_remove(h, c); /* MHD closed it */
    }
    shutdown(fd, SHUT_RDWR);
    h->quiesced_fd = fd;
    /* every connection still open finishes its answer and closes (answers
     * carry Connection: close while draining); one still waiting for its
     * headers is closed by its deadline at the latest */
    double until = prism_now() + s->cfg.header_timeout_s + 1;
    pthread_mutex_lock(&h->mu);
    while ((h->n_conns > 0 || h->n_handed > 0) && prism_now() < until) {
        double t = prism_now() + 0.1 < until ? prism_now() + 0.1 : until;
        struct timespec ts = {.tv_sec = (time_t)t};
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_nsec = 999999999L;
        pthread_cond_timedwait(&h->closed, &h->mu, &ts);
    }
    long left = h->n_conns;
    pthread_mutex_unlock(&h->mu);
    log_line ln;
    log_begin(&ln, &s->log, left ? LOG_WARN : LOG_INFO, "stopped accepting");
    log_int(&ln, "open_connections", left);
    log_end(&ln);
}

void http_stop(srv_ctx *s)
{
    if (s->daemon)
        MHD_stop_daemon(s->daemon); /* closes every connection: CLOSED notifications */
    s->daemon = NULL;
    http_state *h = s->http;
    if (!h)
        return;
    if (h->reaper_started) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->reaper, NULL);
    }
    http_state_free(h);
    s->http = NULL;
}

/* request.c - the lifetime of a request (srv_req), in one place.
 *
 * A request is created by the HTTP thread on the first callback of its HTTP
 * request and freed by whoever drops the last reference. Every holder takes
 * one with req_ref / req_ref_locked and gives it back with req_unref /
 * req_unref_locked; nothing outside this file touches the count:
 *
 *   HTTP connection   from req_create to the request-completed callback
 *   a queued job      parse, decode and finish jobs on the preprocessing
 *                     pool; a generation job in the engine's queue
 *   a queued item     an image or text waiting for, or in, an engine batch
 *   a stream reader   the body callback of a streamed (SSE) response
 *   the watcher       while it polls the connection of a suspended request
 *
 * The state moves once, under srv->mu, from PENDING to DONE (a response is
 * ready: req_respond, req_fail, req_stream_start) or CANCELLED (the client
 * went away: req_cancel); whoever moves it resumes the suspended connection,
 * and later work that still holds the request sees the state and drops its
 * result. A streamed response is DONE from its first event; its events are
 * appended by the engine (req_stream_push) and read by MHD (req_stream_read)
 * until the last one. Shutdown (req_abort_all) answers every request still
 * waiting with 503 and ends every open stream with an error event and
 * [DONE], so that no connection is left suspended.
 */
#define _GNU_SOURCE
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_gen.h"
#include "server.h"

srv_req *req_create(srv_ctx *s)
{
    srv_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->srv = s;
    r->refs = 1;
    r->state = REQ_PENDING;
    r->fd = -1;
    r->t_arrival = prism_now();
    r->deadline = r->t_arrival + s->cfg.request_timeout_s;
    r->ep = EP_OTHER;
    return r;
}

static void req_destroy(srv_req *r)
{
    api_request_free(&r->api);
    for (int t = 0; t < N_TASKS; t++)
        free(r->emb[t]);
    free(r->cached);
    http_body_release(r->srv, r);
    free(r->resp);
    free(r->sbuf);
    free(r);
}

void req_ref_locked(srv_req *r)
{
    r->refs++;
}

void req_ref(srv_req *r)
{
    pthread_mutex_lock(&r->srv->mu);
    req_ref_locked(r);
    pthread_mutex_unlock(&r->srv->mu);
}

void req_unref_locked(srv_req *r)
{
    if (--r->refs == 0)
        req_destroy(r);
}

void req_unref(srv_req *r)
{
    srv_ctx *s = r->srv;
    pthread_mutex_lock(&s->mu);
    req_unref_locked(r);
    pthread_mutex_unlock(&s->mu);
}

bool req_alive(srv_req *r)
{
    pthread_mutex_lock(&r->srv->mu);
    bool alive = r->state == REQ_PENDING;
    pthread_mutex_unlock(&r->srv->mu);
    return alive;
}

/* ---- suspended connections ------------------------------------------------ */

void req_suspend_locked(srv_req *r)
{
    srv_ctx *s = r->srv;
    MHD_suspend_connection(r->conn);
    r->suspended = true;
    r->prev = NULL;
    r->next = s->pending;
    if (s->pending)
        s->pending->prev = r;
    s->pending = r;
}

static void pending_unlink_locked(srv_ctx *s, srv_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (s->pending == r)
        s->pending = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void resume_locked(srv_ctx *s, srv_req *r)
{
    if (!r->suspended)
        return;
    pending_unlink_locked(s, r);
    r->suspended = false;
    MHD_resume_connection(r->conn);
}

/* ---- answers ---------------------------------------------------------------- */

void req_respond_locked(srv_req *r, int status, char *body, size_t len, const char *type)
{
    srv_ctx *s = r->srv;
    if (r->state != REQ_PENDING) {
        free(body);
        return;
    }
    r->state = REQ_DONE;
    r->status = status;
    r->resp = body;
    r->resp_len = len;
    r->resp_type = type;
    router_drop_locked(s, r);
    resume_locked(s, r);
}

void req_respond(srv_req *r, int status, char *body, size_t len, const char *type)
{
    pthread_mutex_lock(&r->srv->mu);
    req_respond_locked(r, status, body, len, type);
    pthread_mutex_unlock(&r->srv->mu);
}

void req_fail_locked(srv_req *r, const api_error *e)
{
    if (r->state != REQ_PENDING)
        return;
    char *body = api_error_json(e);
    snprintf(r->err_code, sizeof r->err_code, "%s", e->code);
    r->retry_after = e->status == 503;
    req_respond_locked(r, e->status, body, body ? strlen(body) : 0, "application/json");
}

void req_fail(srv_req *r, const api_error *e)
{
    pthread_mutex_lock(&r->srv->mu);
    req_fail_locked(r, e);
    pthread_mutex_unlock(&r->srv->mu);
}

void req_cancel_locked(srv_req *r)
{
    if (r->state != REQ_PENDING)
        return;
    r->state = REQ_CANCELLED;
    snprintf(r->err_code, sizeof r->err_code, "%s", api_code_name(API_ERR_CLIENT_DISCONNECTED));
    router_drop_locked(r->srv, r);
    resume_locked(r->srv, r);
}

/* ---- streams -------------------------------------------------------------- */

static void stream_unlink_locked(srv_ctx *s, srv_req *r)
{
    if (!r->s_listed)
        return;
    if (r->s_prev)
        r->s_prev->s_next = r->s_next;
    else
        s->streams = r->s_next;
    if (r->s_next)
        r->s_next->s_prev = r->s_prev;
    r->s_prev = r->s_next = NULL;
    r->s_listed = false;
}

bool req_stream_start_locked(srv_req *r)
{
    srv_ctx *s = r->srv;
    if (r->state != REQ_PENDING)
        return false;
    r->state = REQ_DONE;
    r->status = 200;
    r->resp_type = "text/event-stream";
    r->streaming = true;
    r->s_prev = NULL;
    r->s_next = s->streams;
    if (s->streams)
        s->streams->s_prev = r;
    s->streams = r;
    r->s_listed = true;
    router_drop_locked(s, r);
    resume_locked(s, r);
    return true;
}

void req_stream_push_locked(srv_req *r, const char *data, size_t n, bool done)
{
    if (!r->streaming || r->s_done)
        return;
    if (r->s_len + n > r->s_cap) {
        size_t cap = r->s_cap ? r->s_cap : 1024;
        while (cap < r->s_len + n)
            cap *= 2;
        char *b = realloc(r->sbuf, cap);
        if (!b) {
            done = true; /* out of memory: end the stream where it is */
            n = 0;
        } else {
            r->sbuf = b;
            r->s_cap = cap;
        }
    }
    if (n)
        memcpy(r->sbuf + r->s_len, data, n);
    r->s_len += n;
    r->s_done = done;
    if (done)
        stream_unlink_locked(r->srv, r);
    if (r->s_suspended && r->conn) {
        r->s_suspended = false;
        MHD_resume_connection(r->conn);
    }
}

void req_stream_end_locked(srv_req *r, const api_error *e)
{
    if (!r->streaming || r->s_done)
        return;
    api_buf b = {0};
    api_chat_error_end(&b, e);
    size_t len = 0;
    char *ev = api_buf_finish(&b, &len);
    if (ev)
        req_stream_push_locked(r, ev, len, true);
    else
        req_stream_push_locked(r, API_SSE_DONE, strlen(API_SSE_DONE), true);
    free(ev);
}

ssize_t req_stream_read(srv_req *r, char *buf, size_t max)
{
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

void req_stream_closed(srv_req *r)
{
    srv_ctx *s = r->srv;
    pthread_mutex_lock(&s->mu);
    stream_unlink_locked(s, r);
    req_unref_locked(r);
    pthread_mutex_unlock(&s->mu);
}

/* ---- shutdown --------------------------------------------------------------- */

void req_abort_all(srv_ctx *s)
{
    api_error e;
    api_errorf(&e, API_ERR_SHUTTING_DOWN, NULL, "the server is shutting down; retry elsewhere");
    pthread_mutex_lock(&s->mu);
    while (s->pending)
        req_fail_locked(s->pending, &e);
    while (s->streams)
        req_stream_end_locked(s->streams, &e);
    pthread_mutex_unlock(&s->mu);
}

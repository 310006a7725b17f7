/* test_server_http.c - the HTTP front of `prism serve` against hostile
 * clients: the real binary on a loopback port, raw sockets, the demo model.
 *
 * Covers the header and body deadlines (clients that trickle bytes), the
 * per-address and total connection caps, the body budget, request framing
 * (Transfer-Encoding, duplicate or missing Content-Length, an over-long
 * chunk line), a Content-Type longer than 255 bytes, a drain that answers
 * every connection it accepted, and that no body is parsed on the HTTP
 * thread. Flags are set small so that every case runs in seconds; every
 * loop is bounded in count and time.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server_checks.h"
#include "test_http.h"

#define DEMO PRISM_SOURCE_DIR "/models/demo"
#define EMBED_ONE "{\"texts\":[\"a photo of a cat\"]}"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* true when fd was closed by the server within timeout_s: EOF or reset,
 * sending one more byte every step_s meanwhile; *got: response bytes seen. */
static bool closed_while_trickling(int fd, double timeout_s, double step_s, size_t *got)
{
    double t0 = now_s();
    *got = 0;
    struct timeval tv = {.tv_sec = 0, .tv_usec = (suseconds_t)(step_s * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (now_s() - t0 < timeout_s) {
        char buf[4096];
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return true;
        if (k > 0) {
            *got += (size_t)k;
            continue;
        }
        if (send(fd, " ", 1, MSG_NOSIGNAL) < 0)
            return true;
    }
    return false;
}

/* ---- deadlines ------------------------------------------------------------ */

START_TEST(test_header_deadline)
{
    test_server s;
    static const char *const args[] = {"--header-timeout", "1", NULL};
    test_server_start(&s, DEMO, args);
    /* a few clients trickle header bytes, one every 100 ms: each byte would
     * reset an idle timeout */
    enum { N = 8 };
    int fd[N];
    for (int i = 0; i < N; i++) {
        fd[i] = http_connect(s.port);
        ck_assert_int_ge(fd[i], 0);
        static const char start[] = "POST /v1/embed HTTP/1.1\r\nX-Slow: ";
        ck_assert_int_eq(http_send_raw(fd[i], start, sizeof start - 1), 0);
    }
    double t0 = now_s();
    /* meanwhile a normal request on its own connection is answered */
    http_resp r;
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", EMBED_ONE, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    ck_assert_msg(now_s() - t0 < 1.0, "the normal request was answered only after the deadline");
    for (int i = 0; i < N; i++) {
        size_t got;
        /* closed at 1 s; 6 s is a generous margin, far below MHD's 60 s */
        ck_assert_msg(closed_while_trickling(fd[i], 6.0, 0.1, &got),
                      "a client trickling its headers was not disconnected");
        ck_assert_msg(got == 0, "a client without headers got %zu bytes of answer", got);
        close(fd[i]);
    }
    double took = now_s() - t0;
    ck_assert_msg(took >= 0.9, "disconnected after %g s, before the 1 s deadline", took);
    char *log = test_server_log(&s);
    ck_assert_msg(strstr(log, "\"reason\":\"header_timeout\""), "no log line for the reaped connection");
    free(log);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

START_TEST(test_body_deadline)
{
    test_server s;
    static const char *const args[] = {"--body-timeout", "1", NULL};
    test_server_start(&s, DEMO, args);
    int fd = http_connect(s.port);
    ck_assert_int_ge(fd, 0);
    static const char head[] = "POST /v1/embed HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Content-Type: application/json\r\nX-Request-Id: slow-body\r\n"
                               "Content-Length: 1000\r\n\r\n{\"texts\":[\"";
    ck_assert_int_eq(http_send_raw(fd, head, sizeof head - 1), 0);
    double t0 = now_s();
    http_resp r;
    ck_assert_int_eq(http_post_json(s.port, "/v1/embed", EMBED_ONE, &r), 0);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    ck_assert_msg(now_s() - t0 < 1.0, "the normal request was answered only after the deadline");
    /* one body byte every 100 ms: the connection ends at the deadline with
     * a 408 in the error shape */
    size_t got;
    ck_assert_msg(closed_while_trickling(fd, 6.0, 0.1, &got),
                  "a client trickling its body was not disconnected");
    double took = now_s() - t0;
    ck_assert_msg(took >= 0.9, "disconnected after %g s, before the 1 s deadline", took);
    close(fd);
    /* the bytes it got: read again on a fresh trickler, this time keeping them */
    fd = http_connect(s.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(http_send_raw(fd, head, sizeof head - 1), 0);
    ck_assert_int_eq(http_read_response(fd, 6.0, &r), 0);
    close(fd);
    test_expect_error(&r, 408, "body_timeout", NULL);
    char h[80];
    ck_assert_str_eq(http_header(&r, "X-Request-Id", h, sizeof h), "slow-body");
    http_resp_free(&r);
    char *log = test_server_log(&s);
    ck_assert_msg(strstr(log, "\"request_id\":\"slow-body\",\"route\":\"/v1/embed\",\"status\":408"),
                  "the timed-out request is not logged as 408: %s", log);
    free(log);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

/* ---- connection caps ------------------------------------------------------ */

/* Holds n connections open with a partial request; returns how many of
 * them were accepted and still open afterwards (a refused one is closed by
 * the server at once). */
static void hold_connections(int port, int *fd, int n)
{
    static const char part[] = "GET /healthz HTTP/1.1\r\n";
    for (int i = 0; i < n; i++) {
        fd[i] = http_connect(port);
        ck_assert_int_ge(fd[i], 0);
        ck_assert_int_eq(http_send_raw(fd[i], part, sizeof part - 1), 0);
    }
}

/* A request on a new connection: its status, 0 when the server closed the
 * connection without an answer, -1 when the connection was refused. */
static int try_get(int port)
{
    http_resp r;
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (http_raw(port, req, sizeof req - 1, 5.0, &r) != 0)
        return -1;
    int st = r.status;
    http_resp_free(&r);
    return st;
}

/* The cap-th + 1 connection is closed unanswered while cap are held; once
 * one of them closes, a new one is served again (MHD frees the slot when it
 * cleans the connection up: a bounded wait). */
static void check_cap(int port, int cap)
{
    int fd[16];
    ck_assert_int_le(cap, 16);
    hold_connections(port, fd, cap);
    usleep(200000); /* every one accepted */
    int st = try_get(port);
    ck_assert_msg(st <= 0, "connection %d over the cap of %d was served (%d)", cap + 1, cap, st);
    close(fd[0]);
    double t0 = now_s();
    while ((st = try_get(port)) != 200 && now_s() - t0 < 5)
        usleep(50000);
    ck_assert_int_eq(st, 200);
    for (int i = 1; i < cap; i++)
        close(fd[i]);
}

START_TEST(test_connection_caps)
{
    test_server s;
    static const char *const args[] = {"--max-connections-per-ip", "4", NULL};
    test_server_start(&s, DEMO, args);
    check_cap(s.port, 4);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);

    static const char *const args2[] = {"--max-connections", "3", NULL};
    test_server_start(&s, DEMO, args2);
    check_cap(s.port, 3);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

/* ---- body budget ---------------------------------------------------------- */

/* A valid /v1/embed body of exactly n bytes (padded with JSON whitespace). */
static char *padded_body(size_t n)
{
    char *b = malloc(n + 1);
    size_t k = strlen(EMBED_ONE);
    ck_assert_uint_ge(n, k);
    memcpy(b, EMBED_ONE, k);
    memset(b + k, ' ', n - k);
    b[n] = '\0';
    return b;
}

static void post_sized(int port, size_t n, http_resp *r)
{
    char *b = padded_body(n);
    ck_assert_int_eq(http_request(port, "POST", "/v1/embed", "Content-Type: application/json\r\n",
                                  b, n, r),
                     0);
    free(b);
}

START_TEST(test_body_budget)
{
    test_server s;
    /* room for one 60 KB body at a time, not two */
    static const char *const args[] = {"--body-limit", "64K", "--body-budget", "100K", NULL};
    test_server_start(&s, DEMO, args);
    enum { BIG = 60000 };
    char *big = padded_body(BIG);
    int fd = http_connect(s.port);
    ck_assert_int_ge(fd, 0);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "POST /v1/embed HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
                      BIG);
    ck_assert_int_eq(http_send_raw(fd, head, (size_t)hn), 0);
    ck_assert_int_eq(http_send_raw(fd, big, BIG / 2), 0); /* half of it, held */
    usleep(200000);
    http_resp r;
    post_sized(s.port, BIG, &r); /* does not fit beside the held one */
    test_expect_error(&r, 503, "server_busy", NULL);
    char h[32];
    ck_assert_ptr_nonnull(http_header(&r, "Retry-After", h, sizeof h));
    http_resp_free(&r);
    post_sized(s.port, 1000, &r); /* a small one still fits */
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    /* the held body completes and is answered; its bytes are given back */
    ck_assert_int_eq(http_send_raw(fd, big + BIG / 2, BIG - BIG / 2), 0);
    ck_assert_int_eq(http_read_response(fd, 30.0, &r), 0);
    close(fd);
    ck_assert_int_eq(r.status, 200);
    http_resp_free(&r);
    for (int i = 0; i < 5; i++) { /* one after another, each fits again */
        post_sized(s.port, BIG, &r);
        ck_assert_msg(r.status == 200, "body %d after the budget was freed: %d %s", i, r.status,
                      r.body);
        http_resp_free(&r);
    }
    free(big);
    ck_assert_int_eq(test_server_stop(&s, SIGTERM), 0);
}
END_TEST

/* ---- framing -------------------------------------------------------------- */

static test_server shared; /* one server for the cases that need no flags */

static void start_shared(void)
{
    test_server_start(&shared, DEMO, NULL);
}

static void stop_shared(void)
{
    ck_assert_int_eq(test_server_stop(&shared, SIGTERM), 0);
}

#define POST_HEAD "POST /v1/embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"

static void raw_case(const char *what, const char *req, size_t len, int status, const char *code)
{
    http_resp r;
    ck_assert_int_eq(http_raw(shared.port, req, len, 5.0, &r), 0);
    ck_assert_msg(r.status != 0, "%s: no answer", what);
    ck_assert_msg(r.status == status, "%s: %d, expected %d: %s", what, r.status, status, r.body);
    if (code)
        test_expect_error(&r, status, code, NULL);
    http_resp_free(&r);
}

START_TEST(test_framing)
{
    const char *body = EMBED_ONE;
    char req[512];
    int n;
    /* an unsupported transfer coding: 501, not a body read until EOF */
    n = snprintf(req, sizeof req, POST_HEAD "Transfer-Encoding: gzip, chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                 strlen(body), body);
    raw_case("gzip, chunked", req, (size_t)n, 501, "unsupported_transfer_encoding");
    /* two different lengths: refused, not the first one taken */
    n = snprintf(req, sizeof req, POST_HEAD "Content-Length: %zu\r\nContent-Length: 3\r\n\r\n%s",
                 strlen(body), body);
    raw_case("two Content-Length", req, (size_t)n, 400, "invalid_framing");
    /* Content-Length and chunked together (request smuggling) */
    n = snprintf(req, sizeof req,
                 POST_HEAD "Content-Length: %zu\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                 strlen(body), strlen(body), body);
    raw_case("Content-Length + chunked", req, (size_t)n, 400, "invalid_framing");
    /* no length at all */
    n = snprintf(req, sizeof req, POST_HEAD "\r\n%s", body);
    raw_case("no Content-Length", req, (size_t)n, 411, "length_required");
    /* chunked: 411 (a body needs a Content-Length) */
    n = snprintf(req, sizeof req, POST_HEAD "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                 strlen(body), body);
    raw_case("chunked", req, (size_t)n, 411, "length_required");
    /* a 100 KB chunk extension: libmicrohttpd would answer its own 500 */
    size_t ext = 100000, cap = ext + 512;
    char *big = malloc(cap);
    n = snprintf(big, cap, POST_HEAD "Transfer-Encoding: chunked\r\n\r\n%zx;", strlen(body));
    memset(big + n, 'e', ext);
    n += (int)ext;
    n += snprintf(big + n, cap - (size_t)n, "\r\n%s\r\n0\r\n\r\n", body);
    raw_case("100 KB chunk extension", big, (size_t)n, 411, "length_required");
    free(big);
    /* a Content-Length that is not a number: libmicrohttpd answers 400
     * itself before any callback (its own body, not the error shape) */
    n = snprintf(req, sizeof req, POST_HEAD "Content-Length: 7, 7\r\n\r\n%s", body);
    raw_case("Content-Length list", req, (size_t)n, 400, NULL);
    /* two equal lengths are one length */
    n = snprintf(req, sizeof req, POST_HEAD "Content-Length: %zu\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(body), strlen(body), body);
    raw_case("two equal Content-Length", req, (size_t)n, 200, NULL);
}
END_TEST

/* ---- a long Content-Type -------------------------------------------------- */

START_TEST(test_long_content_type)
{
    /* a 600-byte multipart Content-Type, its boundary at the very end */
    char ct[700];
    int k = snprintf(ct, sizeof ct, "Content-Type: multipart/form-data; x-pad=\"");
    while (k < 575)
        ct[k++] = 'p';
    k += snprintf(ct + k, sizeof ct - (size_t)k, "\"; boundary=END-OF-A-LONG-HEADER");
    ck_assert_int_ge(k - 14, 590); /* the value, without "Content-Type: " */
    snprintf(ct + k, sizeof ct - (size_t)k, "\r\n");
    static const char body[] = "--END-OF-A-LONG-HEADER\r\n"
                               "Content-Disposition: form-data; name=\"texts\"\r\n\r\n"
                               "a photo of a cat\r\n"
                               "--END-OF-A-LONG-HEADER--\r\n";
    http_resp r;
    ck_assert_int_eq(http_request(shared.port, "POST", "/v1/embed", ct, body, sizeof body - 1, &r),
                     0);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    json_t *v = test_json_body(&r);
    ck_assert_int_eq((int)json_array_size(json_object_get(v, "text_embeddings")), 1);
    json_decref(v);
    http_resp_free(&r);
}
END_TEST

/* ---- no parsing on the HTTP thread ---------------------------------------- */

typedef struct big_post {
    int port;
    const char *path;
    char *body;
    size_t len;
    atomic_bool started, done;
    double t_start, t_done;
    http_resp r;
} big_post;

static void *big_post_main(void *p)
{
    big_post *b = p;
    int fd = http_connect(b->port);
    if (fd >= 0) {
        char head[256];
        int n = snprintf(head, sizeof head,
                         "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                         "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                         b->path, b->len);
        b->t_start = now_s();
        atomic_store(&b->started, true);
        http_send_raw(fd, head, (size_t)n);
        http_send_raw(fd, b->body, b->len);
        http_read_response(fd, 60.0, &b->r);
        close(fd);
    }
    b->t_done = now_s();
    atomic_store(&b->done, true);
    return NULL;
}

/* The slowest /healthz answer, asking one after another until *stop (at
 * most max_n times). */
static double slowest_healthz(int port, int max_n, atomic_bool *stop)
{
    double worst = 0;
    for (int i = 0; i < max_n && !(stop && atomic_load(stop)); i++) {
        http_resp r;
        ck_assert_int_eq(http_get(port, "/healthz", &r), 0);
        ck_assert_int_eq(r.status, 200);
        if (r.seconds > worst)
            worst = r.seconds;
        http_resp_free(&r);
    }
    return worst;
}

START_TEST(test_no_parse_on_http_thread)
{
    /* a SigLIP server: /v1/caption needs a model it lacks; its 25 MB JSON
     * body is checked on a worker, so /healthz stays as fast as without it */
    size_t len = 25u << 20;
    big_post b = {.port = shared.port, .path = "/v1/caption", .len = len};
    b.body = malloc(len + 1);
    static const char open_[] = "{\"numbers\":[";
    size_t k = sizeof open_ - 1;
    memcpy(b.body, open_, k);
    while (k + 4 < len) {
        memcpy(b.body + k, "1,", 2);
        k += 2;
    }
    memcpy(b.body + k, "1]}", 3);
    k += 3;
    memset(b.body + k, ' ', len - k);
    b.body[len] = '\0';
    pthread_t th;
    pthread_create(&th, NULL, big_post_main, &b);
    double t0 = now_s();
    while (!atomic_load(&b.started) && now_s() - t0 < 30)
        usleep(1000);
    /* /healthz one after another for as long as the big request runs */
    double during = slowest_healthz(shared.port, 100000, &b.done);
    pthread_join(th, NULL);
    test_expect_error(&b.r, 422, "model_not_loaded", NULL);
    http_resp_free(&b.r);
    free(b.body);
    /* parsing 25 MB of JSON is most of the big request's time: a /healthz
     * stuck behind that parse would take a large share of it; answered
     * beside it, a tiny one */
    double big = b.t_done - b.t_start;
    ck_assert_msg(during < 0.25 * big,
                  "/healthz took up to %.3f s while a %.3f s request's body was checked: it "
                  "waited for the parse", during, big);
}
END_TEST

/* ---- drain ---------------------------------------------------------------- */

typedef struct drain_client {
    int port, id;
    int ok, refused;
    int unanswered;          /* connected, then closed without an answer */
    char lost_ids[64][40];   /* their X-Request-Ids (the first 64) */
} drain_client;

static void *drain_client_main(void *p)
{
    drain_client *c = p;
    double t0 = now_s();
    for (int i = 0; i < 5000 && now_s() - t0 < 20; i++) {
        char rid[40], req[512];
        snprintf(rid, sizeof rid, "drain-%d-%d", c->id, i);
        int n = i % 2 ? snprintf(req, sizeof req,
                                 "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                 "X-Request-Id: %s\r\n\r\n", rid)
                      : snprintf(req, sizeof req,
                                 POST_HEAD "Connection: close\r\nX-Request-Id: %s\r\n"
                                           "Content-Length: %zu\r\n\r\n%s",
                                 rid, strlen(EMBED_ONE), EMBED_ONE);
        http_resp r;
        if (http_raw(c->port, req, (size_t)n, 10.0, &r) != 0) {
            c->refused++;
            break; /* no longer listening */
        }
        bool complete = (r.status == 200 || r.status == 503) &&
                        strstr(r.head, "Content-Length") != NULL;
        char cl[32];
        if (complete && http_header(&r, "Content-Length", cl, sizeof cl))
            complete = (size_t)atol(cl) == r.body_len;
        if (complete) {
            c->ok++;
        } else if (r.status == 0 && r.raw_len == 0) {
            /* connected, then reset with nothing read: a handshake the
             * kernel finished as the listener closed (the request never
             * reached the server; checked against its log below) */
            if (c->unanswered < 64)
                snprintf(c->lost_ids[c->unanswered], sizeof c->lost_ids[0], "%s", rid);
            c->unanswered++;
            break;
        } else {
            if (c->unanswered < 64)
                snprintf(c->lost_ids[c->unanswered], sizeof c->lost_ids[0], "%s", rid);
            c->unanswered++;
        }
        http_resp_free(&r);
    }
    return NULL;
}

START_TEST(test_drain_answers_every_connection)
{
    test_server s;
    test_server_start(&s, DEMO, NULL);
    enum { N = 4 };
    drain_client c[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        c[i] = (drain_client){.port = s.port, .id = i};
        pthread_create(&th[i], NULL, drain_client_main, &c[i]);
    }
    usleep(300000);
    kill(s.pid, SIGTERM);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += c[i].ok;
    }
    int status = test_server_wait(&s, 60);
    char *log = test_server_log(&s);
    unlink(s.log_path);
    ck_assert_msg(status == 0, "exit status %d", status);
    ck_assert_msg(ok > N, "only %d answers before the drain", ok);
    /* every request the server saw was answered in full: a connection is
     * refused, or answered, or - when its handshake raced the closing
     * listener - reset before the server ever read it (never logged) */
    for (int i = 0; i < N; i++) {
        ck_assert_msg(c[i].refused + c[i].unanswered == 1, "client %d was never refused", i);
        for (int j = 0; j < c[i].unanswered && j < 64; j++) {
            char key[64];
            snprintf(key, sizeof key, "\"request_id\":\"%s\"", c[i].lost_ids[j]);
            ck_assert_msg(!strstr(log, key), "request %s was logged but its answer never came",
                          c[i].lost_ids[j]);
        }
        ck_assert_msg(c[i].unanswered <= 1,
                      "client %d: %d connections closed without an answer (%s)", i,
                      c[i].unanswered, c[i].lost_ids[0]);
    }
    ck_assert_msg(strstr(log, "\"msg\":\"stopped accepting\""), "no quiesce in the log");
    free(log);
}
END_TEST

/* ---- settings ------------------------------------------------------------- */

START_TEST(test_help_lists_limits)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s serve --help", PRISM_BIN);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    static const char *const flags[] = {"--header-timeout", "PRISM_HEADER_TIMEOUT",
                                        "--body-timeout", "PRISM_BODY_TIMEOUT",
                                        "--max-connections ", "PRISM_MAX_CONNECTIONS,",
                                        "--max-connections-per-ip", "PRISM_MAX_CONNECTIONS_PER_IP",
                                        "--body-budget", "PRISM_BODY_BUDGET"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        ck_assert_msg(strstr(buf, flags[i]), "--help lacks %s", flags[i]);
    /* a budget that could never hold one body is refused at start */
    snprintf(cmd, sizeof cmd,
             "%s serve --model %s --port 0 --body-limit 1M --body-budget 64K 2>&1", PRISM_BIN,
             DEMO);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    ck_assert_int_ne(pclose(p), 0);
    ck_assert_msg(strstr(buf, "--body-budget"), "%s", buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server_http");
    TCase *own = tcase_create("own_server");
    tcase_set_timeout(own, 120);
    tcase_add_test(own, test_header_deadline);
    tcase_add_test(own, test_body_deadline);
    tcase_add_test(own, test_connection_caps);
    tcase_add_test(own, test_body_budget);
    tcase_add_test(own, test_drain_answers_every_connection);
    tcase_add_test(own, test_help_lists_limits);
    suite_add_tcase(s, own);
    TCase *sh = tcase_create("shared_server");
    tcase_set_timeout(sh, 120);
    tcase_add_unchecked_fixture(sh, start_shared, stop_shared);
    tcase_add_test(sh, test_framing);
    tcase_add_test(sh, test_long_content_type);
    tcase_add_test(sh, test_no_parse_on_http_thread);
    suite_add_tcase(s, sh);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* test_http.c - HTTP client and server process for integration tests (see
 * test_http.h). */
#define _GNU_SOURCE
#include "test_http.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 60};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int send_request(int fd, const char *method, const char *path, const char *headers,
                        const void *body, size_t len)
{
    char head[4096];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, headers ? headers : "", len);
    if (n <= 0 || (size_t)n >= sizeof head)
        return -1;
    if (write_all(fd, head, (size_t)n))
        return -1;
    return len ? write_all(fd, body, len) : 0;
}

/* Reads until EOF, or an error (the socket's receive timeout included); the
 * bytes and their count (malloc'd, NUL-terminated). */
static char *recv_all(int fd, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* recv_all, giving up after `timeout_s` without a byte. */
static char *read_all(int fd, double timeout_s, size_t *len)
{
    struct timeval tv = {.tv_sec = (time_t)timeout_s,
                         .tv_usec = (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return recv_all(fd, len);
}

/* Splits buf (n bytes, consumed) into out: status 0 when it holds no
 * status line and header end. */
static void parse_response(char *buf, size_t n, http_resp *out)
{
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1) {
        free(buf);
        out->status = 0;
        out->head = strdup("");
        out->body = strdup("");
        return;
    }
    *sep = '\0';
    out->head = strdup(buf);
    out->body_len = n - (size_t)(sep + 4 - buf);
    out->body = malloc(out->body_len + 1);
    memcpy(out->body, sep + 4, out->body_len);
    out->body[out->body_len] = '\0';
    free(buf);
}

int http_connect(int port)
{
    return connect_local(port);
}

int http_send_raw(int fd, const void *data, size_t len)
{
    return write_all(fd, data, len);
}

int http_read_response(int fd, double timeout_s, http_resp *out)
{
    memset(out, 0, sizeof *out);
    double t0 = now_s();
    size_t n;
    char *buf = read_all(fd, timeout_s, &n);
    out->seconds = now_s() - t0;
    out->raw_len = n;
    parse_response(buf, n, out);
    return 0;
}

int http_raw(int port, const void *data, size_t len, double timeout_s, http_resp *out)
{
    memset(out, 0, sizeof *out);
    int fd = connect_local(port);
    if (fd < 0)
        return -1;
    write_all(fd, data, len); /* an early answer may close the connection: read it anyway */
    http_read_response(fd, timeout_s, out);
    close(fd);
    return 0;
}

int http_request(int port, const char *method, const char *path, const char *headers,
                 const void *body, size_t len, http_resp *out)
{
    memset(out, 0, sizeof *out);
    double t0 = now_s();
    int fd = connect_local(port);
    if (fd < 0)
        return -1;
    /* a server may answer early (413, 415) and close: ignore send errors
     * then, read what came back */
    send_request(fd, method, path, headers, body, len);
    size_t n;
    char *buf = recv_all(fd, &n);
    close(fd);
    out->seconds = now_s() - t0;
    out->raw_len = n;
    parse_response(buf, n, out);
    return out->status == 0 && n == 0 ? -1 : 0;
}

int http_post_json(int port, const char *path, const char *json, http_resp *out)
{
    return http_request(port, "POST", path, "Content-Type: application/json\r\n", json,
                        strlen(json), out);
}

int http_get(int port, const char *path, http_resp *out)
{
    return http_request(port, "GET", path, NULL, NULL, 0, out);
}

const char *http_header(const http_resp *r, const char *name, char *buf, size_t n)
{
    size_t k = strlen(name);
    for (const char *p = r->head; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            eol = p + strlen(p);
        if ((size_t)(eol - p) > k && strncasecmp(p, name, k) == 0 && p[k] == ':') {
            const char *v = p + k + 1;
            while (*v == ' ')
                v++;
            snprintf(buf, n, "%.*s", (int)(eol - v), v);
            return buf;
        }
        p = *eol ? eol + 2 : eol;
    }
    return NULL;
}

void http_resp_free(http_resp *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

int http_send_and_close(int port, const char *path, const char *json)
{
    int fd = connect_local(port);
    if (fd < 0)
        return -1;
    int rc = send_request(fd, "POST", path, "Content-Type: application/json\r\n", json,
                          strlen(json));
    close(fd);
    return rc;
}

char *test_server_log(const test_server *s)
{
    FILE *f = fopen(s->log_path, "r");
    if (!f)
        return strdup("");
    size_t cap = 1 << 16, n = 0, k;
    char *buf = malloc(cap);
    while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

void test_server_start(test_server *s, const char *model, const char *const *args)
{
    memset(s, 0, sizeof *s);
    snprintf(s->log_path, sizeof s->log_path, "/tmp/prism-test-server-%d-%ld.log", (int)getpid(),
             (long)(now_s() * 1e6));
    const char *argv[64];
    int n = 0;
    argv[n++] = PRISM_BIN;
    argv[n++] = "serve";
    argv[n++] = "--model";
    argv[n++] = model;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--log-format";
    argv[n++] = "json";
    argv[n++] = "--threads";
    argv[n++] = "2";
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        execv(PRISM_BIN, (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    /* the port from the "listening" line, then /readyz == 200 */
    double t0 = now_s();
    while (now_s() - t0 < 60) {
        if (!s->port) {
            char *log = test_server_log(s);
            const char *p = strstr(log, "\"msg\":\"listening\"");
            const char *q = p ? strstr(p, "\"port\":") : NULL;
            if (q)
                s->port = atoi(q + 7);
            free(log);
        }
        if (s->port) {
            http_resp r;
            if (http_get(s->port, "/readyz", &r) == 0 && r.status == 200) {
                http_resp_free(&r);
                return;
            }
            http_resp_free(&r);
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char *log = test_server_log(s);
            ck_abort_msg("prism serve exited during startup: %s", log);
        }
        usleep(20000);
    }
    char *log = test_server_log(s);
    ck_abort_msg("prism serve not ready within 60 s: %s", log);
}

int test_server_wait(test_server *s, double timeout_s)
{
    if (s->pid <= 0)
        return -1;
    int st = 0;
    double t0 = now_s();
    while (waitpid(s->pid, &st, WNOHANG) == 0) {
        if (now_s() - t0 > timeout_s) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            break;
        }
        usleep(10000);
    }
    s->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int test_server_stop(test_server *s, int sig)
{
    if (s->pid <= 0)
        return -1;
    if (sig)
        kill(s->pid, sig);
    int st = 0;
    double t0 = now_s();
    while (waitpid(s->pid, &st, WNOHANG) == 0) {
        if (now_s() - t0 > 60) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            break;
        }
        usleep(10000);
    }
    s->pid = 0;
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (status != 0) { /* show why (a sanitizer report, a failed drain) */
        char *log = test_server_log(s);
        size_t n = strlen(log);
        fprintf(stderr, "prism serve exited with %d; the end of its log:\n%s\n", status,
                log + (n > 6000 ? n - 6000 : 0));
        free(log);
    }
    unlink(s->log_path);
    return status;
}

double test_metric(const char *text, const char *series)
{
    size_t k = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, k) == 0 && p[k] == ' ')
            return strtod(p + k + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

/* test_http.h - a real HTTP client and a real `prism serve` for the
 * integration tests.
 *
 * The client speaks HTTP/1.1 over a TCP socket to 127.0.0.1 (one request
 * per connection, `Connection: close`, the response read to EOF). The
 * server is the built binary, started on port 0 (the kernel picks a free
 * port; the test reads it from the "listening" log line) with its stderr
 * in a file the test can read.
 */
#ifndef PRISM_TEST_HTTP_H
#define PRISM_TEST_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct http_resp {
    int status;      /* 0 when no response came */
    char *head;      /* status line + headers, NUL-terminated */
    char *body;      /* NUL-terminated */
    size_t body_len;
    double seconds;  /* request to last byte */
    size_t raw_len;  /* http_read_response, http_raw: bytes received in all */
} http_resp;

/* Sends one request; headers are extra "Name: value\r\n" lines (may be
 * NULL). Returns 0, or -1 when the connection failed. */
int http_request(int port, const char *method, const char *path, const char *headers,
                 const void *body, size_t len, http_resp *out);
/* A POST of a JSON body. */
int http_post_json(int port, const char *path, const char *json, http_resp *out);
int http_get(int port, const char *path, http_resp *out);
/* The value of a response header (case-insensitive name), copied into buf;
 * NULL when absent. */
const char *http_header(const http_resp *r, const char *name, char *buf, size_t n);
void http_resp_free(http_resp *r);

/* Sends a request and closes the socket without reading the answer
 * (a client that gives up). */
int http_send_and_close(int port, const char *path, const char *json);

/* Raw sockets, for requests the client above would not send (broken
 * framing, trickled bytes, connections held open). */
/* A connected socket to 127.0.0.1:port, or -1. */
int http_connect(int port);
/* Sends all of data; 0, or -1 when the connection failed. */
int http_send_raw(int fd, const void *data, size_t len);
/* Reads until EOF, an error or timeout_s without a byte, and parses what
 * came (status 0: no response; raw_len: bytes received). */
int http_read_response(int fd, double timeout_s, http_resp *out);
/* Connects, sends data as it is, reads as http_read_response, closes.
 * -1 when the connection was refused. */
int http_raw(int port, const void *data, size_t len, double timeout_s, http_resp *out);

typedef struct test_server {
    pid_t pid;
    int port;
    char log_path[256];
} test_server;

/* Starts PRISM_BIN serve --model MODEL --port 0 ARGS... (NULL-terminated)
 * and waits until /readyz answers 200. Fails the test on a timeout. */
void test_server_start(test_server *s, const char *model, const char *const *args);
/* Sends sig (0: none) and waits for the exit; returns the exit status (or
 * 128+signal). */
int test_server_stop(test_server *s, int sig);
/* Waits (at most timeout_s, then SIGKILL) for a server that exits by
 * itself; returns its exit status as test_server_stop does, and keeps its
 * log file (the caller unlinks s->log_path). */
int test_server_wait(test_server *s, double timeout_s);
/* The server's log so far (malloc'd). */
char *test_server_log(const test_server *s);

/* Reads a sample of the metrics exposition: the value of the line that
 * starts with `series` (name and labels exactly as written), or -1. */
double test_metric(const char *exposition, const char *series);

#endif

/* server.h - the state of `prism serve`, shared by its modules.
 *
 * One srv_ctx holds everything (no globals): the model and its engine
 * worker (router.c), the preprocessing pool (prep.c), the request pipeline
 * (pipeline.c, generate.c), the HTTP daemon (http.c), metrics, logs and the
 * label cache. main creates it (serve.c) and passes it around.
 *
 * A request (srv_req) lives from the first callback of its HTTP request
 * until its last holder lets it go; request.c owns that lifetime (the
 * reference count, the state moving once from PENDING to DONE or
 * CANCELLED, suspended connections, streamed responses, shutdown) and its
 * header comment lists the holders.
 *
 * Lock order: srv->mu, then prep->mu. The engine worker waits on srv->work
 * (queues) and the watcher on its eventfd.
 */
#ifndef PRISM_SERVER_SERVER_H
#define PRISM_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "api_error.h"
#include "api_request.h"
#include "config.h"
#include "inputs.h"
#include "label_cache.h"
#include "log.h"
#include "metrics.h"
#include "florence2_tasks.h"
#include "pali.h"
#include "prep.h"
#include "siglip.h"
#if defined(PRISM_HAVE_IMAGE)
#include "image.h"
#endif

struct MHD_Daemon;
struct http_state;
struct MHD_Connection;

enum { TASK_IMAGE = 0, TASK_TEXT = 1, N_TASKS = 2 };

typedef enum req_state { REQ_PENDING, REQ_DONE, REQ_CANCELLED } req_state;

typedef struct srv_req srv_req;

/* One image or text of a request, waiting for (or in) an engine batch. */
typedef struct srv_item {
    struct srv_item *prev, *next; /* in its task queue */
    srv_req *req;                 /* holds a reference */
    int task;
    int row;                      /* row of req->emb[task] it fills */
    double t_enqueue;
    float *pixels;                /* image: C*S*S floats, NaFlex: rows*cols patch rows (malloc'd) */
    int rows, cols;               /* NaFlex image: its patch grid (spatial_shapes) */
    int32_t *ids;                 /* text: T ids (malloc'd) */
    int n_tokens;                 /* text: ids that are not padding */
} srv_item;

typedef struct srv_ctx srv_ctx;

struct srv_req {
    srv_ctx *srv;
    /* under srv->mu */
    int refs;
    req_state state;
    bool async;            /* handed to the pipeline (counts as accepted work) */
    bool suspended;        /* the connection waits for MHD_resume_connection */
    srv_req *prev, *next;  /* srv->pending: suspended requests (watcher, shutdown) */
    int reserved[N_TASKS]; /* items admitted but not yet queued */
    int n_items, n_done;   /* engine items of the request and those computed */

    /* set by the HTTP thread */
    bool generative;       /* its route needs the generative model (caption, vqa, chat) */
    struct MHD_Connection *conn;
    int fd;                /* the connection's socket, polled for hang-ups while suspended */
    char id[72];
    metrics_endpoint ep;
    api_op op;
    const char *method;
    double t_arrival, deadline;
    /* the body and its Content-Type (http.c): one allocation, the body
     * then the header's whole value (content_type points into it), counted
     * against --body-budget from the first byte until http_body_release */
    const char *content_type;
    char *body;            /* the request body (freed once parsed: http_body_release) */
    _Atomic size_t body_charge; /* bytes of it counted in the budget; 0 once released */
    size_t body_len, body_cap;

    /* pipeline */
    api_request api;
    float *emb[N_TASKS];   /* rows of raw, then normalised, embeddings */
    bool *cached;          /* classify: text row k came from the label cache */
    long text_tokens;
    int decodes_left;      /* image decode jobs not finished */
    double prep_s;         /* parse + decode + tokenize wall time */
    double t_prep_start;
    double t_enqueue;      /* generation: queued at */
    double queue_s;        /* longest queue wait of its items */
    double infer_s;        /* engine time of the distinct batches that carried it */
    uint64_t last_batch;

    /* chat streaming (under srv->mu): the response is DONE with status 200
     * once generation starts; the engine appends server-sent events to
     * sbuf and the content reader (http.c) sends them, suspending the
     * connection while it waits for more */
    bool streaming;
    bool s_done;           /* the last event is in sbuf */
    bool s_suspended;      /* the reader suspended the connection */
    bool s_listed;         /* in srv->streams: started and not yet ended */
    srv_req *s_prev, *s_next;
    char *sbuf;
    size_t s_len, s_off, s_cap;

    /* response (set once, when state leaves PENDING) */
    int status;
    char *resp;
    size_t resp_len;
    const char *resp_type; /* Content-Type */
    bool retry_after;
    bool resp_allow;       /* 405: send Allow */
    const char *allow;
    bool auth_challenge;   /* 401: send WWW-Authenticate */
    bool api_path;         /* the URL is under /v1/ (CORS applies, even to a 404) */
    char err_code[48];     /* for the log line */
};

struct srv_ctx {
    srv_config cfg;
    srv_log log;
    metrics metrics;
    char model_name[256];
    char gen_model_name[256]; /* the pali3 model's id (= model_name when it is the only one) */
    double t_start;
    int64_t created;       /* load time, Unix seconds (/v1/models) */

    /* the model; only the engine worker calls into it after startup */
    prism_backend *backend;
    prism_backend *device;  /* --test-fault: the real backend under the fault wrapper */
    siglip_model *model;
    int dim;
    inputs_ctx *inputs;
    label_cache *labels;
    /* or a pali3 model (generate.c); both with --generative-model, then
     * the engine worker alternates embedding batches with decode steps */
    pali_model *pali;
    pali_gen *gen;          /* the running batch; engine worker only */
    florence2_post_config *f2_post; /* a Florence-2 model: its processor's post-processing */
#if defined(PRISM_HAVE_IMAGE)
    image_preproc pali_pre;
#endif
    struct gen_job *gq_head, *gq_tail; /* generation requests waiting to join */
    long gq_len;

    pthread_mutex_t mu;
    pthread_cond_t work;      /* engine worker: a queue changed, or stop */
    pthread_cond_t idle;      /* drain: accepted work finished */
    srv_item *q_head[N_TASKS], *q_tail[N_TASKS];
    long q_len[N_TASKS];      /* items in each queue */
    long admitted[N_TASKS];   /* items reserved + queued (max_queue applies) */
    long items_in_flight;     /* reserved + queued + running */
    long open_requests;       /* received, request-completed callback not yet run */
    long accepted;            /* async requests not yet answered */
    srv_req *pending;         /* suspended requests */
    srv_req *streams;         /* streamed responses whose last event is not written yet */
    uint64_t next_batch;
    bool stopping;            /* engine worker: exit when queues are empty */

    prep_pool *prep;
    pthread_t engine_thread, watcher_thread;
    bool engine_started, watcher_started;
    int watcher_efd;          /* eventfd: wake the watcher */
    atomic_bool watcher_stop;

    struct MHD_Daemon *daemon;
    struct http_state *http;  /* http.c's own: connection deadlines, body budget */
    atomic_bool loaded;       /* load_model returned and the prep pool exists: the
                               * backend, models and prep are set, and any thread
                               * may read them */
    atomic_bool ready;        /* /readyz: loaded, warm, not draining */
    atomic_bool device_lost;  /* the engine's device failed for good: /healthz says 503 */
    char device_lost_msg[512]; /* why; written once before device_lost is set */
    atomic_bool draining;
    atomic_ulong req_counter;
    uint32_t id_salt;
};

/* request lifetime (request.c): creation, references, answers, streams */
srv_req *req_create(srv_ctx *s);
void req_ref(srv_req *r);    /* takes srv->mu */
void req_ref_locked(srv_req *r);
void req_unref(srv_req *r);  /* takes srv->mu */
void req_unref_locked(srv_req *r);
/* Still PENDING (nobody answered or cancelled it yet); takes srv->mu. */
bool req_alive(srv_req *r);
/* Suspends the connection of a request handed to the pipeline and lists it
 * in srv->pending (the watcher polls it; shutdown answers it). */
void req_suspend_locked(srv_req *r);
/* Sets the response if the request is still PENDING (then DONE) and resumes
 * its connection; otherwise frees body. Takes ownership of body. */
void req_respond(srv_req *r, int status, char *body, size_t len, const char *type);
void req_respond_locked(srv_req *r, int status, char *body, size_t len, const char *type);
void req_fail(srv_req *r, const api_error *e);
void req_fail_locked(srv_req *r, const api_error *e);
/* The client went away: CANCELLED, queued items dropped, connection resumed
 * so that MHD closes it. */
void req_cancel_locked(srv_req *r);
/* Streaming (srv->mu held): answers a PENDING request 200 text/event-
 * stream now (false when it is no longer pending); then appends events and
 * wakes the reader; done marks the end of the stream. */
bool req_stream_start_locked(srv_req *r);
void req_stream_push_locked(srv_req *r, const char *data, size_t n, bool done);
/* Ends an open stream with an SSE error event and [DONE] (srv->mu held). */
void req_stream_end_locked(srv_req *r, const api_error *e);
/* MHD's content reader of a streamed response: bytes, end of stream, or 0
 * after suspending the connection until the next push. */
ssize_t req_stream_read(srv_req *r, char *buf, size_t max);
/* The streamed response was freed by MHD: drops the reader's reference. */
void req_stream_closed(srv_req *r);
/* Shutdown: every waiting request is answered 503 and every open stream
 * ended with an error event, so that no connection stays suspended. */
void req_abort_all(srv_ctx *s);

/* the pipeline (pipeline.c) */
/* Hands a request whose body is complete to the preprocessing pool and
 * suspends its connection; called on the HTTP thread. Answers 503 at once
 * when the preprocessing queue is full. */
void pipeline_submit(srv_req *r);
/* The engine worker computed a request's last item (srv->mu held): queue
 * the job that writes its response. */
void pipeline_items_done_locked(srv_req *r);
/* A request's `model` names no model of its endpoint: 404 model_not_found,
 * saying which model serves the endpoint and, when `model` is this server's
 * other model, which endpoints that one serves. Returns -1. */
int pipeline_model_not_found(const srv_req *r, const char *model, api_error *e);
int watcher_start(srv_ctx *s);
void watcher_stop(srv_ctx *s);
void watcher_wake(srv_ctx *s);

/* router + engine worker (router.c) */
int router_start(srv_ctx *s);
void router_stop(srv_ctx *s); /* finishes queued work, then joins */
/* Queues an admitted item (srv->mu held); wakes the engine worker. */
void router_enqueue_locked(srv_ctx *s, srv_item *it);
/* Removes r's queued items and releases its reservations (srv->mu held). */
void router_drop_locked(srv_ctx *s, srv_req *r);
void item_free(srv_item *it);
/* The embedding side of the engine worker, shared with gen_engine_main
 * when both models are served (srv->mu held by the _locked ones). */
typedef struct embed_bufs embed_bufs;
embed_bufs *embed_bufs_create(srv_ctx *s);
void embed_bufs_free(embed_bufs *b);
/* One image and one text through the model; returns the milliseconds. */
double embed_warmup(srv_ctx *s, embed_bufs *b);
/* After warm-up: arms --test-fault, lets /readyz say ready and logs the
 * `ready` line (every model kind, whichever worker runs it). */
void engine_ready(srv_ctx *s, double warmup_ms);
/* The answer to a request whose engine call failed in `what`: 503
 * out_of_memory (retry later) when memory ran out; 503 device_lost when the
 * device cannot compute any more (and from then on the server is unhealthy:
 * /healthz and /readyz answer 503, new work is refused); else 500
 * inference_failed. */
void engine_error(srv_ctx *s, api_error *e, const char *what, const prism_error *err);
/* The task whose batch should run now, or -1; *wake: when one will be ready. */
int router_pick_task_locked(const srv_ctx *s, double now, double *wake);
/* Runs one batch of task t (unlocks srv->mu while it runs). */
void embed_run_batch_locked(srv_ctx *s, embed_bufs *b, int t);
void router_wait_until_locked(srv_ctx *s, double when);

/* generation (generate.c) */
void gen_parse_job(void *arg);  /* prep worker: a generation request's body */
void *gen_engine_main(void *arg); /* the engine worker of a pali3 server */

/* HTTP (http.c) */
int http_start(srv_ctx *s, char *msg, size_t msg_len);
void http_stop(srv_ctx *s);
int http_port(srv_ctx *s);
/* Frees r->body (with its Content-Type) and gives its bytes back to
 * --body-budget; any thread, idempotent. Call it where the body is no
 * longer needed (after parsing) and when the request is freed. */
void http_body_release(srv_ctx *s, srv_req *r);
/* Drain, after accepted work is answered: stops accepting connections (new
 * ones are refused by the kernel) and waits until every open connection has
 * sent its response and closed (bounded by --header-timeout + 1 s), so that
 * http_stop cuts no answer short. */
void http_quiesce(srv_ctx *s);

#endif

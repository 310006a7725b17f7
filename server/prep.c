/* prep.c - preprocessing worker pool (see prep.h).
 *
 * Normal jobs wait in lanes; the lanes with jobs form a FIFO ring. A worker
 * takes the first lane's first job and, if that lane has more, moves the
 * lane to the back of the ring: round robin over requests, FIFO within one.
 * A lane is found by a scan of the ring on submit (its length is the number
 * of requests with queued work, bounded by the server's queue limits).
 */
#include "prep.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct prep_job {
    struct prep_job *next;
    prep_fn fn;
    void *arg;
} prep_job;

typedef struct prep_lane {
    struct prep_lane *next;      /* in the ring */
    const void *key;
    prep_job *head, *tail;
} prep_lane;

struct prep_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    prep_job *high_head, *high_tail;
    prep_lane *ring_head, *ring_tail; /* lanes with at least one job */
    long queued;                      /* normal jobs */
    bool stop;
    int n_threads;
    pthread_t *threads;
};

/* The next job (p->mu held), or NULL. */
static prep_job *take_locked(prep_pool *p)
{
    prep_job *j = p->high_head;
    if (j) {
        p->high_head = j->next;
        if (!j->next)
            p->high_tail = NULL;
        return j;
    }
    prep_lane *l = p->ring_head;
    if (!l)
        return NULL;
    j = l->head;
    l->head = j->next;
    p->queued--;
    p->ring_head = l->next;
    if (!p->ring_head)
        p->ring_tail = NULL;
    l->next = NULL;
    if (l->head) { /* more work in this lane: to the back of the ring */
        if (p->ring_tail)
            p->ring_tail->next = l;
        else
            p->ring_head = l;
        p->ring_tail = l;
    } else {
        free(l);
    }
    return j;
}

static void *prep_worker(void *arg)
{
    prep_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        prep_job *j = take_locked(p);
        if (!j) {
            if (p->stop)
                break;
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

prep_pool *prep_create(int n_threads)
{
    prep_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 0; i < n_threads; i++) {
        if (pthread_create(&p->threads[i], NULL, prep_worker, p) != 0)
            break;
        p->n_threads++;
    }
    if (p->n_threads == 0) {
        prep_destroy(p);
        return NULL;
    }
    return p;
}

void prep_destroy(prep_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

int prep_submit(prep_pool *p, prep_fn fn, void *arg, const void *lane, bool high)
{
    prep_job *j = malloc(sizeof *j);
    prep_lane *fresh = high ? NULL : malloc(sizeof *fresh);
    if (!j || (!high && !fresh)) {
        free(j);
        free(fresh);
        return -1;
    }
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (high) {
        if (p->high_tail)
            p->high_tail->next = j;
        else
            p->high_head = j;
        p->high_tail = j;
    } else {
        prep_lane *l = p->ring_head;
        while (l && l->key != lane)
            l = l->next;
        if (l) {
            l->tail->next = j;
            l->tail = j;
        } else {
            l = fresh;
            fresh = NULL;
            *l = (prep_lane){.key = lane, .head = j, .tail = j};
            if (p->ring_tail)
                p->ring_tail->next = l;
            else
                p->ring_head = l;
            p->ring_tail = l;
        }
        p->queued++;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    free(fresh);
    return 0;
}

long prep_queued(prep_pool *p)
{
    pthread_mutex_lock(&p->mu);
    long n = p->queued;
    pthread_mutex_unlock(&p->mu);
    return n;
}

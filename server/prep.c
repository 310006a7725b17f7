/* prep.c - preprocessing worker pool (see prep.h). */
#include "prep.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct prep_job {
    struct prep_job *next;
    prep_fn fn;
    void *arg;
} prep_job;

struct prep_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    prep_job *head[2], *tail[2]; /* 0: high, 1: normal */
    long queued;
    bool stop;
    int n_threads;
    pthread_t *threads;
};

static void *prep_worker(void *arg)
{
    prep_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int q = p->head[0] ? 0 : p->head[1] ? 1 : -1;
        if (q < 0) {
            if (p->stop)
                break;
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        prep_job *j = p->head[q];
        p->head[q] = j->next;
        if (!j->next)
            p->tail[q] = NULL;
        p->queued--;
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

int prep_submit(prep_pool *p, prep_fn fn, void *arg, bool high)
{
    prep_job *j = malloc(sizeof *j);
    if (!j)
        return -1;
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    int q = high ? 0 : 1;
    pthread_mutex_lock(&p->mu);
    if (p->tail[q])
        p->tail[q]->next = j;
    else
        p->head[q] = j;
    p->tail[q] = j;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

long prep_queued(prep_pool *p)
{
    pthread_mutex_lock(&p->mu);
    long n = p->queued;
    pthread_mutex_unlock(&p->mu);
    return n;
}

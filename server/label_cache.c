/* label_cache.c - LRU cache of label embeddings (see label_cache.h).
 *
 * A chained hash table (FNV-1a, power-of-two buckets, twice the capacity)
 * over entries that also sit in a doubly linked recency list: lookups and
 * inserts are O(1); eviction takes the list's tail. Two bounds: the number
 * of entries and the bytes they hold (entry_bytes: key, vector and the
 * entry itself), so that a few very long labels cannot hold more memory
 * than many short ones.
 */
#include "label_cache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct lc_entry {
    struct lc_entry *hnext;        /* hash chain */
    struct lc_entry *prev, *next;  /* recency list, head = most recent */
    uint64_t hash;
    char *key;
    float vec[];                   /* dim floats */
} lc_entry;

struct label_cache {
    pthread_mutex_t mu;
    size_t capacity, size, n_buckets;
    size_t max_bytes, bytes;
    int dim;
    lc_entry **buckets;
    lc_entry *head, *tail;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

label_cache *lcache_create(size_t capacity, size_t max_bytes, int dim)
{
    label_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->capacity = capacity;
    c->max_bytes = max_bytes;
    c->dim = dim;
    c->n_buckets = 16;
    while (c->n_buckets < capacity * 2)
        c->n_buckets *= 2;
    c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void lcache_free(label_cache *c)
{
    if (!c)
        return;
    for (lc_entry *e = c->head, *n; e; e = n) {
        n = e->next;
        free(e->key);
        free(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void list_unlink(label_cache *c, lc_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(label_cache *c, lc_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static size_t entry_bytes(const label_cache *c, size_t key_len)
{
    return sizeof(lc_entry) + (size_t)c->dim * sizeof(float) + key_len + 1;
}

static lc_entry **find(label_cache *c, const char *key, uint64_t h)
{
    lc_entry **p = &c->buckets[h & (c->n_buckets - 1)];
    while (*p && ((*p)->hash != h || strcmp((*p)->key, key) != 0))
        p = &(*p)->hnext;
    return p;
}

bool lcache_get(label_cache *c, const char *key, float *out)
{
    if (!c || c->capacity == 0)
        return false;
    uint64_t h = fnv1a(key);
    pthread_mutex_lock(&c->mu);
    lc_entry *e = *find(c, key, h);
    if (e) {
        memcpy(out, e->vec, (size_t)c->dim * sizeof(float));
        list_unlink(c, e);
        list_push_front(c, e);
    }
    pthread_mutex_unlock(&c->mu);
    return e != NULL;
}

void lcache_put(label_cache *c, const char *key, const float *vec)
{
    if (!c || c->capacity == 0)
        return;
    uint64_t h = fnv1a(key);
    pthread_mutex_lock(&c->mu);
    lc_entry **slot = find(c, key, h);
    if (*slot) {
        memcpy((*slot)->vec, vec, (size_t)c->dim * sizeof(float));
        list_unlink(c, *slot);
        list_push_front(c, *slot);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    const size_t need = entry_bytes(c, strlen(key));
    if (need > c->max_bytes) { /* larger than the whole cache: not kept */
        pthread_mutex_unlock(&c->mu);
        return;
    }
    lc_entry *e = malloc(sizeof *e + (size_t)c->dim * sizeof(float));
    char *k = strdup(key);
    if (!e || !k) { /* out of memory: the cache is an optimisation, skip it */
        free(e);
        free(k);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    while (c->size > 0 && (c->size == c->capacity || c->bytes + need > c->max_bytes)) {
        lc_entry *old = c->tail;
        list_unlink(c, old);
        *find(c, old->key, old->hash) = old->hnext;
        c->bytes -= entry_bytes(c, strlen(old->key));
        free(old->key);
        free(old);
        c->size--;
    }
    slot = find(c, key, h); /* the chain may have changed */
    e->hash = h;
    e->key = k;
    e->hnext = NULL;
    memcpy(e->vec, vec, (size_t)c->dim * sizeof(float));
    *slot = e;
    list_push_front(c, e);
    c->size++;
    c->bytes += need;
    pthread_mutex_unlock(&c->mu);
}

size_t lcache_size(label_cache *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->mu);
    size_t n = c->size;
    pthread_mutex_unlock(&c->mu);
    return n;
}

size_t lcache_bytes(label_cache *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->mu);
    size_t n = c->bytes;
    pthread_mutex_unlock(&c->mu);
    return n;
}

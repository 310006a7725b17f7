/* label_cache.h - an LRU cache of label text embeddings for /v1/classify.
 *
 * Keys are the full prompts (template applied), values are L2-normalised
 * text embeddings of the model's width. Thread-safe (its own mutex).
 * Bounded by entries and by bytes (key + vector + bookkeeping per entry):
 * inserting evicts least recently used entries until both bounds hold, and
 * an entry larger than max_bytes is not kept. A capacity of 0 makes every
 * lookup miss and every insert a no-op.
 */
#ifndef PRISM_SERVER_LABEL_CACHE_H
#define PRISM_SERVER_LABEL_CACHE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct label_cache label_cache;

label_cache *lcache_create(size_t capacity, size_t max_bytes, int dim);
void lcache_free(label_cache *c);
/* Copies the embedding of key into out (dim floats) and marks it most
 * recently used; false when absent. */
bool lcache_get(label_cache *c, const char *key, float *out);
/* Inserts or refreshes key; evicts the least recently used entry when full. */
void lcache_put(label_cache *c, const char *key, const float *vec);
size_t lcache_size(label_cache *c);
size_t lcache_bytes(label_cache *c); /* held now, as counted against max_bytes */

#endif

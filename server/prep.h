/* prep.h - the preprocessing worker pool.
 *
 * Parsing bodies, decoding and resizing images, tokenizing and writing
 * responses run here: never on the HTTP event loop, never on the engine
 * worker. Jobs are function + argument; two priorities, so that finishing
 * requests (writing responses) overtakes starting new ones. The queue of
 * normal jobs is bounded by the caller (prep_submit reports the length).
 */
#ifndef PRISM_SERVER_PREP_H
#define PRISM_SERVER_PREP_H

#include <stdbool.h>

typedef struct prep_pool prep_pool;
typedef void (*prep_fn)(void *arg);

prep_pool *prep_create(int n_threads);
/* Runs every queued job, then joins the workers and frees the pool. */
void prep_destroy(prep_pool *p);
/* Queues fn(arg); high runs before any normal job. -1 when out of memory. */
int prep_submit(prep_pool *p, prep_fn fn, void *arg, bool high);
long prep_queued(prep_pool *p);

#endif

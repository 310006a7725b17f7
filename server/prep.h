/* prep.h - the preprocessing worker pool.
 *
 * Parsing bodies, decoding and resizing images, tokenizing and writing
 * responses run here: never on the HTTP event loop, never on the engine
 * worker. Jobs are function + argument.
 *
 * Fairness: every normal job belongs to a lane (the request it works for),
 * and the workers take normal jobs from the lanes in turn, one job per lane
 * per turn. A request with 256 images queues 256 decode jobs in its own
 * lane; a request that arrives after it waits for one job to finish, not
 * for all of them. High jobs (writing a finished request's response) run
 * before any normal job. The number of queued normal jobs is reported so
 * that the caller can bound it.
 */
#ifndef PRISM_SERVER_PREP_H
#define PRISM_SERVER_PREP_H

#include <stdbool.h>

typedef struct prep_pool prep_pool;
typedef void (*prep_fn)(void *arg);

prep_pool *prep_create(int n_threads);
/* Runs every queued job, then joins the workers and frees the pool. */
void prep_destroy(prep_pool *p);
/* Queues fn(arg) in lane `lane` (any pointer that identifies the owner;
 * jobs of one lane run in the order they were queued); high jobs ignore
 * lanes and run first. -1 when out of memory. */
int prep_submit(prep_pool *p, prep_fn fn, void *arg, const void *lane, bool high);
long prep_queued(prep_pool *p);

#endif

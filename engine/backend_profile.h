/* backend_profile.h - a backend that wraps another and times every op
 * (engine/backend_wrap.c).
 *
 * Each op is forwarded to the wrapped backend and followed by its
 * synchronize, so the wall time of every call is known (at the price of
 * the overlap a GPU would otherwise get between launches: profile runs are
 * for finding where time goes, not for reporting throughput). Used by the
 * benchmarks when PRISM_PROFILE=1.
 */
#ifndef PRISM_BACKEND_PROFILE_H
#define PRISM_BACKEND_PROFILE_H

#include <stdio.h>

#include "backend.h"

/* Wraps inner (which stays owned by the caller and must outlive the
 * wrapper). NULL when out of memory. */
prism_backend *prism_profile_backend_create(prism_backend *inner);
/* Prints calls, total milliseconds and share per op (matmul also GFLOP/s),
 * largest first. */
void prism_profile_report(const prism_backend *prof, FILE *f);
void prism_profile_reset(prism_backend *prof);
/* How many times alloc was called through the wrapper since it was made
 * (not reset): the tests' proof that a request path allocates nothing. */
long prism_profile_alloc_calls(const prism_backend *prof);
/* The bytes those calls asked for (what a model's activations cost). */
size_t prism_profile_alloc_bytes(const prism_backend *prof);

#endif

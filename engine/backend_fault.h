/* backend_fault.h - a backend that wraps another and makes one op fail on
 * purpose (engine/backend_wrap.c), so tests can show what a device failure
 * in the middle of a request does (the model reports it; the server answers
 * 503 or 500 and goes on, or, for a lost device, fails its health check)
 * without a GPU that fails on cue.
 *
 * Every op is forwarded to the wrapped backend, except the n-th call of
 * the chosen op (counted from creation or the last prism_fault_arm),
 * which returns -1 without running, once - or, for the kind lost, that
 * call and every op after it, as a sticky CUDA error does; describe_error
 * then reports "injected fault: <op> call <n>" with the chosen code.
 */
#ifndef PRISM_BACKEND_FAULT_H
#define PRISM_BACKEND_FAULT_H

#include "backend.h"

/* Parses "OP:N[:KIND]", e.g. "matmul:3"; KIND is nomem (the default,
 * PRISM_ERR_NOMEM), fail (PRISM_ERR_FAILED) or lost (PRISM_ERR_DEVICE_LOST).
 * OP is an op's name as in backend.h (matmul, attention, download, ...).
 * Wraps inner (which stays owned by the caller and must outlive the
 * wrapper). NULL with a message in err on a bad spec or out of memory. */
prism_backend *prism_fault_backend_create(prism_backend *inner, const char *spec,
                                          prism_error *err);
/* on: counting starts again from zero (the n-th call from now fails);
 * off: every call is forwarded until armed again. Created armed. */
void prism_fault_arm(prism_backend *fault, bool on);

#endif

/* cli_florence2.h - `prism caption`, `prism ask` and `prism detect` on a
 * Florence-2 model (server/cli_florence2.c). */
#ifndef PRISM_CLI_FLORENCE2_H
#define PRISM_CLI_FLORENCE2_H

#include "cli_io.h"

/* Runs CLI_CAPTION, CLI_ASK or CLI_DETECT on the Florence-2 model
 * o->model; returns the exit status (0; 1: a failure while running; 2: a
 * device or option that cannot be used). */
int cli_florence2_main(unsigned cmd, const cli_opts *o);

#endif

/* cli_paligemma.h - `prism caption`, `prism ask` and `prism detect` on a
 * PaliGemma model (server/cli_paligemma.c). */
#ifndef PRISM_CLI_PALIGEMMA_H
#define PRISM_CLI_PALIGEMMA_H

#include "cli_io.h"

/* Runs CLI_CAPTION, CLI_ASK or CLI_DETECT on the PaliGemma model o->model;
 * returns the exit status (0; 1: a failure while running; 2: a device or
 * option that cannot be used). */
int cli_paligemma_main(unsigned cmd, const cli_opts *o);

#endif

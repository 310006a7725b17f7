/* cli_generate.h - `prism caption` and `prism ask`: PaLI-3-style generation
 * from the command line (server/cli_generate.c). */
#ifndef PRISM_CLI_GENERATE_H
#define PRISM_CLI_GENERATE_H

/* True for the commands this module handles: caption, ask, and bench when
 * --model names a pali3 directory. */
int cli_generate_handles(const char *cmd, int argc, char **argv);
/* Runs `prism <cmd> ...` (argv[1] == cmd); returns the process exit status:
 * 0, 1 (a runtime error) or 2 (bad usage). */
int cli_generate_main(const char *cmd, int argc, char **argv);

#endif

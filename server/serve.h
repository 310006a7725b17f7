/* serve.h - `prism serve`: the HTTP server's entry point. */
#ifndef PRISM_SERVER_SERVE_H
#define PRISM_SERVER_SERVE_H

/* Runs the server with the options in argv[first..argc); returns the exit
 * status (0 after a drained SIGTERM or SIGINT, 1 on a startup failure, 2 on
 * bad options). */
int serve_main(int argc, char **argv, int first);

#endif

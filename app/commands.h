/*
 * The client commands: get-peers, announce, find-node, ping, stats, save.
 * Each either asks a running `mdht run` through its control socket (--control)
 * or runs a short-lived read-only node for the one job; stats and save are
 * about a running node, so they need --control.
 */
#ifndef MDHT_COMMANDS_H
#define MDHT_COMMANDS_H

#include <stdbool.h>

/* Whether `name` is one of the client commands. */
bool client_command(const char *name);

/* Runs client command `name` with its arguments (after the name). Returns
 * the exit status. */
int cmd_client(const char *name, int argc, char **argv);

/* Prints the command's usage and options on stdout. */
void client_usage(const char *name);

#endif

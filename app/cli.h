/*
 * Command-line parsing shared by the mdht subcommands: a table of options,
 * each writing into a field of the command's own struct.
 *
 * The contract (DESIGN.md): every usage error is one line on stderr,
 * "mdht: ...", and exit status 2. The parser prints that line itself, so
 * that the wording is the same for every command.
 */
#ifndef MDHT_CLI_H
#define MDHT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_USAGE_ERROR 2

typedef enum cli_kind {
  CLI_FLAG,    /* bool = true; takes no value */
  CLI_U32,     /* uint32_t in [min, max] */
  CLI_MS,      /* mdht_time (uint64_t) milliseconds in [min, max] */
  CLI_SECONDS, /* given in seconds, stored as mdht_time milliseconds */
  CLI_PATH,    /* const char * = the value, which must not be empty */
  CLI_CUSTOM   /* `custom` parses the value */
} cli_kind;

typedef struct cli_opt {
  const char *name;    /* "--port" */
  const char *metavar; /* "N"; NULL for a flag */
  const char *help;
  cli_kind kind;
  size_t off; /* offsetof the field in the command's struct */
  uint64_t min, max;
  /* Returns 0, or -1 after printing the error with cli_error. `ctx` is the
   * command's struct. */
  int (*custom)(void *ctx, const char *value);
} cli_opt;

/* Prints "mdht: <message>" and a newline on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The message of the last cli_error ("" if none), for --json. */
const char *cli_last_error(void);

/* Until called with NULL, every cli_error line says "FILE:LINE: " after
 * "mdht: ": the error is about a line of a config file. */
void cli_set_where(const char *file, unsigned line);

/* Applies one option with its value (NULL for a flag) to `ctx`, as
 * cli_parse does. Returns 0, or -1 after printing the error. */
int cli_apply(const cli_opt *o, void *ctx, const char *value);

/* Parses argv[0..argc) (without the command name) into `ctx`. Positional
 * arguments go to pos[0..max_pos); *npos receives their count. Returns 0,
 * 1 when -h/--help was given (nothing printed), or -1 after printing one
 * error line. */
int cli_parse(const cli_opt *opts, size_t nopts, int argc, char **argv,
              void *ctx, const char **pos, size_t max_pos, size_t *npos);

/* Prints "  --name METAVAR   help" lines for the table on stdout, with the
 * default of each numeric option read from `defaults` (a command struct
 * holding the defaults), so that the help cannot drift from the code. */
void cli_print_options(const cli_opt *opts, size_t nopts, const void *defaults);

/* Strict decimal: digits only, no sign, no spaces. Returns 0 or -1. */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* "HOST:PORT" or "[V6]:PORT" with a port in 1..65535. Returns 0 or -1. */
int cli_check_hostport(const char *s);

#define CLI_MAX_BOOTSTRAP 64
/* Appends a --bootstrap value to `list` (CLI_MAX_BOOTSTRAP entries) after
 * checking it; prints the one-line error and returns -1 otherwise. */
int cli_add_bootstrap(const char **list, size_t *n, const char *v);
/* A numeric IPv4 or IPv6 address for --bind; prints the one-line error and
 * returns -1 otherwise. */
int cli_check_bind(const char *v);

#endif

/*
 * Config files: `mdht run --config FILE`. The file holds the long options
 * of the command line, one per line, without their dashes:
 *
 *   # a comment (a line whose first non-blank character is '#')
 *   port = 6881
 *   bootstrap = router.example.org:6881     (repeatable keys: one per line)
 *   bootstrap = 10.0.0.7:6881
 *   read-only                               (a flag: the key alone,)
 *   allow-private = true                    (or "= true"; "= false" leaves
 *                                            it unset)
 *
 * Blanks around keys and values are dropped; a value is the rest of the
 * line, '#' included (no quoting, no trailing comments). The parser checks
 * the form of each line (length, NUL bytes, '=', known key, a flag's
 * true/false, a single-value key given twice) and hands each setting to
 * the caller, which checks the value as it checks the command line's.
 * The first bad line stops the parse, with its number and one message.
 */
#ifndef MDHT_CONFFILE_H
#define MDHT_CONFFILE_H

#include <stdbool.h>
#include <stddef.h>

#define MDHT_CONF_MAX_LINE 1024     /* bytes in one line, newline excluded */
#define MDHT_CONF_MAX_BYTES 1048576 /* a whole file */

typedef struct mdht_conf_key {
  const char *name; /* "port" */
  bool value;       /* takes a value; false: a flag */
  bool repeat;      /* may be given on several lines */
} mdht_conf_key;

/* One setting: keys[key], with `value` (NULL for a flag). Returns 0, or -1
 * after reporting the error itself (the parse stops there). */
typedef int (*mdht_conf_fn)(void *user, size_t key, const char *value,
                            unsigned line);

typedef struct mdht_conf_err {
  unsigned line; /* 1-based; 0: not about a line (the file itself) */
  char msg[192]; /* empty: the callback reported it */
} mdht_conf_err;

/* Parses text[0..len) in place (the values handed out point into `text`,
 * NUL-terminated there, and live as long as it does); text[len] must be
 * writable too, as mdht_conf_read leaves it. Returns 0 or -1 with
 * *err filled. */
int mdht_conf_parse(char *text, size_t len, const mdht_conf_key *keys,
                    size_t nkeys, mdht_conf_fn fn, void *user,
                    mdht_conf_err *err);

/* Reads a whole file (at most MDHT_CONF_MAX_BYTES) into a malloc'd buffer
 * the caller frees. Returns 0 or -1 with err->msg saying why. */
int mdht_conf_read(const char *path, char **text, size_t *len,
                   mdht_conf_err *err);

#endif

#include "cli.h"
#include "hostport.h"
#include "sock.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mdht.h"

/* The last error line, for --json (cli_last_error). */
static char last_error[512];

/* "FILE:LINE: " while a config file is applied (cli_set_where). */
static char where[300];

void cli_set_where(const char *file, unsigned line) {
  if (file)
    snprintf(where, sizeof where, "%s:%u: ", file, line);
  else
    where[0] = '\0';
}

void cli_error(const char *fmt, ...) {
  char *buf = last_error;
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(buf, sizeof last_error, fmt, ap);
  va_end(ap);
  /* A value with a newline in it must not break the one-line promise. */
  for (char *p = buf; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  fprintf(stderr, "mdht: %s%s\n", where, buf);
}

const char *cli_last_error(void) {
  return last_error;
}

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
  uint64_t v = 0;

  if (!*s) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  if (v < min || v > max) return -1;
  *out = v;
  return 0;
}

int cli_check_hostport(const char *s) {
  /* The driver's own reader: what passes here, it can use. */
  char host[256];
  const char *port;
  return mdht_hostport_split(s, host, sizeof host, &port);
}

static const cli_opt *find_opt(const cli_opt *opts, size_t nopts,
                               const char *name, size_t len) {
  for (size_t i = 0; i < nopts; i++)
    if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
      return &opts[i];
  return NULL;
}

int cli_apply(const cli_opt *o, void *ctx, const char *value) {
  char *field = (char *)ctx + o->off;
  uint64_t v;

  switch (o->kind) {
  case CLI_FLAG:
    *(bool *)field = true;
    return 0;
  case CLI_PATH:
    if (!*value) {
      cli_error("empty %s %s", o->name, o->metavar);
      return -1;
    }
    *(const char **)field = value;
    return 0;
  case CLI_CUSTOM:
    return o->custom(ctx, value);
  case CLI_U32:
  case CLI_MS:
  case CLI_SECONDS:
    break;
  }
  if (cli_parse_u64(value, o->min, o->max, &v) < 0) {
    cli_error("bad value '%s' for %s (want an integer from %llu to %llu)",
              value, o->name, (unsigned long long)o->min,
              (unsigned long long)o->max);
    return -1;
  }
  if (o->kind == CLI_U32)
    *(uint32_t *)field = (uint32_t)v;
  else if (o->kind == CLI_MS)
    *(mdht_time *)field = v;
  else
    *(mdht_time *)field = v * 1000;
  return 0;
}

int cli_parse(const cli_opt *opts, size_t nopts, int argc, char **argv,
              void *ctx, const char **pos, size_t max_pos, size_t *npos) {
  bool only_pos = false;

  *npos = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *eq, *value = NULL;
    const cli_opt *o;
    size_t len;

    if (only_pos || a[0] != '-' || a[1] == '\0') {
      if (*npos >= max_pos) {
        cli_error("unexpected argument '%s'", a);
        return -1;
      }
      pos[(*npos)++] = a;
      continue;
    }
    if (strcmp(a, "--") == 0) {
      only_pos = true;
      continue;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return 1;
    eq = strchr(a, '=');
    len = eq ? (size_t)(eq - a) : strlen(a);
    o = a[1] == '-' ? find_opt(opts, nopts, a, len) : NULL;
    if (!o) {
      cli_error("unknown option '%.*s'", (int)len, a);
      return -1;
    }
    if (o->kind == CLI_FLAG) {
      if (eq) {
        cli_error("option '%s' takes no value", o->name);
        return -1;
      }
    } else if (eq) {
      value = eq + 1;
    } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
      /* A following "--option" is a forgotten value, not a value. */
      value = argv[++i];
    } else {
      cli_error("option '%s' needs a value (%s)", o->name, o->metavar);
      return -1;
    }
    if (cli_apply(o, ctx, value) < 0) return -1;
  }
  return 0;
}

void cli_print_options(const cli_opt *opts, size_t nopts,
                       const void *defaults) {
  for (size_t i = 0; i < nopts; i++) {
    const cli_opt *o = &opts[i];
    const char *field = (const char *)defaults + o->off;
    char left[64];

    snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "",
             o->metavar ? o->metavar : "");
    printf("  %-26s %s", left, o->help);
    uint64_t v = 0;
    if (o->kind == CLI_U32)
      v = *(const uint32_t *)field;
    else if (o->kind == CLI_MS)
      v = *(const mdht_time *)field;
    else if (o->kind == CLI_SECONDS)
      v = *(const mdht_time *)field / 1000;
    /* A value the option refuses is no default: the option is required
     * (testnet --nodes), and its help says so. */
    if ((o->kind == CLI_U32 || o->kind == CLI_MS || o->kind == CLI_SECONDS) &&
        v >= o->min)
      printf(" (default %llu)", (unsigned long long)v);
    putchar('\n');
  }
}

int cli_add_bootstrap(const char **list, size_t *n, const char *v) {
  if (cli_check_hostport(v) < 0) {
    cli_error("bad bootstrap address '%s' (want HOST:PORT, port 1-65535)", v);
    return -1;
  }
  if (*n >= CLI_MAX_BOOTSTRAP) {
    cli_error("too many --bootstrap (at most %d)", CLI_MAX_BOOTSTRAP);
    return -1;
  }
  list[(*n)++] = v;
  return 0;
}

int cli_check_bind(const char *v) {
  mdht_addr tmp;
  if (mdht_sock_parse_ip(&tmp, v, 0) < 0) {
    cli_error("bad bind address '%s' (want a numeric IPv4 or IPv6 address)", v);
    return -1;
  }
  return 0;
}

/*
 * "HOST:PORT" and "[V6]:PORT" as given on the command line (--bootstrap,
 * ping's argument) and resolved by the driver: one reader for both, so that
 * what the command line accepts is what the driver can use.
 */
#ifndef MDHT_HOSTPORT_H
#define MDHT_HOSTPORT_H

#include <stddef.h>

/* Splits `s` into the host (brackets removed, NUL-terminated in `host`, at
 * most cap - 1 bytes) and the port (*port points into `s`). The port is
 * decimal digits only, 1-65535; a host is not empty, and a bare IPv6
 * address ("::1:6881") is refused as ambiguous. Returns 0 or -1. */
int mdht_hostport_split(const char *s, char *host, size_t cap,
                        const char **port);

#endif

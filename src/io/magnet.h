/*
 * Info-hashes as people paste them: 40 hex digits, or a magnet link whose
 * xt is urn:btih: with 40 hex or 32 base32 digits (BEP 9).
 *
 * Its own module, apart from the request grammar, because two command lines
 * read it: the `mdht` command's arguments (app/commands.c) and the control
 * socket's request line (ctl_request.c), which accepts a magnet link where
 * an info-hash goes (docs/mdht.1). It lives in src/io rather than app/ so
 * that the server, which is linked without app/, can keep doing so.
 */
#ifndef MDHT_MAGNET_H
#define MDHT_MAGNET_H

#include "mdht.h"

/* 40 hex digits, or a magnet link whose xt is urn:btih: with 40 hex or 32
 * base32 digits. The scheme, the xt key and the urn are read in any case,
 * and the xt value may be percent-encoded ("urn%3Abtih%3A..."). Returns 0
 * or MDHT_ERR_INVAL. */
int mdht_ctl_parse_infohash(mdht_id *out, const char *s);

#endif

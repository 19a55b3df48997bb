/* Info-hashes and magnet links (magnet.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "magnet.h"
#include "testutil.h"

#define HEX1 "0123456789abcdef0123456789abcdef01234567"
#define HEX2 "ffeeddccbbaa99887766554433221100ffeeddcc"

static mdht_id id_of(const char *hex) {
  mdht_id id;
  assert_int_equal(mdht_id_parse(&id, hex), 0);
  return id;
}

static void test_infohash(void **state) {
  mdht_id id, want = id_of(HEX1);
  (void)state;

  assert_int_equal(mdht_ctl_parse_infohash(&id, HEX1), 0);
  assert_memory_equal(&id, &want, sizeof id);
  assert_int_equal(
      mdht_ctl_parse_infohash(&id, "0123456789ABCDEF0123456789ABCDEF01234567"),
      0);
  assert_memory_equal(&id, &want, sizeof id);
  memset(&id, 0, sizeof id);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?xt=urn:btih:" HEX1),
                   0);
  assert_memory_equal(&id, &want, sizeof id);
  /* base32, with other parameters around it, case-insensitive urn. */
  memset(&id, 0, sizeof id);
  assert_int_equal(
      mdht_ctl_parse_infohash(&id, "magnet:?dn=a%20b&xt=URN:BTIH:"
                                   "AERUKZ4JVPG66AJDIVTYTK6N54ASGRLH&tr=x"),
      0);
  assert_memory_equal(&id, &want, sizeof id);
  assert_int_equal(mdht_ctl_parse_infohash(&id,
                                           "magnet:?xt=urn:btih:"
                                           "aerukz4jvpg66ajdivtytk6n54asgrlh"),
                   0);
  assert_memory_equal(&id, &want, sizeof id);

  assert_int_equal(mdht_ctl_parse_infohash(&id, ""), MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?"), MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?dn=x"),
                   MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?xt=urn:btih:"),
                   MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?xt=urn:btih:abc"),
                   MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?xt=urn:btmh:1220" HEX1
                                                "0000000000"),
                   MDHT_ERR_INVAL);
  /* base32 with a digit outside 2-7 */
  assert_int_equal(mdht_ctl_parse_infohash(&id,
                                           "magnet:?xt=urn:btih:"
                                           "AERUKZ4JVPG66AJDIVTYTK6N54ASGRL1"),
                   MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "0x" HEX1), MDHT_ERR_INVAL);
}

/* Links as sites print them: in capitals, and percent-encoded. */
static void test_case_and_percent(void **state) {
  mdht_id id, want = id_of(HEX1);
  (void)state;

  memset(&id, 0, sizeof id);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "MAGNET:?XT=URN:BTIH:" HEX1),
                   0);
  assert_memory_equal(&id, &want, sizeof id);
  memset(&id, 0, sizeof id);
  assert_int_equal(
      mdht_ctl_parse_infohash(&id, "magnet:?xt=urn%3Abtih%3A" HEX1 "&dn=x"), 0);
  assert_memory_equal(&id, &want, sizeof id);
  memset(&id, 0, sizeof id);
  assert_int_equal(mdht_ctl_parse_infohash(&id,
                                           "Magnet:?Xt=urn%3abtih%3a"
                                           "AERUKZ4JVPG66AJDIVTYTK6N54ASGRLH"),
                   0);
  assert_memory_equal(&id, &want, sizeof id);
  /* Bad escapes, an encoded NUL, and an encoded '&' that would end the
   * hash early are refused, not misread. */
  assert_int_equal(
      mdht_ctl_parse_infohash(&id, "magnet:?xt=urn%3Gbtih%3A" HEX1),
      MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?xt=urn%3Abtih%3A%"),
                   MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?xt=urn:btih:%00" HEX1),
                   MDHT_ERR_INVAL);
  assert_int_equal(
      mdht_ctl_parse_infohash(&id, "magnet:?xt=urn:btih:" HEX1 "%26dn=x"),
      MDHT_ERR_INVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_infohash),
      cmocka_unit_test(test_case_and_percent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

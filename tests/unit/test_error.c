/* error.c: one error domain. mdht_strerror names every MDHT_ERR_* from
 * the one list, and the negated errno values that I/O calls return, which
 * never share a number with an MDHT_ERR_*. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "mdht.h"

static void test_names(void **state) {
  (void)state;
  assert_string_equal(mdht_strerror(MDHT_ERR_NOMEM), "out of memory");
  assert_string_equal(mdht_strerror(MDHT_ERR_TOKEN), "bad token");
  assert_string_equal(mdht_strerror(0), "success");
  assert_string_equal(mdht_strerror(-9999), "unknown error");
  /* every error code has its own text */
#define CHECK_TEXT(name, code, text)                                           \
  assert_string_equal(mdht_strerror(MDHT_ERR_##name), text);
  MDHT_ERRORS(CHECK_TEXT)
#undef CHECK_TEXT
}

/* One error domain: an MDHT_ERR_* and a -errno never share a number, so
 * one int says which it is, and mdht_strerror names both. */
static void test_one_error_domain(void **state) {
  (void)state;
#define CHECK_APART(name, code, text)                                          \
  assert_true(MDHT_ERR_##name < -MDHT_ERRNO_MAX);
  MDHT_ERRORS(CHECK_APART)
#undef CHECK_APART
  /* Values that collided before: -11 was both MDHT_ERR_RANGE and -EAGAIN,
   * -13 both MDHT_ERR_IO and -EACCES. */
  assert_string_equal(mdht_strerror(-EAGAIN), strerror(EAGAIN));
  assert_string_equal(mdht_strerror(-EACCES), strerror(EACCES));
  assert_string_equal(mdht_strerror(-ENOSPC), strerror(ENOSPC));
  assert_string_equal(mdht_strerror(MDHT_ERR_RANGE), "value out of range");
  assert_string_equal(mdht_strerror(MDHT_ERR_IO), "input/output error");
  assert_string_not_equal(mdht_strerror(MDHT_ERR_IO), strerror(EIO));
  /* Between the two ranges, and beyond either: unknown. */
  assert_string_equal(mdht_strerror(-MDHT_ERRNO_MAX - 1), "unknown error");
  assert_string_equal(mdht_strerror(MDHT_ERR_TOKEN - 1), "unknown error");
  assert_string_equal(mdht_strerror(1), "unknown error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_one_error_domain),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

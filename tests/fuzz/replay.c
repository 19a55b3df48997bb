/*
 * Runs a libFuzzer target over files without libFuzzer, so that plain gcc
 * builds and ctest exercise the corpus (and any crash reproducers).
 * Arguments are files or directories (one level, regular files only).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
    len += got;
    if (len == cap) {
      uint8_t *nb = realloc(buf, cap *= 2);
      if (!nb) free(buf);
      buf = nb;
    }
  }
  int err = ferror(f) || !buf;
  fclose(f);
  if (err) {
    free(buf);
    fprintf(stderr, "%s: read failed\n", path);
    return -1;
  }
  /* An exact-size copy, so that ASan catches reads past the input. */
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) {
    free(buf);
    return -1;
  }
  memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

int main(int argc, char **argv) {
  int files = 0, failed = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      failed++;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      failed += run_file(argv[i]) != 0;
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    if (!d) {
      perror(argv[i]);
      failed++;
      continue;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
      char path[4096];
      if (snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name) >=
          (int)sizeof path)
        continue;
      if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
      failed += run_file(path) != 0;
      files++;
    }
    closedir(d);
  }
  printf("replayed %d file(s)\n", files);
  return failed ? 1 : 0;
}

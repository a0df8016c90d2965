/* rt_file.c - read-only file mapping shared by the runtime readers. */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "rt_file.h"
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int file_fail(char *err, size_t errlen, const char *path, const char *what, int e) {
  if (err && errlen) snprintf(err, errlen, "%s: %s%s%s", path, what, e ? ": " : "", e ? strerror(e) : "");
  return 1;
}

int rt_map_file(const char *path, const void **map, size_t *len, char *err, size_t errlen) {
  *map = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return file_fail(err, errlen, path, "cannot open", errno);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return file_fail(err, errlen, path, "cannot stat", e);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return file_fail(err, errlen, path, "not a regular file", 0);
  }
  if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
    close(fd);
    return file_fail(err, errlen, path, "file too large to map", 0);
  }
  if (st.st_size == 0) {
    close(fd);
    return 0;
  }
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (m == MAP_FAILED) return file_fail(err, errlen, path, "cannot map the file", e);
  *map = m;
  *len = (size_t)st.st_size;
  return 0;
}

void rt_unmap_file(const void *map, size_t len) {
  if (map && len) munmap((void *)map, len);
}

int rt_errorf(char *err, size_t errlen, const char *label, const char *fmt, ...) {
  if (err && errlen) {
    int k = snprintf(err, errlen, "%s: ", label);
    if (k >= 0 && (size_t)k < errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
      va_end(ap);
    }
  }
  return 1;
}

/* rt_file.c - files for the runtime and the compiler: read-only mapping,
 * whole-file reads, and the one output writer (rt_out, see rt_file.h). */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "rt_file.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int file_fail(char *err, size_t errlen, const char *path, const char *what, int e) {
  if (err && errlen) snprintf(err, errlen, "%s: %s%s%s", path, what, e ? ": " : "", e ? strerror(e) : "");
  return 1;
}

/* Map a regular file read-only (see rt_file.h). */
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

/* Undo rt_map_file. */
void rt_unmap_file(const void *map, size_t len) {
  if (map && len) munmap((void *)map, len);
}

/* Read a whole regular file into a NUL-terminated malloc'd buffer. */
int rt_read_file(const char *path, size_t max, char **data, size_t *len, char *err, size_t errlen) {
  const void *map;
  size_t n;
  *data = NULL;
  if (len) *len = 0;
  if (rt_map_file(path, &map, &n, err, errlen)) return 1;
  if (n > max) {
    rt_unmap_file(map, n);
    return rt_errorf(err, errlen, path, "too large (%zu bytes; at most %zu)", n, max);
  }
  char *buf = malloc(n + 1);
  if (!buf) {
    rt_unmap_file(map, n);
    return file_fail(err, errlen, path, "out of memory", 0);
  }
  if (n) memcpy(buf, map, n);
  buf[n] = 0;
  rt_unmap_file(map, n);
  *data = buf;
  if (len) *len = n;
  return 0;
}

/* Write "label: fmt..." into err and return 1. */
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

/* ---- writing ------------------------------------------------------------ */

/* Write all of data to fd; 0 or an errno. */
static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : EIO;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

/* "a" + "b" + "c" in a new malloc'd string (NULL when out of memory). */
static char *cat3(const char *a, const char *b, const char *c) {
  size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
  char *s = malloc(la + lb + lc + 1);
  if (!s) return NULL;
  memcpy(s, a, la);
  memcpy(s + la, b, lb);
  memcpy(s + la + lb, c, lc + 1);
  return s;
}

/* Create a new file PREFIX.XXXXXX (six random letters and digits) with
 * open(O_EXCL) and mode (masked by the umask, as for any new file);
 * returns the fd and the name in *name, or -1 with errno set. */
static int create_unique(const char *prefix, unsigned mode, char **name) {
  static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  static unsigned long counter;
  *name = cat3(prefix, ".XXXXXX", "");
  if (!*name) return errno = ENOMEM, -1;
  char *x = *name + strlen(*name) - 6;
  for (int attempt = 0; attempt < 1000; attempt++) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t r = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ ((uint64_t)getpid() << 32) ^ (++counter * 0xBF58476D1CE4E5B9ull);
    for (int k = 0; k < 6; k++, r /= 62) x[k] = abc[r % 62];
    int fd = open(*name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd >= 0) return fd;
    if (errno != EEXIST) break;
  }
  int e = errno;
  free(*name);
  *name = NULL;
  errno = e;
  return -1;
}

/* The directory part of path ("." when it has none), malloc'd. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return cat3(".", "", "");
  if (slash == path) return cat3("/", "", "");
  char *d = malloc((size_t)(slash - path) + 1);
  if (d) {
    memcpy(d, path, (size_t)(slash - path));
    d[slash - path] = 0;
  }
  return d;
}

/* The temporary directory ($TMPDIR, else /tmp). */
static const char *tmp_dir(void) {
  const char *t = getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

/* Follow symlinks from path: the final name in *out (malloc'd) and its
 * lstat in *st (*exists false when nothing is there yet). */
static int follow_links(const char *path, char **out, struct stat *st, bool *exists, char *err, size_t errlen) {
  char *p = cat3(path, "", "");
  for (int depth = 0; p && depth < 40; depth++) {
    if (lstat(p, st) != 0) {
      if (errno != ENOENT) {
        int e = errno;
        free(p);
        return file_fail(err, errlen, path, "cannot access", e);
      }
      *exists = false;
      *out = p;
      return 0;
    }
    if (!S_ISLNK(st->st_mode)) {
      *exists = true;
      *out = p;
      return 0;
    }
    size_t cap = (size_t)(st->st_size > 0 ? st->st_size : 255) + 1;
    char *target = malloc(cap);
    ssize_t n = target ? readlink(p, target, cap) : -1;
    if (n < 0 || (size_t)n >= cap) {
      int e = n < 0 ? errno : ENAMETOOLONG;
      free(target);
      free(p);
      return file_fail(err, errlen, path, "cannot read the symbolic link", e);
    }
    target[n] = 0;
    char *next;
    if (target[0] == '/') {
      next = target;
    } else {
      char *d = dir_of(p);
      next = d ? cat3(d, "/", target) : NULL;
      free(d);
      free(target);
    }
    free(p);
    p = next;
  }
  if (!p) return file_fail(err, errlen, path, "out of memory", 0);
  free(p);
  return file_fail(err, errlen, path, "cannot follow the symbolic link", ELOOP);
}

/* Stage an output (see rt_file.h). */
int rt_out_begin(rt_out *o, const char *path, unsigned newmode, char *err, size_t errlen) {
  memset(o, 0, sizeof *o);
  o->fd = -1;
  o->name = cat3(path ? path : "<stdout>", "", "");
  if (!o->name) return file_fail(err, errlen, path ? path : "<stdout>", "out of memory", 0);
  struct stat st;
  bool exists = false;
  if (!path) {
    o->how = RT_OUT_STDOUT;
  } else {
    if (follow_links(path, &o->path, &st, &exists, err, errlen)) {
      rt_out_abort(o);
      return 1;
    }
    struct stat through;
    if (!exists && stat(path, &through) == 0) { /* a link only the kernel resolves (/dev/stdout -> /proc/self/fd/1) */
      free(o->path);
      o->path = cat3(path, "", "");
      st = through;
      exists = true;
      if (S_ISREG(st.st_mode)) st.st_mode = S_IFIFO; /* no name to rename over: written into */
    }
    if (exists && S_ISDIR(st.st_mode)) {
      rt_out_abort(o);
      return file_fail(err, errlen, path, "is a directory", 0);
    }
    o->how = !exists || S_ISREG(st.st_mode) ? RT_OUT_REPLACE : RT_OUT_INTO;
  }
  char *prefix;
  unsigned mode = 0600;
  if (o->how == RT_OUT_REPLACE) {
    prefix = cat3(o->path, ".tmp", "");
    if (exists) {
      o->existed = true;
      o->mode = st.st_mode & 0777;
      o->uid = st.st_uid;
      o->gid = st.st_gid;
    } else {
      mode = newmode & 0777; /* the umask applies when the file is created */
    }
  } else { /* a device, a FIFO, stdout: staged in the temporary directory */
    prefix = cat3(tmp_dir(), "/attnc-out", "");
  }
  if (!prefix) {
    rt_out_abort(o);
    return file_fail(err, errlen, o->name, "out of memory", 0);
  }
  o->fd = create_unique(prefix, mode, &o->tmp);
  int e = errno;
  if (o->fd < 0) {
    rt_errorf(err, errlen, o->name, "cannot create temporary file '%s.XXXXXX': %s", prefix, strerror(e));
    free(prefix);
    rt_out_abort(o);
    return 1;
  }
  free(prefix);
  if (o->how == RT_OUT_REPLACE && !exists) { /* the mode a new file gets here: what the umask left */
    struct stat ts;
    o->mode = fstat(o->fd, &ts) == 0 ? ts.st_mode & 0777 : (newmode & 0777 & ~022u);
  }
  return 0;
}

/* Append bytes to the staged data. */
int rt_out_write(rt_out *o, const void *data, size_t len, char *err, size_t errlen) {
  if (o->fd < 0) return file_fail(err, errlen, o->name ? o->name : "?", "internal error: the output is not open", 0);
  int e = write_all(o->fd, data, len);
  if (e) return rt_errorf(err, errlen, o->name, "cannot write temporary file '%s': %s", o->tmp, strerror(e));
  return 0;
}

/* The staged file's name, for a tool that writes it itself. */
const char *rt_out_file(rt_out *o) {
  if (o->fd >= 0) close(o->fd);
  o->fd = -1;
  return o->tmp;
}

/* Copy the file src into the open fd dst; 0 or an errno. */
static int copy_into(const char *src, int dst) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) return errno;
  char buf[65536];
  int e = 0;
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) e = errno;
    if (n <= 0) break;
    if ((e = write_all(dst, buf, (size_t)n))) break;
  }
  close(in);
  return e;
}

/* Release o's memory and staged file. */
static void out_release(rt_out *o) {
  if (o->fd >= 0) close(o->fd);
  if (o->tmp) unlink(o->tmp);
  free(o->tmp);
  free(o->path);
  free(o->name);
  memset(o, 0, sizeof *o);
  o->fd = -1;
}

/* Put the staged data in place (see rt_file.h). */
int rt_out_commit(rt_out *o, char *err, size_t errlen) {
  if (!o->tmp) return file_fail(err, errlen, o->name ? o->name : "?", "internal error: nothing staged", 0);
  int rc = 0;
  if (o->fd >= 0 && close(o->fd) != 0) {
    rc = rt_errorf(err, errlen, o->name, "cannot write temporary file '%s': %s", o->tmp, strerror(errno));
    o->fd = -1;
  }
  o->fd = -1;
  if (!rc && o->how == RT_OUT_REPLACE) {
    if (o->existed && geteuid() == 0 && chown(o->tmp, o->uid, o->gid) != 0) {
      /* the owner is kept when possible; the data matter more */
    }
    if (chmod(o->tmp, o->mode) != 0 || rename(o->tmp, o->path) != 0)
      rc = rt_errorf(err, errlen, o->name, "cannot rename '%s' to '%s': %s", o->tmp, o->path, strerror(errno));
    else {
      free(o->tmp);
      o->tmp = NULL;
    }
  } else if (!rc) {
    if (o->how == RT_OUT_STDOUT) fflush(stdout);
    int fd = o->how == RT_OUT_STDOUT ? 1 : open(o->path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd > 1 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ftruncate(fd, 0) != 0) { /* through a /proc link */
      close(fd);
      fd = -1;
    }
    int e = fd < 0 ? errno : copy_into(o->tmp, fd);
    if (fd > 1 && close(fd) != 0 && !e) e = errno;
    if (e) rc = rt_errorf(err, errlen, o->name, "cannot write: %s", strerror(e));
  }
  out_release(o);
  return rc;
}

/* Drop the staged data. */
void rt_out_abort(rt_out *o) {
  if (o->name || o->tmp || o->path) out_release(o);
}

/* Commit several outputs; abort the rest after a failure. */
int rt_out_commit_all(rt_out *outs, int n, char *err, size_t errlen) {
  int rc = 0;
  for (int i = 0; i < n; i++) {
    if (rc) rt_out_abort(&outs[i]);
    else rc = rt_out_commit(&outs[i], err, errlen);
  }
  return rc;
}

/* begin + write + commit. */
int rt_write_file(const char *path, const void *data, size_t len, unsigned newmode, char *err, size_t errlen) {
  rt_out o;
  if (rt_out_begin(&o, path, newmode, err, errlen)) return 1;
  if (rt_out_write(&o, data, len, err, errlen)) {
    rt_out_abort(&o);
    return 1;
  }
  return rt_out_commit(&o, err, errlen);
}

/* A private temporary file beside near holding data. */
int rt_temp_file(const char *near, const char *tag, const void *data, size_t len, char **path, char *err,
                 size_t errlen) {
  char *prefix = cat3(near, ".", tag);
  if (!prefix) return file_fail(err, errlen, near, "out of memory", 0);
  int fd = create_unique(prefix, 0600, path);
  if (fd < 0) {
    rt_errorf(err, errlen, near, "cannot create temporary file '%s.XXXXXX': %s", prefix, strerror(errno));
    free(prefix);
    return 1;
  }
  free(prefix);
  int e = write_all(fd, data, len);
  if (close(fd) != 0 && !e) e = errno;
  if (e) {
    unlink(*path);
    rt_errorf(err, errlen, near, "cannot write temporary file '%s': %s", *path, strerror(e));
    free(*path);
    *path = NULL;
    return 1;
  }
  return 0;
}

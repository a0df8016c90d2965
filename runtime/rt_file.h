/* rt_file.h - files for the runtime and the compiler: read-only mapping,
 * whole-file reads, and the one output writer of the project (rt_out).
 *
 * Output files (rt_out) are staged and committed:
 *   - a regular file, or a name that does not exist yet: the data go to a
 *     temporary file beside it, renamed over it at commit (readers never
 *     see a partial file; a failure leaves the old file as it was);
 *   - a symlink: followed (the link stays a link; the file it points to is
 *     replaced as above); a link only the kernel resolves (/dev/stdout ->
 *     /proc/self/fd/1 -> pipe:[..]) is opened and written into;
 *   - a character device, FIFO or other non-regular file: never replaced;
 *     at commit it is opened and the data are written into it (a FIFO
 *     waits for its reader);
 *   - NULL: standard output, also written at commit.
 * New files get `newmode` (0666, or 0777 for shared libraries) masked by
 * the umask; an existing file keeps its mode.  Staging several outputs
 * first and committing them together commits nothing when any of them
 * fails.  Every function returns 0 on success, else 1 with "PATH: what is
 * wrong" in err. */
#ifndef RT_FILE_H
#define RT_FILE_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Map a regular file read-only.  On success returns 0 with *map and *len
 * set (*map is NULL for an empty file).  On failure returns 1 and writes
 * "PATH: what is wrong" into err. */
int rt_map_file(const char *path, const void **map, size_t *len, char *err, size_t errlen);
void rt_unmap_file(const void *map, size_t len);
/* Read a whole regular file of at most max bytes into a malloc'd buffer
 * with a NUL after the data (*data, *len). */
int rt_read_file(const char *path, size_t max, char **data, size_t *len, char *err, size_t errlen);
/* Write "label: fmt..." into err (if there is room) and return 1: the
 * message convention of every runtime reader. */
int rt_errorf(char *err, size_t errlen, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

typedef enum {
  RT_OUT_REPLACE, /* a regular or new file: rename the staged file over it */
  RT_OUT_INTO,    /* a device, FIFO, ...: copy the staged data into it */
  RT_OUT_STDOUT,  /* standard output: copy the staged data to fd 1 */
} rt_out_how;

typedef struct {
  char *name;     /* the name the caller gave ("<stdout>" for NULL), for messages */
  char *path;     /* the target, symlinks followed (NULL for stdout) */
  char *tmp;      /* the staged data (NULL once committed or aborted) */
  int fd;         /* open on tmp for rt_out_write, or -1 */
  rt_out_how how;
  unsigned mode;  /* RT_OUT_REPLACE: the permission bits the file gets */
  bool existed;   /* RT_OUT_REPLACE: the target existed (owner kept) */
  uid_t uid;
  gid_t gid;
} rt_out;

/* Stage an output for path (NULL: standard output).  Fails (nothing
 * created) when the target is a directory, its directory does not exist
 * or cannot take a new file, or symlinks loop. */
int rt_out_begin(rt_out *o, const char *path, unsigned newmode, char *err, size_t errlen);
/* Append bytes to the staged data. */
int rt_out_write(rt_out *o, const void *data, size_t len, char *err, size_t errlen);
/* The staged file's name, for a tool that writes it by name (the linker);
 * ends rt_out_write on o. */
const char *rt_out_file(rt_out *o);
/* Put the staged data in place (see above); o is released either way. */
int rt_out_commit(rt_out *o, char *err, size_t errlen);
/* Drop the staged data; the target is untouched.  Safe on a zeroed o,
 * and after commit. */
void rt_out_abort(rt_out *o);
/* Commit outs[0..n) in order; on the first failure the rest are aborted. */
int rt_out_commit_all(rt_out *outs, int n, char *err, size_t errlen);

/* begin + write + commit: the one-shot form. */
int rt_write_file(const char *path, const void *data, size_t len, unsigned newmode, char *err, size_t errlen);
/* A new private (0600) temporary file NEAR.TAG.XXXXXX holding len bytes of
 * data (len 0: empty), beside near; its name in *path (malloc'd).  The
 * caller removes it. */
int rt_temp_file(const char *near, const char *tag, const void *data, size_t len, char **path, char *err,
                 size_t errlen);
#endif

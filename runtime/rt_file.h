/* rt_file.h - read-only file mapping shared by the runtime readers. */
#ifndef RT_FILE_H
#define RT_FILE_H
#include <stddef.h>

/* Map a regular file read-only.  On success returns 0 with *map and *len
 * set (*map is NULL for an empty file).  On failure returns 1 and writes
 * "PATH: what is wrong" into err. */
int rt_map_file(const char *path, const void **map, size_t *len, char *err, size_t errlen);
void rt_unmap_file(const void *map, size_t len);
/* Write "label: fmt..." into err (if there is room) and return 1: the
 * message convention of every runtime reader. */
int rt_errorf(char *err, size_t errlen, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#endif

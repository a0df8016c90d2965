/* arena.c - bump allocator in linked chunks. */
#include "arena.h"
#include "diag.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Chunk {
  struct Chunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} Chunk;

struct IrArena {
  Chunk *head;
  size_t total;
};

/* Create an empty arena. */
IrArena *ir_arena_new(void) {
  IrArena *a = calloc(1, sizeof *a);
  if (!a) ir_bug("out of memory");
  return a;
}

/* Free every chunk and the arena itself. */
void ir_arena_free(IrArena *a) {
  if (!a) return;
  for (Chunk *c = a->head, *n; c; c = n) {
    n = c->next;
    free(c);
  }
  free(a);
}

/* Allocate n zeroed bytes, 16-byte aligned. */
void *ir_arena_alloc(IrArena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (n == 0) n = 16;
  Chunk *c = a->head;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    c = malloc(sizeof(Chunk) + cap);
    if (!c) ir_bug("out of memory allocating %zu bytes", cap);
    c->next = a->head;
    c->used = 0;
    c->cap = cap;
    a->head = c;
  }
  void *p = c->data + c->used;
  c->used += n;
  a->total += n;
  memset(p, 0, n);
  return p;
}

/* Grow p (of oldn bytes) to newn bytes by copying into a new block. */
void *ir_arena_realloc(IrArena *a, void *p, size_t oldn, size_t newn) {
  void *q = ir_arena_alloc(a, newn);
  if (p && oldn) memcpy(q, p, oldn < newn ? oldn : newn);
  return q;
}

char *ir_arena_strndup(IrArena *a, const char *s, size_t n) {
  char *p = ir_arena_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *ir_arena_strdup(IrArena *a, const char *s) {
  return ir_arena_strndup(a, s, strlen(s));
}

/* printf into arena memory. */
char *ir_arena_printf(IrArena *a, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = ir_arena_alloc(a, (size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return p;
}

size_t ir_arena_bytes(const IrArena *a) { return a->total; }

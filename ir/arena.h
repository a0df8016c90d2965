/* arena.h - bump allocator; one arena per compilation, freed in one call. */
#ifndef IR_ARENA_H
#define IR_ARENA_H
#include <stddef.h>

typedef struct IrArena IrArena;

IrArena *ir_arena_new(void);
void ir_arena_free(IrArena *a);
/* Zeroed, 16-byte aligned. Out of memory is fatal (internal error). */
void *ir_arena_alloc(IrArena *a, size_t n);
/* Grow an allocation by copying; old contents kept. */
void *ir_arena_realloc(IrArena *a, void *p, size_t oldn, size_t newn);
char *ir_arena_strdup(IrArena *a, const char *s);
char *ir_arena_strndup(IrArena *a, const char *s, size_t n);
char *ir_arena_printf(IrArena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t ir_arena_bytes(const IrArena *a);
#endif

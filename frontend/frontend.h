/* frontend.h - the .attn front end: parse (Flex + Bison) and lower to IR.
 *
 * fe_compile runs the whole front end: parse, check, evaluate compile-time
 * params, inline functions, unroll loops, expand sugar (linear, attention,
 * split_heads, ...) and build the graph IR.  Errors go to diag with
 * file:line:col, the source line and a caret. */
#ifndef FE_FRONTEND_H
#define FE_FRONTEND_H
#include "ir.h"

/* -D NAME=VALUE: an integer value, or a real one (is_real: real holds it,
 * e.g. -D EPS=1e-6).  An integer param takes only an integer; a real param
 * takes either. */
typedef struct {
  const char *name;
  int64_t value;
  bool used;  /* set by fe_compile when the param exists */
  bool is_real;
  double real;
} FeDefine;

/* Returns NULL if any error was reported. */
IrGraph *fe_compile(IrArena *arena, IrDiag *diag, const char *file, const char *text,
                    FeDefine *defs, int ndefs);
#endif

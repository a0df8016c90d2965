/* parse.c - runs the Flex scanner and Bison parser over one source text. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "ast.h"
#include "parser.h"
#include "lexstate.h"
#include "lexer.h"
#include "fe_internal.h"

char *fe_lex_strdup(struct FeLexState *s, const char *p, size_t n) {
  return ir_arena_strndup(s->arena, p, n);
}

IrLoc fe_loc(struct FeLexState *s, const YYLTYPE *loc) {
  IrLoc l = {s->file, loc->first_line, loc->first_column, 1};
  if (loc->last_line == loc->first_line && loc->last_column >= loc->first_column)
    l.len = loc->last_column - loc->first_column + 1;
  return l;
}

void fe_lex_error(struct FeLexState *s, const YYLTYPE *loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ir_diag_verror(s->diag, fe_loc(s, loc), fmt, ap);
  va_end(ap);
}

/* Parse text into an AST; returns NULL on syntax errors (all reported). */
AstProgram *fe_parse(IrArena *arena, IrDiag *diag, const char *file, const char *text) {
  struct FeLexState st;
  memset(&st, 0, sizeof st);
  st.arena = arena;
  st.diag = diag;
  st.file = file;
  st.line = 1;
  st.col = 1;
  st.last_nl = 1;
  yyscan_t scanner;
  if (yylex_init_extra(&st, &scanner)) ir_bug("cannot create scanner");
  /* yy_scan_bytes copies the buffer; NUL bytes inside the text are passed
     through and reported as unexpected bytes */
  YY_BUFFER_STATE buf = yy_scan_bytes(text, (int)strlen(text), scanner);
  int errs0 = ir_diag_errors(diag);
  int rc = yyparse(scanner, &st);
  yy_delete_buffer(buf, scanner);
  yylex_destroy(scanner);
  if (rc != 0 || ir_diag_errors(diag) > errs0) return NULL;
  AstProgram *p = ir_arena_alloc(arena, sizeof *p);
  *p = st.prog;
  return p;
}

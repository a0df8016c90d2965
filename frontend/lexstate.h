/* lexstate.h - state shared by the Flex scanner and the Bison parser. */
#ifndef FE_LEXSTATE_H
#define FE_LEXSTATE_H
#include "ast.h"

struct FeLexState {
  IrArena *arena;
  IrDiag *diag;
  const char *file;
  int line, col;
  int depth;     /* open ( and [ */
  IrLoc open_loc;/* where the outermost open ( or [ is */
  char open_char;
  int last_nl;   /* last token was a newline (collapse blank lines) */
  int eof_nl;
  AstProgram prog;
};

char *fe_lex_strdup(struct FeLexState *s, const char *p, size_t n);
void fe_lex_error(struct FeLexState *s, const YYLTYPE *loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
IrLoc fe_loc(struct FeLexState *s, const YYLTYPE *loc);
#endif

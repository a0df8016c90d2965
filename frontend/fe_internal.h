/* fe_internal.h - declarations shared inside the front end. */
#ifndef FE_INTERNAL_H
#define FE_INTERNAL_H
#include "ast.h"

AstProgram *fe_parse(IrArena *arena, IrDiag *diag, const char *file, const char *text);
#endif

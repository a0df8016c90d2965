/* diag.h - diagnostics.  Two tiers (see docs/architecture.md):
 *   user errors: file:line:col: error: message, then the source line and a
 *     caret under the offending token;
 *   internal errors (ir_bug): the compiler's own file and line, then abort.
 */
#ifndef IR_DIAG_H
#define IR_DIAG_H
#include <stdarg.h>
#include <stdio.h>

typedef struct {
  const char *file; /* NULL: no location */
  int line, col;    /* 1-based */
  int len;          /* length of the token under the caret (>= 1) */
} IrLoc;

typedef struct IrDiag IrDiag;

IrDiag *ir_diag_new(FILE *out);
void ir_diag_free(IrDiag *d);
/* Register the text of a source file so diagnostics can quote its lines.
 * The text is not copied and must outlive the diag. */
void ir_diag_add_source(IrDiag *d, const char *file, const char *text);
void ir_diag_error(IrDiag *d, IrLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ir_diag_verror(IrDiag *d, IrLoc loc, const char *fmt, va_list ap);
void ir_diag_note(IrDiag *d, IrLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ir_diag_errors(const IrDiag *d);
/* Stop after this many errors (default 20). */
void ir_diag_set_limit(IrDiag *d, int limit);
FILE *ir_diag_stream(const IrDiag *d);

/* Edit distance, for "did you mean" suggestions. */
int ir_edit_distance(const char *a, const char *b);

#define ir_bug(...) ir_bug_at(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void ir_bug_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#endif

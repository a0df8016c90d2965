/* diag.c - user diagnostics with source line and caret; internal errors. */
#include "diag.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *file, *text;
} Source;

struct IrDiag {
  FILE *out;
  Source *src; /* registered texts, grown as needed */
  int nsrc, capsrc;
  int errors;
  int limit;
};

IrDiag *ir_diag_new(FILE *out) {
  IrDiag *d = calloc(1, sizeof *d);
  if (!d) ir_bug("out of memory");
  d->out = out;
  d->limit = 20;
  return d;
}

void ir_diag_free(IrDiag *d) {
  if (d) free(d->src);
  free(d);
}
void ir_diag_set_limit(IrDiag *d, int limit) { d->limit = limit; }
int ir_diag_errors(const IrDiag *d) { return d->errors; }
FILE *ir_diag_stream(const IrDiag *d) { return d->out; }

void ir_diag_add_source(IrDiag *d, const char *file, const char *text) {
  if (d->nsrc == d->capsrc) {
    int cap = d->capsrc ? 2 * d->capsrc : 8;
    Source *s = realloc(d->src, (size_t)cap * sizeof *s);
    if (!s) ir_bug("out of memory");
    d->src = s;
    d->capsrc = cap;
  }
  d->src[d->nsrc++] = (Source){file, text};
}

/* Print the source line of loc and a caret (with ~ for the token length). */
static void quote_line(IrDiag *d, IrLoc loc) {
  const char *text = NULL;
  for (int i = d->nsrc - 1; i >= 0; i--)
    if (d->src[i].file && strcmp(d->src[i].file, loc.file) == 0) {
      text = d->src[i].text;
      break;
    }
  if (!text || loc.line < 1) return;
  const char *p = text;
  for (int l = 1; l < loc.line && *p; p++)
    if (*p == '\n') l++;
  const char *e = strchr(p, '\n');
  int len = e ? (int)(e - p) : (int)strlen(p);
  /* a long line (generated code) is shown as a window of 2 * W bytes
     around the caret, "..." marking what is cut */
  enum { W = 80 };
  int start = 0, end = len, col = loc.col - 1; /* 0-based */
  if (len > 2 * W + 20) {
    start = col - W < 0 ? 0 : col - W;
    end = start + 2 * W < len ? start + 2 * W : len;
    if (end - start < 2 * W) start = end - 2 * W;
  }
  fprintf(d->out, "  %s%.*s%s\n  %s", start ? "..." : "", end - start, p + start, end < len ? "..." : "",
          start ? "   " : "");
  for (int i = start; i < col && i < end; i++) fputc(p[i] == '\t' ? '\t' : ' ', d->out);
  fputc('^', d->out);
  for (int i = 1; i < loc.len && col + i < end; i++) fputc('~', d->out);
  fputc('\n', d->out);
}

static void report(IrDiag *d, IrLoc loc, const char *kind, const char *fmt, va_list ap) {
  if (loc.file)
    fprintf(d->out, "%s:%d:%d: %s: ", loc.file, loc.line, loc.col, kind);
  else
    fprintf(d->out, "attnc: %s: ", kind);
  vfprintf(d->out, fmt, ap);
  fputc('\n', d->out);
  if (loc.file) quote_line(d, loc);
}

void ir_diag_verror(IrDiag *d, IrLoc loc, const char *fmt, va_list ap) {
  d->errors++;
  if (d->errors > d->limit) return;
  report(d, loc, "error", fmt, ap);
  if (d->errors == d->limit) fprintf(d->out, "attnc: too many errors, stopping\n");
}

void ir_diag_error(IrDiag *d, IrLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ir_diag_verror(d, loc, fmt, ap);
  va_end(ap);
}

void ir_diag_note(IrDiag *d, IrLoc loc, const char *fmt, ...) {
  if (d->errors > d->limit) return;
  va_list ap;
  va_start(ap, fmt);
  report(d, loc, "note", fmt, ap);
  va_end(ap);
}

/* Levenshtein distance, for suggestions. */
int ir_edit_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n > 64 || m > 64) return 99;
  int row[65];
  for (size_t j = 0; j <= m; j++) row[j] = (int)j;
  for (size_t i = 1; i <= n; i++) {
    int prev = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= m; j++) {
      int cur = row[j];
      int sub = prev + (a[i - 1] != b[j - 1]);
      int del = row[j] + 1, ins = row[j - 1] + 1;
      row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
      prev = cur;
    }
  }
  return row[m];
}

_Noreturn void ir_bug_at(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "attnc: internal error at %s:%d: ", file, line);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

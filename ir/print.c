/* print.c - writes the textual IR that parse.c reads back.
 *
 * Requires: any graph; it prints what is there even if it does not verify
 * (out-of-range ranks, lists and bodies are clamped, never read past).
 * Produces: one line per statement, in this order:
 *
 *   graph NAME {
 *     param NAME = INT            compile-time params, in order
 *     dim NAME                    run-time dims, by symbol id
 *     %ID = OP(%a, ...) {attrs} : TYPE [{ body }]
 *     output "NAME" = %ID
 *   }
 *
 * Ids are node indices within their function.  Attributes come in a fixed
 * order, floats in the shortest form that reads back to the same double, so
 * print(parse(print(g))) == print(g) byte for byte. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#endif
#include "ir.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY_DEPTH 8

/* Write s as a quoted string with C escapes. */
static void put_str(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(out, "\\%c", *p);
    else if (*p == '\n')
      fputs("\\n", out);
    else if (*p == '\t')
      fputs("\\t", out);
    else if (*p < 0x20 || *p >= 0x7f)
      fprintf(out, "\\x%02x", *p);
    else
      fputc(*p, out);
  }
  fputc('"', out);
}

/* True for [A-Za-z_][A-Za-z0-9_]*. */
static bool is_ident(const char *s) {
  if (!s || !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) return false;
  for (; *s; s++)
    if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9')))
      return false;
  return true;
}

/* A graph or param name: bare if it is an identifier, quoted otherwise. */
static void put_name(FILE *out, const char *s) {
  if (is_ident(s))
    fputs(s, out);
  else
    put_str(out, s);
}

/* Shortest decimal that strtod reads back to exactly v; inf, -inf, nan. */
static void put_double(FILE *out, double v) {
  if (isnan(v)) {
    fputs("nan", out);
    return;
  }
  if (isinf(v)) {
    fputs(v < 0 ? "-inf" : "inf", out);
    return;
  }
  /* the shortest form over all precisions: "100", not "1e+02" */
  char best[40] = "", buf[40];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v && (!best[0] || strlen(buf) < strlen(best))) strcpy(best, buf);
  }
  fputs(best, out);
}

/* A dim via ir_dim_str, however long its names are. */
static void put_dim(FILE *out, const IrGraph *g, IrDim d) {
  if (d.nterm > IR_MAX_TERMS) {
    fputs("?", out);
    return;
  }
  for (int i = 0; i < d.nterm; i++)
    if (d.t[i].nsym > IR_MAX_FACTORS) {
      fputs("?", out);
      return;
    }
  char buf[256];
  int n = ir_dim_str(g, d, buf, sizeof buf);
  if (n < (int)sizeof buf) {
    fputs(buf, out);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (!big) ir_bug("out of memory");
  ir_dim_str(g, d, big, (size_t)n + 1);
  fputs(big, out);
  free(big);
}

static void put_type(FILE *out, const IrGraph *g, const IrType *t) {
  const char *dt = rt_dtype_name(t->dt);
  fprintf(out, "%s[", dt ? dt : "?");
  int rank = t->rank <= IR_MAX_RANK ? t->rank : IR_MAX_RANK;
  for (int i = 0; i < rank; i++) {
    if (i) fputc(',', out);
    put_dim(out, g, t->dim[i]);
  }
  fputc(']', out);
}

static void put_list(FILE *out, const int *v, int n, int max) {
  fputc('[', out);
  for (int i = 0; i < n && i < max; i++) fprintf(out, "%s%d", i ? "," : "", v[i]);
  fputc(']', out);
}

static void put_mask_bound(FILE *out, int64_t v) {
  if (v == IR_MASK_NONE)
    fputs("none", out);
  else
    fprintf(out, "%lld", (long long)v);
}

/* Start one attribute: the separator, then "name=". */
static void put_key(FILE *out, int *count, const char *name) {
  fprintf(out, "%s%s=", (*count)++ ? ", " : "", name);
}

/* `name=[a,b,..]` for a tile list (nothing when empty). */
static void put_tile(FILE *out, int *k, const char *name, const int64_t *v, int n) {
  if (n <= 0) return;
  put_key(out, k, name);
  fputc('[', out);
  for (int i = 0; i < n && i < IR_MAX_TILE; i++) fprintf(out, "%s%lld", i ? "," : "", (long long)v[i]);
  fputc(']', out);
}

/* " {attrs}" in the fixed order, only the bits the op carries, plus tile. */
static void put_attrs(FILE *out, const IrGraph *g, const IrNode *n) {
  unsigned bits = ir_opinfo[n->op].attrs;
  const IrAttrs *a = &n->a;
  int k = 0;
  if (!(bits & ~A_FOLD) && a->ntile <= 0 && a->ngtile <= 0 && !((bits & A_FOLD) && a->fold)) return;
  fputs(" {", out);
  if (bits & A_STR) {
    put_key(out, &k, "str");
    put_str(out, a->str);
  }
  if (bits & A_INDEX) {
    put_key(out, &k, "index");
    fprintf(out, "%d", a->index);
  }
  if (bits & A_VALUE) {
    put_key(out, &k, "value");
    put_double(out, a->value);
  }
  if (bits & A_AXIS) {
    put_key(out, &k, "axis");
    fprintf(out, "%d", a->axis);
  }
  if (bits & A_AXES) {
    put_key(out, &k, "axes");
    put_list(out, a->list, a->nlist, IR_MAX_RANK);
  }
  if (bits & A_KEEP) {
    put_key(out, &k, "keep");
    fputs(a->keep ? "true" : "false", out);
  }
  if ((bits & A_FOLD) && a->fold) {
    put_key(out, &k, "fold");
    fputs("true", out);
  }
  if (bits & A_PERM) {
    put_key(out, &k, "perm");
    put_list(out, a->list, a->nlist, IR_MAX_RANK);
  }
  if (bits & A_START) {
    put_key(out, &k, "start");
    put_dim(out, g, a->start);
  }
  if (bits & A_EPS) {
    put_key(out, &k, "eps");
    put_double(out, a->eps);
  }
  if (bits & A_SCALE) {
    put_key(out, &k, "scale");
    put_double(out, a->scale);
  }
  if (bits & A_MASK) {
    put_key(out, &k, "mask");
    fputc('[', out);
    put_mask_bound(out, a->mlo);
    fputc(',', out);
    put_mask_bound(out, a->mhi);
    fputc(']', out);
  }
  put_tile(out, &k, "tile", a->tile, a->ntile);
  put_tile(out, &k, "gtile", a->gtile, a->ngtile);
  fputc('}', out);
}

/* The nodes of function fi, each line indented by `indent` spaces. */
static void put_func(FILE *out, const IrGraph *g, int fi, int indent, int depth) {
  const IrFunc *f = &g->funcs[fi];
  for (int i = 0; i < f->n; i++) {
    const IrNode *n = &f->nodes[i];
    fprintf(out, "%*s%%%d = %s", indent, "", i,
            n->op < IR_NOPS ? ir_opinfo[n->op].name : "?");
    if (n->nin > 0) {
      fputc('(', out);
      for (int k = 0; k < n->nin; k++) fprintf(out, "%s%%%d", k ? ", " : "", n->in[k]);
      fputc(')', out);
    }
    if (n->op < IR_NOPS) put_attrs(out, g, n);
    fputs(" : ", out);
    put_type(out, g, &n->type);
    if (n->body > 0 && n->body < g->nfunc && depth < MAX_BODY_DEPTH) {
      const IrFunc *b = &g->funcs[n->body];
      fputs(" {\n", out);
      put_func(out, g, n->body, indent + 2, depth + 1);
      for (int k = 0; k < b->nyield; k++) fprintf(out, "%*syield %%%d\n", indent + 2, "", b->yields[k]);
      fprintf(out, "%*s}", indent, "");
    }
    fputc('\n', out);
  }
}

void ir_print(const IrGraph *g, FILE *out) {
  fputs("graph ", out);
  put_name(out, g->name);
  fputs(" {\n", out);
  for (int i = 0; i < g->nparam; i++) {
    fputs("  param ", out);
    put_name(out, g->params[i].name);
    fprintf(out, " = %lld\n", (long long)g->params[i].value);
  }
  for (int i = 0; i < g->nsym; i++) fprintf(out, "  dim %s\n", g->syms[i]);
  if (g->nfunc > 0) put_func(out, g, 0, 2, 0);
  for (int i = 0; i < g->noutput; i++) {
    fputs("  output ", out);
    put_str(out, g->outputs[i].name);
    fprintf(out, " = %%%d\n", g->outputs[i].node);
  }
  fputs("}\n", out);
}

char *ir_print_string(const IrGraph *g) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) ir_bug("open_memstream failed");
  ir_print(g, f);
  fclose(f);
  return buf;
}

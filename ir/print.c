/* print.c - writes the textual IR that parse.c reads back.
 *
 * Requires: any graph; it prints what is there even if it does not verify
 * (out-of-range ranks, lists and bodies are clamped, never read past).
 * Produces: one line per statement, in this order:
 *
 *   graph NAME {
 *     param NAME = INT            compile-time params, in order
 *     dim NAME                    run-time dims, by symbol id
 *     dim NAME = (DIM) floordiv S + 1 from "WHY" kernel K pad P
 *                                 a derived dim (IrDerivedDim)
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

/* The shortest decimal that reads back to exactly v (see ir.h). */
int ir_real_str(double v, char *best, size_t n) {
  if (isnan(v) || isinf(v)) return snprintf(best, n, "%s", isnan(v) ? "nan" : v < 0 ? "-inf" : "inf");
  /* the shortest form over all precisions: "100", not "1e+02" */
  char buf[40], sh[40] = "";
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v && (!sh[0] || strlen(buf) < strlen(sh))) strcpy(sh, buf);
  }
  return snprintf(best, n, "%s", sh);
}

/* A param's value as the IR text writes it (a real with '.' or 'e'). */
int ir_param_str(const IrParamVal *p, char *buf, size_t n) {
  if (!p->is_real) return snprintf(buf, n, "%lld", (long long)p->value);
  if (p->real == floor(p->real) && fabs(p->real) < 1e15) return snprintf(buf, n, "%.1f", p->real); /* 10000.0 */
  char r[40];
  ir_real_str(p->real, r, sizeof r);
  return snprintf(buf, n, "%s%s", r, strpbrk(r, ".en") ? "" : ".0");
}

/* v as ir_real_str writes it. */
static void put_double(FILE *out, double v) {
  char buf[40];
  ir_real_str(v, buf, sizeof buf);
  fputs(buf, out);
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

static void put_mask_bound(FILE *out, int64_t v) {
  if (v == IR_MASK_NONE)
    fputs("none", out);
  else
    fprintf(out, "%lld", (long long)v);
}

/* Field `off` of a as type T. */
#define FIELD(T, a, off) (*(const T *)((const char *)(a) + (off)))

/* The value of attribute k (of ir_attrinfo), by its kind. */
static void put_attr_value(FILE *out, const IrGraph *g, int k, const IrAttrs *a) {
  const IrAttrInfo *ai = &ir_attrinfo[k];
  size_t o = ai->off, o2 = ai->off2;
  switch (ai->kind) {
  case IR_AK_STR: put_str(out, *(const char *const *)((const char *)a + o)); break;
  case IR_AK_INT: fprintf(out, "%d", FIELD(int, a, o)); break;
  case IR_AK_F64: put_double(out, FIELD(double, a, o)); break;
  case IR_AK_BOOL: fputs(FIELD(bool, a, o) ? "true" : "false", out); break;
  case IR_AK_DIM: put_dim(out, g, FIELD(IrDim, a, o)); break;
  case IR_AK_MASK:
    fputc('[', out);
    put_mask_bound(out, FIELD(int64_t, a, o));
    fputc(',', out);
    put_mask_bound(out, FIELD(int64_t, a, o2));
    fputc(']', out);
    break;
  case IR_AK_LIST: {
    const int *v = &FIELD(int, a, o);
    fputc('[', out);
    for (int i = 0; i < FIELD(int, a, o2) && i < IR_MAX_RANK; i++) fprintf(out, "%s%d", i ? "," : "", v[i]);
    fputc(']', out);
    break;
  }
  case IR_AK_TILE: {
    const int64_t *v = &FIELD(int64_t, a, o);
    fputc('[', out);
    for (int i = 0; i < FIELD(int, a, o2) && i < IR_MAX_TILE; i++) fprintf(out, "%s%lld", i ? "," : "", (long long)v[i]);
    fputc(']', out);
    break;
  }
  }
}

/* " {name=value, ...}": the attributes the table shows for this node, in
 * the table's order; nothing when there are none. */
static void put_attrs(FILE *out, const IrGraph *g, const IrNode *n) {
  int count = 0;
  for (int k = 0; k < IR_NATTR; k++) {
    if (!ir_attr_shown(n->op, k, &n->a)) continue;
    fprintf(out, "%s%s=", count++ ? ", " : " {", ir_attrinfo[k].name);
    put_attr_value(out, g, k, &n->a);
  }
  if (count) fputc('}', out);
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
    char buf[48];
    ir_param_str(&g->params[i], buf, sizeof buf);
    fprintf(out, " = %s\n", buf);
  }
  for (int i = 0; i < g->nsym; i++) {
    const IrDerivedDim *d = g->derived[i];
    fprintf(out, "  dim %s", g->syms[i]);
    if (d) {
      fputs(" = (", out);
      put_dim(out, g, d->num);
      fprintf(out, ") floordiv %lld + 1 from ", (long long)d->stride);
      put_str(out, d->why);
      fprintf(out, " kernel %lld pad %lld", (long long)d->kext, (long long)d->pad);
    }
    fputc('\n', out);
  }
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

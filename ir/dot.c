/* dot.c - Graphviz export of a graph, for looking at it.
 *
 * Requires: a graph (operands and bodies out of range are skipped).
 * Produces: a deterministic digraph: one node per IR node labelled
 * "%ID op" and its type (plus the name of inputs and weights), an edge from
 * each operand to its user, a box per output, and each body as a cluster
 * labelled with its owner, whose yield feeds the owner by a dashed edge.
 * Dot node names are f<func>_<node> and out<k>. */
#include "ir.h"
#include <string.h>

/* Write s for use inside a quoted dot string. */
static void put_esc(FILE *out, const char *s) {
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(out, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      fprintf(out, "\\\\x%02x", *p);
    else
      fputc(*p, out);
  }
}

/* The type as text, or "?" if its fields are out of range. */
static void type_label(const IrGraph *g, const IrType *t, char *buf, size_t n) {
  bool sane = t->rank <= IR_MAX_RANK;
  for (int i = 0; sane && i < t->rank; i++) {
    sane = t->dim[i].nterm <= IR_MAX_TERMS;
    for (int k = 0; sane && k < t->dim[i].nterm; k++) sane = t->dim[i].t[k].nsym <= IR_MAX_FACTORS;
  }
  if (sane)
    ir_type_str(g, t, buf, n);
  else
    snprintf(buf, n, "?");
}

static void put_node(FILE *out, const IrGraph *g, int fi, int i, const char *indent) {
  const IrNode *n = &g->funcs[fi].nodes[i];
  char ty[512];
  type_label(g, &n->type, ty, sizeof ty);
  fprintf(out, "%sf%d_%d [label=\"%%%d %s", indent, fi, i, i, n->op < IR_NOPS ? ir_opinfo[n->op].name : "?");
  if (n->op == IR_INPUT || n->op == IR_WEIGHT) {
    fputs(" \\\"", out);
    put_esc(out, n->a.str);
    fputs("\\\"", out);
  }
  fprintf(out, "\\n%s\"", ty);
  if (n->op == IR_INPUT || n->op == IR_WEIGHT) fputs(", shape=box, style=rounded", out);
  fputs("];\n", out);
}

static void put_edges(FILE *out, const IrGraph *g, int fi, const char *indent) {
  const IrFunc *f = &g->funcs[fi];
  for (int i = 0; i < f->n; i++) {
    const IrNode *n = &f->nodes[i];
    for (int k = 0; k < n->nin; k++)
      if (n->in[k] >= 0 && n->in[k] < f->n) fprintf(out, "%sf%d_%d -> f%d_%d;\n", indent, fi, n->in[k], fi, i);
  }
}

void ir_dot(const IrGraph *g, FILE *out) {
  fputs("digraph \"", out);
  put_esc(out, g->name);
  fputs("\" {\n  node [shape=ellipse, fontname=\"monospace\"];\n", out);
  if (g->nfunc > 0) {
    for (int i = 0; i < g->funcs[0].n; i++) put_node(out, g, 0, i, "  ");
    put_edges(out, g, 0, "  ");
  }
  for (int k = 0; k < g->noutput; k++) {
    const IrOutput *o = &g->outputs[k];
    fprintf(out, "  out%d [shape=box, label=\"output \\\"", k);
    put_esc(out, o->name);
    fputs("\\\"\"];\n", out);
    if (g->nfunc > 0 && o->node >= 0 && o->node < g->funcs[0].n) fprintf(out, "  f0_%d -> out%d;\n", o->node, k);
  }
  /* bodies, in function order, each under the node that owns it */
  for (int fi = 1; fi < g->nfunc; fi++) {
    const IrFunc *b = &g->funcs[fi];
    int of = -1, on = -1;
    for (int f = 0; f < g->nfunc && on < 0; f++)
      for (int i = 0; i < g->funcs[f].n; i++)
        if (g->funcs[f].nodes[i].body == fi) {
          of = f;
          on = i;
          break;
        }
    fprintf(out, "  subgraph cluster_f%d {\n    style=dashed;\n", fi);
    if (on >= 0) {
      unsigned op = g->funcs[of].nodes[on].op;
      fprintf(out, "    label=\"body of %%%d (%s)\";\n", on, op < IR_NOPS ? ir_opinfo[op].name : "?");
    } else
      fprintf(out, "    label=\"body function %d\";\n", fi);
    for (int i = 0; i < b->n; i++) put_node(out, g, fi, i, "    ");
    put_edges(out, g, fi, "    ");
    fputs("  }\n", out);
    for (int k = 0; k < b->nyield && on >= 0; k++)
      if (b->yields[k] >= 0 && b->yields[k] < b->n)
        fprintf(out, "  f%d_%d -> f%d_%d [style=dashed];\n", fi, b->yields[k], of, on);
  }
  fputs("}\n", out);
}

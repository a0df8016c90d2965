/* cost.c - a static cost model of a graph: how many kernels it becomes,
 * the FLOPs of its matrix products and the bytes its kernels move.
 *
 * The model, documented in docs/architecture.md ("Cost model"):
 *   kernel   every main-function node a kernel computes (computed[i], from
 *            the kernel plan, codegen/plan.h): elementwise ops, fused
 *            loops, reductions, norms, matmuls, attention, concat, and
 *            the constants and copies the plan materializes.  Inputs,
 *            weights, views and constants computed inside elementwise
 *            kernels are read in place.
 *   FLOPs    2*M*N*K per matrix product (batch included); attention
 *            counts its two products, 2*B*Hq*T*S*(E + Ev), densely (block
 *            skipping is not subtracted) -- the FlashAttention convention.
 *            Elementwise and softmax work is not counted.
 *   bytes    per kernel: every distinct operand read once at its own size
 *            (a broadcast operand at its small size; a view at the size of
 *            the view; constants and iotas cost nothing) plus the output
 *            written once.  This is compulsory traffic, the lower bound an
 *            ideal cache would reach; it is what fusion changes.  A
 *            folded squeeze (fold-se) reads the partial sums its matmul
 *            wrote (both counted), not the matmul's result.  An update
 *            (a state written in place) moves its new values twice (read,
 *            written), not the state; a pack of a 2-byte weight is read
 *            at 2 bytes per value; a fold=true pool (fuse-pool) reads its
 *            conv's operands and does its FLOPs (the conv's map is
 *            neither written nor read); an excitation kernel
 *            (fuse-excite) reads its squeeze's partial sums and both
 *            layers' weights and operands and does both layers' FLOPs. */
#include "ir.h"

static double elems(const IrType *t, const int64_t *symvals) {
  double n = 1;
  for (int a = 0; a < t->rank; a++) n *= (double)ir_dim_eval(t->dim[a], symvals);
  return n;
}

static double esize(rt_dtype t) { return t == RT_BOOL ? 1 : t == RT_F16 || t == RT_BF16 ? 2 : t == RT_F64 || t == RT_I64 ? 8 : 4; }

void ir_cost(const IrGraph *g, const int64_t *symvals, const bool *computed, IrCost *out) {
  const IrFunc *f = &g->funcs[0];
  *out = (IrCost){0};
  for (int i = 0; i < f->n; i++) {
    if (!computed[i]) continue;
    const IrNode *n = &f->nodes[i], *o = n;
    out->kernels++;
    out->by_class[ir_opinfo[n->op].cls]++;
    if ((n->op == IR_MAXPOOL || n->op == IR_AVGPOOL) && n->a.fold) /* fuse-pool: computes its conv, reads its operands */
      n = &f->nodes[n->in[0]];
    if (n->op == IR_MATMUL) {
      const IrType *a = &f->nodes[n->in[0]].type;
      out->flops += 2 * elems(&n->type, symvals) * (double)ir_dim_eval(a->dim[a->rank - 1], symvals);
    } else if (n->op == IR_CONV2D) { /* 2 * outputs * (C / groups) * kh * kw */
      const IrType *w = &f->nodes[n->in[1]].type;
      out->flops += 2 * elems(&n->type, symvals) * (double)(ir_dim_eval(w->dim[1], symvals) *
                                                            ir_dim_eval(w->dim[2], symvals) *
                                                            ir_dim_eval(w->dim[3], symvals));
    } else if (n->op == IR_ATTENTION) {
      const IrType *q = &f->nodes[n->in[0]].type, *k = &f->nodes[n->in[1]].type, *v = &f->nodes[n->in[2]].type;
      double bht = elems(q, symvals) / (double)ir_dim_eval(q->dim[3], symvals);
      double s = (double)ir_dim_eval(k->dim[2], symvals);
      out->flops += 2 * bht * s * (double)(ir_dim_eval(q->dim[3], symvals) + ir_dim_eval(v->dim[3], symvals));
    }
    double b = elems(&o->type, symvals) * esize(o->type.dt);
    const IrNode *h = (n->op == IR_MATMUL || n->op == IR_CONV2D) && !n->a.fold ? &f->nodes[n->in[0]] : NULL;
    if (h && (h->op == IR_MATMUL || h->op == IR_CONV2D) && h->a.fold) {
      /* fuse-excite: layer 2 computes layer 1 (its FLOPs, its weight and operands) from the squeeze's
         partial sums (written and read: counted as one row per image, as a folded squeeze) */
      const IrType *a = &f->nodes[h->in[0]].type;
      out->flops += 2 * elems(&h->type, symvals) * (double)ir_dim_eval(a->dim[1], symvals);
      b += 2 * elems(a, symvals) * 4;
      for (int k = 1; k < h->nin; k++) b += elems(&f->nodes[h->in[k]].type, symvals) * 4;
    } else {
      h = NULL;
    }
    if (n->op == IR_UPDATE) { /* in place: the new values read and written into the state, nothing else */
      const IrNode *x = &f->nodes[n->in[1]];
      out->bytes += 2 * elems(&x->type, symvals) * esize(n->type.dt);
      continue;
    }
    if ((n->op == IR_SUM || n->op == IR_MEAN) && n->a.fold) {
      /* fold-se: the matmul wrote partial sums (one row per tile[0] rows)
         instead of this reading its result: count the write and the read */
      const IrType *p = &f->nodes[n->in[0]].type;
      if (f->nodes[n->in[0]].op == IR_CONV2D) { /* partial rows of O per block of pixels: counted as one per image */
        out->bytes += b + 2 * b;
        continue;
      }
      double rows = (double)ir_dim_eval(p->dim[p->rank - 2], symvals), per = n->a.ntile ? (double)n->a.tile[0] : 1;
      double part = elems(p, symvals) / rows * ((rows + per - 1) / per > 0 ? (double)(int64_t)((rows + per - 1) / per) : 0) * 4;
      out->bytes += b + 2 * part;
      continue;
    }
    for (int k = 0; k < n->nin; k++) {
      int o = n->in[k];
      bool seen = false;
      for (int j = 0; j < k; j++) seen |= n->in[j] == o;
      const IrNode *on = &f->nodes[o];
      if (seen || on->op == IR_CONST || on->op == IR_IOTA || on == h) continue;
      /* a pack of a 2-byte weight holds 2-byte panels (pack-weights) */
      rt_dtype dt = on->op == IR_PACK ? f->nodes[on->in[0]].type.dt : on->type.dt;
      b += elems(&on->type, symvals) * esize(dt);
    }
    out->bytes += b;
  }
}

/* fold_bn.c - fold-bn: a per-channel scale computed from weights alone
 * (an eval-mode batchnorm after a convolution: x * s + t with s = weight *
 * rsqrt(running_var + eps)) moves into the convolution's weight and bias:
 *
 *   %c = conv2d(%x, %w)                 %r = reshape(%s) : [O,1,1,1]
 *   %a = add(%c, %b)           ->       %w2 = mul(%w, %r)            (weights only)
 *   %m = mul(%a, %s)                    %c2 = conv2d(%x, %w2)
 *                                       %bs = mul(%b, %s)            (weights only)
 *                                       %m  = add(%c2, %bs)
 *
 * (without the bias add: %m = conv2d(%x, %w2)).  The shift t stays an add
 * that fuse-epilogue puts into the convolution's epilogue with the bias.
 * The new nodes depend only on weights and constants: a subgraph that
 * hoist-weights computes once per load; the convolution then reads the
 * folded weight and the batchnorm costs nothing per run.
 *
 * Legality: %s and %b depend only on weights and constants and are per
 * channel of the convolution's output ([O,1,1], [1,O,1,1]); %c (and %a)
 * have no other use; %c has no epilogue yet.
 *
 * Requires: canonicalize, cse.  Produces: conv2d nodes reading a scaled
 * weight; the old ones are removed by compaction. */
#include <stdlib.h>
#include <string.h>
#include "pass.h"

/* Is v, of type t, per channel of conv output o: [O,1,1] or [1,O,1,1]? */
static bool per_channel(const IrType *t, const IrType *o) {
  int64_t one;
  if (t->rank < 3 || t->rank > 4 || !ir_dim_eq(t->dim[t->rank - 3], o->dim[1])) return false;
  for (int d = 0; d < t->rank; d++)
    if (d != t->rank - 3 && !(ir_dim_is_const(t->dim[d], &one) && one == 1)) return false;
  return true;
}

/* Add node (op, ins, type, attrs of like) before position *pos of main;
 * returns its index and moves *pos past it. */
static int add_before(IrGraph *g, int *pos, IrOp op, int nin, const int *ins, const IrType *t, const IrAttrs *a,
                      IrLoc loc) {
  IrNode nn;
  memset(&nn, 0, sizeof nn);
  nn.op = (uint16_t)op;
  nn.nin = nin;
  nn.in = (int *)ins;
  nn.type = *t;
  if (a) nn.a = *a;
  else ir_attrs_init(&nn.a);
  nn.body = -1;
  nn.loc = loc;
  int id = pass_insert(g, 0, *pos, &nn);
  (*pos)++;
  return id;
}

bool pass_fold_bn(IrGraph *g, const PassOptions *opt) {
  (void)opt;
  int n = g->funcs[0].n;
  if (n == 0) return false;
  bool changed = false;
  int *user = NULL, *uses = NULL;
  bool *wonly = NULL; /* depends only on weights and constants; recomputed after a rewrite */
  for (int m = 0; m < g->funcs[0].n; m++) {
    const IrFunc *f = &g->funcs[0];
    if (!uses) {
      uses = pass_uses(g, &user);
      wonly = calloc((size_t)f->n + 1, sizeof *wonly);
      if (!wonly) ir_bug("out of memory");
      for (int i = 0; i < f->n; i++) {
        const IrNode *nd = &f->nodes[i];
        IrOpClass c = ir_opinfo[nd->op].cls;
        wonly[i] = nd->op == IR_WEIGHT || nd->op == IR_CONST;
        if (ir_op_is_elementwise((IrOp)nd->op) || ((c == IR_CLS_SHAPE || c == IR_CLS_RED) && nd->op != IR_GATHER)) {
          wonly[i] = nd->nin > 0;
          for (int k = 0; k < nd->nin; k++) wonly[i] &= wonly[nd->in[k]];
        }
      }
    }
    const IrNode *mn = &f->nodes[m];
    int conv = -1, add = -1, s = -1, b = -1;
    if (mn->op == IR_MUL && mn->type.dt == RT_F32)
      for (int k = 0; k < 2 && conv < 0; k++) {
        int a = mn->in[k], sc = mn->in[1 - k];
        const IrNode *an = &f->nodes[a];
        if (!wonly[sc] || uses[a] != 1) continue;
        if (an->op == IR_ADD)
          for (int q = 0; q < 2; q++) {
            int c = an->in[q], bb = an->in[1 - q];
            if (f->nodes[c].op == IR_CONV2D && wonly[bb]) conv = c, add = a, b = bb;
          }
        else if (an->op == IR_CONV2D)
          conv = a;
        if (conv >= 0) s = sc;
      }
    bool ok = conv >= 0 && uses[conv] == 1 && f->nodes[conv].body < 0 && f->nodes[conv].nin == 2 &&
              ir_shape_eq(&f->nodes[conv].type, &mn->type) && per_channel(&f->nodes[s].type, &f->nodes[conv].type) &&
              (b < 0 || per_channel(&f->nodes[b].type, &f->nodes[conv].type));
    if (!ok) continue;
    free(uses);
    free(user);
    free(wonly);
    uses = user = NULL;
    wonly = NULL;
    /* the rewrite, before m (every operand is older) */
    IrNode cn = g->funcs[0].nodes[conv];
    const IrType *wt = &g->funcs[0].nodes[cn.in[1]].type, *st = &g->funcs[0].nodes[s].type;
    IrType rt = *wt, wt2 = *wt;
    rt.rank = 4;
    rt.dim[0] = wt->dim[0];
    for (int d = 1; d < 4; d++) rt.dim[d] = ir_dim_const(1);
    rt.dt = st->dt;
    int pos = m;
    int r = add_before(g, &pos, IR_RESHAPE, 1, (int[]){s}, &rt, NULL, cn.loc);
    int w2 = add_before(g, &pos, IR_MUL, 2, (int[]){cn.in[1], r}, &wt2, NULL, cn.loc);
    int ins[2] = {cn.in[0], w2};
    IrNode *nm = &g->funcs[0].nodes[pos];
    IrLoc mloc = nm->loc;
    if (b < 0) { /* m becomes the convolution */
      nm->op = IR_CONV2D;
      nm->nin = 2;
      nm->in = ir_arena_alloc(g->arena, 2 * sizeof(int));
      memcpy(nm->in, ins, sizeof ins);
      nm->type = cn.type;
      nm->a = cn.a;
      nm->loc = cn.loc;
    } else { /* m becomes conv + b * s */
      IrType bst;
      int c2 = add_before(g, &pos, IR_CONV2D, 2, ins, &cn.type, &cn.a, cn.loc);
      if (!ir_broadcast(&g->funcs[0].nodes[b].type, &g->funcs[0].nodes[s].type, &bst)) ir_bug("fold-bn: shapes");
      int bs = add_before(g, &pos, IR_MUL, 2, (int[]){b, s}, &bst, NULL, mloc);
      nm = &g->funcs[0].nodes[pos];
      nm->op = IR_ADD;
      nm->nin = 2;
      nm->in = ir_arena_alloc(g->arena, 2 * sizeof(int));
      nm->in[0] = c2, nm->in[1] = bs;
      ir_attrs_init(&nm->a);
    }
    (void)add;
    m = pos;
    changed = true;
  }
  free(uses);
  free(user);
  free(wonly);
  if (changed) pass_compact(g, 0);
  return changed;
}

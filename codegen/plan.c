/* plan.c - the kernel plan of a graph (plan.h): value kinds, liveness and
 * workspace slots, fold-se partners, the kernel list and every kernel's
 * parameter list.  Backend-neutral: the CPU and CUDA backends render it.
 *
 * Requires: a verified graph (any pipeline stage).
 * Produces: a CgPlan (malloc'd; cg_plan_free).
 *
 *   kinds     inputs and weights are external; a constant, iota or
 *             dimval is virtual when only elementwise kernels read it
 *             (they compute it in place), else a buffer filled by a kernel
 *             (outputs included); permute, slice and expand (zero strides)
 *             are views; a reshape is a view of a dense value and a copy
 *             of anything else; a gather read only by elementwise kernels
 *             is an indexed view (they load the id and read the table
 *             row: token + position embeddings are one kernel), else a
 *             buffer written by a gather kernel; every other node is a
 *             buffer written by its kernel.
 *   liveness  a value lives from its definition to its last reader; a read
 *             of a view is a read of its base, a read of an indexed view
 *             one of its table and its ids; graph outputs live to the
 *             end.
 *   slots     buffers that are not graph outputs get workspace slots,
 *             greedily by liveness (a slot is free again after the last
 *             use of its occupant); a folded reduction's partial sums get
 *             a slot from its matmul to it.  Slot sizes are symbolic: each
 *             backend sizes them at run time (its own element sizes).
 *   kernels   one per buffer or copy, in graph order, then one copy per
 *             graph output not written in place (an input, a view, a
 *             value that is several outputs).
 *   prepared  hoist-weights' prep=true values (and constants materialized
 *             for their kernels) are computed at load by prepare kernels
 *             into the instance's prepared memory: no slot, never written
 *             in place into an output (a run copies them), no fold-se
 *             partner; each prepare kernel lists the weights it depends on,
 *             so a bind recomputes only what depends on the weight bound. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "codegen.h"
#include "plan.h"

static void *grow(void *p, int *cap, int need, size_t elt) {
  if (need <= *cap) return p;
  int c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  p = realloc(p, (size_t)c * elt);
  if (!p) ir_bug("out of memory");
  *cap = c;
  return p;
}

static bool ewise_consumer(const IrNode *n) { return ir_op_is_elementwise((IrOp)n->op) || n->op == IR_FUSED; }

int cg_output_of(const IrGraph *g, int i) {
  int out = -1;
  for (int k = 0; k < g->noutput; k++)
    if (g->outputs[k].node == i) out = k;
  return out;
}

/* ---- parameter lists ------------------------------------------------------------ */

typedef struct {
  CgPlan *p;
  CgKernel *k;
} PB;

/* Start parameter `name` (printf-style) of the kernel being built. */
static CgParam *param(PB *b, CgParamType type, int count, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static CgParam *param(PB *b, CgParamType type, int count, const char *fmt, ...) {
  CgPlan *p = b->p;
  p->param = grow(p->param, &p->capparam, p->nparam + 1, sizeof *p->param);
  CgParam *q = &p->param[p->nparam++];
  memset(q, 0, sizeof *q);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q->name, sizeof q->name, fmt, ap);
  va_end(ap);
  q->type = type;
  q->count = count;
  q->dtype_of = -1;
  q->v0 = p->nval;
  b->k->np++;
  return q;
}

/* Append one value to the parameter being built. */
static void val(PB *b, CgValueKind kind, int node, int axis) {
  CgPlan *p = b->p;
  p->val = grow(p->val, &p->capval, p->nval + 1, sizeof *p->val);
  p->val[p->nval++] = (CgValue){.kind = kind, .node = node, .axis = axis, .node2 = -1, .axis2 = -1};
}
static CgValue *last(PB *b) { return &b->p->val[b->p->nval - 1]; }
static void ival(PB *b, int64_t v) { val(b, CG_V_INT, -1, -1), last(b)->i = v; }

/* A pointer parameter to node `node`'s data (dtype of `node`). */
static void ptr(PB *b, const char *name, int node, bool writes) {
  CgParam *q = param(b, CG_P_PTR, 0, "%s", name);
  q->dtype_of = node;
  q->writes = writes;
  val(b, CG_V_PTR, node, -1);
}
static void scalar(PB *b, const char *name, CgValueKind kind, int node, int axis) {
  param(b, CG_P_I64, 0, "%s", name);
  val(b, kind, node, axis);
}
/* name[rr]: `kind` of node's axes 0..r-1 (r = its rank; rank 0: one `pad`). */
static void axes(PB *b, CgValueKind kind, int node, int r, int pad, const char *fmt, int k) {
  param(b, CG_P_I64, r > 0 ? r : 1, fmt, k);
  for (int d = 0; d < r; d++) val(b, kind, node, d);
  if (r == 0) ival(b, pad);
}
/* name[rr]: node's strides aligned to an output of rank r, 0 where it broadcasts. */
static void bstrides(PB *b, const CgPlan *p, int node, int r, const char *fmt, int k) {
  int xr = p->g->funcs[0].nodes[node].type.rank;
  param(b, CG_P_I64, r > 0 ? r : 1, fmt, k);
  for (int d = 0; d < r; d++) val(b, CG_V_BSTRIDE, node, d - (r - xr));
  if (r == 0) ival(b, 0);
}

/* Operand k of a kernel of rank r that is gather node gid read as an
 * indexed view: p<k>, s<k>, g<k>, gs<k>, gr<k>, gn<k> (plan.h). */
static void gather_operand(PB *b, int gid, int r, int k) {
  const IrFunc *f = &b->p->g->funcs[0];
  const IrNode *gn = &f->nodes[gid];
  int x = gn->in[0], ids = gn->in[1], ax = gn->a.axis, ir = f->nodes[ids].type.rank, off = r - gn->type.rank;
  char nm[24];
  snprintf(nm, sizeof nm, "p%d", k);
  ptr(b, nm, x, false);
  param(b, CG_P_I64, r > 0 ? r : 1, "s%d", k);
  for (int d = 0; d < r; d++) {
    int ga = d - off;
    if (ga < 0 || (ga >= ax && ga < ax + ir)) ival(b, 0);
    else val(b, CG_V_BSTRIDE, x, ga < ax ? ga : ga - ir + 1);
  }
  if (r == 0) ival(b, 0);
  snprintf(nm, sizeof nm, "g%d", k);
  ptr(b, nm, ids, false);
  param(b, CG_P_I64, r > 0 ? r : 1, "gs%d", k);
  for (int d = 0; d < r; d++) {
    int ga = d - off;
    if (ga >= ax && ga < ax + ir) val(b, CG_V_BSTRIDE, ids, ga - ax);
    else ival(b, 0);
  }
  if (r == 0) ival(b, 0);
  param(b, CG_P_I64, 0, "gr%d", k), val(b, CG_V_STRIDE, x, ax);
  param(b, CG_P_I64, 0, "gn%d", k), val(b, CG_V_DIM, x, ax);
}

static void params_ewise(PB *b, int id) {
  const CgPlan *p = b->p;
  const IrNode *n = &p->g->funcs[0].nodes[id];
  int r = n->type.rank;
  ptr(b, "o", id, true);
  scalar(b, "n", CG_V_NUMEL, id, -1);
  axes(b, CG_V_DIM, id, r, 1, "shape", 0);
  if (n->op == IR_CONST || n->op == IR_IOTA || n->op == IR_DIMVAL) { /* a fill: dense */
    if (n->op == IR_DIMVAL) param(b, CG_P_I64, 0, "dv0"), val(b, CG_V_SYMDIM, id, -1);
    return;
  }
  axes(b, CG_V_STRIDE, id, r, 1, "os", 0);
  if (n->op == IR_GATHER) { /* a gather kernel: the indexed view of itself, copied */
    gather_operand(b, id, r, 0);
    return;
  }
  for (int k = 0; k < n->nin; k++) {
    int x = n->in[k];
    const IrNode *xn = &p->g->funcs[0].nodes[x];
    if (cg_plan_virtual(p, x)) { /* computed in the kernel; a dimval's value comes in dv<k> */
      if (xn->op == IR_DIMVAL) param(b, CG_P_I64, 0, "dv%d", k), val(b, CG_V_SYMDIM, x, -1);
      continue;
    }
    if (cg_plan_gather(p, x)) {
      gather_operand(b, x, r, k);
      continue;
    }
    char nm[24];
    snprintf(nm, sizeof nm, "p%d", k);
    ptr(b, nm, x, false);
    bstrides(b, p, x, r, "s%d", k);
  }
}

/* A dense copy of x (in x's own shape) into dst. */
static void params_copy(PB *b, int x, int out) {
  const IrNode *n = &b->p->g->funcs[0].nodes[x];
  if (out >= 0) {
    CgParam *q = param(b, CG_P_PTR, 0, "o");
    q->dtype_of = x;
    q->writes = true;
    val(b, CG_V_OUT, -1, -1);
    last(b)->i = out;
  } else {
    ptr(b, "o", b->k->node, true);
  }
  ptr(b, "x", x, false);
  scalar(b, "n", CG_V_NUMEL, x, -1);
  axes(b, CG_V_DIM, x, n->type.rank, 1, "shape", 0);
  axes(b, CG_V_STRIDE, x, n->type.rank, 0, "xs", 0);
}

static void params_matmul(PB *b, int id) {
  const CgPlan *p = b->p;
  const IrFunc *f = &p->g->funcs[0];
  const IrNode *n = &f->nodes[id];
  int A = n->in[0], B = n->in[1], r = n->type.rank, nb = r - 2;
  int ra = f->nodes[A].type.rank, rb = f->nodes[B].type.rank;
  ptr(b, "A", A, false);
  ptr(b, "B", B, false);
  ptr(b, "C", id, true);
  scalar(b, "M", CG_V_DIM, id, r - 2);
  scalar(b, "N", CG_V_DIM, id, r - 1);
  scalar(b, "K", CG_V_DIM, A, ra - 1);
  scalar(b, "as_m", CG_V_STRIDE, A, ra - 2);
  scalar(b, "as_k", CG_V_STRIDE, A, ra - 1);
  scalar(b, "bs_k", CG_V_STRIDE, B, rb - 2);
  scalar(b, "bs_n", CG_V_STRIDE, B, rb - 1);
  scalar(b, "cs_m", CG_V_STRIDE, id, r - 2);
  param(b, CG_P_I64, 0, "nbatch");
  val(b, CG_V_PROD, id, -1);
  last(b)->mask = (1u << nb) - 1;
  /* batch axes: shape, and the strides of A, B (broadcast) and C (one
     element more than the axes, never read: the layout the kernels' register
     use was checked with) */
  param(b, CG_P_I64, nb + 1, "bshape");
  for (int d = 0; d < nb; d++) val(b, CG_V_DIM, id, d);
  ival(b, 0);
  param(b, CG_P_I64, nb + 1, "bas");
  for (int d = 0; d < nb; d++) val(b, CG_V_BSTRIDE, A, d - (nb - (ra - 2)));
  ival(b, 0);
  param(b, CG_P_I64, nb + 1, "bbs");
  for (int d = 0; d < nb; d++) val(b, CG_V_BSTRIDE, B, d - (nb - (rb - 2)));
  ival(b, 0);
  param(b, CG_P_I64, nb + 1, "bcs");
  for (int d = 0; d < nb; d++) val(b, CG_V_STRIDE, id, d);
  ival(b, 0);
  for (int x = 0; x < n->nin - 2; x++) { /* epilogue operands */
    char nm[24];
    snprintf(nm, sizeof nm, "x%d", x);
    ptr(b, nm, n->in[2 + x], false);
    bstrides(b, p, n->in[2 + x], r, "xs%d", x);
  }
  int fold = p->node[id].fold_user;
  if (fold >= 0) { /* fold-se: the partial column sums */
    CgParam *q = param(b, CG_P_PTR, 0, "part");
    q->writes = true;
    val(b, CG_V_AUX, fold, -1);
  }
}

static void params_fold(PB *b, int id) {
  const CgPlan *p = b->p;
  int mm = p->node[id].fold_src, mr = p->g->funcs[0].nodes[mm].type.rank;
  param(b, CG_P_PTR, 0, "part");
  val(b, CG_V_AUX, id, -1);
  ptr(b, "o", id, true);
  scalar(b, "n", CG_V_NUMEL, id, -1);
  if (p->g->funcs[0].nodes[mm].op == IR_CONV2D) { /* N: channels, M: pixels per image */
    scalar(b, "N", CG_V_DIM, mm, 1);
    param(b, CG_P_I64, 0, "M");
    val(b, CG_V_PROD, mm, -1), last(b)->mask = 0xc;
    return;
  }
  scalar(b, "N", CG_V_DIM, mm, mr - 1);
  scalar(b, "M", CG_V_DIM, mm, mr - 2);
}

static void params_reduce(PB *b, int id) {
  const IrNode *n = &b->p->g->funcs[0].nodes[id];
  int x = n->in[0], r = b->p->g->funcs[0].nodes[x].type.rank;
  uint32_t red = 0;
  for (int k = 0; k < n->a.nlist; k++) red |= 1u << n->a.list[k];
  uint32_t keep = ((1u << r) - 1) & ~red;
  ptr(b, "x", x, false);
  ptr(b, "o", id, true);
  param(b, CG_P_I64, 0, "nout");
  val(b, CG_V_PROD, x, -1), last(b)->mask = keep;
  param(b, CG_P_I64, 0, "nred");
  val(b, CG_V_PROD, x, -1), last(b)->mask = red;
  int nk = __builtin_popcount(keep), nr = __builtin_popcount(red), rr = r > 0 ? r : 1;
  static const char *const names[4] = {"kshape", "ks", "rshape", "rs"};
  for (int t = 0; t < 4; t++) { /* the kept and the reduced axes, in arrays of the rank */
    uint32_t m = t < 2 ? keep : red;
    param(b, CG_P_I64, rr, "%s", names[t]);
    for (int d = 0; d < r; d++)
      if (m >> d & 1) val(b, t % 2 ? CG_V_STRIDE : CG_V_DIM, x, d);
    for (int d = t < 2 ? nk : nr; d < rr; d++) ival(b, 0);
  }
  param(b, CG_P_I32, 0, "nk"), ival(b, nk);
  param(b, CG_P_I32, 0, "nr"), ival(b, nr);
}

static void params_rows(PB *b, int id) {
  const IrNode *n = &b->p->g->funcs[0].nodes[id];
  int x = n->in[0], r = b->p->g->funcs[0].nodes[x].type.rank;
  int ax = n->op == IR_SOFTMAX ? n->a.axis : r - 1, nd = r - 1;
  ptr(b, "x", x, false);
  ptr(b, "o", id, true);
  for (int k = 1; k < 3; k++) { /* a norm's weight and bias (NULL when it has none) */
    if (k < n->nin) {
      ptr(b, k == 1 ? "w" : "b", n->in[k], false);
    } else {
      param(b, CG_P_PTR, 0, k == 1 ? "w" : "b");
      val(b, CG_V_LAUNCH, -1, -1);
    }
  }
  param(b, CG_P_I64, 0, "nrows");
  val(b, CG_V_PROD, x, -1), last(b)->mask = ((1u << r) - 1) & ~(1u << ax);
  scalar(b, "n", CG_V_DIM, x, ax);
  scalar(b, "xs", CG_V_STRIDE, x, ax);
  scalar(b, "os", CG_V_STRIDE, id, ax);
  static const char *const names[3] = {"rshape", "rxs", "ros"};
  for (int t = 0; t < 3; t++) { /* the other axes, in arrays of the largest rank */
    param(b, CG_P_I64, IR_MAX_RANK, "%s", names[t]);
    for (int d = 0; d < r; d++)
      if (d != ax) val(b, t == 0 ? CG_V_DIM : CG_V_STRIDE, t == 2 ? id : x, d);
    for (int d = nd; d < IR_MAX_RANK; d++) ival(b, 0);
  }
  param(b, CG_P_I32, 0, "nd"), ival(b, nd);
  param(b, CG_P_F32, 0, "eps"), val(b, CG_V_REAL, -1, -1), last(b)->f = n->a.eps;
}

static void params_attention(PB *b, int id) {
  const CgPlan *p = b->p;
  const IrNode *n = &p->g->funcs[0].nodes[id];
  int q = n->in[0], k = n->in[1], v = n->in[2];
  ptr(b, "q", q, false);
  ptr(b, "k", k, false);
  ptr(b, "v", v, false);
  ptr(b, "o", id, true);
  scalar(b, "B", CG_V_DIM, q, 0);
  scalar(b, "H", CG_V_DIM, q, 1);
  scalar(b, "T", CG_V_DIM, q, 2);
  scalar(b, "S", CG_V_DIM, k, 2);
  param(b, CG_P_I64, 0, "G"); /* query heads per key/value head (GQA) */
  val(b, CG_V_QUOT, q, 1), last(b)->node2 = k, last(b)->axis2 = 1;
  param(b, CG_P_I64, 0, "moff"); /* the band's run-time offset (S - T: bottom-right causal) */
  val(b, CG_V_SYMDIM, id, -1);
  if (n->a.kvlen) { /* the valid key length's stride along the batch (its axis 0; 0: one for all) */
    const IrNode *L = &p->g->funcs[0].nodes[n->in[n->a.kvlen]];
    param(b, CG_P_I64, 0, "kvs");
    val(b, CG_V_BSTRIDE, n->in[n->a.kvlen], L->type.rank ? 0 : -1);
  }
  static const char *const names[4] = {"qs", "ks", "vs", "os"};
  int of[4] = {q, k, v, id};
  for (int t = 0; t < 4; t++) {
    param(b, CG_P_I64, 3, "%s", names[t]);
    for (int d = 0; d < 3; d++) val(b, CG_V_STRIDE, of[t], d);
  }
  for (int x = 0; x < n->nin - 3; x++) { /* score-body operands */
    char nm[24];
    snprintf(nm, sizeof nm, "x%d", x);
    ptr(b, nm, n->in[3 + x], false);
    bstrides(b, p, n->in[3 + x], 4, "xs%d", x);
  }
  /* split-KV (decoding): blocks per query block and their partial results,
     chosen and allocated by a launcher that splits the keys */
  param(b, CG_P_I32, 0, "nsplit"), val(b, CG_V_LAUNCH, -1, -1);
  for (int t = 0; t < 2; t++) {
    param(b, CG_P_PTR, 0, t ? "pml" : "po")->writes = true;
    val(b, CG_V_LAUNCH, -1, -1);
  }
}

static void params_concat(PB *b, int id) {
  const IrNode *n = &b->p->g->funcs[0].nodes[id];
  int r = n->type.rank;
  ptr(b, "o", id, true);
  scalar(b, "n", CG_V_NUMEL, id, -1);
  axes(b, CG_V_DIM, id, r, 1, "shape", 0);
  axes(b, CG_V_STRIDE, id, r, 1, "os", 0);
  int prev = -1;
  for (int k = 0; k < n->nin; k++) {
    char nm[24];
    snprintf(nm, sizeof nm, "p%d", k);
    ptr(b, nm, n->in[k], false);
    axes(b, CG_V_STRIDE, n->in[k], r, 0, "s%d", k);
    /* end<k>: where input k ends along the axis */
    param(b, CG_P_I64, 0, "end%d", k);
    if (prev < 0) {
      val(b, CG_V_DIM, n->in[k], n->a.axis);
    } else {
      val(b, CG_V_ACC, -1, 0);
      last(b)->i = prev, last(b)->node2 = n->in[k], last(b)->axis2 = n->a.axis;
    }
    prev = b->p->nparam - 1;
  }
}

int cg_pool_conv(const IrGraph *g, int id) {
  const IrNode *n = &g->funcs[0].nodes[id];
  if ((n->op != IR_MAXPOOL && n->op != IR_AVGPOOL) || !n->a.fold || n->a.prep) return -1;
  return n->in[0];
}

int cg_excite_head(const IrGraph *g, int id) {
  const IrNode *n = &g->funcs[0].nodes[id];
  if ((n->op != IR_MATMUL && n->op != IR_CONV2D) || n->a.fold || n->a.prep || n->nin < 2) return -1;
  const IrNode *h = &g->funcs[0].nodes[n->in[0]];
  return (h->op == IR_MATMUL || h->op == IR_CONV2D) && h->a.fold ? n->in[0] : -1;
}

/* fuse-excite: the squeeze's partials, the output and its strides, both
 * layers' weights (w1, w2 and their strides ws1, ws2) and epilogue
 * operands (x<l>_<k> at the strides of their layer's output, xs<l>_<k>),
 * and the sizes: images, channels C, hidden H, the conv's pixels M. */
static void params_excite(PB *b, int id) {
  const IrFunc *f = &b->p->g->funcs[0];
  int h = cg_excite_head(b->p->g, id), sq = f->nodes[h].in[0];
  param(b, CG_P_PTR, 0, "part");
  val(b, CG_V_AUX, sq, -1);
  ptr(b, "o", id, true);
  axes(b, CG_V_STRIDE, id, f->nodes[id].type.rank, 0, "os", 0);
  for (int l = 0; l < 2; l++) {
    const IrNode *n = &f->nodes[l ? id : h];
    char nm[24], fmt[24];
    snprintf(nm, sizeof nm, "w%d", l + 1);
    ptr(b, nm, n->in[1], false);
    axes(b, CG_V_STRIDE, n->in[1], f->nodes[n->in[1]].type.rank, 0, "ws%d", l + 1);
    snprintf(fmt, sizeof fmt, "xs%d_%%d", l + 1); /* (bstrides prints one index into its name) */
    for (int k = 2; k < n->nin; k++) {
      snprintf(nm, sizeof nm, "x%d_%d", l + 1, k - 2);
      ptr(b, nm, n->in[k], false);
      bstrides(b, b->p, n->in[k], n->type.rank, fmt, k - 2);
    }
  }
  scalar(b, "nimg", CG_V_DIM, id, 0);
  scalar(b, "C", CG_V_DIM, f->nodes[sq].in[0], 1);
  scalar(b, "H", CG_V_DIM, h, 1);
  param(b, CG_P_I64, 0, "M"); /* the conv's pixels per image (a mean's divisor) */
  val(b, CG_V_PROD, f->nodes[sq].in[0], -1), last(b)->mask = 0xc;
}

int cg_conv_scale(const IrGraph *g, int id) {
  const IrNode *n = &g->funcs[0].nodes[id];
  if (n->op != IR_CONV2D || n->a.prep) return -1;
  const IrNode *m = &g->funcs[0].nodes[n->in[0]];
  return m->op == IR_MUL && m->a.fold ? n->in[0] : -1;
}

/* conv2d / pools: the image, the weight (conv), the output, the epilogue
 * operands at their broadcast strides, and the sizes of both images (NCHW,
 * the image at its strides).  A fold=true pool (fuse-pool) lists its
 * conv2d's: the conv's image, weight and epilogue operands, then the
 * conv's output sizes.  A conv2d reading a fold=true mul (fold-se) lists
 * the map and its scale instead of the product. */
static void params_conv(PB *b, int id) {
  int pooled = id, cid = cg_pool_conv(b->p->g, id);
  if (cid >= 0) id = cid;
  const IrNode *n = &b->p->g->funcs[0].nodes[id];
  int x = n->in[0], m = cg_conv_scale(b->p->g, id);
  if (m >= 0) x = b->p->g->funcs[0].nodes[m].in[0]; /* fold-se: the map, and its scale per (image, channel) */
  ptr(b, "x", x, false);
  if (m >= 0) {
    ptr(b, "xscale", b->p->g->funcs[0].nodes[m].in[1], false);
    bstrides(b, b->p, b->p->g->funcs[0].nodes[m].in[1], 4, "xss%d", 0);
  }
  if (n->nin >= 2) { /* conv: the weight; pool: the scale of x's channels (fold-se) */
    ptr(b, "w", n->in[1], false);
    if (n->op != IR_CONV2D) bstrides(b, b->p, n->in[1], 4, "ws%d", 0);
  } else {
    param(b, CG_P_PTR, 0, "w");
    val(b, CG_V_LAUNCH, -1, -1);
  }
  ptr(b, "o", pooled, true);
  if (b->p->node[id].fold_user >= 0) { /* fold-se: the partial sums over pixels */
    CgParam *q = param(b, CG_P_PTR, 0, "part");
    q->writes = true;
    val(b, CG_V_AUX, b->p->node[id].fold_user, -1);
  }
  for (int k = 2; k < n->nin; k++) { /* epilogue operands */
    char nm[24];
    snprintf(nm, sizeof nm, "x%d", k - 2);
    ptr(b, nm, n->in[k], false);
    bstrides(b, b->p, n->in[k], 4, "xs%d", k - 2);
  }
  axes(b, CG_V_DIM, x, 4, 0, "xshape", 0);
  axes(b, CG_V_STRIDE, x, 4, 0, "xs", 0);
  axes(b, CG_V_DIM, id, 4, 0, cid >= 0 ? "cshape" : "oshape", 0);
  if (cid >= 0) axes(b, CG_V_DIM, pooled, 4, 0, "oshape", 0);
}

/* update: the state (o, its strides), x (p, its shape and strides), the
 * positions (at, one or one per row) and the axis. */
static void params_update(PB *b, int id) {
  const IrNode *n = &b->p->g->funcs[0].nodes[id];
  int r = n->type.rank;
  ptr(b, "o", id, true);
  axes(b, CG_V_STRIDE, id, r, 1, "os", 0);
  ptr(b, "p", n->in[1], false);
  scalar(b, "n", CG_V_NUMEL, n->in[1], -1);
  axes(b, CG_V_DIM, n->in[1], r, 1, "shape", 0);
  axes(b, CG_V_STRIDE, n->in[1], r, 1, "s", 0);
  ptr(b, "at", n->in[2], false);
  scalar(b, "atn", CG_V_NUMEL, n->in[2], -1);
  param(b, CG_P_I32, 0, "axis"), ival(b, n->a.axis);
}

/* Add kernel `kind` computing node id (out: graph output copied, or -1). */
static void add_kernel(CgPlan *p, CgKernelKind kind, int id, int out) {
  p->k = grow(p->k, &p->capk, p->nk + 1, sizeof *p->k);
  CgKernel *k = &p->k[p->nk];
  memset(k, 0, sizeof *k);
  k->kind = kind;
  k->node = id;
  k->out = out;
  k->p0 = p->nparam;
  if (out >= 0) snprintf(k->name, sizeof k->name, "%do%d", id, out);
  else snprintf(k->name, sizeof k->name, "%d", id);
  if (out < 0) p->node[id].kernel = p->nk;
  p->nk++;
  PB b = {p, k};
  switch (kind) {
  case CG_K_EWISE: case CG_K_FILL: case CG_K_GATHER: params_ewise(&b, id); break;
  case CG_K_COPY: case CG_K_PACK: params_copy(&b, p->g->funcs[0].nodes[id].in[0], -1); break;
  case CG_K_OUTPUT: params_copy(&b, id, out); break;
  case CG_K_MATMUL: params_matmul(&b, id); break;
  case CG_K_REDUCE: params_reduce(&b, id); break;
  case CG_K_FOLD: params_fold(&b, id); break;
  case CG_K_ROWS: params_rows(&b, id); break;
  case CG_K_ATTENTION: params_attention(&b, id); break;
  case CG_K_CONCAT: params_concat(&b, id); break;
  case CG_K_CONV: params_conv(&b, id); break;
  case CG_K_UPDATE: params_update(&b, id); break;
  case CG_K_EXCITE: params_excite(&b, id); break;
  }
}

/* Are all readers of node v packs, or transposes read only by packs? */
static bool read_by_packs(const CgPlan *p, int v, int depth) {
  const IrFunc *f = &p->g->funcs[0];
  bool any = false;
  for (int i = v + 1; i < p->n; i++)
    for (int k = 0; k < f->nodes[i].nin; k++) {
      if (f->nodes[i].in[k] != v) continue;
      any = true;
      if (f->nodes[i].op == IR_PACK) continue;
      if (f->nodes[i].op != IR_PERMUTE || depth > 0 || !read_by_packs(p, i, depth + 1)) return false;
    }
  return any && cg_output_of(p->g, v) < 0;
}

bool cg_weight_raw(const CgPlan *p, int w) {
  const IrNode *n = &p->g->funcs[0].nodes[w];
  return n->op == IR_WEIGHT && (n->type.dt == RT_BF16 || n->type.dt == RT_F16) && read_by_packs(p, w, 0);
}

rt_dtype cg_pack_storage(const CgPlan *p, int k) {
  const IrFunc *f = &p->g->funcs[0];
  int x = f->nodes[k].in[0];
  if (f->nodes[x].op == IR_PERMUTE) x = f->nodes[x].in[0];
  return cg_weight_raw(p, x) ? (rt_dtype)f->nodes[x].type.dt : RT_F32;
}

const CgParam *cg_kernel_param(const CgPlan *p, const CgKernel *k, const char *name) {
  for (int i = 0; i < k->np; i++)
    if (!strcmp(p->param[k->p0 + i].name, name)) return &p->param[k->p0 + i];
  return NULL;
}

/* ---- the analysis ---------------------------------------------------------------- */

/* A workspace slot free at node i (or a new one), busy until node until. */
static int take_slot(CgPlan *p, int *free_at, int i, int until) {
  int s = -1;
  for (int k = 0; k < p->nslots && s < 0; k++)
    if (free_at[k] < i) s = k;
  if (s < 0) s = p->nslots++;
  free_at[s] = until;
  return s;
}

static void error(IrDiag *diag, const IrNode *n, bool *failed, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void error(IrDiag *diag, const IrNode *n, bool *failed, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ir_diag_verror(diag, n->loc, fmt, ap);
  va_end(ap);
  *failed = true;
}

static bool is_one(IrDim d) {
  int64_t c;
  return ir_dim_is_const(d, &c) && c == 1;
}

bool cg_reshape_split(const IrType *from, const IrType *to, int *src) {
  int i = 0, j = 0;
  while (i < from->rank) {
    if (is_one(from->dim[i])) { /* an axis of size 1: kept as one, or dropped */
      if (j < to->rank && is_one(to->dim[j])) src[j++] = -1;
      i++;
      continue;
    }
    IrDim prod = ir_dim_const(1);
    while (j < to->rank && !ir_dim_eq(prod, from->dim[i])) {
      if (ir_dim_mul(prod, to->dim[j], &prod) != IR_DIM_OK) return false;
      src[j] = is_one(to->dim[j]) ? -1 : i;
      j++;
    }
    if (!ir_dim_eq(prod, from->dim[i])) return false;
    i++;
  }
  for (; j < to->rank; j++) {
    if (!is_one(to->dim[j])) return false;
    src[j] = -1;
  }
  return true;
}

/* Kinds: which constants stay virtual, then views and copies. */
static void kinds(CgPlan *p, IrDiag *diag, bool *failed) {
  const IrFunc *f = &p->g->funcs[0];
  bool *materialize = calloc((size_t)p->n + 1, 1);
  if (!materialize) ir_bug("out of memory");
  for (int i = 0; i < p->n; i++)
    for (int k = 0; k < f->nodes[i].nin; k++)
      if (!ewise_consumer(&f->nodes[i])) materialize[f->nodes[i].in[k]] = true;
  for (int k = 0; k < p->g->noutput; k++) materialize[p->g->outputs[k].node] = true;
  for (int i = 0; i < p->n; i++) {
    const IrNode *nd = &f->nodes[i];
    CgNodePlan *v = &p->node[i];
    const CgNodePlan *src = nd->nin > 0 ? &p->node[nd->in[0]] : NULL;
    switch (nd->op) {
    case IR_WEIGHT: /* the runtime checks weight shapes when they are bound */
      for (int d = 0; d < nd->type.rank; d++) {
        int64_t c;
        if (!ir_dim_is_const(nd->type.dim[d], &c)) {
          error(diag, nd, failed, "weight '%s' has a run-time size (%s): compiled models need constant weight shapes",
                nd->a.str, cg_type_str(p->g, &nd->type));
          break;
        }
      }
      /* fall through */
    case IR_INPUT:
    case IR_STATE:
      v->kind = CG_EXTERNAL, v->dense = true;
      break;
    case IR_UPDATE: /* written in place: a view of the state, computed by its kernel */
      v->kind = CG_VIEW, v->base = nd->in[0], v->dense = src->dense;
      if (f->nodes[nd->in[2]].op != IR_INPUT)
        error(diag, nd, failed, "update: the position must be a model input (checked before the run writes anything)");
      break;
    case IR_CONST:
    case IR_IOTA:
    case IR_DIMVAL:
      v->kind = materialize[i] ? CG_BUFFER : CG_VIRTUAL, v->dense = materialize[i];
      break;
    case IR_GATHER:
      v->kind = materialize[i] ? CG_BUFFER : CG_GATHER, v->dense = materialize[i];
      break;
    case IR_EXPAND: /* zero strides on the broadcast axes */
      v->kind = CG_VIEW, v->base = nd->in[0], v->dense = false;
      break;
    case IR_PERMUTE:
      v->kind = CG_VIEW, v->base = nd->in[0];
      break;
    case IR_SLICE: {
      bool outer_unit = true;
      for (int d = 0; d < nd->a.axis; d++) {
        int64_t c;
        if (!ir_dim_is_const(nd->type.dim[d], &c) || c != 1) outer_unit = false;
      }
      v->kind = CG_VIEW, v->base = nd->in[0], v->dense = src->dense && outer_unit;
      break;
    }
    case IR_RESHAPE: { /* a view of a dense value, or one that only splits axes (strides follow) */
      int map[IR_MAX_RANK];
      bool split = !src->dense && cg_reshape_split(&f->nodes[nd->in[0]].type, &nd->type, map);
      v->kind = src->dense || split ? CG_VIEW : CG_COPY, v->dense = !split;
      if (v->kind == CG_VIEW) v->base = nd->in[0];
      break;
    }
    case IR_PACK: /* the backend's GEMM layout, read only by its matmul */
      v->kind = CG_BUFFER, v->dense = false;
      break;
    default:
      v->kind = CG_BUFFER, v->dense = true;
      break;
    }
    int r = nd->type.rank;
    if (v->kind == CG_VIEW && nd->op == IR_PERMUTE) {
      v->inner_unit = src->inner_unit && r > 0 && nd->a.list[r - 1] == r - 1;
    } else if (v->kind == CG_VIEW && (nd->op == IR_SLICE || nd->op == IR_UPDATE)) {
      v->inner_unit = src->inner_unit;
    } else if (v->kind == CG_VIEW && nd->op == IR_EXPAND) { /* unless the last axis is broadcast */
      const IrType *xt = &f->nodes[nd->in[0]].type;
      v->inner_unit = src->inner_unit && r > 0 && xt->rank > 0 && ir_dim_eq(xt->dim[xt->rank - 1], nd->type.dim[r - 1]);
    } else if (v->kind == CG_GATHER) { /* the table's last axis, unless ids run along it */
      const IrNode *x = &f->nodes[nd->in[0]];
      v->inner_unit = p->node[nd->in[0]].inner_unit && nd->a.axis < x->type.rank - 1;
    } else if (v->kind == CG_VIEW && !v->dense) { /* split: the last axis keeps the base's last stride */
      int map[IR_MAX_RANK];
      int xr = f->nodes[nd->in[0]].type.rank;
      cg_reshape_split(&f->nodes[nd->in[0]].type, &nd->type, map);
      v->inner_unit = src->inner_unit && r > 0 && xr > 0 && map[r - 1] == xr - 1;
    }
    else if (v->kind != CG_VIEW)
      v->inner_unit = v->kind != CG_VIRTUAL && nd->op != IR_PACK;
    else
      v->inner_unit = true; /* a dense reshape */
  }
  for (int i = 0; i < p->n; i++) { /* computed inside another kernel: fuse-pool's conv2d, fold-se's scale,
                                       fuse-excite's first layer and squeeze */
    int in = cg_pool_conv(p->g, i) >= 0 ? cg_pool_conv(p->g, i) : cg_conv_scale(p->g, i);
    int h = cg_excite_head(p->g, i);
    if (h >= 0) {
      p->node[h].kind = p->node[f->nodes[h].in[0]].kind = CG_VIRTUAL;
      p->node[h].dense = p->node[f->nodes[h].in[0]].dense = false;
      p->node[h].inner_unit = p->node[f->nodes[h].in[0]].inner_unit = false;
    }
    if (in < 0) continue;
    CgNodePlan *c = &p->node[in];
    c->kind = CG_VIRTUAL, c->dense = false, c->inner_unit = false;
  }
  free(materialize);
}

/* Which values are computed at load: prep=true nodes, and constants and
 * iotas materialized for their kernels; those that are buffers or copies
 * live in the prepared memory (CgPlan.prepared). */
static void prepared(CgPlan *p) {
  const IrFunc *f = &p->g->funcs[0];
  for (int i = 0; i < p->n; i++) {
    const IrNode *nd = &f->nodes[i];
    p->node[i].prep = nd->a.prep;
    if (!nd->a.prep) continue;
    for (int k = 0; k < nd->nin; k++) {
      int x = nd->in[k];
      if ((f->nodes[x].op == IR_CONST || f->nodes[x].op == IR_IOTA) && p->node[x].kind == CG_BUFFER) p->node[x].prep = true;
    }
  }
  p->prepared = calloc((size_t)p->n + 1, sizeof(int));
  if (!p->prepared) ir_bug("out of memory");
  for (int i = 0; i < p->n; i++)
    if (p->node[i].prep && (p->node[i].kind == CG_BUFFER || p->node[i].kind == CG_COPY)) {
      p->node[i].prep_index = p->nprepared;
      p->prepared[p->nprepared++] = i;
    }
}

/* The weights each prepare kernel depends on (through prep=true values and
 * views): CgKernel.d0 / nd into CgPlan.deps. */
static void prepare_deps(CgPlan *p) {
  const IrFunc *f = &p->g->funcs[0];
  int nw;
  const int *wids = ir_graph_weights(p->g, &nw);
  size_t words = ((size_t)nw + 63) / 64;
  uint64_t *bits = calloc((size_t)p->n * words + 1, sizeof(uint64_t));
  if (!bits) ir_bug("out of memory");
  for (int w = 0; w < nw; w++) bits[(size_t)wids[w] * words + (size_t)w / 64] |= 1ull << (w % 64);
  for (int i = 0; i < p->n; i++) {
    const IrNode *nd = &f->nodes[i];
    if (!p->node[i].prep) continue;
    for (int k = 0; k < nd->nin; k++)
      for (size_t q = 0; q < words; q++) bits[(size_t)i * words + q] |= bits[(size_t)nd->in[k] * words + q];
  }
  int cap = 0;
  for (int k = 0; k < p->nk; k++) {
    CgKernel *kn = &p->k[k];
    if (!kn->prep) continue;
    kn->d0 = p->ndeps;
    for (int w = 0; w < nw; w++)
      if (bits[(size_t)kn->node * words + (size_t)w / 64] >> (w % 64) & 1) {
        p->deps = grow(p->deps, &cap, p->ndeps + 1, sizeof *p->deps);
        p->deps[p->ndeps++] = w;
        kn->nd++;
      }
  }
  free(bits);
}

/* Value src is read at node i: it lives until then, and so does what it
 * views (a view's base chain; an indexed view's table and ids and theirs). */
static void read_at(CgPlan *p, int src, int i) {
  const IrFunc *f = &p->g->funcs[0];
  for (;; src = p->node[src].base) {
    if (p->node[src].last_use < i) p->node[src].last_use = i;
    if (p->node[src].kind == CG_GATHER) {
      read_at(p, f->nodes[src].in[1], i);
      src = f->nodes[src].in[0];
      if (p->node[src].last_use < i) p->node[src].last_use = i;
    }
    if (p->node[src].kind != CG_VIEW) break;
  }
}

/* Value v is computed inside the kernel of node host, its only reader
 * being node reader: its operands live until host; another reader, or
 * v being an output, is an error. */
static void inside(CgPlan *p, IrDiag *diag, bool *failed, int v, int reader, int host) {
  const IrFunc *f = &p->g->funcs[0];
  for (int k = 0; k < f->nodes[v].nin; k++) read_at(p, f->nodes[v].in[k], host);
  for (int j = v + 1; j < p->n; j++)
    for (int k = 0; k < f->nodes[j].nin; k++)
      if (j != reader && f->nodes[j].in[k] == v)
        error(diag, &f->nodes[j], failed, "reads %%%d, a %s with fold=true computed inside the kernel of %%%d", v,
              ir_opinfo[f->nodes[v].op].name, host);
  for (int k = 0; k < p->g->noutput; k++)
    if (p->g->outputs[k].node == v)
      error(diag, &f->nodes[v], failed, "a %s computed inside another kernel (fold=true) cannot be an output",
            ir_opinfo[f->nodes[v].op].name);
}

/* Liveness, outputs written in place, fold-se partners, then slots. */
static void lifetimes(CgPlan *p, IrDiag *diag, bool *failed) {
  const IrFunc *f = &p->g->funcs[0];
  int n = p->n;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < f->nodes[i].nin; k++) read_at(p, f->nodes[i].in[k], i);
  for (int k = 0; k < p->g->noutput; k++) {
    int id = p->g->outputs[k].node;
    read_at(p, id, n);
    CgNodePlan *v = &p->node[id];
    if ((v->kind == CG_BUFFER || v->kind == CG_COPY) && v->out_index < 0 && v->prep_index < 0) v->out_index = k;
  }
  int *excite_host = malloc(((size_t)n + 1) * sizeof(int)); /* a squeeze's excitation kernel (fuse-excite) */
  if (!excite_host) ir_bug("out of memory");
  for (int i = 0; i < n; i++) excite_host[i] = -1;
  for (int i = 0; i < n; i++) { /* kernels that compute values inside: they read those values' operands */
    int c = cg_pool_conv(p->g, i), conv = c >= 0 ? c : f->nodes[i].op == IR_CONV2D ? i : -1;
    int m = conv >= 0 ? cg_conv_scale(p->g, conv) : -1;
    if (c >= 0) inside(p, diag, failed, c, i, i); /* fuse-pool: the conv2d */
    if (m >= 0) inside(p, diag, failed, m, conv, i); /* fold-se: the scaled map */
    int h = cg_excite_head(p->g, i);
    if (h >= 0) { /* fuse-excite: the first layer, and its squeeze (whose partial sums live until i) */
      inside(p, diag, failed, h, i, i);
      inside(p, diag, failed, f->nodes[h].in[0], h, i);
      excite_host[f->nodes[h].in[0]] = i;
    }
  }
  for (int i = 0; i < n; i++) {
    const IrNode *nd = &f->nodes[i];
    if (nd->op != IR_SUM && nd->op != IR_MEAN) continue; /* (fuse-pool, fold-se's scale, fuse-excite: above) */
    if (!(ir_opinfo[nd->op].attrs & A_FOLD) || !nd->a.fold || p->node[i].prep) continue; /* (at load: a plain reduction) */
    int mm = nd->in[0];
    if ((f->nodes[mm].op != IR_MATMUL && f->nodes[mm].op != IR_CONV2D) || p->node[mm].fold_user >= 0) {
      error(diag, nd, failed, "a fold=true %s needs a matmul or conv2d operand of its own (fold-se)",
            ir_opinfo[nd->op].name);
      continue;
    }
    p->node[mm].fold_user = i;
    p->node[i].fold_src = mm;
  }
  int *free_at = calloc(2 * (size_t)n + 1, sizeof(int)); /* a value and a partial-sum buffer per node at most */
  if (!free_at) ir_bug("out of memory");
  for (int i = 0; i < n; i++) {
    CgNodePlan *v = &p->node[i];
    const IrNode *nd = &f->nodes[i];
    if (nd->op == IR_ATTENTION && nd->body < 0 && nd->a.ntile >= 3 && nd->a.tile[2] > 1)
      v->aux_slot = take_slot(p, free_at, i, i); /* split-KV partial results, during the node */
    if (v->fold_user >= 0) {
      int until = excite_host[v->fold_user] >= 0 ? excite_host[v->fold_user] : v->fold_user;
      p->node[v->fold_user].aux_slot = take_slot(p, free_at, i, until);
    }
    if ((v->kind == CG_BUFFER || v->kind == CG_COPY) && v->out_index < 0 && v->prep_index < 0)
      v->slot = take_slot(p, free_at, i, v->last_use);
  }
  free(free_at);
  free(excite_host);
}

/* The kernel list, in graph order, then the output copies. */
static void kernels(CgPlan *p, IrDiag *diag, bool *failed) {
  const IrFunc *f = &p->g->funcs[0];
  for (int i = 0; i < p->n; i++) {
    const IrNode *nd = &f->nodes[i];
    const CgNodePlan *v = &p->node[i];
    if (v->kind == CG_COPY) {
      add_kernel(p, CG_K_COPY, i, -1);
      continue;
    }
    if (nd->op == IR_UPDATE) {
      add_kernel(p, CG_K_UPDATE, i, -1);
      continue;
    }
    if (v->kind != CG_BUFFER) continue;
    IrOpClass cls = ir_opinfo[nd->op].cls;
    if (nd->op == IR_CONST || nd->op == IR_IOTA || nd->op == IR_DIMVAL) add_kernel(p, CG_K_FILL, i, -1);
    else if (nd->op == IR_GATHER) add_kernel(p, CG_K_GATHER, i, -1);
    else if (ewise_consumer(nd)) add_kernel(p, CG_K_EWISE, i, -1);
    else if (cg_excite_head(p->g, i) >= 0) add_kernel(p, CG_K_EXCITE, i, -1);
    else if (cls == IR_CLS_MM) add_kernel(p, CG_K_MATMUL, i, -1);
    else if (cls == IR_CLS_RED) add_kernel(p, v->fold_src >= 0 ? CG_K_FOLD : CG_K_REDUCE, i, -1);
    else if (cls == IR_CLS_NORM) add_kernel(p, CG_K_ROWS, i, -1);
    else if (nd->op == IR_ATTENTION) add_kernel(p, CG_K_ATTENTION, i, -1);
    else if (nd->op == IR_CONCAT) add_kernel(p, CG_K_CONCAT, i, -1);
    else if (cls == IR_CLS_CONV) {
      if (nd->op == IR_CONV2D && !p->node[nd->in[1]].dense)
        error(diag, nd, failed, "conv2d: the weight must be dense");
      add_kernel(p, CG_K_CONV, i, -1);
    }
    else if (nd->op == IR_PACK) add_kernel(p, CG_K_PACK, i, -1);
    else error(diag, nd, failed, "op '%s' has no kernel in compiled code", ir_opinfo[nd->op].name);
  }
  for (int k = 0; k < p->g->noutput; k++) {
    int id = p->g->outputs[k].node;
    if (p->node[id].out_index != k) add_kernel(p, CG_K_OUTPUT, id, k);
  }
  for (int k = 0; k < p->nk; k++) {
    if (p->k[k].kind == CG_K_OUTPUT) p->output_copies++;
    else if ((p->k[k].prep = p->node[p->k[k].node].prep)) p->prep_kernels++;
    else p->kernels_by_op[f->nodes[p->k[k].node].op]++;
  }
}

CgPlan *cg_plan(const IrGraph *g, IrDiag *diag) {
  CgPlan *p = calloc(1, sizeof *p);
  if (!p) ir_bug("out of memory");
  p->g = g;
  p->n = g->funcs[0].n;
  p->node = calloc((size_t)p->n + 1, sizeof *p->node);
  p->kernels_by_op = calloc(IR_NOPS, sizeof(int));
  if (!p->node || !p->kernels_by_op) ir_bug("out of memory");
  for (int i = 0; i < p->n; i++)
    p->node[i] = (CgNodePlan){.base = -1, .last_use = i, .slot = -1, .out_index = -1, .fold_user = -1,
                              .fold_src = -1, .aux_slot = -1, .kernel = -1, .prep_index = -1};
  bool failed = false;
  kinds(p, diag, &failed);
  prepared(p);
  lifetimes(p, diag, &failed);
  if (!failed) kernels(p, diag, &failed);
  if (!failed) prepare_deps(p);
  if (failed) {
    cg_plan_free(p);
    return NULL;
  }
  return p;
}

void cg_plan_free(CgPlan *p) {
  if (!p) return;
  free(p->node);
  free(p->k);
  free(p->param);
  free(p->val);
  free(p->kernels_by_op);
  free(p->prepared);
  free(p->deps);
  free(p);
}

void cg_plan_stats(const CgPlan *p, FILE *f) {
  fprintf(f, "kernels %d\n", p->nk - p->prep_kernels);
  for (int op = 0; op < IR_NOPS; op++)
    if (p->kernels_by_op[op]) fprintf(f, "  %-10s %d\n", ir_opinfo[op].name, p->kernels_by_op[op]);
  if (p->output_copies) fprintf(f, "  %-10s %d\n", "copy-out", p->output_copies);
  if (p->prep_kernels) { /* hoist-weights: at load, not in a run */
    fprintf(f, "prepare %d\n", p->prep_kernels);
    for (int k = 0; k < p->nk; k++)
      if (p->k[k].prep) fprintf(f, "  %-10s %%%d\n", ir_opinfo[p->g->funcs[0].nodes[p->k[k].node].op].name, p->k[k].node);
  }
}

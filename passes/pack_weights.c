/* pack_weights.c - pack-weights: the second operand of a matmul that is a
 * weight, or a value hoist-weights computes at load (prep=true: a
 * transposed weight, a fused QKV concat), becomes pack(B) {prep=true}: the
 * same matrix stored as the GEMM template's B panels (for every KC chunk of
 * k, the NR-column panels of all N columns), made once per weight load.
 * The matmul then reads the panels where they lie (the template's
 * PREPACKED path): no B packing in any run, whatever M, the batch dims
 * folded into M or not.  The CUDA backend binds a pack to its operand
 * itself (its matmuls read any layout: no copy, no kernel).  The
 * interpreter treats pack as the identity.
 *
 *   %3 = permute(%1) {perm=[1,0], prep=true} : f32[256,1024]
 *   %4 = pack(%3) {prep=true} : f32[256,1024]
 *   %5 = matmul(%0, %4) : f32[B,T,1024]
 *
 * Packed: f32 matrices of constant shape read by a matmul that runs per
 * run (not itself prep=true), one pack per matrix however many matmuls
 * read it.  A pack is only ever a matmul's second operand (ir_verify).
 * Not packed: the weights of an excitation's layers (fuse-excite: the
 * excitation kernel reads them in place, f32 also with --weight-dtype).
 *
 * Native 2-byte weights: when the matrix is a bf16 or f16 value widened by
 * a cast (cast(w, f32), or its transpose), the pack reads the 2-byte value
 * itself (pack(w), pack(permute(w))): the panels hold bf16 / f16 values,
 * widened to f32 inside the GEMM as it reads them, and the weight stays 2
 * bytes in memory (the runtime hands it over as stored when nothing else
 * reads it).  The values are the same (a widening cast is exact).  Not for
 * CUDA targets, whose matmuls read 2-byte operands themselves.
 *
 * --weight-dtype=bf16|f16 (opt->weight_dtype): first, every f32 weight that
 * a matmul reads as its second operand (or its transpose) becomes a
 * weight of that dtype, widened by a cast that every reader of the weight
 * reads instead: the library takes bf16 / f16 weights, the matmuls read
 * them as 2-byte panels, other readers (a gather of tied embeddings) read
 * the f32 values the cast computes at load.
 *
 * Requires: hoist-weights (prep=true marks), after the fusion passes
 * (epilogues are in their matmuls).
 * Produces: pack nodes right after the matrices they pack. */
#include <stdlib.h>
#include "pass.h"

/* The 2-byte value b is a widening cast of (through one transpose), or
 * -1; *perm: through the transpose. */
static int narrow_source(const IrFunc *f, int b, bool *perm) {
  const IrNode *bn = &f->nodes[b];
  *perm = bn->op == IR_PERMUTE;
  if (*perm) bn = &f->nodes[bn->in[0]];
  if (bn->op != IR_CAST) return -1;
  int src = bn->in[0];
  const IrNode *sn = &f->nodes[src];
  if ((sn->type.dt != RT_BF16 && sn->type.dt != RT_F16) || !(sn->op == IR_WEIGHT || sn->a.prep)) return -1;
  return src;
}

/* Is node b a matrix worth packing for matmul m? */
static bool packable(const IrFunc *f, const IrNode *m, int b) {
  const IrNode *bn = &f->nodes[b];
  int64_t c;
  if (m->op != IR_MATMUL || m->a.prep || m->in[1] != b || m->type.dt != RT_F32) return false;
  if (bn->op == IR_PACK) return false; /* packed already (IR that went through the pipeline before) */
  const IrNode *an = &f->nodes[m->in[0]]; /* fuse-excite's layers read their weights in place (excite.c) */
  if (m->a.fold || ((an->op == IR_MATMUL || an->op == IR_CONV2D) && an->a.fold)) return false;
  if (bn->type.rank != 2 || bn->type.dt != RT_F32 || !(bn->op == IR_WEIGHT || bn->a.prep)) return false;
  for (int d = 0; d < 2; d++)
    if (!ir_dim_is_const(bn->type.dim[d], &c)) return false;
  return true;
}

/* --weight-dtype: weight w becomes dtype dt, read through a cast to f32
 * (prep=true) inserted after it. */
static void narrow_weight(IrGraph *g, int w, int dt) {
  IrNode c = g->funcs[0].nodes[w];
  c.op = IR_CAST;
  c.nin = 1;
  c.in = ir_arena_alloc(g->arena, sizeof(int));
  c.in[0] = w;
  ir_attrs_init(&c.a);
  c.a.prep = true;
  c.body = -1;
  int at = pass_insert(g, 0, w + 1, &c);
  IrFunc *f = &g->funcs[0];
  f->nodes[w].type.dt = (uint8_t)dt;
  for (int i = at + 1; i < f->n; i++)
    for (int k = 0; k < f->nodes[i].nin; k++)
      if (f->nodes[i].in[k] == w) f->nodes[i].in[k] = at;
  for (int k = 0; k < g->noutput; k++)
    if (g->outputs[k].node == w) g->outputs[k].node = at;
}

bool pass_pack_weights(IrGraph *g, const PassOptions *opt) {
  bool changed = false;
  if (opt && (opt->weight_dtype == RT_BF16 || opt->weight_dtype == RT_F16)) {
    int n0 = g->funcs[0].n;
    bool *narrow = calloc((size_t)n0 + 1, 1);
    if (!narrow) ir_bug("out of memory");
    for (int i = 0; i < n0; i++) {
      const IrFunc *f = &g->funcs[0];
      const IrNode *m = &f->nodes[i];
      if (m->op != IR_MATMUL || m->nin < 2 || !packable(f, m, m->in[1])) continue;
      int w = m->in[1];
      if (f->nodes[w].op == IR_PERMUTE) w = f->nodes[w].in[0];
      if (f->nodes[w].op == IR_WEIGHT && f->nodes[w].type.dt == RT_F32) narrow[w] = true;
    }
    for (int w = n0 - 1; w >= 0; w--) /* from the last back: earlier indices stay */
      if (narrow[w]) narrow_weight(g, w, opt->weight_dtype), changed = true;
    free(narrow);
  }
  int n = g->funcs[0].n;
  bool *want = calloc((size_t)n + 1, 1);
  if (!want) ir_bug("out of memory");
  bool any = false;
  for (int i = 0; i < n; i++) {
    const IrNode *m = &g->funcs[0].nodes[i];
    if (m->op == IR_MATMUL && m->nin >= 2 && packable(&g->funcs[0], m, m->in[1])) want[m->in[1]] = any = true;
  }
  /* from the last matrix back: inserting after b leaves every earlier index as it was */
  bool narrow_ok = !(opt && opt->target && opt->target->gpu); /* (CUDA: see above) */
  for (int b = n - 1; b >= 0 && any; b--) {
    if (!want[b]) continue;
    IrNode bn = g->funcs[0].nodes[b];
    bool perm;
    int src = narrow_ok ? narrow_source(&g->funcs[0], b, &perm) : -1, at = b + 1, from = b;
    if (src >= 0 && perm) { /* the transpose of the 2-byte value */
      IrNode pv = bn;
      pv.in = ir_arena_alloc(g->arena, sizeof(int));
      pv.in[0] = src;
      pv.type.dt = g->funcs[0].nodes[src].type.dt;
      pv.a.prep = true;
      from = pass_insert(g, 0, at++, &pv);
    } else if (src >= 0) {
      from = src;
    }
    IrNode pk = {0};
    pk.op = IR_PACK;
    pk.nin = 1;
    pk.in = ir_arena_alloc(g->arena, sizeof(int));
    pk.in[0] = from;
    pk.type = bn.type;
    ir_attrs_init(&pk.a);
    pk.a.prep = true;
    pk.body = -1;
    pk.loc = bn.loc;
    at = pass_insert(g, 0, at, &pk);
    IrFunc *f = &g->funcs[0];
    for (int i = at + 1; i < f->n; i++)
      if (packable(f, &f->nodes[i], b)) f->nodes[i].in[1] = at;
  }
  free(want);
  return any || changed;
}

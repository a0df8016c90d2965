/* pack_weights.c - pack-weights: the second operand of a matmul that is a
 * weight, or a value hoist-weights computes at load (prep=true: a
 * transposed weight, a fused QKV concat), becomes pack(B) {prep=true}: the
 * same matrix stored as the GEMM template's B panels (for every KC chunk of
 * k, the NR-column panels of all N columns), made once per weight load.
 * The matmul then reads the panels where they lie (the template's
 * PREPACKED path): no B packing in any run, whatever M, the batch dims
 * folded into M or not.  The CUDA backend stores a pack as a dense
 * row-major copy (its matmuls read any layout).  The interpreter treats
 * pack as the identity.
 *
 *   %3 = permute(%1) {perm=[1,0], prep=true} : f32[256,1024]
 *   %4 = pack(%3) {prep=true} : f32[256,1024]
 *   %5 = matmul(%0, %4) : f32[B,T,1024]
 *
 * Packed: f32 matrices of constant shape read by a matmul that runs per
 * run (not itself prep=true), one pack per matrix however many matmuls
 * read it.  A pack is only ever a matmul's second operand (ir_verify).
 *
 * Native 2-byte weights: when the matrix is a bf16 or f16 value widened by
 * a cast (cast(w, f32), or its transpose), the pack reads the 2-byte value
 * itself (pack(w), pack(permute(w))): the panels hold bf16 / f16 values,
 * widened to f32 inside the GEMM as it reads them, and the weight stays 2
 * bytes in memory (the runtime hands it over as stored when nothing else
 * reads it).  The values are the same (a widening cast is exact).  Not for
 * CUDA targets, whose matmuls read 2-byte operands themselves.
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
  if (bn->type.rank != 2 || bn->type.dt != RT_F32 || !(bn->op == IR_WEIGHT || bn->a.prep)) return false;
  for (int d = 0; d < 2; d++)
    if (!ir_dim_is_const(bn->type.dim[d], &c)) return false;
  return true;
}

bool pass_pack_weights(IrGraph *g, const PassOptions *opt) {
  (void)opt;
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
  return any;
}

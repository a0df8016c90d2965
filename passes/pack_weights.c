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
 * Requires: hoist-weights (prep=true marks), after the fusion passes
 * (epilogues are in their matmuls).
 * Produces: pack nodes right after the matrices they pack. */
#include <stdlib.h>
#include "pass.h"

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
  for (int b = n - 1; b >= 0 && any; b--) {
    if (!want[b]) continue;
    const IrNode *bn = &g->funcs[0].nodes[b];
    IrNode pk = {0};
    pk.op = IR_PACK;
    pk.nin = 1;
    pk.in = ir_arena_alloc(g->arena, sizeof(int));
    pk.in[0] = b;
    pk.type = bn->type;
    ir_attrs_init(&pk.a);
    pk.a.prep = true;
    pk.body = -1;
    pk.loc = bn->loc;
    int at = pass_insert(g, 0, b + 1, &pk);
    IrFunc *f = &g->funcs[0];
    for (int i = at + 1; i < f->n; i++)
      if (packable(f, &f->nodes[i], b)) f->nodes[i].in[1] = at;
  }
  free(want);
  return any;
}

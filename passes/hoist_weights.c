/* hoist_weights.c - hoist-weights: every value that depends only on
 * weights, params and constants -- a transposed or reshaped weight, GPT-2's
 * [in, out] Conv1D layout read as x @ W, a cast, a fused QKV concat, a
 * batchnorm folded into a weight, a product of two weights -- is marked
 * prep=true.  Compiled code computes prep=true values once per weight load
 * or bind (the generated NAME__prepare, into memory the instance owns) and
 * never in a run; the interpreter computes them as any other node, so both
 * give the same results.
 *
 * A node is marked when it is not a leaf, its type has constant dims, it
 * depends on at least one weight, and each operand is a weight, a constant,
 * an iota of constant shape or a marked node; then the operands of marked
 * nodes made of constants alone are marked too (prepare reads only weights,
 * constants and prepared values).  Other values of constants alone
 * (a causal band from iotas, a rope table) stay unmarked: the fusion passes
 * and the kernels compute them in place (band masks give block skipping).
 * The fusion passes keep the marking a boundary: a marked node never joins
 * an unmarked group (fuse-elementwise) or epilogue (fuse-epilogue), and
 * what they build from marked nodes stays marked; so x * (g / sqrt(v + e))
 * becomes a load-time kernel for g / sqrt(v + e) and a run-time product.
 *
 * Requires: canonicalized graph (after cse, before the fusion passes; a
 * rewrite that makes weight transforms -- batchnorm folded into a
 * convolution -- goes before it).
 * Produces: prep=true on the hoisted nodes (printed; the IR text
 * round-trips it; ir_verify checks it). */
#include <stdlib.h>
#include "pass.h"

/* Has t constant dims only? */
static bool const_shape(const IrType *t) {
  int64_t c;
  for (int d = 0; d < t->rank; d++)
    if (!ir_dim_is_const(t->dim[d], &c)) return false;
  return true;
}

bool pass_hoist_weights(IrGraph *g, const PassOptions *opt) {
  (void)opt;
  IrFunc *f = &g->funcs[0];
  int n = f->n;
  /* wonly: computable at load (weights, constants, constant-shape iotas and
     what is made of them); wdep: depends on a weight */
  bool *wonly = calloc((size_t)n + 1, 1), *wdep = calloc((size_t)n + 1, 1);
  if (!wonly || !wdep) ir_bug("out of memory");
  bool changed = false;
  for (int i = 0; i < n; i++) {
    IrNode *nd = &f->nodes[i];
    switch (nd->op) {
    case IR_WEIGHT: wonly[i] = wdep[i] = true; continue;
    case IR_CONST: wonly[i] = true; continue;
    case IR_IOTA: wonly[i] = const_shape(&nd->type); continue;
    default: break;
    }
    if (ir_opinfo[nd->op].cls == IR_CLS_SRC) continue; /* input, dimval */
    bool ok = const_shape(&nd->type), dep = false;
    for (int k = 0; k < nd->nin && ok; k++) {
      ok = wonly[nd->in[k]];
      dep |= wdep[nd->in[k]];
    }
    wonly[i] = ok;
    wdep[i] = ok && dep;
    if (wdep[i] && !nd->a.prep) nd->a.prep = changed = true;
  }
  /* a marked node's operands made of constants alone (a batchnorm's
     constant statistics reshaped to [C, 1, 1]) are computed at load with
     it: prepare reads only weights, constants and prepared values */
  for (int i = n - 1; i >= 0; i--) {
    const IrNode *nd = &f->nodes[i];
    if (!nd->a.prep) continue;
    for (int k = 0; k < nd->nin; k++) {
      IrNode *x = &f->nodes[nd->in[k]];
      if (wonly[nd->in[k]] && ir_opinfo[x->op].cls != IR_CLS_SRC && !x->a.prep) x->a.prep = changed = true;
    }
  }
  free(wonly);
  free(wdep);
  return changed;
}

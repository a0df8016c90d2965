/* interp.h - the reference interpreter: runs any IrGraph on the host with
 * plain loops and float64 arithmetic, rounding every node to its dtype.  It
 * defines what the IR means and is the oracle every backend and pass is
 * checked against (semantics: the comment at the top of interp.c). */
#ifndef IR_INTERP_H
#define IR_INTERP_H
#include <stddef.h>
#include <stdint.h>
#include "ir.h"

/* A host tensor, C-contiguous.  f16 and bf16 elements are uint16_t bit
 * patterns, bool elements one byte each (0 or 1). */
typedef struct {
  rt_dtype dtype;
  int rank;
  int64_t shape[IR_MAX_RANK];
  void *data;
} IrTensor;

/* Weight provider: fill *out with a view of the weight named `key` (data not
 * owned, must stay valid for the run).  Return 0, or nonzero with a message
 * in err. */
typedef int (*IrWeightFn)(void *ctx, const char *key, IrTensor *out, char *err, size_t errlen);

/* Bind every dim symbol from the input shapes (inputs in A_INDEX order).
 * symvals has g->nsym entries.  A dim that is a single symbol binds it; a
 * constant or composite dim (B*T) is checked once all symbols are bound; a
 * symbol that the graph uses but no input gives on its own is an error, as
 * are rank and dtype mismatches.  Returns 0, or -1 with a message naming the
 * input, the axis, the expected and the actual size. */
int ir_bind_dims(const IrGraph *g, const IrTensor *inputs, int ninputs, int64_t *symvals,
                 char *err, size_t errlen);

/* x rounded to a value of dtype dt, the rule every node obeys: what a
 * backend must use for a constant of that dtype (an f16 0.1 is
 * 0.0999755859375 in every computation). */
double ir_round_to(rt_dtype dt, double x);

/* Run the graph.  outputs[i] (graph->outputs order) receive malloc'd data in
 * the output node's dtype and its concrete shape; the caller frees
 * outputs[i].data.  Returns 0, or -1 with a message (then every
 * outputs[i].data is NULL).  Never exits on bad user data or an ill-typed
 * graph. */
int ir_interp_run(const IrGraph *g, const IrTensor *inputs, int ninputs, IrWeightFn wfn,
                  void *wctx, IrTensor *outputs, int noutputs, char *err, size_t errlen);

/* The same with the graph's states (ir_graph_states order; C-contiguous,
 * their declared dtype and constant shape): each state node reads its
 * tensor, and only when the whole run succeeded is each tensor replaced by
 * the final value of its updates (a failed run leaves them untouched).
 * states == NULL: every state starts at zero and nothing is kept. */
int ir_interp_run_states(const IrGraph *g, const IrTensor *inputs, int ninputs, IrWeightFn wfn, void *wctx,
                         IrTensor *states, int nstates, IrTensor *outputs, int noutputs, char *err, size_t errlen);

/* Elementwise op `op` (UN or BIN) on float64 scalars, exactly as the
 * interpreter computes it for f64 values (relu keeps NaN, min/max
 * propagate it, ...); b is ignored by unary ops.  The front end folds
 * compile-time reals with it, so folding and the interpreter agree. */
double ir_scalar_op(IrOp op, double a, double b);

#endif

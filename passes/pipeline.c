/* pipeline.c - the pass pipeline, in order.  The verifier runs after every
 * pass; dumps for --print-before / --print-after / --print-after-all go to
 * opt->dump with a header naming the pass. */
#include <string.h>
#include "pass.h"

const PassInfo pass_list[] = {
  {"canonicalize", pass_canonicalize, false, "fold chains of permute/reshape, drop identity shape ops"},
  {"cse", pass_cse, false, "merge identical nodes"},
  {"fold-bn", pass_fold_bn, false, "a per-channel scale of weights after a conv2d (eval batchnorm) -> its weight and bias"},
  {"hoist-weights", pass_hoist_weights, false,
   "values of weights and constants only -> prep=true: computed once per weight load, never per run"},
  {"fuse-attention", pass_fuse_attention, true,
   "QK^T, scale, score modifications, band masks, softmax, PV -> one online-softmax attention node"},
  {"fuse-norm", pass_fuse_norm, true, "layernorm / rmsnorm written in primitive ops -> one norm node"},
  {"fuse-elementwise", pass_fuse_elementwise, true, "chains of elementwise ops -> one fused loop"},
  {"fuse-epilogue", pass_fuse_epilogue, true, "bias / activation / residual after a matmul -> its epilogue"},
  {"fold-se", pass_fold_se, true,
   "SE squeeze (mean over a matmul's rows or a conv's pixels) -> accumulated by its epilogue; "
   "the channel scale -> the loads of the pool or conv reading it"},
  {"fuse-excite", pass_fuse_excite, true,
   "SE excitation on a conv (folded squeeze, two small layers) -> one kernel: layer 1 fold=true"},
  {"fuse-pool", pass_fuse_pool, true,
   "conv2d (+ epilogue) -> pooling as one kernel: the conv's map is never written (CUDA: windows not overlapping)"},
  {"pack-weights", pass_pack_weights, false,
   "a matmul's weight operand -> pack(): the GEMM's B panels, made at load (no B packing per run)"},
  {"dce", pass_dce, false, "remove nodes no output depends on"},
  {"tile", pass_tile, false, "choose tile shapes for the target (cost model in passes/tile.c)"},
  {NULL, NULL, false, NULL},
};

const PassInfo *pass_find(const char *name) {
  for (const PassInfo *p = pass_list; p->name; p++)
    if (strcmp(p->name, name) == 0) return p;
  return NULL;
}

static bool listed(const char *const *list, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(list[i], name) == 0) return true;
  return false;
}

static void dump(const IrGraph *g, const PassOptions *opt, const char *when, const char *pass) {
  FILE *out = opt->dump ? opt->dump : stderr;
  fprintf(out, "# *** IR Dump %s %s ***\n", when, pass);
  ir_print(g, out);
  fflush(out);
}

bool pass_pipeline(IrGraph *g, const PassOptions *opt) {
  /* the order: an explicit list (names checked by the driver), else pass_list */
  int n = 0;
  if (opt->nonly > 0) n = opt->nonly;
  else
    while (pass_list[n].name) n++;
  for (int k = 0; k < n; k++) {
    const PassInfo *p = opt->nonly > 0 ? pass_find(opt->only[k]) : &pass_list[k];
    if (!p) continue;
    bool skip = opt->opt_level == 0 || (p->fusion && opt->no_fuse) ||
                listed(opt->disabled, opt->ndisabled, p->name);
    if (skip) continue;
    if (listed(opt->print_before, opt->nprint_before, p->name)) dump(g, opt, "Before", p->name);
    p->run(g, opt);
    if (!ir_verify(g, opt->diag, p->name)) return false;
    if (opt->print_after_all || listed(opt->print_after, opt->nprint_after, p->name))
      dump(g, opt, "After", p->name);
  }
  return true;
}

/* pass.h - the pass interface and the pipeline.
 *
 * Every pass has the same signature: it rewrites the graph in place and
 * returns true if it changed anything.  pass_pipeline() lists the passes in
 * order; the verifier runs after each one.  See docs/architecture.md. */
#ifndef PASS_PASS_H
#define PASS_PASS_H
#include <stdio.h>
#include "ir.h"
#include "tiling.h"

/* What the tile pass knows of the target (ir/tiling.h; filled by the
 * backends, cg_tile_target). */
typedef IrTileTarget PassTarget;

typedef struct PassOptions {
  int opt_level;               /* 0: no optimization at all */
  bool no_fuse;                /* disable every fusion pass */
  /* lists of pass names or tile specs (any length; the driver owns them) */
  const char *const *disabled; /* --disable-pass=NAME */
  int ndisabled;
  const char *const *print_before; /* --print-before=PASS */
  int nprint_before;
  const char *const *print_after;  /* --print-after=PASS */
  int nprint_after;
  bool print_after_all;
  const char *const *only;     /* --passes=A,B: run exactly these, in this order */
  int nonly;
  const PassTarget *target;    /* for the tile pass; NULL: the pass does nothing */
  const char *const *tile_over;  /* --tile=OP:A,B,..: replace the chosen tiles of OP */
  int ntile_over;
  const char *const *gtile_over; /* --gtile=OP:A,B,..: the same for the GPU tiles */
  int ngtile_over;
  int weight_dtype;            /* --weight-dtype: RT_BF16 / RT_F16 makes the f32 weights that matmuls
                                  read 2-byte weights (pack-weights); 0 (RT_F32): as declared */
  FILE *dump;                  /* where dumps go (stderr) */
  IrDiag *diag;
} PassOptions;

typedef bool (*PassFn)(IrGraph *g, const PassOptions *opt);

typedef struct {
  const char *name;
  PassFn run;
  bool fusion;      /* turned off by --no-fuse */
  const char *what; /* one line for --help and docs */
} PassInfo;

/* The passes, in pipeline order (NULL-terminated). */
extern const PassInfo pass_list[];
const PassInfo *pass_find(const char *name);

/* Run the pipeline. Returns false if the verifier failed after a pass
 * (reported through opt->diag). */
bool pass_pipeline(IrGraph *g, const PassOptions *opt);

/* passes */
bool pass_canonicalize(IrGraph *g, const PassOptions *opt);
bool pass_cse(IrGraph *g, const PassOptions *opt);
bool pass_dce(IrGraph *g, const PassOptions *opt);
bool pass_hoist_weights(IrGraph *g, const PassOptions *opt);
bool pass_fuse_attention(IrGraph *g, const PassOptions *opt);
bool pass_fuse_norm(IrGraph *g, const PassOptions *opt);
bool pass_fuse_elementwise(IrGraph *g, const PassOptions *opt);
bool pass_fuse_epilogue(IrGraph *g, const PassOptions *opt);
bool pass_fold_se(IrGraph *g, const PassOptions *opt);
bool pass_fuse_pool(IrGraph *g, const PassOptions *opt);
bool pass_fuse_excite(IrGraph *g, const PassOptions *opt);
bool pass_fold_bn(IrGraph *g, const PassOptions *opt);
bool pass_pack_weights(IrGraph *g, const PassOptions *opt);
bool pass_tile(IrGraph *g, const PassOptions *opt);
/* Check a --tile=OP:A,B,.. override against the target; false with a
 * message in err if it is malformed or the target cannot honour it. */
bool pass_tile_check(const char *spec, const PassTarget *t, char *err, size_t errlen);
/* Is --gtile=spec one the GPU backend's kernels take (t->gpu's check)?
 * (message in err if not) */
bool pass_gtile_check(const char *spec, const PassTarget *t, char *err, size_t errlen);

/* util.c: rewriting helpers shared by passes */
/* Is n a constant with every axis of size 1 (a scalar, maybe broadcast)?
 * Its value in *v (v may be NULL). */
bool pass_scalar_const(const IrNode *n, double *v);
/* Uses of each main-function node (operand slots, plus graph outputs), in
 * a malloc'd array of n + 1; with user, also a malloc'd array of the last
 * node reading each (-1 if none). */
int *pass_uses(const IrGraph *g, int **user);
/* Redirect every use of node i to map[i] (map[i] <= i) in function f, and
 * the graph outputs when f == 0. */
void pass_apply_map(IrGraph *g, int f, const int *map);
/* Drop nodes not needed by the outputs (main: inputs always stay; bodies:
 * params always stay) and renumber.  Returns true if any node went. */
bool pass_compact(IrGraph *g, int f);
/* Insert a copy of node (operands all < pos) at position pos of function f,
 * renumbering later nodes and their uses; returns pos. */
int pass_insert(IrGraph *g, int f, int pos, const IrNode *node);

/* body.c: building the body region of a fused node (fuse-attention,
 * fuse-elementwise).  The walk from a root asks the pass, for each main
 * value it meets, what the value becomes: */
typedef enum {
  PB_INLINE, /* the same op in the body, on its operands' body values */
  PB_DONE,   /* a body node the pass made (a const, an index, a leaf) */
  PB_FAIL,   /* not expressible: the fusion is abandoned */
} PassBodyKind;
typedef struct PassBody PassBody;
typedef PassBodyKind (*PassBodyClassify)(PassBody *b, int id, int *out);
struct PassBody {
  IrGraph *g;
  int fb;                /* the body function being built */
  int *map;              /* main node -> body node, -1 if none (all -1 between bodies) */
  int *touched, ntouched, captouched; /* map entries set (reset by finish) */
  int *leaves, nleaf;    /* main values read through params param_base.. */
  int maxleaf, param_base;
  PassBodyClassify classify;
  void *ctx;             /* the pass's */
  bool ok;
};
/* Start a body (a new function owned by funcs[0]); map has an entry per
 * main node, all -1. */
void pass_body_begin(PassBody *b, IrGraph *g, int *map, int maxleaf, int param_base, PassBodyClassify classify,
                     void *ctx);
/* A rank-0 body node of dtype dt at like's location. */
int pass_body_add(PassBody *b, const IrNode *like, IrOp op, int nin, const int *in, rt_dtype dt, const IrAttrs *a);
/* A param reading main value `value` as the next extra operand (like:
 * its dtype and location); -1 past maxleaf. */
int pass_body_leaf(PassBody *b, const IrNode *like, int value);
/* Record that main node id is body node `node`. */
void pass_body_set(PassBody *b, int id, int node);
/* The body node of main value root (walking and classifying), or -1
 * (b->ok false). */
int pass_body_value(PassBody *b, int root);
/* Main node id copied as its op whatever classify says, its operands
 * walked; the body node or -1. */
int pass_body_copy(PassBody *b, int id);
/* End the body: yield `yield` (true), or drop it when the walk failed or
 * yield < 0 (false).  map is all -1 again either way. */
bool pass_body_finish(PassBody *b, int yield);
/* Free the leaf list (after the pass has read it). */
void pass_body_free(PassBody *b);
#endif

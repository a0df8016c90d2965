/* fuse_elementwise.c - fuse-elementwise: chains (trees) of elementwise ops
 * become one `fused` node whose body computes the whole expression per
 * output element, so the intermediate tensors are never written.
 *
 * Grouping: an elementwise node joins the group of its user when it has
 * exactly one use, that user is elementwise (or already in a group), and
 * both have the same shape (no broadcasting in between: a smaller value
 * computed inside a bigger loop would be recomputed per element) -- unless
 * the node reads no memory at all (only iotas and constants, e.g. a
 * position term cast(i - j, f32)): recomputing that is cheaper than
 * storing and loading it.  A group
 * of two or more nodes becomes one `fused` node at the position of its
 * last node (the root); scalar constants become body `const` nodes, iotas
 * along an axis of the output become `index` nodes, every other value read
 * becomes an operand (a body `param`), each once.
 *
 * Requires: canonicalized graph; runs after fuse-attention and
 * fuse-epilogue (which take their own elementwise chains first).
 * Produces: fused nodes; the members are removed by compaction. */
#include <stdlib.h>
#include <string.h>
#include "pass.h"

#define MAX_LEAVES 60

static bool is_elementwise(const IrNode *n) {
  IrOpClass k = ir_opinfo[n->op].cls;
  return k == IR_CLS_UN || k == IR_CLS_BIN || k == IR_CLS_CMP || k == IR_CLS_TER;
}

static bool scalar_const(const IrNode *n) {
  if (n->op != IR_CONST) return false;
  for (int a = 0; a < n->type.rank; a++) {
    int64_t d;
    if (!ir_dim_is_const(n->type.dim[a], &d) || d != 1) return false;
  }
  return true;
}

typedef struct {
  IrGraph *g;
  int *group;   /* root of each node's group, or -1 */
  int root;
  int fb;
  int *map;     /* main node -> body node */
  int leaves[MAX_LEAVES];
  int nleaf;
  bool ok;
} Build;

static IrNode *MN(Build *b, int i) { return &b->g->funcs[0].nodes[i]; }

static int add(Build *b, const IrNode *like, IrOp op, int nin, const int *in, rt_dtype dt, const IrAttrs *a) {
  IrType t = {dt, 0, {{0}}};
  return ir_add(b->g, b->fb, op, nin, in, &t, a, like->loc);
}

/* iota along an axis of the root's shape with the same extent: index */
static int iota_axis(Build *b, const IrNode *n) {
  const IrType *rt = &MN(b, b->root)->type;
  int ax = n->a.axis + rt->rank - n->type.rank;
  if (ax < 0 || ax >= rt->rank || !ir_dim_eq(n->type.dim[n->a.axis], rt->dim[ax])) return -1;
  return ax;
}

static int value(Build *b, int id) {
  if (b->map[id] >= 0) return b->map[id];
  const IrNode *n = MN(b, id);
  IrAttrs a;
  ir_attrs_init(&a);
  int r = -1;
  if (scalar_const(n)) {
    a.value = n->a.value;
    r = add(b, n, IR_CONST, 0, NULL, (rt_dtype)n->type.dt, &a);
  } else if (n->op == IR_IOTA && iota_axis(b, n) >= 0) {
    a.axis = iota_axis(b, n);
    r = add(b, n, IR_INDEX, 0, NULL, RT_I32, &a);
  } else if (b->group[id] == b->root) {
    int in[3];
    for (int k = 0; k < n->nin && b->ok; k++) in[k] = value(b, n->in[k]);
    if (!b->ok) return -1;
    r = add(b, n, (IrOp)n->op, n->nin, in, (rt_dtype)n->type.dt, &n->a);
  } else if (b->nleaf == MAX_LEAVES) {
    b->ok = false;
    return -1;
  } else {
    a.index = b->nleaf;
    b->leaves[b->nleaf++] = id;
    r = add(b, n, IR_PARAM, 0, NULL, (rt_dtype)n->type.dt, &a);
  }
  b->map[id] = r;
  return r;
}

bool pass_fuse_elementwise(IrGraph *g, const PassOptions *opt) {
  (void)opt;
  IrFunc *f = &g->funcs[0];
  int n = f->n;
  if (n == 0) return false;
  int *user, *uses = pass_uses(g, &user);
  int *group = malloc((size_t)n * sizeof(int)), *size = calloc((size_t)n, sizeof(int));
  int *map = malloc((size_t)n * sizeof(int));
  if (!group || !size || !map) ir_bug("out of memory");
  /* nodes that read no memory: elementwise over iotas and constants */
  bool *nomem = calloc((size_t)n, 1);
  if (!nomem) ir_bug("out of memory");
  for (int i = 0; i < n; i++) {
    const IrNode *nd = &f->nodes[i];
    nomem[i] = nd->op == IR_IOTA || nd->op == IR_CONST;
    if (is_elementwise(nd)) {
      nomem[i] = true;
      for (int k = 0; k < nd->nin; k++) nomem[i] &= nomem[nd->in[k]];
    }
  }
  /* groups, from the last node back: a node joins its single user's group */
  for (int i = n - 1; i >= 0; i--) {
    const IrNode *nd = &f->nodes[i];
    group[i] = -1;
    if (!is_elementwise(nd)) continue;
    int u = user[i];
    if (uses[i] == 1 && u >= 0 && group[u] >= 0 && (nomem[i] || ir_shape_eq(&nd->type, &f->nodes[u].type)))
      group[i] = group[u];
    else
      group[i] = i;
    size[group[i]]++;
  }
  bool changed = false;
  for (int r = 0; r < n; r++) {
    if (group[r] != r || size[r] < 2) continue;
    Build b = {g, group, r, 0, map, {0}, 0, true};
    for (int i = 0; i < n; i++) map[i] = -1;
    b.fb = ir_graph_add_func(g, 0);
    int y = value(&b, r);
    f = &g->funcs[0];
    if (!b.ok) {
      g->nfunc--;
      continue;
    }
    IrFunc *bf = &g->funcs[b.fb];
    bf->yields = ir_arena_alloc(g->arena, sizeof(int));
    bf->yields[0] = y;
    bf->nyield = 1;
    IrNode *rn = &f->nodes[r];
    rn->op = IR_FUSED;
    rn->nin = b.nleaf;
    rn->in = ir_arena_alloc(g->arena, (size_t)(b.nleaf ? b.nleaf : 1) * sizeof(int));
    memcpy(rn->in, b.leaves, (size_t)b.nleaf * sizeof(int));
    ir_attrs_init(&rn->a);
    rn->body = b.fb;
    changed = true;
  }
  free(uses);
  free(user);
  free(group);
  free(size);
  free(map);
  free(nomem);
  if (changed) pass_compact(g, 0);
  return changed;
}

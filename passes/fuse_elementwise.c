/* fuse_elementwise.c - fuse-elementwise: chains (trees) of elementwise ops
 * become one `fused` node whose body computes the whole expression per
 * output element, so the intermediate tensors are never written.
 *
 * Grouping: an elementwise node joins the group of its users when every
 * use is by a member of that one group (a value read twice in one
 * expression is computed once in the body) and both have the same shape (no broadcasting in between: a smaller value
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

typedef struct {
  IrGraph *g;
  int *group; /* root of each node's group, or -1 */
  int root;   /* the group being fused */
} Ctx;

static IrNode *MN(Ctx *c, int i) { return &c->g->funcs[0].nodes[i]; }

/* iota along an axis of the root's shape with the same extent: that axis
 * (the body's index), or -1 */
static int iota_axis(Ctx *c, const IrNode *n) {
  const IrType *rt = &MN(c, c->root)->type;
  int ax = n->a.axis + rt->rank - n->type.rank;
  if (ax < 0 || ax >= rt->rank || !ir_dim_eq(n->type.dim[n->a.axis], rt->dim[ax])) return -1;
  return ax;
}

/* What main value id is in the body of the group: a scalar constant, an
 * index, a member of the group (copied), or a param (an operand). */
static PassBodyKind classify(PassBody *b, int id, int *out) {
  Ctx *c = b->ctx;
  const IrNode *n = MN(c, id);
  IrAttrs a;
  ir_attrs_init(&a);
  if (pass_scalar_const(n, NULL)) {
    a.value = n->a.value;
    *out = pass_body_add(b, n, IR_CONST, 0, NULL, (rt_dtype)n->type.dt, &a);
    return PB_DONE;
  }
  if (n->op == IR_IOTA && iota_axis(c, n) >= 0) {
    a.axis = iota_axis(c, n);
    *out = pass_body_add(b, n, IR_INDEX, 0, NULL, RT_I32, &a);
    return PB_DONE;
  }
  if (c->group[id] == c->root) return PB_INLINE;
  *out = pass_body_leaf(b, n, id); /* -1 past MAX_LEAVES: the group stays unfused */
  return PB_DONE;
}

/* Group, then rewrite each group of two or more into one fused node. */
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
    nomem[i] = nd->op == IR_IOTA || nd->op == IR_CONST || nd->op == IR_DIMVAL;
    if (ir_op_is_elementwise((IrOp)nd->op)) {
      nomem[i] = true;
      for (int k = 0; k < nd->nin; k++) nomem[i] &= nomem[nd->in[k]];
    }
  }
  /* groups, from the last node back: a node joins the group of its users
     when every use is by a member of that one group (a value read twice
     in one expression, x * relu6(x + 3) / 6, is computed once in the body);
     ugroup[i]: the users' common group so far (-1 none yet, -2 several or
     a user outside any group), nread[i]: operand uses seen (fewer than
     uses[i]: a graph output) */
  int *ugroup = malloc((size_t)n * sizeof(int)), *nread = calloc((size_t)n, sizeof(int));
  if (!ugroup || !nread) ir_bug("out of memory");
  for (int i = 0; i < n; i++) ugroup[i] = -1;
  for (int i = n - 1; i >= 0; i--) {
    const IrNode *nd = &f->nodes[i];
    group[i] = -1;
    if (ir_op_is_elementwise((IrOp)nd->op)) {
      int gu = ugroup[i];
      /* (a prep=true node -- hoist-weights -- joins only a prep=true group: it is computed at load) */
      if (gu >= 0 && nread[i] == uses[i] && (nomem[i] || ir_shape_eq(&nd->type, &f->nodes[gu].type)) &&
          (nomem[i] || nd->a.prep == f->nodes[gu].a.prep))
        group[i] = gu;
      else
        group[i] = i;
      size[group[i]]++;
    }
    for (int k = 0; k < nd->nin; k++) {
      int x = nd->in[k];
      nread[x]++;
      ugroup[x] = group[i] < 0 ? -2 : ugroup[x] == -1 || ugroup[x] == group[i] ? group[i] : -2;
    }
  }
  free(ugroup);
  free(nread);
  bool changed = false;
  for (int i = 0; i < n; i++) map[i] = -1;
  for (int r = 0; r < n; r++) {
    if (group[r] != r || size[r] < 2) continue;
    Ctx c = {g, group, r};
    PassBody b;
    pass_body_begin(&b, g, map, MAX_LEAVES, 0, classify, &c);
    bool ok = pass_body_finish(&b, pass_body_value(&b, r));
    f = &g->funcs[0]; /* (adding the body may have moved the arrays) */
    if (ok) {
      IrNode *rn = &f->nodes[r];
      bool prep = rn->a.prep;
      rn->op = IR_FUSED;
      rn->nin = b.nleaf;
      rn->in = ir_arena_alloc(g->arena, (size_t)(b.nleaf ? b.nleaf : 1) * sizeof(int));
      memcpy(rn->in, b.leaves, (size_t)b.nleaf * sizeof(int));
      ir_attrs_init(&rn->a);
      rn->a.prep = prep;
      rn->body = b.fb;
      changed = true;
    }
    pass_body_free(&b);
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

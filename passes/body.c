/* body.c - building the body region of a fused node out of main-function
 * values, shared by fuse-attention and fuse-elementwise (not a pass).
 *
 * A body is built from a root value backwards: each main value the walk
 * meets is either copied into the body as the same op (its operands are
 * walked first), or becomes one body node of its own (a constant, a
 * position index, or a param reading the value as an extra operand of the
 * fused node) -- the pass decides, through its classify function.  The
 * walk is iterative (an explicit stack), so a chain of any length (a
 * generated 20,000-step recurrence) does not deepen the C stack, and each
 * main value becomes one body node however often it is read. */
#include <stdlib.h>
#include <string.h>
#include "pass.h"

/* (the functions are described in pass.h) */
void pass_body_begin(PassBody *b, IrGraph *g, int *map, int maxleaf, int param_base, PassBodyClassify classify,
                     void *ctx) {
  memset(b, 0, sizeof *b);
  b->g = g;
  b->map = map;
  b->maxleaf = maxleaf;
  b->param_base = param_base;
  b->classify = classify;
  b->ctx = ctx;
  b->ok = true;
  b->leaves = malloc(sizeof(int) * (size_t)(maxleaf > 0 ? maxleaf : 1));
  if (!b->leaves) ir_bug("out of memory");
  b->fb = ir_graph_add_func(g, 0);
}

/* map[id] = node, remembered for the reset. */
void pass_body_set(PassBody *b, int id, int node) {
  if (b->ntouched == b->captouched) {
    b->captouched = b->captouched ? 2 * b->captouched : 64;
    b->touched = realloc(b->touched, sizeof(int) * (size_t)b->captouched);
    if (!b->touched) ir_bug("out of memory");
  }
  b->touched[b->ntouched++] = id;
  b->map[id] = node;
}

/* A rank-0 node in the body. */
int pass_body_add(PassBody *b, const IrNode *like, IrOp op, int nin, const int *in, rt_dtype dt, const IrAttrs *a) {
  IrType t = {dt, 0, {{0}}};
  return ir_add(b->g, b->fb, op, nin, in, &t, a, like->loc);
}

/* The next param, reading `value`. */
int pass_body_leaf(PassBody *b, const IrNode *like, int value) {
  if (b->nleaf == b->maxleaf) return -1;
  IrAttrs a;
  ir_attrs_init(&a);
  a.index = b->param_base + b->nleaf;
  b->leaves[b->nleaf++] = value;
  return pass_body_add(b, like, IR_PARAM, 0, NULL, (rt_dtype)like->type.dt, &a);
}

/* Main node id copied as the same op on the body nodes of its operands
 * (all mapped already). */
static int copy_node(PassBody *b, int id) {
  const IrNode *n = &b->g->funcs[0].nodes[id];
  int in[3];
  if (n->nin > 3) ir_bug("body op %s with %d operands", ir_opinfo[n->op].name, n->nin);
  for (int k = 0; k < n->nin; k++) in[k] = b->map[n->in[k]];
  IrAttrs a = n->a;
  a.prep = false; /* (hoist-weights' mark is the owner's, not a body value's) */
  return pass_body_add(b, n, (IrOp)n->op, n->nin, in, (rt_dtype)n->type.dt, &a);
}

/* Walk from `root` (copy: root itself is copied, whatever classify says),
 * depth first, operands in order, so the body's nodes come in the order a
 * recursive walk would give. */
static int walk(PassBody *b, int root, bool copy) {
  typedef struct {
    int id;
    bool expanded; /* its operands are on the stack above it */
  } Item;
  int cap = 64, n = 0;
  Item *st = malloc(sizeof(Item) * (size_t)cap);
  if (!st) ir_bug("out of memory");
  st[n++] = (Item){root, false};
  while (n > 0 && b->ok) {
    Item *it = &st[n - 1];
    int id = it->id;
    if (b->map[id] >= 0) { /* reached before, by another path */
      n--;
      continue;
    }
    const IrNode *nd = &b->g->funcs[0].nodes[id];
    if (it->expanded) {
      pass_body_set(b, id, copy_node(b, id));
      n--;
      continue;
    }
    int out = -1;
    PassBodyKind k = copy && id == root ? PB_INLINE : b->classify(b, id, &out);
    if (k == PB_FAIL || (k == PB_DONE && out < 0)) {
      b->ok = false;
      break;
    }
    if (k == PB_DONE) {
      pass_body_set(b, id, out);
      n--;
      continue;
    }
    it->expanded = true;
    if (n + nd->nin > cap) {
      cap = 2 * cap + nd->nin;
      st = realloc(st, sizeof(Item) * (size_t)cap);
      if (!st) ir_bug("out of memory");
    }
    for (int k2 = nd->nin - 1; k2 >= 0; k2--) st[n++] = (Item){nd->in[k2], false};
  }
  free(st);
  return b->ok ? b->map[root] : -1;
}

/* Root classified like every other value. */
int pass_body_value(PassBody *b, int root) { return walk(b, root, false); }

/* Root copied as its op. */
int pass_body_copy(PassBody *b, int id) { return walk(b, id, true); }

/* Reset the map; keep the body (yield it) or drop it. */
bool pass_body_finish(PassBody *b, int yield) {
  for (int i = 0; i < b->ntouched; i++) b->map[b->touched[i]] = -1;
  free(b->touched);
  b->touched = NULL;
  b->ntouched = b->captouched = 0;
  if (!b->ok || yield < 0) {
    b->g->nfunc--; /* drop the half-built body (its nodes stay in the arena) */
    return false;
  }
  IrFunc *bf = &b->g->funcs[b->fb];
  bf->yields = ir_arena_alloc(b->g->arena, sizeof(int));
  bf->yields[0] = yield;
  bf->nyield = 1;
  return true;
}

/* The leaf list. */
void pass_body_free(PassBody *b) {
  free(b->leaves);
  b->leaves = NULL;
}

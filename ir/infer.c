/* infer.c - shape and dtype rules, one per op class.
 *
 * Used by the front end to type every node it builds and by the verifier to
 * re-check every node after each pass.  Messages name both shapes. */
#include "ir.h"
#include <stdio.h>
#include <string.h>

#define FAIL(...)                      \
  do {                                 \
    snprintf(err, errlen, __VA_ARGS__); \
    return false;                      \
  } while (0)

static bool is_float(rt_dtype t) { return t == RT_F32 || t == RT_F16 || t == RT_BF16 || t == RT_F64; }

/* Numpy broadcasting: align from the right; equal dims or a constant 1. */
bool ir_broadcast(const IrType *a, const IrType *b, IrType *out) {
  IrType r;
  memset(&r, 0, sizeof r);
  r.dt = a->dt;
  r.rank = a->rank > b->rank ? a->rank : b->rank;
  for (int i = 0; i < r.rank; i++) {
    int ia = a->rank - r.rank + i, ib = b->rank - r.rank + i;
    IrDim one = ir_dim_const(1);
    IrDim da = ia >= 0 ? a->dim[ia] : one, db = ib >= 0 ? b->dim[ib] : one;
    if (ir_dim_eq(da, db) || ir_dim_eq(db, one))
      r.dim[i] = da;
    else if (ir_dim_eq(da, one))
      r.dim[i] = db;
    else
      return false;
  }
  *out = r;
  return true;
}

/* True if `from` broadcasts to exactly `to`. */
static bool broadcasts_to(const IrType *from, const IrType *to) {
  IrType r;
  return ir_broadcast(from, to, &r) && ir_shape_eq(&r, to);
}

/* Product of all dims; false if the polynomial gets too complex. */
static bool numel(const IrType *t, IrDim *out) {
  IrDim n = ir_dim_const(1);
  for (int i = 0; i < t->rank; i++)
    if (ir_dim_mul(n, t->dim[i], &n)) return false;
  *out = n;
  return true;
}

bool ir_window_dim(IrGraph *g, IrDim in, int64_t k, int64_t s, int64_t pb, int64_t pe, int64_t d, const char *why,
                   bool make, IrDim *out, bool *empty) {
  IrDim num;
  *empty = false;
  if (ir_dim_add(in, ir_dim_const(pb + pe - d * (k - 1) - 1), &num)) return false;
  return ir_derived_dim(g, num, s, d * (k - 1) + 1, pb + pe, why, make, out, empty);
}

void ir_window_kernel(const IrFunc *f, const IrNode *n, int64_t k[2]) {
  for (int i = 0; i < 2; i++) {
    k[i] = 0;
    if (n->op == IR_CONV2D) {
      const IrType *w = &f->nodes[n->in[1]].type;
      if (w->rank != 4 || !ir_dim_is_const(w->dim[2 + i], &k[i])) k[i] = 0;
    } else if (n->a.nkernel == 2) {
      k[i] = n->a.kernel[i];
    }
  }
}

/* conv2d(x[N,C,H,W], w[O,C/groups,kh,kw] [, epilogue operands])
 * -> [N,O,Ho,Wo]; pools x[N,C,H,W] -> [N,C,Ho,Wo].  The spatial output
 * dims must be the window's (a constant or an existing derived dim). */
static bool infer_window(const IrGraph *g, const IrFunc *f, const IrNode *n, IrType *r, char *err, size_t errlen) {
  const char *name = ir_opinfo[n->op].name;
  char s1[256], s2[256];
  const IrType *x = &f->nodes[n->in[0]].type;
  ir_type_str(g, x, s1, sizeof s1);
  if (x->rank != 4 || !is_float(x->dt)) FAIL("%s expects a floating-point [N, C, H, W] image, got %s", name, s1);
  if (n->a.nstride != 2 || n->a.npad != 4) FAIL("%s needs stride=[sh,sw] and pad=[top,left,bottom,right]", name);
  for (int i = 0; i < 2; i++)
    if (n->a.stride[i] < 1) FAIL("%s: stride %d must be >= 1", name, n->a.stride[i]);
  for (int i = 0; i < 4; i++)
    if (n->a.pad[i] < 0) FAIL("%s: padding %d must be >= 0", name, n->a.pad[i]);
  int64_t k[2], dil[2] = {1, 1}, c;
  ir_window_kernel(f, n, k);
  *r = *x;
  if (n->op == IR_CONV2D) {
    if (n->nin < 2) FAIL("conv2d takes an image and a weight");
    if (n->a.ndil != 2 || n->a.dil[0] < 1 || n->a.dil[1] < 1) FAIL("conv2d needs dil=[dh,dw], each >= 1");
    dil[0] = n->a.dil[0], dil[1] = n->a.dil[1];
    const IrType *w = &f->nodes[n->in[1]].type;
    ir_type_str(g, w, s2, sizeof s2);
    int64_t o, cg, grp = n->a.groups;
    if (w->rank != 4 || w->dt != x->dt || !k[0] || !k[1] || !ir_dim_is_const(w->dim[0], &o) ||
        !ir_dim_is_const(w->dim[1], &cg))
      FAIL("conv2d: the weight must be a constant-size [O, C/groups, kh, kw] of the image's dtype, got %s", s2);
    if (!ir_dim_is_const(x->dim[1], &c)) FAIL("conv2d: the image's channels must be a constant, got %s", s1);
    if (grp < 1 || c % grp || o % grp || cg * grp != c)
      FAIL("conv2d: image %s and weight %s do not fit groups=%d", s1, s2, n->a.groups);
    r->dim[1] = w->dim[0];
  } else if (n->a.nkernel != 2 || k[0] < 1 || k[1] < 1) {
    FAIL("%s needs kernel=[kh,kw], each >= 1", name);
  } else if (n->nin > 2) {
    FAIL("%s takes an image and an optional per-channel scale", name);
  } else if (n->nin == 2) { /* the scale of x's channels, per image: [N, C, 1, 1] or [C, 1, 1] */
    const IrType *s = &f->nodes[n->in[1]].type;
    IrType one = *x, bc;
    one.dim[2] = one.dim[3] = ir_dim_const(1);
    ir_type_str(g, s, s2, sizeof s2);
    if (s->dt != x->dt || s->rank < 3 || !ir_broadcast(&one, s, &bc) || !ir_shape_eq(&bc, &one))
      FAIL("%s: the scale %s is not per channel of %s", name, s2, s1);
  }
  for (int i = 0; i < 2; i++) {
    IrDim d;
    bool empty;
    if (!ir_window_dim((IrGraph *)g, x->dim[2 + i], k[i], n->a.stride[i], n->a.pad[i], n->a.pad[2 + i], dil[i], NULL,
                       false, &d, &empty)) {
      if (empty) FAIL("%s: input %s with kernel %lld leaves no output", name, s1, (long long)k[i]);
      FAIL("%s: no derived dim gives the output size of axis %d of %s", name, 2 + i, s1);
    }
    r->dim[2 + i] = d;
  }
  for (int q = 2; q < n->nin && n->op == IR_CONV2D; q++) { /* epilogue operands: per channel ([.., C, 1, 1]) or the whole map */
    const IrType *e = &f->nodes[n->in[q]].type;
    IrType bc;
    ir_type_str(g, e, s2, sizeof s2);
    if (!ir_broadcast(r, e, &bc) || !ir_shape_eq(&bc, r))
      FAIL("%s epilogue operand %d (%s) does not broadcast to the result", name, q, s2);
  }
  return true;
}

bool ir_infer(const IrGraph *g, const IrFunc *f, const IrNode *n, IrType *out, char *err,
              size_t errlen) {
  const IrOpInfo *oi = &ir_opinfo[n->op];
  char s1[256], s2[256], s3[256];
  const IrType *t[3] = {0};
  for (int i = 0; i < n->nin && i < 3; i++) t[i] = &f->nodes[n->in[i]].type;
  if (oi->nin >= 0 && n->nin != oi->nin)
    FAIL("%s takes %d operands, got %d", oi->name, oi->nin, n->nin);
  IrType r = n->type;

  switch (oi->cls) {
  case IR_CLS_SRC:
    if (n->op == IR_IOTA && (r.dt != RT_I32 || n->a.axis < 0 || n->a.axis >= r.rank))
      FAIL("iota must be i32 with an axis below its rank");
    if ((n->op == IR_PARAM || n->op == IR_INDEX) && r.rank != 0)
      FAIL("%s must be a scalar", oi->name);
    if (n->op == IR_INDEX && r.dt != RT_I32) FAIL("index must be i32");
    if (n->op == IR_DIMVAL && (r.dt != RT_I32 || r.rank != 0)) FAIL("dimval must be an i32 scalar");
    break;

  case IR_CLS_UN:
    if (n->op == IR_CAST) {
      if (!ir_shape_eq(&r, t[0])) FAIL("cast changes the shape");
      break;
    }
    r = *t[0];
    if (n->op == IR_NOT) {
      if (r.dt != RT_BOOL) FAIL("not expects bool, got %s", rt_dtype_name(r.dt));
    } else if (n->op != IR_NEG && n->op != IR_ABS && n->op != IR_RELU && n->op != IR_FLOOR &&
               n->op != IR_CEIL && n->op != IR_ROUND) {
      if (!is_float(r.dt))
        FAIL("%s expects a floating-point tensor, got %s", oi->name, rt_dtype_name(r.dt));
    } else if (r.dt == RT_BOOL) {
      FAIL("%s expects a numeric tensor, got bool", oi->name);
    }
    break;

  case IR_CLS_BIN:
  case IR_CLS_CMP:
    if (t[0]->dt != t[1]->dt)
      FAIL("%s operands have different dtypes: %s and %s", oi->name, rt_dtype_name(t[0]->dt),
           rt_dtype_name(t[1]->dt));
    if (!ir_broadcast(t[0], t[1], &r)) {
      ir_type_str(g, t[0], s1, sizeof s1);
      ir_type_str(g, t[1], s2, sizeof s2);
      FAIL("shapes %s and %s do not broadcast", s1, s2);
    }
    if (n->op == IR_AND || n->op == IR_OR) {
      if (r.dt != RT_BOOL) FAIL("%s expects bool operands", oi->name);
    } else if (r.dt == RT_BOOL && oi->cls == IR_CLS_BIN) {
      FAIL("%s expects numeric operands, got bool", oi->name);
    }
    if (oi->cls == IR_CLS_CMP) r.dt = RT_BOOL;
    break;

  case IR_CLS_TER: {
    if (t[0]->dt != RT_BOOL) FAIL("where: condition must be bool, got %s", rt_dtype_name(t[0]->dt));
    if (t[1]->dt != t[2]->dt)
      FAIL("where: branches have different dtypes: %s and %s", rt_dtype_name(t[1]->dt),
           rt_dtype_name(t[2]->dt));
    IrType ab;
    if (!ir_broadcast(t[1], t[2], &ab) || !ir_broadcast(t[0], &ab, &r)) {
      ir_type_str(g, t[0], s1, sizeof s1);
      ir_type_str(g, t[1], s2, sizeof s2);
      ir_type_str(g, t[2], s3, sizeof s3);
      FAIL("where: shapes %s, %s and %s do not broadcast", s1, s2, s3);
    }
    r.dt = t[1]->dt;
    break;
  }

  case IR_CLS_RED: {
    const IrType *x = t[0];
    if (n->a.nlist < 1) FAIL("%s needs at least one axis", oi->name);
    bool red[IR_MAX_RANK] = {0};
    for (int i = 0; i < n->a.nlist; i++) {
      int ax = n->a.list[i];
      if (ax < 0 || ax >= x->rank) FAIL("%s: axis %d out of range for rank %d", oi->name, ax, x->rank);
      if (red[ax]) FAIL("%s: axis %d repeated", oi->name, ax);
      if (i && ax < n->a.list[i - 1]) FAIL("%s: axes must be sorted", oi->name);
      red[ax] = true;
    }
    if (n->op != IR_RMAX && !is_float(x->dt))
      FAIL("%s expects a floating-point tensor, got %s", oi->name, rt_dtype_name(x->dt));
    memset(&r, 0, sizeof r);
    r.dt = x->dt;
    for (int i = 0; i < x->rank; i++) {
      if (!red[i])
        r.dim[r.rank++] = x->dim[i];
      else if (n->a.keep)
        r.dim[r.rank++] = ir_dim_const(1);
    }
    break;
  }

  case IR_CLS_NORM: {
    const IrType *x = t[0];
    if (!is_float(x->dt)) FAIL("%s expects a floating-point tensor", oi->name);
    if (x->rank < 1) FAIL("%s expects a tensor of rank >= 1", oi->name);
    if (n->op == IR_SOFTMAX) {
      if (n->a.axis < 0 || n->a.axis >= x->rank)
        FAIL("softmax: axis %d out of range for rank %d", n->a.axis, x->rank);
    } else {
      for (int i = 1; i < n->nin; i++) {
        if (t[i]->rank != 1 || !ir_dim_eq(t[i]->dim[0], x->dim[x->rank - 1]) || t[i]->dt != x->dt) {
          ir_type_str(g, x, s1, sizeof s1);
          ir_type_str(g, t[i], s2, sizeof s2);
          FAIL("%s: %s must be a vector matching the last axis of %s, got %s", oi->name,
               i == 1 ? "weight" : "bias", s1, s2);
        }
      }
    }
    r = *x;
    break;
  }

  case IR_CLS_MM: {
    if (n->nin < 2) FAIL("matmul takes two operands (then those of its epilogue), has %d", n->nin);
    const IrType *a = t[0], *b = t[1];
    ir_type_str(g, a, s1, sizeof s1);
    ir_type_str(g, b, s2, sizeof s2);
    if (a->rank < 2 || b->rank < 2) FAIL("matmul needs rank >= 2 operands, got %s and %s", s1, s2);
    if (a->dt != b->dt) FAIL("matmul operands have different dtypes: %s and %s", s1, s2);
    if (!is_float(a->dt)) FAIL("matmul expects floating-point operands, got %s", s1);
    if (!ir_dim_eq(a->dim[a->rank - 1], b->dim[b->rank - 2]))
      FAIL("matmul: inner dimensions differ: %s @ %s", s1, s2);
    IrType ba = *a, bb = *b;
    ba.rank -= 2;
    bb.rank -= 2;
    if (!ir_broadcast(&ba, &bb, &r)) FAIL("matmul: batch dimensions of %s and %s do not broadcast", s1, s2);
    r.dim[r.rank++] = a->dim[a->rank - 2];
    r.dim[r.rank++] = b->dim[b->rank - 1];
    r.dt = a->dt;
    for (int k = 2; k < n->nin; k++) { /* epilogue operands broadcast to the result */
      IrType bc;
      const IrType *tk = &f->nodes[n->in[k]].type;
      ir_type_str(g, tk, s1, sizeof s1);
      if (!ir_broadcast(&r, tk, &bc) || !ir_shape_eq(&bc, &r))
        FAIL("matmul epilogue operand %d (%s) does not broadcast to the result", k, s1);
    }
    break;
  }

  case IR_CLS_CONV:
    if (!infer_window(g, f, n, &r, err, errlen)) return false;
    break;

  case IR_CLS_SHAPE:
    switch (n->op) {
    case IR_RESHAPE: {
      IrDim na, nb;
      ir_type_str(g, t[0], s1, sizeof s1);
      ir_type_str(g, &r, s2, sizeof s2);
      if (!numel(t[0], &na) || !numel(&r, &nb) || !ir_dim_eq(na, nb))
        FAIL("reshape from %s to %s changes the number of elements", s1, s2);
      if (r.dt != t[0]->dt) FAIL("reshape changes the dtype");
      break;
    }
    case IR_PERMUTE: {
      const IrType *x = t[0];
      bool seen[IR_MAX_RANK] = {0};
      if (n->a.nlist != x->rank) FAIL("permute: %d axes given for rank %d", n->a.nlist, x->rank);
      memset(&r, 0, sizeof r);
      r.dt = x->dt;
      r.rank = x->rank;
      for (int i = 0; i < x->rank; i++) {
        int p = n->a.list[i];
        if (p < 0 || p >= x->rank || seen[p]) FAIL("permute: [perm] is not a permutation");
        seen[p] = true;
        r.dim[i] = x->dim[p];
      }
      break;
    }
    case IR_SLICE: {
      const IrType *x = t[0];
      int ax = n->a.axis;
      if (ax < 0 || ax >= x->rank) FAIL("slice: axis %d out of range for rank %d", ax, x->rank);
      if (r.rank != x->rank || r.dt != x->dt) FAIL("slice changes rank or dtype");
      for (int i = 0; i < x->rank; i++)
        if (i != ax && !ir_dim_eq(r.dim[i], x->dim[i])) FAIL("slice changes axis %d", i);
      int64_t st, len, full;
      IrDim end;
      if (ir_dim_add(n->a.start, r.dim[ax], &end)) FAIL("slice bounds too complex");
      if (ir_dim_is_const(n->a.start, &st) && st < 0) FAIL("slice: negative start");
      if (ir_dim_is_const(end, &len) && ir_dim_is_const(x->dim[ax], &full) && len > full)
        FAIL("slice: end %lld beyond size %lld", (long long)len, (long long)full);
      break;
    }
    case IR_CONCAT: {
      if (n->nin < 1) FAIL("concat needs operands");
      const IrType *x0 = &f->nodes[n->in[0]].type;
      int ax = n->a.axis;
      if (ax < 0 || ax >= x0->rank) FAIL("concat: axis %d out of range for rank %d", ax, x0->rank);
      r = *x0;
      for (int k = 1; k < n->nin; k++) {
        const IrType *xk = &f->nodes[n->in[k]].type;
        ir_type_str(g, x0, s1, sizeof s1);
        ir_type_str(g, xk, s2, sizeof s2);
        if (xk->rank != x0->rank || xk->dt != x0->dt) FAIL("concat: %s and %s differ in rank or dtype", s1, s2);
        for (int i = 0; i < x0->rank; i++)
          if (i != ax && !ir_dim_eq(xk->dim[i], x0->dim[i]))
            FAIL("concat: %s and %s differ on axis %d", s1, s2, i);
        if (ir_dim_add(r.dim[ax], xk->dim[ax], &r.dim[ax])) FAIL("concat: size too complex");
      }
      break;
    }
    case IR_GATHER: { /* table[:axis] + ids.shape + table[axis+1:] */
      const IrType *x = t[0], *ids = t[1];
      int ax = n->a.axis;
      if (ids->dt != RT_I32) FAIL("gather: ids must be i32, got %s", rt_dtype_name(ids->dt));
      if (ax < 0 || ax >= x->rank) FAIL("gather: axis %d out of range for rank %d", ax, x->rank);
      if (x->rank - 1 + ids->rank > IR_MAX_RANK) FAIL("gather: the result's rank is above %d", IR_MAX_RANK);
      memset(&r, 0, sizeof r);
      r.dt = x->dt;
      r.rank = (uint8_t)(x->rank - 1 + ids->rank);
      int o = 0;
      for (int i = 0; i < ax; i++) r.dim[o++] = x->dim[i];
      for (int i = 0; i < ids->rank; i++) r.dim[o++] = ids->dim[i];
      for (int i = ax + 1; i < x->rank; i++) r.dim[o++] = x->dim[i];
      break;
    }
    case IR_PACK: /* the same matrix as f32 values, stored as the backend's GEMM panels (of bf16 / f16
                     values for a bf16 / f16 operand: native 2-byte weights) */
      r = *t[0];
      if (r.rank != 2 || (r.dt != RT_F32 && r.dt != RT_BF16 && r.dt != RT_F16))
        FAIL("pack takes an f32, bf16 or f16 matrix (rank 2)");
      r.dt = RT_F32;
      break;
    case IR_UPDATE: { /* update(state, x, at): state's type; x fits except on axis 0 (rows) and `axis` */
      const IrType *x = t[1], *at = t[2];
      int ax = n->a.axis;
      ir_type_str(g, t[0], s1, sizeof s1);
      ir_type_str(g, x, s2, sizeof s2);
      ir_type_str(g, at, s3, sizeof s3);
      r = *t[0];
      if (ax < 0 || ax >= r.rank) FAIL("update: axis %d out of range for rank %d", ax, r.rank);
      if (x->rank != r.rank || x->dt != r.dt) FAIL("update: %s does not fit the state %s (rank or dtype)", s2, s1);
      for (int i = 1; i < r.rank; i++)
        if (i != ax && !ir_dim_eq(x->dim[i], r.dim[i])) FAIL("update: %s does not fit the state %s on axis %d", s2, s1, i);
      if (at->dt != RT_I32 || at->rank > 1 || (at->rank == 1 && (ax == 0 || !ir_dim_eq(at->dim[0], x->dim[0]))))
        FAIL("update: at must be an i32 scalar or one position per row of %s, got %s", s2, s3);
      break;
    }
    case IR_EXPAND: /* a broadcast view: the type is given */
      ir_type_str(g, t[0], s1, sizeof s1);
      ir_type_str(g, &r, s2, sizeof s2);
      if (r.dt != t[0]->dt) FAIL("expand changes the dtype");
      if (!broadcasts_to(t[0], &r)) FAIL("expand: %s does not broadcast to %s", s1, s2);
      break;
    default:
      break;
    }
    break;

  case IR_CLS_FUSED:
    if (n->op == IR_FUSED) {
      for (int i = 0; i < n->nin; i++) {
        const IrType *x = &f->nodes[n->in[i]].type;
        if (!broadcasts_to(x, &r)) {
          ir_type_str(g, x, s1, sizeof s1);
          ir_type_str(g, &r, s2, sizeof s2);
          FAIL("fused: operand %d of shape %s does not broadcast to %s", i, s1, s2);
        }
      }
    } else { /* ATTENTION: q [B,Hq,T,E], k [B,Hk,S,E], v [B,Hk,S,Ev], extras -> [B,Hq,T,S] */
      if (n->nin < 3) FAIL("attention needs q, k and v");
      const IrType *q = t[0], *k = t[1], *v = t[2];
      ir_type_str(g, q, s1, sizeof s1);
      ir_type_str(g, k, s2, sizeof s2);
      ir_type_str(g, v, s3, sizeof s3);
      if (q->rank != 4 || k->rank != 4 || v->rank != 4)
        FAIL("attention: q, k, v must be rank 4, got %s, %s, %s", s1, s2, s3);
      IrDim grp;
      if (!ir_dim_eq(q->dim[0], k->dim[0]) || !ir_dim_eq(k->dim[0], v->dim[0]) ||
          !ir_dim_eq(k->dim[1], v->dim[1]) || !ir_dim_eq(q->dim[3], k->dim[3]) ||
          !ir_dim_eq(k->dim[2], v->dim[2]) || ir_dim_div(q->dim[1], k->dim[1], &grp))
        FAIL("attention: incompatible q %s, k %s, v %s", s1, s2, s3);
      IrType o = *q;
      o.dim[3] = v->dim[3];
      IrType sc = *q;
      sc.dim[3] = k->dim[2];
      for (int i = 3; i < n->nin; i++) {
        const IrType *x = &f->nodes[n->in[i]].type;
        if (i == n->a.kvlen) continue; /* the valid key length: per batch on its axis 0 (verify.c) */
        if (!broadcasts_to(x, &sc)) {
          ir_type_str(g, x, s1, sizeof s1);
          ir_type_str(g, &sc, s2, sizeof s2);
          FAIL("attention: score operand %d of shape %s does not broadcast to %s", i, s1, s2);
        }
      }
      if (!ir_shape_eq(&o, &r)) {
        ir_type_str(g, &o, s1, sizeof s1);
        ir_type_str(g, &r, s2, sizeof s2);
        FAIL("attention: result must be %s, not %s", s1, s2);
      }
    }
    break;
  }
  *out = r;
  return true;
}

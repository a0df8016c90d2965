/* attrs.c - the attribute table (IR_ATTRS in ops.h) as data, and the
 * generic operations on it: which ops carry an attribute, when it is
 * printed, and equality of two attribute sets (CSE).  print.c and parse.c
 * switch on the attribute kinds listed here. */
#include "ir.h"
#include <stddef.h>
#include <string.h>

const IrAttrInfo ir_attrinfo[IR_NATTR] = {
#define X(bit, name, kind, field, field2, when) \
  [IR_ATTR_BIT_##bit] = {name, A_##bit, IR_AK_##kind, IR_AW_##when, offsetof(IrAttrs, field), offsetof(IrAttrs, field2)},
  IR_ATTRS(X)
#undef X
};

/* Field `off` of a as type T; STR_FIELD for the strings (a const pointer). */
#define FIELD(T, a, off) (*(const T *)((const char *)(a) + (off)))
#define STR_FIELD(a, off) (*(const char *const *)((const char *)(a) + (off)))

/* ANY attributes on every op, the others where the op's row lists them. */
bool ir_attr_allowed(int op, int k) {
  return ir_attrinfo[k].when == IR_AW_ANY || (op >= 0 && op < IR_NOPS && (ir_opinfo[op].attrs & ir_attrinfo[k].bit));
}

/* Is attribute k at its default (false, 0, an empty list)? */
static bool is_default(int k, const IrAttrs *a) {
  const IrAttrInfo *ai = &ir_attrinfo[k];
  switch (ai->kind) {
  case IR_AK_BOOL: return !FIELD(bool, a, ai->off);
  case IR_AK_INT: return FIELD(int, a, ai->off) == 0;
  case IR_AK_LIST:
  case IR_AK_TILE: return FIELD(int, a, ai->off2) <= 0;
  case IR_AK_DIM: return FIELD(IrDim, a, ai->off).nterm == 0;
  default: return false;
  }
}

/* OPS: always on its ops; SET and ANY: when not the default. */
bool ir_attr_shown(int op, int k, const IrAttrs *a) {
  if (!ir_attr_allowed(op, k)) return false;
  return ir_attrinfo[k].when == IR_AW_OPS || !is_default(k, a);
}

/* Attribute k of a and b equal? */
static bool attr_eq(int k, const IrAttrs *a, const IrAttrs *b) {
  const IrAttrInfo *ai = &ir_attrinfo[k];
  size_t o = ai->off, o2 = ai->off2;
  switch (ai->kind) {
  case IR_AK_STR: {
    const char *x = STR_FIELD(a, o), *y = STR_FIELD(b, o);
    return (x == NULL) == (y == NULL) && (!x || strcmp(x, y) == 0);
  }
  case IR_AK_INT: return FIELD(int, a, o) == FIELD(int, b, o);
  case IR_AK_F64: return memcmp((const char *)a + o, (const char *)b + o, sizeof(double)) == 0;
  case IR_AK_BOOL: return FIELD(bool, a, o) == FIELD(bool, b, o);
  case IR_AK_DIM: return ir_dim_eq(FIELD(IrDim, a, o), FIELD(IrDim, b, o));
  case IR_AK_MASK: return FIELD(int64_t, a, o) == FIELD(int64_t, b, o) && FIELD(int64_t, a, o2) == FIELD(int64_t, b, o2);
  case IR_AK_LIST: {
    int n = FIELD(int, a, o2);
    return n == FIELD(int, b, o2) && (n <= 0 || memcmp((const char *)a + o, (const char *)b + o,
                                                        sizeof(int) * (size_t)(n < IR_MAX_RANK ? n : IR_MAX_RANK)) == 0);
  }
  case IR_AK_TILE: {
    int n = FIELD(int, a, o2);
    return n == FIELD(int, b, o2) && (n <= 0 || memcmp((const char *)a + o, (const char *)b + o,
                                                        sizeof(int64_t) * (size_t)(n < IR_MAX_TILE ? n : IR_MAX_TILE)) == 0);
  }
  }
  return false;
}

/* Mix x into h (FNV-1a over its bytes). */
static uint32_t mix(uint32_t h, const void *x, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)x)[i]) * 16777619u;
  return h;
}

/* Every row of the table, by kind; equal attribute sets hash alike. */
uint32_t ir_attrs_hash(const IrAttrs *a) {
  uint32_t h = 2166136261u;
  for (int k = 0; k < IR_NATTR; k++) {
    const IrAttrInfo *ai = &ir_attrinfo[k];
    const char *p = (const char *)a + ai->off;
    int n;
    switch (ai->kind) {
    case IR_AK_STR:
      if (STR_FIELD(a, ai->off)) h = mix(h, STR_FIELD(a, ai->off), strlen(STR_FIELD(a, ai->off)));
      break;
    case IR_AK_INT: h = mix(h, p, sizeof(int)); break;
    case IR_AK_F64: h = mix(h, p, sizeof(double)); break;
    case IR_AK_BOOL: h = mix(h, &(unsigned char){FIELD(bool, a, ai->off)}, 1); break;
    case IR_AK_DIM: {
      const IrDim *d = (const IrDim *)p;
      for (int t = 0; t < d->nterm && t < IR_MAX_TERMS; t++) {
        h = mix(h, &d->t[t].coef, sizeof d->t[t].coef);
        h = mix(h, d->t[t].sym, sizeof d->t[t].sym[0] * (size_t)(d->t[t].nsym <= IR_MAX_FACTORS ? d->t[t].nsym : 0));
      }
      break;
    }
    case IR_AK_MASK:
      h = mix(h, p, sizeof(int64_t));
      h = mix(h, (const char *)a + ai->off2, sizeof(int64_t));
      break;
    case IR_AK_LIST:
      n = FIELD(int, a, ai->off2);
      if (n > 0) h = mix(h, p, sizeof(int) * (size_t)(n < IR_MAX_RANK ? n : IR_MAX_RANK));
      break;
    case IR_AK_TILE:
      n = FIELD(int, a, ai->off2);
      if (n > 0) h = mix(h, p, sizeof(int64_t) * (size_t)(n < IR_MAX_TILE ? n : IR_MAX_TILE));
      break;
    }
  }
  return h;
}

/* Every row of the table. */
bool ir_attrs_eq(const IrAttrs *a, const IrAttrs *b) {
  for (int k = 0; k < IR_NATTR; k++)
    if (!attr_eq(k, a, b)) return false;
  return true;
}

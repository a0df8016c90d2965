/* ops.h - the one op table.  Each row generates the enum value, the printed
 * name, the arity (-1: variadic), the op class (which drives shape
 * inference, fusion legality and the interpreter) and the attributes the op
 * carries (printed and parsed in the textual IR).
 *
 * Classes:
 *   SRC   leaves: graph inputs, weights, constants, iota, region params/indices,
 *         dimval (a run-time dim as an i32 scalar), state (an instance-owned
 *         tensor: its value at the start of a run)
 *   UN    elementwise unary          BIN  elementwise binary (broadcasting)
 *   CMP   comparison -> bool         TER  where(cond, a, b)
 *   RED   reduction over A_AXES      NORM softmax / layernorm / rmsnorm
 *   MM    batched matmul             SHAPE reshape / permute / slice / concat /
 *                                          gather (rows by i32 ids) / expand (broadcast view) /
 *                                          pack (the same matrix in the backend's GEMM operand layout) /
 *                                          update (x written into a state at a run-time offset, in place)
 *   CONV  windows over NCHW images: conv2d(x, w[O, C/groups, kh, kw]) (+ the
 *         operands of an epilogue body, as matmul),
 *         maxpool2d / avgpool2d(x [, s]) (s: a per-(image, channel) scale
 *         [N, C, 1, 1] applied to x as it is read: fold-se; fold=true: x is
 *         a conv2d computed inside the pool's kernel, fuse-pool); output
 *         sizes are derived dims (ir.h: IrDerivedDim).  A fold=true mul
 *         (f * s, s per image and channel) read by a conv2d is applied as
 *         the conv loads its image (fold-se): the scaled map is never written.
 *         A fold=true matmul or conv2d is the first layer of an SE excitation
 *         (fuse-excite): computed, from its fold=true squeeze operand, inside
 *         the kernel of its one reader, the second layer
 *   FUSED produced by fusion passes; carries a body region
 */
#ifndef IR_OPS_H
#define IR_OPS_H

/* The one attribute table.  Each row gives an attribute's bit (A_NAME),
 * its printed name, its kind (how it is printed, parsed and compared), the
 * IrAttrs field(s) holding it and when it is printed.  Printing, parsing
 * and CSE equality are generated from it (ir/attrs.c); adding an attribute
 * is one row here plus its field in IrAttrs.  The order is the order of
 * printing.
 *
 * Kinds:  STR  a string              INT  an int          F64  a double
 *         LIST ints (field2: count)  BOOL true / false    DIM  a symbolic dim
 *         MASK [lo,hi] (field2: hi)  TILE int64s (field2: count)
 * When:   OPS   printed on the ops whose row in IR_OPS lists the bit
 *         SET   the same, but only when not the default (false / empty)
 *         ANY   any op may carry it; printed when set
 *
 *   bit    name     kind  field  field2  when */
#define IR_ATTRS(X)                                                      \
  X(STR,   "str",   STR,  str,   str,    OPS) /* input name / weight key */ \
  X(INDEX, "index", INT,  index, index,  OPS) /* input position / region param no. */ \
  X(VALUE, "value", F64,  value, value,  OPS) /* constant value */        \
  X(AXIS,  "axis",  INT,  axis,  axis,   OPS)                             \
  X(AXES,  "axes",  LIST, list,  nlist,  OPS) /* reduction axes */        \
  X(KEEP,  "keep",  BOOL, keep,  keep,   OPS) /* keep reduced dims */     \
  X(FOLD,  "fold",  BOOL, fold,  fold,   SET) /* computed inside another kernel (fold-se, fuse-pool, fuse-excite) */ \
  X(PERM,  "perm",  LIST, list,  nlist,  OPS) /* permutation */           \
  X(START, "start", DIM,  start, start,  OPS) /* slice start */           \
  X(EPS,   "eps",   F64,  eps,   eps,    OPS) /* normalization epsilon */ \
  X(SCALE, "scale", F64,  scale, scale,  OPS) /* attention score scale */ \
  X(MASK,  "mask",  MASK, mlo,   mhi,    OPS) /* block-skip band of fused attention */ \
  X(MOFF,  "moff",  DIM,  dim,   dim,    SET) /* symbolic offset of the band (S - T: bottom-right) */ \
  X(DIM,   "dim",   DIM,  dim,   dim,    OPS) /* dimval: the run-time dim it is */ \
  X(KERNEL, "kernel", LIST, kernel, nkernel, OPS) /* pooling window [kh, kw] */ \
  X(STRIDE, "stride", LIST, stride, nstride, OPS) /* window step [sh, sw] */ \
  X(PAD,    "pad",    LIST, pad,    npad,    OPS) /* zero padding [top, left, bottom, right] */ \
  X(DIL,    "dil",    LIST, dil,    ndil,    OPS) /* conv dilation [dh, dw] */ \
  X(GROUPS, "groups", INT,  groups, groups,  OPS) /* conv groups (C: depthwise) */ \
  X(PREP,  "prep",  BOOL, prep,  prep,   ANY) /* depends only on weights and constants: computed at load (hoist-weights) */ \
  X(KVLEN, "kvlen", INT,  kvlen, kvlen,  SET) /* attention: operand with the valid key length per batch (decoding) */ \
  X(TILE,  "tile",  TILE, tile,  ntile,  ANY) /* the tile pass's choice, CPU */ \
  X(GTILE, "gtile", TILE, gtile, ngtile, ANY) /* the same for the GPU */

/* attribute bits: A_STR, A_INDEX, ... */
enum {
#define X(bit, name, kind, field, field2, when) IR_ATTR_BIT_##bit,
  IR_ATTRS(X)
#undef X
  IR_NATTR
};
enum {
#define X(bit, name, kind, field, field2, when) A_##bit = 1u << IR_ATTR_BIT_##bit,
  IR_ATTRS(X)
#undef X
};

/*   enum        name          nin class  attributes */
#define IR_OPS(X)                                           \
  X(INPUT,       "input",       0, SRC,   A_STR | A_INDEX)  \
  X(WEIGHT,      "weight",      0, SRC,   A_STR)            \
  X(CONST,       "const",       0, SRC,   A_VALUE)          \
  X(IOTA,        "iota",        0, SRC,   A_AXIS)           \
  X(PARAM,       "param",       0, SRC,   A_INDEX)          \
  X(INDEX,       "index",       0, SRC,   A_AXIS)           \
  X(DIMVAL,      "dimval",      0, SRC,   A_DIM)            \
  X(STATE,       "state",       0, SRC,   A_STR)            \
  X(NEG,         "neg",         1, UN,    0)                \
  X(NOT,         "not",         1, UN,    0)                \
  X(ABS,         "abs",         1, UN,    0)                \
  X(EXP,         "exp",         1, UN,    0)                \
  X(EXP2,        "exp2",        1, UN,    0)                \
  X(LOG,         "log",         1, UN,    0)                \
  X(SQRT,        "sqrt",        1, UN,    0)                \
  X(RSQRT,       "rsqrt",       1, UN,    0)                \
  X(RECIP,       "recip",       1, UN,    0)                \
  X(TANH,        "tanh",        1, UN,    0)                \
  X(SIGMOID,     "sigmoid",     1, UN,    0)                \
  X(RELU,        "relu",        1, UN,    0)                \
  X(GELU,        "gelu",        1, UN,    0)                \
  X(GELU_TANH,   "gelu_tanh",   1, UN,    0)                \
  X(SILU,        "silu",        1, UN,    0)                \
  X(ERF,         "erf",         1, UN,    0)                \
  X(SIN,         "sin",         1, UN,    0)                \
  X(COS,         "cos",         1, UN,    0)                \
  X(FLOOR,       "floor",       1, UN,    0)                \
  X(CEIL,        "ceil",        1, UN,    0)                \
  X(ROUND,       "round",       1, UN,    0)                \
  X(CAST,        "cast",        1, UN,    0)                \
  X(ADD,         "add",         2, BIN,   0)                \
  X(SUB,         "sub",         2, BIN,   0)                \
  X(MUL,         "mul",         2, BIN,   A_FOLD)           \
  X(DIV,         "div",         2, BIN,   0)                \
  X(MIN,         "min",         2, BIN,   0)                \
  X(MAX,         "max",         2, BIN,   0)                \
  X(POW,         "pow",         2, BIN,   0)                \
  X(AND,         "and",         2, BIN,   0)                \
  X(OR,          "or",          2, BIN,   0)                \
  X(LT,          "lt",          2, CMP,   0)                \
  X(LE,          "le",          2, CMP,   0)                \
  X(GT,          "gt",          2, CMP,   0)                \
  X(GE,          "ge",          2, CMP,   0)                \
  X(EQ,          "eq",          2, CMP,   0)                \
  X(NE,          "ne",          2, CMP,   0)                \
  X(WHERE,       "where",       3, TER,   0)                \
  X(SUM,         "sum",         1, RED,   A_AXES | A_KEEP | A_FOLD) \
  X(MEAN,        "mean",        1, RED,   A_AXES | A_KEEP | A_FOLD) \
  X(RMAX,        "rmax",        1, RED,   A_AXES | A_KEEP)  \
  X(SOFTMAX,     "softmax",     1, NORM,  A_AXIS)           \
  X(LAYERNORM,   "layernorm",   3, NORM,  A_EPS)            \
  X(RMSNORM,     "rmsnorm",     2, NORM,  A_EPS)            \
  X(MATMUL,      "matmul",     -1, MM,    A_FOLD)                \
  X(RESHAPE,     "reshape",     1, SHAPE, 0)                \
  X(PERMUTE,     "permute",     1, SHAPE, A_PERM)           \
  X(SLICE,       "slice",       1, SHAPE, A_AXIS | A_START) \
  X(CONCAT,      "concat",     -1, SHAPE, A_AXIS)           \
  X(GATHER,      "gather",      2, SHAPE, A_AXIS)           \
  X(EXPAND,      "expand",      1, SHAPE, 0)                \
  X(CONV2D,      "conv2d",     -1, CONV,  A_STRIDE | A_PAD | A_DIL | A_GROUPS | A_FOLD) \
  X(MAXPOOL,     "maxpool2d",  -1, CONV,  A_KERNEL | A_STRIDE | A_PAD | A_FOLD) \
  X(AVGPOOL,     "avgpool2d",  -1, CONV,  A_KERNEL | A_STRIDE | A_PAD | A_FOLD) \
  X(PACK,        "pack",        1, SHAPE, 0) /* a matmul's B in the GEMM's panel layout (pack-weights) */ \
  X(UPDATE,      "update",      3, SHAPE, A_AXIS)           \
  X(FUSED,       "fused",      -1, FUSED, 0)                \
  X(ATTENTION,   "attention",  -1, FUSED, A_SCALE | A_MASK | A_MOFF | A_KVLEN)

typedef enum {
#define X(e, name, nin, cls, attrs) IR_##e,
  IR_OPS(X)
#undef X
  IR_NOPS
} IrOp;

typedef enum {
  IR_CLS_SRC, IR_CLS_UN, IR_CLS_BIN, IR_CLS_CMP, IR_CLS_TER, IR_CLS_RED,
  IR_CLS_NORM, IR_CLS_MM, IR_CLS_SHAPE, IR_CLS_CONV, IR_CLS_FUSED
} IrOpClass;

typedef struct {
  const char *name;
  int nin;
  IrOpClass cls;
  unsigned attrs;
} IrOpInfo;

extern const IrOpInfo ir_opinfo[IR_NOPS];
/* Look an op up by printed name; -1 if unknown. */
int ir_op_from_name(const char *name);
/* True for ops computed one element at a time (UN, BIN, CMP, TER). */
int ir_op_is_elementwise(IrOp op);
#endif

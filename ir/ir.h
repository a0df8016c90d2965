/* ir.h - the attnc graph IR.
 *
 * A graph (IrGraph) is a list of functions (IrFunc).  funcs[0] is the main
 * computation; every other function is a body region owned by one fused
 * node (for example the score-modification expression of a fused attention
 * node, or the elementwise chain of a fused loop).  Bodies use the same op
 * table, on rank-0 values, and read their operands through PARAM nodes and
 * the current output position through INDEX nodes.
 *
 * Nodes live in a per-function array, in topological order, and refer to
 * their operands by index into that array (QBE-style), never by pointer.
 * Every node produces exactly one typed value: a dtype and a shape whose
 * dimensions are symbolic (IrDim: small canonical polynomials over the
 * model's run-time dims, e.g. B*T or 3*T+1).  Compile-time params are folded
 * to constants before the IR exists, but are recorded on the graph so the
 * compiled library can describe itself.
 *
 * All memory belongs to the graph's arena and is freed at once.
 */
#ifndef IR_IR_H
#define IR_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "arena.h"
#include "diag.h"
#include "ops.h"
#include "rt_dtype.h"

#define IR_MAX_RANK RT_MAX_RANK
#define IR_MAX_TERMS 4   /* terms in a symbolic dim polynomial */
#define IR_MAX_FACTORS 3 /* symbols multiplied in one term */
#define IR_MAX_SYMS 65535 /* run-time dims per graph (IrTerm.sym is 16 bits): a located error */
#define IR_MAX_TILE 4
#define IR_MASK_NONE INT64_MIN

/* ---- symbolic dimensions ---------------------------------------------- */

/* coef * sym[0] * ... * sym[nsym-1]; sym sorted ascending. */
typedef struct {
  int64_t coef;
  uint8_t nsym;
  uint16_t sym[IR_MAX_FACTORS];
} IrTerm;

/* A canonical polynomial: terms sorted (constant term first, then by
 * symbol list), no zero coefficients, no repeated monomials.  The zero
 * polynomial has nterm == 0.  Two dims are equal iff their bytes agree
 * (ir_dim_eq). */
typedef struct {
  uint8_t nterm;
  IrTerm t[IR_MAX_TERMS];
} IrDim;

typedef enum { IR_DIM_OK = 0, IR_DIM_TOO_COMPLEX, IR_DIM_INEXACT, IR_DIM_DIV_ZERO } IrDimStatus;

IrDim ir_dim_const(int64_t c);
IrDim ir_dim_sym(int sym);
IrDimStatus ir_dim_add(IrDim a, IrDim b, IrDim *out);
IrDimStatus ir_dim_sub(IrDim a, IrDim b, IrDim *out);
IrDimStatus ir_dim_mul(IrDim a, IrDim b, IrDim *out);
/* Exact division: succeeds only if b divides a as a polynomial (a constant
 * divisor must divide every coefficient; a monomial divisor every term). */
IrDimStatus ir_dim_div(IrDim a, IrDim b, IrDim *out);
bool ir_dim_eq(IrDim a, IrDim b);
/* True (and *v set) if the dim is a constant. */
bool ir_dim_is_const(IrDim a, int64_t *v);
/* True (and *sym set) if the dim is exactly one symbol. */
bool ir_dim_is_sym(IrDim a, int *sym);
int64_t ir_dim_eval(IrDim a, const int64_t *symvals);

/* ---- types --------------------------------------------------------------- */

typedef struct {
  rt_dtype dt;
  uint8_t rank;
  IrDim dim[IR_MAX_RANK];
} IrType;

bool ir_type_eq(const IrType *a, const IrType *b);
/* NULL if the backends can hold a value of type t, else why not (for a
 * message "... has <why>"): constant axes whose bytes overflow a 64-bit
 * size; with `boundary` (an input, output or weight), also an axis of
 * constant size 0: values that cross the API have every dim >= 1 (inside
 * a graph an empty extent, a slice of length 0, is fine; see
 * docs/architecture.md, Decisions). */
const char *ir_type_size_problem(const IrType *t, bool boundary);
bool ir_shape_eq(const IrType *a, const IrType *b);

/* ---- nodes ------------------------------------------------------------- */

typedef struct {
  const char *str;  /* A_STR */
  int index;        /* A_INDEX */
  double value;     /* A_VALUE */
  int axis;         /* A_AXIS (non-negative) */
  int nlist;        /* A_AXES, A_PERM */
  int list[IR_MAX_RANK];
  bool keep;        /* A_KEEP */
  IrDim start;      /* A_START */
  double eps;       /* A_EPS */
  double scale;     /* A_SCALE */
  int64_t mlo, mhi; /* A_MASK: key j may be unmasked only if
                       i + mlo + dim <= j <= i + mhi + dim (dim: A_MOFF,
                       the symbolic offset, S - T for bottom-right
                       alignment; zero when absent);
                       IR_MASK_NONE = unbounded on that side */
  IrDim dim;        /* A_DIM (dimval: its dim), A_MOFF (attention: band offset) */
  int kernel[IR_MAX_RANK], nkernel; /* A_KERNEL (pools: [kh, kw]) */
  int stride[IR_MAX_RANK], nstride; /* A_STRIDE ([sh, sw]) */
  int pad[IR_MAX_RANK], npad;       /* A_PAD ([top, left, bottom, right]) */
  int dil[IR_MAX_RANK], ndil;       /* A_DIL (conv: [dh, dw]) */
  int groups;                       /* A_GROUPS (conv) */
  int kvlen;        /* A_KVLEN (attention): 0, or the operand k >= 3 holding the
                       valid key length L (i32: [], or one per batch along its
                       axis 0, every other axis 1: [B], [B,1,1,1]; not read by
                       the body): keys j >= L[b] do not exist (never read),
                       and the band offset is moff + L[b] */
  bool fold;        /* A_FOLD: a sum/mean over the rows of a matmul result,
                       accumulated by the matmul's epilogue as it writes
                       (fold-se); on a pool: its conv2d operand is computed
                       inside the pool's kernel, never written (fuse-pool);
                       on a mul f * s: applied by its conv2d reader as it
                       loads f, never written (fold-se); on a matmul or
                       conv2d: the excitation's first layer, computed with
                       its squeeze inside the kernel of the second layer
                       (fuse-excite); printed only when true */
  bool prep;        /* A_PREP (any op): a value of weights and constants only,
                       computed once per weight load, never per run
                       (hoist-weights); printed only when true */
  int ntile;        /* tile shape chosen by the tile pass (any op), CPU */
  int64_t tile[IR_MAX_TILE];
  int ngtile;       /* the same for the CUDA backend (gtile=[..]), when the
                       targets include cuda */
  int64_t gtile[IR_MAX_TILE];
} IrAttrs;

/* The attribute table (IR_ATTRS in ops.h) as data: printing (print.c),
 * parsing (parse.c) and equality (attrs.c) read it, so they cannot drift. */
typedef enum { IR_AK_STR, IR_AK_INT, IR_AK_F64, IR_AK_LIST, IR_AK_BOOL, IR_AK_DIM, IR_AK_MASK, IR_AK_TILE } IrAttrKind;
typedef enum { IR_AW_OPS, IR_AW_SET, IR_AW_ANY } IrAttrWhen;
typedef struct {
  const char *name;
  unsigned bit;      /* A_... */
  IrAttrKind kind;
  IrAttrWhen when;
  size_t off, off2;  /* offsets in IrAttrs of field and field2 */
} IrAttrInfo;
extern const IrAttrInfo ir_attrinfo[IR_NATTR];
/* May a node of op `op` carry attribute k (an index into ir_attrinfo)? */
bool ir_attr_allowed(int op, int k);
/* Is attribute k printed for a node of op `op` with attributes a? */
bool ir_attr_shown(int op, int k, const IrAttrs *a);
/* Every attribute of the table equal (doubles bit for bit, so NaN == NaN). */
bool ir_attrs_eq(const IrAttrs *a, const IrAttrs *b);
/* A hash of every attribute of the table (equal sets hash alike). */
uint32_t ir_attrs_hash(const IrAttrs *a);

typedef struct {
  uint16_t op;      /* IrOp */
  int nin;
  int *in;          /* operand indices into the same function's nodes */
  IrType type;
  IrAttrs a;
  int body;         /* index into graph->funcs of the body region, or -1 */
  IrLoc loc;        /* where the user wrote it (file may be NULL) */
} IrNode;

typedef struct {
  IrNode *nodes;
  int n, cap;
  int *yields;      /* bodies: the yielded values (one, today) */
  int nyield;
  int owner;        /* bodies: index of the owning func (0), -1 for main */
} IrFunc;

typedef struct {
  const char *name;
  int64_t value;    /* an integer param's value (a real's, truncated) */
  bool is_real;     /* param EPS = 1e-12: a compile-time real, not a size */
  double real;      /* the value as a double (both kinds) */
} IrParamVal;

typedef struct {
  const char *name;
  int node;         /* node in funcs[0] */
  IrLoc loc;
} IrOutput;

/* A derived dim (DESIGN-P2 section 2): the output size of a convolution or
 * pooling window along one axis, floor(num / stride) + 1, where num is
 * the padded input extent minus the window's extent (src + pad - kext), a
 * polynomial over earlier dims.  A num < 0 leaves no output: a run-time
 * ATTNC_ERR_SHAPE (interpreter and runtime word it alike, rt_derive_msg).
 * Printed and parsed as
 *   dim H_1 = (H - 1) floordiv 2 + 1 from "conv2d at m.attn:3:9" kernel 3 pad 2 */
typedef struct {
  IrDim num;
  int64_t stride;
  int64_t kext, pad;  /* the window's extent d(k-1)+1 and the total padding */
  const char *why;    /* "conv2d at m.attn:3:9": the op that made it */
  bool weak;          /* made by a declaration (conv_size in a type): the
                         first op with the same definition takes its why */
} IrDerivedDim;

typedef struct IrGraph {
  IrArena *arena;
  const char *name;
  IrParamVal *params;
  int nparam;
  const char **syms;  /* run-time dims, by symbol id (nsym of them, at most IR_MAX_SYMS) */
  int nsym, capsym;
  IrDerivedDim **derived; /* by symbol id: NULL for a dim bound from the inputs */
  int *symidx;        /* hash index of syms by name (open addressing, -1 empty) */
  int symhcap;
  IrFunc *funcs;
  int nfunc, capfunc;
  IrOutput *outputs;
  int noutput, capoutput;
} IrGraph;

/* ---- construction -------------------------------------------------------- */

IrGraph *ir_graph_new(IrArena *arena, const char *name);
void ir_graph_add_param(IrGraph *g, const char *name, int64_t value);
/* A real param (finite). */
void ir_graph_add_real_param(IrGraph *g, const char *name, double value);
/* Returns the symbol id, adding the dim if it is new (callers check
 * IR_MAX_SYMS first and report it; beyond it is an internal error). */
int ir_graph_add_sym(IrGraph *g, const char *name);
int ir_graph_find_sym(const IrGraph *g, const char *name);
/* The dim floor(num / stride) + 1 (see IrDerivedDim): a constant when num
 * is one (*out; false with *empty set when it leaves no output), else the
 * derived symbol with that definition, made when `make` (named after the
 * first symbol of num) and reused when an equal one exists (why NULL:
 * a weak one, see IrDerivedDim).  False when
 * not made (make false and none exists, or IR_MAX_SYMS reached). */
bool ir_derived_dim(IrGraph *g, IrDim num, int64_t stride, int64_t kext, int64_t pad, const char *why, bool make,
                    IrDim *out, bool *empty);
/* The value of every derived dim (skip: NULL, or those with skip[s] true
 * left alone), in symbol order, from the others in symvals; 0, or -1 with
 * the message (rt_derive_msg) for one leaving no output. */
int ir_derive_dims(const IrGraph *g, const bool *skip, int64_t *symvals, char *err, size_t errlen);
/* The same for name[0..len) (not NUL-terminated); -1 if not declared. */
int ir_graph_find_symn(const IrGraph *g, const char *name, size_t len);
/* New empty function; returns its index (0 for the first). */
int ir_graph_add_func(IrGraph *g, int owner);
/* Append a node; operands are copied. Returns its index. */
int ir_add(IrGraph *g, int func, IrOp op, int nin, const int *in,
           const IrType *type, const IrAttrs *a, IrLoc loc);
void ir_add_output(IrGraph *g, const char *name, int node, IrLoc loc);
void ir_attrs_init(IrAttrs *a);

/* Inputs and weights of the main function, in order (inputs by A_INDEX,
 * weights by first appearance): the whole list, as ids into funcs[0] in
 * an array from the graph's arena (NULL when there are none); the count in
 * *n. */
const int *ir_graph_inputs(const IrGraph *g, int *n);
const int *ir_graph_weights(const IrGraph *g, int *n);
/* States of the main function (instance-owned tensors), by position. */
const int *ir_graph_states(const IrGraph *g, int *n);

/* x rounded to the nearest integer, halves to even (torch.round; C's
 * nearbyint in the default rounding mode, but independent of it); -0, +-inf
 * and NaN stay.  The meaning of the round op (interpreter, constant folding). */
double ir_round_even(double x);

/* Gather errors (interpreter and compiled code word them alike):
 *   "<ids> [0, 3] = 50257 is out of range for <table> (50257 rows)"
 * ir_gather_desc gives <ids> ("input 'input_ids'", or "the ids of gather
 * at FILE:LINE:COL" for computed ids) and <table> ("'weight.key'", or
 * "the table of gather at ...") for gather node id of funcs[0], as strings
 * of the graph's arena (names of any length);
 * ir_index_str writes a position as "[0, 3]". */
void ir_gather_desc(const IrGraph *g, int id, const char **ids, const char **tbl);
void ir_index_str(int rank, const int64_t *at, char *buf, size_t n);

/* ---- shape inference (infer.c) --------------------------------------- */

/* The output size of a window (conv / pool) along one spatial axis: input
 * extent `in`, kernel k, stride s, padding pb + pe, dilation d; through
 * ir_derived_dim (make: add the derived dim if new). */
bool ir_window_dim(IrGraph *g, IrDim in, int64_t k, int64_t s, int64_t pb, int64_t pe, int64_t d, const char *why,
                   bool make, IrDim *out, bool *empty);
/* The window geometry of a CONV-class node x -> its kernel [kh, kw]
 * (conv: from the weight's constant dims; 0 if they are not constant). */
void ir_window_kernel(const IrFunc *f, const IrNode *n, int64_t k[2]);

/* Compute the result type of node `n` (in function f) from its operands and
 * attributes.  For ops whose type is given rather than derived (INPUT,
 * WEIGHT, CONST, IOTA, PARAM, INDEX, DIMVAL, RESHAPE, EXPAND, CAST, FUSED,
 * ATTENTION), the
 * given type in n->type is checked for consistency and copied.  On error
 * writes a message and returns false. */
bool ir_infer(const IrGraph *g, const IrFunc *f, const IrNode *n, IrType *out,
              char *err, size_t errlen);
/* Broadcast two shapes numpy-style; false if incompatible. */
bool ir_broadcast(const IrType *a, const IrType *b, IrType *out);

/* ---- text form, verifier, export ---------------------------------------- */

/* Print a dim / a type (e.g. "f32[B,T,256]") into buf; returns length. */
int ir_dim_str(const IrGraph *g, IrDim d, char *buf, size_t n);
int ir_type_str(const IrGraph *g, const IrType *t, char *buf, size_t n);
/* The shortest decimal that reads back to exactly v ("100", "1e-12", inf,
 * nan), and a param's value as the IR text has it: an integer, or a real
 * always with a '.' or an exponent ("1e-12", "10000.0", "-0.0"). */
int ir_real_str(double v, char *buf, size_t n);
int ir_param_str(const IrParamVal *p, char *buf, size_t n);

/* print.c: the textual IR.  parse.c reads it back exactly. */
void ir_print(const IrGraph *g, FILE *out);
char *ir_print_string(const IrGraph *g);  /* malloc'd */
/* Parse IR text; errors are reported through diag with file:line:col.
 * Returns NULL on error. */
IrGraph *ir_parse(IrArena *arena, IrDiag *diag, const char *file, const char *text);

/* verify.c: structural and type checks.  Returns true if the graph is
 * well formed; otherwise prints internal-error style messages naming the
 * node to `diag` (pass name in `when`) and returns false. */
bool ir_verify(const IrGraph *g, IrDiag *diag, const char *when);

/* dot.c: Graphviz export. */
void ir_dot(const IrGraph *g, FILE *out);

/* cost.c: the static cost model (kernels, matrix-product FLOPs, compulsory
 * bytes) of funcs[0] for given run-time dims; see cost.c for the rules.
 * The kernels are the plan's (codegen: cg_plan_cost). */
typedef struct {
  int kernels;
  int by_class[16];   /* kernels per IrOpClass */
  double flops;       /* matrix products only */
  double bytes;       /* each kernel's operands read once + output written */
} IrCost;
/* computed[i]: node i is computed by a kernel of its own (the plan's). */
void ir_cost(const IrGraph *g, const int64_t *symvals, const bool *computed, IrCost *out);

#endif

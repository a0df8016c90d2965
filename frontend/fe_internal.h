/* fe_internal.h - declarations shared inside the front end.
 *
 * The lowering of an AST to IR is split along its seams:
 *   lower.c     the evaluator (expressions) and the statements, fe_compile
 *   values.c    values, scopes, emitting IR, operators on values, written types
 *   builtins.c  the builtin functions (primitive ops and sugar), one table
 *   keys.c      weight key paths and their {expr} interpolations
 * The state of one lowering is an FeLower; every value is an FeValue. */
#ifndef FE_INTERNAL_H
#define FE_INTERNAL_H
#include "ast.h"
#include "frontend.h"

AstProgram *fe_parse(IrArena *arena, IrDiag *diag, const char *file, const char *text);

/* Nesting of calls, lists, member accesses and blocks inside one another
 * (all together, across inlined functions): beyond it, a located error
 * instead of a deep C stack.  Chains of operators (a + b + ... , -x) do not
 * count: they are evaluated with an explicit stack, at any length. */
#define FE_MAX_NESTING 500
/* Code a loop or a builtin may unroll (loop iterations, chunk/split parts). */
#define FE_MAX_UNROLL 100000

/* ---- values ------------------------------------------------------------ */

typedef enum {
  V_NONE,   /* no value (a call of a function without return) */
  V_POISON, /* an error was already reported */
  V_INT,    /* compile-time integer */
  V_FLOAT,  /* compile-time real */
  V_DIM,    /* symbolic size (run-time dim arithmetic) */
  V_TENSOR, /* IR value */
  V_PREFIX, /* weight key path */
  V_TUPLE,  /* several values (chunk, split, multiple returns) */
  V_LIST,   /* [a, b, ...] literal */
  V_DTYPE,  /* f32, i32, ... */
} VKind;

typedef struct FeValue FeValue;
struct FeValue {
  VKind k;
  int64_t i;     /* INT; DTYPE: rt_dtype */
  double f;      /* FLOAT */
  IrDim d;       /* DIM */
  int node;      /* TENSOR */
  const char *s; /* PREFIX */
  FeValue *elts; /* TUPLE, LIST */
  int n;
  IrLoc loc;     /* where the value was written (for messages) */
};

#define POISON ((FeValue){.k = V_POISON})

typedef enum { B_VAR, B_PARAM, B_DIM, B_INPUT, B_OUTPUT, B_FN, B_WEIGHT, B_LOOP } BindKind;

typedef struct FeBinding {
  const char *name;
  BindKind kind;
  FeValue v;
  bool assigned;       /* outputs */
  bool bad_type;       /* outputs: declared type had errors; accept anything */
  IrType type;         /* outputs: declared type */
  AstStmt *fn;         /* functions */
  IrLoc loc;
  struct FeBinding *next;
} FeBinding;

typedef struct FeScope {
  FeBinding *b;        /* the bindings, newest first */
  struct FeScope *parent;
  bool fn_boundary;    /* lookups stop here and continue in the global scope */
  bool top_if;         /* the block of a compile-time `if` at the top level (inputs may be declared) */
  int n;               /* bindings in b */
  FeBinding **hash;    /* past a few bindings: the newest of each name, by name
                          (open addressing; hcap a power of two, at most half full) */
  int hcap, nhash;
} FeScope;

typedef struct {
  IrArena *arena;
  IrDiag *diag;
  IrGraph *g;
  FeScope *global, *cur;
  int ninputs;
  FeScope weight_keys;  /* weight key -> its WEIGHT node (one node per key) */
  FeScope state_keys;   /* state key -> its STATE node (each declared once) */
  int depth;           /* call depth */
  int nest;            /* nesting depth (FE_MAX_NESTING) */
  bool nest_reported;  /* the nesting error was reported once */
  bool returned;       /* a `return` was executed in the current function */
  FeValue retval;
  bool in_fn;
} FeLower;

/* The arguments of a call, evaluated. */
typedef struct {
  FeValue *pos;
  int npos;
  const char **kwname;
  FeValue *kw;
  IrLoc *kwloc;
  int nkw;
  IrLoc loc;
  const char *name;
} FeCall;

/* values.c: values and messages */
void fe_err(FeLower *L, IrLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *fe_kind_name(VKind k);
static inline FeValue fe_vint(int64_t i, IrLoc loc) { return (FeValue){.k = V_INT, .i = i, .loc = loc}; }
static inline FeValue fe_vfloat(double f, IrLoc loc) { return (FeValue){.k = V_FLOAT, .f = f, .loc = loc}; }
static inline FeValue fe_vtensor(int node, IrLoc loc) { return (FeValue){.k = V_TENSOR, .node = node, .loc = loc}; }
static inline bool fe_is_num(FeValue v) { return v.k == V_INT || v.k == V_FLOAT; }
static inline double fe_num(FeValue v) { return v.k == V_INT ? (double)v.i : v.f; }
static inline IrDim fe_to_dim(FeValue v) { return v.k == V_DIM ? v.d : ir_dim_const(v.i); }
/* A size value: constant dims collapse to V_INT. */
FeValue fe_vdim(IrDim d, IrLoc loc);
/* The type of a tensor value. */
IrType *fe_vtype(FeLower *L, FeValue v);
FeValue fe_tuple(FeLower *L, const FeValue *items, int n, IrLoc loc);
/* A type / dim as text in the arena, for messages. */
char *fe_type_str(FeLower *L, const IrType *t);
char *fe_dim_str(FeLower *L, IrDim d);

/* values.c: scopes */
FeBinding *fe_bind(FeLower *L, FeScope *s, const char *name, BindKind kind, FeValue v, IrLoc loc);
FeBinding *fe_find_in(FeScope *s, const char *name);
/* Enclosing scopes up to the function boundary, then globals. */
FeBinding *fe_lookup(FeLower *L, const char *name);
/* Report an unknown name (calls: a function) with the nearest known one. */
void fe_unknown_name(FeLower *L, IrLoc loc, const char *what, const char *name, bool calls);

/* values.c: emitting IR */
FeValue fe_emit(FeLower *L, IrOp op, const FeValue *ins, int nin, const IrAttrs *a, const IrType *given, IrLoc loc);
FeValue fe_as_tensor(FeLower *L, FeValue v, rt_dtype dt);
bool fe_norm_axis(FeLower *L, int64_t ax, int rank, IrLoc loc, int *out);
FeValue fe_permute(FeLower *L, FeValue x, const int *perm, IrLoc loc);
FeValue fe_transpose(FeLower *L, FeValue x, int i, int j, IrLoc loc);
FeValue fe_reshape(FeLower *L, FeValue x, const IrType *t, IrLoc loc);
FeValue fe_slice(FeLower *L, FeValue x, int axis, IrDim start, IrDim len, IrLoc loc);

/* values.c: operators (op: a parser token: '+', EQ, ANDAND, ...) */
FeValue fe_fold_dims(FeLower *L, int op, FeValue a, FeValue b, IrLoc loc);
FeValue fe_binary(FeLower *L, int op, FeValue a, FeValue b, IrLoc loc);
/* -x and !x */
FeValue fe_unary(FeLower *L, int op, FeValue x, IrLoc loc);
/* A compile-time real through the interpreter's scalar op (so folding and
 * the interpreter agree): op on a (and b). */
double fe_fold_real(IrOp op, double a, double b);

/* values.c: written types */
typedef enum { T_TENSOR, T_PREFIX, T_INT, T_ANY_TENSOR, T_DTYPE_ONLY } FeTypeKind;
bool fe_eval_type(FeLower *L, AstExpr *te, IrType *out, FeTypeKind *kind);
bool fe_check_type(FeLower *L, FeValue v, AstExpr *te, IrLoc loc, const char *what);

/* keys.c: key paths */
const char *fe_expand_key(FeLower *L, const char *text, IrLoc at);
FeValue fe_string_value(FeLower *L, AstExpr *e);

/* builtins.c */
bool fe_is_builtin(const char *name);
/* The i-th builtin's name (NULL past the end), for suggestions. */
const char *fe_builtin_name(int i);
/* Call builtin c->name; false if there is none of that name. */
bool fe_call_builtin(FeLower *L, FeCall *c, FeValue *out);

/* lower.c */
FeValue fe_eval(FeLower *L, AstExpr *e);
/* Enter / leave one level of nesting; false (reported at loc) past
 * FE_MAX_NESTING. */
bool fe_nest_enter(FeLower *L, IrLoc loc);
static inline void fe_nest_leave(FeLower *L) { L->nest--; }
#endif

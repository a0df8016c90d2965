/* ast.h - syntax tree of .attn programs, built by parser.y in the
 * compilation's arena and consumed by lower.c.  See docs/language.md. */
#ifndef FE_AST_H
#define FE_AST_H
#include "ir.h"

typedef enum {
  AST_INT, AST_FLOAT, AST_STR, AST_NAME, AST_BINOP, AST_UNOP, AST_CALL,
  AST_MEMBER, /* base.segment: key paths on prefixes */
  AST_LIST,   /* [a, b, ...] */
  AST_TYPE,   /* dtype[dims] written where a type is expected */
} AstExprKind;

typedef struct AstExpr AstExpr;
typedef struct AstArg AstArg;

struct AstArg {
  const char *name; /* keyword, or NULL for positional */
  AstExpr *value;
  IrLoc loc;
  AstArg *next;
  AstArg *last;      /* the head of a list being built: its last element */
};

struct AstExpr {
  AstExprKind kind;
  IrLoc loc;
  int op;            /* BINOP / UNOP: token code from parser.h */
  int64_t ival;      /* INT */
  double fval;       /* FLOAT */
  const char *str;   /* STR (raw, with {..} interpolations), NAME, CALL name,
                        MEMBER segment, TYPE dtype name */
  AstExpr *lhs, *rhs;/* BINOP; UNOP uses lhs; MEMBER base in lhs */
  AstArg *args;      /* CALL arguments, LIST elements, TYPE dims */
  bool has_dims;     /* TYPE: written with [..] */
};

typedef enum {
  ST_LET, ST_ASSIGN, ST_IF, ST_FOR, ST_RETURN, ST_WEIGHT, ST_STATE, ST_EXPR,
  /* top-level declarations */
  ST_MODEL, ST_PARAM, ST_DIM, ST_INPUT, ST_OUTPUT, ST_FN,
} AstStmtKind;

typedef struct AstStmt AstStmt;
typedef struct AstName AstName;

struct AstName {
  const char *name;
  IrLoc loc;
  AstExpr *type; /* optional annotation (AST_TYPE) */
  AstName *next;
  AstName *last; /* the head of a list being built: its last element */
};

struct AstStmt {
  AstStmtKind kind;
  IrLoc loc;
  AstName *names;    /* LET/ASSIGN targets; PARAM/DIM/INPUT/OUTPUT/WEIGHT name(s);
                        FN parameters */
  const char *name;  /* FN / MODEL name */
  AstExpr *expr;     /* value; IF condition; FOR lower bound; PARAM default;
                        WEIGHT key */
  AstExpr *expr2;    /* FOR upper bound */
  AstArg *exprs;     /* RETURN values */
  AstExpr *rettype;  /* FN: optional return types (AST_LIST of AST_TYPE or a TYPE) */
  AstStmt *body;     /* FN / IF then / FOR body */
  AstStmt *els;      /* IF else */
  IrLoc end;         /* FN: location of the closing brace */
  AstStmt *next;
  AstStmt *last;     /* the head of a list being built: its last element */
};

typedef struct {
  AstStmt *first;
  int errors;
} AstProgram;
#endif

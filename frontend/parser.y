/* parser.y - grammar of the .attn language (docs/language.md).
 *
 * Produces an AstProgram in the arena.  Syntax errors are reported with
 * file:line:col, the source line and a caret, and the parser recovers at
 * the next end of line so several errors are reported in one run. */
%define api.pure full
%locations
%define parse.error custom
%param {void *scanner}
%parse-param {struct FeLexState *st}

%code requires {
#include "ast.h"
struct FeLexState;
}

%code {
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "lexstate.h"
#include "lexer.h"

static void yyerror(YYLTYPE *loc, void *scanner, struct FeLexState *st, const char *msg);
#define L(at) fe_loc(st, &(at))

static AstExpr *mk(struct FeLexState *st, AstExprKind k, IrLoc loc) {
  AstExpr *e = ir_arena_alloc(st->arena, sizeof *e);
  e->kind = k;
  e->loc = loc;
  return e;
}
static AstExpr *binop(struct FeLexState *st, int op, AstExpr *a, AstExpr *b, IrLoc loc) {
  AstExpr *e = mk(st, AST_BINOP, loc);
  e->op = op;
  e->lhs = a;
  e->rhs = b;
  return e;
}
static AstStmt *stmt(struct FeLexState *st, AstStmtKind k, IrLoc loc) {
  AstStmt *s = ir_arena_alloc(st->arena, sizeof *s);
  s->kind = k;
  s->loc = loc;
  return s;
}
static AstArg *arg(struct FeLexState *st, const char *name, AstExpr *v, IrLoc loc) {
  AstArg *a = ir_arena_alloc(st->arena, sizeof *a);
  a->name = name;
  a->value = v;
  a->loc = loc;
  return a;
}
static AstName *name(struct FeLexState *st, const char *n, AstExpr *type, IrLoc loc) {
  AstName *a = ir_arena_alloc(st->arena, sizeof *a);
  a->name = n;
  a->type = type;
  a->loc = loc;
  return a;
}
/* Append to a singly linked list through ->next in O(1): the head keeps
 * its last element in ->last (a head without one is a single element).
 * Generated programs have lists of tens of thousands of lines. */
#define APPEND(T, head, item)                         \
  do {                                                \
    T *h_ = (head), *i_ = (item);                     \
    if (!h_) { (head) = i_; i_->last = i_; break; }   \
    (h_->last ? h_->last : h_)->next = i_;            \
    h_->last = i_;                                    \
  } while (0)
}

%union {
  int64_t ival;
  double fval;
  const char *str;
  AstExpr *expr;
  AstStmt *stmt;
  AstArg *arg;
  AstName *name;
}

%token KW_MODEL "model" KW_PARAM "param" KW_DIM "dim" KW_INPUT "input"
%token KW_OUTPUT "output" KW_WEIGHT "weight" KW_STATE "state" KW_FN "fn" KW_LET "let"
%token KW_IF "if" KW_ELSE "else" KW_FOR "for" KW_IN "in" KW_RETURN "return"
%token NL "end of line"
%token ARROW "->" DOTDOT ".." EQ "==" NE "!=" LE "<=" GE ">="
%token ANDAND "&&" OROR "||"
%token <ival> INT "integer"
%token <fval> FLOAT "number"
%token <str> IDENT "identifier" STRING "string"

%type <stmt> lines stmt block opt_else if_stmt
%type <expr> expr primary type opt_ret call
%type <str> segment
%type <arg> args arglist arg exprs typelist
%type <name> targets target params paramlist param namelist

%left OROR
%left ANDAND
%left EQ NE
%left '<' LE '>' GE
%left '+' '-'
%left '*' '/' '@'
%precedence UNARY

%%

program:
    lines                       { st->prog.first = $1; }
  ;

/* lines: statements separated by ends of line, with error recovery */
lines:
    %empty                      { $$ = NULL; }
  | lines NL                    { $$ = $1; }
  | lines stmt NL               { $$ = $1; APPEND(AstStmt, $$, $2); }
  | lines error NL              { $$ = $1; yyerrok; }
  ;

block:
    '{' lines '}'               { $$ = $2; }
  ;

/* stmt: declaration or statement */
stmt:
    KW_MODEL IDENT              { $$ = stmt(st, ST_MODEL, L(@2)); $$->name = $2; }
  | KW_PARAM IDENT '=' expr     { $$ = stmt(st, ST_PARAM, L(@2)); $$->names = name(st, $2, NULL, L(@2)); $$->expr = $4; }
  | KW_DIM namelist             { $$ = stmt(st, ST_DIM, L(@1)); $$->names = $2; }
  | KW_INPUT IDENT ':' type     { $$ = stmt(st, ST_INPUT, L(@2)); $$->names = name(st, $2, $4, L(@2)); }
  | KW_OUTPUT IDENT ':' type    { $$ = stmt(st, ST_OUTPUT, L(@2)); $$->names = name(st, $2, $4, L(@2)); }
  | KW_WEIGHT IDENT ':' type '=' expr
                                { $$ = stmt(st, ST_WEIGHT, L(@2)); $$->names = name(st, $2, $4, L(@2)); $$->expr = $6; }
  | KW_STATE IDENT ':' type '=' expr
                                { $$ = stmt(st, ST_STATE, L(@2)); $$->names = name(st, $2, $4, L(@2)); $$->expr = $6; }
  | KW_FN IDENT '(' params ')' opt_ret block
                                { $$ = stmt(st, ST_FN, L(@2)); $$->name = $2; $$->names = $4;
                                  $$->rettype = $6; $$->body = $7; $$->end = L(@7); }
  | KW_LET targets '=' expr     { $$ = stmt(st, ST_LET, L(@3)); $$->names = $2; $$->expr = $4; }
  | targets '=' expr            { $$ = stmt(st, ST_ASSIGN, L(@2)); $$->names = $1; $$->expr = $3; }
  | if_stmt                     { $$ = $1; }
  | KW_FOR IDENT KW_IN expr DOTDOT expr block
                                { $$ = stmt(st, ST_FOR, L(@2)); $$->names = name(st, $2, NULL, L(@2));
                                  $$->expr = $4; $$->expr2 = $6; $$->body = $7; }
  | KW_RETURN exprs             { $$ = stmt(st, ST_RETURN, L(@1)); $$->exprs = $2; }
  | call                        { $$ = stmt(st, ST_EXPR, $1->loc); $$->expr = $1; }
  ;

if_stmt:
    KW_IF expr block opt_else   { $$ = stmt(st, ST_IF, L(@1)); $$->expr = $2; $$->body = $3; $$->els = $4; }
  ;

opt_else:
    %empty                      { $$ = NULL; }
  | KW_ELSE block               { $$ = $2; }
  | KW_ELSE if_stmt             { $$ = $2; }
  ;

namelist:
    IDENT                       { $$ = name(st, $1, NULL, L(@1)); }
  | namelist ',' IDENT          { $$ = $1; APPEND(AstName, $$, name(st, $3, NULL, L(@3))); }
  ;

targets:
    target                      { $$ = $1; }
  | targets ',' target          { $$ = $1; APPEND(AstName, $$, $3); }
  ;

target:
    IDENT                       { $$ = name(st, $1, NULL, L(@1)); }
  | IDENT ':' type              { $$ = name(st, $1, $3, L(@1)); }
  ;

params:
    %empty                      { $$ = NULL; }
  | paramlist                   { $$ = $1; }
  ;

paramlist:
    param                       { $$ = $1; }
  | paramlist ',' param         { $$ = $1; APPEND(AstName, $$, $3); }
  ;

param:
    IDENT                       { $$ = name(st, $1, NULL, L(@1)); }
  | IDENT ':' type              { $$ = name(st, $1, $3, L(@1)); }
  ;

opt_ret:
    %empty                      { $$ = NULL; }
  | ARROW type                  { $$ = $2; }
  | ARROW '(' typelist ')'      { $$ = mk(st, AST_LIST, L(@2)); $$->args = $3; }
  ;

typelist:
    type                        { $$ = arg(st, NULL, $1, $1->loc); }
  | typelist ',' type           { $$ = $1; APPEND(AstArg, $$, arg(st, NULL, $3, $3->loc)); }
  ;

/* type: f32[B, T, 3*D], or a bare kind such as prefix / int / f32 */
type:
    IDENT                       { $$ = mk(st, AST_TYPE, L(@1)); $$->str = $1; }
  | IDENT '[' ']'               { $$ = mk(st, AST_TYPE, L(@1)); $$->str = $1; $$->has_dims = true; }
  | IDENT '[' exprs ']'         { $$ = mk(st, AST_TYPE, L(@1)); $$->str = $1; $$->has_dims = true; $$->args = $3; }
  ;

exprs:
    expr                        { $$ = arg(st, NULL, $1, $1->loc); }
  | exprs ',' expr              { $$ = $1; APPEND(AstArg, $$, arg(st, NULL, $3, $3->loc)); }
  ;

expr:
    primary                     { $$ = $1; }
  | expr OROR expr              { $$ = binop(st, OROR, $1, $3, L(@2)); }
  | expr ANDAND expr            { $$ = binop(st, ANDAND, $1, $3, L(@2)); }
  | expr EQ expr                { $$ = binop(st, EQ, $1, $3, L(@2)); }
  | expr NE expr                { $$ = binop(st, NE, $1, $3, L(@2)); }
  | expr '<' expr               { $$ = binop(st, '<', $1, $3, L(@2)); }
  | expr LE expr                { $$ = binop(st, LE, $1, $3, L(@2)); }
  | expr '>' expr               { $$ = binop(st, '>', $1, $3, L(@2)); }
  | expr GE expr                { $$ = binop(st, GE, $1, $3, L(@2)); }
  | expr '+' expr               { $$ = binop(st, '+', $1, $3, L(@2)); }
  | expr '-' expr               { $$ = binop(st, '-', $1, $3, L(@2)); }
  | expr '*' expr               { $$ = binop(st, '*', $1, $3, L(@2)); }
  | expr '/' expr               { $$ = binop(st, '/', $1, $3, L(@2)); }
  | expr '@' expr               { $$ = binop(st, '@', $1, $3, L(@2)); }
  | '-' expr %prec UNARY        { $$ = mk(st, AST_UNOP, L(@1)); $$->op = '-'; $$->lhs = $2; }
  | '!' expr %prec UNARY        { $$ = mk(st, AST_UNOP, L(@1)); $$->op = '!'; $$->lhs = $2; }
  ;

primary:
    INT                         { $$ = mk(st, AST_INT, L(@1)); $$->ival = $1; }
  | FLOAT                       { $$ = mk(st, AST_FLOAT, L(@1)); $$->fval = $1; }
  | STRING                      { $$ = mk(st, AST_STR, L(@1)); $$->str = $1; }
  | IDENT                       { $$ = mk(st, AST_NAME, L(@1)); $$->str = $1; }
  | call                        { $$ = $1; }
  | '(' expr ')'                { $$ = $2; }
  | '[' ']'                     { $$ = mk(st, AST_LIST, L(@1)); }
  | '[' exprs ']'               { $$ = mk(st, AST_LIST, L(@1)); $$->args = $2; }
  | primary '.' segment         { $$ = mk(st, AST_MEMBER, L(@3)); $$->lhs = $1; $$->str = $3; }
  ;

/* segment: one dot-separated part of a weight key; keywords are allowed,
   since state_dict keys such as norm1.weight use them */
segment:
    IDENT                       { $$ = $1; }
  | INT                         { $$ = ir_arena_printf(st->arena, "%lld", (long long)$1); }
  | STRING                      { $$ = $1; }
  | KW_WEIGHT                   { $$ = "weight"; }
  | KW_STATE                    { $$ = "state"; }
  | KW_INPUT                    { $$ = "input"; }
  | KW_OUTPUT                   { $$ = "output"; }
  | KW_PARAM                    { $$ = "param"; }
  | KW_MODEL                    { $$ = "model"; }
  | KW_DIM                      { $$ = "dim"; }
  | KW_IN                       { $$ = "in"; }
  | KW_FN                       { $$ = "fn"; }
  | KW_LET                      { $$ = "let"; }
  | KW_IF                       { $$ = "if"; }
  | KW_ELSE                     { $$ = "else"; }
  | KW_FOR                      { $$ = "for"; }
  | KW_RETURN                   { $$ = "return"; }
  ;

call:
    IDENT '(' args ')'          { $$ = mk(st, AST_CALL, L(@1)); $$->str = $1; $$->args = $3; }
  ;

args:
    %empty                      { $$ = NULL; }
  | arglist                     { $$ = $1; }
  | arglist ','                 { $$ = $1; }
  ;

arglist:
    arg                         { $$ = $1; }
  | arglist ',' arg             { $$ = $1; APPEND(AstArg, $$, $3); }
  ;

arg:
    expr                        { $$ = arg(st, NULL, $1, $1->loc); }
  | IDENT '=' expr              { $$ = arg(st, $1, $3, L(@1)); }
  | KW_DIM '=' expr             { $$ = arg(st, "dim", $3, L(@1)); }
  ;

%%

/* Syntax errors: "unexpected X, expecting Y or Z" at the offending token. */
static int yyreport_syntax_error(const yypcontext_t *ctx, void *scanner, struct FeLexState *st) {
  yysymbol_kind_t expected[6];
  int n = yypcontext_expected_tokens(ctx, expected, 6);
  yysymbol_kind_t tok = yypcontext_token(ctx);
  char msg[512];
  int len = snprintf(msg, sizeof msg, "syntax error: unexpected %s", yysymbol_name(tok));
  if (n > 0 && n <= 5)
    for (int i = 0; i < n && len < (int)sizeof msg; i++)
      len += snprintf(msg + len, sizeof msg - (size_t)len, "%s%s", i ? " or " : ", expecting ",
                      yysymbol_name(expected[i]));
  ir_diag_error(st->diag, fe_loc(st, yypcontext_location(ctx)), "%s", msg);
  if (st->depth > 0)
    ir_diag_note(st->diag, st->open_loc, "the '%c' opened here is not closed", st->open_char);
  return 0;
}

static void yyerror(YYLTYPE *loc, void *scanner, struct FeLexState *st, const char *msg) {
  if (strcmp(msg, "memory exhausted") == 0) /* the parser's stack, YYMAXDEPTH */
    ir_diag_error(st->diag, fe_loc(st, loc), "nested too deeply for the parser: more than %d open parentheses, "
                  "operators and blocks (YYMAXDEPTH)", YYMAXDEPTH);
  else
    ir_diag_error(st->diag, fe_loc(st, loc), "%s", msg);
}

/* parse.c - reads the textual IR (the format print.c writes).
 *
 * One statement per line; '#' starts a comment that runs to the end of the
 * line.  The grammar, one rule per parse function below:
 *
 *   file   := NL* 'graph' name '{' NL block NL* EOF
 *   block  := { stmt | NL } '}'
 *   stmt   := 'param' name '=' int NL          (graph level)
 *           | 'dim' IDENT NL                    (graph level)
 *           | 'output' name '=' ID NL           (graph level)
 *           | 'yield' ID { ',' ID } NL          (bodies)
 *           | node
 *   node   := ID '=' IDENT [ '(' [ ID { ',' ID } ] ')' ] [ '{' attrs '}' ]
 *             ':' type [ '{' NL block ] NL
 *   attrs  := [ IDENT '=' value { ',' IDENT '=' value } ]
 *   type   := IDENT '[' [ dim { ',' dim } ] ']'
 *   dim    := term { ('+' | '-') term }
 *   term   := unary { ('*' | '/') unary }
 *   unary  := '-' unary | INT | IDENT | '(' dim ')'
 *   name   := IDENT | STRING
 *
 * ID is '%' followed by letters, digits and '_' ("%0", "%q_proj"); ids are
 * local to their function and must be defined before use.
 *
 * Requires: NUL-terminated text (a NUL byte ends the input).
 * Produces: a graph whose nodes carry the location of their %id, each typed
 * with ir_infer and checked against the written type; or NULL, after every
 * error found was reported through the diag.  After an error the parser
 * skips to the next line (past a whole body if the line opened one), and
 * uses of a value whose definition failed are not reported again.  Bounded
 * everywhere: error count, dim nesting, body nesting, integer ranges. */
#include "ir.h"
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRORS 20     /* stop after this many errors */
#define MAX_DIM_DEPTH 32  /* nesting of '(' and unary '-' in one dim */
#define MAX_BODY_DEPTH 4  /* bodies inside bodies */
#define POISONED (-1)     /* a name whose definition failed */

typedef enum { T_EOF, T_NL, T_IDENT, T_NUM, T_ID, T_STR, T_PUNCT, T_ERR } TokKind;

typedef struct {
  TokKind kind;
  const char *s;   /* first byte (for T_ID the '%', for T_STR the quote) */
  int len;
  int line, col;
  const char *bol; /* first byte of the token's line */
} Tok;

/* The names of one function's nodes: open addressing on (text, len), the
 * text pointing into the source. */
typedef struct {
  const char *s; /* NULL: empty slot */
  int len;
  int node;      /* node index, or POISONED */
  IrLoc loc;
} Name;

typedef struct {
  Name *v;
  int cap, n;
} Scope;

typedef struct {
  IrDiag *diag;
  const char *file;
  const char *pos, *bol; /* lexer: next byte, first byte of its line */
  int line;
  const char *prev_end;  /* end of the token before the current one */
  bool quiet;            /* skipping: lexer errors are not reported */
  Tok tok;               /* current token */
  Tok stmt;              /* where to resume skipping after an error */
  int err0;              /* diag error count on entry */
  bool stop;             /* too many errors, or end of file in a block */
  IrGraph *g;
  char desc[64];         /* tok_desc's buffer */
} Parser;

/* ---- errors ------------------------------------------------------------ */

static IrLoc tok_loc(const Parser *p, const Tok *t) {
  return (IrLoc){p->file, t->line, t->col, t->len > 0 ? t->len : 1};
}

/* Report at token t; silent for T_ERR tokens, already reported. */
__attribute__((format(printf, 3, 4))) static void error_at(Parser *p, const Tok *t,
                                                           const char *fmt, ...) {
  if (t->kind == T_ERR) return;
  va_list ap;
  va_start(ap, fmt);
  ir_diag_verror(p->diag, tok_loc(p, t), fmt, ap);
  va_end(ap);
}

/* A short description of a token for "found ..." messages. */
static const char *tok_desc(Parser *p, const Tok *t) {
  switch (t->kind) {
  case T_EOF: return "end of file";
  case T_NL: return "end of line";
  case T_STR: return "a string";
  default: break;
  }
  int n = t->len < 24 ? t->len : 24;
  snprintf(p->desc, sizeof p->desc, "'%.*s%s'", n, t->s, t->len > n ? "..." : "");
  return p->desc;
}

/* "Did you mean" search: the closest candidate within a distance that
 * grows with the length of the name. */
typedef struct {
  char name[65];
  char best[65];
  int dist;
} Suggest;

static void suggest_init(Suggest *sg, const char *s, int len) {
  sg->best[0] = 0;
  if (len > 64) len = 0; /* too long to compare: no suggestion */
  memcpy(sg->name, s, (size_t)len);
  sg->name[len] = 0;
  sg->dist = len <= 2 ? 1 : len <= 4 ? 2 : 3; /* accept distance < dist; none for short names */
}

static void suggest_try(Suggest *sg, const char *s, int len) {
  char cand[65];
  if (!sg->name[0] || len > 64) return;
  memcpy(cand, s, (size_t)len);
  cand[len] = 0;
  int d = ir_edit_distance(sg->name, cand);
  if (d < sg->dist) {
    sg->dist = d;
    memcpy(sg->best, cand, (size_t)len + 1);
  }
}

/* ---- lexer ------------------------------------------------------------- */

static bool is_alpha(int c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_alnum(int c) { return is_alpha(c) || is_digit(c); }

/* Read the next token into p->tok. */
static void lex(Parser *p) {
  const char *s = p->pos;
  p->prev_end = p->tok.s ? p->tok.s + p->tok.len : s;
  for (;;) {
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    if (*s != '#') break;
    while (*s && *s != '\n') s++;
  }
  Tok t = {T_PUNCT, s, 1, p->line, (int)(s - p->bol) + 1, p->bol};
  unsigned char c = (unsigned char)*s;
  const char *msg = NULL;
  if (c == 0) {
    t.kind = T_EOF;
  } else if (c == '\n') {
    t.kind = T_NL;
    s++;
    p->line++;
    p->bol = s;
  } else if (is_alpha(c)) {
    t.kind = T_IDENT;
    while (is_alnum(*s)) s++;
  } else if (is_digit(c)) {
    t.kind = T_NUM;
    while (is_digit(*s)) s++;
    if (*s == '.')
      for (s++; is_digit(*s); s++) {}
    if ((*s == 'e' || *s == 'E') &&
        (is_digit(s[1]) || ((s[1] == '+' || s[1] == '-') && is_digit(s[2]))))
      for (s += 2; is_digit(*s); s++) {}
  } else if (c == '%') {
    t.kind = T_ID;
    for (s++; is_alnum(*s); s++) {}
    if (s == t.s + 1) {
      t.kind = T_ERR;
      msg = "expected a name after '%'";
    }
  } else if (c == '"') {
    for (s++; *s && *s != '"' && *s != '\n';) s += (*s == '\\' && s[1] && s[1] != '\n') ? 2 : 1;
    if (*s == '"') {
      t.kind = T_STR;
      s++;
    } else {
      t.kind = T_ERR;
      msg = "unterminated string";
    }
  } else if (strchr("{}()[],=:+-*/", c)) {
    s++;
  } else {
    t.kind = T_ERR;
    s++;
  }
  if (t.kind != T_NL && t.kind != T_EOF) t.len = (int)(s - t.s);
  p->pos = s;
  p->tok = t;
  if (t.kind == T_ERR && !p->quiet) {
    IrLoc loc = tok_loc(p, &t);
    loc.len = 1;
    if (msg)
      ir_diag_error(p->diag, loc, "%s", msg);
    else if (c > ' ' && c < 0x7f)
      ir_diag_error(p->diag, loc, "unexpected character '%c'", c);
    else
      ir_diag_error(p->diag, loc, "unexpected byte 0x%02x", c);
  }
}

/* Skip the statement that starts at `from`: re-read it quietly to the end
 * of its line and, while the lines read so far leave braces open (a body),
 * on to the end of the line that closes them.  A line with a lexical error
 * (say an unterminated string, which may hide a '}') can close a body with a
 * leading '}' but never opens one. */
static void skip_statement(Parser *p, const Tok *from) {
  p->pos = from->s;
  p->line = from->line;
  p->bol = from->bol;
  p->tok.s = NULL;
  p->quiet = true;
  int depth = 0, net = 0;
  bool first = true, bad = false, closes = false;
  for (;;) {
    lex(p);
    if (p->tok.kind == T_EOF) break;
    if (p->tok.kind == T_NL) {
      depth += bad ? -closes : net;
      if (depth <= 0) break;
      net = 0;
      first = true;
      bad = closes = false;
      continue;
    }
    bool punct = p->tok.kind == T_PUNCT;
    bad |= p->tok.kind == T_ERR;
    net += punct && p->tok.s[0] == '{';
    if (punct && p->tok.s[0] == '}') {
      net--;
      closes |= first;
    }
    first = false;
  }
  p->quiet = false;
  if (p->tok.kind == T_NL) lex(p);
}

/* ---- token helpers ------------------------------------------------------ */

static bool at(const Parser *p, char c) { return p->tok.kind == T_PUNCT && p->tok.s[0] == c; }

static bool tok_is(const Tok *t, const char *word) {
  return t->kind == T_IDENT && (size_t)t->len == strlen(word) && memcmp(t->s, word, (size_t)t->len) == 0;
}

static bool accept(Parser *p, char c) {
  if (!at(p, c)) return false;
  lex(p);
  return true;
}

/* Consume punctuation c or report "expected WHAT, found ...". */
static bool expect(Parser *p, char c, const char *what) {
  if (accept(p, c)) return true;
  error_at(p, &p->tok, "expected %s, found %s", what, tok_desc(p, &p->tok));
  return false;
}

static bool at_eol(const Parser *p) { return p->tok.kind == T_NL || p->tok.kind == T_EOF; }

static bool expect_eol(Parser *p, const char *after) {
  if (p->tok.kind == T_NL) {
    lex(p);
    return true;
  }
  if (p->tok.kind == T_EOF) return true;
  error_at(p, &p->tok, "expected end of line after %s, found %s", after, tok_desc(p, &p->tok));
  return false;
}

/* ---- literals ----------------------------------------------------------- */

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The value of the current T_STR token (escapes \" \\ \n \t \xHH), in the
 * arena; consumes it. */
static bool parse_str(Parser *p, const char **out) {
  Tok t = p->tok;
  if (t.kind != T_STR) {
    error_at(p, &t, "expected a string, found %s", tok_desc(p, &t));
    return false;
  }
  char *buf = ir_arena_alloc(p->g->arena, (size_t)t.len);
  int n = 0;
  const char *end = t.s + t.len - 1; /* the closing quote */
  for (const char *s = t.s + 1; s < end; s++) {
    if (*s != '\\') {
      buf[n++] = *s;
      continue;
    }
    Tok e = t;
    e.col += (int)(s - t.s);
    e.len = 2;
    s++;
    if (*s == '"' || *s == '\\') {
      buf[n++] = *s;
    } else if (*s == 'n') {
      buf[n++] = '\n';
    } else if (*s == 't') {
      buf[n++] = '\t';
    } else if (*s == 'x' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
      int v = hexval(s[1]) * 16 + hexval(s[2]);
      e.len = 4;
      if (v == 0) {
        error_at(p, &e, "'\\x00' is not allowed in a string");
        return false;
      }
      buf[n++] = (char)v;
      s += 2;
    } else {
      error_at(p, &e, "unknown escape sequence in string (use \\\" \\\\ \\n \\t or \\xHH)");
      return false;
    }
  }
  buf[n] = 0;
  *out = buf;
  lex(p);
  return true;
}

/* name := IDENT | STRING; consumes it. */
static bool parse_name(Parser *p, const char **out, const char *what) {
  if (p->tok.kind == T_STR) return parse_str(p, out);
  if (p->tok.kind != T_IDENT) {
    error_at(p, &p->tok, "expected %s, found %s", what, tok_desc(p, &p->tok));
    return false;
  }
  *out = ir_arena_strndup(p->g->arena, p->tok.s, (size_t)p->tok.len);
  lex(p);
  return true;
}

/* The value of an unsigned integer token (not consumed). */
static bool tok_int(Parser *p, const Tok *t, int64_t *v) {
  if (t->kind != T_NUM) {
    error_at(p, t, "expected an integer, found %s", tok_desc(p, t));
    return false;
  }
  int64_t x = 0;
  for (int i = 0; i < t->len; i++) {
    if (!is_digit(t->s[i])) {
      error_at(p, t, "expected an integer, found %s", tok_desc(p, t));
      return false;
    }
    int d = t->s[i] - '0';
    if (x > (INT64_MAX - d) / 10) {
      error_at(p, t, "integer %s is too large", tok_desc(p, t));
      return false;
    }
    x = x * 10 + d;
  }
  *v = x;
  return true;
}

/* ['-'] INT as int64; consumes it. */
static bool parse_i64(Parser *p, int64_t *v) {
  bool neg = accept(p, '-');
  if (!tok_int(p, &p->tok, v)) return false;
  if (neg) *v = -*v;
  lex(p);
  return true;
}

/* ['-'] INT as int; consumes it. */
static bool parse_int(Parser *p, int *v) {
  Tok t = p->tok;
  int64_t x;
  if (!parse_i64(p, &x)) return false;
  if (x < INT_MIN || x > INT_MAX) {
    error_at(p, &t, "integer out of range");
    return false;
  }
  *v = (int)x;
  return true;
}

/* The value of a number token (not consumed); finite. */
static bool tok_real(Parser *p, const Tok *t, double *v) {
  char buf[64];
  if (t->len >= (int)sizeof buf) {
    error_at(p, t, "number too long");
    return false;
  }
  memcpy(buf, t->s, (size_t)t->len);
  buf[t->len] = 0;
  *v = strtod(buf, NULL);
  if (isinf(*v)) {
    error_at(p, t, "number %s is out of range", tok_desc(p, t));
    return false;
  }
  return true;
}

/* ['-' | '+'] (NUM | 'inf' | 'nan'); consumes it. */
static bool parse_f64(Parser *p, double *v) {
  bool neg = accept(p, '-');
  if (!neg) accept(p, '+');
  Tok t = p->tok;
  double x;
  if (tok_is(&t, "inf")) {
    x = INFINITY;
  } else if (tok_is(&t, "nan")) {
    x = NAN;
  } else if (t.kind == T_NUM) {
    if (!tok_real(p, &t, &x)) return false;
  } else {
    error_at(p, &t, "expected a number, found %s", tok_desc(p, &t));
    return false;
  }
  lex(p);
  *v = neg ? -x : x;
  return true;
}

/* '[' [ int { ',' int } ] ']' with at most max entries; consumes it. */
static bool parse_list(Parser *p, int64_t *v, int *n, int max, bool is_int) {
  *n = 0;
  if (!expect(p, '[', "'['")) return false;
  if (accept(p, ']')) return true;
  for (;;) {
    Tok t = p->tok;
    if (*n == max) {
      error_at(p, &t, "too many entries (at most %d)", max);
      return false;
    }
    if (!parse_i64(p, &v[*n])) return false;
    if (is_int && (v[*n] < INT_MIN || v[*n] > INT_MAX)) {
      error_at(p, &t, "integer out of range");
      return false;
    }
    (*n)++;
    if (accept(p, ']')) return true;
    if (!expect(p, ',', "',' or ']' in the list")) return false;
  }
}

/* ---- dims --------------------------------------------------------------- */

/* Check the result of dim arithmetic done at operator token op. */
static bool dim_result(Parser *p, const Tok *op, IrDimStatus s, const IrDim *d) {
  if (s == IR_DIM_OK)
    for (int i = 0; i < d->nterm; i++)
      if (d->t[i].coef == INT64_MIN) s = IR_DIM_TOO_COMPLEX;
  switch (s) {
  case IR_DIM_OK: return true;
  case IR_DIM_TOO_COMPLEX:
    error_at(p, op, "dimension too complex (at most %d terms of at most %d dims each, "
                    "64-bit coefficients)", IR_MAX_TERMS, IR_MAX_FACTORS);
    return false;
  case IR_DIM_INEXACT: error_at(p, op, "division is not exact"); return false;
  case IR_DIM_DIV_ZERO: error_at(p, op, "division by zero"); return false;
  }
  return false;
}

/* A declared dim's symbol id, or an error suggesting one. */
static int lookup_dim(Parser *p, const Tok *t) {
  const IrGraph *g = p->g;
  int sym = ir_graph_find_symn(g, t->s, (size_t)t->len);
  if (sym >= 0) return sym;
  for (int i = 0; i < g->nparam; i++)
    if (strlen(g->params[i].name) == (size_t)t->len &&
        memcmp(g->params[i].name, t->s, (size_t)t->len) == 0) {
      if (g->params[i].is_real)
        error_at(p, t, "'%.*s' is a real param, not a dim", t->len, t->s);
      else
        error_at(p, t, "'%.*s' is a param, not a dim; write its value %lld", t->len, t->s,
                 (long long)g->params[i].value);
      return -1;
    }
  Suggest sg;
  suggest_init(&sg, t->s, t->len);
  for (int i = 0; i < g->nsym; i++) suggest_try(&sg, g->syms[i], (int)strlen(g->syms[i]));
  if (sg.best[0])
    error_at(p, t, "unknown dim '%.*s'; did you mean '%s'?", t->len, t->s, sg.best);
  else
    error_at(p, t, "unknown dim '%.*s'; declare it with `dim %.*s`", t->len, t->s, t->len, t->s);
  return -1;
}

static bool parse_dim(Parser *p, IrDim *d, int depth);

/* unary := '-' unary | INT | IDENT | '(' dim ')' */
static bool parse_dim_unary(Parser *p, IrDim *d, int depth) {
  Tok t = p->tok;
  if (depth > MAX_DIM_DEPTH) {
    error_at(p, &t, "dimension expression nested too deeply");
    return false;
  }
  if (accept(p, '-')) {
    IrDim x;
    if (!parse_dim_unary(p, &x, depth + 1)) return false;
    return dim_result(p, &t, ir_dim_sub(ir_dim_const(0), x, d), d);
  }
  if (t.kind == T_NUM) {
    int64_t v;
    if (!tok_int(p, &t, &v)) return false;
    lex(p);
    *d = ir_dim_const(v);
    return true;
  }
  if (t.kind == T_IDENT) {
    int sym = lookup_dim(p, &t);
    if (sym < 0) return false;
    lex(p);
    *d = ir_dim_sym(sym);
    return true;
  }
  if (accept(p, '(')) return parse_dim(p, d, depth + 1) && expect(p, ')', "')'");
  error_at(p, &t, "expected a dimension (an integer, a dim name or '('), found %s", tok_desc(p, &t));
  return false;
}

/* term := unary { ('*' | '/') unary } */
static bool parse_dim_term(Parser *p, IrDim *d, int depth) {
  if (!parse_dim_unary(p, d, depth)) return false;
  while (at(p, '*') || at(p, '/')) {
    Tok op = p->tok;
    IrDim r, out;
    lex(p);
    if (!parse_dim_unary(p, &r, depth)) return false;
    IrDimStatus s = op.s[0] == '*' ? ir_dim_mul(*d, r, &out) : ir_dim_div(*d, r, &out);
    if (!dim_result(p, &op, s, &out)) return false;
    *d = out;
  }
  return true;
}

/* dim := term { ('+' | '-') term } */
static bool parse_dim(Parser *p, IrDim *d, int depth) {
  if (!parse_dim_term(p, d, depth)) return false;
  while (at(p, '+') || at(p, '-')) {
    Tok op = p->tok;
    IrDim r, out;
    lex(p);
    if (!parse_dim_term(p, &r, depth)) return false;
    IrDimStatus s = op.s[0] == '+' ? ir_dim_add(*d, r, &out) : ir_dim_sub(*d, r, &out);
    if (!dim_result(p, &op, s, &out)) return false;
    *d = out;
  }
  return true;
}

/* type := IDENT '[' [ dim { ',' dim } ] ']'
 * On success *span covers the whole type (for the caret). */
static bool parse_type(Parser *p, IrType *t, Tok *span) {
  memset(t, 0, sizeof *t);
  Tok dt = p->tok;
  int k = -1;
  if (dt.kind != T_IDENT) {
    error_at(p, &dt, "expected a type such as f32[B,T], found %s", tok_desc(p, &dt));
    return false;
  }
  if (dt.len < 8) {
    char name[8];
    memcpy(name, dt.s, (size_t)dt.len);
    name[dt.len] = 0;
    k = rt_dtype_from_name(name);
  }
  if (k < 0) {
    Suggest sg;
    suggest_init(&sg, dt.s, dt.len);
    for (int i = 0; i < RT_NDTYPE; i++) suggest_try(&sg, rt_dtype_name(i), (int)strlen(rt_dtype_name(i)));
    error_at(p, &dt, "unknown dtype '%.*s'%s%s%s", dt.len, dt.s, sg.best[0] ? "; did you mean '" : "",
             sg.best, sg.best[0] ? "'?" : "");
    return false;
  }
  t->dt = (rt_dtype)k;
  lex(p);
  if (!expect(p, '[', "'[' after the dtype")) return false;
  while (!accept(p, ']')) {
    Tok d0 = p->tok;
    IrDim d;
    int64_t c;
    if (t->rank && !expect(p, ',', "',' or ']' in the shape")) return false;
    d0 = p->tok;
    if (t->rank == IR_MAX_RANK) {
      error_at(p, &d0, "too many dimensions (at most %d)", IR_MAX_RANK);
      return false;
    }
    if (!parse_dim(p, &d, 0)) return false;
    if (ir_dim_is_const(d, &c) && c < 0) {
      error_at(p, &d0, "negative dimension %lld", (long long)c);
      return false;
    }
    t->dim[t->rank++] = d;
  }
  *span = dt;
  span->len = (int)(p->prev_end - dt.s);
  return true;
}

/* ---- attributes --------------------------------------------------------- */

/* One bound of mask=[LO,HI]: an integer or 'none'. */
static bool parse_mask_bound(Parser *p, int64_t *v) {
  if (tok_is(&p->tok, "none")) {
    *v = IR_MASK_NONE;
    lex(p);
    return true;
  }
  return parse_i64(p, v);
}

/* Field `off` of a as type T. */
#define FIELD(T, a, off) (*(T *)((char *)(a) + (off)))

/* The value of attribute k (of ir_attrinfo), by its kind, stored into a. */
static bool parse_attr_value(Parser *p, int k, IrAttrs *a) {
  const IrAttrInfo *ai = &ir_attrinfo[k];
  size_t o = ai->off, o2 = ai->off2;
  int64_t v[IR_MAX_RANK];
  switch (ai->kind) {
  case IR_AK_STR: return parse_str(p, (const char **)((char *)a + o));
  case IR_AK_INT: return parse_int(p, &FIELD(int, a, o));
  case IR_AK_F64: return parse_f64(p, &FIELD(double, a, o));
  case IR_AK_LIST:
    if (!parse_list(p, v, &FIELD(int, a, o2), IR_MAX_RANK, true)) return false;
    for (int i = 0; i < FIELD(int, a, o2); i++) (&FIELD(int, a, o))[i] = (int)v[i];
    return true;
  case IR_AK_BOOL:
    if (!tok_is(&p->tok, "true") && !tok_is(&p->tok, "false")) {
      error_at(p, &p->tok, "expected true or false, found %s", tok_desc(p, &p->tok));
      return false;
    }
    FIELD(bool, a, o) = tok_is(&p->tok, "true");
    lex(p);
    return true;
  case IR_AK_DIM: return parse_dim(p, &FIELD(IrDim, a, o), 0);
  case IR_AK_MASK:
    return expect(p, '[', "'['") && parse_mask_bound(p, &FIELD(int64_t, a, o)) && expect(p, ',', "','") &&
           parse_mask_bound(p, &FIELD(int64_t, a, o2)) && expect(p, ']', "']'");
  case IR_AK_TILE: return parse_list(p, &FIELD(int64_t, a, o), &FIELD(int, a, o2), IR_MAX_TILE, false);
  }
  return false;
}

/* attrs := [ IDENT '=' value { ',' IDENT '=' value } ] '}'   ('{' read) */
static bool parse_attrs(Parser *p, int op, IrAttrs *a) {
  unsigned seen = 0;
  if (accept(p, '}')) return true;
  for (;;) {
    Tok t = p->tok;
    int k = -1;
    if (t.kind != T_IDENT) {
      error_at(p, &t, "expected an attribute name, found %s", tok_desc(p, &t));
      return false;
    }
    for (int i = 0; i < IR_NATTR; i++)
      if (tok_is(&t, ir_attrinfo[i].name)) k = i;
    if (k < 0) {
      Suggest sg;
      suggest_init(&sg, t.s, t.len);
      for (int i = 0; i < IR_NATTR; i++)
        if (ir_attr_allowed(op, i)) suggest_try(&sg, ir_attrinfo[i].name, (int)strlen(ir_attrinfo[i].name));
      error_at(p, &t, "unknown attribute '%.*s'%s%s%s", t.len, t.s, sg.best[0] ? "; did you mean '" : "",
               sg.best, sg.best[0] ? "'?" : "");
      return false;
    }
    if (!ir_attr_allowed(op, k)) {
      char list[256] = "";
      size_t len = 0;
      for (int i = 0; i < IR_NATTR; i++)
        if (ir_attr_allowed(op, i) && len < sizeof list)
          len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", ir_attrinfo[i].name);
      error_at(p, &t, "'%s' does not take attribute '%s'; it takes: %s", ir_opinfo[op].name, ir_attrinfo[k].name,
               list);
      return false;
    }
    if (seen & ir_attrinfo[k].bit) {
      error_at(p, &t, "duplicate attribute '%s'", ir_attrinfo[k].name);
      return false;
    }
    seen |= ir_attrinfo[k].bit;
    lex(p);
    if (!expect(p, '=', "'=' after the attribute name")) return false;
    if (!parse_attr_value(p, k, a)) return false;
    if (accept(p, '}')) return true;
    if (!expect(p, ',', "',' or '}' after the attribute")) return false;
  }
}

/* ---- names -------------------------------------------------------------- */

static uint32_t name_hash(const char *s, int len) {
  uint32_t h = 2166136261u;
  for (int i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

static Name *scope_find(const Scope *sc, const char *s, int len) {
  if (!sc->cap) return NULL;
  for (uint32_t i = name_hash(s, len) & (uint32_t)(sc->cap - 1);; i = (i + 1) & (uint32_t)(sc->cap - 1)) {
    Name *e = &sc->v[i];
    if (!e->s) return NULL;
    if (e->len == len && memcmp(e->s, s, (size_t)len) == 0) return e;
  }
}

/* Define the name of id token t (without its '%'). */
static void scope_put(Parser *p, Scope *sc, const Tok *t, int node) {
  if (2 * (sc->n + 1) > sc->cap) {
    Scope big = {calloc((size_t)(sc->cap ? 2 * sc->cap : 64), sizeof(Name)), sc->cap ? 2 * sc->cap : 64, 0};
    if (!big.v) ir_bug("out of memory");
    for (int i = 0; i < sc->cap; i++)
      if (sc->v[i].s) {
        Name *e = &big.v[name_hash(sc->v[i].s, sc->v[i].len) & (uint32_t)(big.cap - 1)];
        while (e->s) e = e + 1 < big.v + big.cap ? e + 1 : big.v;
        *e = sc->v[i];
      }
    big.n = sc->n;
    free(sc->v);
    *sc = big;
  }
  const char *s = t->s + 1;
  int len = t->len - 1;
  Name *e = &sc->v[name_hash(s, len) & (uint32_t)(sc->cap - 1)];
  while (e->s) e = e + 1 < sc->v + sc->cap ? e + 1 : sc->v;
  *e = (Name){s, len, node, tok_loc(p, t)};
  sc->n++;
}

/* The node an operand token names; -1 (reported unless poisoned) if none. */
static int resolve(Parser *p, const Scope *sc, const Tok *t) {
  if (t->kind != T_ID) {
    error_at(p, t, "expected a value such as %%0, found %s", tok_desc(p, t));
    return -1;
  }
  const Name *e = scope_find(sc, t->s + 1, t->len - 1);
  if (e) return e->node;
  Suggest sg;
  suggest_init(&sg, t->s + 1, t->len - 1);
  for (int i = 0; i < sc->cap; i++)
    if (sc->v[i].s && sc->v[i].node != POISONED) suggest_try(&sg, sc->v[i].s, sc->v[i].len);
  if (sg.best[0])
    error_at(p, t, "use of undefined value '%.*s'; did you mean '%%%s'?", t->len, t->s, sg.best);
  else
    error_at(p, t, "use of undefined value '%.*s'", t->len, t->s);
  return -1;
}

/* ---- statements ----------------------------------------------------------- */

static void parse_block(Parser *p, int fi, int depth, const Tok *open);

/* Type node idx with ir_infer and compare with the written type. */
static void check_node_type(Parser *p, int fi, int idx, const Tok *opt, const Tok *tyt) {
  const IrFunc *f = &p->g->funcs[fi];
  const IrNode *n = &f->nodes[idx];
  char err[512], s1[512], s2[512];
  IrType t;
  if (!ir_infer(p->g, f, n, &t, err, sizeof err)) {
    error_at(p, opt, "%s", err);
    return;
  }
  if (!ir_type_eq(&t, &n->type)) {
    ir_type_str(p->g, &t, s1, sizeof s1);
    ir_type_str(p->g, &n->type, s2, sizeof s2);
    error_at(p, tyt, "type mismatch: '%s' gives %s, but %s is written", ir_opinfo[n->op].name, s1, s2);
    return;
  }
  const char *why = ir_type_size_problem(&t, n->op == IR_INPUT || n->op == IR_WEIGHT);
  if (why) {
    ir_type_str(p->g, &t, s1, sizeof s1);
    error_at(p, tyt, "%s has %s", s1, why);
  }
}

/* operands := [ '(' [ ID { ',' ID } ] ')' ]    (indices into the arena) */
static bool parse_operands(Parser *p, const Scope *sc, int **in, int *nin) {
  int cap = 0;
  *in = NULL;
  *nin = 0;
  if (!accept(p, '(') || accept(p, ')')) return true;
  for (;;) {
    int k = resolve(p, sc, &p->tok);
    if (k < 0) return false;
    if (*nin == cap) {
      cap = cap ? 2 * cap : 4;
      *in = ir_arena_realloc(p->g->arena, *in, (size_t)*nin * sizeof(int), (size_t)cap * sizeof(int));
    }
    (*in)[(*nin)++] = k;
    lex(p);
    if (accept(p, ')')) return true;
    if (!expect(p, ',', "',' or ')' after the operand")) return false;
  }
}

/* node := ID '=' IDENT [ '(' [ ID { ',' ID } ] ')' ] [ '{' attrs '}' ]
 *         ':' type [ '{' NL block ] NL */
static bool parse_node(Parser *p, int fi, Scope *sc, int depth) {
  Tok idt = p->tok;
  const Name *prev = scope_find(sc, idt.s + 1, idt.len - 1);
  if (prev) {
    error_at(p, &idt, "redefinition of '%.*s'", idt.len, idt.s);
    ir_diag_note(p->diag, prev->loc, "previous definition of '%.*s' is here", idt.len, idt.s);
    return false;
  }
  lex(p);
  if (!expect(p, '=', "'=' after the value name")) return false;

  Tok opt = p->tok;
  int op = -1;
  if (opt.kind == T_IDENT)
    for (int i = 0; i < IR_NOPS && op < 0; i++)
      if (tok_is(&opt, ir_opinfo[i].name)) op = i;
  if (op < 0) {
    Suggest sg;
    suggest_init(&sg, opt.s, opt.len);
    for (int i = 0; i < IR_NOPS; i++) suggest_try(&sg, ir_opinfo[i].name, (int)strlen(ir_opinfo[i].name));
    if (opt.kind != T_IDENT)
      error_at(p, &opt, "expected an op name, found %s", tok_desc(p, &opt));
    else if (sg.best[0])
      error_at(p, &opt, "unknown op '%.*s'; did you mean '%s'?", opt.len, opt.s, sg.best);
    else
      error_at(p, &opt, "unknown op '%.*s'", opt.len, opt.s);
    return false;
  }
  const IrOpInfo *oi = &ir_opinfo[op];
  lex(p);

  int nin, *in;
  if (!parse_operands(p, sc, &in, &nin)) return false;
  if (oi->nin >= 0 && nin != oi->nin) {
    error_at(p, &opt, "'%s' takes %d operand%s, got %d", oi->name, oi->nin, oi->nin == 1 ? "" : "s", nin);
    return false;
  }

  IrAttrs a;
  ir_attrs_init(&a);
  if (accept(p, '{') && !parse_attrs(p, op, &a)) return false;
  if (!expect(p, ':', "':' and the type")) return false;
  IrType type;
  Tok tyt;
  if (!parse_type(p, &type, &tyt)) return false;

  bool has_body = at(p, '{');
  if (has_body && op != IR_FUSED && op != IR_ATTENTION && op != IR_MATMUL && op != IR_CONV2D) {
    error_at(p, &p->tok, "only fused, attention, matmul and conv2d nodes have a body");
    return false;
  }
  if (!has_body && op == IR_FUSED) {
    error_at(p, &opt, "a fused node needs a body: '{', its nodes and a yield, then '}'");
    return false;
  }
  if (!has_body && !at_eol(p)) {
    error_at(p, &p->tok, "expected end of line after the type, found %s", tok_desc(p, &p->tok));
    return false;
  }

  int idx = ir_add(p->g, fi, (IrOp)op, nin, in, &type, &a, tok_loc(p, &idt));
  scope_put(p, sc, &idt, idx);
  check_node_type(p, fi, idx, &opt, &tyt);

  if (has_body) {
    Tok open = p->tok;
    lex(p);
    if (p->tok.kind != T_NL) {
      error_at(p, &p->tok, "expected end of line after '{', found %s", tok_desc(p, &p->tok));
      return false;
    }
    if (depth >= MAX_BODY_DEPTH) {
      error_at(p, &open, "bodies nested too deeply");
      return false;
    }
    lex(p);
    int bi = ir_graph_add_func(p->g, fi);
    p->g->funcs[fi].nodes[idx].body = bi;
    parse_block(p, bi, depth + 1, &open);
    if (p->stop) return true;
    p->stmt = p->tok; /* resume here, not before the body, on error */
    return expect_eol(p, "the body's '}'");
  }
  return expect_eol(p, "the node");
}

/* 'param' name '=' ['-'] (int | real): a real has a '.' or an exponent */
static bool parse_param(Parser *p) {
  const char *name;
  int64_t v;
  double r = 0;
  lex(p);
  Tok nt = p->tok;
  if (!parse_name(p, &name, "a param name")) return false;
  for (int i = 0; i < p->g->nparam; i++)
    if (strcmp(p->g->params[i].name, name) == 0) {
      error_at(p, &nt, "param '%s' is declared twice", name);
      return false;
    }
  if (!expect(p, '=', "'=' after the param name")) return false;
  bool neg = accept(p, '-');
  Tok t = p->tok;
  bool real = false; /* a number token with anything but digits: '.', an exponent */
  for (int i = 0; t.kind == T_NUM && i < t.len; i++) real |= !is_digit(t.s[i]);
  if (real ? !tok_real(p, &t, &r) : !tok_int(p, &t, &v)) return false;
  lex(p);
  if (!expect_eol(p, "the param")) return false;
  if (real) ir_graph_add_real_param(p->g, name, neg ? -r : r);
  else ir_graph_add_param(p->g, name, neg ? -v : v);
  return true;
}

/* Expect the word w; false after an error. */
static bool expect_word(Parser *p, const char *w) {
  if (tok_is(&p->tok, w)) {
    lex(p);
    return true;
  }
  error_at(p, &p->tok, "expected '%s', found %s", w, tok_desc(p, &p->tok));
  return false;
}

/* An integer >= lo into *v (consumed). */
static bool parse_int_min(Parser *p, int64_t lo, int64_t *v) {
  Tok t = p->tok;
  if (!tok_int(p, &t, v)) return false;
  if (*v < lo) {
    error_at(p, &t, "expected an integer >= %lld", (long long)lo);
    return false;
  }
  lex(p);
  return true;
}

/* derived := '=' '(' dim ')' 'floordiv' INT '+' '1' 'from' STRING 'kernel' INT 'pad' INT
 * (after 'dim' NAME; the dims of num declared before) */
static bool parse_derived(Parser *p, const char *name) {
  IrDim num, out;
  int64_t stride, one, kext, pad;
  const char *why;
  lex(p);
  Tok at0 = p->tok;
  if (!expect(p, '(', "'(' after '='") || !parse_dim(p, &num, 1) || !expect(p, ')', "')'") ||
      !expect_word(p, "floordiv") || !parse_int_min(p, 1, &stride) || !expect(p, '+', "'+ 1'"))
    return false;
  Tok ot = p->tok;
  if (!parse_int_min(p, 1, &one)) return false;
  if (one != 1) {
    error_at(p, &ot, "a derived dim is (num) floordiv stride + 1");
    return false;
  }
  if (!expect_word(p, "from") || !parse_str(p, &why) || !expect_word(p, "kernel") || !parse_int_min(p, 1, &kext) ||
      !expect_word(p, "pad") || !parse_int_min(p, 0, &pad) || !expect_eol(p, "the dim"))
    return false;
  int64_t c;
  if (ir_dim_is_const(num, &c)) {
    error_at(p, &at0, "dim '%s': a derived dim needs a run-time numerator", name);
    return false;
  }
  bool empty;
  if (ir_derived_dim(p->g, num, stride, kext, pad, why, false, &out, &empty) && ir_dim_is_sym(out, NULL)) {
    error_at(p, &at0, "dim '%s' repeats the definition of dim '%s'", name, p->g->syms[out.t[0].sym[0]]);
    return false;
  }
  int s = ir_graph_add_sym(p->g, name);
  IrDerivedDim *d = ir_arena_alloc(p->g->arena, sizeof *d);
  *d = (IrDerivedDim){num, stride, kext, pad, why, false};
  p->g->derived[s] = d;
  return true;
}

/* 'dim' IDENT [derived] */
static bool parse_dimdecl(Parser *p) {
  lex(p);
  Tok t = p->tok;
  if (t.kind != T_IDENT) {
    error_at(p, &t, "expected a dim name, found %s", tok_desc(p, &t));
    return false;
  }
  char *name = ir_arena_strndup(p->g->arena, t.s, (size_t)t.len);
  if (ir_graph_find_sym(p->g, name) >= 0) {
    error_at(p, &t, "dim '%s' is declared twice", name);
    return false;
  }
  if (p->g->nsym >= IR_MAX_SYMS) {
    error_at(p, &t, "too many dims: a graph has at most %d (IR_MAX_SYMS)", IR_MAX_SYMS);
    return false;
  }
  lex(p);
  if (at(p, '=')) return parse_derived(p, name);
  if (!expect_eol(p, "the dim")) return false;
  ir_graph_add_sym(p->g, name);
  return true;
}

/* 'output' name '=' ID */
static bool parse_output(Parser *p, const Scope *sc) {
  const char *name;
  lex(p);
  Tok nt = p->tok;
  if (!parse_name(p, &name, "an output name")) return false;
  for (int i = 0; i < p->g->noutput; i++)
    if (strcmp(p->g->outputs[i].name, name) == 0) {
      error_at(p, &nt, "output \"%s\" is declared twice", name);
      return false;
    }
  if (!expect(p, '=', "'=' after the output name")) return false;
  Tok idt = p->tok;
  int k = resolve(p, sc, &idt);
  if (k < 0) return false;
  lex(p);
  if (!expect_eol(p, "the output")) return false;
  const char *why = k >= 0 ? ir_type_size_problem(&p->g->funcs[0].nodes[k].type, true) : NULL;
  if (why) {
    char ts[256];
    ir_type_str(p->g, &p->g->funcs[0].nodes[k].type, ts, sizeof ts);
    error_at(p, &idt, "output \"%s\": %s has %s", name, ts, why);
    return false;
  }
  ir_add_output(p->g, name, k, tok_loc(p, &idt));
  return true;
}

/* 'yield' ID { ',' ID } */
static bool parse_yield(Parser *p, int fi, const Scope *sc) {
  lex(p);
  for (;;) {
    int k = resolve(p, sc, &p->tok);
    if (k < 0) return false;
    IrFunc *f = &p->g->funcs[fi];
    f->yields = ir_arena_realloc(p->g->arena, f->yields, (size_t)f->nyield * sizeof(int),
                                 (size_t)(f->nyield + 1) * sizeof(int));
    f->yields[f->nyield++] = k;
    lex(p);
    if (at_eol(p)) return expect_eol(p, "the yield");
    if (!expect(p, ',', "',' or end of line after the yielded value")) return false;
  }
}

/* block := { stmt | NL } '}'    (the opening '{' and its newline read).
 * depth 0 is the graph; bodies are deeper. */
static void parse_block(Parser *p, int fi, int depth, const Tok *open) {
  Scope sc = {0};
  bool saw_yield = false;
  for (;;) {
    if (ir_diag_errors(p->diag) - p->err0 >= MAX_ERRORS) p->stop = true;
    if (p->stop) break;
    Tok t = p->tok;
    bool ok;
    p->stmt = t;
    if (t.kind == T_NL) {
      lex(p);
      continue;
    }
    if (t.kind == T_EOF) {
      error_at(p, &t, "expected '}' to close the %s opened at line %d", depth ? "body" : "graph", open->line);
      p->stop = true;
      break;
    }
    if (at(p, '}')) {
      if (depth > 0 && !saw_yield) error_at(p, &t, "body has no 'yield'");
      lex(p);
      break;
    }
    bool graph_word = tok_is(&t, "param") || tok_is(&t, "dim") || tok_is(&t, "output");
    if (t.kind == T_ID) {
      ok = parse_node(p, fi, &sc, depth);
      if (!ok && !scope_find(&sc, t.s + 1, t.len - 1)) scope_put(p, &sc, &t, POISONED);
    } else if (depth == 0 && tok_is(&t, "param")) {
      ok = parse_param(p);
    } else if (depth == 0 && tok_is(&t, "dim")) {
      ok = parse_dimdecl(p);
    } else if (depth == 0 && tok_is(&t, "output")) {
      ok = parse_output(p, &sc);
    } else if (depth > 0 && tok_is(&t, "yield")) {
      saw_yield = true;
      ok = parse_yield(p, fi, &sc);
    } else {
      if (depth > 0 && graph_word)
        error_at(p, &t, "'%.*s' is only allowed at graph level, not in a body", t.len, t.s);
      else if (depth == 0 && tok_is(&t, "yield"))
        error_at(p, &t, "'yield' is only allowed in a body");
      else
        error_at(p, &t, "expected %s, found %s",
                 depth ? "a node ('%id = op ...') or 'yield'"
                       : "a node ('%id = op ...'), 'param', 'dim' or 'output'",
                 tok_desc(p, &t));
      ok = false;
    }
    if (!ok && !p->stop) skip_statement(p, &p->stmt);
  }
  free(sc.v);
}

/* file := NL* 'graph' name '{' NL block NL* EOF */
static void parse_file(Parser *p) {
  const char *name;
  while (p->tok.kind == T_NL) lex(p);
  if (!tok_is(&p->tok, "graph")) {
    error_at(p, &p->tok, "expected 'graph NAME {', found %s", tok_desc(p, &p->tok));
    return;
  }
  lex(p);
  if (!parse_name(p, &name, "the graph name")) return;
  p->g->name = name;
  Tok open = p->tok;
  if (!expect(p, '{', "'{' after the graph name") || !expect_eol(p, "'{'")) return;
  ir_graph_add_func(p->g, -1);
  parse_block(p, 0, 0, &open);
  if (p->stop) return;
  while (p->tok.kind == T_NL) lex(p);
  if (p->tok.kind != T_EOF)
    error_at(p, &p->tok, "unexpected %s after the end of the graph", tok_desc(p, &p->tok));
}

IrGraph *ir_parse(IrArena *arena, IrDiag *diag, const char *file, const char *text) {
  IrDiag *own = diag ? NULL : ir_diag_new(stderr);
  Parser p;
  memset(&p, 0, sizeof p);
  p.diag = diag ? diag : own;
  if (!file) file = "<ir>";
  ir_diag_add_source(p.diag, file, text);
  p.file = ir_arena_strdup(arena, file);
  p.err0 = ir_diag_errors(p.diag);
  p.g = ir_graph_new(arena, NULL);
  p.pos = p.bol = text;
  p.line = 1;
  lex(&p);
  parse_file(&p);
  bool ok = ir_diag_errors(p.diag) == p.err0;
  ir_diag_free(own);
  return ok ? p.g : NULL;
}

/* keys.c - weight key paths: string literals and key segments with {expr}
 * interpolations ("layers.{i}.weight", p.layer{i + 1}), expanded at compile
 * time.  An interpolation may use integers, params, loop variables and
 * + - * / ( ); its nesting is bounded (a located error past it). */
#include <stdio.h>
#include <string.h>
#include "fe_internal.h"

/* The value of one {expr}, read from *p (advanced past it); *ok = false on
 * anything it cannot read (names are reported here, the rest by the
 * caller).  expr := term {('+'|'-') term}, term := atom {('*'|'/') atom},
 * atom := '(' expr ')' | '-' atom | INT | NAME; nesting at most 32. */
static int64_t interp_expr(FeLower *L, const char **p, IrLoc loc, bool *ok, int depth);

/* atom := '(' expr ')' | '-' atom | INT | NAME */
static int64_t interp_atom(FeLower *L, const char **p, IrLoc loc, bool *ok, int depth) {
  while (**p == ' ') (*p)++;
  if (depth > 32) {
    *ok = false;
    return 0;
  }
  if (**p == '(') {
    (*p)++;
    int64_t v = interp_expr(L, p, loc, ok, depth + 1);
    while (**p == ' ') (*p)++;
    if (**p == ')') (*p)++;
    else *ok = false;
    return v;
  }
  if (**p == '-') {
    (*p)++;
    int64_t v = interp_atom(L, p, loc, ok, depth + 1);
    if (v == INT64_MIN) *ok = false;
    return *ok ? -v : 0;
  }
  if (**p >= '0' && **p <= '9') {
    int64_t v = 0;
    while (**p >= '0' && **p <= '9') {
      if (v > INT64_MAX / 10 - 10) *ok = false;
      else v = v * 10 + (*(*p)++ - '0');
      if (!*ok) break;
    }
    return v;
  }
  if ((**p >= 'a' && **p <= 'z') || (**p >= 'A' && **p <= 'Z') || **p == '_') {
    const char *s = *p;
    while ((**p >= 'a' && **p <= 'z') || (**p >= 'A' && **p <= 'Z') || **p == '_' || (**p >= '0' && **p <= '9'))
      (*p)++;
    char *name = ir_arena_strndup(L->arena, s, (size_t)(*p - s));
    FeBinding *b = fe_lookup(L, name);
    if (!b) {
      fe_unknown_name(L, loc, "name", name, false);
      *ok = false;
      return 0;
    }
    if (b->v.k != V_INT) {
      fe_err(L, loc, "'%s' in a key must be a compile-time integer, got %s", name, fe_kind_name(b->v.k));
      *ok = false;
      return 0;
    }
    return b->v.i;
  }
  *ok = false;
  return 0;
}

/* term := atom {('*'|'/') atom} */
static int64_t interp_term(FeLower *L, const char **p, IrLoc loc, bool *ok, int depth) {
  int64_t v = interp_atom(L, p, loc, ok, depth);
  for (;;) {
    while (**p == ' ') (*p)++;
    char c = **p;
    if (c != '*' && c != '/') return v;
    (*p)++;
    int64_t w = interp_atom(L, p, loc, ok, depth);
    if (c == '*') {
      if (__builtin_mul_overflow(v, w, &v)) *ok = false;
    } else if (w == 0 || (v == INT64_MIN && w == -1)) {
      *ok = false;
      return 0;
    } else {
      v /= w;
    }
  }
}

/* expr := term {('+'|'-') term} */
static int64_t interp_expr(FeLower *L, const char **p, IrLoc loc, bool *ok, int depth) {
  int64_t v = interp_term(L, p, loc, ok, depth);
  for (;;) {
    while (**p == ' ') (*p)++;
    char c = **p;
    if (c != '+' && c != '-') return v;
    (*p)++;
    int64_t w = interp_term(L, p, loc, ok, depth);
    if (c == '+' ? __builtin_add_overflow(v, w, &v) : __builtin_sub_overflow(v, w, &v)) *ok = false;
  }
}

/* Expand a key text written at loc (a string literal or a key segment);
 * NULL after reporting an error. */
const char *fe_expand_key(FeLower *L, const char *text, IrLoc at) {
  /* each source byte gives at most 7: an interpolation, at least "{x}",
     gives at most the 20 bytes of "-9223372036854775808" */
  size_t cap = strlen(text) * 7 + 1, len = 0;
  char *out = ir_arena_alloc(L->arena, cap);
  for (const char *p = text; *p;) {
    if (*p == '{') {
      const char *close = strchr(p, '}');
      IrLoc loc = at;
      loc.col += 1 + (int)(p - text);
      loc.len = close ? (int)(close - p + 1) : 1;
      if (!close) {
        fe_err(L, loc, "unclosed '{' in key");
        return NULL;
      }
      char *inner = ir_arena_strndup(L->arena, p + 1, (size_t)(close - p - 1));
      const char *q = inner;
      bool ok = true;
      int64_t v = interp_expr(L, &q, loc, &ok, 0);
      while (*q == ' ') q++;
      if (!ok || *q) {
        if (ir_diag_errors(L->diag) == 0 || ok) fe_err(L, loc, "bad interpolation '{%s}' in key", inner);
        return NULL;
      }
      len += (size_t)snprintf(out + len, cap - len, "%lld", (long long)v);
      p = close + 1;
    } else if (*p == '\\' && p[1]) {
      out[len++] = p[1];
      p += 2;
    } else {
      out[len++] = *p++;
    }
  }
  out[len] = 0;
  return out;
}

/* A string literal: a key path prefix. */
FeValue fe_string_value(FeLower *L, AstExpr *e) {
  const char *s = fe_expand_key(L, e->str, e->loc);
  if (!s) return POISON;
  return (FeValue){.k = V_PREFIX, .s = s, .loc = e->loc};
}

"""fz_model.py - an independent numpy model of the .attn subset: it
type-checks a program with symbolic shapes (as the front end must), makes
its inputs and weights from a seed, and computes every tensor together with
a per-element error bound.

The error bound is the fuzzer's tolerance rule.  For every tensor value v
(computed in float64 and rounded to its dtype after each operation, as the
reference interpreter does) the model carries e >= 0 such that any correct
implementation's element lies within e of v (plus a denormal floor):

  * rounding: each operation adds (k_op * u32 + 2 * u_dt) * (|r| + e_in),
    where u_dt is the unit roundoff of its dtype (f32 2^-24, f16 2^-11,
    bf16 2^-8), the 2 u_dt covers the model's and the implementation's
    own rounding, and k_op is the documented accuracy of the compiled
    kernel's math beyond correct rounding (codegen/cpu/templates/rowops.c:
    exp 2 ulp = 4 u, log 1 ulp, tanh / erf absolute 1.5e-7, ...; see
    UNARY).  Exact operations (relu, abs, neg, min, max, where, shape ops,
    comparisons of exact values) add nothing;
  * propagation: the exact range of the operation over the operands'
    uncertainty intervals (monotone functions are evaluated at both
    ends; Lipschitz constants for gelu/silu; |a|e_b + |b|e_a + e_a e_b
    for products; the quotient bound for division);
  * accumulation: a sum or matmul over n terms adds n * u32 * sum|terms|
    (any order of float32 accumulation, the worst case of Higham's
    gamma_n); softmax adds (n + 3) u32 and the exp error of each term,
    and the propagation of its inputs' errors through exp and the
    normalisation (exactly, by the ratio bound z_i (e^(e_i + max e) - 1));
  * uncertain decisions: a comparison whose operands' intervals overlap is
    uncertain; a where() on an uncertain condition takes both branches'
    spread; an element whose bound is not finite (overflow, a log or
    sqrt at its domain edge) is not checked.

Composite builtins (layernorm, rmsnorm, attention, linear, split_heads) are
evaluated as their documented expansions into primitives, each step with
its own rounding term; an implementation that fuses them rounds less and
stays inside the bound.  Values that are exact in every implementation
(inputs, index(), -inf masks) have e = 0 and must match bit for bit; NaN
must be NaN exactly where the model's NaN is certain.
"""
import math
import zlib

import numpy as np

U32 = 2.0 ** -24
UDT = {"f32": 2.0 ** -24, "f16": 2.0 ** -11, "bf16": 2.0 ** -8}
FMAX = {"f32": 3.4028234663852886e38, "f16": 65504.0, "bf16": 3.3895313892515355e38}
# below this, implementations may flush or round subnormals differently
TINY = {"f32": 2.4e-38, "bf16": 2.4e-38, "f16": 2.0 ** -23, "i32": 0.0, "bool": 0.0}
FLOATS = ("f32", "f16", "bf16")
DTYPES = FLOATS + ("i32", "bool")
INF = float("inf")


class FzTypeError(Exception):
    """The program is not valid .attn (the front end must reject it)."""


class FzRunError(Exception):
    """The program is valid but cannot run with these sizes."""


def fail(msg, *a):
    """Raise FzTypeError with a formatted message."""
    raise FzTypeError(msg % a if a else msg)


# ---- symbolic sizes ----------------------------------------------------------

class Size:
    """A polynomial in the dims with integer coefficients: {monomial: coef},
    a monomial being a sorted tuple of dim names.  Constant sizes are
    returned as plain ints by norm()."""
    __slots__ = ("t",)

    def __init__(self, terms):
        self.t = {m: c for m, c in terms.items() if c != 0}
        if len(self.t) > 4 or any(len(m) > 3 for m in self.t):
            fail("size expression too complex")

    @staticmethod
    def of(x):
        """An int as a Size."""
        return x if isinstance(x, Size) else Size({(): int(x)})

    def norm(self):
        """A constant Size as an int."""
        if not self.t:
            return 0
        if list(self.t) == [()]:
            return self.t[()]
        return self

    def __add__(self, o):
        o = Size.of(o)
        t = dict(self.t)
        for m, c in o.t.items():
            t[m] = t.get(m, 0) + c
        return Size(t).norm()

    __radd__ = __add__

    def __neg__(self):
        return Size({m: -c for m, c in self.t.items()}).norm()

    def __sub__(self, o):
        return self + (-Size.of(o))

    def __rsub__(self, o):
        return Size.of(o) - self

    def __mul__(self, o):
        o = Size.of(o)
        t = {}
        for m1, c1 in self.t.items():
            for m2, c2 in o.t.items():
                m = tuple(sorted(m1 + m2))
                t[m] = t.get(m, 0) + c1 * c2
        return Size(t).norm()

    __rmul__ = __mul__

    def div(self, o):
        """Exact division by an int or a single-term size, else None."""
        o = Size.of(o)
        if len(o.t) == 1:
            (dm, dc), = o.t.items()
            if dc == 0:
                return None
            t = {}
            for m, c in self.t.items():
                rest = list(m)
                for d in dm:
                    if d not in rest:
                        return None
                    rest.remove(d)
                if c % dc:
                    return None
                t[tuple(rest)] = t.get(tuple(rest), 0) + c // dc
            return Size(t).norm()
        # a constant multiple of a polynomial divisor
        ratio = None
        for m, c in o.t.items():
            sc = self.t.get(m, 0)
            if sc % c or (ratio is not None and sc // c != ratio):
                return None
            ratio = sc // c
        if set(self.t) - set(o.t):
            return None
        return ratio

    def eval(self, dims):
        """The value for concrete dims (derived dims computed from them)."""
        return sum(c * math.prod(dim_value(d, dims) for d in m) for m, c in self.t.items())

    def __eq__(self, o):
        return isinstance(o, Size) and self.t == o.t

    def __hash__(self):
        return hash(tuple(sorted(self.t.items())))

    def __repr__(self):
        return fmt_size(self)


# Derived dims (docs/language.md 3.4): the output size of a window over a
# run-time size that is not a polynomial of the dims, floor(num / stride) + 1
# with num = H + pads - d(k-1) - 1.  Two are the same dim when num and the
# stride are (ir_derived_dim), so the symbol's name is made from them alone:
# the conv_size(...) text that gives that definition, which is also how a
# declared type writes it.  name -> (num, stride); the registry only grows
# and a name always means the same definition.
DERIVED = {}


def dim_value(d, dims):
    """The run-time value of a dim or a derived dim (FzRunError when the
    window leaves no output at these sizes)."""
    if d in dims:
        return dims[d]
    if d not in DERIVED:
        raise KeyError(d)
    num, stride = DERIVED[d]
    n = num.eval(dims)
    if n < 0:
        raise FzRunError("a window leaves no output (%s = %d)" % (d, n))
    return n // stride + 1


def window_size(insz, k, s, pb, pe, d):
    """The output size of a window along an axis of size insz: a constant,
    a polynomial (stride 1, never empty) or a derived dim, as
    ir_window_dim / ir_derived_dim make it."""
    num = sz_add(insz, pb + pe - d * (k - 1) - 1)
    if isinstance(num, int):
        if num < 0:
            fail("input size %d padded by %d+%d is smaller than the kernel extent %d", insz, pb, pe, d * (k - 1) + 1)
        return num // s + 1
    nonneg = all(c >= 0 for m, c in num.t.items() if m) and sum(num.t.values()) >= 0
    if s == 1 and nonneg:
        return num + 1
    c = num.t.get((), 0)
    base = num - c
    # conv_size(base, k, stride=s, padding=p) has num = base + 2p - k
    p = 0 if c < 0 else (c + 2) // 2
    k2 = 2 * p - c
    name = "conv_size(%s, %d, stride=%d%s)" % (fmt_size(base), k2, s, ", padding=%d" % p if p else "")
    DERIVED.setdefault(name, (num, s))
    return Size({(name,): 1})


def sz_add(a, b):
    """a + b for ints or sizes."""
    return Size.of(a) + b if isinstance(a, Size) or isinstance(b, Size) else a + b


def sz_mul(a, b):
    """a * b for ints or sizes."""
    return Size.of(a) * b if isinstance(a, Size) or isinstance(b, Size) else a * b


def sz_eval(s, dims):
    """The value of a size for concrete dims."""
    return s.eval(dims) if isinstance(s, Size) else s


def fmt_size(s):
    """A size as .attn source text."""
    if not isinstance(s, Size):
        return str(s)
    parts = []
    for m, c in sorted(s.t.items(), key=lambda mc: (-len(mc[0]), mc[0])):
        f = list(m)
        if abs(c) != 1 or not f:
            f.insert(0, str(abs(c)))
        parts.append(("-" if c < 0 else "+", " * ".join(f)))
    out = ("-" if parts[0][0] == "-" else "") + parts[0][1]
    for sg, p in parts[1:]:
        out += " %s %s" % (sg, p)
    return out


def shape_str(dt, shape):
    """dtype[sizes] as text."""
    return "%s[%s]" % (dt, ",".join(fmt_size(s) for s in shape))


# ---- values ------------------------------------------------------------------

class DType:
    """A dtype value (argument of cast)."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class Key:
    """A weight key path (a prefix value)."""
    __slots__ = ("s",)

    def __init__(self, s):
        self.s = s


class Tensor:
    """A tensor value: dtype, symbolic shape, float64 values v (i32 and bool
    as exact integers), error bound e (same shape; bool: > 0 when the
    decision is uncertain), and nonneg: every implementation gives >= 0."""
    __slots__ = ("dt", "shape", "v", "e", "nonneg")

    def __init__(self, dt, shape, v, e, nonneg=False):
        self.dt, self.shape, self.v, self.e, self.nonneg = dt, tuple(shape), v, e, nonneg

    @property
    def rank(self):
        """The number of axes."""
        return len(self.shape)

    def typestr(self):
        """The type as text."""
        return shape_str(self.dt, self.shape)


def round_dt(x, dt):
    """Round float64 values to dt as the interpreter does (bf16 and f16 via
    float32, round to nearest even)."""
    with np.errstate(all="ignore"):
        if dt == "f32":
            return x.astype(np.float32).astype(np.float64)
        if dt == "f16":
            return x.astype(np.float32).astype(np.float16).astype(np.float64)
        if dt == "bf16":
            f = np.array(x, dtype=np.float32, ndmin=1)
            b = f.view(np.uint32).astype(np.uint64)
            s16 = np.uint64(16)
            r = ((b + np.uint64(0x7FFF) + ((b >> s16) & np.uint64(1))) >> s16) << s16
            r = r.astype(np.uint32).view(np.float32).astype(np.float64)
            return np.where(np.isnan(f), np.nan, r).reshape(np.shape(x))
        if dt == "i32":
            return ((x.astype(np.int64) + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.float64)
        return x


def finish(dt, shape, r, ep, k=0.0, a=None, exact=False, nonneg=False):
    """A new tensor from an operation's float64 result r and propagated
    bound ep: rounds r to dt and adds the rounding term (k u32 + 2 u_dt)
    (|r| + ep) + a u32 (see the module comment); overflow is unchecked."""
    with np.errstate(all="ignore"):
        r = np.asarray(r, dtype=np.float64)
        ep = np.where(np.isnan(ep), INF, np.asarray(ep, dtype=np.float64))
        ep = np.broadcast_to(ep, r.shape).copy()
        rv = round_dt(r, dt)
        if dt in FLOATS:
            if not exact:
                mag = np.where(np.isfinite(r), np.abs(r) + ep, 0.0)
                term = (k * U32 + 2 * UDT[dt]) * mag
                if dt == "f16":  # subnormal f16 values are rounded to an absolute 2^-25
                    term = term + 2.0 ** -24
                if a is not None:
                    term = term + np.where(np.isfinite(a), a, 0.0) * U32
                ep = ep + np.where(np.isnan(term), INF, term)
            ep = np.where(np.isinf(rv) & np.isfinite(r), INF, ep)
            ep = np.where(np.isfinite(rv) & (np.abs(rv) + ep > FMAX[dt]), INF, ep)
        return Tensor(dt, shape, rv, ep, nonneg)


def smul(e, m):
    """e * m with 0 * inf = 0 (an exact operand times anything is exact)."""
    with np.errstate(all="ignore"):
        return np.where(e == 0, 0.0, e * m)


# ---- broadcasting ------------------------------------------------------------

def bshape(*shapes):
    """The broadcast shape (numpy rules, symbolic sizes: equal, or 1)."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        cur = 1
        for s in shapes:
            j = len(s) - rank + i
            if j < 0:
                continue
            d = s[j]
            if d == 1:
                continue
            if cur == 1:
                cur = d
            elif cur != d:
                fail("shapes %s do not broadcast", " and ".join("[%s]" % ",".join(map(fmt_size, x)) for x in shapes))
        out.append(cur)
    return tuple(out)


def axis_of(ax, rank, what="axis"):
    """A checked axis, made non-negative."""
    if not isinstance(ax, int) or isinstance(ax, bool):
        fail("%s must be a compile-time integer", what)
    if not -rank <= ax < rank:
        fail("%s %d out of range for rank %d", what, ax, rank)
    return ax % rank


# ---- elementwise operations --------------------------------------------------

def _gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf, otypes=[float])(x / math.sqrt(2.0)))


def _gelu_tanh_inner(x):
    return math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(_gelu_tanh_inner(x)))


def _sigmoid(x):
    with np.errstate(all="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-x)), np.exp(x) / (1.0 + np.exp(x)))


def _libm(fn):
    """A C libm function (Python's math module) over an array, NaN where
    it has no value (sin(inf)): the interpreter computes these with libm,
    so folded numbers match it bit for bit."""
    def f(x):
        """fn elementwise."""
        def one(v):
            """fn of one float, NaN outside its domain."""
            try:
                return fn(v)
            except (ValueError, OverflowError):
                return math.nan
        return np.vectorize(one, otypes=[float])(np.asarray(x, dtype=np.float64))
    return f


def _rsqrt(x):
    with np.errstate(all="ignore"):
        return 1.0 / np.sqrt(x)


# The unary builtins, one row each: function, propagation (inc / dec:
# monotone, evaluated at both ends of the interval; a number: a Lipschitz
# constant), dtypes (float or numeric), k(x) and a(x) of the rounding term
# in units of u32 (the compiled math's accuracy: at least the CPU's bound in
# docs/language.md 9.5 and the host libm's, which the CUDA emulation runs;
# 1 ulp is 2 u32), nonneg result,
# domain lower bound (None: all reals).  floor, ceil and round are exact
# and nondecreasing: an operand interval across a step takes the jump.
UNARY = {
    "exp": (np.exp, "inc", "float", lambda x: 4.0, None, True, None),
    "exp2": (np.exp2, "inc", "float", lambda x: 4.0 + np.abs(x), None, True, None),
    "log": (np.log, "inc", "float", lambda x: 4.0, lambda x: 2.0, False, 0.0),
    "sqrt": (np.sqrt, "inc", "float", lambda x: 1.0, None, True, 0.0),
    "rsqrt": (_rsqrt, "dec", "float", lambda x: 3.0, None, True, 0.0),
    "tanh": (np.tanh, "inc", "float", lambda x: 2.0, lambda x: 8.0, False, None),
    "sigmoid": (_sigmoid, "inc", "float", lambda x: 6.0, None, True, None),
    "relu": (lambda x: np.where(x < 0, 0.0, x), "inc", "numeric", None, None, True, None),
    "abs": (np.abs, 1.0, "numeric", None, None, True, None),
    "gelu": (_gelu, 1.13, "float", lambda x: 4.0, lambda x: 1.5 * np.abs(x) + 1.0, False, None),
    "gelu_tanh": (_gelu_tanh, 1.13, "float", lambda x: 4.0,
                  lambda x: np.abs(x) * (4.0 + 1.5 * np.abs(_gelu_tanh_inner(x))) + 1.0, False, None),
    "silu": (lambda x: x * _sigmoid(x), 1.1, "float", lambda x: 7.0, lambda x: 1.0, False, None),
    "neg": (lambda x: -x, 1.0, "numeric", None, None, False, None),
    "erf": (_libm(math.erf), 1.13, "float", lambda x: 4.0, None, False, None),
    "sin": (_libm(math.sin), 1.0, "float", lambda x: 4.0, None, False, None),
    "cos": (_libm(math.cos), 1.0, "float", lambda x: 4.0, None, False, None),
    "floor": (np.floor, "inc", "numeric", None, None, False, None),
    "ceil": (np.ceil, "inc", "numeric", None, None, False, None),
    "round": (np.rint, "inc", "numeric", None, None, False, None),
}


def num_fold(fn, x):
    """A unary builtin on a compile-time number (docs/language.md 7.1)."""
    if fn in ("abs", "relu") and isinstance(x, int):
        return abs(x) if fn == "abs" else max(x, 0)
    if fn in ("floor", "ceil", "round") and isinstance(x, int):
        return x
    x = float(x)
    with np.errstate(all="ignore"):
        r = UNARY[fn][0](np.array([x]))[0]
    return float(r)


def unary(fn, t):
    """A unary builtin on a tensor, with its bound."""
    f, prop, kinds, k, a, nn, lo = UNARY[fn]
    if t.dt == "bool" or (kinds == "float" and t.dt not in FLOATS):
        fail("%s needs a %s tensor, got %s", fn, "floating-point" if kinds == "float" else "numeric", t.typestr())
    x, e = t.v, t.e
    with np.errstate(all="ignore"):
        r = f(x)
        if isinstance(prop, float):
            ep = smul(e, prop)
        else:
            lo_x = x - e
            if lo is not None and t.nonneg:
                lo_x = np.maximum(lo_x, lo)
            ends = np.maximum(np.abs(f(x + e) - r), np.abs(f(lo_x) - r))
            ep = np.where(e == 0, 0.0, np.where(np.isnan(ends), INF, ends))
            if lo is not None:  # the interval reaches outside the domain
                ep = np.where((e > 0) & (lo_x <= lo) & (x > lo), INF, ep)
        if t.dt in FLOATS and k is not None:
            return finish(t.dt, t.shape, r, ep, k(x), a(x) if a else None, nonneg=nn)
        return finish(t.dt, t.shape, r, ep, exact=True, nonneg=nn)


def const_tensor(x, dt):
    """A compile-time number promoted to a scalar tensor of dtype dt."""
    if dt in ("i32", "bool"):
        if isinstance(x, float):
            fail("a real number cannot be combined with a %s tensor; cast it first", dt)
        x = int(x != 0) if dt == "bool" else x
    v = round_dt(np.array(float(x)), dt)
    return Tensor(dt, (), v, np.zeros(()), nonneg=bool(v >= 0))


def operands(a, b, what):
    """Promote compile-time numbers next to a tensor; check dtypes agree."""
    if not isinstance(a, Tensor):
        a = const_tensor(a, b.dt)
    if not isinstance(b, Tensor):
        b = const_tensor(b, a.dt)
    if a.dt != b.dt:
        fail("operands of '%s' have different dtypes: %s and %s", what, a.typestr(), b.typestr())
    return a, b, bshape(a.shape, b.shape)


def div_bound(a, b, ea, eb):
    """max |a/b - a'/b'| over |a'-a| <= ea, |b'-b| <= eb."""
    with np.errstate(all="ignore"):
        ab = np.abs(b)
        bound = (np.abs(a) * eb + ab * ea) / (ab * (ab - eb))
        bound = np.where(ab > eb, bound, INF)
        zero_div = (b == 0) & (eb == 0)
        bound = np.where(zero_div, np.where((ea == 0) | (np.abs(a) > ea), 0.0, INF), bound)
        return np.where((ea == 0) & (eb == 0), 0.0, bound)


def pow_bound(a, b, ea, eb, r):
    """max |pow(a', b') - pow(a, b)| over the corners of the operand box
    (and a' = 0 when the box crosses it)."""
    with np.errstate(all="ignore"):
        worst = np.zeros_like(r)
        for da in (-1, 0, 1):
            for db in (-1, 0, 1):
                c = np.power(a + da * ea, b + db * eb)
                worst = np.maximum(worst, np.where(np.isnan(c) & ~np.isnan(r), INF, np.abs(c - r)))
        cross = (a - ea <= 0) & (a + ea >= 0) & (ea > 0)
        c0 = np.power(np.zeros_like(a), b)
        worst = np.where(cross, np.maximum(worst, np.abs(c0 - r)), worst)
        worst = np.where(np.isnan(worst), INF, worst)
        return np.where((ea == 0) & (eb == 0), 0.0, worst)


def ipow(a, b):
    """Integer pow, exact with wrap-around; negative b: 1/a^|b| truncated."""
    out = np.empty_like(a)
    for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())):
        x, y = int(x), int(y)
        if y < 0:
            v = 1 if x == 1 else ((-1 if y & 1 else 1) if x == -1 else 0)
        else:
            v = pow(x, y, 2 ** 32)
        out.ravel()[i] = v
    return round_dt(out, "i32")


def binary(op, a, b):
    """An elementwise binary operator or min/max/pow on tensors."""
    a, b, shape = operands(a, b, op)
    dt = a.dt
    x, y = np.broadcast_arrays(a.v, b.v)
    ex, ey = np.broadcast_arrays(a.e, b.e)
    with np.errstate(all="ignore"):
        if op in ("&&", "||"):
            if dt != "bool":
                fail("'%s' needs bool operands, got %s", op, a.typestr())
            ux, uy = ex > 0, ey > 0
            if op == "&&":
                r = (x != 0) & (y != 0)
                unc = (ux & ((y != 0) | uy)) | (uy & ((x != 0) | ux))
            else:
                r = (x != 0) | (y != 0)
                unc = (ux & ((y == 0) | uy)) | (uy & ((x == 0) | ux))
            return Tensor("bool", shape, r.astype(np.float64), unc.astype(np.float64))
        if op in ("<", "<=", ">", ">=", "==", "!="):
            r = {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y, "==": x == y, "!=": x != y}[op]
            d = np.abs(x - y)
            both_inf_eq = np.isinf(x) & (x == y)
            unc = (ex + ey > 0) & (d <= ex + ey) & ~both_inf_eq
            return Tensor("bool", shape, r.astype(np.float64), unc.astype(np.float64))
        if dt == "bool":
            fail("'%s' needs numeric operands, got %s", op, a.typestr())
        nn = a.nonneg and b.nonneg
        if op in ("min", "max"):
            r = np.minimum(x, y) if op == "min" else np.maximum(x, y)
            return finish(dt, shape, r, np.maximum(ex, ey), exact=True,
                          nonneg=nn or (op == "max" and (a.nonneg or b.nonneg)))
        if dt == "i32":
            if op == "/":
                if np.any(y == 0):
                    raise FzRunError("integer division by zero")
                r = np.trunc(x / y)
                ep = np.where((ex == 0) & (ey == 0), 0.0, INF)
            elif op == "pow":
                r = ipow(x, y)
                ep = np.where((ex == 0) & (ey == 0), 0.0, INF)
            else:
                r = {"+": x + y, "-": x - y, "*": x * y}[op]
                ep = ex + ey if op != "*" else smul(ex, np.abs(y)) + smul(ey, np.abs(x)) + ex * ey
            return finish("i32", shape, r, ep, exact=True)
        if op == "+":
            return finish(dt, shape, x + y, ex + ey, nonneg=nn)
        if op == "-":
            return finish(dt, shape, x - y, ex + ey)
        if op == "*":
            same = a is b
            ep = smul(ex, np.abs(y)) + smul(ey, np.abs(x)) + ex * ey
            return finish(dt, shape, x * y, ep, nonneg=nn or same)
        if op == "/":
            return finish(dt, shape, x / y, div_bound(x, y, ex, ey), k=2.0, nonneg=nn)
        if op == "pow":
            r = np.power(x, y)
            k = 5.0 + 3.0 * np.abs(y * np.log(np.abs(x)))
            return finish(dt, shape, r, pow_bound(x, y, ex, ey, r), k=np.where(np.isfinite(k), k, 0.0), nonneg=a.nonneg)
    raise AssertionError(op)


def where(c, a, b):
    """where(c, a, b) with numbers promoted; an uncertain condition takes both branches' spread."""
    if not isinstance(c, Tensor) or c.dt != "bool":
        fail("where: the condition must be bool")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        dt = "i32" if isinstance(a, int) and isinstance(b, int) else "f32"
        a, b = const_tensor(a, dt), const_tensor(b, dt)
    a, b, _ = operands(a, b, "where")
    shape = bshape(c.shape, a.shape, b.shape)
    cv, ce, x, y, ex, ey = np.broadcast_arrays(c.v, c.e, a.v, b.v, a.e, b.e)
    with np.errstate(all="ignore"):
        r = np.where(cv != 0, x, y)
        ep = np.where(cv != 0, ex, ey)
        spread = np.where(x == y, 0.0, np.abs(x - y))
        ep = np.where(ce > 0, np.maximum(ex, ey) + np.where(np.isnan(spread), INF, spread), ep)
    return finish(a.dt, shape, r, ep, exact=True, nonneg=a.nonneg and b.nonneg)


def cast(t, dt):
    """cast(t, dt): truncation and saturation to i32, != 0 to bool, rounding to floats."""
    if dt == t.dt:
        return t
    x, e = t.v, t.e
    with np.errstate(all="ignore"):
        if dt == "bool":
            r = (x != 0).astype(np.float64)
            unc = (e > 0) & (np.abs(x) <= e)
            return Tensor("bool", t.shape, r, unc.astype(np.float64), nonneg=True)
        if dt == "i32":
            if t.dt in FLOATS:
                def conv(z):
                    """float -> i32 as cast does it."""
                    z = np.where(np.isnan(z), 0.0, np.trunc(z))
                    return np.clip(z, -2.0 ** 31, 2.0 ** 31 - 1)
                r = conv(x)
                ep = np.maximum(np.abs(conv(x + e) - r), np.abs(conv(x - e) - r))
                ep = np.where(e == 0, 0.0, np.where(np.isnan(ep), INF, ep))
                return Tensor("i32", t.shape, r, ep, nonneg=t.nonneg)
            return Tensor("i32", t.shape, x.copy(), e.copy(), nonneg=True)
        # to a float dtype: the value, rounded (exact when widening)
        exact = t.dt in ("bool",) or (t.dt in ("bf16", "f16") and dt == "f32")
        return finish(dt, t.shape, x, e, exact=exact, nonneg=t.nonneg)


# ---- reductions, softmax, matmul ---------------------------------------------

def axes_list(ax, rank):
    """The sorted, checked reduction axes of an axis= value."""
    if isinstance(ax, list):
        out = [axis_of(a, rank) for a in ax]
    else:
        out = [axis_of(ax, rank)]
    if len(set(out)) != len(out):
        fail("an axis is repeated")
    return sorted(out)


def red_shape(shape, axes, keep):
    """The shape after reducing axes (kept as 1 with keepdim)."""
    if keep:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def reduce(fn, t, axis, keepdim, dims):
    """sum, mean or max over axes, with the accumulation bound."""
    if t.dt == "bool" or (fn in ("sum", "mean") and t.dt not in FLOATS):
        fail("%s needs a floating-point tensor, got %s", fn, t.typestr())
    axes = axes_list(axis, t.rank)
    shape = red_shape(t.shape, axes, keepdim)
    n = int(np.prod([t.v.shape[i] for i in axes])) if axes else 1
    ax = tuple(axes)
    with np.errstate(all="ignore"):
        if fn == "max":
            if n == 0:
                r = np.full(np.sum(t.v, axis=ax, keepdims=keepdim).shape, -INF)
                return Tensor(t.dt, shape, r, np.zeros_like(r), t.nonneg)
            r = np.max(t.v, axis=ax, keepdims=keepdim)
            ep = np.max(t.e, axis=ax, keepdims=keepdim)
            return finish(t.dt, shape, r, ep, exact=True, nonneg=t.nonneg)
        s = np.sum(t.v, axis=ax, keepdims=keepdim)
        ep = np.sum(t.e, axis=ax, keepdims=keepdim) + n * U32 * np.sum(np.abs(t.v), axis=ax, keepdims=keepdim)
        if fn == "sum":
            return finish(t.dt, shape, s, ep, nonneg=t.nonneg)
        if n == 0:
            return finish(t.dt, shape, s * np.nan, np.zeros_like(s))
        return finish(t.dt, shape, s / n, ep / n, k=2.0, nonneg=t.nonneg)


def softmax(t, axis):
    """softmax over one axis; fully masked rows are zeros."""
    if t.dt not in FLOATS:
        fail("softmax needs a floating-point tensor, got %s", t.typestr())
    ax = axis_of(axis, t.rank)
    x = np.moveaxis(t.v, ax, -1)
    e = np.moveaxis(t.e, ax, -1)
    n = x.shape[-1]
    with np.errstate(all="ignore"):
        m = np.max(x, axis=-1, keepdims=True) if n else np.full(x.shape[:-1] + (1,), -INF)
        masked = m == -INF
        msafe = np.where(masked | np.isnan(m), 0.0, m)
        tt = np.exp(x - msafe)
        tt = np.where(x == -INF, 0.0, tt)
        s = np.sum(tt, axis=-1, keepdims=True)
        z = np.where(masked, 0.0, tt / s)
        # errors: -inf elements exact (e = 0) contribute nothing
        ef = np.where(np.isfinite(x), e, np.where(e == 0, 0.0, INF))
        emax = np.max(ef, axis=-1, keepdims=True) if n else np.zeros(x.shape[:-1] + (1,))
        prop = smul(z, np.expm1(ef + emax))
        prop = np.where((ef + emax) == 0, 0.0, prop)
        rel = np.where(np.isfinite(x), (5.0 + np.abs(x - msafe)) * U32, 0.0)
        sumrel = np.sum(z * rel, axis=-1, keepdims=True)
        rnd = z * (rel + sumrel + (n + 3) * U32)
        ep = prop + rnd
        row_exact = np.max(ef, axis=-1, keepdims=True) == 0 if n else np.ones(masked.shape, bool)
        ep = np.where(masked, np.where(row_exact, 0.0, INF), ep)
    r = np.moveaxis(z, -1, ax)
    ep = np.moveaxis(ep, -1, ax)
    return finish(t.dt, t.shape, r, ep, nonneg=True)


def matmul(a, b):
    """Batched matmul with broadcast batch axes and the gamma_K bound."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        fail("@ needs two tensors")
    if a.rank < 2 or b.rank < 2:
        fail("matmul needs rank >= 2 operands, got %s @ %s", a.typestr(), b.typestr())
    if a.dt != b.dt or a.dt not in FLOATS:
        fail("matmul needs two tensors of one floating-point dtype, got %s @ %s", a.typestr(), b.typestr())
    if a.shape[-1] != b.shape[-2]:
        fail("matmul: inner dimensions differ: %s @ %s", a.typestr(), b.typestr())
    batch = bshape(a.shape[:-2], b.shape[:-2])
    shape = batch + (a.shape[-2], b.shape[-1])
    K = a.v.shape[-1]
    with np.errstate(all="ignore"):
        r = np.matmul(a.v, b.v)
        aa, ab = np.abs(a.v), np.abs(b.v)
        ep = np.matmul(aa, b.e) + np.matmul(a.e, ab) + np.matmul(a.e, b.e) + K * U32 * np.matmul(aa, ab)
    return finish(a.dt, shape, r, ep)


# ---- shape operations --------------------------------------------------------

def reshape(t, sizes, dims):
    """reshape to a list of sizes (one may be -1), element count checked symbolically."""
    if not isinstance(sizes, list):
        fail("reshape needs a list of sizes")
    total = Size.of(1)
    for s in t.shape:
        total = Size.of(total) * s
    known, infer = Size.of(1), None
    for i, s in enumerate(sizes):
        if isinstance(s, int) and s == -1:
            if infer is not None:
                fail("reshape: at most one -1")
            infer = i
        elif isinstance(s, (int, Size)) and not isinstance(s, bool):
            if isinstance(s, int) and s < 0:
                fail("reshape: negative size")
            known = Size.of(known) * s
        else:
            fail("reshape: sizes must be integers or sizes")
    sizes = list(sizes)
    if infer is not None:
        q = Size.of(total).div(known) if known != 0 else None
        if q is None:
            fail("reshape: cannot infer -1")
        sizes[infer] = q
    else:
        if Size.of(total) != Size.of(known):
            fail("reshape from %s changes the number of elements", t.typestr())
    conc = [sz_eval(s, dims) for s in sizes]
    return Tensor(t.dt, tuple(sizes), t.v.reshape(conc), t.e.reshape(conc), t.nonneg)


def permute(t, perm):
    """permute to a permutation of all axes."""
    if not isinstance(perm, list) or sorted(axis_of(p, t.rank) for p in perm) != list(range(t.rank)):
        fail("permute needs a permutation of all axes")
    perm = [axis_of(p, t.rank) for p in perm]
    return Tensor(t.dt, tuple(t.shape[p] for p in perm), np.transpose(t.v, perm), np.transpose(t.e, perm), t.nonneg)


def transpose(t, a=-2, b=-1):
    """Swap two axes."""
    if t.rank < 2:
        fail("transpose needs rank >= 2")
    a, b = axis_of(a, t.rank), axis_of(b, t.rank)
    perm = list(range(t.rank))
    perm[a], perm[b] = perm[b], perm[a]
    return permute(t, perm)


def slice_(t, axis, start, end, dims):
    """slice along one axis [start, end)."""
    ax = axis_of(axis, t.rank)
    for x in (start, end):
        if not isinstance(x, (int, Size)) or isinstance(x, bool):
            fail("slice bounds must be integers or sizes")
    if isinstance(start, int) and start < 0:
        fail("slice: negative start")
    size = sz_add(end, Size.of(start) * -1 if isinstance(start, Size) else -start)
    if isinstance(size, int) and size < 0:
        fail("slice: end before start")
    if isinstance(end, int) and isinstance(t.shape[ax], int) and end > t.shape[ax]:
        fail("slice: end beyond the axis")
    s0, s1, n = sz_eval(start, dims), sz_eval(end, dims), t.v.shape[ax]
    if not 0 <= s0 <= s1 <= n:
        raise FzRunError("slice [%d, %d) out of range %d" % (s0, s1, n))
    idx = [slice(None)] * t.rank
    idx[ax] = slice(s0, s1)
    shape = list(t.shape)
    shape[ax] = size
    return Tensor(t.dt, tuple(shape), t.v[tuple(idx)], t.e[tuple(idx)], t.nonneg)


def concat(ts, axis):
    """concat along one axis."""
    if not isinstance(ts, list) or not ts or len(ts) > 16 or not all(isinstance(x, Tensor) for x in ts):
        fail("concat needs a list of 1 to 16 tensors")
    r, dt = ts[0].rank, ts[0].dt
    ax = axis_of(axis, r)
    total = 0
    for x in ts:
        if x.rank != r or x.dt != dt:
            fail("concat: tensors differ in rank or dtype")
        for i in range(r):
            if i != ax and x.shape[i] != ts[0].shape[i]:
                fail("concat: sizes differ off the axis")
        total = sz_add(total, x.shape[ax])
    shape = list(ts[0].shape)
    shape[ax] = total
    return Tensor(dt, tuple(shape), np.concatenate([x.v for x in ts], axis=ax),
                  np.concatenate([x.e for x in ts], axis=ax), all(x.nonneg for x in ts))


def split(t, sizes, axis, dims):
    """split into pieces of the given sizes."""
    ax = axis_of(axis, t.rank)
    if not isinstance(sizes, list) or not 1 <= len(sizes) <= 64:
        fail("split needs a list of 1 to 64 sizes")
    total, out, start = 0, [], 0
    for s in sizes:
        total = sz_add(total, s)
    if Size.of(total) != Size.of(t.shape[ax]):
        fail("split: the sizes do not add up to the axis")
    for s in sizes:
        out.append(slice_(t, ax, start, sz_add(start, s), dims))
        start = sz_add(start, s)
    return tuple(out)


def chunk(t, n, axis, dims):
    """chunk into n equal pieces."""
    ax = axis_of(axis, t.rank)
    if not isinstance(n, int) or not 1 <= n <= 64:
        fail("chunk: n must be 1..64")
    piece = Size.of(t.shape[ax]).div(n)
    if piece is None:
        fail("chunk: the axis does not split into %d equal parts", n)
    return split(t, [piece] * n, ax, dims)


def index(t, axis):
    """The position along one axis, as i32."""
    ax = axis_of(axis, t.rank)
    shape = tuple(s if i == ax else 1 for i, s in enumerate(t.shape))
    n = t.v.shape[ax]
    v = np.arange(n, dtype=np.float64).reshape([n if i == ax else 1 for i in range(t.rank)])
    return Tensor("i32", shape, v, np.zeros_like(v), nonneg=True)


# ---- composite builtins (their documented expansions) ------------------------

def layernorm(x, w, b, eps, dims):
    """layernorm, or rmsnorm when b is None, as their expansions."""
    d = x.shape[-1]
    if x.dt not in FLOATS or not isinstance(w, Tensor) or w.shape != (d,) or w.dt != x.dt or (
            b is not None and (not isinstance(b, Tensor) or b.shape != (d,) or b.dt != x.dt)):
        fail("layernorm/rmsnorm: weight and bias must be [%s] of %s", fmt_size(d), x.dt)
    if b is None:  # rmsnorm: x / sqrt(mean(x^2) + eps) * w
        ms = reduce("mean", binary("*", x, x), -1, True, dims)
        return binary("*", binary("*", x, unary("rsqrt", binary("+", ms, eps))), w)
    mu = reduce("mean", x, -1, True, dims)
    dd = binary("-", x, mu)
    var = reduce("mean", binary("*", dd, dd), -1, True, dims)
    return binary("+", binary("*", binary("*", dd, unary("rsqrt", binary("+", var, eps))), w), b)


def linear(x, w, b, dims):
    """x @ transpose(w) + b; a vector x gives a vector."""
    if not isinstance(w, Tensor) or w.rank != 2 or not isinstance(x, Tensor) or x.rank < 1 or w.shape[1] != x.shape[-1]:
        fail("linear: input does not match weight")
    vec = x.rank == 1
    xx = reshape(x, [1, x.shape[0]], dims) if vec else x
    y = matmul(xx, transpose(w))
    if vec:
        y = reshape(y, [w.shape[0]], dims)
    if b is not None:
        if not isinstance(b, Tensor) or b.shape != (w.shape[0],):
            fail("linear: bias does not match")
        y = binary("+", y, b)
    return y


def split_heads(x, h, dims):
    """[..., T, H*E] -> [..., H, T, E]."""
    if x.rank < 2 or not isinstance(h, int) or h < 1:
        fail("split_heads needs rank >= 2 and a head count")
    e = Size.of(x.shape[-1]).div(h)
    if e is None:
        fail("split_heads: the last axis does not divide by %d", h)
    y = reshape(x, list(x.shape[:-1]) + [h, e], dims)
    return transpose(y, -3, -2)


def merge_heads(x, dims):
    """[..., H, T, E] -> [..., T, H*E]."""
    if x.rank < 3:
        fail("merge_heads needs rank >= 3")
    y = transpose(x, -3, -2)
    return reshape(y, list(y.shape[:-2]) + [sz_mul(y.shape[-2], y.shape[-1])], dims)


def attention(q, k, v, causal, mask, scale, dims):
    """attention() as documented in docs/language.md 7.9, GQA included."""
    for t in (q, k, v):
        if not isinstance(t, Tensor) or t.rank != 4 or t.dt not in FLOATS:
            fail("attention needs rank-4 floating-point q, k, v")
    B, Hq, T, E = q.shape
    Hk, S = k.shape[1], k.shape[2]
    if v.shape[1] != Hk or v.shape[2] != S or k.shape[3] != E:
        fail("attention: k/v shapes do not match")
    if scale is None:
        if not isinstance(E, int):
            fail("attention: the head size E is not a constant; pass scale=...")
        scale = 1.0 / math.sqrt(E)
    group = Hq != Hk
    if group:
        if not isinstance(Hq, int) or not isinstance(Hk, int) or Hq % Hk:
            fail("attention: query heads must be a multiple of key heads")
        G = Hq // Hk
        q = reshape(q, [B, Hk, G, T, E], dims)
        k = reshape(k, [B, Hk, 1, S, E], dims)
        v = reshape(v, [B, Hk, 1, S, v.shape[3]], dims)
    s = binary("*", matmul(q, transpose(k, -2, -1)), float(scale))
    if causal:  # top-left: j > i; bottom-right: j > i + S - T (the last T of S positions)
        off = sz_eval(S, dims) - sz_eval(T, dims) if causal == "bottom_right" else 0
        s = where(binary(">", index(s, -1), binary("+", index(s, -2), off)), -INF, s)
    if mask is not None:
        if not isinstance(mask, Tensor):
            fail("attention: mask must be a tensor")
        if group:
            m = mask
            while m.rank < 4:
                m = reshape(m, [1] + list(m.shape), dims)
            m0, m1, m2, m3 = m.shape
            m = reshape(m, [m0, 1, 1, m2, m3] if m1 == 1 else [m0, Hk, Hq // Hk, m2, m3], dims)
            mask = m
        if mask.dt == "bool":
            s = where(mask, s, -INF)
        else:
            s = binary("+", s, mask)
    o = matmul(softmax(s, -1), v)
    if group:
        o = reshape(o, [B, Hq, T, o.shape[-1]], dims)
    return o


# ---- images (NCHW): conv2d, pools, batchnorm, hard activations ---------------

def pair(v, what, lo=1):
    """An int or a pair [h, w] of compile-time integers >= lo."""
    vs = v if isinstance(v, list) else [v, v]
    if len(vs) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in vs):
        fail("%s must be an integer or a pair [h, w]", what)
    if any(x < lo or x > 1 << 20 for x in vs):
        fail("%s must be between %d and %d", what, lo, 1 << 20)
    return vs


def window_pads(padding, k, dil, stride, fn):
    """[top, left, bottom, right] from padding= (an int, a pair, "same",
    "valid"); "same" puts an odd total's extra row / column at the end."""
    if isinstance(padding, Key):
        if padding.s not in ("same", "valid"):
            fail("%s: padding must be an integer, a pair, \"same\" or \"valid\"", fn)
        if padding.s == "valid":
            return [0, 0, 0, 0]
        if stride != [1, 1]:
            fail("%s: padding=\"same\" needs stride 1", fn)
        tot = [dil[i] * (k[i] - 1) for i in range(2)]
        return [tot[0] // 2, tot[1] // 2, tot[0] - tot[0] // 2, tot[1] - tot[1] // 2]
    p = pair(padding, "%s: padding" % fn, 0)
    return [p[0], p[1], p[0], p[1]]


def want_image(x, fn):
    """x must be a floating-point [N, C, H, W] tensor."""
    if not isinstance(x, Tensor) or x.rank != 4 or x.dt not in FLOATS:
        fail("%s expects a floating-point [N, C, H, W] image", fn)


def window_shape(x, k, st, pads, dil, dims):
    """The output's symbolic spatial sizes and their run-time values."""
    sizes = [window_size(x.shape[2 + i], k[i], st[i], pads[i], pads[2 + i], dil[i]) for i in range(2)]
    return sizes, [sz_eval(v, dims) for v in sizes]


def taps(v, pads, fill, k, st, dil, out):
    """For each window cell (i, j): the strided view of the padded image
    v [N, C, H, W] that cell reads for every output position."""
    xp = np.pad(v, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=fill)
    for i in range(k[0]):
        for j in range(k[1]):
            y0, x0 = i * dil[0], j * dil[1]
            yield i, j, xp[:, :, y0:y0 + st[0] * (out[0] - 1) + 1:st[0], x0:x0 + st[1] * (out[1] - 1) + 1:st[1]]


def conv2d(x, w, b, stride, padding, dilation, groups, dims):
    """conv2d as ir/interp.c computes it: every product of the window, all
    input channels of the group, summed (float64) and rounded once; the
    bound is matmul's with K = C/groups * kh * kw.  The bias is a
    per-channel add after it, as the front end lowers it."""
    want_image(x, "conv2d")
    if not isinstance(w, Tensor):
        fail("conv2d: the weight must be a tensor")
    st, dil = pair(stride, "conv2d: stride"), pair(dilation, "conv2d: dilation")
    if not isinstance(groups, int) or isinstance(groups, bool):
        fail("conv2d: groups must be an integer")
    C = x.shape[1]
    if not isinstance(C, int):
        fail("conv2d: the channels must be a compile-time size")
    if groups < 1 or C % groups:
        fail("conv2d: groups=%d does not divide %d channels", groups, C)
    if w.rank != 4 or w.dt != x.dt or not all(isinstance(s, int) for s in w.shape) or \
            w.shape[1] != C // groups or w.shape[0] % groups:
        fail("conv2d: the weight must be [O, %d, kh, kw] of %s, got %s", C // groups, x.dt, w.typestr())
    if b is not None and (not isinstance(b, Tensor) or b.shape != (w.shape[0],) or b.dt != x.dt):
        fail("conv2d: the bias must be [%d]", w.shape[0])
    O, Cg, kh, kw = w.shape
    k = [kh, kw]
    pads = window_pads(padding, k, dil, st, "conv2d")
    sizes, out = window_shape(x, k, st, pads, dil, dims)
    N = x.v.shape[0]
    G, Og = groups, O // groups
    wv, we = w.v.reshape(G, Og, Cg, kh, kw), w.e.reshape(G, Og, Cg, kh, kw)
    r = np.zeros((N, G, Og, out[0], out[1]))
    ab, ep = np.zeros_like(r), np.zeros_like(r)
    with np.errstate(all="ignore"):
        xa = np.abs(x.v)
        views = zip(taps(x.v, pads, 0.0, k, st, dil, out), taps(xa, pads, 0.0, k, st, dil, out),
                    taps(x.e, pads, 0.0, k, st, dil, out))
        for (i, j, v), (_, _, a), (_, _, e) in views:
            shp = (N, G, Cg, out[0], out[1])
            v, a, e = v.reshape(shp), a.reshape(shp), e.reshape(shp)
            wt, wa, wet = wv[:, :, :, i, j], np.abs(wv[:, :, :, i, j]), we[:, :, :, i, j]
            r += np.einsum("ngchw,goc->ngohw", v, wt)
            ab += np.einsum("ngchw,goc->ngohw", a, wa)
            if e.any():
                ep += np.einsum("ngchw,goc->ngohw", e, wa)
            if wet.any():
                ep += np.einsum("ngchw,goc->ngohw", a, wet) + np.einsum("ngchw,goc->ngohw", e, wet)
        ep += Cg * kh * kw * U32 * ab
    shape = (x.shape[0], O, sizes[0], sizes[1])
    y = finish(x.dt, shape, r.reshape(N, O, out[0], out[1]), ep.reshape(N, O, out[0], out[1]))
    if b is not None:
        y = binary("+", y, reshape(b, [O, 1, 1], dims))
    return y


def pool2d(kind, x, kernel, stride, padding, dims):
    """maxpool2d (padding ignored: -inf) or avgpool2d (zeros counted,
    divisor the whole window: count_include_pad)."""
    fn = kind + "pool2d"
    want_image(x, fn)
    k = pair(kernel, fn + ": kernel")
    st = k if stride is None else pair(stride, fn + ": stride")
    pads = window_pads(padding, k, [1, 1], st, fn)
    for i in range(2):
        if 2 * pads[i] > k[i] or 2 * pads[2 + i] > k[i]:
            fail("%s: padding %d is more than half the kernel %d", fn, pads[i], k[i])
    sizes, out = window_shape(x, k, st, pads, [1, 1], dims)
    shape = (x.shape[0], x.shape[1], sizes[0], sizes[1])
    n = k[0] * k[1]
    with np.errstate(all="ignore"):
        if kind == "max":
            r = np.full(x.v.shape[:2] + tuple(out), -INF)
            ep = np.zeros_like(r)
            for (_, _, v), (_, _, e) in zip(taps(x.v, pads, -INF, k, st, [1, 1], out),
                                            taps(x.e, pads, 0.0, k, st, [1, 1], out)):
                r = np.where(np.isnan(r) | (v > r) | np.isnan(v), np.where(np.isnan(r), r, v), r)
                ep = np.maximum(ep, e)
            return finish(x.dt, shape, r, ep, exact=True, nonneg=x.nonneg)
        s = np.zeros(x.v.shape[:2] + tuple(out))
        ep, ab = np.zeros_like(s), np.zeros_like(s)
        for (_, _, v), (_, _, e) in zip(taps(x.v, pads, 0.0, k, st, [1, 1], out),
                                        taps(x.e, pads, 0.0, k, st, [1, 1], out)):
            s += v
            ab += np.abs(v)
            ep += e
        ep += n * U32 * ab
        return finish(x.dt, shape, s / n, ep / n, k=2.0, nonneg=x.nonneg)


def flatten(x, start, dims):
    """Axes start.. merged into one."""
    if not isinstance(x, Tensor):
        fail("flatten needs a tensor")
    k = axis_of(start, x.rank, "start_axis")
    tot = 1
    for s in x.shape[k:]:
        tot = sz_mul(tot, s)
    return reshape(x, list(x.shape[:k]) + [tot], dims)


def batchnorm(x, w, b, mean, var, eps, dims):
    """Eval-mode batchnorm as the front end lowers it: s = w * rsqrt(var +
    eps), t = b - mean * s, x * s + t per channel of axis 1."""
    if not isinstance(x, Tensor) or x.rank < 2:
        fail("batchnorm expects [N, C, ...]")
    for p in (w, b, mean, var):
        if not isinstance(p, Tensor) or p.shape != (x.shape[1],) or p.dt != x.dt:
            fail("batchnorm: parameters must be [%s] of %s", fmt_size(x.shape[1]), x.dt)
    if x.rank not in (2, 4):
        fail("batchnorm expects [N, C] or [N, C, H, W]")
    sc = binary("*", w, unary("rsqrt", binary("+", var, float(eps))))
    sh = binary("-", b, binary("*", mean, sc))
    if x.rank == 4:
        sc = reshape(sc, [x.shape[1], 1, 1], dims)
        sh = reshape(sh, [x.shape[1], 1, 1], dims)
    return binary("+", binary("*", x, sc), sh)


def relu6_3(x):
    """min(max(x + 3, 0), 6), as the front end lowers it."""
    return binary("min", binary("max", binary("+", x, 3.0), 0.0), 6.0)


def hardsigmoid(x):
    """relu6(x + 3) / 6."""
    return binary("/", relu6_3(x), 6.0)


def hardswish(x):
    """x * relu6(x + 3) / 6."""
    return binary("/", binary("*", x, relu6_3(x)), 6.0)


# ---- the evaluator -----------------------------------------------------------

class Result:
    """What evaluate() returns: the model name, its inputs (name -> Tensor,
    declaration order), weights (key -> Tensor), and outputs (name ->
    Tensor, declaration order)."""

    def __init__(self):
        self.name = "fz"
        self.inputs, self.weights, self.outputs, self.out_types = {}, {}, {}, {}
        self.dims = {}


def data_ranges(header):
    """The 'data' header: NAME=LO:HI per input (uniform, integer for i32,
    LO = probability of true for bool)."""
    out = {}
    for item in header.get("data", "").split():
        k, v = item.split("=")
        lo, hi = v.split(":")
        out[k] = (float(lo), float(hi))
    return out


def make_data(name, dt, shape, seed, rng_range, weight):
    """Random data for one input or weight, from (seed, name) alone so that
    removing a declaration does not change the others' data."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if dt == "bool":
        p = rng_range[0] if rng_range else 0.5
        v = (rng.random(shape) < p).astype(np.float64)
    elif dt == "i32":
        lo, hi = rng_range if rng_range else (-4, 9)
        v = rng.integers(int(lo), int(hi) + 1, size=shape).astype(np.float64)
    else:
        if rng_range:
            lo, hi = rng_range
        elif weight:
            a = math.sqrt(3.0 / shape[-1]) if len(shape) >= 2 and shape[-1] else 1.0
            lo, hi = -a, a
        else:
            lo, hi = -2.0, 2.0
        v = round_dt(np.asarray(rng.uniform(lo, hi, size=shape)), dt)
    return np.asarray(v, dtype=np.float64).reshape(shape)


class Evaluator:
    """Runs a Program's statements on the model (see the module comment)."""

    def __init__(self, prog, seed=None, dims=None):
        self.prog = prog
        self.dims = dims if dims is not None else prog.dims()
        self.seed = int(prog.header.get("seed", 1)) if seed is None else seed
        self.ranges = data_ranges(prog.header)
        self.scopes = {}
        self.res = Result()
        self.res.dims = dict(self.dims)
        self.decl_dims = set()

    # -- expressions --
    def ev(self, e):
        """Evaluate an expression."""
        from fz_lang import Int, Num, Str, Name, List, Call, Bin, Un
        if isinstance(e, Int):
            return e.v
        if isinstance(e, Num):
            return float(e.text)
        if isinstance(e, Str):
            return Key(e.s)
        if isinstance(e, List):
            return [self.ev(x) for x in e.items]
        if isinstance(e, Name):
            return self.lookup(e.id)
        if isinstance(e, Un):
            return self.unop(e.op, self.ev(e.a))
        if isinstance(e, Bin):
            return self.binop(e.op, self.ev(e.a), self.ev(e.b))
        if isinstance(e, Call):
            return self.call(e)
        raise AssertionError(e)

    def lookup(self, name):
        """A name's value: variables, dims, predeclared names."""
        if name in self.scopes:
            v = self.scopes[name]
            if v is None:
                fail("output '%s' is read before it is assigned", name)
            return v
        if name in self.decl_dims:
            return Size({(name,): 1})
        if name in DTYPES:
            return DType(name)
        if name == "inf":
            return INF
        if name == "pi":
            return math.pi
        fail("unknown name '%s'", name)

    def unop(self, op, a):
        """Unary - or ! on a number or tensor."""
        if op == "-":
            if isinstance(a, Tensor):
                if a.dt == "bool":
                    fail("unary '-' needs a numeric tensor")
                return unary("neg", a)
            if isinstance(a, (int, float, Size)) and not isinstance(a, bool):
                return -a
            fail("unary '-' on a %s", type(a).__name__)
        if isinstance(a, Tensor):
            if a.dt != "bool":
                fail("'!' needs a bool tensor")
            return Tensor("bool", a.shape, 1.0 - a.v, a.e.copy())
        if isinstance(a, int):
            return int(a == 0)
        fail("'!' on a %s", type(a).__name__)

    def binop(self, op, a, b):
        """A binary operator on tensors or compile-time values."""
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            for x in (a, b):
                if not isinstance(x, (Tensor, int, float)) or isinstance(x, bool):
                    fail("a %s next to a tensor", type(x).__name__)
            if op == "@":
                return matmul(a, b)
            return binary(op, a, b)
        return self.const_binop(op, a, b)

    def const_binop(self, op, a, b):
        """Compile-time arithmetic (docs/language.md 5.1)."""
        if isinstance(a, Size) or isinstance(b, Size):
            if isinstance(a, float) or isinstance(b, float):
                fail("a size cannot meet a real number")
            if op == "+":
                return sz_add(a, b)
            if op == "-":
                return sz_add(a, -b if isinstance(b, int) else -b)
            if op == "*":
                return sz_mul(a, b)
            if op == "/":
                q = Size.of(a).div(b)
                if q is None:
                    fail("division is not exact")
                return q
            if op in ("==", "!="):
                return int((Size.of(a) == Size.of(b)) == (op == "=="))
            fail("'%s' on sizes", op)
        if not all(isinstance(x, (int, float)) for x in (a, b)):
            fail("'%s' on %s and %s", op, type(a).__name__, type(b).__name__)
        if isinstance(a, int) and isinstance(b, int):
            if op == "/":
                if b == 0 or a % b:
                    fail("division %d / %d is not exact", a, b)
                return a // b
            if op == "@":
                fail("@ needs tensors")
            r = {"+": a + b, "-": a - b, "*": a * b, "==": a == b, "!=": a != b, "<": a < b, "<=": a <= b,
                 ">": a > b, ">=": a >= b, "&&": bool(a) and bool(b), "||": bool(a) or bool(b)}[op]
            return int(r)
        a, b = float(a), float(b)
        if op == "/":
            if b == 0:
                return math.copysign(INF, a) * math.copysign(1, b) if a != 0 and a == a else float("nan")
            return a / b
        if op in ("+", "-", "*"):
            return {"+": a + b, "-": a - b, "*": a * b}[op]
        if op in ("==", "!=", "<", "<=", ">", ">=", "&&", "||"):
            return int({"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b,
                        "&&": bool(a) and bool(b), "||": bool(a) or bool(b)}[op])
        fail("'%s' on numbers", op)

    def call(self, c):
        """A builtin call."""
        fn = c.fn
        args = [self.ev(a) for a in c.args]
        kw = {k: self.ev(v) for k, v in c.kwargs}
        d = self.dims

        def want(n_min, n_max, kws=()):
            """Check the argument count and keywords."""
            if not n_min <= len(args) <= n_max:
                fail("%s takes %d to %d arguments", fn, n_min, n_max)
            for k in kw:
                if k not in kws:
                    fail("%s has no argument '%s'", fn, k)

        if fn in UNARY and fn != "neg" or fn == "gelu":
            want(1, 1, ("approximate",) if fn == "gelu" else ())
            f = fn
            if fn == "gelu" and "approximate" in kw:
                ap = kw["approximate"]
                if not isinstance(ap, Key) or ap.s not in ("none", "tanh"):
                    fail("gelu: approximate must be \"none\" or \"tanh\"")
                f = "gelu_tanh" if ap.s == "tanh" else "gelu"
            x = args[0]
            if isinstance(x, Tensor):
                return unary(f, x)
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                return num_fold(f, x)
            fail("%s of a %s", fn, type(x).__name__)
        if fn in ("min", "max", "pow"):
            if fn == "max" and len(args) == 1:
                want(1, 1, ("axis", "keepdim"))
                if "axis" not in kw:
                    fail("max over a tensor needs axis=")
                return reduce("max", args[0], kw["axis"], bool(kw.get("keepdim", 0)), d)
            want(2, 2)
            a, b = args
            if isinstance(a, Tensor) or isinstance(b, Tensor):
                return binary(fn, a, b)
            if fn == "pow":
                try:
                    return float(math.pow(float(a), float(b)))
                except (ValueError, ZeroDivisionError):
                    return float("nan") if float(a) < 0 else INF
                except OverflowError:
                    return INF
            if isinstance(a, int) and isinstance(b, int):
                return min(a, b) if fn == "min" else max(a, b)
            a, b = float(a), float(b)
            if a != a or b != b:
                return float("nan")
            return min(a, b) if fn == "min" else max(a, b)
        if fn in ("sum", "mean"):
            want(1, 1, ("axis", "keepdim"))
            if "axis" not in kw:
                fail("%s needs axis=", fn)
            return reduce(fn, self.tensor(args[0], fn), kw["axis"], bool(kw.get("keepdim", 0)), d)
        if fn == "where":
            want(3, 3)
            return where(*args)
        if fn == "index":
            want(2, 2)
            return index(self.tensor(args[0], fn), args[1])
        if fn == "size":
            want(2, 2)
            t = self.tensor(args[0], fn)
            return t.shape[axis_of(args[1], t.rank)]
        if fn == "cast":
            want(2, 2)
            if not isinstance(args[1], DType):
                fail("cast needs a dtype")
            x = args[0]
            if not isinstance(x, Tensor):
                if isinstance(x, bool) or not isinstance(x, (int, float)):
                    fail("cast of a %s", type(x).__name__)
                if isinstance(x, float) and args[1].name in ("i32", "bool"):
                    fail("a real cannot be cast to %s", args[1].name)
                return const_tensor(x, args[1].name)
            return cast(x, args[1].name)
        if fn == "softmax":
            want(1, 1, ("axis",))
            return softmax(self.tensor(args[0], fn), kw.get("axis", -1))
        if fn in ("layernorm", "rmsnorm"):
            ln = fn == "layernorm"
            want(3 if ln else 2, 3 if ln else 2, ("eps",))
            eps = kw.get("eps", 1e-5 if ln else 1e-6)
            if not isinstance(eps, (int, float)):
                fail("eps must be a number")
            return layernorm(self.tensor(args[0], fn), args[1], args[2] if ln else None, float(eps), d)
        if fn == "linear":
            want(2, 3)
            return linear(self.tensor(args[0], fn), args[1], args[2] if len(args) > 2 else None, d)
        if fn == "reshape":
            want(2, 2)
            return reshape(self.tensor(args[0], fn), args[1], d)
        if fn == "transpose":
            want(1, 3)
            return transpose(self.tensor(args[0], fn), *args[1:])
        if fn == "permute":
            want(2, 2)
            return permute(self.tensor(args[0], fn), args[1])
        if fn == "slice":
            want(4, 4)
            return slice_(self.tensor(args[0], fn), args[1], args[2], args[3], d)
        if fn == "split":
            want(2, 2, ("axis",))
            return split(self.tensor(args[0], fn), args[1], kw.get("axis", -1), d)
        if fn == "chunk":
            want(2, 2, ("axis",))
            return chunk(self.tensor(args[0], fn), args[1], kw.get("axis", -1), d)
        if fn == "concat":
            want(1, 1, ("axis",))
            ts = list(args[0]) if isinstance(args[0], (list, tuple)) else args[0]
            return concat(ts, kw.get("axis", -1))
        if fn == "split_heads":
            want(2, 2)
            return split_heads(self.tensor(args[0], fn), args[1], d)
        if fn == "merge_heads":
            want(1, 1)
            return merge_heads(self.tensor(args[0], fn), d)
        if fn == "attention":
            want(3, 3, ("causal", "mask", "scale"))
            causal = kw.get("causal", 0)
            if isinstance(causal, Key):  # "none", "top_left", "bottom_right"
                if causal.s not in ("none", "top_left", "bottom_right"):
                    fail("attention: causal must be 0, 1, \"none\", \"top_left\" or \"bottom_right\"")
                causal = {"none": 0, "top_left": 1}.get(causal.s, causal.s)
            elif not isinstance(causal, int) or isinstance(causal, bool) or causal not in (0, 1):
                fail("attention: causal must be 0, 1, \"none\", \"top_left\" or \"bottom_right\"")
            sc = kw.get("scale")
            if sc is not None and not isinstance(sc, (int, float)):
                fail("attention: scale must be a number")
            return attention(args[0], args[1], args[2], causal, kw.get("mask"), sc, d)
        if fn == "conv2d":
            want(2, 3, ("stride", "padding", "dilation", "groups"))
            return conv2d(self.tensor(args[0], fn), args[1], args[2] if len(args) > 2 else None, kw.get("stride", 1),
                          kw.get("padding", 0), kw.get("dilation", 1), kw.get("groups", 1), d)
        if fn in ("maxpool2d", "avgpool2d"):
            want(2, 2, ("stride", "padding"))
            return pool2d(fn[:3], self.tensor(args[0], fn), args[1], kw.get("stride"), kw.get("padding", 0), d)
        if fn in ("adaptive_avg_pool2d", "global_avg_pool2d"):
            want(1 if fn == "global_avg_pool2d" else 2, 1 if fn == "global_avg_pool2d" else 2)
            if len(args) == 2 and pair(args[1], fn + ": output size") != [1, 1]:
                fail("%s: only output size 1 is supported", fn)
            x = self.tensor(args[0], fn)
            want_image(x, fn)
            return reduce("mean", x, [2, 3], True, d)
        if fn == "flatten":
            want(1, 2)
            return flatten(args[0], args[1] if len(args) > 1 else 1, d)
        if fn == "batchnorm":
            want(5, 6, ("eps",))
            eps = args[5] if len(args) > 5 else kw.get("eps", 1e-5)
            if not isinstance(eps, (int, float)) or isinstance(eps, bool):
                fail("batchnorm: eps must be a number")
            return batchnorm(self.tensor(args[0], fn), *args[1:5], eps, d)
        if fn in ("hardsigmoid", "hardswish"):
            want(1, 1)
            x = self.tensor(args[0], fn)
            return hardsigmoid(x) if fn == "hardsigmoid" else hardswish(x)
        if fn == "conv_size":
            want(2, 2, ("stride", "padding", "dilation"))
            h = args[0]
            if isinstance(h, bool) or not isinstance(h, (int, Size)):
                fail("conv_size: the size must be an integer or a dim")
            ints = [args[1], kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1)]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
                fail("conv_size: kernel, stride, padding and dilation must be integers")
            k, st, p, dl = ints
            if k < 1 or st < 1 or p < 0 or dl < 1:
                fail("conv_size: kernel, stride and dilation must be >= 1 and padding >= 0")
            return window_size(h, k, st, p, p, dl)
        fail("unknown function '%s'", fn)

    def tensor(self, x, fn):
        """x, which must be a tensor."""
        if not isinstance(x, Tensor):
            fail("%s needs a tensor", fn)
        return x

    # -- statements --
    def shape_of(self, typ):
        """The symbolic shape of a declared type."""
        if typ.dt not in DTYPES:
            fail("unknown type '%s'", typ.dt)
        sizes = []
        for s in typ.sizes:
            v = self.ev(s)
            if isinstance(v, bool) or not isinstance(v, (int, Size)) or (isinstance(v, int) and v < 0):
                fail("a size must be a non-negative integer or size")
            sizes.append(v)
        if len(sizes) > 8:
            fail("rank above 8")
        return tuple(sizes)

    def concrete(self, shape):
        """A declared tensor's run-time sizes: empty inputs and weights are
        not supported (docs/architecture.md, Decisions), empty values
        inside a program are."""
        out = []
        for s in shape:
            n = sz_eval(s, self.dims)
            if n < 1:
                raise FzRunError("a declared tensor is empty or negative at run time")
            out.append(n)
        return tuple(out)

    def bind(self, name, val):
        """Bind a name (an output: type checked)."""
        if name in self.res.out_types:
            if not isinstance(val, Tensor):
                fail("output '%s' is assigned a non-tensor", name)
            dt, shape = self.res.out_types[name]
            if val.dt != dt or val.shape != shape:
                fail("output '%s' is declared %s but is assigned %s", name, shape_str(dt, shape), val.typestr())
        self.scopes[name] = val

    def run(self):
        """Run every statement, then finish()."""
        for st in self.prog.stmts:
            self.stmt(st)
        return self.finish()

    def stmt(self, st):
        """Run one statement."""
        k = st.kind
        if k == "model":
            self.res.name = st.names[0]
        elif k == "dim":
            for n in st.names:
                if n in self.decl_dims or n in self.scopes:
                    fail("'%s' is already declared", n)
                if n not in self.dims:
                    fail("dim %s has no run-time size in the header", n)
                self.decl_dims.add(n)
        elif k in ("input", "weight"):
            name = st.names[0]
            shape = self.shape_of(st.typ)
            dt = st.typ.dt
            if k == "input":
                if name in self.scopes or name in self.decl_dims:
                    fail("'%s' is already declared", name)
                v = make_data(name, dt, self.concrete(shape), self.seed, self.ranges.get(name), False)
                t = Tensor(dt, shape, v, np.zeros_like(v), nonneg=dt != "bool" and bool(np.all(v >= 0)))
                self.res.inputs[name] = t
            else:
                key = self.ev(st.expr)
                if not isinstance(key, Key) or not key.s:
                    fail("a weight key must be a key path")
                if key.s in self.res.weights:
                    t = self.res.weights[key.s]
                    if t.dt != dt or t.shape != shape:
                        fail("weight '%s' is declared with two types", key.s)
                else:
                    v = make_data(key.s, dt, self.concrete(shape), self.seed, self.ranges.get(key.s), True)
                    t = Tensor(dt, shape, v, np.zeros_like(v))
                    self.res.weights[key.s] = t
            self.scopes[name] = t
        elif k == "output":
            name = st.names[0]
            if name in self.scopes or name in self.decl_dims:
                fail("'%s' is already declared", name)
            self.res.out_types[name] = (st.typ.dt, self.shape_of(st.typ))
            self.scopes[name] = None
        elif k in ("let", "set"):
            val = self.ev(st.expr)
            if len(st.names) > 1:
                if not isinstance(val, tuple) or len(val) != len(st.names):
                    fail("the right-hand side does not have %d values", len(st.names))
                vals = val
            else:
                vals = (val,)
            for n, v in zip(st.names, vals):
                if k == "let" and (n in self.decl_dims or n in self.res.inputs or n in self.res.out_types):
                    fail("'%s' is already declared", n)
                if k == "set" and n not in self.scopes:
                    fail("assignment to an unknown name '%s'", n)
                if k == "set" and n in self.res.inputs:
                    fail("an input cannot be assigned")
                self.bind(n, v)

    def finish(self):
        """The end of the program: every output assigned, every dim bound."""
        if not self.res.out_types:
            fail("a program without outputs")
        for n in self.res.out_types:
            if self.scopes.get(n) is None:
                fail("output '%s' is never assigned", n)
            self.res.outputs[n] = self.scopes[n]
            if 0 in self.scopes[n].v.shape:
                raise FzRunError("output '%s' is empty (not supported)" % n)
        for n in self.dims:
            if n not in self.decl_dims:
                fail("the header names a dim %s the program does not declare", n)
        for dn in self.decl_dims:  # every dim alone on some input axis
            if not any(s == Size({(dn,): 1}) for t in self.res.inputs.values() for s in t.shape):
                fail("dim %s is not bound by any input axis", dn)
        return self.res


def evaluate(prog, seed=None, dims=None):
    """Evaluate a Program; raises FzTypeError / FzRunError."""
    return Evaluator(prog, seed, dims).run()

"""fz_gen.py - random, well-typed .attn programs for the differential fuzzer.

Gen(seed).program() returns program text; the same seed gives the same
program.  The generator builds the program one statement at a time and runs
each on the model (fz_model.py) as it goes, so it always knows every
value's dtype, symbolic shape and actual range: operands are chosen to fit
(broadcasting, matmul inner sizes, divisible axes), domain-restricted
functions get a wrapper that keeps them in their domain (unless the program
is 'wild', which lets NaN and inf through on purpose), and a statement
whose values blow up or lose all precision is taken back and another tried.

What is generated lives in one table, OPS (name, weight, method); the
elementwise functions come from fz_model.UNARY and BINARY below, so a new
unary builtin is one row in fz_model.UNARY (with its accuracy) and a new
binary one is one entry in BINARY.
"""
import math
import random

import numpy as np

import fz_lang as L
import fz_model as M

# binary elementwise operators and builtins: name -> (syntax, dtypes)
BINARY = {"+": ("op", "num"), "-": ("op", "num"), "*": ("op", "num"), "/": ("op", "num"),
          "min": ("call", "num"), "max": ("call", "num"), "pow": ("call", "num")}
COMPARE = ["<", "<=", ">", ">=", "==", "!="]
CONSTS = [1, 2, 3, 4, 5, 7, 8, 11, 13, 16]
DIM_VALUES = [1, 1, 2, 2, 3, 3, 4, 5, 7, 11, 13, 17]
SEQ_VALUES = [1, 2, 3, 5, 7, 9, 16, 17, 31, 33, 64, 65, 70]
MAX_ELEMS = 60000
# image sides (run-time H, W and constants): 1, odd, primes, even
IMG_VALUES = [1, 2, 3, 4, 5, 7, 8, 9, 11, 13, 16]
CHANNELS = [1, 2, 3, 4, 5, 6, 8, 12, 16]
# sizes beyond the CPU gemm's blocks (KC 256 / 384, NC 144 / 480)
BIG = [145, 257, 385, 400, 481, 520]


class Skip(Exception):
    """The chosen operation does not apply to the current pool."""


# ---- AST helpers ---------------------------------------------------------------

def N(x):
    """A name."""
    return L.Name(x)


def C(fn, *args, **kw):
    """A call with positional and keyword arguments."""
    return L.Call(fn, list(args), list(kw.items()))


def B(op, a, b):
    """A binary operation."""
    return L.Bin(op, a, b)


def I(v):
    """An integer literal (unary minus for a negative one)."""
    return L.Int(v) if v >= 0 else L.Un("-", L.Int(-v))


def F(x):
    """A real literal (unary minus for a negative one, inf by name)."""
    if x == float("inf"):
        return N("inf")
    if x == -float("inf"):
        return L.Un("-", N("inf"))
    return L.Num(L.fmt_num(x)) if x >= 0 else L.Un("-", L.Num(L.fmt_num(-x)))


NEG_INF = L.Un("-", N("inf"))


def size_ast(s):
    """A size (int or symbolic) as an expression."""
    return L.Parser(M.fmt_size(s)).expr()


def type_ast(dt, shape):
    """A tensor type."""
    return L.Type(dt, [size_ast(s) for s in shape])


class Gen:
    """One program under construction (see the module comment)."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        self.seed = seed
        r = self.r
        self.dt = r.choices(["f32", "bf16", "f16"], [8, 1, 1])[0]
        self.wild = r.random() < 0.08
        self.dimvals = {}
        self.ev = M.Evaluator(L.Program({}, []), seed=seed, dims=self.dimvals)
        self.decls, self.body, self.pool = [], [], []
        self.count = 0

    # -- naming and declarations --
    def fresh(self, p):
        """A new variable name with prefix p."""
        self.count += 1
        return "%s%d" % (p, self.count)

    def dim(self, role):
        """A dim for a role (batch, seq, kv, other): an existing one or new."""
        names = {"batch": "B", "seq": "T", "kv": "S", "other": "N", "height": "H", "width": "W"}
        n = names[role]
        if n not in self.dimvals:
            vals = SEQ_VALUES if role in ("seq", "kv") else IMG_VALUES if role in ("height", "width") else DIM_VALUES
            self.dimvals[n] = self.r.choice(vals)
            self.ev.decl_dims.add(n)
        return M.Size({(n,): 1})

    def size(self, dims_ok=True):
        """A random axis size: a dim or a small constant."""
        r = self.r
        if dims_ok and r.random() < 0.45:
            return self.dim(r.choice(["batch", "seq", "other", "batch"]))
        return r.choice(CONSTS)

    def rand_shape(self, rank):
        """A random shape of the given rank."""
        return tuple(self.size() for _ in range(rank))

    def val(self, name):
        """The model value of a variable."""
        return self.ev.scopes[name]

    def add_input(self, dt, shape, rng=None):
        """Declare a new input of dtype dt and shape (rng: its data range)."""
        name = self.fresh("x")
        if rng:
            self.ev.ranges[name] = rng
        st = L.Stmt("input", [name], type_ast(dt, shape))
        self.ev.stmt(st)
        self.decls.append(st)
        self.pool.append(name)
        return name

    def add_weight(self, dt, shape, rng=None):
        """Declare a new weight of dtype dt and a constant shape (rng: its data range)."""
        name = self.fresh("w")
        if rng:
            self.ev.ranges["p." + name] = rng
        st = L.Stmt("weight", [name], type_ast(dt, shape), L.Str("p." + name))
        self.ev.stmt(st)
        self.decls.append(st)
        self.pool.append(name)
        return name

    def let(self, expr, names=None):
        """Bind expr to a new variable (or several, for chunk/split)."""
        names = names or [self.fresh("v")]
        st = L.Stmt("let", names, None, expr)
        self.ev.stmt(st)
        for n in names:
            self.check_value(self.val(n))
        self.body.append(st)
        for n in names:
            if isinstance(self.val(n), M.Tensor):
                self.pool.append(n)
        return names[0] if len(names) == 1 else names

    def check_value(self, t):
        """Take back statements whose values are useless for testing."""
        if not isinstance(t, M.Tensor):
            return
        if t.v.size > MAX_ELEMS:
            raise Skip("too big")
        if self.wild or t.dt not in M.FLOATS or t.v.size == 0:
            return
        v, e = t.v, t.e
        fin = np.isfinite(v)
        if np.isnan(v).any() or (np.isinf(v) & (v > 0)).any():
            raise Skip("nan/inf")
        unchecked = ~np.isfinite(e)
        if unchecked.mean() > 0.05:
            raise Skip("unchecked")
        mag = np.abs(v[fin]).max() if fin.any() else 0.0
        if mag > 1e5 or (mag > 0 and mag < 1e-6):
            raise Skip("magnitude")
        if mag > 0 and np.max(e[fin & np.isfinite(e)], initial=0.0) > max(0.02, 64 * M.UDT[t.dt]) * mag + 1e-30:
            raise Skip("ill-conditioned")

    # -- snapshots, so a failed attempt leaves no trace --
    def snap(self):
        """The generator's state, for restore()."""
        ev = self.ev
        return (len(self.decls), len(self.body), list(self.pool), dict(ev.scopes), dict(ev.res.inputs),
                dict(ev.res.weights), dict(self.dimvals), set(ev.decl_dims), dict(ev.ranges), self.count)

    def restore(self, s):
        """Go back to a snap() state."""
        ev = self.ev
        nd, nb, self.pool, scopes, inputs, weights, dims, decl, ranges, self.count = s
        del self.decls[nd:]
        del self.body[nb:]
        ev.scopes.clear()
        ev.scopes.update(scopes)
        ev.res.inputs, ev.res.weights = inputs, weights
        self.dimvals.clear()
        self.dimvals.update(dims)
        ev.decl_dims.clear()
        ev.decl_dims.update(decl)
        ev.ranges = ranges

    # -- choosing operands --
    def pick(self, pred=lambda t: True):
        """A pool variable satisfying pred, recent ones more likely."""
        cands = [n for n in self.pool if pred(self.val(n))]
        if not cands:
            raise Skip("no operand")
        w = [1.0 + 3.0 * i / len(cands) for i in range(len(cands))]
        return self.r.choices(cands, w)[0]

    def pick_float(self, min_rank=0):
        """A variable of the program's float dtype with at least min_rank axes."""
        return self.pick(lambda t: t.dt == self.dt and t.rank >= min_rank)

    def number(self, dt, small=False):
        """A compile-time number for a tensor of dtype dt."""
        r = self.r
        if dt == "i32":
            return I(r.choice([-3, -1, 0, 1, 2, 3, 5]))
        x = r.choice([0.5, 1.0, 2.0, 0.25, 3.0, 0.1, 1.5, 0.7071067811865476, 1e-3])
        if not small and r.random() < 0.3:
            x = round(r.uniform(-4, 4), r.choice([1, 2, 6]))
        return F(x if r.random() < 0.7 else -x)

    def bcast_shape(self, shape):
        """A shape that broadcasts against shape: axes set to 1, leading
        axes dropped."""
        r = self.r
        out = [1 if r.random() < 0.35 else s for s in shape]
        while out and r.random() < 0.3:
            out.pop(0)
        return tuple(out)

    def operand(self, x, allow_const=True, within=None):
        """A second operand for an elementwise operation with pool var x:
        a number, a broadcast-compatible variable, or a new input.  within:
        the result must also broadcast with this shape."""
        r = self.r
        t = self.val(x)
        k = r.random()
        if allow_const and k < 0.3:
            return self.number(t.dt)
        if k < 0.55:
            ok = self.fits(t.shape, (t.dt,))
            ok2 = self.fits(within, (t.dt,)) if within is not None else (lambda u: True)
            try:
                return N(self.pick(lambda u: ok(u) and ok2(u) and (
                    within is None or self.fits(within, (t.dt,))(M.Tensor(t.dt, M.bshape(t.shape, u.shape), None, None)))))
            except Skip:
                pass
        return N(self.add_input(t.dt, self.bcast_shape(t.shape)))

    def positive(self, e, t):
        """e (of tensor value t) made positive, unless wild."""
        if self.wild:
            return e
        r = self.r
        k = r.randrange(4)
        c = F(r.choice([0.5, 1.0, 0.25, 2.0]))
        if k == 0:
            return B("+", C("abs", e), c)
        if k == 1:
            return B("+", B("*", e, e), c)
        if k == 2:
            return C("sigmoid", e)
        return C("exp", C("tanh", e))

    def tame(self, e, t, limit):
        """e bounded for exp-like functions (|x| <= limit)."""
        if self.wild or np.nanmax(np.abs(t.v), initial=0.0) <= limit:
            return e
        if self.r.random() < 0.5:
            return B("*", C("tanh", e), F(float(limit) / 2))
        return C("min", C("max", e, F(-float(limit))), F(float(limit)))

    # ---- the operations ----------------------------------------------------------
    def op_unary(self):
        """A unary builtin (or negation), its operand kept in its domain."""
        x = self.pick(lambda t: t.dt == self.dt or (t.dt == "i32" and self.r.random() < 0.3))
        t = self.val(x)
        fns = [f for f, row in M.UNARY.items() if f != "neg" and (row[2] == "numeric" or t.dt in M.FLOATS)]
        fn = self.r.choice(fns + ["neg"])
        arg = N(x)
        if fn == "neg":
            return self.let(L.Un("-", arg))
        lo = M.UNARY[fn][6]
        if lo is not None and not (t.nonneg and fn == "sqrt"):
            arg = self.positive(arg, t)
        if fn in ("exp", "exp2"):
            arg = self.tame(arg, t, 8 if t.dt == "f16" else 30)
        if fn == "gelu_tanh" and self.r.random() < 0.5:
            return self.let(C("gelu", arg, approximate=L.Str("tanh")))
        return self.let(C(fn, arg))

    def op_binary(self):
        """A binary operator or min/max/pow with a broadcasting second operand."""
        r = self.r
        x = self.pick(lambda t: t.dt == self.dt or (t.dt == "i32" and r.random() < 0.25))
        t = self.val(x)
        op = r.choice(list(BINARY))
        if t.dt == "i32":
            if op == "/":
                return self.let(B("/", N(x), I(r.choice([1, 2, 3, -2, 5]))))
            if op == "pow":
                return self.let(C("pow", N(x), I(r.choice([0, 1, 2, 3]))))
        a, b = N(x), self.operand(x)
        if r.random() < 0.3:
            a, b = b, a
        if op == "/" and t.dt in M.FLOATS and not self.wild:
            b = B("+", C("abs", b), F(r.choice([0.5, 1.0, 0.25])))
        if op == "pow" and t.dt in M.FLOATS:
            if r.random() < 0.5:
                b = F(r.choice([2.0, 3.0, 0.5, -1.0, 1.5, 2.5, 0.0]))
                if not self.wild:
                    a = B("+", C("abs", a), F(0.25))
            else:
                if not self.wild:
                    a = B("+", C("abs", a), F(0.25))
                    b = C("tanh", b)
        if BINARY[op][0] == "op":
            return self.let(B(op, a, b))
        return self.let(C(op, a, b))

    def fits(self, shape, dts):
        """A predicate: a tensor of one of dts that broadcasts with shape."""
        def ok(u):
            if u.dt not in dts:
                return False
            try:
                M.bshape(shape, u.shape)
                return True
            except M.FzTypeError:
                return False
        return ok

    def cond(self, shape):
        """A bool expression that broadcasts with shape: a comparison, a
        bool variable, combinations."""
        r = self.r
        k = r.random()
        if k < 0.2:
            try:
                return N(self.pick(self.fits(shape, ("bool",))))
            except Skip:
                pass
        if k < 0.3:
            return N(self.add_input("bool", self.bcast_shape(shape), rng=(r.choice([0.3, 0.5, 0.8]), 0)))
        x = self.pick(self.fits(shape, (self.dt, "i32")))
        c = B(r.choice(COMPARE), N(x), self.operand(x, within=shape))
        if r.random() < 0.25:
            c = L.Un("!", c)
        if r.random() < 0.25:
            c = B(r.choice(["&&", "||"]), c, self.cond(shape))
        return c

    def op_where(self):
        """where(condition, a, b)."""
        r = self.r
        x = self.pick_float()
        a = N(x)
        b = self.operand(x)
        if r.random() < 0.2:
            b = F(0.0)
        if r.random() < 0.5:
            a, b = b, a
        shape = self.val(x).shape
        if isinstance(b, L.Name):
            shape = M.bshape(shape, self.val(b.id).shape)
        return self.let(C("where", self.cond(shape), a, b))

    def op_cast(self):
        """Casts through i32, bool and the other float dtypes."""
        r = self.r
        x = self.pick(lambda t: t.dt in (self.dt, "i32", "bool"))
        t = self.val(x)
        k = r.randrange(5)
        if t.dt in M.FLOATS:
            if k == 0:  # through i32 and back, with integer arithmetic
                ie = C("cast", B("*", N(x), F(r.choice([3.0, 10.0, 1.0]))), N("i32"))
                ie = B(r.choice(["+", "-", "*", "/"]), ie, I(r.choice([2, 3, -1, 7])))
                if r.random() < 0.5:
                    ie = C(r.choice(["abs", "relu"]), ie)
                return self.let(C("cast", ie, N(self.dt)))
            if k == 1:
                return self.let(C("cast", N(x), N("i32")))
            if k == 2:
                return self.let(C("cast", N(x), N("bool")))
            other = r.choice([d for d in M.FLOATS if d != t.dt])
            return self.let(C("cast", C("cast", N(x), N(other)), N(self.dt)))
        return self.let(C("cast", N(x), N(r.choice([self.dt, "i32", "bool"]))))

    def op_index(self):
        """index() arithmetic: positions as values, distance masks."""
        r = self.r
        x = self.pick(lambda t: t.rank >= 1)
        t = self.val(x)
        ax = r.randrange(-t.rank, t.rank)
        i = C("index", N(x), I(ax))
        k = r.randrange(3)
        if k == 0:
            e = C("cast", B(r.choice(["*", "-", "+"]), i, I(r.choice([2, 3, -1]))), N(self.dt))
            ishape = tuple(s if a == ax % t.rank else 1 for a, s in enumerate(t.shape))
            y = self.pick(self.fits(ishape, (self.dt,)))
            return self.let(B("+", B("*", e, F(0.1)), N(y)))
        if k == 1 and t.rank >= 2:
            ax2 = r.choice([a for a in range(-t.rank, 0) if a % t.rank != ax % t.rank])
            j = C("index", N(x), I(ax2))
            d = C("abs", B("-", i, j)) if r.random() < 0.5 else B("-", j, i)
            return self.let(B(r.choice(COMPARE), d, I(r.choice([0, 1, 2, 3]))))
        return self.let(B("+", i, I(r.choice([0, 1, -2]))))

    def op_reduce(self):
        """sum / mean / max over random axes, keepdim or not."""
        r = self.r
        x = self.pick(lambda t: t.rank >= 1 and (t.dt == self.dt or t.dt == "i32"))
        t = self.val(x)
        fn = "max" if t.dt == "i32" else r.choice(["sum", "mean", "max"])
        if r.random() < 0.5:
            axis = I(r.randrange(-t.rank, t.rank))
        else:
            axes = r.sample(range(t.rank), r.randint(1, t.rank))
            axis = L.List([I(a - t.rank if r.random() < 0.3 else a) for a in axes])
        kw = {"axis": axis}
        if r.random() < 0.6:
            kw["keepdim"] = I(r.choice([0, 1, 1]))
        return self.let(C(fn, N(x), **kw))

    def op_softmax(self):
        """softmax over the last or a random axis."""
        x = self.pick_float(1)
        t = self.val(x)
        if self.r.random() < 0.6:
            return self.let(C("softmax", N(x)))
        return self.let(C("softmax", N(x), axis=I(self.r.randrange(-t.rank, t.rank))))

    def norm_params(self, d, n):
        """n vectors of size d (weights when d is a constant)."""
        if isinstance(d, int) and self.r.random() < 0.8:
            return [N(self.add_weight(self.dt, (d,))) for _ in range(n)]
        return [N(self.add_input(self.dt, (d,))) for _ in range(n)]

    def op_norm(self):
        """layernorm or rmsnorm."""
        r = self.r
        x = self.pick_float(1)
        d = self.val(x).shape[-1]
        kw = {}
        if r.random() < 0.5:
            kw["eps"] = F(r.choice([1e-5, 1e-6, 0.1, 1e-3]))
        if r.random() < 0.5:
            w, b = self.norm_params(d, 2)
            return self.let(C("layernorm", N(x), w, b, **kw))
        w, = self.norm_params(d, 1)
        return self.let(C("rmsnorm", N(x), w, **kw))

    def op_norm_primitive(self):
        """layernorm / rmsnorm written out (fuse-norm's patterns)."""
        r = self.r
        x = self.pick_float(1)
        d = self.val(x).shape[-1]
        w, b = self.norm_params(d, 2)
        eps = F(r.choice([1e-5, 1e-6, 0.0, 0.01]))
        ax = L.List([I(-1)]) if r.random() < 0.5 else I(-1)
        mean = lambda e: C("mean", e, axis=ax, keepdim=I(1))
        k = r.randrange(3)
        if k == 0:
            dd = self.let(B("-", N(x), mean(N(x))))
            y = B("*", N(dd), C("rsqrt", B("+", mean(B("*", N(dd), N(dd))), eps)))
            return self.let(B("+", B("*", y, w), b) if r.random() < 0.7 else y)
        if k == 1:
            return self.let(B("*", B("/", N(x), C("sqrt", B("+", mean(C("pow", N(x), I(2))), eps))), w))
        return self.let(B("*", N(x), C("rsqrt", B("+", mean(B("*", N(x), N(x))), eps))))

    def epilogue(self, e, shape):
        """An elementwise chain after a matmul (fuse-epilogue's patterns)."""
        r = self.r
        for _ in range(r.randint(1, 3)):
            k = r.randrange(6)
            if k == 0 and isinstance(shape[-1], int):
                e = B("+", e, N(self.add_weight(self.dt, (shape[-1],))))
            elif k == 1:
                e = C(r.choice(["relu", "gelu", "silu", "tanh", "sigmoid", "gelu_tanh", "abs"]), e)
            elif k == 2:
                e = B("*", e, N(self.add_input(self.dt, shape[:-1] + (1,))))
            elif k == 3:
                e = B("+", e, N(self.add_input(self.dt, self.bcast_shape(shape))))
            elif k == 4:
                keep = self.add_input("bool", shape[-2:] if len(shape) >= 2 else shape, rng=(0.6, 0))
                e = C("where", N(keep), e, L.Un("-", e) if r.random() < 0.5 else F(0.0))
            else:
                e = B("+", e, B("*", C("cast", C("index", e, I(-1)), N(self.dt)), F(0.01)))
        return e

    def op_matmul(self):
        """A matmul (linear, @ a weight, batched, transposed) with an epilogue chain."""
        r = self.r
        x = self.pick_float(1)
        t = self.val(x)
        K = t.shape[-1]
        n = r.choice(CONSTS) if r.random() < 0.85 else r.choice(BIG)
        k = r.randrange(4)
        if isinstance(K, int) and r.random() < 0.12:  # through a wide layer: K beyond the gemm's K blocks
            kb = r.choice(BIG)
            x = self.let(C("linear", N(x), N(self.add_weight(self.dt, (kb, K)))))
            t = self.val(x)
            K = kb
        if t.rank == 1 or k == 0:
            if not isinstance(K, int):
                raise Skip("linear needs a constant K")
            w = self.add_weight(self.dt, (n, K))
            args = [N(x), N(w)]
            if r.random() < 0.5:
                args.append(N(self.add_weight(self.dt, (n,))))
            e = C("linear", *args)
            shape = t.shape[:-1] + (n,)
        elif k == 1 and isinstance(K, int):
            e = B("@", N(x), N(self.add_weight(self.dt, (K, n))))
            shape = t.shape[:-1] + (n,)
        else:
            if t.rank < 2:
                raise Skip("rank")
            batch = self.bcast_shape(t.shape[:-2])
            if r.random() < 0.5:
                y = self.add_input(self.dt, batch + (K, n))
                e = B("@", N(x), N(y))
            else:
                y = self.add_input(self.dt, batch + (n, K))
                e = B("@", N(x), C("transpose", N(y)) if r.random() < 0.5 else C("transpose", N(y), I(-1), I(-2)))
            shape = M.bshape(t.shape[:-2], batch) + (t.shape[-2], n)
        if r.random() < 0.7:
            e = self.epilogue(e, shape)
        return self.let(e)

    def op_shape(self):
        """A shape operation: transpose, permute, reshape, slice, concat, chunk/split, split/merge_heads."""
        r = self.r
        x = self.pick(lambda t: t.rank >= 1)
        t = self.val(x)
        k = r.randrange(8)
        sh = list(t.shape)
        if k == 0 and t.rank >= 2:
            if r.random() < 0.5:
                return self.let(C("transpose", N(x)))
            a, b = r.sample(range(t.rank), 2)
            return self.let(C("transpose", N(x), I(a), I(b - t.rank)))
        if k == 1 and t.rank >= 2:
            p = list(range(t.rank))
            r.shuffle(p)
            return self.let(C("permute", N(x), L.List([I(a) for a in p])))
        if k == 2:  # reshape: merge, split or add/drop a 1
            j = r.randrange(t.rank)
            kind = r.randrange(3)
            if kind == 0 and j + 1 < t.rank:
                sh[j:j + 2] = [M.sz_mul(sh[j], sh[j + 1])]
            elif kind == 1 and isinstance(sh[j], int) and sh[j] > 1 and any(sh[j] % f == 0 for f in (2, 3, 5)):
                f = r.choice([f for f in (2, 3, 5) if sh[j] % f == 0])
                sh[j:j + 1] = [f, sh[j] // f]
            elif 1 in sh and r.random() < 0.5:
                sh.remove(1)
            else:
                sh.insert(r.randrange(t.rank + 1), 1)
            if len(sh) > 8:
                raise Skip("rank")
            lst = [size_ast(s) for s in sh]
            if r.random() < 0.2 and lst:
                lst[r.randrange(len(lst))] = I(-1)
            return self.let(C("reshape", N(x), L.List(lst)))
        if k == 3:  # slice
            j = r.randrange(t.rank)
            n = sh[j]
            if isinstance(n, int):
                if n < 2:
                    raise Skip("slice")
                a = r.randrange(n)
                b = r.randint(a + 1, n) if r.random() < 0.95 else a  # empty values are fine inside
                return self.let(C("slice", N(x), I(j), I(a), I(b)))
            start = 1 if r.random() < 0.2 else 0
            return self.let(C("slice", N(x), I(j - t.rank if r.random() < 0.3 else j), I(start), size_ast(n)))
        if k == 4:  # concat
            j = r.randrange(t.rank)
            parts = [N(x)]
            for _ in range(r.randint(1, 2)):
                if r.random() < 0.3:
                    parts.append(N(x))
                else:
                    s2 = list(sh)
                    s2[j] = r.choice(CONSTS)
                    parts.append(N(self.add_input(t.dt, tuple(s2))))
            r.shuffle(parts)
            return self.let(C("concat", L.List(parts), axis=I(j if r.random() < 0.5 else j - t.rank)))
        if k == 5:  # chunk / split on a constant axis
            js = [j for j in range(t.rank) if isinstance(sh[j], int) and sh[j] >= 2]
            if not js:
                raise Skip("split")
            j = r.choice(js)
            n = sh[j]
            if r.random() < 0.5 and any(n % c == 0 for c in (2, 3)):
                c = r.choice([c for c in (2, 3) if n % c == 0])
                names = [self.fresh("v") for _ in range(c)]
                return self.let(C("chunk", N(x), I(c), axis=I(j)), names)
            a = r.randint(1, n - 1)
            names = [self.fresh("v") for _ in range(2)]
            return self.let(C("split", N(x), L.List([I(a), I(n - a)]), axis=I(j)), names)
        if k == 6 and t.rank >= 2 and isinstance(sh[-1], int):
            hs = [h for h in (2, 3, 4) if sh[-1] % h == 0]
            if hs:
                return self.let(C("split_heads", N(x), I(r.choice(hs))))
        if k == 7 and t.rank >= 3:
            return self.let(C("merge_heads", N(x)))
        raise Skip("shape")

    def op_attention(self):
        """An attention block: the sugar or the primitive chain, from inputs or projections."""
        r = self.r
        dt = self.dt
        Bd = self.dim("batch") if r.random() < 0.7 else r.choice([1, 2])
        H = r.choice([1, 2, 3, 4])
        Hk = r.choice([h for h in (1, 2, 3, 4) if H % h == 0]) if r.random() < 0.4 else H
        T = self.dim("seq")
        S = T if r.random() < 0.4 else self.dim("kv")
        E = r.choice([1, 2, 3, 4, 5, 8, 13, 16, 32, 64])
        Ev = E if r.random() < 0.7 else r.choice([1, 3, 8, 16])
        src = None
        if r.random() < 0.4 and Hk == H and S == T and Ev == E:  # projections of a [B, T, D] value
            try:
                src = self.pick(lambda t: t.dt == dt and t.rank == 3 and t.shape[1] == T and isinstance(t.shape[2], int))
            except Skip:
                src = None
        if src:
            D = self.val(src).shape[2]
            Bd = self.val(src).shape[0]
            q, k_, v = [self.let(C("split_heads", C("linear", N(src), N(self.add_weight(dt, (H * E, D)))), I(H)))
                        for _ in range(3)]
        else:
            q = self.add_input(dt, (Bd, H, T, E))
            k_ = self.add_input(dt, (Bd, Hk, S, E))
            v = self.add_input(dt, (Bd, Hk, S, Ev))
        scores = (Bd, H, T, S)
        if r.random() < 0.4:  # the sugar
            kw = {}
            if r.random() < 0.5:
                kw["causal"] = r.choice([I(1), L.Str("top_left"), L.Str("bottom_right"), L.Str("bottom_right"),
                                         L.Str("none")])
            if r.random() < 0.4:
                if r.random() < 0.5:
                    m = self.add_input("bool", self.bcast_shape(scores), rng=(r.choice([0.5, 0.8, 0.95]), 0))
                else:
                    m = self.add_input(dt, self.bcast_shape(scores))
                kw["mask"] = N(m)
            if r.random() < 0.3:
                kw["scale"] = F(r.choice([0.125, 1.0, 0.3, 2.0]))
            o = self.let(C("attention", N(q), N(k_), N(v), **kw))
        else:
            o = self.attention_primitive(q, k_, v, Bd, H, Hk, T, S, E)
        if src and r.random() < 0.7:
            return self.let(C("linear", C("merge_heads", N(o)), N(self.add_weight(dt, (self.val(src).shape[2], H * Ev)))))
        return o

    def attention_primitive(self, q, k, v, Bd, H, Hk, T, S, E):
        """scores, modifications, masks, softmax, @ v, written out."""
        r = self.r
        dt = self.dt
        G = H // Hk
        if H != Hk:  # grouped, as docs/language.md 10.6 spells it out
            q = self.let(C("reshape", N(q), L.List([size_ast(s) for s in (Bd, Hk, G, T, E)])))
            k = self.let(C("reshape", N(k), L.List([size_ast(s) for s in (Bd, Hk, 1, S, E)])))
            Ev = self.val(v).shape[3]
            v = self.let(C("reshape", N(v), L.List([size_ast(s) for s in (Bd, Hk, 1, S, Ev)])))
        sc = B("*", B("@", N(q), C("transpose", N(k), I(-2), I(-1))), B("/", F(1.0), C("sqrt", I(E)))
                                                                        if r.random() < 0.7 else F(r.choice([0.5, 0.125])))
        s = self.let(sc)
        st = self.val(s)
        i = self.let(C("index", N(s), I(-2)))
        j = self.let(C("index", N(s), I(-1)))
        for _ in range(r.randint(0, 3)):
            k_ = r.randrange(7)
            if k_ == 0:  # bias tensor
                s = self.let(B("+", N(s), N(self.add_input(dt, self.bcast_shape(st.shape)))))
            elif k_ == 1:  # ALiBi
                hax = 1
                slope = C("exp2", B("*", B("+", C("cast", C("index", N(s), I(hax)), N(dt)), F(1.0)), F(-8.0 / H)))
                s = self.let(B("-", N(s), B("*", slope, C("cast", C("abs", B("-", N(i), N(j))), N(dt)))))
            elif k_ == 2:  # soft-capping
                c = r.choice([5.0, 20.0, 50.0, 1.0])
                s = self.let(B("*", F(c), C("tanh", B("/", N(s), F(c)))))
            elif k_ == 3:  # band masks
                d = r.choice([0, 1, 2, 3, -1, 5])
                conds = [B(">", N(j), B("+", N(i), I(d)) if d else N(i)),
                         B(">", C("abs", B("-", N(i), N(j))), I(abs(d) + 1)),
                         B("<", N(j), B("-", N(i), I(abs(d) + 2)))]
                c = r.choice(conds)
                if r.random() < 0.4:
                    c = B(r.choice(["||", "&&"]), c, r.choice(conds))
                if r.random() < 0.15:
                    c = L.Un("!", c)
                s = self.let(C("where", c, NEG_INF, N(s)))
            elif k_ == 4:  # padding lengths
                nS = M.sz_eval(S, self.dimvals)
                lens = self.add_input("i32", (Bd,), rng=(0, nS))
                shp = [size_ast(Bd)] + [I(1)] * (st.rank - 1)
                s = self.let(C("where", B(">=", N(j), C("reshape", N(lens), L.List(shp))), NEG_INF, N(s)))
            elif k_ == 5:  # a mask tensor
                m = self.add_input("bool", self.bcast_shape(st.shape), rng=(r.choice([0.5, 0.9]), 0))
                s = self.let(C("where", N(m), N(s), NEG_INF))
            else:  # arbitrary elementwise of the score
                s = self.let(B("+", B("*", N(s), F(r.choice([0.5, 2.0]))), C("cast", B("-", N(j), N(i)), N(dt))))
        p = C("softmax", N(s), axis=I(-1)) if r.random() < 0.7 else C("softmax", N(s))
        o = self.let(B("@", p, N(v)))
        if H != Hk:
            ot = self.val(o)
            o = self.let(C("reshape", N(o), L.List([size_ast(x) for x in (Bd, H, T, ot.shape[-1])])))
        return o

    def op_se(self):
        """Squeeze-and-excitation: the mean of a matmul over its rows gates
        the same matmul (fold-se's pattern)."""
        r = self.r
        dt = self.dt
        x = self.pick(lambda t: t.dt == dt and t.rank in (3, 4) and isinstance(t.shape[-1], int))
        t = self.val(x)
        C2 = r.choice([4, 6, 8, 12, 16])
        Rr = r.choice([c for c in (1, 2, 4) if C2 % c == 0])
        if t.rank == 3:
            h = self.let(C("linear", N(x), N(self.add_weight(dt, (C2, t.shape[2]))), N(self.add_weight(dt, (C2,)))))
            sq = self.let(C("mean", N(h), axis=I(r.choice([1, -2]))))
            bshape = [size_ast(t.shape[0]), I(1), I(C2)]
        else:
            h = self.let(C("linear", N(x), N(self.add_weight(dt, (C2, t.shape[3])))))
            sq = self.let(C("mean", N(h), axis=L.List([I(1), I(2)])))
            bshape = [size_ast(t.shape[0]), I(1), I(1), I(C2)]
        g = C("sigmoid", C("linear", C("relu", C("linear", N(sq), N(self.add_weight(dt, (C2 // Rr, C2))))),
                           N(self.add_weight(dt, (C2, C2 // Rr)))))
        return self.let(B("*", N(h), C("reshape", g, L.List(bshape))))

    def op_fold(self):
        """Compile-time numbers through builtins, then into a tensor."""
        r = self.r
        x = self.pick_float()
        fn = r.choice([f for f in M.UNARY if f != "neg"] + ["min", "max", "pow"])
        a = r.choice([0.5, 2.0, 3, 1, 0.25, 4.0])
        if self.wild:
            a = r.choice([-1.0, 0.0, -2, 0, 100.0])
        if fn in ("min", "max", "pow"):
            e = C(fn, F(float(a)) if isinstance(a, float) else I(a), r.choice([I(2), F(0.5), I(3)]))
        else:
            e = C(fn, F(float(a)) if isinstance(a, float) else I(a))
        if r.random() < 0.3:
            e = C("relu", C("sqrt", L.Un("-", F(1.0)))) if self.wild else B("/", F(1.0), C("sqrt", I(r.choice(CONSTS))))
        return self.let(B(r.choice(["*", "+", "-"]), N(x), e))

    # ---- images (NCHW) ---------------------------------------------------------
    def image(self, fresh_ok=True):
        """An image of the program's dtype with constant channels: a pool
        value (recent ones more likely) or a new input [N, C, H, W] with
        run-time or constant sides."""
        r = self.r
        ok = lambda t: t.dt == self.dt and t.rank == 4 and isinstance(t.shape[1], int) and t.shape[1] <= 32
        if not fresh_ok or r.random() < 0.75:
            try:
                return self.pick(ok)
            except Skip:
                if not fresh_ok:
                    raise
        n = self.dim("batch") if r.random() < 0.6 else r.choice([1, 2])
        sides = [self.dim(role) if r.random() < 0.5 else r.choice(IMG_VALUES) for role in ("height", "width")]
        return self.add_input(self.dt, (n, r.choice(CHANNELS), sides[0], sides[1]))

    def pad_kw(self, k, stride, dil):
        """padding= for a window: an int 0..3, a pair, "same" (stride 1), or none."""
        r = self.r
        c = r.random()
        if c < 0.15:
            return {}
        if c < 0.3 and stride == 1:
            return {"padding": L.Str("same")}
        if c < 0.45:
            return {"padding": L.List([I(r.randint(0, 3)), I(r.randint(0, 3))])}
        if c < 0.8:  # the usual (k - 1) / 2 of a square kernel
            return {"padding": I(dil * (k[0] - 1) // 2)}
        return {"padding": I(r.randint(0, 3))}

    def conv_expr(self, x, O=None, groups=None, k=None, bias=None):
        """conv2d(x, w, b?, stride=, padding=, dilation=, groups=) with a
        weight of constant [O, C/groups, kh, kw]."""
        r = self.r
        Cx = self.val(x).shape[1]
        if groups is None:
            g = r.random()
            if g < 0.55:
                groups = 1
            elif g < 0.8:
                groups = Cx
            else:
                groups = r.choice([d for d in range(1, Cx + 1) if Cx % d == 0])
        if O is None:
            O = groups * r.choice([1, 1, 2, 3]) if groups == Cx else groups * r.choice(
                [m for m in range(1, 17) if groups * m <= 32])
        if k is None:
            k = [r.choice([1, 3, 3, 5, 7])] * 2 if r.random() < 0.75 else [r.choice([1, 2, 3, 5]), r.choice([1, 3, 4, 7])]
        stride = r.choice([1, 1, 2])
        dil = 2 if r.random() < 0.25 else 1
        kw = {}
        if stride != 1:
            kw["stride"] = I(stride) if r.random() < 0.8 else L.List([I(stride), I(r.choice([1, 2]))])
        if dil != 1:
            kw["dilation"] = I(dil) if r.random() < 0.7 else L.List([I(1), I(dil)])
        kw.update(self.pad_kw(k, stride if "stride" not in kw or isinstance(kw["stride"], L.Int) else 2, dil))
        if groups != 1:
            kw["groups"] = I(groups)
        w = self.add_weight(self.dt, (O, Cx // groups, k[0], k[1]), rng=self.fan_in(Cx // groups * k[0] * k[1]))
        args = [N(x), N(w)]
        if bias if bias is not None else r.random() < 0.5:
            args.append(N(self.add_weight(self.dt, (O,), rng=(-0.5, 0.5))))
        return C("conv2d", *args, **kw)

    @staticmethod
    def fan_in(k):
        """A weight's data range for a sum over k terms."""
        a = round(math.sqrt(3.0 / k) * 1.5, 3)
        return (-a, a)

    def bn_expr(self, e, c):
        """An eval batchnorm of e over c channels (positive running variance)."""
        r = self.r
        ws = [N(self.add_weight(self.dt, (c,), rng=rg)) for rg in ((0.5, 1.5), (-0.5, 0.5), (-0.5, 0.5), (0.25, 2.0))]
        kw = {"eps": F(r.choice([1e-5, 1e-3, 0.1]))} if r.random() < 0.5 else {}
        return C("batchnorm", e, *ws, **kw)

    def act(self, e):
        """A CNN activation of e (or none)."""
        fn = self.r.choice(["relu", "relu", "hardswish", "hardsigmoid", "silu", "sigmoid", "gelu", "tanh", None])
        return C(fn, e) if fn else e

    def op_conv(self):
        """A convolution with an epilogue (bias, batchnorm, activation,
        residual) and perhaps a pool: fuse-epilogue, fold-bn, fuse-pool."""
        r = self.r
        x = self.image()
        e = self.conv_expr(x)
        if r.random() < 0.3:
            e = self.bn_expr(e, self.val(e.args[1].id).shape[0])
        e = self.act(e)
        if r.random() < 0.15:  # a residual of the same shape
            y = self.let(e)
            t = self.val(y)
            e = B("+", N(y), N(self.add_input(self.dt, self.bcast_shape(t.shape))))
        if r.random() < 0.35:
            e = self.pool_expr(e)
        return self.let(e)

    def pool_expr(self, e):
        """maxpool2d / avgpool2d of e: kernel 1..3 or a pair, stride the
        kernel, 1 or 2, padding at most half the kernel."""
        r = self.r
        fn = r.choice(["maxpool2d", "avgpool2d"])
        k = [r.choice([1, 2, 2, 3])] * 2 if r.random() < 0.8 else [r.choice([1, 2, 3]), r.choice([1, 2, 3])]
        kw = {}
        c = r.random()
        st = k
        if c < 0.3:
            st = [r.choice([1, 2])] * 2
            kw["stride"] = I(st[0])
        if r.random() < 0.3:
            if r.random() < 0.2 and st == [1, 1]:
                kw["padding"] = L.Str("same")
            else:
                kw["padding"] = I(min(k) // 2)
        ka = I(k[0]) if k[0] == k[1] else L.List([I(k[0]), I(k[1])])
        return C(fn, e, ka, **kw)

    def op_pool(self):
        """A pool of an image."""
        return self.let(self.pool_expr(N(self.image(fresh_ok=self.r.random() < 0.3))))

    def op_se_cnn(self):
        """Squeeze-and-excitation on a convolution's map: the mean over H, W
        (mean keepdim or not, adaptive_avg_pool2d), two linears or 1x1
        convs, sigmoid or hardsigmoid, the map scaled per (image, channel)
        (fold-se, fuse-excite); the scaled map then perhaps read by a conv
        or a pool (fold-se's scale folds into them)."""
        r = self.r
        x = self.image()
        f = self.let(self.act(self.conv_expr(x)))
        t = self.val(f)
        Cc = t.shape[1]
        Cr = r.choice([c for c in (1, 2, 3, 4, 8) if c <= max(Cc, 1)])
        gate = r.choice(["sigmoid", "sigmoid", "hardsigmoid"])
        k = r.randrange(3)
        bias = lambda n: [N(self.add_weight(self.dt, (n,), rng=(-0.5, 0.5)))] if r.random() < 0.6 else []
        if k == 0:  # linears on [N, C]
            s = C("mean", N(f), axis=L.List([I(2), I(3)]))
            h = C("relu", C("linear", s, N(self.add_weight(self.dt, (Cr, Cc), rng=self.fan_in(Cc))), *bias(Cr)))
            g = C(gate, C("linear", h, N(self.add_weight(self.dt, (Cc, Cr), rng=self.fan_in(Cr))), *bias(Cc)))
            g = C("reshape", g, L.List([size_ast(t.shape[0]), I(Cc), I(1), I(1)]))
        else:  # 1x1 convs on [N, C, 1, 1]
            s = C("mean", N(f), axis=L.List([I(2), I(3)]), keepdim=I(1)) if k == 1 else \
                C("adaptive_avg_pool2d", N(f), I(1))
            w1 = self.add_weight(self.dt, (Cr, Cc, 1, 1), rng=self.fan_in(Cc))
            h = C("relu", C("conv2d", s, N(w1), *bias(Cr)))
            w2 = self.add_weight(self.dt, (Cc, Cr, 1, 1), rng=self.fan_in(Cr))
            g = C(gate, C("conv2d", h, N(w2), *bias(Cc)))
        y = B("*", N(f), g) if r.random() < 0.8 else B("*", g, N(f))
        c = r.random()
        if c < 0.35:
            return self.let(self.pool_expr(y))
        if c < 0.7:
            ys = self.let(y)
            return self.let(self.act(self.conv_expr(ys)))
        return self.let(y)

    def op_mbconv(self):
        """A MobileNet block: 1x1 expand + batchnorm + hardswish, depthwise
        kxk + batchnorm + activation, SE with hardsigmoid, 1x1 project +
        batchnorm, residual (examples/mbconv.attn)."""
        r = self.r
        x = self.image()
        Cin = self.val(x).shape[1]
        E = Cin * r.choice([1, 2, 3, 4]) if Cin <= 8 else Cin
        e = self.let(self.act(self.bn_expr(self.conv_expr(x, O=E, groups=1, k=[1, 1], bias=False), E)))
        k = r.choice([3, 5, 7])
        kw = {"padding": I((k - 1) // 2), "groups": I(E)}
        if r.random() < 0.3:
            kw["stride"] = I(2)
        wd = self.add_weight(self.dt, (E, 1, k, k), rng=self.fan_in(k * k))
        d = self.let(C("hardswish", self.bn_expr(C("conv2d", N(e), N(wd), **kw), E)))
        if r.random() < 0.7:
            sq = r.choice([1, 2, 4, 8])
            s = C("relu", C("conv2d", C("adaptive_avg_pool2d", N(d), I(1)),
                            N(self.add_weight(self.dt, (sq, E, 1, 1), rng=self.fan_in(E))),
                            N(self.add_weight(self.dt, (sq,), rng=(-0.5, 0.5)))))
            g = C("hardsigmoid", C("conv2d", s, N(self.add_weight(self.dt, (E, sq, 1, 1), rng=self.fan_in(sq))),
                                   N(self.add_weight(self.dt, (E,), rng=(-0.5, 0.5)))))
            d = self.let(B("*", N(d), g))
        Cout = Cin if r.random() < 0.6 else r.choice(CHANNELS)
        y = self.bn_expr(self.conv_expr(d, O=Cout, groups=1, k=[1, 1], bias=False), Cout)
        if Cout == Cin and "stride" not in kw:
            y = B("+", y, N(x))
        return self.let(y)

    def op_head(self):
        """A classifier head: global average (three spellings), flatten, linear."""
        r = self.r
        x = self.image(fresh_ok=False)
        t = self.val(x)
        c = r.randrange(3)
        if c == 0:
            g = C("adaptive_avg_pool2d", N(x), I(1))
        elif c == 1:
            g = C("global_avg_pool2d", N(x))
        else:
            g = C("mean", N(x), axis=L.List([I(2), I(3)]), keepdim=I(1))
        f = C("flatten", g, I(1)) if r.random() < 0.7 else C("flatten", g)
        if r.random() < 0.5:
            f = C("linear", f, N(self.add_weight(self.dt, (r.choice(CONSTS), t.shape[1]), rng=self.fan_in(t.shape[1]))))
        return self.let(f)

    def op_image_misc(self):
        """flatten of a map, batchnorm on [N, C], hard activations of any value."""
        r = self.r
        c = r.randrange(3)
        if c == 0:
            x = self.image(fresh_ok=False)
            return self.let(C("flatten", N(x), I(r.choice([1, 2, -2]))))
        if c == 1:
            x = self.pick(lambda t: t.dt == self.dt and t.rank in (2, 4) and isinstance(t.shape[1], int))
            return self.let(self.bn_expr(N(x), self.val(x).shape[1]))
        x = self.pick_float()
        return self.let(C(r.choice(["hardsigmoid", "hardswish"]), N(x)))

    # ---- the whole program -----------------------------------------------------
    def start(self):
        """The first inputs."""
        r = self.r
        if r.random() < 0.3:  # a CNN program
            self.image()
            return
        for _ in range(r.randint(1, 2)):
            k = r.random()
            if k < 0.6:
                shape = (self.dim("batch"), self.dim("seq"), r.choice(CONSTS))
            else:
                shape = self.rand_shape(r.randint(1, 4))
            self.add_input(self.dt, shape)

    def program(self):
        """Add random operations, then assemble the program."""
        r = self.r
        self.start()
        n_ops = r.randint(2, 12)
        done = 0
        tries = 0
        while done < n_ops and tries < n_ops * 8:
            tries += 1
            name = r.choices([o[0] for o in OPS], [o[1] for o in OPS])[0]
            s = self.snap()
            try:
                getattr(self, "op_" + name)()
                done += 1
            except (Skip, M.FzTypeError, M.FzRunError):
                # the model is the type checker: a statement it refuses
                # (operands chosen separately that do not fit together) is
                # taken back like a useless one, so every program is valid
                self.restore(s)
        return self.assemble()

    def assemble(self):
        """Choose outputs, order the declarations, inline, prune, write the header."""
        r = self.r
        # an empty output is not supported (the model rejects it): values
        # that are empty at the chosen dims stay inside
        lets = [n for st in self.body for n in st.names
                if isinstance(self.val(n), M.Tensor) and 0 not in self.val(n).v.shape]
        if not lets:
            lets = [n for n in self.pool if 0 not in self.val(n).v.shape]
        used = set()
        for st in self.body:
            L.names_used(st.expr, used)
        sinks = [n for n in lets if n not in used]
        outs = []
        if lets:
            outs.append(lets[-1])
        for n in sinks + r.sample(lets, min(len(lets), 2)):
            if n not in outs and len(outs) < r.randint(1, 4):
                outs.append(n)
        stmts = [L.Stmt("model", ["fz"])]
        dims = sorted(d for d in self.dimvals if any(
            s == M.Size({(d,): 1}) for t in self.ev.res.inputs.values() for s in t.shape))
        if dims:
            stmts.append(L.Stmt("dim", dims))
        stmts += [s for s in self.decls if s.kind == "input"] + [s for s in self.decls if s.kind == "weight"]
        sets = []
        for k, n in enumerate(outs):
            t = self.val(n)
            stmts.append(L.Stmt("output", ["y%d" % k], type_ast(t.dt, t.shape)))
            sets.append(L.Stmt("set", ["y%d" % k], None, N(n)))
        body = inline(self.body, set(outs), r)
        stmts += body + sets
        header = {"dims": " ".join("%s=%d" % (d, self.dimvals[d]) for d in dims), "seed": str(self.seed)}
        if self.ev.ranges:
            header["data"] = " ".join("%s=%g:%g" % (k, a, b) for k, (a, b) in sorted(self.ev.ranges.items()))
        if not dims:
            del header["dims"]
        prog = L.Program(header, stmts)
        return prune(prog)


def inline(body, keep, r):
    """Substitute single-use variables into their one use (half of them):
    nested expressions, not only one operation per line."""
    body = list(body)
    for idx in range(len(body) - 1, -1, -1):
        st = body[idx]
        if len(st.names) != 1 or st.names[0] in keep or r.random() < 0.5:
            continue
        n = st.names[0]
        uses = [(k, s) for k, s in enumerate(body) if k > idx and s is not None and n in L.names_used(s.expr)]
        if len(uses) != 1:
            continue
        count = []

        def cnt(e):
            if isinstance(e, L.Name) and e.id == n:
                count.append(1)
        L.subst(uses[0][1].expr, cnt)
        if len(count) != 1:
            continue
        k, u = uses[0]
        body[k] = L.Stmt(u.kind, u.names, u.typ, L.subst(u.expr, lambda e: st.expr if e == N(n) else None))
        body[idx] = None
    return [s for s in body if s is not None]


def prune(prog):
    """Drop lets, inputs and weights that no output depends on."""
    stmts = prog.stmts
    while True:
        used = set()
        for s in stmts:
            if s.kind in ("let", "set"):
                L.names_used(s.expr, used)
            if s.kind == "set":
                used.update(s.names)
        keep = []
        for s in stmts:
            if s.kind == "let" and not any(n in used for n in s.names):
                continue
            if s.kind in ("input", "weight") and s.names[0] not in used:
                continue
            keep.append(s)
        if len(keep) == len(stmts):
            break
        stmts = keep
    out = L.Program(prog.header, stmts)
    # dims no input binds any more go too
    bound = set()
    for s in stmts:
        if s.kind == "input":
            for sz in s.typ.sizes:
                if isinstance(sz, L.Name):
                    bound.add(sz.id)
    dims = [d for s in stmts if s.kind == "dim" for d in s.names]
    used_dims = set()
    for s in stmts:
        for e in ([s.expr] if s.expr is not None else []) + (list(s.typ.sizes) if s.typ else []):
            L.names_used(e, used_dims)
    live = [d for d in dims if d in used_dims]
    if set(live) != set(dims):
        out.stmts = [L.Stmt("dim", live) if s.kind == "dim" else s for s in stmts if s.kind != "dim" or live]
        dv = out.dims()
        out.header["dims"] = " ".join("%s=%d" % (d, dv[d]) for d in live)
        if not live:
            del out.header["dims"]
    rng = [kv for kv in out.header.get("data", "").split() if kv.split("=")[0] in
           {s.names[0] for s in stmts if s.kind == "input"} | {s.expr.s for s in stmts if s.kind == "weight"}]
    if rng:
        out.header["data"] = " ".join(rng)
    else:
        out.header.pop("data", None)
    return out


# name, weight, method: everything the generator can add to a program
OPS = [
    ("unary", 10), ("binary", 10), ("where", 4), ("cast", 3), ("index", 3),
    ("reduce", 6), ("softmax", 4), ("norm", 3), ("norm_primitive", 3),
    ("matmul", 8), ("shape", 7), ("attention", 7), ("se", 2), ("fold", 2),
    ("conv", 9), ("pool", 3), ("se_cnn", 4), ("mbconv", 2), ("head", 2), ("image_misc", 2),
]
for _name, _w in OPS:
    assert hasattr(Gen, "op_" + _name), _name


def generate(seed):
    """Program text for a seed (deterministic)."""
    return L.render(Gen(seed).program())

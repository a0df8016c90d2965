"""fz_lang.py - the .attn subset the differential fuzzer works on: an AST,
a parser and a printer.

The subset is straight-line code: `model`, `dim`, `input`, `output`,
`weight`, `let` and assignments, with the full expression grammar of
docs/language.md section 6 (binary operators by precedence, unary - and !,
calls with keyword arguments, lists, numbers, strings, names).  Generated
programs are printed from this AST; regression programs are parsed back
into it, so the model (fz_model.py) and the reducer (fz_shrink.py) work on
either.  Header comments `# difffuzz: KEY VALUE...` carry the run-time
sizes and the data seed.
"""
import re


class Node:
    """Base of AST nodes: structural equality and a compact repr."""
    __slots__ = ()

    def _key(self):
        return tuple(getattr(self, s) for s in self.__slots__)

    def __eq__(self, other):
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self):
        return hash((type(self).__name__,) + tuple(
            tuple(x) if isinstance(x, list) else x for x in self._key()))

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(repr(x) for x in self._key()))


class Int(Node):
    """An integer literal."""
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v


class Num(Node):
    """A real literal, kept as its text so that it prints back unchanged."""
    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text


class Str(Node):
    """A string literal (a weight key)."""
    __slots__ = ("s",)

    def __init__(self, s):
        self.s = s


class Name(Node):
    """A name."""
    __slots__ = ("id",)

    def __init__(self, id):
        self.id = id


class Call(Node):
    """fn(args..., kw=value...); kwargs is a list of (name, expr)."""
    __slots__ = ("fn", "args", "kwargs")

    def __init__(self, fn, args, kwargs=()):
        self.fn = fn
        self.args = tuple(args)
        self.kwargs = tuple(kwargs)


class Bin(Node):
    """A binary operator."""
    __slots__ = ("op", "a", "b")

    def __init__(self, op, a, b):
        self.op, self.a, self.b = op, a, b


class Un(Node):
    """A unary operator (- or !)."""
    __slots__ = ("op", "a")

    def __init__(self, op, a):
        self.op, self.a = op, a


class List(Node):
    """A list [a, b, ...]."""
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = tuple(items)


class Type(Node):
    """dtype[sizes]; sizes is a tuple of expressions."""
    __slots__ = ("dt", "sizes")

    def __init__(self, dt, sizes):
        self.dt, self.sizes = dt, tuple(sizes)


class Stmt(Node):
    """One statement.  kind: model, dim, input, output, weight, let, set.
    names: the declared or bound names; typ: a Type (input/output/weight);
    expr: the right-hand side (weight key, let/set value)."""
    __slots__ = ("kind", "names", "typ", "expr")

    def __init__(self, kind, names, typ=None, expr=None):
        self.kind, self.names, self.typ, self.expr = kind, tuple(names), typ, expr


class Program:
    """A parsed program: header (dict of header keys to strings) and
    statements."""

    def __init__(self, header, stmts):
        self.header = dict(header)
        self.stmts = list(stmts)

    def copy(self):
        """A shallow copy."""
        return Program(self.header, self.stmts)

    def dims(self):
        """The run-time size of each dim, from the 'dims' header."""
        out = {}
        for kv in self.header.get("dims", "").split():
            k, v = kv.split("=")
            out[k] = int(v)
        return out


# ---- printing ----------------------------------------------------------------

PREC = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4,
        "+": 5, "-": 5, "*": 6, "/": 6, "@": 6}


def fmt_num(x):
    """A non-negative finite float as an .attn real literal."""
    assert x >= 0 and x == x and x != float("inf")
    s = repr(float(x))
    if "e" in s:
        mant, ex = s.split("e")
        if "." not in mant:
            mant += ".0"
        s = mant + "e" + ex
    return s


def pexpr(e, prec=0):
    """Print an expression; prec is the binding strength of the context."""
    if isinstance(e, Int):
        return str(e.v)
    if isinstance(e, Num):
        return e.text
    if isinstance(e, Str):
        return '"' + e.s.replace("\\", "\\\\").replace('"', '\\"').replace("{", "\\{") + '"'
    if isinstance(e, Name):
        return e.id
    if isinstance(e, List):
        return "[" + ", ".join(pexpr(x) for x in e.items) + "]"
    if isinstance(e, Call):
        parts = [pexpr(a) for a in e.args] + ["%s=%s" % (k, pexpr(v)) for k, v in e.kwargs]
        return "%s(%s)" % (e.fn, ", ".join(parts))
    if isinstance(e, Un):
        s = e.op + pexpr(e.a, 7)
        return "(" + s + ")" if prec > 7 else s
    if isinstance(e, Bin):
        p = PREC[e.op]
        s = "%s %s %s" % (pexpr(e.a, p), e.op, pexpr(e.b, p + 1))
        return "(" + s + ")" if prec > p else s
    raise TypeError("cannot print %r" % (e,))


def ptype(t):
    """A type as source text."""
    return "%s[%s]" % (t.dt, ", ".join(pexpr(s) for s in t.sizes))


def pstmt(s):
    """A statement as source text."""
    k = s.kind
    if k == "model":
        return "model " + s.names[0]
    if k == "dim":
        return "dim " + ", ".join(s.names)
    if k in ("input", "output"):
        return "%s %s: %s" % (k, s.names[0], ptype(s.typ))
    if k == "weight":
        return "weight %s: %s = %s" % (s.names[0], ptype(s.typ), pexpr(s.expr))
    if k == "let":
        return "let %s = %s" % (", ".join(s.names), pexpr(s.expr))
    if k == "set":
        return "%s = %s" % (", ".join(s.names), pexpr(s.expr))
    raise TypeError(k)


def render(p):
    """The program as .attn text, header comments first."""
    lines = []
    for k in sorted(p.header):
        lines.append("# difffuzz: %s %s" % (k, p.header[k]))
    lines += [pstmt(s) for s in p.stmts]
    return "\n".join(lines) + "\n"


# ---- parsing -----------------------------------------------------------------

class ParseError(Exception):
    """The text is outside the subset."""
    pass


TOKEN = re.compile(r"""
  (?P<ws>[ \t\r]+) | (?P<comment>\#[^\n]*) | (?P<nl>\n)
| (?P<num>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+) | (?P<int>\d+)
| (?P<str>"(?:[^"\\\n]|\\.)*")
| (?P<id>[A-Za-z_][A-Za-z0-9_]*)
| (?P<op>\.\.|->|<=|>=|==|!=|&&|\|\||[-+*/@<>!=()\[\]{},:.])
""", re.X)


def tokenize(text):
    """Tokens (kind, value, line) with NL inside brackets dropped."""
    out, depth, line, pos = [], 0, 1, 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise ParseError("line %d: unexpected character %r" % (line, text[pos]))
        pos = m.end()
        kind = m.lastgroup
        val = m.group(kind)
        if kind in ("ws", "comment"):
            continue
        if kind == "nl":
            line += 1
            if depth == 0 and out and out[-1][0] != "nl":
                out.append(("nl", "\n", line - 1))
            continue
        if kind == "op" and val in "([":
            depth += 1
        elif kind == "op" and val in ")]":
            depth -= 1
        out.append((kind, val, line))
    out.append(("nl", "\n", line))
    out.append(("eof", "", line))
    return out


class Parser:
    """Recursive descent over the token list, one method per grammar rule."""

    def __init__(self, text):
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, k=0):
        """The token k ahead."""
        return self.toks[self.i + k]

    def take(self, val=None, kind=None):
        """Consume a token, optionally of a given value or kind."""
        t = self.toks[self.i]
        if (val is not None and t[1] != val) or (kind is not None and t[0] != kind):
            raise ParseError("line %d: expected %s, got %r" % (t[2], val or kind, t[1]))
        self.i += 1
        return t

    def at(self, val):
        """Is the next token this operator or identifier?"""
        t = self.toks[self.i]
        return t[0] in ("op", "id") and t[1] == val

    # type = IDENT [ "[" [ expr { "," expr } ] "]" ]
    def type_(self):
        """A tensor type (the rule above)."""
        dt = self.take(kind="id")[1]
        sizes = []
        self.take("[")
        if not self.at("]"):
            sizes.append(self.expr())
            while self.at(","):
                self.take(",")
                sizes.append(self.expr())
        self.take("]")
        return Type(dt, sizes)

    # stmt (the subset: declarations, let and assignment)
    def stmt(self):
        """One statement (the rule above)."""
        t = self.peek()
        if t[0] != "id":
            raise ParseError("line %d: expected a statement, got %r" % (t[2], t[1]))
        kw = t[1]
        if kw == "model":
            self.take()
            return Stmt("model", [self.take(kind="id")[1]])
        if kw == "dim":
            self.take()
            names = [self.take(kind="id")[1]]
            while self.at(","):
                self.take(",")
                names.append(self.take(kind="id")[1])
            return Stmt("dim", names)
        if kw in ("input", "output", "weight"):
            self.take()
            name = self.take(kind="id")[1]
            self.take(":")
            ty = self.type_()
            if kw == "weight":
                self.take("=")
                return Stmt("weight", [name], ty, self.expr())
            return Stmt(kw, [name], ty)
        kind = "set"
        if kw == "let":
            self.take()
            kind = "let"
        names = [self.take(kind="id")[1]]
        while self.at(","):
            self.take(",")
            names.append(self.take(kind="id")[1])
        self.take("=")
        return Stmt(kind, names, None, self.expr())

    # expr = expr binop expr | "-" expr | "!" expr | primary  (by precedence)
    def expr(self, prec=1):
        """An expression at precedence level prec (1: lowest)."""
        if prec > 6:
            return self.unary()
        a = self.expr(prec + 1)
        while True:
            t = self.peek()
            if t[0] == "op" and PREC.get(t[1]) == prec:
                self.take()
                a = Bin(t[1], a, self.expr(prec + 1))
            else:
                return a

    def unary(self):
        """A unary operator or a primary."""
        if self.at("-") or self.at("!"):
            op = self.take()[1]
            return Un(op, self.unary())
        return self.primary()

    # primary = INT | FLOAT | STRING | IDENT | call | "(" expr ")" | list
    def primary(self):
        """A primary (the rule above)."""
        t = self.take()
        kind, val = t[0], t[1]
        if kind == "int":
            return Int(int(val))
        if kind == "num":
            return Num(val)
        if kind == "str":
            return Str(re.sub(r"\\(.)", r"\1", val[1:-1]))
        if kind == "op" and val == "(":
            e = self.expr()
            self.take(")")
            return e
        if kind == "op" and val == "[":
            items = []
            if not self.at("]"):
                items.append(self.expr())
                while self.at(","):
                    self.take(",")
                    items.append(self.expr())
            self.take("]")
            return List(items)
        if kind == "id":
            if self.at("("):
                return self.call(val)
            return Name(val)
        raise ParseError("line %d: unexpected %r" % (t[2], val))

    # call = IDENT "(" [ arg { "," arg } [ "," ] ] ")"
    def call(self, fn):
        """A call's arguments (the rule above)."""
        self.take("(")
        args, kwargs = [], []
        while not self.at(")"):
            if self.peek()[0] == "id" and self.peek(1)[1] == "=" and self.peek(1)[0] == "op":
                k = self.take()[1]
                self.take("=")
                kwargs.append((k, self.expr()))
            else:
                args.append(self.expr())
            if not self.at(")"):
                self.take(",")
        self.take(")")
        return Call(fn, args, kwargs)

    def program(self):
        """The statements of a program."""
        stmts = []
        while self.peek()[0] != "eof":
            if self.peek()[0] == "nl":
                self.take()
                continue
            stmts.append(self.stmt())
            self.take(kind="nl")
        return stmts


def parse(text):
    """Parse program text (with its '# difffuzz:' header) into a Program."""
    header = {}
    for line in text.splitlines():
        m = re.match(r"#\s*difffuzz:\s*(\w+)\s*(.*)$", line)
        if m:
            header[m.group(1)] = m.group(2).strip()
    return Program(header, Parser(text).program())


# ---- traversal ---------------------------------------------------------------

def children(e):
    """The direct sub-expressions of e."""
    if isinstance(e, Call):
        return list(e.args) + [v for _, v in e.kwargs]
    if isinstance(e, Bin):
        return [e.a, e.b]
    if isinstance(e, Un):
        return [e.a]
    if isinstance(e, List):
        return list(e.items)
    return []


def names_used(e, out=None):
    """The set of Name ids referenced in e."""
    out = set() if out is None else out
    if isinstance(e, Name):
        out.add(e.id)
    for c in children(e):
        names_used(c, out)
    return out


def subst(e, fn):
    """Rebuild e bottom-up, replacing each node n by fn(n) (None: keep)."""
    if isinstance(e, Call):
        e2 = Call(e.fn, [subst(a, fn) for a in e.args], [(k, subst(v, fn)) for k, v in e.kwargs])
    elif isinstance(e, Bin):
        e2 = Bin(e.op, subst(e.a, fn), subst(e.b, fn))
    elif isinstance(e, Un):
        e2 = Un(e.op, subst(e.a, fn))
    elif isinstance(e, List):
        e2 = List([subst(x, fn) for x in e.items])
    else:
        e2 = e
    r = fn(e2)
    return e2 if r is None else r

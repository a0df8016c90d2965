"""fz_shrink.py - reduces a failing program to a small one that still fails
the same way (delta debugging over the program's statements and
expressions, in the manner of C-Reduce's passes, applied to a fixpoint).

A candidate is kept when the model still accepts it as valid and the same
variant still fails with the same kind of finding (a mismatch stays a
mismatch of that variant; a crash or rejection keeps its first message
line).  The passes, cheapest and biggest first:
  outputs   drop an output (and everything only it needed)
  input     turn a let into an input of the same type (cuts its producers)
  hoist     replace an expression by one of its sub-expressions
  kwarg     drop a keyword argument (causal=, mask=, keepdim=, eps=, ...)
  number    replace a real literal by 1.0, 0.5 or 0.0
  dims      shrink a run-time size (to 1, 2, or by half)
  inline    substitute a variable used once into its use
"""
import re
import time

import fz_gen
import fz_lang as L
import fz_model as M
import fz_run


def message_key(f):
    """The part of a finding that must survive shrinking."""
    if f.kind in ("mismatch", "invalid"):
        return f.sig()
    first = re.sub(r"[\w./-]*\.attn:\d+:\d+", "FILE", f.detail.split("|")[0])
    first = re.sub(r"\d+", "N", first)
    return f.sig() + (first[:80],)


def types_of(prog):
    """The value of every variable of a valid program (evaluated)."""
    ev = M.Evaluator(prog)
    ev.run()
    return ev.scopes


class Shrinker:
    """One reduction: the finding to keep, the variant to run, a time budget."""
    def __init__(self, finding, cfg, log, budget_s):
        self.key = message_key(finding)
        self.variant = finding.variant
        self.cfg, self.log = cfg, log
        self.deadline = time.time() + budget_s
        self.tries = 0

    def fails(self, prog):
        """True when prog is valid and still fails the same way."""
        prog = fz_gen.prune(prog)
        text = L.render(prog)
        try:
            M.evaluate(L.parse(text))
        except (M.FzTypeError, M.FzRunError, ValueError, KeyError, TypeError, AttributeError):
            # a candidate the model cannot even evaluate (a dtype name where a
            # number belongs, ...) is not a valid program either
            return False
        self.tries += 1
        findings, _ = fz_run.check(text, self.cfg, tag="shrink", variants=[self.variant])
        return any(message_key(f) == self.key for f in findings)

    def attempt(self, best, candidates):
        """The first failing candidate (pruned), or None."""
        for c in candidates:
            if time.time() > self.deadline:
                return None
            if self.fails(c):
                c = fz_gen.prune(c)
                if len(L.render(c)) < len(L.render(best)) or self.smaller(c, best):
                    if self.log:
                        print("  shrink: %d lines, %d chars" % (len(c.stmts), len(L.render(c))), flush=True)
                    return c
        return None

    @staticmethod
    def smaller(a, b):
        """Are a's run-time sizes smaller than b's?"""
        return sum(a.dims().values()) < sum(b.dims().values())

    # -- candidate generators --
    def c_outputs(self, p):
        """Candidates: one output fewer."""
        outs = [s.names[0] for s in p.stmts if s.kind == "output"]
        if len(outs) < 2:
            return
        for o in outs:
            yield L.Program(p.header, [s for s in p.stmts if not (s.kind in ("output", "set") and s.names[0] == o)])

    def c_input(self, p):
        """Candidates: a let turned into an input of its type."""
        try:
            vals = types_of(p)
        except (M.FzTypeError, M.FzRunError):
            return
        lets = [k for k, s in enumerate(p.stmts) if s.kind == "let" and len(s.names) == 1]
        for k in reversed(lets):
            st = p.stmts[k]
            t = vals.get(st.names[0])
            if not isinstance(t, M.Tensor):
                continue
            inp = L.Stmt("input", st.names, fz_gen.type_ast(t.dt, t.shape))
            rest = p.stmts[:k] + p.stmts[k + 1:]
            at = max([j for j, s in enumerate(rest) if s.kind in ("dim", "model", "input")], default=-1) + 1
            yield L.Program(p.header, rest[:at] + [inp] + rest[at:])

    def rewrite_each(self, p, fn):
        """Programs with one node of one statement's expression rewritten:
        fn(node) yields replacements."""
        for k, st in enumerate(p.stmts):
            if st.expr is None or st.kind == "weight":
                continue
            nodes = []
            L.subst(st.expr, lambda e: nodes.append(e))
            for target in nodes:
                for rep in fn(target):
                    hit = [False]

                    def swap(e, target=target, rep=rep, hit=hit):
                        """Replace the first occurrence of target by rep."""
                        if not hit[0] and e == target:
                            hit[0] = True
                            return rep
                        return None
                    new = L.subst(st.expr, swap)
                    if new != st.expr:
                        yield L.Program(p.header, p.stmts[:k] + [L.Stmt(st.kind, st.names, st.typ, new)] + p.stmts[k + 1:])

    def c_hoist(self, p):
        """Candidates: an expression replaced by a sub-expression."""
        return self.rewrite_each(p, lambda e: [c for c in L.children(e) if not isinstance(c, (L.Int, L.Str))])

    def c_kwarg(self, p):
        """Candidates: a keyword argument dropped."""
        def drop(e):
            """Calls with one keyword argument less."""
            if isinstance(e, L.Call):
                for i in range(len(e.kwargs)):
                    yield L.Call(e.fn, e.args, e.kwargs[:i] + e.kwargs[i + 1:])
        return self.rewrite_each(p, drop)

    def c_number(self, p):
        """Candidates: a real literal made simpler."""
        def simpler(e):
            """Simpler literals than e."""
            if isinstance(e, L.Num):
                for t in ("1.0", "0.5", "0.0"):
                    if e.text != t:
                        yield L.Num(t)
        return self.rewrite_each(p, simpler)

    def c_dims(self, p):
        """Candidates: one run-time size smaller."""
        dims = p.dims()
        for d, v in sorted(dims.items()):
            for nv in sorted({1, 2, v // 2, v - 1}):
                if 0 < nv < v:
                    h = dict(p.header)
                    h["dims"] = " ".join("%s=%d" % (k, nv if k == d else x) for k, x in sorted(dims.items()))
                    yield L.Program(h, p.stmts)

    def c_inline(self, p):
        """Candidates: a variable used once substituted into its use."""
        for k, st in enumerate(p.stmts):
            if st.kind != "let" or len(st.names) != 1:
                continue
            n = st.names[0]
            uses = [j for j, s in enumerate(p.stmts) if j > k and s.expr is not None and n in L.names_used(s.expr)]
            if len(uses) != 1:
                continue
            j = uses[0]
            u = p.stmts[j]
            new = L.Stmt(u.kind, u.names, u.typ, L.subst(u.expr, lambda e: st.expr if e == L.Name(n) else None))
            stmts = list(p.stmts)
            stmts[j] = new
            del stmts[k]
            yield L.Program(p.header, stmts)

    def run(self, prog):
        """Apply the passes until none makes progress or the time is up."""
        best = fz_gen.prune(prog)
        passes = [self.c_outputs, self.c_input, self.c_hoist, self.c_kwarg, self.c_number, self.c_dims, self.c_inline]
        progress = True
        while progress and time.time() < self.deadline:
            progress = False
            for ps in passes:
                while time.time() < self.deadline:
                    c = self.attempt(best, ps(best))
                    if c is None:
                        break
                    best = c
                    progress = True
        return best


def shrink(text, finding, cfg, log=False, budget_s=600):
    """A smaller program failing like text does with finding."""
    s = Shrinker(finding, cfg, log, budget_s)
    best = s.run(L.parse(text))
    if log:
        print("  shrink: %d candidates run" % s.tries, flush=True)
    return L.render(best)

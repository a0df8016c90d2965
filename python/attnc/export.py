"""attnc.export: a PyTorch nn.Module -> a readable .attn program and its weights.

    import attnc
    attnc.export(module, (x,), "model.attn", weights="model.safetensors",
                 dynamic={"x": {0: "B", 1: "T"}})

The module is captured with torch.export (torch is imported here only, when
export runs: running generated libraries needs numpy alone).  Each aten op
of the captured graph becomes one `let` of the .attn language (docs/export.md
lists the ops covered and the ones refused); repeated layers whose graphs
are identical become one `for` loop with "{i}" weight keys; sizes that equal
the module's configuration (hidden size, heads, feed-forward width, layers,
...) are printed as `param`s; the weights the program reads are written to a
safetensors file under their state_dict keys.  Anything the language cannot
express is an ExportError naming the module path and the op.

CLI:  python -m attnc.export pkg.mod:function -o model.attn [--weights W]
      [--dynamic x=0:B,1:T] -- where function() returns (module, args) or
      (module, args, dynamic).
"""

import difflib
import json
import math
import os
import re
import struct
import sys
import types

__all__ = ["export", "ExportError", "ExportResult"]


class ExportError(Exception):
    """The module cannot be written as an .attn program (the message says why)."""


class ExportResult:
    """What export wrote: the program text, its path, the weights path and keys."""

    def __init__(self, text, path, weights, keys, params):
        self.text, self.path, self.weights, self.keys, self.params = text, path, weights, keys, params

    def __repr__(self):
        return "<attnc.export %s: %d weights>" % (self.path, len(self.keys))


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

KEYWORDS = {"model", "param", "dim", "input", "output", "weight", "fn", "let", "if",
            "else", "for", "in", "return"}
# builtins and predeclared names a let must not take
RESERVED = KEYWORDS | {
    "exp", "exp2", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "gelu", "gelu_tanh",
    "silu", "abs", "erf", "sin", "cos", "floor", "ceil", "round", "min", "max", "pow", "where",
    "index", "size", "cast", "sum", "mean", "softmax", "layernorm", "rmsnorm", "linear",
    "reshape", "transpose", "permute", "slice", "split", "chunk", "concat", "gather",
    "embedding", "expand", "broadcast_to", "zeros", "ones", "full", "split_heads",
    "merge_heads", "attention", "conv2d", "maxpool2d", "avgpool2d", "adaptive_avg_pool2d",
    "batchnorm", "flatten", "hardsigmoid", "hardswish", "f32", "f16", "bf16", "i32",
    "bool", "inf", "pi", "prefix", "int", "tensor"}

INT_MAX = 2 ** 62


def _ident(s):
    """A valid .attn identifier made from s."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", s).strip("_") or "t"
    if s[0].isdigit():
        s = "t" + s
    return s


def _flit(v):
    """A real literal of the language for the Python number v."""
    v = float(v)
    if math.isnan(v):
        return "(0.0 / 0.0)"
    if math.isinf(v):
        return "inf" if v > 0 else "(-inf)"
    r = repr(v)
    if "e" not in r and "." not in r:
        r += ".0"
    return r if v >= 0 else "(" + r + ")"


def _lit(v):
    """A literal for a Python scalar: bool and int as integers, float as a real."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v) if v >= 0 else "(%d)" % v
    return _flit(v)


def _op_name(target):
    """'aten.linear.default' for an OpOverload, the function name otherwise."""
    s = str(target)
    if s.startswith("<built-in function "):
        return s[len("<built-in function "):-1]
    return s


# Ops with a mapping, by packet name (aten.NAME) -- the overloads are checked
# in _emit_op; this list is what the error's "nearest supported" picks from
# and what docs/export.md lists.
ALTERNATIVES = {
    "gather": "aten.index_select (attnc's gather picks whole slices, as torch.index_select)",
    "cumsum": "a matmul with a triangular constant, or an input computed outside the model",
    "einsum": "aten.matmul with permute/reshape",
    "log_softmax": "aten.softmax followed by aten.log",
    "nonzero": "a boolean mask with torch.where",
    "masked_select": "a boolean mask with torch.where",
    "cond": "torch.where on both branches (attnc programs have no data-dependent control flow)",
    "while_loop": "a Python loop unrolled at export time",
    "empty": "torch.zeros / torch.full",
    "copy_": "a functional op (out-of-place)",
    "index_put": "torch.where with a mask",
    "topk": "nothing: attnc has no sorting op",
    "sort": "nothing: attnc has no sorting op",
    "argmax": "max(x, axis=...) (values only)",
    "group_norm": "layer_norm on a reshaped tensor",
}


# --------------------------------------------------------------------------
# the writer
# --------------------------------------------------------------------------

class _Writer:
    """Turns one torch.export ExportedProgram into .attn text and a weight dict."""

    def __init__(self, torch, ep, module, dyn_names, model_name, out_names):
        self.torch = torch
        self.ep = ep
        self.module = module
        self.model_name = model_name
        self.out_names = out_names
        self.graph = ep.graph
        self.sym_names = {}          # sympy symbol -> dim name
        self.dim_order = []
        self.used_params = set()
        self.param_defs = []         # (name, value text, comment)
        self.size_table = []         # (value, expr, params used)
        self.lines = []
        self.taken = set()
        self.ref = {}                # fx node -> name in the program
        self.weights = {}            # key -> tensor
        self.weight_names = {}       # key (or template) -> variable name
        self.declared = set()        # weight variable names declared (per scope, see below)
        self.indent = ""
        self.cur_path = None
        self.loop_tmpl = None        # (prefix, index) while emitting a loop body
        sig = ep.graph_signature
        self.param_of = {}           # placeholder name -> state_dict key
        for spec in sig.input_specs:
            kind = spec.kind.name
            if kind in ("PARAMETER", "BUFFER", "CONSTANT_TENSOR"):
                self.param_of[spec.arg.name] = spec.target
        self.user_inputs = list(sig.user_inputs)
        # tied weights: every alias of one tensor is saved under its first state_dict key
        self.canon, seen = {}, {}
        for k, t in module.state_dict(keep_vars=True).items():
            ident = (t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride()))
            if t.data_ptr() and ident in seen:
                self.canon[k] = seen[ident]
            else:
                seen[ident] = k
        self.dyn_names = dyn_names
        self.shape_ctx = False
        self.weight_keys = {}        # weight variable -> the keys it reads
        self.lift = {}               # addmm/mm node -> the N-d input it is computed on
        self.skip = set()            # nodes folded into a later one
        self.const = {}              # node -> the scalar every element of it has
        self.view_src = {}           # reshape node -> the node it reshapes (through reshapes)
        self.hints = {}              # dim symbol -> the example's size
        self.view_plan = {}          # end of a chain of layout ops -> (root, its one-line form)
        self.linear_exit = {}        # end of a layout chain after a linear -> (root, form, w, b)

    # ---- values and shapes ----------------------------------------------

    def val(self, node):
        return node.meta.get("val")

    def path_of(self, node):
        st = node.meta.get("nn_module_stack")
        if not st:
            return None, None
        path, typ = list(st.values())[-1]
        typ = getattr(typ, "__name__", None) or str(typ).split(".")[-1].strip("'>")
        return path, typ

    def where(self, node):
        p, _ = self.path_of(node)
        return p or (type(self.module).__name__ + " (top level)")

    def fail(self, node, msg):
        raise ExportError("%s: %s" % (self.where(node), msg))

    def dtype(self, t, node=None):
        torch = self.torch
        m = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16",
             torch.int64: "i32", torch.int32: "i32", torch.int16: "i32", torch.int8: "i32",
             torch.uint8: "i32", torch.bool: "bool"}
        if t not in m:
            msg = "dtype %s has no counterpart in attnc (f32, f16, bf16, i32, bool)" % t
            if t == torch.float64:
                msg += "; export the module and inputs in float32 (module.float())"
            if node is not None:
                self.fail(node, msg)
            raise ExportError(msg)
        return m[t]

    def sym_text(self, e, node=None):
        """A size expression of the language for a sympy expression."""
        import sympy
        if e.is_Integer:
            return str(int(e))
        if e.is_Symbol:
            if e not in self.sym_names:
                raise ExportError("%s: the size %s is not one of the dims named in dynamic= "
                                  "(torch.export made it: give it a name)" %
                                  (self.where(node) if node is not None else "shape", e))
            return self.sym_names[e]
        if isinstance(e, sympy.Add):
            terms = [self.sym_text(a, node) for a in e.as_ordered_terms()]
            out = terms[0]
            for t in terms[1:]:
                out += " - " + t[1:] if t.startswith("-") else " + " + t
            return out
        if isinstance(e, sympy.Mul):
            c, rest = e.as_coeff_Mul()
            fs = []
            for f in sympy.Mul.make_args(rest):
                if isinstance(f, sympy.Pow) and f.exp.is_Integer and f.exp > 0:
                    fs += [self.sym_text(f.base, node)] * int(f.exp)
                else:
                    t = self.sym_text(f, node)
                    fs.append("(" + t + ")" if ("+" in t or " - " in t) else t)
            body = "*".join(fs)
            if c == 1:
                return body
            if c == -1:
                return "-" + body
            if not c.is_Integer:
                return self._no_size(e, node)
            ct = str(int(c))
            if self.shape_ctx and int(c) > 0:
                for v, expr, ps in self.size_table:
                    if v == int(c) and "*" not in expr:
                        self.used_params.update(ps)
                        ct = expr
                        break
            return "%s*%s" % (ct, body)
        if isinstance(e, sympy.Pow) and e.exp.is_Integer and e.exp > 0:
            return "*".join([self.sym_text(e.base, node)] * int(e.exp))
        return self._no_size(e, node)

    def _no_size(self, e, node):
        import sympy
        shown = e.xreplace({s: sympy.Symbol(n) for s, n in self.sym_names.items()})
        raise ExportError("%s: the size %s cannot be expressed in attnc (sizes are sums of "
                          "products of dims and integers)" %
                          (self.where(node) if node is not None else "shape", shown))

    def size(self, s, node=None, shape_ctx=True):
        """The text of one size: an int (as a param where it is one) or a SymInt."""
        torch = self.torch
        if isinstance(s, torch.SymInt):
            e = s.node.expr
            if e.is_Integer:
                s = int(e)
            else:
                self.shape_ctx = shape_ctx
                try:
                    return self.sym_text(e, node)
                finally:
                    self.shape_ctx = False
        s = int(s)
        if shape_ctx:
            for v, expr, ps in self.size_table:
                if v == s:
                    self.used_params.update(ps)
                    return expr
        return str(s)

    def shape(self, node, shape_ctx=True):
        v = self.val(node)
        return "[" + ", ".join(self.size(s, node, shape_ctx) for s in v.shape) + "]"

    def ttype(self, node):
        v = self.val(node)
        return "%s%s" % (self.dtype(v.dtype, node), self.shape(node))

    def ndt(self, node):
        return self.dtype(self.val(node).dtype, node)

    def rank(self, node):
        return len(self.val(node).shape)

    # ---- naming -----------------------------------------------------------

    def fresh(self, base):
        base = _ident(base)
        if base in RESERVED:
            base += "_0"
        name, k = base, 1
        while name in self.taken:
            name = "%s_%d" % (base, k)
            k += 1
        self.taken.add(name)
        return name

    def emit(self, line):
        self.lines.append(self.indent + line if line else "")

    # ---- params -----------------------------------------------------------

    def collect_params(self, loops):
        """Params from the module's configuration; sizes equal to them print as them."""
        torch = self.torch
        cfg = {}
        hf = None
        for m in self.module.modules():
            c = getattr(m, "config", None)
            if c is not None and hasattr(c, "to_dict"):
                hf = c
                break
        if hf is not None:
            def g(*names):
                for n in names:
                    v = getattr(hf, n, None)
                    if isinstance(v, int) and not isinstance(v, bool):
                        return v
                return None
            cfg["D"] = (g("hidden_size", "n_embd", "d_model"), "hidden size")
            cfg["H"] = (g("num_attention_heads", "n_head"), "attention heads")
            hk = g("num_key_value_heads")
            if hk is not None and hk != cfg["H"][0]:
                cfg["HK"] = (hk, "key/value heads")
            f = g("intermediate_size", "n_inner")
            if f is None and cfg["D"][0] and hasattr(hf, "n_embd"):
                f = 4 * cfg["D"][0]
            cfg["F"] = (f, "feed-forward width")
            cfg["V"] = (g("vocab_size"), "vocabulary")
            cfg["P"] = (g("max_position_embeddings", "n_positions"), "positions")
            cfg["L"] = (g("num_hidden_layers", "n_layer"), "layers")
            hd = g("head_dim")
            if hd is not None:
                cfg["E"] = (hd, "head size")
        for m in self.module.modules():
            if isinstance(m, torch.nn.MultiheadAttention):
                cfg.setdefault("D", (m.embed_dim, "model width"))
                cfg.setdefault("H", (m.num_heads, "attention heads"))
            if isinstance(m, (torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer)):
                cfg.setdefault("F", (m.linear1.out_features, "feed-forward width"))
            if isinstance(m, (torch.nn.TransformerEncoder, torch.nn.TransformerDecoder)):
                cfg.setdefault("L", (m.num_layers, "layers"))
        # a param may not take a dim's name (dynamic={"x": {2: "H"}} and heads H)
        cfg = {k: v for k, v in cfg.items() if v[0] is not None and v[0] >= 1 and k not in self.dim_order}
        # a loop count that matches no configured layer count is L itself
        if loops and "L" not in cfg and "L" not in self.dim_order:
            cfg["L"] = (loops[0]["count"], "layers (repeated blocks)")
        self.cfg = cfg
        table = []

        def add(v, expr, ps):
            if v >= 2 and all(v != t[0] for t in table):
                table.append((v, expr, ps))
        for k in ("D", "F", "V", "P"):
            if k in cfg:
                add(cfg[k][0], k, {k})
        if "D" in cfg and "H" in cfg and "E" not in cfg and "E" not in self.dim_order and \
                cfg["D"][0] % cfg["H"][0] == 0:
            cfg["E"] = ("D / H", "head size")
            self.e_value = cfg["D"][0] // cfg["H"][0]
        if "E" in cfg:
            ev = cfg["E"][0] if isinstance(cfg["E"][0], int) else self.e_value
            deps = {"E", "D", "H"} if isinstance(cfg["E"][0], str) else {"E"}
            add(ev, "E", deps)
            if "HK" in cfg:
                add(cfg["HK"][0] * ev, "HK*E", deps | {"HK"})
        for k in ("H", "HK"):
            if k in cfg:
                add(cfg[k][0], k, {k})
        if "D" in cfg:
            for mul in (2, 3, 4):
                add(mul * cfg["D"][0], "%d*D" % mul, {"D"})
        if "F" in cfg:
            add(2 * cfg["F"][0], "2*F", {"F"})
        self.size_table = table

    # ---- loops ------------------------------------------------------------

    def seg_of(self, node):
        """(list prefix, index) of the outermost numbered module holding node."""
        st = node.meta.get("nn_module_stack")
        if not st:
            return None
        for path, _ in st.values():
            m = re.match(r"^(.*)\.(\d+)$", path)
            if m:
                return m.group(1), int(m.group(2))
        return None

    def is_sym(self, node):
        return isinstance(self.val(node), (self.torch.SymInt, int, float, bool)) and \
            node.op == "call_function"

    def find_loops(self, order):
        """Runs of blocks prefix.0, prefix.1, ... with identical graphs."""
        runs = []          # (prefix, [[nodes of block 0], [nodes of block 1], ...], start, end)
        i = 0
        while i < len(order):
            s = self.seg_of(order[i])
            if s is None or s[1] != 0:
                i += 1
                continue
            prefix = s[0]
            blocks, j, k = [], i, 0
            while j < len(order):
                cur = []
                while j < len(order) and self.seg_of(order[j]) == (prefix, k):
                    cur.append(order[j])
                    j += 1
                if not cur:
                    break
                blocks.append(cur)
                k += 1
            if len(blocks) >= 2:
                loop = self.check_loop(prefix, blocks, order[j:])
                if loop is not None:
                    loop["start"], loop["end"] = i, j
                    runs.append(loop)
                    i = j
                    continue
            i += 1
        return runs

    def block_sig(self, prefix, k, nodes, carry):
        """A canonical text of block k: equal for blocks that differ only by layer."""
        local = {n: idx for idx, n in enumerate(nodes)}
        pk = "%s.%d." % (prefix, k)

        def a(x):
            if isinstance(x, self.torch.fx.Node):
                if x in local:
                    return "%%%d" % local[x]
                if x is carry:
                    return "%carry"
                if x.op == "placeholder" and x.name in self.param_of:
                    key = self.param_of[x.name]
                    return "W:" + (prefix + ".{i}." + key[len(pk):] if key.startswith(pk) else key)
                if self.is_sym(x):
                    return "S:" + str(self.val(x))
                return "X:" + x.name
            if isinstance(x, (list, tuple)):
                return "[" + ",".join(a(y) for y in x) + "]"
            if isinstance(x, dict):
                return "{" + ",".join("%s=%s" % (kk, a(v)) for kk, v in sorted(x.items())) + "}"
            return repr(x)
        out = []
        for n in nodes:
            v = self.val(n)
            meta = str(getattr(v, "shape", v)) + str(getattr(v, "dtype", ""))
            path, _ = self.path_of(n)
            path = (path or "").replace(pk.rstrip("."), prefix + ".{i}")
            out.append("%s(%s;%s)%s@%s" % (_op_name(n.target), a(n.args), a(n.kwargs), meta, path))
        return "\n".join(out)

    def check_loop(self, prefix, blocks, after):
        """The loop description if the blocks chain through one value and match."""
        outs = []
        for k, nodes in enumerate(blocks):
            inside = set(nodes)
            used_out = [n for n in nodes if any(u not in inside and u in self.live for u in n.users)]
            if len(used_out) != 1:
                return None
            outs.append(used_out[0])
        for k in range(len(blocks) - 1):
            nxt = set(blocks[k + 1])
            if any(u not in nxt and u in self.live for u in outs[k].users):
                return None
        # the value block 0 takes where block 1 takes the previous block's output
        carry0 = None
        ext0 = [x for n in blocks[0] for x in n.all_input_nodes
                if x not in set(blocks[0]) and not self.is_sym(x) and x.op != "placeholder"]
        ext1 = set(x for n in blocks[1] for x in n.all_input_nodes if x not in set(blocks[1]))
        cands = [x for x in ext0 if x not in ext1]
        if len(set(cands)) == 1:
            carry0 = cands[0]
        else:
            ph = [x for n in blocks[0] for x in n.all_input_nodes
                  if x.op == "placeholder" and x.name not in self.param_of and x not in ext1]
            if len(set(ph)) != 1:
                return None
            carry0 = ph[0]
        sigs = [self.block_sig(prefix, 0, blocks[0], carry0)]
        for k in range(1, len(blocks)):
            sigs.append(self.block_sig(prefix, k, blocks[k], outs[k - 1]))
        if any(s != sigs[0] for s in sigs[1:]):
            return None
        return {"prefix": prefix, "blocks": blocks, "outs": outs, "carry0": carry0,
                "count": len(blocks)}

    # ---- the program ------------------------------------------------------

    def live_nodes(self):
        out = [n for n in self.graph.nodes if n.op == "output"][0]
        live, stack = set(), [out]
        while stack:
            n = stack.pop()
            if n in live:
                continue
            live.add(n)
            stack.extend(n.all_input_nodes)
        return live

    def build(self):
        torch = self.torch
        graph_inputs = {n.name: n for n in self.graph.nodes if n.op == "placeholder"}
        # dims: the symbols of the dynamic axes of the user inputs
        for iname, axes in self.dyn_names.items():
            node = graph_inputs.get(iname)
            if node is None:
                raise ExportError("dynamic= names input '%s', but forward's inputs are %s" %
                                  (iname, ", ".join(self.user_inputs)))
            for ax, dname in sorted(axes.items()):
                s = self.val(node).shape[ax]
                if not isinstance(s, torch.SymInt) or not s.node.expr.is_Symbol:
                    raise ExportError("input '%s' axis %d ('%s'): torch.export made it the "
                                      "constant %s (the module needs it fixed)" % (iname, ax, dname, s))
                e = s.node.expr
                if e in self.sym_names and self.sym_names[e] != dname:
                    continue        # torch.export proved two axes equal: keep the first name
                self.sym_names[e] = dname
                self.hints[e] = int(s.node.hint)
                if dname not in self.dim_order:
                    self.dim_order.append(dname)
        for n in self.graph.nodes:
            if n.op == "call_function" and "higher_order" in str(n.target):
                self.fail(n, "%s is data-dependent control flow, which attnc programs cannot "
                          "express (nearest supported: %s)" % (n.target, ALTERNATIVES["cond"]))
        live = self.live = self.live_nodes()
        self.node_pos = {n: k for k, n in enumerate(self.graph.nodes)}
        order = [n for n in self.graph.nodes
                 if n.op == "call_function" and n in live and not self.is_sym(n)]
        self.plan_lifts(order)
        loops = self.find_loops(order)
        free = (n for n in ["L"] + ["L%d" % k for k in range(2, len(loops) + 2 + len(self.dim_order))]
                if n not in self.dim_order)
        for lp in loops:
            lp["param"] = next(free)
        self.collect_params(loops)
        self.plan_views(order)
        for name in list(self.dim_order):
            self.taken.add(name)
        # inputs
        body_start = len(self.lines)
        in_decl = []
        for iname in self.user_inputs:
            node = graph_inputs[iname]
            v = self.val(node)
            if not hasattr(v, "shape"):
                raise ExportError("input '%s' is not a tensor (%r): pass it as a constant "
                                  "(functools.partial) or make it a tensor" % (iname, v))
            name = self.fresh(iname if iname not in RESERVED else "x")
            self.ref[node] = name
            in_decl.append("input %s: %s" % (name, self.ttype(node)))
        out_node = [n for n in self.graph.nodes if n.op == "output"][0]
        outs = list(out_node.args[0])
        out_decl, out_assign = [], []
        names = self.out_names or []
        for k, o in enumerate(outs):
            if not isinstance(o, torch.fx.Node):
                raise ExportError("output %d is the constant %r: attnc outputs are tensors" % (k, o))
            nm = names[k] if k < len(names) else ("y" if len(outs) == 1 else "y%d" % k)
            nm = self.fresh(nm if _ident(nm) not in RESERVED else ("y" if len(outs) == 1 else "y%d" % k))
            out_decl.append("output %s: %s" % (nm, self.ttype(o)))
            out_assign.append((nm, o))
        # the body
        loop_at = {lp["start"]: lp for lp in loops}
        i = 0
        while i < len(order):
            if i in loop_at:
                lp = loop_at[i]
                self.emit_loop(lp, len(loops))
                i = lp["end"]
                continue
            self.emit_node(order[i])
            i += 1
        self.indent = ""
        for nm, o in out_assign:
            src = self.ref[o] if o in self.ref else self.value_of(o)
            if self.ndt(o) != self.dtype(self.val(o).dtype):
                src = "cast(%s, %s)" % (src, self.ndt(o))
            self.emit("%s = %s" % (nm, src))
        body = self.prune(self.lines[body_start:])
        # header
        head = ["# Exported from %s by attnc.export (torch.export)." % type(self.module).__name__,
                "# Each block names the module it comes from; weights are state_dict keys.",
                "model " + self.model_name, ""]
        order_p = ["D", "H", "HK", "E", "F", "V", "P", "L"]
        for lp in loops:
            self.used_params.add(lp["param"])
        pl = []
        for k in order_p + sorted(set(self.cfg) - set(order_p)):
            if k in self.used_params and k in self.cfg:
                v, c = self.cfg[k]
                if k == "L" and loops and loops[0]["param"] == "L":
                    v = loops[0]["count"]
                pl.append("param %s = %s%s# %s" % (k, v, " " * max(1, 8 - len(str(v))), c))
        for lp in loops:
            if lp["param"] != "L":
                pl.append("param %s = %d   # blocks of %s" % (lp["param"], lp["count"], lp["prefix"]))
        head += pl + ([""] if pl else [])
        if self.dim_order:
            head += ["dim " + ", ".join(self.dim_order), ""]
        head += in_decl + out_decl + [""]
        return "\n".join(head + body).rstrip("\n") + "\n"

    MOVES = ("view", "reshape", "_unsafe_view", "unsqueeze", "squeeze", "flatten", "unflatten",
             "permute", "transpose", "t", "select", "slice", "contiguous", "clone", "alias",
             "detach", "lift_fresh_copy")

    def _opn(self, n):
        if not isinstance(n, self.torch.fx.Node) or n.op != "call_function":
            return None
        s = _op_name(n.target)
        return s.split(".")[1] if s.startswith("aten.") else s

    def plan_views(self, order):
        """A chain of layout ops (views, transposes, selects, slices) between two
        computing ops becomes one reshape / slice / permute / reshape of the
        chain's root: the chain's index map is found by replaying it on an
        arange, and the rewrite is checked by replaying both at two sets of
        dim values.  (nn.MultiheadAttention's [T, B] packed-QKV chain becomes
        the split_heads of hand-written code.)"""
        torch = self.torch
        for n in order:
            if self._opn(n) not in self.MOVES:
                continue
            users = [u for u in n.users if u in self.live]
            if not users or all(self._opn(u) in self.MOVES for u in users):
                continue
            r, chain = self.layout_chain(n)
            if not isinstance(r, torch.fx.Node) or not hasattr(self.val(r), "shape"):
                continue
            plan = None
            if sum(1 for c in chain if self._opn(c) not in ("contiguous", "clone", "alias",
                                                             "detach", "lift_fresh_copy")) >= 3:
                try:
                    plan = self._view_plan(r, chain)
                except Exception:
                    plan = None
            if plan is not None:
                self.view_plan[n] = (r, plan)
                continue
            try:
                self.plan_linear_exit(n, r, chain)
            except Exception:
                pass

    def plan_linear_exit(self, n, L, chain):
        """linear(A) seen through a layout chain whose last axis is the linear's
        output axis (nn.MultiheadAttention's [T*B, D] -> [T, B, D] -> [B, T, D])
        is linear(A') with A''s rows in the chain's order: A' is a layout chain
        of A's own root, and the matmul writes the final layout (its epilogue
        can then take the residual add that follows)."""
        torch = self.torch
        if self._opn(L) != "linear" or [u for u in L.users if u in self.live] != [chain[0]]:
            return
        for c, nxt in zip(chain, chain[1:]):
            if [u for u in c.users if u in self.live] != [nxt]:
                return
        A = L.args[0]
        if self._opn(A) not in self.MOVES or [u for u in A.users if u in self.live] != [L]:
            return
        o, achain = self.layout_chain(A)
        N = self.val(L).shape[-1]
        if not isinstance(N, int):
            return
        zsym = list(self.val(n).shape)
        asym = list(self.val(A).shape)
        dsym = zsym[:-1] + [asym[-1]]

        def index(a):
            yc = self._replay(L, chain, a)
            if not torch.equal(yc % N, torch.arange(N).expand(yc.shape)):
                raise ValueError("the chain moves the output axis")
            rows = (yc // N)[..., 0]
            ia = self._replay(o, achain, a)
            k = ia.shape[-1]
            return ia.reshape(-1, k)[rows.reshape(-1)].reshape(list(rows.shape) + [k])
        plan = self._view_plan(o, None, index, dsym, len(chain) + len(achain))
        if plan is None:
            return
        w = L.args[1]
        b = L.args[2] if len(L.args) > 2 else L.kwargs.get("bias")
        self.linear_exit[n] = (o, plan, w, b)

    def layout_chain(self, n):
        """(root, [layout ops from the root to n]): n's chain of MOVES ops."""
        chain = []
        while self._opn(n) in self.MOVES:
            chain.append(n)
            n = n.args[0]
        chain.reverse()
        return n, chain

    def _assign(self, k):
        return {sym: h + 3 * k for sym, h in self.hints.items()}

    def _conc(self, v, a):
        torch = self.torch
        if isinstance(v, torch.SymInt):
            return int(v.node.expr.xreplace(a))
        if isinstance(v, torch.fx.Node):
            return self._conc(self.val(v), a)
        if isinstance(v, (list, tuple)):
            return type(v)(self._conc(x, a) for x in v)
        return v

    def _replay(self, r, chain, a):
        """The chain applied to arange(numel(r)) at dim values a."""
        torch = self.torch
        rc = [self._conc(x, a) for x in self.val(r).shape]
        t = torch.arange(math.prod(rc), dtype=torch.int64).reshape(rc)
        for c in chain:
            args = [t] + [self._conc(x, a) for x in c.args[1:]]
            kw = {k: self._conc(v, a) for k, v in c.kwargs.items()}
            t = c.target(*args, **kw)
        return t

    def _view_plan(self, r, chain, index=None, dsym=None, nops=None):
        """The one-line form of chain (or of the index map index(a) into r's
        elements, of shape dsym, standing for nops ops); None if there is none."""
        torch = self.torch
        if index is None:
            index = lambda a: self._replay(r, chain, a)  # noqa: E731
            dsym = list(self.val(chain[-1]).shape)
            nops = len([c for c in chain if self._opn(c) not in ("contiguous", "clone", "alias", "detach")])
        a0 = self._assign(0)
        I = index(a0)
        rsym = list(self.val(r).shape)
        rc = [self._conc(x, a0) for x in rsym]
        dc = list(I.shape)
        rs = [math.prod(rc[j + 1:]) for j in range(len(rc))]
        flat = I.reshape(-1)
        if flat.numel() == 0:
            return None
        got = self._affine(I)
        dref = list(dsym)
        if got is None:
            # a constant axis of the result may merge two axes of r (heads and head
            # size into D): split it into the two factors that make the map affine
            for k, size in enumerate(dc):
                if got is not None or not isinstance(dsym[k], int) or size < 4:
                    continue
                for f in range(2, size):
                    if size % f == 0:
                        I2 = I.reshape(dc[:k] + [f, size // f] + dc[k + 1:])
                        got = self._affine(I2)
                        if got is not None:
                            I, dref = I2, dsym[:k] + [f, size // f] + dsym[k + 1:]
                            break
            if got is None:
                return None
        off, strides = got
        dc = list(I.shape)
        mapped = {j: [] for j in range(len(rc))}
        for k, st in enumerate(strides):
            if st is None:
                continue
            if st <= 0:
                return None
            for j in range(len(rc) - 1, -1, -1):
                if st % rs[j] == 0 and st < rs[j] * rc[j]:
                    mapped[j].append((k, st // rs[j], dc[k]))
                    break
            else:
                return None
        factors = []          # (size text, concrete size, dest axis or None, index)
        for j in range(len(rc)):
            idx_j = (off // rs[j]) % rc[j]
            sym_axis = not isinstance(rsym[j], int) and not (
                isinstance(rsym[j], torch.SymInt) and rsym[j].node.expr.is_Integer)
            if sym_axis:
                if len(mapped[j]) > 1:
                    return None
                if mapped[j]:
                    k, m, dk = mapped[j][0]
                    if m != 1 or idx_j != 0 or str(dref[k]) != str(rsym[j]):
                        return None
                    factors.append((self.size(rsym[j], None), rc[j], k, 0))
                else:
                    factors.append((self.size(rsym[j], None), rc[j], None, idx_j))
                continue
            rem, fl = rc[j], []
            for k, m, dk in sorted(mapped[j], key=lambda t: -t[1]):
                if rem % (m * dk):
                    return None
                fl.append((rem // (m * dk), None))
                fl.append((dk, k))
                rem = m
            fl.append((rem, None))
            # the offset along axis j, in the mixed radix of its factors
            digits, v = [], idx_j
            for size, k in reversed(fl):
                digits.append(v % size)
                v //= size
            digits.reverse()
            for (size, k), d in zip(fl, digits):
                if k is not None and d != 0:
                    return None
                if size > 1 or k is not None:
                    factors.append((self.size(size), size, k, d))
        # the form: reshape(r, F), slice each gap at its index, permute dests in order, reshape
        F = [f[0] for f in factors]
        text = self.value_of_name(r)
        ops = 0
        if [f[1] for f in factors] != rc or len(factors) != len(rc):
            text = "reshape(%s, [%s])" % (text, ", ".join(F))
            ops += 1
        for ax, f in enumerate(factors):
            if f[2] is None and f[1] > 1:
                text = "slice(%s, %d, %d, %d)" % (text, ax, f[3], f[3] + 1)
                ops += 1
        gaps = [ax for ax, f in enumerate(factors) if f[2] is None]
        dests = sorted((f[2], ax) for ax, f in enumerate(factors) if f[2] is not None)
        perm = gaps + [ax for _, ax in dests]
        if perm != list(range(len(perm))):
            text = "permute(%s, [%s])" % (text, ", ".join(map(str, perm)))
            ops += 1
        if [str(x) for x in dsym] != [str(f[0]) for f in factors if f[2] is not None] or perm != list(range(len(perm))):
            text = "reshape(%s, %s)" % (text, "[" + ", ".join(self.size(x, None) for x in dsym) + "]")
            ops += 1
        # the rewrite must be shorter than the chain and equal to it at two sets of dims
        if ops >= nops:
            return None
        for k in (0, 1):
            a = self._assign(k)
            got = index(a)
            rck = [self._conc(x, a) for x in rsym]
            t = torch.arange(math.prod(rck), dtype=torch.int64)
            # sizes of the factors at these dims: symbolic axes take their value, constants stay
            sizes = []
            for f, x in zip(factors, self._factor_axes(factors, rsym)):
                sizes.append(self._conc(x, a) if x is not None else f[1])
            t = t.reshape(sizes)
            for ax, f in enumerate(factors):
                if f[2] is None and f[1] > 1:
                    t = t.narrow(ax, f[3], 1)
            t = t.permute(perm).reshape([self._conc(x, a) for x in dsym])
            if not torch.equal(t, got):
                return None
        return text

    def _affine(self, I):
        """(offset, strides) if I[i] = offset + sum(i_k * stride_k), else None."""
        torch = self.torch
        dc = list(I.shape)
        off = int(I.reshape(-1)[0])
        strides = []
        for k, size in enumerate(dc):
            if size == 1:
                strides.append(None)
                continue
            idx = [0] * len(dc)
            idx[k] = 1
            strides.append(int(I[tuple(idx)]) - off)
        pred = torch.full(dc, off, dtype=torch.int64)
        for k, st in enumerate(strides):
            if st is not None:
                shp = [1] * len(dc)
                shp[k] = dc[k]
                pred = pred + torch.arange(dc[k]).reshape(shp) * st
        return (off, strides) if torch.equal(pred, I) else None

    def _factor_axes(self, factors, rsym):
        """For each factor: the symbolic axis of r it is (None for constant factors)."""
        out = []
        syms = [x for x in rsym if not isinstance(x, int) and not x.node.expr.is_Integer]
        texts = {self.size(x, None): x for x in syms}
        for f in factors:
            out.append(texts.get(f[0]) if f[0] in texts else None)
        return out

    def value_of_name(self, node):
        return "%%{%s}" % node.name

    def plan_lifts(self, order):
        """x.view(-1, K) @ w + b viewed back to x's leading axes -> x @ w + b on x
        (so the matmul's epilogue can take the residual that follows)."""
        torch = self.torch
        views = ("view", "reshape", "_unsafe_view")

        def opn(n):
            s = _op_name(n.target)
            return s.split(".")[1] if s.startswith("aten.") else s
        for n in order:
            if opn(n) not in ("addmm", "mm"):
                continue
            a = n.args[1] if opn(n) == "addmm" else n.args[0]
            if not isinstance(a, torch.fx.Node) or a.op != "call_function" or opn(a) not in views:
                continue
            x = a.args[0]
            users_a = [u for u in a.users if u in self.live]
            users_n = [u for u in n.users if u in self.live]
            if users_a != [n] or len(users_n) != 1 or opn(users_n[0]) not in views:
                continue
            xs = list(self.val(x).shape)
            if len(xs) < 3 or list(self.val(users_n[0]).shape) != xs[:-1] + [self.val(n).shape[-1]]:
                continue
            self.lift[n] = x
            self.skip.add(a)

    def prune(self, lines):
        """Drop lets and weights nothing reads (identity ops folded away), and
        comments left without a line under them; their keys leave the weights."""
        tok = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
        decl = re.compile(r"^\s*(let|weight) ([A-Za-z_][A-Za-z0-9_]*)\b")
        while True:
            uses = {}
            for ln in lines:
                if ln.lstrip().startswith("#"):
                    continue
                m = decl.match(ln)
                body = ln[m.end():] if m else ln
                if m and m.group(1) == "weight":
                    body = ""
                for t in tok.findall(re.sub(r'"[^"]*"', "", body)):
                    uses[t] = uses.get(t, 0) + 1
            dead = set()
            for k, ln in enumerate(lines):
                m = decl.match(ln)
                if m and "," not in ln.split("=")[0] and uses.get(m.group(2), 0) == 0:
                    dead.add(k)
                    if m.group(1) == "weight":
                        for key in self.weight_keys.get(m.group(2), ()):
                            self.weights.pop(key, None)
            if not dead:
                break
            lines = [ln for k, ln in enumerate(lines) if k not in dead]
        out = []
        for k, ln in enumerate(lines):
            if ln.lstrip().startswith("#"):
                nxt = lines[k + 1].lstrip() if k + 1 < len(lines) else "#"
                if nxt.startswith("#") or nxt.startswith("}") or not nxt:
                    continue
            out.append(ln)
        return out

    def value_of(self, node):
        """The text of an argument node: its name, or a size / scalar."""
        if node in self.ref:
            return self.ref[node]
        if self.is_sym(node):
            v = self.val(node)
            if isinstance(v, self.torch.SymInt):
                return self.size(v, node, shape_ctx=False)
            return _lit(v)
        if node.op == "placeholder" and node.name in self.param_of:
            return self.declare_weight(node)
        self.fail(node, "internal: %s is used before it is defined" % node.name)

    def declare_weight(self, node):
        torch = self.torch
        tkey = self.param_of[node.name]
        key = self.canon.get(tkey, tkey)
        t = self.ep.state_dict.get(tkey) if tkey in self.ep.state_dict else self.ep.constants.get(tkey)
        if t is None:
            self.fail(node, "no tensor for weight '%s'" % key)
        shown = key
        if self.loop_tmpl is not None:
            pre, k = self.loop_tmpl
            pk = "%s.%d." % (pre, k)
            if key.startswith(pk):
                shown = pre + ".{i}." + key[len(pk):]
        if shown in self.weight_names and self.weight_names[shown] in self.declared:
            return self.weight_names[shown]
        base = shown.split(".{i}.", 1)[-1] if ".{i}." in shown else shown
        if key.startswith("_") or not re.match(r"^[A-Za-z0-9_.]+$", base):
            base = "c_" + node.name
        name = self.weight_names.get(shown) or self.fresh(base.replace(".", "_"))
        self.weight_names[shown] = name
        self.declared.add(name)
        if t.dim() == 0:
            # a scalar constant: a literal, not a weight
            v = t.item()
            self.emit("let %s = full([], %s, %s)" % (name, _lit(v), self.dtype(t.dtype, node)))
            return name
        if ".{i}." in shown:
            pre = self.loop_tmpl[0]
            for k in range(self.loop_count):
                kk = key.replace("%s.%d." % (pre, self.loop_tmpl[1]), "%s.%d." % (pre, k), 1)
                tk = tkey.replace("%s.%d." % (pre, self.loop_tmpl[1]), "%s.%d." % (pre, k), 1)
                self.weights[kk] = self.ep.state_dict.get(tk, None)
                self.weight_keys.setdefault(name, set()).add(kk)
                if self.weights[kk] is None:
                    self.fail(node, "no tensor for weight '%s'" % kk)
        else:
            self.weights[key] = t
            self.weight_keys.setdefault(name, set()).add(key)
        ty = "%s%s" % (self.dtype(t.dtype, node), "[" + ", ".join(self.size(s) for s in t.shape) + "]")
        self.emit('weight %s: %s = "%s"' % (name, ty, shown))
        return name

    def emit_loop(self, lp, nloops):
        prefix, blocks = lp["prefix"], lp["blocks"]
        carry = self.fresh("h")
        pname = lp["param"]
        self.emit("let %s = %s" % (carry, self.value_of(lp["carry0"])))
        self.emit("for i in 0..%s {" % pname)
        self.indent = "  "
        self.loop_tmpl = (prefix, 0)
        self.loop_count = lp["count"]
        old = self.ref.get(lp["carry0"])
        self.ref[lp["carry0"]] = carry
        saved_declared = set(self.declared)
        # weights shared by every block (not numbered) are declared once, before the loop
        self.cur_path = None
        for n in blocks[0]:
            self.emit_node(n)
        self.emit("%s = %s" % (carry, self.ref[lp["outs"][0]]))
        self.indent = ""
        self.emit("}")
        self.loop_tmpl = None
        self.declared = saved_declared
        self.cur_path = None
        # everything after the loop sees the last block's output as the carry
        self.ref[lp["outs"][-1]] = carry
        if old is None:
            self.ref.pop(lp["carry0"], None)
        else:
            self.ref[lp["carry0"]] = old

    # ---- one node ---------------------------------------------------------

    def emit_node(self, node):
        mark = len(self.lines)
        if node in self.skip:
            return
        r = self.emit_op(node)
        if r is None:
            return
        if r[0] == "alias":
            self.ref[node] = r[1]
            return
        path, typ = self.path_of(node)
        if path != self.cur_path:
            self.cur_path = path
            if path:
                shown = path
                if self.loop_tmpl is not None:
                    pre = self.loop_tmpl[0]
                    shown = re.sub("^" + re.escape(pre) + r"\.0(?=\.|$)", pre + ".{i}", path)
                self.lines.insert(mark, self.indent + "# %s (%s)" % (shown, typ))
        if r[0] == "tuple1":
            name = self.fresh(node.name)
            self.emit("let %s = %s" % (name, r[1]))
            self.ref[node] = [name]
            return
        if r[0] == "tuple":
            names = [self.fresh("%s_%d" % (node.name, k)) for k in range(r[2])]
            self.emit("let %s = %s" % (", ".join(names), r[1]))
            self.ref[node] = names
            return
        name = self.fresh(node.name)
        self.emit("let %s = %s" % (name, r[1]))
        self.ref[node] = name

    # argument helpers
    def A(self, x):
        """A tensor (or size / scalar) argument as text."""
        if isinstance(x, self.torch.fx.Node):
            return self.value_of(x)
        if isinstance(x, self.torch.SymInt):
            return self.size(x, shape_ctx=False)
        if isinstance(x, (bool, int, float)):
            return _lit(x)
        raise ExportError("unexpected argument %r" % (x,))

    def T(self, x, dt):
        """A tensor argument converted to dtype dt (a cast where needed)."""
        if isinstance(x, self.torch.fx.Node) and not self.is_sym(x):
            if self.ndt(x) != dt:
                return "cast(%s, %s)" % (self.value_of(x), dt)
            return self.value_of(x)
        if isinstance(x, (bool, int, float)) and dt in ("f32", "f16", "bf16"):
            return _flit(x)
        return self.A(x)

    def axis(self, node_in, d):
        r = self.rank(node_in)
        d = int(d)
        return d + r if d < 0 else d

    def shape_of(self, node, k):
        return self.val(node).shape[k]

    def emit_op(self, node):
        torch = self.torch
        name = _op_name(node.target)
        parts = name.split(".")
        op = parts[1] if name.startswith("aten.") else name
        args, kw = list(node.args), dict(node.kwargs)
        if op.endswith("_") and not op.startswith("_") and op[:-1] in SUPPORTED and args \
                and isinstance(args[0], torch.fx.Node):
            # an in-place op (relu_, hardswish_) is its functional form when
            # nothing reads the overwritten tensor after it
            later = [u for u in args[0].users if u is not node and self.node_pos[u] > self.node_pos[node]]
            if later:
                self.fail(node, "%s overwrites a tensor that is read again later, which attnc "
                          "programs (values, no memory) cannot express (nearest supported: "
                          "aten.%s, out of place)" % (name, op[:-1]))
            op = op[:-1]
            parts = [parts[0], op] + parts[2:]
            name = ".".join(parts)

        def arg(i, key, default=None):
            if key in kw:
                return kw[key]
            return args[i] if i < len(args) else default
        odt = self.ndt(node) if hasattr(self.val(node), "dtype") else None
        x = args[0] if args else None
        if node in self.view_plan:
            root, text = self.view_plan[node]
            return ("let", text.replace("%%{%s}" % root.name, self.value_of(root)))
        if node in self.linear_exit:
            root, text, w, b = self.linear_exit[node]
            return ("let", "linear(%s, %s%s)" % (text.replace("%%{%s}" % root.name, self.value_of(root)),
                                                 self.value_of(w), ", " + self.value_of(b) if b is not None else ""))
        ALIAS = {"dropout", "contiguous", "clone", "alias", "detach", "lift_fresh_copy",
                 "feature_dropout", "alpha_dropout", "native_dropout_eval"}
        if op in ALIAS or (op in ("to", "_to_copy", "type_as") and odt == self.ndt(x)):
            if op == "dropout" and arg(2, "train", False):
                self.fail(node, "dropout in training mode: call module.eval() before export")
            return ("alias", self.value_of(x))
        if op in ("to", "_to_copy", "type_as"):
            return ("let", "cast(%s, %s)" % (self.value_of(x), odt))
        if name == "getitem":
            src, k = args
            pieces = self.ref[src]
            if src.target in (torch.ops.aten.unbind.int,):
                return ("let", "reshape(%s, %s)" % (pieces[k], self.shape(node)))
            return ("alias", pieces[k])
        # --- elementwise unary
        UNARY = {"exp": "exp", "exp2": "exp2", "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt",
                 "tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu", "silu": "silu",
                 "abs": "abs", "erf": "erf", "sin": "sin", "cos": "cos", "floor": "floor",
                 "ceil": "ceil", "round": "round", "hardsigmoid": "hardsigmoid",
                 "hardswish": "hardswish"}
        if op in UNARY and len(parts) == 3 and parts[2] in ("default",):
            return ("let", "%s(%s)" % (UNARY[op], self.T(x, odt)))
        if op == "gelu":
            approx = arg(1, "approximate", "none")
            return ("let", "%s(%s)" % ("gelu_tanh" if approx == "tanh" else "gelu", self.T(x, odt)))
        if op == "neg":
            return ("let", "-%s" % self.T(x, odt))
        if op == "reciprocal":
            return ("let", "1.0 / %s" % self.T(x, odt))
        if op == "square":
            return ("let", "%s * %s" % (self.T(x, odt), self.T(x, odt)))
        if op in ("logical_not", "bitwise_not") and odt == "bool":
            return ("let", "!%s" % self.T(x, "bool"))
        if op in ("relu6", "hardtanh", "clamp", "clamp_min", "clamp_max"):
            lo, hi = {"relu6": (0.0, 6.0)}.get(op, (None, None))
            if op == "hardtanh":
                lo, hi = arg(1, "min_val", -1.0), arg(2, "max_val", 1.0)
            elif op == "clamp":
                lo, hi = arg(1, "min"), arg(2, "max")
            elif op == "clamp_min":
                lo = arg(1, "min")
            elif op == "clamp_max":
                hi = arg(1, "max")
            e = self.T(x, odt)
            if lo is not None:
                e = "max(%s, %s)" % (e, self.T(lo, odt))
            if hi is not None:
                e = "min(%s, %s)" % (e, self.T(hi, odt))
            return ("let", e)
        if op == "leaky_relu":
            s = arg(1, "negative_slope", 0.01)
            xs = self.T(x, odt)
            return ("let", "where(%s > 0.0, %s, %s * %s)" % (xs, xs, xs, _flit(s)))
        # --- elementwise binary
        BIN = {"add": "+", "sub": "-", "mul": "*", "div": "/", "eq": "==", "ne": "!=",
               "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "__and__": "&&", "__or__": "||",
               "logical_and": "&&", "logical_or": "||", "bitwise_and": "&&", "bitwise_or": "||"}
        if op in BIN:
            sym = BIN[op]
            a, b = args[0], args[1]

            def same(t):
                return isinstance(t, torch.fx.Node) and not self.is_sym(t) and \
                    self.ndt(t) == odt and list(self.val(t).shape) == list(self.val(node).shape)
            unit = {"add": 0, "sub": 0, "mul": 1, "div": 1}.get(op)
            if unit is not None and arg(2, "alpha", 1) == 1 and not isinstance(b, torch.fx.Node) \
                    and b == unit and same(a):
                return ("alias", self.value_of(a))
            if sym == "&&":
                for p, q in ((a, b), (b, a)):
                    if self.const.get(p) is True and same(q):
                        return ("alias", self.value_of(q))
            if sym in ("&&", "||"):
                if odt != "bool":
                    self.fail(node, "%s on %s tensors is not supported by attnc (bool only)" % (name, odt))
                return ("let", "%s %s %s" % (self.T(a, "bool"), sym, self.T(b, "bool")))
            if sym in ("==", "!=", "<", "<=", ">", ">="):
                cdt = self.common_dtype(a, b)
                return ("let", "%s %s %s" % (self.T(a, cdt), sym, self.T(b, cdt)))
            if odt == "bool" and sym == "*":
                return ("let", "%s && %s" % (self.T(a, "bool"), self.T(b, "bool")))
            if op == "div" and arg(2, "rounding_mode") is not None:
                mode = arg(2, "rounding_mode")
                if odt in ("f32", "f16", "bf16"):
                    f = "floor" if mode == "floor" else "trunc"
                    if f == "trunc":
                        self.fail(node, "%s with rounding_mode='trunc' on floats is not supported "
                                  "by attnc (nearest supported: rounding_mode='floor')" % name)
                    return ("let", "floor(%s / %s)" % (self.T(a, odt), self.T(b, odt)))
                if mode == "trunc":
                    return ("let", "%s / %s" % (self.T(a, odt), self.T(b, odt)))
                self.fail(node, "%s with rounding_mode='floor' on integers is not supported by "
                          "attnc (nearest supported: rounding_mode='trunc', which equals it for "
                          "non-negative values)" % name)
            alpha = arg(2, "alpha", 1) if op in ("add", "sub") else 1
            bt = self.T(b, odt)
            if alpha != 1:
                bt = "%s * %s" % (bt, self.T(alpha, odt))
            return ("let", "%s %s %s" % (self.T(a, odt), sym, bt))
        if op == "rsub":
            alpha = arg(2, "alpha", 1)
            xt = self.T(x, odt)
            if alpha != 1:
                xt = "%s * %s" % (xt, self.T(alpha, odt))
            return ("let", "%s - %s" % (self.T(args[1], odt), xt))
        if op in ("maximum", "minimum"):
            return ("let", "%s(%s, %s)" % ("max" if op == "maximum" else "min",
                                           self.T(args[0], odt), self.T(args[1], odt)))
        if op == "pow":
            return ("let", "pow(%s, %s)" % (self.T(args[0], odt), self.T(args[1], odt)))
        if op == "where" and len(args) == 3:
            c = args[0]
            ct = self.value_of(c) if self.ndt(c) == "bool" else "%s != %s" % (
                self.value_of(c), "0" if self.ndt(c) == "i32" else "0.0")
            return ("let", "where(%s, %s, %s)" % (ct, self.T(args[1], odt), self.T(args[2], odt)))
        if op == "masked_fill":
            return ("let", "where(%s, %s, %s)" % (self.T(args[1], "bool"), self.T(args[2], odt),
                                                  self.T(x, odt)))
        # --- reductions, softmax, norms
        if op in ("mean", "sum", "amax") and parts[2] in ("dim", "dim_IntList", "default"):
            r = self.rank(x)
            dims = arg(1, "dim", None) if parts[2] != "default" else None
            if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
                dims = list(range(r))
            if isinstance(dims, int):
                dims = [dims]
            keep = arg(2, "keepdim", False) if parts[2] != "default" else False
            ax = [self.axis(x, d) for d in dims]
            f = {"mean": "mean", "sum": "sum", "amax": "max"}[op]
            axs = str(ax[0]) if len(ax) == 1 else "[" + ", ".join(map(str, ax)) + "]"
            return ("let", "%s(%s, axis=%s%s)" % (f, self.T(x, odt), axs, ", keepdim=1" if keep else ""))
        if op in ("softmax", "_softmax"):
            return ("let", "softmax(%s, axis=%d)" % (self.T(x, odt), self.axis(x, args[1])))
        if op == "layer_norm":
            ns = list(args[1])
            if len(ns) != 1:
                self.fail(node, "%s over %d axes is not supported by attnc (layernorm normalizes "
                          "the last axis; reshape first)" % (name, len(ns)))
            w, b, eps = arg(2, "weight"), arg(3, "bias"), arg(4, "eps", 1e-5)
            n = self.size(ns[0])
            wt = self.value_of(w) if w is not None else "ones([%s], %s)" % (n, odt)
            bt = self.value_of(b) if b is not None else "zeros([%s], %s)" % (n, odt)
            return ("let", "layernorm(%s, %s, %s, eps=%s)" % (self.value_of(x), wt, bt, _flit(eps)))
        if op == "rms_norm":
            ns = list(args[1])
            if len(ns) != 1:
                self.fail(node, "%s over %d axes is not supported by attnc" % (name, len(ns)))
            w, eps = arg(2, "weight"), arg(3, "eps")
            if eps is None:
                eps = float(torch.finfo(self.val(x).dtype).eps)
            n = self.size(ns[0])
            wt = self.value_of(w) if w is not None else "ones([%s], %s)" % (n, odt)
            return ("let", "rmsnorm(%s, %s, eps=%s)" % (self.value_of(x), wt, _flit(eps)))
        # --- matmuls
        if op == "linear":
            b = arg(2, "bias")
            return ("let", "linear(%s, %s%s)" % (self.value_of(x), self.value_of(args[1]),
                                                 ", " + self.value_of(b) if b is not None else ""))
        if op == "mm" and node in self.lift:
            return ("let", "%s @ %s" % (self.value_of(self.lift[node]), self.value_of(args[1])))
        if op in ("matmul", "mm", "bmm"):
            if self.rank(args[0]) < 2 or self.rank(args[1]) < 2:
                self.fail(node, "%s with a vector operand is not supported by attnc (nearest "
                          "supported: reshape it to a [1, K] / [K, 1] matrix first)" % name)
            return ("let", "%s @ %s" % (self.value_of(args[0]), self.value_of(args[1])))
        if op in ("addmm", "baddbmm"):
            bias, a, b = args[0], args[1], args[2]
            beta, alpha = arg(3, "beta", 1), arg(4, "alpha", 1)
            if node in self.lift:
                a = self.lift[node]
            e = "%s @ %s" % (self.value_of(a), self.value_of(b))
            if alpha != 1:
                e = "(%s) * %s" % (e, _flit(alpha))
            bt = self.value_of(bias)
            if beta != 1:
                bt = "%s * %s" % (bt, _flit(beta))
            return ("let", "%s + %s" % (e, bt))
        if op == "scaled_dot_product_attention":
            q, k, v = args[:3]
            mask = arg(3, "attn_mask")
            dp = arg(4, "dropout_p", 0.0)
            causal = arg(5, "is_causal", False)
            scale = kw.get("scale", args[6] if len(args) > 6 else None)
            if dp:
                self.fail(node, "%s with dropout_p=%s: export in eval mode with dropout_p=0" % (name, dp))
            for t in (q, k, v):
                if self.rank(t) != 4:
                    self.fail(node, "%s on rank-%d tensors is not supported by attnc (attention "
                              "takes [B, H, T, E]; reshape first)" % (name, self.rank(t)))
            # repeat_kv (HF's grouped-query expansion) is what attention does by itself
            k, v = self.gqa_source(k), self.gqa_source(v)
            e = "attention(%s, %s, %s" % (self.value_of(q), self.value_of(k), self.value_of(v))
            if causal:
                e += ", causal=1"
            if mask is not None:
                mdt = self.ndt(mask)
                e += ", mask=%s" % (self.value_of(mask) if mdt == "bool" else self.T(mask, odt))
            if scale is not None:
                e += ", scale=%s" % _flit(scale)
            return ("let", e + ")")
        # --- shapes
        if op in ("view", "reshape", "_unsafe_view", "unsqueeze", "squeeze", "flatten",
                  "unflatten", "view_as", "reshape_as"):
            if list(self.val(x).shape) == list(self.val(node).shape) or x in self.lift:
                return ("alias", self.value_of(x))
            # a reshape of a reshape is one reshape of the first one's input
            src = self.view_src.get(x, x)
            if list(self.val(src).shape) == list(self.val(node).shape):
                return ("alias", self.value_of(src))
            self.view_src[node] = src
            return ("let", "reshape(%s, %s)" % (self.value_of(src), self.shape(node)))
        if op == "permute":
            dims = [self.axis(x, d) for d in args[1]]
            if dims == list(range(len(dims))):
                return ("alias", self.value_of(x))
            return ("let", "permute(%s, [%s])" % (self.value_of(x), ", ".join(map(str, dims))))
        if op in ("transpose", "swapaxes"):
            a, b = self.axis(x, args[1]), self.axis(x, args[2])
            if a == b:
                return ("alias", self.value_of(x))
            return ("let", "transpose(%s, %d, %d)" % (self.value_of(x), a, b))
        if op == "t":
            if self.rank(x) < 2:
                return ("alias", self.value_of(x))
            return ("let", "transpose(%s)" % self.value_of(x))
        if op in ("expand", "expand_as", "broadcast_to"):
            if list(self.val(x).shape) == list(self.val(node).shape):
                return ("alias", self.value_of(x))
            return ("let", "expand(%s, %s)" % (self.value_of(x), self.shape(node)))
        if op == "slice":
            d = self.axis(x, arg(1, "dim", 0))
            start, end, step = arg(2, "start", None), arg(3, "end", None), arg(4, "step", 1)
            if step != 1:
                self.fail(node, "%s with step %s is not supported by attnc (slices are "
                          "contiguous)" % (name, step))
            n = self.shape_of(x, d)
            st = self.bound(start, n, 0, node)
            en = self.bound(end, n, None, node)
            if st == "0" and en == self.size(n, node, shape_ctx=False):
                return ("alias", self.value_of(x))
            return ("let", "slice(%s, %d, %s, %s)" % (self.value_of(x), d, st, en))
        if op == "select":
            d = self.axis(x, args[1])
            n = self.shape_of(x, d)
            i = self.bound(args[2], n, 0, node)
            i1 = str(int(i) + 1) if re.match(r"^\d+$", i) else "%s + 1" % i
            return ("let", "reshape(slice(%s, %d, %s, %s), %s)" % (self.value_of(x), d, i, i1,
                                                                  self.shape(node)))
        if op in ("cat", "concat", "concatenate"):
            ts = [t for t in args[0] if not (hasattr(self.val(t), "shape") and
                                             0 in list(self.val(t).shape))]
            d = arg(1, "dim", 0)
            d = d + self.rank(node) if d < 0 else d
            if len(ts) == 1:
                return ("alias", self.T(ts[0], odt))
            return ("let", "concat([%s], axis=%d)" % (", ".join(self.T(t, odt) for t in ts), d))
        if op == "stack":
            d = arg(1, "dim", 0)
            d = d + self.rank(node) if d < 0 else d
            shp = list(self.val(node).shape)
            one = shp[:d] + [1] + shp[d + 1:]
            sh = "[" + ", ".join(self.size(s, node) for s in one) + "]"
            return ("let", "concat([%s], axis=%d)" % (
                ", ".join("reshape(%s, %s)" % (self.T(t, odt), sh) for t in args[0]), d))
        if op in ("split", "split_with_sizes", "chunk", "unbind", "tensor_split") and \
                op != "tensor_split":
            d = self.axis(x, arg(2 if op != "unbind" else 1, "dim", 0))
            outs = self.val(node)
            sizes = [self.size(o.shape[d], node) for o in outs]
            return ("tuple", "split(%s, [%s], axis=%d)" % (self.value_of(x), ", ".join(sizes), d),
                    len(outs))
        if op == "embedding":
            w, ids = args[0], args[1]
            return ("let", "embedding(%s, %s)" % (self.T(ids, "i32"), self.value_of(w)))
        if op == "index_select":
            return ("let", "gather(%s, %s, axis=%d)" % (self.value_of(x), self.T(args[2], "i32"),
                                                       self.axis(x, args[1])))
        if op == "index" and parts[2] == "Tensor":
            return self.emit_index(node, x, args[1])
        # --- constants
        if op == "arange":
            if parts[2] == "default":
                start, step = 0, 1
            elif parts[2] == "start":
                start, step = args[0], 1
            else:
                start, step = args[0], args[2] if len(args) > 2 else kw.get("step", 1)
            n = self.size(self.val(node).shape[0], node, shape_ctx=False)
            e = "index(zeros([%s], i32), 0)" % n
            if odt != "i32":
                e = "cast(%s, %s)" % (e, odt)
            if step != 1:
                e = "%s * %s" % (e, self.T(step, odt))
            if not (isinstance(start, int) and start == 0):
                e = "%s + %s" % (e, self.T(start, odt) if not isinstance(start, torch.fx.Node)
                                 else self.value_of(start))
            return ("let", e)
        if op in ("full", "zeros", "ones", "new_full", "new_zeros", "new_ones", "zeros_like",
                  "ones_like", "full_like", "scalar_tensor"):
            if op in ("full", "new_full", "full_like"):
                v = args[-1] if op == "full" else args[2 if op == "new_full" else 1]
                if op == "full":
                    v = args[1]
            elif op == "scalar_tensor":
                v = args[0]
            else:
                v = 0 if "zeros" in op else 1
            if not isinstance(v, torch.fx.Node):
                self.const[node] = bool(v) if odt == "bool" else v
            if isinstance(v, torch.fx.Node):
                v = self.value_of(v)
            elif odt in ("i32", "bool"):
                if isinstance(v, float) and v != int(v):
                    self.fail(node, "%s of %s with the value %s" % (name, odt, v))
                v = str(int(v)) if int(v) >= 0 else "(%d)" % int(v)
            else:
                v = _flit(v)
            return ("let", "full(%s, %s, %s)" % (self.shape(node), v, odt))
        # --- convolutions (builtins of issue 14)
        if op in ("conv2d", "convolution", "_convolution"):
            return self.emit_conv(node, op, args, kw)
        if op in ("max_pool2d", "avg_pool2d"):
            k = list(args[1]) if not isinstance(args[1], int) else [args[1]] * 2
            stride = arg(2, "stride", None) or k
            pad = arg(3, "padding", 0)
            if op == "max_pool2d":
                dil, ceil = arg(4, "dilation", 1), arg(5, "ceil_mode", False)
                if self._pair(dil) != "1" or ceil:
                    self.fail(node, "%s with dilation or ceil_mode is not supported by attnc "
                              "(nearest supported: maxpool2d with stride and padding)" % name)
            else:
                ceil, cip, div = arg(4, "ceil_mode", False), arg(5, "count_include_pad", True), \
                    arg(6, "divisor_override", None)
                if ceil or div is not None or (not cip and self._pair(pad) != "0"):
                    self.fail(node, "%s with ceil_mode, divisor_override or count_include_pad="
                              "False is not supported by attnc (nearest supported: avgpool2d)" % name)
            return ("let", "%s(%s, %s, stride=%s, padding=%s)" % (
                "maxpool2d" if op == "max_pool2d" else "avgpool2d", self.value_of(x),
                self._pair(k), self._pair(stride), self._pair(pad)))
        if op in ("adaptive_avg_pool2d", "_adaptive_avg_pool2d"):
            return ("let", "adaptive_avg_pool2d(%s, %s)" % (self.value_of(x), self._pair(args[1])))
        if op in ("batch_norm", "_native_batch_norm_legit_no_training"):
            w, b, rm, rv = args[1:5]
            if op == "batch_norm":
                if args[5]:
                    self.fail(node, "batch_norm in training mode: call module.eval() before export")
                eps = args[7]
            else:
                eps = args[6]
            for t in (rm, rv):
                if t is None:
                    self.fail(node, "batch_norm without running statistics is not supported by attnc")
            n = self.size(self.val(x).shape[1], node)
            wt = self.value_of(w) if w is not None else "ones([%s], %s)" % (n, odt)
            bt = self.value_of(b) if b is not None else "zeros([%s], %s)" % (n, odt)
            e = "batchnorm(%s, %s, %s, %s, %s, eps=%s)" % (self.value_of(x), wt, bt, self.value_of(rm),
                                                        self.value_of(rv), _flit(eps))
            if op == "_native_batch_norm_legit_no_training":
                return ("tuple1", e)
            return ("let", e)
        # --- refused
        self.refuse(node, name)

    def refuse(self, node, name):
        op = name.split(".")[1] if name.startswith("aten.") else name
        alt = ALTERNATIVES.get(op)
        if alt is None:
            close = difflib.get_close_matches(op, SUPPORTED, n=1, cutoff=0.5)
            alt = "aten.%s" % close[0] if close else None
        self.fail(node, "%s is not supported by attnc%s" % (
            name, " (nearest supported: %s)" % alt if alt else ""))

    def _pair(self, v):
        if isinstance(v, (list, tuple)):
            v = list(v)
            if len(v) == 1 or all(t == v[0] for t in v):
                return str(int(v[0]))
            return "[" + ", ".join(str(int(t)) for t in v) + "]"
        if isinstance(v, str):
            return '"%s"' % v
        return str(int(v))

    def emit_conv(self, node, op, args, kw):
        name = _op_name(node.target)
        x, w = args[0], args[1]
        b = args[2] if len(args) > 2 else kw.get("bias")
        if op == "conv2d":
            stride, pad, dil, groups = (list(args[3:7]) + [1, 0, 1, 1][len(args[3:7]):])
        else:
            stride, pad, dil, transposed, _, groups = args[3:9]
            if transposed:
                self.fail(node, "%s transposed is not supported by attnc (nearest supported: "
                          "aten.conv2d)" % name)
        if self.rank(x) != 4:
            self.fail(node, "%s on rank %d is not supported by attnc (conv2d takes NCHW)" %
                      (name, self.rank(x)))
        e = "conv2d(%s, %s" % (self.value_of(x), self.value_of(w))
        if b is not None:
            e += ", " + self.value_of(b)
        e += ", stride=%s, padding=%s, dilation=%s, groups=%d)" % (
            self._pair(stride), self._pair(pad), self._pair(dil), int(groups))
        return ("let", e)

    def bound(self, v, n, default, node):
        """A slice bound: None -> default (the size n for None ends), negatives from the end."""
        torch = self.torch
        if v is None:
            return self.size(n, node, shape_ctx=False) if default is None else str(default)
        if isinstance(v, torch.fx.Node):
            vv = self.val(v)
            if isinstance(vv, torch.SymInt):
                return self.size(vv, node, shape_ctx=False)
            v = int(vv)
        v = int(v)
        if isinstance(n, int) or (isinstance(n, torch.SymInt) and n.node.expr.is_Integer):
            n = int(n)
            if v < 0:
                v = max(0, n + v)
            return str(min(v, n))
        if v >= INT_MAX:
            return self.size(n, node, shape_ctx=False)
        if v < 0:
            return "%s - %d" % (self.size(n, node, shape_ctx=False), -v)
        return str(v)

    def common_dtype(self, a, b):
        dts = []
        for t in (a, b):
            if isinstance(t, self.torch.fx.Node) and not self.is_sym(t):
                dts.append(self.ndt(t))
            elif isinstance(t, float):
                dts.append("float")
        fl = [d for d in dts if d in ("f32", "f16", "bf16")]
        if fl:
            return fl[0]
        if "float" in dts:
            return "f32"
        return dts[0] if dts else "i32"

    def gqa_source(self, n):
        """t for reshape(expand(t[:, :, None], [B, HK, G, S, E]), [B, HK*G, S, E]), else n."""
        torch = self.torch

        def opn(m):
            if not isinstance(m, torch.fx.Node) or m.op != "call_function":
                return None
            s = _op_name(m.target)
            return s.split(".")[1] if s.startswith("aten.") else s
        views = ("view", "reshape", "_unsafe_view", "unsqueeze")

        def skip(m):
            # full slices and copies change nothing
            while opn(m) in ("slice", "contiguous", "clone", "alias") and \
                    list(self.val(m).shape) == list(self.val(m.args[0]).shape):
                m = m.args[0]
            return m
        if opn(n) not in views or opn(skip(n.args[0])) != "expand":
            return n
        ex = skip(n.args[0])
        un = skip(ex.args[0])
        if opn(un) not in views:
            return n
        t = skip(un.args[0])
        ts, us, es, ns = (list(self.val(m).shape) for m in (t, un, ex, n))
        if len(ts) != 4 or len(es) != 5 or [str(z) for z in us] != [str(z) for z in ts[:2] + [1] + ts[2:]]:
            return n
        if [str(z) for z in es[:2] + es[3:]] != [str(z) for z in ts] or \
                [str(z) for z in ns] != [str(z) for z in [ts[0], es[1] * es[2]] + ts[2:]]:
            return n
        return t

    def arange_len(self, t):
        """n if t is arange(n) (start 0, step 1) seen through views, '+ 0' and casts."""
        torch = self.torch
        while isinstance(t, torch.fx.Node) and t.op == "call_function":
            name = _op_name(t.target)
            op = name.split(".")[1] if name.startswith("aten.") else name
            if op == "arange":
                ok = name.endswith(".default") or (len(t.args) >= 2 and t.args[0] == 0 and
                                                    (len(t.args) < 3 or t.args[2] == 1))
                return self.val(t).shape[0] if ok else None
            if op in ("view", "reshape", "_unsafe_view", "unsqueeze", "to", "_to_copy",
                      "contiguous", "clone", "alias"):
                t = t.args[0]
            elif op in ("add", "sub") and not isinstance(t.args[1], torch.fx.Node) and t.args[1] == 0:
                t = t.args[0]
            elif op == "slice" and (len(t.args) < 3 or t.args[2] in (0, None)) and \
                    list(self.val(t).shape) == list(self.val(t.args[0]).shape):
                t = t.args[0]
            else:
                return None
        return None

    def is_iota_grid(self, x, idx):
        """Index tensors that are aranges over x's first axes, each along its own
        axis of the broadcast shape, in order: then x[idx] only reshapes x."""
        last = -1
        xs = list(self.val(x).shape)
        for k, t in enumerate(idx):
            n = self.arange_len(t)
            if n is None or str(n) != str(xs[k]):
                return False
            shp = list(self.val(t).shape)
            non1 = [j for j, v in enumerate(shp) if str(v) != "1"]
            if len(non1) > 1:
                return False
            p = non1[0] if non1 else None
            if p is None:
                if str(n) != "1":
                    return False
                continue
            r = len(shp)
            p_from_end = r - p
            if last != -1 and p_from_end >= last:
                return False
            last = p_from_end
        return True

    def emit_index(self, node, x, indices):
        """x[i0, i1, ...] with index tensors: a gather, on the flattened axes if several."""
        pos = [k for k, t in enumerate(indices) if t is not None]
        if not pos:
            return ("alias", self.value_of(x))
        if pos != list(range(pos[0], pos[-1] + 1)):
            self.fail(node, "aten.index.Tensor with index tensors on non-adjacent axes is not "
                      "supported by attnc (nearest supported: aten.index_select)")
        for k in pos:
            if self.ndt(indices[k]) == "bool":
                self.fail(node, "aten.index.Tensor with a boolean mask is not supported by attnc "
                          "(its size depends on the data; nearest supported: torch.where)")
        a = pos[0]
        if a == 0 and self.is_iota_grid(x, [indices[k] for k in pos]):
            # x[arange(B)[:, None], arange(T)[None, :]]-style indexing is x itself, reshaped
            return ("let", "reshape(%s, %s)" % (self.value_of(x), self.shape(node)))
        if len(pos) == 1:
            return ("let", "gather(%s, %s, axis=%d)" % (self.value_of(x), self.T(indices[a], "i32"), a))
        shp = list(self.val(x).shape)
        flat = None
        for k in pos:
            flat = shp[k] if flat is None else flat * shp[k]
        new = shp[:a] + [flat] + shp[pos[-1] + 1:]
        terms = []
        for k in pos:
            stride = None
            for j in pos:
                if j > k:
                    stride = shp[j] if stride is None else stride * shp[j]
            t = self.T(indices[k], "i32")
            if stride is not None:
                t = "%s * %s" % (t, self.size(stride, node, shape_ctx=False)
                                 if not isinstance(stride, int) else str(stride))
            terms.append(t)
        return ("let", "gather(reshape(%s, [%s]), %s, axis=%d)" % (
            self.value_of(x), ", ".join(self.size(s, node) for s in new), " + ".join(terms), a))


SUPPORTED = sorted({
    "dropout", "contiguous", "clone", "alias", "detach", "lift_fresh_copy", "to", "_to_copy",
    "type_as", "exp", "exp2", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "silu", "abs",
    "erf", "sin", "cos", "floor", "ceil", "round", "hardsigmoid", "hardswish", "gelu", "neg",
    "reciprocal", "square", "logical_not", "bitwise_not", "relu6", "hardtanh", "clamp",
    "clamp_min", "clamp_max", "leaky_relu", "add", "sub", "mul", "div", "eq", "ne", "lt", "le",
    "gt", "ge", "__and__", "__or__", "logical_and", "logical_or", "bitwise_and", "bitwise_or",
    "rsub", "maximum", "minimum", "pow", "where", "masked_fill", "mean", "sum", "amax",
    "softmax", "_softmax", "layer_norm", "rms_norm", "linear", "matmul", "mm", "bmm", "addmm",
    "baddbmm", "scaled_dot_product_attention", "view", "reshape", "_unsafe_view", "unsqueeze",
    "squeeze", "flatten", "unflatten", "view_as", "reshape_as", "permute", "transpose",
    "swapaxes", "t", "expand", "expand_as", "broadcast_to", "slice", "select", "cat", "concat",
    "stack", "split", "split_with_sizes", "chunk", "unbind", "embedding", "index_select",
    "index", "arange", "full", "zeros", "ones", "new_full", "new_zeros", "new_ones",
    "zeros_like", "ones_like", "full_like", "scalar_tensor", "conv2d", "convolution",
    "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm",
    "_native_batch_norm_legit_no_training"})


# --------------------------------------------------------------------------
# weights, output names, the API
# --------------------------------------------------------------------------

def _save_safetensors(torch, tensors, path):
    """tensors {key: torch tensor} -> a safetensors file (int64 stored as I32)."""
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int32: "I32", torch.bool: "BOOL"}
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        if t.dtype in (torch.int64, torch.int16, torch.int8, torch.uint8):
            if t.numel() and (int(t.max()) > 2 ** 31 - 1 or int(t.min()) < -2 ** 31):
                raise ExportError("weight '%s' has values outside int32" % k)
            t = t.to(torch.int32)
        if t.dtype not in names:
            raise ExportError("weight '%s' has dtype %s, which attnc cannot read" % (k, t.dtype))
        raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((-len(hj)) % 8)
    _atomic_write(path, struct.pack("<Q", len(hj)) + hj + b"".join(blobs))


def _atomic_write(path, data):
    """Write path through a temporary file in its folder, renamed at the end."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, ".%s.tmp%d" % (os.path.basename(path), os.getpid()))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _output_names(module, ep):
    """Names for the outputs: dict / ModelOutput keys, namedtuple fields, or the
    names forward returns (`return h` / `return a, b`)."""
    try:
        spec = ep.call_spec.out_spec
        names = []

        def walk(s):
            ctx = s.context
            if s.num_children == 0:
                names.append(None)
                return
            keys = ctx if isinstance(ctx, (list, tuple)) and all(isinstance(c, str) for c in ctx) else None
            if keys is None and isinstance(ctx, type) and hasattr(ctx, "_fields"):
                keys = list(ctx._fields)
            kids = s.children() if hasattr(s, "children") else s.children_specs
            for k, c in enumerate(kids):
                before = len(names)
                walk(c)
                if keys is not None and len(names) == before + 1 and names[-1] is None:
                    names[-1] = keys[k]
        walk(spec)
        if names and all(n is not None for n in names):
            return names
    except Exception:
        pass
    try:
        import ast
        import inspect
        import textwrap
        src = textwrap.dedent(inspect.getsource(type(module).forward))
        rets = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Return) and n.value is not None]
        if len(rets) == 1:
            v = rets[0].value
            if isinstance(v, ast.Name):
                return [v.id]
            if isinstance(v, ast.Tuple) and all(isinstance(e, ast.Name) for e in v.elts):
                return [e.id for e in v.elts]
    except Exception:
        pass
    return None


def export(module, args, path, weights=None, dynamic=None, kwargs=None, name=None,
           outputs=None):
    """Export module(*args) to the .attn program `path` and its weights.

    dynamic: {input name: {axis: dim name}} (a name may be a torch.export.Dim
    too); the other axes keep the example's sizes.  weights: the safetensors
    path (default: path with .safetensors).  name: the model line (default:
    the file's base name).  outputs: names for the outputs (default: from the
    forward's returns).  Returns an ExportResult; raises ExportError."""
    import torch
    from torch.export import Dim
    if not isinstance(args, tuple):
        args = tuple(args) if isinstance(args, list) else (args,)
    module = module.eval()
    dyn_names, dyn_spec = {}, None
    if dynamic:
        import inspect
        params = list(inspect.signature(module.forward).parameters)
        dims = {}
        dyn_spec = {}
        for iname, axes in dynamic.items():
            dyn_names[iname] = {}
            dyn_spec[iname] = {}
            for ax, d in axes.items():
                if isinstance(d, str):
                    dname, dmin, dmax = d, None, None
                elif isinstance(d, tuple):
                    dname, dmin, dmax = d[0], d[1], d[2]
                    d = Dim(dname, min=dmin, max=dmax)
                else:
                    dname, dmin, dmax = getattr(d, "__name__", str(d)), getattr(d, "min", None), getattr(d, "max", None)
                if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", dname) or dname in RESERVED:
                    raise ExportError("dim name '%s' is not a usable .attn name" % dname)
                if dname not in dims:
                    dims[dname] = d if not isinstance(d, str) else Dim(dname)
                dyn_names[iname][int(ax)] = dname
                dyn_spec[iname][int(ax)] = dims[dname]
        for p in params:
            if p not in dyn_spec and len(dyn_spec) < len(params):
                pass
        # torch.export wants an entry for every positional input
        full = {}
        for k, p in enumerate(params[:len(args)]):
            full[p] = dyn_spec.get(p)
        for p in dyn_spec:
            if p not in full:
                if kwargs and p in kwargs:
                    full[p] = dyn_spec[p]
                else:
                    raise ExportError("dynamic= names '%s', which is not an input of %s.forward "
                                      "(its inputs: %s)" % (p, type(module).__name__, ", ".join(params)))
        dyn_spec = full
    try:
        with torch.no_grad():
            ep = torch.export.export(module, args, kwargs=kwargs, dynamic_shapes=dyn_spec,
                                     strict=False)
    except ExportError:
        raise
    except Exception as e:
        msg = str(e).strip().split("\n")
        cls = type(e).__name__
        hint = ""
        text = str(e)
        if "data-dependent" in text or "GuardOnDataDependent" in cls or "Could not guard" in text:
            at = re.search(r"File: (\S+?):(\d+) in \w+, code: (.*)", text)
            where = " at %s:%s: %s" % (os.path.basename(at.group(1)), at.group(2),
                                       at.group(3).strip()[:80]) if at else ""
            raise ExportError("%s: the module's control flow depends on tensor values%s; attnc "
                              "programs cannot express that (nearest supported: torch.where on "
                              "both branches)" % (type(module).__name__, where)) from None
        elif "Constraints violated" in text or "specialized" in text:
            hint = ("a dynamic size cannot take every value: torch.export fixed or bounded it "
                    "(give the Dim a min/max, or leave that axis static)")
        raise ExportError("%s: torch.export failed (%s: %s)%s" % (
            type(module).__name__, cls, " ".join(msg[:3])[:400], ": " + hint if hint else "")) from None
    if name is None:
        name = os.path.basename(path).split(".")[0]
    name = _ident(name)
    out_names = outputs or _output_names(module, ep)
    w = _Writer(torch, ep, module, dyn_names, name, out_names)
    text = w.build()
    if weights is None:
        weights = os.path.splitext(path)[0] + ".safetensors"
    tensors = {k: v for k, v in w.weights.items()}
    _save_safetensors(torch, tensors, weights)
    _atomic_write(path, text.encode())
    return ExportResult(text, path, weights, sorted(tensors),
                        {k: w.cfg[k][0] for k in w.cfg if k in w.used_params})


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def _load_spec(spec):
    """'pkg.mod:function' or 'path/file.py:function' -> the function."""
    import importlib
    import importlib.util
    if ":" not in spec:
        raise ExportError("MODULE_SPEC must be module:function or file.py:function, got '%s'" % spec)
    mod, fn = spec.rsplit(":", 1)
    if mod.endswith(".py") or os.path.sep in mod:
        if not os.path.exists(mod):
            raise ExportError("%s: no such file" % mod)
        s = importlib.util.spec_from_file_location(_ident(os.path.basename(mod)[:-3]), mod)
        m = importlib.util.module_from_spec(s)
        sys.path.insert(0, os.path.dirname(os.path.abspath(mod)))
        s.loader.exec_module(m)
    else:
        m = importlib.import_module(mod)
    if not hasattr(m, fn):
        raise ExportError("%s has no function '%s'" % (mod, fn))
    return getattr(m, fn)


def _parse_dynamic(items):
    """['x=0:B,1:T', ...] -> {'x': {0: 'B', 1: 'T'}}"""
    out = {}
    for it in items or []:
        if "=" not in it:
            raise ExportError("--dynamic %s: expected NAME=AXIS:DIM,..." % it)
        n, rest = it.split("=", 1)
        out[n] = {}
        for p in rest.split(","):
            a, _, d = p.partition(":")
            if not a.lstrip("-").isdigit() or not d:
                raise ExportError("--dynamic %s: expected NAME=AXIS:DIM,..." % it)
            out[n][int(a)] = d
    return out


def main(argv=None):
    """python -m attnc.export MODULE_SPEC -o model.attn [--weights W] [--dynamic x=0:B,1:T]"""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m attnc.export",
                                 description="Export a PyTorch module to an attnc .attn program.")
    ap.add_argument("spec", help="module:function (or file.py:function) returning "
                    "(module, args) or (module, args, dynamic)")
    ap.add_argument("-o", "--output", required=True, help="the .attn file to write")
    ap.add_argument("--weights", help="the safetensors file (default: OUTPUT with .safetensors)")
    ap.add_argument("--dynamic", action="append", help="NAME=AXIS:DIM,... (repeatable)")
    ap.add_argument("--name", help="the model name (default: the output's base name)")
    a = ap.parse_args(argv)
    try:
        got = _load_spec(a.spec)()
        if not isinstance(got, tuple) or len(got) not in (2, 3):
            raise ExportError("%s must return (module, args) or (module, args, dynamic)" % a.spec)
        module, args = got[0], got[1]
        dyn = _parse_dynamic(a.dynamic) if a.dynamic else (got[2] if len(got) == 3 else None)
        r = export(module, args, a.output, weights=a.weights, dynamic=dyn, name=a.name)
    except ExportError as e:
        print("attnc.export: error: %s" % e, file=sys.stderr)
        return 1
    print("wrote %s and %s (%d weights)" % (r.path, r.weights, len(r.keys)))
    return 0


class _CallableModule(types.ModuleType):
    """attnc.export is this module and also the export function: attnc.export(...)."""

    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
else:
    sys.modules[__name__].__class__ = _CallableModule

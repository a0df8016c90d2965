#!/usr/bin/env bash
# cli_capacity.sh - no fixed capacity in the driver: a generated model with
# 300 inputs and 300 outputs through `attnc run` (JIT, .so, --interp) and
# `attnc bench` (.attn and .so), its results checked against Python; 60
# inputs with 400-character names and a wrong --input (the message lists
# them all); 300-character dim names in messages and in bench's --dim; more
# -D, --print-after, --tile and --passes entries than the old tables held.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
cd "$TMP"
A=$ATTNC

# f32 .npy files from Python's standard library (no numpy needed)
cat >npy.py <<'PY'
import random, struct, sys
def save(path, shape, vals):
    d = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join("%d, " % s for s in shape)
    h = d + " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + struct.pack("<%df" % len(vals), *vals))
def load(path):
    b = open(path, "rb").read()
    hl = struct.unpack("<H", b[8:10])[0]
    return struct.unpack("<%df" % ((len(b) - 10 - hl) // 4), b[10 + hl:])
PY

# ---- 300 inputs, 300 outputs: y_i = 2 x_i + x_(i+1 mod 300) ----
{
  echo "model many"
  echo "dim N"
  for i in $(seq 0 299); do echo "input x$i: f32[N, 3]"; done
  for i in $(seq 0 299); do echo "output y$i: f32[N, 3]"; done
  for i in $(seq 0 299); do echo "y$i = x$i * 2.0 + x$(((i + 1) % 300))"; done
} >many.attn
python3 - <<'PY'
import random, npy
random.seed()
for i in range(300):
    npy.save("x%d.npy" % i, (2, 3), [random.uniform(-1, 1) for _ in range(6)])
PY
io=()
for i in $(seq 0 299); do io+=(--input "x$i=x$i.npy" --output "y$i=out/y$i.npy"); done
if "$A" many.attn -o many.so 2>err; then ok "300 inputs and 300 outputs compile to a .so"; else bad "many.so: $(head -3 err)"; fi
c=$(grep -c '^ \*   input ' many.h)
d=$(grep -c '^ \*   output ' many.h)
[ "$c" = 300 ] && [ "$d" = 300 ] && ok "the header lists 300 inputs and 300 outputs" || bad "header lists $c inputs, $d outputs"
for engine in jit so interp; do
  rm -rf out && mkdir out
  case $engine in
  jit) cmd=("$A" run many.attn) ;;
  so) cmd=("$A" run many.so) ;;
  interp) cmd=("$A" run many.attn --interp) ;;
  esac
  if ! "${cmd[@]}" "${io[@]}" 2>err; then bad "run $engine with 300 inputs/outputs: $(head -3 err)"; continue; fi
  if r=$(python3 - <<'PY'
import npy
x = [npy.load("x%d.npy" % i) for i in range(300)]
err = max(abs(g - (2.0 * a + b)) for i in range(300)
          for g, a, b in zip(npy.load("out/y%d.npy" % i), x[i], x[(i + 1) % 300]))
print("max abs error %.3g over 300 outputs" % err)
raise SystemExit(0 if err <= 1e-6 else 1)
PY
  ); then ok "run $engine, 300 inputs and outputs: $r"; else bad "run $engine: $r"; fi
done
if "$A" bench many.attn --dim N=5 --runs 2 --threads 2 --json b.json >out.txt 2>err &&
   python3 -c "import json; v=json.load(open('b.json'))['variants']; exit(0 if v[0]['kernels']==300 and v[1]['max_rel_err']<1e-6 else 1)"; then
  ok "bench many.attn: 300 kernels fused, agrees with the interpreter"
else
  bad "bench many.attn: $(head -3 err)"
fi
if "$A" bench many.so --dim N=5 --runs 2 --threads 2 >out.txt 2>err && grep -q '^library ' out.txt &&
   grep -q 'cannot be recompiled unfused' out.txt; then
  ok "bench many.so: one variant, says why"
else
  bad "bench many.so: $(head -3 err) $(head -3 out.txt)"
fi

# ---- 60 inputs with 400-character names, a 300-character dim name ----
L=$(printf 'a%.0s' $(seq 400))
D=$(printf 'd%.0s' $(seq 300))
{
  echo "model longnames"
  echo "dim $D"
  for i in $(seq 0 59); do echo "input ${L}$i: f32[$D, 2]"; done
  echo "output y: f32[$D, 2]"
  printf 'y = %s0' "$L"
  for i in $(seq 1 59); do printf ' + %s%d' "$L" "$i"; done
  echo
} >long.attn
"$A" long.attn -o long.so 2>err || bad "long.so: $(head -3 err)"
for engine in jit so interp; do
  case $engine in
  jit) cmd=("$A" run long.attn) ;;
  so) cmd=("$A" run long.so) ;;
  interp) cmd=("$A" run long.attn --interp) ;;
  esac
  "${cmd[@]}" --input nosuch=x0.npy >out.txt 2>err
  rc=$?
  n=0
  for i in $(seq 0 59); do grep -q -- "${L}$i[,)]" err && n=$((n + 1)); done
  if [ $rc = 1 ] && [ $n = 60 ] && grep -q "the model has no input 'nosuch' (its inputs: ${L}0, " err && grep -q "${L}59)$" err; then
    ok "run $engine: a wrong --input lists all 60 long input names"
  else
    bad "run $engine: status $rc, $n of 60 names in: $(cut -c1-200 err)"
  fi
  "${cmd[@]}" >out.txt 2>err
  rc=$?
  if [ $rc = 1 ] && grep -q "missing input '${L}0' (f32\[$D,2\]): pass --input ${L}0=FILE.npy" err; then
    ok "run $engine: a missing input's type shows the whole 300-character dim name"
  else
    bad "run $engine: status $rc: $(cut -c1-200 err)"
  fi
done
for m in long.attn long.so; do
  if "$A" bench $m --dim "$D=3" --runs 1 --threads 1 >out.txt 2>err; then ok "bench $m with a 300-character dim name"
  else bad "bench $m: $(cut -c1-200 err)"; fi
done
"$A" bench long.so --runs 1 >out.txt 2>err
grep -q "give the size of dim '$D' with --dim $D=N" err && ok "bench long.so without --dim names the whole dim" ||
  bad "bench long.so without --dim: $(cut -c1-200 err)"

# ---- more entries than the old option tables held ----
{
  echo "model params"
  for i in $(seq 0 99); do echo "param P$i = 0"; done
  echo "dim N"
  echo "input x: f32[N]"
  echo "output y: f32[N]"
  printf 'y = x + (0'
  for i in $(seq 0 99); do printf ' + P%d' "$i"; done
  echo ')'
} >params.attn
defs=()
for i in $(seq 0 99); do defs+=(-D "P$i=1"); done
"$A" params.attn "${defs[@]}" --emit=ir >p.ir 2>err && grep -q 'const {value=100}' p.ir && ok "100 -D options" ||
  bad "100 -D: $(head -3 err) $(grep -m1 const p.ir)"
pa=()
for i in $(seq 1 40); do pa+=(--print-after=cse --disable-pass=dce --print-before cse); done
"$A" "$ATTNC_SOURCE_DIR"/examples/sdpa.attn "${pa[@]}" --emit=stats >/dev/null 2>err && [ "$(grep -c 'IR Dump After cse' err)" = 1 ] &&
  ok "40 each of --print-after, --print-before, --disable-pass" || bad "many pass options: $(head -3 err)"
passes=$(printf 'cse,%.0s' $(seq 40))canonicalize
"$A" "$ATTNC_SOURCE_DIR"/examples/sdpa.attn --passes="$passes" --emit=stats >/dev/null 2>err && ok "--passes with 41 entries" ||
  bad "--passes 41: $(head -3 err)"
tiles=()
for i in $(seq 1 12); do tiles+=(--tile matmul:96); done
"$A" "$ATTNC_SOURCE_DIR"/examples/mha.attn "${tiles[@]}" --emit=ir >/dev/null 2>err && ok "12 --tile options" || bad "12 --tile: $(head -3 err)"
finish

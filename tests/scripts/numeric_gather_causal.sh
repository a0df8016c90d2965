#!/usr/bin/env bash
# numeric_gather_causal.sh - gather / embedding, expand, zeros / ones /
# full, run-time dims as values and causal alignment (top_left /
# bottom_right, T != S, T = 1 with S > 1, T > S) on four executors: the
# interpreter as written (-O0, the oracle: float64) and after the passes,
# compiled fused and --no-fuse (JIT; outputs NaN-filled before the run),
# on fresh random inputs, sizes that do not divide the tiles and size 1.
# Then the gather errors: ids of an input out of range (too large,
# negative), computed ids out of range: exit 1, the message, no output file.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
GA=tests/cuda_emu/models/gather_ops.attn
CA=tests/cuda_emu/models/causal_align.attn

# gen DIR SEED KIND ...: random inputs (and weights) for a model (plain
# python3: .npy written here, safetensors by tensorfiles.py)
gen() {
  python3 -B - "$(cd "$(dirname "$0")" && pwd)" "$@" <<'PY'
import array, random, struct, sys
sys.path.insert(0, sys.argv.pop(1))
from tensorfiles import write_safetensors
d, seed, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rnd = random.Random(seed)
def npy(path, shape, vals, code):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (code, "".join("%d," % s for s in shape))
    hdr += " " * (-(len(hdr) + 11) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
        f.write(array.array("f" if code == "<f4" else "i", vals).tobytes())
def numel(shape):
    n = 1
    for s in shape: n *= s
    return n
def normal(shape): return [rnd.gauss(0, 1) for _ in range(numel(shape))]
if kind == "gather":
    B, T = int(sys.argv[4]), int(sys.argv[5])
    write_safetensors(d + "/w.safetensors", {k: (s, normal(s)) for k, s in (("wte", (11, 13)), ("wpe", (40, 13)),
            ("proj", (13, 5)), ("tab", (2, 3, 11)), ("vec", (11,)))})
    ids = [rnd.randrange(11) for _ in range(B * T)]
    ids[-1] = 10  # the last row of the table is reached
    npy(d + "/input_ids.npy", (B, T), ids, "<i4")
    for name, pos, v in (("big", 1 * T + 2, 11), ("neg", 3, -1), ("twice", 1 * T + 1, 6)):
        bad = list(ids) if name != "twice" else [0] * (B * T)
        if pos < B * T: bad[pos] = v
        npy(d + "/" + name + ".npy", (B, T), bad, "<i4")
else:  # attention: q [B,H,T,E], k, v [B,H,S,E]
    B, H, T, S, E = (int(x) for x in sys.argv[4:9])
    for n, L in (("q", T), ("k", S), ("v", S)):
        npy(d + "/" + n + ".npy", (B, H, L, E), normal((B, H, L, E)), "<f4")
PY
}

# gather_ops: B, T (T <= 40; 1 and sizes off the vector width)
for bt in "2 7" "1 1" "3 19"; do
  set -- $bt
  d="$TMP/g$1x$2"
  mkdir -p "$d"
  gen "$d" $RANDOM gather $1 $2
  run4 "gather B=$1 T=$2" $GA "" "$d" "--input input_ids=$d/input_ids.npy" "h m g1 g2 z p"
done
# kernel counts: token + position embeddings (+ zeros) are one kernel, fused; the gather into a matmul is one
"$ATTNC" $GA --emit=stats -o "$TMP/stats" 2>"$TMP/err"
if grep -q "^  gather     1$" "$TMP/stats" && grep -q "^kernels 9$" "$TMP/stats"; then ok "gather_ops: 9 kernels, 1 gather kernel"
else bad "gather_ops kernels: $(tr '\n' ' ' <"$TMP/stats")"; fi
printf 'model e\ndim B, T\ninput ids: i32[B, T]\nweight wte: f32[50, 16] = "wte"\nweight wpe: f32[64, 16] = "wpe"\noutput h: f32[B, T, 16]\nh = embedding(ids, wte) + slice(wpe, 0, 0, T)\n' >"$TMP/emb.attn"
"$ATTNC" "$TMP/emb.attn" --emit=stats -o "$TMP/stats2" 2>"$TMP/err"
if grep -q "^kernels 1$" "$TMP/stats2" && grep -q "^  add        1$" "$TMP/stats2"; then ok "embedding + position: one kernel"
else bad "embedding + position kernels: $(tr '\n' ' ' <"$TMP/stats2")"; fi

# causal alignment: B H T S E, both alignments and a window with the offset
for shape in "1 2 1 33 16" "2 1 7 70 24" "1 2 70 9 16" "2 3 1 1 16"; do
  set -- $shape
  d="$TMP/c$1.$2.$3.$4"
  mkdir -p "$d"
  gen "$d" $RANDOM attn $1 $2 $3 $4 $5
  for cfg in "-D ALIGN=1" "-D ALIGN=0" "-D WINDOW=6"; do
    run4 "causal $cfg [B=$1 H=$2 T=$3 S=$4]" $CA "$cfg -D E=$5" "$d" \
      "--input q=$d/q.npy --input k=$d/k.npy --input v=$d/v.npy" "o"
  done
done
# fused with block skipping: one attention kernel with the run-time offset
"$ATTNC" $CA --emit=ir -o "$TMP/ca.ir" 2>"$TMP/err"
if grep -q "attention(.*mask=\[none,0\], moff=-T+S" "$TMP/ca.ir"; then ok "bottom_right fuses: mask=[none,0] moff=-T+S"
else bad "bottom_right not fused: $(grep attention "$TMP/ca.ir")"; fi

# gather errors: exit 1, the message, no output written
d="$TMP/gerr"
mkdir -p "$d"
gen "$d" 5 gather 2 4
printf 'model twice\ndim B, T\ninput input_ids: i32[B, T]\nweight wte: f32[11, 13] = "wte"\noutput h: f32[B, T, 13]\nh = gather(wte, input_ids * 2 - 1) * 2.0\n' >"$TMP/twice.attn"
for v in "--interp" "" "--no-fuse"; do
  expect 1 "input 'input_ids' \[1, 2\] = 11 is out of range for 'wte' \(11 rows\)" -- \
    "$ATTNC" run $GA $v --weights "$d/w.safetensors" --input input_ids="$d/big.npy" --output h="$d/o1.npy"
  expect 1 "input 'input_ids' \[0, 3\] = -1 is out of range for 'wte' \(11 rows\)" -- \
    "$ATTNC" run $GA $v --weights "$d/w.safetensors" --input input_ids="$d/neg.npy" --output h="$d/o2.npy"
  # computed ids: 2 * 6 - 1 = 11 at [1, 1], and 2 * 0 - 1 = -1 at [0, 0] (checked in the kernel: either may come first)
  expect 1 "the ids of gather at .*twice.attn:6:5 \[[01], [01]\] = (11|-1) is out of range for 'wte' \(11 rows\)" -- \
    "$ATTNC" run "$TMP/twice.attn" $v --weights "$d/w.safetensors" --allow-extra-weights --input input_ids="$d/twice.npy" --output h="$d/o3.npy"
done
if [ -e "$d/o1.npy" ] || [ -e "$d/o2.npy" ] || [ -e "$d/o3.npy" ]; then bad "an output was written after a gather error"
else ok "no output written after gather errors"; fi
finish

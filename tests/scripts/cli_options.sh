#!/usr/bin/env bash
# cli_options.sh - a command line that behaves like cc and LLVM tools:
# every option with a value takes --opt=V and --opt V; unknown options,
# kinds and suffixes are errors naming the known ones; -O0..-O3 mean what
# --help says (checked against the PyTorch fixtures at every level);
# --mcpu, --mattr and --mtriple are checked against LLVM's registry before
# anything reaches LLVM (every target LLVM was built with is known); bench
# takes a built library.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"
SDPA=examples/sdpa.attn
FX=tests/fixtures/mha/t1
MHA="examples/mha.attn -D D=64 -D H=2"

# same A B: two command lines give the same stdout (and succeed)
same() {
  local what=$1 a=$2 b=$3
  if eval "$a" >"$TMP/a" 2>"$TMP/ea" && eval "$b" >"$TMP/b" 2>"$TMP/eb" && cmp -s "$TMP/a" "$TMP/b" && [ -s "$TMP/a" ]; then
    ok "$what"
  else
    bad "$what: $(head -2 "$TMP/ea" "$TMP/eb")"
  fi
}

# ---- --opt=V and --opt V ----
same "--emit stats = --emit=stats" "\"$ATTNC\" $SDPA --emit stats" "\"$ATTNC\" $SDPA --emit=stats"
same "-o F = -oF = -o=... forms" "\"$ATTNC\" $SDPA -o - --emit=ir" "\"$ATTNC\" $SDPA -o- --emit ir"
same "-D N=V = -DN=V" "\"$ATTNC\" $SDPA -D E=4 --emit=ir" "\"$ATTNC\" $SDPA -DE=4 --emit=ir"
same "--mcpu V = --mcpu=V" "\"$ATTNC\" $SDPA --mcpu x86-64-v3 --emit=ir" "\"$ATTNC\" $SDPA --mcpu=x86-64-v3 --emit=ir"
same "--print-after PASS = --print-after=PASS" "\"$ATTNC\" $SDPA --print-after cse 2>&1" "\"$ATTNC\" $SDPA --print-after=cse 2>&1"
same "--tile V = --tile=V" "\"$ATTNC\" examples/mha.attn --tile matmul:96" "\"$ATTNC\" examples/mha.attn --tile=matmul:96"
same "run: --weights=F --input=N=F --output=N=F --threads=2 --device=-1 = the spaced forms" \
  "\"$ATTNC\" run $MHA --weights=$FX/weights.safetensors --input=x=$FX/x.npy --output=y=$TMP/y1.npy --threads=2 --device=-1 && cat $TMP/y1.npy" \
  "\"$ATTNC\" run $MHA --weights $FX/weights.safetensors --input x=$FX/x.npy --output y=$TMP/y2.npy --threads 2 --device -1 && cat $TMP/y2.npy"
expect 0 "^fused " -- "$ATTNC" bench $SDPA --dim=B=1 --dim H=1 --dim=T=5 --dim S=3 --runs=2 --threads 1 --seed=7
expect 1 "--no-fuse takes no value" -- "$ATTNC" $SDPA --no-fuse=1
expect 1 "--emit needs a value \(KIND,..\)" -- "$ATTNC" $SDPA --emit
expect 1 "--weights needs a value" -- "$ATTNC" run $MHA --weights
expect 1 "unknown option '-emit=ir'; did you mean '--emit'" -- "$ATTNC" $SDPA -emit=ir
expect 1 "unknown option '--weight'; did you mean '--weights'" -- "$ATTNC" run $MHA --weight x
expect 1 "unknown option '--dims'; did you mean '--dim'" -- "$ATTNC" bench $SDPA --dims B=1
expect 0 "^graph sdpa" -- "$ATTNC" -- $SDPA

# ---- --emit kinds and output suffixes ----
expect 1 "-o $TMP/model: attnc does not know what to write for this suffix \(known: .ir \(ir\), .*\.so \(so\)" -- \
  "$ATTNC" $SDPA -o "$TMP/model"
[ ! -e "$TMP/model" ] && ok "an unknown suffix writes nothing" || bad "-o model wrote a file"
"$ATTNC" $SDPA --emit=ir -o "$TMP/model.txt" && grep -q '^graph sdpa' "$TMP/model.txt" && ok "--emit=ir -o any.name writes the named kind" || bad "--emit=ir -o model.txt"
expect 1 "unknown --emit kind 'sso'; did you mean 'so'\? \(kinds: ir, dot, stats, llvm, asm, obj, header, so" -- \
  "$ATTNC" $SDPA --emit=ir,sso -o "$TMP/m"
expect 1 "--emit=so,ir writes several files: give -o BASE" -- "$ATTNC" $SDPA --emit=so,ir
expect 1 "--emit=so writes a binary file: give -o FILE" -- "$ATTNC" $SDPA --emit=so
expect 1 "-c cannot be combined with --emit=llvm" -- "$ATTNC" $SDPA -c --emit=llvm -o "$TMP/x.o"

# ---- -O levels: kernel counts, and numbers against PyTorch at each ----
expect 1 "-O needs its 0..3 attached, as in -O2" -- "$ATTNC" $SDPA -O
expect 1 "-O4: the levels are -O0, -O1, -O2 and -O3" -- "$ATTNC" $SDPA -O4
expect 1 "-O needs its 0..3 attached" -- "$ATTNC" $SDPA -O 2
kernels() { "$ATTNC" examples/encoder.attn -D L=1 "$@" --emit=stats | sed -n 's/^kernels //p'; }
k0=$(kernels -O0) k1=$(kernels -O1) k2=$(kernels -O2) k3=$(kernels -O3) kd=$(kernels) kn=$(kernels --no-fuse)
[ "$k1" = "$kn" ] && [ "$k2" = "$k3" ] && [ "$k3" = "$kd" ] && [ "$k3" -lt "$k1" ] && [ "$k1" -le "$k0" ] &&
  ok "kernels: -O0 $k0 (as lowered), -O1 $k1 (= --no-fuse), -O2 $k2 = -O3 $k3 = default (fused)" ||
  bad "kernels -O0 $k0 -O1 $k1 -O2 $k2 -O3 $k3 default $kd --no-fuse $kn"
[ "$("$ATTNC" examples/encoder.attn -O0 --emit=ir)" = "$("$ATTNC" examples/encoder.attn --passes=cse -O0 --emit=ir)" ] &&
  ok "-O0 runs no graph pass" || bad "-O0 ran a pass"
EFX=tests/fixtures/encoder/small_gelu
for o in 0 1 2 3; do
  engines="jit"
  [ $o = 0 ] && engines="jit so" # a library at the least usual level too
  for engine in $engines; do
    if [ $engine = so ]; then
      "$ATTNC" examples/encoder.attn $(fixture_defs $EFX) -O$o -o "$TMP/enc$o.so" 2>"$TMP/err" || { bad "-O$o .so: $(head -2 "$TMP/err")"; continue; }
      cmd=("$ATTNC" run "$TMP/enc$o.so")
    else
      cmd=("$ATTNC" run examples/encoder.attn $(fixture_defs $EFX) -O$o)
    fi
    if "${cmd[@]}" --weights $EFX/weights.safetensors $(fixture_inputs $EFX) --output y="$TMP/y.npy" 2>"$TMP/err" &&
       r=$("$NPYCMP" "$TMP/y.npy" $EFX/expected_y.npy --rtol 1e-5); then
      ok "-O$o $engine encoder/small_gelu: $r"
    else
      bad "-O$o $engine: $(head -2 "$TMP/err") $r"
    fi
  done
done
expect 1 "bench: -O1 would make both variants unfused" -- "$ATTNC" bench $SDPA -O1 --dim B=1

# ---- targets: checked before LLVM sees them ----
expect 1 "--mcpu=skylake-avx51: not a CPU LLVM knows for x86_64.*did you mean 'skylake-avx512'" -- \
  "$ATTNC" $SDPA --mcpu=skylake-avx51 -o "$TMP/t.so"
expect 1 "--mattr=\+avx9: 'avx9' is not a feature LLVM knows for x86_64.*did you mean '\+avx" -- \
  "$ATTNC" $SDPA --mattr=+avx9 -o "$TMP/t.so"
if grep -q "not a recognized" "$TMP/err"; then bad "LLVM's own warning leaked: $(head -1 "$TMP/err")"; else ok "no bare LLVM warning"; fi
expect 1 "--mattr=avx2: 'avx2': write \+FEATURE to enable a feature or -FEATURE" -- "$ATTNC" $SDPA --mattr=avx2 --emit=llvm
expect 1 "--mtriple=aarch65-linux-gnu: unknown target triple: LLVM has no target 'aarch65'; did you mean 'aarch64'" -- \
  "$ATTNC" $SDPA --mtriple=aarch65-linux-gnu -o "$TMP/t.so"
expect 1 "--mtriple=riscv64-linux-gnu: the CPU backend generates code for x86-64 and AArch64 only" -- \
  "$ATTNC" $SDPA --mtriple=riscv64-linux-gnu -o "$TMP/t.so"
expect 1 "--mcpu=cortex-a7x: not a CPU LLVM knows for aarch64-linux-gnu; did you mean 'cortex-a7" -- \
  "$ATTNC" $SDPA --mtriple=aarch64-linux-gnu --mcpu=cortex-a7x -o "$TMP/t.so"
ls "$TMP"/t.* >/dev/null 2>&1 && bad "a refused target left files: $(ls "$TMP"/t.*)" || ok "refused targets write nothing"
expect 0 "^  skylake-avx512$" -- "$ATTNC" $SDPA --mcpu=help
expect 0 "^  avx512f$" -- "$ATTNC" $SDPA --mattr=help
expect 0 "^  cortex-a72$" -- "$ATTNC" $SDPA --mtriple=aarch64-linux-gnu --mcpu=help
expect 0 "^  neon$" -- "$ATTNC" $SDPA --mtriple=aarch64-linux-gnu --mattr=help
"$ATTNC" $SDPA --mcpu=x86-64-v3 --mattr=+avx2,-avx512f -o "$TMP/v3.so" && [ -s "$TMP/v3.so" ] &&
  ok "valid --mcpu and --mattr build" || bad "--mcpu=x86-64-v3 --mattr=+avx2,-avx512f failed"

# ---- bench on a built library ----
"$ATTNC" $MHA -o "$TMP/mha.so"
expect 0 "cannot be recompiled unfused" -- "$ATTNC" bench "$TMP/mha.so" --dim B=2 --dim T=7 --runs 2 --threads 1 \
  --json "$TMP/lib.json"
python3 -c "import json; d=json.load(open('$TMP/lib.json')); v=d['variants']; exit(0 if d['library'] and len(v)==1 and v[0]['median_s']>0 and v[0]['nonfinite']==0 else 1)" &&
  ok "bench LIB.so --json: one variant, finite outputs" || bad "bench LIB.so json: $(cat "$TMP/lib.json")"
"$ATTNC" bench "$TMP/mha.so" --dim B=2 --dim T=7 --runs 1 --weights $FX/weights.safetensors >"$TMP/out" 2>"$TMP/err" &&
  ok "bench LIB.so --weights" || bad "bench LIB.so --weights: $(head -2 "$TMP/err")"
expect 1 "-D: the params of a compiled library are fixed" -- "$ATTNC" bench "$TMP/mha.so" -D D=4 --dim B=1 --dim T=1
expect 1 "a built library cannot be recompiled; the pass options and -O do not apply" -- \
  "$ATTNC" bench "$TMP/mha.so" --disable-pass=cse --dim B=1 --dim T=1
expect 1 "--dim TT: the model has no dim 'TT'; did you mean 'T'" -- "$ATTNC" bench "$TMP/mha.so" --dim B=1 --dim TT=1
expect 1 "give the size of dim 'T' with --dim T=N" -- "$ATTNC" bench "$TMP/mha.so" --dim B=1
finish

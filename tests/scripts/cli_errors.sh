#!/usr/bin/env bash
# cli_errors.sh - bad command lines, inputs, weights and files get a clear
# error (exit status 1, a message naming what is wrong) and leave no
# output file behind.
source "$(dirname "$0")/lib.bash"
FX=tests/fixtures/mha/t1
MHA="examples/mha.attn -D D=64 -D H=2"


expect 0 "usage: attnc" -- "$ATTNC" --help
expect 0 "^attnc [0-9]" -- "$ATTNC" --version
expect 1 "unknown option '--emitt=ir'; did you mean '--emit'" -- "$ATTNC" examples/sdpa.attn --emitt=ir
expect 1 "no param 'CASUAL'; did you mean 'CAUSAL'" -- "$ATTNC" examples/sdpa.attn -D CASUAL=1
expect 1 "-D E=abc: 'abc' is not a number" -- "$ATTNC" examples/sdpa.attn -D E=abc
expect 1 "-D EPS=inf: 'inf' is not a number" -- "$ATTNC" examples/rope.attn -D EPS=inf
expect 1 "-D H=1.5: param 'H' is an integer" -- "$ATTNC" examples/rope.attn -D H=1.5
# real params: any number for a real, the last -D wins; an integer stays an integer
expect 0 "param THETA = 500.0" -- "$ATTNC" examples/rope.attn -D THETA=1e-3 -D THETA=500 -O0
expect 0 "param THETA = 0.125" -- "$ATTNC" examples/rope.attn -D THETA=1.25e-1 -D H=8 -O0
expect 1 "nonexistent.attn: cannot open: No such file" -- "$ATTNC" nonexistent.attn
expect 1 "examples: not a regular file" -- "$ATTNC" examples
expect 1 "unknown pass 'csee'.*did you mean 'cse'" -- "$ATTNC" examples/sdpa.attn --print-after=csee
expect 1 "unknown --emit kind 'llvmir'" -- "$ATTNC" examples/sdpa.attn --emit=llvmir
expect 1 "--emit=obj writes a binary file: give -o FILE" -- "$ATTNC" examples/sdpa.attn --emit=obj
expect 1 "-c cannot be combined with --emit=llvm" -- "$ATTNC" examples/sdpa.attn -c --emit=llvm -o "$TMP/x.o"
expect 1 "--mtriple=mips64-linux-gnu: the CPU backend generates code for x86-64 and AArch64 only" -- \
  "$ATTNC" examples/sdpa.attn --mtriple=mips64-linux-gnu -o "$TMP/x.so"
expect 0 "IR Dump After cse" -- "$ATTNC" examples/sdpa.attn --print-after-all -o "$TMP/x.ir"
expect 0 "IR Dump Before dce" -- "$ATTNC" examples/sdpa.attn --print-before=dce -o "$TMP/x.ir"

# attnc run: inputs
expect 1 "missing input 'x' \(f32\[B,T,64\]\)" -- "$ATTNC" run $MHA --weights $FX/weights.safetensors
expect 1 "the model has no input 'z'" -- "$ATTNC" run $MHA --weights $FX/weights.safetensors \
  --input x=$FX/x.npy --input z=$FX/x.npy
expect 1 "input 'x'.*axis 2.*32" -- "$ATTNC" run $MHA --weights $FX/weights.safetensors \
  --input x=tests/fixtures/encoder/t1/x.npy
expect 1 "holds f64 data but the model expects f32" -- "$ATTNC" run $MHA --weights $FX/weights.safetensors \
  --input x=$FX/expected_y.npy
head -c 90 $FX/x.npy >"$TMP/trunc.npy"
expect 1 "trunc.npy" -- "$ATTNC" run $MHA --weights $FX/weights.safetensors --input x="$TMP/trunc.npy"
expect 1 "--output q: the model has no output 'q'" -- "$ATTNC" run $MHA --weights $FX/weights.safetensors \
  --input x=$FX/x.npy --output q="$TMP/q.npy"

# attnc run: weights
head -c 200 $FX/weights.safetensors >"$TMP/trunc.safetensors"
expect 1 "trunc.safetensors" -- "$ATTNC" run $MHA --weights "$TMP/trunc.safetensors" --input x=$FX/x.npy
expect 1 "missing weight 'in_proj_weight'" -- "$ATTNC" run $MHA \
  --weights tests/fixtures/se_block/default/weights.safetensors --input x=$FX/x.npy
expect 1 "weight 'in_proj_weight': expected f32\[768,256\].*has F32\[192,64\]" -- "$ATTNC" run examples/mha.attn \
  --weights $FX/weights.safetensors --input x=tests/fixtures/mha/default/x.npy
expect 1 "weight 'fc2.bias' is not used" -- "$ATTNC" run tests/cli/fc1_only.attn \
  --weights tests/fixtures/se_block/default/weights.safetensors --input x=$FX/x.npy

# a failing run leaves no output file
rm -f "$TMP/y.npy"
"$ATTNC" run $MHA --weights "$TMP/trunc.safetensors" --input x=$FX/x.npy --output y="$TMP/y.npy" 2>/dev/null
if [ ! -e "$TMP/y.npy" ]; then ok "no output file after a failed run"; else bad "output file left after failure"; fi
# a good run writes it, and nothing else appears beside it
"$ATTNC" run $MHA --weights $FX/weights.safetensors --input x=$FX/x.npy --output y="$TMP/y.npy"
if [ -s "$TMP/y.npy" ] && [ -z "$(ls "$TMP" | grep tmp)" ]; then ok "output written atomically"; else bad "output not written"; fi
finish

#!/usr/bin/env bash
# export_models.sh - the programs attnc.export wrote from PyTorch modules
# (tests/export/*/model.attn, made by tests/export/gen.py: nn.MultiheadAttention,
# nn.TransformerEncoder relu with 6 layers and gelu, nn.TransformerDecoderLayer
# with a causal mask, the SE block, a torch.where score modification, ALiBi,
# transformers BERT / GPT-2 / LLaMA with padding masks) compile and match the
# module's own float64 outputs on fresh inputs at sizes other than the
# export's example, within a max-norm relative error of 1e-4, on
#   jit  attnc run model.attn (compiled in memory; outputs NaN-filled first)
#   so   attnc model.attn -o m.so, then attnc run m.so
# Also: the 6-layer encoder is one `for` loop; the weights file holds exactly
# the keys the program reads (attnc run refuses extra weights).
# The convolution cases (tests/export/conv_*) are export_conv.sh's.
source "$(dirname "$0")/lib.bash"
: "${NPYCMP:?set NPYCMP}"

# run_case DIR ENGINE: run DIR/model.attn on ENGINE into $TMP/out/
run_case() {
  local dir=$1 engine=$2 outputs="" f b
  for f in "$dir"/expected_*.npy; do
    b=$(basename "$f" .npy)
    outputs="$outputs --output ${b#expected_}=$TMP/out/${b#expected_}.npy"
  done
  rm -rf "$TMP/out" && mkdir "$TMP/out"
  case $engine in
  jit) "$ATTNC" run "$dir/model.attn" --threads=2 --weights "$dir/weights.safetensors" \
         $(fixture_inputs "$dir") $outputs ;;
  so)
    "$ATTNC" "$dir/model.attn" -o "$TMP/m.so" || return 1
    "$ATTNC" run "$TMP/m.so" --threads=2 --weights "$dir/weights.safetensors" \
      $(fixture_inputs "$dir") $outputs ;;
  esac
}

n=0
for dir in tests/export/*/; do
  dir=${dir%/}
  case $(basename "$dir") in conv_*) continue ;; esac
  [ -f "$dir/model.attn" ] || continue
  n=$((n + 1))
  for engine in jit so; do
    name="$engine $(basename "$dir")"
    if ! run_case "$dir" "$engine" 2>"$TMP/err"; then
      bad "$name: attnc failed: $(head -3 "$TMP/err")"
      continue
    fi
    for f in "$dir"/expected_*.npy; do
      b=$(basename "$f" .npy)
      b=${b#expected_}
      if r=$("$NPYCMP" "$TMP/out/$b.npy" "$f" --rtol 1e-4 2>&1); then ok "$name $b: $r"; else bad "$name $b: $r"; fi
    done
  done
done
[ "$n" -ge 10 ] && ok "$n exported programs" || bad "only $n exported programs under tests/export"

# the 6-layer encoder is a loop over layers.{i}, not six copies
enc=tests/export/encoder_relu/model.attn
if grep -q '^param L = 6' "$enc" && grep -q '^for i in 0\.\.L {' "$enc" &&
   grep -q '"layers\.{i}\.self_attn\.in_proj_weight"' "$enc" && ! grep -q 'layers\.1\.' "$enc"; then
  ok "encoder_relu: 6 layers are one loop (param L = 6, keys layers.{i}.*)"
else
  bad "encoder_relu: not a loop over layers.{i}"
fi
# GPT-2's tied LM head is saved once (transformers' lm_head.weight is wte)
if grep -q 'm.transformer.wte.weight' tests/export/gpt2/model.attn && ! grep -q 'lm_head' tests/export/gpt2/model.attn; then
  ok "gpt2: the tied LM head reads m.transformer.wte.weight (saved once)"
else
  bad "gpt2: the tied LM head is not the embedding table"
fi
finish

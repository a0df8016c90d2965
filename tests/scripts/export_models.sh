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

source tests/export/cases.bash

cases=()
for dir in tests/export/*/; do
  dir=${dir%/}
  case $(basename "$dir") in conv_*) continue ;; esac
  [ -f "$dir/model.attn" ] && cases+=("$dir")
done
n=${#cases[@]}
check_cases "${cases[@]}"
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
if grep -q 'm.transformer.wte.weight' tests/export/gpt2/model.attn && ! grep -q '"m.lm_head' tests/export/gpt2/model.attn; then
  ok "gpt2: the tied LM head reads m.transformer.wte.weight (saved once)"
else
  bad "gpt2: the tied LM head is not the embedding table"
fi
finish

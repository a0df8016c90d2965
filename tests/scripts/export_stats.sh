#!/usr/bin/env bash
# export_stats.sh - kernel counts of the exported programs (tests/export/*)
# against the hand-written examples at the same params (attnc --emit=stats),
# compared with tests/export/kernels.txt, whose differences docs/export.md
# explains.  UPDATE=1 rewrites kernels.txt from the current compiler.
source "$(dirname "$0")/lib.bash"
# case example -D flags
PAIRS=(
  "mha mha -D D=32 -D H=4"
  "encoder_relu encoder -D D=32 -D H=4 -D F=64 -D L=6"
  "encoder_gelu encoder -D D=32 -D H=4 -D F=64 -D L=2 -D GELU=1"
  "decoder decoder -D D=32 -D H=4 -D F=64"
  "se_block se_block -D C=32 -D R=4"
  "bert bert -D V=61 -D P=40 -D D=32 -D H=4 -D F=48 -D L=2"
  "gpt2 gpt2 -D V=61 -D P=40 -D D=32 -D H=4 -D L=2"
  "llama llama -D V=61 -D D=32 -D H=4 -D HK=2 -D F=48 -D L=2"
)
# kernels FILE FLAGS...: "N (op n, op n, ...)" from --emit=stats
kernels() {
  local f=$1
  shift
  "$ATTNC" "$f" "$@" --emit=stats -o "$TMP/s.stats" 2>"$TMP/err" || { echo "error: $(head -1 "$TMP/err")"; return; }
  awk 'NR==1 {n=$2; next} /^prepare/ {exit} {s = s (s ? ", " : "") $1 " " $2} END {print n " (" s ")"}' "$TMP/s.stats"
}
: >"$TMP/kernels.txt"
for p in "${PAIRS[@]}"; do
  read -r c e flags <<<"$p"
  printf '%s: exported %s; examples/%s.attn %s: %s\n' "$c" "$(kernels "tests/export/$c/model.attn")" \
    "$e" "$flags" "$(kernels "examples/$e.attn" $flags)" >>"$TMP/kernels.txt"
done
if [ "${UPDATE:-0}" = 1 ]; then
  cp "$TMP/kernels.txt" tests/export/kernels.txt
  ok "tests/export/kernels.txt rewritten"
fi
while IFS= read -r line; do
  c=${line%%:*}
  want=$(grep "^$c: " tests/export/kernels.txt)
  if [ "$line" = "$want" ]; then ok "$line"; else bad "kernel counts changed: $line (kernels.txt: ${want:-none}; explain in docs/export.md, then UPDATE=1)"; fi
done <"$TMP/kernels.txt"
finish

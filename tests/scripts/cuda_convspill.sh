#!/usr/bin/env bash
# cuda_convspill.sh - the CUDA conv kernels (cuda_conv.c) compiled for sm_90
# (and sm_80, which libraries embed too) by ptxas (-v): no kernel may spill (ptxas's "spill stores" and "spill
# loads" 0) or exceed 255 registers.  The SIMT f32 kernels (plain, with an
# epilogue body, depthwise, strided and dilated, grouped, with a folded
# squeeze or a scaled image (fold-se), the pools, a pool computing its conv
# (fuse-pool), fuse-excite's excitation) and the tensor-core implicit GEMM
# for f16 and bf16 (kernels 1 to 7, an epilogue body, wide channels).  The PTX is NVRTC's
# (--emit=ptx); ptxas is the toolkit's.  Skipped (exit 77, saying why)
# without /usr/local/cuda or without the CUDA backend.
source "$(dirname "$0")/lib.bash"
PTXAS=${PTXAS:-/usr/local/cuda/bin/ptxas}
if [ ! -x "$PTXAS" ]; then
  echo "SKIP: no $PTXAS (the CUDA toolkit)"
  exit 77
fi
if ! "$ATTNC" --version | grep -q "CUDA backend: kernels"; then
  echo "SKIP: $("$ATTNC" --version | tail -1)"
  exit 77
fi
M=tests/cuda_emu/models
# name | source | defines | 1: its convs run on tensor cores
configs=(
  "f32|tests/models/conv_cfg.attn||0"
  "f32_dw|tests/models/conv_cfg.attn|-D C=240 -D O=240 -D G=240 -D KH=5 -D KW=5 -D P=2 -D AVG=1|0"
  "f32_s2_dil_g2|tests/models/conv_cfg.attn|-D C=64 -D O=64 -D S=2 -D D=2 -D P=2 -D G=2|0"
  "f32_k7|tests/models/conv_cfg.attn|-D C=3 -D O=64 -D KH=7 -D KW=7 -D S=2 -D P=3|0"
  "f32_pool|tests/models/conv_pool.attn|-D C=64 -D O=64 -D AVG=1|0"
  "se_cnn|examples/se_cnn.attn||0"
  "mbconv|examples/mbconv.attn||0"
  "f16|$M/conv_f16.attn||1"
  "f16_k1|$M/conv_f16.attn|-D C=240 -D O=40 -D KH=1 -D KW=1 -D P=0|1"
  "f16_k7|$M/conv_f16.attn|-D C=3 -D O=64 -D KH=7 -D KW=7 -D S=2 -D P=3|1"
  "f16_k5_dil|$M/conv_f16.attn|-D C=64 -D O=256 -D KH=5 -D KW=5 -D D=2 -D P=4|1"
  "f16_grouped|$M/conv_f16.attn|-D C=64 -D O=64 -D G=4|0"
  "f16_body|$M/conv_f16_body.ir||1"
  "bf16|$M/conv_bf16.attn||1"
  "bf16_k5s2|$M/conv_bf16.attn|-D C=40 -D O=120 -D KH=5 -D KW=5 -D S=2 -D P=2|1"
  "bf16_dw|$M/conv_bf16.attn|-D C=240 -D O=240 -D G=240 -D KH=5 -D KW=5 -D P=2|0"
)
for c in "${configs[@]}"; do
  IFS='|' read -r name src defs tc <<<"$c"
  # shellcheck disable=SC2086
  if ! "$ATTNC" "$src" $defs --target=cuda --emit=cuda -o "$TMP/$name.cu" 2>"$TMP/err" ||
    ! "$ATTNC" "$src" $defs --target=cuda --emit=ptx -o "$TMP/$name.ptx" 2>>"$TMP/err"; then
    bad "$name: $(head -3 "$TMP/err")"
    continue
  fi
  # the conv kernels of the source: the node comments name their op; a tensor-core one calls tc_mma_*(acc;
  # and the excitation kernels (fuse-excite, cuda_excite.c: se_cnn's layers are matmuls)
  convs=$({ grep -A6 '^// %[0-9]* = \(conv2d\|maxpool2d\|avgpool2d\) ' "$TMP/$name.cu"; grep -A1 '^/\* fuse-excite: per image' "$TMP/$name.cu"; } |
    grep -oE '__global__ void (__launch_bounds__\([0-9, ]*\) )?k[0-9]+' | grep -oE 'k[0-9]+$' | sort -u)
  ntc=$(grep -c 'tc_mma_[bf16]*(acc\[i\]\[j\]' "$TMP/$name.cu")
  for arch in sm_80 sm_90; do
    if ! "$PTXAS" -arch=$arch -v "$TMP/$name.ptx" -o "$TMP/$name.$arch.cubin" 2>"$TMP/ptxas"; then
      bad "$name $arch: ptxas: $(grep -v info "$TMP/ptxas" | head -3)"
      continue
    fi
    # per entry: its name, then spill stores, spill loads and registers
    awk '/Compiling entry function/ {gsub(/\047/, "", $7); k = $7}
         /spill stores/ {st[k] = $5; ld[k] = $9}
         /Used [0-9]+ registers/ {for (i = 1; i <= NF; i++) if ($i == "Used") r[k] = $(i + 1)}
         END {for (k in r) print k, st[k], ld[k], r[k]}' "$TMP/ptxas" >"$TMP/entries"
    n=0 worst=0 fails=""
    for k in $convs; do
      read -r _ st ld regs < <(grep "^$k " "$TMP/entries") || { fails="$fails $k(not compiled)"; continue; }
      n=$((n + 1))
      [ "$regs" -gt "$worst" ] && worst=$regs
      [ "$st" = 0 ] && [ "$ld" = 0 ] && [ "$regs" -le 255 ] || fails="$fails $k($st bytes spill stores, $ld loads, $regs registers)"
    done
    if [ -z "$convs" ] || [ -n "$fails" ]; then
      bad "$name $arch: conv kernels [$(echo $convs)]:$fails"
    elif [ $((ntc > 0)) != "$tc" ]; then
      bad "$name: $ntc tensor-core conv kernels, want $([ "$tc" = 0 ] && echo none || echo some)"
    else
      ok "$name $arch: $n conv kernels ($ntc on tensor cores), no spills, at most $worst registers"
    fi
  done
done
finish

#!/usr/bin/env bash
# cuda_compile.sh - the CUDA backend without a GPU: every example's kernels
# are generated as CUDA C and compiled by NVRTC to PTX (compute_80) and to
# CUBIN for sm_80 and sm_90; ptxas must report no local-memory spills and
# at most 255 registers for every kernel.  The launcher fills one struct
# per kernel of the plan (the count --emit=stats gives), and the CUDA C
# defines exactly the kernels it launches, each once (kernels of identical
# code, as in identical layers, are shared: tests/scripts/cuda_depth.sh).
# Skipped (with the reason) when attnc was built without the CUDA toolkit.
# GPU execution: tests/scripts/cuda_gpu.sh.
source "$(dirname "$0")/lib.bash"
if ! "$ATTNC" --version | grep -q "CUDA backend: kernels"; then
  echo "SKIP: $("$ATTNC" --version | tail -1)"
  exit 0
fi
for src in examples/*.attn; do
  name=$(basename "$src" .attn)
  # the transformers examples at two layers: the second shares the first's kernels
  one=()
  case $name in bert | gpt2 | llama) one=(-D L=2) ;; esac
  if ! "$ATTNC" "$src" "${one[@]}" --target=cuda --emit=cuda -o "$TMP/$name.cu" 2>"$TMP/err"; then
    bad "$name: --emit=cuda failed: $(head -3 "$TMP/err")"
    continue
  fi
  # one launch (one struct filled) per kernel of the CUDA target's plan: what --emit=stats counts
  # (the CPU's plan can have fewer: fuse-pool fuses only non-overlapping windows for CUDA)
  kernels=$("$ATTNC" "$src" "${one[@]}" --target=cuda --emit=stats | awk '/^kernels/ {print $2}')
  # and the kernels computed at load (hoist-weights), but packs: CUDA reads the matrix itself
  prep=$("$ATTNC" "$src" "${one[@]}" --target=cuda --emit=stats | awk '/^prepare/ {p = 1; next} p && $1 != "pack" {n++} END {print n + 0}')
  kernels=$((kernels + prep))
  sed '/^#ifdef ATTNC_HOST_LAUNCHER/,$d' "$TMP/$name.cu" >"$TMP/$name.nvrtc.cu"
  sed -n '/^#ifdef ATTNC_HOST_LAUNCHER/,/^#ifdef ATTNC_EMU/p' "$TMP/$name.cu" >"$TMP/$name.host.c"
  fills=$(grep -c '^    struct A[0-9o]* a;$' "$TMP/$name.host.c")
  # the kernels defined (each once) and the names the launcher launches (variants k<N>g, k<N>n, k<N>c included)
  grep -oE '^extern "C" __global__ void (__launch_bounds__\([0-9, ]*\) )?k[0-9o]+[gnc]?\(' "$TMP/$name.nvrtc.cu" |
    grep -oE 'k[0-9o]+[gnc]?' | sort >"$TMP/defined"
  grep -oE '"k[0-9o]+[gnc]?"' "$TMP/$name.host.c" | tr -d '"' | sort -u >"$TMP/launched"
  want=$(wc -l <"$TMP/defined")
  if [ "$fills" = "$kernels" ] && [ "$want" -gt 0 ] && [ -z "$(uniq -d "$TMP/defined")" ] && cmp -s "$TMP/defined" "$TMP/launched" &&
     [ "$(grep -c '^extern "C" __global__' "$TMP/$name.nvrtc.cu")" = "$want" ]; then
    ok "$name: $want CUDA kernels launched as the $kernels kernels of the plan"
  else
    bad "$name: $fills launches for $kernels kernels of the plan; defined $(tr '\n' ' ' <"$TMP/defined"), launched $(tr '\n' ' ' <"$TMP/launched")"
  fi
  if "$ATTNC" "$src" "${one[@]}" --target=cuda --emit=ptx -o "$TMP/$name.ptx" 2>"$TMP/err" && grep -q "^.target sm_80" "$TMP/$name.ptx"; then
    ok "$name: PTX for compute_80"
  else
    bad "$name: PTX: $(head -5 "$TMP/err")"
  fi
  for arch in sm_80 sm_90; do
    if ! "$ATTNC" "$src" "${one[@]}" --target=cuda --emit=cubin --cuda-arch=$arch -o "$TMP/$name.$arch.cubin" 2>"$TMP/ptxas"; then
      bad "$name $arch: CUBIN: $(head -5 "$TMP/ptxas")"
      continue
    fi
    n=$(grep -c "Compiling entry function" "$TMP/ptxas")
    spills=$(grep -o '[0-9]* bytes spill stores, [0-9]* bytes spill loads' "$TMP/ptxas" | grep -vc '^0 bytes spill stores, 0 bytes spill loads')
    regs=$(grep -o 'Used [0-9]* registers' "$TMP/ptxas" | awk '{print $2}' | sort -n | tail -1)
    if [ "$n" = "$want" ] && [ "$spills" = 0 ] && [ "${regs:-0}" -le 255 ]; then
      ok "$name $arch: $n kernels, no spills, at most $regs registers"
    else
      bad "$name $arch: $n kernels (want $want), $spills with spills, $regs registers"
    fi
  done
done
# the attention kernel at the head sizes of the benchmarks, with a band and a body
for defs in "-D E=128 -D CAUSAL=1" "-D E=64 -D CAUSAL=0"; do
  for arch in sm_80 sm_90; do
    if "$ATTNC" examples/sdpa.attn $defs --target=cuda --emit=cubin --cuda-arch=$arch -o "$TMP/s.cubin" 2>"$TMP/ptxas" &&
      grep -q ' 0 bytes spill stores, 0 bytes spill loads' "$TMP/ptxas" && ! grep -q '[1-9][0-9]* bytes spill' "$TMP/ptxas"; then
      ok "sdpa $defs $arch: no spills"
    else
      bad "sdpa $defs $arch: $(grep -E 'spill|error' "$TMP/ptxas" | head -3)"
    fi
  done
done
# the tensor-core attention at every head size it takes, with and without a
# score body: the tile pass's register model must keep ptxas from spilling
for arch in sm_80 sm_90; do
  for E in 16 32 48 64 80 96 112 128; do
    for src in examples/flash_bf16.attn tests/cuda_emu/models/bf16_mods.attn; do
      if "$ATTNC" $src -D E=$E --target=cuda --emit=cubin --cuda-arch=$arch -o "$TMP/t.cubin" 2>"$TMP/ptxas"; then
        spill=$(grep -o '[0-9]* bytes spill stores' "$TMP/ptxas" | grep -vc '^0 bytes')
        regs=$(grep -o 'Used [0-9]* registers' "$TMP/ptxas" | awk '{print $2}' | sort -n | tail -1)
        [ "$spill" = 0 ] && ok "$(basename $src .attn) E=$E $arch: no spills, at most $regs registers" ||
          bad "$(basename $src .attn) E=$E $arch: spills: $(grep spill "$TMP/ptxas" | head -3)"
      else
        bad "$(basename $src .attn) E=$E $arch: $(head -3 "$TMP/ptxas")"
      fi
    done
  done
done
"$ATTNC" examples/alibi.attn --target=cuda --emit=cuda -o "$TMP/alibi.cu" && grep -q 'fabsf\|abs(' "$TMP/alibi.cu" &&
  ok "alibi: the score body is inlined into the attention kernel" || bad "alibi: no inlined body"
# without --target=cuda the CUDA kinds are refused; the runtime part says it is not built
if "$ATTNC" examples/sdpa.attn --emit=ptx -o "$TMP/x.ptx" 2>"$TMP/err"; then bad "--emit=ptx without --target=cuda"; else
  grep -q "needs --target=cuda" "$TMP/err" && ok "--emit=ptx needs --target=cuda" || bad "message: $(cat "$TMP/err")"; fi
if "$ATTNC" examples/sdpa.attn --target=cuda --emit=llvm -o "$TMP/x.ll" 2>"$TMP/err"; then bad "--target=cuda --emit=llvm should fail"; else
  grep -q "shared libraries (-o NAME.so) or objects" "$TMP/err" && [ ! -e "$TMP/x.ll" ] && ok "--target=cuda --emit=llvm: $(cat "$TMP/err")" ||
    bad "message: $(cat "$TMP/err")"; fi
finish

# emu.bash - sourced by the CUDA emulation tests (cuda_emu.sh, cuda_depth.sh)
# after lib.bash: check NAME SRC "DEFS" "DIMS..." [RTOL] ["CUDA-only flags"]
# generates the model's CUDA C and host launcher, builds them with the CPU
# emulation of tests/cuda_emu/ (each CUDA thread a POSIX thread), runs them
# on random inputs and weights (EMUENV: the emulation's settings) and
# compares every output with the reference interpreter's on the same data.
# EMU_SEED, when set, is the harness's seed (two variants of one model then
# run on the same data; the outputs stay in $TMP/NAME/out_*.npy).
: "${NPYCMP:?set NPYCMP}"
CXX=${CXX:-g++}
check() { # name src "defs" "dims..." [rtol] ["flags for the CUDA compile only"]
  local name=$1 src=$2 defs=$3 dims=$4 rtol=${5:-2e-5} cflags=${6:-}
  local d="$TMP/$name"
  mkdir -p "$d"
  if ! "$ATTNC" "$src" $defs $cflags --target=cuda --emit=cuda -o "$d/model.cu" 2>"$d/err"; then
    bad "$name: --emit=cuda: $(head -3 "$d/err")"
    return
  fi
  if ! $CXX -std=c++17 -O1 -w -DATTNC_HOST_LAUNCHER -DATTNC_EMU -DMODEL_CU="\"$d/model.cu\"" -Itests/cuda_emu \
    tests/cuda_emu/harness.cpp -lpthread -o "$d/h" 2>"$d/err"; then
    bad "$name: the emulation does not build: $(head -5 "$d/err")"
    return
  fi
  local seed=${EMU_SEED:-$RANDOM}
  if ! env ${EMUENV:-} "$d/h" "$d" $seed $dims 2>"$d/err"; then
    bad "$name [$dims]: emulated run failed: $(head -3 "$d/err")"
    return
  fi
  local args=() f
  for f in "$d"/in_*.npy; do
    local n=${f##*/in_}
    args+=(--input "${n%.npy}=$f")
  done
  local outs=() o
  for o in "$d"/out_*.npy; do
    local n=${o##*/out_}
    outs+=(--output "${n%.npy}=$d/ref_${n}")
  done
  if ! "$ATTNC" run "$src" $defs --interp --weights "$d/weights.safetensors" "${args[@]}" "${outs[@]}" 2>"$d/err" >/dev/null; then
    bad "$name: interpreter: $(head -3 "$d/err")"
    return
  fi
  for o in "$d"/out_*.npy; do
    local n=${o##*/out_}
    if r=$("$NPYCMP" "$o" "$d/ref_$n" --rtol "$rtol"); then
      ok "$name [$dims] ${n%.npy}: $r"
    else
      bad "$name [$dims] ${n%.npy} (seed $seed): $r"
    fi
  done
}

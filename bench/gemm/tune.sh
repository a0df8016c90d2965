#!/bin/sh
# bench/gemm/tune.sh: compare attnc_tpl_gemm configurations, interleaved in
# one process (see tune_main.c). Each argument is "label:-D flags"; the
# flags override tpl.h's ATTNC_GEMM_{MR,NR,KC,MC,NC} for that build.
#
#   VW=16 bench/gemm/tune.sh "default:" "kc256:-DATTNC_GEMM_KC=256 -DATTNC_GEMM_NC=768" \
#                            "8x48:-DATTNC_GEMM_MR=8 -DATTNC_GEMM_NR=48"
#   VW=8  bench/gemm/tune.sh "default:" "nc240:-DATTNC_GEMM_NC=240"
#
# VW=16 builds with -march=native, VW=8 with -mavx2 -mfma; ROUNDS (default 9).
set -eu
cd "$(dirname "$0")/../.."
CC=${CC:-clang-19}
VW=${VW:-16}
OUT=${BUILD:-build}/bench-gemm/tune
TPL=codegen/cpu/templates
if [ "$VW" = 16 ]; then FLAGS="-march=native -Wno-invalid-feature-combination"; else FLAGS="-mavx2 -mfma"; fi
rm -rf "$OUT"; mkdir -p "$OUT"
i=0; list=""; objs=""
for arg in "$@"; do
    label=${arg%%:*}; defs=${arg#*:}
    # shellcheck disable=SC2086
    $CC -std=c11 -O3 -DVW=$VW $FLAGS $defs -Dattnc_tpl_gemm=gemm_c$i -Dattnc_tpl_gemm_plan=plan_c$i \
        -Dattnc_tpl_gemm_scratch_floats=scratch_c$i -I $TPL -c $TPL/gemm.c -o "$OUT/c$i.o"
    list="$list X($i, \"$label\")"
    objs="$objs $OUT/c$i.o"
    i=$((i + 1))
done
[ $i -gt 0 ] || { echo "usage: $0 'label:-D flags' ..."; exit 2; }
echo "#define TUNE_CFGS$list" > "$OUT/tune_cfgs.h"
# shellcheck disable=SC2086
$CC -std=c11 -O2 -I "$OUT" bench/gemm/tune_main.c $objs -o "$OUT/tune"
"$OUT/tune" "${ROUNDS:-9}"

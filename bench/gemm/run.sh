#!/bin/sh
# bench/gemm/run.sh: build and run the GEMM template's correctness test and
# benchmark (vs OpenBLAS), for VW=16 (AVX-512, -march=native; skipped when
# the CPU has no AVX-512F) and VW=8 (AVX2, -mavx2 -mfma only).
#
#   bench/gemm/run.sh            test + bench, both widths
#   bench/gemm/run.sh test       correctness tests only (no OpenBLAS needed)
#   bench/gemm/run.sh paths      the template's paths against each other
#                                (bench_paths.c: small-M thresholds)
#   ROUNDS=9 bench/gemm/run.sh   more timed rounds (default 5; 3 runs each)
#   VWS=16 bench/gemm/run.sh     one width only
#
# Needs clang-19 and, for the benchmark, OpenBLAS (apt-get install -y
# libopenblas-dev). Binaries go to ${BUILD:-build}/bench-gemm.
# (FLAGS and BLASENV are split into words on purpose)
# shellcheck disable=SC2086
set -eu
cd "$(dirname "$0")/../.."
CC=${CC:-clang-19}
OUT=${BUILD:-build}/bench-gemm
VWS=${VWS:-16 8}
ROUNDS=${ROUNDS:-5}
MODE=${1:-all}
TPL=codegen/cpu/templates
mkdir -p "$OUT"

# The template must stay target-neutral and libc-free: build it the way
# attnc does (bitcode, no target flags) and check it references nothing.
for vw in $VWS; do
    $CC -O2 -std=c11 -Wall -Wextra -Werror -Wno-psabi -DVW=$vw -c $TPL/gemm.c -o "$OUT/gemm_neutral_v$vw.o"
    undef=$(nm -u "$OUT/gemm_neutral_v$vw.o")
    if [ -n "$undef" ]; then
        echo "gemm.c (VW=$vw) references external symbols (libc?):"; echo "$undef"; exit 1
    fi
done

status=0
for vw in $VWS; do
    if [ "$vw" = 16 ]; then
        if ! grep -qw avx512f /proc/cpuinfo; then
            echo "== VW=16 skipped: this CPU has no AVX-512F"; continue
        fi
        FLAGS="-march=native -Wno-invalid-feature-combination"
        # OpenBLAS picks its kernels for this CPU
        BLASENV=""
    else
        FLAGS="-mavx2 -mfma"
        # compare against OpenBLAS's AVX2 kernels (Debian's OpenBLAS is
        # DYNAMIC_ARCH; set OPENBLAS_CORETYPE yourself to override)
        BLASENV="OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}"
    fi
    echo "== VW=$vw ($FLAGS)"
    $CC -std=c11 -O2 -DVW=$vw $FLAGS -Wall -Wextra -DATTNC_GEMM_PATH_HOOK=test_path_hook -I $TPL \
        bench/gemm/test_gemm.c $TPL/gemm.c -lm \
        -o "$OUT/test_gemm_v$vw"
    if "$OUT/test_gemm_v$vw" > "$OUT/test_gemm_v$vw.log"; then tail -n 2 "$OUT/test_gemm_v$vw.log"
    else cat "$OUT/test_gemm_v$vw.log"; status=1; fi
    [ "$MODE" = test ] && continue
    if [ "$MODE" = paths ]; then
        $CC -std=c11 -O3 -DVW=$vw $FLAGS -Wall -Wextra -I $TPL bench/gemm/bench_paths.c $TPL/gemm.c -lm \
            -o "$OUT/bench_paths_v$vw"
        "$OUT/bench_paths_v$vw" "$ROUNDS"
        continue
    fi
    $CC -std=c11 -O3 -DVW=$vw $FLAGS -Wall -Wextra -I $TPL bench/gemm/bench_gemm.c $TPL/gemm.c \
        -lopenblas -lpthread -lm -o "$OUT/bench_gemm_v$vw"
    env $BLASENV "$OUT/bench_gemm_v$vw" "$ROUNDS"
done
exit $status

#!/bin/sh
# bench/attention/run.sh: build and run the fused attention template's
# correctness test and benchmark (vs an unfused OpenBLAS baseline), for
# VW=16 (AVX-512, -march=native; skipped when the CPU has no AVX-512F) and
# VW=8 (AVX2, -mavx2 -mfma only).
#
#   bench/attention/run.sh            test + bench, both widths
#   bench/attention/run.sh test       correctness tests only (no OpenBLAS needed)
#   ROUNDS=9 bench/attention/run.sh   more timed rounds (default 5; 3 runs each)
#   VWS=16 bench/attention/run.sh     one width only
#   THREADS=1 bench/attention/run.sh  thread count of the benchmark (default 2)
#   SEED=123 bench/attention/run.sh   replay the test's random data
#
# Needs clang-19 and, for the benchmark, OpenBLAS (apt-get install -y
# libopenblas-dev). Binaries go to ${BUILD:-build}/bench-attention.
set -eu
cd "$(dirname "$0")/../.."
CC=${CC:-clang-19}
OUT=${BUILD:-build}/bench-attention
VWS=${VWS:-16 8}
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-2}
MODE=${1:-all}
TPL=codegen/cpu/templates
mkdir -p "$OUT"

# The template must stay target-neutral and libc-free: build it the way
# attnc does (bitcode, no target flags) and check it references nothing.
for vw in $VWS; do
    $CC -O2 -std=c11 -Wall -Wextra -Werror -Wno-psabi -DVW=$vw -c $TPL/attention.c -o "$OUT/attention_neutral_v$vw.o"
    $CC -O2 -std=c11 -Wall -Wextra -Werror -Wno-psabi -DVW=$vw -emit-llvm -c $TPL/attention.c -o "$OUT/attention_v$vw.bc"
    undef=$(nm -u "$OUT/attention_neutral_v$vw.o")
    if [ -n "$undef" ]; then
        echo "attention.c (VW=$vw) references external symbols (libc?):"; echo "$undef"; exit 1
    fi
done

status=0
for vw in $VWS; do
    if [ "$vw" = 16 ]; then
        if ! grep -qw avx512f /proc/cpuinfo; then
            echo "== VW=16 skipped: this CPU has no AVX-512F"; continue
        fi
        FLAGS="-march=native -Wno-invalid-feature-combination"
        BLASENV=""
    else
        FLAGS="-mavx2 -mfma"
        # compare against OpenBLAS's AVX2 kernels (Debian's OpenBLAS is
        # DYNAMIC_ARCH; set OPENBLAS_CORETYPE yourself to override)
        BLASENV="OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}"
    fi
    echo "== VW=$vw ($FLAGS)"
    $CC -std=c11 -O2 -DVW=$vw $FLAGS -Wall -Wextra -I $TPL bench/attention/test_attention.c $TPL/attention.c -lm \
        -o "$OUT/test_attention_v$vw"
    if "$OUT/test_attention_v$vw" ${SEED:-} > "$OUT/test_attention_v$vw.log"; then
        head -n 1 "$OUT/test_attention_v$vw.log"; tail -n 2 "$OUT/test_attention_v$vw.log"
    else cat "$OUT/test_attention_v$vw.log"; status=1; fi
    [ "$MODE" = test ] && continue
    $CC -std=c11 -O3 -DVW=$vw $FLAGS -Wall -Wextra -I $TPL bench/attention/bench_attention.c $TPL/attention.c \
        -lopenblas -lpthread -lm -o "$OUT/bench_attention_v$vw"
    env $BLASENV "$OUT/bench_attention_v$vw" "$ROUNDS" "$THREADS" 2>/dev/null
done
exit $status

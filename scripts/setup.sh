#!/usr/bin/env bash
# setup.sh - installs what is missing, builds attnc, and runs the main job on
# an example: compile examples/encoder.attn to a self-contained shared
# library, run it on the PyTorch fixture, and compare with PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
FX=tests/fixtures/encoder/small_relu
OUT=$(mktemp -d)
echo "== attnc examples/encoder.attn -D D=64 -D F=96 -o $OUT/encoder.so"
time ./build/attnc examples/encoder.attn -D D=64 -D F=96 -o "$OUT/encoder.so"
ls -l "$OUT"
ldd "$OUT/encoder.so"
echo "== attnc run $OUT/encoder.so on $FX"
./build/attnc run "$OUT/encoder.so" --weights $FX/weights.safetensors --input x=$FX/x.npy \
  --output y="$OUT/y.npy"
./build/tests/npycmp "$OUT/y.npy" $FX/expected_y.npy --rtol 1e-5

#!/usr/bin/env bash
# setup.sh - installs what is missing, builds attnc, and runs the main job
# on an example: compile examples/encoder.attn and run it on the PyTorch
# fixture, comparing with PyTorch's result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
FX=tests/fixtures/encoder/small_relu
echo "== attnc examples/encoder.attn --emit=ir (first lines)"
./build/attnc examples/encoder.attn -D D=64 -D F=96 --emit=ir | head -12
echo "== attnc run examples/encoder.attn on $FX"
./build/attnc run examples/encoder.attn -D D=64 -D F=96 --interp \
  --weights $FX/weights.safetensors --input x=$FX/x.npy --output y=/tmp/attnc_encoder_y.npy
./build/tests/npycmp /tmp/attnc_encoder_y.npy $FX/expected_y.npy --rtol 1e-5

#!/bin/sh
# bench/cuda/attention.sh: the issue-5 GPU attention benchmark, in one call:
# builds examples/flash_bf16.attn for CUDA (tensor-core kernel, bf16,
# E = 128, causal and not), checks it against PyTorch's
# scaled_dot_product_attention (bf16, flash backend) and an f32 reference,
# and times both side by side in one process (alternating, CUDA events,
# median of RUNS), on device buffers (attnc_run_device on torch's stream).
# Also runs the GPU correctness suite (tests/scripts/cuda_gpu.sh: every
# example against its PyTorch fixtures).  Writes bench/cuda/results.md.
#   TORCH_PY=/path/to/python-with-torch RUNS=30 bench/cuda/attention.sh
# Shapes: B=4 H=16 T=4096 E=128 (the issue's), plus T=1024 and E=64.
# FLOPs: 4*B*H*T^2*E, halved for causal.
set -eu
cd "$(dirname "$0")/../.."
ATTNC=${ATTNC:-build/attnc}
PY=${TORCH_PY:-python3}
RUNS=${RUNS:-30}
OUT=${BUILD:-build}/bench-cuda
RES=${RES:-bench/cuda/results.md}
mkdir -p "$OUT"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'" || {
  echo "bench/cuda/attention.sh: needs a GPU and a Python with CUDA torch (TORCH_PY)" >&2
  exit 1
}
for E in 64 128; do for C in 0 1; do
  "$ATTNC" examples/flash_bf16.attn -D E=$E -D CAUSAL=$C --target=cuda -o "$OUT/flash_e${E}_c$C.so"
  # the unfused kernels (QK^T, softmax, PV with the T x T scores in memory), for the fused/unfused row
  "$ATTNC" examples/flash_bf16.attn -D E=$E -D CAUSAL=$C --target=cuda --no-fuse -o "$OUT/flash_e${E}_c${C}_unfused.so"
done; done
"$ATTNC" examples/flash_bf16.attn -D E=128 --target=cuda --emit=cubin --cuda-arch=sm_90 -o "$OUT/flash.cubin" 2>"$OUT/ptxas.txt"
{
  echo "# Fused attention, bf16, on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) ($(date -u +%F))"
  echo
  echo "attnc: examples/flash_bf16.attn --target=cuda (tensor-core kernel); peer: torch $("$PY" -c 'import torch; print(torch.__version__)')"
  echo "scaled_dot_product_attention, flash backend.  Device buffers, one process, alternating runs, median of $RUNS."
  echo
  PYTHONPATH=python "$PY" bench/cuda/sdpa_torch.py "$OUT" "$RUNS"
  echo
  echo "## ptxas (sm_90, E=128)"
  echo
  echo '```'
  grep -E "Compiling entry|spill|Used" "$OUT/ptxas.txt"
  echo '```'
  echo
  echo "## GPU correctness suite (tests/scripts/cuda_gpu.sh)"
  echo
  echo '```'
  ATTNC=$ATTNC NPYCMP=${NPYCMP:-build/npycmp} bash tests/scripts/cuda_gpu.sh 2>&1 | tail -40 || true
  echo '```'
} | tee "$RES"

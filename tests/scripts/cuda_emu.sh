#!/usr/bin/env bash
# cuda_emu.sh - the CUDA backend's kernels and host launcher, executed on
# the CPU (tests/cuda_emu/emu.h runs each CUDA thread as a POSIX thread) and
# compared with the reference interpreter on the same random inputs and
# weights: every example, sizes that do not divide the tiles (64) or the
# warp (32), T = 1.  This is what stands in for GPU execution tests while
# no GPU is lent; it checks the generated code's logic, not GPU timing or
# memory-model behaviour.  Skipped when attnc was built without CUDA (the
# CUDA C is still generated then, but the test keeps to one configuration).
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/emu.bash"
if ! "$ATTNC" --version | grep -q "CUDA backend: kernels"; then
  echo "SKIP: $("$ATTNC" --version | tail -1)"
  exit 0
fi
check sdpa examples/sdpa.attn "-D E=13" "B=2 H=3 T=7 S=70"
check sdpa_causal examples/sdpa.attn "-D CAUSAL=1" "B=1 H=2 T=65 S=65"
check sdpa_t1 examples/sdpa.attn "" "B=1 H=1 T=1 S=33"
check mha examples/mha.attn "-D D=64 -D H=4 -D CAUSAL=1" "B=2 T=17"
check encoder examples/encoder.attn "-D D=48 -D H=3 -D F=80 -D L=1 -D GELU=1" "B=2 T=13"
check decoder examples/decoder.attn "-D D=40 -D H=5 -D F=72" "B=1 T=9 S=5"
check se_block examples/se_block.attn "-D C=24 -D R=4" "N=2 H=7 W=5"
check se_encoder examples/se_encoder.attn "-D D=48 -D H=3 -D F=80 -D R=4" "B=2 T=13"
# fold-se over several blocks of rows (per-block column sums summed by the squeeze)
check se_encoder_blocks examples/se_encoder.attn "-D D=48 -D H=3 -D F=80 -D R=4" "B=2 T=70" 2e-5 "--gtile=matmul:32,64,8"
check gqa examples/gqa.attn "-D D=64 -D H=8 -D KV=2" "B=1 T=33"
check alibi examples/alibi.attn "-D D=64 -D H=8 -D W=5" "B=1 T=40"
check rope examples/rope.attn "-D D=48 -D H=2 -D THETA=500.5" "B=2 T=37"
# hoist-weights: the prepared values computed by a first run, read by the checked one
check hoist tests/prepare/hoist.attn "" "B=3 T=5"
check encoder_unfused examples/encoder.attn "-D D=48 -D H=3 -D F=80 -D L=1 --no-fuse" "B=1 T=9"
# score bodies (padding lengths incl. 0 -> fully masked rows, mask tensors,
# soft-capping with a causal band, |i - j| windows), GQA with a mask,
# primitive norms, matmul epilogues of every operand access mode
M=tests/cuda_emu/models
check padding $M/padding.attn "" "B=3 T=9 S=40"
check mask_tensor $M/mask_tensor.attn "" "B=2 T=33 S=5"
check softcap_causal $M/softcap_causal.attn "" "B=1 T=70 S=70"
check window_abs $M/window_abs.attn "" "B=1 T=37 S=37"
check gqa_mask $M/gqa_mask.attn "" "B=2 T=11 S=19"
check primitive_norms $M/primitive_norms.attn "" "B=2 T=7"
check epilogues $M/epilogues.attn "" "B=2 M=13 N=33"
# capacities: a fused loop of 65 operands (past the 64 the generators once
# had room for); 2,000 weights, 300 inputs and 300 outputs (the host once
# crashed from 128 weights, and mixed inputs up with weights past 128); 48
# encoder layers
check fused65 $M/fused65.ir "" "B=5"
python3 tests/scripts/wide_model.py 300 300 2000 >"$TMP/wide.attn"
check wide "$TMP/wide.attn" "" "B=2"
check encoder48 examples/encoder.attn "-D D=16 -D H=2 -D F=24 -D L=48" "B=1 T=3"
# sin, cos, erf, floor, ceil, round in loops, an epilogue and a score body
check math_ops $M/math_ops.attn "" "B=2 T=37 S=45"
check math_ops_t1 $M/math_ops.attn "-D THETA=500.5" "B=1 T=1 S=33"
# f16 / bf16, stored as such on the device (tensor-core attention).  The
# oracle rounds every node to the dtype, the kernels round what they store;
# tolerance: a few units in the last place of the dtype (bf16 2^-8, f16 2^-11)
check flash_bf16 examples/flash_bf16.attn "-D E=64" "B=1 H=2 T=70 S=70" 3e-2
check flash_bf16_causal examples/flash_bf16.attn "-D E=64 -D CAUSAL=1" "B=1 H=2 T=65 S=65" 3e-2
check flash_bf16_window examples/flash_bf16.attn "-D E=16 -D CAUSAL=1 -D WINDOW=9" "B=2 H=1 T=40 S=40" 3e-2
check flash_bf16_cross examples/flash_bf16.attn "-D E=128" "B=1 H=1 T=17 S=81" 3e-2
check flash_bf16_t1 examples/flash_bf16.attn "-D E=48" "B=2 H=2 T=1 S=70" 3e-2
# the same kernels with cp.async copies landing at issue (the other extreme
# of the emulation: a stage refilled while a warp still reads it shows up)
EMUENV="EMU_CP_EAGER=1"
check flash_bf16_eager examples/flash_bf16.attn "-D E=64 -D CAUSAL=1" "B=1 H=2 T=65 S=65" 3e-2
check bf16_mods_eager $M/bf16_mods.attn "" "B=2 T=50 S=50" 3e-2
# a device whose blocks cannot opt into the kernel's shared memory: the
# launcher takes the generic kernel
# decoding: few query blocks for the SMs, so the keys are split across
# blocks (split-KV) and combined; causal and with a mask body, T = 1 and 3
EMUENV="EMU_SMS=8"
check flash_bf16_splitkv examples/flash_bf16.attn "-D E=64" "B=1 H=2 T=1 S=700" 3e-2
check flash_bf16_splitkv_causal examples/flash_bf16.attn "-D E=128 -D CAUSAL=1" "B=2 H=1 T=3 S=300" 3e-2
check bf16_mods_splitkv $M/bf16_mods.attn "-D W=400" "B=2 T=2 S=330" 3e-2
EMUENV="EMU_SMEM=49152"
check flash_bf16_small_smem examples/flash_bf16.attn "-D E=128 -D CAUSAL=1" "B=1 H=1 T=33 S=33" 3e-2
EMUENV=
check flash_bf16_tile examples/flash_bf16.attn "-D E=64 -D CAUSAL=1" "B=1 H=1 T=77 S=77" 3e-2 "--gtile=attention:2,2,32,4"
check flash_bf16_tile1 examples/flash_bf16.attn "-D E=32 -D WINDOW=7" "B=1 H=1 T=50 S=50" 3e-2 "--gtile=attention:1,1,16,2"
check encoder_tiles examples/encoder.attn "-D D=48 -D H=3 -D F=80 -D L=1" "B=1 T=9" 2e-5 "--gtile=matmul:32,128,32"
check bf16_mods $M/bf16_mods.attn "" "B=3 T=50 S=50" 3e-2
check gqa_f16 $M/gqa_f16.attn "" "B=2 T=37" 4e-3
check mm_bf16 $M/mm_bf16.attn "" "B=2 M=37" 3e-2
check mm_bf16_big $M/mm_bf16.attn "-D K=264 -D N=136" "B=1 M=130" 3e-2
check mm_bf16_k13 $M/mm_bf16.attn "-D K=13" "B=1 M=9" 3e-2   # K % 8 != 0: the SIMT kernel
# the NaN rule (docs/architecture.md, Decisions): a NaN in v reaches every
# row through 0 * v, whether its key tile was skipped or masked element by
# element (so with block skipping too); a NaN in k reaches only the rows
# that see the key (masks are selects).  Generic kernel (f32, a padding body
# with fully masked rows), tensor-core kernel with skipped tiles (T > BQ)
# and with a body, split-KV.
EMUENV="EMU_NAN=v:4416"
check nan_v_generic examples/sdpa.attn "-D CAUSAL=1" "B=1 H=1 T=70 S=70"
# gather (indexed views, gather kernels, ids along the last axis), expand, zeros/full, dims as values
check gather_ops $M/gather_ops.attn "" "B=2 T=7"
check gather_ops_t1 $M/gather_ops.attn "" "B=1 T=1"
# causal alignment: bottom_right (offset S - T at run time) and top_left, T != S, T = 1, T > S
check causal_br $M/causal_align.attn "" "B=2 H=1 T=7 S=70"
check causal_br_t1 $M/causal_align.attn "" "B=1 H=2 T=1 S=33"
check causal_br_tgs $M/causal_align.attn "" "B=1 H=1 T=40 S=9"
check causal_tl_t1 $M/causal_align.attn "-D ALIGN=0" "B=1 H=1 T=1 S=33"
check causal_window $M/causal_align.attn "-D WINDOW=6" "B=1 H=1 T=9 S=41"
check causal_br_bf16 $M/causal_align_bf16.attn "-D E=64" "B=1 H=2 T=65 S=130" 3e-2
check causal_br_bf16_t1 $M/causal_align_bf16.attn "-D E=32" "B=2 H=1 T=1 S=70" 3e-2
check causal_window_bf16 $M/causal_align_bf16.attn "-D E=16 -D WINDOW=9" "B=1 H=1 T=33 S=100" 3e-2
EMUENV="EMU_NAN=k:4416"
check nan_k_generic examples/sdpa.attn "-D CAUSAL=1" "B=1 H=1 T=70 S=70"
EMUENV="EMU_NAN=v:624"
check nan_v_padding $M/padding.attn "" "B=3 T=9 S=40"
EMUENV="EMU_NAN=v:19136"
check nan_v_tc examples/flash_bf16.attn "-D E=64 -D CAUSAL=1" "B=1 H=1 T=300 S=300" 3e-2
EMUENV="EMU_NAN=v:1568"
check nan_v_tc_body $M/bf16_mods.attn "" "B=2 T=50 S=50" 3e-2
EMUENV="EMU_NAN=v:38143 EMU_SMS=8"
check nan_v_splitkv examples/flash_bf16.attn "-D E=128 -D CAUSAL=1" "B=1 H=1 T=3 S=300" 3e-2
EMUENV=
# image windows (cuda_conv.c): conv2d with epilogues, groups, depthwise,
# stride / dilation / padding, max and average pools; derived dims (conv /
# pool output sizes) are given to the harness by value
check conv_cfg tests/models/conv_cfg.attn "" "N=2 H=7 W=9 H_1=3 W_1=4"
check conv_dw tests/models/conv_cfg.attn "-D C=8 -D O=8 -D G=8 -D KH=5 -D KW=5 -D P=2 -D AVG=1 -D PK=3 -D PS=2 -D PP=1" \
  "N=1 H=9 W=13 H_1=5 W_1=7"
check conv_s2 tests/models/conv_cfg.attn "-D S=2 -D D=2 -D P=2 -D G=2" "N=2 H=9 W=8 H_1=5 W_1=4 H_2=2 W_2=2"
# fold-se on a conv (the squeeze from per-plane block sums, the scale in the pool's loads)
check se_cnn examples/se_cnn.attn "-D C1=8 -D C2=16 -D R=4" "N=2 H=7 W=9 H_1=3 W_1=4 H_2=1 W_2=2"
check vit examples/vit.attn "-D IMG=16 -D PATCH=8 -D D=16 -D H=2 -D F=24 -D L=2" "B=2"
# mbconv on its fixture's weights (batchnorm variances must be positive: EMU_DATA)
for c in res:"-D CIN=8 -D CEXP=24 -D COUT=8 -D SQ=8":"N=2 H=7 W=9" \
  s2:"-D CIN=8 -D CEXP=16 -D COUT=16 -D K=3 -D STRIDE=2 -D SQ=8 -D BN_EPS=1e-5":"N=1 H=15 W=15 H_1=8 W_1=8"; do
  IFS=: read -r name defs dims <<<"$c"
  mkdir -p "$TMP/data_$name"
  python3 - tests/fixtures/mbconv/$name "$TMP/data_$name" <<'PY'
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
raw = open(src + "/weights.safetensors", "rb").read()
n = struct.unpack_from("<Q", raw)[0]
for k, e in json.loads(raw[8:8 + n]).items():
    if e["dtype"] == "F32":
        b, en = e["data_offsets"]
        open(dst + "/w_" + k + ".bin", "wb").write(raw[8 + n + b:8 + n + en])
npy = open(src + "/x.npy", "rb").read()  # '<f4', C order: the data after the header
h = struct.unpack_from("<H", npy, 8)[0]
assert b"'<f4'" in npy[10:10 + h] and b"False" in npy[10:10 + h]
open(dst + "/in_x.bin", "wb").write(npy[10 + h:])
PY
  EMUENV="EMU_DATA=$TMP/data_$name"
  check mbconv_$name examples/mbconv.attn "$defs" "$dims"
done
EMUENV=
# decoding with a KV cache (states start at zero; positions pos in 0..8): update kernels, kv_len attention
check kv_layer tests/decode/kv_layer.attn "" "B=2 T=5"
check kv_layer_t1 tests/decode/kv_layer.attn "" "B=1 T=1"
check llama_cache examples/llama.attn "-D CACHE=1 -D MAXT=80 -D MAXB=3 -D V=96 -D D=32 -D H=4 -D HK=2 -D F=48 -D L=2" "B=3 T=7"
finish

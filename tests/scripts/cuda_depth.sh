#!/usr/bin/env bash
# cuda_depth.sh - identical layers share their CUDA kernels: the source
# NVRTC compiles holds each distinct kernel once, so the number of kernels
# (and NVRTC's work) does not grow with L; every layer launches the shared
# kernels with its own operands.  Checked on the transformers examples at
# small sizes: the kernel count at L = 2, 3 and 7 (the CUDA C, and the PTX
# entries when NVRTC is built in), no two kernels of the same code, and the
# L = 3 models on the CUDA emulation against the interpreter (three layers
# of different random weights through one set of kernels).
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/emu.bash"
# the kernels of the CUDA C (the part NVRTC compiles), their code with the
# kernel's own name replaced and the `// %N` node comments dropped: prints
# the number of kernels, then "duplicate <name> <name>" for kernels of equal code
kernels_of() {
  sed '/^#ifdef ATTNC_HOST_LAUNCHER/,$d' "$1" | python3 -c '
import re, sys
src = sys.stdin.read()
# a kernel starts at its struct (the generic and tensor-core kernels of one
# node share it); shared helpers ("/* tensor-core helpers") end the one before
chunks, cur = [], None
for line in src.split("\n"):
    m = re.match(r"struct A([0-9o]+) \{", line)
    if m:
        cur = [m.group(1), []]
        chunks.append(cur)
    elif line.startswith("/* tensor-core helpers"):
        cur = None
    elif cur is not None and not line.startswith("// %"):
        cur[1].append(line)
print(len(re.findall(r"^extern \"C\" __global__", src, re.M)))
seen = {}
for name, lines in chunks:
    code = re.sub(r"\b([kA])" + name + r"(?=[gnc]?\b)", r"\1@", "\n".join(lines))
    if code in seen:
        print("duplicate", seen[code], name)
    seen.setdefault(code, name)
'
}
bert="-D V=97 -D P=40 -D TV=9 -D D=32 -D H=4 -D F=48 -D EPS=1e-12" # TV=9: the emulation's random ids are 0..8
gpt2="-D V=101 -D P=72 -D D=32 -D H=4 -D EPS=1e-05"
llama="-D V=97 -D D=32 -D H=4 -D HK=2 -D F=56 -D THETA=500.0 -D EPS=1e-06"
for model in bert gpt2 llama; do
  defs=${!model}
  counts=""
  for L in 2 3 7; do
    # shellcheck disable=SC2086
    if ! "$ATTNC" "examples/$model.attn" $defs -D L=$L --target=cuda --emit=cuda -o "$TMP/$model$L.cu" 2>"$TMP/err"; then
      bad "$model L=$L: --emit=cuda: $(head -3 "$TMP/err")"
      continue
    fi
    out=$(kernels_of "$TMP/$model$L.cu")
    counts="$counts ${out%%$'\n'*}"
    if grep -q duplicate <<<"$out"; then bad "$model L=$L: kernels of the same code: $(grep duplicate <<<"$out" | head -3 | tr '\n' ';')"
    else ok "$model L=$L: ${out%%$'\n'*} kernels, each of its own code"; fi
  done
  read -r a b c <<<"$counts"
  [ -n "$c" ] && [ "$a" = "$b" ] && [ "$b" = "$c" ] && ok "$model: $a kernels at L = 2, 3 and 7" ||
    bad "$model: kernels at L = 2, 3, 7:$counts (they should not grow with L)"
done
if "$ATTNC" --version | grep -q "CUDA backend: kernels"; then
  # what NVRTC makes: the same entries at L = 2 and 7
  for L in 2 7; do
    # shellcheck disable=SC2086
    "$ATTNC" examples/gpt2.attn $gpt2 -D L=$L --target=cuda --emit=ptx -o "$TMP/g$L.ptx" 2>"$TMP/err" ||
      bad "gpt2 L=$L --emit=ptx: $(head -3 "$TMP/err")"
  done
  e2=$(grep -c '^.visible .entry' "$TMP/g2.ptx" 2>/dev/null)
  e7=$(grep -c '^.visible .entry' "$TMP/g7.ptx" 2>/dev/null)
  [ "${e2:-0}" -gt 0 ] && [ "$e2" = "$e7" ] && ok "gpt2: $e2 PTX entries at L = 2 and 7" || bad "gpt2: PTX entries $e2 at L=2, $e7 at L=7"
  # three layers of different weights through the shared kernels, against the interpreter
  check bert_l3 examples/bert.attn "$bert -D L=3" "B=3 T=9"
  check gpt2_l3 examples/gpt2.attn "$gpt2 -D L=3" "B=2 T=7"
  check llama_l3 examples/llama.attn "$llama -D L=3" "B=2 T=7"
else
  echo "# no CUDA backend in this build: the emulation runs are skipped (cuda_emu.sh says why)"
fi
finish

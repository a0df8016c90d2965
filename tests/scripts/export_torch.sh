#!/usr/bin/env bash
# export_torch.sh - the attnc.export checks that need torch
# (tests/export/test_torch.py): the golden programs of two small modules (mha,
# se_block) regenerate exactly as committed, refused modules (an unsupported
# aten op, data-dependent control flow, an inexpressible size, a strided slice)
# give their errors and write nothing, and `python -m attnc.export` works.
# Needs a Python with torch, transformers and torchvision: $ATTNC_TORCH_PYTHON,
# else the dev venv /work/venv/bin/python, else python3; without one it prints
# why and exits 77 (skipped: CI has no torch; the committed programs are
# checked there by export_models.sh).
source "$(dirname "$0")/lib.bash"
PY=""
for p in ${ATTNC_TORCH_PYTHON:-} /work/venv/bin/python python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import torch, transformers, torchvision' 2>/dev/null; then
    PY=$p
    break
  fi
done
if [ -z "$PY" ]; then
  echo "SKIP: no Python with torch, transformers and torchvision (set ATTNC_TORCH_PYTHON)"
  exit 77
fi
echo "# $("$PY" -c 'import torch, sys; print(sys.version.split()[0], "torch", torch.__version__)')"
"$PY" -B tests/export/test_torch.py -v >"$TMP/log" 2>&1
rc=$?
while read -r tag name status; do
  if [ "$status" = ok ]; then ok "$name"; else bad "$name: $status"; fi
done < <(grep '^RESULT ' "$TMP/log")
grep '^# ' "$TMP/log"
if [ "$rc" -ne 0 ]; then
  bad "unittest exited with status $rc; its log ends:"
  tail -40 "$TMP/log"
fi
finish

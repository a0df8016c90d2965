#!/usr/bin/env bash
# Regenerate the golden IR files and the expected diagnostics after an
# intended change; review the diff before committing.
set -e
cd "$(dirname "$0")/.."
build=${BUILD:-build}
export ATTNC=$PWD/$build/attnc ATTNC_SOURCE_DIR=$PWD UPDATE=1
bash tests/scripts/golden_ir.sh
bash tests/scripts/errors_corpus.sh
bash tests/scripts/golden_passes.sh
git status --short tests/golden tests/errors tests/passes

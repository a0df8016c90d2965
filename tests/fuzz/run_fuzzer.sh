#!/usr/bin/env bash
# run_fuzzer.sh - run one libFuzzer harness for a bounded time on a copy of
# its seed corpus (the repository corpus is never modified).
# Usage: run_fuzzer.sh FUZZER_BINARY CORPUS_DIR SECONDS
# Prints the executed-units count; exits nonzero if the fuzzer found a crash
# (the crashing input and the log are kept and their paths printed).
set -u
if [ $# -ne 3 ]; then
  echo "usage: $0 FUZZER_BINARY CORPUS_DIR SECONDS" >&2
  exit 2
fi
fuzzer=$1 corpus=$2 secs=$3
if [ ! -x "$fuzzer" ]; then
  echo "$0: fuzzer '$fuzzer' is not an executable" >&2
  exit 2
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/attnc_fuzz.XXXXXX") || exit 2
mkdir -p "$work/corpus" "$work/artifacts"
if [ -d "$corpus" ]; then
  cp -R "$corpus"/. "$work/corpus"/
else
  echo "$0: warning: corpus '$corpus' not found; starting empty" >&2
fi

"$fuzzer" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1
rc=$?

grep -E 'stat::number_of_executed_units' "$work/log" || echo "stat::number_of_executed_units: (not reported)"
crashes=$(find "$work/artifacts" -type f | wc -l)
if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
  echo "$(basename "$fuzzer"): FAILED (exit $rc, $crashes crash artifact(s))"
  tail -n 60 "$work/log"
  echo "log and artifacts kept in $work"
  exit 1
fi
echo "$(basename "$fuzzer"): ok"
rm -rf "$work"
exit 0

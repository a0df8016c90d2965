#!/usr/bin/env bash
# scripts/bench-quiet.sh - benchmarking on a shared machine: pause the other
# jobs while one measurement runs.  Every process with a positive nice value
# (start the other jobs -- builds, test suites -- with `nice -n 19`) is sent
# SIGSTOP, and SIGCONT afterwards.  (nice alone is not enough: with
# autogroups or cgroup CPU weights, the scheduler weighs niced jobs of
# another session like any other.)  Run as the owner of those jobs.
#
#   scripts/bench-quiet.sh CMD [ARG...]   run CMD with the others paused
#                                          (ATTNC_BENCH_WRAP, per measured process)
#   scripts/bench-quiet.sh on | off       pause / continue them
#                                          (ATTNC_BENCH_HOLD, around each point)
set -u
state=${TMPDIR:-/tmp}/attnc-bench-quiet.$(id -u)
others() { ps -eo pid=,ni= | awk '$2 > 0 { print $1 }'; }
case "${1:-}" in
on)
  others > "$state"
  xargs -r kill -STOP < "$state" 2>/dev/null
  exit 0 ;;
off)
  [ -f "$state" ] && xargs -r kill -CONT < "$state" 2>/dev/null
  rm -f "$state"
  exit 0 ;;
"")
  echo "usage: $0 CMD [ARG...] | on | off" >&2
  exit 2 ;;
esac
pids=$(others)
trap '[ -n "$pids" ] && kill -CONT $pids 2>/dev/null' EXIT INT TERM
[ -n "$pids" ] && kill -STOP $pids 2>/dev/null
"$@"

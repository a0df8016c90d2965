#!/usr/bin/env bash
# cli_outputs.sh - what attnc does to its output files: a regular file is
# replaced atomically; a character device (mknod'ed here, never the real
# /dev/null), a FIFO and a symlink are written into or through and stay
# what they are; new files get 0666 (0777 for .so) masked by the umask, an
# existing file keeps its mode; several outputs (--emit lists, a library
# and its header, attnc run's --output) are all written or none is, and no
# temporary file (linker temporaries included) is ever left behind.
source "$(dirname "$0")/lib.bash"
SDPA=examples/sdpa.attn
FX=tests/fixtures/mha/t1
MHA="examples/mha.attn -D D=64 -D H=2"
umask 022

# nothing but the expected names in a directory
only() {
  local dir=$1 what=$2
  shift 2
  local got want
  got=$(cd "$dir" && ls -A | sort | tr '\n' ' ')
  want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
  [ "$want" = " " ] && want=""
  if [ "$got" = "$want" ]; then ok "$what"; else bad "$what: directory holds '$got', expected '$want'"; fi
}
mode() { stat -c %a "$1"; }

# ---- a character device: written into, never replaced (-o /dev/null's case) ----
mkdir "$TMP/dev"
if mknod "$TMP/dev/null" c 1 3 2>"$TMP/err"; then
  chmod 666 "$TMP/dev/null"
  for args in "-o $TMP/dev/null --emit=ir" "--emit=so -o $TMP/dev/null" "--emit=llvm -o $TMP/dev/null"; do
    if "$ATTNC" $SDPA $args 2>"$TMP/err" && [ -c "$TMP/dev/null" ] && [ "$(stat -c %t,%T "$TMP/dev/null")" = 1,3 ]; then
      ok "attnc $args: the device is still a character device"
    else
      bad "attnc $args: $(ls -l "$TMP/dev/null") $(head -2 "$TMP/err")"
    fi
  done
  only "$TMP/dev" "no temporary file beside the device (the .so's header is null.h)" null null.h
  if "$ATTNC" run $MHA --weights $FX/weights.safetensors --input x=$FX/x.npy --output y="$TMP/dev/null" &&
     [ -c "$TMP/dev/null" ]; then ok "attnc run --output to a device"; else bad "attnc run --output to a device"; fi
else
  echo "skip: mknod of a character device is not permitted here ($(cat "$TMP/err")); run as root to test devices"
fi

# ---- a FIFO: written into (the writer waits for its reader) ----
mkfifo "$TMP/fifo"
timeout 30 cat "$TMP/fifo" >"$TMP/fifo.out" &
reader=$!
"$ATTNC" $SDPA --emit=stats -o "$TMP/fifo" 2>"$TMP/err"
rc=$?
wait $reader
if [ $rc -eq 0 ] && [ -p "$TMP/fifo" ] && grep -q "^kernels 1" "$TMP/fifo.out"; then ok "FIFO written into, still a FIFO"
else bad "FIFO: rc $rc, $(ls -l "$TMP/fifo") $(cat "$TMP/fifo.out") $(head -2 "$TMP/err")"; fi

# ---- a symlink: the file it points to is written; the link stays ----
mkdir "$TMP/ln" "$TMP/ln/real"
echo old >"$TMP/ln/real/m.ir"
chmod 640 "$TMP/ln/real/m.ir"
ln -s real/m.ir "$TMP/ln/m.ir"
"$ATTNC" $SDPA -o "$TMP/ln/m.ir"
if [ -L "$TMP/ln/m.ir" ] && grep -q '^graph sdpa' "$TMP/ln/real/m.ir" && [ "$(mode "$TMP/ln/real/m.ir")" = 640 ]; then
  ok "symlink followed: the link stays, its target is written and keeps its mode"
else
  bad "symlink: $(ls -l "$TMP/ln" "$TMP/ln/real")"
fi
ln -s real/lib.so "$TMP/ln/lib.so"
"$ATTNC" $SDPA -o "$TMP/ln/lib.so" && [ -L "$TMP/ln/lib.so" ] && [ -s "$TMP/ln/real/lib.so" ] &&
  ok "a dangling symlink to a library creates its target" || bad "dangling symlink: $(ls -l "$TMP/ln" "$TMP/ln/real")"
only "$TMP/ln/real" "no temporary file beside the targets" m.ir lib.so
only "$TMP/ln" "the links stay; the header goes beside the name given" real m.ir lib.so lib.h

# ---- modes ----
mkdir "$TMP/m"
(umask 027 && "$ATTNC" $SDPA -o "$TMP/m/a.so" && "$ATTNC" $SDPA -o "$TMP/m/a.ir")
[ "$(mode "$TMP/m/a.so")" = 750 ] && ok "new .so: 0777 & ~027 = 750" || bad "new .so mode $(mode "$TMP/m/a.so")"
[ "$(mode "$TMP/m/a.h")" = 640 ] && ok "new header: 0666 & ~027 = 640" || bad "new .h mode $(mode "$TMP/m/a.h")"
[ "$(mode "$TMP/m/a.ir")" = 640 ] && ok "new IR file: 640" || bad "new .ir mode $(mode "$TMP/m/a.ir")"
chmod 700 "$TMP/m/a.so"
chmod 604 "$TMP/m/a.h"
"$ATTNC" $SDPA -o "$TMP/m/a.so"
[ "$(mode "$TMP/m/a.so")" = 700 ] && [ "$(mode "$TMP/m/a.h")" = 604 ] && ok "existing files keep their modes" ||
  bad "modes after rewrite: $(mode "$TMP/m/a.so") $(mode "$TMP/m/a.h")"
"$ATTNC" run $MHA --weights $FX/weights.safetensors --input x=$FX/x.npy --output y="$TMP/m/y.npy"
[ "$(mode "$TMP/m/y.npy")" = 644 ] && ok "new .npy: 644 under umask 022" || bad "npy mode $(mode "$TMP/m/y.npy")"

# ---- several outputs: all or none ----
mkdir "$TMP/e"
"$ATTNC" $SDPA --emit=so,header,ir,stats,llvm,asm,dot -o "$TMP/e/sdpa"
only "$TMP/e" "--emit=so,header,ir,stats,llvm,asm,dot -o BASE writes BASE.{so,h,ir,stats,ll,s,dot}" \
  sdpa.so sdpa.h sdpa.ir sdpa.stats sdpa.ll sdpa.s sdpa.dot
grep -q '^kernels 1' "$TMP/e/sdpa.stats" && grep -q 'define.*sdpa_run' "$TMP/e/sdpa.ll" && grep -q '^graph sdpa' "$TMP/e/sdpa.ir" &&
  ok "each artifact holds its kind" || bad "artifact contents"
mkdir "$TMP/e2"
"$ATTNC" $SDPA --emit=so,obj -o "$TMP/e2/m.so"
only "$TMP/e2" "--emit=so,obj -o m.so: m.so, m.o and one header" m.so m.o m.h
g=$(nm -g --defined-only "$TMP/e2/m.o" | awk '{print $3}' | grep -c '^attnc_')
s=$(nm -D --defined-only "$TMP/e2/m.so" | awk '{print $3}' | grep -c '^attnc_')
[ "$g" = 0 ] && [ "$s" -gt 0 ] && ok "the object keeps only sdpa_* global, the library exports attnc_* too" ||
  bad "exports: object $g attnc_*, library $s"

mkdir "$TMP/f"
# the header cannot be written (its name is a directory): no library either
mkdir "$TMP/f/m.h"
expect_none() {
  local what=$1
  shift
  if "$@" 2>"$TMP/err"; then bad "$what: should fail"; return; fi
  only "$TMP/f" "$what: $(head -1 "$TMP/err" | cut -c1-90)" "${KEEP[@]}"
}
KEEP=(m.h)
expect_none "header path is a directory: no .so" "$ATTNC" $SDPA -o "$TMP/f/m.so"
expect_none "header path is a directory: no .o" "$ATTNC" $SDPA -c -o "$TMP/f/m.o"
rmdir "$TMP/f/m.h"
KEEP=()
# the linker fails: no library, no header, no temporary object or version script
expect_none "the linker fails: nothing left" env CC=false "$ATTNC" $SDPA -o "$TMP/f/m.so"
expect_none "ld fails for -c: nothing left" env PATH=/nonexistent "$ATTNC" $SDPA -c -o "$TMP/f/m.o"
# a later output of a list cannot be written
mkdir "$TMP/f/m.stats"
KEEP=(m.stats)
expect_none "--emit list with one bad output: none written" "$ATTNC" $SDPA --emit=ir,so,stats -o "$TMP/f/m"
rmdir "$TMP/f/m.stats"
KEEP=()
expect_none "a failed compile writes nothing" "$ATTNC" tests/errors/shape_mismatch_add.attn --emit=so,ir -o "$TMP/f/m"
# attnc run: a second output in a missing directory, or a failing run: no output at all
printf 'model two\ndim N\ninput x: f32[N, 2]\noutput a: f32[N, 2]\noutput b: f32[N, 2]\na = x * 2.0\nb = x + 1.0\n' \
  >"$TMP/two.attn"
python3 - "$TMP/x2.npy" <<'PY'
import struct, sys
d = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"
h = d + " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + struct.pack("<6f", 1, 2, 3, 4, 5, 6))
PY
head -c 100 "$TMP/x2.npy" >"$TMP/trunc.npy"
for engine in "" "--interp" "so"; do
  if [ "$engine" = so ]; then "$ATTNC" "$TMP/two.attn" -o "$TMP/two.so"; model=("$TMP/two.so"); eng=""; else model=("$TMP/two.attn"); eng=$engine; fi
  expect_none "run ${engine:-jit}: second --output in a missing directory: the first is not written" \
    "$ATTNC" run "${model[@]}" $eng --input x="$TMP/x2.npy" --output a="$TMP/f/a.npy" --output b="$TMP/f/no/b.npy"
  expect_none "run ${engine:-jit}: a failing run writes no output" \
    "$ATTNC" run "${model[@]}" $eng --input x="$TMP/trunc.npy" --output a="$TMP/f/a.npy" --output b="$TMP/f/b.npy"
  if "$ATTNC" run "${model[@]}" $eng --input x="$TMP/x2.npy" --output a="$TMP/f/a.npy" --output b="$TMP/f/b.npy" 2>"$TMP/err"; then
    only "$TMP/f" "run ${engine:-jit}: both outputs written, nothing else" a.npy b.npy
  else
    bad "run ${engine:-jit}: $(head -2 "$TMP/err")"
  fi
  rm -f "$TMP/f/a.npy" "$TMP/f/b.npy"
done
expect_none "run: two --output to the same file" "$ATTNC" run "$TMP/two.attn" --input x="$TMP/x2.npy" \
  --output a="$TMP/f/a.npy" --output b="$TMP/f/a.npy"
# attnc bench --json in a missing directory fails before any work
expect_none "bench --json in a missing directory" "$ATTNC" bench $SDPA --dim B=1 --dim H=1 --dim T=4 --dim S=4 \
  --runs 1 --json "$TMP/f/no/r.json"

# ---- interrupted: SIGTERM while the linker runs leaves no staged file and no linker input ----
mkdir "$TMP/k"
printf '#!/bin/sh\necho $$ >"%s/cc.pid"\nexec sleep 60\n' "$TMP" >"$TMP/slowcc"
chmod +x "$TMP/slowcc"
CC="$TMP/slowcc" "$ATTNC" $SDPA -o "$TMP/k/m.so" 2>/dev/null &
pid=$!
for _ in $(seq 600); do [ -s "$TMP/cc.pid" ] && break; sleep 0.1; done
staged=$(ls "$TMP/k" | tr '\n' ' ')
kill -TERM $pid
wait $pid
rc=$?
kill "$(cat "$TMP/cc.pid")" 2>/dev/null
case "$staged" in
*model.o*) only "$TMP/k" "SIGTERM during the link (status $rc; there were: ${staged% }): nothing left" ;;
*) bad "the link never started: $staged" ;;
esac

# ---- stdout ----
"$ATTNC" $SDPA --emit=stats >"$TMP/so.txt" && grep -q '^kernels 1' "$TMP/so.txt" && ok "--emit=stats to stdout" || bad "stdout"
"$ATTNC" $SDPA --emit=header -o - | grep -q 'int sdpa_run' && ok "--emit=header -o - to stdout" || bad "header to stdout"
# a link only the kernel resolves, as /dev/stdout is (made here: a broken attnc must not replace the real one)
ln -s /proc/self/fd/1 "$TMP/stdout"
"$ATTNC" $SDPA --emit=stats -o "$TMP/stdout" | grep -q '^kernels 1' && [ -L "$TMP/stdout" ] &&
  ok "-o a /proc/self/fd/1 link into a pipe; the link stays" || bad "-o /proc/self/fd/1 link, pipe"
echo "old old old old old old old old" >"$TMP/redirected.txt"
"$ATTNC" $SDPA --emit=stats -o "$TMP/stdout" >"$TMP/redirected.txt" && [ "$(head -1 "$TMP/redirected.txt")" = "kernels 1" ] &&
  ! grep -q old "$TMP/redirected.txt" && [ -L "$TMP/stdout" ] && ok "-o a /proc/self/fd/1 link into a redirected file" ||
  bad "-o /proc/self/fd/1 link, file: $(cat "$TMP/redirected.txt")"
finish

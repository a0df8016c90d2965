#!/usr/bin/env bash
# decode.sh - decoding with a KV cache (issue 13): `attnc generate` on the
# fixtures of scripts/gen_decode_fixtures.py (transformers' greedy ids) and
# its errors, then tests/python/test_decode.py (the state API, Model.generate,
# split-KV, the interpreter) with Debian's python3 + numpy.  One check line
# per case; exits 77 (skipped, saying why) without python3-numpy.
source "$(dirname "$0")/lib.bash"
PY=${ATTNC_PYTHON:-/usr/bin/python3}
F=tests/fixtures/decode
G="-D CACHE=1 -D MAXT=80 -D V=96 -D P=80 -D D=32 -D H=4 -D L=2"
if [ ! -x "$PY" ] || ! "$PY" -I -c 'import numpy' 2>/dev/null; then
  echo "SKIP: $PY with numpy not found (Debian packages python3, python3-numpy)"
  exit 77
fi
ids() { "$PY" -I -c "import numpy as n; print('$2'.join(map(str, n.load('$F/$1.npy')[0][:${3:-99}])))"; }

# attnc generate: a .attn (JIT) and a library, against transformers' ids
prompt=$(ids gpt2.prompts , 5)
want=$(ids gpt2.ids ' ')
got=$("$ATTNC" generate examples/gpt2.attn $G --weights $F/gpt2.safetensors --prompt-ids "$prompt" \
      --max-new-tokens 64 --threads 2 2>"$TMP/err")
[ "$got" = "$want" ] && ok "generate gpt2 (JIT): 64 ids as transformers" || bad "generate gpt2: got '$got', want '$want'"
if grep -qE '^prefill: 5 tokens in [0-9.]+ ms' "$TMP/err" && grep -qE '^decode: 63 tokens .* tokens/s; per token median [0-9.]+ ms, p90 [0-9.]+ ms' "$TMP/err"
then ok "generate: timings on stderr"; else bad "generate timings: $(cat "$TMP/err")"; fi
"$ATTNC" examples/llama.attn -D CACHE=1 -D MAXT=80 -D V=96 -D D=32 -D H=4 -D HK=2 -D F=48 -D L=2 -o "$TMP/llama.so"
prompt=$(ids llama.prompts , 5)
want=$(ids llama.ids ' ')
got=$("$ATTNC" generate "$TMP/llama.so" --weights $F/llama.safetensors --prompt-ids "$prompt" --max-new-tokens 64 2>/dev/null)
[ "$got" = "$want" ] && ok "generate llama (library): 64 ids as transformers" || bad "generate llama: got '$got', want '$want'"
expect 1 "'x2' is not a token id" -- "$ATTNC" generate "$TMP/llama.so" --weights $F/llama.safetensors --prompt-ids 1,x2
expect 1 "id 96 \(position 1\) is out of range for the vocabulary \(V = 96\)" -- \
  "$ATTNC" generate "$TMP/llama.so" --weights $F/llama.safetensors --prompt-ids 1,96
expect 1 "need 101 cache positions; the model's cache holds 80" -- \
  "$ATTNC" generate "$TMP/llama.so" --weights $F/llama.safetensors --prompt-ids 1,2 --max-new-tokens 100
expect 1 "not a decoding model" -- "$ATTNC" generate examples/gpt2.attn -D V=96 -D P=80 -D D=32 -D H=4 -D L=2 \
  --weights $F/gpt2.safetensors --prompt-ids 1
expect 1 "no prompt" -- "$ATTNC" generate "$TMP/llama.so"
# the language: a state read after its update, a state of run-time size
printf 'dim B, T\ninput x: f32[B, 4]\ninput p: i32[]\noutput y: f32[B, 4]\nstate s: f32[2, 8, 4] = "s"\nlet old = s\ns = update(s, reshape(x, [B, 1, 4]), axis=1, at=p)\ny = x + sum(sum(old, axis=0), axis=0)\n' >"$TMP/bad.attn"
expect 1 "state 's' is read here, but an update writes it in place" -- "$ATTNC" "$TMP/bad.attn" --emit=ir -o "$TMP/o.ir"
printf 'dim B, T\ninput x: f32[B, T]\noutput y: f32[B, T]\nstate s: f32[B, 8] = "s"\ny = x\n' >"$TMP/bad2.attn"
expect 1 "a state's shape is constant" -- "$ATTNC" "$TMP/bad2.attn" --emit=ir -o "$TMP/o.ir"

"$PY" -I -B tests/python/test_decode.py -v >"$TMP/log" 2>&1
while IFS= read -r line; do
  if [[ $line =~ ^(test[A-Za-z0-9_]*)\ \(([A-Za-z0-9_.]*)\)(.*)\ \.\.\.\ (ok|FAIL|ERROR)$ ]]; then
    [ "${BASH_REMATCH[4]}" = ok ] && ok "${BASH_REMATCH[2]#__main__.}" || bad "${BASH_REMATCH[2]#__main__.}"
  fi
done <"$TMP/log"
grep -qE '^OK' "$TMP/log" || { bad "test_decode.py"; tail -40 "$TMP/log"; }
finish

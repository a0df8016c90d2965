# cases.bash - shared by export_models.sh and export_conv.sh: compile and run
# exported cases (tests/export/CASE/) and compare them with the module's outputs.
# Needs lib.bash sourced first (ok, bad, TMP, fixture_inputs) and NPYCMP.

# run_case DIR ENGINE: attnc run of DIR/model.attn on ENGINE (jit: compiled in
# memory; so: attnc -o m.so first) into $TMP/out/NAME.npy for each expected output
run_case() {
  local dir=$1 engine=$2 outputs="" f b
  for f in "$dir"/expected_*.npy; do
    b=$(basename "$f" .npy)
    outputs="$outputs --output ${b#expected_}=$TMP/out/${b#expected_}.npy"
  done
  rm -rf "$TMP/out" && mkdir "$TMP/out"
  case $engine in
  jit) "$ATTNC" run "$dir/model.attn" --threads=2 --weights "$dir/weights.safetensors" \
         $(fixture_inputs "$dir") $outputs ;;
  so)
    "$ATTNC" "$dir/model.attn" -o "$TMP/m.so" || return 1
    "$ATTNC" run "$TMP/m.so" --threads=2 --weights "$dir/weights.safetensors" \
      $(fixture_inputs "$dir") $outputs ;;
  esac
}

# check_cases DIR...: every case on both engines, every output within a
# max-norm relative error of 1e-4 of the module's float64 output
check_cases() {
  local dir engine f b r name
  for dir in "$@"; do
    for engine in jit so; do
      name="$engine $(basename "$dir")"
      if ! run_case "$dir" "$engine" 2>"$TMP/err"; then
        bad "$name: attnc failed: $(head -3 "$TMP/err")"
        continue
      fi
      for f in "$dir"/expected_*.npy; do
        b=$(basename "$f" .npy)
        b=${b#expected_}
        if r=$("$NPYCMP" "$TMP/out/$b.npy" "$f" --rtol 1e-4 2>&1); then ok "$name $b: $r"; else bad "$name $b: $r"; fi
      done
    done
  done
}

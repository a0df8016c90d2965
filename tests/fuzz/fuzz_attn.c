/* fuzz_attn.c - libFuzzer harness for the .attn front end: any bytes must
 * give either a graph that verifies and prints, or diagnostics; never a
 * crash, a hang or an out-of-bounds access. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "frontend.h"
#include "cuda.h" /* the GPU tiler */
#include "pass.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  FILE *null = fopen("/dev/null", "w");
  IrArena *arena = ir_arena_new();
  IrDiag *diag = ir_diag_new(null);
  IrGraph *g = fe_compile(arena, diag, "fuzz.attn", text, NULL, 0);
  if (g) {
    if (!ir_verify(g, diag, "lowering")) abort(); /* the front end must emit valid IR */
    PassTarget t = {"fuzz", 16, 48 << 10, 2 << 20, 2 << 20, 12, 32, 384, 1032, 64, 64, 2, NULL};
    t.gpu = cu_tiler(90); /* with the GPU tiles */
    PassOptions opt = {.opt_level = 1, .diag = diag, .dump = null, .target = &t};
    if (!pass_pipeline(g, &opt)) abort();
    ir_print(g, null);
  }
  ir_diag_free(diag);
  ir_arena_free(arena);
  fclose(null);
  free(text);
  return 0;
}

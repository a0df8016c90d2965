/* fuzz_ir_parse.c - libFuzzer harness for the textual IR parser.
 *
 * Any bytes: parse them (a NUL byte ends the text); when they parse, the
 * graph must also survive the verifier, the printer and the dot export, and
 * its printed form must parse back and print identically; and when it
 * verifies, the whole pass pipeline (tile pass included) must keep it
 * verifying. */
#include "ir.h"
#include "cuda.h" /* the GPU tiler */
#include "pass.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  FILE *null = fopen("/dev/null", "w");
  IrArena *arena = ir_arena_new();
  IrDiag *diag = ir_diag_new(null);
  IrGraph *g = ir_parse(arena, diag, "fuzz.ir", text);
  if (g) {
    ir_verify(g, diag, "fuzz");
    ir_print(g, null);
    ir_dot(g, null);
    char *s1 = ir_print_string(g);
    IrGraph *g2 = ir_parse(arena, diag, "fuzz2.ir", s1);
    if (!g2) abort(); /* printed IR must parse */
    char *s2 = ir_print_string(g2);
    if (strcmp(s1, s2) != 0) abort(); /* and print identically */
    free(s2);
    if (ir_verify(g2, diag, "fuzz")) {
      PassTarget t = {"fuzz", 16, 48 << 10, 2 << 20, 2 << 20, 12, 32, 384, 1032, 64, 64, 2, NULL};
      t.gpu = cu_tiler(90); /* with the GPU tiles */
      PassOptions opt = {.opt_level = 1, .diag = diag, .dump = null, .target = &t};
      if (!pass_pipeline(g2, &opt)) abort(); /* a pass broke a valid graph */
      ir_print(g2, null);
    }
    free(s1); /* after the last diagnostic: they quote lines of it */
  }
  ir_diag_free(diag);
  ir_arena_free(arena);
  fclose(null);
  free(text);
  return 0;
}

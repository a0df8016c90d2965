/* attnc.c - the command-line driver's entry: `attnc FILE ...` (compile.c),
 * `attnc run` (run.c), `attnc bench` (bench.c), `attnc generate`
 * (generate.c), --help and --version.
 * What the commands share is in driver.c.  User errors print a message
 * and exit with status 1; a failed command writes no output file. */
#include <stdio.h>
#include <string.h>
#include "cuda.h"
#include "driver.h"

#ifndef ATTNC_VERSION
#define ATTNC_VERSION "0.0.0"
#endif

/* attnc --help. */
static void usage(FILE *out) {
  fprintf(out,
          "usage: attnc FILE [options]            compile a model (.attn or IR text)\n"
          "       attnc run MODEL [options]       run a model on .npy inputs\n"
          "       attnc bench MODEL [options]     time fused against unfused (attnc bench --help)\n"
          "       attnc generate MODEL [options]  greedy decoding with a decoding model's KV cache\n"
          "\n"
          "Every option with a value takes it as --opt=VALUE or --opt VALUE.\n"
          "\n"
          "compile options:\n");
  usage_compile(out);
  fprintf(out, "\nrun options:\n");
  usage_run(out);
  fprintf(out, "\ngenerate options:\n");
  usage_generate(out);
  fprintf(out, "\n  --help, --version\n\npasses, in pipeline order:\n");
  for (const PassInfo *p = pass_list; p->name; p++) fprintf(out, "  %-20s %s\n", p->name, p->what);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 1;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("attnc %s\nCUDA backend: %s (NVRTC %s)\n", ATTNC_VERSION,
           cu_available() ? "kernels to CUDA C / PTX / CUBIN, GPU runtime in --target=cuda libraries" : "unavailable",
           cu_nvrtc_version());
    return 0;
  }
  if (strcmp(argv[1], "run") == 0) return cmd_run(argc, argv);
  if (strcmp(argv[1], "bench") == 0) return cmd_bench(argc, argv);
  if (strcmp(argv[1], "generate") == 0) return cmd_generate(argc, argv);
  return cmd_compile(argc, argv);
}

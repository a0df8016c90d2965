/* main.c - a C program embedding a model compiled by attnc.
 *
 *   embed WEIGHTS.safetensors X.npy Y.npy
 *
 * CMakeLists.txt compiles examples/encoder.attn with attnc_add_model() into
 * the library target `encoder`; its generated header encoder.h declares
 * encoder_create, encoder_run, ... (functions are named after the model).
 * This program loads the weights, reads the input x (float32 .npy), asks
 * the model for the output shape, runs it, writes y to Y.npy and prints the
 * shape and the run time.  Every call is checked: on failure the model's
 * own message (encoder_error) is printed and the exit status is 1. */
#define _POSIX_C_SOURCE 200809L  /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "encoder.h"

/* ---- a minimal .npy reader and writer --------------------------------------------
 * Example code, enough for this program: float32, little-endian host, C
 * order.  Anything else is refused with a message. */
typedef struct {
  int rank;
  int64_t shape[ATTNC_MAX_RANK];
  float *data;
} npy_f32;

static size_t npy_count(const npy_f32 *a) {
  size_t n = 1;
  for (int i = 0; i < a->rank; i++) n *= (size_t)a->shape[i];
  return n;
}

static int npy_read(const char *path, npy_f32 *a) {
  unsigned char pre[12];
  char hdr[4096];
  FILE *f = fopen(path, "rb");
  if (!f) return perror(path), -1;
  size_t hlen;
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) goto bad;
  if (pre[6] >= 2) {
    if (fread(pre + 10, 1, 2, f) != 2) goto bad;
    hlen = pre[8] | pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
  } else {
    hlen = pre[8] | pre[9] << 8;
  }
  if (hlen >= sizeof hdr || fread(hdr, 1, hlen, f) != hlen) goto bad;
  hdr[hlen] = 0;
  const char *p = strstr(hdr, "'shape':");
  if (!strstr(hdr, "'descr': '<f4'") || !strstr(hdr, "'fortran_order': False") || !p || !(p = strchr(p, '('))) {
    fprintf(stderr, "%s: not a C-order float32 array (this example reads only those)\n", path);
    return fclose(f), -1;
  }
  for (a->rank = 0, p++; *p != ')'; a->rank++) {
    char *end;
    if (a->rank == ATTNC_MAX_RANK || (a->shape[a->rank] = strtoll(p, &end, 10)) < 0 || end == p) goto bad;
    for (p = end; *p == ' ' || *p == ','; p++) {}
  }
  size_t n = npy_count(a);
  a->data = malloc(n ? n * sizeof(float) : 1);
  if (!a->data || fread(a->data, sizeof(float), n, f) != n || fgetc(f) != EOF) goto bad;
  return fclose(f), 0;
bad:
  fprintf(stderr, "%s: malformed or truncated .npy file\n", path);
  free(a->data), a->data = NULL;
  return fclose(f), -1;
}

static int npy_write(const char *path, const npy_f32 *a) {
  char hdr[256], shape[200] = "";
  size_t len = 0;
  for (int i = 0; i < a->rank; i++)
    len += snprintf(shape + len, sizeof shape - len, "%lld%s", (long long)a->shape[i],
                    a->rank == 1 || i + 1 < a->rank ? "," : "");
  int h = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shape);
  while ((10 + h + 1) % 64) hdr[h++] = ' ';  /* pad so the data starts 64-aligned */
  hdr[h++] = '\n';
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)h, (unsigned char)(h >> 8)};
  FILE *f = fopen(path, "wb");
  size_t n = npy_count(a);
  if (!f || fwrite(pre, 1, 10, f) != 10 || fwrite(hdr, 1, (size_t)h, f) != (size_t)h ||
      fwrite(a->data, sizeof(float), n, f) != n || fclose(f) != 0)
    return perror(path), -1;
  return 0;
}

/* ---- the model -------------------------------------------------------------------- */

/* Print the model's message for a failed call; returns rc. */
static int check(const attnc_instance *inst, int rc, const char *call) {
  if (rc != ATTNC_OK) fprintf(stderr, "embed: %s failed (status %d): %s\n", call, rc, encoder_error(inst));
  return rc;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void print_shape(const char *name, int rank, const int64_t *shape) {
  printf("%s: f32[", name);
  for (int i = 0; i < rank; i++) printf("%s%lld", i ? "," : "", (long long)shape[i]);
  printf("]");
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s WEIGHTS.safetensors X.npy Y.npy\n", argv[0]);
    return 2;
  }
  attnc_model_info info;
  if (encoder_describe(&info) != ATTNC_OK) {
    fprintf(stderr, "embed: encoder_describe failed (ABI version %d)\n", info.abi_version);
    return 1;
  }
  printf("model %s, target %s, %d weights\n", info.name, info.target, info.nweights);
  if (info.ninputs != 1 || info.noutputs != 1 || info.inputs[0].dtype != ATTNC_F32 ||
      info.outputs[0].dtype != ATTNC_F32) {
    fprintf(stderr, "embed: this example drives models with one f32 input and one f32 output\n");
    return 1;
  }

  int status = 1;
  attnc_instance *inst = NULL;
  npy_f32 x = {0}, y = {0};
  attnc_options opt = {.num_threads = 0, .device = -1};  /* all cores, CPU */
  if (npy_read(argv[2], &x) || check(inst, encoder_create(&opt, &inst), "encoder_create") ||
      check(inst, encoder_load_weights(inst, argv[1]), "encoder_load_weights"))
    goto done;

  attnc_tensor in = {.dtype = ATTNC_F32, .rank = x.rank, .data = x.data}, out = {0};
  memcpy(in.shape, x.shape, sizeof in.shape);
  if (check(inst, encoder_output_shapes(inst, &in, 1, &out, 1), "encoder_output_shapes")) goto done;
  y.rank = out.rank;
  memcpy(y.shape, out.shape, sizeof y.shape);
  if (!(y.data = out.data = malloc(npy_count(&y) * sizeof(float)))) {
    fprintf(stderr, "embed: out of memory\n");
    goto done;
  }

  const int runs = 10;
  double t0 = now_ms();
  if (check(inst, encoder_run(inst, &in, 1, &out, 1), "encoder_run")) goto done;
  double first = now_ms() - t0;
  t0 = now_ms();
  for (int i = 0; i < runs; i++)
    if (check(inst, encoder_run(inst, &in, 1, &out, 1), "encoder_run")) goto done;
  double per_run = (now_ms() - t0) / runs;
  if (npy_write(argv[3], &y)) goto done;

  print_shape(info.inputs[0].name, x.rank, x.shape);
  printf(" -> ");
  print_shape(info.outputs[0].name, y.rank, y.shape);
  printf(" written to %s\nfirst run %.3f ms, then %.3f ms per run (%d runs)\n", argv[3], first, per_run, runs);
  status = 0;
done:
  encoder_destroy(inst);
  free(x.data);
  free(y.data);
  return status;
}

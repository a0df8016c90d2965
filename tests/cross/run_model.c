/* run_model.c - runs a library attnc built on .npy files: the driver of
 * tests/scripts/cross_run.sh, cross-compiled with the library and run
 * under qemu (generated libraries carry no .npy reader, so this one has
 * its own: float32, C order, versions 1-3).
 *
 *   run_model WEIGHTS|- NAME=IN.npy ... -- NAME=OUT.npy ...
 *
 * Built with -DMODEL=name -DHEADER='"name.h"' (MODEL_create, ...).
 * Every input and output is named; outputs are NaN-filled, run and
 * written.  It prints describe's target first.  Exit 1 with the library's
 * message on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include HEADER

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define API(f) CAT(MODEL, f)

/* Elements of a tensor. */
static int64_t count(const attnc_tensor *t) {
  int64_t n = 1;
  for (int d = 0; d < t->rank; d++) n *= t->shape[d];
  return n;
}

/* Print a message and exit 1. */
static void die(const char *what, const char *msg) {
  fprintf(stderr, "run_model: %s: %s\n", what, msg);
  exit(1);
}

/* Read a float32 C-order .npy file into t. */
static void read_npy(const char *path, attnc_tensor *t) {
  FILE *f = fopen(path, "rb");
  unsigned char pre[12];
  if (!f || fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) die(path, "not a .npy file");
  size_t hlen = pre[8] | (size_t)pre[9] << 8;
  if (pre[6] > 1) { /* versions 2 and 3: a 4-byte length */
    if (fread(pre + 10, 1, 2, f) != 2) die(path, "truncated");
    hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
  }
  char *h = calloc(hlen + 1, 1);
  if (!h || fread(h, 1, hlen, f) != hlen) die(path, "truncated header");
  if (!strstr(h, "'descr': '<f4'") || !strstr(h, "'fortran_order': False")) die(path, "not float32 in C order");
  char *p = strstr(h, "'shape': (");
  if (!p) die(path, "no shape");
  t->dtype = ATTNC_F32;
  t->rank = 0;
  for (p += 10; *p != ')';) {
    while (*p == ' ' || *p == ',') p++;
    if (*p == ')') break;
    if (t->rank == ATTNC_MAX_RANK) die(path, "too many axes");
    t->shape[t->rank++] = strtoll(p, &p, 10);
  }
  free(h);
  int64_t n = count(t);
  float *d = malloc((size_t)n * sizeof *d + 1);
  if (!d || fread(d, sizeof *d, (size_t)n, f) != (size_t)n || fgetc(f) != EOF) die(path, "wrong amount of data");
  fclose(f);
  t->data = d;
}

/* Write t (float32) as a version 1 .npy file. */
static void write_npy(const char *path, const attnc_tensor *t) {
  char h[256];
  int n = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
  for (int d = 0; d < t->rank; d++) n += snprintf(h + n, sizeof h - (size_t)n, "%lld,%s", (long long)t->shape[d], d + 1 < t->rank ? " " : "");
  n += snprintf(h + n, sizeof h - (size_t)n, "), }");
  while ((10 + n + 1) % 64) h[n++] = ' ';
  h[n++] = '\n';
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 255), (unsigned char)(n >> 8)};
  FILE *f = fopen(path, "wb");
  size_t k = (size_t)count(t);
  if (!f || fwrite(pre, 1, 10, f) != 10 || fwrite(h, 1, (size_t)n, f) != (size_t)n ||
      fwrite(t->data, sizeof(float), k, f) != k || fclose(f))
    die(path, "cannot write");
}

int main(int argc, char **argv) {
  attnc_model_info info;
  attnc_instance *m = NULL;
  attnc_options opt = {0};
  opt.num_threads = 3;
  opt.device = -1;
  if (API(describe)(&info)) die("describe", "failed");
  printf("%s\n", info.target);
  if (API(create)(&opt, &m)) die("create", API(error)(NULL));
  if (argc < 2) die("usage", "run_model WEIGHTS|- NAME=IN.npy ... -- NAME=OUT.npy ...");
  if (strcmp(argv[1], "-") && API(load_weights)(m, argv[1])) die("weights", API(error)(m));
  int nin = info.ninputs, nout = info.noutputs, a = 2;
  attnc_tensor *in = calloc((size_t)nin + 1, sizeof *in), *out = calloc((size_t)nout + 1, sizeof *out);
  const char **outfile = calloc((size_t)nout + 1, sizeof *outfile);
  for (int side = 0; side < 2; side++, a++) { /* inputs, then (after --) outputs */
    int n = side ? nout : nin;
    const attnc_tensor_info *ti = side ? info.outputs : info.inputs;
    for (; a < argc && strcmp(argv[a], "--"); a++) {
      char *eq = strchr(argv[a], '=');
      int i = 0;
      if (eq) *eq = 0;
      while (eq && i < n && strcmp(ti[i].name, argv[a])) i++;
      if (!eq || i == n) die(argv[a], "not NAME=FILE with a NAME of the model");
      if (side) outfile[i] = eq + 1;
      else read_npy(eq + 1, &in[i]);
    }
    for (int i = 0; i < n; i++)
      if (side ? !outfile[i] : !in[i].data) die(ti[i].name, "no file given");
  }
  if (API(output_shapes)(m, in, nin, out, nout)) die("output_shapes", API(error)(m));
  for (int o = 0; o < nout; o++) {
    float *p = malloc((size_t)count(&out[o]) * sizeof *p + 1);
    for (int64_t k = 0; k < count(&out[o]); k++) p[k] = NAN;
    out[o].data = p;
  }
  if (API(run)(m, in, nin, out, nout)) die("run", API(error)(m));
  for (int o = 0; o < nout; o++) write_npy(outfile[o], &out[o]);
  API(destroy)(m);
  return 0;
}

/* harness.cpp - runs one model's generated CUDA kernels and host launcher
 * on the CPU emulation (emu.h) on random inputs and weights, and writes
 * inputs, weights (safetensors) and outputs for `attnc run --interp` to be
 * compared with (tests/scripts/cuda_emu.sh).
 *
 *   g++ -std=c++17 -DATTNC_HOST_LAUNCHER -DATTNC_EMU -DMODEL_CU='"model.cu"' harness.cpp -lpthread
 *   ./a.out OUTDIR SEED NAME=SIZE...      (every dim of the model)
 *
 * With EMU_DATA=DIR the inputs and weights are read from DIR instead of
 * drawn at random (the differential fuzzer, tests/difffuzz): in_NAME.bin
 * and w_KEY.bin, raw little-endian f32 values for float tensors (already
 * representable in the tensor's dtype), i32 for i32, one byte for bool. */
#include <string>
#include <vector>
#include "emu.h"
typedef long long i64;
typedef unsigned char u8;
#include MODEL_CU

static uint64_t rng;
static double urand() {
  uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

static void *h_alloc(void *, size_t n) { return calloc(1, n); }
static void h_free(void *, void *p) { free(p); }
static int h_copy(void *, void *d, const void *s, size_t n) { memcpy(d, s, n); return 0; }
static int h_launch(void *, const char *k, unsigned gx, unsigned gy, unsigned gz, unsigned block, unsigned smem, void *p,
                    size_t) {
  if (smem > EMU_SMEM_MAX) {
    fprintf(stderr, "%s: %u bytes of dynamic shared memory, more than a GPU has\n", k, smem);
    return -6;
  }
  for (int i = 0; cu_emu_kernels[i].name; i++)
    if (!strcmp(cu_emu_kernels[i].name, k)) return emu_run_kernel(cu_emu_kernels[i].fn, gx, gy, gz, block, smem, p);
  fprintf(stderr, "no kernel %s\n", k);
  return -5;
}

/* the opt-in limit of the emulated device: EMU_SMEM (e.g. 49152, to take
 * the launcher's fallback path), else the most a GPU has */
static unsigned h_smem(void *) {
  const char *e = getenv("EMU_SMEM");
  return e && *e ? (unsigned)atoi(e) : EMU_SMEM_MAX;
}

/* multiprocessors of the emulated device: EMU_SMS, else an H100's 132 */
static unsigned h_sms(void *) {
  const char *e = getenv("EMU_SMS");
  return e && *e ? (unsigned)atoi(e) : 132;
}

static int esize(int dt) { return dt == 4 ? 1 : 4; }

/* EMU_DATA: read n elements of size es for tensor PREFIX+NAME into dst;
 * 0 when EMU_DATA is unset (draw random data), 1 when read, exits on a
 * missing or short file */
static int read_data(const char *prefix, const char *name, void *dst, i64 n, int es) {
  const char *dir = getenv("EMU_DATA");
  if (!dir || !*dir) return 0;
  char path[1024];
  snprintf(path, sizeof path, "%s/%s%s.bin", dir, prefix, name);
  FILE *f = fopen(path, "rb");
  if (!f || fread(dst, (size_t)es, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "EMU_DATA: cannot read %lld values from %s\n", n, path);
    exit(2);
  }
  fclose(f);
  return 1;
}
/* float data into the device's storage of dtype dt (f16 / bf16 rounded, f
 * rounded in place so the .npy holds exactly what the kernels read) */
static void to_device(int dt, float *f, void *dst, i64 n) {
  for (i64 i = 0; i < n; i++) {
    if (dt == 1) ((h16 *)dst)[i] = a_f2h(f[i]), f[i] = a_h2f(((h16 *)dst)[i]);
    else if (dt == 2) ((h16 *)dst)[i] = a_f2bf(f[i]), f[i] = a_bf2f(((h16 *)dst)[i]);
    else ((float *)dst)[i] = f[i];
  }
}
static const char *npy_descr(int dt) { return dt == 3 ? "<i4" : dt == 4 ? "|b1" : "<f4"; }

static void write_npy(const char *path, int dt, int rank, const i64 *shape, const void *data, i64 n) {
  char hdr[512], sh[256] = "";
  size_t l = 0;
  for (int d = 0; d < rank; d++) l += snprintf(sh + l, sizeof sh - l, "%lld%s", shape[d], rank == 1 ? "," : d + 1 < rank ? ", " : "");
  int hl = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", npy_descr(dt), sh);
  int total = 10 + hl + 1, pad = (64 - total % 64) % 64;
  FILE *f = fopen(path, "wb");
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  unsigned short hlen = (unsigned short)(hl + pad + 1);
  fwrite(&hlen, 2, 1, f);
  fwrite(hdr, 1, (size_t)hl, f);
  for (int i = 0; i < pad; i++) fputc(' ', f);
  fputc('\n', f);
  fwrite(data, (size_t)esize(dt), (size_t)n, f);
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  const char *dir = argv[1];
  rng = strtoull(argv[2], NULL, 10) * 0x9E3779B97F4A7C15ull + 7;
  std::vector<i64> sym(cu_nsym + 1, 0);
  for (int a = 3; a < argc; a++) {
    char *eq = strchr(argv[a], '=');
    if (!eq) return 2;
    for (int s = 0; s < cu_nsym; s++)
      if ((size_t)(eq - argv[a]) == strlen(cu_syms[s]) && !strncmp(argv[a], cu_syms[s], strlen(cu_syms[s]))) sym[s] = atoll(eq + 1);
  }
  for (int s = 0; s < cu_nsym; s++)
    if (sym[s] < 1) {
      fprintf(stderr, "dim %s not given\n", cu_syms[s]);
      return 2;
    }
  /* sized by the model: any number of inputs, weights and outputs */
  std::vector<void *> in(cu_ninput + 1), w(cu_nweight + 1), out(cu_noutput + 1);
  char path[4096];
  for (int k = 0; k < cu_ninput; k++) {
    i64 shape[8], n = 1;
    cu_shape(cu_inputs[k].node, sym.data(), shape);
    for (int d = 0; d < cu_inputs[k].rank; d++) n *= shape[d];
    int dt = cu_inputs[k].dtype;
    in[k] = malloc((size_t)(n ? n : 1) * 4);
    float *f32 = (float *)malloc((size_t)(n ? n : 1) * 4);
    if (!read_data("in_", cu_inputs[k].name, dt <= 2 ? (void *)f32 : in[k], n, esize(dt)))
      for (i64 i = 0; i < n; i++) {
        if (dt == 3) ((int *)in[k])[i] = (int)(urand() * 9);
        else if (dt == 4) ((u8 *)in[k])[i] = urand() < 0.7;
        else f32[i] = (float)(urand() * 3.4 - 1.7);
      }
    /* EMU_NAN=NAME:I,NAME:I..: element I (row-major) of float input NAME is NaN (the NaN rule's tests) */
    for (const char *e = getenv("EMU_NAN"); e && *e && dt <= 2;) {
      const char *colon = strchr(e, ':');
      if (!colon) break;
      long long at = atoll(colon + 1);
      if ((size_t)(colon - e) == strlen(cu_inputs[k].name) && !strncmp(e, cu_inputs[k].name, (size_t)(colon - e)) &&
          at >= 0 && at < n)
        f32[at] = NAN;
      e = strchr(colon, ',');
      e = e ? e + 1 : NULL;
    }
    if (dt <= 2) to_device(dt, f32, in[k], n); /* f16/bf16: stored as such, exact in the .npy */
    snprintf(path, sizeof path, "%s/in_%s.npy", dir, cu_inputs[k].name);
    write_npy(path, dt, cu_inputs[k].rank, shape, dt <= 2 ? f32 : in[k], n);
    free(f32);
  }
  /* weights: random, into one safetensors file */
  snprintf(path, sizeof path, "%s/weights.safetensors", dir);
  FILE *st = fopen(path, "wb");
  std::string header = "{";
  i64 off = 0;
  std::vector<i64> wn(cu_nweight + 1);
  std::vector<float *> wf(cu_nweight + 1);
  for (int k = 0; k < cu_nweight; k++) {
    i64 shape[8], n = 1;
    cu_shape(cu_weights[k].node, sym.data(), shape);
    for (int d = 0; d < cu_weights[k].rank; d++) n *= shape[d];
    wn[k] = n;
    double a = cu_weights[k].rank >= 2 ? sqrt(3.0 / (double)shape[cu_weights[k].rank - 1]) : 1.0;
    w[k] = malloc((size_t)(n ? n : 1) * 4);
    wf[k] = (float *)malloc((size_t)(n ? n : 1) * 4);
    if (k >= cu_nweight - cu_nstate) { /* a state (after the weights): zero, as an instance starts */
      for (i64 i = 0; i < n; i++) wf[k][i] = 0.0f;
      to_device(cu_weights[k].dtype, wf[k], w[k], n);
      wn[k] = 0;
      continue;
    }
    if (!read_data("w_", cu_weights[k].name, wf[k], n, 4))
      for (i64 i = 0; i < n; i++) wf[k][i] = (float)(a * (2 * urand() - 1));
    to_device(cu_weights[k].dtype, wf[k], w[k], n);
    header += std::string(k ? "," : "") + "\"" + cu_weights[k].name + "\":{\"dtype\":\"F32\",\"shape\":[";
    for (int d = 0; d < cu_weights[k].rank; d++) header += (d ? "," : "") + std::to_string(shape[d]);
    header += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + n * 4) + "]}";
    off += n * 4; /* f32 values, exact in the weight's dtype */
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  uint64_t hl64 = header.size();
  fwrite(&hl64, 8, 1, st);
  fwrite(header.data(), 1, header.size(), st);
  for (int k = 0; k < cu_nweight; k++) fwrite(wf[k], 4, (size_t)wn[k], st);
  fclose(st);
  std::vector<std::vector<i64>> oshape(cu_noutput + 1, std::vector<i64>(8));
  std::vector<i64> on(cu_noutput + 1);
  for (int k = 0; k < cu_noutput; k++) {
    on[k] = 1;
    cu_shape(cu_outputs[k].node, sym.data(), oshape[k].data());
    for (int d = 0; d < cu_outputs[k].rank; d++) on[k] *= oshape[k][d];
    out[k] = malloc((size_t)(on[k] ? on[k] : 1) * 4);
    for (i64 i = 0; i < on[k]; i++) { /* unwritten elements show */
      if (cu_outputs[k].dtype == 1 || cu_outputs[k].dtype == 2) ((h16 *)out[k])[i] = 0x7e00;
      else ((float *)out[k])[i] = NAN;
    }
  }
  CuOps ops = {h_alloc, h_free, h_launch, h_copy, h_smem, h_sms};
  /* hoist-weights: a first run computes the prepared values, the checked
     one (outputs NaN-filled again) only reads them */
  char *prep = (char *)h_alloc(NULL, (size_t)(cu_prep_bytes ? cu_prep_bytes : 1));
  int rc = cu_run(&ops, NULL, sym.data(), in.data(), w.data(), out.data(), prep, 1);
  if (rc == 0 && cu_prep_bytes) {
    for (int k = 0; k < cu_noutput; k++)
      for (i64 i = 0; i < on[k]; i++) {
        if (cu_outputs[k].dtype == 1 || cu_outputs[k].dtype == 2) ((h16 *)out[k])[i] = 0x7e00;
        else ((float *)out[k])[i] = NAN;
      }
    rc = cu_run(&ops, NULL, sym.data(), in.data(), w.data(), out.data(), prep, 0);
  }
  if (rc) {
    fprintf(stderr, "cu_run failed: %d\n", rc);
    return 1;
  }
  for (int k = 0; k < cu_noutput; k++) {
    snprintf(path, sizeof path, "%s/out_%s.npy", dir, cu_outputs[k].name);
    int dt = cu_outputs[k].dtype;
    if (dt == 1 || dt == 2) { /* written as f32 */
      float *f32 = (float *)malloc((size_t)(on[k] ? on[k] : 1) * 4);
      for (i64 i = 0; i < on[k]; i++) f32[i] = dt == 1 ? a_h2f(((h16 *)out[k])[i]) : a_bf2f(((h16 *)out[k])[i]);
      write_npy(path, 0, cu_outputs[k].rank, oshape[k].data(), f32, on[k]);
      free(f32);
    } else {
      write_npy(path, dt, cu_outputs[k].rank, oshape[k].data(), out[k], on[k]);
    }
  }
  return 0;
}

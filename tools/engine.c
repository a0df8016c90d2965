/* engine.c - `attnc run` on compiled code: a shared library made by attnc,
 * or a .attn / IR file compiled in memory with ORC LLJIT (no files
 * written).  Inputs come from .npy files, weights from safetensors, and
 * outputs are written as .npy through the generated API, exactly as a user
 * program would call it. */
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine.h"
#include "rt_half.h"
#include "rt_npy.h"
#include "rt_safetensors.h"

/* Print "attnc: error: ..." and return 1 (shared by the driver's files). */
int tool_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "attnc: error: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 1;
}

static const char *const fn_names[] = {"create", "destroy", "load_weights", "run", "error", "describe", "output_shapes", "workspace_bytes", "bind_weight"};

/* The Engine's function pointers, in fn_names order. */
static void **slots(Engine *e) { return (void **)e; }

bool tool_is_float(rt_dtype t) { return t == RT_F32 || t == RT_F16 || t == RT_BF16; }

/* Convert float data of t->dtype (f32, f16, bf16) into dtype to, in place
 * of t->data (round to nearest even, as the generated libraries do).
 * Returns nonzero when out of memory. */
int tool_float_convert(rt_npy *t, rt_dtype to) {
  size_t n = 1;
  for (int d = 0; d < t->rank; d++) n *= (size_t)t->shape[d];
  void *dst = malloc((n ? n : 1) * rt_dtype_size(to));
  if (!dst) return -1;
  for (size_t i = 0; i < n; i++) {
    float x = t->dtype == RT_F32 ? ((const float *)t->data)[i]
              : t->dtype == RT_F16 ? rt_f16_to_f32(((const uint16_t *)t->data)[i])
                                   : rt_bf16_to_f32(((const uint16_t *)t->data)[i]);
    if (to == RT_F32) ((float *)dst)[i] = x;
    else ((uint16_t *)dst)[i] = to == RT_F16 ? rt_f32_to_f16(x) : rt_f32_to_bf16(x);
  }
  free(t->data);
  t->data = dst;
  t->dtype = to;
  t->nbytes = n * rt_dtype_size(to);
  return 0;
}

int engine_from_so(const char *path, Engine *e) {
  memset(e, 0, sizeof *e);
  char p[4096];
  snprintf(p, sizeof p, "%s%s", strchr(path, '/') ? "" : "./", path);
  e->dl = dlopen(p, RTLD_NOW | RTLD_LOCAL);
  if (!e->dl) return tool_fail("cannot load '%s': %s", path, dlerror());
  void **s = slots(e);
  for (int i = 0; i < 9; i++) {
    char name[64];
    snprintf(name, sizeof name, "attnc_%s", fn_names[i]);
    s[i] = dlsym(e->dl, name);
    if (!s[i]) {
      dlclose(e->dl);
      e->dl = NULL;
      return tool_fail("'%s' is not a library made by attnc (no symbol %s)", path, name);
    }
  }
  return 0;
}

int engine_from_jit(CgModule *m, const char *ident, Engine *e) {
  memset(e, 0, sizeof *e);
  void **s = slots(e);
  char err[1024];
  for (int i = 0; i < 9; i++) {
    char name[192];
    snprintf(name, sizeof name, "%s_%s", ident, fn_names[i]);
    s[i] = cg_jit_lookup(m, name, err, sizeof err);
    if (!s[i]) return tool_fail("%s", err);
  }
  return 0;
}

void engine_close(Engine *e) {
  if (e->dl) dlclose(e->dl);
  e->dl = NULL;
}

static int to_api_dtype(rt_dtype t) {
  switch (t) {
  case RT_F32: return ATTNC_F32;
  case RT_F16: return ATTNC_F16;
  case RT_I32: return ATTNC_I32;
  case RT_BOOL: return ATTNC_BOOL;
  default: return -1;
  }
}

static size_t api_size(int t) { return t == ATTNC_BOOL ? 1 : (t == ATTNC_F16 || t == ATTNC_BF16) ? 2 : 4; }

static const char *api_name(int t) {
  static const char *n[] = {"f32", "f16", "bf16", "i32", "bool"};
  return t >= 0 && t <= 4 ? n[t] : "?";
}

int engine_run(Engine *e, const RunArgs *a) {
  attnc_model_info info;
  if (e->describe(&info)) return tool_fail("the model cannot describe itself (ABI mismatch?)");
  int rc = 1;
  rt_npy npys[64] = {0};
  attnc_tensor in[64] = {0}, out[64] = {0};
  attnc_instance *inst = NULL;
  rt_safetensors *st = NULL;
  char err[2048];
  if (info.ninputs > 64 || info.noutputs > 64) return tool_fail("too many inputs or outputs");
  for (int k = 0; k < a->nin; k++) {
    bool found = false;
    for (int i = 0; i < info.ninputs; i++) found |= !strcmp(info.inputs[i].name, a->in_names[k]);
    if (!found) {
      char list[512] = "";
      size_t len = 0;
      for (int i = 0; i < info.ninputs; i++) len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", info.inputs[i].name);
      return tool_fail("--input %s: the model has no input '%s' (its inputs: %s)", a->in_names[k], a->in_names[k], list);
    }
  }
  for (int k = 0; k < a->nout; k++) {
    bool found = false;
    for (int i = 0; i < info.noutputs; i++) found |= !strcmp(info.outputs[i].name, a->out_names[k]);
    if (!found) return tool_fail("--output %s: the model has no output '%s'", a->out_names[k], a->out_names[k]);
  }
  for (int i = 0; i < info.ninputs; i++) {
    const attnc_tensor_info *ti = &info.inputs[i];
    int k = 0;
    while (k < a->nin && strcmp(a->in_names[k], ti->name)) k++;
    if (k == a->nin) {
      char ty[256];
      size_t len = (size_t)snprintf(ty, sizeof ty, "%s[", api_name(ti->dtype));
      for (int d = 0; d < ti->rank; d++) len += (size_t)snprintf(ty + len, sizeof ty - len, "%s%s", d ? "," : "", ti->dims[d]);
      snprintf(ty + len, sizeof ty - len, "]");
      tool_fail("missing input '%s' (%s): pass --input %s=FILE.npy", ti->name, ty, ti->name);
      goto done;
    }
    if (rt_npy_read(a->in_files[k], &npys[i], err, sizeof err)) {
      tool_fail("%s", err);
      goto done;
    }
    int dt = to_api_dtype(npys[i].dtype);
    if (dt < 0 || (dt != (int)ti->dtype && !(ti->dtype <= ATTNC_BF16 && dt <= ATTNC_BF16))) {
      tool_fail("input '%s': %s holds %s data but the model expects %s", ti->name, a->in_files[k],
           rt_dtype_name(npys[i].dtype), api_name(ti->dtype));
      goto done;
    }
    in[i].dtype = (attnc_dtype)dt;
    in[i].rank = npys[i].rank;
    memcpy(in[i].shape, npys[i].shape, sizeof in[i].shape);
    in[i].data = npys[i].data;
  }
  attnc_options opt = {.num_threads = a->threads, .device = a->device, .copy_weights = a->copy_weights};
  int code = e->create(&opt, &inst);
  if (code) {
    tool_fail("cannot create the model instance (status %d): %s", code, e->error(NULL));
    goto done;
  }
  if (info.nweights > 0 || a->weights) {
    if (!a->weights) {
      tool_fail("the model needs %d weights (e.g. '%s'): pass --weights FILE.safetensors", info.nweights, info.weights[0].name);
      goto done;
    }
    if (e->load_weights(inst, a->weights)) {
      tool_fail("%s", e->error(inst));
      goto done;
    }
    if (!a->allow_extra && !rt_st_open(a->weights, &st, err, sizeof err)) {
      for (int t = 0; t < rt_st_count(st); t++) {
        const char *key = rt_st_get(st, t)->name;
        bool used = false;
        for (int w = 0; w < info.nweights; w++) used |= !strcmp(info.weights[w].name, key);
        if (!used) {
          tool_fail("%s: weight '%s' is not used by the model (pass --allow-extra-weights to ignore)", a->weights, key);
          goto done;
        }
      }
    }
  }
  for (int o = 0; o < info.noutputs; o++) out[o].rank = info.outputs[o].rank;
  if (e->output_shapes(inst, in, info.ninputs, out, info.noutputs)) {
    tool_fail("%s", e->error(inst));
    goto done;
  }
  for (int o = 0; o < info.noutputs; o++) {
    size_t n = 1;
    for (int d = 0; d < out[o].rank; d++) n *= (size_t)out[o].shape[d];
    out[o].data = malloc(n * api_size(out[o].dtype) + 1);
    if (!out[o].data) {
      tool_fail("out of memory for output '%s'", info.outputs[o].name);
      goto done;
    }
    if (out[o].dtype == ATTNC_F32)
      for (size_t j = 0; j < n; j++) ((float *)out[o].data)[j] = NAN; /* unwritten elements show */
    else
      memset(out[o].data, 0xff, n * api_size(out[o].dtype));
  }
  if (e->run(inst, in, info.ninputs, out, info.noutputs)) {
    tool_fail("%s", e->error(inst));
    goto done;
  }
  for (int o = 0; o < info.noutputs; o++) {
    int k = 0;
    while (k < a->nout && strcmp(a->out_names[k], info.outputs[o].name)) k++;
    char sh[256];
    size_t len = (size_t)snprintf(sh, sizeof sh, "[");
    for (int d = 0; d < out[o].rank; d++) len += (size_t)snprintf(sh + len, sizeof sh - len, "%s%lld", d ? "," : "", (long long)out[o].shape[d]);
    snprintf(sh + len, sizeof sh - len, "]");
    if (k == a->nout) {
      printf("%s: %s%s (not saved; use --output %s=FILE.npy)\n", info.outputs[o].name, api_name(out[o].dtype), sh,
             info.outputs[o].name);
      continue;
    }
    rt_dtype dt = out[o].dtype == ATTNC_F32 ? RT_F32 : out[o].dtype == ATTNC_F16 ? RT_F16 : out[o].dtype == ATTNC_I32 ? RT_I32 : RT_BOOL;
    if (out[o].dtype == ATTNC_BF16) { /* .npy has no bf16: written as f32, which holds it exactly */
      rt_npy t = {RT_BF16, out[o].rank, {0}, out[o].data, 0};
      memcpy(t.shape, out[o].shape, sizeof(int64_t) * (size_t)out[o].rank);
      if (tool_float_convert(&t, RT_F32)) {
        tool_fail("out of memory converting output '%s'", info.outputs[o].name);
        goto done;
      }
      out[o].data = t.data; /* the bf16 data was freed */
      dt = RT_F32;
    }
    if (rt_npy_write(a->out_files[k], dt, out[o].rank, out[o].shape, out[o].data, err, sizeof err)) {
      tool_fail("%s", err);
      goto done;
    }
  }
  rc = 0;
done:
  for (int i = 0; i < 64; i++) {
    rt_npy_free(&npys[i]);
    free(out[i].data);
  }
  rt_st_close(st);
  if (inst) e->destroy(inst);
  return rc;
}

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
#include "rt_npy.h"
#include "rt_safetensors.h"

static const char *const fn_names[] = {
#define ENGINE_ENTRY(name, ret, params, sig, desc, doc) #name,
  ATTNC_ENTRIES(ENGINE_ENTRY)
#undef ENGINE_ENTRY
};
#define NFN ((int)(sizeof fn_names / sizeof fn_names[0]))

/* The Engine's function pointers, in fn_names order. */
static void **slots(Engine *e) { return (void **)e; }

/* The API of a library made by attnc, by dlopen. */
int engine_from_so(const char *path, Engine *e) {
  memset(e, 0, sizeof *e);
  char *p = tool_realloc(NULL, strlen(path) + 3);
  sprintf(p, "%s%s", strchr(path, '/') ? "" : "./", path); /* a name without '/' is not searched for */
  e->dl = dlopen(p, RTLD_NOW | RTLD_LOCAL);
  free(p);
  if (!e->dl) return tool_fail("cannot load '%s': %s", path, dlerror());
  void **s = slots(e);
  for (int i = 0; i < NFN; i++) {
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

/* The API of a model compiled in memory. */
int engine_from_jit(CgModule *m, const char *ident, Engine *e) {
  memset(e, 0, sizeof *e);
  void **s = slots(e);
  char err[1024];
  for (int i = 0; i < NFN; i++) {
    char *name = tool_realloc(NULL, strlen(ident) + strlen(fn_names[i]) + 2);
    sprintf(name, "%s_%s", ident, fn_names[i]);
    s[i] = cg_jit_lookup(m, name, err, sizeof err);
    free(name);
    if (!s[i]) return tool_fail("%s", err);
  }
  return 0;
}

/* Unload the library, if any. */
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

size_t engine_dtype_size(int t) { return t == ATTNC_BOOL ? 1 : (t == ATTNC_F16 || t == ATTNC_BF16) ? 2 : 4; }

const char *engine_dtype_name(int t) {
  static const char *n[] = {"f32", "f16", "bf16", "i32", "bool"};
  return t >= 0 && t <= 4 ? n[t] : "?";
}

/* "f32[B,T,64]". */
char *engine_type_str(const attnc_tensor_info *ti) {
  size_t len = 16;
  for (int d = 0; d < ti->rank; d++) len += strlen(ti->dims[d]) + 1;
  char *s = tool_realloc(NULL, len), *p = s;
  p += sprintf(p, "%s[", engine_dtype_name(ti->dtype));
  for (int d = 0; d < ti->rank; d++) p += sprintf(p, "%s%s", d ? "," : "", ti->dims[d]);
  strcpy(p, "]");
  return s;
}

/* attnc run through the API: inputs checked by name, dtype and shape,
 * weights loaded (and unused ones refused), outputs NaN-filled, run, then
 * saved into their staged outputs or summarized on stdout. */
int engine_run(Engine *e, const RunArgs *a) {
  attnc_model_info info;
  if (e->describe(&info)) return tool_fail("the model cannot describe itself (ABI mismatch?)");
  int rc = 1;
  rt_npy *npys = tool_realloc(NULL, sizeof *npys * (size_t)(info.ninputs + 1));
  attnc_tensor *in = tool_realloc(NULL, sizeof *in * (size_t)(info.ninputs + 1));
  attnc_tensor *out = tool_realloc(NULL, sizeof *out * (size_t)(info.noutputs + 1));
  memset(npys, 0, sizeof *npys * (size_t)(info.ninputs + 1));
  memset(in, 0, sizeof *in * (size_t)(info.ninputs + 1));
  memset(out, 0, sizeof *out * (size_t)(info.noutputs + 1));
  attnc_instance *inst = NULL;
  rt_safetensors *st = NULL;
  char err[2048];
  for (int k = 0; k < a->nin; k++) {
    bool found = false;
    for (int i = 0; i < info.ninputs; i++) found |= !strcmp(info.inputs[i].name, a->in_names[k]);
    if (!found) {
      const char **names = tool_realloc(NULL, sizeof *names * (size_t)(info.ninputs + 1));
      for (int i = 0; i < info.ninputs; i++) names[i] = info.inputs[i].name;
      char *list = tool_join(names, info.ninputs);
      tool_fail("--input %s: the model has no input '%s' (its inputs: %s)", a->in_names[k], a->in_names[k], list);
      free(list);
      free(names);
      goto done;
    }
  }
  for (int k = 0; k < a->nout; k++) {
    bool found = false;
    for (int i = 0; i < info.noutputs; i++) found |= !strcmp(info.outputs[i].name, a->out_names[k]);
    if (!found) {
      tool_fail("--output %s: the model has no output '%s'", a->out_names[k], a->out_names[k]);
      goto done;
    }
  }
  for (int i = 0; i < info.ninputs; i++) {
    const attnc_tensor_info *ti = &info.inputs[i];
    int k = 0;
    while (k < a->nin && strcmp(a->in_names[k], ti->name)) k++;
    if (k == a->nin) {
      char *ty = engine_type_str(ti);
      tool_fail("missing input '%s' (%s): pass --input %s=FILE.npy", ti->name, ty, ti->name);
      free(ty);
      goto done;
    }
    if (rt_npy_read(a->in_files[k], &npys[i], err, sizeof err)) {
      tool_fail("%s", err);
      goto done;
    }
    int dt = to_api_dtype(npys[i].dtype);
    if (dt < 0 || (dt != (int)ti->dtype && !(ti->dtype <= ATTNC_BF16 && dt <= ATTNC_BF16))) {
      tool_fail("input '%s': %s holds %s data but the model expects %s", ti->name, a->in_files[k],
           rt_dtype_name(npys[i].dtype), engine_dtype_name(ti->dtype));
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
        bool used = tool_weight_ignored(key);
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
    out[o].data = malloc(n * engine_dtype_size(out[o].dtype) + 1);
    if (!out[o].data) {
      tool_fail("out of memory for output '%s'", info.outputs[o].name);
      goto done;
    }
    if (out[o].dtype == ATTNC_F32)
      for (size_t j = 0; j < n; j++) ((float *)out[o].data)[j] = NAN; /* unwritten elements show */
    else
      memset(out[o].data, 0xff, n * engine_dtype_size(out[o].dtype));
  }
  if (e->run(inst, in, info.ninputs, out, info.noutputs)) {
    tool_fail("%s", e->error(inst));
    goto done;
  }
  for (int o = 0; o < info.noutputs; o++) {
    int k = 0;
    while (k < a->nout && strcmp(a->out_names[k], info.outputs[o].name)) k++;
    if (k == a->nout) {
      char *sh = tool_shape_str(out[o].shape, out[o].rank);
      printf("%s: %s%s (not saved; use --output %s=FILE.npy)\n", info.outputs[o].name, engine_dtype_name(out[o].dtype), sh,
             info.outputs[o].name);
      free(sh);
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
    if (rt_npy_write_to(a->outs[k], dt, out[o].rank, out[o].shape, out[o].data, err, sizeof err)) {
      tool_fail("%s", err);
      goto done;
    }
  }
  rc = 0;
done:
  for (int i = 0; i < info.ninputs; i++) rt_npy_free(&npys[i]);
  for (int o = 0; o < info.noutputs; o++) free(out[o].data);
  free(npys);
  free(in);
  free(out);
  rt_st_close(st);
  if (inst) e->destroy(inst);
  return rc;
}

int engine_with(const char *model, Common *c, int (*fn)(Engine *e, void *ctx), void *ctx) {
  int rc = 1;
  Engine e;
  if (tool_is_library(model)) {
    if (c->ndefs) return tool_fail("-D: the params of a compiled library are fixed");
    if (engine_from_so(model, &e)) return 1;
    rc = fn(&e, ctx);
    engine_close(&e);
    return rc;
  }
  IrArena *arena = ir_arena_new();
  IrDiag *diag = ir_diag_new(stderr);
  char *text = NULL;
  IrGraph *g = tool_load_model(model, arena, diag, c, &text);
  if (g) { /* compiled in memory, run through the generated API */
    CgTarget t = {.opt_level = tool_llvm_level(c)};
    CgModule *m = cg_compile(g, &t, diag);
    if (m) {
      if (!engine_from_jit(m, cg_model_ident(g), &e)) rc = fn(&e, ctx);
      cg_free(m);
    }
  }
  free(text);
  ir_diag_free(diag);
  ir_arena_free(arena);
  return rc;
}

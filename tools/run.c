/* run.c - `attnc run MODEL`: run a model on .npy inputs.
 *
 * MODEL is a library made by attnc (an ELF file: loaded with dlopen), or a
 * .attn / IR file: compiled in memory with ORC LLJIT (no file written) or,
 * with --interp, run on the float64 reference interpreter.  Inputs,
 * weights and outputs are checked by name, dtype and shape; every --output
 * is staged before the run and all are committed after it, so a failed
 * run writes none of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "driver.h"
#include "engine.h"

enum { R_WEIGHTS = 1, R_INPUT, R_OUTPUT, R_INTERP, R_THREADS, R_ALLOW_EXTRA, R_COPY_WEIGHTS, R_DEVICE };

static const ToolOpt run_opts[] = {
  TOOL_OPT("--weights", "FILE", R_WEIGHTS, "safetensors file with the model's weights"),
  TOOL_OPT("--input", "NAME=FILE", R_INPUT, ".npy file for input NAME (one per input)"),
  TOOL_OPT("--output", "NAME=FILE", R_OUTPUT, "write output NAME to a .npy file"),
  TOOL_OPT("--interp", NULL, R_INTERP, "run on the reference interpreter instead of compiled code"),
  TOOL_OPT("--threads", "N", R_THREADS, "threads for compiled code (default: all cores)"),
  TOOL_OPT("--allow-extra-weights", NULL, R_ALLOW_EXTRA, "do not fail on weights the model does not use"),
  TOOL_OPT("--copy-weights", NULL, R_COPY_WEIGHTS, "read the weights file into memory instead of mapping it"),
  TOOL_OPT("--device", "N", R_DEVICE, "CUDA libraries: the GPU to run on (default 0; -1: the CPU)"),
  {0},
};

/* run's part of --help. */
void usage_run(FILE *f) {
  tool_print_options(f, run_opts);
  fprintf(f, "  and -D, -O and the pass options of compile\n");
}

/* NAME=FILE of --input / --output. */
static int split_assign(const char *arg, const char *flag, ToolList *names, ToolList *files) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg || !eq[1]) return tool_fail("%s expects NAME=FILE, got '%s'", flag, arg);
  char *name = tool_realloc(NULL, (size_t)(eq - arg) + 1);
  memcpy(name, arg, (size_t)(eq - arg));
  name[eq - arg] = 0;
  for (int k = 0; k < names->n; k++)
    if (!strcmp(names->v[k], name)) {
      int rc = tool_fail("%s %s given twice", flag, name);
      free(name);
      return rc;
    }
  tool_list_push(names, name);
  tool_list_push(files, eq + 1);
  return 0;
}

/* --interp: the reference interpreter on the graph as the pipeline left it. */
static int run_interp(IrGraph *g, const RunArgs *a) {
  const IrFunc *f = &g->funcs[0];
  int ngin;
  const int *ids = ir_graph_inputs(g, &ngin);
  int rc = 1;
  rt_safetensors *st = NULL;
  IrTensor *inputs = tool_realloc(NULL, sizeof *inputs * (size_t)(ngin + 1));
  IrTensor *outputs = tool_realloc(NULL, sizeof *outputs * (size_t)(g->noutput + 1));
  rt_npy *npys = tool_realloc(NULL, sizeof *npys * (size_t)(ngin + 1));
  memset(inputs, 0, sizeof *inputs * (size_t)(ngin + 1));
  memset(outputs, 0, sizeof *outputs * (size_t)(g->noutput + 1));
  memset(npys, 0, sizeof *npys * (size_t)(ngin + 1));
  bool *used = NULL;
  char err[2048];
  for (int k = 0; k < a->nin; k++) { /* inputs: exactly the model's, by name */
    bool found = false;
    for (int j = 0; j < ngin && !found; j++) found = !strcmp(f->nodes[ids[j]].a.str, a->in_names[k]);
    if (!found) {
      const char **names = tool_realloc(NULL, sizeof *names * (size_t)(ngin + 1));
      for (int j = 0; j < ngin; j++) names[j] = f->nodes[ids[j]].a.str;
      char *list = tool_join(names, ngin);
      tool_fail("--input %s: the model has no input '%s' (its inputs: %s)", a->in_names[k], a->in_names[k], list);
      free(list);
      free(names);
      goto done;
    }
  }
  for (int j = 0; j < ngin; j++) {
    const IrNode *n = &f->nodes[ids[j]];
    int k = 0;
    while (k < a->nin && strcmp(a->in_names[k], n->a.str)) k++;
    if (k == a->nin) {
      char *ty = tool_type_str(g, &n->type);
      tool_fail("missing input '%s' (%s): pass --input %s=FILE.npy", n->a.str, ty, n->a.str);
      free(ty);
      goto done;
    }
    if (rt_npy_read(a->in_files[k], &npys[j], err, sizeof err)) {
      tool_fail("%s", err);
      goto done;
    }
    if (npys[j].dtype != n->type.dt && !(tool_is_float(npys[j].dtype) && tool_is_float(n->type.dt))) {
      tool_fail("input '%s': %s holds %s data but the model expects %s", n->a.str, a->in_files[k],
                rt_dtype_name(npys[j].dtype), rt_dtype_name(n->type.dt));
      goto done;
    }
    if (npys[j].dtype != n->type.dt && tool_float_convert(&npys[j], n->type.dt)) { /* rounded, as the library does */
      tool_fail("out of memory converting input '%s'", n->a.str);
      goto done;
    }
    inputs[j] = (IrTensor){npys[j].dtype, npys[j].rank, {0}, npys[j].data};
    memcpy(inputs[j].shape, npys[j].shape, sizeof inputs[j].shape);
  }
  for (int k = 0; k < a->nout; k++) {
    bool found = false;
    for (int j = 0; j < g->noutput && !found; j++) found = !strcmp(g->outputs[j].name, a->out_names[k]);
    if (!found) {
      tool_fail("--output %s: the model has no output '%s'", a->out_names[k], a->out_names[k]);
      goto done;
    }
  }
  if (a->weights && rt_st_open(a->weights, &st, err, sizeof err)) {
    tool_fail("%s", err);
    goto done;
  }
  used = calloc((size_t)(st ? rt_st_count(st) : 0) + 1, 1);
  WeightCtx wc = {st, a->weights, used};
  if (ir_interp_run(g, inputs, ngin, weight_fn, &wc, outputs, g->noutput, err, sizeof err)) {
    tool_fail("%s", err);
    goto done;
  }
  if (st && !a->allow_extra)
    for (int i = 0; i < rt_st_count(st); i++)
      if (!used[i] && !tool_weight_ignored(rt_st_get(st, i)->name)) {
        tool_fail("%s: weight '%s' is not used by the model (pass --allow-extra-weights to ignore)", a->weights,
                  rt_st_get(st, i)->name);
        goto done;
      }
  for (int j = 0; j < g->noutput; j++) {
    int k = 0;
    while (k < a->nout && strcmp(a->out_names[k], g->outputs[j].name)) k++;
    if (k == a->nout) {
      char *sh = tool_shape_str(outputs[j].shape, outputs[j].rank);
      printf("%s: %s%s (not saved; use --output %s=FILE.npy)\n", g->outputs[j].name, rt_dtype_name(outputs[j].dtype), sh,
             g->outputs[j].name);
      free(sh);
      continue;
    }
    if (outputs[j].dtype == RT_BF16) { /* .npy has no bf16: written as f32, which holds it exactly */
      rt_npy t = {RT_BF16, outputs[j].rank, {0}, outputs[j].data, 0};
      memcpy(t.shape, outputs[j].shape, sizeof(int64_t) * (size_t)outputs[j].rank);
      if (tool_float_convert(&t, RT_F32)) {
        tool_fail("out of memory converting output '%s'", g->outputs[j].name);
        goto done;
      }
      outputs[j].dtype = RT_F32;
      outputs[j].data = t.data; /* float_convert freed the bf16 data */
    }
    if (rt_npy_write_to(a->outs[k], outputs[j].dtype, outputs[j].rank, outputs[j].shape, outputs[j].data, err,
                        sizeof err)) {
      tool_fail("%s", err);
      goto done;
    }
  }
  rc = 0;
done:
  for (int j = 0; j < ngin; j++) rt_npy_free(&npys[j]);
  for (int j = 0; j < g->noutput; j++) free(outputs[j].data);
  free(npys);
  free(inputs);
  free(outputs);
  free(used);
  rt_st_close(st);
  return rc;
}

/* engine_with's callback: the run. */
static int run_engine(Engine *e, void *ctx) { return engine_run(e, ctx); }

/* attnc run MODEL [options]. */
int cmd_run(int argc, char **argv) {
  Common c = {.level = 3};
  const char *model = NULL;
  ToolList in_names = {0}, in_files = {0}, out_names = {0}, out_files = {0};
  RunArgs ra = {0};
  bool interp = false;
  long long n;
  int rc = 1;
  const ToolOpt *const tables[] = {run_opts, tool_common_opts, NULL};
  for (int i = 2; i < argc;) {
    const char *v;
    int id = tool_getopt(tables, argc, argv, &i, &v);
    if (id == TOOL_ERROR) goto done;
    if (id == TOOL_DONE) break;
    int r = tool_common(&c, id, v);
    if (r > 0) goto done;
    if (r == 0) continue;
    switch (id) {
    case R_WEIGHTS:
      if (ra.weights) {
        tool_fail("--weights given twice");
        goto done;
      }
      ra.weights = v;
      break;
    case R_INPUT:
      if (split_assign(v, "--input", &in_names, &in_files)) goto done;
      break;
    case R_OUTPUT:
      if (split_assign(v, "--output", &out_names, &out_files)) goto done;
      break;
    case R_INTERP: interp = true; break;
    case R_THREADS:
      if (tool_int("--threads", v, 1, 1024, &n)) goto done;
      ra.threads = (int)n;
      break;
    case R_ALLOW_EXTRA: ra.allow_extra = true; break;
    case R_COPY_WEIGHTS: ra.copy_weights = true; break;
    case R_DEVICE:
      if (tool_int("--device", v, -1, 1024, &n)) goto done;
      ra.device = (int)n;
      break;
    default:
      if (model) {
        tool_fail("more than one model: '%s' and '%s'", model, v);
        goto done;
      }
      model = v;
    }
  }
  if (!model) {
    tool_fail("attnc run: no model given (see attnc --help)");
    goto done;
  }
  ra.in_names = in_names.v, ra.in_files = in_files.v, ra.nin = in_names.n;
  ra.out_names = out_names.v, ra.nout = out_names.n;
  for (int k = 0; k < ra.nout; k++)
    for (int j = 0; j < k; j++)
      if (!strcmp(out_files.v[j], out_files.v[k])) {
        tool_fail("--output %s and --output %s: both write '%s'", out_names.v[j], out_names.v[k], out_files.v[k]);
        goto done;
      }
  ra.outs = tool_realloc(NULL, sizeof *ra.outs * (size_t)(ra.nout + 1));
  for (int k = 0; k < ra.nout; k++) /* staged now: a bad path fails before the run */
    if (!(ra.outs[k] = tool_out_begin(out_files.v[k], 0666))) goto done;
  if (interp) { /* the reference interpreter on the graph as the pipeline left it */
    if (tool_is_library(model)) {
      tool_fail("--interp runs a .attn or IR file, not a compiled library");
      goto done;
    }
    IrArena *arena = ir_arena_new();
    IrDiag *diag = ir_diag_new(stderr);
    char *text = NULL;
    IrGraph *g = tool_load_model(model, arena, diag, &c, &text);
    if (g) rc = run_interp(g, &ra);
    free(text);
    ir_diag_free(diag);
    ir_arena_free(arena);
  } else { /* a library, or the model compiled in memory */
    rc = engine_with(model, &c, run_engine, &ra);
  }
  if (!rc) rc = tool_out_commit_all();
done:
  tool_out_abort_all();
  for (int k = 0; k < in_names.n; k++) free((char *)in_names.v[k]);
  for (int k = 0; k < out_names.n; k++) free((char *)out_names.v[k]);
  free(in_names.v), free(in_files.v), free(out_names.v), free(out_files.v);
  free(ra.outs);
  tool_common_free(&c);
  return rc;
}

/* generate.c - `attnc generate MODEL --weights W --prompt-ids 464,3290,318`:
 * greedy decoding with a decoding model's KV cache.
 *
 * MODEL is a decoding library (inputs input_ids: i32[B, T] and pos: i32[B],
 * output logits: f32[B, T, V], states for the cache: e.g. examples/gpt2.attn
 * built with -D CACHE=1) or such a .attn / IR file, compiled in memory.  The
 * prompt is one run (pos 0), every further token a run of one (pos = the
 * tokens so far); the next token is the first largest logit (torch.argmax).
 * The new ids go to stdout on one line; the prefill time, the decode rate
 * and the time per token (median, p90) to stderr.  Tokenizers are out of
 * scope: ids in, ids out. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "driver.h"
#include "engine.h"

enum { G_WEIGHTS = 1, G_PROMPT, G_NEW, G_THREADS, G_DEVICE };

static const ToolOpt gen_opts[] = {
  TOOL_OPT("--weights", "FILE", G_WEIGHTS, "safetensors file with the model's weights"),
  TOOL_OPT("--prompt-ids", "A,B,..", G_PROMPT, "the prompt's token ids, comma-separated"),
  TOOL_OPT("--max-new-tokens", "N", G_NEW, "tokens to generate (default 32)"),
  TOOL_OPT("--threads", "N", G_THREADS, "threads (default: all cores)"),
  TOOL_OPT("--device", "N", G_DEVICE, "CUDA libraries: the GPU (default 0; -1: the CPU)"),
  {0},
};

/* generate's part of --help. */
void usage_generate(FILE *f) {
  tool_print_options(f, gen_opts);
  fprintf(f, "  and -D, -O and the pass options of compile (a .attn model)\n");
}

/* "464,3290,318" -> ids (malloc'd), or an error naming the bad part. */
static int parse_ids(const char *s, int32_t **ids, int *n) {
  *ids = NULL, *n = 0;
  if (!*s) return tool_fail("--prompt-ids: empty (give comma-separated token ids, e.g. 464,3290,318)");
  for (const char *p = s;;) {
    char *end;
    const char *q = p;
    while (*q == ' ') q++;
    if (*q < '0' || *q > '9') {
      const char *e = strchr(p, ',');
      int len = e ? (int)(e - p) : (int)strlen(p);
      return tool_fail("--prompt-ids: '%.*s' is not a token id (ids are integers 0..2147483647, comma-separated)", len, p);
    }
    long long v = strtoll(q, &end, 10);
    while (*end == ' ') end++;
    if (v > INT32_MAX || (*end && *end != ','))
      return tool_fail("--prompt-ids: '%.*s' is not a token id (ids are integers 0..2147483647, comma-separated)",
                       (int)strcspn(p, ","), p);
    *ids = tool_realloc(*ids, sizeof **ids * (size_t)(*n + 1));
    (*ids)[(*n)++] = (int32_t)v;
    if (!*end) return 0;
    p = end + 1;
  }
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The first largest of n logits (torch.argmax; NaN counts as largest). */
static int32_t argmax(const float *x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (!isnan(x[best]) && (isnan(x[i]) || x[i] > x[best])) best = i;
  return (int32_t)best;
}

/* The value of integer param `name`, or -1. */
static int64_t param_of(const attnc_model_info *info, const char *name) {
  for (int p = 0; p < info->nparams; p++)
    if (!strcmp(info->param_names[p], name)) return info->param_values[p];
  return -1;
}

/* The decoding loop on an engine; prints the ids and the timings. */
static int generate(Engine *e, const char *weights, const int32_t *prompt, int np, int nnew, int threads, int device) {
  attnc_model_info info;
  attnc_instance *inst = NULL;
  int rc = 1;
  float *logits = NULL;
  int32_t *ids = NULL, *out = NULL;
  double *dt = NULL;
  if (e->describe(&info)) return tool_fail("the model cannot describe itself");
  if (info.ninputs != 2 || strcmp(info.inputs[0].name, "input_ids") || strcmp(info.inputs[1].name, "pos") ||
      info.noutputs != 1 || strcmp(info.outputs[0].name, "logits") || info.inputs[0].rank != 2 ||
      info.inputs[1].rank != 1 || info.outputs[0].rank != 3 || info.outputs[0].dtype != ATTNC_F32)
    return tool_fail("model '%s' is not a decoding model: generate needs inputs input_ids: i32[B, T] and pos: i32[B] "
                     "and the output logits: f32[B, T, V] (e.g. examples/gpt2.attn with -D CACHE=1)", info.name);
  int64_t V = param_of(&info, "V"), maxt = param_of(&info, "MAXT");
  for (int i = 0; i < np; i++)
    if (V > 0 && prompt[i] >= V)
      return tool_fail("--prompt-ids: id %d (position %d) is out of range for the vocabulary (V = %lld)", prompt[i], i,
                       (long long)V);
  if (maxt > 0 && np + nnew - 1 > maxt)
    return tool_fail("a prompt of %d tokens and %d new ones need %d cache positions; the model's cache holds %lld "
                     "(MAXT; rebuild with -D MAXT=%d)", np, nnew, np + nnew - 1, (long long)maxt, np + nnew - 1);
  attnc_options opt = {.num_threads = threads, .device = device};
  int code = e->create(&opt, &inst);
  if (code) return tool_fail("cannot create the model instance (status %d): %s", code, e->error(NULL));
  if (!weights && info.nweights > 0) {
    tool_fail("the model needs %d weights (e.g. '%s'): pass --weights FILE.safetensors", info.nweights,
              info.weights[0].name);
    goto done;
  }
  if (weights && e->load_weights(inst, weights)) {
    tool_fail("%s", e->error(inst));
    goto done;
  }
  ids = tool_realloc(NULL, sizeof *ids * (size_t)np);
  memcpy(ids, prompt, sizeof *ids * (size_t)np);
  out = tool_realloc(NULL, sizeof *out * (size_t)nnew);
  dt = tool_realloc(NULL, sizeof *dt * (size_t)nnew);
  int32_t pos = 0;
  double prefill = 0;
  for (int step = 0; step < nnew; step++) {
    int64_t T = step == 0 ? np : 1;
    attnc_tensor in[2] = {{ATTNC_I32, 2, {1, T}, step == 0 ? ids : &out[step - 1]}, {ATTNC_I32, 1, {1}, &pos}};
    attnc_tensor lo = {ATTNC_F32, 3, {0}, NULL};
    if (e->output_shapes(inst, in, 2, &lo, 1)) {
      tool_fail("%s", e->error(inst));
      goto done;
    }
    int64_t n = lo.shape[0] * lo.shape[1] * lo.shape[2];
    logits = tool_realloc(logits, sizeof *logits * (size_t)n);
    for (int64_t j = 0; j < n; j++) logits[j] = NAN;
    lo.data = logits;
    double t0 = now();
    if (e->run(inst, in, 2, &lo, 1)) {
      tool_fail("%s", e->error(inst));
      goto done;
    }
    double t1 = now();
    if (step == 0) prefill = t1 - t0;
    else dt[step - 1] = t1 - t0;
    out[step] = argmax(logits + (T - 1) * lo.shape[2], lo.shape[2]);
    pos += (int32_t)T;
  }
  for (int i = 0; i < nnew; i++) printf("%s%d", i ? " " : "", out[i]);
  printf("\n");
  fflush(stdout);
  fprintf(stderr, "prefill: %d tokens in %.3f ms (%.1f tokens/s)\n", np, prefill * 1e3, np / prefill);
  int nd = nnew - 1;
  if (nd > 0) {
    double sum = 0;
    for (int i = 0; i < nd; i++) sum += dt[i];
    qsort(dt, (size_t)nd, sizeof *dt, cmp_double);
    int p90 = (int)ceil(0.9 * nd) - 1;
    fprintf(stderr, "decode: %d tokens in %.3f s: %.2f tokens/s; per token median %.3f ms, p90 %.3f ms\n", nd, sum,
            nd / sum, (nd % 2 ? dt[nd / 2] : 0.5 * (dt[nd / 2 - 1] + dt[nd / 2])) * 1e3, dt[p90 < 0 ? 0 : p90] * 1e3);
  }
  rc = 0;
done:
  free(logits);
  free(ids);
  free(out);
  free(dt);
  if (inst) e->destroy(inst);
  return rc;
}

/* What generate() is asked, for engine_with. */
typedef struct {
  const char *weights;
  const int32_t *ids;
  int np, nnew, threads, device;
} GenArgs;

/* engine_with's callback: the decoding loop. */
static int generate_engine(Engine *e, void *ctx) {
  const GenArgs *a = ctx;
  return generate(e, a->weights, a->ids, a->np, a->nnew, a->threads, a->device);
}

/* attnc generate MODEL [options]. */
int cmd_generate(int argc, char **argv) {
  Common c = {.level = 3};
  const char *model = NULL, *weights = NULL, *prompt = NULL;
  long long n, nnew = 32, threads = 0, device = 0;
  int rc = 1, np = 0;
  int32_t *ids = NULL;
  const ToolOpt *const tables[] = {gen_opts, tool_common_opts, NULL};
  for (int i = 2; i < argc;) {
    const char *v;
    int id = tool_getopt(tables, argc, argv, &i, &v);
    if (id == TOOL_ERROR) goto done;
    if (id == TOOL_DONE) break;
    int r = tool_common(&c, id, v);
    if (r > 0) goto done;
    if (r == 0) continue;
    switch (id) {
    case G_WEIGHTS: weights = v; break;
    case G_PROMPT: prompt = v; break;
    case G_NEW:
      if (tool_int("--max-new-tokens", v, 1, 1 << 24, &n)) goto done;
      nnew = n;
      break;
    case G_THREADS:
      if (tool_int("--threads", v, 1, 1024, &n)) goto done;
      threads = n;
      break;
    case G_DEVICE:
      if (tool_int("--device", v, -1, 1024, &n)) goto done;
      device = n;
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
    tool_fail("attnc generate: no model given (attnc generate MODEL --weights W.safetensors --prompt-ids 464,3290)");
    goto done;
  }
  if (!prompt) {
    tool_fail("attnc generate: no prompt (--prompt-ids 464,3290,318)");
    goto done;
  }
  if (parse_ids(prompt, &ids, &np)) goto done;
  GenArgs ga = {weights, ids, np, (int)nnew, (int)threads, (int)device};
  rc = engine_with(model, &c, generate_engine, &ga);
done:
  free(ids);
  tool_common_free(&c);
  return rc;
}

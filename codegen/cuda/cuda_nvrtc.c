/* cuda_nvrtc.c - compiling the generated CUDA C with NVRTC, at attnc's
 * compile time (never at run time).  Built only when CMake finds the CUDA
 * toolkit (ATTNC_HAVE_CUDA); otherwise every entry point reports that the
 * backend is unavailable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda.h"

#ifdef ATTNC_HAVE_CUDA
#include <nvrtc.h>

bool cu_available(void) { return true; }

const char *cu_nvrtc_version(void) {
  static char v[32];
  int major = 0, minor = 0;
  if (nvrtcVersion(&major, &minor) != NVRTC_SUCCESS) return "unknown";
  snprintf(v, sizeof v, "%d.%d", major, minor);
  return v;
}

/* Line n (1-based) of text, into buf. */
static void line_of(const char *text, int n, char *buf, size_t len) {
  const char *p = text;
  for (int i = 1; i < n && p; i++) {
    p = strchr(p, '\n');
    if (p) p++;
  }
  if (!p) {
    snprintf(buf, len, "?");
    return;
  }
  size_t l = strcspn(p, "\n");
  snprintf(buf, len, "%.*s", (int)(l < len - 1 ? l : len - 1), p);
}

/* The `// %N = ...` comment of the kernel that contains line n. */
static void kernel_of(const char *text, int n, char *buf, size_t len) {
  snprintf(buf, len, "(prelude)");
  const char *p = text;
  for (int i = 1; i <= n && p && *p; i++) {
    if (!strncmp(p, "// %", 4)) {
      size_t l = strcspn(p, "\n");
      snprintf(buf, len, "%.*s", (int)(l < len - 1 ? l : len - 1), p + 3);
    }
    p = strchr(p, '\n');
    if (p) p++;
  }
}

/* The log, with each "attnc.cu(N): error" followed by line N and its node. */
static void explain(const char *src, const char *log, char *err, size_t errlen) {
  size_t used = 0;
  const char *p = log;
  while (*p && used < errlen) {
    size_t l = strcspn(p, "\n");
    used += (size_t)snprintf(err + used, errlen - used, "%.*s\n", (int)l, p);
    int line;
    if (sscanf(p, "attnc.cu(%d)", &line) == 1 && strstr(p, "error") && used < errlen) {
      char code[256], node[256];
      line_of(src, line, code, sizeof code);
      kernel_of(src, line, node, sizeof node);
      used += (size_t)snprintf(err + used, errlen - used, "  generated line %d: %s\n  in the kernel of IR node %s\n",
                               line, code, node);
    }
    p += l;
    if (*p) p++;
  }
}

int cu_compile(const char *src, const char *arch, char **out, size_t *outlen, char **info, char *err, size_t errlen) {
  nvrtcProgram prog;
  *out = NULL;
  *outlen = 0;
  if (info) *info = NULL;
  if (nvrtcCreateProgram(&prog, src, "attnc.cu", 0, NULL, NULL) != NVRTC_SUCCESS) {
    snprintf(err, errlen, "NVRTC: cannot create a program");
    return 1;
  }
  bool cubin = !strncmp(arch, "sm_", 3);
  char archopt[64];
  snprintf(archopt, sizeof archopt, "--gpu-architecture=%s", arch);
  const char *opts[] = {archopt, "--std=c++17", "-default-device", "--ptxas-options=-v"};
  nvrtcResult rc = nvrtcCompileProgram(prog, cubin ? 4 : 3, opts);
  size_t loglen = 0;
  nvrtcGetProgramLogSize(prog, &loglen);
  char *log = malloc(loglen + 1);
  if (!log) {
    nvrtcDestroyProgram(&prog);
    snprintf(err, errlen, "out of memory");
    return 1;
  }
  log[0] = 0;
  nvrtcGetProgramLog(prog, log);
  if (rc != NVRTC_SUCCESS) {
    explain(src, log, err, errlen);
    free(log);
    nvrtcDestroyProgram(&prog);
    return 1;
  }
  size_t n = 0;
  if (cubin ? nvrtcGetCUBINSize(prog, &n) : nvrtcGetPTXSize(prog, &n)) {
    snprintf(err, errlen, "NVRTC: no %s produced", cubin ? "CUBIN" : "PTX");
    free(log);
    nvrtcDestroyProgram(&prog);
    return 1;
  }
  *out = malloc(n ? n : 1);
  if (!*out || (cubin ? nvrtcGetCUBIN(prog, *out) : nvrtcGetPTX(prog, *out))) {
    free(*out);
    *out = NULL;
    free(log);
    nvrtcDestroyProgram(&prog);
    snprintf(err, errlen, "NVRTC: cannot read the result");
    return 1;
  }
  *outlen = n;
  if (info) *info = log;
  else free(log);
  nvrtcDestroyProgram(&prog);
  return 0;
}

#else

bool cu_available(void) { return false; }
const char *cu_nvrtc_version(void) { return "unavailable"; }

int cu_compile(const char *src, const char *arch, char **out, size_t *outlen, char **info, char *err, size_t errlen) {
  (void)src, (void)arch, (void)info;
  *out = NULL;
  *outlen = 0;
  snprintf(err, errlen, "the CUDA backend is unavailable: attnc was built without the CUDA toolkit (NVRTC); "
                        "install it (/usr/local/cuda) and rebuild");
  return 1;
}
#endif

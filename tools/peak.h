/* peak.h - the measured fp32 FMA peak of this machine (GFLOP/s with
 * `threads` threads; 0 if it cannot be measured, with the reason in desc). */
#ifndef TOOLS_PEAK_H
#define TOOLS_PEAK_H
#include <stdbool.h>
#include <stddef.h>
double attnc_measure_peak(int threads, char *desc, size_t desclen);
/* This machine's memory bandwidth in GB/s with `threads` threads: the best
 * of five STREAM-style triads (a = b + s*c over three arrays of 96 MiB,
 * 12 bytes per element counted); 0 if it cannot be measured. */
double attnc_measure_bandwidth(int threads);

/* Both limits, measured once per machine and cached: the cache file
 * ($XDG_CACHE_HOME/attnc/limits, else ~/.cache/attnc/limits) holds one
 * line per (CPU model, threads).  remeasure ignores (and replaces) the
 * cached line.  A cache that cannot be read or written is only skipped. */
typedef struct {
  double gflops;   /* fp32 FMA peak, GFLOP/s (0: unknown) */
  double gbs;      /* triad bandwidth, GB/s (0: unknown) */
  char desc[160];  /* how the peak was measured */
  char cpu[128];   /* the CPU model the cache is keyed by */
  bool cached;     /* read from the cache */
  char cache_path[512];
} AttncLimits;
void attnc_machine_limits(int threads, bool remeasure, AttncLimits *out);
#endif

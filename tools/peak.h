/* peak.h - the measured fp32 FMA peak of this machine (GFLOP/s with
 * `threads` threads; 0 if it cannot be measured, with the reason in desc). */
#ifndef TOOLS_PEAK_H
#define TOOLS_PEAK_H
#include <stddef.h>
double attnc_measure_peak(int threads, char *desc, size_t desclen);
#endif

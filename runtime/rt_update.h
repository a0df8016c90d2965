/* rt_update.h - the range check of a state update (`update(state, x,
 * axis=, at=)`), shared word for word by the runtime (rt_api.c: checked
 * before a run writes anything) and the reference interpreter
 * (ir/interp.c).  Header-only: the runtime does not link the compiler. */
#ifndef RT_UPDATE_H
#define RT_UPDATE_H
#include <stdint.h>
#include <stdio.h>

/* rows <= maxrows, and 0 <= at[r], at[r] + len <= maxlen for every
 * r < atn (one position, or one per row).  Returns 0, or -1 with the
 * message in err. */
static inline int rt_update_check(const char *state, int axis, int64_t maxrows, int64_t maxlen, int64_t rows,
                                  int64_t len, const int32_t *at, int64_t atn, char *err, size_t errlen) {
  if (rows > maxrows) {
    snprintf(err, errlen, "update of state '%s': %lld rows do not fit its %lld", state, (long long)rows,
             (long long)maxrows);
    return -1;
  }
  for (int64_t r = 0; r < atn; r++)
    if (at[r] < 0 || (int64_t)at[r] + len > maxlen) {
      snprintf(err, errlen,
               "update of state '%s' (row %lld): positions %lld..%lld are past its maximum %lld along axis %d",
               state, (long long)(atn > 1 ? r : 0), (long long)at[r], (long long)at[r] + len - 1,
               (long long)maxlen, axis);
      return -1;
    }
  return 0;
}
#endif

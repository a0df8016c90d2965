/* dce.c - dead code elimination.
 * Requires: a verified graph.
 * Produces: the same graph without nodes that no output depends on.  Model
 * inputs always stay (they are the interface); unused weights go, so the
 * compiled model does not ask for them. */
#include "pass.h"

bool pass_dce(IrGraph *g, const PassOptions *opt) {
  bool changed = false;
  for (int f = 0; f < g->nfunc; f++) changed |= pass_compact(g, f);
  return changed;
}

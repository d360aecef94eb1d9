/* fastinfo: softmax-family row kernels (logits), included by _kernels_softmax.pxi. The row
   functions are in softmax_rows.h, instantiated here for float (suffix _f) and double (_d);
   the vector types and the exp polynomials are in vec.h. */
#ifndef FASTINFO_SOFTMAX_H
#define FASTINFO_SOFTMAX_H

#include "vec.h"

/* float: 8 lanes, double accumulators as two 4-lane halves. */
#define FT float
#define SFX f
#define FV fi_v8f
#define IV fi_v8i
#define DV fi_v8d
#define LANES 8
#define FI_ADD fi_add8d
#define FI_LOADW fi_load_v8d
#define FI_TOD FI_TOD_F
#define FI_FROMD FI_FROMD_F
#define FI_EXP_LO -87.0f
#define FI_FUSED(m, s) (fabs((m) * (s)) < 1048576.0)
#include "softmax_rows.h"

/* double: 4 lanes. */
#define FT double
#define SFX d
#define FV fi_v4d
#define IV fi_v4l
#define DV fi_v4d
#define LANES 4
#define FI_ADD fi_add4d
#define FI_LOADW fi_load_v4d
#define FI_TOD FI_ID
#define FI_FROMD FI_ID
#define FI_EXP_LO -708.0
#define FI_FUSED(m, s) 0
#include "softmax_rows.h"

#endif /* FASTINFO_SOFTMAX_H */

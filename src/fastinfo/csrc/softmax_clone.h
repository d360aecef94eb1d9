/* fastinfo: one clone of the softmax kernels: softmax_rows.h for float, double, float16 and
   bfloat16 input, with the element loads and stores of each type. Included by softmax.h once per clone, with FI_ISA,
   FI_KFN and FI_KIN defined. No include guard: it is meant to be included more than once. */

/* float: computed in float, sums in double */
#define ST float
#define SFX f
#define FT float
#define CSFX f
#define FI_COMPUTE_FLOAT 1
#define FI_LOAD_ST(p) FI_V(load)(p)
#define FI_LOAD_TAIL_ST(p, k, fill) FI_V(load_tail)(p, k, fill)
#define FI_STORE_ST(p, v) FI_V(store)(p, v)
#define FI_STORE_TAIL_ST(p, k, v) FI_V(store_tail)(p, k, v)
#define FI_STREAM_ST(p, v) FI_V(stream)(p, v)
#define FI_LOADW_ST(p) FI_I(loadw_f)(p)
#define FI_EXP_LO -87.0f
#define FI_FUSED(m, s) (fabs((m) * (s)) < 1048576.0)
#include "softmax_rows.h"

/* double */
#define ST double
#define SFX d
#define FT double
#define CSFX d
#define FI_COMPUTE_FLOAT 0
#define FI_LOAD_ST(p) FI_V(load)(p)
#define FI_LOAD_TAIL_ST(p, k, fill) FI_V(load_tail)(p, k, fill)
#define FI_STORE_ST(p, v) FI_V(store)(p, v)
#define FI_STORE_TAIL_ST(p, k, v) FI_V(store_tail)(p, k, v)
#define FI_STREAM_ST(p, v) FI_V(stream)(p, v)
#define FI_LOADW_ST(p) FI_I(loadw_d)(p)
#define FI_EXP_LO -708.0
#define FI_FUSED(m, s) 0
#include "softmax_rows.h"

/* float16 and bfloat16 bits: the float kernels with widening loads. _h / _b write float32
   outputs; _hh / _bb (the writers, with their own copies of the row sums they call; the kernels
   that write nothing are _h / _b's) write the input's own type, each element rounded once: to
   float32 so that the store's rounding to nearest even is that of the double (narrow_f16_f,
   narrow_bf16_f: round-to-odd where it matters), then by the store. */
#define ST uint16_t
#define SFX h
#define FT float
#define CSFX f
#define FI_COMPUTE_FLOAT 1
#define FI_LOAD_ST(p) FI_I(load_f16)(p)
#define FI_LOAD_TAIL_ST(p, k, fill) FI_I(load_tail_f16)(p, k, fill)
#define FI_STORE_ST(p, v) FI_I(store_f16)(p, v)
#define FI_STORE_TAIL_ST(p, k, v) FI_I(store_tail_f16)(p, k, v)
#define FI_STREAM_ST(p, v) FI_I(stream_f16)(p, v)
#define FI_LOADW_ST(p) FI_I(loadw_f16)(p)
#define FI_LD1_ST(e) fi_f16_to_f32(e)
#define OT float
#define FI_STORE_OT(p, v) FI_V(store)(p, v)
#define FI_STORE_TAIL_OT(p, k, v) FI_V(store_tail)(p, k, v)
#define FI_STREAM_OT(p, v) FI_V(stream)(p, v)
#define FI_FILL1_OT(p, x) (*(p) = (float)(x))
#define FI_EXP_LO -87.0f
#define FI_FUSED(m, s) (fabs((m) * (s)) < 1048576.0)
#include "softmax_rows.h"

#define ST uint16_t
#define SFX hh
#define FI_READERS 0
#define FT float
#define CSFX f
#define FI_COMPUTE_FLOAT 1
#define FI_LOAD_ST(p) FI_I(load_f16)(p)
#define FI_LOAD_TAIL_ST(p, k, fill) FI_I(load_tail_f16)(p, k, fill)
#define FI_STORE_ST(p, v) FI_I(store_f16)(p, v)
#define FI_STORE_TAIL_ST(p, k, v) FI_I(store_tail_f16)(p, k, v)
#define FI_STREAM_ST(p, v) FI_I(stream_f16)(p, v)
#define FI_LOADW_ST(p) FI_I(loadw_f16)(p)
#define FI_LD1_ST(e) fi_f16_to_f32(e)
#define OT uint16_t
#define FI_STORE_OT(p, v) FI_I(store_f16)(p, v)
#define FI_STORE_TAIL_OT(p, k, v) FI_I(store_tail_f16)(p, k, v)
#define FI_STREAM_OT(p, v) FI_I(stream_f16)(p, v)
#define FI_FILL1_OT(p, x) (*(p) = fi_d_to_f16(x))
#define FI_NARROW_OUT(lo, hi) FI_I(narrow_f16_f)(lo, hi)
#define FI_HALF_SAFE(f, min_bits) FI_I(f16_safe)(f, min_bits)
#define FI_HALF_MIN_BITS 0x38800000u   /* 2^-14: float16's smallest normal */
#define FI_EXP_LO -87.0f
#define FI_FUSED(m, s) (fabs((m) * (s)) < 1048576.0)
#include "softmax_rows.h"

#define ST uint16_t
#define SFX b
#define FT float
#define CSFX f
#define FI_COMPUTE_FLOAT 1
#define FI_LOAD_ST(p) FI_I(load_bf16)(p)
#define FI_LOAD_TAIL_ST(p, k, fill) FI_I(load_tail_bf16)(p, k, fill)
#define FI_STORE_ST(p, v) FI_I(store_bf16)(p, v)
#define FI_STORE_TAIL_ST(p, k, v) FI_I(store_tail_bf16)(p, k, v)
#define FI_STREAM_ST(p, v) FI_I(stream_bf16)(p, v)
#define FI_LOADW_ST(p) FI_I(loadw_bf16)(p)
#define FI_LD1_ST(e) fi_bf16_to_f32(e)
#define OT float
#define FI_STORE_OT(p, v) FI_V(store)(p, v)
#define FI_STORE_TAIL_OT(p, k, v) FI_V(store_tail)(p, k, v)
#define FI_STREAM_OT(p, v) FI_V(stream)(p, v)
#define FI_FILL1_OT(p, x) (*(p) = (float)(x))
#define FI_EXP_LO -87.0f
#define FI_FUSED(m, s) (fabs((m) * (s)) < 1048576.0)
#include "softmax_rows.h"

#define ST uint16_t
#define SFX bb
#define FI_READERS 0
#define FT float
#define CSFX f
#define FI_COMPUTE_FLOAT 1
#define FI_LOAD_ST(p) FI_I(load_bf16)(p)
#define FI_LOAD_TAIL_ST(p, k, fill) FI_I(load_tail_bf16)(p, k, fill)
#define FI_STORE_ST(p, v) FI_I(store_bf16)(p, v)
#define FI_STORE_TAIL_ST(p, k, v) FI_I(store_tail_bf16)(p, k, v)
#define FI_STREAM_ST(p, v) FI_I(stream_bf16)(p, v)
#define FI_LOADW_ST(p) FI_I(loadw_bf16)(p)
#define FI_LD1_ST(e) fi_bf16_to_f32(e)
#define OT uint16_t
#define FI_STORE_OT(p, v) FI_I(store_bf16)(p, v)
#define FI_STORE_TAIL_OT(p, k, v) FI_I(store_tail_bf16)(p, k, v)
#define FI_STREAM_OT(p, v) FI_I(stream_bf16)(p, v)
#define FI_FILL1_OT(p, x) (*(p) = fi_d_to_bf16(x))
#define FI_NARROW_OUT(lo, hi) FI_I(narrow_bf16_f)(lo, hi)
#define FI_HALF_SAFE(f, min_bits) FI_I(bf16_safe)(f, min_bits)
#define FI_HALF_MIN_BITS 0x00800000u   /* 2^-126: float32's (and bfloat16's) smallest normal */
#define FI_EXP_LO -87.0f
#define FI_FUSED(m, s) (fabs((m) * (s)) < 1048576.0)
#include "softmax_rows.h"

/* The clone's double -> half rounding of the half writers (narrow_f16_f / narrow_bf16_f, then the
   store's rounding), elementwise (test hook): two double vectors per step, the tail by the scalar
   rounding. half: FI_FLOAT16 or bfloat16. */
FI_KFN void FI_CAT(fi_sm_round_half, FI_ISA)(const double *x, uint16_t *out, Py_ssize_t n, int half) {
    const Py_ssize_t step = 2 * FI_I(lanes_d);
    Py_ssize_t i;
    for (i = 0; i + step <= n; i += step) {
        FI_I(vec_d) lo = FI_I(load_d)(x + i), hi = FI_I(load_d)(x + i + FI_I(lanes_d));
        if (half == FI_FLOAT16)
            FI_I(store_f16)(out + i, FI_I(narrow_f16_f)(lo, hi));
        else
            FI_I(store_bf16)(out + i, FI_I(narrow_bf16_f)(lo, hi));
    }
    for (; i < n; i++)
        out[i] = half == FI_FLOAT16 ? fi_d_to_f16(x[i]) : fi_d_to_bf16(x[i]);
}

/* fastinfo: softmax-family row kernels (logits), included by _kernels_softmax.pxi.
   The kernels are written once in softmax_rows.h and compiled here for each clone of the vector
   layer (vec.h: v4, v3, base) and each element type (float _f, double _d; float16 _h and bfloat16
   _b bits with float32 outputs, _hh and _bb with outputs of their own type); the functions below
   with the plain names (fi_lse_row_f, ...) call the clone in use (fi_dense_select). */
#ifndef FASTINFO_SOFTMAX_H
#define FASTINFO_SOFTMAX_H

#include "vec.h"

/* Rows are processed in blocks of this many elements (2 KiB of float32, 4 KiB of float64): small
   enough that the blocks summed twice (those that raise the running max) cost little. */
#define FI_SOFTMAX_BLOCK 512
/* softmax rows of up to this many blocks (131072 elements) keep their exps from the sum pass */
#define FI_SOFTMAX_STORE_BLOCKS 256

enum {
    FI_ROW_FINITE = 0,  /* finite max: m and log_S are set */
    FI_ROW_NAN = 1,     /* a NaN in the row */
    FI_ROW_POSINF = 2,  /* +inf in the row (logsumexp +inf, everything else NaN) */
    FI_ROW_NEGINF = 3   /* every element -inf, or an empty row (logsumexp -inf) */
};

/* Online log-sum-exp of a row seen block by block: m the running max (of x, not of x s),
   S = sum exp((x - m) s) so far, nan_seen for NaN in a block that had no number to sum. */
typedef struct {
    double m;
    double S;
    int nan_seen;
} fi_lse_state;

/* 1: log_softmax writes each row inside the next row's sum pass (see fi_normalize_rows); 0 (the
   default): row by row. The results are the same either way (a switch for measuring). Row by row
   is faster on AMD Zen 4 (log_softmax of a float32 (4096, 32000) into out=, 2 threads: 34-45 ms
   against 48-55 ms pipelined, whatever the piece size from 1 to 32 blocks; float16 / bfloat16
   and the AVX2 clone equal or better); the pipelined write was tuned on an Intel Xeon. */
static int fi_pipeline_rows = 0;

/* 1 (the default): log_softmax into a float16 / bfloat16 output with no temperature computes
   each vector in float where that provably gives the double's rounding (softmax_rows.h,
   fi_logsoftmax_vec_any); 0: always in double. The same bits either way (a switch for tests and
   measuring). */
static int fi_half_fast_writes = 1;

static inline int fi_lse_finish(const fi_lse_state *st, double *m, double *log_S) {
    if (st->nan_seen || st->S != st->S) return FI_ROW_NAN;
    if (st->m == INFINITY) return FI_ROW_POSINF;
    if (st->m == -INFINITY) return FI_ROW_NEGINF;
    *m = st->m;
    *log_S = log(st->S);
    return FI_ROW_FINITE;
}

/* ---------------- one instantiation per clone (softmax_clone.h: float and double) ---------------- */
#define FI_ISA base
#define FI_KFN static
#define FI_KIN FI_INLINE
#include "softmax_clone.h"
#undef FI_ISA
#undef FI_KFN
#undef FI_KIN

#if FI_X86_CLONES
#define FI_ISA v3
#define FI_KFN static FI_TARGET_V3
#define FI_KIN FI_INLINE FI_TARGET_V3
#include "softmax_clone.h"
#undef FI_ISA
#undef FI_KFN
#undef FI_KIN

#define FI_ISA v4
#define FI_KFN static FI_TARGET_V4
#define FI_KIN FI_INLINE FI_TARGET_V4
#include "softmax_clone.h"
#undef FI_ISA
#undef FI_KFN
#undef FI_KIN
#endif

/* ---------------- the kernels Cython calls: the clone in use ---------------- */
#define ST float
#define SFX f
#include "softmax_api.h"
#define ST double
#define SFX d
#include "softmax_api.h"
/* float16 / bfloat16 bits in; float32 out (h, b) or the input's type out (hh, bb) */
#define ST uint16_t
#define SFX h
#define OT float
#define FT float
#include "softmax_api.h"
#define ST uint16_t
#define SFX hh
#define FT float
#define FI_API_READERS 0
#include "softmax_api.h"
#define ST uint16_t
#define SFX b
#define OT float
#define FT float
#include "softmax_api.h"
#define ST uint16_t
#define SFX bb
#define FT float
#define FI_API_READERS 0
#include "softmax_api.h"

/* The half writers' double -> half rounding in the clone in use, elementwise (test hook). */
static void fi_sm_round_half(const double *x, uint16_t *out, Py_ssize_t n, int half) {
#if FI_X86_CLONES
    if (fi_dense_isa == FI_ISA_AVX512) { fi_sm_round_half_v4(x, out, n, half); return; }
    if (fi_dense_isa == FI_ISA_AVX2) { fi_sm_round_half_v3(x, out, n, half); return; }
#endif
    fi_sm_round_half_base(x, out, n, half);
}

#endif /* FASTINFO_SOFTMAX_H */

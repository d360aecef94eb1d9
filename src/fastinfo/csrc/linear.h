/* fastinfo: fused linear head + softmax losses (logits = hidden @ head.T + bias, never stored),
   included by _kernels_linear.pxi. The type-generic block functions are in linear_rows.h,
   instantiated here for float (suffix _f) and double (_d); they call the softmax row functions of
   softmax.h (online max, sum-exp, entropy and KL sums: the exp polynomials of vec.h) on blocks of
   logits that a BLAS product has just written into a buffer that stays in cache.

   Work items. The rows processed (all rows of hidden, or the non-ignored ones) are cut into row
   blocks of at most block_rows rows, the vocabulary into blocks of at most block_vocab entries, and
   the vocabulary blocks into n_groups consecutive groups (n_groups > 1 only when there are too few
   row blocks to keep the threads busy). An item is (row block a, group g), numbered a * n_groups + g;
   the blocking depends on the shapes only, never on the thread count, and every sum is taken in an
   order fixed by the blocking, so the results do not depend on the number of threads.

   Statistics pass: an item runs through the vocabulary blocks of its group in order, computes the
   (rows x block) logits with one gemm (the temperature folded into the product: y = s (h.w + b)),
   and folds them into per-row online statistics (a row of FI_LIN_NF doubles per processed row and
   group); groups are merged afterwards in group order (fi_lin_merge).

   Gradient pass: recomputes each logits block, turns it in place into d loss / d logits with the
   per-row factors of softmax_cross_entropy_with_grad, and accumulates grad_hidden += G @ head_block
   (row-owned: the item's own rows, vocabulary blocks in order) and grad_head_block += G.T @ hidden_rows
   (and grad_bias_block += column sums of G). The head gradient of a vocabulary block receives the
   row blocks in increasing order: item (a, g) waits until item (a - 1, g) has added its part for that
   block (a progress counter per item), which pipelines the threads instead of giving each a copy of
   the head gradient. Items are handed out round robin (static schedule, chunk 1) in increasing order,
   so an item only ever waits for an item with a smaller number: there is no cycle, hence no deadlock,
   for any number of threads (a team of one runs the items in order without waiting). */
#ifndef FASTINFO_LINEAR_H
#define FASTINFO_LINEAR_H

#include "softmax.h"

#include <limits.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#define FI_LIN_YIELD() sched_yield()
#else
#define FI_LIN_YIELD() ((void)0)
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FI_LIN_PAUSE() _mm_pause()
#else
#define FI_LIN_PAUSE() ((void)0)
#endif

/* BLAS gemm with the Fortran calling convention, as scipy.linalg.cython_blas exports it. */
typedef void (*fi_sgemm_t)(char *transa, char *transb, int *m, int *n, int *k, float *alpha, float *a, int *lda,
                           float *b, int *ldb, float *beta, float *c, int *ldc);
typedef void (*fi_dgemm_t)(char *transa, char *transb, int *m, int *n, int *k, double *alpha, double *a,
                           int *lda, double *b, int *ldb, double *beta, double *c, int *ldc);
static fi_sgemm_t fi_lin_sgemm_ptr = NULL;
static fi_dgemm_t fi_lin_dgemm_ptr = NULL;

static void fi_lin_set_gemm(void *sgemm, void *dgemm) {
    fi_lin_sgemm_ptr = (fi_sgemm_t)sgemm;
    fi_lin_dgemm_ptr = (fi_dgemm_t)dgemm;
}

/* Element types an operand may hold (read and widened block by block). */
enum { FI_LIN_F64 = 0, FI_LIN_F32 = 1, FI_LIN_F16 = 2, FI_LIN_BF16 = 3 };

/* A 2-D operand: element (i, j) at data + i * stride0 + j * stride1 (bytes, any sign).
   direct: it holds the compute type with unit column stride and a row stride ld >= max(1, width)
   that fits a BLAS int, so BLAS reads it in place (else blocks are copied into a buffer). */
typedef struct {
    const char *data;
    Py_ssize_t stride0, stride1;
    int kind;
    int direct;
    Py_ssize_t ld;
} fi_lin_matrix;

typedef struct {
    fi_lin_matrix hidden, head;
    const void *bias;     /* s * bias in the compute type, (V,); NULL without bias */
    Py_ssize_t width;     /* d */
} fi_lin_model;

/* Per-row statistics (doubles), FI_LIN_NF per processed row and group. Model p is the only model
   of the one-model functions; q is the second model of the KL and report statistics. */
enum {
    FI_LIN_M = 0,     /* running max of y_p */
    FI_LIN_S,         /* sum exp(y_p - M) */
    FI_LIN_U,         /* entropy: sum exp(y_p - M) (y_p - M); KL: sum exp(y_p - M) (y_p - y_q) */
    FI_LIN_YT,        /* y_p at the target class (NaN until seen) */
    FI_LIN_WY,        /* sum_c w_c y_p,c (label smoothing) */
    FI_LIN_ARG,       /* first index of the max of y_p */
    FI_LIN_M2,        /* the same for y_q */
    FI_LIN_S2,
    FI_LIN_U2,        /* report: sum exp(y_q - M2) (y_q - y_p) */
    FI_LIN_YT2,
    FI_LIN_ARG2,
    FI_LIN_UE,        /* report: entropy sum of p, sum exp(y_p - M) (y_p - M) */
    FI_LIN_BAD,       /* 1: a NaN or +inf logit was seen (the row's results are NaN) */
    FI_LIN_NF
};

/* What an item computes (YT, and YT2 for two models, are gathered whenever targets are given). */
enum {
    FI_LIN_CE = 1,         /* M, S (fi_sumexp) */
    FI_LIN_SMOOTH = 2,     /* WY too */
    FI_LIN_ENTROPY = 4,    /* M, S, U (fi_sumexp_ent) */
    FI_LIN_KL = 8,         /* M, S, U, M2, S2 (fi_sumexp_kl, two models) */
    FI_LIN_REPORT = 16     /* KL both ways, entropy of p and argmax of both models */
};

typedef struct {
    fi_lin_model model[2];
    int flags;
    Py_ssize_t n_vocab;
    double scale;                  /* s = 1 / temperature, folded into the products */
    const int64_t *rows;           /* row of hidden of each processed row, or NULL (0, 1, ...) */
    Py_ssize_t n_rows;             /* processed rows */
    const int64_t *target;         /* class of each processed row, or NULL */
    const double *weight;          /* (V,) class weights, or NULL */
    Py_ssize_t block_rows, block_vocab, n_groups, blocks_per_group, n_row_blocks;
    double *states;                /* (n_groups, n_rows, FI_LIN_NF) */
    /* gradient pass (one model) */
    const double *row_m;           /* final max of each processed row */
    const double *row_alpha;       /* alpha of softmax_cross_entropy_with_grad; NaN: a NaN row */
    const double *row_ct;          /* what the target entry loses: gscale * s * (1 - eps) * w_t */
    double beta;                   /* gscale * s * eps / V (the smoothing part, times w_c) */
    char *grad_hidden;             /* (n_hidden_rows, d), row stride grad_hidden_ld elements */
    Py_ssize_t grad_hidden_ld;
    int grad_hidden_kind;          /* its element type (the compute type, or float32 from double) */
    int grad_hidden_partial;       /* 1: write item (a, g) to the compute-type partial (n_groups, n_rows, d) */
    void *grad_head;               /* (V, d) compute type, C-contiguous: the head gradient accumulator */
    double *grad_bias;             /* (V,) accumulator, or NULL */
    int64_t *progress;             /* per item: vocabulary blocks whose head gradient it has added */
} fi_lin_task;

/* ---------------- element conversion ---------------- */

/* IEEE binary16 -> float, exactly (normal, subnormal, inf, NaN payload), branch-free so that
   loops over it vectorise. Subnormals: m 2^-24 with m < 1024 is exact in float. */
static inline __attribute__((always_inline)) float fi_lin_f16(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7fffu, bits, sub_bits;
    float sub = (float)em * 0x1p-24f;
    memcpy(&sub_bits, &sub, sizeof sub_bits);
    bits = em >= 0x7c00u ? ((em << 13) | 0x7f800000u) : (em << 13) + ((uint32_t)(127 - 15) << 23);
    bits = em < 0x0400u ? sub_bits : bits;
    bits |= sign;
    memcpy(&sub, &bits, sizeof sub);
    return sub;
}

/* bfloat16 -> float: the upper half of a float. */
static inline __attribute__((always_inline)) float fi_lin_bf16(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Wait until *counter >= value (another thread's release store). Spins briefly, then yields the
   core (threads may outnumber the cores). */
static void fi_lin_wait(const int64_t *counter, int64_t value) {
    int spins = 0;
    while (__atomic_load_n(counter, __ATOMIC_ACQUIRE) < value) {
        if (++spins < 2000) FI_LIN_PAUSE();
        else FI_LIN_YIELD();
    }
}

static inline Py_ssize_t fi_lin_min(Py_ssize_t a, Py_ssize_t b) { return a < b ? a : b; }

/* First index of value in x[0:n] (value is the max of the block, so it is there). */
#define FI_LIN_FIND_FIRST(x, n, value, out) do {                       \
        Py_ssize_t fi_j_;                                               \
        (out) = 0;                                                      \
        for (fi_j_ = 0; fi_j_ < (n); fi_j_++)                           \
            if ((double)(x)[fi_j_] == (value)) { (out) = fi_j_; break; } \
    } while (0)

/* ---------------- merging the statistics of two vocabulary groups (in group order) ---------------- */

/* exp(m_part - m) for a partial sum taken against m_part, m = the merged max (s > 0 implies finite). */
static inline double fi_lin_rescale(double m_part, double m) { return m_part == m ? 1.0 : exp(m_part - m); }

static void fi_lin_merge(double *into, const double *part, int flags) {
    double m, r1, r2;
    if (part[FI_LIN_BAD] != 0.0) into[FI_LIN_BAD] = 1.0;
    if (into[FI_LIN_YT] != into[FI_LIN_YT]) into[FI_LIN_YT] = part[FI_LIN_YT];
    if (into[FI_LIN_YT2] != into[FI_LIN_YT2]) into[FI_LIN_YT2] = part[FI_LIN_YT2];
    into[FI_LIN_WY] += part[FI_LIN_WY];
    /* model p */
    m = part[FI_LIN_M] > into[FI_LIN_M] ? part[FI_LIN_M] : into[FI_LIN_M];
    if (part[FI_LIN_M] > into[FI_LIN_M]) into[FI_LIN_ARG] = part[FI_LIN_ARG];
    r1 = into[FI_LIN_S] > 0.0 ? fi_lin_rescale(into[FI_LIN_M], m) : 0.0;
    r2 = part[FI_LIN_S] > 0.0 ? fi_lin_rescale(part[FI_LIN_M], m) : 0.0;
    if (flags & FI_LIN_ENTROPY) {
        /* U = sum e^t t with t = y - M: moving M to m adds d S (d = M - m) before rescaling */
        double u1 = r1 > 0.0 ? r1 * (into[FI_LIN_U] + (into[FI_LIN_M] - m) * into[FI_LIN_S]) : 0.0;
        double u2 = r2 > 0.0 ? r2 * (part[FI_LIN_U] + (part[FI_LIN_M] - m) * part[FI_LIN_S]) : 0.0;
        into[FI_LIN_U] = u1 + u2;
    } else {
        into[FI_LIN_U] = (r1 > 0.0 ? r1 * into[FI_LIN_U] : 0.0) + (r2 > 0.0 ? r2 * part[FI_LIN_U] : 0.0);
    }
    if (flags & FI_LIN_REPORT) {
        double u1 = r1 > 0.0 ? r1 * (into[FI_LIN_UE] + (into[FI_LIN_M] - m) * into[FI_LIN_S]) : 0.0;
        double u2 = r2 > 0.0 ? r2 * (part[FI_LIN_UE] + (part[FI_LIN_M] - m) * part[FI_LIN_S]) : 0.0;
        into[FI_LIN_UE] = u1 + u2;
    }
    into[FI_LIN_S] = (r1 > 0.0 ? r1 * into[FI_LIN_S] : 0.0) + (r2 > 0.0 ? r2 * part[FI_LIN_S] : 0.0);
    into[FI_LIN_M] = m;
    /* model q */
    m = part[FI_LIN_M2] > into[FI_LIN_M2] ? part[FI_LIN_M2] : into[FI_LIN_M2];
    if (part[FI_LIN_M2] > into[FI_LIN_M2]) into[FI_LIN_ARG2] = part[FI_LIN_ARG2];
    r1 = into[FI_LIN_S2] > 0.0 ? fi_lin_rescale(into[FI_LIN_M2], m) : 0.0;
    r2 = part[FI_LIN_S2] > 0.0 ? fi_lin_rescale(part[FI_LIN_M2], m) : 0.0;
    into[FI_LIN_U2] = (r1 > 0.0 ? r1 * into[FI_LIN_U2] : 0.0) + (r2 > 0.0 ? r2 * part[FI_LIN_U2] : 0.0);
    into[FI_LIN_S2] = (r1 > 0.0 ? r1 * into[FI_LIN_S2] : 0.0) + (r2 > 0.0 ? r2 * part[FI_LIN_S2] : 0.0);
    into[FI_LIN_M2] = m;
}

static void fi_lin_init_states(double *st, Py_ssize_t n) {
    Py_ssize_t i;
    for (i = 0; i < n; i++, st += FI_LIN_NF) {
        memset(st, 0, FI_LIN_NF * sizeof(double));
        st[FI_LIN_M] = -INFINITY;
        st[FI_LIN_M2] = -INFINITY;
        st[FI_LIN_YT] = NAN;
        st[FI_LIN_YT2] = NAN;
    }
}

/* ---------------- the type-generic block functions ---------------- */
#define FT float
#define SFX f
#define FI_LIN_GEMM fi_lin_sgemm_ptr
#define FI_LIN_OWN FI_LIN_F32
#include "linear_rows.h"

#define FT double
#define SFX d
#define FI_LIN_GEMM fi_lin_dgemm_ptr
#define FI_LIN_OWN FI_LIN_F64
#include "linear_rows.h"

#endif /* FASTINFO_LINEAR_H */

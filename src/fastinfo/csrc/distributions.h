/* fastinfo: distribution-family row kernels (probabilities), included by
   _kernels_distributions.pxi. The two passes are written once in distributions_rows.h and compiled
   here for each clone of the vector layer (vec.h) and each element type (float _f, double _d,
   float16 _h and bfloat16 _b bits);
   the functions with the plain names (fi_entropy_row_f, ...) call the clone in use. */
#ifndef FASTINFO_DISTRIBUTIONS_H
#define FASTINFO_DISTRIBUTIONS_H

#include "vec.h"

#define FI_LANES 8
/* Lanes are flushed into an outer accumulator every FI_BLOCK elements: the rounding error of
   the sums then grows like (FI_BLOCK/FI_LANES + n/FI_BLOCK) ulp, not n/FI_LANES. */
#define FI_BLOCK 1024

FI_INLINE double fi_lanes_total(const double *lane)
{
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

enum { FI_CROSS = 0, FI_KL = 1, FI_JS = 2, FI_ENTROPY = 3 };

/* p log p of every float16 ([0]) and bfloat16 ([1]) value, indexed by its bits, in double: 0 for
   p = 0 (either sign), NaN for negative, infinite and NaN p (a row holding one then takes the two
   passes, which report it). For the one-pass entropy of half-precision rows (distributions_rows.h,
   fi_entropy_table). Built once by fi_entr_tables_init, which the module calls at import (with the
   GIL held); 1 MiB. fi_entr_use_table 0 turns the one-pass entropy off (tests, measurements). */
static double *fi_entr_table[2] = {NULL, NULL};
static int fi_entr_use_table = 1;
static int fi_entr_tables_init(void) {
    double *t;
    uint32_t b;
    int h;
    if (fi_entr_table[0] != NULL) return 0;
    t = (double *)malloc(2 * 65536 * sizeof(double));
    if (t == NULL) return -1;
    for (h = 0; h < 2; h++)
        for (b = 0; b < 65536; b++) {
            double p = h == 0 ? (double)fi_f16_to_f32((uint16_t)b) : (double)fi_bf16_to_f32((uint16_t)b);
            t[h * 65536 + b] = p == 0.0 ? 0.0 : (p > 0.0 && p <= DBL_MAX ? p * log(p) : NAN);
        }
    fi_entr_table[1] = t + 65536;
    fi_entr_table[0] = t;
    return 0;
}

/* One entry's term of the sum in the careful pass: SciPy's entr / rel_entr on the normalised
   entries a = u/S, b = (v+eps)/T (u from p, v from q), with true division (as SciPy) and libc log,
   which also takes subnormals. Masked lanes take log(1) = 0. *inf counts the terms that are +inf
   (a > 0 = b, or a/b overflowing), which make the row +inf. (The fast pass, distributions_rows.h,
   computes the same terms with 1/S, 1/T and the clone's vector log.) */
FI_INLINE double fi_term_careful(const int kind, double u, double v, double S, double Tq, double eps, double *inf)
{
    double a = u / S;
    if (kind == FI_ENTROPY) {
        double y = a > 0.0 ? (a < 1.0 ? a : 1.0) : 1.0;
        return -(a * log(y));
    } else if (kind == FI_CROSS) {
        double b = (v + eps) / Tq;
        double y = a > 0.0 && b > 0.0 ? (b < 1.0 ? b : 1.0) : 1.0;
        *inf += a > 0.0 && b == 0.0 ? 1.0 : 0.0;
        return -(a * log(y));
    } else if (kind == FI_KL) {
        double b = (v + eps) / Tq;
        double r = a / b;
        int ok = a > 0.0 && r <= DBL_MAX;
        double y = ok ? r : 1.0;
        *inf += a > 0.0 && !ok ? 1.0 : 0.0;
        return a * log(y);
    } else {
        double b = v / Tq;
        double m = 0.5 * (a + b);
        double ya = a > 0.0 ? a / m : 1.0;
        double yb = b > 0.0 ? b / m : 1.0;
        return 0.5 * (a * log(ya) + b * log(yb));
    }
}

/* ---------------- one instantiation per clone (distributions_clone.h: float and double) ------- */
#define FI_ISA base
#define FI_KFN static
#define FI_KIN FI_INLINE
#include "distributions_clone.h"
#undef FI_ISA
#undef FI_KFN
#undef FI_KIN

#if FI_X86_CLONES
#define FI_ISA v3
#define FI_KFN static FI_TARGET_V3
#define FI_KIN FI_INLINE FI_TARGET_V3
#include "distributions_clone.h"
#undef FI_ISA
#undef FI_KFN
#undef FI_KIN

#define FI_ISA v4
#define FI_KFN static FI_TARGET_V4
#define FI_KIN FI_INLINE FI_TARGET_V4
#include "distributions_clone.h"
#undef FI_ISA
#undef FI_KFN
#undef FI_KIN
#endif

/* ---------------- the kernels Cython calls: the clone in use ---------------- */
#define ST float
#define SFX f
#include "distributions_api.h"
#define ST double
#define SFX d
#include "distributions_api.h"
#define ST uint16_t
#define SFX h
#include "distributions_api.h"
#define ST uint16_t
#define SFX b
#include "distributions_api.h"

/* The vector log of the clone in use, elementwise (test hook). */
static void fi_dist_log(const double *x, double *out, Py_ssize_t n) {
#if FI_X86_CLONES
    if (fi_dense_isa == FI_ISA_AVX512) { fi_dist_log_v4(x, out, n); return; }
    if (fi_dense_isa == FI_ISA_AVX2) { fi_dist_log_v3(x, out, n); return; }
#endif
    fi_dist_log_base(x, out, n);
}

#endif /* FASTINFO_DISTRIBUTIONS_H */

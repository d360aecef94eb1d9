/* fastinfo: distribution-family row kernels (probabilities), included by
   _kernels_distributions.pxi. The two passes are in distributions_rows.h, instantiated here for
   float (suffix _f) and double (_d); the vector log is fi_log_normal in vec.h. */
#ifndef FASTINFO_DISTRIBUTIONS_H
#define FASTINFO_DISTRIBUTIONS_H

#include "vec.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && (__GNUC__ >= 11)
#  define FI_DIST_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#  define FI_DIST_CLONES
#endif

#define FI_LANES 8
/* Lanes are flushed into an outer accumulator every FI_BLOCK elements: the rounding error of
   the sums then grows like (FI_BLOCK/FI_LANES + n/FI_BLOCK) ulp, not n/FI_LANES. */
#define FI_BLOCK 1024

FI_INLINE double fi_lanes_total(const double *lane)
{
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

enum { FI_CROSS = 0, FI_KL = 1, FI_JS = 2, FI_ENTROPY = 3 };

/* One entry's term of the sum, SciPy's entr / rel_entr on the normalised entries
   a = u/S, b = (v+eps)/T (u from p, v from q). Masked lanes take log(1) = 0. `careful` (a
   compile-time constant after inlining) selects true division by S and T (as SciPy) and libc
   log, which also takes subnormals; the fast variant multiplies by 1/S and 1/T and counts in *tiny the log arguments below DBL_MIN that it cannot take, and the
   row is then recomputed carefully. *inf counts the terms that are +inf (a > 0 = b, or a/b
   overflowing), which make the row +inf. */
FI_INLINE double fi_term(const int kind, const int careful, double u, double v, double S,
                         double invS, double Tq, double invT, double eps, double *inf, double *tiny)
{
    double a = careful ? u / S : u * invS;
    if (kind == FI_ENTROPY) {
        /* a <= 1 up to the rounding of u * (1/S): the clamp keeps every term >= 0 */
        double y = a > 0.0 ? (a < 1.0 ? a : 1.0) : 1.0;
        if (!careful) *tiny += y < DBL_MIN ? 1.0 : 0.0;
        return -(a * (careful ? log(y) : fi_log_normal(y)));
    } else if (kind == FI_CROSS) {
        double b = careful ? (v + eps) / Tq : (v + eps) * invT;
        double y = a > 0.0 && b > 0.0 ? (b < 1.0 ? b : 1.0) : 1.0;
        *inf += a > 0.0 && b == 0.0 ? 1.0 : 0.0;
        if (!careful) *tiny += y < DBL_MIN ? 1.0 : 0.0;
        return -(a * (careful ? log(y) : fi_log_normal(y)));
    } else if (kind == FI_KL) {
        double b = careful ? (v + eps) / Tq : (v + eps) * invT;
        double r = a / b;
        int ok = a > 0.0 && r <= DBL_MAX;
        double y = ok ? r : 1.0;
        *inf += a > 0.0 && !ok ? 1.0 : 0.0;
        if (!careful) *tiny += y < DBL_MIN ? 1.0 : 0.0;
        return a * (careful ? log(y) : fi_log_normal(y));
    } else {
        double b = careful ? v / Tq : v * invT;
        double m = 0.5 * (a + b);
        double ya = a > 0.0 ? a / m : 1.0;
        double yb = b > 0.0 ? b / m : 1.0;
        if (!careful) *tiny += (ya < DBL_MIN ? 1.0 : 0.0) + (yb < DBL_MIN ? 1.0 : 0.0);
        return 0.5 * (a * (careful ? log(ya) : fi_log_normal(ya))
                      + b * (careful ? log(yb) : fi_log_normal(yb)));
    }
}

#define FT float
#define SFX f
#include "distributions_rows.h"

#define FT double
#define SFX d
#include "distributions_rows.h"

/* Test hook: fi_log_normal for x >= DBL_MIN, libc log below (what the kernels do). */
static double fi_log_pos(double x) { return x >= DBL_MIN ? fi_log_normal(x) : log(x); }

static const char *fi_dist_simd(void)
{
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && (__GNUC__ >= 11)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "x86-64-v4 (runtime dispatch)";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
        return "x86-64-v3 (runtime dispatch)";
    return "baseline (runtime dispatch)";
#else
    return "baseline (no runtime dispatch)";
#endif
}

#endif /* FASTINFO_DISTRIBUTIONS_H */

# Section of _kernels.pyx: distribution family kernels (probabilities, normalised along a row).
#
# Shapes: rows are C-contiguous (n_rows, C) arrays with the reduced axis last; the front-end
# (_distributions.py) allocates ``out`` (n_rows,) of the input dtype and ``status`` (n_rows,) uint8.
# Two-argument kernels read row ``p_index[i]`` of ``p`` and ``q_index[i]`` of ``q`` for output row
# ``i`` (an empty index means the identity), so a broadcast operand is read through its own compact
# rows and never materialised.
#
# Method, per row (one OpenMP work item; the result never depends on the thread count):
#   pass 1 reads the row once: S = sum p (and T = sum (q + eps)) and the count of negative entries
#          of each operand (reported to the front-end: no separate Python pass), in 8 lanes;
#   pass 2 re-reads the row from L1/L2 (32000 doubles = 256 KiB < 1 MiB L2) and sums the terms of
#          the normalised distributions a = p/S, b = (q+eps)/T exactly as scipy.special.entr and
#          rel_entr define them, with a vectorisable log (fi_log_normal below, < 1 ulp measured,
#          polynomial error bound 0.04 ulp).
#   Normalising each entry before the log (rather than the one-pass identity
#   H = log S - sum(p log p)/S) agrees with SciPy's normalise-then-sum to a few ulp even when S is
#   far from 1 (counts), where the identity cancels log S against sum(p log p)/S; clamping a at 1
#   keeps every entropy term >= 0. The normalisation multiplies by 1/S; sums outside
#   [2^-1000, 2^1000] (where 1/S would lose bits) and rows where a log argument is subnormal are
#   redone by a careful variant of the same loop (true division, libc log).
# Rows with a negative entry get status 1 (p) or 2 (q); rows whose sum is 0, NaN or inf give NaN;
# a = 0 contributes 0 (0 log 0 = 0); a > 0 = b gives +inf.
# The row functions are C (below) so that GCC vectorises them: 8 explicit accumulator lanes (flushed
# every 1024 entries) make the summation order part of the source (bitwise reproducible for any
# thread count, no -ffast-math), and on x86-64/glibc/GCC they are compiled for x86-64-v4, v3 and
# baseline with runtime dispatch (target_clones); FMA contraction may differ between those levels,
# so bits can differ between machines, never between thread counts on one machine.

cdef extern from *:
    """
    #include <float.h>
    #include <stdint.h>
    #include <string.h>

    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && (__GNUC__ >= 11)
    #  define FI_DIST_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
    #else
    #  define FI_DIST_CLONES
    #endif

    /* Everything a row function calls is force-inlined: a call out of a target_clones function
       would run baseline (SSE2) code. */
    #if defined(__GNUC__)
    #  define FI_INLINE static inline __attribute__((always_inline))
    #else
    #  define FI_INLINE static inline
    #endif

    #define FI_LANES 8
    /* Lanes are flushed into an outer accumulator every FI_BLOCK elements: the rounding error of
       the sums then grows like (FI_BLOCK/FI_LANES + n/FI_BLOCK) ulp, not n/FI_LANES. */
    #define FI_BLOCK 1024

    FI_INLINE double fi_from_bits(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }
    FI_INLINE uint64_t fi_to_bits(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }

    /* Natural log of a finite normal x >= DBL_MIN; other inputs give garbage (callers mask them,
       and count subnormal arguments so that such rare rows are redone with libc log).
       Branch-free so that loops calling it vectorise.
       x = 2^k m with m in [sqrt(2)/2, sqrt(2)) (integer arithmetic on the bits, no int<->float
       conversion instructions needed); f = m - 1 is exact (Sterbenz); with s = f/(2+f),
       log(m) = 2 atanh(s) = 2s + s R(z), z = s^2, R(z) = z P(z), P(z) = sum_{j>=1} 2 z^(j-1)/(2j+1),
       z <= zmax = (3 - 2 sqrt(2))^2 = 0.02944. P is replaced by its degree-6 Chebyshev
       economisation on [0, zmax] (coefficients computed in mpmath from 40 exact Taylor terms,
       fastinfo's own fit): |error| <= dropped Chebyshev coefficients + Taylor tail + coefficient
       rounding <= 3.2e-16, which moves log(m) by at most z |err| / 2 <= 4.7e-18 relative (0.04 ulp).
       Since 2s = f - s f, log(m) = f - (f^2/2 - s (f^2/2 + R)): the big term f is exact and the
       correction is < |f|/5, so its rounding costs well under an ulp; k log 2 is added as
       k*LN2_HI (exact: LN2_HI has 32 significant bits, |k| < 1200) plus k*LN2_LO.
       Measured against mpmath (tests/test_distributions.py): max error < 1 ulp. */
    FI_INLINE double fi_log_normal(double x)
    {
        const double LN2_HI = 0x1.62e42fee00000p-1;
        const double LN2_LO = 0x1.a39ef35793c76p-33;
        uint64_t ux = fi_to_bits(x);
        /* kk = k + 1024 >= 1 for every positive normal x, so the shift is logical */
        uint64_t kk = (ux - UINT64_C(0x3fe6a09e667f3bcd) + UINT64_C(0x4000000000000000)) >> 52;
        double m = fi_from_bits(ux - (kk << 52) + UINT64_C(0x4000000000000000));
        double k = (fi_from_bits(kk | UINT64_C(0x4330000000000000)) - 0x1p52) - 1024.0;
        double f = m - 1.0;
        double s = f / (2.0 + f);
        double z = s * s;
        double R = z * (0x1.5555555555558p-1 + z * (0x1.9999999995288p-2 + z * (0x1.2492492df9f94p-2
                 + z * (0x1.c71c62dba6605p-3 + z * (0x1.7462b73112de7p-3 + z * (0x1.39fe142880193p-3
                 + z * 0x1.2b5baa716e7eap-3))))));
        double hfsq = 0.5 * f * f;
        return k * LN2_HI - ((hfsq - (s * (hfsq + R) + k * LN2_LO)) - f);
    }

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

    /* Pass 1 and pass 2 are written once as macros and instantiated for float and double input. */
    #define FI_DEFINE_DIST_ROWS(T, SUFFIX)                                                         \\
    /* Pass 1: sums (q shifted by eps) and negative counts, in lanes; q may be NULL. */            \\
    FI_INLINE void fi_pass1_##SUFFIX(const T *p, const T *q, Py_ssize_t n, double eps,             \\
                                         double *S, double *Tq, double *negp, double *negq)        \\
    {                                                                                              \\
        double sp[FI_LANES], sq[FI_LANES], np_[FI_LANES], nq[FI_LANES];                            \\
        double op[FI_LANES], oq[FI_LANES];                                                         \\
        Py_ssize_t i = 0, start, stop;                                                             \\
        int j;                                                                                     \\
        for (j = 0; j < FI_LANES; j++) {                                                           \\
            sp[j] = 0.0; sq[j] = 0.0; np_[j] = 0.0; nq[j] = 0.0; op[j] = 0.0; oq[j] = 0.0;         \\
        }                                                                                          \\
        for (start = 0; start < n; start = stop) {                                                 \\
            stop = n - start > FI_BLOCK ? start + FI_BLOCK : n;                                    \\
            if (q == NULL) {                                                                       \\
                for (i = start; i + FI_LANES <= stop; i += FI_LANES)                               \\
                    for (j = 0; j < FI_LANES; j++) {                                               \\
                        double u = (double)p[i + j];                                               \\
                        sp[j] += u;                                                                \\
                        np_[j] += u < 0.0 ? 1.0 : 0.0;                                             \\
                    }                                                                              \\
                for (j = 0; i < stop; i++, j++) {                                                  \\
                    double u = (double)p[i];                                                       \\
                    sp[j] += u;                                                                    \\
                    np_[j] += u < 0.0 ? 1.0 : 0.0;                                                 \\
                }                                                                                  \\
            } else {                                                                               \\
                for (i = start; i + FI_LANES <= stop; i += FI_LANES)                               \\
                    for (j = 0; j < FI_LANES; j++) {                                               \\
                        double u = (double)p[i + j], v = (double)q[i + j];                         \\
                        sp[j] += u;                                                                \\
                        sq[j] += v + eps;                                                          \\
                        np_[j] += u < 0.0 ? 1.0 : 0.0;                                             \\
                        nq[j] += v < 0.0 ? 1.0 : 0.0;                                              \\
                    }                                                                              \\
                for (j = 0; i < stop; i++, j++) {                                                  \\
                    double u = (double)p[i], v = (double)q[i];                                     \\
                    sp[j] += u;                                                                    \\
                    sq[j] += v + eps;                                                              \\
                    np_[j] += u < 0.0 ? 1.0 : 0.0;                                                 \\
                    nq[j] += v < 0.0 ? 1.0 : 0.0;                                                  \\
                }                                                                                  \\
            }                                                                                      \\
            for (j = 0; j < FI_LANES; j++) {                                                       \\
                op[j] += sp[j]; sp[j] = 0.0; oq[j] += sq[j]; sq[j] = 0.0;                          \\
            }                                                                                      \\
        }                                                                                          \\
        *S = fi_lanes_total(op);                                                                   \\
        *Tq = fi_lanes_total(oq);                                                                  \\
        *negp = fi_lanes_total(np_);                                                               \\
        *negq = fi_lanes_total(nq);                                                                \\
    }                                                                                              \\
                                                                                                   \\
    /* Pass 2: the sum of fi_term over the row (q unused for the entropy). float input is          \\
       widened block by block into an L1-resident double buffer first, so that the float and       \\
       double instantiations run the same full-width double loop. */                               \\
    FI_INLINE double fi_pass2_##SUFFIX(const int kind, const int careful, const T *p,              \\
                                       const T *q, Py_ssize_t n, double S, double Tq,              \\
                                       double eps, double *inf, double *tiny)                      \\
    {                                                                                              \\
        double acc[FI_LANES], outer[FI_LANES], finf[FI_LANES], ftiny[FI_LANES];                    \\
        double pbuf[sizeof(T) == sizeof(double) ? 1 : FI_BLOCK];                                   \\
        double qbuf[sizeof(T) == sizeof(double) ? 1 : FI_BLOCK];  /* no VLA (MSVC) */  \\
        const double invS = 1.0 / S, invT = 1.0 / Tq;                                              \\
        Py_ssize_t i, start, len;                                                                  \\
        int j;                                                                                     \\
        for (j = 0; j < FI_LANES; j++) { acc[j] = 0.0; outer[j] = 0.0; finf[j] = 0.0; ftiny[j] = 0.0; } \\
        for (start = 0; start < n; start += len) {                                                 \\
            const double *pb, *qb;                                                                 \\
            len = n - start > FI_BLOCK ? FI_BLOCK : n - start;                                     \\
            if (sizeof(T) == sizeof(double)) {                                                     \\
                pb = (const double *)(const void *)(p + start);                                    \\
                qb = (const double *)(const void *)(q + start);                                    \\
            } else {                                                                               \\
                for (i = 0; i < len; i++) pbuf[i] = (double)p[start + i];                          \\
                if (kind != FI_ENTROPY)                                                            \\
                    for (i = 0; i < len; i++) qbuf[i] = (double)q[start + i];                      \\
                pb = pbuf;                                                                         \\
                qb = kind == FI_ENTROPY ? pbuf : qbuf;                                             \\
            }                                                                                      \\
            for (i = 0; i + FI_LANES <= len; i += FI_LANES)                                        \\
                for (j = 0; j < FI_LANES; j++)                                                     \\
                    acc[j] += fi_term(kind, careful, pb[i + j], kind == FI_ENTROPY ? 0.0 : qb[i + j], \\
                                      S, invS, Tq, invT, eps, &finf[j], &ftiny[j]);                \\
            for (j = 0; i < len; i++, j++)                                                         \\
                acc[j] += fi_term(kind, careful, pb[i], kind == FI_ENTROPY ? 0.0 : qb[i],          \\
                                  S, invS, Tq, invT, eps, &finf[j], &ftiny[j]);                    \\
            for (j = 0; j < FI_LANES; j++) { outer[j] += acc[j]; acc[j] = 0.0; }                   \\
        }                                                                                          \\
        *inf = fi_lanes_total(finf);                                                               \\
        *tiny = fi_lanes_total(ftiny);                                                             \\
        return fi_lanes_total(outer);                                                              \\
    }                                                                                              \\
                                                                                                   \\
    FI_INLINE double fi_pass2_dispatch_##SUFFIX(const int kind, const T *p, const T *q,            \\
                                                    Py_ssize_t n, double S, double Tq,             \\
                                                    double eps)                                    \\
    {                                                                                              \\
        double inf, tiny, total;                                                                   \\
        /* Sums outside [2^-1000, 2^1000] would make 1/S or 1/T lose precision or overflow. */     \\
        int careful = !(S >= 0x1p-1000 && S <= 0x1p1000 && Tq >= 0x1p-1000 && Tq <= 0x1p1000);     \\
        if (!careful) {                                                                            \\
            total = fi_pass2_##SUFFIX(kind, 0, p, q, n, S, Tq, eps, &inf, &tiny);                  \\
            /* rare: a log argument below DBL_MIN; redo the row with libc log */                   \\
            careful = inf == 0.0 && tiny > 0.0;                                                    \\
        }                                                                                          \\
        if (careful)                                                                               \\
            total = fi_pass2_##SUFFIX(kind, 1, p, q, n, S, Tq, eps, &inf, &tiny);                  \\
        if (inf > 0.0) return INFINITY;                                                            \\
        return total + 0.0;  /* + 0.0 turns a -0.0 total into 0.0 */                               \\
    }                                                                                              \\
                                                                                                   \\
    /* Entropy of one row; status 1 if a negative entry. */                                        \\
    static FI_DIST_CLONES double fi_entropy_row_##SUFFIX(const T *p, Py_ssize_t n, int *status)    \\
    {                                                                                              \\
        double S, Tq, negp, negq;                                                                  \\
        fi_pass1_##SUFFIX(p, NULL, n, 0.0, &S, &Tq, &negp, &negq);                                 \\
        *status = 0;                                                                               \\
        if (negp > 0.0) { *status = 1; return NAN; }                                               \\
        if (!(S > 0.0 && S <= DBL_MAX)) return NAN;  /* zero, NaN or inf sum */                    \\
        return fi_pass2_dispatch_##SUFFIX(FI_ENTROPY, p, p, n, S, 1.0, 0.0);                       \\
    }                                                                                              \\
                                                                                                   \\
    /* kind FI_CROSS, FI_KL or FI_JS of one row; status 1 if p has a negative entry, 2 if q. */    \\
    static FI_DIST_CLONES double fi_pq_row_##SUFFIX(int kind, const T *p, const T *q,              \\
                                                    Py_ssize_t n, double eps, int *status)         \\
    {                                                                                              \\
        double S, Tq, negp, negq;                                                                  \\
        if (kind == FI_JS) eps = 0.0;                                                              \\
        fi_pass1_##SUFFIX(p, q, n, eps, &S, &Tq, &negp, &negq);                                    \\
        *status = 0;                                                                               \\
        if (negp > 0.0) { *status = 1; return NAN; }                                               \\
        if (negq > 0.0) { *status = 2; return NAN; }                                               \\
        if (!(S > 0.0 && S <= DBL_MAX && Tq > 0.0 && Tq <= DBL_MAX)) return NAN;                   \\
        if (kind == FI_CROSS)                                                                      \\
            return fi_pass2_dispatch_##SUFFIX(FI_CROSS, p, q, n, S, Tq, eps);                      \\
        if (kind == FI_KL)                                                                         \\
            return fi_pass2_dispatch_##SUFFIX(FI_KL, p, q, n, S, Tq, eps);                         \\
        return fi_pass2_dispatch_##SUFFIX(FI_JS, p, q, n, S, Tq, 0.0);                             \\
    }                                                                                              \\
                                                                                                   \\
    /* Chunks of long rows (split into fixed-size chunks, independent of the thread count):        \\
       pass 1 of a chunk into out4 = (S, T, negatives of p, negatives of q); q NULL for entropy. */ \\
    static FI_DIST_CLONES void fi_chunk_pass1_##SUFFIX(const T *p, const T *q, Py_ssize_t n,       \\
                                                       double eps, double *out4)                   \\
    {                                                                                              \\
        fi_pass1_##SUFFIX(p, q, n, eps, &out4[0], &out4[1], &out4[2], &out4[3]);                   \\
    }                                                                                              \\
                                                                                                   \\
    /* pass 2 of a chunk, given the row's sums, into out3 = (sum of terms, inf count, tiny count) */ \\
    static FI_DIST_CLONES void fi_chunk_pass2_##SUFFIX(int kind, int careful, const T *p,          \\
                                                       const T *q, Py_ssize_t n, double S,         \\
                                                       double Tq, double eps, double *out3)        \\
    {                                                                                              \\
        double *o = out3;                                                                          \\
        if (careful) {                                                                             \\
            if (kind == FI_ENTROPY) o[0] = fi_pass2_##SUFFIX(FI_ENTROPY, 1, p, p, n, S, 1.0, 0.0, &o[1], &o[2]); \\
            else if (kind == FI_CROSS) o[0] = fi_pass2_##SUFFIX(FI_CROSS, 1, p, q, n, S, Tq, eps, &o[1], &o[2]); \\
            else if (kind == FI_KL) o[0] = fi_pass2_##SUFFIX(FI_KL, 1, p, q, n, S, Tq, eps, &o[1], &o[2]); \\
            else o[0] = fi_pass2_##SUFFIX(FI_JS, 1, p, q, n, S, Tq, 0.0, &o[1], &o[2]);            \\
            o[2] = 0.0;                                                                            \\
        } else {                                                                                   \\
            if (kind == FI_ENTROPY) o[0] = fi_pass2_##SUFFIX(FI_ENTROPY, 0, p, p, n, S, 1.0, 0.0, &o[1], &o[2]); \\
            else if (kind == FI_CROSS) o[0] = fi_pass2_##SUFFIX(FI_CROSS, 0, p, q, n, S, Tq, eps, &o[1], &o[2]); \\
            else if (kind == FI_KL) o[0] = fi_pass2_##SUFFIX(FI_KL, 0, p, q, n, S, Tq, eps, &o[1], &o[2]); \\
            else o[0] = fi_pass2_##SUFFIX(FI_JS, 0, p, q, n, S, Tq, 0.0, &o[1], &o[2]);            \\
        }                                                                                          \\
    }

    FI_DEFINE_DIST_ROWS(float, f)
    FI_DEFINE_DIST_ROWS(double, d)

    /* Test hook: fi_log_normal for x >= DBL_MIN, libc log below (what the kernels do). */
    static double fi_log_pos(double x) { return x >= DBL_MIN ? fi_log_normal(x) : log(x); }
    """
    double fi_log_pos(double x) noexcept nogil
    double fi_entropy_row_f(const float *p, Py_ssize_t n, int *status) noexcept nogil
    double fi_entropy_row_d(const double *p, Py_ssize_t n, int *status) noexcept nogil
    double fi_pq_row_f(int kind, const float *p, const float *q, Py_ssize_t n, double eps,
                       int *status) noexcept nogil
    double fi_pq_row_d(int kind, const double *p, const double *q, Py_ssize_t n, double eps,
                       int *status) noexcept nogil
    void fi_chunk_pass1_f(const float *p, const float *q, Py_ssize_t n, double eps, double *out4) noexcept nogil
    void fi_chunk_pass1_d(const double *p, const double *q, Py_ssize_t n, double eps, double *out4) noexcept nogil
    void fi_chunk_pass2_f(int kind, int careful, const float *p, const float *q, Py_ssize_t n, double S,
                          double Tq, double eps, double *out3) noexcept nogil
    void fi_chunk_pass2_d(int kind, int careful, const double *p, const double *q, Py_ssize_t n, double S,
                          double Tq, double eps, double *out3) noexcept nogil


cdef Py_ssize_t _first_bad_row(const unsigned char[::1] status) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(status.shape[0]):
        if status[i]:
            return i
    return -1


# Rows longer than this are split into chunks of this many entries (a constant, so the split and
# hence every bit of the result are independent of the thread count): pass 1 and pass 2 run over
# (row, chunk) work items in parallel and the chunk partials are combined serially in chunk order.
# This keeps long 1-D inputs (one row) on all threads.
cdef Py_ssize_t DIST_CHUNK = 65536
_NO_INDEX = np.empty(0, dtype=np.int64)


cdef void _long_rows(int kind, const floating[:, ::1] p, const floating[:, ::1] q,
                     const int64_t[::1] p_index, const int64_t[::1] q_index,
                     floating[::1] out, unsigned char[::1] status, double eps, double log_base,
                     double[:, ::1] part1, double[:, ::1] part2, double[:, ::1] sums,
                     unsigned char[::1] mode) noexcept nogil:
    # kind 3 is the entropy (q unused). mode per row: 0 no pass 2 (negative entry or bad sum),
    # 1 fast, 2 careful, 3 fast then redone carefully (a subnormal log argument).
    cdef Py_ssize_t n_rows = out.shape[0], n = p.shape[1]
    cdef Py_ssize_t n_chunks = (n + DIST_CHUNK - 1) // DIST_CHUNK
    cdef Py_ssize_t n_items = n_rows * n_chunks
    cdef bint p_identity = p_index.shape[0] == 0, q_identity = q_index.shape[0] == 0
    cdef int nt = num_threads_for(n_items)
    cdef Py_ssize_t it, r, c, start, length, ip, iq
    cdef const floating *pp
    cdef const floating *qp
    cdef double S, T, negp, negq, inf, tiny, total
    cdef bint redo = False
    for it in prange(n_items, schedule='static', num_threads=nt):
        r = it // n_chunks
        c = it - r * n_chunks
        start = c * DIST_CHUNK
        length = n - start if n - start < DIST_CHUNK else DIST_CHUNK
        ip = r if p_identity else p_index[r]
        iq = r if q_identity else q_index[r]
        pp = &p[ip, start]
        qp = NULL
        if kind != 3:
            qp = &q[iq, start]
        if floating is float:
            fi_chunk_pass1_f(pp, qp, length, eps, &part1[it, 0])
        else:
            fi_chunk_pass1_d(pp, qp, length, eps, &part1[it, 0])
    for r in range(n_rows):
        S = 0.0
        T = 0.0
        negp = 0.0
        negq = 0.0
        for c in range(n_chunks):
            S = S + part1[r * n_chunks + c, 0]
            T = T + part1[r * n_chunks + c, 1]
            negp = negp + part1[r * n_chunks + c, 2]
            negq = negq + part1[r * n_chunks + c, 3]
        if kind == 3:
            T = 1.0
        status[r] = 1 if negp > 0.0 else (2 if negq > 0.0 else 0)
        sums[r, 0] = S
        sums[r, 1] = T
        if status[r] != 0 or not (S > 0.0 and S <= 1.7976931348623157e308 and T > 0.0 and T <= 1.7976931348623157e308):
            mode[r] = 0
        elif S >= 2.0 ** -1000 and S <= 2.0 ** 1000 and T >= 2.0 ** -1000 and T <= 2.0 ** 1000:
            mode[r] = 1
        else:
            mode[r] = 2
    for it in prange(n_items, schedule='static', num_threads=nt):
        r = it // n_chunks
        if mode[r] != 0:
            c = it - r * n_chunks
            start = c * DIST_CHUNK
            length = n - start if n - start < DIST_CHUNK else DIST_CHUNK
            ip = r if p_identity else p_index[r]
            iq = r if q_identity else q_index[r]
            pp = &p[ip, start]
            qp = pp if kind == 3 else &q[iq, start]
            if floating is float:
                fi_chunk_pass2_f(kind, mode[r] == 2, pp, qp, length, sums[r, 0], sums[r, 1], eps, &part2[it, 0])
            else:
                fi_chunk_pass2_d(kind, mode[r] == 2, pp, qp, length, sums[r, 0], sums[r, 1], eps, &part2[it, 0])
    for r in range(n_rows):
        if mode[r] == 1:
            inf = 0.0
            tiny = 0.0
            for c in range(n_chunks):
                inf = inf + part2[r * n_chunks + c, 1]
                tiny = tiny + part2[r * n_chunks + c, 2]
            if inf == 0.0 and tiny > 0.0:
                mode[r] = 3
                redo = True
    if redo:
        for it in prange(n_items, schedule='static', num_threads=nt):
            r = it // n_chunks
            if mode[r] == 3:
                c = it - r * n_chunks
                start = c * DIST_CHUNK
                length = n - start if n - start < DIST_CHUNK else DIST_CHUNK
                ip = r if p_identity else p_index[r]
                iq = r if q_identity else q_index[r]
                pp = &p[ip, start]
                qp = pp if kind == 3 else &q[iq, start]
                if floating is float:
                    fi_chunk_pass2_f(kind, 1, pp, qp, length, sums[r, 0], sums[r, 1], eps, &part2[it, 0])
                else:
                    fi_chunk_pass2_d(kind, 1, pp, qp, length, sums[r, 0], sums[r, 1], eps, &part2[it, 0])
    for r in range(n_rows):
        if mode[r] == 0:
            out[r] = <floating>NAN
            continue
        inf = 0.0
        total = 0.0
        for c in range(n_chunks):
            inf = inf + part2[r * n_chunks + c, 1]
            total = total + part2[r * n_chunks + c, 0]
        if inf > 0.0:
            total = INFINITY
        out[r] = <floating>((total + 0.0) / log_base)


def _long_rows_scratch(Py_ssize_t n_rows, Py_ssize_t n):
    n_items = n_rows * ((n + DIST_CHUNK - 1) // DIST_CHUNK)
    return (np.empty((n_items, 4)), np.zeros((n_items, 3)), np.empty((n_rows, 2)),
            np.empty(n_rows, dtype=np.uint8))


def distribution_entropy_rows(const floating[:, ::1] p, floating[::1] out,
                              unsigned char[::1] status, double log_base):
    """``out[i] = H(p[i] / sum(p[i])) / log_base``; returns ``(row, code)`` of the first row with a
    negative entry (code 1) or ``(-1, 0)``. Requires ``p.shape[1] > 0``."""
    cdef Py_ssize_t n_rows = p.shape[0], n = p.shape[1], i, bad
    cdef int nt = num_threads_for(n_rows)
    cdef int st
    cdef double r
    cdef double[:, ::1] part1, part2, sums
    cdef unsigned char[::1] mode
    cdef const int64_t[::1] no_index
    if n_rows == 0:
        return -1, 0
    if n > DIST_CHUNK:
        part1, part2, sums, mode = _long_rows_scratch(n_rows, n)
        no_index = _NO_INDEX
        with nogil:
            _long_rows(3, p, p, no_index, no_index, out, status, 0.0, log_base, part1, part2, sums, mode)
        bad = _first_bad_row(status)
        return (-1, 0) if bad < 0 else (bad, int(status[bad]))
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            st = 0  # assigned in the loop body, so Cython makes it thread-private (only &st is passed)
            if floating is float:
                r = fi_entropy_row_f(&p[i, 0], n, &st)
            else:
                r = fi_entropy_row_d(&p[i, 0], n, &st)
            status[i] = <unsigned char>st
            out[i] = <floating>(r / log_base)
        bad = _first_bad_row(status)
    if bad < 0:
        return -1, 0
    return bad, int(status[bad])


def distribution_pq_rows(int kind, const floating[:, ::1] p, const floating[:, ::1] q,
                         const int64_t[::1] p_index, const int64_t[::1] q_index,
                         floating[::1] out, unsigned char[::1] status, double eps, double log_base):
    """Per-row cross-entropy (kind 0), KL divergence (1) or JS divergence (2) of the normalised rows
    ``p[p_index[i]]`` and ``q[q_index[i]]`` (empty index: identity), divided by ``log_base``.
    Returns ``(row, code)`` of the first row with a negative entry (code 1: p, 2: q) or ``(-1, 0)``.
    Requires ``p.shape[1] == q.shape[1] > 0`` and valid indices."""
    cdef Py_ssize_t n_rows = out.shape[0], n = p.shape[1], i, ip, iq, bad
    cdef bint p_identity = p_index.shape[0] == 0, q_identity = q_index.shape[0] == 0
    cdef int nt = num_threads_for(n_rows)
    cdef int st
    cdef double r
    cdef double[:, ::1] part1, part2, sums
    cdef unsigned char[::1] mode
    if n_rows == 0:
        return -1, 0
    if n > DIST_CHUNK:
        part1, part2, sums, mode = _long_rows_scratch(n_rows, n)
        with nogil:
            _long_rows(kind, p, q, p_index, q_index, out, status, eps, log_base, part1, part2, sums, mode)
        bad = _first_bad_row(status)
        return (-1, 0) if bad < 0 else (bad, int(status[bad]))
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            ip = i if p_identity else p_index[i]
            iq = i if q_identity else q_index[i]
            st = 0  # thread-private, as above
            if floating is float:
                r = fi_pq_row_f(kind, &p[ip, 0], &q[iq, 0], n, eps, &st)
            else:
                r = fi_pq_row_d(kind, &p[ip, 0], &q[iq, 0], n, eps, &st)
            status[i] = <unsigned char>st
            out[i] = <floating>(r / log_base)
        bad = _first_bad_row(status)
    if bad < 0:
        return -1, 0
    return bad, int(status[bad])


def distribution_log(const double[::1] x, double[::1] out):
    """Test hook: the vectorisable ``log`` of the distribution kernels, elementwise (x finite > 0)."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            out[i] = fi_log_pos(x[i])


cdef extern from *:
    """
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
    """
    const char *fi_dist_simd() nogil


def distribution_simd():
    """The instruction set the distribution kernels run with on this CPU, e.g. ``'x86-64-v3 (runtime dispatch)'``."""
    return fi_dist_simd().decode("ascii")

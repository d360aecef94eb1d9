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
#          rel_entr define them, with a vectorisable log (fi_log_pos below, error < 1 ulp + 2^-60).
#   Dividing by S before the log (rather than the one-pass identity H = log S - sum(p log p)/S)
#   keeps each term -a log a >= 0 (a <= 1 exactly) and agrees with SciPy's two-pass
#   normalise-then-sum to a few ulp even when S is far from 1 (counts), where the identity
#   cancels log S against sum(p log p)/S.
# Rows with a negative entry get status 1 (p) or 2 (q); rows whose sum is 0, NaN or inf give NaN;
# a = 0 contributes 0 (0 log 0 = 0); a > 0 = b gives +inf.
# The row functions are C (below) so that GCC vectorises them: 8 explicit accumulator lanes make the
# summation order part of the source (bitwise reproducible, no -ffast-math needed), and on
# x86-64/glibc they are compiled for x86-64-v4, v3 and baseline with runtime dispatch (target_clones).

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

    #define FI_LANES 8
    /* Lanes are flushed into an outer accumulator every FI_BLOCK elements: the rounding error of
       the sums then grows like (FI_BLOCK/FI_LANES + n/FI_BLOCK) ulp, not n/FI_LANES. */
    #define FI_BLOCK 1024

    static inline double fi_from_bits(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }
    static inline uint64_t fi_to_bits(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }

    /* Natural log of a finite x > 0 (normal or subnormal); other inputs give garbage (callers mask).
       Branch-free so that loops calling it vectorise.
       x = 2^k m with m in [sqrt(2)/2, sqrt(2)) (integer arithmetic on the bits, no int<->float
       conversion instructions needed); f = m - 1 is exact (Sterbenz); with s = f/(2+f),
       log(m) = 2 atanh(s) = 2s + s R(z), z = s^2, R(z) = sum_{j>=1} 2 z^j/(2j+1); |s| <= 3-2 sqrt(2),
       z <= 0.02944, so the Taylor tail after z^10 is <= 2 z^11/(23 (1-z)) < 1.3e-18 and contributes
       |s| * 1.3e-18 < 2^-61 relative to log(m). Since 2s = f - s f,
       log(m) = f - (f^2/2 - s (f^2/2 + R)), the big term f exact and the correction < |f|/5;
       k log 2 is added as k*LN2_HI (exact: LN2_HI has 32 significant bits, |k| < 1200) plus k*LN2_LO.
       Measured against mpmath (tests/test_distributions.py): max error < 1 ulp. */
    static inline double fi_log_pos(double x)
    {
        const double LN2_HI = 0x1.62e42fee00000p-1;
        const double LN2_LO = 0x1.a39ef35793c76p-33;
        int sub = x < DBL_MIN;
        double xs = sub ? x * 0x1p54 : x;
        double kshift = sub ? 54.0 : 0.0;
        uint64_t ux = fi_to_bits(xs);
        /* kk = k + 1024 >= 1 for every positive normal xs, so the shift is logical */
        uint64_t kk = (ux - UINT64_C(0x3fe6a09e667f3bcd) + UINT64_C(0x4000000000000000)) >> 52;
        double m = fi_from_bits(ux - (kk << 52) + UINT64_C(0x4000000000000000));
        double k = (fi_from_bits(kk | UINT64_C(0x4330000000000000)) - 0x1p52) - (1024.0 + kshift);
        double f = m - 1.0;
        double s = f / (2.0 + f);
        double z = s * s;
        double R = z * (0x1.5555555555555p-1 + z * (0x1.999999999999ap-2 + z * (0x1.2492492492492p-2
                 + z * (0x1.c71c71c71c71cp-3 + z * (0x1.745d1745d1746p-3 + z * (0x1.3b13b13b13b14p-3
                 + z * (0x1.1111111111111p-3 + z * (0x1.e1e1e1e1e1e1ep-4 + z * (0x1.af286bca1af28p-4
                 + z * 0x1.8618618618618p-4)))))))));
        double hfsq = 0.5 * f * f;
        return k * LN2_HI - ((hfsq - (s * (hfsq + R) + k * LN2_LO)) - f);
    }

    static inline double fi_lanes_total(const double *lane)
    {
        return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    }

    /* The loops are written once as macros and instantiated for float and double input. */
    #define FI_DEFINE_DIST_ROWS(T, SUFFIX)                                                         \\
    /* Entropy of one row: status 1 if a negative entry. */                                        \\
    static FI_DIST_CLONES double fi_entropy_row_##SUFFIX(const T *p, Py_ssize_t n, int *status)    \\
    {                                                                                              \\
        double sum[FI_LANES], neg[FI_LANES], outer[FI_LANES];                                      \\
        Py_ssize_t i = 0, start, stop;                                                             \\
        int j;                                                                                     \\
        for (j = 0; j < FI_LANES; j++) { sum[j] = 0.0; outer[j] = 0.0; neg[j] = 0.0; }             \\
        for (start = 0; start < n; start = stop) {                                                 \\
            stop = n - start > FI_BLOCK ? start + FI_BLOCK : n;                                    \\
            for (i = start; i + FI_LANES <= stop; i += FI_LANES)                                   \\
                for (j = 0; j < FI_LANES; j++) {                                                   \\
                    double v = (double)p[i + j];                                                   \\
                    sum[j] += v;                                                                   \\
                    neg[j] += v < 0.0 ? 1.0 : 0.0;                                                 \\
                }                                                                                  \\
            for (j = 0; i < stop; i++, j++) {                                                      \\
                double v = (double)p[i];                                                           \\
                sum[j] += v;                                                                       \\
                neg[j] += v < 0.0 ? 1.0 : 0.0;                                                     \\
            }                                                                                      \\
            for (j = 0; j < FI_LANES; j++) { outer[j] += sum[j]; sum[j] = 0.0; }                   \\
        }                                                                                          \\
        double S = fi_lanes_total(outer);                                                          \\
        for (j = 1; j < FI_LANES; j++) neg[0] += neg[j];                                           \\
        *status = 0;                                                                               \\
        if (neg[0] > 0.0) { *status = 1; return NAN; }                                             \\
        if (!(S > 0.0 && S <= DBL_MAX)) return NAN;  /* zero, NaN or inf sum */                    \\
        const double invS = 1.0 / S;                                                               \\
        double acc[FI_LANES];                                                                      \\
        for (j = 0; j < FI_LANES; j++) { acc[j] = 0.0; outer[j] = 0.0; }                           \\
        for (start = 0; start < n; start = stop) {                                                 \\
            stop = n - start > FI_BLOCK ? start + FI_BLOCK : n;                                    \\
            for (i = start; i + FI_LANES <= stop; i += FI_LANES)                                   \\
                for (j = 0; j < FI_LANES; j++) {                                                   \\
                    double a = (double)p[i + j] * invS;                                            \\
                    double y = a > 0.0 ? (a < 1.0 ? a : 1.0) : 1.0;                                \\
                    acc[j] += a * fi_log_pos(y);                                                   \\
                }                                                                                  \\
            for (j = 0; i < stop; i++, j++) {                                                      \\
                double a = (double)p[i] * invS;                                                    \\
                double y = a > 0.0 ? (a < 1.0 ? a : 1.0) : 1.0;                                    \\
                acc[j] += a * fi_log_pos(y);                                                       \\
            }                                                                                      \\
            for (j = 0; j < FI_LANES; j++) { outer[j] += acc[j]; acc[j] = 0.0; }                   \\
        }                                                                                          \\
        return 0.0 - fi_lanes_total(outer);                                                        \\
    }                                                                                              \\
                                                                                                   \\
    /* kind 0: cross-entropy -sum a log b; 1: KL sum a log(a/b); 2: JS divergence.                 \\
       status 1 if p has a negative entry, 2 if q has one. */                                      \\
    static FI_DIST_CLONES double fi_pq_row_##SUFFIX(int kind, const T *p, const T *q,              \\
                                                   Py_ssize_t n, double eps, int *status)          \\
    {                                                                                              \\
        double sp[FI_LANES], sq[FI_LANES], negp[FI_LANES], negq[FI_LANES];                         \\
        double op[FI_LANES], oq[FI_LANES];                                                         \\
        Py_ssize_t i = 0, start, stop;                                                             \\
        int j;                                                                                     \\
        for (j = 0; j < FI_LANES; j++) {                                                           \\
            sp[j] = 0.0; sq[j] = 0.0; negp[j] = 0.0; negq[j] = 0.0; op[j] = 0.0; oq[j] = 0.0;      \\
        }                                                                                          \\
        for (start = 0; start < n; start = stop) {                                                 \\
            stop = n - start > FI_BLOCK ? start + FI_BLOCK : n;                                    \\
            for (i = start; i + FI_LANES <= stop; i += FI_LANES)                                   \\
                for (j = 0; j < FI_LANES; j++) {                                                   \\
                    double u = (double)p[i + j], v = (double)q[i + j];                             \\
                    sp[j] += u;                                                                    \\
                    sq[j] += v + eps;                                                              \\
                    negp[j] += u < 0.0 ? 1.0 : 0.0;                                                \\
                    negq[j] += v < 0.0 ? 1.0 : 0.0;                                                \\
                }                                                                                  \\
            for (j = 0; i < stop; i++, j++) {                                                      \\
                double u = (double)p[i], v = (double)q[i];                                         \\
                sp[j] += u;                                                                        \\
                sq[j] += v + eps;                                                                  \\
                negp[j] += u < 0.0 ? 1.0 : 0.0;                                                    \\
                negq[j] += v < 0.0 ? 1.0 : 0.0;                                                    \\
            }                                                                                      \\
            for (j = 0; j < FI_LANES; j++) {                                                       \\
                op[j] += sp[j]; sp[j] = 0.0; oq[j] += sq[j]; sq[j] = 0.0;                          \\
            }                                                                                      \\
        }                                                                                          \\
        double S = fi_lanes_total(op), Tq = fi_lanes_total(oq);                                    \\
        for (j = 1; j < FI_LANES; j++) {                                                           \\
            negp[0] += negp[j];                                                                    \\
            negq[0] += negq[j];                                                                    \\
        }                                                                                          \\
        *status = 0;                                                                               \\
        if (negp[0] > 0.0) { *status = 1; return NAN; }                                            \\
        if (negq[0] > 0.0) { *status = 2; return NAN; }                                            \\
        if (!(S > 0.0 && S <= DBL_MAX && Tq > 0.0 && Tq <= DBL_MAX)) return NAN;                   \\
        const double invS = 1.0 / S, invT = 1.0 / Tq;                                              \\
        /* acc: sum of terms; flag: count of terms that are +inf (a > 0 = b, or a/b overflows) */  \\
        double acc[FI_LANES], flag[FI_LANES], oflag = 0.0;                                         \\
        for (j = 0; j < FI_LANES; j++) { acc[j] = 0.0; flag[j] = 0.0; op[j] = 0.0; }               \\
        for (start = 0; start < n; start = stop) {                                                 \\
            stop = n - start > FI_BLOCK ? start + FI_BLOCK : n;                                    \\
            if (kind == 0) {                                                                       \\
                for (i = start; i + FI_LANES <= stop; i += FI_LANES)                               \\
                    for (j = 0; j < FI_LANES; j++) {                                               \\
                        double a = (double)p[i + j] * invS;                                        \\
                        double b = ((double)q[i + j] + eps) * invT;                                \\
                        int bad = a > 0.0 && b == 0.0;                                             \\
                        double y = a > 0.0 && b > 0.0 ? (b < 1.0 ? b : 1.0) : 1.0;                 \\
                        acc[j] += a * fi_log_pos(y);                                               \\
                        flag[j] += bad ? 1.0 : 0.0;                                                \\
                    }                                                                              \\
                for (j = 0; i < stop; i++, j++) {                                                  \\
                    double a = (double)p[i] * invS;                                                \\
                    double b = ((double)q[i] + eps) * invT;                                        \\
                    int bad = a > 0.0 && b == 0.0;                                                 \\
                    double y = a > 0.0 && b > 0.0 ? (b < 1.0 ? b : 1.0) : 1.0;                     \\
                    acc[j] += a * fi_log_pos(y);                                                   \\
                    flag[j] += bad ? 1.0 : 0.0;                                                    \\
                }                                                                                  \\
            } else if (kind == 1) {                                                                \\
                for (i = start; i + FI_LANES <= stop; i += FI_LANES)                               \\
                    for (j = 0; j < FI_LANES; j++) {                                               \\
                        double a = (double)p[i + j] * invS;                                        \\
                        double b = ((double)q[i + j] + eps) * invT;                                \\
                        double r = a / b;                                                          \\
                        int ok = a > 0.0 && r <= DBL_MAX;                                          \\
                        double y = ok ? r : 1.0;                                                   \\
                        acc[j] += a * fi_log_pos(y);                                               \\
                        flag[j] += (a > 0.0 && !ok) ? 1.0 : 0.0;                                   \\
                    }                                                                              \\
                for (j = 0; i < stop; i++, j++) {                                                  \\
                    double a = (double)p[i] * invS;                                                \\
                    double b = ((double)q[i] + eps) * invT;                                        \\
                    double r = a / b;                                                              \\
                    int ok = a > 0.0 && r <= DBL_MAX;                                              \\
                    double y = ok ? r : 1.0;                                                       \\
                    acc[j] += a * fi_log_pos(y);                                                   \\
                    flag[j] += (a > 0.0 && !ok) ? 1.0 : 0.0;                                       \\
                }                                                                                  \\
            } else {                                                                               \\
                for (i = start; i + FI_LANES <= stop; i += FI_LANES)                               \\
                    for (j = 0; j < FI_LANES; j++) {                                               \\
                        double a = (double)p[i + j] * invS;                                        \\
                        double b = (double)q[i + j] * invT;                                        \\
                        double m = 0.5 * (a + b);                                                  \\
                        double ya = a > 0.0 ? a / m : 1.0;                                         \\
                        double yb = b > 0.0 ? b / m : 1.0;                                         \\
                        acc[j] += a * fi_log_pos(ya) + b * fi_log_pos(yb);                         \\
                    }                                                                              \\
                for (j = 0; i < stop; i++, j++) {                                                  \\
                    double a = (double)p[i] * invS;                                                \\
                    double b = (double)q[i] * invT;                                                \\
                    double m = 0.5 * (a + b);                                                      \\
                    double ya = a > 0.0 ? a / m : 1.0;                                             \\
                    double yb = b > 0.0 ? b / m : 1.0;                                             \\
                    acc[j] += a * fi_log_pos(ya) + b * fi_log_pos(yb);                             \\
                }                                                                                  \\
            }                                                                                      \\
            for (j = 0; j < FI_LANES; j++) { op[j] += acc[j]; acc[j] = 0.0; }                      \\
        }                                                                                          \\
        for (j = 0; j < FI_LANES; j++) oflag += flag[j];                                           \\
        if (oflag > 0.0) return INFINITY;                                                          \\
        double total = fi_lanes_total(op);                                                         \\
        if (kind == 0) return 0.0 - total;                                                         \\
        if (kind == 1) return total;                                                               \\
        return 0.5 * total;                                                                        \\
    }

    FI_DEFINE_DIST_ROWS(float, f)
    FI_DEFINE_DIST_ROWS(double, d)
    """
    double fi_log_pos(double x) noexcept nogil
    double fi_entropy_row_f(const float *p, Py_ssize_t n, int *status) noexcept nogil
    double fi_entropy_row_d(const double *p, Py_ssize_t n, int *status) noexcept nogil
    double fi_pq_row_f(int kind, const float *p, const float *q, Py_ssize_t n, double eps,
                       int *status) noexcept nogil
    double fi_pq_row_d(int kind, const double *p, const double *q, Py_ssize_t n, double eps,
                       int *status) noexcept nogil


cdef Py_ssize_t _first_bad_row(const unsigned char[::1] status) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(status.shape[0]):
        if status[i]:
            return i
    return -1


def distribution_entropy_rows(const floating[:, ::1] p, floating[::1] out,
                              unsigned char[::1] status, double log_base):
    """``out[i] = H(p[i] / sum(p[i])) / log_base``; returns ``(row, code)`` of the first row with a
    negative entry (code 1) or ``(-1, 0)``. Requires ``p.shape[1] > 0``."""
    cdef Py_ssize_t n_rows = p.shape[0], n = p.shape[1], i, bad
    cdef int nt = num_threads_for(n_rows)
    cdef int st
    cdef double r
    if n_rows == 0:
        return -1, 0
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
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
    if n_rows == 0:
        return -1, 0
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            ip = i if p_identity else p_index[i]
            iq = i if q_identity else q_index[i]
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

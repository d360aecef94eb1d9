/* fastinfo: branch-free min/max and the k = 3 window search of the 1-D x 1-D grid (included by _kernels_kdtree.pxi). */
#ifndef FASTINFO_GRID2_H
#define FASTINFO_GRID2_H

#include <Python.h>

/* min and max of two non-NaN doubles without a branch (minsd/maxsd on x86-64) */
#if defined(__SSE2__)
#include <emmintrin.h>
static inline double fastinfo_fmin2(double a, double b) {
    return _mm_cvtsd_f64(_mm_min_sd(_mm_set_sd(a), _mm_set_sd(b)));
}
static inline double fastinfo_fmax2(double a, double b) {
    return _mm_cvtsd_f64(_mm_max_sd(_mm_set_sd(a), _mm_set_sd(b)));
}
#else
static inline double fastinfo_fmin2(double a, double b) { return a < b ? a : b; }
static inline double fastinfo_fmax2(double a, double b) { return a > b ? a : b; }
#endif

/* Grid2 window search, k = 3: wd[j] = max(|wx[j] - q0|, |wy[j] - q1|) for j < m2 (m2 even;
   the arrays hold m2 values, padding +inf), then wd[self] = +inf; returns the third
   smallest of wd (with multiplicity) and stores the fourth in *fourth: an insertion
   network of min/max per lane (even and odd j), then the two lanes' sorted quadruples
   merged (the r-th smallest of the union is the min over i of max(a[i-1], b[r-i-1])). */
static inline double fastinfo_window3(const double *wx, const double *wy, Py_ssize_t m2,
                                      Py_ssize_t self, double q0, double q1, double *wd,
                                      double *fourth) {
    Py_ssize_t j;
    double a0, a1, a2, a3, b0, b1, b2, b3, r, t;
#if defined(__SSE2__)
    const __m128d sign = _mm_set1_pd(-0.0), inf = _mm_set1_pd(1.0 / 0.0);
    const __m128d vq0 = _mm_set1_pd(q0), vq1 = _mm_set1_pd(q1);
    __m128d t0 = inf, t1 = inf, t2 = inf, t3 = inf, v, da, db;
    double s0[2], s1[2], s2[2], s3[2];
    for (j = 0; j < m2; j += 2) {
        da = _mm_andnot_pd(sign, _mm_sub_pd(_mm_loadu_pd(wx + j), vq0));
        db = _mm_andnot_pd(sign, _mm_sub_pd(_mm_loadu_pd(wy + j), vq1));
        _mm_storeu_pd(wd + j, _mm_max_pd(da, db));
    }
    wd[self] = 1.0 / 0.0;
    for (j = 0; j < m2; j += 2) {
        v = _mm_loadu_pd(wd + j);
        t3 = _mm_min_pd(_mm_max_pd(t2, v), t3);
        t2 = _mm_min_pd(_mm_max_pd(t1, v), t2);
        t1 = _mm_min_pd(_mm_max_pd(t0, v), t1);
        t0 = _mm_min_pd(t0, v);
    }
    _mm_storeu_pd(s0, t0);
    _mm_storeu_pd(s1, t1);
    _mm_storeu_pd(s2, t2);
    _mm_storeu_pd(s3, t3);
    a0 = s0[0]; a1 = s1[0]; a2 = s2[0]; a3 = s3[0];
    b0 = s0[1]; b1 = s1[1]; b2 = s2[1]; b3 = s3[1];
#else
    for (j = 0; j < m2; j++) {
        a0 = fabs(wx[j] - q0);
        a1 = fabs(wy[j] - q1);
        wd[j] = a0 > a1 ? a0 : a1;
    }
    wd[self] = 1.0 / 0.0;
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = 1.0 / 0.0;
    for (j = 0; j < m2; j += 2) {
        r = wd[j];
        t = a2 > r ? a2 : r; a3 = t < a3 ? t : a3;
        t = a1 > r ? a1 : r; a2 = t < a2 ? t : a2;
        t = a0 > r ? a0 : r; a1 = t < a1 ? t : a1;
        a0 = r < a0 ? r : a0;
        r = wd[j + 1];
        t = b2 > r ? b2 : r; b3 = t < b3 ? t : b3;
        t = b1 > r ? b1 : r; b2 = t < b2 ? t : b2;
        t = b0 > r ? b0 : r; b1 = t < b1 ? t : b1;
        b0 = r < b0 ? r : b0;
    }
#endif
    /* fourth: min(a3, b3, max(a0, b2), max(a1, b1), max(a2, b0)) */
    r = a3 < b3 ? a3 : b3;
    t = a0 > b2 ? a0 : b2; r = t < r ? t : r;
    t = a1 > b1 ? a1 : b1; r = t < r ? t : r;
    t = a2 > b0 ? a2 : b0; r = t < r ? t : r;
    *fourth = r;
    /* third: min(a2, b2, max(a0, b1), max(a1, b0)) */
    r = a2 < b2 ? a2 : b2;
    t = a0 > b1 ? a0 : b1; r = t < r ? t : r;
    t = a1 > b0 ? a1 : b0;
    return t < r ? t : r;
}

#endif /* FASTINFO_GRID2_H */

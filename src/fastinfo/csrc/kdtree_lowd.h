/* fastinfo: KD-tree k-NN searches and range counts with the dimension fixed at compile time
   (2..7) and leaves scanned four points at a time (AVX2), from a coordinate-major copy of the
   tree's points. Included by _kernels_kdtree.pxi after kdtree.h; see kdtree_lowd_body.h. */
#ifndef FASTINFO_KDTREE_LOWD_H
#define FASTINFO_KDTREE_LOWD_H

#include "kdtree.h"
#include <stdlib.h>

#define FI_KD_LOWD_MIN 2
#define FI_KD_LOWD_MAX 7
/* padding of each coordinate row of the copy: a 4-lane load at any position < n stays inside */
#define FI_KD_SOA_PAD 4

#if defined(FI_KD_AVX2)

#define FI_KD_D 2
#define FI_KD_SFX d2
#include "kdtree_lowd_body.h"
#define FI_KD_D 3
#define FI_KD_SFX d3
#include "kdtree_lowd_body.h"
#define FI_KD_D 4
#define FI_KD_SFX d4
#include "kdtree_lowd_body.h"
#define FI_KD_D 5
#define FI_KD_SFX d5
#include "kdtree_lowd_body.h"
#define FI_KD_D 6
#define FI_KD_SFX d6
#include "kdtree_lowd_body.h"
#define FI_KD_D 7
#define FI_KD_SFX d7
#include "kdtree_lowd_body.h"

/* 1 when the fixed-dimension paths serve a tree of dimension d (AVX2 CPU, 2 <= d <= 7) */
static inline int fi_kd_lowd(Py_ssize_t d) {
    return fi_kd_use_avx2 && d >= FI_KD_LOWD_MIN && d <= FI_KD_LOWD_MAX;
}

#define FI_KD_KNN_ARGS pts, soa, stride, index, lo, hi, start, end, n_nodes, q, k, best_d, best_p, best_i, stack, stack_d
static double fi_kd_knn_lowd(Py_ssize_t d, const double *pts, const double *soa, Py_ssize_t stride,
                             const Py_ssize_t *index, const double *lo, const double *hi,
                             const Py_ssize_t *start, const Py_ssize_t *end, Py_ssize_t n_nodes,
                             Py_ssize_t q, int k, double *best_d, Py_ssize_t *best_p,
                             Py_ssize_t *best_i, Py_ssize_t *stack, double *stack_d) {
    switch (d) {
    case 2: return fi_kd_knn_d2(FI_KD_KNN_ARGS);
    case 3: return fi_kd_knn_d3(FI_KD_KNN_ARGS);
    case 4: return fi_kd_knn_d4(FI_KD_KNN_ARGS);
    case 5: return fi_kd_knn_d5(FI_KD_KNN_ARGS);
    case 6: return fi_kd_knn_d6(FI_KD_KNN_ARGS);
    default: return fi_kd_knn_d7(FI_KD_KNN_ARGS);
    }
}
#undef FI_KD_KNN_ARGS

#define FI_KD_COUNT_ARGS soa, stride, lo, hi, start, end, n_nodes, qp, r, stack
static Py_ssize_t fi_kd_count_lowd(Py_ssize_t d, const double *soa, Py_ssize_t stride,
                                   const double *lo, const double *hi, const Py_ssize_t *start,
                                   const Py_ssize_t *end, Py_ssize_t n_nodes, const double *qp,
                                   double r, Py_ssize_t *stack) {
    switch (d) {
    case 2: return fi_kd_count_d2(FI_KD_COUNT_ARGS);
    case 3: return fi_kd_count_d3(FI_KD_COUNT_ARGS);
    case 4: return fi_kd_count_d4(FI_KD_COUNT_ARGS);
    case 5: return fi_kd_count_d5(FI_KD_COUNT_ARGS);
    case 6: return fi_kd_count_d6(FI_KD_COUNT_ARGS);
    default: return fi_kd_count_d7(FI_KD_COUNT_ARGS);
    }
}
#undef FI_KD_COUNT_ARGS

#else
static inline int fi_kd_lowd(Py_ssize_t d) { return 0; }
/* never called (fi_kd_lowd() is 0) */
static double fi_kd_knn_lowd(Py_ssize_t d, const double *pts, const double *soa, Py_ssize_t stride,
                             const Py_ssize_t *index, const double *lo, const double *hi,
                             const Py_ssize_t *start, const Py_ssize_t *end, Py_ssize_t n_nodes,
                             Py_ssize_t q, int k, double *best_d, Py_ssize_t *best_p,
                             Py_ssize_t *best_i, Py_ssize_t *stack, double *stack_d) { return 0.0; }
static Py_ssize_t fi_kd_count_lowd(Py_ssize_t d, const double *soa, Py_ssize_t stride,
                                   const double *lo, const double *hi, const Py_ssize_t *start,
                                   const Py_ssize_t *end, Py_ssize_t n_nodes, const double *qp,
                                   double r, Py_ssize_t *stack) { return 0; }
#endif

/* The coordinate-major copy of an (n, d) row-major array: soa[c * stride + p] = pts[p * d + c],
   stride = n + FI_KD_SOA_PAD, the padding zero. NULL when out of memory. */
static double *fi_kd_soa_copy(const double *pts, Py_ssize_t n, Py_ssize_t d, Py_ssize_t *stride) {
    Py_ssize_t s = n + FI_KD_SOA_PAD, p, c;
    double *soa = (double *)malloc((size_t)(s * d) * sizeof(double));
    *stride = s;
    if (soa == NULL)
        return NULL;
    for (c = 0; c < d; c++) {
        for (p = 0; p < n; p++)
            soa[c * s + p] = pts[p * d + c];
        for (p = n; p < s; p++)
            soa[c * s + p] = 0.0;
    }
    return soa;
}

#endif /* FASTINFO_KDTREE_LOWD_H */

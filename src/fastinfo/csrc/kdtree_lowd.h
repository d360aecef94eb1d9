/* fastinfo: KD-tree k-NN searches and range counts with the dimension fixed at compile time
   (2..7) and leaves scanned four points at a time (AVX2) or eight (AVX-512F, when the CPU has it
   and the AVX-512 KD-tree paths are on: fi_kd_use_avx512), from a coordinate-major copy of the
   tree's points. Included by _kernels_kdtree.pxi after kdtree.h; see kdtree_lowd_body.h. */
#ifndef FASTINFO_KDTREE_LOWD_H
#define FASTINFO_KDTREE_LOWD_H

#include "kdtree.h"
#include <stdlib.h>

#define FI_KD_LOWD_MIN 2
#define FI_KD_LOWD_MAX 7
/* padding of each coordinate row of the copy: an 8-lane load at any position < n stays inside */
#define FI_KD_SOA_PAD 8

/* The tree's levels: node v (heap numbering) is at level floor(log2(v + 1)); a tree of n_nodes =
   2^(depth + 1) - 1 nodes has its leaves at level depth. */
static inline int fi_kd_level(Py_ssize_t v) {
    return 63 - __builtin_clzll((unsigned long long)v + 1ull);
}

static inline int fi_kd_depth(Py_ssize_t n_nodes) {
    return fi_kd_level(n_nodes) - 1;
}

/* The walks of kdtree_lowd_body.h test the boxes of a node's descendants ``step`` levels below it
   at once (2^step <= 8 nodes, consecutive in heap numbering: ((v + 1) << step) - 1 onwards): three
   levels, except from the root when depth is not a multiple of 3 (then depth % 3), so that every
   group of leaves is full. */
static inline int fi_kd_group_step(Py_ssize_t v, int depth) {
    return (v == 0 && depth % 3) ? depth % 3 : 3;
}

/* The per-level coordinate-major copy of the boxes: level t (w = 2^t nodes) starts at 2 d (w - 1);
   the lower bound of coordinate c of its i-th node is at [c w + i], the upper bound at
   [(d + c) w + i]. fi_kd_group_offset is the position of node ``first`` (at level ``level``) in
   its level's row of coordinate 0. */
static inline Py_ssize_t fi_kd_group_offset(Py_ssize_t first, int level, Py_ssize_t d) {
    const Py_ssize_t w = (Py_ssize_t)1 << level;
    return 2 * d * (w - 1) + (first - (w - 1));
}

/* The group of nodes whose boxes the walks test together below node v: its first node (*first),
   their level (*level); returns their number, 2^step. */
static inline int fi_kd_group_of(Py_ssize_t v, int depth, Py_ssize_t *first, int *level) {
    const int step = fi_kd_group_step(v, depth);
    *first = ((v + 1) << step) - 1;
    *level = fi_kd_level(v) + step;
    return 1 << step;
}

/* FI_KD_GROUP_PAD zeros after the copy: an 8-lane load of any node's row stays inside */
#define FI_KD_GROUP_PAD 8

/* The copy from the (n_nodes, d) row-major boxes; NULL when out of memory. */
static double *fi_kd_group_boxes(const double *lo, const double *hi, Py_ssize_t n_nodes, Py_ssize_t d) {
    const int depth = fi_kd_depth(n_nodes);
    double *g = (double *)calloc((size_t)(2 * d * n_nodes + FI_KD_GROUP_PAD), sizeof(double));
    Py_ssize_t w, i, c, u, base;
    int t;
    if (g == NULL)
        return NULL;
    for (t = 0; t <= depth; t++) {
        w = (Py_ssize_t)1 << t;
        base = 2 * d * (w - 1);
        for (i = 0; i < w; i++) {
            u = w - 1 + i;
            for (c = 0; c < d; c++) {
                g[base + c * w + i] = lo[u * d + c];
                g[base + (d + c) * w + i] = hi[u * d + c];
            }
        }
    }
    return g;
}

/* The lanes set in ``mask`` (at most 8) in order of increasing key[lane]; returns how many. */
static inline int fi_kd_sort_lanes(const double *key, unsigned mask, int *order) {
    int n = 0, i, j;
    double x;
    while (mask) {
        j = __builtin_ctz(mask);
        mask &= mask - 1u;
        x = key[j];
        for (i = n++; i > 0 && key[order[i - 1]] > x; i--)
            order[i] = order[i - 1];
        order[i] = j;
    }
    return n;
}

#if defined(FI_KD_AVX2)

#define FI_KD_D 2
#define FI_KD_W 4
#define FI_KD_SFX d2
#include "kdtree_lowd_body.h"
#define FI_KD_D 2
#define FI_KD_W 8
#define FI_KD_SFX d2_512
#include "kdtree_lowd_body.h"
#define FI_KD_D 3
#define FI_KD_W 4
#define FI_KD_SFX d3
#include "kdtree_lowd_body.h"
#define FI_KD_D 3
#define FI_KD_W 8
#define FI_KD_SFX d3_512
#include "kdtree_lowd_body.h"
#define FI_KD_D 4
#define FI_KD_W 4
#define FI_KD_SFX d4
#include "kdtree_lowd_body.h"
#define FI_KD_D 4
#define FI_KD_W 8
#define FI_KD_SFX d4_512
#include "kdtree_lowd_body.h"
#define FI_KD_D 5
#define FI_KD_W 4
#define FI_KD_SFX d5
#include "kdtree_lowd_body.h"
#define FI_KD_D 5
#define FI_KD_W 8
#define FI_KD_SFX d5_512
#include "kdtree_lowd_body.h"
#define FI_KD_D 6
#define FI_KD_W 4
#define FI_KD_SFX d6
#include "kdtree_lowd_body.h"
#define FI_KD_D 6
#define FI_KD_W 8
#define FI_KD_SFX d6_512
#include "kdtree_lowd_body.h"
#define FI_KD_D 7
#define FI_KD_W 4
#define FI_KD_SFX d7
#include "kdtree_lowd_body.h"
#define FI_KD_D 7
#define FI_KD_W 8
#define FI_KD_SFX d7_512
#include "kdtree_lowd_body.h"

/* 1 when the fixed-dimension paths serve a tree of dimension d (AVX2 CPU, 2 <= d <= 7) */
static inline int fi_kd_lowd(Py_ssize_t d) {
    return fi_kd_use_avx2 && d >= FI_KD_LOWD_MIN && d <= FI_KD_LOWD_MAX;
}

#define FI_KD_KNN_ARGS pts, soa, stride, index, gbox, start, end, n_nodes, q, k, best_d, best_p, best_i, stack, stack_d
static double fi_kd_knn_lowd(Py_ssize_t d, const double *pts, const double *soa, Py_ssize_t stride,
                             const Py_ssize_t *index, const double *gbox,
                             const Py_ssize_t *start, const Py_ssize_t *end, Py_ssize_t n_nodes,
                             Py_ssize_t q, int k, double *best_d, Py_ssize_t *best_p,
                             Py_ssize_t *best_i, Py_ssize_t *stack, double *stack_d) {
    if (fi_kd_use_avx512) {
        switch (d) {
        case 2: return fi_kd_knn_d2_512(FI_KD_KNN_ARGS);
        case 3: return fi_kd_knn_d3_512(FI_KD_KNN_ARGS);
        case 4: return fi_kd_knn_d4_512(FI_KD_KNN_ARGS);
        case 5: return fi_kd_knn_d5_512(FI_KD_KNN_ARGS);
        case 6: return fi_kd_knn_d6_512(FI_KD_KNN_ARGS);
        default: return fi_kd_knn_d7_512(FI_KD_KNN_ARGS);
        }
    }
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

#define FI_KD_COUNT_ARGS soa, stride, gbox, start, end, n_nodes, qp, r, stack
static Py_ssize_t fi_kd_count_lowd(Py_ssize_t d, const double *soa, Py_ssize_t stride,
                                   const double *gbox, const Py_ssize_t *start,
                                   const Py_ssize_t *end, Py_ssize_t n_nodes, const double *qp,
                                   double r, Py_ssize_t *stack) {
    if (fi_kd_use_avx512) {
        switch (d) {
        case 2: return fi_kd_count_d2_512(FI_KD_COUNT_ARGS);
        case 3: return fi_kd_count_d3_512(FI_KD_COUNT_ARGS);
        case 4: return fi_kd_count_d4_512(FI_KD_COUNT_ARGS);
        case 5: return fi_kd_count_d5_512(FI_KD_COUNT_ARGS);
        case 6: return fi_kd_count_d6_512(FI_KD_COUNT_ARGS);
        default: return fi_kd_count_d7_512(FI_KD_COUNT_ARGS);
        }
    }
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
                             const Py_ssize_t *index, const double *gbox,
                             const Py_ssize_t *start, const Py_ssize_t *end, Py_ssize_t n_nodes,
                             Py_ssize_t q, int k, double *best_d, Py_ssize_t *best_p,
                             Py_ssize_t *best_i, Py_ssize_t *stack, double *stack_d) { return 0.0; }
static Py_ssize_t fi_kd_count_lowd(Py_ssize_t d, const double *soa, Py_ssize_t stride,
                                   const double *gbox, const Py_ssize_t *start,
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

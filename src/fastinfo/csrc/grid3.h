/* fastinfo: Grid3, the k-NN radius (max-norm) in a 3-D joint space of three 1-D columns: the
   conditional estimator's (x, y, z) with x, y, z 1-D, which is transfer entropy with histories 1
   (included by _kernels_kdtree.pxi after kdtree.h, whose AVX2 dispatch it shares).

   A G x G x G grid over the columns' quantile bins: bin b of an axis holds the ranks
   [ceil(b n / G), ceil((b + 1) n / G)) of that column's sorted values, so any distribution gives
   about n / G^3 points per cell (tuned: a fill of fi_grid3_fill k). Cell id = (b2 G + b1) G + b0;
   points are stored cell-contiguous, coordinate-major (soa[a * stride + p]), so one row of cells
   along axis 0 is one contiguous range. Bin b of axis a holds values in [lo[a G + b], hi[a G + b]]
   (the sorted values at its first and last rank).

   The radius of the point at storage position q (fi_grid3_eps): the (k+1)-th smallest distance
   to the points scanned, q itself (distance 0) included, which is the k-th neighbour distance
   without it. A small block of cells around q gives an upper bound eps; then every bin whose
   lower bound (fl(q_a - hi[a G + b]) or fl(lo[a G + b] - q_a): exact bounds, since fl(u - v) is
   monotone) is below eps is added and scanned. Every point nearer than the final radius has
   been scanned, and the distances are the KD-tree's (max over axes of fabs(fl(p_a - q_a))), so
   the radius is bitwise the KD-tree search's k-th distance: only the radius enters the
   algorithm-1 counts, not which neighbours are tied at it. */
#ifndef FASTINFO_GRID3_H
#define FASTINFO_GRID3_H

#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kdtree.h"

/* padding of each coordinate row: a 4-lane load at any position < n stays inside */
#define FI_GRID3_PAD 4
/* at most this many bins per axis (256^3 cells of int32 starts: 64 MiB) */
#define FI_GRID3_MAX_SIDE 256

typedef struct {
    Py_ssize_t n;
    Py_ssize_t G;
    Py_ssize_t stride;     /* >= n + FI_GRID3_PAD */
    double *lo;            /* (3 G) */
    double *hi;            /* (3 G) */
    int32_t *cell_start;   /* (G^3 + 1) */
    int32_t *cell;         /* (n) cell id of each storage position */
    int32_t *pid;          /* (n) sample index of each storage position */
    double *soa;           /* (3 stride) coordinates, cell-contiguous */
} fi_grid3;

/* Target mean points per cell, in units of k (set by _set_grid3_fill for tuning). */
static double fi_grid3_fill = 1.5;

static void fi_grid3_init(fi_grid3 *g) {
    memset(g, 0, sizeof(*g));
}

static void fi_grid3_free(fi_grid3 *g) {
    free(g->lo);
    free(g->hi);
    free(g->cell_start);
    free(g->cell);
    free(g->pid);
    free(g->soa);
    fi_grid3_init(g);
}

/* G, the number of bins per axis for n points and k neighbours (1 <= G <= min(n, MAX_SIDE)). */
static Py_ssize_t fi_grid3_side(Py_ssize_t n, int k) {
    double cells = (double)n / (fi_grid3_fill * (double)k);
    Py_ssize_t G = (Py_ssize_t)cbrt(cells > 1.0 ? cells : 1.0);
    if (G < 1)
        G = 1;
    if (G > FI_GRID3_MAX_SIDE)
        G = FI_GRID3_MAX_SIDE;
    if (G > n)
        G = n;      /* no empty bin */
    return G;
}

/* The grid over the n points (v[3 i], v[3 i + 1], v[3 i + 2]) (sample order, as the joint array
   of the conditional estimator holds them): rank[a][i] is the rank of v[3 i + a] in the sorted
   column sorted[a]. Needs n < 2^31. Returns 0, or -1 when out of memory (the grid is freed). */
static int fi_grid3_build(fi_grid3 *g, const double *v, const int32_t *const rank[3],
                          const double *const sorted[3], Py_ssize_t n, int k) {
    Py_ssize_t G, n_cells, i, b, r, r_end, cell, pos, c;
    int a;
    int32_t *bin_of_rank, *tcell;
    fi_grid3_init(g);
    G = fi_grid3_side(n, k);
    n_cells = G * G * G;
    g->n = n;
    g->G = G;
    g->stride = n + FI_GRID3_PAD;
    g->lo = (double *)malloc(3 * G * sizeof(double));
    g->hi = (double *)malloc(3 * G * sizeof(double));
    g->cell_start = (int32_t *)calloc(n_cells + 1, sizeof(int32_t));
    g->cell = (int32_t *)malloc((n > 0 ? n : 1) * sizeof(int32_t));
    g->pid = (int32_t *)malloc((n > 0 ? n : 1) * sizeof(int32_t));
    g->soa = (double *)calloc(3 * g->stride, sizeof(double));
    bin_of_rank = (int32_t *)malloc((n > 0 ? n : 1) * sizeof(int32_t));
    tcell = (int32_t *)malloc((n > 0 ? n : 1) * sizeof(int32_t));
    if (!g->lo || !g->hi || !g->cell_start || !g->cell || !g->pid || !g->soa || !bin_of_rank
            || !tcell) {
        fi_grid3_free(g);
        free(bin_of_rank);
        free(tcell);
        return -1;
    }
    /* bin b holds the ranks [ceil(b n / G), ceil((b + 1) n / G)) */
    for (b = 0; b < G; b++) {
        r = (b * n + G - 1) / G;
        r_end = ((b + 1) * n + G - 1) / G;
        for (a = 0; a < 3; a++) {
            g->lo[a * G + b] = sorted[a][r];
            g->hi[a * G + b] = sorted[a][r_end - 1];
        }
        for (; r < r_end; r++)
            bin_of_rank[r] = (int32_t)b;
    }
    /* counting sort by cell, stable (sample order within a cell) */
    for (i = 0; i < n; i++) {
        cell = ((Py_ssize_t)bin_of_rank[rank[2][i]] * G + bin_of_rank[rank[1][i]]) * G
               + bin_of_rank[rank[0][i]];
        tcell[i] = (int32_t)cell;
        g->cell_start[cell + 1]++;
    }
    for (c = 0; c < n_cells; c++)
        g->cell_start[c + 1] += g->cell_start[c];
    for (i = 0; i < n; i++) {
        cell = tcell[i];
        pos = g->cell_start[cell]++;
        g->soa[pos] = v[3 * i];
        g->soa[g->stride + pos] = v[3 * i + 1];
        g->soa[2 * g->stride + pos] = v[3 * i + 2];
        g->pid[pos] = (int32_t)i;
        g->cell[pos] = (int32_t)cell;
    }
    for (c = n_cells; c > 0; c--)
        g->cell_start[c] = g->cell_start[c - 1];
    g->cell_start[0] = 0;
    free(bin_of_rank);
    free(tcell);
    return 0;
}

/* Keep the K smallest distances offered, ascending in best[0..K-1]. */
static inline void fi_grid3_offer(double d, int K, double *best) {
    int j = K - 1;
    while (j > 0 && best[j - 1] > d) {
        best[j] = best[j - 1];
        j--;
    }
    best[j] = d;
}

#ifndef FI_GRID3_COUNT
#define FI_GRID3_COUNT(s, e) ((void)0)  /* a hook for instrumented builds (scan statistics) */
#endif

/* The generic search (any k, no SIMD): the K = k + 1 smallest distances in best[0..K-1], each
   point offered in turn. */
static inline void fi_grid3_scan_generic(const fi_grid3 *g, Py_ssize_t s, Py_ssize_t e,
                                         const double *qv, int K, double *best) {
    const double *x = g->soa, *y = g->soa + g->stride, *z = g->soa + 2 * g->stride;
    Py_ssize_t p;
    double d, t;
    FI_GRID3_COUNT(s, e);
    for (p = s; p < e; p++) {
        d = fabs(x[p] - qv[0]);
        t = fabs(y[p] - qv[1]);
        d = t > d ? t : d;
        t = fabs(z[p] - qv[2]);
        d = t > d ? t : d;
        if (d < best[K - 1])
            fi_grid3_offer(d, K, best);
    }
}

#define FI_G3_SFX generic
#define FI_G3_ATTR
#define FI_G3_STATE double *best
#define FI_G3_STATE_ARG best
#define FI_G3_START(K) do { int j_; for (j_ = 0; j_ < (K); j_++) best[j_] = INFINITY; } while (0)
#define FI_G3_SCAN(s, e) fi_grid3_scan_generic(g, (s), (e), qv, K, best)
#define FI_G3_KTH() (best[K - 1])
#include "grid3_body.h"

#if defined(FI_KD_AVX2)
/* The AVX2 search for K = k + 1 <= FI_GRID3_NET_MAX: four lanes, each keeping its K smallest
   distances ascending in t[0..K-1] with a branch-free insertion network (t[j] = min(max(t[j-1],
   v), t[j]), j descending); the K-th smallest of the union (fi_grid3_kth4) is needed only twice
   per query. The same multiset of distances as the generic search, so the same K-th value. */
#define FI_GRID3_NET_MAX 8

__attribute__((target("avx2"), always_inline))
static inline void fi_grid3_net4(__m256d *t, __m256d v, const int K) {
    int j;
    for (j = K - 1; j > 0; j--)
        t[j] = _mm256_min_pd(_mm256_max_pd(t[j - 1], v), t[j]);
    t[0] = _mm256_min_pd(t[0], v);
}

__attribute__((target("avx2"), always_inline))
static inline void fi_grid3_scan_net(const fi_grid3 *g, Py_ssize_t s, Py_ssize_t e,
                                     const __m256d *qv4, __m256d *t, const int K) {
    const double *x = g->soa, *y = g->soa + g->stride, *z = g->soa + 2 * g->stride;
    const __m256d sign = _mm256_set1_pd(-0.0), inf = _mm256_set1_pd(INFINITY);
    const __m256d lane = _mm256_set_pd(3.0, 2.0, 1.0, 0.0);
    Py_ssize_t p;
    FI_GRID3_COUNT(s, e);
    for (p = s; p < e; p += 4) {
        __m256d m = _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(x + p), qv4[0]));
        m = _mm256_max_pd(m, _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(y + p), qv4[1])));
        m = _mm256_max_pd(m, _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(z + p), qv4[2])));
        if (e - p < 4)      /* lanes past the range: +inf, never among the K smallest kept */
            m = _mm256_blendv_pd(m, inf, _mm256_cmp_pd(lane, _mm256_set1_pd((double)(e - p)), _CMP_GE_OQ));
        fi_grid3_net4(t, m, K);
    }
}

/* The K-th smallest of the four lanes' ascending lists t[0..K-1]: lanes 0 and 1, and 2 and 3,
   merged (their K smallest, ascending; two independent chains), then the two merged lists
   walked to their K-th; branch-free steps (each picks the smaller head by a conditional move). */
__attribute__((target("avx2"), always_inline))
static inline double fi_grid3_kth4(const __m256d *t, const int K) {
    double a[FI_GRID3_NET_MAX + 1][4], m01[FI_GRID3_NET_MAX + 1], m23[FI_GRID3_NET_MAX + 1];
    double u, w, v = INFINITY;
    int j, i0 = 0, i1 = 0, i2 = 0, i3 = 0, take;
    for (j = 0; j < K; j++)
        _mm256_storeu_pd(a[j], t[j]);
    _mm256_storeu_pd(a[K], _mm256_set1_pd(INFINITY));
    for (j = 0; j < K; j++) {
        u = a[i0][0];
        w = a[i1][1];
        take = u <= w;
        m01[j] = take ? u : w;
        i0 += take;
        i1 += !take;
        u = a[i2][2];
        w = a[i3][3];
        take = u <= w;
        m23[j] = take ? u : w;
        i2 += take;
        i3 += !take;
    }
    m01[K] = m23[K] = INFINITY;
    i0 = i1 = 0;
    for (j = 0; j < K; j++) {
        u = m01[i0];
        w = m23[i1];
        take = u <= w;
        v = take ? u : w;
        i0 += take;
        i1 += !take;
    }
    return v;
}

#define FI_G3_SFX net
#define FI_G3_ATTR __attribute__((target("avx2"), always_inline))
#define FI_G3_STATE __m256d *t
#define FI_G3_STATE_ARG t
#define FI_G3_START(K) do { int j_; for (j_ = 0; j_ < (K); j_++) t[j_] = _mm256_set1_pd(INFINITY); } while (0)
#define FI_G3_SCAN(s, e) fi_grid3_scan_net(g, (s), (e), qv4, t, K)
#define FI_G3_KTH() fi_grid3_kth4(t, K)
#define FI_G3_VECTOR 1
#include "grid3_body.h"

/* one search per K, so that the network's state stays in registers */
#define FI_G3_NET_CASE(KK) case KK: { __m256d t[KK]; return fi_grid3_eps_net(g, q, KK, t); }
__attribute__((target("avx2")))
static double fi_grid3_eps_avx2(const fi_grid3 *g, Py_ssize_t q, int k, double *best) {
    switch (k + 1) {
    FI_G3_NET_CASE(2)
    FI_G3_NET_CASE(3)
    FI_G3_NET_CASE(4)
    FI_G3_NET_CASE(5)
    FI_G3_NET_CASE(6)
    FI_G3_NET_CASE(7)
    FI_G3_NET_CASE(8)
    default:
        return fi_grid3_eps_generic(g, q, k + 1, best);
    }
}
#undef FI_G3_NET_CASE
#endif

/* The k-th neighbour distance (max-norm, the point itself excluded) of storage position q;
   best: scratch of k + 1 doubles. Needs n > k. */
static double fi_grid3_eps(const fi_grid3 *g, Py_ssize_t q, int k, double *best) {
#if defined(FI_KD_AVX2)
    if (fi_kd_avx2())
        return fi_grid3_eps_avx2(g, q, k, best);
#endif
    return fi_grid3_eps_generic(g, q, k + 1, best);
}

#endif /* FASTINFO_GRID3_H */

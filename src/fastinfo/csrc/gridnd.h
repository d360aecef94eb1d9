/* fastinfo: the k-NN radius (max-norm) on a grid of quantile bins, in a 3-D or 4-D joint space of
   1-D columns: the conditional estimator's (x, y, z) with x, y, z 1-D (transfer entropy with
   histories 1) and (x, y, z1, z2) with x, y 1-D (target history 2, or CMI (1, 1 | 2)).
   Included by _kernels_kdtree.pxi after kdtree.h, whose AVX2 dispatch it shares.

   A G^d grid over the columns' quantile bins: bin b of an axis holds the ranks
   [ceil(b n / G), ceil((b + 1) n / G)) of that column's sorted values, so any distribution gives
   about n / G^d points per cell (a fill of fi_gridnd_fill k, tuned). Cell id = sum over axes a of
   b_a G^a; points are stored cell-contiguous, coordinate-major (soa[a * stride + p]), so a row of
   cells along axis 0 is one contiguous range. Bin b of axis a holds values in
   [lo[a G + b], hi[a G + b]] (the sorted values at its first and last rank).

   The radius of the point at storage position q (fi_gridnd_eps): the (k+1)-th smallest distance
   to the points scanned, q itself (distance 0) included, which is the k-th neighbour distance
   without it. A small block of cells around q gives an upper bound eps; then every bin whose
   lower bound (fl(q_a - hi[a G + b]) or fl(lo[a G + b] - q_a): exact bounds, since fl(u - v) is
   monotone) is below eps is added and scanned. Every point nearer than the final radius has
   been scanned, and the distances are the KD-tree's (max over axes of fabs(fl(p_a - q_a))), so
   the radius is bitwise the KD-tree search's k-th distance: only the radius enters the
   algorithm-1 counts, not which neighbours are tied at it. */
#ifndef FASTINFO_GRIDND_H
#define FASTINFO_GRIDND_H

#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kdtree.h"

#define FI_GRIDND_MAX_D 4
/* padding of each coordinate row: a 4-lane load at any position < n stays inside */
#define FI_GRIDND_PAD 4
/* at most this many cells (int32 starts: 256 MiB) */
#define FI_GRIDND_MAX_CELLS ((Py_ssize_t)1 << 26)

typedef struct {
    Py_ssize_t n;
    Py_ssize_t d;          /* 3 or 4 */
    Py_ssize_t G;
    Py_ssize_t stride;     /* >= n + FI_GRIDND_PAD */
    double *lo;            /* (d G) */
    double *hi;            /* (d G) */
    int32_t *cell_start;   /* (G^d + 1) */
    int32_t *cell;         /* (n) cell id of each storage position */
    int32_t *pid;          /* (n) sample index of each storage position */
    double *soa;           /* (d stride) coordinates, cell-contiguous */
} fi_gridnd;

/* Target mean points per cell, in units of k (set by _set_gridnd_fill for tuning). */
static double fi_gridnd_fill = 1.5;

static void fi_gridnd_init(fi_gridnd *g) {
    memset(g, 0, sizeof(*g));
}

static void fi_gridnd_free(fi_gridnd *g) {
    free(g->lo);
    free(g->hi);
    free(g->cell_start);
    free(g->cell);
    free(g->pid);
    free(g->soa);
    fi_gridnd_init(g);
}

static Py_ssize_t fi_gridnd_ipow(Py_ssize_t G, Py_ssize_t d) {
    Py_ssize_t c = 1;
    while (d-- > 0)
        c *= G;
    return c;
}

/* G, the number of bins per axis for n points, d axes and k neighbours
   (1 <= G <= n, G^d <= FI_GRIDND_MAX_CELLS). */
static Py_ssize_t fi_gridnd_side(Py_ssize_t n, Py_ssize_t d, int k) {
    double cells = (double)n / (fi_gridnd_fill * (double)k);
    Py_ssize_t G = (Py_ssize_t)pow(cells > 1.0 ? cells : 1.0, 1.0 / (double)d);
    if (G < 1)
        G = 1;
    while (G > 1 && fi_gridnd_ipow(G, d) > FI_GRIDND_MAX_CELLS)
        G--;
    if (G > n)
        G = n;      /* no empty bin */
    return G;
}

/* The grid over the n points v[d i .. d i + d - 1] (sample order, as the joint array of the
   conditional estimator holds them): rank[a][i] is the rank of v[d i + a] in the sorted column
   sorted[a]. Needs 3 <= d <= 4 and n < 2^31. Returns 0, or -1 when out of memory (the grid is
   freed). */
static int fi_gridnd_build(fi_gridnd *g, const double *v, const int32_t *const *rank,
                           const double *const *sorted, Py_ssize_t n, Py_ssize_t d, int k) {
    Py_ssize_t G, n_cells, i, b, r, r_end, cell, pos, c;
    Py_ssize_t a;
    int32_t *bin_of_rank, *tcell;
    fi_gridnd_init(g);
    G = fi_gridnd_side(n, d, k);
    n_cells = fi_gridnd_ipow(G, d);
    g->n = n;
    g->d = d;
    g->G = G;
    g->stride = n + FI_GRIDND_PAD;
    g->lo = (double *)malloc(d * G * sizeof(double));
    g->hi = (double *)malloc(d * G * sizeof(double));
    g->cell_start = (int32_t *)calloc(n_cells + 1, sizeof(int32_t));
    g->cell = (int32_t *)malloc((n > 0 ? n : 1) * sizeof(int32_t));
    g->pid = (int32_t *)malloc((n > 0 ? n : 1) * sizeof(int32_t));
    g->soa = (double *)calloc(d * g->stride, sizeof(double));
    bin_of_rank = (int32_t *)malloc((n > 0 ? n : 1) * sizeof(int32_t));
    tcell = (int32_t *)malloc((n > 0 ? n : 1) * sizeof(int32_t));
    if (!g->lo || !g->hi || !g->cell_start || !g->cell || !g->pid || !g->soa || !bin_of_rank
            || !tcell) {
        fi_gridnd_free(g);
        free(bin_of_rank);
        free(tcell);
        return -1;
    }
    /* bin b holds the ranks [ceil(b n / G), ceil((b + 1) n / G)) */
    for (b = 0; b < G; b++) {
        r = (b * n + G - 1) / G;
        r_end = ((b + 1) * n + G - 1) / G;
        for (a = 0; a < d; a++) {
            g->lo[a * G + b] = sorted[a][r];
            g->hi[a * G + b] = sorted[a][r_end - 1];
        }
        for (; r < r_end; r++)
            bin_of_rank[r] = (int32_t)b;
    }
    /* counting sort by cell, stable (sample order within a cell) */
    for (i = 0; i < n; i++) {
        cell = 0;
        for (a = d - 1; a >= 0; a--)
            cell = cell * G + bin_of_rank[rank[a][i]];
        tcell[i] = (int32_t)cell;
        g->cell_start[cell + 1]++;
    }
    for (c = 0; c < n_cells; c++)
        g->cell_start[c + 1] += g->cell_start[c];
    for (i = 0; i < n; i++) {
        cell = tcell[i];
        pos = g->cell_start[cell]++;
        for (a = 0; a < d; a++)
            g->soa[a * g->stride + pos] = v[d * i + a];
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
static inline void fi_gridnd_offer(double d, int K, double *best) {
    int j = K - 1;
    while (j > 0 && best[j - 1] > d) {
        best[j] = best[j - 1];
        j--;
    }
    best[j] = d;
}

#ifndef FI_GRIDND_COUNT
#define FI_GRIDND_COUNT(s, e) ((void)0)  /* a hook for instrumented builds (scan statistics) */
#endif

/* The generic search (any k, no SIMD): the K = k + 1 smallest distances in best[0..K-1], each
   point offered in turn; D axes. */
static inline void fi_gridnd_scan_generic(const fi_gridnd *g, Py_ssize_t s, Py_ssize_t e,
                                          const double *qv, int K, double *best, const int D) {
    Py_ssize_t p;
    double dist, t;
    int a;
    FI_GRIDND_COUNT(s, e);
    for (p = s; p < e; p++) {
        dist = 0.0;
        for (a = 0; a < D; a++) {
            t = fabs(g->soa[a * g->stride + p] - qv[a]);
            dist = t > dist ? t : dist;
        }
        if (dist < best[K - 1])
            fi_gridnd_offer(dist, K, best);
    }
}

#define FI_GD_ATTR
#define FI_GD_STATE double *best
#define FI_GD_STATE_ARG best
#define FI_GD_START(K) do { int j_; for (j_ = 0; j_ < (K); j_++) best[j_] = INFINITY; } while (0)
#define FI_GD_SCAN(s, e) fi_gridnd_scan_generic(g, (s), (e), qv, K, best, FI_GD_D)
#define FI_GD_KTH() (best[K - 1])
#define FI_GD_D 3
#define FI_GD_SFX generic3
#include "gridnd_body.h"
#define FI_GD_D 4
#define FI_GD_SFX generic4
#include "gridnd_body.h"
#undef FI_GD_ATTR
#undef FI_GD_STATE
#undef FI_GD_STATE_ARG
#undef FI_GD_START
#undef FI_GD_SCAN
#undef FI_GD_KTH

#if defined(FI_KD_AVX2)
/* The AVX2 search for K = k + 1 <= FI_GRIDND_NET_MAX: four lanes, each keeping its K smallest
   distances ascending in t[0..K-1] with a branch-free insertion network (t[j] = min(max(t[j-1],
   v), t[j]), j descending); the K-th smallest of the union (fi_gridnd_kth4) is needed only twice
   per query. The same multiset of distances as the generic search, so the same K-th value. */
#define FI_GRIDND_NET_MAX 8

__attribute__((target("avx2"), always_inline))
static inline void fi_gridnd_net4(__m256d *t, __m256d v, const int K) {
    int j;
    for (j = K - 1; j > 0; j--)
        t[j] = _mm256_min_pd(_mm256_max_pd(t[j - 1], v), t[j]);
    t[0] = _mm256_min_pd(t[0], v);
}

__attribute__((target("avx2"), always_inline))
static inline void fi_gridnd_scan_net(const fi_gridnd *g, Py_ssize_t s, Py_ssize_t e,
                                      const __m256d *qv4, __m256d *t, const int K, const int D) {
    const __m256d sign = _mm256_set1_pd(-0.0), inf = _mm256_set1_pd(INFINITY);
    const __m256d lane = _mm256_set_pd(3.0, 2.0, 1.0, 0.0);
    Py_ssize_t p;
    int a;
    FI_GRIDND_COUNT(s, e);
    for (p = s; p < e; p += 4) {
        __m256d m = _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(g->soa + p), qv4[0]));
        for (a = 1; a < D; a++)
            m = _mm256_max_pd(m, _mm256_andnot_pd(sign, _mm256_sub_pd(
                _mm256_loadu_pd(g->soa + a * g->stride + p), qv4[a])));
        if (e - p < 4)      /* lanes past the range: +inf, never among the K smallest kept */
            m = _mm256_blendv_pd(m, inf, _mm256_cmp_pd(lane, _mm256_set1_pd((double)(e - p)), _CMP_GE_OQ));
        fi_gridnd_net4(t, m, K);
    }
}

/* The K-th smallest of the four lanes' ascending lists t[0..K-1]: lanes 0 and 1, and 2 and 3,
   merged (their K smallest, ascending; two independent chains), then the two merged lists
   walked to their K-th; branch-free steps (each picks the smaller head by a conditional move). */
__attribute__((target("avx2"), always_inline))
static inline double fi_gridnd_kth4(const __m256d *t, const int K) {
    double a[FI_GRIDND_NET_MAX + 1][4], m01[FI_GRIDND_NET_MAX + 1], m23[FI_GRIDND_NET_MAX + 1];
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

#define FI_GD_ATTR __attribute__((target("avx2"), always_inline))
#define FI_GD_STATE __m256d *t
#define FI_GD_STATE_ARG t
#define FI_GD_START(K) do { int j_; for (j_ = 0; j_ < (K); j_++) t[j_] = _mm256_set1_pd(INFINITY); } while (0)
#define FI_GD_SCAN(s, e) fi_gridnd_scan_net(g, (s), (e), qv4, t, K, FI_GD_D)
#define FI_GD_KTH() fi_gridnd_kth4(t, K)
#define FI_GD_VECTOR 1
#define FI_GD_D 3
#define FI_GD_SFX net3
#include "gridnd_body.h"
#define FI_GD_D 4
#define FI_GD_SFX net4
#include "gridnd_body.h"
#undef FI_GD_ATTR
#undef FI_GD_STATE
#undef FI_GD_STATE_ARG
#undef FI_GD_START
#undef FI_GD_SCAN
#undef FI_GD_KTH
#undef FI_GD_VECTOR

/* one search per (d, K), so that the network's state stays in registers */
#define FI_GD_NET_CASE(D, KK) case KK: { __m256d t[KK]; return fi_gridnd_eps_net##D(g, q, KK, t); }
__attribute__((target("avx2")))
static double fi_gridnd_eps_avx2(const fi_gridnd *g, Py_ssize_t q, int k, double *best) {
    if (g->d == 3) {
        switch (k + 1) {
        FI_GD_NET_CASE(3, 2) FI_GD_NET_CASE(3, 3) FI_GD_NET_CASE(3, 4) FI_GD_NET_CASE(3, 5)
        FI_GD_NET_CASE(3, 6) FI_GD_NET_CASE(3, 7) FI_GD_NET_CASE(3, 8)
        default:
            return fi_gridnd_eps_generic3(g, q, k + 1, best);
        }
    }
    switch (k + 1) {
    FI_GD_NET_CASE(4, 2) FI_GD_NET_CASE(4, 3) FI_GD_NET_CASE(4, 4) FI_GD_NET_CASE(4, 5)
    FI_GD_NET_CASE(4, 6) FI_GD_NET_CASE(4, 7) FI_GD_NET_CASE(4, 8)
    default:
        return fi_gridnd_eps_generic4(g, q, k + 1, best);
    }
}
#undef FI_GD_NET_CASE
#endif

/* The k-th neighbour distance (max-norm, the point itself excluded) of storage position q;
   best: scratch of k + 1 doubles. Needs n > k. */
static double fi_gridnd_eps(const fi_gridnd *g, Py_ssize_t q, int k, double *best) {
#if defined(FI_KD_AVX2)
    if (fi_kd_avx2())
        return fi_gridnd_eps_avx2(g, q, k, best);
#endif
    if (g->d == 3)
        return fi_gridnd_eps_generic3(g, q, k + 1, best);
    return fi_gridnd_eps_generic4(g, q, k + 1, best);
}

/* #{storage positions p in [s, e) : max_a |fl(p_a - q_a)| < r} */
static inline Py_ssize_t fi_gridnd_within_generic(const fi_gridnd *g, Py_ssize_t s, Py_ssize_t e,
                                                  const double *qv, double r) {
    Py_ssize_t p, count = 0;
    Py_ssize_t a;
    double dist, t;
    for (p = s; p < e; p++) {
        dist = 0.0;
        for (a = 0; a < g->d; a++) {
            t = fabs(g->soa[a * g->stride + p] - qv[a]);
            dist = t > dist ? t : dist;
        }
        count += dist < r;
    }
    return count;
}

#if defined(FI_KD_AVX2)
__attribute__((target("avx2")))
static inline Py_ssize_t fi_gridnd_within_avx2(const fi_gridnd *g, Py_ssize_t s, Py_ssize_t e,
                                               const double *qv, double r) {
    const __m256d sign = _mm256_set1_pd(-0.0), rv = _mm256_set1_pd(r);
    Py_ssize_t p, count = 0;
    Py_ssize_t a;
    unsigned mask;
    for (p = s; p < e; p += 4) {
        __m256d m = _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(g->soa + p), _mm256_set1_pd(qv[0])));
        for (a = 1; a < g->d; a++)
            m = _mm256_max_pd(m, _mm256_andnot_pd(sign, _mm256_sub_pd(
                _mm256_loadu_pd(g->soa + a * g->stride + p), _mm256_set1_pd(qv[a]))));
        mask = (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(m, rv, _CMP_LT_OQ));
        if (e - p < 4)
            mask &= (1u << (e - p)) - 1u;
        count += __builtin_popcount(mask);
    }
    return count;
}
#endif

static inline Py_ssize_t fi_gridnd_within(const fi_gridnd *g, Py_ssize_t s, Py_ssize_t e,
                                          const double *qv, double r) {
#if defined(FI_KD_AVX2)
    if (fi_kd_avx2())
        return fi_gridnd_within_avx2(g, s, e, qv, r);
#endif
    return fi_gridnd_within_generic(g, s, e, qv, r);
}

/* The strict range count of storage position q: #{j != q : max_a |fl(p_j,a - q_a)| < r}, the
   KD-tree count's predicate. On each axis, the bins that may hold a point within r ([lo, hi]:
   fl(q - hi[b]) < r on the left, fl(lo[b] - q) < r on the right) and, among them, the bins whose
   every value is within r (fl(q - lo[b]) < r and fl(hi[b] - q) < r: a contiguous range, both
   predicates being monotone in b). A row of cells along axis 0 whose other bins are all of the
   second kind adds its inner cells by their storage bounds, and scans only its end cells; every
   other row in the box is scanned. The same rounded differences decide, so the same count. */
static Py_ssize_t fi_gridnd_count(const fi_gridnd *g, Py_ssize_t q, double r) {
    const Py_ssize_t G = g->G, d = g->d;
    Py_ssize_t lo[FI_GRIDND_MAX_D] = {0}, hi[FI_GRIDND_MAX_D] = {0};
    Py_ssize_t il[FI_GRIDND_MAX_D] = {0}, ir[FI_GRIDND_MAX_D] = {0};
    Py_ssize_t cell = g->cell[q], c, a, c1, c2, c3, row, count = 0;
    double qv[FI_GRIDND_MAX_D];
    int inner;
    if (!(r > 0.0))
        return 0;
    for (a = 0; a < d; a++) {
        const double *blo = g->lo + a * G, *bhi = g->hi + a * G;
        c = cell % G;
        cell /= G;
        qv[a] = g->soa[a * g->stride + q];
        lo[a] = hi[a] = c;
        while (lo[a] > 0 && qv[a] - bhi[lo[a] - 1] < r)
            lo[a]--;
        while (hi[a] < G - 1 && blo[hi[a] + 1] - qv[a] < r)
            hi[a]++;
        il[a] = lo[a];
        while (il[a] <= hi[a] && !(qv[a] - blo[il[a]] < r))
            il[a]++;
        ir[a] = hi[a];
        while (ir[a] >= il[a] && !(bhi[ir[a]] - qv[a] < r))
            ir[a]--;
    }
    if (d == 3) {
        lo[3] = hi[3] = il[3] = ir[3] = 0;
    }
    for (c3 = lo[3]; c3 <= hi[3]; c3++)
        for (c2 = lo[2]; c2 <= hi[2]; c2++)
            for (c1 = lo[1]; c1 <= hi[1]; c1++) {
                row = ((c3 * G + c2) * G + c1) * G;
                inner = il[0] <= ir[0] && c1 >= il[1] && c1 <= ir[1] && c2 >= il[2] && c2 <= ir[2]
                        && c3 >= il[3] && c3 <= ir[3];
                if (inner) {
                    count += g->cell_start[row + ir[0] + 1] - g->cell_start[row + il[0]];
                    count += fi_gridnd_within(g, g->cell_start[row + lo[0]], g->cell_start[row + il[0]], qv, r);
                    count += fi_gridnd_within(g, g->cell_start[row + ir[0] + 1], g->cell_start[row + hi[0] + 1], qv, r);
                } else {
                    count += fi_gridnd_within(g, g->cell_start[row + lo[0]], g->cell_start[row + hi[0] + 1], qv, r);
                }
            }
    return count - 1;   /* q itself, at distance 0 < r */
}

#endif /* FASTINFO_GRIDND_H */

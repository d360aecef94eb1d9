/* fastinfo: the rank-scan count of a 2-D marginal (included by _kernels_kdtree.pxi after kdtree.h).

   A 2-D max-norm range count #{j : |x_j - x_i| < r and |z_j - z_i| < r} is, in each column's
   sorted order, the points whose rank lies in an interval ([a, b) for x, [c, d) for z; found
   by galloping, so with exactly the rounded differences the KD-tree tests). The count is then
   #{ranks t in [a, b) : zrank(point at x-rank t) in [c, d)}, a scan of a contiguous int32 array
   over the shorter of the two intervals: fi_count_in_range. Integer counts: the same whatever
   the order or the vector width. */
#ifndef FASTINFO_RANKSCAN_H
#define FASTINFO_RANKSCAN_H

#include <Python.h>
#include <stdint.h>

/* #{t < n : lo <= v[t] < hi} */
static inline Py_ssize_t fi_count_in_range_scalar(const int32_t *v, Py_ssize_t n, int32_t lo, int32_t hi) {
    const uint32_t width = (uint32_t)(hi - lo);
    Py_ssize_t t, count = 0;
    for (t = 0; t < n; t++)
        count += (uint32_t)(v[t] - lo) < width;
    return count;
}

#if defined(FI_KD_AVX2)
__attribute__((target("avx2")))
static Py_ssize_t fi_count_in_range_avx2(const int32_t *v, Py_ssize_t n, int32_t lo, int32_t hi) {
    /* lo <= v < hi  <=>  (v - lo) as unsigned < width; unsigned compare via the sign-flip trick */
    const __m256i lov = _mm256_set1_epi32(lo);
    const __m256i flip = _mm256_set1_epi32((int32_t)0x80000000u);
    const __m256i wv = _mm256_xor_si256(_mm256_set1_epi32((int32_t)(uint32_t)(hi - lo)), flip);
    __m256i acc = _mm256_setzero_si256();
    Py_ssize_t t = 0, count;
    int32_t lanes[8];
    int j;
    for (; t + 8 <= n; t += 8) {
        __m256i x = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(v + t)), lov);
        /* inside: (x ^ flip) < (w ^ flip) signed, i.e. (w ^ flip) > (x ^ flip): -1 per lane */
        acc = _mm256_sub_epi32(acc, _mm256_cmpgt_epi32(wv, _mm256_xor_si256(x, flip)));
    }   /* a lane counts at most n / 8 < 2^28 points (ranks are int32): no overflow */
    _mm256_storeu_si256((__m256i *)(void *)lanes, acc);
    count = 0;
    for (j = 0; j < 8; j++)
        count += lanes[j];
    return count + fi_count_in_range_scalar(v + t, n - t, lo, hi);
}
#endif

static inline Py_ssize_t fi_count_in_range(const int32_t *v, Py_ssize_t n, int32_t lo, int32_t hi) {
#if defined(FI_KD_AVX2)
    if (fi_kd_use_avx2 && n >= 16)
        return fi_count_in_range_avx2(v, n, lo, hi);
#endif
    return fi_count_in_range_scalar(v, n, lo, hi);
}

/* A bucket index over a sorted column, to start the interval searches near their answers:
   bucket b covers the values [lo + b / scale, lo + (b + 1) / scale) and first[b] is the first
   rank whose value lies at or above its start (first[nb] = n). Only a hint: every interval
   found through it is verified at its ends, and the full search serves when the hint misses. */
typedef struct {
    double lo, scale;
    Py_ssize_t nb;
    int32_t *first;     /* nb + 1 entries */
} fi_rank_index;

static int fi_rank_index_build(fi_rank_index *ix, const double *s, Py_ssize_t n) {
    Py_ssize_t b, t;
    double span;
    ix->first = NULL;
    ix->nb = n / 4 > 1 ? n / 4 : 1;
    ix->lo = n > 0 ? s[0] : 0.0;
    span = n > 0 ? s[n - 1] - s[0] : 0.0;
    ix->scale = span > 0.0 ? (double)ix->nb / span : 0.0;
    if (!(ix->scale > 0.0) || !(ix->scale < 1e300))
        ix->nb = 1, ix->scale = 0.0;
    ix->first = (int32_t *)malloc((size_t)(ix->nb + 1) * sizeof(int32_t));
    if (ix->first == NULL)
        return -1;
    t = 0;
    for (b = 0; b < ix->nb; b++) {
        /* the first rank whose bucket is >= b */
        while (t < n && (Py_ssize_t)((s[t] - ix->lo) * ix->scale) < b)
            t++;
        ix->first[b] = (int32_t)t;
    }
    ix->first[ix->nb] = (int32_t)n;
    return 0;
}

static inline Py_ssize_t fi_rank_bucket(const fi_rank_index *ix, double u) {
    double f = (u - ix->lo) * ix->scale;
    if (!(f > 0.0))
        return 0;
    if (f >= (double)ix->nb)
        return ix->nb - 1;
    return (Py_ssize_t)f;
}

#define FI_WITHIN(diff, r, strict) ((strict) ? ((diff) < (r)) : ((diff) <= (r)))

/* First j in [lo, hi) with v - s[j] within r: the predicate is false then true along j, and true
   at hi - 1. Branch-free. */
static inline Py_ssize_t fi_first_inside_left(const double *s, Py_ssize_t lo, Py_ssize_t hi, double v,
                                              double r, int strict) {
    Py_ssize_t base = lo, len = hi - lo, half;
    while (len > 1) {
        half = len >> 1;
        double diff = v - s[base + half - 1];
        base = FI_WITHIN(diff, r, strict) ? base : base + half;
        len -= half;
    }
    return base + !FI_WITHIN(v - s[base], r, strict);
}

/* First j in [lo, hi] with s[j] - v outside r (hi: none in [lo, hi)); predicate true then false. */
static inline Py_ssize_t fi_first_outside_right(const double *s, Py_ssize_t lo, Py_ssize_t hi, double v,
                                                double r, int strict) {
    Py_ssize_t base = lo, len = hi - lo + 1, half;
    while (len > 1) {
        half = len >> 1;
        double diff = s[base + half - 1] - v;
        base = FI_WITHIN(diff, r, strict) ? base + half : base;
        len -= half;
    }
    if (base < hi)
        base += FI_WITHIN(s[base] - v, r, strict);
    return base;
}

/* The rank interval [*left, *right) of sorted s (length n) around rank: every j with
   fl(s[j] - s[rank]) < r (strict; <= r otherwise) for j >= rank and fl(s[rank] - s[j]) < r for
   j <= rank, the differences the KD-tree and sorted_count_from_rank test (both predicates are
   monotone in j). Branch-free binary searches (comparisons feed conditional moves: no
   mispredictions), started from the bucket index: each boundary is searched between the first
   ranks of the buckets next to v - r (v + r), after checking that it lies there; the whole
   range serves otherwise. */
static inline void fi_rank_interval_indexed(const double *s, Py_ssize_t n, const fi_rank_index *ix,
                                            Py_ssize_t rank, double r, int strict,
                                            Py_ssize_t *left, Py_ssize_t *right) {
    const double v = s[rank];
    Py_ssize_t b, lo, hi;
    /* left end in [lo, hi): s[lo - 1] outside (or lo == 0) and position hi - 1 inside */
    b = fi_rank_bucket(ix, v - r);
    lo = ix->first[b > 0 ? b - 1 : 0];
    hi = ix->first[b + 2 < ix->nb ? b + 2 : ix->nb];
    if (lo > rank) lo = rank;
    if (hi > rank + 1 || hi <= lo) hi = rank + 1;
    if ((lo > 0 && FI_WITHIN(v - s[lo - 1], r, strict)) || !FI_WITHIN(v - s[hi - 1], r, strict))
        lo = 0, hi = rank + 1;
    *left = fi_first_inside_left(s, lo, hi, v, r, strict);
    /* right end in [lo, hi]: position lo - 1 inside and s[hi] outside (or hi == n) */
    b = fi_rank_bucket(ix, v + r);
    lo = ix->first[b > 0 ? b - 1 : 0];
    hi = ix->first[b + 2 < ix->nb ? b + 2 : ix->nb];
    if (lo < rank + 1) lo = rank + 1;
    if (hi < lo) hi = lo;
    if (hi > n) hi = n;
    if (lo > n) lo = n;
    if (!FI_WITHIN(s[lo - 1] - v, r, strict) || (hi < n && FI_WITHIN(s[hi] - v, r, strict)))
        lo = rank + 1, hi = n;
    *right = fi_first_outside_right(s, lo, hi, v, r, strict);
}

#endif /* FASTINFO_RANKSCAN_H */

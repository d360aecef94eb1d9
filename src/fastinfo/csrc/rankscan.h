/* fastinfo: the rank-scan count of a 2-D marginal (included by _kernels_kdtree.pxi after kdtree.h).

   A 2-D max-norm range count #{j : |x_j - x_i| < r and |z_j - z_i| < r} is, in each column's
   sorted order, the points whose rank lies in an interval ([a, b) for x, [c, d) for z; found
   by binary searches started from a bucket index, fi_rank_intervals_multi, with exactly the
   rounded differences the KD-tree tests). The count is then
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

#if defined(FI_KD_AVX2)
/* sixteen lanes, the tail by a masked load (no scalar loop): the scans are short (a KSG radius
   holds tens to hundreds of ranks), so the tail and the horizontal sum matter */
__attribute__((target("avx512f")))
static Py_ssize_t fi_count_in_range_avx512(const int32_t *v, Py_ssize_t n, int32_t lo, int32_t hi) {
    /* lo <= v < hi  <=>  (v - lo) as unsigned < width; two accumulators of -1 per lane inside */
    const __m512i lov = _mm512_set1_epi32(lo);
    const __m512i wv = _mm512_set1_epi32((int32_t)(uint32_t)(hi - lo));
    const __m512i one = _mm512_set1_epi32(1);
    __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512(), x;
    Py_ssize_t t = 0;
    for (; t + 32 <= n; t += 32) {
        x = _mm512_sub_epi32(_mm512_loadu_si512((const void *)(v + t)), lov);
        acc0 = _mm512_mask_add_epi32(acc0, _mm512_cmplt_epu32_mask(x, wv), acc0, one);
        x = _mm512_sub_epi32(_mm512_loadu_si512((const void *)(v + t + 16)), lov);
        acc1 = _mm512_mask_add_epi32(acc1, _mm512_cmplt_epu32_mask(x, wv), acc1, one);
    }   /* a lane counts at most n / 16 < 2^27 points (ranks are int32): no overflow */
    if (t + 16 <= n) {
        x = _mm512_sub_epi32(_mm512_loadu_si512((const void *)(v + t)), lov);
        acc0 = _mm512_mask_add_epi32(acc0, _mm512_cmplt_epu32_mask(x, wv), acc0, one);
        t += 16;
    }
    if (t < n) {
        const __mmask16 tail = (__mmask16)((1u << (n - t)) - 1u);
        x = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(tail, (const void *)(v + t)), lov);
        acc1 = _mm512_mask_add_epi32(acc1, _mm512_mask_cmplt_epu32_mask(tail, x, wv), acc1, one);
    }
    return (Py_ssize_t)_mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
}
#endif

static inline Py_ssize_t fi_count_in_range(const int32_t *v, Py_ssize_t n, int32_t lo, int32_t hi) {
#if defined(FI_KD_AVX2)
    if (fi_kd_use_avx512)
        return fi_count_in_range_avx512(v, n, lo, hi);
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

/* The rank intervals [left[c], right[c]) of C sorted columns s[c] (length n each) around ranks
   rank[c], all within the same r: every j with fl(s[j] - v) < r (strict; <= r otherwise) for
   j >= rank and fl(v - s[j]) < r for j <= rank, v = s[rank], the differences the KD-tree and
   sorted_count_from_rank test (both predicates are monotone in j). Each boundary is searched
   between the first ranks of the buckets next to v - r (v + r), after checking that it lies
   there (the whole side serves otherwise), by a branch-free binary search (comparisons feed
   conditional moves). The 2 C searches advance in one loop, a step of each per iteration, so
   that their loads (dependent chains within one search, independent across searches) overlap
   instead of running one chain after another. A search whose bracket has shrunk to one position keeps reading it
   (half = 0: no change). C <= 4. */
__attribute__((always_inline))
static inline void fi_rank_intervals_multi(const double *const *s, const fi_rank_index *const *ix,
                                           const Py_ssize_t *rank, const int C, Py_ssize_t n,
                                           double r, int strict, Py_ssize_t *left,
                                           Py_ssize_t *right) {
    double v[4];
    Py_ssize_t lbase[4], llen[4], rbase[4], rlen[4], rhi[4], b, lo, hi, half;
    int c, more;
    for (c = 0; c < C; c++) {
        const double *sc = s[c];
        const Py_ssize_t rk = rank[c];
        v[c] = sc[rk];
        /* left end in [lo, hi): s[lo - 1] outside (or lo == 0) and position hi - 1 inside */
        b = fi_rank_bucket(ix[c], v[c] - r);
        lo = ix[c]->first[b > 0 ? b - 1 : 0];
        hi = ix[c]->first[b + 2 < ix[c]->nb ? b + 2 : ix[c]->nb];
        if (lo > rk) lo = rk;
        if (hi > rk + 1 || hi <= lo) hi = rk + 1;
        if ((lo > 0 && FI_WITHIN(v[c] - sc[lo - 1], r, strict)) || !FI_WITHIN(v[c] - sc[hi - 1], r, strict))
            lo = 0, hi = rk + 1;
        lbase[c] = lo;
        llen[c] = hi - lo;
        /* right end in [lo, hi]: position lo - 1 inside and s[hi] outside (or hi == n) */
        b = fi_rank_bucket(ix[c], v[c] + r);
        lo = ix[c]->first[b > 0 ? b - 1 : 0];
        hi = ix[c]->first[b + 2 < ix[c]->nb ? b + 2 : ix[c]->nb];
        if (lo < rk + 1) lo = rk + 1;
        if (hi < lo) hi = lo;
        if (hi > n) hi = n;
        if (lo > n) lo = n;
        if (!FI_WITHIN(sc[lo - 1] - v[c], r, strict) || (hi < n && FI_WITHIN(sc[hi] - v[c], r, strict)))
            lo = rk + 1, hi = n;
        rbase[c] = lo;
        rlen[c] = hi - lo + 1;
        rhi[c] = hi;
    }
    do {
        more = 0;
        for (c = 0; c < C; c++) {
            const double *sc = s[c];
            double diff;
            half = llen[c] >> 1;
            diff = v[c] - sc[lbase[c] + half - (half > 0)];
            lbase[c] = FI_WITHIN(diff, r, strict) ? lbase[c] : lbase[c] + half;
            llen[c] -= half;
            half = rlen[c] >> 1;
            diff = sc[rbase[c] + half - 1] - v[c];      /* half = 0: s[rbase - 1], rbase >= 1 */
            rbase[c] = FI_WITHIN(diff, r, strict) ? rbase[c] + half : rbase[c];
            rlen[c] -= half;
            more |= (llen[c] > 1) | (rlen[c] > 1);
        }
    } while (more);
    for (c = 0; c < C; c++) {
        left[c] = lbase[c] + !FI_WITHIN(v[c] - s[c][lbase[c]], r, strict);
        right[c] = rbase[c] < rhi[c] ? rbase[c] + FI_WITHIN(s[c][rbase[c]] - v[c], r, strict) : rbase[c];
    }
}

#endif /* FASTINFO_RANKSCAN_H */

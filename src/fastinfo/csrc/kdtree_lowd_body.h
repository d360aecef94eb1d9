/* fastinfo: the KD-tree k-NN search and range count for one fixed dimension FI_KD_D (2..7), AVX2.
   Included by kdtree_lowd.h once per dimension, with FI_KD_D and FI_KD_SFX defined. No include
   guard: it is meant to be included more than once.

   The same search as kdtree_knn / kdtree_count in _kernels_kdtree.pxi (same node order, same
   tests on the same rounded differences, so the same neighbours, radii and counts), with the
   dimension a compile-time constant (the coordinate loops unroll) and leaves scanned four points
   at a time from the tree's coordinate-major copy ``soa`` (coordinate c of tree position p at
   soa[c * stride + p]; stride >= n + 3, the padding never counted). */

#define FI_KD_CAT2(a, b) a##b
#define FI_KD_CAT(a, b) FI_KD_CAT2(a, b)
#define FI_KD_FN(name) FI_KD_CAT(name, FI_KD_SFX)

/* max-norm distance from q to the box [lo, hi]: max(0, max_c max(lo_c - q_c, q_c - hi_c)) */
static inline double FI_KD_FN(fi_kd_box_min_)(const double *q, const double *lo, const double *hi) {
    double r = 0.0, a, b;
    int c;
    for (c = 0; c < FI_KD_D; c++) {
        a = lo[c] - q[c];
        b = q[c] - hi[c];
        a = b > a ? b : a;
        r = a > r ? a : r;
    }
    return r;
}

#if FI_KD_D >= 4
/* From 4-D on, the box tests take the coordinates as two 4-lane vectors, 0..3 and D-4..D-1
   (they overlap below 8-D; a maximum, an "any" and an "all" test are the same over the overlap),
   with the same differences as the scalar loop, so the same results. */
#define FI_KD_HI_OFF (FI_KD_D - 4)

/* fi_kd_box_min_ from the query's two vectors q0 = q[0:4], q1 = q[D-4:D] */
__attribute__((target("avx2")))
static inline double FI_KD_FN(fi_kd_box_min_v_)(__m256d q0, __m256d q1, const double *lo,
                                                const double *hi) {
    __m256d m = _mm256_max_pd(
        _mm256_max_pd(_mm256_sub_pd(_mm256_loadu_pd(lo), q0), _mm256_sub_pd(q0, _mm256_loadu_pd(hi))),
        _mm256_max_pd(_mm256_sub_pd(_mm256_loadu_pd(lo + FI_KD_HI_OFF), q1),
                      _mm256_sub_pd(q1, _mm256_loadu_pd(hi + FI_KD_HI_OFF))));
    __m128d h = _mm_max_pd(_mm256_castpd256_pd128(m), _mm256_extractf128_pd(m, 1));
    h = _mm_max_sd(h, _mm_unpackhi_pd(h, h));
    return _mm_cvtsd_f64(_mm_max_sd(h, _mm_setzero_pd()));
}
#define FI_KD_BOX_MIN(lo_, hi_) FI_KD_FN(fi_kd_box_min_v_)(q0v, q1v, lo_, hi_)
#else
#define FI_KD_BOX_MIN(lo_, hi_) FI_KD_FN(fi_kd_box_min_)(qp, lo_, hi_)
#endif

/* Four tree positions p..p+3 from the coordinate-major copy: their max-norm distances to q. */
__attribute__((target("avx2")))
static inline __m256d FI_KD_FN(fi_kd_dist4_)(const double *soa, Py_ssize_t stride, Py_ssize_t p,
                                             const __m256d *qv) {
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d m = _mm256_setzero_pd();
    int c;
    for (c = 0; c < FI_KD_D; c++)
        m = _mm256_max_pd(m, _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(soa + c * stride + p), qv[c])));
    return m;
}

__attribute__((target("avx2")))
static inline void FI_KD_FN(fi_kd_knn_leaf_)(const double *soa, Py_ssize_t stride,
                                             const Py_ssize_t *index, Py_ssize_t s, Py_ssize_t e,
                                             Py_ssize_t q, const __m256d *qv, int k,
                                             double *best_d, Py_ssize_t *best_p,
                                             Py_ssize_t *best_i) {
    double dist[4];
    Py_ssize_t p;
    unsigned mask;
    int j;
    for (p = s; p < e; p += 4) {
        __m256d m = FI_KD_FN(fi_kd_dist4_)(soa, stride, p, qv);
        /* candidates: dist <= worst (the scalar scan skips dist > worst), inside [s, e), not q */
        mask = (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(m, _mm256_set1_pd(best_d[k - 1]), _CMP_LE_OQ));
        if (e - p < 4)
            mask &= (1u << (e - p)) - 1u;
        if (q >= p && q < p + 4)
            mask &= ~(1u << (q - p));
        if (!mask)
            continue;
        _mm256_storeu_pd(dist, m);
        while (mask) {
            j = __builtin_ctz(mask);
            mask &= mask - 1u;
            /* the worst distance may have shrunk since the vector compare */
            if (dist[j] > best_d[k - 1])
                continue;
            fi_kd_insert(dist[j], p + j, index[p + j], k, best_d, best_p, best_i);
        }
    }
}

/* The k nearest neighbours of tree position q, as kdtree_knn (bottom-up: q's leaf, then each
   sibling subtree within the current k-th distance, nearer child first). */
__attribute__((target("avx2")))
static double FI_KD_FN(fi_kd_knn_)(const double *pts, const double *soa, Py_ssize_t stride,
                                   const Py_ssize_t *index, const double *lo, const double *hi,
                                   const Py_ssize_t *start, const Py_ssize_t *end,
                                   Py_ssize_t n_nodes, Py_ssize_t q, int k, double *best_d,
                                   Py_ssize_t *best_p, Py_ssize_t *best_i, Py_ssize_t *stack,
                                   double *stack_d) {
    const double *qp = pts + FI_KD_D * q;
    __m256d qv[FI_KD_D];
    Py_ssize_t node, sibling, top, child, cur;
    double bd, bd2, worst;
    int j, c;
#if FI_KD_D >= 4
    const __m256d q0v = _mm256_loadu_pd(qp), q1v = _mm256_loadu_pd(qp + FI_KD_HI_OFF);
#endif
    for (c = 0; c < FI_KD_D; c++)
        qv[c] = _mm256_set1_pd(qp[c]);
    for (j = 0; j < k; j++) {
        best_d[j] = INFINITY;
        best_p[j] = -1;
        best_i[j] = PY_SSIZE_T_MAX;
    }
    node = 0;
    while (2 * node + 1 < n_nodes)
        node = q < start[2 * node + 2] ? 2 * node + 1 : 2 * node + 2;
    FI_KD_FN(fi_kd_knn_leaf_)(soa, stride, index, start[node], end[node], q, qv, k, best_d, best_p, best_i);
    while (node > 0) {
        sibling = (node & 1) ? node + 1 : node - 1;
        node = (node - 1) / 2;
        if (FI_KD_BOX_MIN(lo + FI_KD_D * sibling, hi + FI_KD_D * sibling) > best_d[k - 1])
            continue;
        stack[0] = sibling;
        stack_d[0] = 0.0;
        top = 1;
        while (top > 0) {
            top--;
            worst = best_d[k - 1];
            if (stack_d[top] > worst)
                continue;
            cur = stack[top];
            child = 2 * cur + 1;
            if (child >= n_nodes) {
                FI_KD_FN(fi_kd_knn_leaf_)(soa, stride, index, start[cur], end[cur], q, qv, k,
                                          best_d, best_p, best_i);
                continue;
            }
            bd = FI_KD_BOX_MIN(lo + FI_KD_D * child, hi + FI_KD_D * child);
            bd2 = FI_KD_BOX_MIN(lo + FI_KD_D * (child + 1), hi + FI_KD_D * (child + 1));
            if (bd <= bd2) {
                if (bd2 <= worst) {
                    stack[top] = child + 1;
                    stack_d[top] = bd2;
                    top++;
                }
                if (bd <= worst) {
                    stack[top] = child;
                    stack_d[top] = bd;
                    top++;
                }
            } else {
                if (bd <= worst) {
                    stack[top] = child;
                    stack_d[top] = bd;
                    top++;
                }
                if (bd2 <= worst) {
                    stack[top] = child + 1;
                    stack_d[top] = bd2;
                    top++;
                }
            }
        }
    }
    return best_d[k - 1];
}

/* #{tree points p : max_c |fl(p_c - q_c)| < r}, r > 0 (the strict count; kdtree_count turns
   a non-strict one into it), as kdtree_count: a node is skipped when its nearest point is not
   within r, counted whole when its farthest corner is, else split; leaves scanned four points
   at a time. */
__attribute__((target("avx2")))
static Py_ssize_t FI_KD_FN(fi_kd_count_)(const double *soa, Py_ssize_t stride, const double *lo,
                                         const double *hi, const Py_ssize_t *start,
                                         const Py_ssize_t *end, Py_ssize_t n_nodes,
                                         const double *qp, double r, Py_ssize_t *stack) {
    const __m256d rv = _mm256_set1_pd(r);
    __m256d qv[FI_KD_D];
    __m256i acc = _mm256_setzero_si256();
    Py_ssize_t node, top = 1, count = 0, p, s, e;
#if FI_KD_D < 4
    double mn, mx, a, b;
#endif
    int c;
    unsigned mask;
#if FI_KD_D >= 4
    const __m256d q0v = _mm256_loadu_pd(qp), q1v = _mm256_loadu_pd(qp + FI_KD_HI_OFF);
    const __m256d nrv = _mm256_set1_pd(-r);
#endif
    for (c = 0; c < FI_KD_D; c++)
        qv[c] = _mm256_set1_pd(qp[c]);
    stack[0] = 0;
    while (top > 0) {
        node = stack[--top];
#if FI_KD_D >= 4
        {
            const double *l = lo + FI_KD_D * node, *h = hi + FI_KD_D * node;
            const __m256d l0 = _mm256_loadu_pd(l), l1 = _mm256_loadu_pd(l + FI_KD_HI_OFF);
            const __m256d h0 = _mm256_loadu_pd(h), h1 = _mm256_loadu_pd(h + FI_KD_HI_OFF);
            const __m256d a0 = _mm256_sub_pd(l0, q0v), b0 = _mm256_sub_pd(q0v, h0);  /* fl(lo - q), fl(q - hi) */
            const __m256d a1 = _mm256_sub_pd(l1, q1v), b1 = _mm256_sub_pd(q1v, h1);
            /* nearest point not within r: some lo - q or q - hi >= r */
            if (_mm256_movemask_pd(_mm256_cmp_pd(_mm256_max_pd(_mm256_max_pd(a0, b0), _mm256_max_pd(a1, b1)),
                                                 rv, _CMP_GE_OQ)))
                continue;
            s = start[node];
            e = end[node];
            /* farthest corner within r: every -a < r and -b < r, i.e. min(a, b) > -r (negation
               is exact) */
            if (_mm256_movemask_pd(_mm256_cmp_pd(_mm256_min_pd(_mm256_min_pd(a0, b0), _mm256_min_pd(a1, b1)),
                                                 nrv, _CMP_GT_OQ)) == 15) {
                count += e - s;
                continue;
            }
        }
#else
        mn = 0.0;
        mx = 0.0;
        for (c = 0; c < FI_KD_D; c++) {
            a = lo[FI_KD_D * node + c] - qp[c];
            b = qp[c] - hi[FI_KD_D * node + c];
            mn = a > mn ? a : mn;
            mn = b > mn ? b : mn;
            mx = -a > mx ? -a : mx;
            mx = -b > mx ? -b : mx;
        }
        if (mn >= r)
            continue;
        s = start[node];
        e = end[node];
        if (mx < r) {
            count += e - s;
            continue;
        }
#endif
        if (2 * node + 1 < n_nodes) {
            stack[top] = 2 * node + 1;
            stack[top + 1] = 2 * node + 2;
            top += 2;
            continue;
        }
        for (p = s; p + 4 <= e; p += 4)
            acc = _mm256_sub_epi64(acc, _mm256_castpd_si256(_mm256_cmp_pd(
                FI_KD_FN(fi_kd_dist4_)(soa, stride, p, qv), rv, _CMP_LT_OQ)));
        if (p < e) {
            mask = (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(
                FI_KD_FN(fi_kd_dist4_)(soa, stride, p, qv), rv, _CMP_LT_OQ));
            count += __builtin_popcount(mask & ((1u << (e - p)) - 1u));
        }
    }
    count += _mm256_extract_epi64(acc, 0) + _mm256_extract_epi64(acc, 1)
             + _mm256_extract_epi64(acc, 2) + _mm256_extract_epi64(acc, 3);
    return count;
}

#undef FI_KD_BOX_MIN
#undef FI_KD_HI_OFF
#undef FI_KD_FN
#undef FI_KD_CAT
#undef FI_KD_CAT2
#undef FI_KD_D
#undef FI_KD_SFX

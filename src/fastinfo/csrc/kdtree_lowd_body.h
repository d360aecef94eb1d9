/* fastinfo: the KD-tree k-NN search and range count for one fixed dimension FI_KD_D (2..7) and
   one vector width FI_KD_W: 4 (AVX2) or 8 (AVX-512F, the leaf scans eight points at a time).
   Included by kdtree_lowd.h once per dimension and width, with FI_KD_D, FI_KD_W and FI_KD_SFX
   defined. No include guard: it is meant to be included more than once.

   The neighbours, radii and counts of kdtree_knn / kdtree_count in _kernels_kdtree.pxi (the same
   tests on the same rounded differences), with the dimension a compile-time constant (the
   coordinate loops unroll), the tree walked eight nodes per box test (the per-level copy of the
   boxes, fi_kd_group_boxes in kdtree_lowd.h) and leaves scanned FI_KD_W points at a time from the
   tree's coordinate-major copy ``soa`` (coordinate c of tree position p at soa[c * stride + p];
   stride >= n + 7, the padding never counted). The two widths visit the same nodes and insert
   the same candidates in the same order (a candidate is inserted when its distance is within the
   current k-th one; the vector compare against the k-th distance at the start of a group only
   pre-filters). */

#define FI_KD_CAT2(a, b) a##b
#define FI_KD_CAT(a, b) FI_KD_CAT2(a, b)
#define FI_KD_FN(name) FI_KD_CAT(name, FI_KD_SFX)

#if FI_KD_W == 8
#define FI_KD_TARGET __attribute__((target("avx512f")))
#define FI_KD_VEC __m512d
#define FI_KD_SET1 _mm512_set1_pd
#else
#define FI_KD_TARGET __attribute__((target("avx2")))
#define FI_KD_VEC __m256d
#define FI_KD_SET1 _mm256_set1_pd
#endif

#if FI_KD_W == 8
/* Eight tree positions p..p+7 from the coordinate-major copy: their max-norm distances to q. */
FI_KD_TARGET
static inline __m512d FI_KD_FN(fi_kd_dist_)(const double *soa, Py_ssize_t stride, Py_ssize_t p,
                                            const __m512d *qv) {
    __m512d m = _mm512_abs_pd(_mm512_sub_pd(_mm512_loadu_pd(soa + p), qv[0]));
    int c;
    for (c = 1; c < FI_KD_D; c++)
        m = _mm512_max_pd(m, _mm512_abs_pd(_mm512_sub_pd(_mm512_loadu_pd(soa + c * stride + p), qv[c])));
    return m;
}

/* the lanes of a group at p that lie inside [p, e) */
#define FI_KD_LANES(p_, e_) ((e_) - (p_) >= 8 ? 0xFFu : (1u << ((e_) - (p_))) - 1u)
#define FI_KD_KNN_MASK(m_, worst_) \
    ((unsigned)_mm512_cmp_pd_mask((m_), _mm512_set1_pd(worst_), _CMP_LE_OQ))
#define FI_KD_STORE _mm512_storeu_pd
#else
/* Four tree positions p..p+3 from the coordinate-major copy: their max-norm distances to q. */
FI_KD_TARGET
static inline __m256d FI_KD_FN(fi_kd_dist_)(const double *soa, Py_ssize_t stride, Py_ssize_t p,
                                            const __m256d *qv) {
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d m = _mm256_setzero_pd();
    int c;
    for (c = 0; c < FI_KD_D; c++)
        m = _mm256_max_pd(m, _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(soa + c * stride + p), qv[c])));
    return m;
}

#define FI_KD_LANES(p_, e_) ((e_) - (p_) >= 4 ? 0xFu : (1u << ((e_) - (p_))) - 1u)
#define FI_KD_KNN_MASK(m_, worst_) \
    ((unsigned)_mm256_movemask_pd(_mm256_cmp_pd((m_), _mm256_set1_pd(worst_), _CMP_LE_OQ)))
#define FI_KD_STORE _mm256_storeu_pd
#endif

FI_KD_TARGET
static inline void FI_KD_FN(fi_kd_knn_leaf_)(const double *soa, Py_ssize_t stride,
                                             const Py_ssize_t *index, Py_ssize_t s, Py_ssize_t e,
                                             Py_ssize_t q, const FI_KD_VEC *qv, int k,
                                             double *best_d, Py_ssize_t *best_p,
                                             Py_ssize_t *best_i) {
    double dist[FI_KD_W];
    Py_ssize_t p;
    unsigned mask;
    int j;
    for (p = s; p < e; p += FI_KD_W) {
        FI_KD_VEC m = FI_KD_FN(fi_kd_dist_)(soa, stride, p, qv);
        /* candidates: dist <= worst (the scalar scan skips dist > worst), inside [s, e), not q */
        mask = FI_KD_KNN_MASK(m, best_d[k - 1]) & FI_KD_LANES(p, e);
        if (q >= p && q < p + FI_KD_W)
            mask &= ~(1u << (q - p));
        if (!mask)
            continue;
        FI_KD_STORE(dist, m);
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

/* The boxes of up to eight sibling nodes at once, the nodes first, first + 1, ... of ``level``,
   from the per-level coordinate-major copy of the boxes ``gbox`` (fi_kd_group_boxes: lower bound
   c of the i-th node at g[c * row + i], upper bound at g[(FI_KD_D + c) * row + i], g the first
   node's lower bound of coordinate 0, row the number of nodes of the level). For each node, near[i] = max(0, max_c max(fl(lo_c - q_c),
   fl(q_c - hi_c))) (the distance to its nearest point, as _box_min_dist) and, when far is not
   NULL, far[i] = min_c min(fl(lo_c - q_c), fl(q_c - hi_c)) (the farthest corner is within r
   exactly when far > -r). Lanes past the group's nodes hold garbage; callers mask them. */
FI_KD_TARGET
static inline void FI_KD_FN(fi_kd_group_)(const double *gbox, Py_ssize_t first, int level,
                                          const FI_KD_VEC *qv, double *near, double *far) {
    const double *g = gbox + fi_kd_group_offset(first, level, FI_KD_D);
    const Py_ssize_t row = (Py_ssize_t)1 << level;
    int c;
#if FI_KD_W == 8
    __m512d m = _mm512_setzero_pd(), f = _mm512_set1_pd(INFINITY), a, b;
    for (c = 0; c < FI_KD_D; c++) {
        a = _mm512_sub_pd(_mm512_loadu_pd(g + c * row), qv[c]);
        b = _mm512_sub_pd(qv[c], _mm512_loadu_pd(g + (FI_KD_D + c) * row));
        m = _mm512_max_pd(m, _mm512_max_pd(a, b));
        if (far != NULL)
            f = _mm512_min_pd(f, _mm512_min_pd(a, b));
    }
    _mm512_storeu_pd(near, m);
    if (far != NULL)
        _mm512_storeu_pd(far, f);
#else
    int h;
    __m256d m, f, a, b;
    for (h = 0; h < 8; h += 4) {
        m = _mm256_setzero_pd();
        f = _mm256_set1_pd(INFINITY);
        for (c = 0; c < FI_KD_D; c++) {
            a = _mm256_sub_pd(_mm256_loadu_pd(g + c * row + h), qv[c]);
            b = _mm256_sub_pd(qv[c], _mm256_loadu_pd(g + (FI_KD_D + c) * row + h));
            m = _mm256_max_pd(m, _mm256_max_pd(a, b));
            if (far != NULL)
                f = _mm256_min_pd(f, _mm256_min_pd(a, b));
        }
        _mm256_storeu_pd(near + h, m);
        if (far != NULL)
            _mm256_storeu_pd(far + h, f);
    }
#endif
}

/* The k nearest neighbours of tree position q, as kdtree_knn: q's leaf first (a tight k-th
   distance at once), then the tree top down, eight nodes per box test (the nodes three levels
   below a node, see fi_kd_groups), the nearer ones first, each node or leaf skipped when its box
   is farther than the current k-th distance. The k-buffer keeps the k smallest (distance, sample
   index) pairs of the points offered to it, whatever their order, and every point that belongs
   there is offered (a skipped box has every point farther than the k-th distance), so the
   result is the binary tree walk's. */
FI_KD_TARGET
static double FI_KD_FN(fi_kd_knn_)(const double *pts, const double *soa, Py_ssize_t stride,
                                   const Py_ssize_t *index, const double *gbox,
                                   const Py_ssize_t *start, const Py_ssize_t *end,
                                   Py_ssize_t n_nodes, Py_ssize_t q, int k, double *best_d,
                                   Py_ssize_t *best_p, Py_ssize_t *best_i, Py_ssize_t *stack,
                                   double *stack_d) {
    const double *qp = pts + FI_KD_D * q;
    const int depth = fi_kd_depth(n_nodes);
    FI_KD_VEC qv[FI_KD_D];
    double near[8];
    int order[8];
    Py_ssize_t own, v, first, top, u;
    unsigned mask;
    int j, c, level, n_children, n_order;
    for (c = 0; c < FI_KD_D; c++)
        qv[c] = FI_KD_SET1(qp[c]);
    for (j = 0; j < k; j++) {
        best_d[j] = INFINITY;
        best_p[j] = -1;
        best_i[j] = PY_SSIZE_T_MAX;
    }
    own = 0;
    while (2 * own + 1 < n_nodes)
        own = q < start[2 * own + 2] ? 2 * own + 1 : 2 * own + 2;
    FI_KD_FN(fi_kd_knn_leaf_)(soa, stride, index, start[own], end[own], q, qv, k, best_d, best_p, best_i);
    if (depth == 0)
        return best_d[k - 1];
    stack[0] = 0;
    stack_d[0] = 0.0;
    top = 1;
    while (top > 0) {
        top--;
        if (stack_d[top] > best_d[k - 1])
            continue;
        v = stack[top];
        n_children = fi_kd_group_of(v, depth, &first, &level);
        FI_KD_FN(fi_kd_group_)(gbox, first, level, qv, near, NULL);
        mask = 0;
        for (j = 0; j < n_children; j++)
            mask |= (unsigned)(near[j] <= best_d[k - 1]) << j;
        n_order = fi_kd_sort_lanes(near, mask, order);
        if (level == depth) {
            /* leaves, nearest first */
            for (j = 0; j < n_order; j++) {
                u = first + order[j];
                if (u == own || near[order[j]] > best_d[k - 1])
                    continue;
                FI_KD_FN(fi_kd_knn_leaf_)(soa, stride, index, start[u], end[u], q, qv, k,
                                          best_d, best_p, best_i);
            }
        } else {
            /* pushed farthest first, so the nearest is searched first */
            for (j = n_order - 1; j >= 0; j--) {
                stack[top] = first + order[j];
                stack_d[top] = near[order[j]];
                top++;
            }
        }
    }
    return best_d[k - 1];
}

#if FI_KD_W == 8
#define FI_KD_IVEC __m512i
#define FI_KD_IZERO _mm512_setzero_si512
#else
#define FI_KD_IVEC __m256i
#define FI_KD_IZERO _mm256_setzero_si256
#endif

/* #{tree positions p in [s, e) : max_c |fl(p_c - q_c)| < r}: full groups counted into the lanes
   of *acc, the last partial group returned */
FI_KD_TARGET
static inline Py_ssize_t FI_KD_FN(fi_kd_count_leaf_)(const double *soa, Py_ssize_t stride,
                                                     Py_ssize_t s, Py_ssize_t e, const FI_KD_VEC *qv,
                                                     FI_KD_VEC rv, FI_KD_IVEC *acc) {
    Py_ssize_t p;
#if FI_KD_W == 8
    const __m512i one = _mm512_set1_epi64(1);
    __m512i a = *acc;
    for (p = s; p + 8 <= e; p += 8)
        a = _mm512_mask_add_epi64(a, _mm512_cmp_pd_mask(FI_KD_FN(fi_kd_dist_)(soa, stride, p, qv), rv,
                                                        _CMP_LT_OQ), a, one);
    *acc = a;
    if (p < e)
        return __builtin_popcount((unsigned)_mm512_cmp_pd_mask(FI_KD_FN(fi_kd_dist_)(soa, stride, p, qv),
                                                               rv, _CMP_LT_OQ) & FI_KD_LANES(p, e));
#else
    __m256i a = *acc;
    for (p = s; p + 4 <= e; p += 4)
        a = _mm256_sub_epi64(a, _mm256_castpd_si256(_mm256_cmp_pd(FI_KD_FN(fi_kd_dist_)(soa, stride, p, qv),
                                                                  rv, _CMP_LT_OQ)));
    *acc = a;
    if (p < e)
        return __builtin_popcount((unsigned)_mm256_movemask_pd(_mm256_cmp_pd(
                   FI_KD_FN(fi_kd_dist_)(soa, stride, p, qv), rv, _CMP_LT_OQ)) & FI_KD_LANES(p, e));
#endif
    return 0;
}

/* the sum of the lanes of a count accumulator */
FI_KD_TARGET
static inline Py_ssize_t FI_KD_FN(fi_kd_count_sum_)(FI_KD_IVEC acc) {
#if FI_KD_W == 8
    return _mm512_reduce_add_epi64(acc);
#else
    return _mm256_extract_epi64(acc, 0) + _mm256_extract_epi64(acc, 1)
           + _mm256_extract_epi64(acc, 2) + _mm256_extract_epi64(acc, 3);
#endif
}

/* #{tree points p : max_c |fl(p_c - q_c)| < r}, r > 0 (the strict count; kdtree_count turns
   a non-strict one into it), as kdtree_count: a node is skipped when its nearest point is not
   within r, counted whole when its farthest corner is, else split; the tree walked top down,
   eight nodes per box test (fi_kd_group_), leaves scanned FI_KD_W points at a time. */
FI_KD_TARGET
static Py_ssize_t FI_KD_FN(fi_kd_count_)(const double *soa, Py_ssize_t stride, const double *gbox,
                                         const Py_ssize_t *start, const Py_ssize_t *end,
                                         Py_ssize_t n_nodes, const double *qp, double r,
                                         Py_ssize_t *stack) {
    const int depth = fi_kd_depth(n_nodes);
    FI_KD_VEC qv[FI_KD_D];
    double near[8], far[8];
    const FI_KD_VEC rv = FI_KD_SET1(r);
    FI_KD_IVEC acc = FI_KD_IZERO();
    Py_ssize_t v, top, count = 0, first, u;
    unsigned mask;
    int j, c, level, n_children;
    for (c = 0; c < FI_KD_D; c++)
        qv[c] = FI_KD_SET1(qp[c]);
    /* the root: the group of one node at level 0 */
    FI_KD_FN(fi_kd_group_)(gbox, 0, 0, qv, near, far);
    if (near[0] >= r)
        return 0;
    if (far[0] > -r)
        return end[0] - start[0];
    if (depth == 0)
        return FI_KD_FN(fi_kd_count_leaf_)(soa, stride, start[0], end[0], qv, rv, &acc)
               + FI_KD_FN(fi_kd_count_sum_)(acc);
    top = 0;
    stack[top++] = 0;
    while (top > 0) {
        v = stack[--top];
        n_children = fi_kd_group_of(v, depth, &first, &level);
        FI_KD_FN(fi_kd_group_)(gbox, first, level, qv, near, far);
        mask = 0;
        for (j = 0; j < n_children; j++) {
            u = first + j;
            if (near[j] >= r)
                continue;
            if (far[j] > -r)
                count += end[u] - start[u];
            else
                mask |= 1u << j;
        }
        while (mask) {
            j = __builtin_ctz(mask);
            mask &= mask - 1u;
            if (level < depth)
                stack[top++] = first + j;
            else
                count += FI_KD_FN(fi_kd_count_leaf_)(soa, stride, start[first + j], end[first + j],
                                                     qv, rv, &acc);
        }
    }
    return count + FI_KD_FN(fi_kd_count_sum_)(acc);
}

#undef FI_KD_IVEC
#undef FI_KD_IZERO
#undef FI_KD_LANES
#undef FI_KD_KNN_MASK
#undef FI_KD_STORE
#undef FI_KD_TARGET
#undef FI_KD_VEC
#undef FI_KD_SET1
#undef FI_KD_W
#undef FI_KD_FN
#undef FI_KD_CAT
#undef FI_KD_CAT2
#undef FI_KD_D
#undef FI_KD_SFX

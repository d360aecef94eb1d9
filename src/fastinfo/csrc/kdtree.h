/* fastinfo: KD-tree k-NN buffer insert and the AVX2 4-D range count / 8-D k-NN searches (included by _kernels_kdtree.pxi). */
#ifndef FASTINFO_KDTREE_H
#define FASTINFO_KDTREE_H

#include <Python.h>

#include <string.h>
#include <math.h>

/* Insert (dist, sample) into the k-buffer ordered by (distance, sample index). */
static inline void fi_kd_insert(double dist, Py_ssize_t p, Py_ssize_t sample, int k,
                                double *best_d, Py_ssize_t *best_p, Py_ssize_t *best_i) {
    int j;
    if (dist == best_d[k - 1] && sample > best_i[k - 1])
        return;
    j = k - 1;
    while (j > 0 && (best_d[j - 1] > dist || (best_d[j - 1] == dist && best_i[j - 1] > sample))) {
        best_d[j] = best_d[j - 1];
        best_p[j] = best_p[j - 1];
        best_i[j] = best_i[j - 1];
        j--;
    }
    best_d[j] = dist;
    best_p[j] = p;
    best_i[j] = sample;
}

/* AVX2 versions of kdtree_count (4-D) and kdtree_knn (8-D), chosen at run time when the
   CPU has AVX2 (fi_kd_init_dispatch, called once at import). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(FI_NO_CLONES) && (defined(__clang__) ? (__clang_major__ >= 14) : (__GNUC__ >= 11))
#define FI_KD_AVX2 1
#include <immintrin.h>
static int fi_kd_use_avx2 = 0;
/* AVX-512F for the rank scans' int32 range count (rankscan.h) and the 8-lane leaf scans of the
   fixed-dimension trees (kdtree_lowd.h): only with the AVX2 paths on */
static int fi_kd_use_avx512 = 0;
static int fi_kd_want_avx512 = 1;
static void fi_kd_init_dispatch(void) {
    __builtin_cpu_init();
    fi_kd_use_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    fi_kd_use_avx512 = fi_kd_use_avx2 && fi_kd_want_avx512 && __builtin_cpu_supports("avx512f") ? 1 : 0;
}

__attribute__((target("avx2")))
static Py_ssize_t fi_kd_count4_avx2(const double *pts, const double *lo, const double *hi,
                                    const Py_ssize_t *start, const Py_ssize_t *end,
                                    Py_ssize_t n_nodes, const double *q, double r,
                                    Py_ssize_t *stack) {
    const __m256d qv = _mm256_loadu_pd(q), rv = _mm256_set1_pd(r);
    const __m256d nrv = _mm256_set1_pd(-r), sign = _mm256_set1_pd(-0.0);
    __m256d a, b, m0, m1, m2, m3;
    __m256i acc = _mm256_setzero_si256();
    Py_ssize_t node, top = 1, count = 0, p, e;
    stack[0] = 0;
    while (top > 0) {
        node = stack[--top];
        a = _mm256_sub_pd(_mm256_loadu_pd(lo + 4 * node), qv);     /* fl(lo - q) */
        b = _mm256_sub_pd(qv, _mm256_loadu_pd(hi + 4 * node));     /* fl(q - hi) */
        if (_mm256_movemask_pd(_mm256_cmp_pd(_mm256_max_pd(a, b), rv, _CMP_GE_OQ)))
            continue;
        /* farthest corner: -a < r and -b < r, i.e. min(a, b) > -r (negation is exact) */
        if (_mm256_movemask_pd(_mm256_cmp_pd(_mm256_min_pd(a, b), nrv, _CMP_GT_OQ)) == 15) {
            count += end[node] - start[node];
            continue;
        }
        if (2 * node + 1 < n_nodes) {
            stack[top] = 2 * node + 1;
            stack[top + 1] = 2 * node + 2;
            top += 2;
            continue;
        }
        e = end[node];
        p = start[node];
        /* four points per step: the per-lane tests of points 0..3 are and-folded by
           unpack/permute to one lane per point, and -1 lanes are summed. */
        for (; p + 4 <= e; p += 4) {
            m0 = _mm256_cmp_pd(_mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(pts + 4 * p), qv)), rv, _CMP_LT_OQ);
            m1 = _mm256_cmp_pd(_mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(pts + 4 * p + 4), qv)), rv, _CMP_LT_OQ);
            m2 = _mm256_cmp_pd(_mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(pts + 4 * p + 8), qv)), rv, _CMP_LT_OQ);
            m3 = _mm256_cmp_pd(_mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(pts + 4 * p + 12), qv)), rv, _CMP_LT_OQ);
            /* [m0_0 & m0_1, m1_0 & m1_1, m0_2 & m0_3, m1_2 & m1_3] and likewise for 2, 3 */
            m0 = _mm256_and_pd(_mm256_unpacklo_pd(m0, m1), _mm256_unpackhi_pd(m0, m1));
            m2 = _mm256_and_pd(_mm256_unpacklo_pd(m2, m3), _mm256_unpackhi_pd(m2, m3));
            m0 = _mm256_and_pd(_mm256_permute2f128_pd(m0, m2, 0x20),
                               _mm256_permute2f128_pd(m0, m2, 0x31));
            acc = _mm256_sub_epi64(acc, _mm256_castpd_si256(m0));
        }
        for (; p < e; p++) {
            a = _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(pts + 4 * p), qv));
            count += _mm256_movemask_pd(_mm256_cmp_pd(a, rv, _CMP_LT_OQ)) == 15;
        }
    }
    count += _mm256_extract_epi64(acc, 0) + _mm256_extract_epi64(acc, 1)
             + _mm256_extract_epi64(acc, 2) + _mm256_extract_epi64(acc, 3);
    return count;
}

__attribute__((target("avx2")))
static inline void fi_kd_knn_leaf8_avx2(const double *pts, const Py_ssize_t *index, Py_ssize_t s,
                                 Py_ssize_t e, Py_ssize_t q, const double *qp, int k,
                                 double *best_d, Py_ssize_t *best_p, Py_ssize_t *best_i) {
    const __m256d q0 = _mm256_loadu_pd(qp), q1 = _mm256_loadu_pd(qp + 4);
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d a, b, w = _mm256_set1_pd(best_d[k - 1]);
    __m128d h;
    double dist;
    Py_ssize_t p;
    for (p = s; p < e; p++) {
        a = _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(pts + 8 * p), q0));
        b = _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_loadu_pd(pts + 8 * p + 4), q1));
        a = _mm256_max_pd(a, b);
        if (_mm256_movemask_pd(_mm256_cmp_pd(a, w, _CMP_GT_OQ)) || p == q)
            continue;
        h = _mm_max_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
        h = _mm_max_sd(h, _mm_unpackhi_pd(h, h));
        dist = _mm_cvtsd_f64(h);
        fi_kd_insert(dist, p, index[p], k, best_d, best_p, best_i);
        w = _mm256_set1_pd(best_d[k - 1]);
    }
}

/* max-norm distance from q (q0 = q[0:4], q1 = q[4:8]) to an 8-D box, as _box_min_dist. */
__attribute__((target("avx2")))
static inline double fi_kd_box_min8_avx2(__m256d q0, __m256d q1, const double *lo,
                                         const double *hi) {
    __m256d m = _mm256_max_pd(
        _mm256_max_pd(_mm256_sub_pd(_mm256_loadu_pd(lo), q0), _mm256_sub_pd(q0, _mm256_loadu_pd(hi))),
        _mm256_max_pd(_mm256_sub_pd(_mm256_loadu_pd(lo + 4), q1), _mm256_sub_pd(q1, _mm256_loadu_pd(hi + 4))));
    __m128d h = _mm_max_pd(_mm256_castpd256_pd128(m), _mm256_extractf128_pd(m, 1));
    h = _mm_max_sd(h, _mm_unpackhi_pd(h, h));
    h = _mm_max_sd(h, _mm_setzero_pd());
    return _mm_cvtsd_f64(h);
}

/* kdtree_knn for 8-D trees (the same search, node order and results; see there). */
__attribute__((target("avx2")))
static double fi_kd_knn8_avx2(const double *pts, const Py_ssize_t *index, const double *lo,
                              const double *hi, const Py_ssize_t *start, const Py_ssize_t *end,
                              Py_ssize_t n_nodes, Py_ssize_t q, int k, double *best_d,
                              Py_ssize_t *best_p, Py_ssize_t *best_i, Py_ssize_t *stack,
                              double *stack_d) {
    const double *qp = pts + 8 * q;
    const __m256d q0 = _mm256_loadu_pd(qp), q1 = _mm256_loadu_pd(qp + 4);
    Py_ssize_t node, sibling, top, child;
    double bd, bd2;
    int j;
    for (j = 0; j < k; j++) {
        best_d[j] = INFINITY;
        best_p[j] = -1;
        best_i[j] = PY_SSIZE_T_MAX;
    }
    node = 0;
    while (2 * node + 1 < n_nodes)
        node = q < start[2 * node + 2] ? 2 * node + 1 : 2 * node + 2;
    fi_kd_knn_leaf8_avx2(pts, index, start[node], end[node], q, qp, k, best_d, best_p, best_i);
    while (node > 0) {
        sibling = (node & 1) ? node + 1 : node - 1;
        node = (node - 1) / 2;
        if (fi_kd_box_min8_avx2(q0, q1, lo + 8 * sibling, hi + 8 * sibling) > best_d[k - 1])
            continue;
        /* depth-first search of the sibling's subtree, nearer child first */
        stack[0] = sibling;
        stack_d[0] = 0.0;
        top = 1;
        while (top > 0) {
            top--;
            if (stack_d[top] > best_d[k - 1])
                continue;
            child = 2 * stack[top] + 1;
            if (child >= n_nodes) {
                fi_kd_knn_leaf8_avx2(pts, index, start[stack[top]], end[stack[top]], q, qp, k,
                                     best_d, best_p, best_i);
                continue;
            }
            bd = fi_kd_box_min8_avx2(q0, q1, lo + 8 * child, hi + 8 * child);
            bd2 = fi_kd_box_min8_avx2(q0, q1, lo + 8 * (child + 1), hi + 8 * (child + 1));
            if (bd <= bd2) {
                if (bd2 <= best_d[k - 1]) {
                    stack[top] = child + 1;
                    stack_d[top] = bd2;
                    top++;
                }
                if (bd <= best_d[k - 1]) {
                    stack[top] = child;
                    stack_d[top] = bd;
                    top++;
                }
            } else {
                if (bd <= best_d[k - 1]) {
                    stack[top] = child;
                    stack_d[top] = bd;
                    top++;
                }
                if (bd2 <= best_d[k - 1]) {
                    stack[top] = child + 1;
                    stack_d[top] = bd2;
                    top++;
                }
            }
        }
    }
    return best_d[k - 1];
}
static inline int fi_kd_avx2(void) { return fi_kd_use_avx2; }
/* Private switch for tests: off forces the generic paths; on only if the CPU has AVX2. */
static int fi_kd_set_avx2(int on) {
    int old = fi_kd_use_avx2;
    fi_kd_init_dispatch();
    if (!on)
        fi_kd_use_avx2 = fi_kd_use_avx512 = 0;
    return old;
}
/* Private switch for tests: off leaves the AVX-512 range count to the AVX2 one. */
static int fi_kd_set_avx512(int on) {
    int old = fi_kd_use_avx512;
    fi_kd_want_avx512 = on ? 1 : 0;
    fi_kd_use_avx512 = fi_kd_use_avx2 && fi_kd_want_avx512 && __builtin_cpu_supports("avx512f") ? 1 : 0;
    return old;
}
#else
static int fi_kd_set_avx512(int on) { return 0; }
static void fi_kd_init_dispatch(void) {}
static inline int fi_kd_avx2(void) { return 0; }
static int fi_kd_set_avx2(int on) { return 0; }
/* never called (fi_kd_avx2() is 0) */
static Py_ssize_t fi_kd_count4_avx2(const double *pts, const double *lo, const double *hi,
                                    const Py_ssize_t *start, const Py_ssize_t *end,
                                    Py_ssize_t n_nodes, const double *q, double r,
                                    Py_ssize_t *stack) { return 0; }
static double fi_kd_knn8_avx2(const double *pts, const Py_ssize_t *index, const double *lo,
                              const double *hi, const Py_ssize_t *start, const Py_ssize_t *end,
                              Py_ssize_t n_nodes, Py_ssize_t q, int k, double *best_d,
                              Py_ssize_t *best_p, Py_ssize_t *best_i, Py_ssize_t *stack,
                              double *stack_d) { return 0.0; }
#endif

#endif /* FASTINFO_KDTREE_H */

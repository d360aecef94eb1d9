/* fastinfo: the Grid3 radius search (see grid3.h), written once for two ways of keeping the
   K = k + 1 smallest distances: included by grid3.h with
     FI_G3_SFX       the name suffix,
     FI_G3_ATTR      the functions' attributes,
     FI_G3_STATE     the parameter holding the K smallest (a buffer, or the lanes' registers),
     FI_G3_START(K)  its reset, FI_G3_SCAN(s, e) the offer of storage positions [s, e),
     FI_G3_KTH()     the K-th smallest so far,
     FI_G3_VECTOR    (optional) defined when the scan needs the query broadcast in qv4,
   all #undef'd at the end. No include guard: it is meant to be included more than once. */

#define FI_G3_CAT2(a, b) a##b
#define FI_G3_CAT(a, b) FI_G3_CAT2(a, b)
#define FI_G3_FN(name) FI_G3_CAT(name, FI_G3_SFX)

/* Scan the cells [l0, r0] x [l1, r1] x [l2, r2] (rows along axis 0 are contiguous ranges). */
FI_G3_ATTR
static inline void FI_G3_FN(fi_grid3_box_)(const fi_grid3 *g, const Py_ssize_t *l,
                                          const Py_ssize_t *r, const double *qv,
#if defined(FI_G3_VECTOR)
                                          const __m256d *qv4,
#endif
                                          const int K, FI_G3_STATE) {
    Py_ssize_t G = g->G, c1, c2, row;
    for (c2 = l[2]; c2 <= r[2]; c2++)
        for (c1 = l[1]; c1 <= r[1]; c1++) {
            row = (c2 * G + c1) * G;
            FI_G3_SCAN(g->cell_start[row + l[0]], g->cell_start[row + r[0] + 1]);
        }
    (void)qv;
}

/* Scan the cells of the box [nl, nr] that are not in its sub-box [l, r] (already scanned). */
FI_G3_ATTR
static inline void FI_G3_FN(fi_grid3_shell_)(const fi_grid3 *g, const Py_ssize_t *l,
                                            const Py_ssize_t *r, const Py_ssize_t *nl,
                                            const Py_ssize_t *nr, const double *qv,
#if defined(FI_G3_VECTOR)
                                            const __m256d *qv4,
#endif
                                            const int K, FI_G3_STATE) {
    Py_ssize_t G = g->G, c1, c2, row;
    for (c2 = nl[2]; c2 <= nr[2]; c2++)
        for (c1 = nl[1]; c1 <= nr[1]; c1++) {
            row = (c2 * G + c1) * G;
            if (c2 >= l[2] && c2 <= r[2] && c1 >= l[1] && c1 <= r[1]) {
                /* a row through the scanned box: only its parts left and right of it */
                FI_G3_SCAN(g->cell_start[row + nl[0]], g->cell_start[row + l[0]]);
                FI_G3_SCAN(g->cell_start[row + r[0] + 1], g->cell_start[row + nr[0] + 1]);
            } else {
                FI_G3_SCAN(g->cell_start[row + nl[0]], g->cell_start[row + nr[0] + 1]);
            }
        }
    (void)qv;
}

#if defined(FI_G3_VECTOR)
#define FI_G3_QV4 qv4,
#else
#define FI_G3_QV4
#endif

/* The (K-1)-th neighbour distance of storage position q (K = k + 1: the K-th smallest distance
   with q itself, at 0, included).
   (1) Scan q's cell and, on each axis, the neighbouring bin on the side whose outside is nearer
   (a 2 x 2 x 2 block); while fewer than K points were seen, grow the block by a bin on every
   side. The K-th distance seen, eps, is then an upper bound of the radius. (2) Grow the block on
   each axis over every bin whose bound (fl(q_a - hi) on the left, fl(lo - q_a) on the right) is
   below eps, and scan the cells added: every point nearer than eps is then scanned, so the K-th
   distance is final (it only decreases while scanning). */
FI_G3_ATTR
static inline double FI_G3_FN(fi_grid3_eps_)(const fi_grid3 *g, Py_ssize_t q, const int K,
                                            FI_G3_STATE) {
    const Py_ssize_t G = g->G;
    Py_ssize_t l[3], r[3], c[3], nl[3], nr[3], cell = g->cell[q];
    double qv[3], dl, dr, eps;
    int a, grow;
#if defined(FI_G3_VECTOR)
    __m256d qv4[3];
#endif
    FI_G3_START(K);
    c[0] = cell % G;
    c[1] = (cell / G) % G;
    c[2] = cell / (G * G);
    for (a = 0; a < 3; a++) {
        qv[a] = g->soa[a * g->stride + q];
#if defined(FI_G3_VECTOR)
        qv4[a] = _mm256_set1_pd(qv[a]);
#endif
        l[a] = r[a] = c[a];
        dl = c[a] > 0 ? qv[a] - g->hi[a * G + c[a] - 1] : INFINITY;
        dr = c[a] < G - 1 ? g->lo[a * G + c[a] + 1] - qv[a] : INFINITY;
        if (dl < dr)
            l[a]--;
        else if (dr < INFINITY)
            r[a]++;
    }
    FI_G3_FN(fi_grid3_box_)(g, l, r, qv, FI_G3_QV4 K, FI_G3_STATE_ARG);
    eps = FI_G3_KTH();
    while (eps == INFINITY) {
        /* fewer than K points in the block (n >= K, so the whole grid has enough) */
        grow = 0;
        for (a = 0; a < 3; a++) {
            nl[a] = l[a] > 0 ? l[a] - 1 : 0;
            nr[a] = r[a] < G - 1 ? r[a] + 1 : G - 1;
            grow |= nl[a] != l[a] || nr[a] != r[a];
        }
        if (!grow)
            break;
        FI_G3_FN(fi_grid3_shell_)(g, l, r, nl, nr, qv, FI_G3_QV4 K, FI_G3_STATE_ARG);
        for (a = 0; a < 3; a++) {
            l[a] = nl[a];
            r[a] = nr[a];
        }
        eps = FI_G3_KTH();
    }
    grow = 0;
    for (a = 0; a < 3; a++) {
        nl[a] = l[a];
        nr[a] = r[a];
        while (nl[a] > 0 && qv[a] - g->hi[a * G + nl[a] - 1] < eps)
            nl[a]--;
        while (nr[a] < G - 1 && g->lo[a * G + nr[a] + 1] - qv[a] < eps)
            nr[a]++;
        grow |= nl[a] != l[a] || nr[a] != r[a];
    }
    if (!grow)
        return eps;
    FI_G3_FN(fi_grid3_shell_)(g, l, r, nl, nr, qv, FI_G3_QV4 K, FI_G3_STATE_ARG);
    return FI_G3_KTH();
}

#undef FI_G3_QV4
#undef FI_G3_FN
#undef FI_G3_CAT
#undef FI_G3_CAT2
#undef FI_G3_SFX
#undef FI_G3_ATTR
#undef FI_G3_STATE
#undef FI_G3_STATE_ARG
#undef FI_G3_START
#undef FI_G3_SCAN
#undef FI_G3_KTH
#undef FI_G3_VECTOR

/* fastinfo: the grid radius search (see gridnd.h), written once for each number of axes and
   each way of keeping the K = k + 1 smallest distances: included by gridnd.h with
     FI_GD_D         the number of axes (3 or 4),
     FI_GD_SFX       the name suffix,
     FI_GD_ATTR      the functions' attributes,
     FI_GD_STATE     the parameter holding the K smallest (a buffer, or the lanes' registers),
     FI_GD_STATE_ARG its name, FI_GD_START(K) its reset,
     FI_GD_SCAN(s, e) the offer of storage positions [s, e), FI_GD_KTH() the K-th smallest so far,
     FI_GD_VECTOR    (optional) defined when the scan needs the query broadcast in qv4.
   FI_GD_D and FI_GD_SFX are #undef'd at the end, the others by gridnd.h. No include guard: it
   is meant to be included more than once. */

#define FI_GD_CAT2(a, b) a##b
#define FI_GD_CAT(a, b) FI_GD_CAT2(a, b)
#define FI_GD_FN(name) FI_GD_CAT(name, FI_GD_SFX)

#if defined(FI_GD_VECTOR)
#define FI_GD_QV4_PARAM const __m256d *qv4,
#define FI_GD_QV4 qv4,
#else
#define FI_GD_QV4_PARAM
#define FI_GD_QV4
#endif

/* Scan the cells of the box [l, r] (rows along axis 0 are contiguous ranges). */
FI_GD_ATTR
static inline void FI_GD_FN(fi_gridnd_box_)(const fi_gridnd *g, const Py_ssize_t *l,
                                           const Py_ssize_t *r, const double *qv,
                                           FI_GD_QV4_PARAM const int K, FI_GD_STATE) {
    Py_ssize_t G = g->G, c1, c2, c3 = 0, row;
#if FI_GD_D == 4
    for (c3 = l[3]; c3 <= r[3]; c3++)
#endif
    for (c2 = l[2]; c2 <= r[2]; c2++)
        for (c1 = l[1]; c1 <= r[1]; c1++) {
            row = ((c3 * G + c2) * G + c1) * G;
            FI_GD_SCAN(g->cell_start[row + l[0]], g->cell_start[row + r[0] + 1]);
        }
    (void)qv;
}

/* Scan the cells of the box [nl, nr] that are not in its sub-box [l, r] (already scanned). */
FI_GD_ATTR
static inline void FI_GD_FN(fi_gridnd_shell_)(const fi_gridnd *g, const Py_ssize_t *l,
                                             const Py_ssize_t *r, const Py_ssize_t *nl,
                                             const Py_ssize_t *nr, const double *qv,
                                             FI_GD_QV4_PARAM const int K, FI_GD_STATE) {
    Py_ssize_t G = g->G, c1, c2, c3 = 0, row;
    int inside3 = 1;
#if FI_GD_D == 4
    for (c3 = nl[3]; c3 <= nr[3]; c3++)
#endif
    {
#if FI_GD_D == 4
        inside3 = c3 >= l[3] && c3 <= r[3];
#endif
        for (c2 = nl[2]; c2 <= nr[2]; c2++)
            for (c1 = nl[1]; c1 <= nr[1]; c1++) {
                row = ((c3 * G + c2) * G + c1) * G;
                if (inside3 && c2 >= l[2] && c2 <= r[2] && c1 >= l[1] && c1 <= r[1]) {
                    /* a row through the scanned box: only its parts left and right of it */
                    FI_GD_SCAN(g->cell_start[row + nl[0]], g->cell_start[row + l[0]]);
                    FI_GD_SCAN(g->cell_start[row + r[0] + 1], g->cell_start[row + nr[0] + 1]);
                } else {
                    FI_GD_SCAN(g->cell_start[row + nl[0]], g->cell_start[row + nr[0] + 1]);
                }
            }
    }
    (void)qv;
}

/* The (K-1)-th neighbour distance of storage position q (K = k + 1: the K-th smallest distance
   with q itself, at 0, included).
   (1) Scan q's cell and, on each axis, the neighbouring bin on the side whose outside is nearer
   (a 2^d block); while fewer than K points were seen, grow the block by a bin on every side.
   The K-th distance seen, eps, is then an upper bound of the radius. (2) Grow the block on each
   axis over every bin whose bound (fl(q_a - hi) on the left, fl(lo - q_a) on the right) is below
   eps, and scan the cells added: every point nearer than eps is then scanned, so the K-th
   distance is final (it only decreases while scanning). */
FI_GD_ATTR
static inline double FI_GD_FN(fi_gridnd_eps_)(const fi_gridnd *g, Py_ssize_t q, const int K,
                                             FI_GD_STATE) {
    const Py_ssize_t G = g->G;
    Py_ssize_t l[FI_GD_D], r[FI_GD_D], c[FI_GD_D], nl[FI_GD_D], nr[FI_GD_D], cell = g->cell[q];
    double qv[FI_GD_D], dl, dr, eps;
    int a, grow;
#if defined(FI_GD_VECTOR)
    __m256d qv4[FI_GD_D];
#endif
    FI_GD_START(K);
    for (a = 0; a < FI_GD_D; a++) {
        c[a] = cell % G;
        cell /= G;
        qv[a] = g->soa[a * g->stride + q];
#if defined(FI_GD_VECTOR)
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
    FI_GD_FN(fi_gridnd_box_)(g, l, r, qv, FI_GD_QV4 K, FI_GD_STATE_ARG);
    eps = FI_GD_KTH();
    while (eps == INFINITY) {
        /* fewer than K points in the block (n >= K, so the whole grid has enough) */
        grow = 0;
        for (a = 0; a < FI_GD_D; a++) {
            nl[a] = l[a] > 0 ? l[a] - 1 : 0;
            nr[a] = r[a] < G - 1 ? r[a] + 1 : G - 1;
            grow |= nl[a] != l[a] || nr[a] != r[a];
        }
        if (!grow)
            break;
        FI_GD_FN(fi_gridnd_shell_)(g, l, r, nl, nr, qv, FI_GD_QV4 K, FI_GD_STATE_ARG);
        for (a = 0; a < FI_GD_D; a++) {
            l[a] = nl[a];
            r[a] = nr[a];
        }
        eps = FI_GD_KTH();
    }
    grow = 0;
    for (a = 0; a < FI_GD_D; a++) {
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
    FI_GD_FN(fi_gridnd_shell_)(g, l, r, nl, nr, qv, FI_GD_QV4 K, FI_GD_STATE_ARG);
    return FI_GD_KTH();
}

#undef FI_GD_QV4_PARAM
#undef FI_GD_QV4
#undef FI_GD_FN
#undef FI_GD_CAT
#undef FI_GD_CAT2
#undef FI_GD_SFX
#undef FI_GD_D

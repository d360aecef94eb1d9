# Section of _kernels.pyx: estimators from samples (KSG, Frenzel-Pompe, Kozachenko-Leonenko, Ross).
#
# Inputs: float64 C-contiguous sample arrays (n, d), validated by fastinfo._estimators; 1-D
# marginals come with their sorted copy and the order (argsort) that sorts them.
# The kernels build the KD-trees they need once per call (see _kernels_kdtree.pxi), query every
# point in parallel (prange over tree positions, per-thread scratch allocated inside parallel()),
# store one digamma term per point and sum the terms serially in sample order: the result is
# bitwise identical for any thread count. The Python front-ends add the constant terms
# (psi(k), psi(n), ...) and convert to the requested base.

from libc.math cimport log as c_log


cdef inline double digamma_formula(Py_ssize_t m) noexcept nogil:
    """psi(m) for an integer m >= 1: the recurrence psi(x) = psi(x + 1) - 1/x up to x >= 10,
    then the asymptotic series log x - 1/(2x) - sum B_2j / (2j x^2j) to x^-14 (truncation error
    < 1e-17 relative at x = 10). Agrees with scipy.special.digamma to ~2 ulp."""
    cdef double x = <double>m, shift = 0.0, inv2, series
    if m < 1:
        return NAN
    while x < 10.0:
        shift += 1.0 / x
        x += 1.0
    inv2 = 1.0 / (x * x)
    series = inv2 * (1.0 / 12.0 - inv2 * (1.0 / 120.0 - inv2 * (1.0 / 252.0 - inv2 * (
        1.0 / 240.0 - inv2 * (1.0 / 132.0 - inv2 * (691.0 / 32760.0 - inv2 * (1.0 / 12.0)))))))
    return (c_log(x) - 0.5 / x - series) - shift


# psi(m) for 0 < m < PSI_TABLE_N, filled by digamma_formula when the module loads (0.2 ms): every
# count term of the estimators is a digamma of an integer, and the formula (a log, divisions, a
# short recurrence below 10) cost more than the range counts themselves in the permutation tests.
cdef enum:
    PSI_TABLE_N = 16384
cdef double PSI_TABLE[PSI_TABLE_N]


cdef void _fill_psi_table() noexcept nogil:
    cdef Py_ssize_t m
    PSI_TABLE[0] = NAN
    for m in range(1, PSI_TABLE_N):
        PSI_TABLE[m] = digamma_formula(m)


_fill_psi_table()


cdef inline double digamma_int(Py_ssize_t m) noexcept nogil:
    """psi(m) for an integer m >= 1 (NaN below): PSI_TABLE's entry, else digamma_formula (the
    same values either way)."""
    if 0 < m < PSI_TABLE_N:
        return PSI_TABLE[m]
    return digamma_formula(m)


def digamma_counts(const int64_t[::1] counts):
    """psi of each integer count (float64 array)."""
    cdef Py_ssize_t i, n = counts.shape[0]
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    with nogil:
        for i in range(n):
            o[i] = digamma_int(counts[i])
    return out


def digamma_integer(Py_ssize_t m):
    """psi(m) for one integer m >= 1."""
    return digamma_int(m)


def _digamma_formula(Py_ssize_t m):
    """Private (tests): psi(m) by the formula, bypassing PSI_TABLE."""
    return digamma_formula(m)


cdef inline void _ksg_query(const KDTree *jt, const Grid2 *grid, const fi_gridnd *g3,
                            Py_ssize_t q, Py_ssize_t d0,
                            int k, int algorithm, double *radius, double *best_d,
                            Py_ssize_t *best_p, Py_ssize_t *best_i, Py_ssize_t *stack,
                            double *stack_d) noexcept nogil:
    """The k-NN radius (algorithm 1) or the two per-marginal radii (algorithm 2) of the point
    at joint tree (or grid) position q, stored by sample index. best_d holds k + 1 doubles
    (the 3-D grid's scratch; algorithm 1 only)."""
    cdef Py_ssize_t n, D, i, c
    cdef int j
    cdef double eps, e0, e1, diff
    cdef const double *pts
    cdef const double *qp
    cdef const double *pp
    if g3 != NULL:
        radius[g3.pid[q]] = fi_gridnd_eps(g3, q, k, best_d)
        return
    if grid != NULL:
        n = grid.n
        D = 2
        pts = grid.pts
        eps = grid2_knn(grid, q, k, best_d, best_p, best_i)
        i = grid.pid[q]
    else:
        n = jt.n
        D = jt.d
        pts = jt.points
        eps = kdtree_knn(jt, q, k, best_d, best_p, best_i, stack, stack_d)
        i = jt.index[q]
    if algorithm == 1:
        radius[i] = eps
        return
    qp = &pts[q * D]
    e0 = 0.0
    e1 = 0.0
    for j in range(k):
        pp = &pts[best_p[j] * D]
        for c in range(d0):
            diff = fabs(pp[c] - qp[c])
            if diff > e0:
                e0 = diff
        for c in range(d0, D):
            diff = fabs(pp[c] - qp[c])
            if diff > e1:
                e1 = diff
    radius[i] = e0
    radius[n + i] = e1


cdef inline void _marginal_count_one(const Marginal *m, Py_ssize_t q, const double *radius,
                                     bint strict, const Py_ssize_t *to_joint, Py_ssize_t *out,
                                     Py_ssize_t *stack) noexcept nogil:
    """out[i] for the marginal's q-th point in its own order (sorted rank, tree position, or
    sample index for a pair-mode marginal)."""
    cdef Py_ssize_t sample, i, c
    if m.pair:
        i = to_joint[q] if to_joint != NULL else q
        out[i] = pair_count(m, q, radius[i], strict)
        return
    if m.gridded:
        # strict counts only (the conditional estimator's; see marginal_setup_grid)
        sample = m.grid.pid[q]
        i = to_joint[sample] if to_joint != NULL else sample
        out[i] = fi_gridnd_count(&m.grid, q, radius[i])
        return
    if m.d == 1:
        sample = m.order[q]
        i = to_joint[sample] if to_joint != NULL else sample
        out[i] = sorted_count_from_rank(m.sorted_values, m.n, q, radius[i], strict)
        return
    sample = m.tree.index[q]
    i = to_joint[sample] if to_joint != NULL else sample
    c = kdtree_count(&m.tree, &m.tree.points[q * m.d], radius[i], strict, stack)
    # the sample itself is at distance 0
    if (0.0 < radius[i]) if strict else True:
        c = c - 1
    out[i] = c


cdef bint _shared_z_pairs(Marginal **margs, int n_marg, int algorithm,
                          const Py_ssize_t *to_joint1) noexcept nogil:
    """True for the conditional estimator's marginals (x, z), (y, z), z with x, y, z 1-D,
    both pairs counted by rank scans on the same sorted z column as the z marginal: then one
    z-interval search serves all three counts (_shared_z_counts)."""
    cdef Py_ssize_t n
    if n_marg != 3 or algorithm != 1 or to_joint1 != NULL:
        return False
    if not (margs[0].pair and margs[1].pair and margs[2].d == 1 and not margs[2].pair):
        return False
    n = margs[0].n
    if margs[1].n != n or margs[2].n != n:
        return False
    return (memcmp(margs[0].sorted_values + n, margs[1].sorted_values + n, n * sizeof(double)) == 0
            and memcmp(margs[0].sorted_values + n, margs[2].sorted_values, n * sizeof(double)) == 0)


cdef inline void _shared_z_counts(Marginal **margs, Py_ssize_t i, double r,
                                  Py_ssize_t *counts) noexcept nogil:
    """The strict counts of sample i within r in the (x, z), (y, z) and z marginals (see
    _shared_z_pairs): the z rank interval [c, d) is searched once; the z count is its length
    less the sample itself, the pair counts scan the shorter of it and their own first-column
    interval (as pair_count, so the same counts)."""
    cdef const Marginal *m0 = margs[0]
    cdef const Marginal *m1 = margs[1]
    cdef Py_ssize_t n = m0.n, a, b, c, d
    cdef const double *cols[3]
    cdef const fi_rank_index *ixs[3]
    cdef Py_ssize_t ranks[3]
    cdef Py_ssize_t left[3]
    cdef Py_ssize_t right[3]
    if r <= 0.0:
        counts[i] = 0
        counts[n + i] = 0
        counts[2 * n + i] = 0
        return
    # the z, x and y intervals, searched side by side
    cols[0] = m0.sorted_values + n
    cols[1] = m0.sorted_values
    cols[2] = m1.sorted_values
    ixs[0] = &m0.ix1
    ixs[1] = &m0.ix0
    ixs[2] = &m1.ix0
    ranks[0] = m0.rank1[i]
    ranks[1] = m0.rank0[i]
    ranks[2] = m1.rank0[i]
    fi_rank_intervals_multi(cols, ixs, ranks, 3, n, r, True, left, right)
    c = left[0]
    d = right[0]
    counts[2 * n + i] = d - c - 1
    a = left[1]
    b = right[1]
    if b - a <= d - c:
        counts[i] = fi_count_in_range(m0.z_by_x + a, b - a, <int32_t>c, <int32_t>d) - 1
    else:
        counts[i] = fi_count_in_range(m0.x_by_z + c, d - c, <int32_t>a, <int32_t>b) - 1
    a = left[2]
    b = right[2]
    if b - a <= d - c:
        counts[n + i] = fi_count_in_range(m1.z_by_x + a, b - a, <int32_t>c, <int32_t>d) - 1
    else:
        counts[n + i] = fi_count_in_range(m1.x_by_z + c, d - c, <int32_t>a, <int32_t>b) - 1


cdef inline double _ksg_term(const Py_ssize_t *counts, const double *signs, int n_marg,
                             Py_ssize_t n, Py_ssize_t i, int algorithm) noexcept nogil:
    cdef double term = 0.0
    cdef int mi
    if algorithm != 1:
        return digamma_int(counts[i]) + digamma_int(counts[n + i])
    for mi in range(n_marg):
        term = term + signs[mi] * digamma_int(counts[mi * n + i] + 1)
    return term


# Queries of grid_ksg_pass run tile by tile: GRID2_TILE x GRID2_TILE cells (tile rows bottom
# to top, tiles left to right, within a tile its rows of cells, each a contiguous storage
# range). The marginal counts read the sorted x values near the query's column and the sorted y
# values near its row: in tile order both stay cache-resident across neighbouring queries (in
# plain storage order every row of cells would sweep all of the sorted x values). A module
# variable so that benchmarks can tune it.
cdef Py_ssize_t GRID2_TILE = 32


def _set_grid2_tile(Py_ssize_t tile):
    global GRID2_TILE
    GRID2_TILE = max(tile, 1)


cdef struct GridBatch:
    Py_ssize_t m                    # queries held
    Py_ssize_t pos[GRID2_BATCH]     # their grid positions
    Py_ssize_t bx[GRID2_BATCH]      # their columns and rows (x and y bins)
    Py_ssize_t by[GRID2_BATCH]
    double vx[GRID2_BATCH]          # their x and y values
    double vy[GRID2_BATCH]
    double ex[GRID2_BATCH]          # their count radii in x and y
    double ey[GRID2_BATCH]
    const double *psi               # psi[m] = digamma_int(m) for m < npsi (shared, read-only)
    Py_ssize_t npsi


cdef inline double _psi_tab(const double *psi, Py_ssize_t npsi, Py_ssize_t m) noexcept nogil:
    """digamma_int(m), from the table when m < npsi (the same values: the table holds them)."""
    return psi[m] if m < npsi else digamma_int(m)


cdef void _grid_batch_flush(const Grid2 *g, const double *xs, const double *ys,
                            const double *cxs, const double *cys, GridBatch *bt, int algorithm,
                            double *terms) noexcept nogil:
    """The marginal counts of the batch's queries in lock step (grid2_count_batch), then their
    digamma terms; empties the batch."""
    cdef Py_ssize_t n = g.n, G = g.G, m = bt.m, t
    cdef Py_ssize_t cx[GRID2_BATCH]
    cdef Py_ssize_t cy[GRID2_BATCH]
    cdef bint strict = algorithm == 1
    grid2_count_batch(xs, cxs, n, g.xlo, g.xhi, g.bstart, G, m, bt.bx, bt.vx, bt.ex, strict, cx)
    grid2_count_batch(ys, cys, n, g.ylo, g.yhi, g.bstart, G, m, bt.by, bt.vy, bt.ey, strict, cy)
    for t in range(m):
        if algorithm == 1:
            terms[g.pid[bt.pos[t]]] = (_psi_tab(bt.psi, bt.npsi, cx[t] + 1)
                                       + _psi_tab(bt.psi, bt.npsi, cy[t] + 1))
        else:
            terms[g.pid[bt.pos[t]]] = (_psi_tab(bt.psi, bt.npsi, cx[t])
                                       + _psi_tab(bt.psi, bt.npsi, cy[t]))
    bt.m = 0


cdef struct GridWindow:
    Py_ssize_t m            # candidates gathered (-1: more than the capacity)
    Py_ssize_t own          # candidate index of storage position p of the middle row: p + own
    Py_ssize_t wl, wr, wb, wt   # the block's columns [wl, wr] and rows [wb, wt]


cdef inline void _grid_window_gather(const Grid2 *g, Py_ssize_t row, Py_ssize_t c, Py_ssize_t w,
                                     Py_ssize_t cap, double *wx, double *wy,
                                     GridWindow *win) noexcept nogil:
    """The points of the (2 w + 1) x (2 w + 1) block of cells around cell (row, c), clipped at
    the grid's edges (its rows: contiguous storage ranges), into wx, wy (padded with +inf to an
    even count); win.m = -1 when there are more than cap."""
    cdef Py_ssize_t G = g.G, rr, s0, s1, p, M = 0
    win.wl = c - w if c >= w else 0
    win.wr = c + w if c + w < G else G - 1
    win.wb = row - w if row >= w else 0
    win.wt = row + w if row + w < G else G - 1
    win.own = 0
    for rr in range(win.wb, win.wt + 1):
        s0 = g.cell_start[rr * G + win.wl]
        s1 = g.cell_start[rr * G + win.wr + 1]
        if M + (s1 - s0) > cap:
            win.m = -1
            return
        if rr == row:
            win.own = M - s0
        for p in range(s0, s1):
            wx[M] = g.pts[2 * p]
            wy[M] = g.pts[2 * p + 1]
            M += 1
    wx[M] = INFINITY
    wy[M] = INFINITY
    win.m = M


cdef inline bint _grid_window_query(const Grid2 *g, const GridWindow *win, const double *wx,
                                    const double *wy, double *wd, Py_ssize_t q, int k,
                                    int algorithm, double *best_d, double *ex,
                                    double *ey) noexcept nogil:
    """The count radii of the point at storage position q from a gathered block, when exact:
    branch-free, the distances to the block's points and the k smallest (with multiplicity,
    by an insertion network of min/max; k = 3 in SSE2, grid2_window3), d_k. That is the exact
    answer when (a) exactly k candidates lie within d_k (so the k neighbours are those, whatever
    the tie-break by sample index) and (b) every point outside the block is farther than d_k
    (the bounds of grid2_knn, e.g. fl(qx - xhi[left - 1])). Returns False otherwise."""
    cdef Py_ssize_t G = g.G, M = win.m, j, cnt
    cdef double q0 = g.pts[2 * q], q1 = g.pts[2 * q + 1], da, db, v, dk, d4, border, e0, e1
    cdef int i
    if M <= k:
        return False
    if k == 3:
        dk = grid2_window3(wx, wy, M + (M & 1), q + win.own, q0, q1, wd, &d4)
    else:
        for j in range(M):
            da = fabs(wx[j] - q0)
            db = fabs(wy[j] - q1)
            wd[j] = fi_max(da, db)
        wd[q + win.own] = INFINITY
        for i in range(k):
            best_d[i] = INFINITY
        for j in range(M):
            v = wd[j]
            for i in range(k - 1, 0, -1):
                da = fi_max(best_d[i - 1], v)
                best_d[i] = fi_min(da, best_d[i])
            best_d[0] = fi_min(v, best_d[0])
        dk = best_d[k - 1]
        cnt = 0
        for j in range(M):
            cnt += wd[j] <= dk
        d4 = dk if cnt != k else INFINITY     # (exactly k within dk) == (d4 > dk)
    border = (q0 - g.xhi[win.wl - 1]) if win.wl > 0 else INFINITY
    da = (g.xlo[win.wr + 1] - q0) if win.wr < G - 1 else INFINITY
    border = fi_min(da, border)
    da = (q1 - g.yhi[win.wb - 1]) if win.wb > 0 else INFINITY
    border = fi_min(da, border)
    da = (g.ylo[win.wt + 1] - q1) if win.wt < G - 1 else INFINITY
    border = fi_min(da, border)
    if not (dk < border and d4 > dk):
        return False
    if algorithm == 1:
        ex[0] = dk
        ey[0] = dk
        return True
    e0 = 0.0
    e1 = 0.0
    for j in range(M):
        if wd[j] <= dk:
            e0 = fi_max(fabs(wx[j] - q0), e0)
            e1 = fi_max(fabs(wy[j] - q1), e1)
    ex[0] = e0
    ey[0] = e1
    return True


cdef void _grid_ksg_row(const Grid2 *g, const double *xs, const double *ys, const double *cxs,
                        const double *cys, Py_ssize_t row, Py_ssize_t c0, Py_ssize_t c1, int k,
                        int algorithm, double *terms, double *best_d, Py_ssize_t *best_p,
                        Py_ssize_t *best_i, GridBatch *bt) noexcept nogil:
    """The terms of the points in cells [c0, c1) of a row of the grid. Per cell, the points of
    its 3 x 3 block of cells are gathered once, and each point of the cell is tried on them
    (_grid_window_query); failing that on the 5 x 5 block (gathered when a point first needs
    it); failing that (ties, sparse cells, too many candidates) grid2_knn. The radii then go to
    the batch of marginal counts (flushed when full)."""
    cdef Py_ssize_t G = g.G, c, a, b, q
    cdef double wx[GRID2_CAND + 1]
    cdef double wy[GRID2_CAND + 1]
    cdef double vx[GRID2_CAND2 + 1]
    cdef double vy[GRID2_CAND2 + 1]
    cdef double wd[GRID2_CAND2 + 1]
    cdef GridWindow w3, w5
    cdef double e0, e1, diff, q0, q1
    cdef const double *pp
    cdef int i
    cdef bint have5
    for c in range(c0, c1):
        a = g.cell_start[row * G + c]
        b = g.cell_start[row * G + c + 1]
        if a == b:
            continue
        _grid_window_gather(g, row, c, 1, GRID2_CAND, wx, wy, &w3)
        have5 = False
        for q in range(a, b):
            if not _grid_window_query(g, &w3, wx, wy, wd, q, k, algorithm, best_d,
                                      &bt.ex[bt.m], &bt.ey[bt.m]):
                if not have5:
                    _grid_window_gather(g, row, c, 2, GRID2_CAND2, vx, vy, &w5)
                    have5 = True
                if not _grid_window_query(g, &w5, vx, vy, wd, q, k, algorithm, best_d,
                                          &bt.ex[bt.m], &bt.ey[bt.m]):
                    e0 = grid2_knn(g, q, k, best_d, best_p, best_i)
                    bt.ex[bt.m] = e0
                    bt.ey[bt.m] = e0
                    if algorithm != 1:
                        q0 = g.pts[2 * q]
                        q1 = g.pts[2 * q + 1]
                        e0 = 0.0
                        e1 = 0.0
                        for i in range(k):
                            pp = &g.pts[2 * best_p[i]]
                            diff = fabs(pp[0] - q0)
                            if diff > e0:
                                e0 = diff
                            diff = fabs(pp[1] - q1)
                            if diff > e1:
                                e1 = diff
                        bt.ex[bt.m] = e0
                        bt.ey[bt.m] = e1
            bt.pos[bt.m] = q
            bt.bx[bt.m] = c
            bt.by[bt.m] = row
            bt.vx[bt.m] = g.pts[2 * q]
            bt.vy[bt.m] = g.pts[2 * q + 1]
            bt.m += 1
            if bt.m == GRID2_BATCH:
                _grid_batch_flush(g, xs, ys, cxs, cys, bt, algorithm, terms)


cdef inline void _grid_ksg_tile(const Grid2 *g, const double *xs, const double *ys,
                                const double *cxs, const double *cys, Py_ssize_t tile,
                                Py_ssize_t T, int k, int algorithm, double *terms, double *best_d,
                                Py_ssize_t *best_p, Py_ssize_t *best_i, const double *psi,
                                Py_ssize_t npsi) noexcept nogil:
    """The terms of the points of one tile of cells (numbered row-major over the tiles)."""
    cdef Py_ssize_t G = g.G, nb = (G + T - 1) // T, r0, c0, r1, c1, row
    cdef GridBatch bt
    r0 = (tile // nb) * T
    c0 = (tile % nb) * T
    r1 = min(r0 + T, G)
    c1 = min(c0 + T, G)
    bt.m = 0
    bt.psi = psi
    bt.npsi = npsi
    for row in range(r0, r1):
        _grid_ksg_row(g, xs, ys, cxs, cys, row, c0, c1, k, algorithm, terms, best_d, best_p,
                      best_i, &bt)
    if bt.m > 0:
        _grid_batch_flush(g, xs, ys, cxs, cys, &bt, algorithm, terms)


cdef inline Py_ssize_t psi_table_size(Py_ssize_t n) noexcept nogil:
    """Entries of the digamma table of a grid pass over n points (most counts are ~ sqrt(n))."""
    return min(n + 1, max(n >> 3, <Py_ssize_t>256))


cdef double *psi_table(Py_ssize_t n) noexcept nogil:
    """psi[m] = digamma_int(m) for m < psi_table_size(n); malloc'd, NULL when out of memory."""
    cdef Py_ssize_t npsi = psi_table_size(n), m
    cdef double *psi = <double *>malloc(npsi * sizeof(double))
    if psi != NULL:
        for m in range(npsi):
            psi[m] = digamma_int(m)
    return psi


cdef int grid_ksg_pass(const Grid2 *g, const double *xs, const double *ys, int k, int algorithm,
                       double *terms, int nt) noexcept nogil:
    """terms[i] for each sample i of the grid (1-D x and y, sorted values xs and ys), one fused
    loop over the grid's tiles (parallel with nt > 1). Returns 0, or -1 when out of memory."""
    cdef Py_ssize_t n = g.n
    cdef int status
    cdef double *cxs = coarse_sample(xs, n)
    cdef double *cys = coarse_sample(ys, n)
    cdef double *psi = psi_table(n)
    if cxs == NULL or cys == NULL or psi == NULL:
        status = -1
    else:
        status = grid_ksg_pass_tables(g, xs, ys, cxs, cys, psi, k, algorithm, terms, nt)
    free(cxs)
    free(cys)
    free(psi)
    return status


cdef int grid_ksg_pass_tables(const Grid2 *g, const double *xs, const double *ys,
                              const double *cxs, const double *cys, const double *psi, int k,
                              int algorithm, double *terms, int nt) noexcept nogil:
    """grid_ksg_pass with the tables it reads built by the caller (so that many passes can share
    them): cxs, cys = coarse_sample(xs, n), coarse_sample(ys, n); psi = psi_table(n)."""
    cdef Py_ssize_t n = g.n, T = GRID2_TILE, nb, tile
    cdef Py_ssize_t npsi = psi_table_size(n)
    cdef int fail = 0
    cdef int *failp = &fail
    cdef double *best_d = NULL
    cdef Py_ssize_t *best_p = NULL
    cdef Py_ssize_t *best_i = NULL
    if T > g.G:
        T = g.G
    nb = (g.G + T - 1) // T
    if nt <= 1:
        best_d = <double *>malloc(k * sizeof(double))
        best_p = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
        best_i = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
        if best_d == NULL or best_p == NULL or best_i == NULL:
            fail = 1
        else:
            for tile in range(nb * nb):
                _grid_ksg_tile(g, xs, ys, cxs, cys, tile, T, k, algorithm, terms, best_d,
                               best_p, best_i, psi, npsi)
        free(best_d)
        free(best_p)
        free(best_i)
        return -fail
    with parallel(num_threads=nt):
        best_d = <double *>malloc(k * sizeof(double))
        best_p = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
        best_i = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
        for tile in prange(nb * nb, schedule='dynamic', chunksize=1):
            if best_d == NULL or best_p == NULL or best_i == NULL:
                failp[0] = 1
                continue
            _grid_ksg_tile(g, xs, ys, cxs, cys, tile, T, k, algorithm, terms, best_d, best_p,
                           best_i, psi, npsi)
        free(best_d)
        free(best_p)
        free(best_i)
    return -fail


cdef int ksg_pass(const KDTree *jt, const Grid2 *grid, const fi_gridnd *g3, Marginal **margs,
                  const double *signs, int n_marg,
                  const Py_ssize_t *to_joint1, int k, int algorithm, double *terms,
                  int nt) noexcept nogil:
    """terms[i] for each sample i (stored by sample index, so that the fixed-order sum does not
    depend on the tree, and the estimate is bitwise symmetric in x and y):
    algorithm 1: sum_m signs[m] * psi(n_m(i) + 1), n_m strict counts within eps_i;
    algorithm 2 (two marginals, the joint holding marginal 0's coordinates first):
    psi(n_0(i)) + psi(n_1(i)), non-strict counts within the largest per-marginal distance among
    the k neighbours. The joint k-NN search uses ``grid`` when not NULL (two 1-D marginals),
    else the KD-tree ``jt``: the same neighbours, so bitwise the same terms; ``g3``, when not NULL
    (algorithm 1, a 3-D joint of 1-D columns: gridnd_applies), replaces ``jt`` for the radii.
    Marginal 1's sample s belongs to joint sample to_joint1[s] (NULL: s).
    Three phases: the k-NN radii (joint tree order), the counts of each marginal (in its own
    order), the digamma terms (sample order). With nt > 1 the phases are loops of ONE parallel
    region (a region start costs a full thread wake-up, which a loaded machine makes slow);
    with nt == 1 plain loops. Returns 0, or -1 when out of memory."""
    cdef Py_ssize_t n = grid.n if grid != NULL else (g3.n if g3 != NULL else jt.n), q, i
    cdef Py_ssize_t d0 = margs[0].d
    cdef int fail = 0, mi
    cdef int *failp = &fail
    cdef double *best_d = NULL
    cdef Py_ssize_t *best_p = NULL
    cdef Py_ssize_t *best_i = NULL
    cdef Py_ssize_t *stack = NULL
    cdef double *stack_d = NULL
    cdef double *radius = NULL
    cdef Py_ssize_t *counts = NULL
    cdef bint strict = algorithm == 1
    cdef bint shared_z = False
    if grid != NULL:
        return grid_ksg_pass(grid, margs[0].sorted_values, margs[1].sorted_values, k, algorithm,
                             terms, nt)
    shared_z = _shared_z_pairs(margs, n_marg, algorithm, to_joint1)
    radius = <double *>calloc(2 * n, sizeof(double))
    counts = <Py_ssize_t *>calloc(n_marg * n, sizeof(Py_ssize_t))
    if radius == NULL or counts == NULL:
        free(radius)
        free(counts)
        return -1
    if nt <= 1:
        best_d = <double *>malloc((k + 1) * sizeof(double))
        best_p = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
        best_i = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
        stack = <Py_ssize_t *>malloc(KD_STACK * sizeof(Py_ssize_t))
        stack_d = <double *>malloc(KD_STACK * sizeof(double))
        if best_d == NULL or best_p == NULL or best_i == NULL or stack == NULL or stack_d == NULL:
            fail = 1
        else:
            for q in range(n):
                _ksg_query(jt, grid, g3, q, d0, k, algorithm, radius, best_d, best_p, best_i, stack, stack_d)
            if shared_z:
                for q in range(n):
                    _shared_z_counts(margs, q, radius[q], counts)
            else:
                for mi in range(n_marg):
                    for q in range(n):
                        _marginal_count_one(margs[mi], q, radius + (n if (algorithm == 2 and mi == 1) else 0),
                                            strict, to_joint1 if mi == 1 else NULL, counts + mi * n, stack)
            for i in range(n):
                terms[i] = _ksg_term(counts, signs, n_marg, n, i, algorithm)
        free(best_d)
        free(best_p)
        free(best_i)
        free(stack)
        free(stack_d)
    else:
        with parallel(num_threads=nt):
            best_d = <double *>malloc((k + 1) * sizeof(double))
            best_p = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
            best_i = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
            stack = <Py_ssize_t *>malloc(KD_STACK * sizeof(Py_ssize_t))
            stack_d = <double *>malloc(KD_STACK * sizeof(double))
            if best_d == NULL or best_p == NULL or best_i == NULL or stack == NULL or stack_d == NULL:
                failp[0] = 1
            for q in prange(n, schedule='dynamic', chunksize=256):
                if best_d == NULL or best_p == NULL or best_i == NULL or stack == NULL or stack_d == NULL:
                    continue
                _ksg_query(jt, grid, g3, q, d0, k, algorithm, radius, best_d, best_p, best_i, stack, stack_d)
            # the marginal counts: each marginal's own (n_marg * n queries), or the shared-z ones
            for q in prange(0 if shared_z else n_marg * n, schedule='dynamic', chunksize=512):
                if stack == NULL:
                    continue
                mi = <int>(q // n)
                _marginal_count_one(margs[mi], q - mi * n,
                                    radius + (n if (algorithm == 2 and mi == 1) else 0),
                                    strict, to_joint1 if mi == 1 else NULL, counts + mi * n, stack)
            for q in prange(n if shared_z else 0, schedule='dynamic', chunksize=512):
                _shared_z_counts(margs, q, radius[q], counts)
            for i in prange(n, schedule='static'):
                terms[i] = _ksg_term(counts, signs, n_marg, n, i, algorithm)
            free(best_d)
            free(best_p)
            free(best_i)
            free(stack)
            free(stack_d)
    free(radius)
    free(counts)
    return -fail

# Two 1-D marginals: the joint k-NN search on a Grid2 (see _kernels_kdtree.pxi) instead of a
# KD-tree (same neighbours, so bitwise the same results); a private switch forces the KD-tree.
cdef bint EST_USE_GRID2 = True


def _set_grid2(bint on):
    """Private: use (True) or bypass (False) the 2-D grid path; returns the previous setting."""
    global EST_USE_GRID2
    cdef bint old = EST_USE_GRID2
    EST_USE_GRID2 = on
    return old


def _grid2_enabled():
    """Private: whether the 2-D grid path is in use (see _set_grid2)."""
    return bool(EST_USE_GRID2)


# The conditional estimator's joint radii on a grid of quantile bins (see _kernels_kdtree.pxi)
# instead of a KD-tree (the same radii, so bitwise the same results): 3-D for x, y, z 1-D (the
# shared-z counts), 4-D for x, y 1-D and a 2-D z counted by rank scans. A private switch forces
# the KD-tree.
cdef bint EST_USE_GRIDND = True


def _set_gridnd(bint on):
    """Private: use (True) or bypass (False) the grid paths; returns the previous setting."""
    global EST_USE_GRIDND
    cdef bint old = EST_USE_GRIDND
    EST_USE_GRIDND = on
    return old


cdef struct GridXY:
    # the 4-D grid's x and y columns: sorted values (x then y, (2, n)) and each joint sample's
    # rank in them; xs NULL when absent
    const double *xs
    const int32_t *rx
    const int32_t *ry


cdef bint gridnd_applies(Marginal **margs, int n_marg, Py_ssize_t D, int k,
                         const GridXY *xy) noexcept nogil:
    """True when the conditional estimator's joint radii come from the grid (algorithm 1,
    k < n < 2^31): D = 3, a joint (x, y, z) of 1-D columns whose (x, z), (y, z) and z marginals
    share the z ranks (_shared_z_pairs); or D = 4, a joint (x, y, z1, z2) with x and y given in
    ``xy`` and z a pair-mode marginal."""
    if not EST_USE_GRIDND or n_marg != 3 or not (k < margs[0].n < 2147483647):
        return False
    if D == 3:
        return _shared_z_pairs(margs, n_marg, 1, NULL)
    return D == 4 and xy != NULL and xy.xs != NULL and margs[2].pair and margs[2].n == margs[0].n


cdef int gridnd_from_marginals(fi_gridnd *g, const double *joint, Py_ssize_t D, Marginal **margs,
                               const GridXY *xy, int k) noexcept nogil:
    """The grid over joint (n, D) (rows in sample order), with the columns' ranks and sorted
    values from the pair marginals (and ``xy`` for D = 4; see gridnd_applies). Returns 0, or -1
    when out of memory."""
    cdef const int32_t *rank[4]
    cdef const double *sorted_cols[4]
    cdef Py_ssize_t n = margs[0].n
    if D == 3:
        rank[0] = margs[0].rank0
        rank[1] = margs[1].rank0
        rank[2] = margs[0].rank1
        sorted_cols[0] = margs[0].sorted_values
        sorted_cols[1] = margs[1].sorted_values
        sorted_cols[2] = margs[0].sorted_values + n
    else:
        rank[0] = xy.rx
        rank[1] = xy.ry
        rank[2] = margs[2].rank0
        rank[3] = margs[2].rank1
        sorted_cols[0] = xy.xs
        sorted_cols[1] = xy.xs + n
        sorted_cols[2] = margs[2].sorted_values
        sorted_cols[3] = margs[2].sorted_values + n
    return fi_gridnd_build(g, joint, rank, sorted_cols, n, D, k)


cdef bint grid_marginals_apply(const Marginal *mz, const GridXY *xy, Py_ssize_t dx, Py_ssize_t dy,
                               Py_ssize_t n) noexcept nogil:
    """True when the conditional estimator's (x, z) and (y, z) marginals are counted on grids:
    1-D x and y given in ``xy``, a 2-D z in pair mode (its ranks), n < 2^31."""
    return (EST_USE_GRIDND and xy != NULL and xy.xs != NULL and dx == 1 and dy == 1
            and mz.pair and mz.n == n and 0 < n < 2147483647)


cdef int marginal_setup_grid_xz(Marginal *m, const double *xz, const Marginal *mz,
                                const double *xs, const int32_t *rx, int k) noexcept nogil:
    """The (x, z) (or (y, z)) marginal on a grid: xz (n, 3) = (x, z1, z2) rows; x's sorted values
    xs and each sample's rank rx; z's from the pair marginal mz (grid_marginals_apply)."""
    cdef const int32_t *rank[3]
    cdef const double *sorted_cols[3]
    rank[0] = rx
    rank[1] = mz.rank0
    rank[2] = mz.rank1
    sorted_cols[0] = xs
    sorted_cols[1] = mz.sorted_values
    sorted_cols[2] = mz.sorted_values + mz.n
    return marginal_setup_grid(m, xz, mz.n, rank, sorted_cols, k)


cdef int32_t *ranks_from_order(const Py_ssize_t *order, Py_ssize_t n) noexcept nogil:
    """rank[order[t]] = t (malloc'd int32; NULL when out of memory)."""
    cdef int32_t *rank = <int32_t *>malloc(max(n, 1) * sizeof(int32_t))
    cdef Py_ssize_t t
    if rank != NULL:
        for t in range(n):
            rank[order[t]] = <int32_t>t
    return rank


cdef int grid2_from_marginals(Grid2 *g, const double *x, const double *y, const Py_ssize_t *xo,
                              const Py_ssize_t *yo, const double *xs, const double *ys,
                              Py_ssize_t n, int k) noexcept nogil:
    """The grid over (x_i, y_i); xo, yo: the orders that sort x and y (xs, ys: the sorted
    values). Returns 0, or -1 when out of memory."""
    cdef Py_ssize_t r
    cdef int status
    cdef Py_ssize_t *rx = <Py_ssize_t *>malloc(max(n, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t *ry = <Py_ssize_t *>malloc(max(n, 1) * sizeof(Py_ssize_t))
    grid2_init(g)
    if rx == NULL or ry == NULL:
        free(rx)
        free(ry)
        return -1
    for r in range(n):
        rx[xo[r]] = r
        ry[yo[r]] = r
    status = grid2_build(g, x, y, rx, ry, xs, ys, n, k)
    free(rx)
    free(ry)
    return status


cdef enum:
    EST_PARALLEL_MIN = 32768  # fewer points: one thread (tuned on a loaded 2-core machine, where a
                              # parallel region waiting for a descheduled thread costs ~10-100 ms)


cdef inline int est_threads(Py_ssize_t n) noexcept nogil:
    return 1 if n < EST_PARALLEL_MIN else num_threads_for(n)


cdef inline int est_threads_d(Py_ssize_t n, Py_ssize_t d) noexcept nogil:
    """est_threads for k-NN work in d dimensions: a point costs ~8x more above 2 dimensions,
    so those go parallel from 4096 points."""
    return est_threads(n if d <= 2 else 8 * n)


cdef double ordered_sum(const double *v, Py_ssize_t n) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(n):
        s += v[i]
    return s


def ksg_mean_terms(const double[:, ::1] x, const double[::1] x_sorted,
                   const Py_ssize_t[::1] x_order,
                   const double[:, ::1] y, const double[::1] y_sorted,
                   const Py_ssize_t[::1] y_order,
                   int k, int algorithm, bint return_terms=False):
    """mean over samples of psi(n_x+1) + psi(n_y+1) (algorithm 1) or psi(n_x) + psi(n_y)
    (algorithm 2); with return_terms, (mean, the per-sample terms in sample order). The joint samples ``[x | y]`` are assembled here, and only for the KD-tree
    (two 1-D marginals use the grid, which reads x and y directly)."""
    cdef Py_ssize_t n = x.shape[0], dx = x.shape[1], dy = y.shape[1], D = dx + dy, i, c
    cdef double *joint = NULL
    cdef KDTree jt
    cdef Grid2 grid
    cdef bint use_grid = EST_USE_GRID2 and x.shape[1] == 1 and y.shape[1] == 1
    cdef Marginal mx, my
    cdef Marginal *margs[2]
    cdef double signs[2]
    cdef int status = 0
    cdef int nt = est_threads_d(n, D)
    terms = np.empty(n, dtype=np.float64)
    cdef double[::1] tv = terms
    cdef double total
    signs[0] = 1.0
    signs[1] = 1.0
    margs[0] = &mx
    margs[1] = &my
    marginal_init(&mx)
    marginal_init(&my)
    kdtree_init(&jt)
    grid2_init(&grid)
    with nogil:
        if use_grid:
            status = grid2_from_marginals(&grid, &x[0, 0], &y[0, 0], &x_order[0], &y_order[0],
                                          &x_sorted[0], &y_sorted[0], n, k)
        else:
            joint = <double *>malloc(n * D * sizeof(double))
            if joint == NULL:
                status = -1
            else:
                for i in range(n):
                    for c in range(dx):
                        joint[i * D + c] = x[i, c]
                    for c in range(dy):
                        joint[i * D + dx + c] = y[i, c]
                status = kdtree_build(&jt, joint, n, D, kd_leaf_knn(D), nt)
                free(joint)
        if status == 0:
            status = marginal_setup(&mx, x, x_sorted, x_order, nt)
        if status == 0:
            status = marginal_setup(&my, y, y_sorted, y_order, nt)
        if status == 0:
            status = ksg_pass(&jt, &grid if use_grid else NULL, NULL, margs, signs, 2, NULL, k,
                              algorithm, &tv[0], nt)
        kdtree_free(&jt)
        grid2_free(&grid)
        marginal_free(&mx)
        marginal_free(&my)
        total = ordered_sum(&tv[0], n)
    if status != 0:
        raise MemoryError("fastinfo: out of memory in the KSG estimator")
    if return_terms:
        return total / n, terms
    return total / n


cdef double permutation_mean_term(const double[:, ::1] x, const double[:, ::1] y,
                                  const double *xs, const double *ys, const Py_ssize_t *rank_x,
                                  const Py_ssize_t *rank_y, Marginal **margs,
                                  const Py_ssize_t *perm, Py_ssize_t *inverse, double *joint,
                                  double *yv, Py_ssize_t *ry, double *terms, int k,
                                  bint use_grid) noexcept nogil:
    """The algorithm-1 mean term of the KSG estimator on (x, y[perm]), bitwise what
    ksg_mean_terms returns for those samples; NaN when out of memory. rank_x[i]: rank of x[i] in
    xs; rank_y[s]: rank of y[s] in ys (both fixed across permutations). Scratch: inverse, ry (n),
    yv (n), joint (n * (dx + dy), KD-tree path only), terms (n)."""
    cdef Py_ssize_t n = x.shape[0], dx = x.shape[1], dy = y.shape[1], D = dx + dy, i, c
    cdef double signs[2]
    cdef KDTree jt
    cdef Grid2 grid
    cdef int status
    signs[0] = 1.0
    signs[1] = 1.0
    if use_grid:
        for i in range(n):
            yv[i] = y[perm[i], 0]
            ry[i] = rank_y[perm[i]]
        if grid2_build(&grid, &x[0, 0], yv, rank_x, ry, xs, ys, n, k) != 0:
            return NAN
        status = grid_ksg_pass(&grid, xs, ys, k, 1, terms, 1)
        grid2_free(&grid)
    else:
        for i in range(n):
            inverse[perm[i]] = i
            for c in range(dx):
                joint[i * D + c] = x[i, c]
            for c in range(dy):
                joint[i * D + dx + c] = y[perm[i], c]
        if kdtree_build(&jt, joint, n, D, kd_leaf_knn(D), 1) != 0:
            return NAN
        status = ksg_pass(&jt, NULL, NULL, margs, signs, 2, inverse, k, 1, terms, 1)
        kdtree_free(&jt)
    if status != 0:
        return NAN
    return ordered_sum(terms, n) / n


def ksg_permutation_null(const double[:, ::1] x, const double[::1] x_sorted,
                         const Py_ssize_t[::1] x_order,
                         const double[:, ::1] y, const double[::1] y_sorted,
                         const Py_ssize_t[::1] y_order,
                         rng, Py_ssize_t n_perm, int k):
    """The algorithm-1 KSG mean terms on (x, y[perm]) for n_perm permutations drawn from the numpy
    Generator ``rng`` exactly as ``[rng.permutation(n) for _ in range(n_perm)]`` draws them
    (entry p belongs to the p-th draw; rng ends in the same state). Each term is bitwise what
    ``ksg_mean_terms`` gives on (x, y[perm]). The structures that a permutation of y's rows does
    not change (sorted marginals, ranks, the marginal trees) are built once; the permutations
    run in parallel, one per thread at a time, each drawn under a lock just before its use."""
    cdef Py_ssize_t n = x.shape[0], dx = x.shape[1], dy = y.shape[1], D = dx + dy, r, p
    cdef Marginal mx, my
    cdef Marginal *margs[2]
    cdef int status = 0, fail = 0
    cdef int *failp = &fail
    cdef int nt = num_threads_for(n_perm)
    cdef bint use_grid = EST_USE_GRID2 and dx == 1 and dy == 1
    cdef Py_ssize_t counter = 0
    cdef Py_ssize_t *counterp = &counter
    cdef Py_ssize_t *rank_x = NULL
    cdef Py_ssize_t *rank_y = NULL
    cdef Py_ssize_t *perm = NULL
    cdef Py_ssize_t *inverse = NULL
    cdef Py_ssize_t *ry = NULL
    cdef double *joint = NULL
    cdef double *yv = NULL
    cdef double *terms = NULL
    cdef double value
    cdef const double *xs = NULL
    cdef const double *ys = NULL
    out = np.empty(n_perm, dtype=np.float64)
    cdef double[::1] ov = out
    if n_perm == 0:
        return out
    bit_generator = rng.bit_generator
    cdef bitgen_t *bg = generator_bitgen(bit_generator)
    margs[0] = &mx
    margs[1] = &my
    marginal_init(&mx)
    marginal_init(&my)
    with bit_generator.lock, nogil:
        if use_grid:
            xs = &x_sorted[0]
            ys = &y_sorted[0]
            rank_x = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t))
            rank_y = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t))
            if rank_x == NULL or rank_y == NULL:
                status = -1
            else:
                for r in range(n):
                    rank_x[x_order[r]] = r
                    rank_y[y_order[r]] = r
        else:
            status = marginal_setup(&mx, x, x_sorted, x_order, est_threads(n))
            if status == 0:
                status = marginal_setup(&my, y, y_sorted, y_order, est_threads(n))
        if status == 0:
            with parallel(num_threads=nt):
                perm = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t))
                inverse = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t))
                ry = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t))
                yv = <double *>malloc(n * sizeof(double))
                terms = <double *>malloc(n * sizeof(double))
                joint = <double *>malloc((1 if use_grid else n * D) * sizeof(double))
                for r in prange(n_perm, schedule='dynamic', chunksize=1):
                    # every iteration draws, so draw number p always exists exactly once
                    if perm == NULL:
                        failp[0] = 1
                        continue
                    p = fi_next_permutation(bg, counterp, n, perm)
                    if inverse == NULL or ry == NULL or yv == NULL or terms == NULL or joint == NULL:
                        failp[0] = 1
                        continue
                    value = permutation_mean_term(x, y, xs, ys, rank_x, rank_y, margs, perm,
                                                  inverse, joint, yv, ry, terms, k, use_grid)
                    if isnan(value):
                        failp[0] = 1
                    ov[p] = value
                free(perm)
                free(inverse)
                free(ry)
                free(yv)
                free(terms)
                free(joint)
        free(rank_x)
        free(rank_y)
        marginal_free(&mx)
        marginal_free(&my)
    if status != 0 or fail != 0:
        raise MemoryError("fastinfo: out of memory in the permutation test")
    return out


def cmi_mean_terms(const double[:, ::1] joint,
                   const double[:, ::1] xz, const double[:, ::1] yz,
                   const double[:, ::1] z, const double[::1] z_sorted,
                   const Py_ssize_t[::1] z_order,
                   int k, bint return_terms=False, pairs=None):
    """mean over samples of psi(n_xz+1) + psi(n_yz+1) - psi(n_z+1), strict counts within the
    k-th neighbour distance in the (x, y, z) space (Frenzel and Pompe 2007); with return_terms,
    (mean, the per-sample terms in sample order). ``pairs``: None, or for each of the xz, yz, z
    marginals a (sorted columns (2, n), orders (2, n)) pair, of shape (0, 0) unless that marginal
    is 2-D and counted by rank scans (the counts, so the results, are the same either way); a
    fourth entry, the same for the (x, y) columns, serves the 4-D grid search (1-D x and y, z a
    rank-scan pair)."""
    cdef Py_ssize_t n = joint.shape[0]
    cdef KDTree jt
    cdef fi_gridnd g3
    cdef bint use_g3 = False
    cdef GridXY xy
    cdef int32_t *rx = NULL
    cdef int32_t *ry = NULL
    cdef Marginal mxz, myz, mz
    cdef Marginal *margs[3]
    cdef double signs[3]
    cdef int status = 0
    cdef int nt = est_threads_d(n, joint.shape[1])
    cdef double[::1] empty_d = np.empty(0, dtype=np.float64)
    cdef Py_ssize_t[::1] empty_i = np.empty(0, dtype=np.intp)
    if pairs is None:
        pairs = [(_EMPTY_PAIR_D, _EMPTY_PAIR_I)] * 3
    cdef const double[:, ::1] xz_s = pairs[0][0]
    cdef const Py_ssize_t[:, ::1] xz_o = pairs[0][1]
    cdef const double[:, ::1] yz_s = pairs[1][0]
    cdef const Py_ssize_t[:, ::1] yz_o = pairs[1][1]
    cdef const double[:, ::1] z_s = pairs[2][0]
    cdef const Py_ssize_t[:, ::1] z_o = pairs[2][1]
    cdef const double[:, ::1] xy_s = pairs[3][0] if len(pairs) > 3 else _EMPTY_PAIR_D
    cdef const Py_ssize_t[:, ::1] xy_o = pairs[3][1] if len(pairs) > 3 else _EMPTY_PAIR_I
    terms = np.empty(n, dtype=np.float64)
    cdef double[::1] tv = terms
    cdef double total
    signs[0] = 1.0
    signs[1] = 1.0
    signs[2] = -1.0
    margs[0] = &mxz
    margs[1] = &myz
    margs[2] = &mz
    marginal_init(&mxz)
    marginal_init(&myz)
    marginal_init(&mz)
    kdtree_init(&jt)
    fi_gridnd_init(&g3)
    with nogil:
        status = marginal_setup_any(&mz, z, z_sorted, z_order, z_s, z_o, nt)
        xy.xs = NULL
        if status == 0 and xy_s.shape[0] == 2 and n > 0:
            rx = ranks_from_order(&xy_o[0, 0], n)
            ry = ranks_from_order(&xy_o[1, 0], n)
            if rx == NULL or ry == NULL:
                status = -1
            xy.xs = &xy_s[0, 0]
            xy.rx = rx
            xy.ry = ry
        if status == 0 and grid_marginals_apply(&mz, &xy, xz.shape[1] - z.shape[1],
                                                yz.shape[1] - z.shape[1], n):
            status = marginal_setup_grid_xz(&mxz, &xz[0, 0], &mz, xy.xs, xy.rx, k)
            if status == 0:
                status = marginal_setup_grid_xz(&myz, &yz[0, 0], &mz, xy.xs + n, xy.ry, k)
        elif status == 0:
            status = marginal_setup_any(&mxz, xz, empty_d, empty_i, xz_s, xz_o, nt)
            if status == 0:
                status = marginal_setup_any(&myz, yz, empty_d, empty_i, yz_s, yz_o, nt)
        if status == 0:
            use_g3 = gridnd_applies(margs, 3, joint.shape[1], k, &xy)
            if use_g3:
                status = gridnd_from_marginals(&g3, &joint[0, 0], joint.shape[1], margs, &xy, k)
            else:
                status = kdtree_build(&jt, &joint[0, 0], n, joint.shape[1],
                                      kd_leaf_knn(joint.shape[1]), nt)
        if status == 0:
            status = ksg_pass(NULL if use_g3 else &jt, NULL, &g3 if use_g3 else NULL, margs,
                              signs, 3, NULL, k, 1, &tv[0], nt)
        kdtree_free(&jt)
        fi_gridnd_free(&g3)
        free(rx)
        free(ry)
        marginal_free(&mxz)
        marginal_free(&myz)
        marginal_free(&mz)
        total = ordered_sum(&tv[0], n)
    if status != 0:
        raise MemoryError("fastinfo: out of memory in the conditional KSG estimator")
    if return_terms:
        return total / n, terms
    return total / n


_EMPTY_PAIR_D = np.empty((0, 0), dtype=np.float64)
_EMPTY_PAIR_I = np.empty((0, 0), dtype=np.intp)


cdef double cmi_permuted_mean_term(const double[:, ::1] x, const double[:, ::1] y,
                                   const double[:, ::1] z, Marginal **margs,
                                   const Py_ssize_t *perm, double *joint, double *xz,
                                   double *terms, Py_ssize_t *inverse, Py_ssize_t *order0,
                                   const double *xz_sorted2, const Py_ssize_t *xz_order2,
                                   const GridXY *xy0, int32_t *rxp, int k) noexcept nogil:
    """The mean term of the Frenzel-Pompe estimator on (x[perm], y, z), bitwise what
    cmi_mean_terms returns for those samples; NaN when out of memory. margs[1] (the (y, z)
    marginal) and margs[2] (z) are fixed across permutations; margs[0] (x, z) is rebuilt here:
    a KD-tree, or (``xz_sorted2`` not NULL: 1-D x and z) rank scans on the unpermuted pair's
    sorted columns, whose column-0 order is permuted (x[perm]'s rank t is held by the sample
    inverse[xz_order2[0, t]]). Scratch: joint (n * (dx + dy + dz)), xz (n * (dx + dz)),
    terms (n), inverse and order0 (n, rank scans only), rxp (n, when ``xy0``, the unpermuted
    (x, y) columns of the 4-D grid, is given: x[perm]'s ranks). One thread."""
    cdef Py_ssize_t n = x.shape[0], dx = x.shape[1], dy = y.shape[1], dz = z.shape[1]
    cdef Py_ssize_t D = dx + dy + dz, DXZ = dx + dz, i, c, s
    cdef KDTree jt
    cdef fi_gridnd g3
    cdef bint use_g3
    cdef GridXY xyp
    cdef Marginal mxz
    cdef int status
    cdef double signs[3]
    xyp.xs = NULL
    if xy0 != NULL and xy0.xs != NULL:
        for i in range(n):
            rxp[i] = xy0.rx[perm[i]]
        xyp.xs = xy0.xs
        xyp.rx = rxp
        xyp.ry = xy0.ry
    for i in range(n):
        s = perm[i]
        for c in range(dx):
            joint[i * D + c] = x[s, c]
            xz[i * DXZ + c] = x[s, c]
        for c in range(dy):
            joint[i * D + dx + c] = y[i, c]
        for c in range(dz):
            joint[i * D + dx + dy + c] = z[i, c]
            xz[i * DXZ + dx + c] = z[i, c]
    marginal_init(&mxz)
    if xz_sorted2 != NULL:
        for i in range(n):
            inverse[perm[i]] = i
        for i in range(n):
            order0[i] = inverse[xz_order2[i]]
        if marginal_setup_pair(&mxz, xz, n, xz_sorted2, order0, xz_order2 + n) != 0:
            marginal_free(&mxz)
            return NAN
    elif grid_marginals_apply(margs[2], &xyp, dx, dy, n):
        if marginal_setup_grid_xz(&mxz, xz, margs[2], xyp.xs, xyp.rx, k) != 0:
            marginal_free(&mxz)
            return NAN
    else:
        mxz.n = n
        mxz.d = DXZ
        mxz.data = xz
        mxz.sorted_values = NULL
        mxz.order = NULL
        if kdtree_build(&mxz.tree, xz, n, DXZ,
                        kd_leaf_count(DXZ), 1) != 0:
            marginal_free(&mxz)
            return NAN
    margs[0] = &mxz
    kdtree_init(&jt)
    fi_gridnd_init(&g3)
    use_g3 = gridnd_applies(margs, 3, D, k, &xyp)
    if use_g3:
        status = gridnd_from_marginals(&g3, joint, D, margs, &xyp, k)
    else:
        status = kdtree_build(&jt, joint, n, D, kd_leaf_knn(D), 1)
    if status != 0:
        marginal_free(&mxz)
        return NAN
    signs[0] = 1.0
    signs[1] = 1.0
    signs[2] = -1.0
    status = ksg_pass(NULL if use_g3 else &jt, NULL, &g3 if use_g3 else NULL, margs, signs, 3,
                      NULL, k, 1, terms, 1)
    kdtree_free(&jt)
    fi_gridnd_free(&g3)
    marginal_free(&mxz)
    if status != 0:
        return NAN
    return ordered_sum(terms, n) / n


def cmi_permutation_null(const double[:, ::1] x, const double[:, ::1] y,
                         const double[:, ::1] yz, const double[:, ::1] z,
                         const double[::1] z_sorted, const Py_ssize_t[::1] z_order,
                         rng, Py_ssize_t n_perm, int k, pairs=None):
    """The Frenzel-Pompe mean terms on (x[perm], y, z) for n_perm permutations drawn from the
    numpy Generator ``rng`` exactly as ``[rng.permutation(n) for _ in range(n_perm)]`` draws
    them (entry p belongs to the p-th draw). Each term is bitwise what ``cmi_mean_terms`` gives
    on those samples. The (y, z) and z structures, which a permutation of x's rows does not
    change, are built once; the permutations run in parallel, one per thread at a time.
    ``pairs`` as for cmi_mean_terms, the xz entry for the unpermuted (x, z)."""
    cdef Py_ssize_t n = x.shape[0], dx = x.shape[1], dy = y.shape[1], dz = z.shape[1], p
    cdef Py_ssize_t D = dx + dy + dz, r
    cdef Marginal myz, mz
    cdef int status = 0, fail = 0
    cdef int *failp = &fail
    cdef int nt = num_threads_for(n_perm)
    cdef Py_ssize_t counter = 0
    cdef Py_ssize_t *counterp = &counter
    cdef Py_ssize_t *perm = NULL
    cdef Py_ssize_t *inverse = NULL
    cdef Py_ssize_t *order0 = NULL
    cdef double *joint = NULL
    cdef double *xzb = NULL
    cdef double *terms = NULL
    cdef Marginal **margs = NULL
    cdef int32_t *rxp = NULL
    cdef GridXY xy
    cdef int32_t *rx = NULL
    cdef int32_t *ry = NULL
    cdef double value
    cdef double[::1] empty_d = np.empty(0, dtype=np.float64)
    cdef Py_ssize_t[::1] empty_i = np.empty(0, dtype=np.intp)
    if pairs is None:
        pairs = [(_EMPTY_PAIR_D, _EMPTY_PAIR_I)] * 3
    cdef const double[:, ::1] xz_s = pairs[0][0]
    cdef const Py_ssize_t[:, ::1] xz_o = pairs[0][1]
    cdef const double[:, ::1] yz_s = pairs[1][0]
    cdef const Py_ssize_t[:, ::1] yz_o = pairs[1][1]
    cdef const double[:, ::1] z_s = pairs[2][0]
    cdef const Py_ssize_t[:, ::1] z_o = pairs[2][1]
    cdef const double[:, ::1] xy_s = pairs[3][0] if len(pairs) > 3 else _EMPTY_PAIR_D
    cdef const Py_ssize_t[:, ::1] xy_o = pairs[3][1] if len(pairs) > 3 else _EMPTY_PAIR_I
    cdef bint xz_pair = dx == 1 and dz == 1 and xz_s.shape[0] == 2
    cdef const double *xz_sp = &xz_s[0, 0] if xz_pair else NULL
    cdef const Py_ssize_t *xz_op = &xz_o[0, 0] if xz_pair else NULL
    out = np.empty(n_perm, dtype=np.float64)
    cdef double[::1] ov = out
    if n_perm == 0:
        return out
    bit_generator = rng.bit_generator
    cdef bitgen_t *bg = generator_bitgen(bit_generator)
    marginal_init(&myz)
    marginal_init(&mz)
    with bit_generator.lock, nogil:
        status = marginal_setup_any(&mz, z, z_sorted, z_order, z_s, z_o, est_threads(n))
        xy.xs = NULL
        if status == 0 and xy_s.shape[0] == 2 and n > 0:
            rx = ranks_from_order(&xy_o[0, 0], n)
            ry = ranks_from_order(&xy_o[1, 0], n)
            if rx == NULL or ry == NULL:
                status = -1
            xy.xs = &xy_s[0, 0]
            xy.rx = rx
            xy.ry = ry
        if status == 0 and grid_marginals_apply(&mz, &xy, dx, dy, n):
            status = marginal_setup_grid_xz(&myz, &yz[0, 0], &mz, xy.xs + n, xy.ry, k)
        elif status == 0:
            status = marginal_setup_any(&myz, yz, empty_d, empty_i, yz_s, yz_o, est_threads(n))
        if status == 0:
            with parallel(num_threads=nt):
                perm = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t))
                inverse = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t))
                order0 = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t))
                rxp = <int32_t *>malloc(n * sizeof(int32_t))
                joint = <double *>malloc(n * D * sizeof(double))
                xzb = <double *>malloc(n * (dx + dz) * sizeof(double))
                terms = <double *>malloc(n * sizeof(double))
                margs = <Marginal **>malloc(3 * sizeof(Marginal *))
                if margs != NULL:
                    margs[1] = &myz
                    margs[2] = &mz
                for r in prange(n_perm, schedule='dynamic', chunksize=1):
                    # every iteration draws, so draw number p always exists exactly once
                    if perm == NULL:
                        failp[0] = 1
                        continue
                    p = fi_next_permutation(bg, counterp, n, perm)
                    if (joint == NULL or xzb == NULL or terms == NULL or margs == NULL
                            or inverse == NULL or order0 == NULL or rxp == NULL):
                        failp[0] = 1
                        continue
                    value = cmi_permuted_mean_term(x, y, z, margs, perm, joint, xzb, terms, inverse,
                                                   order0, xz_sp, xz_op, &xy, rxp, k)
                    if isnan(value):
                        failp[0] = 1
                    ov[p] = value
                free(perm)
                free(inverse)
                free(order0)
                free(joint)
                free(xzb)
                free(terms)
                free(margs)
                free(rxp)
        marginal_free(&myz)
        marginal_free(&mz)
        free(rx)
        free(ry)
    if status != 0 or fail != 0:
        raise MemoryError("fastinfo: out of memory in the transfer entropy permutation test")
    return out


cdef int knn_radius_pass(const KDTree *t, int k, double *eps_out, Py_ssize_t offset,
                         int nt) noexcept nogil:
    """eps_out[offset + sample] = distance from the sample to its k-th nearest neighbour."""
    cdef Py_ssize_t q
    cdef int fail = 0
    cdef int *failp = &fail
    cdef double *best_d = NULL
    cdef Py_ssize_t *best_p = NULL
    cdef Py_ssize_t *best_i = NULL
    cdef Py_ssize_t *stack = NULL
    cdef double *stack_d = NULL
    with parallel(num_threads=nt):
        best_d = <double *>malloc(k * sizeof(double))
        best_p = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
        best_i = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
        stack = <Py_ssize_t *>malloc(KD_STACK * sizeof(Py_ssize_t))
        stack_d = <double *>malloc(KD_STACK * sizeof(double))
        for q in prange(t.n, schedule='dynamic', chunksize=256):
            if best_d == NULL or best_p == NULL or best_i == NULL or stack == NULL or stack_d == NULL:
                failp[0] = 1
                continue
            eps_out[offset + t.index[q]] = kdtree_knn(t, q, k, best_d, best_p, best_i, stack, stack_d)
        free(best_d)
        free(best_p)
        free(best_i)
        free(stack)
        free(stack_d)
    return -fail


def knn_radius(const double[:, ::1] points, int k):
    """Distance (max-norm) from each sample to its k-th nearest other sample, sample order."""
    cdef Py_ssize_t n = points.shape[0]
    cdef KDTree t
    cdef int status
    cdef int nt = est_threads_d(n, points.shape[1])
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] ov = out
    with nogil:
        status = kdtree_build(&t, &points[0, 0], n, points.shape[1], kd_leaf_knn(points.shape[1]), nt)
        if status == 0:
            status = knn_radius_pass(&t, k, &ov[0], 0, nt)
        kdtree_free(&t)
    if status != 0:
        raise MemoryError("fastinfo: out of memory in the k-nearest-neighbour search")
    return out


def knn_radius_grouped(const double[:, ::1] points, const Py_ssize_t[::1] offsets,
                       const Py_ssize_t[::1] ks):
    """Like ``knn_radius`` within each group ``points[offsets[g]:offsets[g+1]]`` with
    ``ks[g]`` neighbours; groups with ``ks[g] < 1`` get NaN."""
    cdef Py_ssize_t n = points.shape[0], d = points.shape[1], g, s, e, i
    cdef Py_ssize_t n_groups = ks.shape[0]
    cdef KDTree t
    cdef int status = 0
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] ov = out
    with nogil:
        for g in range(n_groups):
            s = offsets[g]
            e = offsets[g + 1]
            if ks[g] < 1 or e - s <= ks[g]:
                for i in range(s, e):
                    ov[i] = NAN
                continue
            status = kdtree_build(&t, &points[s, 0], e - s, d, kd_leaf_knn(d), est_threads_d(e - s, d))
            if status == 0:
                status = knn_radius_pass(&t, <int>ks[g], &ov[0], s, est_threads_d(e - s, d))
            kdtree_free(&t)
            if status != 0:
                break
    if status != 0:
        raise MemoryError("fastinfo: out of memory in the k-nearest-neighbour search")
    return out


def count_within(const double[:, ::1] points, const double[::1] sorted_values,
                 const Py_ssize_t[::1] order, const double[::1] radius, bint strict):
    """#{j != i : ||p_j - p_i|| < radius[i]} (strict) or ``<=`` for every sample i (intp)."""
    cdef Py_ssize_t n = points.shape[0]
    cdef Marginal m
    cdef int status
    cdef int nt = est_threads(n)
    out = np.empty(n, dtype=np.intp)
    cdef Py_ssize_t[::1] ov = out
    marginal_init(&m)
    with nogil:
        status = marginal_setup(&m, points, sorted_values, order, nt)
        if status == 0:
            status = marginal_count_all(&m, &radius[0], strict, NULL, &ov[0], nt)
        marginal_free(&m)
    if status != 0:
        raise MemoryError("fastinfo: out of memory in the range count")
    return out


cdef double pair_mean_term(const double *xa, const double *xa_sorted, const Py_ssize_t *xa_order,
                           const double *yb, const double *yb_sorted, const Py_ssize_t *yb_order,
                           Py_ssize_t n, int k, bint use_grid, double *joint, double *terms,
                           KDTree *jt, Grid2 *grid, Marginal *mx, Marginal *my,
                           Marginal **margs) noexcept nogil:
    """The algorithm-1 KSG mean term of two 1-D variables (values, sorted copies, sorting
    orders), bitwise what ksg_mean_terms returns; one thread. Scratch: joint (2 n), terms (n).
    NaN when out of memory."""
    cdef double signs[2]
    cdef Py_ssize_t i
    cdef int status
    signs[0] = 1.0
    signs[1] = 1.0
    kdtree_init(jt)
    grid2_init(grid)
    if use_grid:
        if grid2_from_marginals(grid, xa, yb, xa_order, yb_order, xa_sorted, yb_sorted, n, k) != 0:
            return NAN
    else:
        for i in range(n):
            joint[2 * i] = xa[i]
            joint[2 * i + 1] = yb[i]
        if kdtree_build(jt, joint, n, 2, KD_LEAF_SIZE, 1) != 0:
            return NAN
    mx.n = n
    mx.d = 1
    mx.data = xa
    mx.sorted_values = xa_sorted
    mx.order = xa_order
    marginal_init(mx)
    my.n = n
    my.d = 1
    my.data = yb
    my.sorted_values = yb_sorted
    my.order = yb_order
    marginal_init(my)
    margs[0] = mx
    margs[1] = my
    status = ksg_pass(jt if not use_grid else NULL, grid if use_grid else NULL, NULL, margs, signs, 2,
                      NULL, k, 1, terms, 1)
    kdtree_free(jt)
    grid2_free(grid)
    if status != 0:
        return NAN
    return ordered_sum(terms, n) / n


def ksg_column_pairs(const double[:, ::1] columns, const double[:, ::1] sorted_columns,
                     const Py_ssize_t[:, ::1] orders, const Py_ssize_t[:, ::1] pairs, int k):
    """Algorithm-1 KSG mean terms for many pairs of 1-D variables: ``columns`` (m, n) holds one
    variable per row, ``sorted_columns`` their sorted copies; for each row (a, b) of ``pairs``
    the result equals ``ksg_mean_terms`` on x = columns[a], y = columns[b] bitwise (same tree,
    same per-sample terms, same order of the sum). Parallel over pairs, one thread per pair:
    no per-call thread start-up, and the sorted columns are shared by every pair."""
    cdef Py_ssize_t n = columns.shape[1], n_pairs = pairs.shape[0], p, a, b
    cdef int nt = num_threads_for(n_pairs), fail = 0
    cdef int *failp = &fail
    cdef double *joint = NULL
    cdef double *terms = NULL
    cdef KDTree *jt = NULL
    cdef Grid2 *grid = NULL
    cdef bint use_grid = EST_USE_GRID2
    cdef Marginal *mx = NULL
    cdef Marginal *my = NULL
    cdef Marginal **margs = NULL
    out = np.empty(n_pairs, dtype=np.float64)
    cdef double[::1] ov = out
    if n_pairs == 0:
        return out
    with nogil, parallel(num_threads=nt):
        joint = <double *>malloc(2 * n * sizeof(double))
        terms = <double *>malloc(n * sizeof(double))
        jt = <KDTree *>malloc(sizeof(KDTree))
        grid = <Grid2 *>malloc(sizeof(Grid2))
        mx = <Marginal *>malloc(sizeof(Marginal))
        my = <Marginal *>malloc(sizeof(Marginal))
        margs = <Marginal **>malloc(2 * sizeof(Marginal *))
        for p in prange(n_pairs, schedule='dynamic'):
            if (joint == NULL or terms == NULL or jt == NULL or grid == NULL or mx == NULL
                    or my == NULL or margs == NULL):
                failp[0] = 1
                continue
            a = pairs[p, 0]
            b = pairs[p, 1]
            ov[p] = pair_mean_term(&columns[a, 0], &sorted_columns[a, 0], &orders[a, 0],
                                   &columns[b, 0], &sorted_columns[b, 0], &orders[b, 0], n, k,
                                   use_grid, joint, terms, jt, grid, mx, my, margs)
            if isnan(ov[p]):
                failp[0] = 1
        free(joint)
        free(terms)
        free(jt)
        free(grid)
        free(mx)
        free(my)
        free(margs)
    if fail != 0:
        raise MemoryError("fastinfo: out of memory in the KSG estimator")
    return out


# Many pairs of prepared 1-D columns (mutual_info_matrix, in memory and in Dask tiles). What a pair
# of 1-D columns needs from each column alone is prepared once per column, not once per pair: the
# sorted copy, each sample's grid bin (the quantile bin of its rank, grid2_column_bins; uint16, as
# G <= 2048) and, per kernel call, the coarse sample of the sorted copy; the digamma table once per
# call. A pair then only builds its grid (a counting sort by cell) and runs the pass.


def grid2_columns_side(Py_ssize_t n, int k):
    """G, the number of grid bins per axis for n samples and k neighbours (grid2_build's)."""
    return grid2_side(n, k)


def grid2_column_bins(const Py_ssize_t[:, ::1] orders, Py_ssize_t G):
    """bins[j, i] = the grid bin of sample i's rank in row j (orders[j] sorts row j): bin b holds
    the ranks [ceil(b n / G), ceil((b + 1) n / G)), as grid2_build bins ranks. uint16 (m, n)."""
    cdef Py_ssize_t m = orders.shape[0], n = orders.shape[1], j, b, r, r1
    cdef int nt = num_threads_for(m) if m * n >= EST_PARALLEL_MIN else 1
    out = np.empty((m, n), dtype=np.uint16)
    cdef uint16_t[:, ::1] ov = out
    if m == 0 or n == 0:
        return out
    for j in prange(m, nogil=True, schedule='static', num_threads=nt):
        for b in range(G):
            r1 = grid2_bin_start(b + 1, n, G)
            for r in range(grid2_bin_start(b, n, G), r1):
                ov[j, orders[j, r]] = <uint16_t>b
    return out


cdef void _free_rows(double **rows, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t j
    if rows != NULL:
        for j in range(m):
            free(rows[j])
        free(rows)


cdef double **_coarse_rows(const double **sorted_rows, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """coarse_sample of every row (an array of malloc'd rows); NULL when out of memory."""
    cdef Py_ssize_t j
    cdef double **rows = <double **>calloc(max(m, 1), sizeof(double *))
    if rows == NULL:
        return NULL
    for j in range(m):
        rows[j] = coarse_sample(sorted_rows[j], n)
        if rows[j] == NULL:
            _free_rows(rows, m)
            return NULL
    return rows


cdef struct PreparedRows:
    Py_ssize_t m
    const double **values       # the columns' values (m pointers to n doubles)
    const double **sorted_values
    const uint16_t **bins


cdef int _prepared_rows(PreparedRows *r, values, sorted_values, bins, Py_ssize_t n) except -1:
    """Pointers to the data of sequences of 1-D arrays (the arrays stay owned by the caller, who
    keeps them alive during the call); ValueError unless each has length n."""
    cdef Py_ssize_t j, m = len(values)
    cdef const double[::1] v
    cdef const uint16_t[::1] b
    if len(sorted_values) != m or len(bins) != m:
        raise ValueError("prepared columns: values, sorted values and bins differ in number")
    r.m = m
    r.values = <const double **>malloc(max(m, 1) * sizeof(double *))
    r.sorted_values = <const double **>malloc(max(m, 1) * sizeof(double *))
    r.bins = <const uint16_t **>malloc(max(m, 1) * sizeof(uint16_t *))
    if r.values == NULL or r.sorted_values == NULL or r.bins == NULL:
        raise MemoryError()
    for j in range(m):
        v = values[j]
        if v.shape[0] != n:
            raise ValueError(f"prepared column {j} has {v.shape[0]} samples, not {n}")
        r.values[j] = &v[0]
        v = sorted_values[j]
        if v.shape[0] != n:
            raise ValueError(f"prepared column {j} has {v.shape[0]} sorted samples, not {n}")
        r.sorted_values[j] = &v[0]
        b = bins[j]
        if b.shape[0] != n:
            raise ValueError(f"prepared column {j} has {b.shape[0]} bins, not {n}")
        r.bins[j] = &b[0]
    return 0


cdef void _prepared_rows_free(PreparedRows *r) noexcept nogil:
    free(r.values)
    free(r.sorted_values)
    free(r.bins)
    r.values = NULL
    r.sorted_values = NULL
    r.bins = NULL


def ksg_grid_pairs(columns_a, sorted_a, bins_a, columns_b, sorted_b, bins_b,
                   const Py_ssize_t[:, ::1] pairs, Py_ssize_t n, Py_ssize_t G, int k):
    """Algorithm-1 KSG mean terms of pairs of prepared 1-D columns: ``columns_a`` is a sequence of
    float64 arrays of length n (one variable each, C-contiguous), ``sorted_a`` their sorted copies,
    ``bins_a`` their grid bins (grid2_column_bins of their orders, G bins; uint16); likewise b (a
    and b may be the same sequences). Pair p is (columns_a[pairs[p, 0]], columns_b[pairs[p, 1]]).
    Entry p equals bitwise ``ksg_mean_terms`` on that pair (the same grid, the same per-sample terms
    summed in the same order) when G = grid2_columns_side(n, k). The columns are read where they
    are (rows of one array, or separate arrays: no copy). Parallel over pairs (one thread per pair,
    dynamic); the coarse samples and the digamma table are built once per call."""
    cdef Py_ssize_t n_pairs = pairs.shape[0], p, a, b
    cdef int nt = num_threads_for(n_pairs), fail = 0, status
    cdef int *failp = &fail
    cdef bint same = columns_a is columns_b and sorted_a is sorted_b and bins_a is bins_b
    cdef PreparedRows ra, rb
    cdef double **coarse_a = NULL
    cdef double **coarse_b = NULL
    cdef double *psi = NULL
    cdef double *terms = NULL
    cdef Grid2 *grid = NULL
    out = np.empty(n_pairs, dtype=np.float64)
    cdef double[::1] ov = out
    if n_pairs == 0:
        return out
    ra.values = NULL
    ra.sorted_values = NULL
    ra.bins = NULL
    rb.values = NULL
    rb.sorted_values = NULL
    rb.bins = NULL
    try:
        _prepared_rows(&ra, columns_a, sorted_a, bins_a, n)
        if not same:
            _prepared_rows(&rb, columns_b, sorted_b, bins_b, n)
        for p in range(n_pairs):
            if not (0 <= pairs[p, 0] < ra.m and 0 <= pairs[p, 1] < (ra.m if same else rb.m)):
                raise ValueError(f"pair {p} ({pairs[p, 0]}, {pairs[p, 1]}) is out of range")
        with nogil:
            coarse_a = _coarse_rows(ra.sorted_values, ra.m, n)
            coarse_b = coarse_a if same else _coarse_rows(rb.sorted_values, rb.m, n)
            psi = psi_table(n)
            if same:
                rb = ra
            if coarse_a == NULL or coarse_b == NULL or psi == NULL:
                fail = 1
            else:
                with parallel(num_threads=nt):
                    terms = <double *>malloc(n * sizeof(double))
                    grid = <Grid2 *>malloc(sizeof(Grid2))
                    for p in prange(n_pairs, schedule='dynamic'):
                        if terms == NULL or grid == NULL:
                            failp[0] = 1
                            continue
                        a = pairs[p, 0]
                        b = pairs[p, 1]
                        status = grid2_build_cells(grid, ra.values[a], rb.values[b], NULL, NULL,
                                                   ra.bins[a], rb.bins[b], ra.sorted_values[a],
                                                   rb.sorted_values[b], n, G)
                        if status == 0:
                            status = grid_ksg_pass_tables(grid, ra.sorted_values[a],
                                                          rb.sorted_values[b], coarse_a[a],
                                                          coarse_b[b], psi, k, 1, terms, 1)
                            grid2_free(grid)
                        if status != 0:
                            failp[0] = 1
                            ov[p] = NAN
                            continue
                        ov[p] = ordered_sum(terms, n) / n
                    free(terms)
                    free(grid)
            _free_rows(coarse_a, ra.m)
            if not same:
                _free_rows(coarse_b, rb.m)
            free(psi)
    finally:
        _prepared_rows_free(&ra)
        if not same:
            _prepared_rows_free(&rb)
    if fail != 0:
        raise MemoryError("fastinfo: out of memory in the KSG estimator")
    return out


def ksg_rows_against_target(const double[:, ::1] rows, const double[::1] target,
                            const double[::1] target_sorted, const Py_ssize_t[::1] target_order,
                            int k):
    """Algorithm-1 KSG mean terms of each row of ``rows`` (m, n) with ``target`` (n,): entry j is
    bitwise ``ksg_mean_terms`` on (rows[j], target). Each row is sorted inside its thread (the
    estimate does not depend on the order of tied values), so the memory beyond the input is a
    few arrays of length n per thread, not sorted copies of every row. Parallel over rows."""
    cdef Py_ssize_t n = rows.shape[1], m = rows.shape[0], j
    cdef int nt = num_threads_for(m), fail = 0
    cdef int *failp = &fail
    cdef double *joint = NULL
    cdef double *terms = NULL
    cdef double *xs = NULL
    cdef Py_ssize_t *xo = NULL
    cdef KDTree *jt = NULL
    cdef Grid2 *grid = NULL
    cdef bint use_grid = EST_USE_GRID2
    cdef Marginal *mx = NULL
    cdef Marginal *my = NULL
    cdef Marginal **margs = NULL
    out = np.empty(m, dtype=np.float64)
    cdef double[::1] ov = out
    if m == 0:
        return out
    with nogil, parallel(num_threads=nt):
        joint = <double *>malloc(2 * n * sizeof(double))
        terms = <double *>malloc(n * sizeof(double))
        xs = <double *>malloc(n * sizeof(double))
        xo = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t))
        jt = <KDTree *>malloc(sizeof(KDTree))
        grid = <Grid2 *>malloc(sizeof(Grid2))
        mx = <Marginal *>malloc(sizeof(Marginal))
        my = <Marginal *>malloc(sizeof(Marginal))
        margs = <Marginal **>malloc(2 * sizeof(Marginal *))
        for j in prange(m, schedule='dynamic'):
            if (joint == NULL or terms == NULL or xs == NULL or xo == NULL or jt == NULL
                    or grid == NULL or mx == NULL or my == NULL or margs == NULL):
                failp[0] = 1
                continue
            if radix_argsort_row(&rows[j, 0], n, xs, xo) != 0:
                failp[0] = 1
                continue
            ov[j] = pair_mean_term(&rows[j, 0], xs, xo, &target[0], &target_sorted[0],
                                   &target_order[0], n, k, use_grid, joint, terms, jt, grid,
                                   mx, my, margs)
            if isnan(ov[j]):
                failp[0] = 1
        free(joint)
        free(terms)
        free(xs)
        free(xo)
        free(jt)
        free(grid)
        free(mx)
        free(my)
        free(margs)
    if fail != 0:
        raise MemoryError("fastinfo: out of memory in the KSG estimator")
    return out


cdef enum:
    RADIX_BITS = 11
    RADIX_BUCKETS = 2048
    RADIX_PASSES = 6        # 6 * 11 >= 64


cdef enum:
    MSD_MIN = 131072        # rows this long: one MSD pass, then cache-resident LSD per bucket (measured:
                            # 1.7x faster at 1e6, 1.4x at 3e5, 1.2x slower at 1e5)
    MSD_BITS = 16
    MSD_BUCKETS = 65536
    LSD_BITS = 8
    LSD_BUCKETS = 256
    LSD_MAX_PASSES = 6      # 6 * 8 >= 48, the most bits left below a 16-bit MSD digit
    SMALL_SORT = 48         # buckets this small: insertion sort


cdef inline uint64_t _monotone_key(double x) noexcept nogil:
    """The float64 bit pattern as an unsigned key monotone in the value (negatives: all bits
    flipped; others: the sign bit set)."""
    cdef uint64_t u
    memcpy(&u, &x, sizeof(uint64_t))
    return (~u) if (u >> 63) else (u | ((<uint64_t>1) << 63))


cdef inline double _key_value(uint64_t u) noexcept nogil:
    cdef double x
    u = (u ^ ((<uint64_t>1) << 63)) if (u >> 63) else (~u)
    memcpy(&x, &u, sizeof(double))
    return x


cdef void _bucket_sort_low_bits(uint64_t *ka, Py_ssize_t *ia, uint64_t *kb, Py_ssize_t *ib,
                                Py_ssize_t m, int bits, double *sorted_out,
                                Py_ssize_t *order_out, Py_ssize_t *hist) noexcept nogil:
    """Sort the m pairs (ka, ia), whose keys agree above their low ``bits`` bits, by those bits
    (LSD, 8-bit digits, constant digits skipped; insertion sort when small; kb, ib: scratch of
    m; hist: LSD_MAX_PASSES * LSD_BUCKETS counters) and write the values and indices out. The
    scratch may be the output itself (kb the bytes of sorted_out, ib order_out): the last loop
    converts element by element in place."""
    cdef Py_ssize_t i, j, pos, total
    cdef int p, passes = (bits + LSD_BITS - 1) // LSD_BITS, shift
    cdef uint64_t u, mask = LSD_BUCKETS - 1
    cdef Py_ssize_t t
    cdef uint64_t *kt
    cdef Py_ssize_t *it
    cdef Py_ssize_t *h
    if m <= SMALL_SORT:
        for i in range(1, m):
            u = ka[i]
            t = ia[i]
            j = i
            while j > 0 and ka[j - 1] > u:
                ka[j] = ka[j - 1]
                ia[j] = ia[j - 1]
                j -= 1
            ka[j] = u
            ia[j] = t
    else:
        memset(hist, 0, passes * LSD_BUCKETS * sizeof(Py_ssize_t))
        for i in range(m):
            u = ka[i]
            for p in range(passes):
                hist[p * LSD_BUCKETS + ((u >> (p * LSD_BITS)) & mask)] += 1
        for p in range(passes):
            h = hist + p * LSD_BUCKETS
            shift = p * LSD_BITS
            if h[(ka[0] >> shift) & mask] == m:
                continue
            total = 0
            for i in range(LSD_BUCKETS):
                pos = h[i]
                h[i] = total
                total += pos
            for i in range(m):
                u = ka[i]
                pos = h[(u >> shift) & mask]
                h[(u >> shift) & mask] = pos + 1
                kb[pos] = u
                ib[pos] = ia[i]
            kt = ka
            ka = kb
            kb = kt
            it = ia
            ia = ib
            ib = it
    for i in range(m):
        sorted_out[i] = _key_value(ka[i])
        order_out[i] = ia[i]


cdef int radix_argsort_large(const double *v, Py_ssize_t n, double *sorted_out,
                             Py_ssize_t *order_out) noexcept nogil:
    """radix_argsort_row for long rows: one MSD pass on the 16 highest bits in which the keys
    differ (a monotone bucket number), then each bucket (cache-resident for spread-out data)
    sorted by its remaining low bits. The LSD passes over the whole row each scatter 16-byte
    pairs to 2048 places in memory; here only the first does. Extra memory: 16 bytes per value.
    Returns 0, or -1 when out of memory."""
    cdef Py_ssize_t i, pos, total, b, start, m
    cdef int top, shift, low_bits
    cdef uint64_t u, kmin, kmax, mask = MSD_BUCKETS - 1
    # scratch: the outputs themselves (sorted_out holds the keys until the MSD scatter, then
    # serves, like order_out, as each bucket's LSD scratch and finally receives it)
    cdef uint64_t *keys = <uint64_t *>malloc(n * sizeof(uint64_t))
    cdef Py_ssize_t *idx = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t))
    cdef Py_ssize_t *hist = <Py_ssize_t *>calloc(MSD_BUCKETS + 1, sizeof(Py_ssize_t))
    cdef Py_ssize_t *lsd_hist = <Py_ssize_t *>malloc(LSD_MAX_PASSES * LSD_BUCKETS * sizeof(Py_ssize_t))
    cdef uint64_t *ka
    cdef uint64_t *kb
    if keys == NULL or idx == NULL or hist == NULL or lsd_hist == NULL:
        free(keys)
        free(idx)
        free(hist)
        free(lsd_hist)
        return -1
    ka = keys
    kb = <uint64_t *>sorted_out
    kmin = _monotone_key(v[0])
    kmax = kmin
    for i in range(n):
        u = _monotone_key(v[i])
        kb[i] = u
        kmin = u if u < kmin else kmin
        kmax = u if u > kmax else kmax
    # the bits above `top` are the same in every key
    top = 0
    u = kmin ^ kmax
    while u != 0:
        top += 1
        u >>= 1
    shift = top - MSD_BITS if top > MSD_BITS else 0
    low_bits = shift
    for i in range(n):
        hist[((kb[i] >> shift) & mask) + 1] += 1
    total = 0
    for b in range(MSD_BUCKETS + 1):
        total += hist[b]
        hist[b] = total
    # hist[b] is now the start of bucket b; scatter, then hist[b] is the end of bucket b
    for i in range(n):
        u = kb[i]
        pos = hist[(u >> shift) & mask]
        hist[(u >> shift) & mask] = pos + 1
        ka[pos] = u
        idx[pos] = i
    start = 0
    for b in range(MSD_BUCKETS):
        m = hist[b] - start
        if m > 0:
            _bucket_sort_low_bits(ka + start, idx + start, kb + start, order_out + start, m,
                                  low_bits, sorted_out + start, order_out + start, lsd_hist)
        start = hist[b]
    free(keys)
    free(idx)
    free(hist)
    free(lsd_hist)
    return 0


cdef int radix_argsort_row(const double *v, Py_ssize_t n, double *sorted_out,
                           Py_ssize_t *order_out) noexcept nogil:
    """sorted_out = v sorted ascending, order_out the order (v[order_out] == sorted_out):
    rows of MSD_MIN values or more go to radix_argsort_large; shorter ones: LSD radix sort of (key, index) pairs on the float64 bit pattern mapped to an unsigned key
    monotone in the value (negatives: all bits flipped; others: the sign bit set). Passes whose
    digit is the same for all keys are skipped. Returns 0, or -1 when out of memory."""
    cdef Py_ssize_t i, pos, total
    cdef int p, shift
    cdef uint64_t u, mask = RADIX_BUCKETS - 1
    cdef uint64_t sign = (<uint64_t>1) << 63
    cdef uint64_t *keys
    cdef Py_ssize_t *idx
    cdef Py_ssize_t *hist
    cdef uint64_t *ka
    cdef uint64_t *kb
    cdef uint64_t *kt
    cdef Py_ssize_t *ia
    cdef Py_ssize_t *ib
    cdef Py_ssize_t *it
    cdef Py_ssize_t *h
    if n >= MSD_MIN:
        return radix_argsort_large(v, n, sorted_out, order_out)
    keys = <uint64_t *>malloc(2 * max(n, 1) * sizeof(uint64_t))
    idx = <Py_ssize_t *>malloc(2 * max(n, 1) * sizeof(Py_ssize_t))
    hist = <Py_ssize_t *>calloc(RADIX_PASSES * RADIX_BUCKETS, sizeof(Py_ssize_t))
    if keys == NULL or idx == NULL or hist == NULL:
        free(keys)
        free(idx)
        free(hist)
        return -1
    ka = keys
    kb = keys + n
    ia = idx
    ib = idx + n
    for i in range(n):
        memcpy(&u, &v[i], sizeof(uint64_t))
        u = (~u) if (u & sign) else (u | sign)
        ka[i] = u
        ia[i] = i
        for p in range(RADIX_PASSES):
            hist[p * RADIX_BUCKETS + ((u >> (p * RADIX_BITS)) & mask)] += 1
    for p in range(RADIX_PASSES):
        h = hist + p * RADIX_BUCKETS
        shift = p * RADIX_BITS
        if h[(ka[0] >> shift) & mask] == n:
            continue        # one digit value: this pass would not move anything
        total = 0
        for i in range(RADIX_BUCKETS):
            pos = h[i]
            h[i] = total
            total += pos
        for i in range(n):
            u = ka[i]
            pos = h[(u >> shift) & mask]
            h[(u >> shift) & mask] = pos + 1
            kb[pos] = u
            ib[pos] = ia[i]
        kt = ka
        ka = kb
        kb = kt
        it = ia
        ia = ib
        ib = it
    for i in range(n):
        u = ka[i]
        u = (u ^ sign) if (u & sign) else (~u)
        memcpy(&sorted_out[i], &u, sizeof(double))
        order_out[i] = ia[i]
    free(keys)
    free(idx)
    free(hist)
    return 0


def sort_rows_with_order(const double[:, ::1] rows):
    """(sorted copies of the rows, the orders that sort them), parallel over rows for many
    rows; equal values may come in any order (the estimators do not depend on it)."""
    cdef Py_ssize_t m = rows.shape[0], n = rows.shape[1], r
    cdef int fail = 0
    cdef int *failp = &fail
    sorted_rows = np.empty((m, n), dtype=np.float64)
    orders = np.empty((m, n), dtype=np.intp)
    cdef double[:, ::1] sv = sorted_rows
    cdef Py_ssize_t[:, ::1] ov = orders
    if m == 0 or n == 0:
        return sorted_rows, orders
    with nogil:
        if m == 1 or est_threads(m * n) == 1:
            for r in range(m):
                if radix_argsort_row(&rows[r, 0], n, &sv[r, 0], &ov[r, 0]) != 0:
                    fail = 1
        else:
            for r in prange(m, schedule='dynamic', num_threads=num_threads_for(m)):
                if radix_argsort_row(&rows[r, 0], n, &sv[r, 0], &ov[r, 0]) != 0:
                    failp[0] = 1
    if fail != 0:
        raise MemoryError("fastinfo: out of memory in the sort")
    return sorted_rows, orders

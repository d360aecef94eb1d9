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


cdef inline double digamma_int(Py_ssize_t m) noexcept nogil:
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


cdef int ksg_pass(const KDTree *jt, Marginal **margs, const double *signs, int n_marg,
                  const Py_ssize_t *to_joint1, int k, int algorithm, double *terms,
                  int nt) noexcept nogil:
    """terms[i] for each sample i (stored by sample index, so that the fixed-order sum does not
    depend on the tree, and the estimate is bitwise symmetric in x and y):
    algorithm 1: sum_m signs[m] * psi(n_m(i) + 1), n_m strict counts within eps_i;
    algorithm 2 (two marginals, the joint holding marginal 0's coordinates first):
    psi(n_0(i)) + psi(n_1(i)), non-strict counts within the largest per-marginal distance among
    the k neighbours. Marginal 1's sample s belongs to joint sample to_joint1[s] (NULL: s).
    Three phases: the k-NN radii (joint tree order), the counts of each marginal (in its own
    order), the digamma terms (sample order). Returns 0, or -1 when out of memory."""
    cdef Py_ssize_t n = jt.n, D = jt.d, q, i, c
    cdef Py_ssize_t d0 = margs[0].d
    cdef int fail = 0, j, mi, status = 0
    cdef int *failp = &fail
    cdef double *best_d = NULL
    cdef Py_ssize_t *best_p = NULL
    cdef Py_ssize_t *best_i = NULL
    cdef Py_ssize_t *stack = NULL
    cdef double *stack_d = NULL
    cdef double eps, e0, e1, diff, term
    cdef const double *qp
    cdef const double *pp
    cdef double *radius = <double *>malloc(2 * n * sizeof(double))
    cdef Py_ssize_t *counts = <Py_ssize_t *>malloc(n_marg * n * sizeof(Py_ssize_t))
    if radius == NULL or counts == NULL:
        free(radius)
        free(counts)
        return -1
    with parallel(num_threads=nt):
        best_d = <double *>malloc(k * sizeof(double))
        best_p = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
        best_i = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
        stack = <Py_ssize_t *>malloc(KD_STACK * sizeof(Py_ssize_t))
        stack_d = <double *>malloc(KD_STACK * sizeof(double))
        for q in prange(n, schedule='dynamic', chunksize=256):
            if best_d == NULL or best_p == NULL or best_i == NULL or stack == NULL or stack_d == NULL:
                failp[0] = 1
                continue
            eps = kdtree_knn(jt, q, k, best_d, best_p, best_i, stack, stack_d)
            i = jt.index[q]
            if algorithm == 1:
                radius[i] = eps
            else:
                qp = &jt.points[q * D]
                e0 = 0.0
                e1 = 0.0
                for j in range(k):
                    pp = &jt.points[best_p[j] * D]
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
        free(best_d)
        free(best_p)
        free(best_i)
        free(stack)
        free(stack_d)
    if fail == 0:
        for mi in range(n_marg):
            status = marginal_count_all(margs[mi], radius + (n if (algorithm == 2 and mi == 1) else 0),
                                        algorithm == 1, to_joint1 if mi == 1 else NULL,
                                        counts + mi * n, nt)
            if status != 0:
                fail = 1
                break
    if fail == 0:
        for i in prange(n, schedule='dynamic', chunksize=1024, num_threads=nt):
            if algorithm == 1:
                term = 0.0
                for mi in range(n_marg):
                    term = term + signs[mi] * digamma_int(counts[mi * n + i] + 1)
                terms[i] = term
            else:
                terms[i] = digamma_int(counts[i]) + digamma_int(counts[n + i])
    free(radius)
    free(counts)
    return -fail


cdef enum:
    EST_PARALLEL_MIN = 4096   # fewer points: one thread (a parallel region costs more than it saves)


cdef inline int est_threads(Py_ssize_t n) noexcept nogil:
    return 1 if n < EST_PARALLEL_MIN else num_threads_for(n)


cdef double ordered_sum(const double *v, Py_ssize_t n) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(n):
        s += v[i]
    return s


def ksg_mean_terms(const double[:, ::1] joint,
                   const double[:, ::1] x, const double[::1] x_sorted,
                   const Py_ssize_t[::1] x_order,
                   const double[:, ::1] y, const double[::1] y_sorted,
                   const Py_ssize_t[::1] y_order,
                   int k, int algorithm):
    """mean over samples of psi(n_x+1) + psi(n_y+1) (algorithm 1) or psi(n_x) + psi(n_y)
    (algorithm 2); ``joint`` is ``[x | y]``."""
    cdef Py_ssize_t n = joint.shape[0]
    cdef KDTree jt
    cdef Marginal mx, my
    cdef Marginal *margs[2]
    cdef double signs[2]
    cdef int status = 0
    cdef int nt = est_threads(n)
    terms = np.empty(n, dtype=np.float64)
    cdef double[::1] tv = terms
    cdef double total
    signs[0] = 1.0
    signs[1] = 1.0
    margs[0] = &mx
    margs[1] = &my
    kdtree_init(&mx.tree)
    kdtree_init(&my.tree)
    with nogil:
        status = kdtree_build(&jt, &joint[0, 0], n, joint.shape[1], KD_LEAF_SIZE, nt)
        if status == 0:
            status = marginal_setup(&mx, x, x_sorted, x_order, nt)
        if status == 0:
            status = marginal_setup(&my, y, y_sorted, y_order, nt)
        if status == 0:
            status = ksg_pass(&jt, margs, signs, 2, NULL, k, algorithm, &tv[0], nt)
        kdtree_free(&jt)
        marginal_free(&mx)
        marginal_free(&my)
        total = ordered_sum(&tv[0], n)
    if status != 0:
        raise MemoryError("fastinfo: out of memory in the KSG estimator")
    return total / n


def ksg_permutation_mean_terms(const double[:, ::1] x, const double[::1] x_sorted,
                               const Py_ssize_t[::1] x_order,
                               const double[:, ::1] y, const double[::1] y_sorted,
                               const Py_ssize_t[::1] y_order,
                               const Py_ssize_t[:, ::1] perms, int k):
    """For each row ``perm`` of ``perms``: the algorithm-1 mean term of the KSG estimator on
    ``(x, y[perm])``, computed exactly as ``ksg_mean_terms`` would (same tree, same order).
    The marginal structures of x and y are built once (a permutation of y's rows leaves
    y's point set unchanged); only the joint tree is rebuilt. Parallel over permutations."""
    cdef Py_ssize_t n = x.shape[0], dx = x.shape[1], dy = y.shape[1], D = dx + dy
    cdef Py_ssize_t n_perm = perms.shape[0], p, i, c
    cdef Marginal mx, my
    cdef Marginal *margs[2]
    cdef double signs[2]
    cdef int status = 0, fail = 0
    cdef int *failp = &fail
    cdef int nt = num_threads_for(n_perm)
    cdef double *joint = NULL
    cdef double *terms = NULL
    cdef KDTree *jt = NULL
    cdef Py_ssize_t *inverse = NULL
    out = np.empty(n_perm, dtype=np.float64)
    cdef double[::1] ov = out
    signs[0] = 1.0
    signs[1] = 1.0
    margs[0] = &mx
    margs[1] = &my
    kdtree_init(&mx.tree)
    kdtree_init(&my.tree)
    with nogil:
        status = marginal_setup(&mx, x, x_sorted, x_order, est_threads(n))
        if status == 0:
            status = marginal_setup(&my, y, y_sorted, y_order, est_threads(n))
        if status == 0:
            with parallel(num_threads=nt):
                joint = <double *>malloc(n * D * sizeof(double))
                terms = <double *>malloc(n * sizeof(double))
                jt = <KDTree *>malloc(sizeof(KDTree))
                inverse = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t))
                for p in prange(n_perm, schedule='dynamic'):
                    if joint == NULL or terms == NULL or jt == NULL or inverse == NULL:
                        failp[0] = 1
                        continue
                    for i in range(n):
                        for c in range(dx):
                            joint[i * D + c] = x[i, c]
                        for c in range(dy):
                            joint[i * D + dx + c] = y[perms[p, i], c]
                        inverse[perms[p, i]] = i
                    if kdtree_build(jt, joint, n, D, KD_LEAF_SIZE, 1) != 0:
                        failp[0] = 1
                        continue
                    if ksg_pass(jt, margs, signs, 2, inverse, k, 1, terms, 1) != 0:
                        failp[0] = 1
                    kdtree_free(jt)
                    ov[p] = ordered_sum(terms, n) / n
                free(joint)
                free(terms)
                free(jt)
                free(inverse)
        marginal_free(&mx)
        marginal_free(&my)
    if status != 0 or fail != 0:
        raise MemoryError("fastinfo: out of memory in the permutation test")
    return out


def cmi_mean_terms(const double[:, ::1] joint,
                   const double[:, ::1] xz, const double[:, ::1] yz,
                   const double[:, ::1] z, const double[::1] z_sorted,
                   const Py_ssize_t[::1] z_order,
                   int k):
    """mean over samples of psi(n_xz+1) + psi(n_yz+1) - psi(n_z+1), strict counts within the
    k-th neighbour distance in the (x, y, z) space (Frenzel and Pompe 2007)."""
    cdef Py_ssize_t n = joint.shape[0]
    cdef KDTree jt
    cdef Marginal mxz, myz, mz
    cdef Marginal *margs[3]
    cdef double signs[3]
    cdef int status = 0
    cdef int nt = est_threads(n)
    cdef double[::1] empty_d = np.empty(0, dtype=np.float64)
    cdef Py_ssize_t[::1] empty_i = np.empty(0, dtype=np.intp)
    terms = np.empty(n, dtype=np.float64)
    cdef double[::1] tv = terms
    cdef double total
    signs[0] = 1.0
    signs[1] = 1.0
    signs[2] = -1.0
    margs[0] = &mxz
    margs[1] = &myz
    margs[2] = &mz
    kdtree_init(&mxz.tree)
    kdtree_init(&myz.tree)
    kdtree_init(&mz.tree)
    with nogil:
        status = kdtree_build(&jt, &joint[0, 0], n, joint.shape[1], KD_LEAF_SIZE, nt)
        if status == 0:
            status = marginal_setup(&mxz, xz, empty_d, empty_i, nt)
        if status == 0:
            status = marginal_setup(&myz, yz, empty_d, empty_i, nt)
        if status == 0:
            status = marginal_setup(&mz, z, z_sorted, z_order, nt)
        if status == 0:
            status = ksg_pass(&jt, margs, signs, 3, NULL, k, 1, &tv[0], nt)
        kdtree_free(&jt)
        marginal_free(&mxz)
        marginal_free(&myz)
        marginal_free(&mz)
        total = ordered_sum(&tv[0], n)
    if status != 0:
        raise MemoryError("fastinfo: out of memory in the conditional KSG estimator")
    return total / n


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
    cdef int nt = est_threads(n)
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] ov = out
    with nogil:
        status = kdtree_build(&t, &points[0, 0], n, points.shape[1], KD_LEAF_SIZE, nt)
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
            status = kdtree_build(&t, &points[s, 0], e - s, d, KD_LEAF_SIZE, est_threads(e - s))
            if status == 0:
                status = knn_radius_pass(&t, <int>ks[g], &ov[0], s, est_threads(e - s))
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
    kdtree_init(&m.tree)
    with nogil:
        status = marginal_setup(&m, points, sorted_values, order, nt)
        if status == 0:
            status = marginal_count_all(&m, &radius[0], strict, NULL, &ov[0], nt)
        marginal_free(&m)
    if status != 0:
        raise MemoryError("fastinfo: out of memory in the range count")
    return out


def ksg_column_pairs(const double[:, ::1] columns, const double[:, ::1] sorted_columns,
                     const Py_ssize_t[:, ::1] orders, const Py_ssize_t[:, ::1] pairs, int k):
    """Algorithm-1 KSG mean terms for many pairs of 1-D variables: ``columns`` (m, n) holds one
    variable per row, ``sorted_columns`` their sorted copies; for each row (a, b) of ``pairs``
    the result equals ``ksg_mean_terms`` on x = columns[a], y = columns[b] bitwise (same tree,
    same per-sample terms, same order of the sum). Parallel over pairs, one thread per pair:
    no per-call thread start-up, and the sorted columns are shared by every pair."""
    cdef Py_ssize_t n = columns.shape[1], n_pairs = pairs.shape[0], p, i, a, b
    cdef int nt = num_threads_for(n_pairs), fail = 0
    cdef int *failp = &fail
    cdef double signs[2]
    cdef double *joint = NULL
    cdef double *terms = NULL
    cdef KDTree *jt = NULL
    cdef Marginal *mx = NULL
    cdef Marginal *my = NULL
    cdef Marginal **margs = NULL
    out = np.empty(n_pairs, dtype=np.float64)
    cdef double[::1] ov = out
    signs[0] = 1.0
    signs[1] = 1.0
    if n_pairs == 0:
        return out
    with nogil, parallel(num_threads=nt):
        joint = <double *>malloc(2 * n * sizeof(double))
        terms = <double *>malloc(n * sizeof(double))
        jt = <KDTree *>malloc(sizeof(KDTree))
        mx = <Marginal *>malloc(sizeof(Marginal))
        my = <Marginal *>malloc(sizeof(Marginal))
        margs = <Marginal **>malloc(2 * sizeof(Marginal *))
        for p in prange(n_pairs, schedule='dynamic'):
            if joint == NULL or terms == NULL or jt == NULL or mx == NULL or my == NULL or margs == NULL:
                failp[0] = 1
                continue
            a = pairs[p, 0]
            b = pairs[p, 1]
            for i in range(n):
                joint[2 * i] = columns[a, i]
                joint[2 * i + 1] = columns[b, i]
            if kdtree_build(jt, joint, n, 2, KD_LEAF_SIZE, 1) != 0:
                failp[0] = 1
                continue
            mx.n = n
            mx.d = 1
            mx.data = &columns[a, 0]
            mx.sorted_values = &sorted_columns[a, 0]
            mx.order = &orders[a, 0]
            kdtree_init(&mx.tree)
            my.n = n
            my.d = 1
            my.data = &columns[b, 0]
            my.sorted_values = &sorted_columns[b, 0]
            my.order = &orders[b, 0]
            kdtree_init(&my.tree)
            margs[0] = mx
            margs[1] = my
            if ksg_pass(jt, margs, signs, 2, NULL, k, 1, terms, 1) != 0:
                failp[0] = 1
            kdtree_free(jt)
            ov[p] = ordered_sum(terms, n) / n
        free(joint)
        free(terms)
        free(jt)
        free(mx)
        free(my)
        free(margs)
    if fail != 0:
        raise MemoryError("fastinfo: out of memory in the KSG estimator")
    return out

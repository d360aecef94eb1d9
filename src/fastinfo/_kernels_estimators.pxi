# Section of _kernels.pyx: estimators from samples (KSG, Frenzel-Pompe, Kozachenko-Leonenko, Ross).
#
# Inputs: float64 C-contiguous sample arrays (n, d), validated by fastinfo._estimators; 1-D
# marginals come with their sorted copy (np.sort).
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
                  const Py_ssize_t *perm1, int k, int algorithm, double *terms,
                  int nt) noexcept nogil:
    """terms[i] for each sample i (stored by sample index, so that the fixed-order sum does not
    depend on the tree, and the estimate is bitwise symmetric in x and y):
    algorithm 1: sum_m signs[m] * psi(n_m(i) + 1), n_m strict counts within eps_i;
    algorithm 2 (two marginals, the joint holding marginal 0's coordinates first):
    psi(n_0(i)) + psi(n_1(i)), non-strict counts within the largest per-marginal distance among
    the k neighbours. Marginal 1 is looked up at sample perm1[i] when perm1 is not NULL.
    Returns 0, or -1 when out of memory."""
    cdef Py_ssize_t n = jt.n, D = jt.d, q, i, c, sample, cnt
    cdef Py_ssize_t d0 = margs[0].d
    cdef int fail = 0, j, mi
    cdef int *failp = &fail
    cdef double *best_d
    cdef Py_ssize_t *best_p
    cdef Py_ssize_t *best_i
    cdef Py_ssize_t *stack
    cdef double *stack_d
    cdef double eps, e0, e1, diff, term
    cdef const double *qp
    cdef const double *pp
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
                term = 0.0
                for mi in range(n_marg):
                    sample = i
                    if mi == 1 and perm1 != NULL:
                        sample = perm1[i]
                    cnt = marginal_count(margs[mi], sample, eps, True, stack)
                    term = term + signs[mi] * digamma_int(cnt + 1)
                terms[i] = term
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
                sample = i
                if perm1 != NULL:
                    sample = perm1[i]
                terms[i] = (digamma_int(marginal_count(margs[0], i, e0, False, stack))
                            + digamma_int(marginal_count(margs[1], sample, e1, False, stack)))
        free(best_d)
        free(best_p)
        free(best_i)
        free(stack)
        free(stack_d)
    return -fail


cdef double ordered_sum(const double *v, Py_ssize_t n) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(n):
        s += v[i]
    return s


def ksg_mean_terms(const double[:, ::1] joint,
                   const double[:, ::1] x, const double[::1] x_sorted,
                   const double[:, ::1] y, const double[::1] y_sorted,
                   int k, int algorithm):
    """mean over samples of psi(n_x+1) + psi(n_y+1) (algorithm 1) or psi(n_x) + psi(n_y)
    (algorithm 2); ``joint`` is ``[x | y]``."""
    cdef Py_ssize_t n = joint.shape[0]
    cdef KDTree jt
    cdef Marginal mx, my
    cdef Marginal *margs[2]
    cdef double signs[2]
    cdef int status = 0
    cdef int nt = num_threads_for(n)
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
            status = marginal_setup(&mx, x, x_sorted, nt)
        if status == 0:
            status = marginal_setup(&my, y, y_sorted, nt)
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
                               const double[:, ::1] y, const double[::1] y_sorted,
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
    cdef double *joint
    cdef double *terms
    cdef KDTree *jt
    out = np.empty(n_perm, dtype=np.float64)
    cdef double[::1] ov = out
    signs[0] = 1.0
    signs[1] = 1.0
    margs[0] = &mx
    margs[1] = &my
    kdtree_init(&mx.tree)
    kdtree_init(&my.tree)
    with nogil:
        status = marginal_setup(&mx, x, x_sorted, num_threads_for(n))
        if status == 0:
            status = marginal_setup(&my, y, y_sorted, num_threads_for(n))
        if status == 0:
            with parallel(num_threads=nt):
                joint = <double *>malloc(n * D * sizeof(double))
                terms = <double *>malloc(n * sizeof(double))
                jt = <KDTree *>malloc(sizeof(KDTree))
                for p in prange(n_perm, schedule='dynamic'):
                    if joint == NULL or terms == NULL or jt == NULL:
                        failp[0] = 1
                        continue
                    for i in range(n):
                        for c in range(dx):
                            joint[i * D + c] = x[i, c]
                        for c in range(dy):
                            joint[i * D + dx + c] = y[perms[p, i], c]
                    if kdtree_build(jt, joint, n, D, KD_LEAF_SIZE, 1) != 0:
                        failp[0] = 1
                        continue
                    if ksg_pass(jt, margs, signs, 2, &perms[p, 0], k, 1, terms, 1) != 0:
                        failp[0] = 1
                    kdtree_free(jt)
                    ov[p] = ordered_sum(terms, n) / n
                free(joint)
                free(terms)
                free(jt)
        marginal_free(&mx)
        marginal_free(&my)
    if status != 0 or fail != 0:
        raise MemoryError("fastinfo: out of memory in the permutation test")
    return out


def cmi_mean_terms(const double[:, ::1] joint,
                   const double[:, ::1] xz, const double[:, ::1] yz,
                   const double[:, ::1] z, const double[::1] z_sorted,
                   int k):
    """mean over samples of psi(n_xz+1) + psi(n_yz+1) - psi(n_z+1), strict counts within the
    k-th neighbour distance in the (x, y, z) space (Frenzel and Pompe 2007)."""
    cdef Py_ssize_t n = joint.shape[0]
    cdef KDTree jt
    cdef Marginal mxz, myz, mz
    cdef Marginal *margs[3]
    cdef double signs[3]
    cdef int status = 0
    cdef int nt = num_threads_for(n)
    cdef double[::1] empty_d = np.empty(0, dtype=np.float64)
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
            status = marginal_setup(&mxz, xz, empty_d, nt)
        if status == 0:
            status = marginal_setup(&myz, yz, empty_d, nt)
        if status == 0:
            status = marginal_setup(&mz, z, z_sorted, nt)
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
    cdef double *best_d
    cdef Py_ssize_t *best_p
    cdef Py_ssize_t *best_i
    cdef Py_ssize_t *stack
    cdef double *stack_d
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
    cdef int nt = num_threads_for(n)
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
            status = kdtree_build(&t, &points[s, 0], e - s, d, KD_LEAF_SIZE, num_threads_for(e - s))
            if status == 0:
                status = knn_radius_pass(&t, <int>ks[g], &ov[0], s, num_threads_for(e - s))
            kdtree_free(&t)
            if status != 0:
                break
    if status != 0:
        raise MemoryError("fastinfo: out of memory in the k-nearest-neighbour search")
    return out


def count_within(const double[:, ::1] points, const double[::1] sorted_values,
                 const double[::1] radius, bint strict):
    """#{j != i : ||p_j - p_i|| < radius[i]} (strict) or ``<=`` for every sample i (int64)."""
    cdef Py_ssize_t n = points.shape[0], i
    cdef Marginal m
    cdef int status, fail = 0
    cdef int *failp = &fail
    cdef int nt = num_threads_for(n)
    cdef Py_ssize_t *stack
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] ov = out
    kdtree_init(&m.tree)
    with nogil:
        status = marginal_setup(&m, points, sorted_values, nt)
        if status == 0:
            with parallel(num_threads=nt):
                stack = <Py_ssize_t *>malloc(KD_STACK * sizeof(Py_ssize_t))
                for i in prange(n, schedule='dynamic', chunksize=256):
                    if stack == NULL:
                        failp[0] = 1
                        continue
                    ov[i] = marginal_count(&m, i, radius[i], strict, stack)
                free(stack)
        marginal_free(&m)
    if status != 0 or fail != 0:
        raise MemoryError("fastinfo: out of memory in the range count")
    return out

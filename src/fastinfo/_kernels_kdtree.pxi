# Section of _kernels.pyx: KD-tree (max-norm) and neighbour queries.
#
# Layout: flat arrays, no pointer nodes. A heap-numbered tree over n points in D dimensions:
# node 0 holds tree positions [0, n); an internal node [s, e) splits at m into children
# 2i+1 = [s, m) and 2i+2 = [m, e) (ranges stored in start/end); every leaf sits at depth `depth`,
# the smallest depth with n <= leaf_size * 2**depth. The split coordinate of a node is its widest
# one; nodes up to 256 points split exactly at the middle (quickselect: Hoare partition,
# median-of-three pivot), larger ones by one Hoare pass around the median of a key sample
# (m near the middle). Rows of points move with the partitions, so they end in tree order (cache
# locality); each node stores its tight bounding box (lo, hi). Built level by level, top levels by
# one thread, the subtrees below shared among threads (one parallel region, the same tree for any
# thread count).
#
# Exactness: all distances are max_c |p_c - q_c| in float64, as the brute-force definition computes
# them, and box tests use the same rounded differences. Since fl(a - q) is monotone in a, a box test
# "every point of the node is within r" or "no point of the node is within r" is exact, so range
# counts with a strict (<) or non-strict (<=) radius are exact integers.
#
# Queries (all nogil, thread-safe: the tree is read-only, scratch is passed by the caller):
#   kdtree_knn        k nearest neighbours of the point at a tree position (the point excluded);
#                     ties at equal distance broken by the smaller sample index (so "the k
#                     neighbours" is well defined for algorithm 2 of KSG on tied data).
#                     Bottom-up: the query's own leaf first (a tight radius at once), then the
#                     sibling subtrees on the way to the root, pruned by box distance; a sorted
#                     insertion buffer of size k.
#   kdtree_count      number of points within r (strict or non-strict) of a query point.
#   sorted_count_from_rank  the same for 1-D data held as a sorted copy: from the query's rank
#                     in it, galloping + bisection on the predicates fl(s[j] - v) < r and
#                     fl(v - s[j]) < r (monotone in j, so exact).
#   marginal_count_all  counts for every sample, queried in the marginal's own order.
#
# Vectorised paths (C below, same predicates, so the same results): the 4-D range count and the
# 8-D k-NN search (the marginals and joint of 4-D x 4-D KSG) in AVX2 intrinsics when the CPU has
# AVX2 (checked once at import), else the scalar code; those trees take larger leaves
# (KD_LEAF_MULT_*). Trees of 2..7 dimensions search with csrc/kdtree_lowd.h: the dimension fixed
# at compile time, the tree walked top down testing the boxes of eight nodes (three levels down)
# at once, leaves scanned 4 (AVX2) or 8 (AVX-512F) points at a time; its k-NN search visits the
# nodes in another order than the binary walk here, which gives the same neighbours (the
# k-buffer keeps the k smallest (distance, sample index) pairs offered, and every point that
# belongs there is offered), and its leaves are larger (KD_LOWD_*_MULT).

from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.math cimport nextafter

cdef enum:
    KD_STACK = 256          # explicit DFS stack; the depth of a tree over 2**62 points is < 64


# Points per leaf (at most); a module variable so that benchmarks can tune it.
cdef Py_ssize_t KD_LEAF_SIZE = 16


# The shapes with vectorised leaf scans take larger leaves (fewer nodes to visit, the scan being
# cheap): 8-D trees 3x (the k-NN scan), 4-D range-count trees 4x (tuned on 4-D x 4-D KSG).
cdef enum:
    KD_LEAF_MULT_8D = 3
    KD_LEAF_MULT_COUNT_4D = 4


def _set_leaf_size(Py_ssize_t leaf_size):
    global KD_LEAF_SIZE
    KD_LEAF_SIZE = max(leaf_size, 2)


cdef struct KDTree:
    Py_ssize_t n
    Py_ssize_t d
    int depth
    Py_ssize_t n_nodes
    double *points          # (n, d) in tree order
    Py_ssize_t *index       # tree position -> sample index
    Py_ssize_t *start       # (n_nodes,) first tree position of each node
    Py_ssize_t *end         # (n_nodes,) one past the last
    double *lo              # (n_nodes, d) tight bounding boxes
    double *hi
    double *soa             # (d, soa_stride) the points coordinate-major, tree order (NULL
    Py_ssize_t soa_stride   # unless the fixed-dimension paths of csrc/kdtree_lowd.h serve d)
    double *gbox            # the boxes coordinate-major per level (fi_kd_group_boxes; NULL
                            # when soa is)


cdef inline void kdtree_init(KDTree *t) noexcept nogil:
    t.n = 0
    t.d = 0
    t.depth = 0
    t.n_nodes = 0
    t.points = NULL
    t.index = NULL
    t.start = NULL
    t.end = NULL
    t.lo = NULL
    t.hi = NULL
    t.soa = NULL
    t.soa_stride = 0
    t.gbox = NULL


cdef inline void kdtree_free(KDTree *t) noexcept nogil:
    free(t.points)
    free(t.index)
    free(t.start)
    free(t.end)
    free(t.lo)
    free(t.hi)
    free(t.soa)
    free(t.gbox)
    kdtree_init(t)


cdef inline void _swap_rows(double *pts, Py_ssize_t *idx, Py_ssize_t d, Py_ssize_t a,
                            Py_ssize_t b) noexcept nogil:
    cdef double tk
    cdef Py_ssize_t ti, c
    for c in range(d):
        tk = pts[a * d + c]
        pts[a * d + c] = pts[b * d + c]
        pts[b * d + c] = tk
    ti = idx[a]
    idx[a] = idx[b]
    idx[b] = ti


cdef void _select_nth(double *pts, Py_ssize_t *idx, Py_ssize_t d, Py_ssize_t dim,
                      Py_ssize_t left, Py_ssize_t right, Py_ssize_t nth) noexcept nogil:
    """Reorder rows left..right (inclusive) of pts (and idx alongside) so that the key
    pts[i, dim] <= pts[nth, dim] for i < nth and >= for i > nth (Hoare/Wirth selection,
    median-of-three pivot). Rows move physically: the points end in tree order."""
    cdef Py_ssize_t i, j, mid
    cdef double pivot, a, b, c
    cdef const double *keys = pts + dim
    while left < right:
        mid = left + (right - left) // 2
        a = keys[left * d]
        b = keys[mid * d]
        c = keys[right * d]
        if a < b:
            if b < c:
                pivot = b
            elif a < c:
                pivot = c
            else:
                pivot = a
        else:
            if a < c:
                pivot = a
            elif b < c:
                pivot = c
            else:
                pivot = b
        i = left
        j = right
        while i <= j:
            while keys[i * d] < pivot:
                i += 1
            while pivot < keys[j * d]:
                j -= 1
            if i <= j:
                _swap_rows(pts, idx, d, i, j)
                i += 1
                j -= 1
        # now keys[left..j] <= pivot <= keys[i..right] and keys[j+1..i-1] == pivot
        if j < nth:
            left = i
        if nth < i:
            right = j


cdef enum:
    KD_EXACT_SELECT = 256    # nodes up to this size split exactly at the middle
    KD_PIVOT_SAMPLE = 127    # larger ones: one partition around the median of a sample of
    KD_SMALL_SAMPLE = 31     # this many keys (the smaller sample for nodes up to 8192)


cdef Py_ssize_t _split(double *pts, Py_ssize_t *idx, Py_ssize_t d, Py_ssize_t dim,
                       Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """Partition rows [s, e) on coordinate ``dim``; return m with keys of [s, m) <= keys of [m, e).
    Small nodes: exact median (quickselect). Large nodes: a single Hoare pass around the median
    of an evenly spaced sample (one read of the node instead of about three), m close to the
    middle; the tree stores each node's range, so a slightly uneven split is harmless."""
    cdef Py_ssize_t size = e - s, mid = s + (e - s) // 2, i, j, a
    cdef double sample[KD_PIVOT_SAMPLE]
    cdef double pivot, v
    cdef Py_ssize_t n_sample = KD_PIVOT_SAMPLE if size > 8192 else KD_SMALL_SAMPLE
    cdef const double *keys = pts + dim
    if size <= KD_EXACT_SELECT:
        _select_nth(pts, idx, d, dim, s, e - 1, mid)
        return mid
    for a in range(n_sample):
        v = keys[(s + (a * size) // n_sample) * d]
        j = a
        while j > 0 and sample[j - 1] > v:
            sample[j] = sample[j - 1]
            j -= 1
        sample[j] = v
    pivot = sample[n_sample // 2]
    i = s
    j = e - 1
    while i <= j:
        while keys[i * d] < pivot:
            i += 1
        while pivot < keys[j * d]:
            j -= 1
        if i <= j:
            _swap_rows(pts, idx, d, i, j)
            i += 1
            j -= 1
    # keys[s..j] <= pivot <= keys[i..e-1], keys[j+1..i-1] == pivot: any m in [j+1, i] is valid
    if mid < j + 1:
        return j + 1
    if mid > i:
        return i
    return mid


cdef void _build_node(KDTree *t, Py_ssize_t node, bint is_leaf) noexcept nogil:
    """The node's tight box from its points; above the leaves, the split of its widest
    coordinate, which sets the children's ranges."""
    cdef Py_ssize_t d = t.d, s = t.start[node], e = t.end[node], p, c, m
    cdef double *lo_ = &t.lo[node * d]
    cdef double *hi_ = &t.hi[node * d]
    cdef double v, spread, best = -1.0
    cdef int widest = 0
    for c in range(d):
        lo_[c] = INFINITY
        hi_[c] = -INFINITY
    for p in range(s, e):
        for c in range(d):
            v = t.points[p * d + c]
            if v < lo_[c]:
                lo_[c] = v
            if v > hi_[c]:
                hi_[c] = v
    if is_leaf:
        return
    for c in range(d):
        spread = hi_[c] - lo_[c]
        if spread > best:
            best = spread
            widest = <int>c
    if e - s >= 2:
        m = _split(t.points, t.index, d, widest, s, e)
    else:
        m = s + (e - s) // 2
    t.start[2 * node + 1] = s
    t.end[2 * node + 1] = m
    t.start[2 * node + 2] = m
    t.end[2 * node + 2] = e


cdef void _build_levels(KDTree *t, Py_ssize_t root, int root_level, int last_level) noexcept nogil:
    """Build the nodes of the subtree at ``root`` (at depth root_level) down to last_level,
    level by level (the nodes of one level of the subtree are consecutive ids)."""
    cdef int level
    cdef Py_ssize_t first, count, node
    for level in range(root_level, last_level + 1):
        count = (<Py_ssize_t>1) << (level - root_level)
        first = (root + 1) * count - 1
        for node in range(first, first + count):
            _build_node(t, node, level == t.depth)


cdef enum:
    KD_PARALLEL_BUILD = 4096    # smaller trees are built by one thread


cdef int kdtree_build(KDTree *t, const double *data, Py_ssize_t n, Py_ssize_t d,
                      Py_ssize_t leaf_size, int nt) noexcept nogil:
    """Build the tree over ``data`` ((n, d) row-major, sample order). Returns 0, or -1 when out
    of memory (the tree is then freed). Large trees: the top levels by one thread, then the
    subtrees below them shared among ``nt`` threads in one parallel region (the result does not
    depend on the thread count). 8-D trees take KD_LEAF_MULT_8D times ``leaf_size`` points
    per leaf."""
    cdef Py_ssize_t p, li, n_sub
    cdef int depth = 0, top = 0
    kdtree_init(t)
    if d == 8:
        leaf_size = KD_LEAF_MULT_8D * leaf_size
    if leaf_size < 2:
        leaf_size = 2
    while n > (leaf_size << depth):
        depth += 1
    t.n = n
    t.d = d
    t.depth = depth
    t.n_nodes = ((<Py_ssize_t>1) << (depth + 1)) - 1
    t.points = <double *>malloc(max(n * d, 1) * sizeof(double))
    t.index = <Py_ssize_t *>malloc(max(n, 1) * sizeof(Py_ssize_t))
    t.start = <Py_ssize_t *>malloc(t.n_nodes * sizeof(Py_ssize_t))
    t.end = <Py_ssize_t *>malloc(t.n_nodes * sizeof(Py_ssize_t))
    t.lo = <double *>malloc(t.n_nodes * d * sizeof(double))
    t.hi = <double *>malloc(t.n_nodes * d * sizeof(double))
    if (t.points == NULL or t.index == NULL or t.start == NULL or t.end == NULL
            or t.lo == NULL or t.hi == NULL):
        kdtree_free(t)
        return -1
    memcpy(t.points, data, n * d * sizeof(double))
    for p in range(n):
        t.index[p] = p
    t.start[0] = 0
    t.end[0] = n
    if nt <= 1 or n < KD_PARALLEL_BUILD:
        _build_levels(t, 0, 0, depth)
    else:
        top = 3 if depth > 4 else 0
        if top > 0:
            _build_levels(t, 0, 0, top - 1)
        n_sub = (<Py_ssize_t>1) << top
        for li in prange(n_sub, schedule='dynamic', num_threads=nt):
            _build_levels(t, n_sub - 1 + li, top, depth)
    return kdtree_add_soa(t)


cdef int kdtree_add_soa(KDTree *t) noexcept nogil:
    """The coordinate-major copies of the points and of the boxes (per level) that the
    fixed-dimension searches read, when they serve the tree's dimension (and the tree is not one
    of the AVX2 8-D shape's); 0, or -1 when out of memory (the tree is then freed)."""
    if KD_USE_LOWD and fi_kd_lowd(t.d) and t.soa == NULL:
        t.soa = fi_kd_soa_copy(t.points, t.n, t.d, &t.soa_stride)
        t.gbox = fi_kd_group_boxes(t.lo, t.hi, t.n_nodes, t.d)
        if t.soa == NULL or t.gbox == NULL:
            kdtree_free(t)
            return -1
    return 0


# The two hottest shapes (4-D range counts, 8-D k-NN: the marginals and joint of 4-D x 4-D KSG)
# with AVX2 intrinsics when the CPU has AVX2 (x86-64 GCC >= 11 / Clang >= 14 builds; elsewhere,
# or with -DFI_NO_CLONES, the scalar code below serves every shape). They test exactly what the
# scalar code tests, in the same search order: |fl(p_c - q_c)| < r, "max_c |fl(p_c - q_c)| >
# worst" is "some |fl(p_c - q_c)| > worst", box bounds from the same rounded differences, and
# maxima are exact in any order.
cdef extern from "csrc/kdtree.h":
    void fi_kd_init_dispatch() noexcept nogil
    int fi_kd_avx2() noexcept nogil
    int fi_kd_set_avx2(int on) noexcept nogil
    int fi_kd_set_avx512(int on) noexcept nogil
    Py_ssize_t fi_kd_count4_avx2(const double *pts, const double *lo, const double *hi,
                                 const Py_ssize_t *start, const Py_ssize_t *end, Py_ssize_t n_nodes,
                                 const double *q, double r, Py_ssize_t *stack) noexcept nogil
    double fi_kd_knn8_avx2(const double *pts, const Py_ssize_t *index, const double *lo,
                           const double *hi, const Py_ssize_t *start, const Py_ssize_t *end,
                           Py_ssize_t n_nodes, Py_ssize_t q, int k, double *best_d,
                           Py_ssize_t *best_p, Py_ssize_t *best_i, Py_ssize_t *stack,
                           double *stack_d) noexcept nogil


cdef extern from "csrc/kdtree_lowd.h":
    int fi_kd_lowd(Py_ssize_t d) noexcept nogil
    double *fi_kd_soa_copy(const double *pts, Py_ssize_t n, Py_ssize_t d,
                           Py_ssize_t *stride) noexcept nogil
    double *fi_kd_group_boxes(const double *lo, const double *hi, Py_ssize_t n_nodes,
                              Py_ssize_t d) noexcept nogil
    double fi_kd_knn_lowd(Py_ssize_t d, const double *pts, const double *soa, Py_ssize_t stride,
                          const Py_ssize_t *index, const double *gbox,
                          const Py_ssize_t *start, const Py_ssize_t *end, Py_ssize_t n_nodes,
                          Py_ssize_t q, int k, double *best_d, Py_ssize_t *best_p,
                          Py_ssize_t *best_i, Py_ssize_t *stack, double *stack_d) noexcept nogil
    Py_ssize_t fi_kd_count_lowd(Py_ssize_t d, const double *soa, Py_ssize_t stride,
                                const double *gbox, const Py_ssize_t *start,
                                const Py_ssize_t *end, Py_ssize_t n_nodes, const double *qp,
                                double r, Py_ssize_t *stack) noexcept nogil


fi_kd_init_dispatch()


# Trees of 2..7 dimensions search with csrc/kdtree_lowd.h (AVX2) when this is set and the CPU
# has AVX2; a private switch (tests compare both paths, which give the same results).
cdef bint KD_USE_LOWD = True


def _set_kd_lowd(bint on):
    """Private (tests): trees built from now on use the fixed-dimension AVX2 searches (True) or
    the generic code (False); returns the previous setting."""
    global KD_USE_LOWD
    old = KD_USE_LOWD
    KD_USE_LOWD = on
    return old


# Leaf sizes of the trees the fixed-dimension searches serve, in units of KD_LEAF_SIZE, by
# dimension (index 2..7): k-NN trees (a joint space) and range-count trees (a marginal space).
# Tuned with tools/kdtree_leaf_sweep.py (KSG and entropy_knn of n = 20,000 and 100,000 correlated
# Gaussian samples, k = 4); the grouped walks (eight boxes per test) favour large leaves. The 4-D
# count tree is the AVX2 binary walk's (fi_kd_count4_avx2, as fast as the grouped one there).
cdef int KD_LOWD_KNN_MULT[8]
cdef int KD_LOWD_COUNT_MULT[8]
KD_LOWD_KNN_MULT[:] = [1, 1, 1, 1, 4, 6, 6, 6]
KD_LOWD_COUNT_MULT[:] = [1, 1, 2, 4, 4, 6, 6, 6]


def _set_kd_lowd_leaf_mult(str kind, Py_ssize_t d, int mult):
    """Private (tuning): the leaf size multiplier of fixed-dimension trees of dimension d (2..7)
    for ``kind`` "knn" or "count"; returns the previous one."""
    if not 2 <= d <= 7 or mult < 1 or kind not in ("knn", "count"):
        raise ValueError(f"bad leaf multiplier setting {kind!r}, d={d}, mult={mult}")
    cdef int *table = &KD_LOWD_KNN_MULT[0] if kind == "knn" else &KD_LOWD_COUNT_MULT[0]
    old = table[d]
    table[d] = mult
    return old


cdef inline Py_ssize_t kd_leaf_knn(Py_ssize_t d) noexcept nogil:
    """Leaf size of a tree searched for k nearest neighbours (a joint space) in d dimensions:
    KD_LOWD_KNN_MULT[d] times KD_LEAF_SIZE where the fixed-dimension searches serve d."""
    if KD_USE_LOWD and fi_kd_lowd(d):
        return KD_LOWD_KNN_MULT[d] * KD_LEAF_SIZE
    return KD_LEAF_SIZE


cdef inline Py_ssize_t kd_leaf_count(Py_ssize_t d) noexcept nogil:
    """Leaf size of a tree for range counts (a marginal space) in d dimensions: as kd_leaf_knn
    (KD_LOWD_COUNT_MULT), and KD_LEAF_MULT_COUNT_4D times for the AVX2 4-D count otherwise."""
    if KD_USE_LOWD and fi_kd_lowd(d):
        return KD_LOWD_COUNT_MULT[d] * KD_LEAF_SIZE
    if d == 4:
        return KD_LEAF_MULT_COUNT_4D * KD_LEAF_SIZE
    return KD_LEAF_SIZE


def _set_kd_avx2(bint on):
    """Private (tests): use the AVX2 KD-tree paths when the CPU has AVX2 (True) or the scalar
    code (False); returns the previous setting."""
    return bool(fi_kd_set_avx2(on))


def _set_kd_avx512(bint on):
    """Private (tests): use the AVX-512 paths (the rank-scan range count, the 8-lane leaf scans
    of the fixed-dimension trees) when the CPU has AVX-512F and the AVX2 paths are on (True), or
    leave them to the AVX2 ones (False); returns the previous setting."""
    return bool(fi_kd_set_avx512(on))


cdef inline double _box_min_dist(const double *q, const double *lo, const double *hi,
                                 Py_ssize_t d) noexcept nogil:
    """max-norm distance from q to the box: max(0, max_c max(fl(lo_c - q_c), fl(q_c - hi_c))),
    branch-free (at most one of the two differences is positive, and it is the one the
    brute-force distance to the box's nearest point rounds to). Two running maxima (even and
    odd coordinates) halve the dependency chain; max is exact, so the order does not matter."""
    cdef double r0 = 0.0, r1 = 0.0, a, b, a1, b1
    cdef Py_ssize_t c = 0
    if d == 2:
        a = lo[0] - q[0]
        b = q[0] - hi[0]
        if b > a:
            a = b
        a1 = lo[1] - q[1]
        b1 = q[1] - hi[1]
        if b1 > a1:
            a1 = b1
        if a1 > a:
            a = a1
        return a if a > 0.0 else 0.0
    while c + 1 < d:
        a = lo[c] - q[c]
        b = q[c] - hi[c]
        a1 = lo[c + 1] - q[c + 1]
        b1 = q[c + 1] - hi[c + 1]
        if b > a:
            a = b
        if b1 > a1:
            a1 = b1
        if a > r0:
            r0 = a
        if a1 > r1:
            r1 = a1
        c += 2
    if c < d:
        a = lo[c] - q[c]
        b = q[c] - hi[c]
        if b > a:
            a = b
        if a > r0:
            r0 = a
    return r0 if r0 > r1 else r1


cdef inline double _box_max_dist(const double *q, const double *lo, const double *hi,
                                 Py_ssize_t d) noexcept nogil:
    cdef double r = 0.0, a, b
    cdef Py_ssize_t c
    for c in range(d):
        a = hi[c] - q[c]
        b = q[c] - lo[c]
        if a < b:
            a = b
        if a > r:
            r = a
    return r


cdef inline void _knn_insert(double dist, Py_ssize_t p, Py_ssize_t sample, int k,
                             double *best_d, Py_ssize_t *best_p, Py_ssize_t *best_i) noexcept nogil:
    """Insert (dist, sample) into the buffer sorted by (distance, sample index), if it belongs."""
    cdef int j
    if dist == best_d[k - 1] and sample > best_i[k - 1]:
        return
    j = k - 1
    while j > 0 and (best_d[j - 1] > dist or (best_d[j - 1] == dist and best_i[j - 1] > sample)):
        best_d[j] = best_d[j - 1]
        best_p[j] = best_p[j - 1]
        best_i[j] = best_i[j - 1]
        j -= 1
    best_d[j] = dist
    best_p[j] = p
    best_i[j] = sample


cdef inline void _knn_scan_leaf(const KDTree *t, Py_ssize_t node, Py_ssize_t q, const double *qp,
                                int k, double *best_d, Py_ssize_t *best_p,
                                Py_ssize_t *best_i) noexcept nogil:
    cdef Py_ssize_t p, c, d = t.d
    cdef double dist, diff, a, b, q0, q1, worst
    cdef const double *pp
    if d == 2:
        q0 = qp[0]
        q1 = qp[1]
        for p in range(t.start[node], t.end[node]):
            a = fabs(t.points[2 * p] - q0)
            b = fabs(t.points[2 * p + 1] - q1)
            dist = a if a > b else b
            if dist > best_d[k - 1] or p == q:
                continue
            _knn_insert(dist, p, t.index[p], k, best_d, best_p, best_i)
        return
    for p in range(t.start[node], t.end[node]):
        if p == q:
            continue
        pp = &t.points[p * d]
        worst = best_d[k - 1]
        dist = 0.0
        for c in range(d):
            diff = fabs(pp[c] - qp[c])
            if diff > dist:
                dist = diff
        if dist > worst:
            continue
        _knn_insert(dist, p, t.index[p], k, best_d, best_p, best_i)


cdef inline void _knn_subtree(const KDTree *t, Py_ssize_t root, Py_ssize_t q, const double *qp,
                              int k, double *best_d, Py_ssize_t *best_p, Py_ssize_t *best_i,
                              Py_ssize_t *stack, double *stack_d) noexcept nogil:
    """Depth-first search of the subtree at ``root``, nearer child first, pruned by the
    max-norm distance to each node's box."""
    cdef Py_ssize_t d = t.d, node, top, child
    cdef double bd, bd2
    stack[0] = root
    stack_d[0] = 0.0
    top = 1
    while top > 0:
        top -= 1
        node = stack[top]
        if stack_d[top] > best_d[k - 1]:
            continue
        child = 2 * node + 1
        if child >= t.n_nodes:
            _knn_scan_leaf(t, node, q, qp, k, best_d, best_p, best_i)
            continue
        bd = _box_min_dist(qp, &t.lo[child * d], &t.hi[child * d], d)
        bd2 = _box_min_dist(qp, &t.lo[(child + 1) * d], &t.hi[(child + 1) * d], d)
        # push the farther child first so that the nearer one is searched first
        if bd <= bd2:
            if bd2 <= best_d[k - 1]:
                stack[top] = child + 1
                stack_d[top] = bd2
                top += 1
            if bd <= best_d[k - 1]:
                stack[top] = child
                stack_d[top] = bd
                top += 1
        else:
            if bd <= best_d[k - 1]:
                stack[top] = child
                stack_d[top] = bd
                top += 1
            if bd2 <= best_d[k - 1]:
                stack[top] = child + 1
                stack_d[top] = bd2
                top += 1


cdef double kdtree_knn(const KDTree *t, Py_ssize_t q, int k, double *best_d, Py_ssize_t *best_p,
                       Py_ssize_t *best_i, Py_ssize_t *stack, double *stack_d) noexcept nogil:
    """The k nearest neighbours of the point at tree position ``q`` (itself excluded), in the
    order (distance, sample index): tree positions in best_p, sample indices in best_i, distances
    in best_d (each of length k). Returns the k-th distance. Needs n > k.

    Bottom-up: scan the leaf that holds q (a tight radius at once), then walk up to the root,
    searching each sibling subtree whose box is within the current k-th distance."""
    cdef Py_ssize_t d = t.d, node, sibling
    cdef const double *qp = &t.points[q * d]
    cdef int j
    if d == 8 and fi_kd_avx2():
        return fi_kd_knn8_avx2(t.points, t.index, t.lo, t.hi, t.start, t.end, t.n_nodes, q, k,
                               best_d, best_p, best_i, stack, stack_d)
    if t.soa != NULL and fi_kd_avx2():
        return fi_kd_knn_lowd(d, t.points, t.soa, t.soa_stride, t.index, t.gbox, t.start,
                              t.end, t.n_nodes, q, k, best_d, best_p, best_i, stack, stack_d)
    for j in range(k):
        best_d[j] = INFINITY
        best_p[j] = -1
        best_i[j] = PY_SSIZE_T_MAX
    node = 0
    while 2 * node + 1 < t.n_nodes:
        node = 2 * node + 1 if q < t.start[2 * node + 2] else 2 * node + 2
    _knn_scan_leaf(t, node, q, qp, k, best_d, best_p, best_i)
    while node > 0:
        sibling = node + 1 if (node & 1) else node - 1
        if _box_min_dist(qp, &t.lo[sibling * d], &t.hi[sibling * d], d) <= best_d[k - 1]:
            _knn_subtree(t, sibling, q, qp, k, best_d, best_p, best_i, stack, stack_d)
        node = (node - 1) // 2
    return best_d[k - 1]


cdef Py_ssize_t kdtree_count(const KDTree *t, const double *qp, double r, bint strict,
                             Py_ssize_t *stack) noexcept nogil:
    """Number of tree points p with max_c |p_c - q_c| < r (strict) or <= r (non-strict).

    A non-strict count is the strict count with radius nextafter(r, +inf) (for doubles,
    x <= r exactly when x < the next double above r), so one strict loop serves both. Each node
    costs one pass over its box: skipped when its nearest point is not within r, counted whole
    when its farthest corner is within r (exact: fl(a - q) is monotone in a), else split; leaves
    are scanned branch-free."""
    cdef Py_ssize_t d = t.d, node, top, p, c, count = 0, s, e
    cdef double mn, mx, dist, a, b
    cdef const double *pp
    cdef const double *lo_
    cdef const double *hi_
    cdef const double *pts = t.points
    if not strict:
        r = nextafter(r, INFINITY)
    if r <= 0.0:
        return 0
    if d == 4 and fi_kd_avx2():
        return fi_kd_count4_avx2(pts, t.lo, t.hi, t.start, t.end, t.n_nodes, qp, r, stack)
    if t.soa != NULL and fi_kd_avx2():
        return fi_kd_count_lowd(d, t.soa, t.soa_stride, t.gbox, t.start, t.end, t.n_nodes,
                                qp, r, stack)
    stack[0] = 0
    top = 1
    while top > 0:
        top -= 1
        node = stack[top]
        lo_ = &t.lo[node * d]
        hi_ = &t.hi[node * d]
        mn = 0.0
        mx = 0.0
        for c in range(d):
            a = lo_[c] - qp[c]
            b = qp[c] - hi_[c]
            # nearest point of the box along c: max(a, b) (if positive); farthest: max(-a, -b)
            # (fl(q - lo) == -fl(lo - q) exactly)
            if a > mn:
                mn = a
            if b > mn:
                mn = b
            if -a > mx:
                mx = -a
            if -b > mx:
                mx = -b
        if mn >= r:
            continue
        s = t.start[node]
        e = t.end[node]
        if mx < r:
            count += e - s
            continue
        if 2 * node + 1 < t.n_nodes:
            stack[top] = 2 * node + 1
            stack[top + 1] = 2 * node + 2
            top += 2
            continue
        for p in range(s, e):
            pp = &pts[p * d]
            dist = 0.0
            for c in range(d):
                a = fabs(pp[c] - qp[c])
                if a > dist:
                    dist = a
            count += dist < r
    return count


cdef inline bint _within(double diff, double r, bint strict) noexcept nogil:
    return diff < r if strict else diff <= r


cdef Py_ssize_t sorted_count_from_rank(const double *s, Py_ssize_t n, Py_ssize_t rank, double r,
                             bint strict) noexcept nogil:
    """Number of j != rank with |s[j] - s[rank]| < r (strict) or <= r, for sorted ``s``.
    Galloping outwards from ``rank`` then bisection: O(log count)."""
    cdef double v = s[rank]
    cdef Py_ssize_t lo, hi, step, mid, right, left
    if strict and r <= 0.0:
        return 0
    # right end: pred(j) = (s[j] - v) within r, true at rank, monotone decreasing in j
    lo = rank
    step = 1
    while True:
        hi = lo + step
        if hi >= n:
            hi = n
            break
        if not _within(s[hi] - v, r, strict):
            break
        lo = hi
        step *= 2
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        if _within(s[mid] - v, r, strict):
            lo = mid
        else:
            hi = mid
    right = lo
    # left end: pred(j) = (v - s[j]) within r, true at rank, monotone increasing in j
    hi = rank
    step = 1
    while True:
        lo = hi - step
        if lo < 0:
            lo = -1
            break
        if not _within(v - s[lo], r, strict):
            break
        hi = lo
        step *= 2
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        if _within(v - s[mid], r, strict):
            hi = mid
        else:
            lo = mid
    left = hi
    return right - left


cdef extern from "csrc/rankscan.h":
    Py_ssize_t fi_count_in_range(const int32_t *v, Py_ssize_t n, int32_t lo, int32_t hi) noexcept nogil
    ctypedef struct fi_rank_index:
        int32_t *first
    int fi_rank_index_build(fi_rank_index *ix, const double *s, Py_ssize_t n) noexcept nogil
    void fi_rank_intervals_multi(const double **s, const fi_rank_index **ix,
                                 const Py_ssize_t *rank, int C, Py_ssize_t n, double r,
                                 int strict, Py_ssize_t *left, Py_ssize_t *right) noexcept nogil


# The d-dimensional grid (d = 3, 4): the k-NN radius (max-norm) in a joint space of 1-D columns
# (the conditional estimator with 1-D x, y and a 1-D or 2-D z: transfer entropy with histories 1
# or target history 2), and the strict range counts of a 3-D marginal of 1-D columns (the (x, z)
# and (y, z) marginals there); see csrc/gridnd.h. The same radii and counts as the KD-tree's,
# bitwise; the build is a counting sort, cheaper than a tree.
cdef extern from "csrc/gridnd.h":
    ctypedef struct fi_gridnd:
        Py_ssize_t n
        Py_ssize_t G
        int32_t *pid
    double fi_gridnd_fill
    void fi_gridnd_init(fi_gridnd *g) noexcept nogil
    void fi_gridnd_free(fi_gridnd *g) noexcept nogil
    int fi_gridnd_build(fi_gridnd *g, const double *v, const int32_t **rank,
                        const double **sorted, Py_ssize_t n, Py_ssize_t d, int k) noexcept nogil
    double fi_gridnd_eps(const fi_gridnd *g, Py_ssize_t q, int k, double *best) noexcept nogil
    Py_ssize_t fi_gridnd_count(const fi_gridnd *g, Py_ssize_t q, double r) noexcept nogil


# A marginal space for range counts: 1-D as a sorted copy of the values (np.sort); 2-D as both
# columns sorted, for rank-scan counts (``pair``; see csrc/rankscan.h); 3-D of 1-D columns whose
# ranks are known, a grid (``gridded``, strict counts; see csrc/gridnd.h); otherwise a KD-tree;
# plus the samples' coordinates in sample order.
cdef struct Marginal:
    Py_ssize_t n
    Py_ssize_t d
    const double *data          # (n, d) sample order
    const double *sorted_values  # (n,) when d == 1; (2, n) when pair
    const Py_ssize_t *order      # (n,) when d == 1: sorted_values[r] == data[order[r]]
    KDTree tree                  # when d > 1 and not pair
    bint pair                    # d == 2 counted by rank scans (no tree)
    int32_t *rank0               # pair: rank of sample s in column 0, and in column 1
    int32_t *rank1
    int32_t *z_by_x              # pair: rank1 of the sample at column-0 rank t
    int32_t *x_by_z              # pair: rank0 of the sample at column-1 rank t
    fi_rank_index ix0            # pair: bucket indexes of the two sorted columns
    fi_rank_index ix1
    bint gridded                 # d == 3 counted on a grid (strict counts only; no tree)
    fi_gridnd grid


# 2-D marginals of at most this many samples are counted by rank scans (a scan costs about the
# number of samples within the radius in one coordinate, which grows like n^(2/3) for KSG radii
# in 3-D; beyond this size the KD-tree's count is cheaper).
cdef Py_ssize_t RANKSCAN_MAX_N = 1 << 19


def _set_rankscan_max_n(Py_ssize_t n):
    """Private (tests, tuning): 2-D marginals of at most n samples use rank scans (0: never);
    returns the previous limit."""
    global RANKSCAN_MAX_N
    old = RANKSCAN_MAX_N
    RANKSCAN_MAX_N = n
    return old


def rankscan_max_n():
    return RANKSCAN_MAX_N


cdef inline Py_ssize_t pair_count(const Marginal *m, Py_ssize_t sample, double r,
                                  bint strict) noexcept nogil:
    """#{j != sample : ||m_j - m_sample|| < r (strict) or <= r} in a pair-mode marginal."""
    cdef Py_ssize_t a, b, c, d
    cdef const double *cols[2]
    cdef const fi_rank_index *ixs[2]
    cdef Py_ssize_t ranks[2]
    cdef Py_ssize_t left[2]
    cdef Py_ssize_t right[2]
    if strict and r <= 0.0:
        return 0
    cols[0] = m.sorted_values
    cols[1] = m.sorted_values + m.n
    ixs[0] = &m.ix0
    ixs[1] = &m.ix1
    ranks[0] = m.rank0[sample]
    ranks[1] = m.rank1[sample]
    # both columns' intervals, searched side by side
    fi_rank_intervals_multi(cols, ixs, ranks, 2, m.n, r, strict, left, right)
    a = left[0]
    b = right[0]
    c = left[1]
    d = right[1]
    # the sample itself lies in both intervals
    if b - a <= d - c:
        return fi_count_in_range(m.z_by_x + a, b - a, <int32_t>c, <int32_t>d) - 1
    return fi_count_in_range(m.x_by_z + c, d - c, <int32_t>a, <int32_t>b) - 1


cdef int marginal_setup_pair(Marginal *m, const double *data, Py_ssize_t n,
                             const double *sorted2, const Py_ssize_t *order0,
                             const Py_ssize_t *order1) noexcept nogil:
    """A 2-D marginal in pair mode: ``sorted2`` (2, n) the sorted columns, ``order0/1`` the
    samples at each rank. Returns 0, or -1 when out of memory (m then needs marginal_free)."""
    cdef Py_ssize_t t
    marginal_init(m)
    m.n = n
    m.d = 2
    m.data = data
    m.sorted_values = sorted2
    m.order = NULL
    m.pair = True
    kdtree_init(&m.tree)
    m.rank0 = <int32_t *>malloc(max(n, 1) * sizeof(int32_t))
    m.rank1 = <int32_t *>malloc(max(n, 1) * sizeof(int32_t))
    m.z_by_x = <int32_t *>malloc(max(n, 1) * sizeof(int32_t))
    m.x_by_z = <int32_t *>malloc(max(n, 1) * sizeof(int32_t))
    if m.rank0 == NULL or m.rank1 == NULL or m.z_by_x == NULL or m.x_by_z == NULL:
        return -1
    if fi_rank_index_build(&m.ix0, sorted2, n) != 0 or fi_rank_index_build(&m.ix1, sorted2 + n, n) != 0:
        return -1
    for t in range(n):
        m.rank0[order0[t]] = <int32_t>t
        m.rank1[order1[t]] = <int32_t>t
    for t in range(n):
        m.z_by_x[t] = m.rank1[order0[t]]
        m.x_by_z[t] = m.rank0[order1[t]]
    return 0


# Grid cells of a gridded marginal hold about fill * k * GRID_COUNT_SCALE points (a count's box
# is wider than a k-NN search's; tuned, a module variable so that benchmarks can tune it).
cdef double GRID_COUNT_SCALE = 1.0


def _set_grid_count_scale(double scale):
    """Private (tests, tuning): the gridded marginals' cell size, in units of the k-NN grid's;
    returns the previous setting."""
    global GRID_COUNT_SCALE
    cdef double old = GRID_COUNT_SCALE
    GRID_COUNT_SCALE = max(scale, 0.01)
    return old


cdef int marginal_setup_grid(Marginal *m, const double *data, Py_ssize_t n, const int32_t **rank,
                             const double **sorted_cols, int k) noexcept nogil:
    """A 3-D marginal of 1-D columns counted on a grid (strict counts only, fi_gridnd_count):
    ``data`` (n, 3) in sample order, rank[a][i] the rank of data[i, a] in the sorted column
    sorted_cols[a]. Needs n < 2^31. Returns 0, or -1 when out of memory (m then needs
    marginal_free)."""
    cdef int kk = max(1, <int>(k * GRID_COUNT_SCALE + 0.5))
    marginal_init(m)
    m.n = n
    m.d = 3
    m.data = data
    m.sorted_values = NULL
    m.order = NULL
    if fi_gridnd_build(&m.grid, data, rank, sorted_cols, n, 3, kk) != 0:
        return -1
    m.gridded = True
    return 0


cdef int marginal_count_all(const Marginal *m, const double *radius, bint strict,
                            const Py_ssize_t *to_joint, Py_ssize_t *out, int nt) noexcept nogil:
    """For every sample: out[i] = #{j != i : ||m_j - m_i|| < radius[i]} (strict) or <= radius[i],
    where the marginal's sample s is the joint sample i = to_joint[s] (identity when NULL).
    The queries run in the marginal's own order (sorted order, or tree order), so that
    consecutive queries touch neighbouring memory. Returns 0, or -1 when out of memory."""
    cdef Py_ssize_t n = m.n, d = m.d, r, q, sample, i, c
    cdef int fail = 0
    cdef int *failp = &fail
    cdef Py_ssize_t *stack = NULL
    if m.gridded:
        # strict counts only (the conditional estimator's; see marginal_setup_grid)
        for q in prange(n, schedule='dynamic', chunksize=512, num_threads=nt):
            sample = m.grid.pid[q]
            i = to_joint[sample] if to_joint != NULL else sample
            out[i] = fi_gridnd_count(&m.grid, q, radius[i])
    elif d == 1:
        for r in prange(n, schedule='dynamic', chunksize=1024, num_threads=nt):
            sample = m.order[r]
            i = to_joint[sample] if to_joint != NULL else sample
            out[i] = sorted_count_from_rank(m.sorted_values, n, r, radius[i], strict)
    elif m.pair:
        for sample in prange(n, schedule='dynamic', chunksize=512, num_threads=nt):
            i = to_joint[sample] if to_joint != NULL else sample
            out[i] = pair_count(m, sample, radius[i], strict)
    else:
        with parallel(num_threads=nt):
            stack = <Py_ssize_t *>malloc(KD_STACK * sizeof(Py_ssize_t))
            for q in prange(n, schedule='dynamic', chunksize=256):
                if stack == NULL:
                    failp[0] = 1
                    continue
                sample = m.tree.index[q]
                i = to_joint[sample] if to_joint != NULL else sample
                c = kdtree_count(&m.tree, &m.tree.points[q * d], radius[i], strict, stack)
                # the sample itself is at distance 0
                if (0.0 < radius[i]) if strict else True:
                    c = c - 1
                out[i] = c
            free(stack)
    return -fail


cdef int marginal_setup(Marginal *m, const double[:, ::1] data, const double[::1] sorted_values,
                        const Py_ssize_t[::1] order, int nt) noexcept nogil:
    m.n = data.shape[0]
    m.d = data.shape[1]
    m.data = &data[0, 0]
    m.sorted_values = NULL
    m.order = NULL
    marginal_init(m)
    if m.d == 1:
        m.sorted_values = &sorted_values[0]
        m.order = &order[0]
        return 0
    return kdtree_build(&m.tree, m.data, m.n, m.d,
                        kd_leaf_count(m.d), nt)


cdef int marginal_setup_any(Marginal *m, const double[:, ::1] data, const double[::1] sorted_values,
                            const Py_ssize_t[::1] order, const double[:, ::1] sorted2,
                            const Py_ssize_t[:, ::1] order2, int nt) noexcept nogil:
    """marginal_setup, or pair mode for a 2-D marginal when ``sorted2``/``order2`` hold its two
    sorted columns and sorting orders ((2, n) each; (0, 0) otherwise)."""
    if data.shape[1] == 2 and sorted2.shape[0] == 2 and data.shape[0] > 0:
        marginal_init(m)
        return marginal_setup_pair(m, &data[0, 0], data.shape[0], &sorted2[0, 0], &order2[0, 0],
                                   &order2[1, 0])
    return marginal_setup(m, data, sorted_values, order, nt)


cdef inline void marginal_init(Marginal *m) noexcept nogil:
    """A marginal that marginal_free may free (nothing allocated)."""
    m.ix0.first = NULL
    m.ix1.first = NULL
    m.pair = False
    m.rank0 = NULL
    m.rank1 = NULL
    m.z_by_x = NULL
    m.x_by_z = NULL
    m.gridded = False
    fi_gridnd_init(&m.grid)
    kdtree_init(&m.tree)


cdef inline void marginal_free(Marginal *m) noexcept nogil:
    kdtree_free(&m.tree)
    fi_gridnd_free(&m.grid)
    m.gridded = False
    free(m.rank0)
    free(m.rank1)
    free(m.z_by_x)
    free(m.x_by_z)
    free(m.ix0.first)
    free(m.ix1.first)
    m.ix0.first = NULL
    m.ix1.first = NULL
    m.rank0 = NULL
    m.rank1 = NULL
    m.z_by_x = NULL
    m.x_by_z = NULL


# ---------------------------------------------------------------------------------------------
# Grid2: k-NN (max-norm) for a 2-D joint space of two 1-D marginals (the common KSG case).
#
# A G x G grid over marginal quantile bins: column c holds the points whose x rank lies in
# [ceil(c n / G), ceil((c + 1) n / G)) (bin = floor(rank G / n)), rows likewise for y, so any
# distribution gives about n / G**2 (~0.75 k; tuned) points per cell on average. Points are stored
# cell-contiguous (cell id = row * G + column; a row of cells is one contiguous range). Column c's
# values lie in [xlo[c], xhi[c]] (the sorted values at its first and last rank).
# kNN of a point (grid2_knn): scan its cell, then grow the window of cells one strip at a time
# on the side whose outside is nearest, while that side's lower bound (e.g. fl(qx - xhi[left -
# 1]), exact as a bound since fl(a - b) is monotone) is <= the current k-th distance. The
# neighbour buffer is ordered by (distance, sample index) as in kdtree_knn, and every point
# within the final k-th distance is scanned, so the k neighbours (hence every count built on
# them) are exactly those of the KD-tree search. The KSG pass (grid_ksg_pass, in the estimators
# section) first tries a cheaper exact search on the 3 x 3 and 5 x 5 blocks of cells around the
# point's cell and falls back to grid2_knn; its marginal counts use the bins (grid2_count_batch).

cdef struct Grid2:
    Py_ssize_t n
    Py_ssize_t G
    double *xlo
    double *xhi
    double *ylo
    double *yhi
    Py_ssize_t *bstart       # (G + 1,) first rank of each bin (the same for x and y)
    Py_ssize_t *cell_start   # (G*G + 1,)
    double *pts              # (n, 2) cell-contiguous
    Py_ssize_t *pid          # storage position -> sample index


cdef inline void grid2_init(Grid2 *g) noexcept nogil:
    g.n = 0
    g.G = 0
    g.xlo = NULL
    g.xhi = NULL
    g.ylo = NULL
    g.yhi = NULL
    g.bstart = NULL
    g.cell_start = NULL
    g.pts = NULL
    g.pid = NULL


cdef inline void grid2_free(Grid2 *g) noexcept nogil:
    free(g.xlo)
    free(g.xhi)
    free(g.ylo)
    free(g.yhi)
    free(g.bstart)
    free(g.cell_start)
    free(g.pts)
    free(g.pid)
    grid2_init(g)


# Target mean points per cell, in units of k (a module variable so that benchmarks can tune it).
cdef double GRID2_FILL = 0.75


def _set_grid2_fill(double fill):
    global GRID2_FILL
    GRID2_FILL = max(fill, 0.1)


cdef inline Py_ssize_t _rank_bin(Py_ssize_t r, Py_ssize_t G, double g_over_n,
                                 const Py_ssize_t *bstart) noexcept nogil:
    """floor(r G / n), the bin of rank r (bstart[b] <= r < bstart[b + 1]), without an integer
    division: a floating-point estimate corrected on the bins' first ranks."""
    cdef Py_ssize_t b = <Py_ssize_t>(<double>r * g_over_n)
    if b > G - 1:
        b = G - 1
    while bstart[b] > r:
        b -= 1
    while bstart[b + 1] <= r:
        b += 1
    return b


cdef inline Py_ssize_t grid2_side(Py_ssize_t n, int k) noexcept nogil:
    """G, the number of quantile bins per axis of the grid of n points for k neighbours."""
    cdef Py_ssize_t G = <Py_ssize_t>sqrt(<double>n / (GRID2_FILL * k))
    if G < 1:
        G = 1
    if G > 2048:
        G = 2048
    if G > n:
        G = n       # no empty bin
    return G


cdef inline Py_ssize_t grid2_bin_start(Py_ssize_t c, Py_ssize_t n, Py_ssize_t G) noexcept nogil:
    """The first rank of bin c (ceil(c n / G)); bin c holds the ranks [start(c), start(c + 1))."""
    return (c * n + G - 1) // G


cdef int grid2_build(Grid2 *g, const double *x, const double *y, const Py_ssize_t *rx,
                     const Py_ssize_t *ry, const double *xs, const double *ys, Py_ssize_t n,
                     int k) noexcept nogil:
    """x, y: values in (joint) sample order; rx, ry: their ranks in the sorted copies xs, ys.
    Returns 0, or -1 when out of memory (the grid is then freed)."""
    return grid2_build_cells(g, x, y, rx, ry, NULL, NULL, xs, ys, n, grid2_side(n, k))


cdef int grid2_build_cells(Grid2 *g, const double *x, const double *y, const Py_ssize_t *rx,
                           const Py_ssize_t *ry, const uint16_t *bx, const uint16_t *by,
                           const double *xs, const double *ys, Py_ssize_t n,
                           Py_ssize_t G) noexcept nogil:
    """grid2_build with G bins per axis; the samples' bins come from their ranks rx, ry or, when
    bx is not NULL, are given (bx[i] = the bin of rx[i], as grid2_column_bins computes them:
    the same cells, so the same grid). Returns 0, or -1 when out of memory (the grid is freed)."""
    cdef Py_ssize_t c, i, cell, pos, lo, hi, n_cells
    cdef int *tcell
    cdef double g_over_n
    grid2_init(g)
    tcell = <int *>malloc(max(n, 1) * sizeof(int))    # cell ids < 2048**2 < 2**31
    n_cells = G * G
    g.n = n
    g.G = G
    g.xlo = <double *>malloc(G * sizeof(double))
    g.xhi = <double *>malloc(G * sizeof(double))
    g.ylo = <double *>malloc(G * sizeof(double))
    g.yhi = <double *>malloc(G * sizeof(double))
    g.bstart = <Py_ssize_t *>malloc((G + 1) * sizeof(Py_ssize_t))
    g.cell_start = <Py_ssize_t *>calloc(n_cells + 1, sizeof(Py_ssize_t))
    g.pts = <double *>malloc(max(2 * n, 1) * sizeof(double))
    g.pid = <Py_ssize_t *>malloc(max(n, 1) * sizeof(Py_ssize_t))
    if (g.xlo == NULL or g.xhi == NULL or g.ylo == NULL or g.yhi == NULL or g.bstart == NULL
            or g.cell_start == NULL or tcell == NULL
            or g.pts == NULL or g.pid == NULL):
        grid2_free(g)
        free(tcell)
        return -1
    for c in range(G):
        lo = grid2_bin_start(c, n, G)
        hi = grid2_bin_start(c + 1, n, G) - 1
        g.xlo[c] = xs[lo]
        g.xhi[c] = xs[hi]
        g.ylo[c] = ys[lo]
        g.yhi[c] = ys[hi]
        g.bstart[c] = lo
    g.bstart[G] = n
    g_over_n = <double>G / <double>n
    # counting sort by cell (stable: sample order within a cell); the cells by sample in tcell
    if bx != NULL:
        for i in range(n):
            cell = <Py_ssize_t>by[i] * G + <Py_ssize_t>bx[i]
            tcell[i] = <int>cell
            g.cell_start[cell + 1] += 1
    else:
        for i in range(n):
            cell = (_rank_bin(ry[i], G, g_over_n, g.bstart) * G
                    + _rank_bin(rx[i], G, g_over_n, g.bstart))
            tcell[i] = <int>cell
            g.cell_start[cell + 1] += 1
    for c in range(n_cells):
        g.cell_start[c + 1] += g.cell_start[c]
    for i in range(n):
        cell = tcell[i]
        pos = g.cell_start[cell]
        g.cell_start[cell] = pos + 1
        g.pts[2 * pos] = x[i]
        g.pts[2 * pos + 1] = y[i]
        g.pid[pos] = i
    for c in range(n_cells, 0, -1):
        g.cell_start[c] = g.cell_start[c - 1]
    g.cell_start[0] = 0
    free(tcell)
    return 0


cdef inline void _grid2_scan(const Grid2 *g, Py_ssize_t a, Py_ssize_t b,
                             double q0, double q1, int k, double *best_d, Py_ssize_t *best_p,
                             Py_ssize_t *best_i) noexcept nogil:
    """Offer the points at storage positions [a, b) (not the query) to the neighbour buffer."""
    cdef Py_ssize_t p, sample
    cdef double da, db, dist, last
    for p in range(a, b):
        da = fabs(g.pts[2 * p] - q0)
        db = fabs(g.pts[2 * p + 1] - q1)
        dist = da if da > db else db
        last = best_d[k - 1]
        if dist > last:
            continue
        sample = g.pid[p]
        if dist == last and sample > best_i[k - 1]:
            continue
        _knn_insert(dist, p, sample, k, best_d, best_p, best_i)


cdef double grid2_knn(const Grid2 *g, Py_ssize_t q, int k, double *best_d, Py_ssize_t *best_p,
                      Py_ssize_t *best_i) noexcept nogil:
    """The k nearest neighbours of the point at storage position ``q`` (itself excluded), in the
    order (distance, sample index): storage positions in best_p, sample indices in best_i.
    Returns the k-th distance. Needs n > k."""
    cdef Py_ssize_t G = g.G, cl, cr, cb, ct, c, lo, hi, mid
    cdef double q0 = g.pts[2 * q], q1 = g.pts[2 * q + 1]
    cdef double dl, dr, db, dt, m
    cdef int j, side
    for j in range(k):
        best_d[j] = INFINITY
        best_p[j] = -1
        best_i[j] = PY_SSIZE_T_MAX
    # the query's cell: the last one starting at or before q (q lies in exactly one)
    lo = 0
    hi = G * G
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if g.cell_start[mid] <= q:
            lo = mid
        else:
            hi = mid
    cl = lo % G
    cr = cl
    cb = lo // G
    ct = cb
    _grid2_scan(g, g.cell_start[cb * G + cl], q, q0, q1, k, best_d, best_p, best_i)
    _grid2_scan(g, q + 1, g.cell_start[cb * G + cl + 1], q0, q1, k, best_d, best_p, best_i)
    while True:
        dl = (q0 - g.xhi[cl - 1]) if cl > 0 else INFINITY
        dr = (g.xlo[cr + 1] - q0) if cr < G - 1 else INFINITY
        db = (q1 - g.yhi[cb - 1]) if cb > 0 else INFINITY
        dt = (g.ylo[ct + 1] - q1) if ct < G - 1 else INFINITY
        m = dl
        side = 0
        if dr < m:
            m = dr
            side = 1
        if db < m:
            m = db
            side = 2
        if dt < m:
            m = dt
            side = 3
        if m > best_d[k - 1] or m == INFINITY:
            break
        if side == 0:
            cl -= 1
            for c in range(cb, ct + 1):
                _grid2_scan(g, g.cell_start[c * G + cl], g.cell_start[c * G + cl + 1], q0, q1,
                            k, best_d, best_p, best_i)
        elif side == 1:
            cr += 1
            for c in range(cb, ct + 1):
                _grid2_scan(g, g.cell_start[c * G + cr], g.cell_start[c * G + cr + 1], q0, q1,
                            k, best_d, best_p, best_i)
        elif side == 2:
            cb -= 1
            _grid2_scan(g, g.cell_start[cb * G + cl], g.cell_start[cb * G + cr + 1], q0, q1, k,
                        best_d, best_p, best_i)
        else:
            ct += 1
            _grid2_scan(g, g.cell_start[ct * G + cl], g.cell_start[ct * G + cr + 1], q0, q1, k,
                        best_d, best_p, best_i)
    return best_d[k - 1]


cdef enum:
    COARSE_STRIDE = 8       # coarse_sample: one sampled value per COARSE_STRIDE (cache-resident)
    COARSE_LOG = 3          # log2(COARSE_STRIDE)


cdef double *coarse_sample(const double *s, Py_ssize_t n) noexcept nogil:
    """coarse[t] = s[8 t] for t < nc = ceil(n / 8) (stride COARSE_STRIDE), and coarse[nc] = +inf (a readable entry
    past the end; no result depends on it). malloc'd; NULL when out of memory."""
    cdef Py_ssize_t nc = (n + COARSE_STRIDE - 1) // COARSE_STRIDE, t
    cdef double *c = <double *>malloc((nc + 1) * sizeof(double))
    if c != NULL:
        for t in range(nc):
            c[t] = s[t * COARSE_STRIDE]
        c[nc] = INFINITY
    return c


# Range counts of the 1-D marginals, from the grid's quantile bins. Column c of the grid holds
# the x ranks [bstart[c], bstart[c + 1]) of the sorted x values s, whose values lie in
# [blo[c], bhi[c]] (rows likewise for y). The count of j != rank with fl(s[j] - v) < r (strict,
# or <= r) on the right and fl(v - s[j]) < r on the left, v = s[rank] (the predicates of
# sorted_count_from_rank, monotone in j, so the same integers): (1) the end's bin, stepping
# outwards from the query's own bin on the bins' bounds (about one step: a count covers ~1.1
# bins on average); (2) the end's block of COARSE_STRIDE values, a branch-free bisection on the
# coarse sample coarse[t] = s[COARSE_STRIDE t] restricted to that bin (~n / (8 G) values,
# cache-resident); (3) the end in the block, a branch-free bisection of COARSE_LOG steps. Each
# stage advances in lock step over a batch of queries (grid2_count_batch).

cdef extern from "csrc/grid2.h":
    double fi_min "fastinfo_fmin2"(double a, double b) noexcept nogil
    double fi_max "fastinfo_fmax2"(double a, double b) noexcept nogil
    double grid2_window3 "fastinfo_window3"(const double *wx, const double *wy, Py_ssize_t m2,
                                            Py_ssize_t self, double q0, double q1,
                                            double *wd, double *fourth) noexcept nogil


def _set_gridnd_fill(double fill):
    """Private (tests, tuning): the grid's target mean points per cell, in units of k; returns
    the previous setting."""
    global fi_gridnd_fill
    cdef double old = fi_gridnd_fill
    fi_gridnd_fill = max(fill, 0.05)
    return old


cdef enum:
    GRID2_BATCH = 16        # grid2_count_batch: searches advanced in lock step
    GRID2_CAND = 128        # candidates gathered from a 3 x 3 block of cells (at most)
    GRID2_CAND2 = 256       # ... from a 5 x 5 block


cdef void grid2_count_batch(const double *s, const double *coarse, Py_ssize_t n,
                            const double *blo, const double *bhi, const Py_ssize_t *bstart,
                            Py_ssize_t G, Py_ssize_t m, const Py_ssize_t *bins,
                            const double *vals, const double *radii, bint strict,
                            Py_ssize_t *out) noexcept nogil:
    """out[t] = #{j != rank_t : |s[j] - vals[t]| < radii[t]} (strict) or <= radii[t], for
    t < m <= GRID2_BATCH, where vals[t] = s[rank_t] is a query's own value and bins[t] the bin
    of rank_t (s sorted: n values, coarse sample ``coarse``, quantile bins blo, bhi, bstart);
    equals sorted_count_from_rank(s, n, rank_t, radii[t], strict). The three stages
    above, each advanced in lock step over the 2 m independent searches (both ends of every
    query), so that their memory accesses overlap instead of waiting one after another (a
    bisection step can cost a cache miss in the sorted values). A search whose length is
    already 1 takes steps of 0 (it reads an entry it ignores: coarse[nc] exists for that)."""
    cdef double v[GRID2_BATCH]
    cdef Py_ssize_t rb[GRID2_BATCH]
    cdef Py_ssize_t rl[GRID2_BATCH]
    cdef Py_ssize_t lb[GRID2_BATCH]
    cdef Py_ssize_t ll[GRID2_BATCH]
    cdef Py_ssize_t lend[GRID2_BATCH]
    cdef Py_ssize_t t, b, c, maxlen, half, step, p1, p2
    cdef double vt, r, d
    maxlen = 1
    for t in range(m):
        vt = vals[t]
        r = radii[t]
        v[t] = vt
        # right end's bin, then its coarse window: last true, true at the first
        # (the first two steps without a branch: it is taken about half the time)
        b = bins[t]
        d = blo[min(b + 1, G - 1)] - vt
        p1 = (b + 1 < G) & ((d < r) if strict else (d <= r))
        d = blo[min(b + 2, G - 1)] - vt
        p2 = p1 & (b + 2 < G) & ((d < r) if strict else (d <= r))
        c = b + p1 + p2
        while p2 and c < G - 1 and ((blo[c + 1] - vt < r) if strict else (blo[c + 1] - vt <= r)):
            c += 1
        rb[t] = bstart[c] >> COARSE_LOG       # (non-negative: // COARSE_STRIDE as a shift)
        rl[t] = ((bstart[c + 1] + COARSE_STRIDE - 1) >> COARSE_LOG) - rb[t]
        # left end's bin, then its coarse window: first true, the last one virtual and true
        d = vt - bhi[max(b - 1, <Py_ssize_t>0)]
        p1 = (b >= 1) & ((d < r) if strict else (d <= r))
        d = vt - bhi[max(b - 2, <Py_ssize_t>0)]
        p2 = p1 & (b >= 2) & ((d < r) if strict else (d <= r))
        c = b - p1 - p2
        while p2 and c > 0 and ((vt - bhi[c - 1] < r) if strict else (vt - bhi[c - 1] <= r)):
            c -= 1
        lb[t] = (bstart[c] + COARSE_STRIDE - 1) >> COARSE_LOG
        ll[t] = ((bstart[c + 1] - 1) >> COARSE_LOG) + 2 - lb[t]
        lend[t] = bstart[c + 1]
        maxlen = max(maxlen, max(rl[t], ll[t]))
    while maxlen > 1:
        for t in range(m):
            r = radii[t]
            half = rl[t] >> 1
            d = coarse[rb[t] + half] - v[t]
            rb[t] += half & -(<Py_ssize_t>((d < r) if strict else (d <= r)))
            rl[t] -= half
            half = ll[t] >> 1
            d = v[t] - coarse[lb[t] + half - (half != 0)]
            lb[t] += half & ((<Py_ssize_t>((d < r) if strict else (d <= r))) - 1)
            ll[t] -= half
        maxlen -= maxlen >> 1
    # the blocks (S = COARSE_STRIDE values): right, the last true in [S rb, S rb + S) (true at
    # the first, false past the bin); left, the first true in (S lb - S, top], top = min(S lb,
    # the bin's last rank)
    for t in range(m):
        rb[t] = rb[t] << COARSE_LOG
        rl[t] = min(<Py_ssize_t>COARSE_STRIDE, n - rb[t])
        if lb[t] == 0:
            ll[t] = 1
        else:
            lb[t] = (lb[t] - 1) * COARSE_STRIDE + 1
            ll[t] = min(<Py_ssize_t>COARSE_STRIDE, lend[t] - lb[t])
    for step in range(COARSE_LOG):
        for t in range(m):
            r = radii[t]
            half = rl[t] >> 1
            d = s[rb[t] + half] - v[t]
            rb[t] += half & -(<Py_ssize_t>((d < r) if strict else (d <= r)))
            rl[t] -= half
            half = ll[t] >> 1
            d = v[t] - s[lb[t] + half - (half != 0)]
            lb[t] += half & ((<Py_ssize_t>((d < r) if strict else (d <= r))) - 1)
            ll[t] -= half
    for t in range(m):
        out[t] = 0 if (strict and radii[t] <= 0.0) else rb[t] - lb[t]

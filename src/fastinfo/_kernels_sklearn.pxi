# Section of _kernels.pyx: scikit-learn drop-in (fastinfo.sklearn) kernels.
#
# sklearn_kdtree_count: scikit-learn's KDTree(c).query_radius(c, r, count_only=True) on 1-D data,
# replayed decision for decision (csrc/sklearn_kdtree.h). Input: the sorted values (n,), the query
# points and their radii (m,), all C-contiguous float64; the caller allocates nothing, the counts
# (m,) intp are returned. Queries run in parallel (each count is independent: any thread count
# gives the same integers). Used only where squares of differences could overflow or underflow;
# ordinary data take fastinfo's sorted range counts, which give the same counts there.

cdef extern from "csrc/sklearn_kdtree.h":
    ctypedef struct fi_skl_tree:
        const double *values
        Py_ssize_t n_nodes
        double p
        double inv_p
    Py_ssize_t fi_skl_kdtree_count(const fi_skl_tree *t, Py_ssize_t n, double pt, double r) nogil


def sklearn_kdtree_count(const double[::1] sorted_values, const double[::1] points,
                         const double[::1] radius, Py_ssize_t n_nodes, double p):
    """``KDTree(values).query_radius(points, radius, count_only=True)`` as scikit-learn computes it
    (Euclidean metric of exponent ``p`` = 2, a tree of ``n_nodes`` nodes) on 1-D ``sorted_values``."""
    cdef Py_ssize_t n = sorted_values.shape[0], m = points.shape[0], i
    cdef fi_skl_tree t
    out = np.zeros(m, dtype=np.intp)
    cdef Py_ssize_t[::1] ov = out
    if n == 0 or m == 0:
        return out
    t.values = &sorted_values[0]
    t.n_nodes = n_nodes
    t.p = p
    t.inv_p = 1.0 / p
    with nogil:
        for i in prange(m, schedule='static', num_threads=num_threads_for(m)):
            ov[i] = fi_skl_kdtree_count(&t, n, points[i], radius[i])
    return out

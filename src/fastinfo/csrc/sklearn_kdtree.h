/* fastinfo: scikit-learn's KDTree radius count on 1-D data, decision for decision.

   fastinfo.sklearn's Ross estimator needs, for every sample, the count that
   sklearn.neighbors.KDTree(c).query_radius(c, r, count_only=True) returns (Euclidean metric,
   leaf_size 40). For ordinary data that count is #{j : |c_j - c_i| <= r_i}, which the drop-in
   takes from the sorted values (fastinfo's range counts). This file replays scikit-learn's own
   arithmetic instead, for the data where the two could part: values whose squares overflow or
   underflow (|c| >= 2^510, gaps or radii below 2^-510), where scikit-learn's squared leaf test
   and its pow()-based node bounds no longer order distances exactly.

   The tree (scikit-learn's BinaryTree): node i has children 2i+1 and 2i+2, n_nodes = 2^levels - 1,
   node i is a leaf when 2i+1 >= n_nodes (or it holds fewer than 2 points); a node holding the
   points [start, end) of the sorted order splits at start + (end - start) / 2 (its median
   partition puts the n_mid smallest values left). In one dimension a node's bounds are therefore
   its smallest and largest sorted value. Per node and query point scikit-learn computes (its
   min_max_dist for p = 2)
       d_lo = lo - pt, d_hi = pt - hi,
       min = pow(pow(0.5 * ((d_lo + |d_lo|) + (d_hi + |d_hi|)), p), 1/p),
       max = pow(pow(max(|d_lo|, |d_hi|), p), 1/p),
   prunes when min > r, counts the whole node when max <= r, and in a leaf compares the squared
   difference with r * r. The exponent p is passed at run time so that the compiler keeps the
   pow() calls scikit-learn makes (pow(x, 2.0) would otherwise become x * x).
   Included by _kernels.pyx (section _kernels_sklearn.pxi). */
#ifndef FASTINFO_SKLEARN_KDTREE_H
#define FASTINFO_SKLEARN_KDTREE_H

#include <Python.h>
#include <math.h>

typedef struct {
    const double *values;   /* sorted, (n,) */
    Py_ssize_t n_nodes;
    double p;               /* 2.0 */
    double inv_p;           /* 1.0 / p */
} fi_skl_tree;

static Py_ssize_t fi_skl_count_node(const fi_skl_tree *t, Py_ssize_t node, Py_ssize_t start,
                                    Py_ssize_t end, double pt, double r)
{
    const double lo = t->values[start], hi = t->values[end - 1];
    const double d_lo = lo - pt, d_hi = pt - hi;
    const double d = (d_lo + fabs(d_lo)) + (d_hi + fabs(d_hi));
    double min_dist = 0.0, max_dist = 0.0;
    min_dist += pow(0.5 * d, t->p);
    max_dist += pow(fmax(fabs(d_lo), fabs(d_hi)), t->p);
    min_dist = pow(min_dist, t->inv_p);
    max_dist = pow(max_dist, t->inv_p);
    if (min_dist > r)
        return 0;
    if (max_dist <= r)
        return end - start;
    if (2 * node + 1 >= t->n_nodes || end - start < 2) {
        const double reduced_r = r * r;
        Py_ssize_t count = 0, i;
        for (i = start; i < end; i++) {
            const double diff = pt - t->values[i];
            double rdist = 0.0;
            rdist += diff * diff;
            count += rdist <= reduced_r;
        }
        return count;
    }
    {
        const Py_ssize_t mid = start + (end - start) / 2;
        return fi_skl_count_node(t, 2 * node + 1, start, mid, pt, r)
             + fi_skl_count_node(t, 2 * node + 2, mid, end, pt, r);
    }
}

/* The count for one query point (the tree's depth is about log2(n / leaf_size) < 64). */
static Py_ssize_t fi_skl_kdtree_count(const fi_skl_tree *t, Py_ssize_t n, double pt, double r)
{
    if (n <= 0)
        return 0;
    return fi_skl_count_node(t, 0, 0, n, pt, r);
}

#endif /* FASTINFO_SKLEARN_KDTREE_H */

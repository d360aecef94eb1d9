"""Slow, obvious NumPy twins of every public fastinfo function.

Written straight from the formulas of ``shared/API.md`` (and, for the softmax family,
from the semantics of ``torch.nn.functional.cross_entropy``), with no attempt at speed:
float64 (or mpmath) everywhere, Python loops and O(n^2) distance matrices where that is
the obvious way. The tests compare the compiled functions against these.
"""
import numpy as np
from scipy.special import digamma  # noqa: F401  (used by the estimator twins)

# =============================================================================
# Softmax family
# =============================================================================


# =============================================================================
# Distribution family
# =============================================================================


# =============================================================================
# Estimators from samples
# =============================================================================
# Brute force, O(n^2) distance matrices, straight from the formulas of shared/API.md.


def _est_rows(a):
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def _est_dist(a):
    """Max-norm distance matrix, computed as |a_j - a_i| per coordinate like the definition."""
    a = _est_rows(a)
    return np.abs(a[:, None, :] - a[None, :, :]).max(axis=-1)


def _est_knn(dist, k):
    """Per row: the k nearest other samples ordered by (distance, index) and the k-th distance."""
    n = dist.shape[0]
    d = dist.copy()
    d[np.arange(n), np.arange(n)] = np.inf
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, d[np.arange(n), order[:, -1]]


def _est_count(dist, radius, strict):
    n = dist.shape[0]
    inside = dist < radius[:, None] if strict else dist <= radius[:, None]
    inside[np.arange(n), np.arange(n)] = False
    return inside.sum(axis=1)


def mutual_info_ksg_ref(x, y, k=3, algorithm=1, base=None):
    x, y = _est_rows(x), _est_rows(y)
    n = x.shape[0]
    dx, dy = _est_dist(x), _est_dist(y)
    joint = np.maximum(dx, dy)
    neighbours, eps = _est_knn(joint, k)
    if algorithm == 1:
        nx = _est_count(dx, eps, strict=True)
        ny = _est_count(dy, eps, strict=True)
        value = digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1))
    else:
        rows = np.arange(n)[:, None]
        eps_x = dx[rows, neighbours].max(axis=1)
        eps_y = dy[rows, neighbours].max(axis=1)
        nx = _est_count(dx, eps_x, strict=False)
        ny = _est_count(dy, eps_y, strict=False)
        value = digamma(k) - 1.0 / k + digamma(n) - np.mean(digamma(nx) + digamma(ny))
    return value / (np.log(base) if base else 1.0)


def conditional_mutual_info_ksg_ref(x, y, z, k=3, base=None):
    dx, dy, dz = _est_dist(x), _est_dist(y), _est_dist(z)
    _, eps = _est_knn(np.maximum(np.maximum(dx, dy), dz), k)
    nxz = _est_count(np.maximum(dx, dz), eps, strict=True)
    nyz = _est_count(np.maximum(dy, dz), eps, strict=True)
    nz = _est_count(dz, eps, strict=True)
    value = digamma(k) - np.mean(digamma(nxz + 1) + digamma(nyz + 1) - digamma(nz + 1))
    return value / (np.log(base) if base else 1.0)


def entropy_knn_ref(x, k=3, base=None):
    x = _est_rows(x)
    n, d = x.shape
    _, eps = _est_knn(_est_dist(x), k)
    if np.any(eps == 0):
        raise ValueError("duplicated samples")
    value = digamma(n) - digamma(k) + d * np.mean(np.log(2 * eps))
    return value / (np.log(base) if base else 1.0)


def mutual_info_mixed_ref(x, labels, k=3, base=None):
    x = _est_rows(x)
    labels = np.asarray(labels)
    values, counts = np.unique(labels, return_counts=True)
    count_of = dict(zip(values.tolist(), counts.tolist()))
    label_count = np.array([count_of[v] for v in labels.tolist()])
    keep = label_count > 1
    x, labels, label_count = x[keep], labels[keep], label_count[keep]
    n = x.shape[0]
    dist = _est_dist(x)
    radius = np.empty(n)
    k_all = np.empty(n)
    for i in range(n):
        same = np.flatnonzero((labels == labels[i]) & (np.arange(n) != i))
        k_i = min(k, len(same))
        radius[i] = np.sort(dist[i, same])[k_i - 1]
        k_all[i] = k_i
    m = _est_count(dist, radius, strict=False)
    value = digamma(n) + np.mean(digamma(k_all)) - np.mean(digamma(label_count)) - np.mean(digamma(m))
    return value / (np.log(base) if base else 1.0)


def mutual_info_discrete_ref(a, b, base=None):
    a, b = np.asarray(a), np.asarray(b)
    n = a.shape[0]
    value = 0.0
    for va in np.unique(a):
        for vb in np.unique(b):
            p_ab = np.mean((a == va) & (b == vb))
            if p_ab > 0:
                value += p_ab * np.log(p_ab / (np.mean(a == va) * np.mean(b == vb)))
    return value / (np.log(base) if base else 1.0)


def mutual_info_from_joint_ref(pxy, base=None):
    p = np.asarray(pxy, dtype=np.float64)
    p = p / p.sum()
    outer = p.sum(axis=1)[:, None] * p.sum(axis=0)[None, :]
    nz = p > 0
    value = np.sum(p[nz] * np.log(p[nz] / outer[nz]))
    return value / (np.log(base) if base else 1.0)


def mutual_info_matrix_ref(X, k=3, base=None):
    X = np.asarray(X, dtype=np.float64)
    m = X.shape[1]
    out = np.full((m, m), np.nan)
    for i in range(m):
        for j in range(m):
            if i != j:
                out[i, j] = mutual_info_ksg_ref(X[:, i], X[:, j], k=k, base=base)
    return out


def mutual_info_features_ref(X, y, k=3, discrete_features=False, discrete_target=False, base=None):
    X = np.asarray(X)
    m = X.shape[1]
    mask = np.full(m, discrete_features) if np.ndim(discrete_features) == 0 else np.asarray(discrete_features)
    out = np.empty(m)
    for j in range(m):
        if mask[j] and discrete_target:
            out[j] = mutual_info_discrete_ref(X[:, j], y, base=base)
        elif mask[j]:
            out[j] = mutual_info_mixed_ref(y, X[:, j], k=k, base=base)
        elif discrete_target:
            out[j] = mutual_info_mixed_ref(X[:, j], y, k=k, base=base)
        else:
            out[j] = mutual_info_ksg_ref(X[:, j], y, k=k, base=base)
    return out


def mutual_info_test_ref(x, y, k=3, n_permutations=999, random_state=None, base=None):
    y = _est_rows(y)
    estimate = mutual_info_ksg_ref(x, y, k=k, base=base)
    rng = np.random.default_rng(random_state)
    null = [mutual_info_ksg_ref(x, y[rng.permutation(y.shape[0])], k=k, base=base)
            for _ in range(n_permutations)]
    return estimate, (1 + sum(v >= estimate for v in null)) / (1 + n_permutations)


def infonce_bound_ref(scores):
    s = np.asarray(scores, dtype=np.float64)
    n = s.shape[0]
    row_max = s.max(axis=1, keepdims=True)
    log_softmax = s - row_max - np.log(np.exp(s - row_max).sum(axis=1, keepdims=True))
    return np.log(n) + np.mean(np.diag(log_softmax))



# =============================================================================
# scikit-learn drop-in
# =============================================================================

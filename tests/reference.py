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


def _ref_lse_lastaxis(z):
    """logsumexp over the last axis of a float64 array, the obvious way (SciPy's conventions)."""
    m = np.max(z, axis=-1, keepdims=True) if z.shape[-1] else np.full(z.shape[:-1] + (1,), -np.inf)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return (np.log(np.sum(np.exp(z - m_safe), axis=-1, keepdims=True)) + m_safe)[..., 0]


def ref_logsumexp(x, axis=-1, keepdims=False):
    z = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    res = _ref_lse_lastaxis(z)
    return np.expand_dims(res, axis) if keepdims else res


def _ref_log_softmax_last(z):
    """log_softmax over the last axis; slices whose logsumexp is not finite, or that hold NaN, are NaN."""
    lse = _ref_lse_lastaxis(z)
    with np.errstate(invalid="ignore"):
        res = z - lse[..., None]
    bad = ~np.isfinite(lse) | np.isnan(z).any(axis=-1)
    res[bad] = np.nan
    return res


def ref_log_softmax(x, axis=-1, temperature=1.0):
    z = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1) / temperature
    return np.moveaxis(_ref_log_softmax_last(z), -1, axis)


def ref_softmax(x, axis=-1, temperature=1.0):
    return np.exp(ref_log_softmax(x, axis, temperature))


def ref_softmax_entropy(x, axis=-1, temperature=1.0, base=None):
    z = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1) / temperature
    logp = _ref_log_softmax_last(z)
    p = np.exp(logp)
    with np.errstate(invalid="ignore"):
        terms = np.where(p > 0, p * logp, 0.0)
    h = -np.sum(terms, axis=-1)
    h = np.where(np.isnan(logp).any(axis=-1) | (z.shape[-1] == 0), np.nan, h)
    return h / (np.log(base) if base is not None else 1.0)


def ref_softmax_kl_divergence(a, b, axis=-1, temperature=1.0, reduction="none", base=None):
    za = np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1) / temperature
    zb = np.moveaxis(np.asarray(b, dtype=np.float64), axis, -1) / temperature
    lp, lq = _ref_log_softmax_last(za), _ref_log_softmax_last(zb)
    p = np.exp(lp)
    with np.errstate(invalid="ignore"):
        terms = np.where(p > 0, p * (lp - lq), 0.0)
    kl = np.sum(terms, axis=-1)
    kl = np.where(np.isnan(lp).any(axis=-1) | np.isnan(lq).any(axis=-1) | (za.shape[-1] == 0), np.nan, kl)
    kl = kl / (np.log(base) if base is not None else 1.0)
    return _ref_reduce(kl, reduction, kl.size)


def _ref_reduce(per_row, reduction, denominator):
    if reduction == "none":
        return per_row
    total = np.sum(per_row)
    if reduction == "sum":
        return float(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(total) / np.float64(denominator))


def ref_softmax_cross_entropy(logits, target, axis=-1, reduction="mean", ignore_index=None, label_smoothing=0.0,
                              weight=None, temperature=1.0):
    """torch.nn.functional.cross_entropy, written out in NumPy (float64).

    Class indices: nll_i = -w[t_i] logp[t_i] (0 where ignored); with label smoothing eps,
    smooth_i = -sum_c w_c logp_c (0 where ignored), loss = (1 - eps) nll + eps / C smooth, and
    "mean" divides both sums by sum_i w[t_i] over non-ignored i. Probabilities: the target is
    mixed with the uniform distribution, loss_i = -sum_c w_c q_c logp_c, "mean" divides by the
    number of slices (not by weights).
    """
    z = np.moveaxis(np.asarray(logits, dtype=np.float64), axis, -1) / temperature
    logp = _ref_log_softmax_last(z)
    n_classes = z.shape[-1]
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    eps = label_smoothing
    target = np.asarray(target)
    if target.dtype.kind in "iu":
        ignored = (target == ignore_index) if ignore_index is not None else np.zeros(target.shape, bool)
        t = np.where(ignored, 0, target).astype(np.int64)
        if np.any((t < 0) | (t >= n_classes)):
            raise ValueError("target out of range")
        picked = np.take_along_axis(logp, t[..., None], axis=-1)[..., 0] if n_classes else np.zeros(t.shape)
        nll = np.where(ignored, 0.0, -w[t] * picked) if n_classes else np.zeros(t.shape)
        denominator = np.sum(np.where(ignored, 0.0, w[t] if n_classes else 0.0))
        loss = _ref_reduce(nll, reduction, denominator)
        if eps > 0:
            smooth = np.where(ignored, 0.0, -np.sum(logp * w, axis=-1))
            loss = (1 - eps) * loss + eps / n_classes * _ref_reduce(smooth, reduction, denominator)
        return loss
    q = np.moveaxis(np.asarray(target, dtype=np.float64), axis, -1)
    if eps > 0:
        q = q * (1 - eps) + eps / n_classes
    per_row = -np.sum(logp * q * w, axis=-1)
    return _ref_reduce(per_row, reduction, per_row.size)


def ref_softmax_cross_entropy_grad(logits, target, axis=-1, reduction="mean", ignore_index=None,
                                   label_smoothing=0.0, weight=None, temperature=1.0):
    """d loss / d logits (of loss.sum() for "none"): per slice ((sum_c u_c) softmax - u) / T with u the
    weighted, smoothed target distribution, divided by the "mean" denominator; 0 at ignored slices."""
    z = np.moveaxis(np.asarray(logits, dtype=np.float64), axis, -1) / temperature
    p = np.exp(_ref_log_softmax_last(z))
    n_classes = z.shape[-1]
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    eps = label_smoothing
    target = np.asarray(target)
    if target.dtype.kind in "iu":
        ignored = (target == ignore_index) if ignore_index is not None else np.zeros(target.shape, bool)
        t = np.where(ignored, 0, target).astype(np.int64)
        onehot = np.eye(n_classes)[t]
        u = (1 - eps) * w[t][..., None] * onehot + eps / n_classes * w
        u[ignored] = 0.0
        denominator = np.sum(np.where(ignored, 0.0, w[t]))
        p[ignored] = 0.0   # ignored slices are not read: NaN logits there give 0
    else:
        q = np.moveaxis(np.asarray(target, dtype=np.float64), axis, -1)
        u = w * (q * (1 - eps) + eps / n_classes)
        denominator = q.shape[:-1] and np.prod(q.shape[:-1]) or 1.0
    grad = (np.sum(u, axis=-1, keepdims=True) * p - u) / temperature
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = grad / denominator
    return np.moveaxis(grad, -1, axis)


def ref_perplexity(logits, target, axis=-1, ignore_index=None, temperature=1.0):
    return float(np.exp(ref_softmax_cross_entropy(logits, target, axis, "mean", ignore_index, 0.0, None,
                                                  temperature)))


# =============================================================================
# Fused linear head family: the unfused composition
# =============================================================================
# The logits are formed the obvious way, by NumPy in the compute dtype (float64 if hidden or head is
# float64, else float32; half precision widened to float32 first), then handed to the softmax twins.


def _ref_compute_dtype(*arrays):
    return np.float64 if any(np.asarray(a).dtype == np.float64 or np.asarray(a).dtype.kind in "biu"
                             for a in arrays) else np.float32


def ref_linear_logits(hidden, head, bias=None, dtype=None):
    """``hidden @ head.T + bias`` by NumPy in the compute dtype (what a user would write)."""
    dtype = dtype or _ref_compute_dtype(hidden, head)
    h = np.asarray(hidden).astype(dtype)
    w = np.asarray(head).astype(dtype)
    z = h @ w.T
    if bias is not None:
        z = z + np.asarray(bias).astype(np.float64).astype(dtype)
    return z


def ref_linear_cross_entropy(hidden, head, target, bias=None, **options):
    return ref_softmax_cross_entropy(ref_linear_logits(hidden, head, bias), target, -1, **options)


def ref_linear_cross_entropy_grads(hidden, head, target, bias=None, **options):
    """(grad_hidden, grad_head, grad_bias) in float64: the chain rule on the composition's gradient
    G = d loss / d logits: G @ head, G.T @ hidden, sum of G over rows."""
    logits = ref_linear_logits(hidden, head, bias)
    g = ref_softmax_cross_entropy_grad(logits, target, -1, **options)
    d = np.shape(head)[1]
    g_rows = g.reshape(-1, g.shape[-1])
    h_rows = np.asarray(hidden).astype(np.float64).reshape(-1, d)
    grad_hidden = (g_rows @ np.asarray(head).astype(np.float64)).reshape(np.shape(hidden))
    grad_head = g_rows.T @ h_rows
    return grad_hidden, grad_head, (g_rows.sum(axis=0) if bias is not None else None)


def ref_linear_perplexity(hidden, head, target, bias=None, ignore_index=None, temperature=1.0):
    return ref_perplexity(ref_linear_logits(hidden, head, bias), target, -1, ignore_index, temperature)


def ref_linear_softmax_entropy(hidden, head, bias=None, temperature=1.0, base=None):
    return ref_softmax_entropy(ref_linear_logits(hidden, head, bias), -1, temperature, base)


def ref_linear_kl_divergence(hidden_p, head_p, hidden_q, head_q, bias_p=None, bias_q=None, temperature=1.0,
                             reduction="none", base=None):
    dtype = _ref_compute_dtype(hidden_p, head_p, hidden_q, head_q)
    return ref_softmax_kl_divergence(ref_linear_logits(hidden_p, head_p, bias_p, dtype),
                                     ref_linear_logits(hidden_q, head_q, bias_q, dtype), -1, temperature,
                                     reduction, base)


# =============================================================================
# Distribution family
# =============================================================================


def _normalised(x, axis, add=0.0):
    """``x`` (float64) moved to axis -1, ``+ add``, divided by its sum; also the sums."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1) + add
    total = x.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x / total, total[..., 0]


def _finish(terms, *sums, base=None):
    """Sum the per-entry terms; NaN where any sum is zero (incl. empty slices); divide by log(base)."""
    result = terms.sum(axis=-1)
    for total in sums:
        result = np.where(total == 0, np.nan, result)
    if base is not None:
        result = result / np.log(base)
    return result


def _check_nonnegative(**arrays):
    for name, x in arrays.items():
        if (np.asarray(x, dtype=np.float64) < 0).any():
            raise ValueError(f"{name} must not have negative entries")


def entropy(p, axis=-1, base=None):
    """-sum a log a, a = p / sum(p), 0 log 0 = 0 (scipy.special.entr, entry by entry)."""
    _check_nonnegative(p=p)
    a, s = _normalised(p, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(a > 0, -a * np.log(a), 0.0)
    terms = np.where(np.isnan(a), np.nan, terms)
    return _finish(terms, s, base=base)


def _pq(p, q, axis, eps=0.0):
    _check_nonnegative(p=p, q=q)
    p, q = np.broadcast_arrays(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64))
    a, s = _normalised(p, axis)
    b, t = _normalised(q, axis, add=eps)
    return a, b, s, t


def cross_entropy(p, q, axis=-1, base=None, eps=0.0):
    """-sum a log b with a, b the normalised p and q + eps; a > 0 = b gives inf."""
    a, b, s, t = _pq(p, q, axis, eps)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(a > 0, -a * np.log(b), 0.0)
    terms = np.where(np.isnan(a) | np.isnan(b), np.nan, terms)
    return _finish(terms, s, t, base=base)


def kl_divergence(p, q, axis=-1, base=None, eps=0.0):
    """sum a log(a / b) (scipy.special.rel_entr, entry by entry)."""
    a, b, s, t = _pq(p, q, axis, eps)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(a > 0, a * np.log(a / b), 0.0)
    terms = np.where(np.isnan(a) | np.isnan(b), np.nan, terms)
    return _finish(terms, s, t, base=base)


def js_divergence(p, q, axis=-1, base=None):
    """1/2 KL(a || m) + 1/2 KL(b || m), m = (a + b) / 2."""
    a, b, s, t = _pq(p, q, axis)
    m = 0.5 * (a + b)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = 0.5 * (np.where(a > 0, a * np.log(a / m), 0.0) + np.where(b > 0, b * np.log(b / m), 0.0))
    terms = np.where(np.isnan(a) | np.isnan(b), np.nan, terms)
    return _finish(terms, s, t, base=base)


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
    if algorithm == 1:
        # only the k-th distance matters (no tie-break needed)
        masked = joint + np.diag(np.full(n, np.inf))
        eps = np.partition(masked, k - 1, axis=1)[:, k - 1]
        nx = _est_count(dx, eps, strict=True)
        ny = _est_count(dy, eps, strict=True)
        value = digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1))
    else:
        neighbours, eps = _est_knn(joint, k)
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
# scikit-learn drop-in: scikit-learn's per-column estimators, the obvious way
# =============================================================================


def sklearn_mi_cc_ref(x, y, n_neighbors=3):
    """``sklearn.feature_selection._mutual_info._compute_mi_cc``: max-norm joint k-th distance,
    radius ``nextafter(eps, 0)``, marginal counts ``<= radius`` (the sample itself included)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = x.shape[0]
    dx, dy = np.abs(x[:, None] - x[None, :]), np.abs(y[:, None] - y[None, :])
    joint = np.maximum(dx, dy) + np.diag(np.full(n, np.inf))
    radius = np.nextafter(np.sort(joint, axis=1)[:, n_neighbors - 1], 0)
    nx = (dx <= radius[:, None]).sum(axis=1)
    ny = (dy <= radius[:, None]).sum(axis=1)
    return max(0, digamma(n) + digamma(n_neighbors) - np.mean(digamma(nx)) - np.mean(digamma(ny)))


def sklearn_mi_cd_ref(c, labels, n_neighbors=3):
    """``_compute_mi_cd``: per label group the Euclidean k-th distance of ``NearestNeighbors()``
    (brute force, ``||x||^2 - 2xy + ||y||^2``, when ``k >= size // 2``; exact otherwise),
    radius ``nextafter(eps, 0)``, ``m_i`` = every kept sample within it (itself included).
    Ordinary magnitudes only (no overflow of squares)."""
    dtype = np.asarray(c).dtype
    c = np.asarray(c, dtype=np.float64)
    labels = np.asarray(labels)
    radius = np.full(c.shape[0], np.nan)
    k_all = np.zeros(c.shape[0])
    count_all = np.zeros(c.shape[0])
    for label in np.unique(labels):
        mask = labels == label
        size = int(mask.sum())
        count_all[mask] = size
        if size < 2:
            continue
        k = min(n_neighbors, size - 1)
        g = c[mask]
        if k >= size // 2:
            squared = np.maximum((g[:, None] ** 2 + -2.0 * (g[:, None] * g[None, :])) + g[None, :] ** 2, 0.0)
            kth = np.sort(squared, axis=1)[:, k]
            if dtype == np.float32:
                kth = np.sqrt(kth.astype(np.float32).astype(np.float64)).astype(np.float32).astype(np.float64)
            else:
                kth = np.sqrt(kth)
        else:
            d = np.abs(g[:, None] - g[None, :]) + np.diag(np.full(size, np.inf))
            kth = np.sort(d, axis=1)[:, k - 1]
        radius[mask] = np.nextafter(kth, 0)
        k_all[mask] = k
    keep = count_all > 1
    c, radius = c[keep], radius[keep]
    m = (np.abs(c[:, None] - c[None, :]) <= radius[:, None]).sum(axis=1)
    return max(0, digamma(c.shape[0]) + np.mean(digamma(k_all[keep])) - np.mean(digamma(count_all[keep]))
               - np.mean(digamma(m)))


# =============================================================================
# Local (pointwise) values and information dynamics, brute force.


def mutual_info_ksg_local_ref(x, y, k=3, algorithm=1, base=None):
    """The per-sample terms whose mean is mutual_info_ksg_ref."""
    x, y = _est_rows(x), _est_rows(y)
    n = x.shape[0]
    dx, dy = _est_dist(x), _est_dist(y)
    joint = np.maximum(dx, dy)
    neighbours, eps = _est_knn(joint, k)
    if algorithm == 1:
        nx = _est_count(dx, eps, strict=True)
        ny = _est_count(dy, eps, strict=True)
        local = digamma(k) + digamma(n) - digamma(nx + 1) - digamma(ny + 1)
    else:
        rows = np.arange(n)[:, None]
        nx = _est_count(dx, dx[rows, neighbours].max(axis=1), strict=False)
        ny = _est_count(dy, dy[rows, neighbours].max(axis=1), strict=False)
        local = digamma(k) - 1.0 / k + digamma(n) - digamma(nx) - digamma(ny)
    return local / (np.log(base) if base else 1.0)


def conditional_mutual_info_ksg_local_ref(x, y, z, k=3, base=None):
    dx, dy, dz = _est_dist(x), _est_dist(y), _est_dist(z)
    _, eps = _est_knn(np.maximum(np.maximum(dx, dy), dz), k)
    nxz = _est_count(np.maximum(dx, dz), eps, strict=True)
    nyz = _est_count(np.maximum(dy, dz), eps, strict=True)
    nz = _est_count(dz, eps, strict=True)
    local = digamma(k) - digamma(nxz + 1) - digamma(nyz + 1) + digamma(nz + 1)
    return local / (np.log(base) if base else 1.0)


def entropy_knn_local_ref(x, k=3, base=None):
    x = _est_rows(x)
    n, d = x.shape
    _, eps = _est_knn(_est_dist(x), k)
    return (digamma(n) - digamma(k) + d * np.log(2 * eps)) / (np.log(base) if base else 1.0)


def lagged_ref(series, t, last_lag, history, tau):
    """[series[t-last_lag-(history-1)*tau], ..., series[t-last_lag]] flattened (each lag its d values),
    built value by value."""
    s = _est_rows(series)
    values = []
    for j in range(history - 1, -1, -1):
        values.extend(s[t - last_lag - j * tau])
    return values


def transfer_entropy_samples_ref(source, target, target_history=1, source_history=1, delay=1,
                                 target_tau=1, source_tau=1, condition=None):
    """(source past, target now, conditioning) rows for t = t0 .. n-1, by explicit loops."""
    n = _est_rows(target).shape[0]
    t0 = max((target_history - 1) * target_tau + 1, (source_history - 1) * source_tau + delay)
    src, now, cond = [], [], []
    for t in range(t0, n):
        src.append(lagged_ref(source, t, delay, source_history, source_tau))
        now.append(lagged_ref(target, t, 0, 1, 1))
        z = lagged_ref(target, t, 1, target_history, target_tau)
        if condition is not None:
            z = z + lagged_ref(condition, t, 1, 1, 1)
        cond.append(z)
    return np.array(src), np.array(now), np.array(cond)


def transfer_entropy_ksg_ref(source, target, k=4, local=False, base=None, **embedding):
    x, y, z = transfer_entropy_samples_ref(source, target, **embedding)
    if local:
        return conditional_mutual_info_ksg_local_ref(x, y, z, k=k, base=base)
    return conditional_mutual_info_ksg_ref(x, y, z, k=k, base=base)


def active_information_storage_ksg_ref(x, k=4, history=1, tau=1, local=False, base=None):
    n = _est_rows(x).shape[0]
    t0 = (history - 1) * tau + 1
    past = np.array([lagged_ref(x, t, 1, history, tau) for t in range(t0, n)])
    now = np.array([lagged_ref(x, t, 0, 1, 1) for t in range(t0, n)])
    if local:
        return mutual_info_ksg_local_ref(past, now, k=k, base=base)
    return mutual_info_ksg_ref(past, now, k=k, base=base)


def transfer_entropy_test_ref(source, target, k=4, n_permutations=999, random_state=None, base=None,
                              **embedding):
    x, y, z = transfer_entropy_samples_ref(source, target, **embedding)
    estimate = conditional_mutual_info_ksg_ref(x, y, z, k=k, base=base)
    rng = np.random.default_rng(random_state)
    null = [conditional_mutual_info_ksg_ref(x[rng.permutation(x.shape[0])], y, z, k=k, base=base)
            for _ in range(n_permutations)]
    return estimate, (1 + sum(v >= estimate for v in null)) / (1 + n_permutations)

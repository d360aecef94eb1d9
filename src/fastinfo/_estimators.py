"""Estimators from samples: KSG, Frenzel-Pompe, Kozachenko-Leonenko, Ross, plug-in.

Every estimator uses the max-norm (Chebyshev distance) as Kraskov, Stoegbauer and Grassberger
(2004) do, and returns the raw value of its formula: no noise, no rescaling, no clipping.
Samples are validated here (float64, C-contiguous ``(n, d)``, finite), then one compiled kernel
of ``fastinfo._kernels`` builds the KD-trees, queries every point in parallel and sums the
per-point digamma terms in a fixed order (bitwise identical for any thread count).
"""
import math
import numbers
from typing import NamedTuple

import numpy as np

from . import _kernels
from ._validation import as_float_array, as_samples, asarray, check_k, check_same_length, log_base_divisor

__all__ = [
    "mutual_info_ksg",
    "conditional_mutual_info_ksg",
    "entropy_knn",
    "mutual_info_mixed",
    "mutual_info_discrete",
    "mutual_info_from_joint",
    "mutual_info_matrix",
    "mutual_info_features",
    "mutual_info_test",
    "infonce_bound",
]

_EMPTY_F = np.empty(0, dtype=np.float64)
_EMPTY_I = np.empty(0, dtype=np.intp)


def _digamma(m):
    return _kernels.digamma_integer(int(m))


_RADIX_SORT_MIN = 2048


def _sorted_with_order(columns):
    """Sorted copies of the rows of ``columns`` (m, n) and the orders that sort them (the
    kernels count neighbours in sorted order, galloping from each sample's position). Short
    rows: NumPy's argsort; long ones: the kernels' radix sort (faster; the order of equal values
    differs, which no estimator depends on)."""
    if columns.shape[1] < _RADIX_SORT_MIN:
        order = np.ascontiguousarray(np.argsort(columns, axis=1), dtype=np.intp)
        sorted_columns = np.take_along_axis(columns, order, axis=1)
        return sorted_columns, order
    return _kernels.sort_rows_with_order(np.ascontiguousarray(columns, dtype=np.float64))


def _marginal(samples):
    """(samples, sorted copy, sorting order) for a 1-D marginal (range counts in the sorted copy);
    (samples, empty, empty) for several dimensions (the kernel builds a KD-tree)."""
    if samples.shape[1] != 1:
        return samples, _EMPTY_F, _EMPTY_I
    sorted_values, order = _sorted_with_order(samples.T)
    return samples, sorted_values[0], order[0]


def _marginal_pair(x, y):
    """``(_marginal(x), _marginal(y))``; two 1-D marginals are sorted by one call (in parallel)."""
    if x.shape[1] != 1 or y.shape[1] != 1:
        return _marginal(x), _marginal(y)
    sorted_values, order = _sorted_with_order(np.concatenate([x.T, y.T], axis=0))
    return (x, sorted_values[0], order[0]), (y, sorted_values[1], order[1])


def check_n_permutations(n_permutations):
    """``n_permutations`` as an int; ``ValueError`` naming it unless it is an integer >= 1."""
    if isinstance(n_permutations, (bool, np.bool_)) or not isinstance(n_permutations, (numbers.Integral, np.integer)):
        raise ValueError(f"n_permutations must be an integer >= 1; got {n_permutations!r}")
    n_permutations = int(n_permutations)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    return n_permutations


def check_local(local):
    """``local`` as a bool; ``TypeError`` unless it is one."""
    if not isinstance(local, (bool, np.bool_)):
        raise TypeError(f"local must be True or False; got {local!r}")
    return bool(local)


def _check_algorithm(algorithm):
    if isinstance(algorithm, (bool, np.bool_)) or not isinstance(algorithm, (numbers.Integral, np.integer)) \
            or int(algorithm) not in (1, 2):
        raise ValueError(f"algorithm must be 1 or 2; got {algorithm!r}")
    return int(algorithm)


def _ksg_from_marginals(mx, my, k, algorithm, n, local=False):
    """The KSG estimate from the two marginals; with ``local``, the per-sample (local) values."""
    constant = _digamma(k) + _digamma(n) if algorithm == 1 else _digamma(k) - 1.0 / k + _digamma(n)
    if local:
        _, terms = _kernels.ksg_mean_terms(*mx, *my, k, algorithm, True)
        return constant - terms
    return constant - _kernels.ksg_mean_terms(*mx, *my, k, algorithm)


def mutual_info_ksg(x, y, *, k=3, algorithm=1, local=False, base=None):
    r"""Kraskov-Stoegbauer-Grassberger estimate of the mutual information :math:`I(X;Y)`.

    With :math:`\varepsilon_i` the max-norm distance from sample :math:`i` to its k-th nearest
    neighbour in the joint space (the sample itself excluded):

    * algorithm 1: :math:`\psi(k) + \psi(n) - \langle \psi(n_x+1) + \psi(n_y+1) \rangle`,
      :math:`n_x(i) = \#\{j \ne i : \|x_j - x_i\| < \varepsilon_i\}` (strict);
    * algorithm 2: :math:`\psi(k) - 1/k + \psi(n) - \langle \psi(n_x) + \psi(n_y) \rangle`,
      :math:`n_x(i) = \#\{j \ne i : \|x_j - x_i\| \le \varepsilon_{x,i}\}`, with
      :math:`\varepsilon_{x,i}` the largest x-distance among the k neighbours (neighbours at equal
      joint distance are ranked by sample index, so the k neighbours are well defined on ties).

    Parameters
    ----------
    x, y : array_like, shape (n,) or (n, d)
        Samples as rows; integer samples are converted to float64.
    k : int, default 3
        Number of neighbours, ``1 <= k < n``.
    algorithm : {1, 2}, default 1
    local : bool, default False
        Return the local (pointwise) values instead: one per sample, algorithm 1
        :math:`\psi(k) + \psi(n) - \psi(n_x(i)+1) - \psi(n_y(i)+1)`, algorithm 2
        :math:`\psi(k) - 1/k + \psi(n) - \psi(n_x(i)) - \psi(n_y(i))`; their mean is the estimate.
    base : float, optional
        Logarithm base of the result (``None``: nats).

    Returns
    -------
    float, or ndarray of shape (n,) (float64) when ``local``
        The raw estimate (may be slightly negative for independent variables).

    References
    ----------
    A. Kraskov, H. Stoegbauer, P. Grassberger, "Estimating mutual information",
    Phys. Rev. E 69, 066138 (2004), equations (8) and (9).

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=5000)
    >>> y = 0.6 * x + 0.8 * rng.normal(size=5000)
    >>> round(fi.mutual_info_ksg(x, y), 1)    # exact: -0.5 log(1 - 0.36) = 0.223
    0.2
    """
    algorithm = _check_algorithm(algorithm)
    local = check_local(local)
    divisor = log_base_divisor(base)
    x = as_samples(x, "x")
    y = as_samples(y, "y")
    check_same_length(x=x, y=y)
    n = x.shape[0]
    k = check_k(k, n)
    value = _ksg_from_marginals(*_marginal_pair(x, y), k, algorithm, n, local)
    if local:
        return value / divisor
    return float(value / divisor)


def conditional_mutual_info_ksg(x, y, z, *, k=3, local=False, base=None):
    r"""Frenzel-Pompe estimate of the conditional mutual information :math:`I(X;Y|Z)`.

    :math:`\psi(k) - \langle \psi(n_{xz}+1) + \psi(n_{yz}+1) - \psi(n_z+1) \rangle`, with strict
    counts within :math:`\varepsilon_i`, the max-norm distance to the k-th neighbour in the
    :math:`(x, y, z)` space.

    Parameters
    ----------
    x, y, z : array_like, shape (n,) or (n, d)
    k : int, default 3
    local : bool, default False
        Return the local values instead, one per sample:
        :math:`\psi(k) - \psi(n_{xz}(i)+1) - \psi(n_{yz}(i)+1) + \psi(n_z(i)+1)`; their mean is
        the estimate.
    base : float, optional

    Returns
    -------
    float, or ndarray of shape (n,) (float64) when ``local``

    References
    ----------
    S. Frenzel, B. Pompe, "Partial mutual information for coupling analysis of multivariate
    time series", Phys. Rev. Lett. 99, 204101 (2007).

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=4000)
    >>> x = z + rng.normal(size=4000)
    >>> y = z + rng.normal(size=4000)
    >>> abs(fi.conditional_mutual_info_ksg(x, y, z)) < 0.05    # X and Y independent given Z
    True
    """
    local = check_local(local)
    divisor = log_base_divisor(base)
    x = as_samples(x, "x")
    y = as_samples(y, "y")
    z = as_samples(z, "z")
    check_same_length(x=x, y=y, z=z)
    n = x.shape[0]
    k = check_k(k, n)
    return cmi_from_samples(x, y, z, k, local, divisor)


_EMPTY_PAIR = (np.empty((0, 0), dtype=np.float64), np.empty((0, 0), dtype=np.intp))


def _cmi_marginals(x, y, z):
    """The z marginal (as :func:`_marginal`) and, for each of the (x, z), (y, z), z marginals,
    its two sorted columns and orders when it is 2-D and small enough for the kernels' rank-scan
    counts (else empty), then the same for the (x, y) columns when x and y are 1-D and z is such a
    2-D pair (the 4-D grid search); every column needed is sorted once, by one call."""
    n = x.shape[0]
    use = n <= _kernels.rankscan_max_n()
    want_xz = use and x.shape[1] == 1 and z.shape[1] == 1
    want_yz = use and y.shape[1] == 1 and z.shape[1] == 1
    want_z2 = use and z.shape[1] == 2
    # 1-D x and y with a 2-D z: the kernels' 4-D grid k-NN search needs x and y sorted too
    want_xy = want_z2 and x.shape[1] == 1 and y.shape[1] == 1
    want_x, want_y = want_xz or want_xy, want_yz or want_xy
    columns = ([x[:, 0]] if want_x else []) + ([y[:, 0]] if want_y else []) + list(z.T)
    sorted_values, order = _sorted_with_order(np.ascontiguousarray(columns))
    rows = {}
    at = 0
    for name, wanted in (("x", want_x), ("y", want_y)):
        if wanted:
            rows[name] = at
            at += 1
    zrows = list(range(at, at + z.shape[1]))

    def pair(first, second):
        return (np.ascontiguousarray(sorted_values[[first, second]]), np.ascontiguousarray(order[[first, second]]))

    pairs = [pair(rows["x"], zrows[0]) if want_xz else _EMPTY_PAIR,
             pair(rows["y"], zrows[0]) if want_yz else _EMPTY_PAIR,
             pair(zrows[0], zrows[1]) if want_z2 else _EMPTY_PAIR,
             pair(rows["x"], rows["y"]) if want_xy else _EMPTY_PAIR]
    if z.shape[1] == 1:
        z_marginal = (z, np.ascontiguousarray(sorted_values[zrows[0]]), np.ascontiguousarray(order[zrows[0]]))
    else:
        z_marginal = (z, _EMPTY_F, _EMPTY_I)
    return z_marginal, pairs


def cmi_from_samples(x, y, z, k, local, divisor):
    """Frenzel-Pompe estimate (or local values) of validated (n, d) float64 samples."""
    joint = np.concatenate([x, y, z], axis=1)
    xz = np.concatenate([x, z], axis=1)
    yz = np.concatenate([y, z], axis=1)
    z_marginal, pairs = _cmi_marginals(x, y, z)
    if local:
        _, terms = _kernels.cmi_mean_terms(joint, xz, yz, *z_marginal, k, True, pairs)
        return (_digamma(k) - terms) / divisor
    mean_terms = _kernels.cmi_mean_terms(joint, xz, yz, *z_marginal, k, False, pairs)
    return float((_digamma(k) - mean_terms) / divisor)


def cmi_permutation_null(x, y, z, k, rng, n_permutations, divisor):
    """Frenzel-Pompe estimates on (x rows permuted, y, z) for ``n_permutations`` permutations drawn
    from ``rng`` as ``rng.permutation(n)`` draws them; each bitwise what :func:`cmi_from_samples`
    gives on the permuted samples."""
    yz = np.concatenate([y, z], axis=1)
    z_marginal, pairs = _cmi_marginals(x, y, z)
    mean_terms = _kernels.cmi_permutation_null(x, y, yz, *z_marginal, rng, n_permutations, k, pairs)
    return (_digamma(k) - mean_terms) / divisor


def entropy_knn(x, *, k=3, local=False, base=None):
    r"""Kozachenko-Leonenko estimate of the differential entropy (max-norm).

    :math:`\hat H = \psi(n) - \psi(k) + d \, \langle \log(2 \varepsilon_i) \rangle`, with
    :math:`\varepsilon_i` the max-norm distance from sample :math:`i` to its k-th nearest
    neighbour and :math:`d` the dimension.

    Parameters
    ----------
    x : array_like, shape (n,) or (n, d)
    k : int, default 3
    local : bool, default False
        Return the local values instead, one per sample:
        :math:`\psi(n) - \psi(k) + d \log(2 \varepsilon_i)`; their mean is the estimate.
    base : float, optional

    Returns
    -------
    float, or ndarray of shape (n,) (float64) when ``local``

    Raises
    ------
    ValueError
        If some sample has k or more exact duplicates (a zero distance; the log diverges).

    References
    ----------
    L. F. Kozachenko, N. N. Leonenko, "Sample estimate of the entropy of a random vector",
    Probl. Peredachi Inf. 23 (1987); Kraskov et al. (2004), equation (20).

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> x = np.random.default_rng(0).uniform(size=5000)
    >>> round(fi.entropy_knn(x), 1)     # exact: 0 for the uniform distribution on [0, 1]
    0.0
    """
    local = check_local(local)
    divisor = log_base_divisor(base)
    x = as_samples(x, "x")
    n, d = x.shape
    k = check_k(k, n)
    eps = _kernels.knn_radius(x, k)
    if not (eps > 0.0).all():
        n_zero = int(np.count_nonzero(eps == 0.0))
        raise ValueError(
            f"x has duplicated samples: {n_zero} samples have {k} or more exact duplicates (zero "
            f"distance to their k-th neighbour, k={k}), so log(distance) diverges; add a small "
            "random jitter to the samples (e.g. x + 1e-10 * rng.normal(size=x.shape))"
        )
    if local:
        return (_digamma(n) - _digamma(k) + d * np.log(2.0 * eps)) / divisor
    value = _digamma(n) - _digamma(k) + d * float(np.mean(np.log(2.0 * eps)))
    return float(value / divisor)


def _label_codes(labels, name):
    arr = asarray(labels, name)
    if arr.ndim != 1:
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        else:
            raise ValueError(f"{name} must be 1-D (n,); got shape {arr.shape}")
    try:
        uniques, codes = np.unique(arr, return_inverse=True)
    except TypeError as exc:
        raise TypeError(f"{name} must hold values that np.unique can sort: {exc}") from None
    return codes.reshape(-1).astype(np.intp, copy=False), uniques.shape[0]


def _mixed_from_codes(x, codes, n_labels, k, marginal=None):
    """Ross (2014) estimate in nats from validated samples x (n, d) and label codes. ``marginal``:
    ``_marginal(x)`` when the caller has it already (used when every sample is kept)."""
    label_counts = np.bincount(codes, minlength=n_labels)
    kept = label_counts[codes] > 1
    if not kept.all():
        x = np.ascontiguousarray(x[kept])
        codes = codes[kept]
        marginal = None
    n = x.shape[0]
    if n == 0:
        # every label occurs once: nothing is kept, the estimate is undefined (a mean of nothing)
        return float("nan")
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    group_sizes = np.bincount(sorted_codes, minlength=n_labels)
    offsets = np.zeros(n_labels + 1, dtype=np.intp)
    np.cumsum(group_sizes, out=offsets[1:])
    group_k = np.minimum(k, group_sizes - 1).astype(np.intp)
    x_grouped = np.ascontiguousarray(x[order])
    radius_grouped = _kernels.knn_radius_grouped(x_grouped, offsets, group_k)
    radius = np.empty(n, dtype=np.float64)
    radius[order] = radius_grouped
    m = _kernels.count_within(*(marginal if marginal is not None else _marginal(x)), radius, False)
    k_all = group_k[codes]
    n_label = group_sizes[codes]
    digamma = _kernels.digamma_counts
    return (_digamma(n) + float(np.mean(digamma(k_all.astype(np.int64))))
            - float(np.mean(digamma(n_label.astype(np.int64))))
            - float(np.mean(digamma(m))))


def mutual_info_mixed(x, labels, *, k=3, base=None):
    r"""Ross estimate of :math:`I(X;L)` for continuous ``x`` and discrete ``labels``.

    :math:`\psi(n) + \langle\psi(k_i)\rangle - \langle \psi(N_{L(i)}) \rangle - \langle \psi(m_i) \rangle`,
    where :math:`\varepsilon_i` is the max-norm distance from sample :math:`i` to its
    :math:`k_i`-th nearest sample with the same label, :math:`m_i = \#\{j \ne i : \|x_j - x_i\|
    \le \varepsilon_i\}` over all samples and :math:`N_{L(i)}` the size of sample i's label.
    As in scikit-learn, a label occurring :math:`c \le k` times uses :math:`k_i = c - 1`, and
    samples whose label occurs once are left out (``n`` counts the samples kept). When every
    label occurs once, no sample is kept and the result is NaN.

    Parameters
    ----------
    x : array_like, shape (n,) or (n, d)
        Continuous samples.
    labels : array_like, shape (n,)
        Any values ``np.unique`` accepts.
    k : int, default 3
    base : float, optional

    Returns
    -------
    float

    References
    ----------
    B. C. Ross, "Mutual information between discrete and continuous data sets",
    PLoS ONE 9(2): e87357 (2014).

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 2, size=4000)
    >>> x = labels + 0.1 * rng.normal(size=4000)     # the label is readable from x
    >>> round(fi.mutual_info_mixed(x, labels), 2)    # log 2 = 0.693
    0.69
    """
    divisor = log_base_divisor(base)
    x = as_samples(x, "x")
    codes, n_labels = _label_codes(labels, "labels")
    check_same_length(x=x, labels=codes)
    k = check_k(k, x.shape[0])
    return float(_mixed_from_codes(x, codes, n_labels, k) / divisor)


def _discrete_from_codes(codes_a, n_a, codes_b, n_b):
    n = codes_a.shape[0]
    if n == 0:
        return 0.0
    # Joint counts by bincount of the combined codes when the product is small, else by
    # np.unique of the pairs (only the occupied cells, so the cost never is n_a * n_b).
    if n_a * n_b <= max(4 * n, 1 << 16):
        joint = np.bincount(codes_a * n_b + codes_b, minlength=n_a * n_b)
        nz = np.flatnonzero(joint)
        counts = joint[nz].astype(np.float64)
        ia, ib = np.divmod(nz, n_b)
    else:
        pairs, counts = np.unique(codes_a.astype(np.int64) * n_b + codes_b, return_counts=True)
        counts = counts.astype(np.float64)
        ia, ib = np.divmod(pairs, n_b)
    count_a = np.bincount(codes_a, minlength=n_a).astype(np.float64)
    count_b = np.bincount(codes_b, minlength=n_b).astype(np.float64)
    # I = sum p_ab log(p_ab / (p_a p_b)) = sum (c_ab / n) (log c_ab + log n - log c_a - log c_b)
    terms = counts / n * (np.log(counts) + math.log(n) - np.log(count_a[ia]) - np.log(count_b[ib]))
    return float(np.sum(terms))


def mutual_info_discrete(a, b, *, base=None):
    r"""Plug-in mutual information of two label arrays.

    :math:`I(A;B) = \sum_{a,b} p(a,b) \log \frac{p(a,b)}{p(a)p(b)}` with empirical frequencies;
    equals ``sklearn.metrics.mutual_info_score(a, b)``. Labels may be any values ``np.unique``
    accepts (integers, floats, strings). The cost is O(n log n), with no dense table of the
    product of the label sets.

    Parameters
    ----------
    a, b : array_like, shape (n,)
    base : float, optional

    Returns
    -------
    float

    References
    ----------
    T. M. Cover, J. A. Thomas, "Elements of Information Theory", 2nd ed., eq. (2.28);
    ``sklearn.metrics.mutual_info_score``.

    Examples
    --------
    >>> import fastinfo as fi
    >>> round(fi.mutual_info_discrete([0, 0, 1, 1], ["u", "u", "v", "v"], base=2), 6)
    1.0
    """
    divisor = log_base_divisor(base)
    codes_a, n_a = _label_codes(a, "a")
    codes_b, n_b = _label_codes(b, "b")
    check_same_length(a=codes_a, b=codes_b)
    value = _discrete_from_codes(codes_a, n_a, codes_b, n_b)
    # sklearn.metrics.mutual_info_score clips tiny negative round-off at 0; so do we, so that
    # the two agree (this is rounding, not the estimator bias: the plug-in value is >= 0).
    return float(max(value, 0.0) / divisor)


def mutual_info_from_joint(pxy, *, base=None):
    r"""Mutual information of a 2-D joint table: :math:`KL(p(x,y) \| p(x)p(y))`.

    The table is normalised first, so counts work. Entries equal to 0 contribute 0.

    Parameters
    ----------
    pxy : array_like, shape (n_x, n_y)
        Non-negative joint probabilities or counts.
    base : float, optional

    Returns
    -------
    float
        NaN when the table sums to 0.

    Examples
    --------
    >>> import fastinfo as fi
    >>> fi.mutual_info_from_joint([[0.5, 0.0], [0.0, 0.5]], base=2)
    1.0
    """
    divisor = log_base_divisor(base)
    table = as_float_array(pxy, "pxy")
    if table.ndim != 2:
        raise ValueError(f"pxy must be a 2-D joint table; got shape {table.shape}")
    table = table.astype(np.float64, copy=False)
    if np.isnan(table).any() or np.isinf(table).any():
        raise ValueError("pxy must hold only finite values (found NaN or inf)")
    if (table < 0).any():
        raise ValueError(f"pxy must be non-negative; found the entry {table[table < 0].flat[0]!r}")
    total = table.sum()
    if total == 0:
        return float("nan")
    p = table / total
    px = p.sum(axis=1)
    py = p.sum(axis=0)
    rows, cols = np.nonzero(p)
    pv = p[rows, cols]
    value = float(np.sum(pv * (np.log(pv) - np.log(px[rows]) - np.log(py[cols]))))
    return float(value / divisor)


class PreparedColumns(NamedTuple):
    """What the KSG estimate of a pair of 1-D columns needs from each column alone, for a block of
    columns (one per row, ``(m_block, n)``): the values, their sorted copies and the grid bin of
    every sample (the quantile bin of its rank; ``grid_side`` bins per axis). Built once per column
    by :func:`prepare_columns` and reused by every pair the column takes part in. With the private
    KD-tree switch (``_kernels._set_grid2(False)``) ``orders`` (the sorting orders) replace the bins."""

    values: np.ndarray
    sorted_values: np.ndarray
    bins: object
    orders: object
    grid_side: int


def prepare_columns(columns, k):
    """:class:`PreparedColumns` of the validated C-contiguous float64 ``(m_block, n)`` array."""
    sorted_values, orders = _sorted_with_order(columns)
    if not _kernels._grid2_enabled():
        return PreparedColumns(columns, sorted_values, None, orders, 0)
    grid_side = _kernels.grid2_columns_side(columns.shape[1], k)
    bins = _kernels.grid2_column_bins(orders, grid_side)
    return PreparedColumns(columns, sorted_values, bins, None, grid_side)


def concatenate_prepared(blocks):
    """One :class:`PreparedColumns` of the rows of several (e.g. one per column)."""
    if len(blocks) == 1:
        return blocks[0]

    def rows(field):
        parts = [getattr(b, field) for b in blocks]
        return None if any(p is None for p in parts) else np.concatenate(parts, axis=0)

    return PreparedColumns(rows("values"), rows("sorted_values"), rows("bins"), rows("orders"),
                           blocks[0].grid_side)


def _rows(blocks, field):
    return [row for block in blocks for row in getattr(block, field)]


def column_pair_mean_terms(blocks_a, blocks_b, pairs, k):
    """Algorithm-1 KSG mean terms of column pairs: the columns of a side are the rows, in order,
    of its sequence of :class:`PreparedColumns` (read in place, not copied); pair p is (column
    pairs[p, 0] of side a, column pairs[p, 1] of side b). Bitwise ``_kernels.ksg_mean_terms`` of
    each pair (one kernel call, parallel over the pairs). ``blocks_b`` may be ``blocks_a``."""
    pairs = np.ascontiguousarray(pairs, dtype=np.intp).reshape(-1, 2)
    same = blocks_b is blocks_a
    grid = _kernels._grid2_enabled() and all(b.bins is not None for b in list(blocks_a) + list(blocks_b))
    grid_sides = {b.grid_side for b in list(blocks_a) + list(blocks_b)}
    if grid and len(grid_sides) == 1:
        n = blocks_a[0].values.shape[1]
        side_a = (_rows(blocks_a, "values"), _rows(blocks_a, "sorted_values"), _rows(blocks_a, "bins"))
        side_b = side_a if same else (_rows(blocks_b, "values"), _rows(blocks_b, "sorted_values"),
                                      _rows(blocks_b, "bins"))
        return _kernels.ksg_grid_pairs(*side_a, *side_b, pairs, n, grid_sides.pop(), k)
    # the KD-tree path (private switch): one set of columns with their orders
    a = concatenate_prepared(list(blocks_a) if same else list(blocks_a) + list(blocks_b))
    if not same:
        pairs = pairs + np.array([0, sum(b.values.shape[0] for b in blocks_a)], dtype=np.intp)
    orders = a.orders if a.orders is not None else _sorted_with_order(a.values)[1]
    return _kernels.ksg_column_pairs(a.values, a.sorted_values, orders, pairs, k)


def matrix_values(mean_terms, n, k, divisor):
    """The estimates ``(psi(k) + psi(n) - mean term) / divisor`` of :func:`mutual_info_matrix`, as
    Python floats: the expression of mutual_info_ksg, so each entry matches it bitwise."""
    constant = _digamma(k) + _digamma(n)
    return [float((constant - t) / divisor) for t in np.asarray(mean_terms).tolist()]


def mutual_info_matrix(X, *, k=3, base=None):
    r"""Matrix of pairwise KSG (algorithm 1) mutual information between the columns of ``X``.

    ``M[i, j] = mutual_info_ksg(X[:, i], X[:, j], k=k)`` exactly (the same kernel on the same
    data), for ``i < j``, mirrored so the matrix is exactly symmetric; the diagonal is NaN.
    Each column is validated, sorted and binned once (the work a pair needs from one column
    alone); the pairs run in parallel.

    Parameters
    ----------
    X : array_like, shape (n, m)
    k : int, default 3
    base : float, optional

    Returns
    -------
    ndarray of float64, shape (m, m)

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> X = np.random.default_rng(0).normal(size=(500, 3))
    >>> M = fi.mutual_info_matrix(X)
    >>> M.shape, bool(np.isnan(M[0, 0])), bool(M[0, 1] == M[1, 0])
    ((3, 3), True, True)
    """
    divisor = log_base_divisor(base)
    X = as_samples(X, "X")
    n, m = X.shape
    k = check_k(k, n)
    prepared = prepare_columns(np.ascontiguousarray(X.T), k)
    rows, cols = np.triu_indices(m, 1)
    pairs = np.stack([rows, cols], axis=1)
    blocks = [prepared]
    values = matrix_values(column_pair_mean_terms(blocks, blocks, pairs, k), n, k, divisor)
    out = np.full((m, m), np.nan, dtype=np.float64)
    out[rows, cols] = values
    out[cols, rows] = values
    return out


def _discrete_mask(flag, m, name):
    if isinstance(flag, (bool, np.bool_)):
        return np.full(m, bool(flag))
    mask = np.asarray(flag)
    if mask.dtype != np.bool_ or mask.shape != (m,):
        raise ValueError(f"{name} must be a bool or a boolean mask of shape ({m},); got {flag!r}")
    return mask


def check_features_args(n, m, y_shape, discrete_features, discrete_target, k):
    """Checks of :func:`mutual_info_features` shared with its Dask front-end.

    Returns ``(mask, discrete_target, k)``: the boolean mask of discrete columns, the target flag as a
    bool and ``k`` as an int. ``y`` may be ``(n,)`` or ``(n, 1)``.
    """
    mask = _discrete_mask(discrete_features, m, "discrete_features")
    if not isinstance(discrete_target, (bool, np.bool_)):
        raise ValueError(f"discrete_target must be a bool; got {discrete_target!r}")
    discrete_target = bool(discrete_target)
    if len(y_shape) == 2 and y_shape[1] == 1:
        y_shape = y_shape[:1]
    if len(y_shape) != 1:
        raise ValueError(f"y must be 1-D (n,); got shape {tuple(y_shape)}")
    if y_shape[0] != n:
        raise ValueError(f"samples must have the same length: X has {n}, y has {y_shape[0]}")
    if m > 0 and not (mask.all() and discrete_target):
        k = check_k(k, n)
    elif isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        # plug-in MI does not use k, but a k that no estimator accepts is still an error
        raise ValueError(f"k must be an integer >= 1; got k={k!r}")
    return mask, discrete_target, k


def ksg_rows_against_last(columns, k):
    """KSG (algorithm 1, nats) of each row of ``columns[:-1]`` with the last row ``columns[-1]``:
    ``columns`` is a validated C-contiguous float64 ``(m + 1, n)`` array (finite, ``1 <= k < n``).
    The last row is sorted once, every other row inside the thread that handles it (one kernel
    call, parallel over the rows): bitwise the values ``mutual_info_ksg(columns[j], columns[-1],
    k=k)`` returns."""
    n = columns.shape[1]
    target = columns[-1]
    target_sorted, target_order = _sorted_with_order(target[None, :])
    mean_terms = _kernels.ksg_rows_against_target(columns[:-1], target, target_sorted[0], target_order[0], k)
    return (_digamma(k) + _digamma(n)) - mean_terms


def mutual_info_features(X, y, *, k=3, discrete_features=False, discrete_target=False, base=None):
    r"""Mutual information of each column of ``X`` with the target ``y``.

    Per column, by the discreteness flags: both continuous, KSG algorithm 1
    (``mutual_info_ksg(X[:, j], y)``); continuous column and discrete target, Ross
    (``mutual_info_mixed(X[:, j], y)``); discrete column and continuous target,
    ``mutual_info_mixed(y, X[:, j])``; both discrete, ``mutual_info_discrete``.
    The target's structures (sorted copy, label codes) are built once.

    Parameters
    ----------
    X : array_like, shape (n, m)
    y : array_like, shape (n,)
    k : int, default 3
    discrete_features : bool or boolean mask of shape (m,), default False
    discrete_target : bool, default False
    base : float, optional

    Returns
    -------
    ndarray of float64, shape (m,)

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 2))
    >>> y = X[:, 0] + 0.5 * rng.normal(size=2000)
    >>> mi = fi.mutual_info_features(X, y)
    >>> bool(mi[0] > 0.5 > abs(mi[1]))
    True
    """
    divisor = log_base_divisor(base)
    X_arr = asarray(X, "X")
    if X_arr.ndim == 1:
        X_arr = X_arr[:, None]
    if X_arr.ndim != 2:
        raise ValueError(f"X must be 2-D (n, m); got shape {X_arr.shape}")
    n, m = X_arr.shape
    y_arr = asarray(y, "y")
    mask, discrete_target, k = check_features_args(n, m, y_arr.shape, discrete_features, discrete_target, k)
    if m == 0:
        return np.empty(m, dtype=np.float64)
    return features_block(X_arr, mask, prepare_target(y_arr, discrete_target), k, divisor)


class PreparedTarget(NamedTuple):
    """The target's structures of :func:`mutual_info_features`, built once for every column:
    label codes (``discrete``), or the validated samples ``(n, 1)`` with their sorted copy and
    sorting order."""

    discrete: bool
    codes: object
    n_labels: int
    samples: object
    sorted_values: object
    order: object


def prepare_target(y, discrete_target):
    """:class:`PreparedTarget` of ``y`` ((n,) or (n, 1), checked by check_features_args)."""
    y = np.asarray(y)
    if y.ndim == 2:
        y = y[:, 0]
    if discrete_target:
        codes, n_labels = _label_codes(y, "y")
        return PreparedTarget(True, codes, n_labels, None, None, None)
    samples = as_samples(y, "y")
    sorted_values, order = _sorted_with_order(samples.T)
    return PreparedTarget(False, None, 0, samples, sorted_values[0], order[0])


def features_block(X_block, mask, target, k, divisor):
    """:func:`mutual_info_features` of the columns of ``X_block`` ((n, c) array_like, not yet
    validated) against a :class:`PreparedTarget`; ``mask`` flags the discrete columns. The values of
    a column do not depend on the other columns of the block, so any split into blocks gives the
    same values."""
    X_block = np.asarray(X_block)
    out = np.empty(X_block.shape[1], dtype=np.float64)
    continuous_cols = np.flatnonzero(~mask)
    if continuous_cols.size:
        X_cont = as_samples(X_block[:, continuous_cols], "X")
        if target.discrete:
            for pos, j in enumerate(continuous_cols):
                column = np.ascontiguousarray(X_cont[:, [pos]])
                out[j] = _mixed_from_codes(column, target.codes, target.n_labels, k) / divisor
        else:
            rows = np.ascontiguousarray(X_cont.T)
            del X_cont
            n = rows.shape[1]
            mean_terms = _kernels.ksg_rows_against_target(rows, target.samples[:, 0], target.sorted_values,
                                                          target.order, k)
            values = (_digamma(k) + _digamma(n)) - mean_terms
            for j, value in zip(continuous_cols.tolist(), values.tolist()):
                out[j] = float(value / divisor)
    if not target.discrete and np.any(mask):
        y_marginal = (target.samples, target.sorted_values, target.order)
    for j in np.flatnonzero(mask):
        codes, n_labels = _label_codes(X_block[:, j], "X")
        if target.discrete:
            value = max(_discrete_from_codes(codes, n_labels, target.codes, target.n_labels), 0.0)
        else:
            value = _mixed_from_codes(target.samples, codes, n_labels, k, y_marginal)
        out[j] = value / divisor
    return out


def mutual_info_test(x, y, *, k=3, n_permutations=999, random_state=None, base=None):
    r"""Permutation test of independence based on the KSG estimate (algorithm 1).

    The estimate is ``mutual_info_ksg(x, y, k=k)``. The null distribution is
    ``mutual_info_ksg(x, y[perm], k=k)`` for ``n_permutations`` permutations drawn as
    ``rng = numpy.random.default_rng(random_state)`` then ``perm = rng.permutation(n)`` once per
    permutation, in order. The p-value is
    :math:`(1 + \#\{\text{null} \ge \text{estimate}\}) / (1 + \text{n\_permutations})`.
    The marginal structures of ``x`` and ``y`` are built once (a permutation of ``y``'s rows does
    not change its point set); only the joint search structure is rebuilt per permutation. The
    permutations run in parallel, each drawn (in order, under the generator's lock) just before
    it is used, so memory stays at a few arrays of length ``n`` per thread.

    Parameters
    ----------
    x, y : array_like, shape (n,) or (n, d)
    k : int, default 3
    n_permutations : int, default 999
    random_state : None, int, or numpy Generator / SeedSequence / BitGenerator
        Passed to ``numpy.random.default_rng``.
    base : float, optional

    Returns
    -------
    estimate, p_value : float, float

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=300)
    >>> y = x + rng.normal(size=300)
    >>> est, p = fi.mutual_info_test(x, y, n_permutations=99, random_state=0)
    >>> p
    0.01
    """
    divisor = log_base_divisor(base)
    n_permutations = check_n_permutations(n_permutations)
    x = as_samples(x, "x")
    y = as_samples(y, "y")
    check_same_length(x=x, y=y)
    n = x.shape[0]
    k = check_k(k, n)
    mx, my = _marginal_pair(x, y)
    estimate = float(_ksg_from_marginals(mx, my, k, 1, n) / divisor)
    rng = np.random.default_rng(random_state)
    mean_terms = _kernels.ksg_permutation_null(*mx, *my, rng, n_permutations, k).tolist()
    constant = _digamma(k) + _digamma(n)
    null = np.array([float((constant - t) / divisor) for t in mean_terms])
    p_value = (1.0 + float(np.count_nonzero(null >= estimate))) / (1.0 + n_permutations)
    return estimate, float(p_value)


def infonce_bound(scores):
    r"""InfoNCE lower bound on the mutual information from a critic score matrix.

    :math:`\log N - \frac1N \sum_i \mathrm{CE}(\mathrm{softmax}(s_{i,:}), i)`, i.e.
    ``log N - softmax_cross_entropy(scores, arange(N))``, where ``scores[i, j]`` is the critic's
    score of the pair (x_i, y_j) and the diagonal holds the positive pairs. In nats; at most
    ``log N``.

    Parameters
    ----------
    scores : array_like, shape (N, N)

    Returns
    -------
    float

    References
    ----------
    A. van den Oord, Y. Li, O. Vinyals, "Representation learning with contrastive predictive
    coding", arXiv:1807.03748 (2018); B. Poole et al., "On variational bounds of mutual
    information", ICML 2019.

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> round(fi.infonce_bound(np.eye(4) * 100.0), 6)    # a perfect critic reaches log 4
    1.386294
    """
    from ._softmax import softmax_cross_entropy

    s = as_float_array(scores, "scores")
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise ValueError(f"scores must be a square (N, N) matrix with N >= 1; got shape {s.shape}")
    n = s.shape[0]
    loss = softmax_cross_entropy(s, np.arange(n), axis=-1, reduction="mean")
    return float(math.log(n) - float(loss))

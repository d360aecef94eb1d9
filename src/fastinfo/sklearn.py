"""A drop-in for scikit-learn's mutual information functions.

``fastinfo.sklearn.mutual_info_regression`` and ``fastinfo.sklearn.mutual_info_classif`` take
scikit-learn's signatures and return scikit-learn's numbers (same scaling, same noise draws from
the same random state, same estimator per pair, same clipping at 0), computed by fastinfo's
compiled estimators. scikit-learn is not imported, so
``SelectKBest(fastinfo.sklearn.mutual_info_regression, k=10)`` works with or without it.

What scikit-learn does (``sklearn.feature_selection._mutual_info._estimate_mi``) and we reproduce:

1. continuous columns of ``X`` are cast to float64 and divided by their standard deviation
   (no centring; a near-zero deviation is replaced by 1), then get noise
   ``1e-10 * max(1, mean|x|) * standard_normal`` drawn from ``check_random_state(random_state)``
   as one ``(n_samples, n_continuous)`` block; for regression ``y`` is then scaled and gets
   ``1e-10 * max(1, mean|y|) * standard_normal(n_samples)`` from the same generator;
2. each column is paired with ``y``: KSG algorithm 1 (continuous/continuous), Ross (one side
   discrete; samples whose label occurs once are dropped), contingency MI (both discrete);
3. negative estimates become 0.

One known difference: for a label group so small that scikit-learn's ``NearestNeighbors`` picks
brute force (``min(n_neighbors, size - 1) >= size // 2``, e.g. groups of 2 to 7 samples at the
default ``n_neighbors=3``), scikit-learn computes the distances as ``sqrt(x^2 - 2xy + y^2)``, whose
rounding can change a neighbour count; fastinfo always uses exact differences ``|x - y|``, so its
Ross estimates for such tiny groups can differ from scikit-learn's. Groups of ordinary size match
to 1e-10 (the tests check it).
"""
import numbers

import numpy as np

from ._estimators import (
    check_features_args,
    ksg_rows_against_last,
    mutual_info_discrete,
    mutual_info_features,
    mutual_info_mixed,
)

__all__ = ["mutual_info_regression", "mutual_info_classif"]


class InvalidParameterError(ValueError, TypeError):
    """A parameter has a wrong type or value (both a ``ValueError`` and a ``TypeError``,
    like scikit-learn's exception of the same name)."""


def mutual_info_regression(
    X, y, *, discrete_features="auto", n_neighbors=3, copy=True, random_state=None, n_jobs=None
):
    """Estimate mutual information between each feature and a continuous target.

    Same signature, semantics and values as :func:`sklearn.feature_selection.mutual_info_regression`
    (max abs difference 1e-10 for dense ``X`` and the same ``random_state``), computed by fastinfo's
    compiled KSG (Kraskov et al. 2004, algorithm 1) and Ross (2014) estimators.

    Parameters
    ----------
    X : array_like or sparse matrix, shape (n_samples, n_features)
        Feature matrix.
    y : array_like, shape (n_samples,)
        Continuous target.
    discrete_features : {"auto", bool, array_like}, default="auto"
        Which features are discrete: all (True), none (False), a boolean mask of shape
        ``(n_features,)`` or an array of indices. "auto" means False for dense and True for
        sparse ``X``.
    n_neighbors : int, default=3
        ``k`` of the kNN estimators.
    copy : bool, default=True
        If False and ``X`` is a float64 ndarray, ``X`` is scaled and noised in place, as
        scikit-learn does.
    random_state : None, int or numpy.random.RandomState, default=None
        Source of the 1e-10 noise, as :func:`sklearn.utils.check_random_state` interprets it
        (None uses NumPy's global RandomState).
    n_jobs : int or None, default=None
        Accepted for compatibility; the work runs on fastinfo's OpenMP threads
        (``OMP_NUM_THREADS`` / ``threadpoolctl``).

    Returns
    -------
    mi : ndarray of float64, shape (n_features,)
        Estimated mutual information in nats, clipped at 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fastinfo.sklearn import mutual_info_regression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((1000, 2))
    >>> y = X[:, 0] + 0.5 * rng.standard_normal(1000)
    >>> mi = mutual_info_regression(X, y, random_state=0)
    >>> bool(mi[0] > 0.5 and mi[1] < 0.05)
    True
    """
    _check_params("mutual_info_regression", discrete_features, n_neighbors, copy, n_jobs)
    return _estimate_mi(
        X,
        y,
        discrete_features=discrete_features,
        discrete_target=False,
        n_neighbors=n_neighbors,
        copy=copy,
        random_state=random_state,
    )


def mutual_info_classif(
    X, y, *, discrete_features="auto", n_neighbors=3, copy=True, random_state=None, n_jobs=None
):
    """Estimate mutual information between each feature and a discrete target.

    Same signature, semantics and values as :func:`sklearn.feature_selection.mutual_info_classif`
    (max abs difference 1e-10 for dense ``X`` and the same ``random_state``): Ross (2014) for
    continuous features, contingency MI for discrete ones, clipped at 0.

    Parameters
    ----------
    X : array_like or sparse matrix, shape (n_samples, n_features)
        Feature matrix.
    y : array_like, shape (n_samples,)
        Class labels (any values ``np.unique`` accepts; not continuous floats).
    discrete_features, n_neighbors, copy, random_state, n_jobs
        As in :func:`mutual_info_regression`.

    Returns
    -------
    mi : ndarray of float64, shape (n_features,)
        Estimated mutual information in nats, clipped at 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fastinfo.sklearn import mutual_info_classif
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 1000)
    >>> X = np.column_stack([y + 0.3 * rng.standard_normal(1000), rng.standard_normal(1000)])
    >>> mi = mutual_info_classif(X, y, random_state=0)
    >>> bool(mi[0] > 0.4 and mi[1] < 0.05)
    True
    """
    _check_params("mutual_info_classif", discrete_features, n_neighbors, copy, n_jobs)
    _check_classification_targets(y)
    return _estimate_mi(
        X,
        y,
        discrete_features=discrete_features,
        discrete_target=True,
        n_neighbors=n_neighbors,
        copy=copy,
        random_state=random_state,
    )


# -----------------------------------------------------------------------------
# Parameter and input checks (scikit-learn's messages)
# -----------------------------------------------------------------------------


def _check_params(func_name, discrete_features, n_neighbors, copy, n_jobs):
    if (
        isinstance(n_neighbors, (bool, np.bool_))
        or not isinstance(n_neighbors, numbers.Integral)
        or n_neighbors < 1
    ):
        raise InvalidParameterError(
            f"The 'n_neighbors' parameter of {func_name} must be an int in the range [1, inf). "
            f"Got {n_neighbors!r} instead."
        )
    if not isinstance(copy, (bool, np.bool_)):
        raise InvalidParameterError(
            f"The 'copy' parameter of {func_name} must be an instance of 'bool' or an instance of "
            f"'numpy.bool'. Got {copy!r} instead."
        )
    if n_jobs is not None and (isinstance(n_jobs, (bool, np.bool_)) or not isinstance(n_jobs, numbers.Integral)):
        raise InvalidParameterError(
            f"The 'n_jobs' parameter of {func_name} must be an instance of 'int' or None. "
            f"Got {n_jobs!r} instead."
        )
    if isinstance(discrete_features, str) and discrete_features != "auto":
        raise InvalidParameterError(
            f"The 'discrete_features' parameter of {func_name} must be a str among {{'auto'}}, "
            f"an instance of 'bool' or an array-like. Got {discrete_features!r} instead."
        )


def _check_random_state(seed):
    """scikit-learn's ``check_random_state``: None -> NumPy's global RandomState."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a numpy.random.RandomState instance")


def _is_sparse(X):
    try:
        from scipy import sparse
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return sparse.issparse(X)


def _check_finite(a, name):
    if a.dtype.kind == "f":
        if np.isnan(a).any():
            raise ValueError(f"Input {name} contains NaN.")
        if np.isinf(a).any():
            raise ValueError(f"Input {name} contains infinity or a value too large for {a.dtype!r}.")


def _as_numeric(a, name):
    """scikit-learn's ``dtype="numeric"``: object arrays become float64, strings are refused."""
    if a.dtype.kind == "c":
        raise ValueError(f"Complex data not supported\n{a!r}\n")
    if a.dtype.kind in "OUS":
        try:
            return a.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must be numeric: could not convert its values to float64 (dtype {a.dtype})"
            ) from None
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} has an unsupported dtype {a.dtype}")
    return a


def _check_X_y(X, y, y_numeric):
    """Validate like ``check_X_y(X, y, accept_sparse="csc", y_numeric=...)``."""
    if _is_sparse(X):
        X = X.tocsc()
        if X.ndim != 2:
            raise ValueError(f"Expected 2D array, got a sparse matrix of shape {X.shape} instead.")
        _check_finite(X.data, "X")
        X.data = _as_numeric(np.asarray(X.data), "X")
    else:
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(
                f"Expected 2D array, got {X.ndim}D array instead. Reshape your data either using "
                "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) if it "
                "contains a single sample."
            )
        X = _as_numeric(X, "X")
        _check_finite(X, "X")
    n_samples, n_features = X.shape
    if n_samples < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
    if n_features < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")

    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} instead.")
    if y_numeric and y.dtype.kind == "O":
        y = y.astype(np.float64)
    if y.dtype.kind == "f":
        _check_finite(y, "y")
    if y.shape[0] != n_samples:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: [{n_samples}, {y.shape[0]}]"
        )
    return X, y


def _check_classification_targets(y):
    """Refuse continuous targets, as ``check_classification_targets`` does."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.dtype.kind == "f":
        finite = y[np.isfinite(y)]
        if finite.size and np.any(finite != np.round(finite)):
            raise ValueError(
                "Unknown label type: continuous. Maybe you are trying to fit a classifier, which "
                "expects discrete classes on a regression target with continuous values."
            )


def _discrete_mask(discrete_features, n_features, sparse):
    if isinstance(discrete_features, (str, bool, np.bool_)):
        value = sparse if isinstance(discrete_features, str) else bool(discrete_features)
        return np.full(n_features, value, dtype=bool)
    features = np.asarray(discrete_features)
    if features.dtype == bool:
        if features.shape != (n_features,):
            raise ValueError(
                f"discrete_features as a boolean mask must have shape ({n_features},); got {features.shape}"
            )
        return features.copy()
    if features.ndim > 1 or (features.size and features.dtype.kind not in "iu"):
        raise ValueError(
            "discrete_features must be 'auto', a bool, a boolean mask or an array of integer "
            f"indices; got {discrete_features!r}"
        )
    features = features.astype(np.intp).ravel()
    bad = features[(features >= n_features) | (features < -n_features)]
    if bad.size:
        raise ValueError(
            f"discrete_features index {int(bad[0])} is out of bounds for X with {n_features} features"
        )
    mask = np.zeros(n_features, dtype=bool)
    mask[features] = True
    return mask


def _scale_without_centring(a):
    """``sklearn.preprocessing.scale(a, with_mean=False)`` in place, same arithmetic."""
    std = np.nanstd(a, axis=0)
    if np.isscalar(std):
        if std == 0.0:
            std = 1.0
    else:
        std[std < 10 * np.finfo(std.dtype).eps] = 1.0
    a /= std
    return a


def _label_codes(a):
    return np.unique(a, return_inverse=True)[1].reshape(-1).astype(np.float64)


# -----------------------------------------------------------------------------
# The estimate
# -----------------------------------------------------------------------------


def _estimate_mi(X, y, *, discrete_features, discrete_target, n_neighbors, copy, random_state):
    X, y = _check_X_y(X, y, y_numeric=not discrete_target)
    sparse = _is_sparse(X)
    n_samples, n_features = X.shape
    discrete_mask = _discrete_mask(discrete_features, n_features, sparse)
    continuous_mask = ~discrete_mask
    if sparse and continuous_mask.any():
        raise ValueError("Sparse matrix `X` can't have continuous features.")

    rng = _check_random_state(random_state)
    if not sparse and not discrete_target and copy and continuous_mask.any():
        return _estimate_regression(X, y, discrete_mask, n_neighbors, rng)
    if continuous_mask.any():
        X = X.astype(np.float64, copy=copy)
        X[:, continuous_mask] = _scale_without_centring(X[:, continuous_mask])
        means = np.maximum(1, np.mean(np.abs(X[:, continuous_mask]), axis=0))
        X[:, continuous_mask] += 1e-10 * means * rng.standard_normal(size=(n_samples, int(continuous_mask.sum())))
    if not discrete_target:
        y = _scale_without_centring(np.array(y, dtype=np.float64))
        y += 1e-10 * np.maximum(1, np.mean(np.abs(y))) * rng.standard_normal(size=n_samples)
    else:
        y = _label_codes(y)

    mi = np.empty(n_features, dtype=np.float64)
    if sparse:
        for j in range(n_features):
            mi[j] = mutual_info_discrete(X[:, j].toarray().ravel(), y)
        return np.maximum(mi, 0.0)

    if discrete_target:
        _estimate_with_discrete_target(X, y, discrete_mask, n_neighbors, mi)
    else:
        _estimate_with_continuous_target(X, y, discrete_mask, n_neighbors, mi)
    return np.maximum(mi, 0.0)


def _estimate_regression(X, y, discrete_mask, n_neighbors, rng):
    """The continuous-target path for dense X with ``copy=True``: the same arithmetic as the
    general path (scaling and noise element by element, the reductions on arrays of the same
    layout, so the same bits), but the continuous columns go straight into the kernel's row
    layout instead of being written back into a copy of X and gathered again."""
    n_samples = X.shape[0]
    continuous_mask = ~discrete_mask
    n_continuous = int(continuous_mask.sum())
    k = check_features_args(n_samples, n_continuous, y.shape, False, False, n_neighbors)[2]
    X_continuous = np.asarray(X[:, continuous_mask], dtype=np.float64)   # a fresh array (fancy index)
    _scale_without_centring(X_continuous)
    means = np.maximum(1, np.mean(np.abs(X_continuous), axis=0))
    noisy = rng.standard_normal(size=(n_samples, n_continuous))
    noisy *= 1e-10 * means          # (1e-10 * means) * noise, element by element as scikit-learn
    noisy += X_continuous
    del X_continuous
    rows = np.empty((n_continuous + 1, n_samples), dtype=np.float64)
    rows[:n_continuous] = noisy.T
    del noisy
    target = _scale_without_centring(np.array(y, dtype=np.float64))
    target += 1e-10 * np.maximum(1, np.mean(np.abs(target))) * rng.standard_normal(size=n_samples)
    rows[n_continuous] = target
    mi = np.empty(X.shape[1], dtype=np.float64)
    mi[continuous_mask] = ksg_rows_against_last(rows, k)
    for j in np.flatnonzero(discrete_mask):
        mi[j] = _ross_like_sklearn(target, _label_codes(np.asarray(X[:, j], dtype=np.float64)), n_neighbors)
    return np.maximum(mi, 0.0)


def _estimate_with_continuous_target(X, y, discrete_mask, n_neighbors, mi):
    continuous = np.flatnonzero(~discrete_mask)
    if continuous.size:
        mi[continuous] = mutual_info_features(X[:, continuous], y, k=n_neighbors)
    for j in np.flatnonzero(discrete_mask):
        # Ross with the target as the continuous side and the column as labels.
        mi[j] = _ross_like_sklearn(y, _label_codes(X[:, j]), n_neighbors)


def _estimate_with_discrete_target(X, labels, discrete_mask, n_neighbors, mi):
    for j in np.flatnonzero(discrete_mask):
        mi[j] = mutual_info_discrete(X[:, j], labels)
    continuous = np.flatnonzero(~discrete_mask)
    if not continuous.size:
        return
    keep, k = _ross_samples(labels, n_neighbors)
    mi[continuous] = mutual_info_features(X[keep][:, continuous], labels[keep], k=k, discrete_target=True)


def _ross_samples(labels, n_neighbors):
    """The samples scikit-learn's Ross estimator keeps (labels occurring more than once) and a ``k``
    that gives every label scikit-learn's ``min(n_neighbors, count - 1)`` neighbours."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    keep = counts[inverse.reshape(-1)] > 1
    if not keep.any():
        # scikit-learn fits its neighbour search on zero samples and fails the same way
        raise ValueError(
            "Found array with 0 sample(s) (shape=(0, 1)) while a minimum of 1 is required: every label "
            "occurs once, so the Ross estimator keeps no sample"
        )
    # A label with c <= k samples uses c - 1 neighbours in both; capping k at the largest c - 1
    # changes no label's neighbour count and keeps k < n for fastinfo's check.
    return keep, min(n_neighbors, int(counts.max()) - 1)


def _ross_like_sklearn(c, labels, n_neighbors):
    """Ross (2014) as scikit-learn computes it: samples whose label occurs once are left out."""
    keep, k = _ross_samples(labels, n_neighbors)
    return mutual_info_mixed(c[keep], labels[keep], k=k)

"""A drop-in for scikit-learn's mutual information functions.

``fastinfo.sklearn.mutual_info_regression`` and ``fastinfo.sklearn.mutual_info_classif`` take
scikit-learn's signatures and return scikit-learn's numbers, computed by fastinfo's compiled
estimators. scikit-learn is not imported, so ``SelectKBest(fastinfo.sklearn.mutual_info_regression,
k=10)`` works with or without it.

What scikit-learn does (``sklearn.feature_selection._mutual_info``, the same in releases 1.5 to
1.9) and this module reproduces:

1. the parameters are checked as scikit-learn's ``validate_params`` checks them, and ``X``, ``y``
   and ``discrete_features`` as ``check_X_y`` / ``check_array`` do: the same exception types and
   messages (an ``IndexError`` for a boolean mask of the wrong length or an index out of range,
   as NumPy raises it for scikit-learn);
2. continuous columns of ``X`` are cast to float64 and divided by their standard deviation
   (no centring; a near-zero deviation is replaced by 1), then get noise
   ``1e-10 * max(1, mean|x|) * standard_normal`` drawn from ``check_random_state(random_state)``
   as one ``(n_samples, n_continuous)`` block; for regression ``y`` is then scaled in its own
   floating dtype (float32 stays float32, where the noise is below its resolution) and gets
   ``1e-10 * max(1, mean|y|) * standard_normal(n_samples)`` from the same generator;
3. each column is paired with ``y``: KSG algorithm 1 (continuous/continuous, max-norm), Ross
   (one side discrete; samples whose label occurs once are dropped), contingency MI (both discrete);
4. ``max(0, mi)`` per column (so an estimate that is negative or NaN becomes the integer 0, and an
   array whose every column was clipped that way has an integer dtype, as scikit-learn's does).

How scikit-learn's neighbour counts are decided, and how the same counts come out here:

- KSG: the radius is ``nextafter(eps_i, 0)``, ``eps_i`` the k-th max-norm distance in the joint
  space, and the marginal counts are ``#{j : |x_j - x_i| <= radius} - 1``; with max-norm trees
  every comparison is exact, so this is fastinfo's strict count ``#{j != i : |x_j - x_i| < eps_i}``,
  except where ``eps_i = 0`` (a point duplicated in the joint space): scikit-learn then counts the
  exact ties ``x_j = x_i``, fastinfo's estimator none. Columns with such duplicates are counted
  the scikit-learn way.
- Ross: ``NearestNeighbors()`` (Euclidean) per label gives ``eps_i``; the radius is
  ``nextafter(eps_i, 0)`` and ``m_i`` counts every sample within it, the sample itself included:
  ``m_i = 1 + #{j != i : |c_j - c_i| < eps_i}``. fastinfo's own ``mutual_info_mixed`` counts
  ``#{j != i : |c_j - c_i| <= eps_i}``; the two differ whenever another sample lies exactly at
  ``eps_i`` (ties, e.g. digits' pixel columns after the 1e-10 noise). A label group of ``c``
  samples with ``min(n_neighbors, c - 1) >= c // 2`` is searched by brute force, whose Euclidean
  distances come from ``||x||^2 - 2 x.y + ||y||^2`` (clipped at 0, square-rooted); those
  distances are reproduced term for term. Elsewhere the KD-tree distances are
  ``sqrt(fl(d^2)) = |d|`` and scikit-learn's squared leaf test and pow()-based node bounds order
  distances exactly, so fastinfo's sorted range counts give scikit-learn's counts; where squares
  of the data could overflow or underflow (values beyond 2^510, gaps or radii below 2^-510),
  scikit-learn's tree is replayed decision for decision (``csrc/sklearn_kdtree.h``).

What is not reproduced: when scikit-learn's OpenBLAS is in the configuration it considers unstable
(``sklearn.utils.fixes._in_unstable_openblas_configuration``), its brute-force search uses exact
differences instead; fastinfo always uses the decomposition above.
"""
import math
import numbers
import warnings
from collections.abc import Sequence

import numpy as np

from . import _kernels
from ._estimators import _digamma, _sorted_with_order, mutual_info_discrete

__all__ = ["mutual_info_regression", "mutual_info_classif"]


class InvalidParameterError(ValueError, TypeError):
    """A parameter has a wrong type or value (both a ``ValueError`` and a ``TypeError``,
    like scikit-learn's exception of the same name)."""


class DataConversionWarning(UserWarning):
    """A column-vector ``y`` was passed where a 1-D array was expected (scikit-learn's warning)."""


def mutual_info_regression(
    X, y, *, discrete_features="auto", n_neighbors=3, copy=True, random_state=None, n_jobs=None
):
    """Estimate mutual information between each feature and a continuous target.

    Same signature, semantics, values and errors as
    :func:`sklearn.feature_selection.mutual_info_regression` (max abs difference 1e-10 for dense
    ``X`` and the same ``random_state``), computed by fastinfo's compiled KSG (Kraskov et al. 2004,
    algorithm 1) and Ross (2014) estimators.

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
        Accepted for compatibility (0 is refused, as joblib refuses it); the work runs on
        fastinfo's OpenMP threads (``OMP_NUM_THREADS`` / ``threadpoolctl``).

    Returns
    -------
    mi : ndarray, shape (n_features,)
        Estimated mutual information in nats, clipped at 0 (float64; an integer array of zeros
        when every column was clipped, as in scikit-learn).

    References
    ----------
    A. Kraskov, H. Stoegbauer and P. Grassberger, "Estimating mutual information",
    Phys. Rev. E 69 (2004); B. C. Ross, "Mutual information between discrete and continuous
    data sets", PLoS ONE 9(2) (2014).

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
    _validate_params("mutual_info_regression", X, y, discrete_features, n_neighbors, copy, random_state,
                     n_jobs)
    return _estimate_mi(X, y, discrete_features=discrete_features, discrete_target=False,
                        n_neighbors=n_neighbors, copy=copy, random_state=random_state, n_jobs=n_jobs)


def mutual_info_classif(
    X, y, *, discrete_features="auto", n_neighbors=3, copy=True, random_state=None, n_jobs=None
):
    """Estimate mutual information between each feature and a discrete target.

    Same signature, semantics, values and errors as
    :func:`sklearn.feature_selection.mutual_info_classif` (max abs difference 1e-10 for dense
    ``X`` and the same ``random_state``): Ross (2014) for continuous features, contingency MI for
    discrete ones, clipped at 0.

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
    mi : ndarray, shape (n_features,)
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
    _validate_params("mutual_info_classif", X, y, discrete_features, n_neighbors, copy, random_state, n_jobs)
    _check_classification_targets(y)
    return _estimate_mi(X, y, discrete_features=discrete_features, discrete_target=True,
                        n_neighbors=n_neighbors, copy=copy, random_state=random_state, n_jobs=n_jobs)


# -----------------------------------------------------------------------------
# Parameter checks: scikit-learn's validate_params, the same order and messages
# -----------------------------------------------------------------------------


def _is_sparse(x):
    try:
        from scipy import sparse
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return sparse.issparse(x)


def _is_array_like(x):
    return (hasattr(x, "__len__") or hasattr(x, "shape") or hasattr(x, "__array__")) and not np.isscalar(x)


def _is_bool(x):
    return isinstance(x, (bool, np.bool_))


_CONSTRAINTS = (
    ("X", lambda v: _is_array_like(v) or _is_sparse(v), "an array-like or a sparse array or matrix"),
    ("y", _is_array_like, "an array-like"),
    ("discrete_features", lambda v: (isinstance(v, str) and v == "auto") or _is_bool(v) or _is_array_like(v),
     "a str among {'auto'}, an instance of 'bool' or an instance of 'numpy.bool' or an array-like"),
    ("n_neighbors", lambda v: isinstance(v, numbers.Integral) and v >= 1, "an int in the range [1, inf)"),
    ("copy", _is_bool, "an instance of 'bool' or an instance of 'numpy.bool'"),
    ("random_state",
     lambda v: v is None or isinstance(v, np.random.RandomState)
     or (isinstance(v, numbers.Integral) and 0 <= v <= 2**32 - 1),
     "an int in the range [0, 4294967295], an instance of 'numpy.random.mtrand.RandomState' or None"),
    ("n_jobs", lambda v: v is None or isinstance(v, numbers.Integral), "an instance of 'int' or None"),
)


def _validate_params(func_name, *values):
    for (name, satisfied, description), value in zip(_CONSTRAINTS, values):
        if not satisfied(value):
            raise InvalidParameterError(
                f"The {name!r} parameter of {func_name} must be {description}. Got {value!r} instead."
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


# -----------------------------------------------------------------------------
# Array checks: check_array / check_X_y / column_or_1d / type_of_target, same messages
# -----------------------------------------------------------------------------


def _assert_all_finite(a, input_name=""):
    if a.dtype == object:
        if np.any(a != a):
            raise ValueError("Input contains NaN")
        return
    if a.dtype.kind not in "fc":
        return
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(a)):
            return
    name = input_name + " " if input_name else ""
    if np.isnan(a).any():
        raise ValueError(f"Input {name}contains NaN.")
    if np.isinf(a).any():
        raise ValueError(f"Input {name}contains infinity or a value too large for {a.dtype!r}.")


def _num_samples(a):
    if a.ndim == 0:
        raise TypeError(f"Input should have at least 1 dimension i.e. satisfy `len(x.shape) > 0`, got scalar "
                        f"`{a!r}` instead.")
    return a.shape[0]


def _check_array(array, *, input_name="", ensure_2d=True, numeric=True, allow_nd=False,
                 ensure_all_finite=True, ensure_min_samples=1):
    """``sklearn.utils.check_array`` for dense input (dtype "numeric" or None)."""
    dtype_orig = getattr(array, "dtype", None)
    if not hasattr(dtype_orig, "kind"):
        dtype_orig = None
    to_float = numeric and dtype_orig is not None and dtype_orig.kind == "O"
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        try:
            arr = np.asarray(array, dtype=np.float64 if to_float else None)
        except np.exceptions.ComplexWarning:
            raise ValueError(f"Complex data not supported\n{array}\n") from None
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported\n{arr}\n")
    if ensure_2d:
        if arr.ndim == 0:
            raise ValueError(
                f"Expected 2D array, got scalar array instead:\narray={arr}.\nReshape your data either using "
                "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) if it contains a "
                "single sample.")
        if arr.ndim == 1:
            raise ValueError(
                f"Expected 2D array, got 1D array instead:\narray={arr}.\nReshape your data either using "
                "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) if it contains a "
                "single sample.")
    if numeric and arr.dtype.kind in "USV":
        raise ValueError("dtype='numeric' is not compatible with arrays of bytes/strings.Convert your data to "
                         "numeric values explicitly instead.")
    if not allow_nd and arr.ndim >= 3:
        raise ValueError(f"Found array with dim {arr.ndim}, while dim <= 2 is required.")
    if ensure_all_finite:
        _assert_all_finite(arr, input_name)
    if ensure_min_samples > 0:
        n = _num_samples(arr)
        if n < ensure_min_samples:
            raise ValueError(f"Found array with {n} sample(s) (shape={arr.shape}) while a minimum of "
                             f"{ensure_min_samples} is required.")
    if arr.ndim == 2 and arr.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    return arr


def _check_sparse_X(X):
    if X.ndim < 2:
        raise ValueError(
            f"Expected 2D input, got input with shape {X.shape}.\nReshape your data either using "
            "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) if it contains a "
            "single sample.")
    X = X.tocsc()
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported\n{X}\n")
    if X.dtype == object:
        X = X.astype(np.float64)
    _assert_all_finite(np.asarray(X.data), "X")
    n_samples, n_features = X.shape
    if n_samples < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
    if n_features < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    return X


def _column_or_1d(y):
    if _is_sparse(y):
        raise TypeError("Sparse data was passed for y, but dense data is required. Use '.toarray()' to convert "
                        "to a dense numpy array.")
    y = _check_array(y, input_name="y", ensure_2d=False, numeric=False, ensure_all_finite=False,
                     ensure_min_samples=0)
    if y.ndim == 1:
        return np.ascontiguousarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the shape of y "
                      "to (n_samples, ), for example using ravel().", DataConversionWarning, stacklevel=4)
        return np.ascontiguousarray(y.reshape(-1))
    raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} instead.")


def _check_X_y(X, y, y_numeric):
    """``check_X_y(X, y, accept_sparse="csc", y_numeric=...)``."""
    if y is None:
        raise ValueError("estimator requires y to be passed, but the target y is None")
    if _is_sparse(X):
        X = _check_sparse_X(X)
    else:
        X = _check_array(X, input_name="X")
    y = _column_or_1d(y)
    _assert_all_finite(y, "y")
    if y_numeric and y.dtype.kind == "O":
        y = y.astype(np.float64)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: [{X.shape[0]}, {y.shape[0]}]")
    return X, y


def _type_of_target(y, input_name=""):
    """``sklearn.utils.multiclass.type_of_target`` for dense array-likes."""
    if not ((isinstance(y, Sequence) or _is_sparse(y) or hasattr(y, "__array__")) and not isinstance(y, str)):
        raise ValueError(f"Expected array-like (array or non-string sequence), got {y!r}")
    if _is_sparse(y):
        y = y.toarray()
    try:
        arr = _check_array(y, ensure_2d=False, numeric=False, allow_nd=True, ensure_all_finite=False,
                           ensure_min_samples=0)
    except ValueError as exc:
        if str(exc).startswith("Complex data not supported"):
            raise
        arr = np.asarray(y, dtype=object)
    if arr.ndim == 2 and arr.shape[1] > 1 and arr.size:
        labels = np.unique(arr)
        if labels.shape[0] < 3 and (arr.dtype.kind in "biu" or _is_integral_float(labels)):
            return "multilabel-indicator"
    if arr.ndim >= 1 and arr.shape[0] > 0:
        first = arr[0]
        if isinstance(first, bytes):
            raise TypeError("Support for labels represented as bytes is not supported. Convert the labels to a "
                            "string or integer format.")
        if not hasattr(first, "__array__") and isinstance(first, Sequence) and not isinstance(first, str):
            raise ValueError("You appear to be using a legacy multi-label data representation. Sequence of "
                             "sequences are no longer supported; use a binary array or sparse matrix instead - "
                             "the MultiLabelBinarizer transformer can convert to this format.")
    if arr.ndim not in (1, 2):
        return "unknown"
    if not min(arr.shape):
        return "binary" if arr.ndim == 1 else "unknown"
    if arr.dtype == object and not isinstance(arr.flat[0], str):
        return "unknown"
    suffix = "-multioutput" if arr.ndim == 2 and arr.shape[1] > 1 else ""
    if arr.dtype.kind == "f":
        integral = arr.astype(np.int64).astype(arr.dtype)   # NumPy warns on NaN, as for scikit-learn
        if np.any(arr != integral):
            _assert_all_finite(arr, input_name)
            return "continuous" + suffix
    if np.unique(arr).shape[0] > 2 or (arr.ndim == 2 and len(arr[0]) > 1):
        return "multiclass" + suffix
    return "binary"


def _is_integral_float(labels):
    return labels.dtype.kind == "f" and np.all(labels.astype(int) == labels)


def _check_classification_targets(y):
    y_type = _type_of_target(y, input_name="y")
    if y_type not in ("binary", "multiclass", "multiclass-multioutput", "multilabel-indicator",
                      "multilabel-sequences"):
        raise ValueError(f"Unknown label type: {y_type}. Maybe you are trying to fit a classifier, which expects "
                         "discrete classes on a regression target with continuous values.")
    if "multiclass" in y_type:
        arr = np.asarray(y)
        n_samples = arr.shape[0]
        if n_samples > 20 and np.unique(arr).shape[0] > round(0.5 * n_samples):
            warnings.warn("The number of unique classes is greater than 50% of the number of samples. `y` could "
                          "represent a regression problem, not a classification problem.", UserWarning,
                          stacklevel=3)


def _check_n_jobs(n_jobs):
    if n_jobs == 0:  # joblib.Parallel's own check
        raise ValueError("n_jobs == 0 in Parallel has no meaning")


# -----------------------------------------------------------------------------
# scale / noise exactly as scikit-learn computes them
# -----------------------------------------------------------------------------


def _scale_in_place(a):
    """``sklearn.preprocessing.scale(a, with_mean=False, copy=False)`` on a float ndarray."""
    std = np.nanstd(a, axis=0)
    if np.isscalar(std):
        if std == 0.0:
            std = 1.0
    else:
        std[std < 10 * np.finfo(std.dtype).eps] = 1.0
    a /= std
    return a


def _scaled_target(y):
    """``scale(y, with_mean=False)`` (a copy; float16/float32 keep their dtype, others become float64)."""
    y = np.array(y, dtype=y.dtype if y.dtype in (np.float16, np.float32, np.float64) else np.float64)
    return _scale_in_place(y)


# -----------------------------------------------------------------------------
# The estimate
# -----------------------------------------------------------------------------


def _discrete_mask(discrete_features, n_features, sparse):
    """scikit-learn's mask: NumPy raises its own IndexError for a bad mask or index."""
    if isinstance(discrete_features, (str, bool)):
        if isinstance(discrete_features, str):
            if discrete_features != "auto":
                raise ValueError("Invalid string value for discrete_features.")
            discrete_features = sparse
        mask = np.empty(n_features, dtype=bool)
        mask.fill(discrete_features)
        return mask
    features = _check_array(discrete_features, ensure_2d=False)
    if features.dtype != bool:
        mask = np.zeros(n_features, dtype=bool)
        mask[features] = True
        return mask
    return features


def _estimate_mi(X, y, *, discrete_features, discrete_target, n_neighbors, copy, random_state, n_jobs):
    X, y = _check_X_y(X, y, y_numeric=not discrete_target)
    sparse = _is_sparse(X)
    n_samples, n_features = X.shape
    discrete_mask = _discrete_mask(discrete_features, n_features, sparse)
    continuous_mask = ~discrete_mask
    any_continuous = bool(np.any(continuous_mask))
    if any_continuous and sparse:
        raise ValueError("Sparse matrix `X` can't have continuous features.")

    rng = _check_random_state(random_state)
    continuous = None       # (n_continuous, n_samples) float64: the scaled, noised continuous columns
    if any_continuous:
        if (not copy and isinstance(X, np.ndarray) and X.dtype == np.float64) or continuous_mask.ndim != 1 \
                or continuous_mask.shape[0] != n_features:
            # X itself is scaled and noised (copy=False), or the mask is malformed and NumPy raises
            # scikit-learn's IndexError here
            X = X.astype(np.float64, copy=copy)
            X[:, continuous_mask] = _scale_in_place(X[:, continuous_mask])
            means = np.maximum(1, np.mean(np.abs(X[:, continuous_mask]), axis=0))
            X[:, continuous_mask] += 1e-10 * means * rng.standard_normal(size=(n_samples, np.sum(continuous_mask)))
            continuous = np.ascontiguousarray(X[:, continuous_mask].T)
        else:
            continuous = _noisy_continuous(X, continuous_mask, rng)
    if not discrete_target:
        y = _scaled_target(y)
        y += 1e-10 * np.maximum(1, np.mean(np.abs(y))) * rng.standard_normal(size=n_samples)
    _check_n_jobs(n_jobs)

    # scikit-learn pairs the columns with the mask by zip(): a mask that is all True but of another
    # length gives that many results (or the columns' number, whichever is smaller)
    flags = [bool(flag) for _, flag in zip(range(n_features), discrete_mask)]
    column_of = np.cumsum(~np.asarray(flags, dtype=bool)) - 1 if flags else np.empty(0, dtype=np.intp)

    def discrete_column(j):
        if sparse:
            x = np.zeros(n_samples)
            start, end = X.indptr[j], X.indptr[j + 1]
            x[X.indices[start:end]] = X.data[start:end]
            return x
        return X[:, j].astype(np.float64) if any_continuous else X[:, j]

    _check_estimators_run(flags, discrete_column, y, discrete_target, n_neighbors, n_samples)

    values = [None] * len(flags)
    cc = [j for j, d in enumerate(flags) if not d and not discrete_target]
    if cc:   # with a continuous target every continuous column is a KSG column, in order
        for j, value in zip(cc, _ksg_like_sklearn(continuous, y, n_neighbors)):
            values[j] = value
    if discrete_target:
        ross = None
        for j, d in enumerate(flags):
            if d:
                values[j] = _contingency_mi(discrete_column(j), y)
            else:
                if ross is None:
                    ross = _RossLabels(y, n_neighbors)
                values[j] = ross.estimate(continuous[column_of[j]])
    else:
        for j, d in enumerate(flags):
            if d:   # y keeps its dtype: scikit-learn's brute-force search treats float32 differently
                values[j] = _RossLabels(discrete_column(j), n_neighbors).estimate(y)
    return np.array(values)


def _noisy_continuous(X, continuous_mask, rng):
    """The continuous columns, scaled and noised as scikit-learn does to its copy of X (the same
    operations, element by element, on arrays of the same layout, so the same bits), as rows of a
    fresh (n_continuous, n_samples) array: no float64 copy of the whole X."""
    n_samples = X.shape[0]
    n_continuous = int(continuous_mask.sum())
    columns = np.asarray(X[:, continuous_mask], dtype=np.float64)   # a fresh array (fancy index)
    _scale_in_place(columns)
    means = np.maximum(1, np.mean(np.abs(columns), axis=0))
    noisy = rng.standard_normal(size=(n_samples, n_continuous))
    noisy *= 1e-10 * means          # (1e-10 * means) * noise, element by element as scikit-learn
    noisy += columns
    del columns
    return np.ascontiguousarray(noisy.T)


def _check_estimators_run(flags, discrete_column, y, discrete_target, n_neighbors, n_samples):
    """Raise, in column order, the first error scikit-learn's per-column estimators raise."""
    for j, d in enumerate(flags):
        if d and discrete_target:
            continue
        if not d and not discrete_target:
            if n_neighbors >= n_samples:
                raise ValueError(f"Expected n_neighbors < n_samples_fit, but n_neighbors = {n_neighbors}, "
                                 f"n_samples_fit = {n_samples}, n_samples = {n_samples}")
            continue
        labels = y if discrete_target else discrete_column(j)
        _, counts = np.unique(labels, return_counts=True)
        if not np.any(counts > 1):
            raise ValueError("Found array with 0 sample(s) (shape=(0, 1)) while a minimum of 1 is required.")
        if discrete_target:
            return  # every continuous column shares the labels


def _clip(mi):
    """scikit-learn's ``max(0, mi)``: the integer 0 unless mi > 0 (NaN included)."""
    return mi if mi > 0 else 0


def _contingency_mi(x, labels):
    """``sklearn.metrics.mutual_info_score(x, labels)``, with its warning for continuous values."""
    type_x, type_labels = _type_of_target(x), _type_of_target(labels)
    if "continuous" in (type_labels, type_x):
        warnings.warn(f"Clustering metrics expects discrete values but received {type_x} values for label, and "
                      f"{type_labels} values for target", UserWarning, stacklevel=4)
    return float(max(mutual_info_discrete(x, labels), 0.0))


# ----------------------------------------------------------------------------- KSG


def _ksg_like_sklearn(columns, target, n_neighbors):
    """``_compute_mi_cc(column, target, n_neighbors)`` for every row of ``columns`` (m, n)."""
    n = target.shape[0]
    target = np.ascontiguousarray(target, dtype=np.float64)
    columns = np.ascontiguousarray(columns, dtype=np.float64)
    target_sorted, target_order = _sorted_with_order(target[None, :])
    mean_terms = _kernels.ksg_rows_against_target(columns, target, target_sorted[0], target_order[0], n_neighbors)
    mi = (_digamma(n_neighbors) + _digamma(n)) - mean_terms
    # A sample duplicated in the joint space has eps_i = 0: scikit-learn then counts the exact ties
    # of each marginal (|d| <= nextafter(0, 0) = 0), fastinfo's kernel none. Such samples need a
    # duplicated target value first, so most calls stop at this O(n) look at the sorted target.
    ts = target_sorted[0]
    tied = np.flatnonzero(ts[1:] == ts[:-1])
    if tied.size:
        in_run = np.zeros(n, dtype=bool)
        in_run[tied] = True
        in_run[tied + 1] = True
        candidates = target_order[0][in_run]
        for row in range(columns.shape[0]):
            if _has_joint_duplicates(columns[row, candidates], target[candidates]):
                mi[row] = _ksg_counting_ties(columns[row], target, n_neighbors)
    # Estimates within rounding of 0 are recomputed with scikit-learn's own counts and formula, so
    # that max(0, mi) decides as scikit-learn's does (the kernel's sums differ in the last bits).
    for row in np.flatnonzero(np.abs(mi) <= _NEAR_ZERO):
        mi[row] = _ksg_counting_ties(columns[row], target, n_neighbors)
    return [_clip(value) for value in mi]


def _has_joint_duplicates(x, y):
    order = np.lexsort((x, y))
    xs, ys = x[order], y[order]
    return bool(np.any((xs[1:] == xs[:-1]) & (ys[1:] == ys[:-1])))


def _ksg_counting_ties(x, y, k):
    """``_compute_mi_cc`` term for term: radius nextafter(eps, 0), marginal counts with ``<=``
    (the sample itself included), scikit-learn's digamma formula."""
    n = x.shape[0]
    joint = np.ascontiguousarray(np.column_stack([x, y]))
    radius = np.nextafter(_kernels.knn_radius(joint, k), 0)
    counts = []
    for values in (x, y):
        samples = np.ascontiguousarray(values.reshape(-1, 1))
        sorted_values, order = _sorted_with_order(samples.T)
        counts.append(_kernels.count_within(samples, sorted_values[0], order[0], radius, False) + 1)
    table = _digamma_table(n)
    return table[n] + table[k] - np.mean(table[counts[0]]) - np.mean(table[counts[1]])


# |mi| at most this: recomputed the scikit-learn way before the clipping at 0
_NEAR_ZERO = 1e-9


# ----------------------------------------------------------------------------- Ross

# scikit-learn's KDTree default leaf size (the tree of _compute_mi_cd's range counts)
_SKLEARN_LEAF_SIZE = 40
# Beyond these magnitudes squares of differences can overflow or lose bits to underflow, and
# scikit-learn's squared comparisons stop ordering distances exactly: its tree is replayed.
_SQUARES_EXACT_ABOVE = 2.0 ** -510
_SQUARES_EXACT_BELOW = 2.0 ** 510


class _RossLabels:
    """``_compute_mi_cd(c, labels, n_neighbors)`` for any continuous ``c`` with these labels."""

    def __init__(self, labels, n_neighbors):
        _, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
        codes = codes.reshape(-1)
        kept = counts[codes] > 1
        self.kept = None if kept.all() else np.flatnonzero(kept)
        if self.kept is not None:
            codes = codes[self.kept]
        self.n = codes.shape[0]
        order = np.argsort(codes, kind="stable")
        sizes = np.bincount(codes, minlength=counts.shape[0])
        offsets = np.zeros(sizes.shape[0] + 1, dtype=np.intp)
        np.cumsum(sizes, out=offsets[1:])
        group_k = np.where(sizes > 1, np.minimum(n_neighbors, sizes - 1), 0).astype(np.intp)
        # NearestNeighbors' "auto" algorithm: brute force when n_neighbors >= n_samples // 2
        self.brute = (sizes > 1) & (group_k >= sizes // 2)
        self.order, self.offsets, self.sizes = order, offsets, sizes
        self.tree_k = np.where(self.brute, 0, group_k).astype(np.intp)
        self.group_k = group_k
        table = _digamma_table(self.n)
        self.mean_digamma_k = np.mean(table[group_k[codes]])
        self.mean_digamma_label = np.mean(table[sizes[codes]])

    def estimate(self, c):
        single = np.asarray(c).dtype == np.float32   # scikit-learn's brute force rounds float32 distances
        c = np.asarray(c, dtype=np.float64)
        if self.kept is not None:
            c = c[self.kept]
        c = np.ascontiguousarray(c)
        grouped = np.ascontiguousarray(c[self.order])
        # KD-tree groups: the k-th distance sqrt(fl(d^2)) (= |d| unless d^2 leaves the normal range)
        kth = _kernels.knn_radius_grouped(grouped.reshape(-1, 1), self.offsets, self.tree_k)
        kth = np.sqrt(kth * kth)
        for g in np.flatnonzero(self.brute):
            start, end = self.offsets[g], self.offsets[g + 1]
            kth[start:end] = _brute_kth_distance(grouped[start:end], int(self.group_k[g]), single)
        radius = np.empty(self.n, dtype=np.float64)
        radius[self.order] = np.nextafter(kth, 0)
        m = _sklearn_radius_counts(c, radius)
        # scikit-learn's formula, term for term: digamma of the same values (a table of
        # scipy.special.digamma at the integers), np.mean of arrays in the same order
        table = _digamma_table(self.n)
        mi = table[self.n] + self.mean_digamma_k - self.mean_digamma_label - np.mean(table[m])
        return _clip(mi)


def _brute_kth_distance(x, k, single):
    """Distance to the k-th neighbour (the sample itself left out) as scikit-learn's brute-force
    ``NearestNeighbors.kneighbors()`` computes it for 1-D samples (``ArgKmin``, Euclidean): the
    squared distance ``(||x_i||^2 + (-2 x_i x_j)) + ||x_j||^2`` in float64 (BLAS dgemm with
    alpha = -2 for the middle term; float32 samples are upcast), clipped at 0 (NaN too), the (k+1)-th
    smallest over j (the sample's own term is exactly 0), square-rooted; for float32 samples the
    square root goes through float32 as scikit-learn's ``EuclideanDistance32._rdist_to_dist`` does."""
    norms = x * x
    out = np.empty(x.shape[0], dtype=np.float64)
    step = max(1, (1 << 20) // max(1, x.shape[0]))   # rows per block: at most ~8 MB of distances
    for start in range(0, x.shape[0], step):
        rows = slice(start, start + step)
        squared = (norms[rows, None] + (-2.0 * (x[rows, None] * x[None, :]))) + norms[None, :]
        # Cython's max(0., v): v when v > 0, else 0 (NaN from inf - inf included)
        squared = np.where(squared > 0.0, squared, 0.0)
        out[rows] = np.partition(squared, k, axis=1)[:, k]
    if single:
        return np.sqrt(out.astype(np.float32).astype(np.float64)).astype(np.float32).astype(np.float64)
    return np.sqrt(out)


def _digamma_table(n):
    """``scipy.special.digamma`` at 0, 1, ..., n (the values scikit-learn's formulas take)."""
    from scipy.special import digamma

    with np.errstate(divide="ignore", invalid="ignore"):
        return digamma(np.arange(n + 1, dtype=np.float64))


def _sklearn_radius_counts(c, radius):
    """``KDTree(c[:, None]).query_radius(c[:, None], radius, count_only=True)`` (the sample itself counts)."""
    samples = c.reshape(-1, 1)
    sorted_values, order = _sorted_with_order(samples.T)
    sorted_values = sorted_values[0]
    n = c.shape[0]
    gaps = np.diff(sorted_values)
    gaps = gaps[gaps > 0]
    exact = (n == 0 or max(-sorted_values[0], sorted_values[-1]) < _SQUARES_EXACT_BELOW) \
        and (gaps.size == 0 or gaps.min() >= _SQUARES_EXACT_ABOVE) \
        and not np.any((radius > 0) & (radius < _SQUARES_EXACT_ABOVE))
    if exact:
        return _kernels.count_within(samples, sorted_values, order[0], radius, False) + 1
    n_levels = int(np.log2(max(1.0, (n - 1) / _SKLEARN_LEAF_SIZE)) + 1)
    return _kernels.sklearn_kdtree_count(np.ascontiguousarray(sorted_values), c, radius, 2 ** n_levels - 1, 2.0)

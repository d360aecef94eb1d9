"""fastinfo.sklearn: scikit-learn's behaviour (its public test cases, written here as ours), its
values on every data set it ships (1e-10), its exceptions, and its neighbour counts on tied data.

The first part needs no scikit-learn (values against theory, against the O(n^2) twins of
``tests/reference.py`` and between calls); the comparisons with scikit-learn itself skip when it
is not installed.
"""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import sparse

import fastinfo._kernels as kernels
import fastinfo.sklearn as fsk
from reference import sklearn_mi_cc_ref, sklearn_mi_cd_ref

ATOL = 1e-10
DTYPES = [np.float64, np.float32]


@pytest.fixture(scope="module")
def sk_fs():
    return pytest.importorskip("sklearn.feature_selection")


def _same(got, want, atol=ATOL):
    """Same shape, dtype and values (within atol) as scikit-learn's result."""
    assert got.shape == want.shape and got.dtype == want.dtype, (got, want)
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)


# =============================================================================
# scikit-learn's public test cases, as ours (no scikit-learn needed)
# =============================================================================


def test_two_discrete_variables_by_hand():
    x = np.array([0, 1, 1, 0, 0])
    y = np.array([1, 0, 0, 0, 1])
    h_x = h_y = -(3 / 5) * np.log(3 / 5) - (2 / 5) * np.log(2 / 5)
    h_xy = -(1 / 5) * np.log(1 / 5) - 2 * (2 / 5) * np.log(2 / 5)
    mi = fsk.mutual_info_classif(x[:, None], y, discrete_features=True)
    np.testing.assert_allclose(mi, [h_x + h_y - h_xy], rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_neighbors", [3, 5, 7])
def test_two_continuous_variables_bivariate_normal(dtype, n_neighbors):
    sigma_1, sigma_2, corr = 1.0, 10.0, 0.5
    cov = np.array([[sigma_1**2, corr * sigma_1 * sigma_2], [corr * sigma_1 * sigma_2, sigma_2**2]])
    theory = np.log(sigma_1) + np.log(sigma_2) - 0.5 * np.log(np.linalg.det(cov))
    Z = np.random.RandomState(0).multivariate_normal(np.zeros(2), cov, size=1000).astype(dtype)
    # the per-column estimator itself (scikit-learn's _compute_mi_cc: no scaling, no noise)
    mi = fsk._ksg_like_sklearn(Z[:, 0][None, :], Z[:, 1], n_neighbors)
    np.testing.assert_allclose(mi, [theory], rtol=0.1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.3, 0.5, 0.7])
def test_continuous_and_discrete_variables(dtype, p):
    # x ~ Bernoulli, y | x=0 ~ U(-1, 1), y | x=1 ~ U(0, 2): I = H(Y) - H(Y|X) by hand
    rng = np.random.RandomState(int(10 * p))
    x = rng.uniform(size=1000) > p
    y = np.where(x, rng.uniform(0, 2, 1000), rng.uniform(-1, 1, 1000)).astype(dtype)
    theory = -0.5 * ((1 - p) * np.log(0.5 * (1 - p)) + p * np.log(0.5 * p) + np.log(0.5)) - np.log(2)
    for n_neighbors in (3, 5, 7):
        # the per-column estimator (scikit-learn's _compute_mi_cd), then the public functions
        np.testing.assert_allclose(fsk._RossLabels(x, n_neighbors).estimate(y), theory, rtol=0.1)
        from_classif = fsk.mutual_info_classif(y[:, None], x, n_neighbors=n_neighbors, random_state=0)
        from_regression = fsk.mutual_info_regression(x[:, None], y, discrete_features=True,
                                                     n_neighbors=n_neighbors, random_state=0)
        np.testing.assert_allclose(from_classif, [theory], rtol=0.15)
        np.testing.assert_allclose(from_regression, from_classif, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_label_seen_once_changes_nothing(dtype):
    rng = np.random.RandomState(3)
    x = rng.uniform(size=100) > 0.5
    y = np.where(x, rng.uniform(0, 2, 100), rng.uniform(-1, 1, 100)).astype(dtype)
    before = fsk.mutual_info_classif(y[:, None], x.astype(int), random_state=0)
    after = fsk.mutual_info_classif(np.append(y, dtype(10))[:, None], np.append(x.astype(int), 2), random_state=0)
    # the extra sample is dropped: same Ross terms, the random draws of one more sample aside
    np.testing.assert_allclose(before, after, atol=0.02)
    # and exactly, with the noise taken out of the comparison: the twin on the noised values
    assert fsk._RossLabels(np.append(x.astype(int), 2), 3).estimate(np.append(y, 10.0)) == pytest.approx(
        fsk._RossLabels(x.astype(int), 3).estimate(y.astype(np.float64)), abs=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_discrete_features_ranked(dtype):
    X = np.array([[0, 0, 0], [1, 1, 0], [2, 0, 1], [2, 0, 1], [2, 0, 1]], dtype=dtype)
    y = np.array([0, 1, 2, 2, 1])
    mi = fsk.mutual_info_classif(X, y, discrete_features=True)
    np.testing.assert_array_equal(np.argsort(-mi), [0, 2, 1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_regression_ranks_correlated_columns(dtype):
    T = np.array([[1, 0.5, 2, 1], [0, 1, 0.1, 0.0], [0, 0.1, 1, 0.1], [0, 0.1, 0.1, 1]])
    Z = np.random.RandomState(0).multivariate_normal(np.zeros(4), T @ T.T, size=1000).astype(dtype)
    mi = fsk.mutual_info_regression(Z[:, 1:], Z[:, 0], random_state=0)
    np.testing.assert_array_equal(np.argsort(-mi), [1, 2, 0])
    assert mi.dtype == np.float64


@pytest.mark.parametrize("dtype", DTYPES)
def test_classif_mixed_features_and_n_neighbors(dtype):
    rng = np.random.RandomState(0)
    X = rng.rand(1000, 3).astype(dtype)
    X[:, 1] += X[:, 0]
    y = ((0.5 * X[:, 0] + X[:, 2]) > 0.5).astype(int)
    X[:, 2] = X[:, 2] > 0.5
    mi = fsk.mutual_info_classif(X, y, discrete_features=[2], random_state=0)
    np.testing.assert_array_equal(np.argsort(-mi), [2, 0, 1])
    for n_neighbors in (5, 7, 9):
        more = fsk.mutual_info_classif(X, y, discrete_features=[2], n_neighbors=n_neighbors, random_state=0)
        assert more[0] > mi[0] and more[1] > mi[1]
        assert more[2] == mi[2]   # n_neighbors does not touch the discrete column


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("container", [sparse.csr_matrix, sparse.csr_array])
def test_options(dtype, container):
    X = np.array([[0, 0, 0], [1, 1, 0], [2, 0, 1], [2, 0, 1], [2, 0, 1]], dtype=dtype)
    y = np.array([0, 1, 2, 2, 1], dtype=dtype)
    X_sparse = container(X)
    for function in (fsk.mutual_info_regression, fsk.mutual_info_classif):
        with pytest.raises(ValueError, match="Sparse matrix `X` can't have continuous features"):
            function(X_sparse, y, discrete_features=False)
        with pytest.raises(ValueError, match="'discrete_features' parameter"):
            function(X, y, discrete_features="manual")
        with pytest.raises(ValueError, match="can't have continuous features"):
            function(X_sparse, y, discrete_features=[True, False, True])
        with pytest.raises(IndexError, match="boolean index did not match"):
            function(X, y, discrete_features=[True, False, True, False])
        with pytest.raises(IndexError, match="index 4 is out of bounds"):
            function(X, y, discrete_features=[1, 4])
        auto = function(X, y, discrete_features="auto", random_state=0)
        np.testing.assert_allclose(auto, function(X, y, discrete_features=False, random_state=0))
        sparse_auto = function(X_sparse, y, discrete_features="auto", random_state=0)
        np.testing.assert_allclose(sparse_auto, function(X_sparse, y, discrete_features=True, random_state=0))
        np.testing.assert_allclose(function(X, y, discrete_features=[True, False, True], random_state=0),
                                   function(X, y, discrete_features=[0, 2], random_state=0))
        assert not np.allclose(auto, sparse_auto)


@pytest.mark.parametrize("correlated", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classif_and_regression_symmetric(correlated, seed):
    rng = np.random.RandomState(seed)
    d = rng.randint(10, size=100)
    c = d.astype(np.float64) if correlated else rng.normal(0, 1, size=100)
    by_classif = fsk.mutual_info_classif(c[:, None], d, discrete_features=[False], random_state=seed)
    by_regression = fsk.mutual_info_regression(d[:, None], c, discrete_features=[True], random_state=seed)
    assert by_classif == pytest.approx(by_regression)


def test_integer_X_equals_float_X():
    rng = np.random.RandomState(4)
    X = rng.randint(100, size=(100, 10))
    y = rng.randint(100, size=100)
    np.testing.assert_allclose(fsk.mutual_info_regression(X, y, random_state=4),
                               fsk.mutual_info_regression(X.astype(np.float64), y, random_state=4))


@pytest.mark.parametrize("name", ["mutual_info_regression", "mutual_info_classif"])
def test_n_jobs_changes_nothing(name):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((100, 5))
    y = X[:, 0] + rng.standard_normal(100)
    if name == "mutual_info_classif":
        y = (y > 0).astype(int)
    function = getattr(fsk, name)
    np.testing.assert_array_equal(function(X, y, random_state=1, n_jobs=1), function(X, y, random_state=1, n_jobs=2))
    with pytest.raises(ValueError, match="n_jobs == 0"):
        function(X, y, n_jobs=0)


# =============================================================================
# scikit-learn's counts, checked against the O(n^2) twins (no scikit-learn needed)
# =============================================================================


def _noised(values, seed):
    """Values as scikit-learn's estimators see them: scaled, plus its 1e-10 noise."""
    v = np.asarray(values, dtype=np.float64)
    v = v / (np.std(v) or 1.0)
    return v + 1e-10 * max(1.0, np.mean(np.abs(v))) * np.random.RandomState(seed).standard_normal(v.shape)


@pytest.mark.parametrize("seed", range(6))
def test_ross_counts_ties_at_eps_like_sklearn(seed):
    """Integer-valued columns plus 1e-10 noise leave exact ties at eps_i (digits' pixels):
    scikit-learn counts 1 + #{d < eps}, fastinfo's own estimator #{d <= eps}."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 400)
    c = rng.integers(0, 5, 400).astype(np.float64)
    c[::7] = np.roll(c, 1)[::7]          # exact duplicates too
    for n_neighbors in (1, 3, 5):
        got = fsk._RossLabels(labels, n_neighbors).estimate(c)
        assert got == pytest.approx(sklearn_mi_cd_ref(c, labels, n_neighbors), abs=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ross_small_groups_brute_force_distances(dtype):
    """Groups of 2..2k+1 samples: scikit-learn's brute force, ||x||^2 - 2xy + ||y||^2 rounding."""
    rng = np.random.default_rng(7)
    failures = 0
    for trial in range(60):
        sizes = rng.integers(2, 9, rng.integers(2, 6))
        labels = np.repeat(np.arange(sizes.size), sizes)
        c = (rng.integers(-20, 20, labels.size) * rng.choice([0.1, 0.3, 0.7, 1.1])).astype(dtype)
        for n_neighbors in (1, 2, 3):
            got = fsk._RossLabels(labels, n_neighbors).estimate(c)
            want = sklearn_mi_cd_ref(c, labels, n_neighbors)
            failures += abs(got - want) > 1e-12 or type(got) is not type(want) and (got == 0) != (want == 0)
    assert failures == 0


@pytest.mark.parametrize("seed", range(4))
def test_ksg_counts_ties_and_joint_duplicates_like_sklearn(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, 150).astype(np.float64)
    y = rng.integers(0, 4, 150).astype(np.float64)
    y[:40] = x[:40]                          # joint duplicates: eps_i = 0
    for n_neighbors in (1, 3):
        got = fsk._ksg_like_sklearn(x[None, :], y, n_neighbors)[0]
        assert got == pytest.approx(sklearn_mi_cc_ref(x, y, n_neighbors), abs=1e-12)


def _sklearn_tree_nodes(n, leaf_size=40):
    return 2 ** int(np.log2(max(1.0, (n - 1) / leaf_size)) + 1) - 1


@pytest.mark.parametrize("kind", ["normal", "integers", "huge", "tiny", "both"])
def test_replayed_tree_equals_sorted_counts_on_ordinary_data(kind):
    """The replay of scikit-learn's KD-tree (csrc/sklearn_kdtree.h) gives the sorted range counts
    wherever squares stay normal, and stays finite and self-inclusive elsewhere."""
    rng = np.random.default_rng(11)
    n = 3000
    c = {"normal": rng.standard_normal(n), "integers": rng.integers(0, 9, n) + 1e-10 * rng.standard_normal(n),
         "huge": rng.integers(0, 4, n) * 1e200 + rng.standard_normal(n) * 1e190,
         "tiny": rng.integers(0, 4, n) * 1e-200 + rng.standard_normal(n) * 1e-210,
         "both": np.concatenate([rng.standard_normal(n // 2) * 1e-300, rng.standard_normal(n // 2) * 1e300])}[kind]
    radius = np.nextafter(np.abs(c - c[rng.integers(0, n, n)]), 0)
    s = np.sort(c)
    replay = kernels.sklearn_kdtree_count(s, c, radius, _sklearn_tree_nodes(n), 2.0)
    assert (replay >= 1).all()
    if kind in ("normal", "integers"):
        counts = fsk._sklearn_radius_counts(c, radius)
        np.testing.assert_array_equal(replay, counts)
        np.testing.assert_array_equal(counts, (np.abs(c[:, None] - c[None, :]) <= radius[:, None]).sum(1))


def test_replayed_tree_equals_sklearn_kdtree():
    neighbors = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(12)
    for n in (1, 2, 81, 1000):
        for scale in (1.0, 1e200, 1e-160):
            c = (rng.integers(0, 5, n) + 0.1 * rng.standard_normal(n)) * scale
            radius = np.abs(c - c[rng.integers(0, n, n)]) * rng.choice([0.5, 1.0, 1 + 1e-16], n)
            want = neighbors.KDTree(c[:, None]).query_radius(c[:, None], radius, count_only=True)
            got = kernels.sklearn_kdtree_count(np.sort(c), c, radius, _sklearn_tree_nodes(n), 2.0)
            np.testing.assert_array_equal(got, want)


def test_replayed_tree_counts_independent_of_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(13)
    c = rng.integers(0, 50, 20000) * 1e200
    radius = np.abs(c - np.roll(c, 1))
    args = (np.sort(c), c, radius, _sklearn_tree_nodes(c.size), 2.0)
    full = kernels.sklearn_kdtree_count(*args)
    with threadpoolctl.threadpool_limits(1, "openmp"):
        np.testing.assert_array_equal(kernels.sklearn_kdtree_count(*args), full)


# =============================================================================
# Against scikit-learn itself
# =============================================================================


def _bundled(name):
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return X, (y[:, 0] if y.ndim == 2 else y)


def _classes(name, y):
    # the regression sets as four classes (quartiles of the target)
    if name in ("diabetes", "linnerud"):
        return np.searchsorted(np.quantile(y, [0.25, 0.5, 0.75]), y)
    return y


def _integer_columns(X):
    return np.all(X == np.round(X), axis=0)


BUNDLED = ["iris", "digits", "wine", "breast_cancer", "diabetes", "linnerud"]


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_data_set(sk_fs, name):
    """Every data set scikit-learn ships without a download: regression and classification,
    discrete_features auto / True / False / a boolean mask / indices, within 1e-10."""
    X, y = _bundled(name)
    labels = _classes(name, y)
    mask = _integer_columns(X)
    # (regression with every column discrete has one label per distinct value: scikit-learn fits a
    # neighbour search per label, seconds per column; the integer columns are the discrete ones)
    cases = [("mutual_info_regression", "auto"), ("mutual_info_classif", "auto"), ("mutual_info_classif", True),
             ("mutual_info_regression", False), ("mutual_info_classif", False),
             ("mutual_info_regression", mask), ("mutual_info_classif", mask)]
    if 0 < np.count_nonzero(mask) < mask.size:
        cases.append(("mutual_info_classif", np.flatnonzero(mask)))
    if name == "digits":  # 64 columns, all integer-valued: one case of each kind, a mask of 8 columns
        few = np.zeros(mask.size, dtype=bool)
        few[::8] = True
        cases = [("mutual_info_regression", "auto"), ("mutual_info_classif", True),
                 ("mutual_info_regression", few), ("mutual_info_classif", np.flatnonzero(few))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # continuous values passed as discrete
        for function, discrete in cases:
            target = y.astype(np.float64) if function == "mutual_info_regression" else labels
            want = getattr(sk_fs, function)(X, target, discrete_features=discrete, random_state=0)
            got = getattr(fsk, function)(X, target, discrete_features=discrete, random_state=0)
            _same(got, want)


def test_digits_classif_exact(sk_fs):
    """The issue's case: digits, mutual_info_classif(X, y, random_state=0); columns 10, 11, 20, 25,
    35, 36, 53, 59, 60 differed by up to 1.4e-4 before the drop-in counted ties as scikit-learn."""
    X, y = _bundled("digits")
    got = fsk.mutual_info_classif(X, y, random_state=0)
    _same(got, sk_fs.mutual_info_classif(X, y, random_state=0), atol=1e-12)


@pytest.mark.parametrize("random_state", [0, 1, 42])
@pytest.mark.parametrize("n_neighbors", [1, 3, 7])
def test_regression_continuous(sk_fs, random_state, n_neighbors):
    rng = np.random.default_rng(random_state)
    X = rng.standard_normal((500, 6))
    X[:, 1::3] *= 50.0
    y = X[:, 0] + 0.02 * X[:, 1] + 0.5 * rng.standard_normal(500)
    kwargs = dict(n_neighbors=n_neighbors, random_state=random_state)
    _same(fsk.mutual_info_regression(X, y, **kwargs), sk_fs.mutual_info_regression(X, y, **kwargs))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("target_dtype", [np.float64, np.float32, np.int64])
def test_integer_valued_columns_and_targets(sk_fs, seed, target_dtype):
    """Ties everywhere: integer columns (continuous, discrete and mixed), integer or float32
    targets (float32 keeps its dtype through scikit-learn's scaling, where the noise vanishes)."""
    rng = np.random.default_rng(seed)
    n = 300
    X = np.column_stack([rng.integers(0, 4, n), rng.integers(-3, 3, n), rng.integers(0, 20, n),
                         rng.integers(0, 2, n)]).astype(np.float64)
    y = (X[:, 0] + rng.integers(0, 3, n)).astype(target_dtype)
    labels = (X[:, 2] // 5 + rng.integers(0, 2, n)).astype(int)
    for discrete in ("auto", True, [False, True, False, True]):
        for n_neighbors in (1, 3):
            kwargs = dict(discrete_features=discrete, n_neighbors=n_neighbors, random_state=seed)
            _same(fsk.mutual_info_regression(X, y, **kwargs), sk_fs.mutual_info_regression(X, y, **kwargs))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                _same(fsk.mutual_info_classif(X, labels, **kwargs), sk_fs.mutual_info_classif(X, labels, **kwargs))


@pytest.mark.parametrize("seed", range(2))
def test_small_label_groups(sk_fs, seed):
    """Label groups of 2..7 samples (brute-force search in scikit-learn)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(12), rng.integers(2, 8, 12))
    n = labels.size
    X = np.column_stack([labels + rng.standard_normal(n), rng.integers(0, 3, n), rng.standard_normal(n)])
    for n_neighbors in (1, 3):
        kwargs = dict(n_neighbors=n_neighbors, random_state=seed)
        _same(fsk.mutual_info_classif(X, labels, **kwargs), sk_fs.mutual_info_classif(X, labels, **kwargs))
        y = X[:, 0] + rng.standard_normal(n)
        kwargs["discrete_features"] = [False, True, False]
        Xd = X.copy()
        Xd[:, 1] = labels
        _same(fsk.mutual_info_regression(Xd, y, **kwargs), sk_fs.mutual_info_regression(Xd, y, **kwargs))


def test_all_clipped_columns_give_integer_zeros(sk_fs):
    """scikit-learn's max(0, mi) returns the integer 0: an array of them has an integer dtype."""
    X = np.array([[0.0], [1.0], [0.0], [1.0], [0.0], [1.0]])
    y = np.array([0, 0, 1, 1, 2, 2])
    for function in ("mutual_info_classif", "mutual_info_regression"):
        want = getattr(sk_fs, function)(X, y, random_state=0)
        _same(getattr(fsk, function)(X, y, random_state=0), want)


def test_extreme_magnitudes(sk_fs):
    """Columns whose squares overflow float64: scikit-learn's KD-tree is replayed."""
    rng = np.random.default_rng(14)
    n = 200
    y = rng.integers(0, 3, n)
    X = np.column_stack([np.full(n, 1e200) + 1e190 * rng.standard_normal(n),
                         (y + rng.standard_normal(n)) * 1e-155, rng.integers(0, 4, n) * 1e300])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _same(fsk.mutual_info_classif(X, y, random_state=0), sk_fs.mutual_info_classif(X, y, random_state=0))
        target = y * 1e250 + 1e240 * rng.standard_normal(n)
        Xd = np.column_stack([y, rng.integers(0, 2, n)]).astype(float)
        _same(fsk.mutual_info_regression(Xd, target, discrete_features=True, random_state=0),
              sk_fs.mutual_info_regression(Xd, target, discrete_features=True, random_state=0))


def test_string_labels_and_singleton_class(sk_fs):
    rng = np.random.default_rng(8)
    labels = np.array(["cat", "dog", "eel"])[rng.integers(0, 3, 300)]
    labels[0] = "fox"  # a class with one sample: left out of Ross, as scikit-learn does
    X = rng.standard_normal((300, 3))
    X[:, 0] += (labels == "dog") * 2.0
    _same(fsk.mutual_info_classif(X, labels, random_state=2), sk_fs.mutual_info_classif(X, labels, random_state=2))


def test_random_state_instance_and_global_state(sk_fs):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 3))
    y = X[:, 0] + rng.standard_normal(300)
    _same(fsk.mutual_info_regression(X, y, random_state=np.random.RandomState(17)),
          sk_fs.mutual_info_regression(X, y, random_state=np.random.RandomState(17)))
    np.random.seed(99)
    got = fsk.mutual_info_regression(X, y)
    np.random.seed(99)
    _same(got, sk_fs.mutual_info_regression(X, y))


def test_copy_semantics(sk_fs):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((200, 3))
    y = X[:, 0] + rng.standard_normal(200)
    ours, theirs = X.copy(), X.copy()
    fsk.mutual_info_regression(ours, y, copy=True, random_state=0)
    np.testing.assert_array_equal(ours, X)  # copy=True leaves X alone
    _same(fsk.mutual_info_regression(ours, y, copy=False, random_state=0),
          sk_fs.mutual_info_regression(theirs, y, copy=False, random_state=0))
    # copy=False overwrites X with the scaled, noised data, exactly as scikit-learn does
    assert not np.array_equal(ours, X)
    np.testing.assert_array_equal(ours, theirs)
    y_before = y.copy()
    fsk.mutual_info_regression(X, y, random_state=0)
    np.testing.assert_array_equal(y, y_before)


def test_sparse_input_is_discrete_by_default(sk_fs):
    rng = np.random.default_rng(10)
    dense = rng.integers(0, 3, (200, 4)) * (rng.random((200, 4)) < 0.4)
    y = (dense[:, 0] > 0).astype(int) + rng.integers(0, 2, 200)
    X = sparse.csr_matrix(dense.astype(float))
    _same(fsk.mutual_info_classif(X, y, random_state=0), sk_fs.mutual_info_classif(X, y, random_state=0))
    target = y + 0.5 * rng.standard_normal(200)
    _same(fsk.mutual_info_regression(X, target, random_state=0), sk_fs.mutual_info_regression(X, target, random_state=0))


def test_select_k_best_end_to_end(sk_fs):
    from sklearn.feature_selection import SelectKBest

    rng = np.random.default_rng(12)
    X = rng.standard_normal((400, 8))
    y = X[:, 0] + 0.3 * X[:, 1] + rng.standard_normal(400)
    ours = SelectKBest(lambda X, y: fsk.mutual_info_regression(X, y, random_state=0), k=2).fit(X, y)
    theirs = SelectKBest(lambda X, y: sk_fs.mutual_info_regression(X, y, random_state=0), k=2).fit(X, y)
    np.testing.assert_array_equal(ours.get_support(), theirs.get_support())
    assert SelectKBest(fsk.mutual_info_regression, k=3).fit(X, y).transform(X).shape == (400, 3)


def _outcome(function, *args, **kwargs):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the type and message are what is compared
        return type(exc).__name__, str(exc)
    return "ok", (result.dtype.str, np.round(np.asarray(result, dtype=float), 8).tolist())


_X = np.random.default_rng(0).standard_normal((20, 3))
_Y = np.arange(20) % 2
ERROR_CASES = {
    "n_neighbors=True": dict(n_neighbors=True), "n_neighbors=0": dict(n_neighbors=0),
    "n_neighbors=2.0": dict(n_neighbors=2.0), "n_neighbors=None": dict(n_neighbors=None),
    "n_neighbors=n-1": dict(n_neighbors=19), "n_neighbors=n": dict(n_neighbors=20),
    "copy=1": dict(copy=1), "copy=np.True_": dict(copy=np.True_), "n_jobs=1.5": dict(n_jobs=1.5),
    "n_jobs=True": dict(n_jobs=True), "n_jobs=0": dict(n_jobs=0),
    "random_state=-1": dict(random_state=-1), "random_state=2**32": dict(random_state=2**32),
    "random_state=1.5": dict(random_state=1.5), "random_state=Generator": dict(random_state=np.random.default_rng()),
    "discrete=manual": dict(discrete_features="manual"), "discrete=1": dict(discrete_features=1),
    "discrete=np.True_": dict(discrete_features=np.True_), "discrete=None": dict(discrete_features=None),
    "discrete=[]": dict(discrete_features=[]), "discrete=[1, 4]": dict(discrete_features=[1, 4]),
    "discrete=[-1]": dict(discrete_features=[-1]), "discrete=[-4]": dict(discrete_features=[-4]),
    "discrete=[1.0]": dict(discrete_features=[1.0]), "discrete=mask of 4": dict(discrete_features=[True, False] * 2),
    "discrete=mask of 2": dict(discrete_features=[True, False]), "discrete=all-True mask of 4": dict(
        discrete_features=[True] * 4), "discrete=all-True mask of 2": dict(discrete_features=[True] * 2),
    "discrete=[[0, 1]]": dict(discrete_features=[[0, 1]]), "discrete=2-D mask": dict(
        discrete_features=[[True, False, True]]), "discrete=['a']": dict(discrete_features=["a"]),
    "discrete=[nan]": dict(discrete_features=[np.nan]), "discrete=set": dict(discrete_features={0}),
    "discrete=3-D": dict(discrete_features=np.zeros((1, 1, 1), int)),
    "X=None": dict(X=None), "y=None": dict(y=None), "X 1-D": dict(X=_X[:, 0]), "X 3-D": dict(X=_X[None]),
    "X with NaN": dict(X=np.where(_X > 1, np.nan, _X)), "X with inf": dict(X=np.where(_X > 1, np.inf, _X)),
    "X strings": dict(X=np.array([["a"] * 3] * 20)), "X complex": dict(X=_X + 1j), "X empty": dict(X=_X[:0], y=_Y[:0]),
    "X no columns": dict(X=_X[:, :0]), "y short": dict(y=_Y[:19]), "y 2-D": dict(y=np.column_stack([_Y, _Y])),
    "y column": dict(y=_Y[:, None]), "y with NaN": dict(y=np.where(_Y > 0, np.nan, 0.0)),
    "y continuous": dict(y=_X[:, 0]), "y object": dict(y=_Y.astype(object)),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
@pytest.mark.parametrize("name", ["mutual_info_regression", "mutual_info_classif"])
def test_same_exceptions_and_messages(sk_fs, name, case):
    kwargs = dict(X=_X, y=_Y, random_state=0)
    kwargs.update(ERROR_CASES[case])
    want = _outcome(getattr(sk_fs, name), **kwargs)
    got = _outcome(getattr(fsk, name), **kwargs)
    if "Generator" in want[1]:  # the repr holds an address
        want, got = (want[0], want[1].split(" at ")[0]), (got[0], got[1].split(" at ")[0])
    assert got == want


def test_invalid_parameter_error_is_value_and_type_error():
    with pytest.raises(ValueError):
        fsk.mutual_info_regression(_X, _Y, n_neighbors=2.5)
    with pytest.raises(TypeError):
        fsk.mutual_info_regression(_X, _Y, n_neighbors=2.5)


def test_module_does_not_import_sklearn():
    import fastinfo

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fastinfo.__file__)))
    code = ("import sys, numpy as np, fastinfo.sklearn as f; "
            "f.mutual_info_classif(np.arange(40.0)[:, None] % 7, np.arange(40) % 3, random_state=0); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_wide_table(sk_fs):
    rng = np.random.default_rng(21)
    X = rng.standard_normal((5000, 20))
    y = X[:, 0] + rng.standard_normal(5000)
    _same(fsk.mutual_info_regression(X, y, random_state=3), sk_fs.mutual_info_regression(X, y, random_state=3))

"""fastinfo.sklearn against scikit-learn itself: same values (1e-10), same errors."""
import subprocess
import sys

import numpy as np
import pytest

import fastinfo.sklearn as fsk

sk_fs = pytest.importorskip("sklearn.feature_selection")
from scipy import sparse  # noqa: E402

ATOL = 1e-10


def _gaussian_table(n, m, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, m))
    X[:, 1::3] *= 50.0  # different scales: the scaling step matters
    y = X[:, 0] + 0.02 * X[:, 1] + 0.5 * rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("random_state", [0, 1, 42])
@pytest.mark.parametrize("n_neighbors", [1, 3, 7])
def test_regression_continuous_matches_sklearn(random_state, n_neighbors):
    X, y = _gaussian_table(500, 6, random_state)
    got = fsk.mutual_info_regression(X, y, n_neighbors=n_neighbors, random_state=random_state)
    want = sk_fs.mutual_info_regression(X, y, n_neighbors=n_neighbors, random_state=random_state)
    assert got.dtype == np.float64 and got.shape == (6,)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    assert got[0] > 0.2  # the informative column is found (true MI 0.29)


def _mixed_table(n, seed):
    rng = np.random.default_rng(seed)
    cont = rng.standard_normal((n, 3))
    disc = np.column_stack([rng.integers(0, 4, n), rng.integers(0, 2, n), rng.integers(-3, 3, n)]).astype(float)
    X = np.column_stack([cont[:, 0], disc[:, 0], cont[:, 1], disc[:, 1], cont[:, 2], disc[:, 2]])
    y = cont[:, 0] + disc[:, 0] + 0.3 * rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("random_state", [0, 7])
@pytest.mark.parametrize("how", ["mask", "indices"])
def test_regression_mixed_columns_matches_sklearn(random_state, how):
    X, y = _mixed_table(400, random_state)
    mask = np.array([False, True, False, True, False, True])
    discrete = mask if how == "mask" else np.flatnonzero(mask)
    got = fsk.mutual_info_regression(X, y, discrete_features=discrete, random_state=random_state)
    want = sk_fs.mutual_info_regression(X, y, discrete_features=discrete, random_state=random_state)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    assert got[1] > 0.2 and got[0] > 0.1


def test_regression_all_discrete_matches_sklearn():
    rng = np.random.default_rng(3)
    X = rng.integers(0, 5, (300, 4)).astype(float)
    y = X[:, 0] * 2.0 + rng.standard_normal(300)
    got = fsk.mutual_info_regression(X, y, discrete_features=True, random_state=0)
    want = sk_fs.mutual_info_regression(X, y, discrete_features=True, random_state=0)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_regression_discrete_column_with_singleton_labels():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 2))
    X[:, 1] = rng.integers(0, 6, 200)
    X[:3, 1] = [100.0, 101.0, 102.0]  # three labels that occur once
    y = X[:, 0] + 0.1 * X[:, 1] + rng.standard_normal(200)
    got = fsk.mutual_info_regression(X, y, discrete_features=[1], random_state=5)
    want = sk_fs.mutual_info_regression(X, y, discrete_features=[1], random_state=5)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("random_state", [0, 11, 123])
def test_classif_matches_sklearn(random_state):
    rng = np.random.default_rng(random_state)
    n = 600
    y = rng.integers(0, 3, n)
    X = np.column_stack(
        [
            y + 0.5 * rng.standard_normal(n),
            rng.standard_normal(n) * 10,
            (y + rng.integers(0, 2, n)) % 3,
            rng.integers(0, 4, n),
        ]
    ).astype(float)
    for discrete in ("auto", [2, 3], np.array([False, False, True, True])):
        got = fsk.mutual_info_classif(X, y, discrete_features=discrete, random_state=random_state)
        want = sk_fs.mutual_info_classif(X, y, discrete_features=discrete, random_state=random_state)
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    assert got[0] > 0.3 and got[2] > 0.1


def test_classif_string_labels_and_singleton_class():
    rng = np.random.default_rng(8)
    labels = np.array(["cat", "dog", "eel"])[rng.integers(0, 3, 300)]
    labels[0] = "fox"  # a class with one sample: left out of Ross, as scikit-learn does
    X = rng.standard_normal((300, 3))
    X[:, 0] += (labels == "dog") * 2.0
    got = fsk.mutual_info_classif(X, labels, random_state=2)
    want = sk_fs.mutual_info_classif(X, labels, random_state=2)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_one_column_and_integer_input():
    rng = np.random.default_rng(9)
    X = rng.integers(-50, 50, (300, 1))
    y = X[:, 0] + rng.integers(-20, 20, 300)
    got = fsk.mutual_info_regression(X, y, random_state=0)
    want = sk_fs.mutual_info_regression(X, y, random_state=0)
    assert got.shape == (1,)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_random_state_instance_and_global_state():
    X, y = _gaussian_table(300, 3, 5)
    got = fsk.mutual_info_regression(X, y, random_state=np.random.RandomState(17))
    want = sk_fs.mutual_info_regression(X, y, random_state=np.random.RandomState(17))
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    np.random.seed(99)
    got = fsk.mutual_info_regression(X, y)
    np.random.seed(99)
    want = sk_fs.mutual_info_regression(X, y)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_copy_semantics_match_sklearn():
    X, y = _gaussian_table(200, 3, 6)
    ours, theirs = X.copy(), X.copy()
    fsk.mutual_info_regression(ours, y, copy=True, random_state=0)
    np.testing.assert_array_equal(ours, X)  # copy=True leaves X alone
    got = fsk.mutual_info_regression(ours, y, copy=False, random_state=0)
    want = sk_fs.mutual_info_regression(theirs, y, copy=False, random_state=0)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    # copy=False overwrites X with the scaled, noised data, exactly as scikit-learn does
    assert not np.array_equal(ours, X)
    np.testing.assert_array_equal(ours, theirs)
    y_before = y.copy()
    fsk.mutual_info_regression(X, y, random_state=0)
    np.testing.assert_array_equal(y, y_before)


def test_sparse_input_is_discrete_by_default():
    rng = np.random.default_rng(10)
    dense = rng.integers(0, 3, (200, 4)) * (rng.random((200, 4)) < 0.4)
    y = (dense[:, 0] > 0).astype(int) + rng.integers(0, 2, 200)
    X = sparse.csr_matrix(dense.astype(float))
    got = fsk.mutual_info_classif(X, y, random_state=0)
    want = sk_fs.mutual_info_classif(X, y, random_state=0)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    with pytest.raises(ValueError, match="Sparse matrix `X` can't have continuous features"):
        fsk.mutual_info_classif(X, y, discrete_features=False)


def test_select_k_best_end_to_end():
    from sklearn.feature_selection import SelectKBest

    X, y = _gaussian_table(400, 8, 12)
    ours = SelectKBest(lambda X, y: fsk.mutual_info_regression(X, y, random_state=0), k=2).fit(X, y)
    theirs = SelectKBest(lambda X, y: sk_fs.mutual_info_regression(X, y, random_state=0), k=2).fit(X, y)
    np.testing.assert_array_equal(ours.get_support(), theirs.get_support())
    assert ours.get_support()[0]
    # and directly, with the function itself as score_func
    assert SelectKBest(fsk.mutual_info_regression, k=3).fit(X, y).transform(X).shape == (400, 3)


def test_independent_features_clip_at_zero():
    rng = np.random.default_rng(13)
    X = rng.standard_normal((300, 10))
    y = rng.standard_normal(300)
    got = fsk.mutual_info_regression(X, y, random_state=0)
    assert (got >= 0).all() and (got == 0).any()
    np.testing.assert_allclose(got, sk_fs.mutual_info_regression(X, y, random_state=0), rtol=0, atol=ATOL)


@pytest.mark.parametrize("func", ["mutual_info_regression", "mutual_info_classif"])
def test_errors_like_sklearn(func):
    ours, theirs = getattr(fsk, func), getattr(sk_fs, func)
    X = np.random.default_rng(0).standard_normal((20, 2))
    y = np.arange(20) % 2
    cases = [
        dict(X=X, y=y[:19]),
        dict(X=np.where(X > 1, np.nan, X), y=y),
        dict(X=X, y=y, n_neighbors=0),
        dict(X=X, y=y, n_neighbors=-2),
        dict(X=X, y=y, n_neighbors=2.5),
        dict(X=X, y=y, discrete_features="sometimes"),
        dict(X=X[:, 0], y=y),
    ]
    for case in cases:
        with pytest.raises(ValueError) as theirs_err:
            theirs(**case)
        with pytest.raises(ValueError) as ours_err:
            ours(**case)
        # the same kind of message: the offending parameter or the problem is named
        for key in ("inconsistent numbers of samples", "contains NaN", "n_neighbors", "discrete_features", "2D array"):
            if key in str(theirs_err.value):
                assert key in str(ours_err.value), (case, str(ours_err.value))
    with pytest.raises(TypeError):
        ours(X, y, n_neighbors=2.5)  # scikit-learn's InvalidParameterError is also a TypeError


def test_classif_refuses_continuous_target():
    X = np.random.default_rng(0).standard_normal((20, 2))
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        fsk.mutual_info_classif(X, X[:, 0])


def test_module_does_not_import_sklearn():
    import os

    import fastinfo

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fastinfo.__file__)))
    code = "import sys, fastinfo.sklearn; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_wide_table_matches_sklearn():
    X, y = _gaussian_table(5000, 20, 21)
    got = fsk.mutual_info_regression(X, y, random_state=3)
    want = sk_fs.mutual_info_regression(X, y, random_state=3)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)

"""Estimators from samples: the compiled estimators against the brute-force twins of reference.py.

Agreement to 1e-10 over n, dimensions, k, both KSG algorithms, and data with many ties
(integer-valued floats, repeated rows), where the strict / non-strict counts and the tie-break of
the k neighbours matter.
"""
import zlib

import numpy as np
import pytest

import fastinfo as fi
import reference as ref
from kd_paths import generic_and_fixed

RTOL = 1e-10
ATOL = 1e-12


def seed(*parts):
    """A seed that is the same in every run (``hash`` of a str is salted per process)."""
    return zlib.crc32(repr(parts).encode())


def close(a, b):
    return abs(a - b) <= ATOL + RTOL * abs(b)


def gaussian_pair(rng, n, dx, dy, rho=0.6):
    x = rng.normal(size=(n, dx))
    y = rho * x[:, :1] + np.sqrt(1 - rho**2) * rng.normal(size=(n, dy))
    return x, y


def tied_pair(rng, n, dx, dy):
    """Integer-valued floats with few levels and some repeated rows: many exact ties."""
    x = rng.integers(0, 4, size=(n, dx)).astype(np.float64)
    y = x[:, :1] + rng.integers(0, 3, size=(n, dy))
    repeat = rng.integers(0, n, size=n // 5)
    x[: n // 5] = x[repeat]
    y[: n // 5] = y[repeat]
    return x, y


DIMS = [(1, 1), (1, 2), (2, 1), (3, 3), (4, 4)]


@pytest.mark.parametrize("n", [20, 200])
@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("k", [1, 3, 5, 10])
@pytest.mark.parametrize("algorithm", [1, 2])
@pytest.mark.parametrize("data", ["gaussian", "ties"])
def test_ksg_matches_reference(n, dims, k, algorithm, data):
    rng = np.random.default_rng(seed(n, dims, k, algorithm, data))
    x, y = (gaussian_pair if data == "gaussian" else tied_pair)(rng, n, *dims)
    got = fi.mutual_info_ksg(x, y, k=k, algorithm=algorithm)
    want = ref.mutual_info_ksg_ref(x, y, k=k, algorithm=algorithm)
    assert type(got) is float
    assert close(got, want), (got, want)


@pytest.mark.slow
@pytest.mark.parametrize("dims", [(1, 1), (2, 2)])
@pytest.mark.parametrize("algorithm", [1, 2])
@pytest.mark.parametrize("data", ["gaussian", "ties"])
def test_ksg_matches_reference_n2000(dims, algorithm, data):
    rng = np.random.default_rng(7)
    x, y = (gaussian_pair if data == "gaussian" else tied_pair)(rng, 2000, *dims)
    for k in (1, 5) if dims == (1, 1) else (3,):
        got = fi.mutual_info_ksg(x, y, k=k, algorithm=algorithm)
        want = ref.mutual_info_ksg_ref(x, y, k=k, algorithm=algorithm)
        assert close(got, want), (k, got, want)


def test_ksg_all_points_identical_within_clusters():
    # every joint point has k or more exact duplicates: eps_i = 0, algorithm 1 counts nothing
    x = np.repeat([0.0, 1.0, 2.0], 10)
    y = np.repeat([5.0, 3.0, 5.0], 10)
    for algorithm in (1, 2):
        got = fi.mutual_info_ksg(x, y, k=3, algorithm=algorithm)
        want = ref.mutual_info_ksg_ref(x, y, k=3, algorithm=algorithm)
        assert close(got, want), (algorithm, got, want)
    from scipy.special import digamma

    n = 30
    assert close(fi.mutual_info_ksg(x, y, k=3), digamma(3) + digamma(n) - 2 * digamma(1))


@pytest.mark.parametrize("n", [20, 200])
@pytest.mark.parametrize("dims", [(1, 1, 1), (2, 1, 1), (1, 1, 2), (2, 2, 3)])
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("data", ["gaussian", "ties"])
def test_conditional_matches_reference(n, dims, k, data):
    rng = np.random.default_rng(seed(n, dims, k, data))
    dx, dy, dz = dims
    if data == "gaussian":
        z = rng.normal(size=(n, dz))
        x = z[:, :1] + rng.normal(size=(n, dx))
        y = z[:, :1] + rng.normal(size=(n, dy))
    else:
        z = rng.integers(0, 3, size=(n, dz)).astype(float)
        x = z[:, :1] + rng.integers(0, 3, size=(n, dx))
        y = z[:, :1] + rng.integers(0, 3, size=(n, dy))
    got = fi.conditional_mutual_info_ksg(x, y, z, k=k)
    assert type(got) is float
    assert close(got, ref.conditional_mutual_info_ksg_ref(x, y, z, k=k))


@pytest.mark.parametrize("n, d", [(20, 1), (20, 2), (20, 4), (200, 1), (200, 2), (200, 4), (2000, 1), (2000, 2)])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_entropy_matches_reference(n, d, k):
    rng = np.random.default_rng(n * 100 + d * 10 + k)
    x = rng.normal(size=(n, d)) * np.arange(1, d + 1)
    got = fi.entropy_knn(x, k=k)
    assert type(got) is float
    assert close(got, ref.entropy_knn_ref(x, k=k))


def test_entropy_with_some_duplicates_below_k():
    # duplicates are fine as long as the k-th neighbour distance stays positive
    rng = np.random.default_rng(3)
    x = rng.normal(size=100)
    x[:40] = np.repeat(x[:20], 2)
    assert close(fi.entropy_knn(x, k=3), ref.entropy_knn_ref(x, k=3))


MIXED_CASES = [(n, d, data) for n in (20, 200) for d in (1, 2, 3) for data in ("gaussian", "ties")]
MIXED_CASES += [(2000, 1, "gaussian")]   # the large case in 1-D only: keeps the suite fast


@pytest.mark.parametrize("n, d, data", MIXED_CASES)
@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_mixed_matches_reference(n, d, k, data):
    rng = np.random.default_rng(seed(n, d, k, data))
    labels = rng.integers(0, 4, size=n)
    labels[:3] = [10, 11, 11]          # a singleton label (left out) and a label of size 2 (< k)
    if data == "gaussian":
        x = labels[:, None] * 0.5 + rng.normal(size=(n, d))
    else:
        x = (labels[:, None] + rng.integers(0, 3, size=(n, d))).astype(float)
    got = fi.mutual_info_mixed(x, labels, k=k)
    assert type(got) is float
    assert close(got, ref.mutual_info_mixed_ref(x, labels, k=k))


def test_mixed_string_labels_equal_integer_labels():
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 3, size=300)
    x = codes + rng.normal(size=300)
    names = np.array(["a", "b", "c"])[codes]
    assert fi.mutual_info_mixed(x, names) == fi.mutual_info_mixed(x, codes)


def test_mixed_against_sklearn_private_estimator():
    fs = pytest.importorskip("sklearn.feature_selection._mutual_info")
    rng = np.random.default_rng(11)
    for n_labels in (2, 5):
        labels = rng.integers(0, n_labels, size=800)
        x = labels + rng.normal(size=800)   # tie-free continuous samples, MI well above 0
        for k in (1, 3, 7):
            want = fs._compute_mi_cd(x, labels, k)
            assert want > 0      # scikit-learn clips at 0: stay where that does not matter
            assert close(fi.mutual_info_mixed(x, labels, k=k), want)


@pytest.mark.parametrize("n", [1, 10, 500])
def test_discrete_matches_sklearn(n):
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(n)
    a = rng.integers(0, 5, size=n)
    b = (a + rng.integers(0, 3, size=n)) % 7
    got = fi.mutual_info_discrete(a, b)
    assert type(got) is float
    assert close(got, mutual_info_score(a, b))
    assert close(got, ref.mutual_info_discrete_ref(a, b))


@pytest.mark.filterwarnings("ignore:Clustering metrics expects discrete values:UserWarning")
def test_discrete_any_labels():
    # float labels are labels here; scikit-learn's reference warns that they look continuous
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(2)
    a = rng.choice(np.array(["cat", "dog", "eel"]), size=400)
    b = rng.normal(size=400).round(1)          # float labels
    assert close(fi.mutual_info_discrete(a, b), mutual_info_score(a, b))
    assert close(fi.mutual_info_discrete(a, b, base=2), mutual_info_score(a, b) / np.log(2))


def test_discrete_huge_label_product_is_sparse():
    # 10^5 distinct labels on each side: a dense contingency table would hold 10^10 cells
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(4)
    a = rng.permutation(100_000)
    b = a // 2 + rng.integers(0, 2, size=100_000) * 10**9
    assert close(fi.mutual_info_discrete(a, b), mutual_info_score(a, b))


def test_from_joint_matches_reference_and_discrete():
    rng = np.random.default_rng(8)
    counts = rng.integers(0, 20, size=(4, 6)).astype(float)
    counts[1, :] = 0.0
    got = fi.mutual_info_from_joint(counts)
    assert type(got) is float
    assert close(got, ref.mutual_info_from_joint_ref(counts))
    assert close(fi.mutual_info_from_joint(counts / counts.sum()), got)
    # a count table is the contingency table of label pairs
    a = np.repeat(np.repeat(np.arange(4), 6), counts.astype(int).ravel())
    b = np.repeat(np.tile(np.arange(6), 4), counts.astype(int).ravel())
    assert close(fi.mutual_info_discrete(a, b), got)
    assert fi.mutual_info_from_joint([[0.5, 0.0], [0.0, 0.5]], base=2) == pytest.approx(1.0, abs=1e-15)
    assert fi.mutual_info_from_joint(np.outer([0.2, 0.8], [0.3, 0.7])) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("ties", [False, True])
def test_matrix_matches_ksg_bitwise(ties):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(300, 4))
    X[:, 1] += X[:, 0]
    if ties:
        X = np.round(X)
    M = fi.mutual_info_matrix(X, k=4)
    assert M.dtype == np.float64 and M.shape == (4, 4)
    assert np.isnan(np.diag(M)).all()
    assert np.array_equal(M, M.T, equal_nan=True)
    for i in range(4):
        for j in range(4):
            if i != j:
                assert M[i, j] == fi.mutual_info_ksg(X[:, i], X[:, j], k=4)
    want = ref.mutual_info_matrix_ref(X[:60], k=4)
    got = fi.mutual_info_matrix(X[:60], k=4)
    off = ~np.eye(4, dtype=bool)
    np.testing.assert_allclose(got[off], want[off], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("discrete_features", [False, True, np.array([True, False, False, True])])
@pytest.mark.parametrize("discrete_target", [False, True])
def test_features_matches_reference(discrete_features, discrete_target):
    rng = np.random.default_rng(10)
    n = 200
    X = rng.normal(size=(n, 4))
    X[:, 0] = rng.integers(0, 3, size=n)
    X[:, 3] = rng.integers(0, 5, size=n)
    if np.any(discrete_features):
        mask = np.broadcast_to(discrete_features, (4,))
        X[:, mask] = rng.integers(0, 4, size=(n, int(mask.sum())))
    y = X[:, 0] + X[:, 1] + rng.normal(size=n)
    if discrete_target:
        y = (y > 0.5).astype(int) + (y > 2).astype(int)
    got = fi.mutual_info_features(X, y, k=3, discrete_features=discrete_features,
                                  discrete_target=discrete_target)
    want = ref.mutual_info_features_ref(X, y, k=3, discrete_features=discrete_features,
                                        discrete_target=discrete_target)
    assert got.dtype == np.float64 and got.shape == (4,)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_features_continuous_equal_ksg_bitwise():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(500, 3))
    y = X.sum(axis=1) + rng.normal(size=500)
    got = fi.mutual_info_features(X, y, k=5)
    for j in range(3):
        assert got[j] == fi.mutual_info_ksg(X[:, j], y, k=5)


@pytest.mark.parametrize("dims", [(1, 1), (2, 1), (2, 3)])
def test_permutation_test_matches_brute_force_loop(dims):
    rng = np.random.default_rng(13)
    n = 150
    x, y = gaussian_pair(rng, n, *dims, rho=0.15)
    n_perm = 40
    estimate, p_value = fi.mutual_info_test(x, y, k=3, n_permutations=n_perm, random_state=42)
    assert type(estimate) is float and type(p_value) is float
    assert estimate == fi.mutual_info_ksg(x, y, k=3)
    perm_rng = np.random.default_rng(42)
    null = [fi.mutual_info_ksg(x, y[perm_rng.permutation(n)], k=3) for _ in range(n_perm)]
    assert p_value == (1 + sum(v >= estimate for v in null)) / (1 + n_perm)
    ref_estimate, ref_p = ref.mutual_info_test_ref(x, y, k=3, n_permutations=n_perm, random_state=42)
    assert close(estimate, ref_estimate)
    assert p_value == ref_p


def test_permutation_test_strong_dependence_and_base():
    rng = np.random.default_rng(14)
    x = rng.normal(size=500)
    y = x + 0.3 * rng.normal(size=500)
    est, p = fi.mutual_info_test(x, y, n_permutations=99, random_state=1)
    assert p == 0.01
    est2, p2 = fi.mutual_info_test(x, y, n_permutations=99, random_state=1, base=2)
    assert close(est2, est / np.log(2)) and p2 == p


def test_infonce_matches_reference():
    rng = np.random.default_rng(15)
    scores = rng.normal(size=(64, 64)) + 3 * np.eye(64)
    got = fi.infonce_bound(scores)
    assert type(got) is float
    assert close(got, ref.infonce_bound_ref(scores))
    assert fi.infonce_bound(np.eye(8) * 1e3) == pytest.approx(np.log(8), abs=1e-12)


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937, np.random.Philox, np.random.SFC64])
@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000, 65537])
def test_permutations_drawn_like_numpy(bit_generator, n):
    # the kernels draw mutual_info_test's permutations themselves: the same permutations as
    # Generator.permutation(n) and the same generator state afterwards
    from fastinfo import _kernels

    ours, theirs = np.random.Generator(bit_generator(n)), np.random.Generator(bit_generator(n))
    got = _kernels.draw_permutations(ours, np.empty((4, n), dtype=np.intp))
    want = np.stack([theirs.permutation(n) for _ in range(4)])
    assert np.array_equal(got, want)
    assert ours.integers(0, 2**62, size=3).tolist() == theirs.integers(0, 2**62, size=3).tolist()


@pytest.mark.parametrize("dims", [(1, 1), (2, 1)])
def test_permutation_null_matches_a_loop_and_thread_counts(dims):
    # entry p of the null is the estimate on the p-th permutation drawn, whichever thread drew it;
    # a Generator passed as random_state is advanced exactly as the same loop would advance it
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(17)
    x, y = gaussian_pair(rng, 400, *dims, rho=0.2)
    n_perm = 37
    est_1 = {}
    for threads in (1, 2):
        gen = np.random.default_rng(9)
        with threadpool_limits(limits=threads, user_api="openmp"):
            est_1[threads] = fi.mutual_info_test(x, y, n_permutations=n_perm, random_state=gen)
        est_1[threads] += (gen.integers(0, 2**62),)
    loop_gen = np.random.default_rng(9)
    estimate = fi.mutual_info_ksg(x, y)
    null = np.array([fi.mutual_info_ksg(x, y[loop_gen.permutation(400)]) for _ in range(n_perm)])
    p_value = (1 + np.count_nonzero(null >= estimate)) / (1 + n_perm)
    assert est_1[1] == est_1[2] == (estimate, p_value, loop_gen.integers(0, 2**62))


# ----------------------------------------------------------------------------- 2-D grid path
# Two 1-D marginals use a quantile-bin grid for the joint k-NN search instead of the KD-tree;
# the private switch fastinfo._kernels._set_grid2 forces the KD-tree. Both must find the same
# neighbours (tie-break by (distance, sample index)), so every result is bitwise the same.


def _general_path(f):
    from fastinfo import _kernels

    old = _kernels._set_grid2(False)
    try:
        return f()
    finally:
        _kernels._set_grid2(old)


def _pair_1d(kind, rng, n):
    x = rng.normal(size=n)
    y = 0.6 * x + 0.8 * rng.normal(size=n)
    if kind == "ties":  # integer-valued: many exact distance ties
        x, y = np.round(2 * x), np.round(2 * y)
    elif kind == "duplicates":  # repeated rows
        idx = rng.integers(0, n // 4 + 1, size=n)
        x, y = x[idx], y[idx]
    elif kind == "few_levels":  # x with 3 values, heavy-tailed y
        x = rng.integers(0, 3, size=n).astype(np.float64)
        y = rng.standard_cauchy(size=n)
    elif kind == "identical":  # y == x: every point on the diagonal cells
        y = x.copy()
    return x, y


@pytest.mark.parametrize("kind", ["gaussian", "ties", "duplicates", "few_levels", "identical"])
@pytest.mark.parametrize("algorithm", [1, 2])
def test_grid_path_equals_general_path_bitwise(kind, algorithm):
    rng = np.random.default_rng(seed("grid", kind, algorithm))
    for n in (7, 60, 1000, 5000):
        x, y = _pair_1d(kind, rng, n)
        for k in (1, 3, 6):
            got = fi.mutual_info_ksg(x, y, k=k, algorithm=algorithm)
            want = _general_path(lambda: fi.mutual_info_ksg(x, y, k=k, algorithm=algorithm))
            assert got == want or (np.isnan(got) and np.isnan(want)), (n, k, got, want)
            if n <= 60:
                assert close(got, ref.mutual_info_ksg_ref(x, y, k=k, algorithm=algorithm))


@pytest.mark.parametrize("fill, tile", [(0.1, 1), (0.3, 7), (0.75, 32), (4.0, 2), (40.0, 1000)])
def test_grid_path_any_geometry_equals_general_path_bitwise(fill, tile):
    # The grid's cell size and the order of the queries (tiles) change which search finds the
    # neighbours (3x3 or 5x5 block of cells, or the strip search) and how the counts step
    # through the bins, never the result. fill 0.1 at small n: more bins than points (G <= n).
    from fastinfo import _kernels

    rng = np.random.default_rng(seed("grid-geometry", fill, tile))
    old_fill, old_tile = 0.75, 32
    try:
        _kernels._set_grid2_fill(fill)
        _kernels._set_grid2_tile(tile)
        for kind in ("gaussian", "ties", "duplicates", "few_levels"):
            for n in (5, 50, 3000):
                x, y = _pair_1d(kind, rng, n)
                for k in (1, 3, 4):
                    if k >= n:
                        continue
                    for algorithm in (1, 2):
                        got = fi.mutual_info_ksg(x, y, k=k, algorithm=algorithm)
                        want = _general_path(
                            lambda: fi.mutual_info_ksg(x, y, k=k, algorithm=algorithm))
                        assert got == want, (kind, n, k, algorithm, got, want)
    finally:
        _kernels._set_grid2_fill(old_fill)
        _kernels._set_grid2_tile(old_tile)


def test_grid_path_large_parallel_equals_general_path():
    # above the serial threshold (32768 points): the parallel region
    rng = np.random.default_rng(seed("grid-large"))
    x, y = _pair_1d("ties", rng, 40_000)
    for algorithm in (1, 2):
        got = fi.mutual_info_ksg(x, y, algorithm=algorithm)
        assert got == _general_path(lambda: fi.mutual_info_ksg(x, y, algorithm=algorithm))


@pytest.mark.parametrize("ties", [False, True])
def test_grid_path_matrix_features_and_test_equal_general_path(ties):
    rng = np.random.default_rng(seed("grid-multi", ties))
    X = rng.normal(size=(800, 4))
    X[:, 1] += X[:, 0]
    if ties:
        X = np.round(X)
    y = X[:, 0] + rng.normal(size=800)
    runs = [
        lambda: fi.mutual_info_matrix(X, k=3),
        lambda: fi.mutual_info_features(X, y, k=3),
        lambda: np.array(fi.mutual_info_test(X[:, 0], X[:, 1], n_permutations=30, random_state=2)),
    ]
    for run in runs:
        assert np.array_equal(run(), _general_path(run), equal_nan=True)


def test_radix_sort_rows_sorts_and_orders():
    from fastinfo import _kernels

    rng = np.random.default_rng(seed("radix"))
    rows = np.stack([
        rng.normal(size=5000) * 10.0 ** rng.integers(-300, 300, size=5000),
        np.round(rng.normal(size=5000)),  # ties, -0.0 and 0.0
        np.concatenate([[-0.0, 0.0, -np.finfo(float).max, np.finfo(float).max, -5e-324, 5e-324],
                        rng.exponential(size=4994)]),
        np.full(5000, 3.5),
    ])
    sorted_rows, orders = _kernels.sort_rows_with_order(rows)
    assert orders.dtype == np.intp and sorted_rows.shape == rows.shape
    for r in range(rows.shape[0]):
        assert np.array_equal(sorted_rows[r], np.sort(rows[r]))
        assert np.array_equal(np.sort(orders[r]), np.arange(5000))
        assert np.array_equal(rows[r][orders[r]], sorted_rows[r])
    # the estimators do not depend on the order of tied values: radix (long rows) vs argsort
    import fastinfo._estimators as est

    x, y = _pair_1d("ties", rng, 3000)
    want = fi.mutual_info_ksg(x, y)
    old = est._RADIX_SORT_MIN
    try:
        est._RADIX_SORT_MIN = 10**9
        assert fi.mutual_info_ksg(x, y) == want
    finally:
        est._RADIX_SORT_MIN = old


@pytest.mark.parametrize("kind", ["wide exponents", "ties", "cauchy", "constant", "narrow", "mixed signs"])
def test_radix_sort_long_rows(kind):
    # rows of 131072 values or more take the MSD-then-LSD path: the same sorted values and a
    # valid order, for spreads that put everything in one MSD bucket or in thousands
    from fastinfo import _kernels

    rng = np.random.default_rng(seed("radix-long" + kind))
    n = 140_000
    row = {
        "wide exponents": lambda: rng.normal(size=n) * 10.0 ** rng.integers(-300, 300, size=n),
        "ties": lambda: np.round(rng.normal(size=n) * 3),       # ties, -0.0 and 0.0
        "cauchy": lambda: rng.standard_cauchy(size=n),
        "constant": lambda: np.full(n, -2.25),
        "narrow": lambda: 1.0 + rng.uniform(0, 1e-12, size=n),  # keys differ only in low bits
        "mixed signs": lambda: np.concatenate([[-np.finfo(float).max, 5e-324, -5e-324, -0.0, 0.0],
                                               rng.exponential(size=n - 5) * rng.choice([-1, 1], n - 5)]),
    }[kind]()
    sorted_rows, orders = _kernels.sort_rows_with_order(row[None, :])
    assert np.array_equal(sorted_rows[0], np.sort(row))
    assert np.array_equal(np.sort(orders[0]), np.arange(n))
    assert np.array_equal(row[orders[0]], sorted_rows[0])


def test_general_path_parallel_region_multidimensional_marginal():
    # above the serial threshold: the fused parallel KSG pass with a KD-tree marginal (2-D x)
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed("fused-2d"))
    x, y = gaussian_pair(rng, 40_000, 2, 1)
    x = np.round(4 * x) / 4  # ties

    def run():
        return [fi.mutual_info_ksg(x, y), fi.mutual_info_ksg(x, y, algorithm=2)]

    default = run()
    with threadpool_limits(1, "openmp"):
        assert run() == default


@pytest.mark.parametrize("data", ["gaussian", "ties"])
def test_kdtree_simd_paths_match_reference(data):
    """4-D marginals and 8-D joints take vectorised KD-tree paths (AVX2 when the CPU has it,
    else the scalar code): both must give the brute-force results, bitwise the same."""
    import fastinfo._kernels as kernels

    rng = np.random.default_rng(41 if data == "gaussian" else 42)
    n = 700
    if data == "gaussian":
        x = rng.normal(size=(n, 4))
        y = 0.6 * x + rng.normal(size=(n, 4))
        z = rng.normal(size=(n, 4))
    else:
        x = rng.integers(0, 4, size=(n, 4)).astype(np.float64)
        y = x + rng.integers(0, 3, size=(n, 4))
        z = rng.integers(0, 3, size=(n, 4)).astype(np.float64)
        x[: n // 5] = x[rng.integers(0, n, n // 5)]

    def run():
        out = []
        for k in (1, 4):
            out += [fi.mutual_info_ksg(x, y, k=k, algorithm=1), fi.mutual_info_ksg(x, y, k=k, algorithm=2),
                    fi.conditional_mutual_info_ksg(x[:, :2], y[:, :2], z, k=k)]
        return out

    want = []
    for k in (1, 4):
        want += [ref.mutual_info_ksg_ref(x, y, k=k, algorithm=1), ref.mutual_info_ksg_ref(x, y, k=k, algorithm=2),
                 ref.conditional_mutual_info_ksg_ref(x[:, :2], y[:, :2], z, k=k)]
    default = generic_and_fixed(run, switch=kernels._set_kd_avx2)
    for got, w in zip(default, want):
        assert close(got, w), (got, w)
    if data == "gaussian":
        j = np.hstack([x, y])
        (h,) = generic_and_fixed(lambda: [fi.entropy_knn(j, k=3)], switch=kernels._set_kd_avx2)
        assert close(h, ref.entropy_knn_ref(j, k=3))


def test_prepared_column_pairs_equal_ksg_bitwise_and_check_lengths():
    # mutual_info_matrix's kernel reads prepared columns in place (rows of one array or separate
    # arrays): every pair bitwise mutual_info_ksg's mean term; malformed input raises, never reads
    # out of bounds
    from fastinfo import _estimators, _kernels

    rng = np.random.default_rng(seed("prepared-pairs"))
    for n in (5, 300, 40_000):
        x = rng.normal(size=(n, 4))
        x[:, 2] = np.round(x[:, 2])
        blocks = [_estimators.prepare_columns(np.ascontiguousarray(x[:, [j]].T), 3) for j in range(4)]
        pairs = np.array([[0, 1], [1, 0], [0, 0], [1, 1]])
        terms = _estimators.column_pair_mean_terms(blocks[:2], blocks[2:], pairs, 3)
        for (a, b), t in zip(pairs.tolist(), terms.tolist()):
            constant = _kernels.digamma_integer(3) + _kernels.digamma_integer(n)
            assert constant - t == fi.mutual_info_ksg(x[:, a], x[:, 2 + b]), (n, a, b)
    p = blocks[0]
    rows = ([p.values[0]], [p.sorted_values[0]], [p.bins[0]])
    with pytest.raises(ValueError, match="samples"):
        _kernels.ksg_grid_pairs(*rows, *rows, np.zeros((1, 2), dtype=np.intp), n + 1, p.grid_side, 3)
    with pytest.raises(ValueError, match="out of range"):
        _kernels.ksg_grid_pairs(*rows, *rows, np.array([[0, 1]], dtype=np.intp), n, p.grid_side, 3)


@pytest.mark.parametrize("data", ["gaussian", "ties"])
@pytest.mark.parametrize("d", [2, 3, 4, 5, 6, 7])
def test_fixed_dimension_kdtree_paths_equal_generic_and_reference(d, data):
    # csrc/kdtree_lowd.h: k-NN searches and range counts with the dimension fixed at compile
    # time (2..7), grouped walks, vector leaf scans and larger leaves. The same neighbours and
    # counts as the generic tree code, so bitwise the same estimates, and the brute-force
    # references.
    from fastinfo import _kernels as kernels

    rng = np.random.default_rng(100 + d)
    n = 700
    j = rng.standard_normal((n, d + 1))
    j[:, 1] += 0.8 * j[:, 0]
    if data == "ties":
        j = np.round(j * 2) / 2
        j[: n // 7] = j[rng.integers(0, n, n // 7)]
    x, y, z = j[:, :d - 1] if d > 1 else j[:, :1], j[:, d - 1:d], j[:, d:]

    def run():
        out = [fi.mutual_info_ksg(x, y, k=4), fi.mutual_info_ksg(x, y, k=2, algorithm=2),
               fi.conditional_mutual_info_ksg(x, y, z, k=4),
               fi.mutual_info_ksg(j[:, :d], j[:, d:], k=3, local=True)]
        if data == "gaussian":
            out.append(fi.entropy_knn(j[:, :d], k=3))
        return out

    fixed = generic_and_fixed(run)
    # the 4-lane (AVX2) leaf scans where the 8-lane (AVX-512F) ones would serve: the same results
    generic_and_fixed(run, switch=kernels._set_kd_avx512)
    assert close(fixed[0], ref.mutual_info_ksg_ref(x, y, k=4))
    assert close(fixed[1], ref.mutual_info_ksg_ref(x, y, k=2, algorithm=2))
    assert close(fixed[2], ref.conditional_mutual_info_ksg_ref(x, y, z, k=4))
    assert close(float(np.mean(fixed[3])), ref.mutual_info_ksg_ref(j[:, :d], j[:, d:], k=3))
    if data == "gaussian":
        assert close(fixed[4], ref.entropy_knn_ref(j[:, :d], k=3))


@pytest.mark.parametrize("d", [2, 3, 5, 6, 7])
def test_fixed_dimension_grouped_walk_every_tree_depth(d):
    # csrc/kdtree_lowd.h walks the tree testing the boxes of the nodes three levels down at once
    # (from the root 1, 2 or 3 levels: depth % 3), leaves at any depth. Trees of every depth 0..9
    # (the sample and leaf sizes below; the k-NN and count trees take different multiples of the
    # leaf size) give the generic binary walk's neighbours and counts, on both leaf-scan widths.
    from fastinfo import _kernels as kernels

    rng = np.random.default_rng(40 + d)
    depths = set()
    try:
        for n, leaf in [(30, 16), (50, 24), (150, 16), (60, 2), (200, 2), (500, 3), (700, 2), (1500, 2)]:
            kernels._set_leaf_size(leaf)
            j = rng.standard_normal((n, d))
            j[:, 1:] += 0.5 * j[:, :-1]
            j[: n // 5, 0] = np.round(j[: n // 5, 0])    # ties in one coordinate
            x, y = j[:, :d - 1], j[:, d - 1:]

            def run():
                return [fi.mutual_info_ksg(x, y, k=3, local=True),
                        fi.mutual_info_ksg(x, y, k=2, algorithm=2, local=True),
                        fi.entropy_knn(j, k=3, local=True)]

            generic_and_fixed(run)
            generic_and_fixed(run, switch=kernels._set_kd_avx512)
            for size in (leaf, 6 * leaf):
                depths.add(int(np.ceil(np.log2(n / size))) if n > size else 0)
    finally:
        kernels._set_leaf_size(16)
    assert depths >= set(range(10)), depths


def test_fixed_dimension_leaf_multiplier_setting():
    from fastinfo import _kernels as kernels

    rng = np.random.default_rng(9)
    j = rng.standard_normal((900, 6))
    x, y = j[:, :5], j[:, 5:]
    default = fi.mutual_info_ksg(x, y, k=4)
    for kind, d in (("knn", 6), ("count", 5)):
        old = kernels._set_kd_lowd_leaf_mult(kind, d, 1)
        try:
            assert fi.mutual_info_ksg(x, y, k=4) == default
        finally:
            assert kernels._set_kd_lowd_leaf_mult(kind, d, old) == 1
    for bad in [("knn", 1, 2), ("count", 8, 2), ("knn", 4, 0), ("both", 4, 2)]:
        with pytest.raises(ValueError, match="leaf multiplier"):
            kernels._set_kd_lowd_leaf_mult(*bad)

"""Information dynamics (transfer entropy, active information storage, their test) and local values,
against the brute-force twins of tests/reference.py, embeddings built by hand, and closed forms."""
import zlib

import numpy as np
import pytest

import fastinfo as fi
from reference import (active_information_storage_ksg_ref, conditional_mutual_info_ksg_local_ref,
                       conditional_mutual_info_ksg_ref, entropy_knn_local_ref, mutual_info_ksg_local_ref,
                       transfer_entropy_ksg_ref, transfer_entropy_samples_ref, transfer_entropy_test_ref)


def coupled_ar(n, a=0.5, c=0.8, sigma=0.6, seed=0, d=1):
    """source iid N(0, 1); target[t] = a target[t-1] + c source[t-1] + sigma noise (per column)."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, d))
    x = np.zeros((n, d))
    e = rng.normal(size=(n, d))
    for t in range(1, n):
        x[t] = a * x[t - 1] + c * s[t - 1] + sigma * e[t]
    return (s[:, 0], x[:, 0]) if d == 1 else (s, x)


# --- local values of the 0.1 estimators ----------------------------------------------------------


@pytest.mark.parametrize("algorithm", [1, 2])
@pytest.mark.parametrize("dims", [(1, 1), (2, 1), (2, 3)])
def test_mutual_info_local_matches_brute_force_and_mean(algorithm, dims):
    rng = np.random.default_rng(sum(dims) + 10 * algorithm)
    n = 257
    x = rng.normal(size=(n, dims[0]))
    y = x[:, :1] + rng.normal(size=(n, dims[1]))
    local = fi.mutual_info_ksg(x, y, k=3, algorithm=algorithm, local=True)
    assert local.shape == (n,) and local.dtype == np.float64
    np.testing.assert_allclose(local, mutual_info_ksg_local_ref(x, y, k=3, algorithm=algorithm),
                               rtol=0, atol=1e-12)
    assert abs(local.mean() - fi.mutual_info_ksg(x, y, k=3, algorithm=algorithm)) <= 1e-12


def test_mutual_info_local_on_ties_and_base():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, size=300).astype(float)
    y = x + rng.integers(0, 3, size=300)
    local = fi.mutual_info_ksg(x, y, k=4, local=True, base=2)
    np.testing.assert_allclose(local, mutual_info_ksg_local_ref(x, y, k=4, base=2), rtol=0, atol=1e-12)
    assert abs(local.mean() - fi.mutual_info_ksg(x, y, k=4, base=2)) <= 1e-12


@pytest.mark.parametrize("dims", [(1, 1, 1), (1, 1, 2), (2, 1, 3)])
def test_conditional_local_matches_brute_force_and_mean(dims):
    rng = np.random.default_rng(sum(dims))
    n = 241
    z = rng.normal(size=(n, dims[2]))
    x = z[:, :1] + rng.normal(size=(n, dims[0]))
    y = z[:, :1] + 0.5 * x[:, :1] + rng.normal(size=(n, dims[1]))
    local = fi.conditional_mutual_info_ksg(x, y, z, k=4, local=True)
    np.testing.assert_allclose(local, conditional_mutual_info_ksg_local_ref(x, y, z, k=4), rtol=0, atol=1e-12)
    assert abs(local.mean() - fi.conditional_mutual_info_ksg(x, y, z, k=4)) <= 1e-12


@pytest.mark.parametrize("d", [1, 3])
def test_entropy_local_matches_brute_force_and_mean(d):
    x = np.random.default_rng(d).normal(size=(300, d))
    local = fi.entropy_knn(x, k=3, local=True, base=np.e)
    np.testing.assert_allclose(local, entropy_knn_local_ref(x, k=3), rtol=0, atol=1e-12)
    assert abs(local.mean() - fi.entropy_knn(x, k=3)) <= 1e-12


@pytest.mark.parametrize("func, args", [
    (fi.mutual_info_ksg, 2), (fi.conditional_mutual_info_ksg, 3), (fi.entropy_knn, 1),
])
def test_local_must_be_bool(func, args):
    x = np.random.default_rng(0).normal(size=50)
    with pytest.raises(TypeError, match="local"):
        func(*([x] * args), local="yes")


# --- embeddings against hand-built samples -----------------------------------------------------


EMBEDDINGS = [
    {},
    {"target_history": 2},
    {"target_history": 3, "target_tau": 2},
    {"source_history": 2, "source_tau": 3},
    {"delay": 3},
    {"target_history": 2, "source_history": 3, "delay": 2, "target_tau": 2, "source_tau": 1},
]


@pytest.mark.parametrize("embedding", EMBEDDINGS)
def test_transfer_entropy_matches_brute_force(embedding):
    s, x = coupled_ar(220, seed=len(embedding))
    got = fi.transfer_entropy_ksg(s, x, k=4, **embedding)
    assert got == pytest.approx(transfer_entropy_ksg_ref(s, x, k=4, **embedding), abs=1e-12)
    local = fi.transfer_entropy_ksg(s, x, k=4, local=True, **embedding)
    np.testing.assert_allclose(local, transfer_entropy_ksg_ref(s, x, k=4, local=True, **embedding),
                               rtol=0, atol=1e-12)
    assert abs(local.mean() - got) <= 1e-12


@pytest.mark.parametrize("embedding", EMBEDDINGS[:4])
def test_transfer_entropy_is_cmi_of_the_hand_built_embedding(embedding):
    # bitwise: the strided embedding equals the one built value by value
    s, x = coupled_ar(400, seed=7)
    src, now, cond = transfer_entropy_samples_ref(s, x, **embedding)
    assert fi.transfer_entropy_ksg(s, x, **embedding) == fi.conditional_mutual_info_ksg(src, now, cond, k=4)


def test_transfer_entropy_multivariate_and_conditional():
    rng = np.random.default_rng(5)
    s, x = coupled_ar(200, d=2, seed=5)
    w = rng.normal(size=(200, 2))
    options = {"target_history": 2, "source_history": 1, "delay": 1}
    for cond in (None, w, w[:, 0]):
        got = fi.transfer_entropy_ksg(s, x, k=3, condition=cond, **options)
        assert got == pytest.approx(transfer_entropy_ksg_ref(s, x, k=3, condition=cond, **options), abs=1e-12)
    # conditional TE layout: the condition at t - 1 follows the target past
    src, now, cond = transfer_entropy_samples_ref(s, x, condition=w, **options)
    assert cond.shape[1] == 2 * 2 + 2
    np.testing.assert_array_equal(cond[:, 4:], w[1:-1])


@pytest.mark.parametrize("history, tau", [(1, 1), (2, 1), (3, 2), (5, 1)])
def test_active_information_storage_matches_brute_force(history, tau):
    _, x = coupled_ar(230, seed=history)
    got = fi.active_information_storage_ksg(x, k=4, history=history, tau=tau)
    assert got == pytest.approx(active_information_storage_ksg_ref(x, k=4, history=history, tau=tau), abs=1e-12)
    local = fi.active_information_storage_ksg(x, k=4, history=history, tau=tau, local=True, base=2)
    np.testing.assert_allclose(
        local, active_information_storage_ksg_ref(x, k=4, history=history, tau=tau, local=True, base=2),
        rtol=0, atol=1e-12)
    assert local.shape == (230 - (history - 1) * tau - 1,)
    assert abs(local.mean() - fi.active_information_storage_ksg(x, k=4, history=history, tau=tau, base=2)) <= 1e-12


# --- closed forms (coupled Gaussian autoregressive processes) -----------------------------------


def test_transfer_entropy_and_storage_of_coupled_gaussian_ar():
    a, c, sigma = 0.5, 0.8, 0.6
    s, x = coupled_ar(20000, a=a, c=c, sigma=sigma, seed=11)
    # TE s -> x: 0.5 log(Var(x_t | x_{t-1}) / Var(x_t | x_{t-1}, s_{t-1})), s iid
    te = 0.5 * np.log((c ** 2 + sigma ** 2) / sigma ** 2)
    # x is AR(1) with coefficient a (its innovation is independent of its past): AIS = -0.5 log(1 - a^2)
    ais = -0.5 * np.log(1 - a ** 2)
    assert fi.transfer_entropy_ksg(s, x) == pytest.approx(te, abs=0.02)
    assert fi.transfer_entropy_ksg(s, x, target_history=2) == pytest.approx(te, abs=0.02)
    assert abs(fi.transfer_entropy_ksg(x, s)) < 0.02              # nothing flows back
    assert fi.transfer_entropy_ksg(s, x, delay=2) < 0.1 * te     # the coupling has lag 1
    assert fi.active_information_storage_ksg(x) == pytest.approx(ais, abs=0.02)
    assert fi.active_information_storage_ksg(x, history=3) == pytest.approx(ais, abs=0.03)
    assert abs(fi.active_information_storage_ksg(s)) < 0.02


def test_conditional_transfer_entropy_removes_a_common_driver():
    # w drives both s (at lag 1) and x (at lag 2): s -> x is spurious and vanishes given w at t - 1
    rng = np.random.default_rng(2)
    n = 20000
    w = rng.normal(size=n)
    s = np.zeros(n)
    x = np.zeros(n)
    s[1:] = w[:-1] + 0.5 * rng.normal(size=n - 1)
    x[2:] = w[:-2] + 0.5 * rng.normal(size=n - 2)
    w_lag1 = np.concatenate([[0.0], w[:-1]])      # condition value at t - 1 is w[t - 2]
    assert fi.transfer_entropy_ksg(s, x) > 0.3
    assert abs(fi.transfer_entropy_ksg(s, x, condition=w_lag1)) < 0.03


# --- permutation test -------------------------------------------------------------------------


def test_transfer_entropy_test_matches_brute_force():
    s, x = coupled_ar(120, c=0.3, sigma=1.0, seed=4)
    for options in ({}, {"target_history": 2, "delay": 2}):
        est, p = fi.transfer_entropy_test(s, x, n_permutations=30, random_state=3, **options)
        ref_est, ref_p = transfer_entropy_test_ref(s, x, n_permutations=30, random_state=3, **options)
        assert est == pytest.approx(ref_est, abs=1e-12)
        assert p == ref_p


def test_transfer_entropy_test_null_is_the_estimator_on_permuted_source_pasts():
    s, x = coupled_ar(300, c=0.2, sigma=1.0, seed=8)
    est, p = fi.transfer_entropy_test(s, x, n_permutations=40, random_state=12, target_history=2)
    src, now, cond = transfer_entropy_samples_ref(s, x, target_history=2)
    assert est == fi.transfer_entropy_ksg(s, x, target_history=2)
    rng = np.random.default_rng(12)
    null = [fi.conditional_mutual_info_ksg(src[rng.permutation(src.shape[0])], now, cond, k=4) for _ in range(40)]
    assert p == (1 + sum(v >= est for v in null)) / 41


def test_transfer_entropy_test_detects_flow_and_its_absence():
    s, x = coupled_ar(2000, c=0.3, sigma=1.0, seed=9)
    assert fi.transfer_entropy_test(s, x, n_permutations=99, random_state=0)[1] == 0.01
    assert fi.transfer_entropy_test(x, s, n_permutations=99, random_state=0)[1] > 0.05


def test_transfer_entropy_test_generator_and_seed_agree():
    s, x = coupled_ar(200, seed=1)
    a = fi.transfer_entropy_test(s, x, n_permutations=20, random_state=5)
    b = fi.transfer_entropy_test(s, x, n_permutations=20, random_state=np.random.default_rng(5))
    assert a == b


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["target_history", "source_history", "delay", "target_tau", "source_tau"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_bad_embedding_parameters(option, value):
    s, x = coupled_ar(100)
    with pytest.raises(ValueError, match=option):
        fi.transfer_entropy_ksg(s, x, **{option: value})


@pytest.mark.parametrize("option", ["history", "tau"])
def test_bad_storage_parameters(option):
    _, x = coupled_ar(100)
    with pytest.raises(ValueError, match=option):
        fi.active_information_storage_ksg(x, **{option: 0})


def test_series_errors():
    s, x = coupled_ar(100)
    with pytest.raises(ValueError, match="same length.*source has 99.*target has 100"):
        fi.transfer_entropy_ksg(s[:-1], x)
    with pytest.raises(ValueError, match="condition has 50"):
        fi.transfer_entropy_ksg(s, x, condition=s[:50])
    with pytest.raises(ValueError, match="too short"):
        fi.transfer_entropy_ksg(s[:5], x[:5], target_history=3, target_tau=2)
    with pytest.raises(ValueError, match="too short"):
        fi.active_information_storage_ksg(x[:4], history=4)
    with pytest.raises(ValueError, match="k must satisfy"):
        fi.transfer_entropy_ksg(s[:6], x[:6], k=5)
    with pytest.raises(ValueError, match="source must hold only finite"):
        fi.transfer_entropy_ksg(np.where(np.arange(100) == 3, np.nan, s), x)
    with pytest.raises(ValueError, match="n_permutations"):
        fi.transfer_entropy_test(s, x, n_permutations=0)
    with pytest.raises(ValueError, match="target must be 1-D"):
        fi.transfer_entropy_ksg(s, np.zeros((100, 2, 2)))


def test_inputs_not_modified_and_views_accepted():
    s, x = coupled_ar(300, seed=3)
    big = np.stack([s, x], axis=1)
    before = big.copy()
    a = fi.transfer_entropy_ksg(big[:, 0], big[:, 1], target_history=2)     # strided views
    b = fi.transfer_entropy_ksg(s.copy(), x.copy(), target_history=2)
    assert a == b
    np.testing.assert_array_equal(big, before)
    assert fi.active_information_storage_ksg(big[::-1, 1][::-1]) == fi.active_information_storage_ksg(x)


# --- the rank-scan counts of 2-D marginals are the KD-tree's, bit for bit ----------------------


def _datasets():
    rng = np.random.default_rng(21)
    n = 3000
    yield "gaussian", rng.normal(size=(n, 1)), rng.normal(size=(n, 1)), rng.normal(size=(n, 2))
    ints = rng.integers(0, 7, size=(n, 4)).astype(float)          # heavy ties, zero radii
    yield "integers", ints[:, :1], ints[:, 1:2], ints[:, 2:]
    heavy = rng.standard_cauchy(size=(n, 4))                       # far outliers: sparse buckets
    yield "cauchy", heavy[:, :1], heavy[:, 1:2], heavy[:, 2:]
    const = np.zeros((n, 1))
    yield "constant z", rng.normal(size=(n, 1)), rng.normal(size=(n, 1)), np.hstack([const, rng.normal(size=(n, 1))])
    tiny = 1e-300 * rng.integers(0, 3, size=(n, 4))                # subnormal spacing
    yield "tiny", tiny[:, :1], tiny[:, 1:2], tiny[:, 2:]


@pytest.mark.parametrize("name, x, y, z", list(_datasets()), ids=lambda v: v if isinstance(v, str) else "")
def test_rankscan_counts_equal_kdtree_counts(name, x, y, z):
    from fastinfo import _kernels

    def run():
        return (fi.conditional_mutual_info_ksg(x, y, z[:, :1], k=4, local=True),
                fi.conditional_mutual_info_ksg(x, y, z, k=3, local=True),
                fi.transfer_entropy_test(x[:, 0], y[:, 0], n_permutations=3, random_state=1))

    fast = run()
    old = _kernels._set_rankscan_max_n(0)
    try:
        tree = run()
    finally:
        _kernels._set_rankscan_max_n(old)
    np.testing.assert_array_equal(fast[0], tree[0])
    np.testing.assert_array_equal(fast[1], tree[1])
    assert fast[2] == tree[2]


# The conditional estimator with 1-D x and y and a 1-D or 2-D z (transfer entropy with histories
# 1, or target history 2) takes its joint radii from a 3-D or 4-D quantile grid (csrc/gridnd.h)
# instead of the KD-tree; the private switch _set_gridnd forces the KD-tree. The radii, so every
# count and term, must be bitwise the same, whatever the grid's cell size, the leaf scan (AVX2 or
# generic) and the thread count.


def seed_of(*parts):
    return zlib.crc32(repr(parts).encode())


def _grid_datasets(n, d, rng):
    g = rng.normal(size=(n, d))
    yield "gaussian", g
    yield "dependent", np.column_stack([g[:, 0]] + [g[:, 0] + 0.1 * g[:, c] for c in range(1, d)])
    yield "integers", rng.integers(0, 5, size=(n, d)).astype(float)   # heavy ties, zero radii
    yield "duplicates", g[rng.integers(0, n // 4 + 1, size=n)]         # repeated rows
    yield "cauchy", rng.standard_cauchy(size=(n, d))                   # far outliers
    yield "constant z", np.column_stack([g[:, :d - 1], np.zeros(n)])
    yield "identical", np.column_stack([g[:, 0]] * d)
    yield "tiny", 1e-300 * rng.integers(0, 3, size=(n, d))             # subnormal spacing


def _grid_and_tree(run):
    from fastinfo import _kernels

    old = _kernels._set_gridnd(False)
    try:
        tree = run()
    finally:
        _kernels._set_gridnd(old)
    grid = run()
    assert len(tree) == len(grid)
    for a, b in zip(tree, grid):
        np.testing.assert_array_equal(a, b)
    return grid


@pytest.mark.parametrize("d", [3, 4])
@pytest.mark.parametrize("fill", [0.05, 0.5, 3.0, 1e6])
def test_grid_radii_equal_kdtree_radii(fill, d):
    # fill 0.05: more bins than points at small n (G <= n); 1e6: a single cell
    from fastinfo import _kernels

    rng = np.random.default_rng(seed_of("gridnd", fill, d))
    old_fill = _kernels._set_gridnd_fill(fill)
    try:
        for n in (2, 5, 40, 700):
            for name, v in _grid_datasets(n, d, rng):
                x, y, z = v[:, :1], v[:, 1:2], v[:, 2:]
                for k in (1, 3, 4, 9):
                    if k >= n:
                        continue
                    _grid_and_tree(lambda: [fi.conditional_mutual_info_ksg(x, y, z, k=k, local=True)])
    finally:
        _kernels._set_gridnd_fill(old_fill)


@pytest.mark.parametrize("scale", [0.05, 1.0, 50.0])
def test_grid_marginal_counts_equal_kdtree_counts(scale):
    # 1-D x, y and a 2-D z: the (x, z) and (y, z) marginals are counted on grids (their own cell
    # size: rows wholly inside the radius added by their bounds, the rest scanned), whatever the
    # cells, with the AVX2 and the generic scans
    from fastinfo import _kernels

    rng = np.random.default_rng(seed_of("grid-counts", scale))
    old_scale = _kernels._set_grid_count_scale(scale)
    try:
        for n in (3, 40, 900):
            for name, v in _grid_datasets(n, 4, rng):
                x, y, z = v[:, :1], v[:, 1:2], v[:, 2:]
                for k in (1, 4):
                    if k >= n:
                        continue
                    got = _grid_and_tree(lambda: [fi.conditional_mutual_info_ksg(x, y, z, k=k, local=True)])
                    old = _kernels._set_kd_avx2(False)
                    try:
                        generic = fi.conditional_mutual_info_ksg(x, y, z, k=k, local=True)
                    finally:
                        _kernels._set_kd_avx2(old)
                    np.testing.assert_array_equal(got[0], generic)
    finally:
        _kernels._set_grid_count_scale(old_scale)


@pytest.mark.parametrize("d", [3, 4])
def test_grid_generic_scan_and_parallel_pass_equal_kdtree(d):
    # 6,000 points: the parallel pass (2 threads); the generic leaf scan (no AVX2) too; the
    # permutation test with target history 1 (3-D) or 2 (4-D)
    from fastinfo import _kernels
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed_of("gridnd-large", d))
    for name, v in _grid_datasets(6000, d, rng):
        x, y, z = v[:, :1], v[:, 1:2], v[:, 2:]

        def run():
            return [fi.conditional_mutual_info_ksg(x, y, z, k=4, local=True),
                    fi.transfer_entropy_test(v[:, 0], v[:, 1], n_permutations=2, random_state=3,
                                             target_history=d - 2)]

        grid = _grid_and_tree(run)
        old = _kernels._set_kd_avx2(False)
        try:
            generic = run()
        finally:
            _kernels._set_kd_avx2(old)
        with threadpool_limits(limits=1, user_api="openmp"):
            one = run()
        for a, b, c in zip(grid, generic, one):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("history", [1, 2])
def test_grid_permutation_null_equals_kdtree_and_brute_force(history):
    source, target = coupled_ar(300, seed=5)
    (got,) = _grid_and_tree(lambda: [fi.transfer_entropy_test(source, target, n_permutations=9,
                                                                random_state=2, target_history=history)])
    est, p = transfer_entropy_test_ref(source, target, n_permutations=9, random_state=2,
                                       target_history=history)
    assert got[0] == pytest.approx(est, abs=1e-12)
    assert got[1] == p


def test_rankscan_scalar_and_vector_scans_agree():
    from fastinfo import _kernels

    rng = np.random.default_rng(4)
    x, y, z = rng.normal(size=(600, 1)), rng.normal(size=(600, 1)), rng.integers(0, 20, size=(600, 1)) * 0.1
    a = fi.conditional_mutual_info_ksg(x, y, z, local=True)
    np.testing.assert_allclose(a, conditional_mutual_info_ksg_local_ref(x, y, z, k=3), rtol=0, atol=1e-12)
    old = _kernels._set_kd_avx2(False)
    try:
        b = fi.conditional_mutual_info_ksg(x, y, z, local=True)
    finally:
        _kernels._set_kd_avx2(old)
    np.testing.assert_array_equal(a, b)
    # the AVX2 range count where the AVX-512 one would serve (the same integers)
    z2 = rng.normal(size=(600, 2))
    wide = fi.conditional_mutual_info_ksg(x, y, z2, local=True)
    old = _kernels._set_kd_avx512(False)
    try:
        c = fi.conditional_mutual_info_ksg(x, y, z, local=True)
        wide_avx2 = fi.conditional_mutual_info_ksg(x, y, z2, local=True)
    finally:
        _kernels._set_kd_avx512(old)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(wide, wide_avx2)

"""Estimators from samples: analytic values, errors, dtypes and layouts, thread agnosticism,
inputs left unmodified, result types."""
import numpy as np
import pytest
from scipy.special import digamma
from threadpoolctl import threadpool_limits

import fastinfo as fi
from fastinfo import _kernels


def gaussian_pair(rng, n, d, rho):
    """d independent coordinate pairs, each with correlation rho: I = -d/2 log(1 - rho^2)."""
    x = rng.normal(size=(n, d))
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=(n, d))
    return x, y


# ----------------------------------------------------------------------------- digamma


def test_digamma_of_integers_matches_scipy():
    m = np.concatenate([np.arange(1, 5000), np.geomspace(5000, 10**12, 300).astype(np.int64)])
    got = _kernels.digamma_counts(m.astype(np.int64))
    want = digamma(m.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)


def test_digamma_table_holds_the_formula_values():
    # digamma_int reads psi(m) for m < 16384 from a table filled at import by the formula it
    # falls back to above: bitwise the same values on both sides of the boundary
    m = np.concatenate([np.arange(1, 40), np.arange(16300, 16500), [10**6, 2**40]]).astype(np.int64)
    got = _kernels.digamma_counts(m)
    formula = np.array([_kernels._digamma_formula(int(v)) for v in m])
    np.testing.assert_array_equal(got, formula)
    assert np.isnan(_kernels.digamma_counts(np.array([0, -3], dtype=np.int64))).all()


# ----------------------------------------------------------------------------- analytic values


@pytest.mark.slow
@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("algorithm", [1, 2])
def test_ksg_correlated_gaussians(d, algorithm):
    rng = np.random.default_rng(100 + d)
    rho = 0.6
    x, y = gaussian_pair(rng, 20_000, d, rho)
    exact = -0.5 * d * np.log(1 - rho**2)
    got = fi.mutual_info_ksg(x, y, k=3, algorithm=algorithm)
    assert abs(got - exact) < 0.02 * d
    assert fi.mutual_info_ksg(x, y, k=3, algorithm=algorithm, base=2) == pytest.approx(got / np.log(2), rel=1e-14)


def test_ksg_independent_near_zero_and_can_be_negative():
    rng = np.random.default_rng(1)
    values = [fi.mutual_info_ksg(rng.normal(size=2000), rng.normal(size=2000)) for _ in range(5)]
    assert all(abs(v) < 0.03 for v in values)
    assert min(values) < 0 or max(values) > 0   # raw values: no clipping at 0


@pytest.mark.slow
def test_conditional_gaussian_chain():
    # X -> Z -> Y: I(X;Y|Z) = 0;  X, Y correlated given Z: known value
    rng = np.random.default_rng(2)
    n = 20_000
    z = rng.normal(size=n)
    x = z + rng.normal(size=n)
    y = z + rng.normal(size=n)
    assert abs(fi.conditional_mutual_info_ksg(x, y, z)) < 0.02
    e = rng.normal(size=n)
    x2 = z + e
    y2 = z + 0.6 * e + 0.8 * rng.normal(size=n)
    assert fi.conditional_mutual_info_ksg(x2, y2, z) == pytest.approx(-0.5 * np.log(1 - 0.36), abs=0.02)


def test_entropy_uniform_and_gaussian():
    rng = np.random.default_rng(3)
    u = rng.uniform(0, 2, size=(10_000, 2))        # H = 2 log 2
    assert fi.entropy_knn(u) == pytest.approx(2 * np.log(2), abs=0.03)
    g = rng.normal(size=10_000) * 3.0               # H = 0.5 log(2 pi e 9)
    assert fi.entropy_knn(g, base=2) == pytest.approx(0.5 * np.log2(2 * np.pi * np.e * 9), abs=0.03)


def test_mixed_separable_labels_give_entropy_of_labels():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 4, size=8000)
    x = 10 * labels + rng.normal(size=8000)
    assert fi.mutual_info_mixed(x, labels) == pytest.approx(np.log(4), abs=0.01)
    assert fi.mutual_info_mixed(x, labels, base=2) == pytest.approx(2.0, abs=0.015)


def test_symmetry_of_ksg_is_bitwise():
    rng = np.random.default_rng(5)
    x, y = gaussian_pair(rng, 3000, 2, 0.5)
    for algorithm in (1, 2):
        assert fi.mutual_info_ksg(x, y, algorithm=algorithm) == fi.mutual_info_ksg(y, x, algorithm=algorithm)


# ----------------------------------------------------------------------------- dtypes, layouts


def test_integer_samples_give_the_float64_result_exactly():
    rng = np.random.default_rng(6)
    xi = rng.integers(-50, 50, size=(500, 2))
    yi = xi[:, :1] + rng.integers(0, 9, size=(500, 1))
    assert fi.mutual_info_ksg(xi, yi) == fi.mutual_info_ksg(xi.astype(float), yi.astype(float))
    assert fi.mutual_info_ksg(xi.astype(np.int32), yi.astype(np.int8), algorithm=2) == \
        fi.mutual_info_ksg(xi.astype(float), yi.astype(float), algorithm=2)
    assert fi.mutual_info_mixed(xi, yi[:, 0] % 3) == fi.mutual_info_mixed(xi.astype(float), yi[:, 0] % 3)


def test_float32_close_to_float64():
    rng = np.random.default_rng(7)
    x, y = gaussian_pair(rng, 2000, 1, 0.6)
    r64 = fi.mutual_info_ksg(x, y)
    r32 = fi.mutual_info_ksg(x.astype(np.float32), y.astype(np.float32))
    assert type(r32) is float and abs(r32 - r64) < 1e-3


def test_layouts_give_identical_results():
    rng = np.random.default_rng(8)
    base_x = rng.normal(size=(400, 6))
    x_c = np.ascontiguousarray(base_x[:, ::2])
    x_f = np.asfortranarray(x_c)
    x_strided = base_x[:, ::2]
    y = x_c[:, 0] + rng.normal(size=400)
    y_strided = np.repeat(y, 2)[::2]
    want = fi.mutual_info_ksg(x_c, y)
    assert fi.mutual_info_ksg(x_f, y) == want
    assert fi.mutual_info_ksg(x_strided, y_strided) == want
    assert fi.mutual_info_ksg(x_c.tolist(), y.tolist()) == want
    assert fi.mutual_info_ksg(y, x_c[:, :1]) == fi.mutual_info_ksg(y[:, None], x_c[:, 0])


def test_inputs_are_not_modified():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(300, 2))
    y = rng.normal(size=300)
    z = rng.normal(size=300)
    labels = rng.integers(0, 3, size=300)
    X = rng.normal(size=(300, 3))
    X[:, 1] = np.round(X[:, 1])
    scores = rng.normal(size=(10, 10))
    copies = [a.copy() for a in (x, y, z, labels, X, scores)]
    for arr in (x, y, z, labels, X, scores):
        arr.flags.writeable = False     # any write attempt would raise
    fi.mutual_info_ksg(x, y)
    fi.mutual_info_ksg(x, y, algorithm=2)
    fi.conditional_mutual_info_ksg(x, y, z)
    fi.entropy_knn(x)
    fi.mutual_info_mixed(x, labels)
    fi.mutual_info_discrete(labels, labels)
    fi.mutual_info_matrix(X)
    fi.mutual_info_features(X, y, discrete_features=np.array([False, True, False]))
    fi.mutual_info_features(X, labels, discrete_target=True)
    fi.mutual_info_test(x, y, n_permutations=5, random_state=0)
    for arr, copy in zip((x, y, z, labels, X, scores), copies):
        assert np.array_equal(arr, copy)


def test_memmap_input(tmp_path):
    rng = np.random.default_rng(10)
    data = rng.normal(size=(500, 2))
    path = tmp_path / "samples.npy"
    np.save(path, data)
    mm = np.load(path, mmap_mode="r")
    assert fi.mutual_info_ksg(mm[:, 0], mm[:, 1]) == fi.mutual_info_ksg(data[:, 0], data[:, 1])


def test_result_types():
    rng = np.random.default_rng(11)
    x = rng.normal(size=100)
    y = x + rng.normal(size=100)
    labels = rng.integers(0, 3, size=100)
    for r in (
        fi.mutual_info_ksg(x, y),
        fi.mutual_info_ksg(x, y, algorithm=2, base=2),
        fi.conditional_mutual_info_ksg(x, y, labels),
        fi.entropy_knn(x),
        fi.mutual_info_mixed(x, labels),
        fi.mutual_info_discrete(labels, labels),
        fi.mutual_info_from_joint([[1, 2], [3, 4]]),
        *fi.mutual_info_test(x, y, n_permutations=3),
    ):
        assert type(r) is float
    features = fi.mutual_info_features(np.stack([x, y], axis=1).astype(np.float32), labels, discrete_target=True)
    assert type(features) is np.ndarray and features.dtype == np.float64 and features.shape == (2,)


# ----------------------------------------------------------------------------- threads


def _all_results(rng):
    x, y = gaussian_pair(rng, 5000, 2, 0.5)
    z = rng.normal(size=5000)
    labels = rng.integers(0, 4, size=5000)
    X = rng.normal(size=(3000, 4))
    return [
        fi.mutual_info_ksg(x[:, 0], y[:, 0]),
        fi.mutual_info_ksg(x, y, k=5, algorithm=2),
        fi.conditional_mutual_info_ksg(x, y[:, 0], z),
        fi.entropy_knn(x),
        fi.mutual_info_mixed(x[:, 0] + labels, labels),
        *fi.mutual_info_matrix(X).ravel().tolist(),
        *fi.mutual_info_features(X, X[:, 0] + z[:3000]).tolist(),
        *fi.mutual_info_test(x[:1000, 0], y[:1000, 0], n_permutations=20, random_state=3),
    ]


def test_bitwise_identical_for_any_thread_count():
    default = _all_results(np.random.default_rng(12))
    with threadpool_limits(1, "openmp"):
        single = _all_results(np.random.default_rng(12))
    assert np.array_equal(np.array(default), np.array(single), equal_nan=True)


@pytest.mark.parametrize("leaf", [16, 100])
def test_parallel_tree_build_bitwise_for_any_thread_count(leaf):
    # trees of n >= 4096 points are built in one parallel region (the top levels by one thread,
    # the subtrees below shared among threads; with leaf size 100 the 600-point leaves of the
    # 6-D trees leave depth <= 4, where one subtree is the whole tree): the same tree, so the
    # same estimates, whatever the thread count
    from fastinfo import _kernels

    rng = np.random.default_rng(21)
    n = 9000
    j = rng.normal(size=(n, 7))
    j[:, 1:] += 0.5 * j[:, :-1]
    series = np.cumsum(rng.normal(size=n)) * 0.1 + rng.normal(size=n)

    def run():
        return [fi.mutual_info_ksg(j[:, :3], j[:, 3:6], k=4, local=True),
                fi.mutual_info_ksg(j[:, :2], j[:, 2:4], k=3, algorithm=2, local=True),
                fi.entropy_knn(j, k=4, local=True),
                fi.active_information_storage_ksg(series, history=5, k=4, local=True)]

    _kernels._set_leaf_size(leaf)
    try:
        default = run()
        with threadpool_limits(1, "openmp"):
            single = run()
    finally:
        _kernels._set_leaf_size(16)
    for a, b in zip(default, single):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- errors


def test_errors_k():
    x = np.arange(10.0)
    y = x[::-1].copy()
    for k in (0, -1, 10, 11):
        with pytest.raises(ValueError, match="k"):
            fi.mutual_info_ksg(x, y, k=k)
        with pytest.raises(ValueError, match="k"):
            fi.entropy_knn(x, k=k)
        with pytest.raises(ValueError, match="k"):
            fi.conditional_mutual_info_ksg(x, y, x, k=k)
        with pytest.raises(ValueError, match="k"):
            fi.mutual_info_mixed(x, x > 4, k=k)
    for k in (2.5, "3", None, True):
        with pytest.raises(ValueError, match="k"):
            fi.mutual_info_ksg(x, y, k=k)
    with pytest.raises(ValueError, match="k"):
        fi.mutual_info_matrix(np.ones((5, 2)) * np.arange(5)[:, None], k=5)
    with pytest.raises(ValueError, match="k"):
        fi.mutual_info_test(x, y, k=10)


def test_errors_lengths_and_shapes():
    with pytest.raises(ValueError, match="same length"):
        fi.mutual_info_ksg(np.arange(10.0), np.arange(11.0))
    with pytest.raises(ValueError, match="same length"):
        fi.conditional_mutual_info_ksg(np.arange(10.0), np.arange(10.0), np.arange(9.0))
    with pytest.raises(ValueError, match="same length"):
        fi.mutual_info_mixed(np.arange(10.0), np.arange(9))
    with pytest.raises(ValueError, match="same length"):
        fi.mutual_info_discrete(np.arange(10), np.arange(9))
    with pytest.raises(ValueError, match="same length"):
        fi.mutual_info_features(np.ones((10, 2)), np.arange(9.0))
    with pytest.raises(ValueError, match="x"):
        fi.mutual_info_ksg(np.ones((10, 2, 2)), np.arange(10.0))
    with pytest.raises(ValueError, match="discrete_features"):
        fi.mutual_info_features(np.ones((10, 2)), np.arange(10.0), discrete_features=[True])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_errors_non_finite_samples(bad):
    x = np.arange(20.0)
    x[3] = bad
    y = np.arange(20.0)
    with pytest.raises(ValueError, match="finite"):
        fi.mutual_info_ksg(x, y)
    with pytest.raises(ValueError, match="finite"):
        fi.mutual_info_ksg(y, x, algorithm=2)
    with pytest.raises(ValueError, match="finite"):
        fi.entropy_knn(x)
    with pytest.raises(ValueError, match="finite"):
        fi.conditional_mutual_info_ksg(y, y, x)
    with pytest.raises(ValueError, match="finite"):
        fi.mutual_info_mixed(x, y > 5)
    with pytest.raises(ValueError, match="finite"):
        fi.mutual_info_matrix(np.stack([x, y], axis=1))
    with pytest.raises(ValueError, match="finite"):
        fi.mutual_info_features(np.stack([x, y], axis=1), y)
    with pytest.raises(ValueError, match="finite"):
        fi.mutual_info_test(x, y)


@pytest.mark.parametrize("algorithm", [0, 3, "1", 1.0, None, True])
def test_errors_algorithm(algorithm):
    with pytest.raises(ValueError, match="algorithm"):
        fi.mutual_info_ksg(np.arange(10.0), np.arange(10.0), algorithm=algorithm)


def test_error_duplicates_in_entropy():
    x = np.repeat(np.arange(10.0), 4)        # every sample has 3 exact duplicates
    with pytest.raises(ValueError, match="duplicate") as info:
        fi.entropy_knn(x, k=3)
    assert "jitter" in str(info.value)
    fi.entropy_knn(x, k=4)                  # the 4th neighbour is at distance 1: fine


@pytest.mark.parametrize("base", [0, -2, 1, np.inf, np.nan])
def test_errors_base(base):
    with pytest.raises(ValueError, match="base"):
        fi.mutual_info_ksg(np.arange(10.0), np.arange(10.0), base=base)
    with pytest.raises(ValueError, match="base"):
        fi.mutual_info_discrete([0, 1], [0, 1], base=base)


def test_errors_from_joint():
    with pytest.raises(ValueError, match="2-D"):
        fi.mutual_info_from_joint([0.5, 0.5])
    with pytest.raises(ValueError, match="2-D"):
        fi.mutual_info_from_joint(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="negative"):
        fi.mutual_info_from_joint([[0.5, -0.1], [0.3, 0.3]])
    assert np.isnan(fi.mutual_info_from_joint(np.zeros((2, 3))))


def test_errors_permutation_test():
    x = np.arange(20.0)
    for n_permutations in (0, -5):
        with pytest.raises(ValueError, match="n_permutations"):
            fi.mutual_info_test(x, x, n_permutations=n_permutations)
    with pytest.raises(ValueError, match="n_permutations"):
        fi.mutual_info_test(x, x, n_permutations=2.5)


def test_errors_infonce():
    with pytest.raises(ValueError, match="scores"):
        fi.infonce_bound(np.ones((3, 4)))
    with pytest.raises(ValueError, match="scores"):
        fi.infonce_bound(np.ones(3))


def test_mixed_all_labels_unique_is_nan():
    assert np.isnan(fi.mutual_info_mixed(np.arange(10.0), np.arange(10)))


def test_complex_samples_raise_type_error():
    with pytest.raises(TypeError, match="x"):
        fi.mutual_info_ksg(np.ones(10) * 1j, np.arange(10.0))


def test_bitwise_identical_for_any_thread_count_large():
    # above the parallel-build threshold (65536 points): subtrees built by several threads
    rng = np.random.default_rng(17)
    x, y = gaussian_pair(rng, 70_000, 1, 0.6)
    xy = np.concatenate([x, y], axis=1)

    def run():
        return [fi.mutual_info_ksg(x, y), fi.mutual_info_ksg(x, y, algorithm=2), fi.entropy_knn(xy)]

    default = run()
    with threadpool_limits(1, "openmp"):
        single = run()
    assert default == single

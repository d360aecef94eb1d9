"""Distribution family: entropy, cross_entropy, kl_divergence, js_divergence.

Compared with the NumPy twins of ``reference.py`` and with ``scipy.stats.entropy`` over dtypes,
layouts, ranks and axes; special values; errors; laws (hypothesis); threads; memmaps.
"""
import threading

import numpy as np
import pytest
import scipy.stats
from numpy.exceptions import AxisError
from scipy.spatial.distance import jensenshannon

import fastinfo as fi
from fastinfo import _kernels

import reference as ref

PQ_FUNCS = {
    "cross_entropy": (fi.cross_entropy, ref.cross_entropy),
    "kl_divergence": (fi.kl_divergence, ref.kl_divergence),
    "js_divergence": (fi.js_divergence, ref.js_divergence),
}
LAYOUTS = ["C", "F", "strided", "transposed"]


def tolerances(dtype):
    # float32 input is computed in float64 and rounded once at the end
    return dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-7)


def make_layout(x, layout):
    """The same values as ``x`` in another memory layout."""
    if layout == "C":
        return np.ascontiguousarray(x)
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "strided":
        big = np.zeros(tuple(2 * n for n in x.shape), dtype=x.dtype)
        view = big[tuple(slice(None, None, 2) for _ in x.shape)]
        view[...] = x
        return view
    # transposed: a C array of the reversed shape, viewed transposed
    return np.ascontiguousarray(x.T).T


def random_probs(rng, shape, dtype, zeros=0.2):
    x = rng.random(shape)
    x[rng.random(shape) < zeros] = 0.0
    return x.astype(dtype)


SHAPES = [(7,), (5, 9), (3, 4, 6)]


# ---------------------------------------------------------------------------
# against the reference twins and SciPy
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_entropy_matches_reference_and_scipy(rng, dtype, layout, shape):
    p = make_layout(random_probs(rng, shape, dtype), layout)
    for axis in range(-len(shape), len(shape)):
        got = fi.entropy(p, axis=axis)
        assert got.dtype == dtype
        assert np.shape(got) == shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
        np.testing.assert_allclose(got, ref.entropy(p, axis=axis), **tolerances(dtype))
        if dtype == np.float64:
            np.testing.assert_allclose(got, scipy.stats.entropy(p, axis=axis), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(PQ_FUNCS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_pq_matches_reference(rng, name, dtype, layout, shape):
    func, twin = PQ_FUNCS[name]
    p = make_layout(random_probs(rng, shape, dtype), layout)
    q = make_layout(random_probs(rng, shape, dtype, zeros=0.0) + dtype(0.01), LAYOUTS[::-1][LAYOUTS.index(layout)])
    for axis in range(-len(shape), len(shape)):
        got = func(p, q, axis=axis)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, twin(p, q, axis=axis), **tolerances(dtype))


@pytest.mark.parametrize("shape", SHAPES)
def test_kl_and_js_match_scipy(rng, shape):
    p = random_probs(rng, shape, np.float64)
    q = random_probs(rng, shape, np.float64, zeros=0.1)
    for axis in range(len(shape)):
        np.testing.assert_allclose(
            fi.kl_divergence(p, q, axis=axis), scipy.stats.entropy(p, q, axis=axis), rtol=1e-12, atol=1e-14
        )
        with np.errstate(invalid="ignore"):
            expected = jensenshannon(p, q, axis=axis) ** 2
        np.testing.assert_allclose(fi.js_divergence(p, q, axis=axis), expected, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(
            fi.cross_entropy(p, q, axis=axis),
            scipy.stats.entropy(p, axis=axis) + scipy.stats.entropy(p, q, axis=axis),
            rtol=1e-12,
            atol=1e-14,
        )


def test_counts_and_extreme_scales_match_scipy(rng):
    counts = rng.integers(0, 1000, size=(40, 300))
    np.testing.assert_allclose(fi.entropy(counts), scipy.stats.entropy(counts, axis=-1), rtol=1e-12)
    for scale in (1e-300, 1e-10, 1e10, 1e300):
        p = rng.random((6, 50)) * scale
        q = rng.random((6, 50)) * scale
        np.testing.assert_allclose(fi.entropy(p), scipy.stats.entropy(p, axis=-1), rtol=1e-12)
        np.testing.assert_allclose(fi.kl_divergence(p, q), scipy.stats.entropy(p, q, axis=-1), rtol=1e-11)
        np.testing.assert_allclose(fi.js_divergence(p, q), ref.js_divergence(p, q), rtol=1e-11)


def test_long_rows_and_many_rows_match_scipy(rng):
    p = rng.random((3, 100_000))
    q = rng.random((3, 100_000))
    np.testing.assert_allclose(fi.entropy(p), scipy.stats.entropy(p, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(fi.kl_divergence(p, q), scipy.stats.entropy(p, q, axis=-1), rtol=1e-10, atol=1e-14)
    p = rng.random((2000, 3))
    np.testing.assert_allclose(fi.entropy(p), scipy.stats.entropy(p, axis=-1), rtol=1e-12)


def test_rows_longer_than_a_chunk(rng):
    # rows longer than the kernels' chunk (65536) are split into fixed chunks run on all threads
    n = 150_001
    p = rng.random((3, n))
    q = rng.random((3, n))
    p[0, ::7] = 0.0
    p[1, 5] = np.nan
    q[2, 100_000] = 0.0
    h = fi.entropy(p)
    np.testing.assert_allclose(h, ref.entropy(p), rtol=1e-12)
    assert np.isnan(h[1])
    for name, (func, twin) in PQ_FUNCS.items():
        got = func(p, q)
        np.testing.assert_allclose(got, twin(p, q), rtol=1e-11, atol=1e-14)
    assert np.isinf(fi.kl_divergence(p, q)[2]) and np.isinf(fi.cross_entropy(p, q)[2])
    np.testing.assert_allclose(fi.entropy(p[0]), scipy.stats.entropy(p[0]), rtol=1e-12)
    np.testing.assert_allclose(fi.entropy(p[0].astype(np.float32)), ref.entropy(p[0].astype(np.float32)), rtol=2e-6)
    # careful variants: tiny sums, a subnormal log argument
    tiny = p[0] * 1e-310
    np.testing.assert_allclose(fi.entropy(tiny), ref.entropy(tiny), rtol=1e-12)
    sub = p[2].copy()
    sub[3] = 5e-324
    np.testing.assert_allclose(fi.entropy(sub), ref.entropy(sub), rtol=1e-12)
    np.testing.assert_allclose(fi.kl_divergence(sub, q[0]), ref.kl_divergence(sub, q[0]), rtol=1e-11)
    bad = p.copy()
    bad[2, 90_000] = -1.0
    with pytest.raises(ValueError, match=r"^p must not have negative entries.*\(2,\)"):
        fi.entropy(bad)
    with pytest.raises(ValueError, match=r"^q must not have negative entries.*\(2,\)"):
        fi.js_divergence(p, bad)
    assert (fi.entropy(np.zeros((2, n))) != fi.entropy(np.zeros((2, n)))).all()


def test_subnormal_and_tiny_entries(rng):
    p = np.array([[5e-324, 1.0, 1e-310], [1e-300, 1e-300, 2e-300], [1.0, 1e-20, 0.0]])
    np.testing.assert_allclose(fi.entropy(p), ref.entropy(p), rtol=1e-12, atol=1e-300)
    q = p[::-1].copy()
    np.testing.assert_allclose(fi.js_divergence(p, q), ref.js_divergence(p, q), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(fi.kl_divergence(p, q + 1e-200), ref.kl_divergence(p, q + 1e-200), rtol=1e-12)
    # sums so small or large that 1/sum is subnormal or overflows: computed by true division
    for p, q in [([1e-320, 3e-320, 0.0], [2e-320, 1e-320, 5e-324]), ([1e308, 5e307, 1.0], [1.0, 1e308, 2e307])]:
        p, q = np.array(p), np.array(q)
        np.testing.assert_allclose(fi.entropy(p), scipy.stats.entropy(p), rtol=1e-12)
        np.testing.assert_allclose(fi.entropy(np.stack([p, q])), ref.entropy(np.stack([p, q])), rtol=1e-12)
        for func, twin in PQ_FUNCS.values():
            np.testing.assert_allclose(func(p, q), twin(p, q), rtol=1e-12)
            np.testing.assert_allclose(func(q, p), twin(q, p), rtol=1e-12)


def test_accuracy_against_mpmath(rng):
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    p = random_probs(rng, (4, 60), np.float64) * 1000
    q = random_probs(rng, (4, 60), np.float64, zeros=0.0) + 1e-3

    def exact(pr, qr):
        a = [mpmath.mpf(x) for x in pr]
        b = [mpmath.mpf(x) for x in qr]
        a = [x / sum(a) for x in a]
        b = [x / sum(b) for x in b]
        m = [(x + y) / 2 for x, y in zip(a, b)]
        h = -sum(x * mpmath.log(x) for x in a if x > 0)
        kl = sum(x * mpmath.log(x / y) for x, y in zip(a, b) if x > 0)
        ce = -sum(x * mpmath.log(y) for x, y in zip(a, b) if x > 0)
        js = (sum(x * mpmath.log(x / z) for x, z in zip(a, m) if x > 0)
              + sum(y * mpmath.log(y / z) for y, z in zip(b, m) if y > 0)) / 2
        return [float(v) for v in (h, kl, ce, js)]

    got = np.stack([fi.entropy(p), fi.kl_divergence(p, q), fi.cross_entropy(p, q), fi.js_divergence(p, q)], axis=1)
    want = np.array([exact(pr, qr) for pr, qr in zip(p, q)])
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_vectorised_log_is_accurate_to_one_ulp(rng):
    # the clone in use (tests/test_clones.py reruns this under every clone the CPU has): the
    # generic clones' atanh log is below 1 ulp; the AVX-512 clone's division-free table log below
    # 1.5 ulp by construction (three roundings at most; see csrc/simd_avx512.h)
    mpmath = pytest.importorskip("mpmath")
    bound = 1.5 if _kernels.dense_isa() == "avx512" else 1.0
    x = np.concatenate(
        [
            np.exp(rng.uniform(-744, 709, 3000)),
            rng.uniform(0.5, 2.0, 3000),
            1.0 + rng.normal(0.0, 1e-9, 500),
            rng.uniform(0.0, 2.2250738585072014e-308, 200),
            [5e-324, 2.2250738585072014e-308, 0.5, 1.0, 2.0, np.sqrt(0.5), np.sqrt(2.0), np.finfo(float).max],
        ]
    )
    x = x[x > 0]
    out = np.empty_like(x)
    _kernels.distribution_log(x, out)
    assert out[x == 1.0].tolist() == [0.0] * int((x == 1.0).sum())
    mpmath.mp.prec = 100
    worst = 0.0
    for xi, yi in zip(x.tolist(), out.tolist()):
        exact = mpmath.log(mpmath.mpf(xi))
        if exact == 0:
            continue
        worst = max(worst, float(abs(mpmath.mpf(yi) - exact)) / np.spacing(abs(float(exact))))
    assert worst < bound, worst


# ---------------------------------------------------------------------------
# special values
# ---------------------------------------------------------------------------


def test_zeros_and_infinite_divergence():
    p = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    q = np.array([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    kl = fi.kl_divergence(p, q)
    ce = fi.cross_entropy(p, q)
    assert np.isinf(kl[0]) and kl[0] > 0 and kl[1] == 0.0 and np.isinf(kl[2])
    assert np.isinf(ce[0]) and ce[1] == 0.0 and np.isinf(ce[2])
    assert fi.entropy(p)[1] == 0.0 and fi.entropy(p)[2] == 0.0
    np.testing.assert_array_equal(kl, scipy.stats.entropy(p, q, axis=-1))
    # zeros of q where p is zero are harmless
    assert np.isfinite(fi.kl_divergence([1.0, 0.0], [1.0, 0.0]))
    np.testing.assert_allclose(fi.js_divergence(p, q), ref.js_divergence(p, q), rtol=1e-12, atol=1e-15)
    assert fi.js_divergence([1, 0], [0, 1]) == pytest.approx(np.log(2), rel=1e-15)


@pytest.mark.parametrize("eps", [1e-12, 1e-3, 0.5, 3])
def test_eps_is_added_to_q_only_before_normalising(rng, eps):
    p = random_probs(rng, (4, 10), np.float64)
    q = random_probs(rng, (4, 10), np.float64, zeros=0.5)
    np.testing.assert_allclose(fi.kl_divergence(p, q, eps=eps), ref.kl_divergence(p, q, eps=eps), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fi.kl_divergence(p, q, eps=eps), scipy.stats.entropy(p, q + eps, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(fi.cross_entropy(p, q, eps=eps), ref.cross_entropy(p, q, eps=eps), rtol=1e-12, atol=1e-14)
    assert np.isfinite(fi.kl_divergence(p, q, eps=eps)).all()
    # p is not smoothed: a zero of p stays a zero
    assert fi.kl_divergence([1.0, 0.0], [1.0, 0.0], eps=eps) == pytest.approx(
        np.log((1 + 2 * eps) / (1 + eps)), rel=1e-12
    )


def test_nan_and_inf_give_nan_in_their_slice_only():
    p = np.array([[0.2, np.nan, 0.8], [0.5, 0.5, 0.0], [np.inf, 1.0, 0.0]])
    q = np.full((3, 3), 1.0)
    h = fi.entropy(p)
    assert np.isnan(h[0]) and np.isnan(h[2]) and h[1] == pytest.approx(np.log(2))
    for func in (fi.cross_entropy, fi.kl_divergence, fi.js_divergence):
        r = func(p, q)
        assert np.isnan(r[0]) and np.isnan(r[2]) and np.isfinite(r[1])
        r = func(q, p)  # q = 0 < p in slice 1: inf for CE and KL
        assert np.isnan(r[0]) and np.isnan(r[2]) and not np.isnan(r[1])
    # NaN wins over q = 0 < p
    assert np.isnan(fi.kl_divergence([1.0, np.nan], [0.0, 1.0]))


def test_zero_sum_and_empty_slices_give_nan():
    assert np.isnan(fi.entropy([0.0, 0.0]))
    assert np.isnan(fi.entropy(np.zeros(0)))
    assert fi.entropy(np.zeros((3, 0))).shape == (3,) and np.isnan(fi.entropy(np.zeros((3, 0)))).all()
    assert fi.entropy(np.zeros((0, 4))).shape == (0,)
    assert fi.entropy(np.zeros((0, 4)), axis=0).shape == (4,) and np.isnan(fi.entropy(np.zeros((0, 4)), axis=0)).all()
    for func, twin in PQ_FUNCS.values():
        p, q = [[0, 0], [1, 1], [1, 1]], [[1, 1], [0, 0], [1, 3]]
        r = func(p, q)
        assert np.isnan(r[0]) and np.isnan(r[1]) and np.isfinite(r[2])
        np.testing.assert_allclose(r, twin(p, q), rtol=1e-12)
        assert np.isnan(func(np.zeros((2, 0)), np.zeros((2, 0)))).all()


def test_length_one_slices():
    x = np.array([[3.0], [0.5], [7.0]])
    assert (fi.entropy(x) == 0.0).all()
    assert (fi.kl_divergence(x, x[::-1]) == 0.0).all()
    assert (fi.js_divergence(x, x[::-1]) == 0.0).all()
    assert (fi.cross_entropy(x, x[::-1]) == 0.0).all()


@pytest.mark.parametrize("base", [2, 10, 0.5, np.float32(3.0)])
def test_base(rng, base):
    p = random_probs(rng, (5, 8), np.float64)
    q = random_probs(rng, (5, 8), np.float64) + 0.1
    np.testing.assert_allclose(fi.entropy(p, base=base), scipy.stats.entropy(p, axis=-1, base=base), rtol=1e-12)
    np.testing.assert_allclose(fi.kl_divergence(p, q, base=base), scipy.stats.entropy(p, q, axis=-1, base=base), rtol=1e-12)
    for name, (func, twin) in PQ_FUNCS.items():
        np.testing.assert_allclose(func(p, q, base=base), twin(p, q, base=float(base)), rtol=1e-12, atol=1e-14)
    assert fi.entropy([1, 1, 1, 1], base=2) == pytest.approx(2.0, rel=1e-15)


def test_dtypes_and_scalars():
    h = fi.entropy([1, 2, 3])
    assert isinstance(h, np.float64) and h == pytest.approx(scipy.stats.entropy([1, 2, 3]), rel=1e-14)
    assert isinstance(fi.entropy(np.float32([1, 2, 3])), np.float32)
    assert fi.entropy(np.float16([[1, 2, 3]])).dtype == np.float32
    assert fi.entropy(np.array([[True, False, True]])).dtype == np.float64
    assert fi.entropy(np.array([[1, 2]], dtype=np.uint8)).dtype == np.float64
    assert fi.kl_divergence(np.float32([[1, 2]]), np.float64([[2, 1]])).dtype == np.float64
    assert fi.kl_divergence(np.float32([[1, 2]]), np.float32([[2, 1]])).dtype == np.float32
    assert isinstance(fi.js_divergence([1, 2], [2, 1]), np.float64)
    assert fi.entropy([[1, 2]], axis=0).shape == (2,)


def test_broadcasting_matches_scipy_without_copies(rng):
    p = rng.random((4, 1, 6))
    q = rng.random((3, 6))
    expected = scipy.stats.entropy(p, q, axis=-1)
    got = fi.kl_divergence(p, q)
    assert got.shape == (4, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    for name, (func, twin) in PQ_FUNCS.items():
        np.testing.assert_allclose(func(p, q), twin(p, q), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(func(q, p), twin(q, p), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(func(p, q, axis=0), twin(p, q, axis=0), rtol=1e-12, atol=1e-14)
    # broadcast along the reduced axis itself, and a 1-D q against 2-D p
    pp = rng.random((3, 5))
    np.testing.assert_allclose(fi.kl_divergence(pp, np.ones((3, 1))), scipy.stats.entropy(pp, np.ones((3, 1)), axis=1), rtol=1e-12)
    np.testing.assert_allclose(fi.kl_divergence(pp, pp[0]), scipy.stats.entropy(pp, pp[0], axis=1), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


def test_negative_entries_raise_naming_the_argument():
    with pytest.raises(ValueError, match=r"^p must not have negative entries"):
        fi.entropy([[0.5, 0.5], [1.0, -1e-300]])
    with pytest.raises(ValueError, match=r"index \(1,\)"):
        fi.entropy([[0.5, 0.5], [1.0, -1.0]])
    with pytest.raises(ValueError, match=r"^p must not"):
        fi.entropy([1.0, -np.inf, np.nan])
    for func in (fi.cross_entropy, fi.kl_divergence, fi.js_divergence):
        with pytest.raises(ValueError, match=r"^q must not have negative entries"):
            func([[1.0, 1.0]], [[1.0, -2.0]])
        with pytest.raises(ValueError, match=r"^p must not have negative entries"):
            func([[1.0, -1.0]], [[1.0, 2.0]])
    # eps does not excuse a negative q
    with pytest.raises(ValueError, match=r"^q must not"):
        fi.kl_divergence([1.0, 1.0], [1.0, -0.5], eps=1.0)
    # negative zero is zero
    assert fi.entropy([-0.0, 1.0]) == 0.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"p\.shape=\(3, 4\).*q\.shape=\(2, 4\)"):
        fi.kl_divergence(np.ones((3, 4)), np.ones((2, 4)))
    for func in (fi.cross_entropy, fi.js_divergence):
        with pytest.raises(ValueError, match="broadcast"):
            func(np.ones(3), np.ones(4))


@pytest.mark.parametrize("base", [1, 1.0, 0, -2.0, np.nan, np.inf])
def test_bad_base_raises(base):
    with pytest.raises(ValueError, match="base"):
        fi.entropy([1, 2], base=base)
    for func in (fi.cross_entropy, fi.kl_divergence, fi.js_divergence):
        with pytest.raises(ValueError, match="base"):
            func([1, 2], [2, 1], base=base)


def test_bad_types_and_axes_raise():
    with pytest.raises(TypeError, match="p"):
        fi.entropy(np.array([1 + 1j, 2]))
    with pytest.raises(TypeError, match="q"):
        fi.kl_divergence([1.0, 2.0], np.array([1 + 1j, 2]))
    with pytest.raises(TypeError, match="base"):
        fi.entropy([1, 2], base="2")
    with pytest.raises(AxisError):
        fi.entropy(np.ones((2, 3)), axis=2)
    with pytest.raises(AxisError):
        fi.kl_divergence(np.ones((2, 3)), np.ones((2, 3)), axis=-3)
    with pytest.raises(AxisError):
        fi.entropy(1.0)
    for eps in (-1e-3, np.nan, np.inf):
        with pytest.raises(ValueError, match="eps"):
            fi.kl_divergence([1, 2], [2, 1], eps=eps)
    with pytest.raises(TypeError, match="eps"):
        fi.cross_entropy([1, 2], [2, 1], eps="small")


# ---------------------------------------------------------------------------
# laws (hypothesis)
# ---------------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

entries = st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def positive_pairs(draw):
    n = draw(st.integers(1, 40))
    p = draw(hnp.arrays(np.float64, n, elements=entries))
    q = draw(hnp.arrays(np.float64, n, elements=st.floats(1e-3, 1e6)))
    p[0] += 1.0  # a non-zero sum
    return p, q


@given(positive_pairs())
def test_kl_is_nonnegative_and_cross_entropy_decomposes(pq):
    p, q = pq
    kl = fi.kl_divergence(p, q)
    h = fi.entropy(p)
    ce = fi.cross_entropy(p, q)
    assert kl >= -1e-14
    assert h >= 0.0
    assert ce == pytest.approx(h + kl, rel=1e-12, abs=1e-13)


@given(positive_pairs())
def test_js_is_symmetric_and_bounded(pq):
    p, q = pq
    js = fi.js_divergence(p, q)
    assert js == pytest.approx(fi.js_divergence(q, p), rel=1e-12, abs=1e-15)
    assert -1e-15 <= js <= np.log(2) * (1 + 1e-15)
    assert fi.js_divergence(p, q, base=2) <= 1.0 + 1e-15


# ---------------------------------------------------------------------------
# threads, inputs, memmaps
# ---------------------------------------------------------------------------


def _all_results(p, q):
    return [fi.entropy(p), fi.cross_entropy(p, q), fi.kl_divergence(p, q, eps=1e-6), fi.js_divergence(p, q)]


@pytest.mark.parametrize("shape", [(301, 257), (2, 140_000), (140_000,)])
def test_bitwise_identical_for_one_thread_and_all(rng, shape):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    for dtype in (np.float32, np.float64):
        p = random_probs(rng, shape, dtype)
        q = random_probs(rng, shape, dtype)
        many = _all_results(p, q)
        with threadpoolctl.threadpool_limits(1, "openmp"):
            one = _all_results(p, q)
        for a, b in zip(many, one):
            np.testing.assert_array_equal(a, b)


def test_inputs_are_not_modified(rng):
    p = random_probs(rng, (6, 9), np.float64)
    q = random_probs(rng, (6, 9), np.float64)
    p32 = p.astype(np.float32)
    copies = [p.copy(), q.copy(), p32.copy()]
    _all_results(p, q)
    _all_results(p32, q)
    fi.entropy(p.T, axis=0)
    for before, after in zip(copies, [p, q, p32]):
        np.testing.assert_array_equal(before, after)


def test_read_only_memmap_input(rng, tmp_path):
    p = random_probs(rng, (20, 33), np.float64)
    q = random_probs(rng, (20, 33), np.float32)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    mp = np.load(tmp_path / "p.npy", mmap_mode="r")
    mq = np.load(tmp_path / "q.npy", mmap_mode="r")
    assert not mp.flags.writeable
    np.testing.assert_array_equal(fi.entropy(mp), fi.entropy(p))
    np.testing.assert_array_equal(fi.entropy(mq), fi.entropy(q))
    np.testing.assert_array_equal(fi.js_divergence(mp, mq), fi.js_divergence(p, q))
    np.testing.assert_array_equal(fi.kl_divergence(mp[:, ::2], mq[:, ::2]), fi.kl_divergence(p[:, ::2], q[:, ::2]))


def test_calls_from_four_python_threads(rng):
    p = random_probs(rng, (200, 500), np.float64)
    q = random_probs(rng, (200, 500), np.float64)
    expected = _all_results(p, q)
    results = [None] * 4
    errors = []

    def work(i):
        try:
            for _ in range(5):
                results[i] = _all_results(p, q)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for res in results:
        for a, b in zip(res, expected):
            np.testing.assert_array_equal(a, b)

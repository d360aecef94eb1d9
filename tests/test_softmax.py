"""Softmax family: fastinfo against the NumPy twins of tests/reference.py and against SciPy."""
import concurrent.futures
import itertools

import mpmath
import numpy as np
import pytest
import scipy.special
from hypothesis import given, strategies as st
from numpy.exceptions import AxisError
from threadpoolctl import threadpool_limits

import fastinfo as fi
import reference as ref

FLOATS = [np.float32, np.float64]


# ----------------------------------------------------------------------------- helpers


def assert_close(actual, expected, dtype, scale=1.0):
    """float64: rtol 1e-12; float32 (computed from float32 input, compared with the float64 result
    of the same input): a few float32 ulps."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    if dtype == np.float64:
        rtol, atol = 1e-12, 1e-12 * scale
    else:
        rtol, atol = 4e-6, 4e-6 * scale
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def layouts(base):
    """The same logical values in C order, Fortran order, as a strided view and as a transposed view."""
    yield "C", np.ascontiguousarray(base)
    yield "F", np.asfortranarray(base)
    big = np.zeros(tuple(2 * s for s in base.shape), dtype=base.dtype)
    view = big[tuple(slice(None, None, 2) for _ in base.shape)]
    view[...] = base
    yield "strided", view
    yield "transposed", np.ascontiguousarray(base.T).T


def logits_cases(dtypes=FLOATS, shapes=((7,), (5, 13), (3, 4, 9)), seed=0):
    rng = np.random.default_rng(seed)
    for dtype, shape in itertools.product(dtypes, shapes):
        base = (rng.standard_normal(shape) * 3).astype(dtype)
        for name, x in layouts(base):
            for axis in range(-1, len(shape)):
                yield dtype, name, x, axis


def with_specials(x, axis):
    """Put NaN, +inf, an all -inf slice and some masked (-inf) logits into different slices."""
    x = np.array(x, copy=True)
    moved = np.moveaxis(x, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    rows = flat.shape[0]
    assert rows >= 4 and flat.shape[-1] >= 3
    flat[0, 1] = np.nan
    flat[1, 2] = np.inf
    flat[2, :] = -np.inf
    flat[3, 0] = -np.inf
    return np.moveaxis(flat.reshape(moved.shape), -1, axis)


def spacing32(ref64):
    return np.spacing(np.maximum(np.abs(ref64), 1.0).astype(np.float32)).astype(np.float64)


# ----------------------------------------------------------------------------- logsumexp, log_softmax, softmax


@pytest.mark.parametrize("dtype,layout,x,axis", list(logits_cases()))
def test_logsumexp_log_softmax_softmax_match_reference_and_scipy(dtype, layout, x, axis):
    expected = ref.ref_logsumexp(x, axis)
    got = fi.logsumexp(x, axis)
    assert np.asarray(got).dtype == dtype
    assert_close(got, expected, dtype, scale=np.abs(expected).max())
    assert_close(got, scipy.special.logsumexp(x.astype(np.float64), axis=axis), dtype, scale=np.abs(expected).max())
    kept = fi.logsumexp(x, axis, keepdims=True)
    assert kept.shape == np.expand_dims(expected, axis).shape

    lsm = fi.log_softmax(x, axis)
    assert lsm.dtype == dtype and lsm.shape == x.shape
    assert_close(lsm, ref.ref_log_softmax(x, axis), dtype, scale=np.abs(lsm).max())
    assert_close(lsm, scipy.special.log_softmax(x.astype(np.float64), axis=axis), dtype, scale=np.abs(lsm).max())
    sm = fi.softmax(x, axis)
    assert sm.dtype == dtype
    assert_close(sm, scipy.special.softmax(x.astype(np.float64), axis=axis), dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_temperature(dtype, temperature):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((6, 40)) * 4).astype(dtype)
    assert_close(fi.log_softmax(x, temperature=temperature), ref.ref_log_softmax(x, -1, temperature), dtype, 10)
    assert_close(fi.softmax(x, temperature=temperature), ref.ref_softmax(x, -1, temperature), dtype)
    assert_close(fi.softmax_entropy(x, temperature=temperature), ref.ref_softmax_entropy(x, -1, temperature), dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_special_values(dtype, axis):
    rng = np.random.default_rng(2)
    x = with_specials((rng.standard_normal((6, 5)) * 2).astype(dtype), axis)
    lse = np.asarray(fi.logsumexp(x, axis))
    expected = ref.ref_logsumexp(x, axis)
    assert_close(lse, expected, dtype, scale=10)
    lse_rows = np.moveaxis(np.asarray(lse)[..., None], -1, -1).reshape(-1)
    assert np.isnan(lse_rows[0]) and lse_rows[1] == np.inf and lse_rows[2] == -np.inf and np.isfinite(lse_rows[3])
    for fn in (fi.log_softmax, fi.softmax):
        out = np.moveaxis(fn(x, axis), axis, -1).reshape(-1, x.shape[axis])
        assert np.isnan(out[:3]).all()          # NaN, +inf and all -inf slices: NaN everywhere
        assert np.isfinite(out[4:]).all()
    lsm = np.moveaxis(fi.log_softmax(x, axis), axis, -1).reshape(-1, x.shape[axis])
    assert lsm[3, 0] == -np.inf and np.isfinite(lsm[3, 1:]).all()
    sm = np.moveaxis(fi.softmax(x, axis), axis, -1).reshape(-1, x.shape[axis])
    assert sm[3, 0] == 0.0
    assert_close(fi.log_softmax(x, axis), ref.ref_log_softmax(x, axis), dtype, 10)
    assert_close(fi.softmax_entropy(x, axis), ref.ref_softmax_entropy(x, axis), dtype)


def test_contract_examples():
    assert np.isnan(fi.log_softmax(np.array([np.inf, 0.0]))).all()
    assert fi.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
    assert fi.logsumexp(np.array([np.inf, 1.0])) == np.inf
    assert np.isnan(fi.logsumexp(np.array([np.inf, np.nan])))
    assert np.isnan(fi.logsumexp(np.array([-np.inf, np.nan])))
    assert fi.logsumexp(np.zeros((3, 0))).tolist() == [-np.inf] * 3


@pytest.mark.parametrize("dtype", FLOATS)
def test_length_one_and_empty(dtype):
    x = np.array([[3.0], [-2.0], [np.nan]], dtype=dtype)
    assert np.array_equal(fi.logsumexp(x), np.array([3.0, -2.0, np.nan], dtype=dtype), equal_nan=True)
    assert np.array_equal(fi.log_softmax(x), np.array([[0.0], [0.0], [np.nan]], dtype=dtype), equal_nan=True)
    assert np.array_equal(fi.softmax(x), np.array([[1.0], [1.0], [np.nan]], dtype=dtype), equal_nan=True)
    empty = np.zeros((0, 5), dtype=dtype)
    assert fi.logsumexp(empty).shape == (0,) and fi.log_softmax(empty).shape == (0, 5)
    assert fi.softmax_entropy(empty).shape == (0,)
    assert fi.softmax_kl_divergence(empty, empty).shape == (0,)
    assert fi.softmax_cross_entropy(empty, np.zeros(0, dtype=np.int64), reduction="none").shape == (0,)
    assert np.isnan(fi.softmax_cross_entropy(empty, np.zeros(0, dtype=np.int64)))
    assert fi.softmax_cross_entropy(empty, np.zeros(0, dtype=np.int64), reduction="sum") == 0.0
    assert fi.log_softmax(np.zeros((4, 0), dtype=dtype)).shape == (4, 0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_long_row_and_large_magnitudes(dtype):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 100_000)) * 5).astype(dtype)
    x[1, 77_777] = 40.0   # a late maximum: the running max is raised in a late block
    assert_close(fi.logsumexp(x), ref.ref_logsumexp(x), dtype, 100)
    lsm = fi.log_softmax(x)
    assert_close(lsm, ref.ref_log_softmax(x), dtype, 100)
    assert_close(fi.softmax_entropy(x), ref.ref_softmax_entropy(x), dtype, 10)
    big = (rng.standard_normal((4, 300)) * 1e4).astype(dtype)
    assert_close(fi.logsumexp(big), ref.ref_logsumexp(big), dtype, 1e4)
    assert_close(fi.log_softmax(big), ref.ref_log_softmax(big), dtype, 1e4)
    t = rng.integers(0, 300, 4)
    assert_close(fi.softmax_cross_entropy(big, t, reduction="none"),
                 ref.ref_softmax_cross_entropy(big, t, reduction="none"), dtype, 1e4)
    if dtype == np.float64:
        huge = rng.standard_normal((4, 50)) * 1e30
        assert_close(fi.logsumexp(huge), ref.ref_logsumexp(huge), dtype, 1e30)
        assert_close(fi.log_softmax(huge), ref.ref_log_softmax(huge), dtype, 1e30)
        assert_close(fi.softmax(huge), ref.ref_softmax(huge), dtype)


def test_float32_log_softmax_within_one_ulp():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((64, 4000)) * 3).astype(np.float32)
    x[:8] *= 30   # also wide rows (|log p| up to ~1e3)
    for temperature in (1.0, 0.7):
        got = fi.log_softmax(x, temperature=temperature).astype(np.float64)
        expected = ref.ref_log_softmax(x, -1, temperature)
        ulps = np.abs(got - expected) / spacing32(expected)
        assert ulps.max() <= 1.0, ulps.max()


def test_float32_confident_rows_within_one_ulp():
    """A confident row (one logit far above the rest, S = 1 + eps) carries the rounding of its sum
    of exps straight into its largest log-probability, log p = -log(1 + eps) ~ -eps: the float32
    sums must keep eps (the pair of exps holding exp(0) = 1 is added in double). The per-row
    cross-entropy of the confident token and the KL to a slightly perturbed row likewise. With a
    temperature, t = (x - m) / T is itself a rounded float (up to 1.35 ulp here)."""
    rng = np.random.default_rng(31)
    rows = 24
    x = rng.standard_normal((rows, 5000)).astype(np.float32)
    top = rng.integers(0, 5000, rows)
    x[np.arange(rows), top] += np.linspace(6, 20, rows).astype(np.float32)
    for temperature, max_ulps in ((1.0, 1.0), (0.7, 2.0)):
        got = fi.log_softmax(x, temperature=temperature).astype(np.float64)
        expected = ref.ref_log_softmax(x, -1, temperature)
        ulps = np.abs(got - expected) / spacing32(expected)
        assert ulps.max() <= max_ulps, ulps.max()
        ce = fi.softmax_cross_entropy(x, top, reduction="none", temperature=temperature)
        np.testing.assert_allclose(ce, -expected[np.arange(rows), top], rtol=1e-6, atol=0)
    y = x + (rng.standard_normal(x.shape) * 0.01).astype(np.float32)
    np.testing.assert_allclose(fi.softmax_kl_divergence(x, y, reduction="none"),
                               ref.ref_softmax_kl_divergence(x, y), rtol=1e-3, atol=0)


def test_float64_against_mpmath():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal((3, 40)) * 3, rng.uniform(-700, 0, (2, 40))])
    mpmath.mp.dps = 40
    for row, lse, lsm, sm in zip(x, fi.logsumexp(x), fi.log_softmax(x), fi.softmax(x)):
        exact_lse = mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(float(v))) for v in row))
        assert abs(lse - exact_lse) <= 1e-13 * abs(exact_lse)
        for v, a, b in zip(row, lsm, sm):
            exact = mpmath.mpf(float(v)) - exact_lse
            assert abs(a - exact) <= 1e-13 * max(abs(exact), 1)
            exact_p = mpmath.exp(exact)
            if exact_p > 1e-300:
                assert abs(b - exact_p) <= 1e-13 * exact_p


@pytest.mark.parametrize("dtype", FLOATS)
def test_out_and_in_place(dtype):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((5, 33)) * 2).astype(dtype)
    expected = fi.log_softmax(x)
    out = np.empty_like(x)
    assert fi.log_softmax(x, out=out) is out and np.array_equal(out, expected)
    y = x.copy()
    assert fi.log_softmax(y, out=y) is y and np.array_equal(y, expected)
    y = x.copy()
    assert fi.softmax(y, out=y, temperature=2.0) is y
    assert np.array_equal(y, fi.softmax(x, temperature=2.0))
    # the class axis first: the output layout is not rows, written through a temporary
    y = x.copy()
    assert fi.log_softmax(y, axis=0, out=y) is y and np.array_equal(y, fi.log_softmax(x, axis=0))
    out_f = np.empty(x.shape, dtype=dtype, order="F")
    assert fi.log_softmax(x, out=out_f) is out_f and np.array_equal(out_f, expected)
    with pytest.raises(ValueError, match="out"):
        fi.log_softmax(x, out=np.empty((5, 32), dtype=dtype))
    with pytest.raises(ValueError, match="out"):
        fi.log_softmax(x, out=np.empty(x.shape, dtype=np.float16))


# ----------------------------------------------------------------------------- entropy and KL


@pytest.mark.parametrize("dtype,layout,x,axis", list(logits_cases(shapes=((6,), (4, 11), (2, 3, 8)), seed=7)))
def test_entropy_and_kl_match_reference(dtype, layout, x, axis):
    assert_close(fi.softmax_entropy(x, axis), ref.ref_softmax_entropy(x, axis), dtype)
    assert_close(fi.softmax_entropy(x, axis, base=2), ref.ref_softmax_entropy(x, axis, base=2), dtype)
    rng = np.random.default_rng(8)
    q = (rng.standard_normal(x.shape) * 2).astype(dtype)
    got = fi.softmax_kl_divergence(x, q, axis)
    assert np.asarray(got).dtype == dtype
    assert_close(got, ref.ref_softmax_kl_divergence(x, q, axis), dtype, 10)
    for reduction in ("mean", "sum"):
        r = fi.softmax_kl_divergence(x, q, axis, reduction=reduction, base=2, temperature=1.5)
        assert type(r) is float
        assert_close(r, ref.ref_softmax_kl_divergence(x, q, axis, 1.5, reduction, 2), dtype, 10)


@pytest.mark.parametrize("dtype", FLOATS)
def test_kl_special_values(dtype):
    a = np.array([[0.0, 1.0, 2.0], [0.0, -np.inf, 1.0], [0.0, 1.0, 2.0], [np.nan, 0, 0], [np.inf, 0, 0],
                  [-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 1.0]], dtype=dtype)
    b = np.array([[0.0, 1.0, 2.0], [0.5, 0.0, 1.0], [0.0, -np.inf, 2.0], [0, 0, 0], [0, 0, 0], [0, 0, 0],
                  [0.0, -np.inf, 3.0]], dtype=dtype)
    got = fi.softmax_kl_divergence(a, b)
    assert got[0] == pytest.approx(0.0, abs=1e-7)
    assert got[2] == np.inf        # q = 0 where p > 0
    assert np.isnan(got[3:6]).all()
    assert_close(got, ref.ref_softmax_kl_divergence(a, b), dtype, 10)


# ----------------------------------------------------------------------------- cross-entropy


def ce_options():
    for reduction, ignore_index, label_smoothing, weighted, temperature in itertools.product(
        ["mean", "sum", "none"], [None, 2, -100], [0.0, 0.25, 1.0], [False, True], [1.0, 0.6]
    ):
        yield dict(reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
                   weighted=weighted, temperature=temperature)


def _ce_inputs(dtype, shape, axis, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    n_classes = shape[axis]
    target_shape = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    target = rng.integers(0, n_classes, size=target_shape)
    if target.size > 1:
        target.flat[0] = 2
        target.flat[-1] = -100 if target.size > 2 else target.flat[-1]
    probs = rng.random(shape)
    probs /= probs.sum(axis=axis, keepdims=True)
    weight = rng.random(n_classes) + 0.2
    return x, target, probs.astype(dtype), weight


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,axis", [((5,), 0), ((6, 7), -1), ((3, 5, 4), 1), ((4, 3, 5), 0)])
def test_cross_entropy_matches_torch_semantics_reference(dtype, shape, axis):
    x, target, probs, weight = _ce_inputs(dtype, shape, axis, seed=9)
    for opts in ce_options():
        kw = dict(opts)
        w = weight if kw.pop("weighted") else None
        t = target
        if kw["ignore_index"] != -100:
            t = np.where(target == -100, 1, target)   # -100 is only legal when it is the ignore_index
        expected = ref.ref_softmax_cross_entropy(x, t, axis, weight=w, **kw)
        got = fi.softmax_cross_entropy(x, t, axis, weight=w, **kw)
        if kw["reduction"] == "none":
            assert np.asarray(got).dtype == dtype and np.shape(got) == t.shape
        else:
            assert type(got) is float
        assert_close(got, expected, dtype, 10)
        loss, grad = fi.softmax_cross_entropy_with_grad(x, t, axis, weight=w, **kw)
        assert_close(loss, expected, dtype, 10)
        assert grad.shape == x.shape and grad.dtype == dtype
        assert_close(grad, ref.ref_softmax_cross_entropy_grad(x, t, axis, weight=w, **kw), dtype)
        # probability targets (ignore_index does not apply to them, as in torch)
        kw.pop("ignore_index")
        expected = ref.ref_softmax_cross_entropy(x, probs, axis, weight=w, **kw)
        assert_close(fi.softmax_cross_entropy(x, probs, axis, weight=w, **kw), expected, dtype, 10)
        loss, grad = fi.softmax_cross_entropy_with_grad(x, probs, axis, weight=w, **kw)
        assert_close(loss, expected, dtype, 10)
        assert_close(grad, ref.ref_softmax_cross_entropy_grad(x, probs, axis, weight=w, **kw), dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_layouts(dtype):
    for dtype_, layout, x, axis in logits_cases(dtypes=[dtype], shapes=((4, 6), (3, 2, 5)), seed=10):
        rng = np.random.default_rng(11)
        target = rng.integers(0, x.shape[axis], size=np.delete(np.array(x.shape), axis % x.ndim))
        for reduction in ("none", "mean"):
            assert_close(fi.softmax_cross_entropy(x, target, axis, reduction=reduction),
                         ref.ref_softmax_cross_entropy(x, target, axis, reduction), dtype, 10)
        assert_close(fi.perplexity(x, target, axis), ref.ref_perplexity(x, target, axis), dtype, 10)


def test_cross_entropy_details():
    x = np.array([[0.0, 0.0], [1.0, 2.0], [np.nan, 1.0], [3.0, np.inf]])
    # ignored positions give 0 (even NaN logits) and a zero gradient; "none" is 0 there
    loss, grad = fi.softmax_cross_entropy_with_grad(x, np.array([1, 0, -100, -100]), ignore_index=-100,
                                                    reduction="none")
    assert loss[2] == 0.0 and loss[3] == 0.0 and not grad[2:].any()
    assert loss[0] == pytest.approx(np.log(2))
    # NaN / +inf logits: NaN loss and NaN gradient for that slice
    loss, grad = fi.softmax_cross_entropy_with_grad(x, np.array([1, 0, 0, 1]), reduction="none")
    assert np.isnan(loss[2:]).all() and np.isnan(grad[2:]).all() and np.isfinite(grad[:2]).all()
    # mean over zero non-ignored positions is NaN
    assert np.isnan(fi.softmax_cross_entropy(x, np.array([5, 5, 5, 5]), ignore_index=5))
    assert np.isnan(fi.perplexity(x, np.array([5, 5, 5, 5]), ignore_index=5))
    # weighted mean is sum w[t] loss / sum w[t]
    w = np.array([0.2, 3.0])
    t = np.array([1, 0])
    per = fi.softmax_cross_entropy(x[:2], t, reduction="none", weight=w)
    assert fi.softmax_cross_entropy(x[:2], t, weight=w) == pytest.approx(per.sum() / (3.0 + 0.2), rel=1e-14)
    # perplexity of uniform logits is the number of classes
    assert fi.perplexity(np.zeros((3, 7)), np.array([0, 3, 6])) == pytest.approx(7.0, rel=1e-13)
    assert fi.softmax_cross_entropy(np.zeros((3, 7), dtype=np.float32), np.array([0, 3, 6])) == \
        pytest.approx(np.log(7), rel=1e-6)
    # 1-D logits with a 0-d target
    assert fi.softmax_cross_entropy(np.array([0.0, 0.0]), 1) == pytest.approx(np.log(2))
    assert np.ndim(fi.softmax_cross_entropy(np.array([0.0, 0.0]), np.array(1), reduction="none")) == 0


def test_cross_entropy_large_batch_against_reference():
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((300, 5000)) * 3).astype(np.float32)
    t = rng.integers(0, 5000, 300)
    t[::7] = -1
    w = rng.random(5000)
    for opts in (dict(), dict(label_smoothing=0.1, weight=w, ignore_index=-1), dict(temperature=0.5)):
        if "ignore_index" not in opts:
            tt = np.abs(t)
        else:
            tt = t
        got = fi.softmax_cross_entropy(x, tt, **opts)
        expected = ref.ref_softmax_cross_entropy(x, tt, **opts)
        assert got == pytest.approx(expected, rel=2e-6)


# ----------------------------------------------------------------------------- dtype policy and errors


def test_dtype_policy():
    x16 = np.array([[1.0, 2.0, 3.0]], dtype=np.float16)
    assert fi.log_softmax(x16).dtype == np.float32
    assert fi.logsumexp(x16).dtype == np.float32
    xi = np.array([[1, 2, 3]])
    assert fi.log_softmax(xi).dtype == np.float64
    assert fi.softmax_entropy(xi).dtype == np.float64
    assert fi.softmax_cross_entropy(xi, [2], reduction="none").dtype == np.float64
    assert_close(fi.log_softmax(xi), ref.ref_log_softmax(xi), np.float64)
    assert fi.logsumexp([[True, False]]).dtype == np.float64
    for fn in (fi.logsumexp, fi.log_softmax, fi.softmax, fi.softmax_entropy):
        with pytest.raises(TypeError, match="complex"):
            fn(np.array([[1 + 1j, 2]]))
    with pytest.raises(TypeError):
        fi.softmax_cross_entropy(np.zeros((2, 3)), np.array([True, False]))
    assert fi.softmax_kl_divergence(np.zeros((2, 3), np.float32), np.zeros((2, 3))).dtype == np.float64


def test_errors():
    x = np.zeros((4, 5))
    with pytest.raises(ValueError, match="target holds 7"):
        fi.softmax_cross_entropy(x, np.array([0, 1, 7, 2]))
    with pytest.raises(ValueError, match="-1"):
        fi.softmax_cross_entropy(x, np.array([0, -1, 3, 2]))
    with pytest.raises(ValueError, match="-100"):
        fi.softmax_cross_entropy(x, np.array([0, -100, 3, 2]))    # ignore_index=None ignores nothing
    with pytest.raises(ValueError, match="target holds 9"):
        fi.softmax_cross_entropy_with_grad(x, np.array([0, 9, 3, 2]), ignore_index=-100)
    with pytest.raises(ValueError, match="target holds 5"):
        fi.perplexity(x, np.array([0, 5, 3, 2]))
    with pytest.raises(ValueError, match="shape"):
        fi.softmax_cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="shape"):
        fi.softmax_cross_entropy(x, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="reduction"):
        fi.softmax_cross_entropy(x, np.array([0, 1, 2, 3]), reduction="batchmean")
    with pytest.raises(ValueError, match="reduction"):
        fi.softmax_kl_divergence(x, x, reduction="avg")
    for bad_t in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="temperature"):
            fi.log_softmax(x, temperature=bad_t)
        with pytest.raises(ValueError, match="temperature"):
            fi.softmax_cross_entropy(x, np.array([0, 1, 2, 3]), temperature=bad_t)
    for bad_eps in (-0.1, 1.5):
        with pytest.raises(ValueError, match="label_smoothing"):
            fi.softmax_cross_entropy(x, np.array([0, 1, 2, 3]), label_smoothing=bad_eps)
    with pytest.raises(ValueError, match="weight"):
        fi.softmax_cross_entropy(x, np.array([0, 1, 2, 3]), weight=np.ones(4))
    with pytest.raises(ValueError, match="logits_p and logits_q"):
        fi.softmax_kl_divergence(x, np.zeros((4, 6)))
    for bad_base in (1, 0, -2):
        with pytest.raises(ValueError, match="base"):
            fi.softmax_entropy(x, base=bad_base)
    for fn in (fi.logsumexp, fi.log_softmax, fi.softmax, fi.softmax_entropy):
        with pytest.raises(AxisError):
            fn(x, axis=2)
    with pytest.raises(AxisError):
        fi.softmax_cross_entropy(x, np.array([0, 1, 2, 3]), axis=-3)


# ----------------------------------------------------------------------------- properties


finite_rows = st.integers(1, 40).flatmap(
    lambda n: st.lists(st.floats(-50, 50, allow_nan=False), min_size=n, max_size=n))


@given(finite_rows, st.floats(-1e3, 1e3))
def test_log_softmax_shift_invariance(row, shift):
    x = np.array(row)
    assert np.allclose(fi.log_softmax(x + shift), fi.log_softmax(x), rtol=1e-9, atol=1e-9)
    assert fi.logsumexp(x + shift) == pytest.approx(fi.logsumexp(x) + shift, rel=1e-12, abs=1e-9)


@given(finite_rows, st.data())
def test_kl_non_negative_and_zero_on_itself(row, data):
    a = np.array(row)
    b = np.array(data.draw(st.lists(st.floats(-50, 50, allow_nan=False), min_size=a.size, max_size=a.size)))
    assert fi.softmax_kl_divergence(a, b) >= -1e-12
    assert abs(fi.softmax_kl_divergence(a, a)) <= 1e-12
    # entropy + KL = cross-entropy against the soft target
    p = fi.softmax(a)
    assert fi.softmax_entropy(a) + fi.softmax_kl_divergence(a, b) == pytest.approx(
        fi.softmax_cross_entropy(b, p), rel=1e-9, abs=1e-9)


@given(st.integers(2, 6), st.integers(1, 4), st.data())
def test_gradient_equals_finite_differences(n_classes, n_rows, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n_rows, n_classes)) * 2
    if data.draw(st.booleans()):
        target = rng.integers(0, n_classes, n_rows)
        ignore_index = data.draw(st.sampled_from([None, 0]))
    else:
        target = rng.random((n_rows, n_classes))
        ignore_index = None
    opts = dict(reduction=data.draw(st.sampled_from(["mean", "sum", "none"])), ignore_index=ignore_index,
                label_smoothing=data.draw(st.sampled_from([0.0, 0.2])),
                weight=rng.random(n_classes) + 0.1 if data.draw(st.booleans()) else None,
                temperature=data.draw(st.sampled_from([1.0, 0.5, 3.0])))
    if opts["reduction"] == "mean" and ignore_index is not None and np.all(target == ignore_index):
        return

    def total(z):
        loss = fi.softmax_cross_entropy(z, target, **opts)
        return float(np.sum(loss))

    _, grad = fi.softmax_cross_entropy_with_grad(x, target, **opts)
    h = 1e-6
    numeric = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (total(up) - total(down)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- threads, memory, purity


def _all_results(x, q, t):
    return [
        fi.logsumexp(x), fi.log_softmax(x), fi.softmax(x, temperature=0.7), fi.softmax_entropy(x),
        fi.softmax_kl_divergence(x, q), fi.softmax_kl_divergence(x, q, reduction="mean"),
        fi.softmax_cross_entropy(x, t), fi.softmax_cross_entropy(x, t, reduction="sum", label_smoothing=0.1),
        *fi.softmax_cross_entropy_with_grad(x, t, weight=np.linspace(0.5, 1, x.shape[1])),
        *fi.softmax_cross_entropy_with_grad(x, fi.softmax(q)), fi.perplexity(x, t),
    ]


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", FLOATS)
def test_bitwise_equal_for_any_thread_count(dtype):
    rng = np.random.default_rng(13)
    x = (rng.standard_normal((67, 3001)) * 3).astype(dtype)
    q = (rng.standard_normal((67, 3001)) * 3).astype(dtype)
    t = rng.integers(0, 3001, 67)
    default = _all_results(x, q, t)
    with threadpool_limits(1, "openmp"):
        single = _all_results(x, q, t)
    with threadpool_limits(2, "openmp"):
        two = _all_results(x, q, t)
    for a, b, c in zip(default, single, two):
        assert _same_bits(a, b) and _same_bits(a, c)


def test_scalar_results_are_python_floats():
    x = np.random.default_rng(14).standard_normal((3, 4))
    t = np.array([0, 1, 2])
    for r in (fi.softmax_cross_entropy(x, t), fi.softmax_cross_entropy(x, t, reduction="sum"),
              fi.softmax_cross_entropy_with_grad(x, t)[0], fi.perplexity(x, t),
              fi.softmax_kl_divergence(x, x[::-1], reduction="mean"),
              fi.softmax_kl_divergence(x, x[::-1], reduction="sum"),
              fi.softmax_cross_entropy(x.astype(np.float32), t)):
        assert type(r) is float


def test_inputs_unmodified():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((5, 8)).astype(np.float32)
    q = rng.standard_normal((5, 8)).astype(np.float32)
    t = rng.integers(0, 8, 5)
    w = rng.random(8)
    copies = [a.copy() for a in (x, q, t, w)]
    _all_results(x, q, t)
    fi.softmax_cross_entropy_with_grad(x, fi.softmax(q), weight=w, label_smoothing=0.3)
    fi.softmax_cross_entropy_with_grad(x, t, weight=w, label_smoothing=0.3, ignore_index=2)
    fi.log_softmax(np.asfortranarray(x), axis=0, out=np.empty_like(x))
    for a, b in zip((x, q, t, w), copies):
        assert np.array_equal(a, b)


def test_read_only_memmap(tmp_path):
    rng = np.random.default_rng(16)
    x = (rng.standard_normal((6, 50)) * 2).astype(np.float32)
    path = tmp_path / "logits.bin"
    x.tofile(path)
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=x.shape)
    t = rng.integers(0, 50, 6)
    assert np.array_equal(fi.log_softmax(mm), fi.log_softmax(x))
    assert np.array_equal(fi.logsumexp(mm), fi.logsumexp(x))
    assert fi.softmax_cross_entropy(mm, t) == fi.softmax_cross_entropy(x, t)
    assert _same_bits(fi.softmax_cross_entropy_with_grad(mm, t)[1], fi.softmax_cross_entropy_with_grad(x, t)[1])
    assert np.array_equal(fi.softmax_kl_divergence(mm, mm[::-1]), fi.softmax_kl_divergence(x, x[::-1]))
    assert np.array_equal(fi.log_softmax(mm, axis=0), fi.log_softmax(x, axis=0))
    with pytest.raises(ValueError, match="out"):
        fi.log_softmax(mm, out=mm)


def test_concurrent_python_threads():
    rng = np.random.default_rng(17)
    inputs = []
    for k in range(8):
        x = (rng.standard_normal((40, 2000)) * (k + 1)).astype(np.float32 if k % 2 else np.float64)
        q = (rng.standard_normal((40, 2000))).astype(x.dtype)
        inputs.append((x, q, rng.integers(0, 2000, 40)))
    serial = [_all_results(*args) for args in inputs]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda args: _all_results(*args), inputs))
    for a_list, b_list in zip(serial, parallel):
        for a, b in zip(a_list, b_list):
            assert _same_bits(a, b)


@pytest.mark.parametrize("dtype", FLOATS)
def test_streaming_store_path(dtype):
    """Outputs above a size threshold are written with streaming stores (aligned part) and plain
    stores (unaligned head, tail); lower the threshold to run that path on small arrays."""
    from fastinfo import _kernels

    rng = np.random.default_rng(18)
    x = (rng.standard_normal((9, 1001)) * 3).astype(dtype)
    t = rng.integers(0, 1001, 9)
    old = _kernels.softmax_set_stream_min_bytes(0)
    try:
        for offset in (0, 1, 3):
            buf = np.empty(x.size + offset, dtype=dtype)
            out = buf[offset:].reshape(x.shape)     # misaligned rows for offset > 0
            assert fi.log_softmax(x, out=out) is out
            assert_close(out, ref.ref_log_softmax(x), dtype, 10)
            assert_close(fi.softmax(x, out=out), ref.ref_softmax(x), dtype)
        _, grad = fi.softmax_cross_entropy_with_grad(x, t, label_smoothing=0.1)
        assert_close(grad, ref.ref_softmax_cross_entropy_grad(x, t, label_smoothing=0.1), dtype)
    finally:
        _kernels.softmax_set_stream_min_bytes(old)


@pytest.mark.parametrize("dtype", FLOATS)
def test_fresh_outputs_take_plain_stores_with_the_same_bits(dtype):
    """An output the call allocates is written with plain stores even above the streaming
    threshold (its pages are zeroed into the cache at the first write); out= arrays stream. Both
    give the same bits, for log_softmax and softmax, fastinfo's and the SciPy drop-in's."""
    from fastinfo import _kernels
    from fastinfo import scipy as fscipy

    rng = np.random.default_rng(31)
    x = (rng.standard_normal((11, 2003)) * 3).astype(dtype)
    x[3, 7] = np.nan
    x[6, :] = -np.inf
    old = _kernels.softmax_set_stream_min_bytes(0)
    try:
        for name in ("log_softmax", "softmax"):
            f = getattr(fi, name)
            fresh = f(x)
            for offset in (0, 1, 5):
                buf = np.empty(x.size + offset, dtype=dtype)
                out = buf[offset:].reshape(x.shape)
                assert f(x, out=out) is out
                assert np.array_equal(out, fresh, equal_nan=True), (name, offset)
            dropin = getattr(fscipy, name)(x, axis=-1)
            assert np.array_equal(dropin[[0, 1, 2, 4, 5] + list(range(7, 11))],
                                  fresh[[0, 1, 2, 4, 5] + list(range(7, 11))])
            ref_fn = ref.ref_log_softmax if name == "log_softmax" else ref.ref_softmax
            finite = [0, 1, 2, 4, 5, 7, 8, 9, 10]
            assert_close(fresh[finite], ref_fn(x[finite]), dtype, 10 if name == "log_softmax" else 1)
    finally:
        _kernels.softmax_set_stream_min_bytes(old)


@pytest.mark.parametrize("dtype", FLOATS)
def test_log_softmax_rows_pipelined_or_not_give_the_same_bits(dtype):
    """log_softmax writes row by row (the default) or each row while the next row is summed, cut
    at the output's 64-byte lines; both give the same bits, whatever the output's alignment, in
    place or not, with streaming stores or not."""
    from fastinfo import _kernels

    rng = np.random.default_rng(23)
    x = (rng.standard_normal((7, 3001)) * 3).astype(dtype)
    x[2, 5] = np.nan
    x[4, :] = -np.inf
    x[5, 17] = np.inf
    old_stream = _kernels.softmax_set_stream_min_bytes(0)
    try:
        results = []
        for pipelined in (True, False):
            old = _kernels.softmax_set_pipelining(pipelined)
            try:
                for stream_min in (0, 1 << 62):
                    _kernels.softmax_set_stream_min_bytes(stream_min)
                    for temperature in (1.0, 0.7):
                        for offset in (0, 1, 5, 16):
                            buf = np.empty(x.size + offset, dtype=dtype)
                            out = buf[offset:].reshape(x.shape)
                            results.append(fi.log_softmax(x, out=out, temperature=temperature).copy())
                            y = x.copy()
                            results.append(fi.log_softmax(y, out=y, temperature=temperature))
            finally:
                _kernels.softmax_set_pipelining(old)
        half = len(results) // 2
        for a, b in zip(results[:half], results[half:]):
            assert np.array_equal(a, b, equal_nan=True)
        assert np.isnan(results[0][2]).all() and np.isnan(results[0][4]).all() and np.isnan(results[0][5]).all()
        assert_close(results[0], ref.ref_log_softmax(x), dtype, 10)
    finally:
        _kernels.softmax_set_stream_min_bytes(old_stream)


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_block_rescaling(dtype):
    """softmax keeps the exps of its sum pass (taken against the running max of each block) and
    rescales them per block; check rows whose max rises in every block, rows that are all -inf for
    their first blocks, NaN / +inf in late blocks, in place and not, both store paths, and rows
    longer than the rescaled-block limit (131072 elements, computed the other way)."""
    from fastinfo import _kernels

    rng = np.random.default_rng(19)
    old = _kernels.softmax_set_stream_min_bytes(0)
    try:
        for stream_min in (0, 1 << 62):
            _kernels.softmax_set_stream_min_bytes(stream_min)
            for n in (2049, 6000, 131072, 131073):
                x = (rng.standard_normal((6, n)) * 3).astype(dtype)
                x[1, : n - 1000] = -np.inf     # leading all -inf blocks, then finite values
                x[2] = np.sort(x[2])           # the running max rises in every block
                x[3, n - 5] = np.nan
                x[4, n - 3] = np.inf
                x[5, :] = -np.inf
                expected = ref.ref_softmax(x)
                for temperature in (1.0, 0.6):
                    got = fi.softmax(x, temperature=temperature)
                    assert_close(got, ref.ref_softmax(x, temperature=temperature), dtype)
                    y = x.copy()
                    assert fi.softmax(y, out=y, temperature=temperature) is y
                    assert np.array_equal(y, got, equal_nan=True)
                assert np.isnan(got[3:]).all() and (got[1, : n - 1000] == 0).all()
                np.testing.assert_allclose(fi.softmax(x)[:3].sum(axis=-1), 1.0, rtol=1e-5)
                assert_close(fi.softmax(x), expected, dtype)
    finally:
        _kernels.softmax_set_stream_min_bytes(old)

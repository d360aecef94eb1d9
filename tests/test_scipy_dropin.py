"""fastinfo.scipy against SciPy itself: the same results (values, dtypes, shapes, NumPy scalars)
and the same exceptions (types and messages) for a generator of inputs and for explicit cases.

SciPy is the reference (it is a dependency). Values are compared at the result dtype's
precision: fastinfo computes float32 and float16 input in float32 / float64 and rounds once, so
its results can differ from SciPy's (computed in the input's precision) by a few of its ulps.
"""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.special as sp_special
import scipy.stats as sp_stats
from hypothesis import given, settings
from hypothesis import strategies as st

import fastinfo
import fastinfo.scipy as fsp
from fastinfo.scipy import entropy, log_softmax, logsumexp, softmax

RTOL = {np.float16: 1e-2, np.float32: 1e-5, np.float64: 1e-12}


def _outcome(function, *args, **kwargs):
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - type and message are compared
        return ("raised", type(exc).__name__, str(exc))


def assert_like_scipy(got, want):
    """Same type, shape, dtype; NaN and infinities in the same places; values at the dtype's precision."""
    if isinstance(want, tuple) and want and isinstance(want[0], str):
        assert isinstance(got, tuple) and got[:3] == want, (got, want)
        return
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), (got, want)
        for g, w in zip(got, want):
            assert_like_scipy(g, w)
        return
    assert type(got) is type(want), (type(got), type(want), got, want)
    g, w = np.asarray(got), np.asarray(want)
    assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
    g64, w64 = g.astype(np.float64), w.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g64), np.isnan(w64))
    special = np.isinf(w64)
    np.testing.assert_array_equal(g64[special], w64[special])
    finite = np.isfinite(w64)
    rtol = RTOL.get(w.dtype.type, 1e-12)
    np.testing.assert_allclose(g64[finite], w64[finite], rtol=rtol, atol=rtol)


def compare(name, *args, **kwargs):
    ours = getattr(fsp, name)
    theirs = getattr(sp_stats if name == "entropy" else sp_special, name)
    assert_like_scipy(_outcome(ours, *args, **kwargs), _outcome(theirs, *args, **kwargs))


# =============================================================================
# A generator of inputs (hypothesis)
# =============================================================================

DTYPES = [np.float64, np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_]
LAYOUTS = ["C", "F", "negative", "strided", "transposed", "list"]


def _layout(a, layout):
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "negative" and a.ndim:
        return np.flip(np.flip(a).copy())
    if layout == "strided" and a.ndim:
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if layout == "transposed":
        return np.ascontiguousarray(a.T).T
    if layout == "list" and a.dtype in (np.float64, np.int64, np.bool_):
        return a.tolist()
    return a


@st.composite
def arrays(draw, nonnegative=False):
    ndim = draw(st.integers(0, 3))
    shape = [draw(st.integers(0, 4)) for _ in range(ndim)]
    if ndim and draw(st.integers(0, 7)) == 0:
        shape[draw(st.integers(0, ndim - 1))] = draw(st.sampled_from([300, 1025]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape) * draw(st.sampled_from([1.0, 3.0, 30.0]))
    if draw(st.booleans()):
        x = np.round(x)  # ties: repeated maxima
    if nonnegative and draw(st.integers(0, 4)):
        x = np.abs(x)
    if x.size and draw(st.booleans()):
        flat = x.reshape(-1)
        for _ in range(draw(st.integers(1, 3))):
            flat[rng.integers(0, flat.size)] = draw(st.sampled_from([np.inf, -np.inf, np.nan, 0.0, -1.0]))
    dtype = draw(st.sampled_from(DTYPES))
    if np.dtype(dtype).kind in "iub":
        x = np.nan_to_num(x, nan=0.0, posinf=7.0, neginf=-7.0)
        if dtype is np.uint8:
            x = np.abs(x)
    x = x.astype(dtype)
    return _layout(x, draw(st.sampled_from(LAYOUTS))), np.asarray(x).ndim


@st.composite
def axes(draw, ndim):
    kind = draw(st.sampled_from(["none", "int", "negative", "tuple", "out of range", "duplicate"]))
    if kind == "none":
        return None
    if kind == "out of range":
        return max(ndim, 1) + 1
    top = max(ndim, 1)
    if kind == "int":
        return draw(st.integers(0, top - 1))
    if kind == "negative":
        return -draw(st.integers(1, top))
    if kind == "duplicate":
        return (0, 0)
    return tuple(sorted(set(draw(st.lists(st.integers(-top, top - 1), min_size=1, max_size=3)))))


FUZZ = settings(max_examples=int(os.environ.get("FASTINFO_FUZZ_EXAMPLES", "100")), deadline=None,
                derandomize=True, database=None)


@FUZZ
@given(st.data())
def test_logsumexp_like_scipy(data):
    x, ndim = data.draw(arrays())
    kwargs = dict(axis=data.draw(axes(ndim)), keepdims=data.draw(st.booleans()),
                  return_sign=data.draw(st.booleans()))
    if data.draw(st.booleans()):
        shape = np.shape(x)
        b_shape = data.draw(st.sampled_from([shape, shape[1:], (1,) + shape[1:], (3,)]))
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        b = rng.choice([0.0, 1.0, -1.0, 0.5, 2.0], b_shape) if data.draw(st.booleans()) else rng.random(b_shape)
        kwargs["b"] = b.astype(data.draw(st.sampled_from([np.float64, np.float32, np.int64])))
    compare("logsumexp", x, **kwargs)


@FUZZ
@given(st.data(), st.sampled_from(["softmax", "log_softmax"]))
def test_softmax_and_log_softmax_like_scipy(data, name):
    x, ndim = data.draw(arrays())
    compare(name, x, axis=data.draw(axes(ndim)))


@FUZZ
@given(st.data())
def test_entropy_like_scipy(data):
    pk, ndim = data.draw(arrays(nonnegative=True))
    kind = data.draw(st.sampled_from(["int", "negative", "none", "tuple"]))
    axis = {"int": 0, "negative": -1, "none": None, "tuple": data.draw(axes(ndim))}[kind]
    kwargs = dict(axis=axis, base=data.draw(st.sampled_from([None, 2, 10.0, 0.5])),
                  nan_policy=data.draw(st.sampled_from(["propagate", "omit", "raise"])),
                  keepdims=data.draw(st.booleans()))
    args = (pk,)
    if data.draw(st.booleans()):
        shape = np.shape(pk)
        q_shape = data.draw(st.sampled_from([shape, shape[1:], shape[:-1] + (1,) if shape else ()]))
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        qk = rng.random(q_shape)
        if qk.size and data.draw(st.booleans()):
            qk.reshape(-1)[0] = data.draw(st.sampled_from([0.0, np.nan, -1.0]))
        args = (pk, qk)
    compare("entropy", *args, **kwargs)


# =============================================================================
# Explicit cases
# =============================================================================


def test_defaults_are_scipys():
    x = np.arange(12.0).reshape(3, 4)
    compare("logsumexp", x)             # axis=None: the whole array
    compare("softmax", x)
    compare("log_softmax", x)
    compare("entropy", x + 1)           # axis=0
    assert np.shape(logsumexp(x)) == () and isinstance(logsumexp(x), np.float64)
    assert entropy(x + 1).shape == (4,)


@pytest.mark.parametrize("axis", [0, 1, -1, (0, 1), (1, 0), (0, 2), (2, 0, 1), None])
@pytest.mark.parametrize("layout", ["C", "F", "negative", "strided"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tuple_axes_and_layouts(axis, layout, dtype):
    x = _layout((np.random.default_rng(1).standard_normal((5, 6, 7)) * 4).astype(dtype), layout)
    compare("logsumexp", x, axis=axis)
    compare("logsumexp", x, axis=axis, keepdims=True)
    compare("softmax", x, axis=axis)
    compare("log_softmax", x, axis=axis)
    compare("entropy", np.abs(x), axis=axis)
    compare("entropy", np.abs(x), np.abs(x[::-1]) + 0.1, axis=axis, keepdims=True)


def test_reduced_axes_moved_without_copy_where_the_layout_allows():
    x = np.zeros((40, 50, 60))
    for view, axes in [(x, (1, 2)), (np.asfortranarray(x), (0,)), (np.asfortranarray(x), (0, 1)),
                       (x.transpose(2, 0, 1), (0,)), (x, (0, 1, 2))]:
        rows = fsp._Rows(view, axes)
        assert rows.contiguous and np.shares_memory(rows.view.reshape(rows.n_rows, rows.n), view)
    # C-order reduced over the first axis: copied, but in blocks of rows, never all at once
    rows = fsp._Rows(x, (0,))
    assert not rows.contiguous
    sizes = [block.size for _, block in rows.blocks(np.float64)]
    assert sum(sizes) == x.size and max(sizes) <= max(fsp._BLOCK_ELEMENTS, 40 * 60)


def test_weights():
    a = np.array([[1.0, 2.0, 3.0], [0.0, np.inf, np.nan], [5.0, 5.0, 1.0]])
    for b in ([1.0, -1.0, 0.5], [[1, 0, 0], [1, 0, 0], [1, -1, 0]], [0, 0, 0], np.array([2.0, 1.0, 0.0], np.float32)):
        for return_sign in (False, True):
            compare("logsumexp", a, axis=1, b=b, return_sign=return_sign)
            compare("logsumexp", a, b=b, return_sign=return_sign)
    compare("logsumexp", [1, 2], b=[1, -1], return_sign=True)       # SciPy's docstring: (1.54..., -1.0)
    compare("logsumexp", np.ones(3), b=np.ones((2, 3)), axis=-1)      # a broadcast against b
    compare("logsumexp", np.ones(3), b=np.ones(4))                    # incompatible shapes
    compare("logsumexp", [np.inf, 1.0], b=[0, 1])                     # a zero weight drops an infinite entry
    compare("logsumexp", [np.nan, 1.0], b=[0, 1])
    compare("logsumexp", [1.0, 1.0], b=[1, -1], return_sign=True)     # exact cancellation: -inf, sign 0
    compare("logsumexp", np.full(5, 250, np.uint8), b=np.array([1, -1, 1, 1, 1], np.float32))


def test_special_values_and_signs():
    for x in ([-np.inf, -np.inf], [np.nan, 1.0], [np.inf, 1.0], [np.inf, -np.inf], [0.0, -40.0], [1e308, 1e308]):
        compare("logsumexp", x, return_sign=True)
        compare("softmax", x)
        compare("log_softmax", x)
    assert np.array_equal(log_softmax([np.inf, 0.0, -np.inf]), [np.nan, -np.inf, -np.inf], equal_nan=True)
    assert logsumexp([0.0, -40.0]) == np.logaddexp(0.0, -40.0)        # scipy gh-18295: no lost digits


def test_empty_scalar_and_axis_errors():
    for x in (np.zeros((0, 3)), np.zeros(0), 3.0, np.float32(2.0), [1, 2]):
        for axis in (None, 0, -1, 1, (0,)):
            for name in ("logsumexp", "softmax", "log_softmax"):
                compare(name, x, axis=axis)
            compare("entropy", x, axis=axis)
    compare("logsumexp", np.zeros((2, 0)), axis=1, return_sign=True)   # -inf, sign -1
    compare("logsumexp", np.ones((2, 3)), axis=(0, 0))
    compare("logsumexp", np.ones((2, 3)), axis=1.0)
    compare("logsumexp", np.ones((2, 3)), axis=())
    compare("entropy", np.ones((2, 3)), axis=(0, 0))


@pytest.mark.parametrize("dtype", [np.float16, np.int8, np.int64, np.uint8, np.bool_])
def test_integer_bool_and_half_input(dtype):
    x = np.array([[0, 1, 2], [3, 3, 1]]).astype(dtype)
    for name in ("logsumexp", "softmax", "log_softmax"):
        compare(name, x, axis=1)
        compare(name, x)
    compare("logsumexp", x, b=np.array([1.0, -1.0, 2.0], np.float32), axis=1, return_sign=True)
    compare("entropy", x, axis=1)
    compare("entropy", x, x[::-1] + 1, axis=1)


def test_entropy_semantics():
    compare("entropy", [1, -1, 2])                     # a negative normalised entry: -inf
    compare("entropy", [-1, -1])                       # negative sum: normalised to positive
    compare("entropy", [1, -1])                        # zero sum
    compare("entropy", [1, np.inf])
    compare("entropy", [1, 1], [1, 0])                 # q = 0 < p: inf
    compare("entropy", [1, 1], [1, -1])
    compare("entropy", [[1, 2], [3, 4]], [1, 2], axis=1)
    compare("entropy", np.ones((2, 3)), np.ones(4))
    compare("entropy", np.ones((2, 3)), np.ones(3), axis=None)
    for policy in ("propagate", "omit", "raise", "bad"):
        compare("entropy", [1, np.nan, 1], nan_policy=policy)
        compare("entropy", np.array([[1, np.nan, 1], [1, 2, 3], [np.nan, np.nan, 1]]), axis=1, nan_policy=policy)
        compare("entropy", np.array([[1, np.nan], [1, 2]]), [[1, 1], [np.nan, 2]], axis=1, nan_policy=policy)
    for base in (None, 2, 10.0, 1, -1, 0, np.float32(3)):
        compare("entropy", [1, 2, 3], base=base)
        compare("entropy", np.array([[1, 2], [3, np.nan]]), axis=1, base=base)
    compare("entropy", np.ones((2, 3, 4)), axis=(0, 2), keepdims=True)
    compare("entropy", np.ones((2, 3)), axis=None, keepdims=True)
    compare("entropy", np.ones((2, 3)), axis=5)
    compare("entropy", np.random.default_rng(2).random((300, 40)).astype(np.float32), axis=1)


def test_long_rows_split_in_chunks():
    """A whole-array reduction over 2 * chunk + 3 values: special values in different chunks."""
    n = 2 * fsp._LONG_ROW_CHUNK + 3
    rng = np.random.default_rng(3)
    base = rng.standard_normal(n) * 5
    b = rng.choice([0.0, 1.0, -0.5, 2.0], n)
    for position, value in [(None, None), (5, np.inf), (n - 1, np.nan), (fsp._LONG_ROW_CHUNK, 1e4), (n - 2, -np.inf)]:
        x = base.copy()
        if position is not None:
            x[position] = value
        for dtype in (np.float64, np.float32):
            compare("logsumexp", x.astype(dtype))
            compare("logsumexp", x.astype(dtype), b=b, return_sign=True)
            compare("logsumexp", x[:3000].astype(dtype).reshape(3, 1000), b=b[:3000].reshape(3, 1000), axis=1)
    compare("logsumexp", np.full(n, -np.inf))
    compare("logsumexp", np.zeros(n), b=np.zeros(n), return_sign=True)


def test_results_do_not_depend_on_the_thread_count():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(4)
    long_row = rng.standard_normal(3 * fsp._LONG_ROW_CHUNK + 17)
    weights = rng.standard_normal(long_row.size)
    x = rng.standard_normal((64, 3000)).astype(np.float32)
    calls = [lambda: logsumexp(long_row), lambda: logsumexp(long_row, b=weights, return_sign=True),
             lambda: logsumexp(x, axis=1, b=x[0]), lambda: logsumexp(x, axis=0), lambda: softmax(x, axis=0),
             lambda: log_softmax(x, axis=(0, 1)), lambda: entropy(np.abs(x), axis=1),
             lambda: entropy(np.abs(x), np.abs(x[::-1]), axis=0)]
    def as_bytes(result):
        parts = result if isinstance(result, tuple) else (result,)
        return [np.asarray(part).tobytes() for part in parts]

    full = [as_bytes(call()) for call in calls]
    with threadpoolctl.threadpool_limits(1, "openmp"):
        for call, want in zip(calls, full):
            assert as_bytes(call()) == want


def test_other_array_types_go_to_scipy():
    masked = np.ma.array([np.log(2), 2.0, np.log(3)], mask=[False, True, False])
    assert_like_scipy(_outcome(logsumexp, masked), _outcome(sp_special.logsumexp, masked))
    compare("logsumexp", np.array([1 + 1j, 2.0]))
    compare("logsumexp", np.array([1, 2], dtype=np.longdouble))
    compare("softmax", np.array([1 + 1j, 2.0]))
    compare("entropy", np.array([1 + 1j, 2.0]))
    compare("logsumexp", np.array(["a"]))


def test_inputs_are_not_modified():
    x = np.random.default_rng(5).standard_normal((30, 40))
    x[3, 4] = np.inf
    w = np.abs(x)
    before = (x.copy(), w.copy())
    logsumexp(x, axis=0, b=w, return_sign=True)
    log_softmax(x, axis=1)
    softmax(x)
    entropy(w, w[::-1], axis=1, nan_policy="omit")
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(w, before[1])


def test_import_does_not_load_scipy_special_or_stats():
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fastinfo.__file__)))
    code = ("import sys, numpy as np, fastinfo.scipy as f\n"
            "x = np.random.default_rng(0).random((50, 30))\n"
            "f.logsumexp(x); f.logsumexp(x, axis=1, b=x[0]); f.softmax(x, axis=0); f.log_softmax(x)\n"
            "f.entropy(x); f.entropy(x, x[::-1], axis=1, base=2)\n"
            "print(sorted(m for m in sys.modules if m in ('scipy.special', 'scipy.stats')))\n"
            "f.logsumexp(np.array([1j]))\n"
            "print('scipy.special' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split("\n")[:2] == ["[]", "True"], out.stdout

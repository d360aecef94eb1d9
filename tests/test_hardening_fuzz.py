"""Property-based fuzzing of every public function (``fastinfo.__all__`` and ``fastinfo.sklearn``).

Every call made here must either

* return a result equal to an obvious NumPy/SciPy computation written in this file
  (float64 to ~1e-10, float32 to ~1e-4, estimators on float32 samples to 1e-3), with the
  dtype and type the contract promises, or
* raise ``ValueError`` / ``TypeError`` (``numpy.exceptions.AxisError`` is a ``ValueError``)
  whose message names the offending argument,

and never anything else (no other exception, no crash, no out-of-bounds read: run it under
``tools/sanitize.sh`` for the last one). Every call also checks that no input array was
modified (SHA-256 of the bytes, shape, strides and flags before and after).

Inputs: random shapes (0-sized axes, long rows), dtypes (float16/32/64, bfloat16 when ml_dtypes
is installed, signed and unsigned ints, bools, object and complex arrays, nested lists), layouts
(C, Fortran, negative strides, non-contiguous, read-only, read-only memmaps, torch tensors when
torch is installed), NaN/inf placements, integer targets anywhere in int64, ``k`` and ``n`` at
their limits, bad keyword values; ``out=`` in the input's half dtype.

Where the contract is silent (e.g. an empty reduced axis), a call may either raise a
``ValueError``/``TypeError`` naming the argument or return a result of the right shape and dtype.

The number of hypothesis examples is ``FASTINFO_FUZZ_EXAMPLES`` (default 100) per test; the
totals are printed at the end of the session ("hardening fuzz: ... examples").
"""
import collections
import hashlib
import math
import numbers
import os
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from scipy.special import digamma

import fastinfo as fi
from fastinfo import _kernels
from kd_paths import generic_and_fixed

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - the test extra installs it
    ml_dtypes = None
try:
    import torch
except ImportError:  # torch is never a test dependency
    torch = None

N_EXAMPLES = int(os.environ.get("FASTINFO_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
EXAMPLES = collections.Counter()  # hypothesis examples run, per test
CALLS = collections.Counter()  # fastinfo calls checked, per function
MEMMAP_DIR = tempfile.mkdtemp(prefix="fastinfo-fuzz-")
INT64_MIN, INT64_MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request):
    yield
    total = sum(EXAMPLES.values())
    calls = sum(CALLS.values())
    lines = [f"hardening fuzz: {total} hypothesis examples, {calls} checked fastinfo calls"]
    lines += [f"  {name}: {count} calls" for name, count in sorted(CALLS.items())]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None:
        import contextlib

        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter.write_line("")
            reporter.write_line(lines[0])
    path = os.environ.get("FASTINFO_FUZZ_COUNTS")
    if path:
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
    for name in os.listdir(MEMMAP_DIR):
        try:
            os.remove(os.path.join(MEMMAP_DIR, name))
        except OSError:
            pass


# =============================================================================
# Expectations and the checking harness
# =============================================================================


class Bad(Exception):
    """The reference says this input must be rejected, naming one of ``names``."""

    def __init__(self, *names):
        super().__init__(names)
        self.names = names


class Either(Exception):
    """The contract is silent: a named ValueError/TypeError or a result (shape/dtype checked)."""

    def __init__(self, *names, shape=None, dtype=None):
        super().__init__(names)
        self.names = names
        self.shape = shape
        self.dtype = dtype


class Collect:
    """Gathers every invalid argument: the implementation may report any one of them first."""

    def __init__(self):
        self.names = []

    def __call__(self, fn, *args):
        try:
            return fn(*args)
        except Bad as exc:
            self.names += exc.names
            return None

    def bad(self, *names):
        self.names += names

    def done(self):
        if self.names:
            raise Bad(*self.names)


class Expected:
    """A reference result: ``value`` (array or float), its dtype (None for Python float),
    a ``dont_care`` mask of entries not compared, tolerances."""

    def __init__(self, value, dtype=None, scalar=False, dont_care=None, rtol=None, atol=None):
        self.value = value
        self.dtype = dtype
        self.scalar = scalar
        self.dont_care = dont_care
        self.rtol = rtol
        self.atol = atol


def numpy_of(a):
    """A torch tensor as the NumPy array of its values and dtype (a view); anything else unchanged."""
    if torch is not None and isinstance(a, torch.Tensor):
        t = a.detach()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return t.numpy()
    return a


def _fingerprint(a):
    a = numpy_of(a)
    if isinstance(a, np.ndarray):
        data = a.tobytes() if a.dtype != object else repr(a.tolist()).encode()
        return (a.shape, a.strides, a.dtype.str, a.flags.writeable, hashlib.sha256(data).hexdigest())
    if isinstance(a, (list, tuple)):
        return hashlib.sha256(repr(a).encode()).hexdigest()
    return None


def _inputs(args, kwargs):
    """Every array argument except ``out`` (which the function is asked to write)."""
    values = list(args) + [v for k, v in kwargs.items() if k != "out"]
    return [a for a in values if isinstance(a, (np.ndarray, list, tuple)) or numpy_of(a) is not a]


def check_call(fn, args, kwargs, reference, compare=None):
    """Call ``fn(*args, **kwargs)`` and hold it to ``reference()`` (see the module docstring)."""
    name = getattr(fn, "__name__", str(fn))
    CALLS[name] += 1
    before = [_fingerprint(a) for a in _inputs(args, kwargs)]
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = reference()
        mode = "ok"
    except Bad as exc:
        expected, mode = exc, "bad"
    except Either as exc:
        expected, mode = exc, "either"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = fn(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        if mode == "ok":
            raise AssertionError(f"{name} rejected an input the contract accepts: {exc!r}") from exc
        message = str(exc)
        assert any(n.lower() in message.lower() for n in expected.names), (
            f"{name} raised {exc!r}; the message should name one of {expected.names}"
        )
        result = None
    else:
        if mode == "bad":
            raise AssertionError(f"{name} accepted an input it must reject (naming one of {expected.names}); "
                                 f"returned {result!r}")
        if mode == "ok":
            (compare or compare_result)(result, expected, name)
        else:
            _check_shape_dtype(result, expected, name)
    after = [_fingerprint(a) for a in _inputs(args, kwargs)]
    assert before == after, f"{name} modified one of its inputs"
    return result


def _check_shape_dtype(result, expected, name):
    if expected.shape is None:
        return
    if expected.shape == ():
        assert isinstance(result, (float, np.floating)), f"{name}: expected a scalar, got {type(result)}"
    else:
        assert isinstance(result, np.ndarray) and result.shape == expected.shape, (
            f"{name}: expected shape {expected.shape}, got {getattr(result, 'shape', type(result))}")
    if expected.dtype is not None and isinstance(result, (np.ndarray, np.floating)):
        assert result.dtype == expected.dtype, f"{name}: dtype {result.dtype}, expected {expected.dtype}"


def _tolerances(dtype, expected):
    if expected.rtol is not None:
        return expected.rtol, expected.atol or 0.0
    if dtype == np.float32:
        return 2e-4, 2e-4
    return 1e-9, 1e-9


def compare_result(result, expected, name):
    if expected.scalar:
        assert type(result) is float, f"{name}: scalar result must be a Python float, got {type(result)}"
        # a float32 input may be computed partly in float32: float32 tolerances (dtype=float32)
        _assert_values(np.float64(result), np.float64(expected.value), expected.dtype or np.float64, expected, name)
        return
    want = np.asarray(expected.value)
    if want.ndim == 0:
        assert isinstance(result, (np.floating, np.ndarray, float)), f"{name}: got {type(result)}"
        if isinstance(result, (np.floating, np.ndarray)):
            assert result.dtype == expected.dtype, f"{name}: dtype {result.dtype}, expected {expected.dtype}"
        got = np.asarray(result)
    else:
        assert isinstance(result, np.ndarray), f"{name}: expected an ndarray, got {type(result)}"
        assert result.dtype == expected.dtype, f"{name}: dtype {result.dtype}, expected {expected.dtype}"
        got = result
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    _assert_values(got, want, expected.dtype, expected, name)


def _assert_values(got, want, dtype, expected, name):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    care = np.ones(want.shape, bool) if expected.dont_care is None else ~np.asarray(expected.dont_care)
    g, w = got[care], want[care]
    nan_w, nan_g = np.isnan(w), np.isnan(g)
    assert np.array_equal(nan_w, nan_g), (
        f"{name}: NaN pattern differs: got {g[nan_w != nan_g][:5]}, want {w[nan_w != nan_g][:5]}")
    inf_w = np.isinf(w)
    assert np.array_equal(w[inf_w], g[inf_w]), f"{name}: infinities differ: got {g[inf_w][:5]}, want {w[inf_w][:5]}"
    fin = ~(nan_w | inf_w)
    assert np.isfinite(g[fin]).all(), f"{name}: got non-finite values where finite expected: {g[fin][~np.isfinite(g[fin])][:5]}"
    rtol, atol = _tolerances(dtype, expected)
    scale = 1.0 + (np.max(np.abs(w[fin])) if fin.any() else 0.0)
    err = np.abs(g[fin] - w[fin])
    ok = err <= atol * scale + rtol * np.abs(w[fin])
    assert ok.all(), f"{name}: max abs error {err.max():.3g} (scale {scale:.3g}); got {g[fin][~ok][:4]}, want {w[fin][~ok][:4]}"


# =============================================================================
# Input strategies
# =============================================================================

HALF_DTYPES = [np.dtype(np.float16)] + ([np.dtype(ml_dtypes.bfloat16)] if ml_dtypes is not None else [])
FLOAT_DTYPES = [np.float64, np.float32, *HALF_DTYPES]
OTHER_REAL_DTYPES = [np.int8, np.int32, np.int64, np.uint8, np.uint64, np.bool_]
LAYOUTS = ["C", "C", "F", "negative", "strided", "transposed", "readonly", "memmap", "list"] + \
    (["torch"] if torch is not None else [])


def result_dtype(arr):
    """The contract's dtype policy (float32 stays, float16 and bfloat16 -> float32, ints/bools -> float64)."""
    dt = np.asarray(numpy_of(arr)).dtype
    if dt == np.float32 or dt in HALF_DTYPES:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_float64(arr):
    """The values the function computes on, as float64 (exact for float16 and bfloat16)."""
    a = np.asarray(numpy_of(arr))
    return a.astype(np.float64)


_memmap_counter = [0]


def with_layout(arr, layout):
    """Return an array with the values of ``arr`` but the given memory layout."""
    arr = np.asarray(arr)
    if layout == "C" or arr.ndim == 0:
        return np.ascontiguousarray(arr)
    if layout == "F":
        return np.asfortranarray(arr)
    if layout == "negative":
        flipped = np.flip(arr).copy()
        view = np.flip(flipped)
        assert all(s <= 0 for s in view.strides) or arr.size <= 1
        return view
    if layout == "strided":
        big = np.zeros(tuple(2 * s + 1 for s in arr.shape), dtype=arr.dtype)
        view = big[tuple(slice(1, None, 2) for _ in arr.shape)]
        view[...] = arr
        return view
    if layout == "transposed":
        return np.ascontiguousarray(arr.T).T
    if layout == "readonly":
        out = arr.copy()
        out.flags.writeable = False
        return out
    if layout == "memmap":
        if arr.size == 0 or arr.dtype == object:
            return arr.copy()
        _memmap_counter[0] += 1
        path = os.path.join(MEMMAP_DIR, f"a{_memmap_counter[0] % 64}.bin")
        arr.tofile(path)
        return np.memmap(path, dtype=arr.dtype, mode="r", shape=arr.shape)
    if layout == "list":
        if arr.size > 2000 or arr.dtype in (np.float32, *HALF_DTYPES):
            return arr.copy()
        return arr.tolist()
    if layout == "torch":
        # a CPU tensor of the same values (half of them non-contiguous); dtypes torch lacks stay NumPy
        if arr.dtype not in (np.float64, np.float32, np.int64, np.int32, np.bool_, *HALF_DTYPES) or arr.dtype == object:
            return arr.copy()
        src = np.ascontiguousarray(arr.T).T if arr.ndim > 1 and arr.size % 2 else np.ascontiguousarray(arr)
        if ml_dtypes is not None and arr.dtype == ml_dtypes.bfloat16:
            return torch.from_numpy(src.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(src)
    raise AssertionError(layout)


@st.composite
def shapes(draw, min_dims=1, max_dims=3, long_rows=True, min_side=0):
    ndim = draw(st.integers(min_dims, max_dims))
    shape = [draw(st.integers(min_side, 4)) for _ in range(ndim)]
    if long_rows and ndim >= 1 and draw(st.integers(0, 9)) == 0:
        # a long row (many classes), a few rows
        shape[draw(st.integers(0, ndim - 1))] = draw(st.sampled_from([257, 1000, 4099]))
        shape = [s if s > 200 else min(s, 2) for s in shape]
    return tuple(shape)


@st.composite
def real_arrays(draw, shape, specials=("nan", "inf", "-inf"), nonnegative=False, scale=None, dtypes=None):
    """A real array of ``shape``: random values, ties, special values at random places,
    a random dtype from the contract's list, a random layout."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    dtype = draw(st.sampled_from(dtypes or (FLOAT_DTYPES * 3 + OTHER_REAL_DTYPES)))
    scale = scale if scale is not None else draw(st.sampled_from([1.0, 10.0, 100.0, 1e4]))
    values = rng.standard_normal(shape) * scale
    if nonnegative:
        values = np.abs(values)
        values[rng.random(shape) < 0.2] = 0.0
    if draw(st.booleans()):
        values = np.round(values)  # ties and duplicates
    if np.dtype(dtype).kind in "iub":
        if np.dtype(dtype) == np.bool_:
            values = values > 0
        else:
            info = np.iinfo(dtype)
            values = np.clip(np.round(values), max(info.min, -1e6), min(info.max, 1e6))
        arr = values.astype(dtype)
    else:
        arr = values.astype(dtype)
        n_special = draw(st.sampled_from([0, 0, 0, 1, 3]))
        if n_special and arr.size and specials:
            flat = arr.reshape(-1)
            for _ in range(n_special):
                flat[rng.integers(arr.size)] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[
                    draw(st.sampled_from(specials))]
    layout = draw(st.sampled_from(LAYOUTS))
    return with_layout(arr, layout)


BASES = st.sampled_from([None, None, 2, math.e, 10.0, 0.5, np.float32(3.0), 1, 1.0, 0, -2.0, np.nan, "2", True])
TEMPERATURES = st.sampled_from([1.0, 1.0, 0.5, 3, 1e-2, 0.0, -1.0, np.nan, np.inf, "1", None])


def base_divisor(base):
    """Reference for the ``base`` argument: raises Bad('base') for invalid values."""
    if base is None:
        return 1.0
    if isinstance(base, (bool, np.bool_, str)):
        raise Bad("base")
    b = float(base)
    if not (b > 0) or b == 1.0 or not math.isfinite(b):
        raise Bad("base")
    return math.log(b)


def check_temperature(t):
    if t is None or isinstance(t, (bool, str)):
        raise Bad("temperature")
    t = float(t)
    if not (t > 0) or not math.isfinite(t):
        raise Bad("temperature")
    return t


def check_axis(axis, ndim):
    if not -ndim <= axis < ndim:
        raise Bad("axis")
    return axis % ndim


def check_real(arr, name):
    a = np.asarray(numpy_of(arr))
    if a.dtype.kind == "c":
        raise Bad(name)
    return a


# =============================================================================
# Reference computations (float64, the obvious way)
# =============================================================================


def ref_logsumexp_rows(x):
    """log(sum(exp(x))) over the last axis with the contract's special values."""
    m = np.max(x, axis=-1, initial=-np.inf)
    shift = np.where(np.isfinite(m), m, 0.0)
    s = np.log(np.sum(np.exp(x - shift[..., None]), axis=-1)) + shift
    s = np.where(np.isposinf(x).any(axis=-1), np.inf, s)
    return np.where(np.isnan(x).any(axis=-1), np.nan, s)


def ref_log_softmax_rows(x):
    lse = ref_logsumexp_rows(x)
    out = x - lse[..., None]
    bad = np.isnan(x).any(-1) | np.isposinf(x).any(-1) | np.isneginf(lse)
    out[bad] = np.nan
    return out


def ref_softmax_entropy_rows(x):
    logp = ref_log_softmax_rows(x)
    p = np.exp(logp)
    terms = np.where(p > 0, -p * logp, 0.0)
    h = terms.sum(-1)
    return np.where(np.isnan(logp).any(-1), np.nan, h)


def rows_view(x, axis):
    return np.moveaxis(x, axis, -1)


# =============================================================================
# Softmax family
# =============================================================================


@FUZZ
@given(st.data())
def test_fuzz_logsumexp(data):
    EXAMPLES["logsumexp"] += 1
    shape = data.draw(shapes(min_dims=0))
    x = data.draw(real_arrays(shape))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    keepdims = data.draw(st.booleans())
    note(f"shape={shape} dtype={np.asarray(numpy_of(x)).dtype} type={type(x).__name__} axis={axis} keepdims={keepdims}")

    def reference():
        ndim = np.ndim(x)
        if ndim == 0:
            if axis in (0, -1):
                raise Either("axis", shape=None)
            raise Bad("axis")
        ax = check_axis(axis, ndim)
        xf = as_float64(x)
        r = ref_logsumexp_rows(rows_view(xf, ax))
        if keepdims:
            r = np.expand_dims(r, ax)
        return Expected(r, dtype=result_dtype(x))

    check_call(fi.logsumexp, (x,), dict(axis=axis, keepdims=keepdims), reference)


@FUZZ
@given(st.data())
def test_fuzz_log_softmax_and_softmax(data):
    EXAMPLES["log_softmax/softmax"] += 1
    shape = data.draw(shapes())
    x = data.draw(real_arrays(shape))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    temperature = data.draw(TEMPERATURES)
    use_out = data.draw(st.sampled_from([None, None, "fresh", "half", "wrong_shape", "wrong_dtype", "readonly"]))
    in_dtype = np.asarray(numpy_of(x)).dtype
    note(f"shape={shape} dtype={in_dtype} type={type(x).__name__} axis={axis} T={temperature!r} out={use_out}")

    for fn, transform in ((fi.log_softmax, lambda v: v), (fi.softmax, np.exp)):
        kwargs = dict(axis=axis, temperature=temperature)
        out = None
        out_dtype = result_dtype(x)
        if use_out is not None:
            dt = result_dtype(x)
            if use_out == "half" and in_dtype in HALF_DTYPES:
                out = np.full(shape, 7.0, dtype=in_dtype)   # the input's own half dtype: rounded once
                out_dtype = in_dtype
            elif use_out in ("fresh", "half"):
                out = np.full(shape, 7.0, dtype=dt)
            elif use_out == "wrong_shape":
                out = np.zeros(tuple(shape) + (2,), dtype=dt)
            elif use_out == "wrong_dtype":
                out = np.zeros(shape, dtype=np.float32 if dt == np.float64 else np.float64)
            else:
                out = np.zeros(shape, dtype=dt)
                out.flags.writeable = False
            kwargs["out"] = out

        def reference():
            v = Collect()
            ax = v(check_axis, axis, np.ndim(x))
            t = v(check_temperature, temperature)
            if use_out in ("wrong_shape", "wrong_dtype", "readonly"):
                v.bad("out")
            v.done()
            xf = as_float64(x) / t
            r = np.moveaxis(transform(ref_log_softmax_rows(rows_view(xf, ax).copy())), -1, ax)
            if out_dtype in HALF_DTYPES:  # float32 accuracy plus one rounding to the half dtype
                rel = 2.0 ** -11 if out_dtype == np.float16 else 2.0 ** -8
                return Expected(r, dtype=out_dtype, rtol=rel, atol=2e-4 if out_dtype == np.float16 else rel)
            return Expected(r, dtype=out_dtype)

        result = check_call(fn, (x,), kwargs, reference)
        if result is not None and use_out in ("fresh", "half"):
            assert result is out, f"{fn.__name__}: out= must return out itself"
        if result is not None and fn is fi.log_softmax and out_dtype in HALF_DTYPES:
            # the float path of a half out= (no temperature) gives the double path's bits
            old = _kernels.softmax_set_half_fast_writes(False)
            try:
                exact = fn(x, **dict(kwargs, out=np.full(shape, 7.0, dtype=out_dtype)))
            finally:
                _kernels.softmax_set_half_fast_writes(old)
            assert np.array_equal(np.asarray(result).view(np.uint16), exact.view(np.uint16))


@FUZZ
@given(st.data())
def test_fuzz_out_aliasing(data):
    """``out=x`` (in place) and an ``out`` that overlaps ``x`` with reversed rows."""
    EXAMPLES["out aliasing"] += 1
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=1))
    dtype = data.draw(st.sampled_from([np.float32, np.float64, *HALF_DTYPES]))
    x0 = data.draw(real_arrays(shape, dtypes=[dtype]))
    x0 = np.array(numpy_of(x0), dtype=dtype)  # a fresh writable array
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    fn_name = data.draw(st.sampled_from(["log_softmax", "softmax"]))
    kind = data.draw(st.sampled_from(["same", "same", "fortran", "reversed"]))
    fn = getattr(fi, fn_name)
    xf = x0.astype(np.float64)
    with np.errstate(all="ignore"):
        want = np.moveaxis(ref_log_softmax_rows(rows_view(xf, axis).copy()), -1, axis)
        if fn_name == "softmax":
            want = np.exp(want)
    CALLS[fn_name] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if kind in ("same", "fortran"):
            x = np.asfortranarray(x0) if kind == "fortran" else x0.copy()
            result = fn(x, axis=axis, out=x)
            assert result is x
        else:
            # out is x with the first axis reversed: same memory, different element order
            buf = x0.copy()
            x = buf
            out = buf[::-1]
            result = fn(x, axis=axis, out=out)
            assert result is out
            result = result.copy()
    if np.dtype(dtype) in HALF_DTYPES:  # in place in half precision: rounded once to it
        rel = 2.0 ** -11 if np.dtype(dtype) == np.float16 else 2.0 ** -8
        expected = Expected(want, dtype=np.dtype(dtype), rtol=rel, atol=2e-4 if dtype == np.float16 else rel)
    else:
        expected = Expected(want, dtype=np.dtype(dtype))
    compare_result(np.asarray(result), expected, fn_name)


def _targets(draw, batch_shape, C, dtype_choice):
    """Integer targets in [0, C) with bad values anywhere in int64 placed at random."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = rng.integers(0, max(C, 1), size=batch_shape).astype(np.int64)
    n_bad = draw(st.sampled_from([0, 0, 0, 1, 2]))
    bad_values = []
    if n_bad and t.size:
        flat = t.reshape(-1)
        for _ in range(n_bad):
            v = draw(st.one_of(st.sampled_from([-1, C, -100, INT64_MIN, INT64_MAX, C + 1, 2**31, -2**31]),
                                    st.integers(INT64_MIN, INT64_MAX)))
            flat[rng.integers(t.size)] = v
            bad_values.append(v)
    if dtype_choice != np.int64 and t.size:
        info = np.iinfo(dtype_choice)
        if t.min() >= info.min and t.max() <= info.max:
            t = t.astype(dtype_choice)
    return t


@st.composite
def ce_inputs(draw, allow_prob=True, allow_weight=True):
    shape = draw(shapes(min_dims=1, max_dims=3))
    logits = draw(real_arrays(shape, scale=draw(st.sampled_from([1.0, 10.0, 30.0]))))
    ndim = len(shape)
    axis = draw(st.integers(-ndim - 1, ndim))
    ax = axis % ndim if -ndim <= axis < ndim else ndim - 1
    C = shape[ax]
    batch = tuple(s for i, s in enumerate(shape) if i != ax)
    kind = draw(st.sampled_from(["index", "index", "index", "prob", "wrong_shape", "complex", "half_index"]
                                if allow_prob else ["index", "index", "wrong_shape", "half_index"]))
    if kind == "index":
        target = _targets(draw, batch, C, draw(st.sampled_from([np.int64, np.int32, np.uint8, np.int8])))
        target = with_layout(target, draw(st.sampled_from(["C", "negative", "strided", "readonly", "list"])))
    elif kind == "prob":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        t = rng.random(shape)
        t[rng.random(shape) < 0.3] = 0.0
        s = t.sum(axis=ax, keepdims=True)
        t = np.where(s > 0, t / np.where(s > 0, s, 1), t)
        t = t.astype(draw(st.sampled_from([np.float64, np.float32, *HALF_DTYPES])))
        target = with_layout(t, draw(st.sampled_from(["C", "F", "negative", "readonly"])))
    elif kind == "wrong_shape":
        target = np.zeros(tuple(batch) + (3,), dtype=np.int64)
    elif kind == "half_index":  # class indices in a half dtype: a TypeError naming target
        target = np.zeros(batch, dtype=draw(st.sampled_from(HALF_DTYPES)))
    else:
        target = np.zeros(batch, dtype=np.complex128)
    ignore_index = draw(st.sampled_from([None, None, -100, 0, 1, INT64_MIN]))
    label_smoothing = draw(st.sampled_from([0.0, 0.0, 0.1, 1.0, -0.1, 1.5, np.nan]))
    weight = None
    if allow_weight and draw(st.booleans()):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        wlen = draw(st.sampled_from([C, C, C + 1]))
        weight = rng.random(wlen) * 2
        if draw(st.booleans()) and wlen:
            weight[0] = 0.0
    temperature = draw(st.sampled_from([1.0, 1.0, 2.0, 0.5, 0.0, -1.0]))
    reduction = draw(st.sampled_from(["mean", "sum", "none", "none", "avg"]))
    return dict(logits=logits, target=target, axis=axis, kind=kind, ignore_index=ignore_index,
                label_smoothing=label_smoothing, weight=weight, temperature=temperature, reduction=reduction)


def _ce_late_checks(v, c, x, t_arr, ax):
    """Array checks that an implementation may run before the scalar ones: collect their names too."""
    if ax is None:
        return
    C = x.shape[ax]
    batch = tuple(s for i, s in enumerate(x.shape) if i != ax)
    if c["weight"] is not None and np.shape(c["weight"]) != (C,):
        v.bad("weight")
    if t_arr.dtype.kind == "f" or t_arr.dtype in HALF_DTYPES:
        if t_arr.shape != x.shape:
            v.bad("target")
    elif t_arr.dtype.kind in "iu":
        if t_arr.shape != batch:
            v.bad("target")
        else:
            t64 = t_arr.astype(object)
            ig = c["ignore_index"]
            bad = [val for val in t64.reshape(-1).tolist() if val != ig and not 0 <= val < C]
            if bad:
                v.bad("target", *map(str, bad))


def ref_cross_entropy(c, with_grad=False, no_weight=False):
    """torch.nn.functional.cross_entropy semantics in NumPy, per the contract.

    Returns (loss, grad or None, dont_care_loss, dont_care_grad, dtype)."""
    logits, target, axis = c["logits"], c["target"], c["axis"]
    v = Collect()
    x = check_real(logits, "logits")
    ndim = x.ndim
    ax = v(check_axis, axis, ndim)
    t_arr = np.asarray(target)
    if t_arr.dtype.kind == "c":
        v.bad("target")
    reduction = c["reduction"]
    if reduction not in ("mean", "sum", "none"):
        v.bad("reduction")
    T = v(check_temperature, c["temperature"])
    eps = c["label_smoothing"]
    if not (0.0 <= eps <= 1.0):
        v.bad("label_smoothing")
    if ax is None:  # the target and weight are then checked against an unknown axis
        v.bad("target", "weight")
    if v.names:
        _ce_late_checks(v, c, x, t_arr, ax)
    v.done()
    xf = rows_view(as_float64(x), ax) / T
    C = xf.shape[-1]
    batch = xf.shape[:-1]
    w = c["weight"]
    if w is not None:
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (C,):
            raise Bad("weight")
    else:
        w = np.ones(C)
    prob_target = t_arr.dtype.kind == "f" or t_arr.dtype in HALF_DTYPES
    if prob_target:
        if t_arr.shape != x.shape:
            raise Bad("target")
        tp = rows_view(t_arr.astype(np.float64), ax)
        a = w * ((1 - eps) * tp + eps / C) if C else tp * 0
        ignored = np.zeros(batch, bool)
        denom_rows = None
    else:
        if t_arr.dtype.kind not in "iu":
            raise Either("target")
        if t_arr.shape != batch:
            raise Bad("target")
        t64 = t_arr.astype(object) if t_arr.dtype == np.uint64 else t_arr.astype(np.int64)
        ig = c["ignore_index"]
        ignored = (t64 == ig) if ig is not None else np.zeros(batch, bool)
        ignored = np.asarray(ignored, bool)
        bad = ~ignored & ((t64 < 0) | (t64 >= C))
        if np.any(bad):
            raise Bad(*[str(v) for v in np.asarray(t64)[np.asarray(bad)].tolist()])
        tt = np.where(ignored, 0, t64).astype(np.int64)
        onehot = np.zeros(batch + (C,))
        if C:
            np.put_along_axis(onehot, tt[..., None], 1.0, axis=-1)
        a = (1 - eps) * onehot * w + (eps / C) * w if C else onehot
        a = np.where(ignored[..., None], 0.0, a)
        denom_rows = np.where(ignored, 0.0, w[tt] if C else 0.0)
    if C == 0:
        raise Either("logits", "target", "C")
    logp = ref_log_softmax_rows(xf.copy())
    p = np.exp(logp)
    terms = np.where(a != 0, -a * logp, 0.0)
    loss = terms.sum(-1)
    ambiguous = ((a == 0) & np.isneginf(logp)).any(-1) & ~ignored  # 0 * log(0): torch gives NaN
    nan_rows = np.isnan(logp).any(-1) & ~ignored
    loss = np.where(nan_rows, np.nan, loss)
    loss = np.where(ignored, 0.0, loss)
    if reduction == "none":
        out, scale = loss, 1.0
        dont_care = ambiguous
    else:
        total = loss.sum()
        if reduction == "sum":
            out, scale = total, 1.0
        else:
            if denom_rows is None:
                n = loss.size
                out, scale = (total / n if n else np.nan), (1.0 / n if n else np.nan)
            else:
                d = denom_rows.sum()
                out, scale = (total / d if d else np.nan), (1.0 / d if d else np.nan)
        dont_care = bool(ambiguous.any())
    grad = None
    grad_dont_care = None
    if with_grad:
        g = (-a + a.sum(-1, keepdims=True) * p) * scale / T
        g = np.where(np.isnan(logp).any(-1, keepdims=True) & ~ignored[..., None], np.nan, g)
        g = np.where(ignored[..., None], 0.0, g)
        if reduction != "none" and not np.isfinite(out):
            g = np.where(np.isnan(g), g, g)  # the scale itself may be NaN (no counted rows)
        grad = np.moveaxis(g, -1, ax)
        rowbad = ambiguous | (np.isinf(loss) & ~ignored)
        if reduction != "none":
            rowbad = rowbad | (not np.isfinite(scale))
            rowbad = rowbad | bool(np.isnan(loss).any() & False)
        grad_dont_care = np.moveaxis(np.broadcast_to(rowbad[..., None], g.shape), -1, ax)
    return out, grad, dont_care, grad_dont_care, result_dtype(x), reduction


@FUZZ
@given(ce_inputs())
def test_fuzz_softmax_cross_entropy(c):
    EXAMPLES["softmax_cross_entropy"] += 1
    note({k: (v.shape, v.dtype) if isinstance(v, np.ndarray) else v for k, v in c.items()})
    kwargs = dict(axis=c["axis"], reduction=c["reduction"], ignore_index=c["ignore_index"],
                  label_smoothing=c["label_smoothing"], weight=c["weight"], temperature=c["temperature"])

    def reference():
        out, _, dont_care, _, dtype, reduction = ref_cross_entropy(c)
        if reduction == "none":
            return Expected(out, dtype=dtype, dont_care=dont_care)
        return Expected(float(out), dtype=dtype, scalar=True, dont_care=np.asarray(dont_care))

    check_call(fi.softmax_cross_entropy, (c["logits"], c["target"]), kwargs, reference)


@FUZZ
@given(ce_inputs())
def test_fuzz_softmax_cross_entropy_with_grad(c):
    EXAMPLES["softmax_cross_entropy_with_grad"] += 1
    note({k: (v.shape, v.dtype) if isinstance(v, np.ndarray) else v for k, v in c.items()})
    kwargs = dict(axis=c["axis"], reduction=c["reduction"], ignore_index=c["ignore_index"],
                  label_smoothing=c["label_smoothing"], weight=c["weight"], temperature=c["temperature"])
    holder = {}

    def reference():
        out, grad, dont_care, grad_dont_care, dtype, reduction = ref_cross_entropy(c, with_grad=True)
        holder.update(grad=grad, grad_dont_care=grad_dont_care, dtype=dtype)
        if reduction == "none":
            return Expected(out, dtype=dtype, dont_care=dont_care)
        return Expected(float(out), dtype=dtype, scalar=True, dont_care=np.asarray(dont_care))

    def compare(result, expected, name):
        assert isinstance(result, tuple) and len(result) == 2, f"{name} must return (loss, grad)"
        loss, grad = result
        compare_result(loss, expected, name)
        gdt = holder["dtype"]
        assert isinstance(grad, np.ndarray) and grad.shape == np.shape(c["logits"]), f"{name}: grad shape"
        assert grad.dtype == gdt, f"{name}: grad dtype {grad.dtype}"
        compare_result(grad.astype(gdt), Expected(holder["grad"], dtype=gdt, dont_care=holder["grad_dont_care"]),
                       name + " (grad)")

    check_call(fi.softmax_cross_entropy_with_grad, (c["logits"], c["target"]), kwargs, reference, compare)


@FUZZ
@given(ce_inputs(allow_prob=False, allow_weight=False))
def test_fuzz_perplexity(c):
    EXAMPLES["perplexity"] += 1
    kwargs = dict(axis=c["axis"], ignore_index=c["ignore_index"], temperature=c["temperature"])
    c = dict(c, label_smoothing=0.0, weight=None, reduction="mean")

    def reference():
        out, _, dont_care, _, dtype, _ = ref_cross_entropy(c)
        return Expected(float(np.exp(out)), dtype=dtype, scalar=True, dont_care=np.asarray(dont_care))

    check_call(fi.perplexity, (c["logits"], c["target"]), kwargs, reference)


@FUZZ
@given(st.data())
def test_fuzz_softmax_entropy(data):
    EXAMPLES["softmax_entropy"] += 1
    shape = data.draw(shapes())
    x = data.draw(real_arrays(shape))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    temperature = data.draw(TEMPERATURES)
    base = data.draw(BASES)

    def reference():
        v = Collect()
        ax = v(check_axis, axis, np.ndim(x))
        t = v(check_temperature, temperature)
        div = v(base_divisor, base)
        v.done()
        xf = rows_view(as_float64(x), ax) / t
        if xf.shape[-1] == 0:
            raise Either("logits", "axis", shape=xf.shape[:-1], dtype=result_dtype(x))
        return Expected(ref_softmax_entropy_rows(xf.copy()) / div, dtype=result_dtype(x))

    check_call(fi.softmax_entropy, (x,), dict(axis=axis, temperature=temperature, base=base), reference)


@FUZZ
@given(st.data())
def test_fuzz_softmax_kl_divergence(data):
    EXAMPLES["softmax_kl_divergence"] += 1
    shape = data.draw(shapes())
    p = data.draw(real_arrays(shape, scale=10.0))
    q_shape = shape
    if data.draw(st.integers(0, 7)) == 0:
        q_shape = shape[:-1] + (shape[-1] + 2,)
    q = data.draw(real_arrays(q_shape, scale=10.0))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    temperature = data.draw(TEMPERATURES)
    base = data.draw(BASES)
    reduction = data.draw(st.sampled_from(["none", "none", "mean", "sum", "batchmean"]))

    def reference():
        v = Collect()
        ax = v(check_axis, axis, len(shape))
        if q_shape != shape:
            v.bad("logits_q", "logits_p", "shape")
        t = v(check_temperature, temperature)
        if reduction not in ("none", "mean", "sum"):
            v.bad("reduction")
        div = v(base_divisor, base)
        v.done()
        pf = rows_view(as_float64(p), ax) / t
        qf = rows_view(as_float64(q), ax) / t
        if pf.shape[-1] == 0:
            raise Either("logits_p", "logits_q", "axis")
        lp, lq = ref_log_softmax_rows(pf.copy()), ref_log_softmax_rows(qf.copy())
        sp = np.exp(lp)
        kl = np.where(sp > 0, sp * (lp - lq), 0.0).sum(-1)
        kl = np.where(np.isnan(lp).any(-1) | np.isnan(lq).any(-1), np.nan, kl) / div
        dtype = np.promote_types(result_dtype(p), result_dtype(q))
        if reduction == "none":
            return Expected(kl, dtype=dtype)
        val = kl.sum() if reduction == "sum" else (kl.mean() if kl.size else np.nan)
        return Expected(float(val), dtype=dtype, scalar=True)

    check_call(fi.softmax_kl_divergence, (p, q), dict(axis=axis, temperature=temperature, reduction=reduction,
                                                       base=base), reference)


# =============================================================================
# Distribution family
# =============================================================================


def ref_normalise(p):
    s = p.sum(-1, keepdims=True)
    return p / s


def ref_dist(kind, p, q, div):
    pn = ref_normalise(p)
    if kind == "entropy":
        h = np.where(pn > 0, -pn * np.log(pn), 0.0).sum(-1)
        return np.where(np.isnan(pn).any(-1), np.nan, h) / div
    qn = ref_normalise(q)
    bad = np.isnan(pn).any(-1) | np.isnan(qn).any(-1)
    if kind == "cross_entropy":
        r = np.where(pn > 0, -pn * np.log(qn), 0.0).sum(-1)
    elif kind == "kl_divergence":
        r = np.where(pn > 0, pn * np.log(pn / qn), 0.0).sum(-1)
    else:
        m = 0.5 * (pn + qn)
        r = 0.5 * np.where(pn > 0, pn * np.log(pn / m), 0.0).sum(-1) + \
            0.5 * np.where(qn > 0, qn * np.log(qn / m), 0.0).sum(-1)
    return np.where(bad, np.nan, r) / div


@FUZZ
@given(st.data(), st.sampled_from(["entropy", "cross_entropy", "kl_divergence", "js_divergence"]))
def test_fuzz_distributions(data, kind):
    EXAMPLES["distributions"] += 1
    shape = data.draw(shapes())
    p = data.draw(real_arrays(shape, specials=("nan",), nonnegative=True))
    negative_p = data.draw(st.integers(0, 9)) == 0 and np.size(numpy_of(p)) > 0
    if negative_p:
        p = np.array(numpy_of(p), dtype=np.float64)
        p.reshape(-1)[np.random.default_rng(np.size(p)).integers(np.size(p))] = -0.5
    q_shape = shape
    if len(shape) and shape[-1] >= 2 and data.draw(st.integers(0, 9)) == 0:
        q_shape = shape[:-1] + (shape[-1] + 1,)
    q = data.draw(real_arrays(q_shape, specials=("nan",), nonnegative=True))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape))) if q_shape == shape else -1
    base = data.draw(BASES)
    eps = data.draw(st.sampled_from([0.0, 0.0, 1e-3, 1.0, -1e-3, np.nan]))
    fn = getattr(fi, kind)
    args = (p,) if kind == "entropy" else (p, q)
    kwargs = dict(axis=axis, base=base)
    if kind in ("cross_entropy", "kl_divergence"):
        kwargs["eps"] = eps
    note(f"{kind} shape={shape} q_shape={q_shape} axis={axis} base={base!r} eps={eps}")

    def reference():
        v = Collect()
        for a, nm in zip(args, ("p", "q")):
            v(check_real, a, nm)
        if kind != "entropy" and q_shape != shape:
            v.bad("q", "p", "shape")
        ax = v(check_axis, axis, len(shape))
        div = v(base_divisor, base)
        if kind in ("cross_entropy", "kl_divergence") and not (eps >= 0):
            v.bad("eps")
        if (as_float64(p) < 0).any():
            v.bad("p", "negative")
        if kind != "entropy" and (as_float64(q) < 0).any():
            v.bad("q", "negative")
        v.done()
        pf = rows_view(as_float64(p), ax)
        qf = rows_view(as_float64(q), ax) if kind != "entropy" else None
        dtype = result_dtype(p) if kind == "entropy" else np.promote_types(result_dtype(p), result_dtype(q))
        if pf.shape[-1] == 0:
            raise Either("p", "q", "axis", shape=pf.shape[:-1], dtype=dtype)
        if qf is not None and kwargs.get("eps"):
            qf = qf + eps
        r = ref_dist(kind, pf, qf, div)
        return Expected(r, dtype=dtype)

    check_call(fn, args, kwargs, reference)


# =============================================================================
# Estimators from samples (brute force, max-norm)
# =============================================================================


def cheb(a):
    return np.max(np.abs(a[:, None, :] - a[None, :, :]), axis=-1)


def as_2d(a):
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def kth_distance(d, k):
    """k-th smallest distance from each sample to the others (self excluded); ties flag."""
    d = d.copy()
    np.fill_diagonal(d, np.inf)
    srt = np.sort(d, axis=1)
    eps = srt[:, k - 1]
    ties = srt[:, k] == eps if k < d.shape[0] - 1 else np.zeros(len(eps), bool)
    return eps, ties, d


def ref_ksg(x, y, k, algorithm):
    x2, y2 = as_2d(x), as_2d(y)
    n = len(x2)
    dx, dy = cheb(x2), cheb(y2)
    eps, ties, dz = kth_distance(np.maximum(dx, dy), k)
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(dy, np.inf)
    if algorithm == 1:
        nx = (dx < eps[:, None]).sum(1)
        ny = (dy < eps[:, None]).sum(1)
        return digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1)), False
    order = np.argsort(dz, axis=1, kind="stable")[:, :k]
    ex = np.take_along_axis(dx, order, 1).max(1)
    ey = np.take_along_axis(dy, order, 1).max(1)
    nx = (dx <= ex[:, None]).sum(1)
    ny = (dy <= ey[:, None]).sum(1)
    return digamma(k) - 1.0 / k + digamma(n) - np.mean(digamma(nx) + digamma(ny)), bool(ties.any())


def ref_cmi_terms(x, y, z, k):
    """Per-sample Frenzel-Pompe terms (the local values); their mean is ref_cmi."""
    x2, y2, z2 = as_2d(x), as_2d(y), as_2d(z)
    dx, dy, dz_ = cheb(x2), cheb(y2), cheb(z2)
    eps, _, _ = kth_distance(np.maximum(np.maximum(dx, dy), dz_), k)
    dxz, dyz = np.maximum(dx, dz_), np.maximum(dy, dz_)
    for d in (dxz, dyz, dz_):
        np.fill_diagonal(d, np.inf)
    nxz = (dxz < eps[:, None]).sum(1)
    nyz = (dyz < eps[:, None]).sum(1)
    nz = (dz_ < eps[:, None]).sum(1)
    return digamma(k) - digamma(nxz + 1) - digamma(nyz + 1) + digamma(nz + 1)


def ref_cmi(x, y, z, k):
    return np.mean(ref_cmi_terms(x, y, z, k))


def ref_entropy_knn(x, k):
    x2 = as_2d(x)
    n, d = x2.shape
    eps, _, _ = kth_distance(cheb(x2), k)
    if (eps == 0).any():
        raise Bad("duplicate")
    return digamma(n) - digamma(k) + d * np.mean(np.log(2 * eps))


def ref_mixed(x, labels, k):
    """Ross (2014) as the contract states; also says whether distance ties make it ambiguous."""
    x2 = as_2d(x)
    labels = np.asarray(labels)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    cnt = counts[inverse]
    keep = cnt > 1
    if keep.sum() == 0:
        raise Either("labels", "x", "samples")
    x2, inverse, cnt = x2[keep], inverse[keep], cnt[keep]
    n = len(x2)
    d = cheb(x2)
    np.fill_diagonal(d, np.inf)
    eps = np.empty(n)
    k_i = np.minimum(k, cnt - 1)
    ambiguous = False
    for i in range(n):
        same = np.sort(d[i, inverse == inverse[i]])
        eps[i] = same[k_i[i] - 1]
        if (d[i] == eps[i]).sum() != 1:
            ambiguous = True  # scikit-learn's "< radius, self included" and the contract's "<=" differ
    m = (d <= eps[:, None]).sum(1)
    return digamma(n) + np.mean(digamma(k_i)) - np.mean(digamma(cnt)) - np.mean(digamma(m)), ambiguous


def ref_discrete(a, b):
    a, b = np.asarray(a), np.asarray(b)
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    ia, ib = ia.reshape(-1), ib.reshape(-1)
    n = len(ia)
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1.0)
    return ref_joint(table)


def ref_joint(table):
    p = table / table.sum()
    px = p.sum(1, keepdims=True)
    py = p.sum(0, keepdims=True)
    return float(np.where(p > 0, p * np.log(p / (px * py)), 0.0).sum())


K_VALUES = [1, 1, 2, 3, 3, 5, "n-1", "n-1", "n", 0, -1, INT64_MAX, INT64_MIN, 1.5, True, np.int64(2), "3", None]


@st.composite
def samples(draw, n, name_dims=(1, 2), allow_bad=True):
    """Samples of n rows: 1-D or 2-D, random dtype and layout, sometimes non-finite or duplicated."""
    d = draw(st.sampled_from(name_dims))
    shape = (n,) if d == 1 else (n, draw(st.sampled_from([1, 2, 3])))
    specials = ("nan", "inf", "-inf") if allow_bad else ()
    dtypes = [np.float64, np.float64, np.float64, np.float32, np.int64, np.int32, np.float16, np.bool_]
    a = draw(real_arrays(shape, specials=specials, scale=draw(st.sampled_from([1.0, 100.0])), dtypes=dtypes))
    return a


def resolve_k(k, n):
    if isinstance(k, str) and k.startswith("n"):
        return n - 1 if k == "n-1" else n
    return k


def check_k(k, n):
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (numbers.Integral, np.integer)):
        raise Bad("k")
    if not 1 <= int(k) < n:
        raise Bad("k")
    return int(k)


def check_samples(a, name):
    arr = np.asarray(a)
    if arr.dtype.kind == "c":
        raise Bad(name)
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[1] == 0):
        raise Bad(name)
    f = arr.astype(np.float64)
    if not np.isfinite(f).all():
        raise Bad(name)
    return f


def estimator_tolerance(*arrays):
    if any(np.asarray(a).dtype in (np.float32, np.float16) for a in arrays):
        return dict(rtol=1e-3, atol=1e-3)
    return dict(rtol=1e-9, atol=1e-9)


@FUZZ
@given(st.data())
def test_fuzz_mutual_info_ksg(data):
    EXAMPLES["mutual_info_ksg"] += 1
    n = data.draw(st.sampled_from([0, 1, 2, 3, 5, 8, 20, 40]))
    x = data.draw(samples(n))
    n_y = n if data.draw(st.integers(0, 9)) else n + 1
    y = data.draw(samples(n_y))
    k = resolve_k(data.draw(st.sampled_from(K_VALUES)), n)
    algorithm = data.draw(st.sampled_from([1, 1, 2, 2, 3, 0, "1"]))
    base = data.draw(BASES)

    def reference():
        v = Collect()
        xf, yf = v(check_samples, x, "x"), v(check_samples, y, "y")
        if np.shape(x)[:1] != np.shape(y)[:1]:
            v.bad("x", "y", "length", "samples")
        kk = v(check_k, k, np.shape(x)[0])
        if isinstance(algorithm, str) or algorithm not in (1, 2):
            v.bad("algorithm")
        div = v(base_divisor, base)
        v.done()
        value, ambiguous = ref_ksg(xf, yf, kk, algorithm)
        return Expected(value / div, scalar=True, dont_care=np.asarray(ambiguous), **estimator_tolerance(x, y))

    check_call(fi.mutual_info_ksg, (x, y), dict(k=k, algorithm=algorithm, base=base), reference)


@FUZZ
@given(st.data())
def test_fuzz_conditional_mutual_info_ksg(data):
    EXAMPLES["conditional_mutual_info_ksg"] += 1
    n = data.draw(st.sampled_from([0, 1, 2, 3, 6, 20, 30]))
    x, y = data.draw(samples(n)), data.draw(samples(n))
    z = data.draw(samples(n if data.draw(st.integers(0, 9)) else max(n - 1, 0)))
    k = resolve_k(data.draw(st.sampled_from(K_VALUES)), n)
    base = data.draw(BASES)

    def reference():
        v = Collect()
        xf, yf, zf = v(check_samples, x, "x"), v(check_samples, y, "y"), v(check_samples, z, "z")
        if not len(x) == len(y) == len(z):
            v.bad("x", "y", "z", "length", "samples")
        kk = v(check_k, k, min(len(x), len(y), len(z)))
        div = v(base_divisor, base)
        v.done()
        return Expected(ref_cmi(xf, yf, zf, kk) / div, scalar=True, **estimator_tolerance(x, y, z))

    check_call(fi.conditional_mutual_info_ksg, (x, y, z), dict(k=k, base=base), reference)


@FUZZ
@given(st.data())
def test_fuzz_entropy_knn(data):
    EXAMPLES["entropy_knn"] += 1
    n = data.draw(st.sampled_from([0, 1, 2, 3, 6, 20, 50]))
    x = data.draw(samples(n))
    k = resolve_k(data.draw(st.sampled_from(K_VALUES)), n)
    base = data.draw(BASES)

    def reference():
        v = Collect()
        xf = v(check_samples, x, "x")
        kk = v(check_k, k, len(x))
        div = v(base_divisor, base)
        v.done()
        return Expected(ref_entropy_knn(xf, kk) / div, scalar=True, **estimator_tolerance(x))

    check_call(fi.entropy_knn, (x,), dict(k=k, base=base), reference)


@st.composite
def label_arrays(draw, n):
    kind = draw(st.sampled_from(["small", "small", "int64", "str", "float", "bool", "unique"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "small":
        return rng.integers(0, draw(st.integers(1, 4)), n)
    if kind == "int64":
        pool = np.array([INT64_MIN, INT64_MAX, 0, -1, 2**40], dtype=np.int64)
        return pool[rng.integers(0, len(pool), n)]
    if kind == "str":
        return np.array(["a", "bb", "ccc"])[rng.integers(0, 3, n)]
    if kind == "float":
        return rng.integers(0, 3, n) * 0.5
    if kind == "bool":
        return rng.random(n) < 0.5
    return np.arange(n)


@FUZZ
@given(st.data())
def test_fuzz_mutual_info_mixed(data):
    EXAMPLES["mutual_info_mixed"] += 1
    n = data.draw(st.sampled_from([0, 1, 2, 3, 6, 20, 40]))
    x = data.draw(samples(n))
    labels = data.draw(label_arrays(n if data.draw(st.integers(0, 9)) else n + 1))
    k = data.draw(st.sampled_from([1, 2, 3, 5, 0, -1, 1.5, INT64_MAX]))
    base = data.draw(BASES)

    def reference():
        v = Collect()
        xf = v(check_samples, x, "x")
        if len(labels) != len(x):
            v.bad("x", "labels", "length", "samples")
        if isinstance(k, float) or k < 1:
            v.bad("k")
        div = v(base_divisor, base)
        v.done()
        if len(xf) < 2:
            raise Either("x", "labels", "k", "samples")
        value, ambiguous = ref_mixed(xf, labels, k)
        return Expected(value / div, scalar=True, dont_care=np.asarray(ambiguous), **estimator_tolerance(x))

    check_call(fi.mutual_info_mixed, (x, labels), dict(k=k, base=base), reference)


@FUZZ
@given(st.data())
def test_fuzz_mutual_info_discrete(data):
    EXAMPLES["mutual_info_discrete"] += 1
    n = data.draw(st.sampled_from([0, 1, 2, 5, 30, 200]))
    a = data.draw(label_arrays(n))
    b = data.draw(label_arrays(n if data.draw(st.integers(0, 9)) else n + 2))
    base = data.draw(BASES)
    layout = data.draw(st.sampled_from(["C", "negative", "strided", "readonly", "list"]))
    a = with_layout(a, layout)

    def reference():
        v = Collect()
        if len(a) != len(b):
            v.bad("a", "b", "length", "samples")
        div = v(base_divisor, base)
        v.done()
        if len(a) == 0:
            raise Either("a", "b", "samples", shape=())
        value = ref_discrete(a, b)
        from sklearn.metrics import mutual_info_score
        assert abs(mutual_info_score(np.asarray(a), np.asarray(b)) - value) < 1e-10
        return Expected(value / div, scalar=True)

    check_call(fi.mutual_info_discrete, (a, b), dict(base=base), reference)


@FUZZ
@given(st.data())
def test_fuzz_mutual_info_from_joint(data):
    EXAMPLES["mutual_info_from_joint"] += 1
    shape = data.draw(st.sampled_from([(2, 2), (3, 5), (1, 4), (0, 3), (6,), (2, 2, 2), (40, 300), (1, 1)]))
    pxy = data.draw(real_arrays(shape, specials=(), nonnegative=True, dtypes=[np.float64, np.float32, np.int64,
                                                                               np.uint8, np.float16, np.bool_]))
    if data.draw(st.integers(0, 9)) == 0 and np.size(numpy_of(pxy)):
        pxy = np.array(numpy_of(pxy), dtype=np.float64)
        pxy.reshape(-1)[0] = -1.0
    base = data.draw(BASES)

    def reference():
        v = Collect()
        t = check_real(pxy, "pxy")
        if t.ndim != 2:
            v.bad("pxy")
        div = v(base_divisor, base)
        t = t.astype(np.float64)
        if (t < 0).any():
            v.bad("pxy")
        v.done()
        if t.size == 0 or t.sum() == 0:
            raise Either("pxy", shape=())
        return Expected(ref_joint(t) / div, scalar=True)

    check_call(fi.mutual_info_from_joint, (pxy,), dict(base=base), reference)


@FUZZ
@given(st.data())
def test_fuzz_mutual_info_matrix(data):
    EXAMPLES["mutual_info_matrix"] += 1
    n = data.draw(st.sampled_from([1, 2, 4, 12, 25]))
    m = data.draw(st.sampled_from([1, 2, 3]))
    X = data.draw(real_arrays((n, m), specials=("nan",), scale=data.draw(st.sampled_from([1.0, 100.0])),
                              dtypes=[np.float64, np.float64, np.int32, np.float32]))
    k = resolve_k(data.draw(st.sampled_from(K_VALUES)), n)
    base = data.draw(BASES)

    def reference():
        v = Collect()
        Xf = v(check_samples, X, "X")
        kk = v(check_k, k, n)
        div = v(base_divisor, base)
        v.done()
        Xf = Xf.reshape(n, m)
        out = np.full((m, m), np.nan)
        for i in range(m):
            for j in range(i + 1, m):
                out[i, j] = out[j, i] = ref_ksg(Xf[:, i], Xf[:, j], kk, 1)[0] / div
        return Expected(out, dtype=np.dtype(np.float64), **estimator_tolerance(X))

    result = check_call(fi.mutual_info_matrix, (X,), dict(k=k, base=base), reference)
    if result is not None:
        assert np.array_equal(result, result.T, equal_nan=True), "mutual_info_matrix must be exactly symmetric"


@FUZZ
@given(st.data())
def test_fuzz_mutual_info_features(data):
    EXAMPLES["mutual_info_features"] += 1
    n = data.draw(st.sampled_from([2, 4, 12, 30]))
    m = data.draw(st.sampled_from([1, 2, 3]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    X = rng.standard_normal((n, m))
    mask_kind = data.draw(st.sampled_from([False, True, "mask", "wrong_mask"]))
    if mask_kind == "mask":
        discrete = rng.random(m) < 0.5
    elif mask_kind == "wrong_mask":
        discrete = np.zeros(m + 1, bool)
    else:
        discrete = mask_kind
    disc_cols = np.broadcast_to(np.asarray(discrete if mask_kind != "wrong_mask" else False), (m,))
    X[:, disc_cols] = rng.integers(0, 3, (n, int(disc_cols.sum())))
    discrete_target = data.draw(st.booleans())
    y = rng.integers(0, 3, n).astype(float) if discrete_target else rng.standard_normal(n)
    X = with_layout(X, data.draw(st.sampled_from(["C", "F", "negative", "readonly"])))
    k = data.draw(st.sampled_from([1, 2, 3, 0, -1, "n"]))
    k = n if k == "n" else k
    base = data.draw(BASES)

    def reference():
        v = Collect()
        if mask_kind == "wrong_mask":
            v.bad("discrete_features")
        div = v(base_divisor, base)
        if k < 1:
            v.bad("k")
        any_cc = (~disc_cols).any() and not discrete_target
        if k >= n and any_cc:
            v.bad("k")
        v.done()
        if k >= n:
            raise Either("k")
        out = np.empty(m)
        ambiguous = np.zeros(m, bool)
        for j in range(m):
            col = X[:, j]
            try:
                if disc_cols[j] and discrete_target:
                    out[j] = ref_discrete(col, y)
                elif disc_cols[j]:
                    out[j], ambiguous[j] = ref_mixed(y, col, k)
                elif discrete_target:
                    out[j], ambiguous[j] = ref_mixed(col, y, k)
                else:
                    out[j] = ref_ksg(col, y, k, 1)[0]
            except Either:  # every label unique: the contract is silent
                raise Either("X", "y", "labels", "samples", "discrete", shape=(m,), dtype=np.float64) from None
        return Expected(out / div, dtype=np.dtype(np.float64), dont_care=ambiguous)

    check_call(fi.mutual_info_features, (X, y), dict(k=k, discrete_features=discrete,
                                                     discrete_target=discrete_target, base=base), reference)


@FUZZ
@given(st.data())
def test_fuzz_mutual_info_test(data):
    EXAMPLES["mutual_info_test"] += 1
    n = data.draw(st.sampled_from([1, 3, 10, 25]))
    x, y = data.draw(samples(n, allow_bad=False)), data.draw(samples(n))
    k = data.draw(st.sampled_from([1, 3, 0, "n"]))
    k = n if k == "n" else k
    n_permutations = data.draw(st.sampled_from([1, 5, 19, 0, -3, 2.5]))
    random_state = data.draw(st.sampled_from([None, 0, 123, INT64_MAX]))
    base = data.draw(BASES)

    def reference():
        v = Collect()
        xf, yf = v(check_samples, x, "x"), v(check_samples, y, "y")
        kk = v(check_k, k, n)
        if isinstance(n_permutations, float) or n_permutations < 1:
            v.bad("n_permutations")
        div = v(base_divisor, base)
        v.done()
        value, _ = ref_ksg(xf, yf, kk, 1)
        return Expected(value / div, scalar=True, **estimator_tolerance(x, y))

    def compare(result, expected, name):
        assert isinstance(result, tuple) and len(result) == 2, f"{name} must return (estimate, p_value)"
        estimate, p_value = result
        compare_result(estimate, expected, name)
        assert type(p_value) is float
        count = p_value * (1 + n_permutations) - 1
        assert 0 <= count <= n_permutations and abs(count - round(count)) < 1e-9, p_value

    check_call(fi.mutual_info_test, (x, y), dict(k=k, n_permutations=n_permutations, random_state=random_state,
                                                 base=base), reference, compare)


@FUZZ
@given(st.data())
def test_fuzz_infonce_bound(data):
    EXAMPLES["infonce_bound"] += 1
    N = data.draw(st.sampled_from([0, 1, 2, 5, 64]))
    shape = (N, N) if data.draw(st.integers(0, 7)) else data.draw(st.sampled_from([(N, N + 1), (N,), (2, N, N)]))
    scores = data.draw(real_arrays(shape, specials=("nan", "-inf"), scale=5.0))

    def reference():
        s = check_real(scores, "scores")
        if s.ndim != 2 or s.shape[0] != s.shape[1]:
            raise Bad("scores")
        if N == 0:
            raise Either("scores", shape=())
        logp = ref_log_softmax_rows(s.astype(np.float64))
        ce = -logp[np.arange(N), np.arange(N)]
        return Expected(float(math.log(N) - ce.mean()), scalar=True, **({} if s.dtype == np.float64 and
                                                                         result_dtype(s) == np.float64
                                                                         else dict(rtol=2e-4, atol=2e-4)))

    check_call(fi.infonce_bound, (scores,), {}, reference)


# =============================================================================
# Fused linear head family (the reference is the softmax reference on the composed logits)
# =============================================================================

LINEAR_WIDTHS = [0, 1, 3, 8, 21]
LINEAR_VOCABS = [1, 2, 5, 64, 130, 1100]  # 1100: more than one vocabulary block of the default blocking


def linear_compute_dtype(*arrays):
    """float64 when any operand is float64 or converts to it (ints, bools), else float32."""
    kinds = [np.asarray(numpy_of(a)).dtype for a in arrays if a is not None]
    return np.float64 if any(k == np.float64 or k.kind in "biu" for k in kinds) else np.float32


def compose_logits(hidden, head, bias, dtype):
    """hidden @ head.T + bias the obvious way, by NumPy in the compute dtype (the unfused composition)."""
    z = np.asarray(numpy_of(hidden)).astype(dtype) @ np.asarray(numpy_of(head)).astype(dtype).T
    if bias is not None:
        z = z + np.asarray(numpy_of(bias)).astype(np.float64).astype(dtype)
    return z


@st.composite
def linear_model(draw, names=("hidden", "head", "bias"), batch=None, n_vocab=None, mismatch=True):
    batch = batch if batch is not None else draw(st.sampled_from([(), (0,), (1,), (3,), (2, 3), (7,), (40,)]))
    d = draw(st.sampled_from(LINEAR_WIDTHS))
    V = n_vocab if n_vocab is not None else draw(st.sampled_from(LINEAR_VOCABS))
    hidden = draw(real_arrays(batch + (d,), scale=draw(st.sampled_from([0.5, 1.0, 3.0]))))
    kind = draw(st.integers(0, 14)) if mismatch else 99
    head_shape = {0: (V, d + 1), 1: (V,)}.get(kind, (V, d))
    head = draw(real_arrays(head_shape, scale=draw(st.sampled_from([0.3, 1.0]))))
    bias = None
    if draw(st.booleans()):
        bias = draw(real_arrays((V + 1,) if kind == 2 else (V,), scale=1.0))
    return {names[0]: hidden, names[1]: head, names[2]: bias, "batch": batch, "V": V}


def linear_shape_checks(v, c, names=("hidden", "head", "bias")):
    """Collect the shape errors of one model; returns True when the model is well formed."""
    hidden, head, bias = (np.asarray(numpy_of(c[n])) if c[n] is not None else None for n in names)
    for a, n in zip((hidden, head, bias), names):
        if a is not None:
            v(check_real, a, n)
    ok = True
    if head.ndim != 2:
        v.bad(names[1])
        ok = False
    elif hidden.shape[-1] != head.shape[1]:
        v.bad(names[0], names[1])
        ok = False
    if bias is not None and bias.shape != (c["V"],):
        v.bad(names[2], names[1])
        ok = False
    return ok


@st.composite
def linear_ce_inputs(draw, allow_weight=True, allow_smoothing=True):
    c = draw(linear_model())
    batch, V = c["batch"], c["V"]
    kind = draw(st.sampled_from(["index", "index", "index", "index", "wrong_shape", "float"]))
    if kind == "index":
        target = _targets(draw, batch, V, draw(st.sampled_from([np.int64, np.int32, np.uint8, np.int8])))
        target = with_layout(target, draw(st.sampled_from(["C", "negative", "strided", "readonly", "list"])))
    elif kind == "wrong_shape":
        target = np.zeros(tuple(batch) + (2,), dtype=np.int64)
    else:
        target = np.zeros(batch, dtype=np.float64)
    c.update(target=target, ignore_index=draw(st.sampled_from([None, None, -100, 0, 1, INT64_MIN])),
             label_smoothing=draw(st.sampled_from([0.0, 0.0, 0.1, 1.0, -0.1, np.nan])) if allow_smoothing else 0.0,
             temperature=draw(st.sampled_from([1.0, 1.0, 2.0, 0.5, 0.0, -1.0])),
             reduction=draw(st.sampled_from(["mean", "sum", "none", "none", "avg"])), weight=None)
    if allow_weight and draw(st.booleans()):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        c["weight"] = rng.random(draw(st.sampled_from([V, V, V + 1]))) * 2
    return c


def ref_linear_ce(c, with_grad=False):
    """(expected loss, expected grads or None, dtype, reduction) of the fused cross-entropy."""
    v = Collect()
    ok = linear_shape_checks(v, c)
    t_arr = np.asarray(numpy_of(c["target"]))
    if t_arr.dtype.kind == "f":
        v.bad("target")
    dtype = linear_compute_dtype(c["hidden"], c["head"])
    batch, V = c["batch"], c["V"]
    logits = compose_logits(c["hidden"], c["head"], c["bias"], dtype) if ok else np.zeros(batch + (V,), dtype)
    ce = dict(c, logits=logits, axis=-1)
    try:
        with np.errstate(all="ignore"):
            out, grad, dont_care, grad_dont_care, _, reduction = ref_cross_entropy(ce, with_grad=with_grad)
    except Bad as exc:
        v.names += exc.names
    v.done()
    if not with_grad:
        return out, None, dont_care, dtype, reduction
    hidden64 = np.asarray(numpy_of(c["hidden"])).astype(np.float64)
    hidden64 = hidden64.reshape(int(np.prod(hidden64.shape[:-1])), np.shape(numpy_of(c["head"]))[1])  # d may be 0
    head64 = np.asarray(numpy_of(c["head"])).astype(np.float64)
    g = grad.reshape(-1, V)
    care = ~grad_dont_care.reshape(-1, V).any(-1)
    kept = np.ones(g.shape[0], bool)
    if c["ignore_index"] is not None:
        kept = t_arr.astype(object).reshape(-1) != c["ignore_index"]
    with np.errstate(all="ignore"):
        g_hidden = np.where(kept[:, None], g @ head64, 0.0)  # ignored rows are never computed: exactly 0
        g_head = g[kept].T @ hidden64[kept]
        g_bias = g[kept].sum(0) if c["bias"] is not None else None
    rows_dc = ~care[:, None] & np.ones(g_hidden.shape, bool)
    head_dc = np.broadcast_to(not care[kept].all(), g_head.shape)
    grads = ((g_hidden.reshape(np.shape(c["hidden"])), rows_dc.reshape(np.shape(c["hidden"]))),
             (g_head, head_dc), (g_bias, None if g_bias is None else np.broadcast_to(head_dc.any(), g_bias.shape)))
    return out, grads, dont_care, dtype, reduction


def _linear_ce_kwargs(c):
    return dict(bias=c["bias"], reduction=c["reduction"], ignore_index=c["ignore_index"],
                label_smoothing=c["label_smoothing"], weight=c["weight"], temperature=c["temperature"])


@FUZZ
@given(linear_ce_inputs())
def test_fuzz_linear_cross_entropy(c):
    EXAMPLES["linear_cross_entropy"] += 1
    note({k: (v.shape, v.dtype) if isinstance(v, np.ndarray) else v for k, v in c.items()})

    def reference():
        out, _, dont_care, dtype, reduction = ref_linear_ce(c)
        if reduction == "none":
            return Expected(out, dtype=dtype, dont_care=dont_care)
        return Expected(float(out), dtype=dtype, scalar=True, dont_care=np.asarray(dont_care))

    check_call(fi.linear_cross_entropy, (c["hidden"], c["head"], c["target"]), _linear_ce_kwargs(c), reference)


@FUZZ
@given(linear_ce_inputs())
def test_fuzz_linear_cross_entropy_with_grad(c):
    EXAMPLES["linear_cross_entropy_with_grad"] += 1
    note({k: (v.shape, v.dtype) if isinstance(v, np.ndarray) else v for k, v in c.items()})
    holder = {}

    def reference():
        out, grads, dont_care, dtype, reduction = ref_linear_ce(c, with_grad=True)
        holder.update(grads=grads, dtype=dtype)
        if reduction == "none":
            return Expected(out, dtype=dtype, dont_care=dont_care)
        return Expected(float(out), dtype=dtype, scalar=True, dont_care=np.asarray(dont_care))

    def compare(result, expected, name):
        assert isinstance(result, tuple) and len(result) == 4, f"{name} must return 4 values"
        compare_result(result[0], expected, name)
        for got, (want, dont_care), arg in zip(result[1:], holder["grads"], ("hidden", "head", "bias")):
            if want is None:
                assert got is None, f"{name}: grad_{arg} must be None without bias"
                continue
            source = np.asarray(numpy_of(c[arg]))
            gdt = np.dtype(np.float64) if source.dtype == np.float64 or source.dtype.kind in "biu" else \
                np.dtype(np.float32)
            assert isinstance(got, np.ndarray) and got.shape == np.shape(c[arg]) and got.dtype == gdt, (
                f"{name}: grad_{arg} {getattr(got, 'shape', None)} {getattr(got, 'dtype', None)}")
            compare_result(got, Expected(want, dtype=gdt, dont_care=dont_care,
                                         rtol=None if holder["dtype"] == np.float64 else 1e-3,
                                         atol=None if holder["dtype"] == np.float64 else 1e-3),
                           f"{name} (grad_{arg})")

    check_call(fi.linear_cross_entropy_with_grad, (c["hidden"], c["head"], c["target"]), _linear_ce_kwargs(c),
               reference, compare)


@FUZZ
@given(linear_ce_inputs(allow_weight=False, allow_smoothing=False))
def test_fuzz_linear_perplexity(c):
    EXAMPLES["linear_perplexity"] += 1
    c = dict(c, reduction="mean")

    def reference():
        out, _, dont_care, dtype, _ = ref_linear_ce(c)
        return Expected(float(np.exp(out)), dtype=dtype, scalar=True, dont_care=np.asarray(dont_care))

    check_call(fi.linear_perplexity, (c["hidden"], c["head"], c["target"]),
               dict(bias=c["bias"], ignore_index=c["ignore_index"], temperature=c["temperature"]), reference)


@FUZZ
@given(st.data())
def test_fuzz_linear_softmax_entropy(data):
    EXAMPLES["linear_softmax_entropy"] += 1
    c = data.draw(linear_model())
    temperature, base = data.draw(TEMPERATURES), data.draw(BASES)

    def reference():
        v = Collect()
        ok = linear_shape_checks(v, c)
        v(check_temperature, temperature)
        div = v(base_divisor, base)
        if np.ndim(c["hidden"]) == 0:
            v.bad("hidden")
        v.done()
        dtype = linear_compute_dtype(c["hidden"], c["head"])
        assert ok
        logits = compose_logits(c["hidden"], c["head"], c["bias"], dtype).astype(np.float64)
        return Expected(ref_softmax_entropy_rows(logits / float(temperature)) / div, dtype=dtype)

    check_call(fi.linear_softmax_entropy, (c["hidden"], c["head"]),
               dict(bias=c["bias"], temperature=temperature, base=base), reference)


@FUZZ
@given(st.data())
def test_fuzz_linear_kl_divergence(data):
    EXAMPLES["linear_kl_divergence"] += 1
    p = data.draw(linear_model(("hidden_p", "head_p", "bias_p")))
    same = data.draw(st.integers(0, 7)) != 0
    q = data.draw(linear_model(("hidden_q", "head_q", "bias_q"), batch=p["batch"] if same else None,
                               n_vocab=p["V"] if same else None))
    temperature, base = data.draw(TEMPERATURES), data.draw(BASES)
    reduction = data.draw(st.sampled_from(["none", "none", "mean", "sum", "batchmean"]))
    args = (p["hidden_p"], p["head_p"], q["hidden_q"], q["head_q"])

    def reference():
        v = Collect()
        ok = linear_shape_checks(v, p, ("hidden_p", "head_p", "bias_p"))
        ok = linear_shape_checks(v, q, ("hidden_q", "head_q", "bias_q")) and ok
        if p["V"] != q["V"]:
            v.bad("head_p", "head_q")
        if p["batch"] != q["batch"]:
            v.bad("hidden_p", "hidden_q")
        v(check_temperature, temperature)
        div = v(base_divisor, base)
        if reduction not in ("none", "mean", "sum"):
            v.bad("reduction")
        v.done()
        dtype = linear_compute_dtype(*args)
        a = compose_logits(p["hidden_p"], p["head_p"], p["bias_p"], dtype).astype(np.float64) / float(temperature)
        b = compose_logits(q["hidden_q"], q["head_q"], q["bias_q"], dtype).astype(np.float64) / float(temperature)
        la, lb = ref_log_softmax_rows(a.copy()), ref_log_softmax_rows(b.copy())
        pa = np.exp(la)
        kl = np.where(pa > 0, pa * (la - lb), 0.0).sum(-1)
        kl = np.where(np.isnan(la).any(-1) | np.isnan(lb).any(-1), np.nan, kl) / div
        if reduction == "none":
            return Expected(kl, dtype=dtype)
        val = kl.sum() if reduction == "sum" else (kl.mean() if kl.size else np.nan)
        return Expected(float(val), dtype=dtype, scalar=True)

    check_call(fi.linear_kl_divergence, args, dict(bias_p=p["bias_p"], bias_q=q["bias_q"], temperature=temperature,
                                                  reduction=reduction, base=base), reference)


# =============================================================================
# Bad dtypes for every function: complex -> TypeError, non-numeric objects -> TypeError/ValueError
# =============================================================================


def _bad_calls(bad):
    good1 = np.ones((4, 3))
    lab = np.arange(8) % 2
    samp = np.arange(8.0)
    return [
        (fi.logsumexp, (bad,), {}, ("x",)),
        (fi.log_softmax, (bad,), {}, ("x",)),
        (fi.softmax, (bad,), {}, ("x",)),
        (fi.softmax_entropy, (bad,), {}, ("logits",)),
        (fi.softmax_cross_entropy, (bad, np.zeros(bad.shape[:-1], int)), {}, ("logits",)),
        (fi.softmax_cross_entropy_with_grad, (bad, np.zeros(bad.shape[:-1], int)), {}, ("logits",)),
        (fi.perplexity, (bad, np.zeros(bad.shape[:-1], int)), {}, ("logits",)),
        (fi.softmax_kl_divergence, (bad, good1), {}, ("logits_p",)),
        (fi.softmax_kl_divergence, (good1, bad), {}, ("logits_q",)),
        (fi.entropy, (bad,), {}, ("p",)),
        (fi.cross_entropy, (good1, bad), {}, ("q",)),
        (fi.kl_divergence, (bad, good1), {}, ("p",)),
        (fi.js_divergence, (good1, bad), {}, ("q",)),
        (fi.mutual_info_ksg, (bad.reshape(-1)[:8], samp), {}, ("x",)),
        (fi.mutual_info_ksg, (samp, bad.reshape(-1)[:8]), {}, ("y",)),
        (fi.conditional_mutual_info_ksg, (samp, samp + 1, bad.reshape(-1)[:8]), {}, ("z",)),
        (fi.entropy_knn, (bad.reshape(-1)[:8],), {}, ("x",)),
        (fi.mutual_info_mixed, (bad.reshape(-1)[:8], lab), {}, ("x",)),
        (fi.mutual_info_from_joint, (bad,), {}, ("pxy",)),
        (fi.mutual_info_matrix, (bad,), {}, ("X",)),
        (fi.mutual_info_features, (bad, np.arange(4.0)), {}, ("X",)),
        (fi.mutual_info_test, (bad.reshape(-1)[:8], samp), dict(n_permutations=3), ("x",)),
        (fi.infonce_bound, (bad[:3, :3],), {}, ("scores",)),
        (fi.linear_cross_entropy, (bad, np.ones((5, 3)), np.zeros(4, int)), {}, ("hidden",)),
        (fi.linear_cross_entropy_with_grad, (good1, bad, np.zeros(4, int)), {}, ("head",)),
        (fi.linear_perplexity, (bad, np.ones((5, 3)), np.zeros(4, int)), {}, ("hidden",)),
        (fi.linear_softmax_entropy, (good1, np.ones((5, 3))), dict(bias=bad[:, 0]), ("bias",)),
        (fi.linear_kl_divergence, (good1, np.ones((5, 3)), bad, np.ones((5, 3))), {}, ("hidden_q",)),
    ]


@pytest.mark.parametrize("kind", ["complex", "complex64", "object_complex", "object_str", "str", "datetime"])
def test_bad_dtypes_every_function(kind):
    base = np.arange(12.0).reshape(4, 3) + 1
    bad = {
        "complex": base + 1j,
        "complex64": (base + 1j).astype(np.complex64),
        "object_complex": (base + 1j).astype(object),
        "object_str": np.array([["a", "b", "c"]] * 4, dtype=object),
        "str": np.array([["a", "b", "c"]] * 4),
        "datetime": np.arange(12).astype("datetime64[D]").reshape(4, 3),
    }[kind]
    failures = []
    for fn, args, kwargs, names in _bad_calls(bad):
        CALLS[fn.__name__] += 1
        before = [_fingerprint(a) for a in args]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            if kind.startswith("complex") and not isinstance(exc, TypeError):
                failures.append(f"{fn.__name__}: complex input must raise TypeError, got {exc!r}")
            elif not any(n in str(exc) for n in names):
                failures.append(f"{fn.__name__}: message {str(exc)!r} does not name {names}")
        except Exception as exc:  # noqa: BLE001 - anything else is the bug we look for
            failures.append(f"{fn.__name__}: raised {type(exc).__name__}: {exc}")
        else:
            failures.append(f"{fn.__name__}: accepted {kind} input")
        assert before == [_fingerprint(a) for a in args], f"{fn.__name__} modified its input"
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("fn_name", ["logsumexp", "softmax", "log_softmax", "softmax_entropy", "entropy"])
def test_object_array_of_numbers_is_real_input(fn_name):
    """An object array of Python floats is array_like real input: same result as float64."""
    x = np.array([[0.5, 1.5, 2.0], [3.0, 0.0, 1.0]])  # non-negative: entropy takes probabilities
    fn = getattr(fi, fn_name)
    CALLS[fn_name] += 2
    want = fn(x)
    got = fn(x.astype(object))
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=1e-12)


# =============================================================================
# scikit-learn drop-in
# =============================================================================


@FUZZ
@given(st.data(), st.sampled_from(["mutual_info_regression", "mutual_info_classif"]))
def test_fuzz_sklearn_dropin(data, fn_name):
    sk_fs = pytest.importorskip("sklearn.feature_selection")
    import fastinfo.sklearn as fsk
    EXAMPLES["sklearn"] += 1
    n = data.draw(st.sampled_from([5, 12, 40]))
    m = data.draw(st.sampled_from([1, 3]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    X = rng.standard_normal((n, m)) * data.draw(st.sampled_from([1.0, 1e3]))
    discrete = data.draw(st.sampled_from(["auto", False, True, "mask"]))
    if discrete == "mask":
        discrete = rng.random(m) < 0.5
    if discrete is True:
        X = np.round(X)
    elif isinstance(discrete, np.ndarray):
        X[:, discrete] = np.round(X[:, discrete])
    ties = data.draw(st.booleans())   # integer-valued columns and targets: ties at eps_i everywhere
    if ties:
        X = np.round(X)
    if fn_name == "mutual_info_classif":
        y = rng.integers(0, 3, n)
    else:
        y = np.round(2 * rng.standard_normal(n)) if ties else rng.standard_normal(n)
        y = y.astype(data.draw(st.sampled_from([np.float64, np.float32])))
    X = with_layout(X, data.draw(st.sampled_from(["C", "F", "negative", "readonly"])))
    n_neighbors = data.draw(st.sampled_from([1, 3, 4, 0, -1]))
    random_state = data.draw(st.sampled_from([0, 7]))
    kwargs = dict(discrete_features=discrete, n_neighbors=n_neighbors, random_state=random_state)
    ours = getattr(fsk, fn_name)
    theirs = getattr(sk_fs, fn_name)

    def reference():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = theirs(np.array(X), np.array(y), **kwargs)
        except (ValueError, TypeError) as exc:
            raise Bad("n_neighbors", "discrete_features", "X", "y", str(exc)[:20]) from None
        # scikit-learn's own dtype (an all-clipped result is an integer array, as max(0, mi) makes it)
        return Expected(want, dtype=want.dtype, rtol=0, atol=1e-10)

    check_call(ours, (X, y), kwargs, reference)
    if n_neighbors >= 1:
        try:
            got = ours(np.array(X), np.array(y), **kwargs)
        except ValueError:
            return
        assert np.isfinite(got).all() and (got >= 0).all(), got


# =============================================================================
# KD-tree: the deepest trees (smallest leaves) and heavy duplication give the same estimates
# =============================================================================


@pytest.mark.parametrize("data_kind", ["duplicates", "continuous", "grid"])
def test_kdtree_smallest_leaves_same_estimates(data_kind):
    """Leaf size 2 makes the deepest tree (most DFS-stack use): results must equal leaf size 16
    exactly (the k-th distance and the counts do not depend on the tree's shape)."""
    import fastinfo._kernels as kernels

    if not hasattr(kernels, "_set_leaf_size"):
        pytest.skip("no _set_leaf_size hook in this build")
    rng = np.random.default_rng(11)
    n = 3000
    if data_kind == "duplicates":
        x = rng.integers(0, 3, (n, 2)).astype(float)
        y = rng.integers(0, 2, n).astype(float)
    elif data_kind == "grid":
        x = np.repeat(np.arange(n // 10, dtype=float), 10)[:, None]
        y = np.tile(np.arange(10.0), n // 10)
    else:
        x = rng.standard_normal((n, 2))
        y = x[:, 0] + rng.standard_normal(n)
    z = rng.standard_normal(n)
    labels = rng.integers(0, 4, n)

    def run():
        out = [fi.mutual_info_ksg(x, y, k=5), fi.mutual_info_ksg(x, y, k=1, algorithm=2),
               fi.conditional_mutual_info_ksg(x, y, z, k=4), fi.mutual_info_mixed(x, labels, k=3)]
        if data_kind == "continuous":
            out.append(fi.entropy_knn(x, k=2))
        return out

    CALLS["kdtree leaf sizes"] += 1
    default = run()
    try:
        kernels._set_leaf_size(2)
        deep = run()
    finally:
        kernels._set_leaf_size(16)
    assert default == deep, (default, deep)
    assert all(math.isfinite(v) for v in default)


@FUZZ
@given(st.data(), st.integers(2, 7), st.integers(1, 6), st.sampled_from(["continuous", "ties", "grid"]))
def test_fuzz_fixed_dimension_kdtree_paths(data, d, k, data_kind):
    """The fixed-dimension k-NN searches and counts (csrc/kdtree_lowd.h, 2..7 dimensions) give
    bitwise the generic tree code's estimates, on random sizes, ties and lattice data."""
    n = data.draw(st.integers(k + 2, 300), label="n")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    if data_kind == "continuous":
        j = rng.standard_normal((n, d + 1))
    elif data_kind == "ties":
        j = rng.integers(0, 4, (n, d + 1)).astype(float) + rng.integers(0, 2, (n, 1)) * 1e-9
    else:
        j = (np.arange(n * (d + 1)) % 7).reshape(n, d + 1) * 0.25
    j = j + np.arange(n)[:, None] * 1e-6  # no sample with k exact duplicates (entropy_knn's limit)
    x, y, z = j[:, :d - 1], j[:, d - 1:d], j[:, d:]

    def run():
        return [fi.mutual_info_ksg(x, y, k=k), fi.mutual_info_ksg(x, y, k=k, algorithm=2),
                fi.conditional_mutual_info_ksg(x, y, z, k=k, local=True), fi.entropy_knn(j[:, :d], k=k)]

    CALLS["fixed-dimension kdtree paths"] += 1
    generic_and_fixed(run)
    generic_and_fixed(run, switch=_kernels._set_kd_avx512)


@FUZZ
@given(st.data(), st.integers(1, 9), st.sampled_from(["continuous", "ties", "grid", "outliers"]),
       st.sampled_from([0.05, 0.5, 2.0, 40.0]), st.sampled_from([3, 4]))
def test_fuzz_grid_radii(data, k, data_kind, fill, d):
    """The 3-D and 4-D grids' k-NN radii (csrc/gridnd.h: conditional MI with 1-D x, y and a 1-D
    or 2-D z, TE with target history 1 or 2) give bitwise the KD-tree's estimates, local values
    and permutation nulls, for any cell size, with the AVX2 search (k <= 7) and the generic one
    (larger k, or AVX2 off)."""
    import fastinfo._kernels as kernels

    n = data.draw(st.integers(k + 1, 400), label="n")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    if data_kind == "continuous":
        j = rng.standard_normal((n, d)) @ np.triu(rng.uniform(0.2, 1.0, (d, d)))
    elif data_kind == "ties":
        j = rng.integers(0, 4, (n, d)).astype(float)
    elif data_kind == "grid":
        j = (np.arange(n * d) % 7).reshape(n, d) * 0.25
    else:
        j = rng.standard_cauchy((n, d)) * 10.0 ** rng.integers(-3, 4, (1, d))
    x, y, z = j[:, :1], j[:, 1:2], j[:, 2:]
    history = d - 2

    def run():
        return [fi.conditional_mutual_info_ksg(x, y, z, k=k, local=True),
                fi.transfer_entropy_test(j[:, 0], j[:, 1], k=min(k, n - 1 - history), n_permutations=2,
                                         random_state=seed, target_history=history)
                if n >= 3 + history else (0.0, 1.0)]

    CALLS["grid radii"] += 1
    old_fill = kernels._set_gridnd_fill(fill)
    try:
        grid = generic_and_fixed(run, switch=kernels._set_gridnd)
        old = kernels._set_kd_avx2(False)
        try:
            generic = run()
        finally:
            kernels._set_kd_avx2(old)
    finally:
        kernels._set_gridnd_fill(old_fill)
    for a, b in zip(grid, generic):
        np.testing.assert_array_equal(a, b)


# =============================================================================
# Races: per-row statuses written by OpenMP threads
# =============================================================================


@pytest.mark.parametrize("kind", ["entropy", "cross_entropy", "kl_divergence", "js_divergence"])
def test_negative_entry_always_detected_in_its_row(kind):
    """Many rows on all threads, one negative entry: every call must raise, naming that row.

    Found by the sanitizer run: the distribution kernels passed ``&st`` of a variable shared by the
    OpenMP threads (Cython makes a prange variable private only when it is assigned in the loop
    body), so a row's status could be overwritten by another thread's: the error named the wrong
    row, or no error was raised and the negative row silently gave NaN (~5% of calls, 2 threads)."""
    fn = getattr(fi, kind)
    rng = np.random.default_rng(3)
    failures = []
    for trial in range(60):
        p = np.ones((2000, 3))
        bad = int(rng.integers(2000))
        p[bad, 1] = -1.0
        args = (p,) if kind == "entropy" else (p, np.ones_like(p))
        if kind != "entropy" and trial % 2:
            args = args[::-1]  # the negative entry in q
        CALLS[kind] += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fn(*args)
        except ValueError as exc:
            if f"({bad},)" not in str(exc):
                failures.append(f"row {bad}: message names another row: {exc}")
        else:
            failures.append(f"row {bad}: no error raised")
    assert not failures, f"{len(failures)}/60 calls wrong:\n" + "\n".join(failures[:5])


# =============================================================================
# SciPy drop-in (fastinfo.scipy): SciPy itself is the reference
# =============================================================================


def _scipy_outcome(fn, args, kwargs):
    """SciPy's result, or Bad naming the start of SciPy's message (fastinfo.scipy raises the same)."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        raise Bad(str(exc)[:30]) from None


def _compare_like_scipy(result, expected, name):
    want = expected.value
    parts = list(zip(result, want)) if isinstance(want, tuple) else [(result, want)]
    assert not isinstance(want, tuple) or (isinstance(result, tuple) and len(result) == len(want)), name
    for got, ref in parts:
        assert type(got) is type(ref), f"{name}: type {type(got)}, SciPy's {type(ref)}"
        ref = np.asarray(ref)
        rtol = {np.float16: 1e-2, np.float32: 1e-5}.get(ref.dtype.type, 1e-11)
        compare_result(got, Expected(ref, dtype=ref.dtype, rtol=rtol, atol=rtol), name)


@FUZZ
@given(st.data(), st.sampled_from(["logsumexp", "softmax", "log_softmax", "entropy"]))
def test_fuzz_scipy_dropin(data, fn_name):
    import scipy.special
    import scipy.stats
    import fastinfo.scipy as fsp

    EXAMPLES["scipy drop-in"] += 1
    shape = data.draw(shapes(min_dims=0))
    # (real_arrays' nonnegative option needs at least one dimension)
    x = data.draw(real_arrays(shape, nonnegative=fn_name == "entropy" and shape != () and data.draw(st.booleans())))
    ndim = np.ndim(x)
    axis = data.draw(st.one_of(st.none(), st.integers(-ndim - 1, ndim),
                               st.lists(st.integers(-max(ndim, 1), max(ndim, 1) - 1), max_size=3).map(tuple)))
    kwargs = {"axis": axis}
    args = (x,)
    if fn_name == "logsumexp":
        kwargs.update(keepdims=data.draw(st.booleans()), return_sign=data.draw(st.booleans()))
        if data.draw(st.booleans()):
            kwargs["b"] = data.draw(real_arrays(np.shape(x)[data.draw(st.integers(0, max(ndim, 0))):]))
    elif fn_name == "entropy":
        kwargs.update(base=data.draw(st.sampled_from([None, 2, 0.5, 10.0])),
                      nan_policy=data.draw(st.sampled_from(["propagate", "omit", "raise"])),
                      keepdims=data.draw(st.booleans()))
        if data.draw(st.booleans()):
            args = (x, data.draw(real_arrays(np.shape(x), nonnegative=np.ndim(x) > 0)))
    theirs = getattr(scipy.stats if fn_name == "entropy" else scipy.special, fn_name)
    try:   # inputs SciPy fails on with other exceptions (e.g. IndexError) are not SciPy semantics
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            theirs(*args, **kwargs)
    except (ValueError, TypeError):
        pass
    except Exception:  # noqa: BLE001
        return
    note(f"{fn_name} shape={shape} dtype={np.asarray(x).dtype} kwargs={kwargs}")
    check_call(getattr(fsp, fn_name), args, kwargs, lambda: Expected(_scipy_outcome(theirs, args, kwargs)),
               compare=_compare_like_scipy)


# =============================================================================
# Local values and information dynamics (release 0.2)
# =============================================================================


def ref_ksg1_terms(x, y, k):
    x2, y2 = as_2d(x), as_2d(y)
    n = len(x2)
    dx, dy = cheb(x2), cheb(y2)
    eps, _, _ = kth_distance(np.maximum(dx, dy), k)
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(dy, np.inf)
    return digamma(k) + digamma(n) - digamma((dx < eps[:, None]).sum(1) + 1) - digamma((dy < eps[:, None]).sum(1) + 1)


def ref_positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)) or value < 1:
        raise Bad(name)
    return int(value)


def ref_lag_rows(series, t0, n, last_lag, history, tau):
    s = as_2d(series)
    return np.array([np.concatenate([s[t - last_lag - j * tau] for j in range(history - 1, -1, -1)])
                     for t in range(t0, n)])


LAGS = st.sampled_from([1, 1, 1, 2, 3, 0, -1, 1.0, True, "2"])
LOCALS = st.sampled_from([False, False, True, True, 1, "yes", None])


def ref_local(local):
    if not isinstance(local, (bool, np.bool_)):
        raise Bad("local")
    return bool(local)


def _draw_te(data, with_local):
    n = data.draw(st.sampled_from([0, 2, 4, 8, 20, 35]))
    source = data.draw(samples(n))
    target = data.draw(samples(n if data.draw(st.integers(0, 9)) else n + 1))
    condition = data.draw(st.sampled_from([None, None, "same", "other"]))
    if condition is not None:
        condition = data.draw(samples(n if condition == "same" else max(n - 1, 0)))
    options = {name: data.draw(LAGS) for name in
               ("target_history", "source_history", "delay", "target_tau", "source_tau")}
    options["k"] = data.draw(st.sampled_from([1, 2, 4, 4, 0, 1.5, "n"]))
    options["condition"] = condition
    options["base"] = data.draw(BASES)
    if with_local:
        options["local"] = data.draw(LOCALS)
    return source, target, options


def _ref_te(source, target, options, v):
    """Validated, embedded (source past, target now, conditioning) and k, base divisor."""
    lags = {name: v(ref_positive_int, options[name], name) for name in
            ("target_history", "source_history", "delay", "target_tau", "source_tau")}
    sf, tf = v(check_samples, source, "source"), v(check_samples, target, "target")
    cond = options["condition"]
    cf = None if cond is None else v(check_samples, cond, "condition")
    lengths = {len(source), len(target)} | ({len(cond)} if cond is not None else set())
    if len(lengths) > 1:
        v.bad("length")
    div = v(base_divisor, options["base"])
    if "local" in options:
        v(ref_local, options["local"])
    v.done()
    n = len(source)
    t0 = max((lags["target_history"] - 1) * lags["target_tau"] + 1,
             (lags["source_history"] - 1) * lags["source_tau"] + lags["delay"])
    if n - t0 < 1:
        raise Bad("too short")
    k = options["k"]
    k = n - t0 if k == "n" else k
    check_k(k, n - t0)
    x = ref_lag_rows(sf, t0, n, lags["delay"], lags["source_history"], lags["source_tau"])
    y = ref_lag_rows(tf, t0, n, 0, 1, 1)
    z = ref_lag_rows(tf, t0, n, 1, lags["target_history"], lags["target_tau"])
    if cf is not None:
        z = np.concatenate([z, ref_lag_rows(cf, t0, n, 1, 1, 1)], axis=1)
    return x, y, z, int(k), div


@FUZZ
@given(st.data())
def test_fuzz_transfer_entropy_ksg(data):
    EXAMPLES["transfer_entropy_ksg"] += 1
    source, target, options = _draw_te(data, with_local=True)
    call = dict(options)
    if call["k"] == "n":
        call["k"] = len(source)       # always >= the number of samples: rejected

    def reference():
        x, y, z, k, div = _ref_te(source, target, call, Collect())
        terms = ref_cmi_terms(x, y, z, k) / div
        if call["local"]:
            return Expected(terms, dtype=np.float64, **estimator_tolerance(source, target))
        return Expected(float(np.mean(terms)), scalar=True, **estimator_tolerance(source, target))

    result = check_call(fi.transfer_entropy_ksg, (source, target), call, reference)
    if result is not None and call["local"]:
        assert abs(np.mean(result) - fi.transfer_entropy_ksg(source, target, **{**call, "local": False})) <= 1e-12


@FUZZ
@given(st.data())
def test_fuzz_active_information_storage_ksg(data):
    EXAMPLES["active_information_storage_ksg"] += 1
    n = data.draw(st.sampled_from([0, 2, 5, 12, 30]))
    x = data.draw(samples(n))
    history, tau = data.draw(LAGS), data.draw(LAGS)
    k = data.draw(st.sampled_from([1, 3, 4, 0, "n"]))
    k = n if k == "n" else k
    local = data.draw(LOCALS)
    base = data.draw(BASES)

    def reference():
        v = Collect()
        h, t = v(ref_positive_int, history, "history"), v(ref_positive_int, tau, "tau")
        xf = v(check_samples, x, "x")
        div = v(base_divisor, base)
        v(ref_local, local)
        v.done()
        t0 = (h - 1) * t + 1
        if n - t0 < 1:
            raise Bad("too short")
        kk = check_k(k, n - t0)
        terms = ref_ksg1_terms(ref_lag_rows(xf, t0, n, 1, h, t), ref_lag_rows(xf, t0, n, 0, 1, 1), kk) / div
        if local:
            return Expected(terms, dtype=np.float64, **estimator_tolerance(x))
        return Expected(float(np.mean(terms)), scalar=True, **estimator_tolerance(x))

    check_call(fi.active_information_storage_ksg, (x,), dict(k=k, history=history, tau=tau, local=local, base=base),
               reference)


@FUZZ
@given(st.data())
def test_fuzz_transfer_entropy_test(data):
    EXAMPLES["transfer_entropy_test"] += 1
    source, target, options = _draw_te(data, with_local=False)
    if options["k"] == "n":
        options["k"] = len(source)
    n_permutations = data.draw(st.sampled_from([1, 4, 13, 0, -3, 2.5]))
    random_state = data.draw(st.sampled_from([None, 0, 123, INT64_MAX]))

    def reference():
        v = Collect()
        if isinstance(n_permutations, float) or n_permutations < 1:
            v.bad("n_permutations")
        x, y, z, k, div = _ref_te(source, target, options, v)
        return Expected(float(np.mean(ref_cmi_terms(x, y, z, k))) / div, scalar=True,
                        **estimator_tolerance(source, target))

    def compare(result, expected, name):
        estimate, p_value = result
        compare_result(estimate, expected, name)
        assert type(p_value) is float
        count = p_value * (1 + n_permutations) - 1
        assert 0 <= count <= n_permutations and abs(count - round(count)) < 1e-9, p_value

    check_call(fi.transfer_entropy_test, (source, target),
               dict(options, n_permutations=n_permutations, random_state=random_state), reference, compare)


@FUZZ
@given(st.data())
def test_fuzz_local_values(data):
    EXAMPLES["local values"] += 1
    n = data.draw(st.sampled_from([0, 1, 3, 8, 25]))
    x, y, z = data.draw(samples(n)), data.draw(samples(n)), data.draw(samples(n))
    k = data.draw(st.sampled_from([1, 2, 3, 0, "n"]))
    k = n if k == "n" else k
    local = data.draw(LOCALS)
    which = data.draw(st.sampled_from(["mi", "cmi", "entropy"]))

    def reference():
        v = Collect()
        xf = v(check_samples, x, "x")
        yf = v(check_samples, y, "y") if which != "entropy" else None
        zf = v(check_samples, z, "z") if which == "cmi" else None
        v(ref_local, local)
        kk = v(check_k, k, n)
        v.done()
        if which == "mi":
            terms = ref_ksg1_terms(xf, yf, kk)
        elif which == "cmi":
            terms = ref_cmi_terms(xf, yf, zf, kk)
        else:
            value = ref_entropy_knn(xf, kk)     # raises for duplicates, as fastinfo does
            x2 = as_2d(xf)
            eps, _, _ = kth_distance(cheb(x2), kk)
            terms = digamma(n) - digamma(kk) + x2.shape[1] * np.log(2 * eps)
            assert abs(np.mean(terms) - value) < 1e-9
        if local:
            return Expected(terms, dtype=np.float64, **estimator_tolerance(x, y, z))
        return Expected(float(np.mean(terms)), scalar=True, **estimator_tolerance(x, y, z))

    fn, args = {"mi": (fi.mutual_info_ksg, (x, y)), "cmi": (fi.conditional_mutual_info_ksg, (x, y, z)),
                "entropy": (fi.entropy_knn, (x,))}[which]
    check_call(fn, args, dict(k=k, local=local), reference)


def _bits(a):
    """An array's (or a scalar's) bytes, so that NaN == NaN and -0.0 != 0.0."""
    a = np.ascontiguousarray(np.asarray(a))
    return a.dtype.str, a.shape, a.tobytes()


@FUZZ
@given(st.data())
def test_fuzz_prefetch_distance_changes_no_bits(data):
    """The software prefetch of the dense loops (``dense_set_prefetch``) only asks for lines early:
    every dense function gives the same bits at any distance, with rows that end inside the
    prefetched range and arrays whose last prefetches point past their end."""
    EXAMPLES["prefetch distance"] += 1
    shape = data.draw(shapes(min_dims=1, max_dims=2, min_side=1))
    dt = np.dtype(data.draw(st.sampled_from([np.float32, np.float64, *HALF_DTYPES])))
    x = data.draw(real_arrays(shape, dtypes=[dt], scale=3.0))
    y = data.draw(real_arrays(shape, dtypes=[dt], scale=3.0))
    p = data.draw(real_arrays(shape, dtypes=[dt], nonnegative=True, specials=()))
    q = data.draw(real_arrays(shape, dtypes=[dt], nonnegative=True, specials=()))
    n_cls = shape[-1]
    target = np.random.default_rng(n_cls).integers(0, n_cls, shape[:-1])
    distance = data.draw(st.sampled_from([0, 64, 192, 4096, 1 << 20]))
    light = data.draw(st.sampled_from([None, 0, 2048]))
    out_dtype = dt if dt in HALF_DTYPES else None

    def run():
        res = [fi.log_softmax(x), fi.softmax(x), fi.softmax_entropy(x),
               fi.softmax_kl_divergence(x, y), fi.entropy(p), fi.cross_entropy(p, q),
               fi.kl_divergence(p, q)]
        if out_dtype is not None:
            res.append(fi.log_softmax(x, out=np.empty(shape, dtype=out_dtype)))
        if len(shape) == 2:
            res += [fi.softmax_cross_entropy(x, target, reduction="none"),
                    *fi.softmax_cross_entropy_with_grad(x, target)]
        return [_bits(r) for r in res]

    expected = run()
    old = _kernels.dense_set_prefetch(distance, light)
    try:
        got = run()
    finally:
        _kernels.dense_set_prefetch(*old)
    assert got == expected, f"distance {distance}, light loops {light}, shape {shape}, dtype {dt}"


def test_prefetch_distance_is_checked():
    old = _kernels.dense_set_prefetch(1024)
    try:
        assert _kernels.dense_set_prefetch(512, 0) == (1024, 1024)
        assert _kernels.dense_set_prefetch(*old) == (512, 0)
        for bad in (-1, (1 << 20) + 1):
            with pytest.raises(ValueError, match="n_bytes"):
                _kernels.dense_set_prefetch(bad)
            with pytest.raises(ValueError, match="light_bytes"):
                _kernels.dense_set_prefetch(1024, bad)
    finally:
        _kernels.dense_set_prefetch(*old)


def test_prefetch_light_default_follows_the_cpu_vendor():
    """The light loops prefetch nothing ahead on AMD CPUs (their hardware prefetch keeps up, see
    csrc/vec.h), 2 KiB elsewhere; the other loops 2 KiB everywhere."""
    vendor = ""
    try:
        with open("/proc/cpuinfo") as f:
            vendor = next((line.split(":")[1].strip() for line in f if line.startswith("vendor_id")), "")
    except OSError:
        pytest.skip("no /proc/cpuinfo to read the vendor from")
    old = _kernels.dense_set_prefetch(0)
    _kernels.dense_set_prefetch(*old)
    assert old == (2048, 0 if vendor == "AuthenticAMD" else 2048)

"""Half-precision input (float16, bfloat16) and torch tensors, for the softmax and distribution families.

The contract (API.md, "Half-precision input"): float16 and ``ml_dtypes.bfloat16`` arrays are read
by the kernels as they are (no converted copy; extra memory below 1 MiB plus the outputs), sums in
float64; results are float32; ``out=`` may be float32 or the input's own half dtype, each element
rounded once to nearest even; results equal the float64 computation on the same half-precision
values within 1e-6 relative (per-row and scalar results) and 1 float32 ulp plus the output
dtype's rounding (elementwise outputs). CPU torch tensors (float32/64/16, bfloat16) are accepted
wherever an array is, read without a copy when contiguous; fastinfo never imports torch itself.

Every function is compared with the float64 twins of ``reference.py`` evaluated on the very same
values (``x.astype(np.float64)``, exact for both half types), over the layouts, ranks and axes of
the float32 tests. bfloat16 NumPy arrays need ml_dtypes; torch tests are skipped without torch.
"""
import itertools
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastinfo as fi
from fastinfo import _kernels

import reference as ref

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - the test extra installs it
    ml_dtypes = None

HALF = [pytest.param(np.float16, id="float16"),
        pytest.param(getattr(ml_dtypes, "bfloat16", None), id="bfloat16",
                     marks=pytest.mark.skipif(ml_dtypes is None, reason="bfloat16 arrays need ml_dtypes"))]
RTOL = 1e-6          # per-row and scalar results (the contract)
LAYOUTS = ("C", "F", "strided", "transposed")
SHAPES = ((7,), (5, 13), (3, 4, 9))


# ----------------------------------------------------------------------------- helpers


def half_values(rng, shape, dtype, scale=3.0):
    """Normal logits rounded to ``dtype`` (the values every function is then checked on)."""
    return (rng.standard_normal(shape) * scale).astype(dtype)


def in_layout(base, layout):
    """The same values in another memory layout (as the float32 tests use)."""
    if layout == "C":
        return np.ascontiguousarray(base)
    if layout == "F":
        return np.asfortranarray(base)
    if layout == "strided":
        big = np.zeros(tuple(2 * s for s in base.shape), dtype=base.dtype)
        view = big[tuple(slice(None, None, 2) for _ in base.shape)]
        view[...] = base
        return view
    return np.ascontiguousarray(base.T).T


def cases(seed, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    for shape, layout in itertools.product(shapes, LAYOUTS):
        for axis in range(-1, len(shape)):
            yield rng, shape, layout, axis


def check_rows(got, want, scale=1.0, rtol=RTOL):
    """Per-row / scalar result: float32 (or a Python float), within rtol of the float64 value."""
    if not isinstance(got, float):
        assert np.asarray(got).dtype == np.float32
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=rtol, atol=rtol * 1e-1 * scale,
                               equal_nan=True)


def spacing32(value):
    """One float32 ulp in the measure of the float32 tests: the spacing at max(|value|, 1)."""
    return np.spacing(np.maximum(np.abs(value), 1.0).astype(np.float32)).astype(np.float64)


def half_spacing(value, dtype):
    """The spacing of ``dtype`` at ``value`` (its rounding is at most half of it)."""
    v = np.abs(np.asarray(value, dtype=np.float64)).astype(dtype)
    following = (v.view(np.uint16) + np.uint16(1)).view(dtype)
    return following.astype(np.float64) - v.astype(np.float64)


def check_elementwise(got, want, out_dtype=np.float32, ulps=1.0):
    """Elementwise output: ``ulps`` float32 ulps plus the output dtype's rounding (half its spacing)."""
    got = np.asarray(got)
    assert got.dtype == out_dtype, got.dtype
    g = got.astype(np.float64)
    assert np.array_equal(np.isnan(g), np.isnan(want))
    finite = np.isfinite(want)
    assert np.array_equal(g[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    tol = ulps * spacing32(want[finite])
    if out_dtype != np.float32:
        tol = tol + 0.5 * half_spacing(want[finite], out_dtype)
    err = np.abs(g[finite] - want[finite])
    assert (err <= tol).all(), f"max error {err.max():.3g}, {np.max(err / tol):.3g} x the tolerance"


def targets_for(rng, x, axis):
    batch = tuple(s for i, s in enumerate(x.shape) if i != axis % x.ndim)
    return rng.integers(0, x.shape[axis], size=batch)


# ----------------------------------------------------------------------------- softmax family


@pytest.mark.parametrize("dtype", HALF)
def test_softmax_family_matches_float64_on_the_same_values(dtype):
    for rng, shape, layout, axis in cases(1):
        x = in_layout(half_values(rng, shape, dtype), layout)
        x64 = x.astype(np.float64)
        lse = ref.ref_logsumexp(x64, axis)
        check_rows(fi.logsumexp(x, axis), lse, np.abs(lse).max())
        assert fi.logsumexp(x, axis, keepdims=True).shape == np.expand_dims(lse, axis).shape
        check_elementwise(fi.log_softmax(x, axis), ref.ref_log_softmax(x64, axis))
        check_elementwise(fi.log_softmax(x, axis, temperature=0.7), ref.ref_log_softmax(x64, axis, 0.7))
        check_elementwise(fi.softmax(x, axis), ref.ref_softmax(x64, axis), ulps=2)
        check_elementwise(fi.softmax(x, axis, temperature=1.6), ref.ref_softmax(x64, axis, 1.6), ulps=2)
        check_rows(fi.softmax_entropy(x, axis), ref.ref_softmax_entropy(x64, axis), 1.0)
        check_rows(fi.softmax_entropy(x, axis, base=2, temperature=0.5),
                   ref.ref_softmax_entropy(x64, axis, 0.5, base=2), 1.0)
        q = in_layout(half_values(rng, shape, dtype), layout)
        q64 = q.astype(np.float64)
        kl = ref.ref_softmax_kl_divergence(x64, q64, axis)
        check_rows(fi.softmax_kl_divergence(x, q, axis), kl, np.abs(kl).max())
        for reduction in ("mean", "sum"):
            got = fi.softmax_kl_divergence(x, q, axis, reduction=reduction, temperature=1.5, base=2)
            assert type(got) is float
            want = ref.ref_softmax_kl_divergence(x64, q64, axis, 1.5, reduction, 2)
            check_rows(got, want, abs(want) + 1)


def ce_options():
    for reduction, ignore_index, label_smoothing, weighted, temperature in itertools.product(
            ["mean", "none"], [None, 2], [0.0, 0.25], [False, True], [1.0, 0.6]):
        yield dict(reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
                   weighted=weighted, temperature=temperature)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("shape,axis", [((5,), 0), ((6, 7), -1), ((3, 5, 4), 1), ((4, 3, 5), 0)])
def test_cross_entropy_and_gradient_match_float64(dtype, shape, axis):
    rng = np.random.default_rng(2)
    x = half_values(rng, shape, dtype, 2.0)
    x64 = x.astype(np.float64)
    target = targets_for(rng, x, axis)
    probs = rng.random(shape)
    probs = (probs / probs.sum(axis=axis, keepdims=True)).astype(dtype)   # half-precision probabilities
    weight = rng.random(shape[axis]) + 0.2
    for opts in ce_options():
        kw = dict(opts)
        w = weight if kw.pop("weighted") else None
        want = ref.ref_softmax_cross_entropy(x64, target, axis, weight=w, **kw)
        got = fi.softmax_cross_entropy(x, target, axis, weight=w, **kw)
        check_rows(got, want, 10)
        loss, grad = fi.softmax_cross_entropy_with_grad(x, target, axis, weight=w, **kw)
        check_rows(loss, want, 10)
        check_elementwise(grad, ref.ref_softmax_cross_entropy_grad(x64, target, axis, weight=w, **kw))
        kw.pop("ignore_index")
        p64 = probs.astype(np.float64)
        want = ref.ref_softmax_cross_entropy(x64, p64, axis, weight=w, **kw)
        check_rows(fi.softmax_cross_entropy(x, probs, axis, weight=w, **kw), want, 10)
        loss, grad = fi.softmax_cross_entropy_with_grad(x, probs, axis, weight=w, **kw)
        check_rows(loss, want, 10)
        check_elementwise(grad, ref.ref_softmax_cross_entropy_grad(x64, p64, axis, weight=w, **kw))
    check_rows(fi.perplexity(x, target, axis), ref.ref_perplexity(x64, target, axis),
               ref.ref_perplexity(x64, target, axis))


@pytest.mark.parametrize("dtype", HALF)
def test_cross_entropy_layouts(dtype):
    for rng, shape, layout, axis in cases(3, shapes=((4, 6), (3, 2, 5))):
        x = in_layout(half_values(rng, shape, dtype), layout)
        x64 = x.astype(np.float64)
        target = targets_for(rng, x, axis)
        check_rows(fi.softmax_cross_entropy(x, target, axis, reduction="none"),
                   ref.ref_softmax_cross_entropy(x64, target, axis, "none"), 10)
        loss, grad = fi.softmax_cross_entropy_with_grad(x, target, axis)
        check_rows(loss, ref.ref_softmax_cross_entropy(x64, target, axis), 10)
        check_elementwise(grad, ref.ref_softmax_cross_entropy_grad(x64, target, axis))


@pytest.mark.parametrize("dtype", HALF)
def test_special_values(dtype):
    rng = np.random.default_rng(4)
    x = half_values(rng, (6, 5), dtype, 2.0)
    x[0, 1] = np.nan
    x[1, 2] = np.inf
    x[2, :] = -np.inf
    x[3, 0] = -np.inf
    x64 = x.astype(np.float64)
    lse = np.asarray(fi.logsumexp(x))
    assert np.isnan(lse[0]) and lse[1] == np.inf and lse[2] == -np.inf and np.isfinite(lse[3:]).all()
    check_rows(lse[3:], ref.ref_logsumexp(x64)[3:], 10)
    for fn in (fi.log_softmax, fi.softmax):
        for out_dtype in (np.float32, dtype):
            out = fn(x, out=np.empty(x.shape, dtype=out_dtype))
            assert np.isnan(out[:3].astype(np.float32)).all()
            assert np.isfinite(out[4:].astype(np.float32)).all()
    assert fi.log_softmax(x)[3, 0] == -np.inf and fi.softmax(x)[3, 0] == 0.0
    assert np.isnan(fi.softmax_entropy(x)[:3]).all()
    check_rows(fi.softmax_entropy(x)[3:], ref.ref_softmax_entropy(x64)[3:])
    q = half_values(rng, (6, 5), dtype, 2.0)
    kl = fi.softmax_kl_divergence(x, q)
    assert np.isnan(kl[:3]).all() and np.isfinite(kl[3:]).all()
    check_rows(kl, ref.ref_softmax_kl_divergence(x64, q.astype(np.float64)), 10)
    loss, grad = fi.softmax_cross_entropy_with_grad(x, np.array([0, 1, 2, 1, 2, 3]), reduction="none")
    assert np.isnan(loss[:3]).all() and np.isnan(grad[:3]).all() and np.isfinite(grad[3:]).all()


@pytest.mark.parametrize("dtype", HALF)
def test_long_rows_blocks_and_chunks(dtype):
    """Rows longer than the softmax blocks (2048) with a late maximum, longer than the softmax
    scratch limit (131072) and than the distribution chunks (65536)."""
    rng = np.random.default_rng(5)
    x = half_values(rng, (2, 140_000), dtype, 4.0)
    x[1, 100_001] = 30.0
    x64 = x.astype(np.float64)
    check_rows(fi.logsumexp(x), ref.ref_logsumexp(x64), 100)
    check_elementwise(fi.log_softmax(x), ref.ref_log_softmax(x64))
    check_elementwise(fi.softmax(x[:, :131_000]), ref.ref_softmax(x64[:, :131_000]), ulps=2)
    check_elementwise(fi.softmax(x), ref.ref_softmax(x64), ulps=2)
    check_rows(fi.softmax_entropy(x), ref.ref_softmax_entropy(x64), 10)
    p = np.abs(x)
    q = np.abs(x[::-1])
    check_rows(fi.entropy(p), ref.entropy(p.astype(np.float64)), 10)
    check_rows(fi.kl_divergence(p, q), ref.kl_divergence(p.astype(np.float64), q.astype(np.float64)), 10)


# ----------------------------------------------------------------------------- out= in half precision


@pytest.mark.parametrize("dtype", HALF)
def test_out_in_the_input_half_dtype_rounded_once(dtype):
    rng = np.random.default_rng(6)
    for axis, layout in itertools.product((0, 1, -1), ("C", "F", "strided")):
        x = in_layout(half_values(rng, (5, 7, 301), dtype), layout)
        x64 = x.astype(np.float64)
        for fn, reference, ulps in ((fi.log_softmax, ref.ref_log_softmax, 1), (fi.softmax, ref.ref_softmax, 2)):
            out = in_layout(np.zeros(x.shape, dtype=dtype), layout)
            assert fn(x, axis, out=out, temperature=0.8) is out
            check_elementwise(out, reference(x64, axis, 0.8), dtype, ulps)
            out32 = np.zeros(x.shape, dtype=np.float32)
            assert fn(x, axis, out=out32) is out32
            check_elementwise(out32, reference(x64, axis), np.float32, ulps)
            y = x.copy()
            assert fn(y, axis, out=y) is y                       # in place, half in and out
            check_elementwise(y, reference(x64, axis), dtype, ulps)
        target = targets_for(rng, x, axis)
        out = np.zeros(x.shape, dtype=dtype)
        loss, grad = fi.softmax_cross_entropy_with_grad(x, target, axis, label_smoothing=0.1, out=out)
        assert grad is out
        check_elementwise(out, ref.ref_softmax_cross_entropy_grad(x64, target, axis, label_smoothing=0.1), dtype)
        check_rows(loss, ref.ref_softmax_cross_entropy(x64, target, axis, label_smoothing=0.1), 10)
        y = x.copy()
        assert fi.softmax_cross_entropy_with_grad(y, target, axis, out=y)[1] is y   # the gradient replaces y
        check_elementwise(y, ref.ref_softmax_cross_entropy_grad(x64, target, axis), dtype)


def test_rounding_to_half_is_correct_to_nearest_even():
    """The kernels' double -> half rounding (round to odd in float32, then to nearest even) equals
    one correct rounding, at midpoints and next to them, subnormals, overflow, NaN, inf, -0."""
    rng = np.random.default_rng(7)
    f16 = rng.integers(0, 0x7c00, 20000).astype(np.uint16).view(np.float16).astype(np.float64)
    up = np.nextafter(f16.astype(np.float16), np.float16(np.inf)).astype(np.float64)
    mid = (f16 + up) / 2
    values = np.concatenate([mid, np.nextafter(mid, np.inf), np.nextafter(mid, -np.inf),
                             mid + (up - f16) * 2.0 ** -30, mid - (up - f16) * 2.0 ** -30, -mid,
                             rng.standard_normal(5000) * 10.0 ** rng.integers(-9, 6, 5000),
                             [0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65519.99, 65520.0, 1e300, 6e-8, 2.9e-8,
                              3e-8, 5.96e-8 / 2]])
    values = np.concatenate([values, -values])
    bits = np.empty(values.size, dtype=np.uint16)
    _kernels.round_to_half(values, bits, 1)
    with np.errstate(over="ignore"):
        want = values.astype(np.float16)                   # NumPy rounds float64 -> float16 once
    assert np.array_equal(bits.view(np.float16), want, equal_nan=True)
    # bfloat16: the exact rounding of each double to 8 significant bits (and bfloat16's range)
    b16 = rng.integers(0, 0x7f80, 20000).astype(np.uint32) << 16
    lo = b16.view(np.float32).astype(np.float64)
    hi = (b16 + (1 << 16)).view(np.float32).astype(np.float64)
    mid = (lo + hi) / 2
    values = np.concatenate([mid, np.nextafter(mid, np.inf), np.nextafter(mid, -np.inf), lo, -mid,
                             rng.standard_normal(5000) * 10.0 ** rng.integers(-38, 38, 5000),
                             [0.0, -0.0, np.inf, -np.inf, 1e300, 3.4e38, 3.3961e38, 1e-39, 1e-45]])
    bits = np.empty(values.size, dtype=np.uint16)
    _kernels.round_to_half(values, bits, 2)
    got = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    mant, exp = np.frexp(values)
    exp = np.maximum(exp, -125)                            # bfloat16 subnormals: float32's
    want = np.ldexp(np.rint(np.ldexp(values, 8 - exp)), exp - 8)
    want[np.abs(want) > np.float64(np.finfo(np.float32).max)] = np.inf
    want = np.copysign(np.where(np.isinf(values), np.inf, want), values)
    assert np.array_equal(got, want)
    nan = np.empty(1, dtype=np.uint16)
    _kernels.round_to_half(np.array([np.nan]), nan, 2)
    assert np.isnan((nan.astype(np.uint32) << 16).view(np.float32)[0])


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_vector_rounding_to_half_rounded_once(half):
    """The half writers' vector narrowing (plain float rounding, round-to-odd where a lane lands on
    a half midpoint or, for float16, in the subnormal range) in the clone in use equals the scalar
    rounding once, which test_rounding_to_half_is_correct_to_nearest_even proves correct: at
    midpoints and next to them, mixed in vectors with ordinary values, subnormals, inf, NaN."""
    rng = np.random.default_rng(8)
    if half == "float16":
        h = rng.integers(0, 0x7c00, 6000).astype(np.uint16).view(np.float16).astype(np.float64)
        up = np.nextafter(h.astype(np.float16), np.float16(np.inf)).astype(np.float64)
        code = 1
    else:
        b = rng.integers(0, 0x7f80, 6000).astype(np.uint32) << 16
        h = b.view(np.float32).astype(np.float64)
        up = (b + (1 << 16)).view(np.float32).astype(np.float64)
        code = 2
    mid = (h + up) / 2
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65519.99, 65520.0, 6e-8, 3e-8, 1e-39])
    values = np.concatenate([mid, np.nextafter(mid, np.inf), np.nextafter(mid, -np.inf), h,
                             mid + (up - h) * 2.0 ** -30, rng.standard_normal(6000) * 8.0, special])
    values = np.concatenate([values, -values])
    for order in (np.arange(values.size), rng.permutation(values.size)):   # midpoints alone and mixed
        v = np.ascontiguousarray(values[order])
        want = np.empty(v.size, dtype=np.uint16)
        _kernels.round_to_half(v, want, code)
        got = np.empty(v.size, dtype=np.uint16)
        _kernels.round_to_half_vector(v, got, code)
        finite = ~np.isnan(v)
        assert np.array_equal(got[finite], want[finite])
        nan_bits = got[~finite]
        if code == 1:
            assert np.all(np.isnan(nan_bits.view(np.float16)))
        else:
            assert np.all(np.isnan((nan_bits.astype(np.uint32) << 16).view(np.float32)))


@pytest.mark.parametrize("dtype", HALF)
def test_float_path_of_half_log_softmax_rounded_once_as_double(dtype):
    """log_softmax into a half ``out=`` without temperature computes in float where its error bound
    keeps every lane away from the half midpoints, in double elsewhere: the same bits as the
    double computation alone (softmax_set_half_fast_writes(False)). Rows of small and large
    offsets (a large m + c is the bound's worst case), constant rows, -inf entries, tiny results
    (float16 subnormals), a temperature (always double), streamed and plain stores."""
    rng = np.random.default_rng(11)
    cases = [(0.0, 3.0), (100.0, 5.0), (-3000.0, 2.0), (60000.0, 30.0), (0.0, 0.01), (5.0, 40.0), (0.0, 1e-3)]
    old_fast = _kernels.softmax_set_half_fast_writes(True)
    try:
        for (base, scale), stream in itertools.product(cases, (False, True)):
            x = np.clip(base + scale * rng.standard_normal((24, 2053)), -65000, 65000).astype(dtype)
            x[3] = x[3, 0]
            x[5, 7] = -np.inf
            x[6, :100] = -np.inf
            for temperature in (1.0, 0.7):
                got = []
                for fast in (True, False):
                    _kernels.softmax_set_half_fast_writes(fast)
                    old = _kernels.softmax_set_stream_min_bytes(0 if stream else 1 << 40)
                    try:
                        out = np.empty_like(x)
                        fi.log_softmax(x, out=out, temperature=temperature)
                    finally:
                        _kernels.softmax_set_stream_min_bytes(old)
                    got.append(out.view(np.uint16))
                assert np.array_equal(got[0], got[1]), (base, scale, temperature, stream)
                check_elementwise(got[0].view(dtype), ref.ref_log_softmax(x.astype(np.float64), -1, temperature),
                                  dtype, 1)
    finally:
        _kernels.softmax_set_half_fast_writes(old_fast)


def test_streaming_store_path_half():
    """Half outputs above the streaming threshold: 16-byte aligned streamed part, heads and tails."""
    rng = np.random.default_rng(8)
    x = half_values(rng, (9, 1001), np.float16)
    x64 = x.astype(np.float64)
    old = _kernels.softmax_set_stream_min_bytes(0)
    try:
        for offset in (0, 1, 3):
            buf = np.empty(x.size + offset, dtype=np.float16)
            out = buf[offset:].reshape(x.shape)
            fi.log_softmax(x, out=out)
            check_elementwise(out, ref.ref_log_softmax(x64), np.float16)
            fi.softmax(x, out=out)
            check_elementwise(out, ref.ref_softmax(x64), np.float16, 2)
        # float32 outputs: streamed into out=, plain stores into the array the call allocates
        for name in ("log_softmax", "softmax"):
            out32 = np.empty(x.shape, dtype=np.float32)
            getattr(fi, name)(x, out=out32)
            assert np.array_equal(getattr(fi, name)(x), out32)
    finally:
        _kernels.softmax_set_stream_min_bytes(old)


# ----------------------------------------------------------------------------- distribution family


@pytest.mark.parametrize("dtype", HALF)
def test_distribution_family_matches_float64_on_the_same_values(dtype):
    funcs = {"cross_entropy": (fi.cross_entropy, ref.cross_entropy),
             "kl_divergence": (fi.kl_divergence, ref.kl_divergence),
             "js_divergence": (fi.js_divergence, ref.js_divergence)}
    for rng, shape, layout, axis in cases(9):
        p = rng.random(shape)
        p[rng.random(shape) < 0.2] = 0.0
        p = in_layout(p.astype(dtype), layout)
        q = in_layout((rng.random(shape) + 0.01).astype(dtype), LAYOUTS[::-1][LAYOUTS.index(layout)])
        p64, q64 = p.astype(np.float64), q.astype(np.float64)
        check_rows(fi.entropy(p, axis=axis), ref.entropy(p64, axis=axis))
        check_rows(fi.entropy(p, axis=axis, base=2), ref.entropy(p64, axis=axis, base=2))
        for func, twin in funcs.values():
            check_rows(func(p, q, axis=axis), twin(p64, q64, axis=axis))
        check_rows(fi.kl_divergence(p, q, axis=axis, eps=1e-3), ref.kl_divergence(p64, q64, axis=axis, eps=1e-3))
        # broadcasting and counts
        check_rows(fi.kl_divergence(p, q[..., :1] if q.ndim > 1 else q, axis=-1),
                   ref.kl_divergence(p64, q64[..., :1] if q.ndim > 1 else q64, axis=-1))


@pytest.mark.parametrize("dtype", HALF)
def test_one_pass_entropy_matches_float64_on_the_same_values(dtype):
    """The one-pass entropy of half rows (a p log p table of every half value, H = log S - A / S)
    against the float64 twin and against the two-pass route (a float log), and the rows it hands
    over to the two passes: a cancelling difference (one large entry), H = 0 (one nonzero entry),
    subnormal entries, zeros, NaN, inf, negative entries, sums outside [2^-100, 2^100]."""
    rng = np.random.default_rng(12)
    rows = [rng.random(4000), rng.random(4000) / 4000, rng.random(300) * 6e-5, rng.random(9) * 1e4,
            np.r_[1e4, rng.random(500) * 1e-3], np.r_[0.25, np.zeros(40)], np.r_[3.0, 1e-7 * rng.random(50)],
            np.where(rng.random(2000) < 0.5, 0.0, rng.random(2000)), np.full(1000, 1e-30), np.full(64, 30000.0),
            np.arange(1.0, 1500.0)]
    n = max(len(r) for r in rows)
    p = np.zeros((len(rows), n))
    for i, r in enumerate(rows):
        p[i, :len(r)] = r
    p = p.astype(dtype)
    old = _kernels.distribution_set_entropy_table(True)
    try:
        one_pass = fi.entropy(p, axis=-1)
        check_rows(one_pass, ref.entropy(p.astype(np.float64), axis=-1))
        _kernels.distribution_set_entropy_table(False)
        two_pass = fi.entropy(p, axis=-1)
        np.testing.assert_allclose(one_pass, two_pass, rtol=1e-6, atol=0)
        _kernels.distribution_set_entropy_table(True)
        bad = np.array([[1.0, np.nan, 1.0], [1.0, np.inf, 1.0], [0.0, 0.0, 0.0]], dtype=dtype)
        assert np.isnan(fi.entropy(bad, axis=-1)).all()
        with pytest.raises(ValueError, match="p must not have negative"):
            fi.entropy(np.array([[1, 1, 1], [1, -2, 1]], dtype=dtype))
        with threadpool_limits(1, "openmp"):
            assert np.array_equal(fi.entropy(p, axis=-1), one_pass, equal_nan=True)
    finally:
        _kernels.distribution_set_entropy_table(old)


@pytest.mark.parametrize("dtype", HALF)
def test_distribution_special_values_and_errors(dtype):
    p = np.array([[1, 1, 0], [0, 0, 0], [np.nan, 1, 1], [np.inf, 1, 1], [4, 0, 0]], dtype=dtype)
    h = fi.entropy(p)
    assert h.dtype == np.float32
    assert h[0] == pytest.approx(np.log(2), rel=1e-6) and np.isnan(h[1:4]).all() and h[4] == 0.0
    assert fi.kl_divergence(np.array([1, 1], dtype=dtype), np.array([1, 0], dtype=dtype)) == np.inf
    with pytest.raises(ValueError, match="q must not have negative"):
        fi.kl_divergence(np.array([1, 1], dtype=dtype), np.array([1, -1], dtype=dtype))
    with pytest.raises(ValueError, match="p must not have negative"):
        fi.entropy(np.array([[1, 1], [1, -2]], dtype=dtype))


def test_mixed_dtypes_use_their_common_float_dtype():
    rng = np.random.default_rng(10)
    a16 = half_values(rng, (4, 50), np.float16)
    b32 = (rng.standard_normal((4, 50)) * 3).astype(np.float32)
    got = fi.softmax_kl_divergence(a16, b32)
    assert got.dtype == np.float32
    check_rows(got, ref.ref_softmax_kl_divergence(a16.astype(np.float64), b32.astype(np.float64)), 10)
    assert fi.softmax_kl_divergence(a16, b32.astype(np.float64)).dtype == np.float64
    p16 = np.abs(a16)
    assert fi.kl_divergence(p16, np.abs(b32)).dtype == np.float32
    assert fi.cross_entropy(p16, np.abs(b32).astype(np.float64)).dtype == np.float64
    if ml_dtypes is not None:
        pb = np.abs(b32).astype(ml_dtypes.bfloat16)
        got = fi.js_divergence(p16, pb)
        assert got.dtype == np.float32
        check_rows(got, ref.js_divergence(p16.astype(np.float64), pb.astype(np.float64)))
    # half-precision logits with float32 probabilities: computed in float32
    probs = fi.softmax(b32)
    loss, grad = fi.softmax_cross_entropy_with_grad(a16, probs, reduction="none")
    assert loss.dtype == grad.dtype == np.float32
    check_rows(loss, ref.ref_softmax_cross_entropy(a16.astype(np.float64), probs, reduction="none"), 10)
    out = np.zeros_like(a16)
    assert fi.softmax_cross_entropy_with_grad(a16, probs, out=out)[1] is out
    check_elementwise(out, ref.ref_softmax_cross_entropy_grad(a16.astype(np.float64), probs), np.float16)


# ----------------------------------------------------------------------------- dtype policy and errors


@pytest.mark.parametrize("dtype", HALF)
def test_result_dtypes_are_float32(dtype):
    x = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], dtype=dtype)
    t = np.array([0, 2])
    for r in (fi.logsumexp(x), fi.log_softmax(x), fi.softmax(x), fi.softmax_entropy(x),
              fi.softmax_kl_divergence(x, x), fi.softmax_cross_entropy(x, t, reduction="none"),
              fi.softmax_cross_entropy_with_grad(x, t)[1], fi.entropy(np.abs(x)),
              fi.kl_divergence(np.abs(x), np.abs(x)), fi.logsumexp(x[0]), fi.entropy(np.abs(x[0]))):
        assert r.dtype == np.float32
    for r in (fi.softmax_cross_entropy(x, t), fi.perplexity(x, t), fi.softmax_kl_divergence(x, x, reduction="sum")):
        assert type(r) is float
    assert fi.logsumexp(np.zeros((3, 0), dtype=dtype)).tolist() == [-np.inf] * 3
    assert fi.log_softmax(np.zeros((0, 4), dtype=dtype)).shape == (0, 4)


@pytest.mark.parametrize("dtype", HALF)
def test_errors_name_the_argument_and_dtype(dtype):
    x = np.zeros((4, 5), dtype=dtype)
    name = np.dtype(dtype).name
    with pytest.raises(TypeError, match=f"target.*{name}"):
        fi.softmax_cross_entropy(x, np.array([0, 1, 2, 3], dtype=dtype))      # half "class indices"
    with pytest.raises(TypeError, match=f"target.*{name}"):
        fi.softmax_cross_entropy_with_grad(x, np.zeros((4, 4), dtype=dtype))
    with pytest.raises(ValueError, match="out"):
        fi.log_softmax(x, out=np.empty(x.shape, dtype=np.float64))
    other = np.float16 if name == "bfloat16" else getattr(ml_dtypes, "bfloat16", np.float64)
    with pytest.raises(ValueError, match="out must have dtype float32 .* or " + name):
        fi.softmax(x, out=np.empty(x.shape, dtype=other))
    with pytest.raises(ValueError, match="out"):
        fi.softmax_cross_entropy_with_grad(x, np.array([0, 1, 2, 3]), out=np.empty((4, 4), dtype=dtype))
    if ml_dtypes is not None:
        f8 = np.zeros((4, 5), dtype=ml_dtypes.float8_e4m3fn)
        for fn, argname in ((fi.logsumexp, "x"), (fi.softmax_entropy, "logits"), (fi.entropy, "p")):
            with pytest.raises(TypeError, match=f"{argname}.*float8_e4m3fn"):
                fn(f8)
        with pytest.raises(TypeError, match="q.*float8_e4m3fn"):
            fi.kl_divergence(np.ones(3), np.ones(3, dtype=ml_dtypes.float8_e4m3fn))
    with pytest.raises(TypeError, match="logits.*<U1"):
        fi.softmax_cross_entropy(np.array([["a", "b"]]), [0])


def test_inputs_unmodified_and_thread_count_agnostic():
    rng = np.random.default_rng(11)
    inputs = [half_values(rng, (37, 3001), np.float16)]
    if ml_dtypes is not None:
        inputs.append(half_values(rng, (37, 3001), ml_dtypes.bfloat16))
    for x in inputs:
        q = x[::-1].copy()
        t = rng.integers(0, 3001, 37)
        before = (x.tobytes(), q.tobytes())

        def results():
            return [fi.logsumexp(x), fi.log_softmax(x), fi.softmax(x, temperature=0.7), fi.softmax_entropy(x),
                    fi.softmax_kl_divergence(x, q), fi.softmax_cross_entropy(x, t, label_smoothing=0.1),
                    *fi.softmax_cross_entropy_with_grad(x, t), fi.log_softmax(x, out=np.empty_like(x)),
                    fi.softmax_cross_entropy_with_grad(x, t, out=np.empty_like(x))[1],
                    fi.entropy(np.abs(x)), fi.js_divergence(np.abs(x), np.abs(q)), fi.perplexity(x, t)]

        default = results()
        with threadpool_limits(1, "openmp"):
            single = results()
        for a, b in zip(default, single):
            a, b = np.asarray(a), np.asarray(b)
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
        assert (x.tobytes(), q.tobytes()) == before


def test_read_only_memmap_half(tmp_path):
    rng = np.random.default_rng(12)
    x = half_values(rng, (6, 50), np.float16)
    x.tofile(tmp_path / "x.bin")
    mm = np.memmap(tmp_path / "x.bin", dtype=np.float16, mode="r", shape=x.shape)
    t = rng.integers(0, 50, 6)
    assert np.array_equal(fi.log_softmax(mm), fi.log_softmax(x))
    assert fi.softmax_cross_entropy(mm, t) == fi.softmax_cross_entropy(x, t)
    assert np.array_equal(fi.entropy(np.abs(x)), fi.entropy(np.memmap(tmp_path / "x.bin", dtype=np.float16,
                                                                      mode="r", shape=x.shape).__abs__()))
    with pytest.raises(ValueError, match="out"):
        fi.log_softmax(mm, out=mm)


# ----------------------------------------------------------------------------- no converted copy


def _traced_peak(call):
    call()  # warm-up (allocations made once, e.g. lazily built tables)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    del result
    return peak


@pytest.mark.parametrize("dtype", HALF)
def test_no_converted_copy(dtype):
    """Extra memory of every function on half input stays below 1 MiB plus its outputs (the input
    here is 8 MiB: a float32 copy would be 16 MiB)."""
    rng = np.random.default_rng(13)
    n, c = 128, 32768
    x = half_values(rng, (n, c), dtype)
    q = x[::-1].copy()
    p = np.abs(x)
    pr = p[::-1].copy()
    t = rng.integers(0, c, n)
    out = np.empty_like(x)
    row_bytes = 8 * n   # float64 per-row results (and their float32 casts)
    calls = {
        "logsumexp": (lambda: fi.logsumexp(x), 2 * row_bytes),
        "log_softmax into out": (lambda: fi.log_softmax(x, out=out), 0),
        "softmax into out": (lambda: fi.softmax(x, out=out), 0),
        "log_softmax": (lambda: fi.log_softmax(x), 4 * x.size),
        "softmax_entropy": (lambda: fi.softmax_entropy(x), 2 * row_bytes),
        "softmax_cross_entropy": (lambda: fi.softmax_cross_entropy(x, t), 4 * row_bytes),
        "softmax_cross_entropy_with_grad into out": (lambda: fi.softmax_cross_entropy_with_grad(x, t, out=out),
                                                     4 * row_bytes),
        "perplexity": (lambda: fi.perplexity(x, t), 4 * row_bytes),
        "softmax_kl_divergence": (lambda: fi.softmax_kl_divergence(x, q, reduction="mean"), 2 * row_bytes),
        "entropy": (lambda: fi.entropy(p), 2 * row_bytes),
        "kl_divergence": (lambda: fi.kl_divergence(p, pr), 2 * row_bytes),
        "js_divergence": (lambda: fi.js_divergence(p, pr), 2 * row_bytes),
    }
    for name, (call, outputs) in calls.items():
        peak = _traced_peak(call)
        assert peak < (1 << 20) + outputs, f"{name}: {peak / 2**20:.2f} MiB extra"


# ----------------------------------------------------------------------------- torch tensors


def _torch():
    return pytest.importorskip("torch")


def _numpy_twin(tensor):
    """The NumPy array with the tensor's values and dtype (bfloat16 through ml_dtypes)."""
    torch = _torch()
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        if ml_dtypes is None:
            pytest.skip("comparing with NumPy bfloat16 needs ml_dtypes")
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


@pytest.mark.parametrize("dtype_name", ["float32", "float64", "float16", "bfloat16"])
def test_torch_tensors_everywhere_an_array_is(dtype_name):
    """Every function on a CPU tensor (contiguous, transposed, strided, an nn.Parameter) gives the
    very bits of the same call on the NumPy array of the same values and dtype."""
    torch = _torch()
    rng = np.random.default_rng(14)
    base = torch.from_numpy(rng.standard_normal((6, 4, 33)) * 3).to(getattr(torch, dtype_name))
    for tensor in (base, base.transpose(0, 1), base[:, ::2], torch.nn.Parameter(base.double()).to(base.dtype)):
        x = _numpy_twin(tensor)
        tn = rng.integers(0, 33, tensor.shape[:2])
        t = torch.from_numpy(tn)
        pairs = [
            (fi.logsumexp(tensor), fi.logsumexp(x)),
            (fi.log_softmax(tensor, axis=1), fi.log_softmax(x, axis=1)),
            (fi.softmax(tensor, temperature=2.0), fi.softmax(x, temperature=2.0)),
            (fi.softmax_entropy(tensor, axis=0), fi.softmax_entropy(x, axis=0)),
            (fi.softmax_kl_divergence(tensor, tensor.flip(0)), fi.softmax_kl_divergence(x, x[::-1])),
            (fi.softmax_cross_entropy(tensor, t, reduction="none"), fi.softmax_cross_entropy(x, tn, reduction="none")),
            (fi.softmax_cross_entropy_with_grad(tensor, t)[1], fi.softmax_cross_entropy_with_grad(x, tn)[1]),
            (fi.perplexity(tensor, t), fi.perplexity(x, tn)),
            (fi.entropy(tensor.abs()), fi.entropy(np.abs(x))),
            (fi.kl_divergence(tensor.abs(), tensor.abs().flip(-1), axis=1),
             fi.kl_divergence(np.abs(x), np.abs(x)[..., ::-1], axis=1)),
            (fi.js_divergence(tensor.abs(), tensor.abs()[:1]), fi.js_divergence(np.abs(x), np.abs(x)[:1])),
        ]
        for got, want in pairs:
            assert isinstance(got, (float, np.ndarray, np.floating)), type(got)
            got, want = np.asarray(got), np.asarray(want)
            assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)


def test_torch_out_in_place_and_zero_copy():
    torch = _torch()
    from fastinfo._validation import array_and_half

    gen = torch.Generator().manual_seed(1)
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        x = (torch.randn(64, 300, generator=gen) * 3).to(dtype)
        view, _ = array_and_half(x, "x")
        assert view.__array_interface__["data"][0] == x.data_ptr()          # viewed, not copied
        x_np = _numpy_twin(x)
        for fn in (fi.log_softmax, fi.softmax):
            out = torch.empty_like(x)
            assert fn(x, out=out) is out
            assert np.array_equal(_numpy_twin(out), fn(x_np, out=np.empty_like(x_np)), equal_nan=True)
            y = x.clone()
            assert fn(y, out=y) is y
            assert torch.equal(y, out)
        t = torch.randint(0, 300, (64,), generator=gen)
        out = torch.empty_like(x)
        loss, grad = fi.softmax_cross_entropy_with_grad(x, t, out=out)
        assert grad is out
        xr = x.double().requires_grad_(True)
        torch.nn.functional.cross_entropy(xr, t).backward()
        assert loss == pytest.approx(torch.nn.functional.cross_entropy(x.double(), t).item(), rel=1e-6)
        np.testing.assert_allclose(fi.softmax_cross_entropy_with_grad(x, t)[1], xr.grad.numpy(),
                                   rtol=1e-5, atol=1e-9)


def test_torch_errors():
    torch = _torch()
    x = torch.zeros(3, 4)
    with pytest.raises(TypeError, match="x is a torch tensor on meta"):
        fi.logsumexp(torch.zeros(3, 4, device="meta"))
    with pytest.raises(TypeError, match="p is a torch tensor with layout"):
        fi.entropy(x.to_sparse())
    with pytest.raises(TypeError, match="logits.*complex"):
        fi.softmax_entropy(torch.zeros(3, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="out must have dtype float32"):
        fi.log_softmax(x, out=torch.zeros(3, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="target.*bfloat16"):
        fi.softmax_cross_entropy(x.bfloat16(), torch.zeros(3, dtype=torch.bfloat16))
    if hasattr(torch, "float8_e4m3fn"):
        with pytest.raises(TypeError, match="x must be a real numeric array; got a torch tensor of dtype"):
            fi.logsumexp(torch.zeros(3, 4).to(torch.float8_e4m3fn))


@pytest.mark.parametrize("isa", ["avx2", "baseline"])
def test_every_clone_reads_half_precision(isa):
    """The half-precision kernels of the other clones this CPU runs (FASTINFO_ISA forces one; the
    rest of this file runs the best): the float64 comparisons, the half outputs and their
    streaming stores, in a subprocess."""
    order = ["baseline", "avx2", "avx512"]
    if order.index(isa) > order.index(_kernels.cpu_isa()):
        pytest.skip(f"this CPU cannot run the {isa} clone")
    env = dict(os.environ, FASTINFO_ISA=isa)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(fi.__file__)),
                                         os.path.dirname(__file__), env.get("PYTHONPATH", "")])
    selection = "matches_float64 or cross_entropy or special_values or long_rows or rounded_once or streaming"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                             "-k", selection, "-W", "error::RuntimeWarning"],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "passed" in result.stdout


def test_fastinfo_imports_neither_torch_nor_ml_dtypes():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import fastinfo as fi
        x = np.random.default_rng(0).standard_normal((4, 50)).astype(np.float16)
        fi.log_softmax(x, out=np.empty_like(x)); fi.entropy(np.abs(x)); fi.softmax_cross_entropy(x, [0, 1, 2, 3])
        fi.mutual_info_ksg(np.arange(20.0), np.arange(20.0) ** 2)
        print("torch" in sys.modules, "ml_dtypes" in sys.modules)
    """)
    src = os.path.dirname(os.path.dirname(fi.__file__))  # the fastinfo under test (an in-place build too)
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]

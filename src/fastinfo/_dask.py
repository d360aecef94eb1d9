"""Dask support: fastinfo's functions on ``dask.array.Array`` inputs.

The public functions are wrapped by :func:`dask_dispatch`. When no argument is a Dask
array the wrapper calls the NumPy front-end unchanged (one dictionary look-up when Dask
is not imported, a type check per argument when it is). When one is, the call goes to
the Dask implementation of the same name below, which

1. validates eagerly, at graph construction: axis, shapes, dtypes and keywords (the
   NumPy front-end itself is called once on a one-row probe of the right dtypes and
   class-axis length, so keyword and dtype errors are the very same errors);
2. rechunks the class axis to a single chunk (a row must be seen whole by a kernel)
   and aligns the row chunks of every argument;
3. maps row chunks to calls of the NumPy front-ends (``da.blockwise``), so the
   compiled kernels do all the arithmetic;
4. for ``"sum"``/``"mean"`` reductions and perplexity, has every chunk return its
   partial numerator (a float64 ``reduction="sum"``) and denominator (``Σ w[target]``
   over non-ignored positions, or a row count), and adds the partials with Dask's
   tree reduction, whose combine order is fixed by the chunking: the same chunking
   gives the same bits every time, and the result equals the in-memory one to
   rounding (float64: ~1e-15 relative).

Values that can only be checked by reading the data (a target out of range, a
negative probability, non-finite samples) raise the NumPy front-end's ``ValueError``
at compute time.

``mutual_info_matrix`` and ``mutual_info_features`` prepare each column (or the target)
once, in one task, and run the pair work in tiles of whole-column blocks by the kernels of
the in-memory call, so their values equal the in-memory results bitwise (see the
estimators section below). NumPy arguments of a call are scattered to the cluster when a
``dask.distributed`` client is the default, so no graph carries large data.

Nothing in this module imports Dask at import time: ``import fastinfo`` never does.
"""
import functools
import importlib
import math
import os
import sys

import numpy as np

from ._estimators import check_features_args
from ._validation import (
    BFLOAT16,
    array_and_half,
    as_float_array,
    as_samples,
    check_k,
    check_reduction,
    check_temperature,
    half_code,
    log_base_divisor,
    normalize_axis,
)

__all__ = ["dask_dispatch", "is_dask_array"]

# Public name -> module of its NumPy front-end.
_FRONT_END_MODULE = {
    "logsumexp": "_softmax",
    "log_softmax": "_softmax",
    "softmax": "_softmax",
    "softmax_entropy": "_softmax",
    "softmax_cross_entropy": "_softmax",
    "softmax_cross_entropy_with_grad": "_softmax",
    "perplexity": "_softmax",
    "softmax_kl_divergence": "_softmax",
    "entropy": "_distributions",
    "cross_entropy": "_distributions",
    "kl_divergence": "_distributions",
    "js_divergence": "_distributions",
    "mutual_info_matrix": "_estimators",
    "mutual_info_features": "_estimators",
    "linear_cross_entropy": "_linear",
    "linear_cross_entropy_with_grad": "_linear",
    "linear_perplexity": "_linear",
    "linear_softmax_entropy": "_linear",
    "linear_kl_divergence": "_linear",
}

# Public name -> Dask implementation (filled at the end of this module).
_DASK_IMPLEMENTATIONS = {}


# =============================================================================
# Dispatch
# =============================================================================


def is_dask_array(a):
    """True when ``a`` is a ``dask.array.Array``, decided without importing Dask."""
    dask_array_module = sys.modules.get("dask.array")
    array_type = getattr(dask_array_module, "Array", None)
    return array_type is not None and isinstance(a, array_type)


def dask_dispatch(func):
    """Route calls with a ``dask.array.Array`` argument to the Dask implementation of ``func``.

    Without a Dask argument ``func`` is called unchanged. When Dask has not been imported
    (so no Dask array can exist) the cost is one ``sys.modules`` look-up; otherwise one
    ``isinstance`` per argument (well under a microsecond in all).
    ``func`` must be one of the public functions named in ``_FRONT_END_MODULE``.
    """
    name = func.__name__
    if name not in _FRONT_END_MODULE:
        raise ValueError(f"dask_dispatch: no Dask implementation for {name!r}")
    modules = sys.modules

    @functools.wraps(func)
    def dispatcher(*args, **kwargs):
        dask_array_module = modules.get("dask.array")
        if dask_array_module is not None:
            array_type = getattr(dask_array_module, "Array", None)
            if array_type is not None:
                for a in args:
                    if isinstance(a, array_type):
                        return _DASK_IMPLEMENTATIONS[name](*args, **kwargs)
                for a in kwargs.values():
                    if isinstance(a, array_type):
                        return _DASK_IMPLEMENTATIONS[name](*args, **kwargs)
        return func(*args, **kwargs)

    # The public name is fastinfo.<name>: pickle (by reference) finds the dispatcher there.
    dispatcher.__module__ = "fastinfo"
    return dispatcher


def _front_end(name):
    """The NumPy front-end ``name`` (looked up at call time, in workers too)."""
    func = getattr(importlib.import_module("fastinfo." + _FRONT_END_MODULE[name]), name)
    # If the integrator decorated the front-end in place, use the undecorated function.
    return getattr(func, "__wrapped__", func)


def _dask_array_module():
    import dask.array as da

    return da


# =============================================================================
# Shared machinery for the softmax and distribution families
# =============================================================================


def _as_dask(a, name):
    """``a`` as a Dask array (NumPy/array_like arguments of mixed calls become one chunk,
    scattered to the cluster when a dask.distributed client is the default)."""
    if is_dask_array(a):
        if any(isinstance(d, float) and math.isnan(d) for d in a.shape):
            raise ValueError(f"{name} has unknown chunk sizes (shape {a.shape}); call "
                             f"{name}.compute_chunk_sizes() first")
        return a
    arr, half = array_and_half(a, name)  # torch tensors too (viewed, not copied)
    if half:
        arr = arr.view(np.float16 if half != BFLOAT16 else _bfloat16_dtype(name))
    return _scattered_or_embedded(arr)


def _default_client():
    """The default dask.distributed client, or None (distributed is never imported for this)."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import default_client

        return default_client()
    except (ValueError, ImportError):
        return None


def _scattered_or_embedded(arr):
    """A NumPy argument as a one-chunk Dask array: scattered to the cluster when a
    dask.distributed client is the default (so the graph carries a key, not the data), else
    wrapped as it is (local schedulers share this process's memory)."""
    da = _dask_array_module()
    client = _default_client()
    if client is None or arr.nbytes < (1 << 16) or arr.dtype.hasobject:
        return da.from_array(arr, chunks=arr.shape or ())
    import dask

    # a fresh key per call (hash=False): two scatters of equal data share a hashed key, and releasing
    # one of their futures can cancel the other's tasks ("lost dependencies", dask/distributed#3703)
    future = client.scatter(arr, hash=False)
    return da.from_delayed(dask.delayed(future), shape=arr.shape, dtype=arr.dtype,
                           meta=np.empty((0,) * arr.ndim, dtype=arr.dtype))


def _bfloat16_dtype(name):
    """ml_dtypes' bfloat16 (a bfloat16 torch tensor beside a Dask array becomes a NumPy chunk)."""
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError(f"{name} is a bfloat16 tensor passed with Dask arrays: that needs ml_dtypes "
                        "(pip install fastinfo[half])") from None
    return np.dtype(ml_dtypes.bfloat16)


def _probe_shape(shape, axis):
    """One row of ``shape``: every dimension but ``axis`` cut to at most 1."""
    return tuple(d if i == axis else min(d, 1) for i, d in enumerate(shape))


def _probe(dtype, shape, fill):
    return np.full(shape, fill, dtype=dtype)


def _letters(ndim):
    return "abcdefghijklmnopqrstuvwxyz"[:ndim]


def _align(arrays, full_shape, axis):
    """Rechunk full-shape and batch-shape Dask arrays to common row chunks, one class chunk.

    ``arrays`` is a list of ``(dask_array, is_full, was_dask)``: full arrays have
    ``full_shape``, the others ``full_shape`` without ``axis``. The row chunks are taken from
    the first argument the caller passed as a Dask array (so NumPy arguments of a mixed call
    follow the Dask argument's chunking).
    """
    ndim = len(full_shape)
    batch_chunks = None
    for arr, is_full, was_dask in arrays:
        if was_dask:
            chunks = list(arr.chunks)
            if is_full:
                del chunks[axis]
            batch_chunks = chunks
            break
    if batch_chunks is None:  # only a keyword (weight) was a Dask array: one row chunk
        batch_chunks = [(d,) for i, d in enumerate(full_shape) if i != axis]
    full_chunks = list(batch_chunks)
    full_chunks.insert(axis, (full_shape[axis],) if ndim else ())
    out = []
    for arr, is_full, _ in arrays:
        wanted = tuple(full_chunks) if is_full else tuple(batch_chunks)
        out.append(arr if arr.chunks == wanted else arr.rechunk(wanted))
    return out, tuple(batch_chunks), tuple(full_chunks)


def _call_front_end(name, axis, positional_count, keyword_names, static_kwargs, *blocks):
    """Run NumPy front-end ``name`` on one chunk; Dask array keywords arrive as blocks."""
    kwargs = dict(static_kwargs)
    kwargs.update(zip(keyword_names, blocks[positional_count:]))
    return _front_end(name)(*blocks[:positional_count], axis=axis, **kwargs)


def _rows_block(name, axis, positional_count, keyword_names, static_kwargs, *blocks):
    """Per-row result of one chunk, with a length-1 class axis kept (``keepdims``)."""
    result = _call_front_end(name, axis, positional_count, keyword_names, static_kwargs, *blocks)
    return np.expand_dims(np.asarray(result), axis)


def _elementwise_block(name, axis, positional_count, keyword_names, static_kwargs, *blocks):
    return np.asarray(_call_front_end(name, axis, positional_count, keyword_names, static_kwargs, *blocks))


def _block_row_count(shape, axis):
    return math.prod(d for i, d in enumerate(shape) if i != axis)


def _target_denominator(target, weight, ignore_index, n_classes=None):
    """``Σ w[target]`` (or the count) over the non-ignored positions of one target chunk.

    With ``n_classes`` the targets are checked first (the gradient's denominator pass runs
    before any kernel has seen them); otherwise the kernel has already accepted the chunk.
    """
    target = np.asarray(target)
    valid = target.ravel() if ignore_index is None else target[target != ignore_index]
    if n_classes is not None:
        bad = (valid < 0) | (valid >= n_classes)
        if bad.any():
            raise ValueError(f"target holds {valid[bad][0]}, outside the class range [0, {n_classes})"
                             + ("" if ignore_index is None else f" and not ignore_index={ignore_index}"))
    if weight is None:
        return float(valid.size)
    weight = np.asarray(weight, dtype=np.float64)
    return float(math.fsum(weight[valid.astype(np.intp, copy=False)].ravel()))


def _partial_block(name, axis, positional_count, keyword_names, static_kwargs, denominator, *blocks):
    """``[numerator, denominator]`` of one chunk, shaped ``(1, ..., 2, ..., 1)`` (2 at ``axis``).

    The numerator is the front-end's float64 ``reduction="sum"`` over the chunk; the
    denominator is the number of rows (``"rows"``) or ``Σ w[target]`` over non-ignored
    positions (``"target"``).
    """
    kwargs = dict(static_kwargs)
    kwargs.update(zip(keyword_names, blocks[positional_count:]))
    numerator = float(_front_end(name)(*blocks[:positional_count], axis=axis, **kwargs))
    if denominator == "rows":
        den = float(_block_row_count(blocks[0].shape, axis))
    else:
        den = _target_denominator(blocks[1], kwargs.get("weight"), kwargs.get("ignore_index"))
    shape = [1] * blocks[0].ndim
    shape[axis] = 2
    return np.array([numerator, den], dtype=np.float64).reshape(shape)


def _ratio(totals, transform):
    """``totals[0] / totals[1]`` as a float64 scalar (NaN for 0/0), then ``exp`` if asked."""
    totals = np.asarray(totals, dtype=np.float64).ravel()
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        value = totals[0] / totals[1]
        if transform == "exp":
            value = np.exp(value)
    return np.float64(value)


def _numerator(totals):
    return np.float64(np.asarray(totals, dtype=np.float64).ravel()[0])


class _Call:
    """A validated call of a row-wise function, ready to become a Dask graph."""

    def __init__(self, name, axis, full_shape, arguments, keyword_arrays, static_kwargs):
        # arguments: positional Dask arrays, aligned; keyword_arrays: {name: (dask array, index)}
        self.name = name
        self.axis = axis
        self.ndim = len(full_shape)
        self.full_shape = full_shape
        self.arguments = arguments  # list of (dask array, is_full)
        self.keyword_arrays = keyword_arrays
        self.static_kwargs = static_kwargs
        self.letters = _letters(self.ndim)
        self.batch_letters = self.letters.replace(self.letters[axis], "") if self.ndim else ""

    def _blockwise_arguments(self):
        pairs = []
        for arr, is_full in self.arguments:
            pairs += [arr, self.letters if is_full else self.batch_letters]
        for arr, index in self.keyword_arrays.values():
            pairs += [arr, index]
        return pairs

    def _constants(self, *extra):
        """The block functions' leading arguments, as blockwise's ``(value, None)`` pairs."""
        values = (self.name, self.axis, len(self.arguments), tuple(self.keyword_arrays), self.static_kwargs) + extra
        return [item for value in values for item in (value, None)]

    def rows(self, dtype):
        """Per-row result: shape ``full_shape`` without ``axis``."""
        da = _dask_array_module()
        kept = da.blockwise(
            _rows_block, self.letters, *self._constants(), *self._blockwise_arguments(),
            adjust_chunks={self.letters[self.axis]: lambda c: 1},
            dtype=dtype, meta=np.empty((0,) * self.ndim, dtype=dtype),
        )
        index = [slice(None)] * self.ndim
        index[self.axis] = 0
        return kept[tuple(index)]

    def elementwise(self, dtype):
        da = _dask_array_module()
        return da.blockwise(
            _elementwise_block, self.letters, *self._constants(), *self._blockwise_arguments(),
            dtype=dtype, meta=np.empty((0,) * self.ndim, dtype=dtype),
        )

    def totals(self, denominator):
        """Shape-(2,) Dask array ``[Σ numerators, Σ denominators]`` over the chunks."""
        da = _dask_array_module()
        batch_adjust = {letter: (lambda c: 1) for letter in self.batch_letters}
        batch_adjust[self.letters[self.axis]] = lambda c: 2
        parts = da.blockwise(
            _partial_block, self.letters, *self._constants(denominator), *self._blockwise_arguments(),
            adjust_chunks=batch_adjust, dtype=np.float64, meta=np.empty((0,) * self.ndim, dtype=np.float64),
        )
        batch_axes = tuple(i for i in range(self.ndim) if i != self.axis)
        if not batch_axes:
            return parts
        # Dask's tree reduction: the combine order is fixed by the chunking.
        return parts.sum(axis=batch_axes, dtype=np.float64)


def _scalar_from_totals(totals, kind):
    """0-d float64 Dask array from the ``[numerator, denominator]`` totals."""
    if kind == "sum":
        return totals.map_blocks(_numerator, drop_axis=0, dtype=np.float64, meta=np.empty((), np.float64))
    transform = "exp" if kind == "perplexity" else None
    return totals.map_blocks(_ratio, transform, drop_axis=0, dtype=np.float64, meta=np.empty((), np.float64))


def _setup(name, arrays, axis):
    """Convert arguments, normalise ``axis`` on the first one; returns (dask arrays, was_dask, axis)."""
    was_dask = [is_dask_array(a) for _, a in arrays]
    converted = [_as_dask(a, n) for n, a in arrays]
    axis = normalize_axis(axis, converted[0].ndim)
    return converted, was_dask, axis


def _reject_out(out, name):
    if out is not None:
        raise TypeError(
            f"{name}: out= is not supported for Dask arrays (the result is lazy); "
            "use dask.array.store to write the result into an existing array"
        )


# =============================================================================
# Softmax family
# =============================================================================


def _single_input_rows(name, x, xname, axis, static_kwargs, elementwise=False, fill=0.0):
    (xd,), was_dask, axis = _setup(name, [(xname, x)], axis)
    probe = _front_end(name)(_probe(xd.dtype, _probe_shape(xd.shape, axis), fill), axis=axis, **static_kwargs)
    dtype = np.asarray(probe).dtype
    (xd,), _, _ = _align([(xd, True, True)], xd.shape, axis)
    call = _Call(name, axis, xd.shape, [(xd, True)], {}, static_kwargs)
    return call.elementwise(dtype) if elementwise else call.rows(dtype)


def logsumexp(x, axis=-1, keepdims=False):
    result = _single_input_rows("logsumexp", x, "x", axis, {})
    if keepdims:
        da = _dask_array_module()
        result = da.expand_dims(result, normalize_axis(axis, result.ndim + 1))
    return result


def log_softmax(x, axis=-1, *, temperature=1.0, out=None):
    _reject_out(out, "log_softmax")
    return _single_input_rows("log_softmax", x, "x", axis, {"temperature": temperature}, elementwise=True)


def softmax(x, axis=-1, *, temperature=1.0, out=None):
    _reject_out(out, "softmax")
    return _single_input_rows("softmax", x, "x", axis, {"temperature": temperature}, elementwise=True)


def softmax_entropy(logits, axis=-1, *, temperature=1.0, base=None):
    return _single_input_rows("softmax_entropy", logits, "logits", axis, {"temperature": temperature, "base": base})


def _cross_entropy_call(name, logits, target, axis, static_kwargs, weight):
    """Validate a cross-entropy-like call; returns (call, probe result, integer_target)."""
    (ld, td), was_dask, axis = _setup(name, [("logits", logits), ("target", target)], axis)
    integer_target = td.dtype.kind in "iu"
    batch_shape = tuple(d for i, d in enumerate(ld.shape) if i != axis)
    # the messages of the in-memory front-end
    if integer_target and td.shape != batch_shape:
        raise ValueError(f"target of class indices must have shape {batch_shape} (the logits' shape "
                         f"{ld.shape} without axis {axis}); got {td.shape}")
    if half_code(td.dtype) and td.shape != ld.shape:
        raise TypeError(f"target has dtype {td.dtype} and shape {td.shape}: class indices must be an integer "
                        f"array (of shape {batch_shape}), and a half-precision target can only hold "
                        f"probabilities, of the logits' shape {ld.shape}")
    if td.dtype.kind == "f" and td.shape != ld.shape:
        raise ValueError(f"target of probabilities must have the logits' shape {ld.shape}; got {td.shape}")
    # (other target dtypes are rejected by the probe call below, with the front-end's TypeError)

    probe_shape = _probe_shape(ld.shape, axis)
    probe_logits = _probe(ld.dtype, probe_shape, 0.0)
    if integer_target:
        probe_target = _probe(td.dtype, tuple(d for i, d in enumerate(probe_shape) if i != axis), 0)
    else:
        probe_target = _probe(td.dtype, probe_shape, 1.0 / max(ld.shape[axis], 1))
    probe_kwargs = dict(static_kwargs)
    keyword_arrays = {}
    if weight is not None:
        if is_dask_array(weight):
            if weight.ndim != 1:
                raise ValueError(f"weight must have shape ({ld.shape[axis]},); got shape {weight.shape}")
            probe_kwargs["weight"] = _probe(weight.dtype, weight.shape, 1.0)
        else:
            probe_kwargs["weight"] = weight
    probe = _front_end(name)(probe_logits, probe_target, axis=axis, **probe_kwargs)

    static = dict(static_kwargs)
    if weight is not None:
        # One graph key for the weights (not a copy inside every task's arguments).
        weight = _as_dask(weight, "weight")
        keyword_arrays["weight"] = (weight.rechunk(weight.shape), _letters(ld.ndim)[axis])
    (ld, td), _, _ = _align([(ld, True, was_dask[0]), (td, not integer_target, was_dask[1])], ld.shape, axis)
    call = _Call(name, axis, ld.shape, [(ld, True), (td, not integer_target)], keyword_arrays, static)
    return call, probe, integer_target


def softmax_cross_entropy(logits, target, axis=-1, *, reduction="mean", ignore_index=None,
                          label_smoothing=0.0, weight=None, temperature=1.0):
    static = {"ignore_index": ignore_index, "label_smoothing": label_smoothing, "temperature": temperature}
    call, probe, integer_target = _cross_entropy_call(
        "softmax_cross_entropy", logits, target, axis, dict(static, reduction=reduction), weight)
    if reduction == "none":
        return call.rows(np.asarray(probe).dtype)
    call.static_kwargs = dict(call.static_kwargs, reduction="sum")
    totals = call.totals("target" if integer_target else "rows")
    return _scalar_from_totals(totals, reduction)


def perplexity(logits, target, axis=-1, *, ignore_index=None, temperature=1.0):
    # exp(mean cross-entropy): the chunks give float64 sums of cross-entropy and counts.
    static = {"ignore_index": ignore_index, "temperature": temperature}
    call, _, integer_target = _cross_entropy_call("perplexity", logits, target, axis, static, None)
    call.name = "softmax_cross_entropy"
    call.static_kwargs = dict(static, reduction="sum")
    totals = call.totals("target" if integer_target else "rows")
    return _scalar_from_totals(totals, "perplexity")


def _grad_block(axis, static_kwargs, keyword_names, denominator, logits, target, *keyword_blocks):
    """``(loss, gradient)`` of one chunk from the fused kernel.

    For ``"mean"`` the chunk is run with ``reduction="sum"`` and its gradient divided by the
    global denominator (a Dask scalar computed from the targets before this task runs). When
    that denominator is 0 every chunk's own denominator is 0 too, and the chunk is run with
    ``"mean"`` itself so that it gives exactly what the in-memory call gives.
    """
    kwargs = dict(static_kwargs)
    kwargs.update(zip(keyword_names, keyword_blocks))
    scale = None
    if kwargs["reduction"] == "mean":
        den = float(np.asarray(denominator))
        if den != 0.0:
            kwargs["reduction"] = "sum"
            scale = den
    loss, grad = _front_end("softmax_cross_entropy_with_grad")(logits, target, axis=axis, **kwargs)
    if scale is not None:
        grad = (grad.astype(np.float64) / scale).astype(grad.dtype, copy=False)
    return loss, grad


def _pick_grad(pair):
    return pair[1]


def _pick_rows(pair, axis):
    return np.expand_dims(np.asarray(pair[0]), axis)


def _pick_sum(pair, ndim):
    return np.full((1,) * ndim, float(pair[0]), dtype=np.float64)


def _denominator_block(target, weight, ignore_index, n_classes):
    """``Σ w[target]`` (or the count) of one target chunk, shaped ``(1, ..., 1)``."""
    value = _target_denominator(target, weight, ignore_index, n_classes)
    return np.full((1,) * np.ndim(target), value, dtype=np.float64)


def softmax_cross_entropy_with_grad(logits, target, axis=-1, *, reduction="mean", ignore_index=None,
                                    label_smoothing=0.0, weight=None, temperature=1.0, out=None):
    _reject_out(out, "softmax_cross_entropy_with_grad")
    da = _dask_array_module()
    static = {"ignore_index": ignore_index, "label_smoothing": label_smoothing, "temperature": temperature,
              "reduction": reduction}
    call, probe, integer_target = _cross_entropy_call(
        "softmax_cross_entropy_with_grad", logits, target, axis, static, weight)
    (ld, _), (td, _) = call.arguments
    ndim, axis = call.ndim, call.axis
    letters, batch_letters = call.letters, call.batch_letters
    grad_dtype = probe[1].dtype

    denominator, denominator_index = None, None
    if reduction == "mean":
        if integer_target:
            # Σ w[target] over non-ignored positions: a pass over the targets only, so the
            # gradient chunks can be scaled by the global denominator.
            if "weight" in call.keyword_arrays:
                weight_arg, weight_index = call.keyword_arrays["weight"]
            else:
                weight_arg, weight_index = None, None
            parts = da.blockwise(
                _denominator_block, batch_letters, td, batch_letters, weight_arg, weight_index,
                ignore_index, None, ld.shape[axis], None, adjust_chunks={c: (lambda n: 1) for c in batch_letters},
                concatenate=True, dtype=np.float64, meta=np.empty((0,) * td.ndim, np.float64))
            denominator, denominator_index = parts.sum(dtype=np.float64), ()
        else:
            denominator = float(_block_row_count(ld.shape, axis))

    pairs = []
    for arr, index in call.keyword_arrays.values():
        pairs += [arr, index]
    dargs = [denominator, denominator_index]
    fused = da.blockwise(
        _grad_block, letters,
        axis, None, call.static_kwargs, None, tuple(call.keyword_arrays), None, *dargs,
        ld, letters, td, letters if not integer_target else batch_letters, *pairs,
        dtype=object, meta=np.empty((0,) * ndim, dtype=object),
    )
    grad = fused.map_blocks(_pick_grad, dtype=grad_dtype, meta=np.empty((0,) * ndim, dtype=grad_dtype))
    if reduction == "none":
        row_chunks = list(ld.chunks)
        row_chunks[axis] = (1,)
        kept = fused.map_blocks(_pick_rows, axis, chunks=tuple(row_chunks), dtype=np.asarray(probe[0]).dtype,
                                meta=np.empty((0,) * ndim, dtype=np.asarray(probe[0]).dtype))
        index = [slice(None)] * ndim
        index[axis] = 0
        return kept[tuple(index)], grad
    sums = fused.map_blocks(_pick_sum, ndim, chunks=tuple((1,) * len(c) for c in ld.chunks),
                            dtype=np.float64, meta=np.empty((0,) * ndim, dtype=np.float64))
    total = sums.sum(dtype=np.float64)
    if reduction == "sum":
        return total, grad
    loss = da.blockwise(_divide_scalars, "", total, "", denominator, denominator_index,
                        dtype=np.float64, meta=np.empty((), np.float64))
    return loss, grad


def _divide_scalars(numerator, denominator):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.float64(np.asarray(numerator)) / np.float64(np.asarray(denominator))


def softmax_kl_divergence(logits_p, logits_q, axis=-1, *, temperature=1.0, reduction="none", base=None):
    return _two_input("softmax_kl_divergence", logits_p, logits_q, ("logits_p", "logits_q"), axis,
                      {"temperature": temperature, "base": base}, reduction, fill=0.0, broadcast=False)


def _two_input(name, a, b, names, axis, static_kwargs, reduction, fill, broadcast=True):
    """A two-argument row-wise function; the distribution family broadcasts its arguments."""
    was_dask = [is_dask_array(a), is_dask_array(b)]
    ad, bd = _as_dask(a, names[0]), _as_dask(b, names[1])
    if ad.shape != bd.shape:
        if not broadcast:
            raise ValueError(f"{names[0]} and {names[1]} must have the same shape; got {ad.shape} and {bd.shape}")
        try:
            shape = np.broadcast_shapes(ad.shape, bd.shape)
        except ValueError:
            raise ValueError(
                f"{names[0]} and {names[1]} must have the same (or broadcastable) shapes; "
                f"got {ad.shape} and {bd.shape}") from None
        da = _dask_array_module()
        ad, bd = da.broadcast_to(ad, shape), da.broadcast_to(bd, shape)
    axis = normalize_axis(axis, ad.ndim)
    probe_shape = _probe_shape(ad.shape, axis)
    kwargs = dict(static_kwargs)
    if reduction is not None:
        kwargs["reduction"] = reduction
    probe = _front_end(name)(_probe(ad.dtype, probe_shape, fill), _probe(bd.dtype, probe_shape, fill),
                             axis=axis, **kwargs)
    (ad, bd), _, _ = _align([(ad, True, was_dask[0]), (bd, True, was_dask[1])], ad.shape, axis)
    call = _Call(name, axis, ad.shape, [(ad, True), (bd, True)], {}, kwargs)
    if reduction is None or reduction == "none":
        return call.rows(np.asarray(probe).dtype)
    call.static_kwargs = dict(kwargs, reduction="sum")
    return _scalar_from_totals(call.totals("rows"), reduction)


# =============================================================================
# Distribution family
# =============================================================================


def entropy(p, axis=-1, *, base=None):
    return _single_input_rows("entropy", p, "p", axis, {"base": base}, fill=1.0)


def cross_entropy(p, q, axis=-1, *, base=None, eps=0.0):
    return _two_input("cross_entropy", p, q, ("p", "q"), axis, {"base": base, "eps": eps}, None, fill=1.0)


def kl_divergence(p, q, axis=-1, *, base=None, eps=0.0):
    return _two_input("kl_divergence", p, q, ("p", "q"), axis, {"base": base, "eps": eps}, None, fill=1.0)


def js_divergence(p, q, axis=-1, *, base=None):
    return _two_input("js_divergence", p, q, ("p", "q"), axis, {"base": base}, None, fill=1.0)


# =============================================================================
# Estimators: per-column preparation once, pair work in tiles of columns
# =============================================================================
# mutual_info_matrix: X is rechunked once to blocks of whole columns, c columns per block (c from
# the data, _columns_per_tile). One task per column prepares what every pair of that column needs
# from it alone (validated float64 values, sorted copy, grid bins: _estimators.prepare_columns);
# one task per tile (I, J), I <= J, of the (m, m) matrix computes the pairs of column block I with
# column block J from the prepared columns of the two blocks (a diagonal tile: the pairs within its
# block) by the kernel of the in-memory call, so every value is bitwise the in-memory value for
# any chunking, workers and threads. The lower tiles are the transposes of the upper ones. A task
# holds at most 2 c prepared columns (18 bytes per sample each) and the kernel's scratch.
# mutual_info_features: the target is prepared once (one task), X is rechunked to blocks of c
# whole columns and one task per block runs _estimators.features_block (each column is used by one
# pair only, so its own sort is part of that task). Inputs travel as Dask chunks; NumPy arguments
# of a call are scattered to the cluster when a dask.distributed client is the default, never
# embedded in the graph.

# One KSG estimate of a pair of 1-D columns (k = 3) on one core, per sample: ~0.2 us at 10**5
# samples, ~0.6 us at 10**6 (cache misses grow with n). Only the order of magnitude matters: it
# sizes the tiles.
_PAIR_SECONDS_PER_SAMPLE = 4e-7
_TASK_SECONDS_MIN = 0.05      # shorter tasks would pay a visible share of per-task overhead (~1 ms)
_TASK_SECONDS_MAX = 4.0       # longer ones make the last task's tail and a lost worker costly
_TASKS_PER_WORKER = 8         # enough tasks to balance the load across the workers
_TILE_BYTES_MAX = 1 << 30     # a tile's prepared columns plus its block of X


def _cluster_cores():
    """Cores that will run the tasks: the default dask.distributed client's worker threads when
    there is one, else this machine's CPUs (the local schedulers)."""
    client = _default_client()
    if client is not None:
        try:
            cores = sum(client.nthreads().values())
        except Exception:  # a client without a reachable scheduler: fall back to this machine
            cores = 0
        if cores > 0:
            return cores
    return os.cpu_count() or 1


def _tile_side(n_items, item_seconds, item_bytes, cores, per_task_items=lambda c: c):
    """Columns per tile: as many as give ``_TASKS_PER_WORKER`` tasks per core, clamped so that a
    task lasts between ``_TASK_SECONDS_MIN`` and ``_TASK_SECONDS_MAX`` and holds at most
    ``_TILE_BYTES_MAX``; ``per_task_items(c)``: the work items (pairs, columns) of a tile of c columns."""
    total = n_items * item_seconds
    per_task = min(max(total / (_TASKS_PER_WORKER * cores), _TASK_SECONDS_MIN), _TASK_SECONDS_MAX)
    side = 1
    while per_task_items(side + 1) * item_seconds <= per_task and (side + 1) * item_bytes <= _TILE_BYTES_MAX:
        side += 1
    return side


def _columns_per_tile(n, m, cores):
    """Columns per block of mutual_info_matrix: a tile of c columns does about c**2 pairs."""
    pairs = m * (m - 1) // 2
    side = _tile_side(pairs, _PAIR_SECONDS_PER_SAMPLE * n, 2 * 26 * n, cores, lambda c: c * c)
    return max(1, min(side, m))


def _features_per_tile(n, m, cores):
    """Columns per block of mutual_info_features (one pair per column, its sort included). The
    blocks cost about the same, so their number is rounded up to a multiple of the cores (no
    last round with idle workers)."""
    side = max(1, min(_tile_side(m, 1.1 * _PAIR_SECONDS_PER_SAMPLE * n, 26 * n, cores), m))
    n_blocks = -(-m // side)
    if n_blocks > cores:
        n_blocks = -(-n_blocks // cores) * cores
        side = max(1, -(-m // n_blocks))
    return side


def _check_samples_2d(X, name):
    if X.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (n,) or 2-D (n, d); got shape {X.shape}")
    as_float_array(np.empty((0,), dtype=X.dtype), name)  # dtype policy: complex/odd dtypes raise here
    X = X if X.ndim == 2 else X[:, None]
    if X.shape[1] == 0:
        raise ValueError(f"{name} must have at least one dimension per sample; got shape {X.shape}")
    return X


_BLOCK_BYTES = 128 << 20      # mutual_info_matrix: the rechunked blocks of X hold up to this


def _matrix_block_width(n, m, side, cores):
    """Columns per rechunked block of X for mutual_info_matrix: the blocks feed only the
    per-column preparations, so they may be wider than a tile (fewer rechunk tasks): about one
    block per core, within _BLOCK_BYTES."""
    return max(side, min(-(-m // cores), max(1, _BLOCK_BYTES // (8 * n))))


def _whole_columns(X, side):
    """X rechunked to blocks of ``side`` whole columns (no-op when it already is)."""
    n, m = X.shape
    wanted = ((n,), tuple(min(side, m - start) for start in range(0, m, side)))
    # the task-based rechunk: a few splits and concatenations per block (dask.distributed's p2p
    # rechunk would move the table through its shuffle service: more CPU for tables this shape)
    return X if X.chunks == wanted else X.rechunk(wanted, method="tasks")


def _prepare_column(block, offset, k):
    """PreparedColumns of column ``offset`` of a ``(n, c)`` block (validated as the in-memory call
    validates X: dtype policy, finite values)."""
    from ._estimators import prepare_columns

    column = as_samples(np.asarray(block)[:, offset], "X")
    return prepare_columns(np.ascontiguousarray(column.T), k)


def _matrix_tile(n, k, divisor, prepared_i, prepared_j):
    """The ``(c_i, c_j)`` block of the matrix from the prepared columns of column blocks I and J
    (``prepared_j`` None: the diagonal tile I = J, diagonal NaN); the prepared columns are read
    where they are, not copied."""
    from ._estimators import column_pair_mean_terms, matrix_values

    if prepared_j is None:
        rows, cols = np.triu_indices(len(prepared_i), 1)
        out = np.full((len(prepared_i), len(prepared_i)), np.nan)
        mean_terms = column_pair_mean_terms(prepared_i, prepared_i, np.stack([rows, cols], axis=1), k)
        values = matrix_values(mean_terms, n, k, divisor)
        out[rows, cols] = values
        out[cols, rows] = values
        return out
    rows, cols = np.indices((len(prepared_i), len(prepared_j))).reshape(2, -1)
    mean_terms = column_pair_mean_terms(prepared_i, prepared_j, np.stack([rows, cols], axis=1), k)
    return np.array(matrix_values(mean_terms, n, k, divisor), dtype=np.float64).reshape(len(prepared_i),
                                                                                         len(prepared_j))


def _transposed(block):
    return np.ascontiguousarray(block.T)


_ONE_CHUNK_BYTES = 64 << 20   # a matrix up to this size is assembled into one chunk (one task)


def _assemble_matrix(m, starts, widths, *tiles):
    """The (m, m) matrix from the upper tiles, in the order (I, J), I <= J."""
    out = np.empty((m, m), dtype=np.float64)
    tiles = iter(tiles)
    for bi, (si, wi) in enumerate(zip(starts, widths)):
        for bj in range(bi, len(widths)):
            sj, wj = starts[bj], widths[bj]
            tile = next(tiles)
            out[si:si + wi, sj:sj + wj] = tile
            out[sj:sj + wj, si:si + wi] = tile.T
    return out


def _graph_array(name, dsk, dependencies, chunks, priorities=None):
    """A float64 Dask array from a dict of tasks (one graph layer); ``priorities``: key -> priority
    (higher runs first on dask.distributed) for the tasks that have one."""
    import dask
    from dask.highlevelgraph import HighLevelGraph

    da = _dask_array_module()
    if priorities:
        with dask.annotate(priority=functools.partial(_priority_of, priorities)):
            graph = HighLevelGraph.from_collections(name, dsk, dependencies=dependencies)
    else:
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=dependencies)
    return da.Array(graph, name, chunks, dtype=np.float64, meta=np.empty((0,) * len(chunks), np.float64))


def _priority_of(priorities, key):
    return priorities.get(key, 0)


def mutual_info_matrix(X, *, k=3, base=None):
    from dask.base import tokenize

    X = _check_samples_2d(_as_dask(X, "X"), "X")
    n, m = X.shape
    k = check_k(k, n)
    divisor = log_base_divisor(base)
    cores = _cluster_cores()
    side = _columns_per_tile(n, m, cores)
    X = _whole_columns(X, _matrix_block_width(n, m, side, cores))
    block_starts = np.cumsum((0,) + X.chunks[1][:-1]).tolist()
    widths = tuple(min(side, m - start) for start in range(0, m, side))
    starts = list(range(0, m, side))
    token = tokenize(X, k, base, side)
    name = f"fastinfo-mutual-info-matrix-{token}"
    prep = f"fastinfo-prepare-column-{token}"
    tile = f"fastinfo-matrix-tile-{token}"
    one_chunk = m * m * 8 <= _ONE_CHUNK_BYTES
    tile_name = tile if one_chunk else name
    dsk, priorities, upper = {}, {}, []
    for block, start in enumerate(block_starts):
        for offset in range(X.chunks[1][block]):
            dsk[(prep, start + offset)] = (_prepare_column, (X.name, 0, block), offset, k)
            priorities[(prep, start + offset)] = 1 << 40  # before any tile: they unlock the tiles
    n_tiles = len(widths)
    for bi in range(n_tiles):
        prepared_i = [(prep, starts[bi] + o) for o in range(widths[bi])]
        for bj in range(bi, n_tiles):
            # larger tiles first, so that the last tasks to run are the small (diagonal) ones
            key = (tile_name, bi, bj)
            upper.append(key)
            if bj == bi:
                dsk[key] = (_matrix_tile, n, k, divisor, prepared_i, None)
                priorities[key] = widths[bi] * (widths[bi] - 1) // 2
            else:
                prepared_j = [(prep, starts[bj] + o) for o in range(widths[bj])]
                dsk[key] = (_matrix_tile, n, k, divisor, prepared_i, prepared_j)
                priorities[key] = widths[bi] * widths[bj]
                if not one_chunk:  # the output's upper tiles are the tile tasks; the lower, transposes
                    dsk[(name, bj, bi)] = (_transposed, key)
    if one_chunk:
        dsk[(name, 0, 0)] = (_assemble_matrix, m, starts, list(widths)) + tuple(upper)
        return _graph_array(name, dsk, [X], ((m,), (m,)), priorities)
    return _graph_array(name, dsk, [X], (widths, widths), priorities)


def _features_tile(block, mask, target, k, divisor):
    from ._estimators import features_block

    return features_block(block, mask, target, k, divisor)


def _prepare_target(y, discrete_target):
    from ._estimators import prepare_target

    return prepare_target(np.asarray(y), discrete_target)


def mutual_info_features(X, y, *, k=3, discrete_features=False, discrete_target=False, base=None):
    from dask.base import tokenize

    divisor = log_base_divisor(base)
    X = _as_dask(X, "X")
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, m); got shape {X.shape}")
    n, m = X.shape
    yd = _as_dask(y, "y")
    if is_dask_array(discrete_features):
        discrete_features = discrete_features.compute()
    flags, discrete_target, k = check_features_args(n, m, yd.shape, discrete_features, discrete_target, k)
    if m == 0:
        return _dask_array_module().from_array(np.empty(0, dtype=np.float64), chunks=(0,))
    if yd.ndim == 2:
        yd = yd[:, 0]
    yd = yd.rechunk(yd.shape)
    side = _features_per_tile(n, m, _cluster_cores())
    X = _whole_columns(X, side)
    widths = X.chunks[1]
    starts = np.cumsum((0,) + widths[:-1]).tolist()
    token = tokenize(X, yd, k, flags, discrete_target, base, side)
    name = f"fastinfo-mutual-info-features-{token}"
    target = f"fastinfo-prepare-target-{token}"
    dsk = {target: (_prepare_target, (yd.name, 0), discrete_target)}
    for block, (start, width) in enumerate(zip(starts, widths)):
        dsk[(name, block)] = (_features_tile, (X.name, 0, block), flags[start:start + width].copy(),
                              target, k, divisor)
    return _graph_array(name, dsk, [X, yd], (widths,), {target: 1 << 40})


# =============================================================================
# Fused linear head family: hidden states chunked by rows, the head broadcast
# =============================================================================
# hidden (..., d) is rechunked to one chunk along d (rows are never split); target follows its row
# chunks. head, bias and weight become one chunk each, so every task gets the whole head: a NumPy
# head is scattered to the cluster (broadcast to every worker, once) when a dask.distributed client
# is the default, so the graph carries a key, never the data; with the local schedulers it is one
# graph key referring to the caller's array. Each task runs the NumPy front-end on its rows;
# reductions add per-chunk [numerator, denominator] partials by Dask's tree reduction (fixed by
# the chunking), as for the softmax family.

_LINEAR_BATCH_LETTERS = "abcdefghijklmnop"  # batch axes of hidden ("v": vocabulary, "y"/"z": widths)


def _linear_constant(a, name):
    """head / bias / weight as a one-chunk Dask array (None stays None), see the section comment."""
    if a is None:
        return None
    da = _dask_array_module()
    if is_dask_array(a):
        a = _as_dask(a, name)
        return a if all(len(c) == 1 for c in a.chunks) else a.rechunk(a.shape)
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    client = _default_client()
    if client is None or arr.nbytes < (1 << 16) or arr.dtype.hasobject:
        return da.from_array(arr, chunks=arr.shape or ())
    import dask

    future = client.scatter(arr, broadcast=True, hash=False)  # a fresh key per call: see above
    return da.from_delayed(dask.delayed(future), shape=arr.shape, dtype=arr.dtype,
                           meta=np.empty((0,) * arr.ndim, dtype=arr.dtype))


def _linear_rows_arrays(arrays):
    """Row-chunked arguments: [(name, array, n_trailing)] (n_trailing 1 for hidden (..., d), 0 for
    target) as Dask arrays with common row chunks (those of the first Dask one) and one chunk along d."""
    converted = [(name, _as_dask(a, name), is_dask_array(a), n_trailing) for name, a, n_trailing in arrays]
    batch_chunks = None
    for _, arr, was_dask, n_trailing in converted:
        if was_dask:
            batch_chunks = arr.chunks[:arr.ndim - n_trailing]
            break
    if batch_chunks is None:
        arr, n_trailing = converted[0][1], converted[0][3]
        batch_chunks = tuple((n,) for n in arr.shape[:arr.ndim - n_trailing])
    out = []
    for name, arr, _, n_trailing in converted:
        if arr.shape[:arr.ndim - n_trailing] != tuple(sum(c) for c in batch_chunks):
            out.append(arr)  # a shape error, reported by the caller's shape checks
            continue
        wanted = tuple(batch_chunks) + tuple((n,) for n in arr.shape[arr.ndim - n_trailing:])
        out.append(arr if arr.chunks == wanted else arr.rechunk(wanted))
    return out, tuple(batch_chunks)


def _linear_dtype_checks(linear, pairs):
    """The front-end's dtype errors (complex, non-numeric), from empty probes of each dtype."""
    for name, arr in pairs:
        if arr is not None:
            linear._operand(np.empty((0,), dtype=arr.dtype), name)


def _linear_call_front_end(name, static, names, *blocks):
    kwargs = dict(static)
    kwargs.update(zip(names, blocks))
    return _front_end(name)(**kwargs)


def _linear_rows_block(name, static, names, *blocks):
    return np.asarray(_linear_call_front_end(name, static, names, *blocks))


def _linear_partial_block(name, static, names, denominator, *blocks):
    """``[numerator, denominator]`` of one row chunk, shaped ``(1, ..., 1, 2)``."""
    kwargs = dict(static)
    kwargs.update(zip(names, blocks))
    numerator = float(_front_end(name)(**kwargs))
    hidden = blocks[0]
    if denominator == "rows":
        den = float(math.prod(hidden.shape[:-1]))
    else:
        den = _target_denominator(kwargs["target"], kwargs.get("weight"), kwargs.get("ignore_index"))
    return np.array([numerator, den], dtype=np.float64).reshape((1,) * (hidden.ndim - 1) + (2,))


class _LinearCall:
    """Blockwise calls of a fused-linear front-end over the row chunks of ``hidden``."""

    def __init__(self, name, row_args, constants, static, batch_chunks):
        # row_args: [(keyword, dask array, index)], constants: [(keyword, dask array or None, index)]
        self.name = name
        self.static = static
        self.nb = len(batch_chunks)
        self.batch = _LINEAR_BATCH_LETTERS[:self.nb]
        self.batch_chunks = batch_chunks
        self.names, self.pairs = [], []
        for keyword, arr, index in list(row_args) + [c for c in constants if c[1] is not None]:
            self.names.append(keyword)
            self.pairs += [arr, index]
        self.names = tuple(self.names)

    def rows(self, dtype):
        da = _dask_array_module()
        return da.blockwise(_linear_rows_block, self.batch, self.name, None, self.static, None, self.names, None,
                            *self.pairs, concatenate=True, dtype=dtype, meta=np.empty((0,) * self.nb, dtype=dtype))

    def totals(self, denominator):
        """Shape-(2,) Dask array ``[sum of numerators, sum of denominators]`` over the row chunks."""
        da = _dask_array_module()
        static = dict(self.static, reduction="sum")
        parts = da.blockwise(_linear_partial_block, self.batch + "p", self.name, None, static, None, self.names,
                             None, denominator, None, *self.pairs, concatenate=True, new_axes={"p": 2},
                             adjust_chunks={b: (lambda c: 1) for b in self.batch}, dtype=np.float64,
                             meta=np.empty((0,) * (self.nb + 1), dtype=np.float64))
        return parts.sum(axis=tuple(range(self.nb)), dtype=np.float64) if self.nb else parts


def _linear_one_model(name, hidden, head, bias, target, weight, static):
    """Validate (shapes, dtypes, keywords) and build the blockwise call of a one-model function."""
    from . import _linear as linear

    row_args = [("hidden", hidden, 1)] + ([("target", target, 0)] if target is not None else [])
    arrays, batch_chunks = _linear_rows_arrays(row_args)
    head_d, bias_d, weight_d = (_linear_constant(head, "head"), _linear_constant(bias, "bias"),
                                _linear_constant(weight, "weight"))
    hidden_d = arrays[0]
    linear.check_model_shapes(hidden_d.shape, head_d.shape, None if bias_d is None else bias_d.shape)
    _linear_dtype_checks(linear, [("hidden", hidden_d), ("head", head_d), ("bias", bias_d), ("weight", weight_d)])
    if target is not None:
        linear.check_target_dtype(arrays[1].dtype)
        linear.check_target_shape(arrays[1].shape, hidden_d.shape)
    if weight_d is not None:
        linear.check_weight_shape(weight_d.shape, head_d.shape)
    kinds = [linear._operand(np.empty((0,), dtype=a.dtype), "")[1] for a in (hidden_d, head_d)]
    batch = _LINEAR_BATCH_LETTERS[:len(batch_chunks)]
    if len(batch_chunks) > len(_LINEAR_BATCH_LETTERS):
        raise ValueError(f"hidden has too many dimensions for the Dask layer ({hidden_d.ndim})")
    rows = [("hidden", hidden_d, batch + "z")] + ([("target", arrays[1], batch)] if target is not None else [])
    constants = [("head", head_d, "vz"), ("bias", bias_d, "v"), ("weight", weight_d, "v")]
    return _LinearCall(name, rows, constants, static, batch_chunks), linear._result_dtype(*kinds), kinds


def _linear_ce_keywords(reduction, ignore_index, label_smoothing, temperature):
    from . import _linear as linear

    check_reduction(reduction)
    check_temperature(temperature)
    linear._check_label_smoothing(label_smoothing)
    linear._check_ignore_index(ignore_index)


def linear_cross_entropy(hidden, head, target, *, bias=None, reduction="mean", ignore_index=None,
                         label_smoothing=0.0, weight=None, temperature=1.0):
    _linear_ce_keywords(reduction, ignore_index, label_smoothing, temperature)
    static = {"ignore_index": ignore_index, "label_smoothing": label_smoothing, "temperature": temperature,
              "reduction": reduction}
    call, dtype, _ = _linear_one_model("linear_cross_entropy", hidden, head, bias, target, weight, static)
    if reduction == "none":
        return call.rows(dtype)
    return _scalar_from_totals(call.totals("target"), reduction)


def linear_perplexity(hidden, head, target, *, bias=None, ignore_index=None, temperature=1.0):
    _linear_ce_keywords("mean", ignore_index, 0.0, temperature)
    static = {"ignore_index": ignore_index, "temperature": temperature}
    call, _, _ = _linear_one_model("linear_cross_entropy", hidden, head, bias, target, None, static)
    return _scalar_from_totals(call.totals("target"), "perplexity")


def linear_softmax_entropy(hidden, head, *, bias=None, temperature=1.0, base=None):
    check_temperature(temperature)
    log_base_divisor(base)
    call, dtype, _ = _linear_one_model("linear_softmax_entropy", hidden, head, bias, None, None,
                                       {"temperature": temperature, "base": base})
    return call.rows(dtype)


def linear_kl_divergence(hidden_p, head_p, hidden_q, head_q, *, bias_p=None, bias_q=None, temperature=1.0,
                         reduction="none", base=None):
    from . import _linear as linear

    check_temperature(temperature)
    reduction = check_reduction(reduction)
    log_base_divisor(base)
    (hp, hq), batch_chunks = _linear_rows_arrays([("hidden_p", hidden_p, 1), ("hidden_q", hidden_q, 1)])
    wp, wq = _linear_constant(head_p, "head_p"), _linear_constant(head_q, "head_q")
    bp, bq = _linear_constant(bias_p, "bias_p"), _linear_constant(bias_q, "bias_q")
    linear.check_model_shapes(hp.shape, wp.shape, None if bp is None else bp.shape, ("hidden_p", "head_p", "bias_p"))
    linear.check_model_shapes(hq.shape, wq.shape, None if bq is None else bq.shape, ("hidden_q", "head_q", "bias_q"))
    linear.check_two_model_shapes(hp.shape, wp.shape, hq.shape, wq.shape)
    _linear_dtype_checks(linear, [("hidden_p", hp), ("head_p", wp), ("bias_p", bp), ("hidden_q", hq),
                                  ("head_q", wq), ("bias_q", bq)])
    kinds = [linear._operand(np.empty((0,), dtype=a.dtype), "")[1] for a in (hp, wp, hq, wq)]
    dtype = linear._result_dtype(*kinds)
    batch = _LINEAR_BATCH_LETTERS[:len(batch_chunks)]
    static = {"temperature": temperature, "base": base}
    call = _LinearCall("linear_kl_divergence", [("hidden_p", hp, batch + "y"), ("hidden_q", hq, batch + "z")],
                       [("head_p", wp, "vy"), ("head_q", wq, "vz"), ("bias_p", bp, "v"), ("bias_q", bq, "v")],
                       static, batch_chunks)
    if reduction == "none":
        return call.rows(dtype)
    return _scalar_from_totals(call.totals("rows"), reduction)


def _linear_grad_block(static, names, denominator, *blocks):
    """``(loss, grad_hidden, grad_head, grad_bias)`` of one row chunk. For ``"mean"`` the chunk runs
    with ``reduction="sum"`` and its gradients are divided by the global denominator (a Dask scalar
    from the targets); when that is 0 the chunk runs with ``"mean"`` itself, as the in-memory call."""
    kwargs = dict(static)
    kwargs.update(zip(names, blocks))
    scale = None
    if kwargs["reduction"] == "mean":
        den = float(np.asarray(denominator))
        if den != 0.0:
            kwargs["reduction"] = "sum"
            scale = den
    loss, grad_hidden, grad_head, grad_bias = _front_end("linear_cross_entropy_with_grad")(**kwargs)
    if scale is not None:
        grad_hidden, grad_head = ((g.astype(np.float64) / scale).astype(g.dtype, copy=False)
                                  for g in (grad_hidden, grad_head))
        if grad_bias is not None:
            grad_bias = (grad_bias.astype(np.float64) / scale).astype(grad_bias.dtype, copy=False)
    return loss, grad_hidden, grad_head, grad_bias


def _linear_pick(result, index):
    return result[index]


def _linear_pick_rows(result):
    return np.asarray(result[0])[..., None]


def _linear_pick_sum(result, nb):
    return np.full((1,) * (nb + 1), float(result[0]), dtype=np.float64)


def _linear_pick_head(result, nb):
    return result[2].reshape((1,) * nb + result[2].shape)


def _linear_pick_bias(result, nb):
    return result[3].astype(np.float64).reshape((1,) * nb + result[3].shape)


def linear_cross_entropy_with_grad(hidden, head, target, *, bias=None, reduction="mean", ignore_index=None,
                                   label_smoothing=0.0, weight=None, temperature=1.0):
    from . import _linear as linear

    da = _dask_array_module()
    _linear_ce_keywords(reduction, ignore_index, label_smoothing, temperature)
    static = {"ignore_index": ignore_index, "label_smoothing": label_smoothing, "temperature": temperature,
              "reduction": reduction}
    call, dtype, (hidden_kind, head_kind) = _linear_one_model(
        "linear_cross_entropy_with_grad", hidden, head, bias, target, weight, static)
    hidden_d, target_d = call.pairs[0], call.pairs[2]
    nb, batch = call.nb, call.batch
    n_vocab, d = call.pairs[4].shape
    weight_d = dict(zip(call.names, call.pairs[0::2])).get("weight")
    bias_d = dict(zip(call.names, call.pairs[0::2])).get("bias")

    denominator, denominator_index = None, None
    if reduction == "mean":
        parts = da.blockwise(
            _denominator_block, batch, target_d, batch, weight_d, None if weight_d is None else "v",
            ignore_index, None, n_vocab, None, adjust_chunks={c: (lambda n: 1) for c in batch},
            concatenate=True, dtype=np.float64, meta=np.empty((0,) * nb, np.float64))
        denominator, denominator_index = parts.sum(dtype=np.float64), ()
    fused = da.blockwise(_linear_grad_block, batch + "z", static, None, call.names, None, denominator,
                         denominator_index, *call.pairs, concatenate=True, dtype=object,
                         meta=np.empty((0,) * (nb + 1), dtype=object))
    grad_hidden_dtype = linear._grad_dtype(hidden_kind)
    grad_hidden = fused.map_blocks(_linear_pick, 1, dtype=grad_hidden_dtype,
                                   meta=np.empty((0,) * (nb + 1), dtype=grad_hidden_dtype))
    ones = tuple((1,) * len(c) for c in call.batch_chunks)
    head_dtype = linear._grad_dtype(head_kind)
    grad_head = fused.map_blocks(_linear_pick_head, nb, new_axis=[nb], chunks=ones + ((n_vocab,), (d,)),
                                 dtype=head_dtype, meta=np.empty((0,) * (nb + 2), dtype=head_dtype))
    batch_axes = tuple(range(nb))
    grad_head = grad_head.sum(axis=batch_axes, dtype=head_dtype) if nb else grad_head
    grad_bias = None
    if bias_d is not None:
        bias_dtype = linear._grad_dtype(linear._operand(np.empty((0,), dtype=bias_d.dtype), "bias")[1])
        grad_bias = fused.map_blocks(_linear_pick_bias, nb, chunks=ones + ((n_vocab,),), dtype=np.float64,
                                     meta=np.empty((0,) * (nb + 1), dtype=np.float64))
        grad_bias = (grad_bias.sum(axis=batch_axes, dtype=np.float64) if nb else grad_bias).astype(bias_dtype)
    if reduction == "none":
        kept = fused.map_blocks(_linear_pick_rows, chunks=call.batch_chunks + ((1,),), dtype=dtype,
                                meta=np.empty((0,) * (nb + 1), dtype=dtype))
        return kept[..., 0], grad_hidden, grad_head, grad_bias
    sums = fused.map_blocks(_linear_pick_sum, nb, chunks=ones + ((1,),), dtype=np.float64,
                            meta=np.empty((0,) * (nb + 1), dtype=np.float64))
    total = sums.sum(dtype=np.float64)
    if reduction == "sum":
        return total, grad_hidden, grad_head, grad_bias
    loss = da.blockwise(_divide_scalars, "", total, "", denominator, denominator_index,
                        dtype=np.float64, meta=np.empty((), np.float64))
    return loss, grad_hidden, grad_head, grad_bias


_DASK_IMPLEMENTATIONS.update({
    "logsumexp": logsumexp,
    "log_softmax": log_softmax,
    "softmax": softmax,
    "softmax_entropy": softmax_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
    "softmax_cross_entropy_with_grad": softmax_cross_entropy_with_grad,
    "perplexity": perplexity,
    "softmax_kl_divergence": softmax_kl_divergence,
    "entropy": entropy,
    "cross_entropy": cross_entropy,
    "kl_divergence": kl_divergence,
    "js_divergence": js_divergence,
    "mutual_info_matrix": mutual_info_matrix,
    "mutual_info_features": mutual_info_features,
    "linear_cross_entropy": linear_cross_entropy,
    "linear_cross_entropy_with_grad": linear_cross_entropy_with_grad,
    "linear_perplexity": linear_perplexity,
    "linear_softmax_entropy": linear_softmax_entropy,
    "linear_kl_divergence": linear_kl_divergence,
})

"""A drop-in for SciPy's log-sum-exp family and ``scipy.stats.entropy``.

``from fastinfo.scipy import logsumexp, softmax, log_softmax, entropy`` takes SciPy's signatures,
defaults and semantics (SciPy 1.17):

- :func:`logsumexp` as ``scipy.special.logsumexp(a, axis=None, b=None, keepdims=False,
  return_sign=False)``: ``axis=None`` reduces the whole array, tuples of axes, weights ``b`` that
  broadcast against ``a`` (zeros drop their element even when it is ``inf`` or NaN, negative
  weights subtract; a negative total is NaN unless ``return_sign``), SciPy's dtype promotion
  (integers and bools to float64, float16 and float32 kept);
- :func:`softmax`, :func:`log_softmax` as ``scipy.special``'s (``axis=None`` default; SciPy's
  placement of ``inf`` and NaN: ``log_softmax([inf, 0]) == [nan, -inf]``);
- :func:`entropy` as ``scipy.stats.entropy(pk, qk=None, base=None, axis=0, *,
  nan_policy="propagate", keepdims=False)``: normalisation along the axis, ``-inf`` from negative
  entries, 0 for an empty slice, ``nan_policy`` ``"propagate"`` / ``"omit"`` / ``"raise"``.

Real NumPy input (ndarrays, memmaps, lists, scalars) of float32 and float64 (float16 and integers
converted) runs on fastinfo's kernels: the reduced axes are moved to one contiguous block of each
row by transposing the view (no copy when the layout allows, else blocks of rows are copied), a
whole-array reduction over contiguous data is one long row split into fixed chunks (parallel, the
same bits for any thread count). Slices the kernels do not finish the SciPy way (NaN, infinities,
a weighted sum that cancels, negative probabilities) are recomputed by SciPy itself, slice by
slice. What the kernels do not cover at all goes to SciPy unchanged: complex, long double and
object input, other array types (array-API libraries, masked arrays, matrices), empty arrays,
``axis=()``, integer input to ``softmax``/``log_softmax`` (SciPy computes those in the integer
type), float16 input to ``entropy`` (SciPy normalises it in float16 first). ``import fastinfo.scipy`` does not import ``scipy.special`` or ``scipy.stats``; they are
imported when such a case occurs.

Values equal SciPy's to rounding (float64 ~1e-15 relative; float32 and float16 results are
computed in float32 / float64 and rounded once, so they can be closer to the exact value than
SciPy's own, computed in the input's precision).
"""
import math
import numbers
import operator

import numpy as np
from numpy.exceptions import AxisError

from . import _kernels

__all__ = ["logsumexp", "softmax", "log_softmax", "entropy"]

# A whole-array (one long row) log-sum-exp is computed over chunks of this many elements in
# parallel, then the chunks' results are combined: a fixed split, so the same bits for any
# number of threads.
_LONG_ROW_CHUNK = 1 << 16
# Non-contiguous layouts are copied in blocks of rows of at most this many elements.
_BLOCK_ELEMENTS = 1 << 20
_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_NAN_POLICIES = ("propagate", "omit", "raise")


def _special():
    import scipy.special

    return scipy.special


def _stats():
    import scipy.stats

    return scipy.stats


# -----------------------------------------------------------------------------
# Input and axes
# -----------------------------------------------------------------------------


def _plain(x):
    """``x`` as an ndarray when it is NumPy-native input (ndarray, memmap, list, tuple, Python or
    NumPy scalar) of a real numeric dtype; None for anything else (SciPy takes it)."""
    if isinstance(x, np.ndarray):
        if type(x) is not np.ndarray and not isinstance(x, np.memmap):
            return None  # masked arrays, matrices and other subclasses keep SciPy's handling
        arr = x.view(np.ndarray) if type(x) is not np.ndarray else x
    elif isinstance(x, (list, tuple, numbers.Number, np.generic)):
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError):
            return None
    else:
        return None
    if arr.dtype.kind not in "biuf" or not arr.flags.aligned:
        return None
    return arr


def _reduction_axes(axis, ndim):
    """Axes as NumPy's reductions take them (their exceptions and messages)."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for ax in axes:
        ax = operator.index(ax)
        if not -ndim <= ax < ndim:
            raise AxisError(ax, ndim)
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise ValueError("duplicate value in 'axis'")
    return tuple(out)


def _broadcast(*shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError("Array shapes are incompatible for broadcasting.") from None


def _promoted(*operands):
    """NumPy's result dtype of the operands (Python scalars weak, as SciPy promotes them)."""
    return np.result_type(*operands)


class _Rows:
    """An array with its reduced axes last, seen as ``(n_rows, n_reduced)`` rows.

    The batch axes and the reduced axes are each ordered by decreasing stride, so that the
    transposed view is C-contiguous whenever the data allow (no copy); otherwise rows are copied
    in blocks (``blocks``). Results come back in the original axis order."""

    def __init__(self, arr, axes):
        self.ndim = arr.ndim
        batch = [ax for ax in range(arr.ndim) if ax not in axes]
        reduced = [ax for ax in range(arr.ndim) if ax in axes]
        by_stride = lambda ax: -abs(arr.strides[ax])  # noqa: E731
        self.batch_sorted = sorted(batch, key=by_stride)
        self.batch = batch
        self.perm = self.batch_sorted + sorted(reduced, key=by_stride)
        self.view = arr.transpose(self.perm)
        self.batch_shape = self.view.shape[:len(batch)]
        self.n_rows = math.prod(self.batch_shape)
        self.n = math.prod(self.view.shape[len(batch):])
        self.contiguous = self.view.flags.c_contiguous

    def all_rows(self, dtype):
        rows = np.ascontiguousarray(self.view, dtype=dtype)
        return rows.reshape(self.n_rows, self.n)

    def blocks(self, dtype):
        """(first row, C-contiguous rows of dtype) covering every row, in order."""
        if self.contiguous and self.view.dtype == dtype:
            yield 0, self.view.reshape(self.n_rows, self.n)
            return
        if not self.batch_shape or self.n_rows <= 1:
            yield 0, self.all_rows(dtype)
            return
        per_index = self.n_rows // self.batch_shape[0]
        step = max(1, _BLOCK_ELEMENTS // max(1, per_index * self.n))
        for start in range(0, self.batch_shape[0], step):
            block = np.ascontiguousarray(self.view[start:start + step], dtype=dtype)
            yield start * per_index, block.reshape(-1, self.n)

    def gather(self, rows, dtype):
        """The rows of the given (row-major batch) indices, as a (k, n) array of dtype."""
        index = np.unravel_index(rows, self.batch_shape) if self.batch_shape else ()
        return np.ascontiguousarray(self.view[index], dtype=dtype).reshape(len(rows), self.n)

    def batch_result(self, flat):
        """Per-row results (n_rows,) as an array over the batch axes in their original order."""
        shaped = flat.reshape(self.batch_shape)
        return shaped.transpose([self.batch_sorted.index(ax) for ax in self.batch])

    def elementwise_result(self, out):
        """``out`` of the view's shape, back in the original axis order (a view)."""
        return out.transpose(np.argsort(self.perm))


class _PairedRows:
    """Rows of two operands that broadcast against each other, each read through its own compact
    rows and an index (empty: the identity), as the distribution kernels take them."""

    def __init__(self, a, b, shape, axes, dtype):
        ndim = len(shape)
        reference = a if a.shape == tuple(shape) else b
        reference = reference.reshape((1,) * (ndim - reference.ndim) + reference.shape)
        batch = [ax for ax in range(ndim) if ax not in axes]
        reduced = [ax for ax in range(ndim) if ax in axes]
        by_stride = lambda ax: -abs(reference.strides[ax])  # noqa: E731
        self.batch_sorted = sorted(batch, key=by_stride)
        self.batch = batch
        perm = self.batch_sorted + sorted(reduced, key=by_stride)
        full = tuple(shape[ax] for ax in perm)
        self.batch_shape = full[:len(batch)]
        self.n_rows = math.prod(self.batch_shape)
        self.n = math.prod(full[len(batch):])
        self.rows, self.index = [], []
        for x in (a, b):
            x = x.reshape((1,) * (ndim - x.ndim) + x.shape)
            # an operand of length 1 along a reduced axis is repeated along it (a copy of its own size)
            target = tuple(shape[ax] if ax in axes else x.shape[ax] for ax in range(ndim))
            if target != x.shape:
                x = np.broadcast_to(x, target)
            view = x.transpose(perm)
            own_batch = view.shape[:len(batch)]
            rows = np.ascontiguousarray(view, dtype=dtype).reshape(math.prod(own_batch), self.n)
            if own_batch == self.batch_shape:
                index = np.empty(0, dtype=np.int64)
            else:
                index = np.ascontiguousarray(np.broadcast_to(
                    np.arange(rows.shape[0], dtype=np.int64).reshape(own_batch), self.batch_shape).reshape(-1))
            self.rows.append(rows)
            self.index.append(index)

    def gather(self, which, rows):
        index = self.index[which]
        return self.rows[which][rows if index.size == 0 else index[rows]]

    def batch_result(self, flat):
        shaped = flat.reshape(self.batch_shape)
        return shaped.transpose([self.batch_sorted.index(ax) for ax in self.batch])


def _finish(result, axes, keepdims):
    """SciPy's result shape: the reduced axes kept as length 1 on request; 0-d as a NumPy scalar."""
    if keepdims:
        result = np.expand_dims(result, axes)
    return result[()] if result.ndim == 0 else result


# -----------------------------------------------------------------------------
# logsumexp
# -----------------------------------------------------------------------------


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    r"""Logarithm of the sum of exponentials, as :func:`scipy.special.logsumexp`.

    .. math:: \log \Big| \sum_j b_j e^{a_j} \Big| = m + \log \Big| \sum_j b_j e^{a_j - m} \Big|,
              \quad m = \max_{b_j \neq 0} a_j

    one read of ``a`` (and ``b``) per slice, the sum rescaled online when the maximum rises,
    accumulated in float64.

    Parameters
    ----------
    a : array_like
        Input array.
    axis : None, int or tuple of ints, optional
        Axes to reduce; ``None`` (default) reduces the whole array.
    b : array_like, optional
        Weights of ``exp(a)``, broadcastable with ``a``; zero weights drop their element (even an
        infinite or NaN one), negative weights subtract.
    keepdims : bool, optional
        Keep the reduced axes with length 1.
    return_sign : bool, optional
        Return ``(log|sum|, sign)``; without it a negative sum gives NaN.

    Returns
    -------
    res : ndarray or NumPy scalar
        In SciPy's promoted dtype of ``a`` and ``b`` (integers and bools: float64).
    sgn : ndarray or NumPy scalar
        Only with ``return_sign``: +1, 0 or -1 (NaN where ``res`` is NaN).

    Notes
    -----
    Slices whose maximum or sum is not finite, or whose weighted sum is exactly zero, are
    computed by SciPy itself (they are where SciPy's own finite-value formula does not apply).

    Examples
    --------
    >>> import numpy as np
    >>> from fastinfo.scipy import logsumexp
    >>> float(logsumexp(np.arange(10)))
    9.45862974442671
    >>> res, sign = logsumexp([1, 2], b=[1, -1], return_sign=True)
    >>> round(float(res), 12), float(sign)
    (1.541324854613, -1.0)
    """
    arr = _plain(a)
    weights = None if b is None else _plain(b)
    if arr is None or (b is not None and weights is None):
        return _special().logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    dtype = _promoted(arr, b if isinstance(b, (int, float)) else weights) if b is not None else arr.dtype
    if dtype.kind in "biu":
        dtype = np.dtype(np.float64)
    shape = arr.shape if weights is None else _broadcast(arr.shape, weights.shape)
    if dtype not in _FLOATS or math.prod(shape) == 0:
        return _special().logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    shape = shape or (1,)
    axes = _reduction_axes(axis, len(shape))
    if not axes:
        return _special().logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    compute = np.float32 if dtype != np.float64 else np.float64
    if weights is None:
        rows = _Rows(arr.reshape(shape), axes)
        lse = _lse_rows(rows, compute)
        small = np.flatnonzero(np.abs(lse) < _NEAR_ZERO)
        if small.size:
            lse[small] = _lse_separating_max(rows.gather(small, compute))
        res = rows.batch_result(lse)
        out = _finish(res.astype(dtype), axes, keepdims)
        if not return_sign:
            return out
        with np.errstate(invalid="ignore"):
            sign = np.where(np.isnan(res), np.nan, np.where(res == -np.inf, 0.0, 1.0)).astype(dtype)
        return out, _finish(sign, axes, keepdims)
    pair = _PairedRows(arr, weights, shape, axes, compute)
    res, sign = _weighted_lse(pair)
    if not return_sign:
        res[sign < 0] = np.nan
    res = _finish(pair.batch_result(res).astype(dtype), axes, keepdims)
    if not return_sign:
        return res
    return res, _finish(pair.batch_result(sign).astype(dtype), axes, keepdims)


def _lse_rows(rows, compute):
    """log-sum-exp (float64) of every row of a ``_Rows``."""
    out = np.empty(rows.n_rows, dtype=np.float64)
    if rows.contiguous and rows.n_rows < 4 and rows.n >= 2 * _LONG_ROW_CHUNK and rows.view.dtype == compute:
        flat_rows = rows.view.reshape(rows.n_rows, rows.n)
        for r in range(rows.n_rows):
            out[r] = _lse_long_row(flat_rows[r])
        return out
    for start, block in rows.blocks(compute):
        _kernels.softmax_logsumexp(block, 0, out[start:start + block.shape[0]])
    return out


# A log-sum-exp below this in magnitude is recomputed with SciPy's formula (the largest term
# separated, log1p of the rest): m + log(S) keeps only absolute accuracy (about |m| ulp), which
# near 0 (log(1 + e^-40), or a log-sum-exp of normalised log-probabilities) is no relative accuracy.
_NEAR_ZERO = 1e-6


def _lse_separating_max(rows):
    """SciPy's formula row by row: log1p(s) + log(c) + max, c the count of the maximum, s the sum
    of exp(x - max) over the other entries divided by c (rows with a finite maximum)."""
    top = np.max(rows, axis=1, keepdims=True)
    at_top = rows == top
    count = np.sum(at_top, axis=1, keepdims=True, dtype=rows.dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rest = np.sum(np.exp(np.where(at_top, -np.inf, rows) - top), axis=1, keepdims=True, dtype=rows.dtype)
        rest = np.where(rest == 0, rest, rest / count)
        return (np.log1p(rest) + np.log(count) + top)[:, 0].astype(np.float64)


def _lse_long_row(row):
    """One long contiguous row: fixed chunks in parallel, then the log-sum-exp of their results
    (which keeps the -inf / +inf / NaN rules: a NaN anywhere is NaN, +inf wins over finite)."""
    n_chunks, tail = divmod(row.shape[0], _LONG_ROW_CHUNK)
    parts = np.empty(n_chunks + (1 if tail else 0), dtype=np.float64)
    _kernels.softmax_logsumexp(row[:n_chunks * _LONG_ROW_CHUNK].reshape(n_chunks, _LONG_ROW_CHUNK), 0,
                               parts[:n_chunks])
    if tail:
        _kernels.softmax_logsumexp(row[n_chunks * _LONG_ROW_CHUNK:].reshape(1, tail), 0, parts[n_chunks:])
    total = np.empty(1, dtype=np.float64)
    _kernels.softmax_logsumexp(parts.reshape(1, -1), 0, total)
    return total[0]


def _weighted_lse(pair):
    """(log|sum b e^a|, sign) per row, float64; rows the kernel does not finish go to SciPy."""
    n = pair.n_rows
    m = np.empty(n, dtype=np.float64)
    s = np.empty(n, dtype=np.float64)
    w = np.empty(n, dtype=np.float64)
    nan = np.empty(n, dtype=np.uint8)
    a_rows, b_rows = pair.rows
    a_index, b_index = pair.index
    if n < 4 and pair.n >= 2 * _LONG_ROW_CHUNK and a_index.size == 0 and b_index.size == 0:
        for r in range(n):
            m[r], s[r], w[r], nan[r] = _weighted_long_row(a_rows[r], b_rows[r])
    else:
        _kernels.scipy_weighted_lse_rows(a_rows, b_rows, a_index, b_index, m, s, w, nan)
    clean = (nan == 0) & np.isfinite(m) & np.isfinite(s) & (s != 0) & (w != 0) & np.isfinite(w)
    res = np.empty(n, dtype=np.float64)
    sign = np.empty(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        res[clean] = m[clean] + np.log(np.abs(s[clean]))
        sign[clean] = np.sign(s[clean])
    clean &= ~(np.abs(res) < _NEAR_ZERO)   # results near 0: SciPy's formula keeps their digits
    rest = np.flatnonzero(~clean)
    if rest.size:
        # NaN, infinities, cancellation to zero: SciPy's own (naive) formula for those slices
        rest_res, rest_sign = _special().logsumexp(pair.gather(0, rest), axis=-1, b=pair.gather(1, rest),
                                                   return_sign=True)
        res[rest] = rest_res
        sign[rest] = rest_sign
    return res, sign


def _weighted_long_row(a, b):
    """(m, S, W, nan) of one long row from fixed chunks computed in parallel."""
    n_chunks, tail = divmod(a.shape[0], _LONG_ROW_CHUNK)
    k = n_chunks + (1 if tail else 0)
    m, s, w = np.empty(k), np.empty(k), np.empty(k)
    nan = np.empty(k, dtype=np.uint8)
    empty = np.empty(0, dtype=np.int64)
    head = n_chunks * _LONG_ROW_CHUNK
    _kernels.scipy_weighted_lse_rows(a[:head].reshape(n_chunks, -1), b[:head].reshape(n_chunks, -1), empty, empty,
                                     m[:n_chunks], s[:n_chunks], w[:n_chunks], nan[:n_chunks])
    if tail:
        _kernels.scipy_weighted_lse_rows(a[head:].reshape(1, -1), b[head:].reshape(1, -1), empty, empty,
                                         m[n_chunks:], s[n_chunks:], w[n_chunks:], nan[n_chunks:])
    # chunks without a nonzero weight have m = -inf and S = W = 0 (they add nothing)
    if nan.any() or np.isnan(m).any() or (m == np.inf).any() or not np.isfinite(m.max()):
        return np.nan, np.nan, np.nan, 1
    top = m.max()
    return top, float(np.sum(s * np.exp(m - top))), float(np.sum(w[m == top])), 0


# -----------------------------------------------------------------------------
# softmax, log_softmax
# -----------------------------------------------------------------------------


def softmax(x, axis=None):
    r"""Softmax, as :func:`scipy.special.softmax`: :math:`e^{x_j} / \sum_k e^{x_k}` over ``axis``.

    ``axis=None`` (default) normalises over the whole array; ints and tuples of ints name the axes.
    One online pass per slice (maximum and rescaled sum of exponentials), then one write pass.
    A slice holding NaN or ``+inf``, or all ``-inf``, is NaN (as SciPy's).

    Examples
    --------
    >>> import numpy as np
    >>> from fastinfo.scipy import softmax
    >>> softmax(np.array([[1.0, 1.0], [1.0, 3.0]]), axis=1).round(4)
    array([[0.5   , 0.5   ],
           [0.1192, 0.8808]])
    >>> float(softmax(np.zeros((2, 2))).sum())
    1.0
    """
    return _normalize(x, axis, False, "softmax")


def log_softmax(x, axis=None):
    r"""Log of the softmax, as :func:`scipy.special.log_softmax`: :math:`x_j - \log\sum_k e^{x_k}`.

    ``axis=None`` (default) over the whole array. SciPy's special values: a slice holding ``+inf``
    (and no NaN) gives NaN at the ``+inf`` entries and ``-inf`` elsewhere; NaN, or all ``-inf``,
    gives NaN everywhere.

    Examples
    --------
    >>> import numpy as np
    >>> from fastinfo.scipy import log_softmax
    >>> log_softmax(np.array([1000.0, 1.0]))
    array([   0., -999.])
    >>> log_softmax(np.array([np.inf, 0.0]))
    array([ nan, -inf])
    """
    return _normalize(x, axis, True, "log_softmax")


def _normalize(x, axis, log_output, name):
    arr = _plain(x)
    if arr is None or arr.dtype not in _FLOATS or arr.ndim == 0 or arr.size == 0:
        return getattr(_special(), name)(x, axis=axis)
    axes = _reduction_axes(axis, arr.ndim)
    if not axes:
        return getattr(_special(), name)(x, axis=axis)
    compute = np.float32 if arr.dtype != np.float64 else np.float64
    rows = _Rows(arr, axes)
    out = np.empty(rows.view.shape, dtype=compute)
    out_rows = out.reshape(rows.n_rows, rows.n)
    for start, block in rows.blocks(compute):
        _kernels.softmax_normalize(block, 0, out_rows[start:start + block.shape[0]], 1.0, log_output, True)
    if log_output:
        # the kernel gives NaN for a slice with +inf; SciPy gives NaN at the +inf entries and -inf
        # elsewhere (x - inf), as long as the slice holds no NaN
        candidates = np.flatnonzero(np.isnan(out_rows[:, 0]))
        if candidates.size:
            values = rows.gather(candidates, compute)
            fix = ~np.isnan(values).any(axis=1) & (values == np.inf).any(axis=1)
            out_rows[candidates[fix]] = np.where(values[fix] == np.inf, np.nan, -np.inf)
    result = rows.elementwise_result(out)
    return result.astype(arr.dtype) if arr.dtype != compute else result


# -----------------------------------------------------------------------------
# entropy
# -----------------------------------------------------------------------------


def entropy(pk, qk=None, base=None, axis=0, *, nan_policy="propagate", keepdims=False):
    r"""Shannon entropy or relative entropy, as :func:`scipy.stats.entropy`.

    .. math:: H = -\sum_i \hat p_i \log \hat p_i, \qquad
              D = \sum_i \hat p_i \log(\hat p_i / \hat q_i), \qquad \hat p = p / \textstyle\sum p

    along ``axis`` (default 0; ``None``: the whole array; a tuple of axes), with SciPy's
    conventions: the entries are normalised first (counts work), ``0 log 0 = 0``, a negative
    normalised entry gives ``-inf`` (``entr``), ``q = 0 < p`` gives ``inf``, an empty slice 0.

    Parameters
    ----------
    pk, qk : array_like
        (Unnormalised) probabilities; ``qk`` broadcasts against ``pk``.
    base : float, optional
        Logarithm base (default ``e``); must be positive.
    axis : int, tuple of ints or None, optional
    nan_policy : {"propagate", "omit", "raise"}, optional
        NaN in a slice: the slice's result is NaN, the NaN entries are left out, or ``ValueError``.
    keepdims : bool, optional
        Keep the reduced axes with length 1.

    Returns
    -------
    ndarray or NumPy scalar
        float64 (float32 for float32 input).

    Examples
    --------
    >>> from fastinfo.scipy import entropy
    >>> float(entropy([0.5, 0.5], base=2))
    1.0
    >>> round(float(entropy([1, 1], [9, 1], base=2)), 12)
    0.736965594166
    """
    p = _plain(pk)
    q = None if qk is None else _plain(qk)
    simple_base = base is None or (isinstance(base, numbers.Real) and not isinstance(base, (bool, np.bool_)))
    if p is None or (qk is not None and q is None) or not simple_base:
        return _scipy_entropy(pk, qk, base, axis, nan_policy, keepdims)
    dtype = _promoted(p) if q is None else _promoted(p, q)
    # float16: SciPy normalises in float16 (its entries rounded to 3 digits) before its float32
    # entr; those results are SciPy's own, so SciPy computes them
    if dtype.kind not in "biuf" or (dtype.kind == "f" and dtype not in _FLOATS[1:]):
        return _scipy_entropy(pk, qk, base, axis, nan_policy, keepdims)
    result_dtype = np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)
    p = np.atleast_1d(p)
    q = None if q is None else np.atleast_1d(q)
    if axis is None:
        reduced_axes = tuple(range(max(p.ndim, 0 if q is None else q.ndim)))
        p = p.reshape(-1)
        q = None if q is None else q.reshape(-1)
        if q is not None and p.shape != q.shape and 1 not in (p.size, q.size):
            # raveled samples that do not pair: SciPy's decorator meets NaN first, else the promotion
            if nan_policy not in _NAN_POLICIES:
                return _scipy_entropy(pk, qk, base, axis, nan_policy, keepdims)
            if np.isnan(p).any() or np.isnan(q).any():
                if nan_policy == "raise":
                    raise ValueError("The input contains nan values")
                if nan_policy == "propagate":
                    nan = np.asarray(np.nan, dtype=np.result_type(p, q, np.float16))
                    return np.expand_dims(nan, reduced_axes) if keepdims else nan[()]
                raise ValueError(f"operands could not be broadcast together with shapes {p.shape} {q.shape} ")
            raise ValueError("Array shapes are incompatible for broadcasting.")
        shape = p.shape if q is None else _broadcast(p.shape, q.shape)
        axes = (0,)
    else:
        shape = p.shape if q is None else _broadcast(p.shape, q.shape)
        axes = tuple(np.lib.array_utils.normalize_axis_tuple(axis, len(shape), "source"))
        if not axes:   # SciPy's decorator then reduces every axis (shape[:-0] is empty): its own case
            return _scipy_entropy(pk, qk, base, axis, nan_policy, keepdims)
        reduced_axes = axes
    if math.prod(shape) == 0:
        return _scipy_entropy(pk, qk, base, axis, nan_policy, keepdims)
    if nan_policy not in _NAN_POLICIES:
        # SciPy's message prints a set, in the order its own set iterates: SciPy raises it
        return _scipy_entropy(pk, qk, base, axis, nan_policy, keepdims)
    compute = np.float32 if result_dtype == np.float32 else np.float64
    if q is None:
        rows = _Rows(p.reshape(shape), axes)
        out = np.empty(rows.n_rows, dtype=np.float64)  # the kernels' per-row results are double
        status = np.empty(rows.n_rows, dtype=np.uint8)
        for start, block in rows.blocks(compute):
            end = start + block.shape[0]
            _kernels.distribution_entropy_rows(block, 0, out[start:end], status[start:end], 1.0)
        out = out.astype(compute, copy=False)  # float32: rounded once, as the float32 kernels round
        gather = lambda which, idx: rows.gather(idx, compute)  # noqa: E731
    else:
        rows = _PairedRows(p, q, shape, axes, compute)
        out = np.empty(rows.n_rows, dtype=np.float64)
        status = np.empty(rows.n_rows, dtype=np.uint8)
        _kernels.distribution_pq_rows(1, rows.rows[0], rows.rows[1], 0, rows.index[0], rows.index[1], out, status,
                                      0.0, 1.0)
        out = out.astype(compute, copy=False)
        gather = rows.gather
    special = np.flatnonzero((status != 0) | np.isnan(out))
    any_computed = True
    if special.size:
        p_special = gather(0, special)
        q_special = None if q is None else gather(1, special)
        has_nan = np.isnan(p_special).any(axis=1)
        if q_special is not None:
            has_nan |= np.isnan(q_special).any(axis=1)
        if has_nan.any():
            if nan_policy == "raise":
                raise ValueError("The input contains nan values")
            any_computed = nan_policy == "omit" or not has_nan.all() or special.size < rows.n_rows
        if base is not None and base <= 0 and any_computed:
            raise ValueError("`base` must be a positive number or `None`.")
        stats = _stats()
        with np.errstate(all="ignore"):
            redo = special[~has_nan] if nan_policy == "propagate" else special
            keep = ~has_nan if nan_policy == "propagate" else slice(None)
            if redo.size:
                out[redo] = stats.entropy(p_special[keep], None if q_special is None else q_special[keep],
                                          axis=-1, nan_policy=nan_policy)
            if nan_policy == "propagate":
                out[special[has_nan]] = np.nan
    elif base is not None and base <= 0:
        raise ValueError("`base` must be a positive number or `None`.")
    result = rows.batch_result(out).astype(result_dtype, copy=False)
    result = result[()] if result.ndim == 0 else result
    if base is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            result = result / math.log(base)
    if keepdims:
        return np.expand_dims(result, reduced_axes)
    return result


def _scipy_entropy(pk, qk, base, axis, nan_policy, keepdims):
    # nan_policy and keepdims only when not the defaults: SciPy refuses them for lazy arrays (Dask)
    options = {} if nan_policy == "propagate" else {"nan_policy": nan_policy}
    if keepdims is not False:
        options["keepdims"] = keepdims
    return _stats().entropy(pk, qk, base=base, axis=axis, **options)

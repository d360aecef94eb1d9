"""Softmax family front-ends (validate -> call kernel -> shape result).

Every function takes logits, moves the class axis last once (``_validation.as_rows``, a copy
only when the layout demands it) and calls one kernel of ``_kernels_softmax.pxi`` that reads
each row once (online max and rescaled sum-exp), with per-row results summed here in a fixed
order (``np.sum`` over the per-row array), so results do not depend on the thread count.
float16 and bfloat16 logits (NumPy, ml_dtypes or torch) reach the kernels as their bits and are
widened there, as they are read; their results are float32.
"""
import math
import numbers
import operator

import numpy as np

from . import _kernels
from ._validation import (
    DenseArray,
    aligned,
    array_and_half,
    as_dense_array,
    as_float_array,
    as_rows,
    check_out,
    check_reduction,
    check_temperature,
    from_rows,
    half_name,
    widen_half,
    log_base_divisor,
    normalize_axis,
)

__all__ = [
    "logsumexp",
    "log_softmax",
    "softmax",
    "softmax_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_grad",
    "perplexity",
    "softmax_kl_divergence",
]


def _per_row(values, dtype, batch_shape):
    """Per-slice result: an ndarray of ``dtype`` shaped ``batch_shape``; a NumPy scalar for 1-D input."""
    res = np.asarray(values).astype(dtype, copy=False).reshape(batch_shape)
    return res[()] if res.ndim == 0 else res


def _logits_rows(x, axis, name):
    """``(DenseArray, axis, rows, batch_shape)``: rows hold float16 / bfloat16 bits for half input."""
    arr = as_dense_array(x, name)
    ax = normalize_axis(axis, arr.ndim)
    rows, batch_shape = as_rows(arr.data, ax)
    return arr, ax, rows, batch_shape


def _common_type(a, b):
    """Two dense inputs in one element type: as they are when they share it, else both in their common
    float dtype (float32 for two different half types; a documented conversion, the only one)."""
    if a.same_type(b):
        return a, b
    dtype = np.result_type(a.result_dtype, b.result_dtype)
    return DenseArray(a.values(dtype)), DenseArray(b.values(dtype))


def logsumexp(x, axis=-1, keepdims=False):
    r"""Logarithm of the sum of exponentials along an axis.

    .. math:: \operatorname{logsumexp}(x) = \log \sum_c e^{x_c} = m + \log \sum_c e^{x_c - m},
              \quad m = \max_c x_c

    computed in one read of each slice (online maximum and rescaled sum). Matches
    :func:`scipy.special.logsumexp` for real input: a slice that is all ``-inf`` gives ``-inf``,
    one holding ``+inf`` gives ``+inf``, NaN gives NaN; an empty slice gives ``-inf``.

    Parameters
    ----------
    x : array_like or torch.Tensor
        Logits. float32 stays float32; float16 and bfloat16 (``ml_dtypes.bfloat16``, or a torch
        tensor) are read as they are and give float32; integers become float64. A CPU torch tensor
        is read without a copy when contiguous (a non-contiguous one is copied once).
    axis : int, optional
        Axis to reduce (default: last).
    keepdims : bool, optional
        Keep the reduced axis with length 1.

    Returns
    -------
    ndarray or scalar
        One value per slice, in the input's float dtype (float32 for half precision; a NumPy
        scalar for 1-D input).

    Examples
    --------
    >>> import fastinfo as fi
    >>> round(float(fi.logsumexp([0.0, 0.0])), 6)   # log 2
    0.693147
    """
    arr, ax, rows, batch_shape = _logits_rows(x, axis, "x")
    out = np.empty(rows.shape[0], dtype=np.float64)
    if rows.shape[1] == 0:
        out.fill(-np.inf)
    else:
        _kernels.softmax_logsumexp(rows, arr.half, out)
    res = out.astype(arr.result_dtype, copy=False).reshape(batch_shape)
    if keepdims:
        return np.expand_dims(res, ax)
    return res[()] if res.ndim == 0 else res


def _same_rows(out_rows, rows):
    """True when ``out_rows`` is exactly ``rows`` (in place: each vector is read before it is written)."""
    return (out_rows.__array_interface__["data"][0] == rows.__array_interface__["data"][0]
            and out_rows.strides == rows.strides and out_rows.dtype == rows.dtype)


def _normalize(x, axis, temperature, out, log_output):
    s = 1.0 / check_temperature(temperature)
    arr, ax, rows, batch_shape = _logits_rows(x, axis, "x")
    out_arr = None
    out_rows = None
    if out is not None:
        out_arr = check_out(out, arr.shape, arr)
        moved = np.moveaxis(out_arr.data, ax, -1)
        if moved.flags.c_contiguous and moved.flags.aligned:  # else: computed aside, then copied in
            out_rows = moved.reshape(rows.shape)
            if not _same_rows(out_rows, rows) and np.may_share_memory(out_rows, rows):
                rows = rows.copy()  # partial overlap, or another element type: read from a copy
    if out_rows is not None:
        res_rows = out_rows
    else:
        res_rows = np.empty(rows.shape, dtype=out_arr.data.dtype if out_arr is not None else arr.result_dtype)
    if rows.size:
        _kernels.softmax_normalize(rows, arr.half, res_rows, s, log_output, out_rows is None)
    if out is None:
        return from_rows(res_rows, batch_shape, ax, arr.ndim)
    if out_rows is None:
        target = np.moveaxis(out_arr.data, ax, -1)
        np.copyto(target, res_rows.reshape(target.shape))
    return out


def log_softmax(x, axis=-1, *, temperature=1.0, out=None):
    r"""Logarithm of the softmax along an axis.

    .. math:: \operatorname{log\_softmax}(x)_c = \frac{x_c}{T} - \operatorname{logsumexp}(x / T)

    One online pass per slice for the maximum and the rescaled sum of exponentials, then one
    write pass. Matches :func:`scipy.special.log_softmax` and ``torch.log_softmax``; a slice
    holding NaN or ``+inf``, or all ``-inf``, is NaN in every element (as PyTorch).

    Parameters
    ----------
    x : array_like or torch.Tensor
        Logits. float16 and bfloat16 (NumPy, ``ml_dtypes.bfloat16`` or a CPU torch tensor) are
        read as they are, without a converted copy (a non-contiguous torch tensor, or a layout
        whose class axis is not contiguous, is copied once in its own dtype).
    axis : int, optional
        The class axis (default: last).
    temperature : float, optional
        ``T > 0``; the function is applied to ``x / T``.
    out : ndarray or torch.Tensor, optional
        Where to write the result: same shape as ``x``, of the result's dtype, or of the
        half-precision input's own dtype (each element computed in double and rounded once, to
        nearest even). May be ``x`` itself (in place). Returned.

    Returns
    -------
    ndarray
        Same shape as ``x``, its float dtype (float32 for half-precision input).

    Examples
    --------
    >>> import fastinfo as fi
    >>> fi.log_softmax([0.0, 0.0]).round(6)
    array([-0.693147, -0.693147])
    """
    return _normalize(x, axis, temperature, out, True)


def softmax(x, axis=-1, *, temperature=1.0, out=None):
    r"""Softmax along an axis: :math:`\operatorname{softmax}(x)_c = e^{x_c/T} / \sum_k e^{x_k/T}`.

    Equal to ``exp(log_softmax(x))``, computed as ``exp(x/T - max) / sum`` in one online pass
    (which keeps the exponentials, taken against the running maximum, in a scratch row) and one
    write pass that rescales them. Matches :func:`scipy.special.softmax`; a slice holding NaN or ``+inf``, or all
    ``-inf``, is NaN in every element. Parameters as :func:`log_softmax`.

    Notes
    -----
    float32 input is computed with a float32 exponential (about 1 ulp) of ``x/T - max`` rounded to
    float32, so tiny probabilities far below the maximum (``x/T - max`` around -20) carry relative
    errors of a few float32 ulps, as in PyTorch; float64 results are within 1e-13 relative.

    Examples
    --------
    >>> import fastinfo as fi
    >>> fi.softmax([0.0, 0.0, 0.0, 0.0]).tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    return _normalize(x, axis, temperature, out, False)


def softmax_entropy(logits, axis=-1, *, temperature=1.0, base=None):
    r"""Shannon entropy of ``softmax(logits / T)`` per slice.

    .. math:: H = -\sum_c p_c \log p_c = \log S - \frac{1}{S}\sum_c e^{t_c} t_c,
              \quad t_c = \frac{x_c - m}{T},\ S = \sum_c e^{t_c}

    fused in one read of each slice (both sums are rescaled online when the running max rises),
    with no temporary of the input's size. Divided by ``log(base)`` when ``base`` is given.

    Examples
    --------
    >>> import fastinfo as fi
    >>> round(float(fi.softmax_entropy([1.0, 1.0], base=2)), 12)
    1.0
    """
    s = 1.0 / check_temperature(temperature)
    divisor = log_base_divisor(base)
    arr, ax, rows, batch_shape = _logits_rows(logits, axis, "logits")
    out = np.empty(rows.shape[0], dtype=np.float64)
    if rows.shape[1] == 0:
        out.fill(np.nan)
    else:
        _kernels.softmax_entropy_rows(rows, arr.half, s, out)
    if divisor != 1.0:
        out /= divisor
    return _per_row(out, arr.result_dtype, batch_shape)


def softmax_kl_divergence(logits_p, logits_q, axis=-1, *, temperature=1.0, reduction="none", base=None):
    r"""Kullback-Leibler divergence between the softmaxes of two sets of logits, per slice.

    .. math:: \mathrm{KL}(p \,\|\, q) = \sum_c p_c (\log p_c - \log q_c),\quad
              p = \operatorname{softmax}(a/T),\ q = \operatorname{softmax}(b/T)

    computed as :math:`\frac{1}{S_a}\sum_c e^{t_c}(a_c - b_c)/T - \operatorname{lse}(a/T) +
    \operatorname{lse}(b/T)` in one read of both arrays. Forward vs reverse KL is the argument order.
    Equals ``torch.nn.functional.kl_div(log_softmax(b), log_softmax(a), log_target=True)`` summed
    over classes. ``reduction="mean"`` averages over slices, ``"sum"`` adds them (Python floats).
    Both inputs are read as they are when they share a dtype (float16 and bfloat16 included);
    inputs of different dtypes are computed in their common float dtype (float32 for two
    different half-precision types), the narrower one converted first.

    Examples
    --------
    >>> import fastinfo as fi
    >>> float(fi.softmax_kl_divergence([1.0, 2.0], [1.0, 2.0]))
    0.0
    """
    s = 1.0 / check_temperature(temperature)
    reduction = check_reduction(reduction)
    divisor = log_base_divisor(base)
    a = as_dense_array(logits_p, "logits_p")
    b = as_dense_array(logits_q, "logits_q")
    if a.shape != b.shape:
        raise ValueError(f"logits_p and logits_q must have the same shape; got {a.shape} and {b.shape}")
    a, b = _common_type(a, b)
    dtype = a.result_dtype
    ax = normalize_axis(axis, a.ndim)
    rows_a, batch_shape = as_rows(a.data, ax)
    rows_b, _ = as_rows(b.data, ax)
    out = np.empty(rows_a.shape[0], dtype=np.float64)
    if rows_a.shape[1] == 0:
        out.fill(np.nan)
    else:
        _kernels.softmax_kl_rows(rows_a, rows_b, a.half, s, out)
    if divisor != 1.0:
        out /= divisor
    if reduction == "none":
        return _per_row(out, dtype, batch_shape)
    if reduction == "sum":
        return float(np.sum(out))
    return float(np.sum(out) / out.size) if out.size else math.nan


def _check_label_smoothing(label_smoothing):
    if isinstance(label_smoothing, (bool, np.bool_)) or not isinstance(
        label_smoothing, (numbers.Real, np.floating, np.integer)
    ):
        raise TypeError(f"label_smoothing must be a number in [0, 1]; got {label_smoothing!r}")
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1]; got {label_smoothing!r}")
    return eps


def _check_ignore_index(ignore_index):
    if ignore_index is None:
        return False, 0
    if isinstance(ignore_index, (bool, np.bool_)):
        raise TypeError(f"ignore_index must be an int or None; got {ignore_index!r}")
    try:
        value = operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"ignore_index must be an int or None; got {ignore_index!r}") from None
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"ignore_index must fit in int64; got {value}")
    return True, value


def _cross_entropy(logits, target, axis, reduction, ignore_index, label_smoothing, weight, temperature,
                   want_grad, out=None):
    """Shared body of the cross-entropy functions: returns (loss, grad or None)."""
    s = 1.0 / check_temperature(temperature)
    reduction = check_reduction(reduction)
    eps = _check_label_smoothing(label_smoothing)
    has_ignore, ignore_value = _check_ignore_index(ignore_index)
    arr, ax, rows, batch_shape = _logits_rows(logits, axis, "logits")
    n_rows, n_classes = rows.shape
    dtype = arr.result_dtype

    if weight is None:
        w = np.empty(1, dtype=np.float64)
    else:
        w = np.ascontiguousarray(as_float_array(weight, "weight"), dtype=np.float64)
        if w.shape != (n_classes,):
            raise ValueError(f"weight must have shape ({n_classes},) (one per class of logits along axis "
                             f"{ax}); got {w.shape}")

    tgt, tgt_half = array_and_half(target, "target")
    if tgt_half:
        if tgt.shape != arr.shape:
            raise TypeError(f"target has dtype {half_name(tgt_half)} and shape {tgt.shape}: class indices must be "
                            f"an integer array (of shape {arr.shape[:ax] + arr.shape[ax + 1:]}), and a "
                            f"half-precision target can only hold probabilities, of the logits' shape {arr.shape}")
        kind = "f"
    else:
        kind = tgt.dtype.kind
    loss = np.empty(n_rows, dtype=np.float64)
    grad_out, grad_rows, grad_half_out = None, None, 0
    if want_grad and out is not None:
        grad_out = check_out(out, arr.shape, arr)
        moved = np.moveaxis(grad_out.data, ax, -1)
        if moved.flags.c_contiguous and moved.flags.aligned:  # else: computed aside, then copied in
            grad_rows = moved.reshape(rows.shape)
            if not _same_rows(grad_rows, rows) and np.may_share_memory(grad_rows, rows):
                rows = rows.copy()  # partial overlap, or another element type: read from a copy
        grad_half_out = grad_out.half
    if grad_rows is None:
        grad_dtype = grad_out.data.dtype if grad_out is not None else dtype
        grad_rows = np.empty(rows.shape if want_grad else (0, 0), dtype=grad_dtype)

    if kind in "iu":
        expected = arr.shape[:ax] + arr.shape[ax + 1:]
        if tgt.shape != expected:
            raise ValueError(f"target of class indices must have shape {expected} (the logits' shape "
                             f"{arr.shape} without axis {ax}); got {tgt.shape}")
        if kind == "u" and tgt.dtype.itemsize == 8 and tgt.size and tgt.max() > np.iinfo(np.int64).max:
            raise ValueError(f"target holds {int(tgt.max())}, outside [0, {n_classes}) (the classes of logits)")
        t64 = aligned(np.ascontiguousarray(tgt, dtype=np.int64).reshape(-1))
        row_weight = np.empty(n_rows, dtype=np.float64)
        bad = _kernels.softmax_ce_check_targets(t64, n_classes, has_ignore, ignore_value, w,
                                                weight is not None, row_weight)
        if bad >= 0:
            where = np.unravel_index(bad, expected) if expected else ()
            extra = f" or ignore_index={ignore_value}" if has_ignore else " (ignore_index=None ignores nothing)"
            raise ValueError(f"target holds {int(t64[bad])} at index {tuple(int(i) for i in where)}, outside "
                             f"[0, {n_classes}) (the classes of logits along axis {ax}){extra}")
        denominator = np.sum(row_weight)
        gscale = (np.float64(1.0) / denominator if denominator != 0 else np.float64(np.inf)) \
            if reduction == "mean" else 1.0
        if n_rows and n_classes:
            _kernels.softmax_ce_index(rows, arr.half, t64, row_weight, has_ignore, ignore_value, w,
                                      weight is not None, s, eps, loss, grad_rows, want_grad, float(gscale))
        else:
            loss.fill(0.0)
            grad_rows.fill(0.0)
    elif kind == "f":
        if tgt.shape != arr.shape:
            raise ValueError(f"target of probabilities must have the logits' shape {arr.shape}; got {tgt.shape}")
        half = arr.half
        grad_aside = None
        if tgt_half and tgt_half == arr.half:
            q_rows, _ = as_rows(aligned(tgt), ax)   # logits and target read in their half type
        elif arr.half:
            # half-precision logits, a target of another dtype: computed in float32 (both converted),
            # or in float64 when the gradient goes to a half-precision out= (so it is rounded once)
            work = np.float64 if grad_half_out else np.float32
            q = DenseArray(tgt, tgt_half).values(work) if tgt_half else \
                as_float_array(tgt, "target").astype(work, copy=False)
            q_rows, _ = as_rows(q, ax)
            rows = widen_half(rows, arr.half).astype(work, copy=False)
            half = 0
            if grad_half_out:
                grad_aside = np.empty(rows.shape, dtype=np.float64)
        else:
            q = DenseArray(tgt, tgt_half).values(dtype) if tgt_half else \
                as_float_array(tgt, "target").astype(dtype, copy=False)
            q_rows, _ = as_rows(q, ax)
        if want_grad and np.may_share_memory(grad_rows, q_rows):
            q_rows = q_rows.copy()  # the gradient would overwrite the target it reads
        denominator = np.float64(n_rows)
        gscale = (1.0 / n_rows if n_rows else 1.0) if reduction == "mean" else 1.0
        if n_rows and n_classes:
            _kernels.softmax_ce_prob(rows, q_rows, half, w, weight is not None, s, eps, loss,
                                     grad_rows if grad_aside is None else grad_aside, want_grad, gscale)
            if grad_aside is not None:
                _kernels.round_to_half(grad_aside.reshape(-1), grad_rows.reshape(-1), grad_half_out)
        else:
            loss.fill(0.0)
    else:
        raise TypeError(f"target must hold integer class indices or floating-point probabilities; "
                        f"got dtype {tgt.dtype}")

    if reduction == "none":
        result = _per_row(loss, dtype, batch_shape)
    else:
        total = np.sum(loss)
        if reduction == "sum":
            result = float(total)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                result = float(np.float64(total) / np.float64(denominator))
    if not want_grad:
        return result, None
    if grad_out is None:
        return result, from_rows(grad_rows, batch_shape, ax, arr.ndim)
    target_view = np.moveaxis(grad_out.data, ax, -1)
    if not np.shares_memory(target_view, grad_rows):
        np.copyto(target_view, grad_rows.reshape(target_view.shape))
    return result, out


def softmax_cross_entropy(logits, target, axis=-1, *, reduction="mean", ignore_index=None, label_smoothing=0.0,
                          weight=None, temperature=1.0):
    r"""Cross-entropy of ``softmax(logits / T)`` against class indices or distributions.

    Follows ``torch.nn.functional.cross_entropy`` for every option. With ``z = logits / T``,
    ``lse = logsumexp(z)`` and ``ε = label_smoothing``:

    - integer ``target`` (the logits' shape without ``axis``, values in ``[0, C)`` or
      ``ignore_index``): :math:`\ell = (1-ε)\,w_t (\mathrm{lse} - z_t) + \frac{ε}{C}\sum_c w_c
      (\mathrm{lse} - z_c)`; ignored positions give 0; ``"mean"`` is :math:`\sum \ell / \sum w_t`
      over non-ignored positions (NaN when there are none);
    - floating ``target`` (the logits' shape): :math:`\ell = \sum_c w_c \tilde q_c (\mathrm{lse} - z_c)`,
      :math:`\tilde q = (1-ε) q + ε/C`; ``"mean"`` divides by the number of slices.

    ``w`` is ``weight`` (shape ``(C,)``) or 1. One read of the logits, no temporary of their size.

    Parameters
    ----------
    logits : array_like or torch.Tensor
        float16 and bfloat16 logits (NumPy, ``ml_dtypes.bfloat16`` or a CPU torch tensor) are read
        as they are, without a converted copy; their per-slice losses are float32. A
        non-contiguous torch tensor is copied once (in its own dtype).
    target : array_like or torch.Tensor of int or float
        Class indices (integers; a half-precision target cannot hold them: ``TypeError``) or
        probabilities of the logits' shape. Probabilities in the logits' own half dtype are read
        as they are; with half-precision logits, probabilities of another dtype are computed in
        float32, both converted first.
    axis : int, optional
        The class axis (default: last).
    reduction : {"mean", "sum", "none"}
    ignore_index : int or None
        Class index whose positions are ignored (``None``: nothing is ignored). Applies to
        class-index targets only, as in torch.
    label_smoothing : float in [0, 1]
    weight : array_like of shape (C,), optional
    temperature : float > 0

    Returns
    -------
    float or ndarray
        A Python float for ``"mean"``/``"sum"``; per-slice losses for ``"none"``.

    Examples
    --------
    >>> import fastinfo as fi
    >>> round(fi.softmax_cross_entropy([[0.0, 0.0]], [1]), 6)   # log 2
    0.693147
    """
    return _cross_entropy(logits, target, axis, reduction, ignore_index, label_smoothing, weight, temperature,
                          False)[0]


def softmax_cross_entropy_with_grad(logits, target, axis=-1, *, reduction="mean", ignore_index=None,
                                    label_smoothing=0.0, weight=None, temperature=1.0, out=None):
    r"""Cross-entropy and its gradient with respect to the logits, fused in one pass.

    Options and loss as :func:`softmax_cross_entropy`. The gradient of the reduced loss
    (of ``loss.sum()`` for ``reduction="none"``) with respect to the original logits is, per slice,

    .. math:: \frac{\partial \ell}{\partial x_j} = \frac{1}{T}\Big(\big(\textstyle\sum_c u_c\big)\,
              \operatorname{softmax}(z)_j - u_j\Big)

    with ``u`` the weighted (smoothed) target distribution, divided by the ``"mean"`` denominator.
    Ignored positions get 0; NaN slices get NaN.

    Parameters
    ----------
    logits, target, axis, reduction, ignore_index, label_smoothing, weight, temperature
        As :func:`softmax_cross_entropy` (float16 / bfloat16 logits and torch tensors included).
    out : ndarray or torch.Tensor, optional
        Where to write the gradient: the logits' shape, of the gradient's dtype or of the
        half-precision logits' own dtype (each element rounded once, to nearest even). May be the
        logits themselves (the gradient then replaces them). Returned as ``grad``.

    Returns
    -------
    (loss, grad)
        ``grad`` has the logits' shape and float dtype (float32 for half-precision logits), or is
        ``out``.

    Examples
    --------
    >>> import fastinfo as fi
    >>> loss, grad = fi.softmax_cross_entropy_with_grad([[0.0, 0.0]], [1])
    >>> grad.tolist()
    [[0.5, -0.5]]
    """
    return _cross_entropy(logits, target, axis, reduction, ignore_index, label_smoothing, weight, temperature,
                          True, out)


def perplexity(logits, target, axis=-1, *, ignore_index=None, temperature=1.0):
    r"""Perplexity: :math:`\exp` of the mean cross-entropy in nats over non-ignored positions.

    .. math:: \mathrm{PPL} = \exp\Big(\frac{1}{N}\sum_i \big(\mathrm{lse}(z_i) - z_{i,t_i}\big)\Big)

    NaN when every position is ignored.

    Examples
    --------
    >>> import fastinfo as fi
    >>> round(fi.perplexity([[0.0, 0.0, 0.0, 0.0]], [2]), 9)   # uniform over 4 classes
    4.0
    """
    mean, _ = _cross_entropy(logits, target, axis, "mean", ignore_index, 0.0, None, temperature, False)
    with np.errstate(over="ignore"):
        return float(np.exp(np.float64(mean)))

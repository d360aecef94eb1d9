"""Fused linear head + softmax losses (validate -> call kernel -> shape result).

The input is a model's last hidden states ``hidden`` of shape ``(..., d)`` and its unembedding
matrix ``head`` of shape ``(V, d)`` (``torch.nn.functional.linear``'s weight), with an optional
``bias`` of shape ``(V,)``. The logits ``hidden @ head.T + bias`` are never materialised: the kernels
of ``_kernels_linear.pxi`` compute them block by block (rows x vocabulary entries, one BLAS product
per block into a buffer that stays in cache) and fold each block at once into per-row online
statistics (max, sum of exponentials, target logit, entropy and KL sums). The front-ends turn those
statistics into losses with NumPy (a few operations on one value per row) and sum per-row values in
a fixed order, so the results do not depend on the thread count.

The blocking depends on the shapes only: rows in blocks of at most ``_BLOCK_ROWS_MAX``, the
vocabulary in blocks of ``_BLOCK_VOCAB``; when the rows give fewer than ``_TARGET_ITEMS`` row
blocks, the vocabulary is also split into groups that run in parallel and are merged in order.
"""
import math

import numpy as np

from . import _kernels
from ._softmax import _check_ignore_index, _check_label_smoothing, _per_row
from ._validation import (BFLOAT16, _torch_as_numpy, aligned, as_float_array, check_reduction, check_temperature,
                          is_torch_tensor, log_base_divisor)

__all__ = [
    "linear_cross_entropy",
    "linear_cross_entropy_with_grad",
    "linear_perplexity",
    "linear_softmax_entropy",
    "linear_kl_divergence",
]

_BLOCK_ROWS_MAX = 512   # rows of a logits block (and of the hidden block packed once per BLAS call)
_BLOCK_ROWS_MIN = 64
_BLOCK_VOCAB = 1024     # vocabulary entries of a logits block: 512 x 1024 float32 = 2 MiB per thread
_TARGET_ITEMS = 16      # work items wanted (row blocks x vocabulary groups) to keep the threads busy

F = _kernels.LINEAR_FIELDS
FLAGS = _kernels.LINEAR_FLAGS
KINDS = _kernels.LINEAR_KINDS


# =============================================================================
# The BLAS: SciPy's gemm through scipy.linalg.cython_blas, found when first needed
# =============================================================================


def _blas_thread_functions(library_path):
    """Addresses of ``set_num_threads(int)`` and ``get_num_threads()`` of the BLAS that
    ``library_path`` (scipy.linalg.cython_blas) links, or ``(0, 0)``.

    ``dlsym`` on a loaded library searches its dependencies too, so the BLAS's own symbols are
    found through the extension that calls it: OpenBLAS (as SciPy's wheels bundle it, with their
    ``scipy_`` prefix, or plain, with or without the 64-bit-integer suffixes), MKL, FlexiBLAS.
    """
    import ctypes

    try:
        library = ctypes.CDLL(library_path)
    except OSError:
        return 0, 0
    candidates = [(f"{prefix}openblas_set_num_threads{suffix}", f"{prefix}openblas_get_num_threads{suffix}")
                  for prefix in ("scipy_", "") for suffix in ("", "64_", "_64")]
    candidates += [("MKL_Set_Num_Threads", "MKL_Get_Max_Threads"),
                   ("flexiblas_set_num_threads", "flexiblas_get_num_threads")]
    for set_name, get_name in candidates:
        try:
            set_function = getattr(library, set_name)
            get_function = getattr(library, get_name)
        except AttributeError:
            continue
        return (ctypes.cast(set_function, ctypes.c_void_p).value or 0,
                ctypes.cast(get_function, ctypes.c_void_p).value or 0)
    return 0, 0


def _load_blas():
    """Hand SciPy's sgemm/dgemm (and its thread control) to the kernels, once per process."""
    if _kernels.linear_blas_loaded():
        return
    from scipy.linalg import cython_blas

    capi = cython_blas.__pyx_capi__
    set_threads, get_threads = _blas_thread_functions(cython_blas.__file__)
    _kernels.linear_set_blas(capi["sgemm"], capi["dgemm"], set_threads, get_threads)


# =============================================================================
# Validation: operands, shapes, blocking
# =============================================================================


def _is_bfloat16(dtype):
    return dtype.itemsize == 2 and dtype.kind == "V" and dtype.name == "bfloat16"


def _operand(x, name):
    """``x`` as an array the kernels read in place, and its element kind.

    float64, float32, float16 and ml_dtypes.bfloat16 are read as they are (half precision is widened
    block by block); integers, bools and other real types become float64 (the dtype policy)."""
    if isinstance(x, np.ndarray):
        arr = x
    elif is_torch_tensor(x):  # a CPU tensor, viewed (bfloat16: its bits as uint16)
        arr, half = _torch_as_numpy(x, name)
        if half == BFLOAT16:
            return aligned(arr), "bfloat16"
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    dtype = arr.dtype
    if dtype == np.float64 or dtype == np.float32 or dtype == np.float16 or _is_bfloat16(dtype):
        return aligned(arr), ("bfloat16" if _is_bfloat16(dtype) else dtype.name)
    arr = as_float_array(arr, name)  # complex and non-numeric raise here; the rest become float64
    if arr.dtype == np.float32:  # (only float16 maps to float32, handled above)
        return arr, "float32"
    return arr.astype(np.float64, copy=False), "float64"


def _result_dtype(*kinds):
    """Compute and per-row result dtype: float64 if any operand is float64, else float32."""
    return np.dtype(np.float64) if "float64" in kinds else np.dtype(np.float32)


def _grad_dtype(kind):
    """Dtype of the gradient with respect to an operand of ``kind``: its own for float32/float64;
    float32 for half precision (as every elementwise output of half-precision input)."""
    return np.dtype(np.float64) if kind == "float64" else np.dtype(np.float32)


def check_model_shapes(hidden_shape, head_shape, bias_shape, names=("hidden", "head", "bias")):
    """The shape checks of one model (hidden (..., d), head (V, d), bias (V,) or None), by shapes
    alone (the Dask layer runs them at graph construction)."""
    hname, wname, bname = names
    if len(hidden_shape) == 0:
        raise ValueError(f"{hname} must have at least one dimension (..., d); got a scalar")
    if len(head_shape) != 2:
        raise ValueError(f"{wname} must be 2-D (V, d), one row per vocabulary entry; got shape {head_shape}")
    if hidden_shape[-1] != head_shape[1]:
        raise ValueError(f"{hname} and {wname} must have the same width d: {hname} has shape {hidden_shape} "
                         f"(d = {hidden_shape[-1]}), {wname} has shape {head_shape} (d = {head_shape[1]})")
    if bias_shape is not None and bias_shape != (head_shape[0],):
        raise ValueError(f"{bname} must have shape ({head_shape[0]},), one entry per row of {wname} "
                         f"(shape {head_shape}); got {bname} of shape {bias_shape}")


def check_weight_shape(weight_shape, head_shape):
    if weight_shape != (head_shape[0],):
        raise ValueError(f"weight must have shape ({head_shape[0]},), one class weight per row of head (shape "
                         f"{head_shape}); got weight of shape {weight_shape}")


def check_target_shape(target_shape, hidden_shape):
    if target_shape != hidden_shape[:-1]:
        raise ValueError(f"target must have shape {hidden_shape[:-1]}, one class index per row of hidden (shape "
                         f"{hidden_shape}); got target of shape {target_shape}")


def check_target_dtype(dtype):
    if dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class indices (the fused functions take class targets "
                        f"only); got dtype {dtype}")


def check_two_model_shapes(hidden_p_shape, head_p_shape, hidden_q_shape, head_q_shape):
    if head_p_shape[0] != head_q_shape[0]:
        raise ValueError(f"head_p and head_q must have the same vocabulary size V (rows): head_p has shape "
                         f"{head_p_shape}, head_q has shape {head_q_shape}")
    if hidden_p_shape[:-1] != hidden_q_shape[:-1]:
        raise ValueError(f"hidden_p and hidden_q must have the same rows (shape without the last axis): "
                         f"hidden_p has shape {hidden_p_shape}, hidden_q has shape {hidden_q_shape}")


def _bias(bias, name):
    if bias is None:
        return None, None
    if isinstance(bias, np.ndarray) and _is_bfloat16(bias.dtype):
        return bias.astype(np.float32), "bfloat16"
    if is_torch_tensor(bias):
        arr, half = _torch_as_numpy(bias, name)
        if half == BFLOAT16:  # bfloat16 bits are the top half of the float32's
            return (np.asarray(arr, np.uint32) << 16).view(np.float32), "bfloat16"
        bias = arr
    arr = as_float_array(bias, name)
    return arr, arr.dtype.name


def _model(hidden, head, bias, names):
    """Validated model: ([hidden rows 2-D, kind, head, kind, bias or None], batch_shape, bias kind)."""
    hidden, hidden_kind = _operand(hidden, names[0])
    head, head_kind = _operand(head, names[1])
    bias, bias_kind = _bias(bias, names[2])
    check_model_shapes(hidden.shape, head.shape, None if bias is None else bias.shape, names)
    batch_shape = hidden.shape[:-1]
    rows = hidden.reshape(math.prod(batch_shape), hidden.shape[-1])
    return [rows, hidden_kind, head, head_kind, bias], batch_shape, bias_kind


def _kernel_model(model, dtype, scale):
    """The tuple the kernels take: kinds as codes, bias multiplied by s in the compute dtype."""
    rows, hidden_kind, head, head_kind, bias = model
    scaled = None if bias is None else np.ascontiguousarray(np.asarray(bias, np.float64) * scale, dtype=dtype)
    return (rows, KINDS[hidden_kind], head, KINDS[head_kind], scaled)


def _check_weight(weight, n_vocab, head_shape):
    if weight is None:
        return None
    w = np.ascontiguousarray(as_float_array(weight, "weight"), dtype=np.float64)
    check_weight_shape(w.shape, head_shape)
    return w


def _check_target(target, batch_shape, hidden_shape, n_vocab, has_ignore, ignore_value, weight):
    """int64 targets (flat), per-row weights (0 at ignored rows) and the rows to process (None: all)."""
    tgt = target if isinstance(target, np.ndarray) else np.asarray(target)
    check_target_dtype(tgt.dtype)
    check_target_shape(tgt.shape, hidden_shape)
    if tgt.dtype.kind == "u" and tgt.dtype.itemsize == 8 and tgt.size and tgt.max() > np.iinfo(np.int64).max:
        raise ValueError(f"target holds {int(tgt.max())}, outside [0, {n_vocab}) (the rows of head)")
    t64 = aligned(np.ascontiguousarray(tgt, dtype=np.int64).reshape(-1))
    row_weight = np.empty(t64.shape[0], dtype=np.float64)
    w = weight if weight is not None else np.empty(1, dtype=np.float64)
    bad = _kernels.softmax_ce_check_targets(t64, n_vocab, has_ignore, ignore_value, w, weight is not None,
                                            row_weight)
    if bad >= 0:
        where = np.unravel_index(bad, batch_shape) if batch_shape else ()
        extra = f" or ignore_index={ignore_value}" if has_ignore else " (ignore_index=None ignores nothing)"
        raise ValueError(f"target holds {int(t64[bad])} at index {tuple(int(i) for i in where)}, outside "
                         f"[0, {n_vocab}) (the rows of head){extra}")
    rows = None
    if has_ignore:
        kept = t64 != ignore_value
        if not kept.all():
            rows = np.flatnonzero(kept).astype(np.int64)
    return t64, row_weight, rows


def _blocking(n_rows, n_vocab):
    """(block_rows, block_vocab, n_groups) for n_rows processed rows: fixed by the shapes alone."""
    block_rows = -(-n_rows // _TARGET_ITEMS)
    block_rows = min(_BLOCK_ROWS_MAX, max(_BLOCK_ROWS_MIN, -(-block_rows // 16) * 16))
    block_rows = max(1, min(block_rows, n_rows))
    n_row_blocks = -(-n_rows // block_rows)
    n_vocab_blocks = max(1, -(-n_vocab // _BLOCK_VOCAB))
    n_groups = 1 if n_row_blocks >= _TARGET_ITEMS else min(n_vocab_blocks, -(-_TARGET_ITEMS // n_row_blocks))
    return block_rows, _BLOCK_VOCAB, n_groups


def _stats(flags, models, dtype, rows, n_rows, target, weight, scale, n_vocab):
    """Per-row statistics (float64 (n_rows, NF)) of one or two models over the processed rows."""
    _load_blas()
    block_rows, block_vocab, n_groups = _blocking(n_rows, n_vocab)
    model_q = models[1] if len(models) > 1 else None
    return _kernels.linear_stats(flags, models[0], model_q, rows, n_rows, target, weight, scale, n_vocab,
                                 block_rows, block_vocab, n_groups, dtype == np.float64)


def _log_sum(states, m_field, s_field):
    """lse of each row (max + log sum) and whether the row's statistics are usable."""
    m = states[:, F[m_field]]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_s = np.log(states[:, F[s_field]])
    ok = (states[:, F["bad"]] == 0) & np.isfinite(m)
    return m, log_s, ok


# =============================================================================
# Cross-entropy
# =============================================================================


def _cross_entropy(hidden, head, target, bias, reduction, ignore_index, label_smoothing, weight, temperature,
                   want_grad):
    """Shared body of the cross-entropy functions: (loss, gradients or None)."""
    s = 1.0 / check_temperature(temperature)
    reduction = check_reduction(reduction)
    eps = _check_label_smoothing(label_smoothing)
    has_ignore, ignore_value = _check_ignore_index(ignore_index)
    model, batch_shape, bias_kind = _model(hidden, head, bias, ("hidden", "head", "bias"))
    rows2d, hidden_kind, head_arr, head_kind, bias_arr = model
    n_rows, d = rows2d.shape
    n_vocab = head_arr.shape[0]
    dtype = _result_dtype(hidden_kind, head_kind)
    w = _check_weight(weight, n_vocab, head_arr.shape)
    t64, row_weight, rows = _check_target(target, batch_shape, (*batch_shape, d), n_vocab, has_ignore,
                                          ignore_value, w)
    n_kept = n_rows if rows is None else rows.shape[0]
    kept_target = t64 if rows is None else t64[rows]
    kept_weight = row_weight if rows is None else row_weight[rows]
    qa, qb = 1.0 - eps, eps / n_vocab if n_vocab else 0.0
    sum_w = float(np.sum(w)) if w is not None else float(n_vocab)

    loss = np.zeros(n_rows, dtype=np.float64)
    kernel_model = _kernel_model(model, dtype, s)
    if n_kept:
        flags = FLAGS["ce"] | (FLAGS["smooth"] if eps > 0.0 else 0)
        states = _stats(flags, [kernel_model], dtype, rows, n_kept, kept_target, w, s, n_vocab)
        m, log_s, ok = _log_sum(states, "m", "s")
        with np.errstate(invalid="ignore", over="ignore"):
            kept_loss = qa * kept_weight * ((m - states[:, F["y_target"]]) + log_s)
            if eps > 0.0:
                kept_loss = kept_loss + qb * ((sum_w * m - states[:, F["wy"]]) + sum_w * log_s)
        kept_loss = np.where(ok, kept_loss, np.nan)
        if rows is None:
            loss = kept_loss
        else:
            loss[rows] = kept_loss

    denominator = np.sum(row_weight)
    if reduction == "none":
        result = _per_row(loss, dtype, batch_shape)
    elif reduction == "sum":
        result = float(np.sum(loss))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            result = float(np.float64(np.sum(loss)) / np.float64(denominator))
    if not want_grad:
        return result, None

    # Gradients: d loss / d logits per row as softmax_cross_entropy_with_grad forms it, then
    # grad_hidden = G @ head, grad_head = G.T @ hidden, grad_bias = column sums of G (blockwise).
    gscale = ((np.float64(1.0) / denominator if denominator != 0 else np.float64(np.inf))
              if reduction == "mean" else np.float64(1.0))
    hidden_grad_dtype, head_grad_dtype = _grad_dtype(hidden_kind), _grad_dtype(head_kind)
    grad_head = np.zeros((n_vocab, d), dtype=dtype)
    grad_bias = np.zeros(n_vocab, dtype=np.float64) if bias_arr is not None else None
    grad_hidden = (np.empty if n_kept == n_rows else np.zeros)((n_rows, d), dtype=hidden_grad_dtype)
    if n_kept and n_vocab:
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            alpha = gscale * s * (qa * kept_weight + qb * sum_w) * np.exp(-log_s)
        alpha = np.ascontiguousarray(np.where(ok, alpha, np.nan))
        row_ct = np.ascontiguousarray(gscale * s * qa * kept_weight)
        block_rows, block_vocab, n_groups = _blocking(n_kept, n_vocab)
        partial = n_groups > 1
        if partial:
            out_hidden = np.empty((n_groups, n_kept, d), dtype=dtype)
            out_kind = KINDS[dtype.name]
        else:
            out_hidden = grad_hidden
            out_kind = KINDS[hidden_grad_dtype.name]
        _load_blas()
        _kernels.linear_grad(kernel_model, rows, n_kept, np.ascontiguousarray(kept_target), w, s, n_vocab,
                             block_rows, block_vocab, n_groups, dtype == np.float64,
                             np.ascontiguousarray(states[:, F["m"]]), alpha, row_ct, float(gscale * s * qb),
                             out_hidden, out_kind, partial, grad_head, grad_bias)
        if partial:
            total = np.add.reduce(out_hidden, axis=0)
            if rows is None:
                grad_hidden[...] = total
            else:
                grad_hidden[rows] = total
    grads = (grad_hidden.reshape(*batch_shape, d),
             grad_head.astype(head_grad_dtype, copy=False),
             None if grad_bias is None else grad_bias.astype(_grad_dtype(bias_kind), copy=False))
    return result, grads


def linear_cross_entropy(hidden, head, target, *, bias=None, reduction="mean", ignore_index=None,
                         label_smoothing=0.0, weight=None, temperature=1.0):
    r"""Cross-entropy of the logits ``hidden @ head.T + bias`` against class indices, without storing them.

    Equals ``softmax_cross_entropy(hidden @ head.T + bias, target, ...)`` (and so
    ``torch.nn.functional.cross_entropy(F.linear(hidden, head, bias), target, ...)``) for every option:
    with :math:`z = (h W^\top + b) / T`, :math:`\mathrm{lse} = \log\sum_c e^{z_c}` and ``ε = label_smoothing``,

    .. math:: \ell = (1-ε)\,w_t (\mathrm{lse} - z_t) + \frac{ε}{V}\sum_c w_c (\mathrm{lse} - z_c)

    per row; ignored rows give 0 (and are never computed); ``"mean"`` is :math:`\sum\ell / \sum w_t` over
    non-ignored rows (NaN when there are none). The vocabulary is processed in blocks (one BLAS product
    per block into a buffer that stays in cache, consumed at once by an online log-sum-exp), so extra
    memory is a few MiB per thread whatever the number of rows and the vocabulary size.

    Parameters
    ----------
    hidden : array_like, shape (..., d)
        Hidden states (float32, float64; float16 and ``ml_dtypes.bfloat16`` are widened block by block).
    head : array_like, shape (V, d)
        Unembedding matrix (``torch.nn.functional.linear``'s weight).
    target : array_like of int, shape (...)
        Class indices in ``[0, V)``, or ``ignore_index``.
    bias : array_like, shape (V,), optional
    reduction : {"mean", "sum", "none"}
    ignore_index : int or None
    label_smoothing : float in [0, 1]
    weight : array_like, shape (V,), optional
        Class weights.
    temperature : float > 0

    Returns
    -------
    float or ndarray
        A Python float for ``"mean"``/``"sum"``; per-row losses (shape ``hidden.shape[:-1]``, float64 if
        ``hidden`` or ``head`` is float64, else float32) for ``"none"``.

    Notes
    -----
    Non-finite hidden values give NaN rows (their logits are non-finite), as non-finite logits do in
    :func:`softmax_cross_entropy`; ``-inf`` in ``bias`` masks a vocabulary entry.

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> hidden = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> head = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> loss = fi.linear_cross_entropy(hidden, head, [0, 2])
    >>> bool(np.isclose(loss, fi.softmax_cross_entropy(hidden @ head.T, [0, 2])))
    True
    """
    return _cross_entropy(hidden, head, target, bias, reduction, ignore_index, label_smoothing, weight,
                          temperature, False)[0]


def linear_cross_entropy_with_grad(hidden, head, target, *, bias=None, reduction="mean", ignore_index=None,
                                   label_smoothing=0.0, weight=None, temperature=1.0):
    r"""Cross-entropy of ``hidden @ head.T + bias`` and its gradients with respect to every input.

    Options and loss as :func:`linear_cross_entropy`. With ``G`` the gradient of the loss (of
    ``loss.sum()`` for ``reduction="none"``) with respect to the logits, exactly as
    :func:`softmax_cross_entropy_with_grad` forms it per row,

    .. math:: \frac{\partial\ell}{\partial h} = G W,\qquad \frac{\partial\ell}{\partial W} = G^\top h,
              \qquad \frac{\partial\ell}{\partial b} = \textstyle\sum_i G_i .

    A first pass over the vocabulary gives each row's log-sum-exp; a second one recomputes every block
    of logits, turns it into ``G`` in place and adds its two products (BLAS) to the gradients. The head
    gradient of a vocabulary block receives the row blocks in a fixed order (the threads pipeline
    through it), so the results are bitwise identical for any thread count. Ignored rows get a zero
    gradient and contribute nothing.

    Returns
    -------
    (loss, grad_hidden, grad_head, grad_bias)
        ``grad_hidden`` has ``hidden``'s shape, ``grad_head`` ``head``'s, ``grad_bias`` ``bias``'s
        (``None`` without ``bias``); each has its input's dtype when that is float32 or float64, and is
        float32 for half-precision input (a half-precision gradient would round the accumulated sums;
        the same rule as every elementwise output of half-precision input) and float64 for integers.

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> hidden = np.array([[1.0, 2.0]])
    >>> head = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss, g_hidden, g_head, g_bias = fi.linear_cross_entropy_with_grad(hidden, head, [1])
    >>> _, g_logits = fi.softmax_cross_entropy_with_grad(hidden @ head.T, [1])
    >>> bool(np.allclose(g_hidden, g_logits @ head) and np.allclose(g_head, g_logits.T @ hidden))
    True
    >>> g_bias is None
    True
    """
    loss, (grad_hidden, grad_head, grad_bias) = _cross_entropy(
        hidden, head, target, bias, reduction, ignore_index, label_smoothing, weight, temperature, True)
    return loss, grad_hidden, grad_head, grad_bias


def linear_perplexity(hidden, head, target, *, bias=None, ignore_index=None, temperature=1.0):
    r"""Perplexity of the logits ``hidden @ head.T + bias``: ``exp`` of the mean cross-entropy in nats.

    Equals ``perplexity(hidden @ head.T + bias, target, ...)``: :math:`\exp(\frac1N\sum_i
    (\mathrm{lse}(z_i) - z_{i,t_i}))` over the ``N`` non-ignored rows (NaN when every row is ignored),
    computed as :func:`linear_cross_entropy` computes it.

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> hidden = np.zeros((3, 8))                 # every logit 0: uniform over 4 classes
    >>> round(fi.linear_perplexity(hidden, np.ones((4, 8)), [0, 1, 3]), 9)
    4.0
    """
    mean, _ = _cross_entropy(hidden, head, target, bias, "mean", ignore_index, 0.0, None, temperature, False)
    with np.errstate(over="ignore"):
        return float(np.exp(np.float64(mean)))


# =============================================================================
# Entropy and KL divergence
# =============================================================================


def linear_softmax_entropy(hidden, head, *, bias=None, temperature=1.0, base=None):
    r"""Entropy of ``softmax((hidden @ head.T + bias) / T)`` per row, without storing the logits.

    Equals ``softmax_entropy(hidden @ head.T + bias, temperature=T, base=base)``:
    :math:`H = \log S - \frac1S\sum_c e^{t_c} t_c` with :math:`t = z - \max z`, :math:`S = \sum_c e^{t_c}`,
    both sums kept online over the vocabulary blocks; divided by ``log(base)`` when ``base`` is given.

    Returns
    -------
    ndarray or scalar
        One value per row (shape ``hidden.shape[:-1]``), float64 if ``hidden`` or ``head`` is float64,
        else float32.

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> h = fi.linear_softmax_entropy(np.zeros((2, 3)), np.ones((8, 3)), base=2)   # uniform over 8
    >>> h.round(12).tolist()
    [3.0, 3.0]
    """
    s = 1.0 / check_temperature(temperature)
    divisor = log_base_divisor(base)
    model, batch_shape, _ = _model(hidden, head, bias, ("hidden", "head", "bias"))
    n_rows, n_vocab = model[0].shape[0], model[2].shape[0]
    dtype = _result_dtype(model[1], model[3])
    out = np.full(n_rows, np.nan)
    if n_rows and n_vocab:
        states = _stats(FLAGS["entropy"], [_kernel_model(model, dtype, s)], dtype, None, n_rows, None, None, s,
                        n_vocab)
        _, log_s, ok = _log_sum(states, "m", "s")
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(ok, log_s - states[:, F["u"]] / states[:, F["s"]], np.nan)
    if divisor != 1.0:
        out /= divisor
    return _per_row(out, dtype, batch_shape)


def _kl_from_states(states, forward=True):
    """KL(p || q) (forward) or KL(q || p) of each row from the two-model statistics."""
    ma, la, ok_a = _log_sum(states, "m", "s")
    mb, lb, ok_b = _log_sum(states, "m2", "s2")
    with np.errstate(invalid="ignore", divide="ignore"):
        if forward:
            kl = states[:, F["u"]] / states[:, F["s"]] - ((ma - mb) + la - lb)
        else:
            kl = states[:, F["u2"]] / states[:, F["s2"]] - ((mb - ma) + lb - la)
    return np.where(ok_a & ok_b, kl, np.nan)


def _two_models(hidden_p, head_p, hidden_q, head_q, bias_p, bias_q):
    model_p, batch_p, _ = _model(hidden_p, head_p, bias_p, ("hidden_p", "head_p", "bias_p"))
    model_q, batch_q, _ = _model(hidden_q, head_q, bias_q, ("hidden_q", "head_q", "bias_q"))
    check_two_model_shapes((*batch_p, model_p[0].shape[1]), model_p[2].shape, (*batch_q, model_q[0].shape[1]),
                           model_q[2].shape)
    dtype = _result_dtype(model_p[1], model_p[3], model_q[1], model_q[3])
    return model_p, model_q, batch_p, dtype


def linear_kl_divergence(hidden_p, head_p, hidden_q, head_q, *, bias_p=None, bias_q=None, temperature=1.0,
                         reduction="none", base=None):
    r"""KL divergence between the softmaxes of two models' logits over the same vocabulary and positions.

    Equals ``softmax_kl_divergence(hidden_p @ head_p.T + bias_p, hidden_q @ head_q.T + bias_q, ...)``:

    .. math:: \mathrm{KL}(p \,\|\, q) = \frac{1}{S_a}\sum_c e^{a_c - \max a}(a_c - b_c)
              - \mathrm{lse}(a) + \mathrm{lse}(b),\quad a = z_p / T,\ b = z_q / T

    per row, both models' blocks of logits computed side by side (two BLAS products per block) and folded
    into online sums. ``hidden_p`` and ``hidden_q`` may have different widths (a teacher and a student,
    a policy and its reference model); forward vs reverse KL is the argument order. ``reduction="mean"``
    averages over rows, ``"sum"`` adds them (Python floats).

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> rng = np.random.default_rng(0)
    >>> h, w = rng.standard_normal((4, 3)), rng.standard_normal((10, 3))
    >>> fi.linear_kl_divergence(h, w, h, w).round(12).tolist()
    [0.0, 0.0, 0.0, 0.0]
    >>> kl = fi.linear_kl_divergence(h, w, 2 * h, w, reduction="mean")
    >>> bool(np.isclose(kl, fi.softmax_kl_divergence(h @ w.T, 2 * h @ w.T, reduction="mean")))
    True
    """
    s = 1.0 / check_temperature(temperature)
    reduction = check_reduction(reduction)
    divisor = log_base_divisor(base)
    model_p, model_q, batch_shape, dtype = _two_models(hidden_p, head_p, hidden_q, head_q, bias_p, bias_q)
    n_rows, n_vocab = model_p[0].shape[0], model_p[2].shape[0]
    out = np.full(n_rows, np.nan)
    if n_rows and n_vocab:
        states = _stats(FLAGS["kl"], [_kernel_model(model_p, dtype, s), _kernel_model(model_q, dtype, s)], dtype,
                        None, n_rows, None, None, s, n_vocab)
        out = _kl_from_states(states)
    if divisor != 1.0:
        out /= divisor
    if reduction == "none":
        return _per_row(out, dtype, batch_shape)
    if reduction == "sum":
        return float(np.sum(out))
    return float(np.sum(out) / out.size) if out.size else math.nan


# =============================================================================
# Everything `fastinfo logits --head` reports, from one pass (the CLI)
# =============================================================================


def linear_report(hidden, head, target, *, bias=None, hidden_q=None, head_q=None, bias_q=None, temperature=1.0,
                  ignore_index=None):
    """Per-row values of the non-ignored rows, from one pass over the vocabulary (for the CLI).

    Returns a dict of float64 arrays: ``cross_entropy`` and ``entropy`` of model p; with a second model
    also ``cross_entropy_q``, ``kl_pq`` (KL(p || q)), ``kl_qp`` and ``same_argmax`` (bool: the two models'
    top-1 classes agree; first index of the max, as ``numpy.argmax``). Every value equals the
    corresponding public function's (cross-entropy, entropy, KL) within their tolerances."""
    s = 1.0 / check_temperature(temperature)
    has_ignore, ignore_value = _check_ignore_index(ignore_index)
    two = hidden_q is not None
    if two:
        model_p, model_q, batch_shape, dtype = _two_models(hidden, head, hidden_q, head_q, bias, bias_q)
    else:
        model_p, batch_shape, _ = _model(hidden, head, bias, ("hidden", "head", "bias"))
        dtype = _result_dtype(model_p[1], model_p[3])
    n_rows, d = model_p[0].shape
    n_vocab = model_p[2].shape[0]
    t64, _, rows = _check_target(target, batch_shape, (*batch_shape, d), n_vocab, has_ignore, ignore_value, None)
    n_kept = n_rows if rows is None else rows.shape[0]
    kept_target = t64 if rows is None else t64[rows]
    names = ["cross_entropy", "entropy"] + (["cross_entropy_q", "kl_pq", "kl_qp", "same_argmax"] if two else [])
    if not n_kept:
        return {name: np.empty(0) for name in names}
    models = [_kernel_model(model_p, dtype, s)] + ([_kernel_model(model_q, dtype, s)] if two else [])
    flags = FLAGS["report"] if two else FLAGS["entropy"]
    states = _stats(flags, models, dtype, rows, n_kept, kept_target, None, s, n_vocab)
    m, log_s, ok = _log_sum(states, "m", "s")
    u_entropy = states[:, F["u_entropy" if two else "u"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"cross_entropy": np.where(ok, (m - states[:, F["y_target"]]) + log_s, np.nan),
               "entropy": np.where(ok, log_s - u_entropy / states[:, F["s"]], np.nan)}
        if two:
            m2, log_s2, ok2 = _log_sum(states, "m2", "s2")
            out["cross_entropy_q"] = np.where(ok2, (m2 - states[:, F["y_target2"]]) + log_s2, np.nan)
            out["kl_pq"] = _kl_from_states(states, True)
            out["kl_qp"] = _kl_from_states(states, False)
            out["same_argmax"] = states[:, F["argmax"]] == states[:, F["argmax2"]]
    return out

"""Distribution family front-ends: entropy, cross-entropy, KL and JS divergence of probabilities.

Every function normalises its inputs along ``axis`` as :func:`scipy.stats.entropy` does
(``p / p.sum(axis)``, so counts work), validates in Python once, and hands C-contiguous
``(rows, C)`` views to one compiled kernel (``_kernels_distributions.pxi``). The kernel reports rows
with negative entries; this module raises the message. float16 and bfloat16 probabilities (NumPy,
ml_dtypes or torch) reach the kernels as their bits and are widened there; results are float32.
"""
import math
import numbers

import numpy as np

from . import _kernels
from ._validation import DenseArray, as_dense_array, as_rows, broadcast_rows, log_base_divisor, normalize_axis

__all__ = ["entropy", "cross_entropy", "kl_divergence", "js_divergence"]

_KIND = {"cross_entropy": 0, "kl_divergence": 1, "js_divergence": 2}


def entropy(p, axis=-1, *, base=None):
    r"""Shannon entropy of each slice of ``p`` along ``axis``.

    .. math:: H(p) = -\sum_i \hat p_i \log \hat p_i, \qquad \hat p = p / \textstyle\sum_i p_i,

    with :math:`0 \log 0 = 0`; ``p`` is normalised along ``axis`` first, so counts work.
    Matches ``scipy.stats.entropy(p, axis=axis, base=base)``.

    Parameters
    ----------
    p : array_like or torch.Tensor
        Non-negative probabilities or counts. Integers and bools are computed as float64; float16
        and bfloat16 (NumPy, ``ml_dtypes.bfloat16`` or a CPU torch tensor) are read as they are,
        without a converted copy (a non-contiguous torch tensor is copied once, in its dtype).
    axis : int, optional
        The axis holding the categories (default: the last).
    base : float, optional
        Logarithm base (``None``: nats, ``2``: bits). Must be positive and not 1.

    Returns
    -------
    numpy.ndarray or numpy scalar
        ``p.shape`` without ``axis``, in ``p``'s float dtype (float32 for half precision;
        accumulated in float64).
        A slice that sums to zero (including an empty slice), or holds NaN or ``inf``, gives NaN.

    Raises
    ------
    ValueError
        If ``p`` has a negative entry, or ``base`` is not positive or is 1.
    TypeError
        If ``p`` is complex.
    numpy.exceptions.AxisError
        If ``axis`` is out of range.

    Notes
    -----
    Unlike SciPy, an empty slice gives NaN (it sums to zero, so it is no distribution) rather
    than 0, a negative entry raises rather than giving ``-inf``, and a slice whose sum overflows
    float64 (entries near ``1.8e308``) gives NaN. The same holds for the other functions of
    this family.

    The kernel reads each slice twice (the sum, then the terms, the second read from cache), with
    a vectorised ``log`` accurate to 1 ulp, in float64 for float32 input too; results are
    bitwise identical for any number of threads.

    References
    ----------
    C. E. Shannon, "A Mathematical Theory of Communication", Bell System Technical Journal 27 (1948).

    Examples
    --------
    >>> import fastinfo as fi
    >>> float(fi.entropy([0.5, 0.5], base=2))
    1.0
    >>> fi.entropy([[1, 1, 0], [4, 0, 0]])
    array([0.69314718, 0.        ])
    """
    arr = as_dense_array(p, "p")
    axis = normalize_axis(axis, arr.ndim)
    log_base = log_base_divisor(base)
    rows, batch_shape = as_rows(arr.data, axis)
    out = np.empty(rows.shape[0], dtype=np.float64)
    if rows.shape[1] == 0:
        out.fill(np.nan)
    else:
        status = np.empty(rows.shape[0], dtype=np.uint8)
        bad, _ = _kernels.distribution_entropy_rows(rows, arr.half, out, status, log_base)
        if bad >= 0:
            _raise_negative("p", bad, batch_shape, axis)
    return _shape_result(out.astype(arr.result_dtype, copy=False), batch_shape)


def cross_entropy(p, q, axis=-1, *, base=None, eps=0.0):
    r"""Cross-entropy of ``q`` relative to ``p``, per slice along ``axis``.

    .. math:: H(p, q) = -\sum_i \hat p_i \log \hat q_i = H(p) + D_{KL}(p \,\|\, q),

    with :math:`\hat p = p / \sum p` and :math:`\hat q = (q + \varepsilon) / \sum (q + \varepsilon)`;
    terms with :math:`\hat p_i = 0` are 0, and :math:`\hat q_i = 0 < \hat p_i` gives ``inf``.

    Parameters
    ----------
    p, q : array_like or torch.Tensor
        Non-negative probabilities or counts; they broadcast against each other (NumPy rules,
        as in ``scipy.stats.entropy``) without the broadcast being materialised. Of one
        half-precision dtype (float16, bfloat16) they are read as they are; of different dtypes,
        in their common float dtype (the narrower converted first).
    axis : int, optional
        The axis holding the categories (default: the last), of the broadcast shape.
    base : float, optional
        Logarithm base (``None``: nats). Must be positive and not 1.
    eps : float, optional
        Added to every entry of ``q`` (only ``q``) before normalising; must be finite and >= 0.

    Returns
    -------
    numpy.ndarray or numpy scalar
        The broadcast shape without ``axis``, in the common float dtype of ``p`` and ``q``
        (float32 for half precision).
        A slice of ``p`` or ``q`` that sums to zero, or holds NaN or ``inf``, gives NaN.

    Raises
    ------
    ValueError
        If ``p`` or ``q`` has a negative entry (the message names which), the shapes do not
        broadcast, ``eps`` is negative or not finite, or ``base`` is invalid.

    References
    ----------
    T. M. Cover and J. A. Thomas, *Elements of Information Theory*, 2nd ed., Wiley (2006), ch. 2.

    Examples
    --------
    >>> import fastinfo as fi
    >>> round(float(fi.cross_entropy([1, 1], [1, 3], base=2)), 12)
    1.207518749639
    >>> float(fi.cross_entropy([1, 1], [1, 0]))
    inf
    """
    return _pq("cross_entropy", p, q, axis, base, _check_eps(eps))


def kl_divergence(p, q, axis=-1, *, base=None, eps=0.0):
    r"""Kullback-Leibler divergence :math:`D_{KL}(p \,\|\, q)` per slice along ``axis``.

    .. math:: D_{KL}(p \,\|\, q) = \sum_i \hat p_i \log \frac{\hat p_i}{\hat q_i},

    with :math:`\hat p = p / \sum p` and :math:`\hat q = (q + \varepsilon) / \sum (q + \varepsilon)`;
    terms with :math:`\hat p_i = 0` are 0, and :math:`\hat q_i = 0 < \hat p_i` gives ``inf``.
    With ``eps=0`` it matches ``scipy.stats.entropy(p, q, axis=axis, base=base)``.

    Parameters
    ----------
    p, q : array_like or torch.Tensor
        Non-negative probabilities or counts; they broadcast against each other (half precision
        as in :func:`cross_entropy`).
    axis : int, optional
        The axis holding the categories (default: the last), of the broadcast shape.
    base : float, optional
        Logarithm base (``None``: nats). Must be positive and not 1.
    eps : float, optional
        Added to every entry of ``q`` (only ``q``) before normalising; must be finite and >= 0.

    Returns
    -------
    numpy.ndarray or numpy scalar
        The broadcast shape without ``axis``, in the common float dtype of ``p`` and ``q``
        (float32 for half precision).

    Raises
    ------
    ValueError
        If ``p`` or ``q`` has a negative entry (the message names which), the shapes do not
        broadcast, ``eps`` is negative or not finite, or ``base`` is invalid.

    References
    ----------
    S. Kullback and R. A. Leibler, "On Information and Sufficiency", Ann. Math. Statist. 22 (1951).

    Examples
    --------
    >>> import fastinfo as fi
    >>> round(float(fi.kl_divergence([1, 1], [1, 3], base=2)), 12)
    0.207518749639
    >>> round(float(fi.kl_divergence([1, 1], [1, 0], eps=1.0)), 12)
    0.058891517828
    """
    return _pq("kl_divergence", p, q, axis, base, _check_eps(eps))


def js_divergence(p, q, axis=-1, *, base=None):
    r"""Jensen-Shannon divergence per slice along ``axis``.

    .. math:: JS(p, q) = \tfrac12 D_{KL}(\hat p \,\|\, m) + \tfrac12 D_{KL}(\hat q \,\|\, m),
              \qquad m = (\hat p + \hat q) / 2,

    after normalising ``p`` and ``q`` along ``axis``. This is the divergence, bounded by
    :math:`\log 2`; SciPy's ``scipy.spatial.distance.jensenshannon`` returns its square root
    (``jensenshannon(p, q) ** 2 == js_divergence(p, q)``).

    Parameters
    ----------
    p, q : array_like or torch.Tensor
        Non-negative probabilities or counts; they broadcast against each other (half precision
        as in :func:`cross_entropy`).
    axis : int, optional
        The axis holding the categories (default: the last), of the broadcast shape.
    base : float, optional
        Logarithm base (``None``: nats). Must be positive and not 1.

    Returns
    -------
    numpy.ndarray or numpy scalar
        The broadcast shape without ``axis``, in the common float dtype of ``p`` and ``q``
        (float32 for half precision).

    Raises
    ------
    ValueError
        If ``p`` or ``q`` has a negative entry, the shapes do not broadcast, or ``base`` is invalid.

    References
    ----------
    J. Lin, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 37 (1991).

    Examples
    --------
    >>> import fastinfo as fi
    >>> float(fi.js_divergence([1, 0], [0, 1], base=2))
    1.0
    """
    return _pq("js_divergence", p, q, axis, base, 0.0)


def _pq(name, p, q, axis, base, eps):
    p_arr = as_dense_array(p, "p")
    q_arr = as_dense_array(q, "q")
    if not p_arr.same_type(q_arr):
        # different dtypes: both in their common float dtype (float32 for two half types), converted
        dtype = np.result_type(p_arr.result_dtype, q_arr.result_dtype)
        p_arr, q_arr = DenseArray(p_arr.values(dtype)), DenseArray(q_arr.values(dtype))
    log_base = log_base_divisor(base)
    p_rows, p_index, q_rows, q_index, batch_shape, axis = broadcast_rows(p_arr.data, q_arr.data, axis)
    n_rows = math.prod(batch_shape)
    out = np.empty(n_rows, dtype=np.float64)
    if p_rows.shape[1] == 0:
        out.fill(np.nan)
    else:
        status = np.empty(n_rows, dtype=np.uint8)
        bad, code = _kernels.distribution_pq_rows(
            _KIND[name], p_rows, q_rows, p_arr.half, p_index, q_index, out, status, eps, log_base
        )
        if bad >= 0:
            _raise_negative("p" if code == 1 else "q", bad, batch_shape, axis)
    return _shape_result(out.astype(p_arr.result_dtype, copy=False), batch_shape)


def _check_eps(eps):
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"eps must be a non-negative number; got {eps!r}")
    value = float(eps)
    if not (value >= 0.0) or not math.isfinite(value):
        raise ValueError(f"eps must be finite and >= 0; got {eps!r}")
    return value


def _raise_negative(name, row, batch_shape, axis):
    where = tuple(int(i) for i in np.unravel_index(row, batch_shape)) if batch_shape else ()
    raise ValueError(
        f"{name} must not have negative entries (probabilities or counts); found one in the slice "
        f"at index {where} of the other axes (reducing along axis {axis})"
    )


def _shape_result(out, batch_shape):
    result = out.reshape(batch_shape)
    return result[()] if result.ndim == 0 else result

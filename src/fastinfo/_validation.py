"""Every check and conversion of fastinfo's public functions.

The public front-ends call these once, then hand the kernels arrays they can trust:
float32 or float64, C-contiguous, the reduced axis last. Messages name the argument
and the offending value or shape.
"""
import math
import numbers
import operator

import numpy as np
from numpy.exceptions import AxisError

__all__ = [
    "AxisError",
    "as_float_array",
    "aligned",
    "normalize_axis",
    "as_rows",
    "from_rows",
    "log_base_divisor",
    "check_temperature",
    "check_reduction",
    "as_samples",
    "check_k",
    "check_same_length",
]


def as_float_array(x, name):
    """Convert array_like ``x`` by the dtype policy of the contract.

    float32 and float64 stay as they are; float16 becomes float32; integers, bools and
    other real floating types become float64; complex raises ``TypeError``.
    The caller's array is never modified (views may be returned, never written).
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real; got complex dtype {arr.dtype}")
    if kind == "f":
        if arr.dtype == np.float32 or arr.dtype == np.float64:
            return aligned(arr)
        if arr.dtype == np.float16:
            return arr.astype(np.float32)
        return arr.astype(np.float64)
    if kind in "biu":
        return arr.astype(np.float64)
    if kind == "O":
        try:
            out = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must hold real numbers; got an object array that is not numeric") from None
        return out
    raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")


def aligned(arr):
    """``arr``, or an aligned copy when its data is not aligned for its dtype (e.g. a buffer
    unpickled at an odd offset): the kernels load whole elements, which C requires aligned."""
    return arr if arr.flags.aligned else arr.copy()


def normalize_axis(axis, ndim, name="axis"):
    """Return ``axis`` as a non-negative int; ``AxisError`` when out of range."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        try:
            axis = operator.index(axis)
        except TypeError:
            raise TypeError(f"{name} must be an int; got {axis!r}") from None
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise AxisError(axis, ndim)
    return axis % ndim


def as_rows(arr, axis):
    """View ``arr`` as a C-contiguous 2-D ``(rows, C)`` array with ``axis`` last.

    Returns ``(rows2d, batch_shape)`` where ``batch_shape`` is ``arr.shape`` without ``axis``.
    Copies only when the layout demands it.
    """
    moved = np.moveaxis(arr, axis, -1)
    batch_shape = moved.shape[:-1]
    n_rows = math.prod(batch_shape)
    rows = np.ascontiguousarray(moved).reshape(n_rows, moved.shape[-1])
    return rows, batch_shape


def from_rows(flat, batch_shape, axis, ndim):
    """Inverse of :func:`as_rows` for an elementwise output of shape ``(rows, C)``."""
    shaped = flat.reshape(*batch_shape, flat.shape[-1])
    return np.moveaxis(shaped, -1, axis) if ndim else shaped


def log_base_divisor(base, name="base"):
    """Return ``log(base)`` (1.0 for ``None``, i.e. nats); ``ValueError`` unless base > 0 and != 1."""
    if base is None:
        return 1.0
    if isinstance(base, (bool, np.bool_)) or not isinstance(base, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a positive number or None; got {base!r}")
    base = float(base)
    if not (base > 0.0) or base == 1.0 or not math.isfinite(base):
        raise ValueError(f"{name} must be positive, finite and not 1; got {base!r}")
    return math.log(base)


def check_temperature(temperature, name="temperature"):
    """Return the temperature as float; ``ValueError`` unless it is finite and > 0."""
    if isinstance(temperature, (bool, np.bool_)) or not isinstance(temperature, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a positive number; got {temperature!r}")
    t = float(temperature)
    if not (t > 0.0) or not math.isfinite(t):
        raise ValueError(f"{name} must be finite and > 0; got {temperature!r}")
    return t


def check_reduction(reduction, allowed=("none", "mean", "sum"), name="reduction"):
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {reduction!r}")
    return reduction


def as_samples(x, name, dtype=np.float64):
    """Samples as a C-contiguous 2-D ``(n, d)`` array of ``dtype``; 1-D input is one column.

    Raises ``ValueError`` for other ranks, empty dimensions or non-finite values.
    """
    arr = as_float_array(x, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D (n,) or 2-D (n, d); got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one dimension per sample; got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must hold only finite values (found NaN or inf)")
    return arr


def check_k(k, n_samples, name="k"):
    """Return ``k`` as int; ``ValueError`` naming ``k`` unless ``1 <= k < n_samples``."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} must be an integer with 1 <= {name} < n_samples; got {k!r}")
    k = int(k)
    if k < 1 or k >= n_samples:
        raise ValueError(f"{name} must satisfy 1 <= {name} < n_samples = {n_samples}; got {name}={k}")
    return k


def check_same_length(**arrays):
    """``ValueError`` unless every array has the same number of samples (rows)."""
    lengths = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"samples must have the same length: {desc}")


# =============================================================================
# Distribution family: two operands that broadcast against each other
# =============================================================================


def broadcast_rows(p, q, axis, names=("p", "q")):
    """Rows of two float arrays that broadcast (NumPy rules), without materialising the broadcast.

    Returns ``(p_rows, p_index, q_rows, q_index, batch_shape, axis)``: ``p_rows`` is the C-contiguous
    ``(rows_p, C)`` view of ``p`` itself (copied only when its layout demands it), and output row
    ``i`` reads ``p_rows[p_index[i]]`` (``p_index`` empty when it is the identity); likewise for ``q``.
    ``batch_shape`` is the broadcast shape without ``axis``; ``axis`` is normalised against the
    broadcast ndim. An operand of length 1 along ``axis`` (broadcast along the reduced axis itself)
    is repeated along that axis (a copy the size of its own batch times the axis length).
    ``ValueError`` names both shapes when they do not broadcast.
    """
    try:
        shape = np.broadcast_shapes(p.shape, q.shape)
    except ValueError:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape or broadcast against each other; "
            f"got {names[0]}.shape={p.shape} and {names[1]}.shape={q.shape}"
        ) from None
    ndim = len(shape)
    axis = normalize_axis(axis, ndim)
    batch_shape = shape[:axis] + shape[axis + 1:]
    n_rows = math.prod(batch_shape)
    out = []
    for arr in (p, q):
        arr = arr.reshape((1,) * (ndim - arr.ndim) + arr.shape)
        if arr.shape[axis] != shape[axis]:
            arr = np.repeat(arr, shape[axis], axis=axis)
        rows, own_batch = as_rows(arr, axis)
        if own_batch == batch_shape:
            index = np.empty(0, dtype=np.int64)
        else:
            index = np.ascontiguousarray(np.broadcast_to(
                np.arange(rows.shape[0], dtype=np.int64).reshape(own_batch), batch_shape
            ).reshape(n_rows))
        out += [rows, index]
    return (*out, batch_shape, axis)

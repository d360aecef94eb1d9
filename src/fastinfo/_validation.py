"""Every check and conversion of fastinfo's public functions.

The public front-ends call these once, then hand the kernels arrays they can trust:
float32 or float64 (or the 16-bit patterns of float16 / bfloat16 values, which the dense
kernels widen themselves), C-contiguous, the reduced axis last. Messages name the argument
and the offending value or shape.

Array inputs are NumPy arrays, anything ``np.asarray`` accepts, and CPU ``torch.Tensor`` objects,
which are viewed without a copy (``Tensor.numpy()``; a bfloat16 tensor through its raw 16-bit
view, so neither torch nor ml_dtypes is imported by fastinfo for it: torch is already loaded
when a tensor exists, and a tensor is recognised by its class's module, not by importing torch).
A bfloat16 NumPy array (``ml_dtypes.bfloat16``) is recognised by its dtype, likewise without
importing ml_dtypes.
"""
import math
import numbers
import operator

import numpy as np
from numpy.exceptions import AxisError

__all__ = [
    "AxisError",
    "FLOAT16",
    "BFLOAT16",
    "DenseArray",
    "array_and_half",
    "asarray",
    "is_torch_tensor",
    "as_float_array",
    "as_dense_array",
    "check_out",
    "half_code",
    "half_name",
    "widen_half",
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

# Half-precision element codes, shared with the kernels (0: the array holds float32/float64 values).
FLOAT16 = 1
BFLOAT16 = 2
_HALF_NAMES = {FLOAT16: "float16", BFLOAT16: "bfloat16"}


def half_code(dtype):
    """``FLOAT16``, ``BFLOAT16`` or 0 for a NumPy dtype (bfloat16 is ml_dtypes' dtype, or any
    other 2-byte dtype whose scalar type is named ``bfloat16``, recognised without importing it)."""
    if dtype == np.float16:
        return FLOAT16
    if dtype.kind == "V" and dtype.itemsize == 2 and dtype.names is None and dtype.type.__name__ == "bfloat16":
        return BFLOAT16
    return 0


def half_name(half):
    return _HALF_NAMES[half]


def is_torch_tensor(x):
    """True for a ``torch.Tensor`` (or subclass, e.g. ``nn.Parameter``), decided without importing torch."""
    for cls in type(x).__mro__:
        if cls.__name__ == "Tensor" and cls.__module__ == "torch":
            return True
    return False


def _torch_as_numpy(t, name):
    """A NumPy view of CPU tensor ``t`` (no copy, any strides) and its half code.

    bfloat16 has no NumPy dtype: its 16-bit patterns are viewed as uint16 (``BFLOAT16``).
    """
    import torch  # already imported: the caller holds a tensor

    if t.device.type != "cpu":
        raise TypeError(f"{name} is a torch tensor on {t.device}; fastinfo reads CPU memory, pass {name}.cpu()")
    if t.layout != torch.strided:
        raise TypeError(f"{name} is a torch tensor with layout {t.layout}; pass a dense (strided) tensor")
    t = t.detach()
    if t.is_neg():  # a lazily negated view: materialise it (a copy)
        t = t.resolve_neg()
    if t.is_conj():
        t = t.resolve_conj()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16), BFLOAT16
    try:
        arr = t.numpy()
    except (TypeError, RuntimeError):
        raise TypeError(f"{name} must be a real numeric array; got a torch tensor of dtype {t.dtype}") from None
    return arr, half_code(arr.dtype)


class DenseArray:
    """An input (or ``out``) of the dense kernels: ``data`` holds float32 / float64 values, or,
    when ``half`` is ``FLOAT16`` or ``BFLOAT16``, the 16-bit patterns of the values as uint16
    (the kernels widen them in registers). ``original`` is the object the caller passed."""

    __slots__ = ("data", "half", "original")

    def __init__(self, data, half=0, original=None):
        self.data = data
        self.half = half
        self.original = original

    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype_name(self):
        """The element type's name as users know it: float16, bfloat16, float32, float64."""
        return _HALF_NAMES[self.half] if self.half else self.data.dtype.name

    @property
    def result_dtype(self):
        """Per-row results and elementwise outputs: float32 for half-precision input."""
        return np.dtype(np.float32) if self.half else self.data.dtype

    def same_type(self, other):
        return self.half == other.half and self.data.dtype == other.data.dtype

    def values(self, dtype):
        """The values converted to float32 / float64 (a copy; only where a conversion is documented)."""
        return widen_half(self.data, self.half).astype(dtype, copy=False) if self.half \
            else self.data.astype(dtype, copy=False)


def widen_half(bits, half):
    """float32 values of the float16 / bfloat16 patterns ``bits`` (a new array)."""
    if half == FLOAT16:
        return bits.view(np.float16).astype(np.float32)
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _as_numpy(x, name):
    """``(ndarray, half)`` of any array input; ``half`` tells that ndarray holds bits (uint16)."""
    if isinstance(x, np.ndarray):
        arr = x
    elif isinstance(x, DenseArray):
        return x.data, x.half
    elif is_torch_tensor(x):
        arr, half = _torch_as_numpy(x, name)
        return (arr.view(np.uint16) if half == FLOAT16 else arr), half
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    half = half_code(arr.dtype)
    return (arr.view(np.uint16) if half else arr), half


def array_and_half(x, name):
    """``(ndarray, half)``: ``x`` as a NumPy array without a copy where possible; for
    half-precision data (``half`` = ``FLOAT16`` or ``BFLOAT16``) the array holds the bits as uint16."""
    return _as_numpy(x, name)


def asarray(x, name):
    """``x`` as a NumPy array (torch tensors viewed without a copy; bfloat16 widened to float32)."""
    arr, half = _as_numpy(x, name)
    return widen_half(arr, half) if half == BFLOAT16 else (arr.view(np.float16) if half else arr)


def as_float_array(x, name):
    """Convert array_like ``x`` by the dtype policy of the contract.

    float32 and float64 stay as they are; float16 and bfloat16 become float32; integers, bools
    and other real floating types become float64; complex raises ``TypeError``, as does any other
    dtype (naming it). The caller's array is never modified (views may be returned, never written).
    The dense kernels read half precision as it is instead: see :func:`as_dense_array`.
    """
    arr, half = _as_numpy(x, name)
    if half:
        return widen_half(arr, half)
    return _real_float(arr, name)


def _real_float(arr, name):
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real; got complex dtype {arr.dtype}")
    if kind == "f":
        if arr.dtype == np.float32 or arr.dtype == np.float64:
            return aligned(arr)
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


def as_dense_array(x, name):
    """``x`` for the dense (softmax and distribution) kernels, as a :class:`DenseArray`.

    float16 and bfloat16 (NumPy or torch) are kept as they are, as their bit patterns, never
    converted into a copy; otherwise the policy of :func:`as_float_array`.
    """
    arr, half = _as_numpy(x, name)
    if half:
        return DenseArray(aligned(arr), half, x)
    return DenseArray(_real_float(arr, name), 0, x)


def check_out(out, shape, dense, name="out"):
    """``out`` as a :class:`DenseArray` to write results of the dense input ``dense`` into.

    ``out`` is a NumPy array or a CPU torch tensor of ``shape``, writeable, of the result's dtype
    (the input's float dtype; float32 for half-precision input) or of the half-precision input's
    own dtype; otherwise ``ValueError``.
    """
    if isinstance(out, np.ndarray) or is_torch_tensor(out):
        arr, half = _as_numpy(out, name)
    else:
        raise ValueError(f"{name} must be a NumPy array (or a torch tensor); got {type(out).__name__}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (the input's); got {arr.shape}")
    got = _HALF_NAMES[half] if half else arr.dtype.name
    ok = (half == 0 and arr.dtype == dense.result_dtype) or (half and half == dense.half)
    if not ok:
        allowed = f"{dense.result_dtype.name} (the result's)"
        if dense.half:
            allowed += f" or {dense.dtype_name} (the input's)"
        raise ValueError(f"{name} must have dtype {allowed}; got {got}")
    if not arr.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    return DenseArray(arr, half, out)


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

"""Slow, obvious NumPy twins of every public fastinfo function.

Written straight from the formulas of ``shared/API.md`` (and, for the softmax family,
from the semantics of ``torch.nn.functional.cross_entropy``), with no attempt at speed:
float64 (or mpmath) everywhere, Python loops and O(n^2) distance matrices where that is
the obvious way. The tests compare the compiled functions against these.
"""
import numpy as np
from scipy.special import digamma  # noqa: F401  (used by the estimator twins)

# =============================================================================
# Softmax family
# =============================================================================


# =============================================================================
# Distribution family
# =============================================================================


def _normalised(x, axis, add=0.0):
    """``x`` (float64) moved to axis -1, ``+ add``, divided by its sum; also the sums."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1) + add
    total = x.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x / total, total[..., 0]


def _finish(terms, *sums, base=None):
    """Sum the per-entry terms; NaN where any sum is zero (incl. empty slices); divide by log(base)."""
    result = terms.sum(axis=-1)
    for total in sums:
        result = np.where(total == 0, np.nan, result)
    if base is not None:
        result = result / np.log(base)
    return result


def _check_nonnegative(**arrays):
    for name, x in arrays.items():
        if (np.asarray(x, dtype=np.float64) < 0).any():
            raise ValueError(f"{name} must not have negative entries")


def entropy(p, axis=-1, base=None):
    """-sum a log a, a = p / sum(p), 0 log 0 = 0 (scipy.special.entr, entry by entry)."""
    _check_nonnegative(p=p)
    a, s = _normalised(p, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(a > 0, -a * np.log(a), 0.0)
    terms = np.where(np.isnan(a), np.nan, terms)
    return _finish(terms, s, base=base)


def _pq(p, q, axis, eps=0.0):
    _check_nonnegative(p=p, q=q)
    p, q = np.broadcast_arrays(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64))
    a, s = _normalised(p, axis)
    b, t = _normalised(q, axis, add=eps)
    return a, b, s, t


def cross_entropy(p, q, axis=-1, base=None, eps=0.0):
    """-sum a log b with a, b the normalised p and q + eps; a > 0 = b gives inf."""
    a, b, s, t = _pq(p, q, axis, eps)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(a > 0, -a * np.log(b), 0.0)
    terms = np.where(np.isnan(a) | np.isnan(b), np.nan, terms)
    return _finish(terms, s, t, base=base)


def kl_divergence(p, q, axis=-1, base=None, eps=0.0):
    """sum a log(a / b) (scipy.special.rel_entr, entry by entry)."""
    a, b, s, t = _pq(p, q, axis, eps)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(a > 0, a * np.log(a / b), 0.0)
    terms = np.where(np.isnan(a) | np.isnan(b), np.nan, terms)
    return _finish(terms, s, t, base=base)


def js_divergence(p, q, axis=-1, base=None):
    """1/2 KL(a || m) + 1/2 KL(b || m), m = (a + b) / 2."""
    a, b, s, t = _pq(p, q, axis)
    m = 0.5 * (a + b)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = 0.5 * (np.where(a > 0, a * np.log(a / m), 0.0) + np.where(b > 0, b * np.log(b / m), 0.0))
    terms = np.where(np.isnan(a) | np.isnan(b), np.nan, terms)
    return _finish(terms, s, t, base=base)


# =============================================================================
# Estimators from samples
# =============================================================================


# =============================================================================
# scikit-learn drop-in
# =============================================================================

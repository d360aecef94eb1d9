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


# =============================================================================
# Estimators from samples
# =============================================================================


# =============================================================================
# scikit-learn drop-in
# =============================================================================

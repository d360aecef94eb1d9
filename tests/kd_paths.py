"""Shared by the KD-tree tests: run a computation on the generic tree code and on the
fixed-dimension paths (csrc/kdtree_lowd.h), and check that they agree bitwise."""
import numpy as np

from fastinfo import _kernels


def generic_and_fixed(run):
    """``run()`` with the fixed-dimension paths off, then on (the default); asserts that each
    result is bitwise the same and returns the default path's results."""
    old = _kernels._set_kd_lowd(False)
    try:
        generic = run()
    finally:
        _kernels._set_kd_lowd(old)
    fixed = run()
    assert len(generic) == len(fixed)
    for a, b in zip(generic, fixed):
        np.testing.assert_array_equal(a, b)
    return fixed

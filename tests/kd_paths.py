"""Shared by the KD-tree tests: run a computation on the generic tree code and on a specialised
path (the fixed-dimension paths of csrc/kdtree_lowd.h, or the AVX2 8-D search), and check that
they agree bitwise."""
import numpy as np

from fastinfo import _kernels


def generic_and_fixed(run, switch=_kernels._set_kd_lowd):
    """``run()`` (a list of results) with the path that ``switch`` turns on and off (default: the
    fixed-dimension paths) off, then on (the default); asserts that each result is bitwise the
    same and returns the default path's results."""
    old = switch(False)
    try:
        generic = run()
    finally:
        switch(old)
    fixed = run()
    assert len(generic) == len(fixed)
    for a, b in zip(generic, fixed):
        np.testing.assert_array_equal(a, b)
    return fixed

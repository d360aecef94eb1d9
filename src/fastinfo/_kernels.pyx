# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""All compiled code of fastinfo: one compilation unit, one section per family.

The family sections live in ``_kernels_<family>.pxi`` files that are textually
included below (so the extension is still the single module ``fastinfo._kernels``);
this keeps each family's kernels in its own file for review and parallel work.

Rules for every kernel (see STYLE.md):
- typed memoryviews, ``const floating[:, ::1]`` for read-only input, C-contiguous rows;
- trust the input (the Python front-ends validate), run ``with nogil``;
- ``prange(..., schedule='static', num_threads=nt)`` with ``nt`` capped at the work items;
  never a ``+=`` reduction inside ``prange``: per-row results, then a fixed-order serial sum,
  so results are bitwise identical for any thread count.
"""
cimport cython
from cython.parallel cimport prange, parallel
from libc.math cimport exp, log, log1p, expm1, fabs, sqrt, isnan, isinf, INFINITY, NAN, HUGE_VAL
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy, memset
from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t, intptr_t

import numpy as np
cimport numpy as cnp

cnp.import_array()

ctypedef fused floating:
    float
    double

# =============================================================================
# Common: OpenMP shim, build information
# =============================================================================
# A source-level shim so the same .pyx builds (and runs serially) without OpenMP.

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    /* GNU libgomp is not fork-safe: a child forked after the parent ran a parallel region
       hangs in its next parallel region (the pool threads do not exist in the child).
       In a forked child every kernel therefore runs serially (as PyTorch does). */
    static volatile int fi_forked_child = 0;
    #if !defined(_WIN32)
    #include <pthread.h>
    static void fi_mark_forked_child(void) { fi_forked_child = 1; }
    static int fi_register_atfork(void) { return pthread_atfork(NULL, NULL, fi_mark_forked_child); }
    #else
    static int fi_register_atfork(void) { return 0; }
    #endif
    static int fi_max_threads(void) { return fi_forked_child ? 1 : omp_get_max_threads(); }
    static int fi_openmp_enabled(void) { return 1; }
    #else
    static int fi_register_atfork(void) { return 0; }
    static int fi_max_threads(void) { return 1; }
    static int fi_openmp_enabled(void) { return 0; }
    #endif
    #if defined(__clang__)
    static const char *fi_compiler(void) { return "clang " __clang_version__; }
    #elif defined(__GNUC__)
    static const char *fi_compiler(void) { return "gcc " __VERSION__; }
    #elif defined(_MSC_VER)
    #define FI_STR2(x) #x
    #define FI_STR(x) FI_STR2(x)
    static const char *fi_compiler(void) { return "msvc " FI_STR(_MSC_VER); }
    #else
    static const char *fi_compiler(void) { return "unknown"; }
    #endif
    """
    int fi_max_threads() nogil
    int fi_register_atfork() nogil
    int fi_openmp_enabled() nogil
    const char *fi_compiler() nogil


cdef inline int num_threads_for(Py_ssize_t n_items) noexcept nogil:
    """Threads to use for ``n_items`` independent work items: OpenMP's current maximum
    (``OMP_NUM_THREADS``, ``threadpoolctl``), capped at the number of items, at least 1."""
    cdef int nt = fi_max_threads()
    if n_items < nt:
        nt = <int>n_items
    if nt < 1:
        nt = 1
    return nt


fi_register_atfork()  # forked children run serially (see the shim above)


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(fi_openmp_enabled())


def max_threads():
    """OpenMP's current default thread count for calls from this Python thread (1 if serial)."""
    return fi_max_threads()


def compiler():
    """The compiler that built the extension, e.g. ``'gcc 12.2.0'``."""
    return fi_compiler().decode("ascii", "replace")


# =============================================================================
# Softmax family (logits)
# =============================================================================
include "_kernels_softmax.pxi"

# =============================================================================
# Distribution family (probabilities)
# =============================================================================
include "_kernels_distributions.pxi"

# =============================================================================
# KD-tree (max-norm) and neighbour queries
# =============================================================================
include "_kernels_kdtree.pxi"

# =============================================================================
# Estimators from samples (KSG, Frenzel-Pompe, Kozachenko-Leonenko, Ross, discrete)
# =============================================================================
include "_kernels_estimators.pxi"

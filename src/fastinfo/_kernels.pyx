# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""All compiled code of fastinfo: one compilation unit, one section per family.

The family sections live in ``_kernels_<family>.pxi`` files that are textually
included below (so the extension is still the single module ``fastinfo._kernels``);
this keeps each family's kernels in its own file for review and parallel work.
The .pxi files hold only Cython (declarations, the prange drivers, memoryviews); the C they
call is in plain C headers under csrc/:

    section (Cython)              C (csrc/)
    common (below)                common.h        OpenMP shim, build information
    permutations (below)          permutation.h   Generator.permutation draws
    _kernels_softmax.pxi          softmax.h       row kernels; body softmax_rows.h (float, double,
                                                  float16 and bfloat16 in, float32 or half out)
    _kernels_linear.pxi           linear.h        fused linear head blocks; body linear_rows.h (uses softmax.h)
    _kernels_distributions.pxi    distributions.h row passes; body distributions_rows.h
    (both dense sections)         vec.h           clones of the vector layer: simd_avx512.h, simd_generic.h
                                  half.h          float16 / bfloat16 scalars and portable conversions;
                                                  simd_half.h their loads and stores in each clone
    _kernels_kdtree.pxi           kdtree.h        k-NN buffer, AVX2 count / k-NN searches
                                  kdtree_lowd.h   k-NN / count for each dimension 2..7 (AVX2 leaf
                                                  scans); body kdtree_lowd_body.h
                                  grid2.h         branch-free min/max, the 1-D x 1-D grid search
                                  gridnd.h        3-D / 4-D quantile grids: k-NN radius, strict range
                                                  count (conditional KSG, TE); body gridnd_body.h
                                  rankscan.h      2-D marginals of 1-D columns: rank intervals and
                                                  the int32 range count (conditional KSG, TE)
    _kernels_estimators.pxi       (no C of its own)
    _kernels_sklearn.pxi          sklearn_kdtree.h  scikit-learn's KD-tree radius count replayed (1-D)
    _kernels_scipy.pxi            scipy_logsumexp.h weighted log-sum-exp rows; body scipy_logsumexp_body.h

A type-generic body (*_rows.h, simd_generic.h) is included once per element type or clone with its
parameters defined (``#define ST float`` / ``#define SFX f`` / ``#include`` ...), never a macro template.
Half-precision rows arrive as uint16 memoryviews of their bit patterns and are widened in the
kernels' loads (no converted copy).

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
from libc.string cimport memcmp, memcpy, memset
from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t, uint16_t, intptr_t

import numpy as np
cimport numpy as cnp

cnp.import_array()

ctypedef fused floating:
    float
    double

# Elements of the dense kernels' rows: float32, float64, or the 16-bit patterns of float16 /
# bfloat16 values (uint16_t; an ``int half`` argument, FI_FLOAT16 or FI_BFLOAT16, says which).
# Inputs and outputs are separate fused types: a half-precision input may write float32 rows.
ctypedef fused dense_t:
    float
    double
    uint16_t

ctypedef fused dense_out_t:
    float
    double
    uint16_t

# =============================================================================
# Common: OpenMP shim, build information
# =============================================================================
# A source-level shim so the same .pyx builds (and runs serially) without OpenMP.

cdef extern from "csrc/common.h":
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
# Permutations drawn exactly as numpy.random.Generator.permutation(n) draws them
# =============================================================================
# Generator.permutation(n) shuffles arange(n) in place by Fisher-Yates from the last position
# down to position 1, position i swapping with j uniform on [0, i] drawn by masked rejection
# (the smallest all-ones mask >= i; 32-bit draws while i fits in 32 bits). Drawing through the
# Generator's own bit generator (its C interface, under its lock) gives the same permutations
# and leaves the Generator in the same state as calling rng.permutation(n) once per row.

cdef extern from "numpy/random/bitgen.h":
    ctypedef struct bitgen_t:
        pass

cdef extern from "csrc/permutation.h":
    void fi_fill_permutation(bitgen_t *bg, Py_ssize_t n, Py_ssize_t *perm) nogil
    Py_ssize_t fi_next_permutation(bitgen_t *bg, Py_ssize_t *counter, Py_ssize_t n,
                                   Py_ssize_t *perm) nogil

from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid


cdef bitgen_t *generator_bitgen(bit_generator) except NULL:
    """The C interface of a numpy BitGenerator (hold ``bit_generator.lock`` while drawing)."""
    capsule = bit_generator.capsule
    if not PyCapsule_IsValid(capsule, b"BitGenerator"):
        raise TypeError("rng: a numpy.random.Generator is required")
    return <bitgen_t *>PyCapsule_GetPointer(capsule, b"BitGenerator")


def draw_permutations(rng, Py_ssize_t[:, ::1] out):
    """Fill each row of ``out`` (m, n) with ``rng.permutation(n)``, row after row, drawing from the
    numpy Generator ``rng``'s bit generator as Generator.permutation does."""
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1], p
    bit_generator = rng.bit_generator
    cdef bitgen_t *bg = generator_bitgen(bit_generator)
    with bit_generator.lock, nogil:
        for p in range(m):
            fi_fill_permutation(bg, n, &out[p, 0])
    return out


# =============================================================================
# Softmax family (logits)
# =============================================================================
include "_kernels_softmax.pxi"

# =============================================================================
# Fused linear head + softmax losses (hidden states, unembedding matrix)
# =============================================================================
include "_kernels_linear.pxi"

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

# =============================================================================
# scikit-learn drop-in: scikit-learn's own KD-tree decisions, where they can differ from exact ones
# =============================================================================
include "_kernels_sklearn.pxi"

# =============================================================================
# SciPy drop-in: weighted log-sum-exp (scipy.special.logsumexp with b)
# =============================================================================
include "_kernels_scipy.pxi"

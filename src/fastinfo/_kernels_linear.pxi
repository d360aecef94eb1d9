# Section of _kernels.pyx: fused linear head + softmax losses (hidden states and an unembedding
# matrix; the logits hidden @ head.T + bias are never stored).
#
# Input: hidden as a 2-D (rows, d) array and head as a (V, d) array, any strides, of float64,
# float32, float16 or bfloat16 (kind FI_LIN_*); the compute type is float32 or float64 (fused
# `floating` picked by the front-end, _linear.py). bias is given already multiplied by
# s = 1 / temperature, in the compute type; weight as float64; target as int64 class indices of the
# processed rows; rows (int64, increasing) lists the rows of hidden to process (None: all).
# The front-ends validate everything and allocate every output; the kernels trust their input.
#
# Method (csrc/linear.h, body csrc/linear_rows.h): blocks of block_rows rows x block_vocab
# vocabulary entries; each block of logits is one BLAS gemm (sgemm/dgemm of SciPy's BLAS, through
# the function pointers of scipy.linalg.cython_blas, looked up when first needed so that importing
# fastinfo does not import scipy.linalg) into a per-thread buffer that stays in cache, and is consumed
# at once by the online max / sum-exp / entropy / KL row functions of the softmax kernels
# (csrc/softmax_rows.h). One pass over the vocabulary per row; nothing of size rows x V exists.
# The gradient pass recomputes the blocks (csrc/linear.h explains its pipeline).
#
# Threads: OpenMP owns them. Work items (row block x vocabulary group, the blocking fixed by the
# shapes only) are spread over the team, each calling a single-threaded gemm: while any call of this
# section runs, SciPy's BLAS is set to one thread (openblas_set_num_threads or the equivalent found
# next to the gemm, restored by the last call to leave; the GIL serialises the bookkeeping), and the
# team has min(OpenMP threads, BLAS threads before pinning) threads, so threadpoolctl limits on either
# API are honoured and the cores are never oversubscribed. A single-threaded gemm's result depends
# only on its operands and shapes, and every per-row or per-entry sum runs in an order fixed by the
# blocking, so the results are bitwise identical for any number of threads. If the BLAS's thread
# control cannot be found, the items run on one OpenMP thread and the BLAS keeps its own threads.
#
# Per-thread scratch is allocated before the parallel region (a thread that could not allocate
# inside it would leave the gradient pipeline waiting for it); one NumPy buffer, sliced per thread.

from cython.parallel cimport threadid
from libc.limits cimport INT_MAX
from cpython.pycapsule cimport PyCapsule_GetName

cdef extern from "csrc/linear.h":
    ctypedef struct fi_lin_matrix:
        const char *data
        Py_ssize_t stride0
        Py_ssize_t stride1
        int kind
        int direct
        Py_ssize_t ld

    ctypedef struct fi_lin_model:
        fi_lin_matrix hidden
        fi_lin_matrix head
        const void *bias
        Py_ssize_t width

    ctypedef struct fi_lin_task:
        fi_lin_model model[2]
        int flags
        Py_ssize_t n_vocab
        double scale
        const int64_t *rows
        Py_ssize_t n_rows
        const int64_t *target
        const double *weight
        Py_ssize_t block_rows
        Py_ssize_t block_vocab
        Py_ssize_t n_groups
        Py_ssize_t blocks_per_group
        Py_ssize_t n_row_blocks
        double *states
        const double *row_m
        const double *row_alpha
        const double *row_ct
        double beta
        char *grad_hidden
        Py_ssize_t grad_hidden_ld
        int grad_hidden_kind
        int grad_hidden_partial
        void *grad_head
        double *grad_bias
        int64_t *progress

    ctypedef struct fi_lin_scratch_f:
        float *hbuf
        float *hbuf2
        float *wbuf
        float *cbuf
        float *cbuf2
        float *dhbuf
        Py_ssize_t ldc

    ctypedef struct fi_lin_scratch_d:
        double *hbuf
        double *hbuf2
        double *wbuf
        double *cbuf
        double *cbuf2
        double *dhbuf
        Py_ssize_t ldc

    enum:
        FI_LIN_F64, FI_LIN_F32, FI_LIN_F16, FI_LIN_BF16
        FI_LIN_M, FI_LIN_S, FI_LIN_U, FI_LIN_YT, FI_LIN_WY, FI_LIN_ARG, FI_LIN_M2, FI_LIN_S2, FI_LIN_U2
        FI_LIN_YT2, FI_LIN_ARG2, FI_LIN_UE, FI_LIN_BAD, FI_LIN_NF
        FI_LIN_CE, FI_LIN_SMOOTH, FI_LIN_ENTROPY, FI_LIN_KL, FI_LIN_REPORT

    void fi_lin_set_gemm(void *sgemm, void *dgemm) nogil
    void fi_lin_init_states(double *st, Py_ssize_t n) nogil
    void fi_lin_merge(double *into, const double *part, int flags) nogil
    void fi_lin_stats_item_f(const fi_lin_task *t, Py_ssize_t item, const fi_lin_scratch_f *sc) nogil
    void fi_lin_stats_item_d(const fi_lin_task *t, Py_ssize_t item, const fi_lin_scratch_d *sc) nogil
    void fi_lin_grad_item_f(const fi_lin_task *t, Py_ssize_t item, const fi_lin_scratch_f *sc) nogil
    void fi_lin_grad_item_d(const fi_lin_task *t, Py_ssize_t item, const fi_lin_scratch_d *sc) nogil


# Names of the per-row statistics (columns of linear_stats' result) and of the flags, for _linear.py.
LINEAR_FIELDS = {"m": FI_LIN_M, "s": FI_LIN_S, "u": FI_LIN_U, "y_target": FI_LIN_YT, "wy": FI_LIN_WY,
                 "argmax": FI_LIN_ARG, "m2": FI_LIN_M2, "s2": FI_LIN_S2, "u2": FI_LIN_U2,
                 "y_target2": FI_LIN_YT2, "argmax2": FI_LIN_ARG2, "u_entropy": FI_LIN_UE, "bad": FI_LIN_BAD}
LINEAR_FLAGS = {"ce": FI_LIN_CE, "smooth": FI_LIN_SMOOTH, "entropy": FI_LIN_ENTROPY, "kl": FI_LIN_KL,
                "report": FI_LIN_REPORT}
LINEAR_KINDS = {"float64": FI_LIN_F64, "float32": FI_LIN_F32, "float16": FI_LIN_F16, "bfloat16": FI_LIN_BF16}

ctypedef void (*_blas_set_threads_t)(int) noexcept nogil
ctypedef int (*_blas_get_threads_t)() noexcept nogil
cdef _blas_set_threads_t _blas_set_threads = NULL
cdef _blas_get_threads_t _blas_get_threads = NULL
cdef bint _blas_loaded = False
cdef int _blas_pins = 0     # calls of this section running now (the GIL guards these two)
cdef int _blas_saved = 1    # the BLAS thread count before the first of them pinned it to 1


def linear_set_blas(sgemm_capsule, dgemm_capsule, intptr_t set_threads, intptr_t get_threads):
    """Install the BLAS: gemm function pointers from ``scipy.linalg.cython_blas.__pyx_capi__``
    capsules, and the addresses of the library's ``set_num_threads(int)`` / ``get_num_threads()``
    (0, 0 when unknown)."""
    global _blas_set_threads, _blas_get_threads, _blas_loaded
    cdef void *s = PyCapsule_GetPointer(sgemm_capsule, PyCapsule_GetName(sgemm_capsule))
    cdef void *d = PyCapsule_GetPointer(dgemm_capsule, PyCapsule_GetName(dgemm_capsule))
    if s == NULL or d == NULL:
        raise RuntimeError("fastinfo: could not read the BLAS gemm function pointers")
    fi_lin_set_gemm(s, d)
    if set_threads != 0 and get_threads != 0:
        _blas_set_threads = <_blas_set_threads_t>set_threads
        _blas_get_threads = <_blas_get_threads_t>get_threads
    else:
        _blas_set_threads = NULL
        _blas_get_threads = NULL
    _blas_loaded = True


def linear_blas_loaded():
    return _blas_loaded


def linear_blas_thread_control():
    """True when SciPy's BLAS can be pinned to one thread (else the kernels run one OpenMP thread)."""
    return _blas_set_threads != NULL


cdef int _blas_pin():
    """Pin the BLAS to one thread for the call that is starting (GIL held); returns its previous
    thread count (0 when it cannot be controlled)."""
    global _blas_pins, _blas_saved
    if _blas_set_threads == NULL:
        return 0
    if _blas_pins == 0:
        _blas_saved = _blas_get_threads()
        if _blas_saved < 1:
            _blas_saved = 1
        if _blas_saved != 1:
            _blas_set_threads(1)
    _blas_pins += 1
    return _blas_saved


cdef void _blas_unpin():
    global _blas_pins
    if _blas_set_threads == NULL:
        return
    _blas_pins -= 1
    if _blas_pins == 0 and _blas_saved != 1:
        _blas_set_threads(_blas_saved)


cdef int _linear_threads(Py_ssize_t n_items, int blas_threads) noexcept:
    """The team: OpenMP's threads, at most the BLAS's own (threadpoolctl limits on either API count),
    one when the BLAS cannot be pinned."""
    cdef int nt = num_threads_for(n_items)
    if blas_threads <= 0:
        return 1
    return nt if nt < blas_threads else blas_threads


cdef fi_lin_matrix _lin_matrix(cnp.ndarray arr, int kind, int own_kind, Py_ssize_t width):
    cdef fi_lin_matrix m
    cdef Py_ssize_t itemsize = arr.itemsize
    m.data = <const char *>cnp.PyArray_DATA(arr)
    m.stride0 = arr.strides[0]
    m.stride1 = arr.strides[1]
    m.kind = kind
    m.ld = m.stride0 // itemsize if itemsize else 0
    m.direct = (kind == own_kind and m.stride1 == itemsize and m.stride0 > 0 and m.stride0 % itemsize == 0
                and m.ld >= (width if width > 1 else 1) and m.ld <= INT_MAX
                and (<intptr_t>m.data) % itemsize == 0)
    return m


cdef fi_lin_model _lin_model(tuple model, int own_kind):
    """model = (hidden 2-D array, its kind, head (V, d) array, its kind, scaled bias or None)."""
    cdef fi_lin_model mdl
    hidden, hidden_kind, head, head_kind, bias = model
    mdl.width = head.shape[1]
    mdl.hidden = _lin_matrix(hidden, hidden_kind, own_kind, mdl.width)
    mdl.head = _lin_matrix(head, head_kind, own_kind, mdl.width)
    mdl.bias = NULL
    if bias is not None:
        mdl.bias = <const void *>cnp.PyArray_DATA(bias)
    return mdl


cdef enum:
    _LIN_ALIGN = 16    # scratch slices start on 64-byte boundaries (16 floats)


cdef Py_ssize_t _round_up(Py_ssize_t n) noexcept:
    return (n + _LIN_ALIGN - 1) // _LIN_ALIGN * _LIN_ALIGN


cdef class _LinearScratch:
    """Per-thread scratch of the linear kernels: one NumPy buffer (untouched pages cost nothing),
    sliced into n_threads sets of (hbuf, hbuf2, wbuf, cbuf, cbuf2, dhbuf)."""
    cdef object buffer
    cdef fi_lin_scratch_f *f
    cdef fi_lin_scratch_d *d

    def __dealloc__(self):
        free(self.f)
        free(self.d)


cdef _LinearScratch _lin_scratch(int nt, bint is_double, Py_ssize_t rows, Py_ssize_t vocab, Py_ssize_t ldc,
                                 Py_ssize_t d1, Py_ssize_t d2, bint two, bint grad):
    cdef _LinearScratch sc = _LinearScratch()
    cdef Py_ssize_t dmax = d1 if d1 > d2 else d2
    cdef Py_ssize_t n_h = _round_up(rows * (d1 if d1 > 1 else 1))
    cdef Py_ssize_t n_h2 = _round_up(rows * (d2 if d2 > 1 else 1)) if two else 0
    cdef Py_ssize_t n_w = _round_up(vocab * (dmax if dmax > 1 else 1))
    cdef Py_ssize_t n_c = _round_up(rows * ldc)
    cdef Py_ssize_t n_c2 = n_c if two else 0
    cdef Py_ssize_t n_dh = _round_up(rows * (d1 if d1 > 1 else 1)) if grad else 0
    cdef Py_ssize_t per = n_h + n_h2 + n_w + n_c + n_c2 + n_dh, t
    cdef char *base
    cdef Py_ssize_t itemsize = 8 if is_double else 4
    sc.buffer = np.empty(nt * per + _LIN_ALIGN, dtype=np.float64 if is_double else np.float32)
    base = <char *>cnp.PyArray_DATA(sc.buffer)
    base += (_LIN_ALIGN * 4 - (<intptr_t>base) % (_LIN_ALIGN * 4)) % (_LIN_ALIGN * 4)
    if is_double:
        sc.d = <fi_lin_scratch_d *>malloc(nt * sizeof(fi_lin_scratch_d))
        if sc.d == NULL:
            raise MemoryError()
        for t in range(nt):
            sc.d[t].hbuf = <double *>base + t * per
            sc.d[t].hbuf2 = sc.d[t].hbuf + n_h
            sc.d[t].wbuf = sc.d[t].hbuf2 + n_h2
            sc.d[t].cbuf = sc.d[t].wbuf + n_w
            sc.d[t].cbuf2 = sc.d[t].cbuf + n_c
            sc.d[t].dhbuf = sc.d[t].cbuf2 + n_c2
            sc.d[t].ldc = ldc
    else:
        sc.f = <fi_lin_scratch_f *>malloc(nt * sizeof(fi_lin_scratch_f))
        if sc.f == NULL:
            raise MemoryError()
        for t in range(nt):
            sc.f[t].hbuf = <float *>base + t * per
            sc.f[t].hbuf2 = sc.f[t].hbuf + n_h
            sc.f[t].wbuf = sc.f[t].hbuf2 + n_h2
            sc.f[t].cbuf = sc.f[t].wbuf + n_w
            sc.f[t].cbuf2 = sc.f[t].cbuf + n_c
            sc.f[t].dhbuf = sc.f[t].cbuf2 + n_c2
            sc.f[t].ldc = ldc
    return sc


cdef Py_ssize_t _lin_ldc(Py_ssize_t block_vocab, bint is_double) noexcept:
    """Leading dimension of a logits block: the block width plus one cache line, so that rows are
    not a power of two apart (which would map them all to the same cache sets)."""
    return block_vocab + (8 if is_double else 16)


cdef void _lin_task_common(fi_lin_task *t, int flags, Py_ssize_t n_vocab, double scale, rows, Py_ssize_t n_rows,
                           target, weight, Py_ssize_t block_rows, Py_ssize_t block_vocab, Py_ssize_t n_groups):
    cdef Py_ssize_t n_blocks = (n_vocab + block_vocab - 1) // block_vocab
    memset(t, 0, sizeof(fi_lin_task))
    t.flags = flags
    t.n_vocab = n_vocab
    t.scale = scale
    if rows is not None:
        t.rows = <const int64_t *>cnp.PyArray_DATA(rows)
    t.n_rows = n_rows
    if target is not None:
        t.target = <const int64_t *>cnp.PyArray_DATA(target)
    if weight is not None:
        t.weight = <const double *>cnp.PyArray_DATA(weight)
    t.block_rows = block_rows
    t.block_vocab = block_vocab
    t.n_groups = n_groups
    t.blocks_per_group = (n_blocks + n_groups - 1) // n_groups if n_groups else 0
    t.n_row_blocks = (n_rows + block_rows - 1) // block_rows


def linear_stats(int flags, tuple model_p, tuple model_q, rows, Py_ssize_t n_rows, target, weight, double scale,
                 Py_ssize_t n_vocab, Py_ssize_t block_rows, Py_ssize_t block_vocab, Py_ssize_t n_groups,
                 bint is_double):
    """Per-row online statistics of the logits of model_p (and model_q for the KL / report flags):
    a float64 (n_rows, FI_LIN_NF) array, columns named by LINEAR_FIELDS, the vocabulary groups merged
    in group order. n_rows >= 1, n_vocab >= 1 (the front-end handles empty cases)."""
    cdef fi_lin_task task
    cdef int own = FI_LIN_F64 if is_double else FI_LIN_F32
    cdef bint two = model_q is not None
    cdef Py_ssize_t n_items, item, row, g
    cdef int nt, blas_threads, tid
    cdef Py_ssize_t ldc = _lin_ldc(block_vocab, is_double)
    cdef double[:, :, ::1] states
    cdef _LinearScratch sc
    cdef fi_lin_scratch_f *scf
    cdef fi_lin_scratch_d *scd
    _lin_task_common(&task, flags, n_vocab, scale, rows, n_rows, target, weight, block_rows, block_vocab, n_groups)
    task.model[0] = _lin_model(model_p, own)
    if two:
        task.model[1] = _lin_model(model_q, own)
    n_items = task.n_row_blocks * n_groups
    states_array = np.empty((n_groups, n_rows, FI_LIN_NF), dtype=np.float64)
    states = states_array
    task.states = &states[0, 0, 0]
    fi_lin_init_states(task.states, n_groups * n_rows)
    blas_threads = _blas_pin()
    try:
        nt = _linear_threads(n_items, blas_threads)
        sc = _lin_scratch(nt, is_double, block_rows, block_vocab, ldc, task.model[0].width,
                          task.model[1].width if two else 0, two, False)
        scf, scd = sc.f, sc.d
        tid = 0
        with nogil, parallel(num_threads=nt):
            tid = threadid()
            for item in prange(n_items, schedule='static', chunksize=1):
                if is_double:
                    fi_lin_stats_item_d(&task, item, &scd[tid])
                else:
                    fi_lin_stats_item_f(&task, item, &scf[tid])
    finally:
        _blas_unpin()
    if n_groups > 1:
        nt = _threads_for_rows(n_rows, 64 * n_groups)
        with nogil:
            for row in prange(n_rows, schedule='static', num_threads=nt):
                for g in range(1, n_groups):
                    fi_lin_merge(&states[0, row, 0], &states[g, row, 0], flags)
    return states_array[0]


def linear_grad(tuple model, rows, Py_ssize_t n_rows, target, weight, double scale, Py_ssize_t n_vocab,
                Py_ssize_t block_rows, Py_ssize_t block_vocab, Py_ssize_t n_groups, bint is_double,
                const double[::1] row_m, const double[::1] row_alpha, const double[::1] row_ct, double beta,
                cnp.ndarray grad_hidden, int grad_hidden_kind, bint grad_hidden_partial, cnp.ndarray grad_head,
                grad_bias):
    """Gradient pass (one model): grad_hidden rows (or the (n_groups, n_rows, d) partials),
    grad_head (V, d) compute type, C-contiguous, written entirely (n_rows >= 1) and grad_bias (V,)
    float64 accumulated into (zeros on entry), from the per-row factors of the statistics pass."""
    cdef fi_lin_task task
    cdef int own = FI_LIN_F64 if is_double else FI_LIN_F32
    cdef Py_ssize_t n_items, item
    cdef int nt, blas_threads, tid
    cdef Py_ssize_t ldc = _lin_ldc(block_vocab, is_double)
    cdef _LinearScratch sc
    cdef fi_lin_scratch_f *scf
    cdef fi_lin_scratch_d *scd
    _lin_task_common(&task, FI_LIN_CE, n_vocab, scale, rows, n_rows, target, weight, block_rows, block_vocab,
                     n_groups)
    task.model[0] = _lin_model(model, own)
    task.row_m = &row_m[0]
    task.row_alpha = &row_alpha[0]
    task.row_ct = &row_ct[0]
    task.beta = beta
    task.grad_hidden = <char *>cnp.PyArray_DATA(grad_hidden)
    task.grad_hidden_ld = grad_hidden.strides[0] // grad_hidden.itemsize if grad_hidden.ndim == 2 else 0
    task.grad_hidden_kind = grad_hidden_kind
    task.grad_hidden_partial = grad_hidden_partial
    task.grad_head = cnp.PyArray_DATA(grad_head)
    task.grad_bias = NULL if grad_bias is None else <double *>cnp.PyArray_DATA(grad_bias)
    n_items = task.n_row_blocks * n_groups
    progress_array = np.zeros(n_items, dtype=np.int64)
    task.progress = <int64_t *>cnp.PyArray_DATA(progress_array)
    blas_threads = _blas_pin()
    try:
        nt = _linear_threads(n_items, blas_threads)
        sc = _lin_scratch(nt, is_double, block_rows, block_vocab, ldc, task.model[0].width, 0, False, True)
        scf, scd = sc.f, sc.d
        tid = 0
        with nogil, parallel(num_threads=nt):
            tid = threadid()
            for item in prange(n_items, schedule='static', chunksize=1):
                if is_double:
                    fi_lin_grad_item_d(&task, item, &scd[tid])
                else:
                    fi_lin_grad_item_f(&task, item, &scf[tid])
    finally:
        _blas_unpin()

# Section of _kernels.pyx: softmax family kernels (logits).
#
# Input: logits as a C-contiguous (rows, C) array, C >= 1, the class axis last (the front-ends in
# _softmax.py move it there); the front-ends allocate every output. Float32 or float64 (fused),
# double accumulators. Per-row results only; reductions over rows are done by the caller in a
# fixed order, so any thread count gives the same bits.
#
# The C is in csrc/softmax.h: the row kernels are written once in csrc/softmax_rows.h and compiled
# for each clone of the vector layer (csrc/vec.h: x86-64-v4 with 16 float / 8 double lanes,
# x86-64-v3 with 8 / 4, a portable baseline) and each element type, and the clone is picked when
# the module is imported (FASTINFO_ISA can force a lower one). Method, per row: blocks of 2048
# elements that stay in L1; one pass per block sums exp((x - M) s) relative to the running max M
# and finds the block's max, and the sums are rescaled when the max rises, so the row is read from
# memory once with one exp per element; elementwise outputs (log_softmax, softmax, the
# cross-entropy gradient) then take one write pass while the row is in cache (streaming stores for
# outputs beyond the caches). softmax keeps the exps of the sum pass in a per-thread scratch row
# and its write pass only rescales them per block (rows up to 131072 elements; longer rows compute
# exp again in the write pass).
#
# exp: glibc's scalar exp does not vectorise, so csrc/simd_*.h have their own vector exp (float32
# for float32 input: minimax degree 6 on |r| <= ln2/2, error below 4e-9 relative, so about 1 ulp
# with rounding; float64 for float64 input: degree 13, truncation below 1e-17 relative); results
# below the normal range (t < -87 in float32, t < -708 in float64) are 0. FMA contraction and the
# lane count differ between clones (last-bit differences between machines or FASTINFO_ISA
# settings); on one clone results do not depend on the thread count.

cdef extern from "csrc/vec.h":
    enum:
        FI_ISA_BASE
        FI_ISA_AVX2
        FI_ISA_AVX512
    int fi_cpu_isa() noexcept nogil
    int fi_dense_select(int requested) noexcept nogil
    const char *fi_dense_isa_name(int isa) noexcept nogil

# FASTINFO_ISA values (case-insensitive) and the clone each forces; unset, empty or "auto": the best
_ISA_REQUESTS = {"avx512": FI_ISA_AVX512, "x86-64-v4": FI_ISA_AVX512, "avx2": FI_ISA_AVX2,
                 "x86-64-v3": FI_ISA_AVX2, "baseline": FI_ISA_BASE, "base": FI_ISA_BASE,
                 "x86-64": FI_ISA_BASE}
_ISA_KEYS = {FI_ISA_AVX512: "avx512", FI_ISA_AVX2: "avx2", FI_ISA_BASE: "baseline"}


def _select_dense_isa():
    """Pick the clone of the dense kernels: the best the CPU runs, or the lower one FASTINFO_ISA
    asks for (read once, when the module is imported). A value the CPU cannot run, or an unknown
    one, warns and falls back to the best clone that fits."""
    import os
    import warnings
    cdef int best = fi_cpu_isa(), requested = fi_cpu_isa()
    value = os.environ.get("FASTINFO_ISA", "").strip().lower()
    if value and value not in ("auto", "native"):
        if value not in _ISA_REQUESTS:
            warnings.warn(f"FASTINFO_ISA={value!r} is not one of avx512, avx2, baseline (or auto); "
                          f"using {_ISA_KEYS[best]}", RuntimeWarning, stacklevel=2)
        else:
            requested = _ISA_REQUESTS[value]
            if requested > best:
                warnings.warn(f"FASTINFO_ISA={value!r}: this CPU cannot run that clone; using {_ISA_KEYS[best]}",
                              RuntimeWarning, stacklevel=2)
    return fi_dense_select(requested)


_DENSE_ISA = _select_dense_isa()


def dense_isa():
    """The clone of the dense kernels in use: ``'avx512'``, ``'avx2'`` or ``'baseline'``."""
    return _ISA_KEYS[_DENSE_ISA]


def cpu_isa():
    """The best clone this CPU can run (``'avx512'``, ``'avx2'`` or ``'baseline'``)."""
    return _ISA_KEYS[fi_cpu_isa()]


def dense_simd():
    """The clone the dense kernels run, e.g. ``'x86-64-v4 (AVX-512, 16 float / 8 double lanes)'``."""
    return fi_dense_isa_name(_DENSE_ISA).decode("ascii")


# =============================================================================
# Memory bandwidth, for fastinfo bench (csrc/bandwidth.h)
# =============================================================================
cdef extern from "csrc/bandwidth.h":
    double fi_read_loop(const double *x, Py_ssize_t n) noexcept nogil
    void fi_copy_loop(double *y, const double *x, Py_ssize_t n) noexcept nogil


def memory_read(const double[::1] x, int n_threads):
    """Read ``x`` once with ``n_threads`` threads, one contiguous chunk each (fastinfo's own read
    loop, in the clone in use); returns the sum, which only keeps the loads from being dropped."""
    cdef Py_ssize_t n = x.shape[0], c, lo, hi
    cdef int nt = n_threads if n_threads > 0 else 1
    cdef double[::1] part = np.zeros(nt)
    if n == 0:
        return 0.0
    with nogil:
        for c in prange(nt, schedule='static', num_threads=nt):
            lo = n * c // nt
            hi = n * (c + 1) // nt
            if hi > lo:
                part[c] = fi_read_loop(&x[lo], hi - lo)
    return float(np.sum(part))


def memory_copy(double[::1] y, const double[::1] x, int n_threads):
    """``y[:] = x`` with ``n_threads`` threads, one contiguous chunk each (fastinfo's own copy loop:
    streaming stores, as the dense kernels write outputs larger than the caches)."""
    cdef Py_ssize_t n = x.shape[0], c, lo, hi
    cdef int nt = n_threads if n_threads > 0 else 1
    if y.shape[0] != n:
        raise ValueError(f"y: shape ({y.shape[0]},) differs from x's ({n},)")
    if n == 0:
        return
    with nogil:
        for c in prange(nt, schedule='static', num_threads=nt):
            lo = n * c // nt
            hi = n * (c + 1) // nt
            if hi > lo:
                fi_copy_loop(&y[lo], &x[lo], hi - lo)


cdef extern from "csrc/softmax.h":
    int fi_pipeline_rows
    int fi_half_fast_writes
    Py_ssize_t fi_prefetch_ahead
    Py_ssize_t fi_prefetch_light
    Py_ssize_t fi_prefetch_light_default() noexcept nogil
    enum:
        FI_ROW_FINITE
        FI_ROW_NAN
        FI_ROW_POSINF
        FI_ROW_NEGINF
        FI_SOFTMAX_BLOCK
        FI_SOFTMAX_STORE_BLOCKS
        FI_FLOAT16
        FI_BFLOAT16
    float fi_f16_to_f32(uint16_t h) nogil
    float fi_bf16_to_f32(uint16_t h) nogil
    uint16_t fi_d_to_f16(double d) nogil
    void fi_sm_round_half(const double *x, uint16_t *out, Py_ssize_t n, int half) nogil
    uint16_t fi_d_to_bf16(double d) nogil
    # _f float32, _d float64, _h float16 bits, _b bfloat16 bits (float32 outputs); the writers also
    # _hh, _bb (outputs of the input's own half type)
    int fi_lse_row_f(const float *x, Py_ssize_t n, double s, double *m, double *log_S) nogil
    int fi_lse_row_d(const double *x, Py_ssize_t n, double s, double *m, double *log_S) nogil
    int fi_lse_row_h(const uint16_t *x, Py_ssize_t n, double s, double *m, double *log_S) nogil
    int fi_lse_row_b(const uint16_t *x, Py_ssize_t n, double s, double *m, double *log_S) nogil
    double fi_softmax_entropy_row_f(const float *x, Py_ssize_t n, double s) nogil
    double fi_softmax_entropy_row_d(const double *x, Py_ssize_t n, double s) nogil
    double fi_softmax_entropy_row_h(const uint16_t *x, Py_ssize_t n, double s) nogil
    double fi_softmax_entropy_row_b(const uint16_t *x, Py_ssize_t n, double s) nogil
    double fi_softmax_kl_row_f(const float *a, const float *b, Py_ssize_t n, double s) nogil
    double fi_softmax_kl_row_d(const double *a, const double *b, Py_ssize_t n, double s) nogil
    double fi_softmax_kl_row_h(const uint16_t *a, const uint16_t *b, Py_ssize_t n, double s) nogil
    double fi_softmax_kl_row_b(const uint16_t *a, const uint16_t *b, Py_ssize_t n, double s) nogil
    void fi_normalize_rows_f(const float *x, float *y, Py_ssize_t n_rows, Py_ssize_t n, double s,
                             int log_output, float *scratch, int nt) nogil
    void fi_normalize_rows_d(const double *x, double *y, Py_ssize_t n_rows, Py_ssize_t n, double s,
                             int log_output, double *scratch, int nt) nogil
    void fi_normalize_rows_h(const uint16_t *x, float *y, Py_ssize_t n_rows, Py_ssize_t n, double s,
                             int log_output, float *scratch, int nt) nogil
    void fi_normalize_rows_hh(const uint16_t *x, uint16_t *y, Py_ssize_t n_rows, Py_ssize_t n, double s,
                              int log_output, float *scratch, int nt) nogil
    void fi_normalize_rows_b(const uint16_t *x, float *y, Py_ssize_t n_rows, Py_ssize_t n, double s,
                             int log_output, float *scratch, int nt) nogil
    void fi_normalize_rows_bb(const uint16_t *x, uint16_t *y, Py_ssize_t n_rows, Py_ssize_t n, double s,
                              int log_output, float *scratch, int nt) nogil
    void fi_write_grad_f(const float *x, const float *q, const double *w, float *g, Py_ssize_t n,
                         double m, double s, double alpha, double beta, double qa, double qb, int nt) nogil
    void fi_write_grad_d(const double *x, const double *q, const double *w, double *g, Py_ssize_t n,
                         double m, double s, double alpha, double beta, double qa, double qb, int nt) nogil
    void fi_write_grad_h(const uint16_t *x, const uint16_t *q, const double *w, float *g, Py_ssize_t n,
                         double m, double s, double alpha, double beta, double qa, double qb, int nt) nogil
    void fi_write_grad_hh(const uint16_t *x, const uint16_t *q, const double *w, uint16_t *g, Py_ssize_t n,
                          double m, double s, double alpha, double beta, double qa, double qb, int nt) nogil
    void fi_write_grad_b(const uint16_t *x, const uint16_t *q, const double *w, float *g, Py_ssize_t n,
                         double m, double s, double alpha, double beta, double qa, double qb, int nt) nogil
    void fi_write_grad_bb(const uint16_t *x, const uint16_t *q, const double *w, uint16_t *g, Py_ssize_t n,
                          double m, double s, double alpha, double beta, double qa, double qb, int nt) nogil
    void fi_dots_f(const float *x, const float *q, const double *w, Py_ssize_t n, double m,
                   double qa, double qb, double *sum_u, double *sum_ud) nogil
    void fi_dots_d(const double *x, const double *q, const double *w, Py_ssize_t n, double m,
                   double qa, double qb, double *sum_u, double *sum_ud) nogil
    void fi_dots_h(const uint16_t *x, const uint16_t *q, const double *w, Py_ssize_t n, double m,
                   double qa, double qb, double *sum_u, double *sum_ud) nogil
    void fi_dots_b(const uint16_t *x, const uint16_t *q, const double *w, Py_ssize_t n, double m,
                   double qa, double qb, double *sum_u, double *sum_ud) nogil


cdef struct RowLSE:
    double m        # max of the row (of x, not of x/T)
    double log_S    # log sum exp((x - m) / T); logsumexp(x / T) = m / T + log_S
    int status


# ---- one call per kernel whatever the element types: the branches on dense_t / dense_out_t are
# resolved at compile time, the one on `half` (FI_FLOAT16 or FI_BFLOAT16 for uint16_t rows) at run
# time. A uint16_t output is of the input's own half type (the front-ends check that); the other
# type combinations are never called (the front-ends do not make them). ----

cdef inline double _get(const dense_t *x, Py_ssize_t i, int half) noexcept nogil:
    if dense_t is uint16_t:
        return fi_f16_to_f32(x[i]) if half == FI_FLOAT16 else fi_bf16_to_f32(x[i])
    else:
        return x[i]


cdef inline void _put(dense_out_t *y, Py_ssize_t i, double value, int half) noexcept nogil:
    if dense_out_t is uint16_t:
        y[i] = fi_d_to_f16(value) if half == FI_FLOAT16 else fi_d_to_bf16(value)
    else:
        y[i] = <dense_out_t>value


cdef inline RowLSE _row_lse(const dense_t *x, Py_ssize_t n, double s, int half) noexcept nogil:
    cdef RowLSE res
    res.m = NAN
    res.log_S = NAN
    if dense_t is float:
        res.status = fi_lse_row_f(x, n, s, &res.m, &res.log_S)
    elif dense_t is double:
        res.status = fi_lse_row_d(x, n, s, &res.m, &res.log_S)
    elif half == FI_FLOAT16:
        res.status = fi_lse_row_h(x, n, s, &res.m, &res.log_S)
    else:
        res.status = fi_lse_row_b(x, n, s, &res.m, &res.log_S)
    return res


cdef inline void _dots(const dense_t *x, const dense_t *q, const double *w, Py_ssize_t n, double m,
                       double qa, double qb, double *sum_u, double *sum_ud, int half) noexcept nogil:
    if dense_t is float:
        fi_dots_f(x, q, w, n, m, qa, qb, sum_u, sum_ud)
    elif dense_t is double:
        fi_dots_d(x, q, w, n, m, qa, qb, sum_u, sum_ud)
    elif half == FI_FLOAT16:
        fi_dots_h(x, q, w, n, m, qa, qb, sum_u, sum_ud)
    else:
        fi_dots_b(x, q, w, n, m, qa, qb, sum_u, sum_ud)


cdef inline void _normalize_rows(const dense_t *x, dense_out_t *y, Py_ssize_t n_rows, Py_ssize_t n, double s,
                                 int log_output, void *scratch, int nt, int half) noexcept nogil:
    if dense_t is float:
        if dense_out_t is float:
            fi_normalize_rows_f(x, y, n_rows, n, s, log_output, <float *>scratch, nt)
    elif dense_t is double:
        if dense_out_t is double:
            fi_normalize_rows_d(x, y, n_rows, n, s, log_output, <double *>scratch, nt)
    else:
        if dense_out_t is float:
            if half == FI_FLOAT16:
                fi_normalize_rows_h(x, y, n_rows, n, s, log_output, <float *>scratch, nt)
            else:
                fi_normalize_rows_b(x, y, n_rows, n, s, log_output, <float *>scratch, nt)
        elif dense_out_t is uint16_t:
            if half == FI_FLOAT16:
                fi_normalize_rows_hh(x, y, n_rows, n, s, log_output, <float *>scratch, nt)
            else:
                fi_normalize_rows_bb(x, y, n_rows, n, s, log_output, <float *>scratch, nt)


cdef inline void _write_grad(const dense_t *x, const dense_t *q, const double *w, dense_out_t *g, Py_ssize_t n,
                             double m, double s, double alpha, double beta, double qa, double qb, int nt,
                             int half) noexcept nogil:
    if dense_t is float:
        if dense_out_t is float:
            fi_write_grad_f(x, q, w, g, n, m, s, alpha, beta, qa, qb, nt)
    elif dense_t is double:
        if dense_out_t is double:
            fi_write_grad_d(x, q, w, g, n, m, s, alpha, beta, qa, qb, nt)
    else:
        if dense_out_t is float:
            if half == FI_FLOAT16:
                fi_write_grad_h(x, q, w, g, n, m, s, alpha, beta, qa, qb, nt)
            else:
                fi_write_grad_b(x, q, w, g, n, m, s, alpha, beta, qa, qb, nt)
        elif dense_out_t is uint16_t:
            if half == FI_FLOAT16:
                fi_write_grad_hh(x, q, w, g, n, m, s, alpha, beta, qa, qb, nt)
            else:
                fi_write_grad_bb(x, q, w, g, n, m, s, alpha, beta, qa, qb, nt)


cdef inline int _threads_for_rows(Py_ssize_t n_rows, Py_ssize_t n) noexcept nogil:
    """OpenMP threads for n_rows rows of n elements: one below ~64k elements, where waking a
    team costs more than it saves."""
    if n_rows * n < 65536:
        return 1
    return num_threads_for(n_rows)


cdef Py_ssize_t _stream_min_bytes = 64 << 20


def softmax_set_stream_min_bytes(Py_ssize_t n_bytes):
    """Set the output size above which elementwise outputs use streaming stores; returns the old
    value (for tests, which exercise both store paths on small arrays)."""
    global _stream_min_bytes
    old = _stream_min_bytes
    _stream_min_bytes = n_bytes
    return old


def softmax_set_pipelining(bint on):
    """log_softmax writes each row while the next row is summed (on, the default) or row by row;
    returns the old setting (for measurements; the results are the same)."""
    global fi_pipeline_rows
    old = bool(fi_pipeline_rows)
    fi_pipeline_rows = 1 if on else 0
    return old


def softmax_set_half_fast_writes(bint on):
    """log_softmax into a float16 / bfloat16 output computes each vector in float where that
    provably rounds as the double computation (on, the default) or always in double; returns the
    old setting (for tests and measurements; the results are the same bits)."""
    global fi_half_fast_writes
    old = bool(fi_half_fast_writes)
    fi_half_fast_writes = 1 if on else 0
    return old


def dense_set_prefetch(Py_ssize_t n_bytes, light_bytes=None):
    """How far ahead (bytes) the streaming loops of the dense kernels prefetch, and the light
    loops (the distributions' pass 1; ``None``: ``n_bytes`` too); returns the old pair (for
    measurements; 0 prefetches the lines being read, which is no prefetch at all; the results are
    the same bits whatever the distances)."""
    global fi_prefetch_ahead, fi_prefetch_light
    cdef Py_ssize_t light = n_bytes if light_bytes is None else light_bytes
    for name, value in (("n_bytes", n_bytes), ("light_bytes", light)):
        if value < 0 or value > (1 << 20):
            raise ValueError(f"{name} must be in [0, 2**20]; got {value}")
    old = (fi_prefetch_ahead, fi_prefetch_light)
    fi_prefetch_ahead = n_bytes
    fi_prefetch_light = light
    return old


fi_prefetch_light = fi_prefetch_light_default()


cdef inline int _stream_output(Py_ssize_t n_rows, Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    """Streaming stores for elementwise outputs over 64 MiB (far beyond the caches), where the
    output is not going to be read back from cache anyway. Not for an output the call has just
    allocated: the kernel zeroes each fresh page at its first write, which leaves it in the cache,
    where plain stores then land, while streaming stores write it to memory a second time (W1
    fresh: 43 -> 38 ms, softmax 72 -> 47 ms, on the project's machine)."""
    return n_rows * n * itemsize > _stream_min_bytes


cdef inline void _fill_row(dense_out_t *y, Py_ssize_t n, double value, int half) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        _put(y, j, value, half)


def softmax_logsumexp(const dense_t[:, ::1] x, int half, double[::1] out):
    """out[i] = logsumexp(x[i, :]). x: (rows, C >= 1) C-contiguous (float16 / bfloat16 bits as uint16,
    ``half`` says which); out: (rows,) float64."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    cdef RowLSE r
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            r = _row_lse(&x[i, 0], n, 1.0, half)
            if r.status == FI_ROW_FINITE:
                out[i] = r.m + r.log_S
            elif r.status == FI_ROW_POSINF:
                out[i] = INFINITY
            elif r.status == FI_ROW_NEGINF:
                out[i] = -INFINITY
            else:
                out[i] = NAN


def softmax_normalize(const dense_t[:, ::1] x, int half, dense_out_t[:, ::1] out, double s, bint log_output,
                      bint fresh=False):
    """out = log_softmax(x * s) (log_output) or softmax(x * s) along rows; out may be x.
    One online pass for (max, sum-exp), then one write pass (the row is then in cache). The rows
    are split into one contiguous range per thread (each row's result does not depend on it).
    ``half``: the type of uint16 rows (of x, and of out when it is uint16 too: the same type).
    ``fresh``: out was just allocated (never written): plain stores, see _stream_output."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], c, lo, hi
    cdef int nt = _threads_for_rows(n_rows, n)
    cdef int stream = 0 if fresh else _stream_output(n_rows, n, sizeof(dense_out_t))
    cdef bint keep_exps = not log_output and n <= FI_SOFTMAX_STORE_BLOCKS * FI_SOFTMAX_BLOCK
    # the scratch row holds the compute type: float (also for half-precision input), double for float64
    cdef Py_ssize_t esize = sizeof(double) if dense_t is double else sizeof(float)
    cdef void *scratch = NULL
    if n_rows == 0:
        return
    with nogil, parallel(num_threads=nt):
        # softmax: a scratch row per thread for the exps (without it, the two-exp path)
        scratch = malloc(n * esize) if keep_exps else NULL
        for c in prange(nt, schedule='static'):
            lo = n_rows * c // nt
            hi = n_rows * (c + 1) // nt
            if hi > lo:
                _normalize_rows(&x[lo, 0], &out[lo, 0], hi - lo, n, s, log_output, scratch, stream, half)
        free(scratch)


def softmax_entropy_rows(const dense_t[:, ::1] x, int half, double s, double[::1] out):
    """out[i] = H(softmax(x[i] * s)) in nats; one read of x. H = log S - U / S with S = sum e^t,
    U = sum e^t t, t = (x - M) s, kept online as the max rises."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            if dense_t is float:
                out[i] = fi_softmax_entropy_row_f(&x[i, 0], n, s)
            elif dense_t is double:
                out[i] = fi_softmax_entropy_row_d(&x[i, 0], n, s)
            elif half == FI_FLOAT16:
                out[i] = fi_softmax_entropy_row_h(&x[i, 0], n, s)
            else:
                out[i] = fi_softmax_entropy_row_b(&x[i, 0], n, s)


def softmax_kl_rows(const dense_t[:, ::1] a, const dense_t[:, ::1] b, int half, double s, double[::1] out):
    """out[i] = KL(softmax(a[i] s) || softmax(b[i] s)) in nats; one read of a and b (one type):
    U / Sa - (lse(a s) - lse(b s)), U = sum e^ta (a - b) s, with online maxima."""
    cdef Py_ssize_t n_rows = a.shape[0], n = a.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            if dense_t is float:
                out[i] = fi_softmax_kl_row_f(&a[i, 0], &b[i, 0], n, s)
            elif dense_t is double:
                out[i] = fi_softmax_kl_row_d(&a[i, 0], &b[i, 0], n, s)
            elif half == FI_FLOAT16:
                out[i] = fi_softmax_kl_row_h(&a[i, 0], &b[i, 0], n, s)
            else:
                out[i] = fi_softmax_kl_row_b(&a[i, 0], &b[i, 0], n, s)


def softmax_ce_check_targets(const int64_t[::1] target, Py_ssize_t n_classes, bint has_ignore,
                             int64_t ignore_index, const double[::1] weight, bint has_weight,
                             double[::1] row_weight):
    """row_weight[i] = weight[target[i]] (1 without weight; 0 where ignored). Returns the index
    of the first target outside [0, n_classes) that is not ignore_index, or -1."""
    cdef Py_ssize_t i, n_rows = target.shape[0], bad = -1
    cdef int64_t t
    with nogil:
        for i in range(n_rows):
            t = target[i]
            if has_ignore and t == ignore_index:
                row_weight[i] = 0.0
            elif t < 0 or t >= n_classes:
                bad = i
                break
            else:
                row_weight[i] = weight[t] if has_weight else 1.0
    return bad


cdef inline double _row_ce(const dense_t *x, Py_ssize_t n, Py_ssize_t t, double w_t,
                           const dense_t *q, const double *w, double s, double eps,
                           dense_out_t *g, double gscale, int stream, int half) noexcept nogil:
    """Cross-entropy of softmax(x s) against class t (q == NULL; weight w_t, label smoothing eps)
    or against the distribution (1 - eps) q + eps / C (weighted by w when not NULL). When g is not
    NULL, writes gscale * d loss / d x into g (a write pass over the row while it is in cache).

    Class target: loss = (1 - eps) w_t (lse - z_t) + eps / C * sum_c w_c (lse - z_c)  (torch);
    distribution target: loss = sum_c u_c (lse - z_c), u_c = w_c ((1 - eps) q_c + eps / C);
    lse - z_c = (M - x_c) s + log S. Gradient: (sum_c u_c) softmax - u with u the target weights."""
    cdef RowLSE r = _row_lse(x, n, s, half)
    cdef double loss, sum_u = 0.0, sum_ud = 0.0, qa = 1.0 - eps, qb = eps / n
    cdef double alpha, beta, u_t, x_t
    if r.status != FI_ROW_FINITE:
        if g != NULL:
            _fill_row(g, n, NAN, half)
        return NAN
    if q == NULL:
        x_t = _get(x, t, half)   # read before the gradient may overwrite it (in place)
        loss = qa * w_t * ((r.m - x_t) * s + r.log_S)
        if eps > 0.0:
            _dots(x, <const dense_t *>NULL, w, n, r.m, 1.0, 0.0, &sum_u, &sum_ud, half)
            loss = loss + qb * (s * sum_ud + sum_u * r.log_S)
        if g != NULL:
            alpha = gscale * s * (qa * w_t + qb * sum_u) * exp(-r.log_S)
            beta = gscale * s * qb
            _write_grad(x, <const dense_t *>NULL, w, g, n, r.m, s, alpha, beta, 1.0, 0.0, stream, half)
            u_t = w[t] if w != NULL else 1.0
            _put(g, t, alpha * exp((x_t - r.m) * s) - beta * u_t - gscale * s * qa * w_t, half)
        return loss
    _dots(x, q, w, n, r.m, qa, qb, &sum_u, &sum_ud, half)
    loss = s * sum_ud + sum_u * r.log_S
    if g != NULL:
        alpha = gscale * s * sum_u * exp(-r.log_S)
        beta = gscale * s
        _write_grad(x, q, w, g, n, r.m, s, alpha, beta, qa, qb, stream, half)
    return loss


def softmax_ce_index(const dense_t[:, ::1] x, int half, const int64_t[::1] target, const double[::1] row_weight,
                     bint has_ignore, int64_t ignore_index, const double[::1] weight, bint has_weight,
                     double s, double eps, double[::1] loss, dense_out_t[:, ::1] grad, bint want_grad,
                     double gscale):
    """Per-row cross-entropy against class indices (already checked by softmax_ce_check_targets);
    ignored rows get loss 0 (and gradient 0) without reading their logits."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    cdef const double *w = &weight[0] if has_weight else NULL
    cdef int stream = want_grad and _stream_output(n_rows, n, sizeof(dense_out_t))
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            if has_ignore and target[i] == ignore_index:
                loss[i] = 0.0
                if want_grad:
                    _fill_row(&grad[i, 0], n, 0.0, half)
            else:
                loss[i] = _row_ce(&x[i, 0], n, target[i], row_weight[i], <const dense_t *>NULL, w, s, eps,
                                  &grad[i, 0] if want_grad else NULL, gscale, stream, half)


def softmax_ce_prob(const dense_t[:, ::1] x, const dense_t[:, ::1] q, int half, const double[::1] weight,
                    bint has_weight, double s, double eps, double[::1] loss, dense_out_t[:, ::1] grad,
                    bint want_grad, double gscale):
    """Per-row cross-entropy against target distributions q (rows of the logits' shape and type)."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    cdef const double *w = &weight[0] if has_weight else NULL
    cdef int stream = want_grad and _stream_output(n_rows, n, sizeof(dense_out_t))
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            loss[i] = _row_ce(&x[i, 0], n, 0, 1.0, &q[i, 0], w, s, eps,
                              &grad[i, 0] if want_grad else NULL, gscale, stream, half)


def round_to_half(const double[::1] src, uint16_t[::1] dst, int half):
    """dst = src rounded once, to nearest even, to float16 (half = FI_FLOAT16) or bfloat16 bits."""
    cdef Py_ssize_t i, n = src.shape[0]
    with nogil:
        if half == FI_FLOAT16:
            for i in range(n):
                dst[i] = fi_d_to_f16(src[i])
        else:
            for i in range(n):
                dst[i] = fi_d_to_bf16(src[i])


def round_to_half_vector(const double[::1] src, uint16_t[::1] dst, int half):
    """Test hook: dst = src rounded to float16 (half = FI_FLOAT16) or bfloat16 bits by the vector
    narrowing and store of the half writers (log_softmax, softmax and the gradient into a half
    ``out=``) in the clone in use; the tail past the last full step by the scalar rounding."""
    if dst.shape[0] < src.shape[0]:
        raise ValueError("dst is shorter than src")
    if src.shape[0] == 0:
        return
    with nogil:
        fi_sm_round_half(&src[0], &dst[0], src.shape[0], half)

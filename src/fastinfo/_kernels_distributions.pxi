# Section of _kernels.pyx: distribution family kernels (probabilities, normalised along a row).
#
# Shapes: rows are C-contiguous (n_rows, C) arrays with the reduced axis last (float32, float64, or
# float16 / bfloat16 bits as uint16, widened as they are read); the front-end (_distributions.py)
# allocates ``out`` (n_rows,) float64, which it rounds to the result dtype, and ``status`` (n_rows,) uint8.
# Two-argument kernels read row ``p_index[i]`` of ``p`` and ``q_index[i]`` of ``q`` for output row
# ``i`` (an empty index means the identity), so a broadcast operand is read through its own compact
# rows and never materialised.
#
# Method, per row (one OpenMP work item; the result never depends on the thread count):
#   pass 1 reads the row once: S = sum p (and T = sum (q + eps)) and the count of negative entries
#          of each operand (reported to the front-end: no separate Python pass), in 8 lanes;
#   pass 2 re-reads the row from L1/L2 (32000 doubles = 256 KiB < 1 MiB L2) and sums the terms of
#          the normalised distributions a = p/S, b = (q+eps)/T exactly as scipy.special.entr and
#          rel_entr define them, with a vectorisable log (fi_log_normal below, < 1 ulp measured,
#          polynomial error bound 0.04 ulp).
#   Normalising each entry before the log (rather than the one-pass identity
#   H = log S - sum(p log p)/S) agrees with SciPy's normalise-then-sum to a few ulp even when S is
#   far from 1 (counts), where the identity cancels log S against sum(p log p)/S; clamping a at 1
#   keeps every entropy term >= 0. The normalisation multiplies by 1/S; sums outside
#   [2^-1000, 2^1000] (where 1/S would lose bits) and rows where a log argument is subnormal are
#   redone by a careful variant of the same loop (true division, libc log).
# Rows with a negative entry get status 1 (p) or 2 (q); rows whose sum is 0, NaN or inf give NaN;
# a = 0 contributes 0 (0 log 0 = 0); a > 0 = b gives +inf.
# The row functions are C (csrc/distributions.h; both passes written once in
# csrc/distributions_rows.h and included for float and double) so that GCC vectorises them:
# 8 explicit accumulator lanes (flushed every 1024 entries) make the summation order part of the
# source (bitwise reproducible for any thread count, no -ffast-math), and on x86-64/glibc/GCC they are compiled for x86-64-v4, v3 and
# baseline with runtime dispatch (target_clones); FMA contraction may differ between those levels,
# so bits can differ between machines, never between thread counts on one machine.

cdef extern from "csrc/distributions.h":
    void fi_dist_log(const double *x, double *out, Py_ssize_t n) noexcept nogil
    double fi_entropy_row_f(const float *p, Py_ssize_t n, int *status) noexcept nogil
    double fi_entropy_row_d(const double *p, Py_ssize_t n, int *status) noexcept nogil
    void fi_entropy_rows_f(const float *p, Py_ssize_t n_rows, Py_ssize_t n, double *res, int *status) noexcept nogil
    void fi_entropy_rows_d(const double *p, Py_ssize_t n_rows, Py_ssize_t n, double *res, int *status) noexcept nogil
    void fi_pq_rows_f(int kind, const float *p, const float *q, const int64_t *p_row, const int64_t *q_row,
                      Py_ssize_t n_rows, Py_ssize_t n, double eps, double *res, int *status) noexcept nogil
    void fi_pq_rows_d(int kind, const double *p, const double *q, const int64_t *p_row, const int64_t *q_row,
                      Py_ssize_t n_rows, Py_ssize_t n, double eps, double *res, int *status) noexcept nogil
    void fi_chunk_pass1_f(const float *p, const float *q, Py_ssize_t n, double eps, double *out4) noexcept nogil
    void fi_chunk_pass1_d(const double *p, const double *q, Py_ssize_t n, double eps, double *out4) noexcept nogil
    void fi_chunk_pass2_f(int kind, int careful, const float *p, const float *q, Py_ssize_t n, double S,
                          double Tq, double eps, double *out3) noexcept nogil
    void fi_chunk_pass2_d(int kind, int careful, const double *p, const double *q, Py_ssize_t n, double S,
                          double Tq, double eps, double *out3) noexcept nogil
    # float16 (_h) and bfloat16 (_b) rows, as their bits
    int fi_entr_tables_init() noexcept nogil
    int fi_entr_use_table
    void fi_entropy_rows_h(const uint16_t *p, Py_ssize_t n_rows, Py_ssize_t n, double *res, int *status) noexcept nogil
    void fi_entropy_rows_b(const uint16_t *p, Py_ssize_t n_rows, Py_ssize_t n, double *res, int *status) noexcept nogil
    void fi_pq_rows_h(int kind, const uint16_t *p, const uint16_t *q, const int64_t *p_row, const int64_t *q_row,
                      Py_ssize_t n_rows, Py_ssize_t n, double eps, double *res, int *status) noexcept nogil
    void fi_pq_rows_b(int kind, const uint16_t *p, const uint16_t *q, const int64_t *p_row, const int64_t *q_row,
                      Py_ssize_t n_rows, Py_ssize_t n, double eps, double *res, int *status) noexcept nogil
    void fi_chunk_pass1_h(const uint16_t *p, const uint16_t *q, Py_ssize_t n, double eps, double *out4) noexcept nogil
    void fi_chunk_pass1_b(const uint16_t *p, const uint16_t *q, Py_ssize_t n, double eps, double *out4) noexcept nogil
    void fi_chunk_pass2_h(int kind, int careful, const uint16_t *p, const uint16_t *q, Py_ssize_t n, double S,
                          double Tq, double eps, double *out3) noexcept nogil
    void fi_chunk_pass2_b(int kind, int careful, const uint16_t *p, const uint16_t *q, Py_ssize_t n, double S,
                          double Tq, double eps, double *out3) noexcept nogil


cdef inline void _chunk_pass1(const dense_t *p, const dense_t *q, Py_ssize_t n, double eps, double *out4,
                              int half) noexcept nogil:
    if dense_t is float:
        fi_chunk_pass1_f(p, q, n, eps, out4)
    elif dense_t is double:
        fi_chunk_pass1_d(p, q, n, eps, out4)
    elif half == FI_FLOAT16:
        fi_chunk_pass1_h(p, q, n, eps, out4)
    else:
        fi_chunk_pass1_b(p, q, n, eps, out4)


cdef inline void _chunk_pass2(int kind, int careful, const dense_t *p, const dense_t *q, Py_ssize_t n, double S,
                              double Tq, double eps, double *out3, int half) noexcept nogil:
    if dense_t is float:
        fi_chunk_pass2_f(kind, careful, p, q, n, S, Tq, eps, out3)
    elif dense_t is double:
        fi_chunk_pass2_d(kind, careful, p, q, n, S, Tq, eps, out3)
    elif half == FI_FLOAT16:
        fi_chunk_pass2_h(kind, careful, p, q, n, S, Tq, eps, out3)
    else:
        fi_chunk_pass2_b(kind, careful, p, q, n, S, Tq, eps, out3)


cdef Py_ssize_t _first_bad_row(const unsigned char[::1] status) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(status.shape[0]):
        if status[i]:
            return i
    return -1


# Rows longer than this are split into chunks of this many entries (a constant, so the split and
# hence every bit of the result are independent of the thread count): pass 1 and pass 2 run over
# (row, chunk) work items in parallel and the chunk partials are combined serially in chunk order.
# This keeps long 1-D inputs (one row) on all threads.
cdef Py_ssize_t DIST_CHUNK = 65536
_NO_INDEX = np.empty(0, dtype=np.int64)


cdef void _long_rows(int kind, const dense_t[:, ::1] p, const dense_t[:, ::1] q, int half,
                     const int64_t[::1] p_index, const int64_t[::1] q_index,
                     double[::1] out, unsigned char[::1] status, double eps, double log_base,
                     double[:, ::1] part1, double[:, ::1] part2, double[:, ::1] sums,
                     unsigned char[::1] mode) noexcept nogil:
    # kind 3 is the entropy (q unused). mode per row: 0 no pass 2 (negative entry or bad sum),
    # 1 fast, 2 careful, 3 fast then redone carefully (a subnormal log argument).
    cdef Py_ssize_t n_rows = out.shape[0], n = p.shape[1]
    cdef Py_ssize_t n_chunks = (n + DIST_CHUNK - 1) // DIST_CHUNK
    cdef Py_ssize_t n_items = n_rows * n_chunks
    cdef bint p_identity = p_index.shape[0] == 0, q_identity = q_index.shape[0] == 0
    cdef int nt = num_threads_for(n_items)
    cdef Py_ssize_t it, r, c, start, length, ip, iq
    cdef const dense_t *pp
    cdef const dense_t *qp
    cdef double S, T, negp, negq, inf, tiny, total
    cdef bint redo = False
    for it in prange(n_items, schedule='static', num_threads=nt):
        r = it // n_chunks
        c = it - r * n_chunks
        start = c * DIST_CHUNK
        length = n - start if n - start < DIST_CHUNK else DIST_CHUNK
        ip = r if p_identity else p_index[r]
        iq = r if q_identity else q_index[r]
        pp = &p[ip, start]
        qp = NULL
        if kind != 3:
            qp = &q[iq, start]
        _chunk_pass1(pp, qp, length, eps, &part1[it, 0], half)
    for r in range(n_rows):
        S = 0.0
        T = 0.0
        negp = 0.0
        negq = 0.0
        for c in range(n_chunks):
            S = S + part1[r * n_chunks + c, 0]
            T = T + part1[r * n_chunks + c, 1]
            negp = negp + part1[r * n_chunks + c, 2]
            negq = negq + part1[r * n_chunks + c, 3]
        if kind == 3:
            T = 1.0
        status[r] = 1 if negp > 0.0 else (2 if negq > 0.0 else 0)
        sums[r, 0] = S
        sums[r, 1] = T
        if status[r] != 0 or not (S > 0.0 and S <= 1.7976931348623157e308 and T > 0.0 and T <= 1.7976931348623157e308):
            mode[r] = 0
        elif S >= 2.0 ** -1000 and S <= 2.0 ** 1000 and T >= 2.0 ** -1000 and T <= 2.0 ** 1000:
            mode[r] = 1
        else:
            mode[r] = 2
    for it in prange(n_items, schedule='static', num_threads=nt):
        r = it // n_chunks
        if mode[r] != 0:
            c = it - r * n_chunks
            start = c * DIST_CHUNK
            length = n - start if n - start < DIST_CHUNK else DIST_CHUNK
            ip = r if p_identity else p_index[r]
            iq = r if q_identity else q_index[r]
            pp = &p[ip, start]
            qp = pp if kind == 3 else &q[iq, start]
            _chunk_pass2(kind, mode[r] == 2, pp, qp, length, sums[r, 0], sums[r, 1], eps, &part2[it, 0], half)
    for r in range(n_rows):
        if mode[r] == 1:
            inf = 0.0
            tiny = 0.0
            for c in range(n_chunks):
                inf = inf + part2[r * n_chunks + c, 1]
                tiny = tiny + part2[r * n_chunks + c, 2]
            if inf == 0.0 and tiny > 0.0:
                mode[r] = 3
                redo = True
    if redo:
        for it in prange(n_items, schedule='static', num_threads=nt):
            r = it // n_chunks
            if mode[r] == 3:
                c = it - r * n_chunks
                start = c * DIST_CHUNK
                length = n - start if n - start < DIST_CHUNK else DIST_CHUNK
                ip = r if p_identity else p_index[r]
                iq = r if q_identity else q_index[r]
                pp = &p[ip, start]
                qp = pp if kind == 3 else &q[iq, start]
                _chunk_pass2(kind, 1, pp, qp, length, sums[r, 0], sums[r, 1], eps, &part2[it, 0], half)
    for r in range(n_rows):
        if mode[r] == 0:
            out[r] = NAN
            continue
        inf = 0.0
        total = 0.0
        for c in range(n_chunks):
            inf = inf + part2[r * n_chunks + c, 1]
            total = total + part2[r * n_chunks + c, 0]
        if inf > 0.0:
            total = INFINITY
        out[r] = (total + 0.0) / log_base


if fi_entr_tables_init() != 0:
    raise MemoryError("fastinfo: out of memory for the half-precision entropy tables")


def distribution_set_entropy_table(bint on):
    """The one-pass entropy of float16 / bfloat16 rows from the p log p tables (on, the default) or
    the two passes with a float log; returns the old setting (tests and measurements)."""
    global fi_entr_use_table
    old = bool(fi_entr_use_table)
    fi_entr_use_table = 1 if on else 0
    return old


def _long_rows_scratch(Py_ssize_t n_rows, Py_ssize_t n):
    n_items = n_rows * ((n + DIST_CHUNK - 1) // DIST_CHUNK)
    return (np.empty((n_items, 4)), np.zeros((n_items, 3)), np.empty((n_rows, 2)),
            np.empty(n_rows, dtype=np.uint8))


def distribution_entropy_rows(const dense_t[:, ::1] p, int half, double[::1] out,
                              unsigned char[::1] status, double log_base):
    """``out[i] = H(p[i] / sum(p[i])) / log_base``; returns ``(row, code)`` of the first row with a
    negative entry (code 1) or ``(-1, 0)``. Requires ``p.shape[1] > 0``. ``half``: the type of uint16
    rows (float16 / bfloat16 bits). The caller rounds ``out`` to the result dtype."""
    cdef Py_ssize_t n_rows = p.shape[0], n = p.shape[1], i, bad
    cdef int nt = num_threads_for(n_rows)
    cdef double[::1] res
    cdef int[::1] st
    cdef double[:, ::1] part1, part2, sums
    cdef unsigned char[::1] mode
    cdef const int64_t[::1] no_index
    if n_rows == 0:
        return -1, 0
    if n > DIST_CHUNK:
        part1, part2, sums, mode = _long_rows_scratch(n_rows, n)
        no_index = _NO_INDEX
        with nogil:
            _long_rows(3, p, p, half, no_index, no_index, out, status, 0.0, log_base, part1, part2, sums, mode)
        bad = _first_bad_row(status)
        return (-1, 0) if bad < 0 else (bad, int(status[bad]))
    res = np.empty(n_rows)
    st = np.empty(n_rows, dtype=np.intc)
    _entropy_rows(p, res, st, nt, half)
    bad = -1
    with nogil:
        for i in range(n_rows):
            status[i] = <unsigned char>st[i]
            out[i] = res[i] / log_base
            if bad < 0 and st[i]:
                bad = i
    if bad < 0:
        return -1, 0
    return bad, int(status[bad])


cdef void _entropy_rows(const dense_t[:, ::1] p, double[::1] res, int[::1] st, int nt, int half) noexcept:
    # one contiguous range of rows per thread: each row's pass 2 prefetches the next row
    cdef Py_ssize_t n_rows = p.shape[0], n = p.shape[1], c, lo, hi
    with nogil:
        for c in prange(nt, schedule='static', num_threads=nt):
            lo = n_rows * c // nt
            hi = n_rows * (c + 1) // nt
            if hi > lo:
                if dense_t is float:
                    fi_entropy_rows_f(&p[lo, 0], hi - lo, n, &res[lo], &st[lo])
                elif dense_t is double:
                    fi_entropy_rows_d(&p[lo, 0], hi - lo, n, &res[lo], &st[lo])
                elif half == FI_FLOAT16:
                    fi_entropy_rows_h(&p[lo, 0], hi - lo, n, &res[lo], &st[lo])
                else:
                    fi_entropy_rows_b(&p[lo, 0], hi - lo, n, &res[lo], &st[lo])


def distribution_pq_rows(int kind, const dense_t[:, ::1] p, const dense_t[:, ::1] q, int half,
                         const int64_t[::1] p_index, const int64_t[::1] q_index,
                         double[::1] out, unsigned char[::1] status, double eps, double log_base):
    """Per-row cross-entropy (kind 0), KL divergence (1) or JS divergence (2) of the normalised rows
    ``p[p_index[i]]`` and ``q[q_index[i]]`` (empty index: identity), divided by ``log_base``.
    Returns ``(row, code)`` of the first row with a negative entry (code 1: p, 2: q) or ``(-1, 0)``.
    Requires ``p.shape[1] == q.shape[1] > 0`` and valid indices."""
    cdef Py_ssize_t n_rows = out.shape[0], n = p.shape[1], i, ip, iq, bad
    cdef bint p_identity = p_index.shape[0] == 0, q_identity = q_index.shape[0] == 0
    cdef int nt = num_threads_for(n_rows)
    cdef double[::1] res
    cdef int[::1] st
    cdef double[:, ::1] part1, part2, sums
    cdef unsigned char[::1] mode
    if n_rows == 0:
        return -1, 0
    if n > DIST_CHUNK:
        part1, part2, sums, mode = _long_rows_scratch(n_rows, n)
        with nogil:
            _long_rows(kind, p, q, half, p_index, q_index, out, status, eps, log_base, part1, part2, sums, mode)
        bad = _first_bad_row(status)
        return (-1, 0) if bad < 0 else (bad, int(status[bad]))
    res = np.empty(n_rows)
    st = np.empty(n_rows, dtype=np.intc)
    _pq_rows(kind, p, q, p_index, q_index, res, st, eps, nt, half)
    bad = -1
    with nogil:
        for i in range(n_rows):
            status[i] = <unsigned char>st[i]
            out[i] = res[i] / log_base
            if bad < 0 and st[i]:
                bad = i
    if bad < 0:
        return -1, 0
    return bad, int(status[bad])


cdef void _pq_rows(int kind, const dense_t[:, ::1] p, const dense_t[:, ::1] q, const int64_t[::1] p_index,
                   const int64_t[::1] q_index, double[::1] res, int[::1] st, double eps, int nt,
                   int half) noexcept:
    # one contiguous range of rows per thread: each row's pass 2 prefetches the next rows
    cdef Py_ssize_t n_rows = res.shape[0], n = p.shape[1], c, lo, hi
    cdef bint p_identity = p_index.shape[0] == 0, q_identity = q_index.shape[0] == 0
    cdef const int64_t *p_row
    cdef const int64_t *q_row
    cdef const dense_t *p_base
    cdef const dense_t *q_base
    with nogil:
        for c in prange(nt, schedule='static', num_threads=nt):
            lo = n_rows * c // nt
            hi = n_rows * (c + 1) // nt
            p_row = NULL
            q_row = NULL
            if hi > lo:
                # identity: the chunk's own rows; an index: rows of the whole operand
                if p_identity:
                    p_base = &p[lo, 0]
                else:
                    p_base = &p[0, 0]
                    p_row = &p_index[lo]
                if q_identity:
                    q_base = &q[lo, 0]
                else:
                    q_base = &q[0, 0]
                    q_row = &q_index[lo]
                if dense_t is float:
                    fi_pq_rows_f(kind, p_base, q_base, p_row, q_row, hi - lo, n, eps, &res[lo], &st[lo])
                elif dense_t is double:
                    fi_pq_rows_d(kind, p_base, q_base, p_row, q_row, hi - lo, n, eps, &res[lo], &st[lo])
                elif half == FI_FLOAT16:
                    fi_pq_rows_h(kind, p_base, q_base, p_row, q_row, hi - lo, n, eps, &res[lo], &st[lo])
                else:
                    fi_pq_rows_b(kind, p_base, q_base, p_row, q_row, hi - lo, n, eps, &res[lo], &st[lo])


def distribution_log(const double[::1] x, double[::1] out):
    """Test hook: the vector ``log`` of the distribution kernels in the clone in use, elementwise
    (x finite > 0; arguments below DBL_MIN take libc log, as the kernels do)."""
    with nogil:
        fi_dist_log(&x[0], &out[0], x.shape[0])


def distribution_simd():
    """The clone the distribution kernels run (the softmax kernels' too): see :func:`dense_simd`."""
    return dense_simd()

# Section of _kernels.pyx: softmax family kernels (logits).
#
# Input: logits as a C-contiguous (rows, C) array, C >= 1, the class axis last (the front-ends in
# _softmax.py move it there); the front-ends allocate every output. Float32 or float64 (fused),
# double accumulators. Method: per row, an online max and rescaled sum-exp over blocks that fit in
# L1 (so the row is read from memory once), then, for elementwise outputs (log_softmax, softmax,
# the cross-entropy gradient), one write pass while the row is in cache. softmax keeps the exps of
# the sum pass in a per-thread scratch row and its write pass only rescales them per block (rows up
# to 131072 elements; longer rows compute exp again in the write pass). Per-row results only;
# reductions over rows are done by the caller in a fixed order, so any thread count gives the
# same bits.
#
# The C is in csrc/softmax.h (row functions, written once in csrc/softmax_rows.h and included for
# float and double) and csrc/vec.h (vector types, exp polynomials); this file declares it and
# drives it over rows.
#
# exp: glibc's scalar exp does not vectorise, so csrc/vec.h has its own 8-lane exp for
# arguments t <= 0 (the only ones softmax needs: t = (x - max) / T), in float32 for float32 input
# (minimax degree 6 on |r| <= ln2/2: error below 4e-9 relative, so about 1 ulp with rounding)
# and float64 for float64 input (degree 13: truncation below 1e-17 relative). Results below the
# normal range (t < -87 in float32, t < -708 in float64) are 0. The block functions are compiled
# three times (baseline x86-64, x86-64-v3 = AVX2+FMA, x86-64-v4 = AVX-512, whose 32 vector
# registers keep the unrolled exp loops free of spills: about 10% less time in the sum-exp pass)
# and picked at load time. FMA contraction may differ between those levels (last-bit differences
# between machines); on one machine results do not depend on the thread count.
#
# One source for both types: csrc/softmax_rows.h is included twice by csrc/softmax.h, with the
# element type FT and the name suffix SFX defined as float / f and double / d; only the two exp
# polynomials are written per type.

cdef extern from "csrc/softmax.h":
    double fi_max_f(const float *x, Py_ssize_t n, int *nan_seen) nogil
    double fi_max_d(const double *x, Py_ssize_t n, int *nan_seen) nogil
    double fi_sumexp_f(const float *x, Py_ssize_t n, float m, float s) nogil
    double fi_sumexp_d(const double *x, Py_ssize_t n, double m, double s) nogil
    void fi_sumexp_ent_f(const float *x, Py_ssize_t n, float m, float s, double *S, double *U) nogil
    void fi_sumexp_ent_d(const double *x, Py_ssize_t n, double m, double s, double *S, double *U) nogil
    void fi_sumexp_kl_f(const float *a, const float *b, Py_ssize_t n, float ma, float mb, float s,
                        double *Sa, double *Sb, double *U) nogil
    void fi_sumexp_kl_d(const double *a, const double *b, Py_ssize_t n, double ma, double mb, double s,
                        double *Sa, double *Sb, double *U) nogil
    void fi_write_logsoftmax_f(const float *x, float *y, Py_ssize_t n, double m, double s, double c, int nt) nogil
    void fi_write_logsoftmax_d(const double *x, double *y, Py_ssize_t n, double m, double s, double c, int nt) nogil
    void fi_write_softmax_f(const float *x, float *y, Py_ssize_t n, float m, float s, double inv_S, int nt) nogil
    void fi_write_softmax_d(const double *x, double *y, Py_ssize_t n, double m, double s, double inv_S, int nt) nogil
    double fi_sumexp_store_f(const float *x, float *y, Py_ssize_t n, float m, float s) nogil
    double fi_sumexp_store_d(const double *x, double *y, Py_ssize_t n, double m, double s) nogil
    void fi_scale_f(const float *e, float *y, Py_ssize_t n, double f, int nt) nogil
    void fi_scale_d(const double *e, double *y, Py_ssize_t n, double f, int nt) nogil
    void fi_write_grad_f(const float *x, const float *q, const double *w, float *g, Py_ssize_t n,
                         float m, float s, double alpha, double beta, double qa, double qb, int nt) nogil
    void fi_write_grad_d(const double *x, const double *q, const double *w, double *g, Py_ssize_t n,
                         double m, double s, double alpha, double beta, double qa, double qb, int nt) nogil
    void fi_dots_f(const float *x, const float *q, const double *w, Py_ssize_t n, double m,
                   double qa, double qb, double *sum_u, double *sum_ud) nogil
    void fi_dots_d(const double *x, const double *q, const double *w, Py_ssize_t n, double m,
                   double qa, double qb, double *sum_u, double *sum_ud) nogil


# Rows are processed in blocks of this many elements (8 KiB of float32, 16 KiB of float64):
# a block is read from memory once for its max and then again from L1 for its exp-sum.
cdef enum:
    _SOFTMAX_BLOCK = 2048

cdef enum:
    _ROW_FINITE = 0    # finite max: m and log_S are set
    _ROW_NAN = 1       # a NaN in the row
    _ROW_POSINF = 2    # +inf in the row (logsumexp +inf, everything else NaN)
    _ROW_NEGINF = 3    # every element -inf, or an empty row (logsumexp -inf)


cdef struct RowLSE:
    double m        # max of the row (of x, not of x/T)
    double log_S    # log sum exp((x - m) / T); logsumexp(x / T) = m / T + log_S
    int status


cdef inline double _block_max(const floating *x, Py_ssize_t n, int *nan_seen) noexcept nogil:
    if floating is float:
        return fi_max_f(x, n, nan_seen)
    else:
        return fi_max_d(x, n, nan_seen)


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


cdef inline int _stream_output(Py_ssize_t n_rows, Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    """Streaming stores for elementwise outputs over 64 MiB (far beyond the caches), where the
    output is not going to be read back from cache anyway."""
    return n_rows * n * itemsize > _stream_min_bytes


cdef inline Py_ssize_t _block_len(Py_ssize_t start, Py_ssize_t n) noexcept nogil:
    return _SOFTMAX_BLOCK if n - start > _SOFTMAX_BLOCK else n - start


cdef inline bint _has_nan(const floating *x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        if x[j] != x[j]:
            return True
    return False


cdef inline RowLSE _row_lse(const floating *x, Py_ssize_t n, double s) noexcept nogil:
    """Online max and rescaled sum-exp of one row: when a block raises the running max M,
    the sum so far is multiplied by exp((M_old - M_new) s). A NaN makes the sum NaN (blocks
    that are skipped report NaN through nan_seen); only a row holding +inf is searched again."""
    cdef RowLSE res
    cdef double M = -INFINITY, S = 0.0, bm
    cdef int nan_seen = 0
    cdef Py_ssize_t start = 0, length
    res.m = NAN
    res.log_S = NAN
    while start < n:
        length = _block_len(start, n)
        bm = _block_max(x + start, length, &nan_seen)
        if bm > M:
            if S > 0.0:
                S = S * exp((M - bm) * s)
            M = bm
        if -INFINITY < M < INFINITY:
            if floating is float:
                S += fi_sumexp_f(x + start, length, <float>M, <float>s)
            else:
                S += fi_sumexp_d(x + start, length, M, s)
        start += length
    if nan_seen or S != S or (M == INFINITY and _has_nan(x, n)):
        res.status = _ROW_NAN
    elif M == INFINITY:
        res.status = _ROW_POSINF
    elif M == -INFINITY:
        res.status = _ROW_NEGINF
    else:
        res.status = _ROW_FINITE
        res.m = M
        res.log_S = log(S)
    return res


cdef inline void _fill_row(floating *y, Py_ssize_t n, double value) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        y[j] = <floating>value


def softmax_logsumexp(const floating[:, ::1] x, double[::1] out):
    """out[i] = logsumexp(x[i, :]). x: (rows, C >= 1) C-contiguous; out: (rows,) float64."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    cdef RowLSE r
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            r = _row_lse(&x[i, 0], n, 1.0)
            if r.status == _ROW_FINITE:
                out[i] = r.m + r.log_S
            elif r.status == _ROW_POSINF:
                out[i] = INFINITY
            elif r.status == _ROW_NEGINF:
                out[i] = -INFINITY
            else:
                out[i] = NAN


cdef enum:
    # softmax rows of up to this many blocks (131072 elements) keep their exps from the sum pass
    _SOFTMAX_STORE_BLOCKS = 64


cdef inline void _row_softmax(const floating *x, floating *y, Py_ssize_t n, double s, floating *scratch,
                              int stream) noexcept nogil:
    """y = softmax(x s) for a row of at most _SOFTMAX_STORE_BLOCKS blocks; y may be x.
    The sum pass writes each block's exps e = exp((x - M_k) s) into a thread's scratch row
    (which stays in L2, so y is written once, without being read for ownership), M_k the
    running max when the block was summed; the write pass multiplies block k by
    exp((M_k - M) s) / S in double: one exp per element instead of two (for the blocks at the
    final max the factor is 1 / S, as in fi_write_softmax). A block that was all -inf when
    summed is skipped there and set to 0 here."""
    cdef double block_m[_SOFTMAX_STORE_BLOCKS]
    cdef double M = -INFINITY, S = 0.0, bm, inv_S
    cdef int nan_seen = 0
    cdef Py_ssize_t start = 0, length, k = 0
    while start < n:
        length = _block_len(start, n)
        bm = _block_max(x + start, length, &nan_seen)
        if bm > M:
            if S > 0.0:
                S = S * exp((M - bm) * s)
            M = bm
        if -INFINITY < M < INFINITY:
            if floating is float:
                S += fi_sumexp_store_f(x + start, scratch + start, length, <float>M, <float>s)
            else:
                S += fi_sumexp_store_d(x + start, scratch + start, length, M, s)
        block_m[k] = M
        k += 1
        start += length
    if nan_seen or S != S or not (-INFINITY < M < INFINITY):
        _fill_row(y, n, NAN)
        return
    inv_S = 1.0 / S
    start = 0
    k = 0
    while start < n:
        length = _block_len(start, n)
        if block_m[k] == -INFINITY:
            _fill_row(y + start, length, 0.0)
        elif floating is float:
            fi_scale_f(scratch + start, y + start, length, exp((block_m[k] - M) * s) * inv_S, stream)
        else:
            fi_scale_d(scratch + start, y + start, length, exp((block_m[k] - M) * s) * inv_S, stream)
        k += 1
        start += length


cdef inline void _row_normalize(const floating *x, floating *y, Py_ssize_t n, double s, bint log_output,
                                int stream) noexcept nogil:
    """y = log_softmax(x s) or softmax(x s) of one row (y may be x): the online pass, then one
    write pass while the row is in cache."""
    cdef RowLSE r = _row_lse(x, n, s)
    if r.status != _ROW_FINITE:
        _fill_row(y, n, NAN)
    elif floating is float:
        if log_output:
            fi_write_logsoftmax_f(x, y, n, r.m, s, r.log_S, stream)
        else:
            fi_write_softmax_f(x, y, n, <float>r.m, <float>s, exp(-r.log_S), stream)
    else:
        if log_output:
            fi_write_logsoftmax_d(x, y, n, r.m, s, r.log_S, stream)
        else:
            fi_write_softmax_d(x, y, n, r.m, s, exp(-r.log_S), stream)


def softmax_normalize(const floating[:, ::1] x, floating[:, ::1] out, double s, bint log_output):
    """out = log_softmax(x * s) (log_output) or softmax(x * s) along rows; out may be x.
    One online pass for (max, sum-exp), then one write pass (the row is then in cache)."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    cdef int stream = _stream_output(n_rows, n, sizeof(floating))
    cdef bint keep_exps = not log_output and n <= _SOFTMAX_STORE_BLOCKS * _SOFTMAX_BLOCK
    cdef floating *scratch = NULL
    if n_rows == 0:
        return
    with nogil, parallel(num_threads=nt):
        # softmax: a scratch row per thread for the exps (without it, the two-exp path)
        scratch = <floating *>malloc(n * sizeof(floating)) if keep_exps else NULL
        for i in prange(n_rows, schedule='static'):
            if scratch != NULL:
                _row_softmax(&x[i, 0], &out[i, 0], n, s, scratch, stream)
            else:
                _row_normalize(&x[i, 0], &out[i, 0], n, s, log_output, stream)
        free(scratch)


cdef inline double _row_entropy(const floating *x, Py_ssize_t n, double s) noexcept nogil:
    """H = log S - U / S with S = sum e^t, U = sum e^t t, t = (x - M) s, kept online: when the
    max rises by -d (d = (M_old - M_new) s < 0), U <- e^d (U + d S) and S <- e^d S."""
    cdef double M = -INFINITY, S = 0.0, U = 0.0, bm, d, r, bS, bU
    cdef int nan_seen = 0
    cdef Py_ssize_t start = 0, length
    while start < n:
        length = _block_len(start, n)
        bm = _block_max(x + start, length, &nan_seen)
        if bm > M:
            if S > 0.0:
                d = (M - bm) * s
                r = exp(d)
                U = r * (U + d * S)
                S = r * S
            M = bm
        if M == INFINITY:
            return NAN
        if M > -INFINITY:
            if floating is float:
                fi_sumexp_ent_f(x + start, length, <float>M, <float>s, &bS, &bU)
            else:
                fi_sumexp_ent_d(x + start, length, M, s, &bS, &bU)
            S += bS
            U += bU
        start += length
    if nan_seen or not M > -INFINITY:
        return NAN
    return log(S) - U / S


def softmax_entropy_rows(const floating[:, ::1] x, double s, double[::1] out):
    """out[i] = H(softmax(x[i] * s)) in nats; one read of x."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            out[i] = _row_entropy(&x[i, 0], n, s)


cdef inline double _row_kl(const floating *a, const floating *b, Py_ssize_t n, double s) noexcept nogil:
    """KL(softmax(a s) || softmax(b s)) = U / Sa - (lse(a s) - lse(b s)), U = sum e^ta (a - b) s;
    both rows are read once, block by block, with online maxima."""
    cdef double Ma = -INFINITY, Mb = -INFINITY, Sa = 0.0, Sb = 0.0, U = 0.0
    cdef double bma, bmb, r, bA, bB, bU
    cdef int nan_seen = 0
    cdef Py_ssize_t start = 0, length
    while start < n:
        length = _block_len(start, n)
        bma = _block_max(a + start, length, &nan_seen)
        bmb = _block_max(b + start, length, &nan_seen)
        if bma == INFINITY or bmb == INFINITY:
            return NAN
        if bma > Ma:
            if Sa > 0.0:
                r = exp((Ma - bma) * s)
                Sa = r * Sa
                U = r * U
            Ma = bma
        if bmb > Mb:
            if Sb > 0.0:
                Sb = Sb * exp((Mb - bmb) * s)
            Mb = bmb
        if Ma > -INFINITY or Mb > -INFINITY:
            # a reference of 0 for a side whose block is all -inf makes its exps 0, as they should be
            if floating is float:
                fi_sumexp_kl_f(a + start, b + start, length, <float>(Ma if Ma > -INFINITY else 0.0),
                               <float>(Mb if Mb > -INFINITY else 0.0), <float>s, &bA, &bB, &bU)
            else:
                fi_sumexp_kl_d(a + start, b + start, length, Ma if Ma > -INFINITY else 0.0,
                               Mb if Mb > -INFINITY else 0.0, s, &bA, &bB, &bU)
            Sa += bA
            Sb += bB
            U += bU
        start += length
    if nan_seen or not (Ma > -INFINITY and Mb > -INFINITY):
        return NAN
    return U / Sa - ((Ma - Mb) * s + log(Sa) - log(Sb))


def softmax_kl_rows(const floating[:, ::1] a, const floating[:, ::1] b, double s, double[::1] out):
    """out[i] = KL(softmax(a[i] s) || softmax(b[i] s)) in nats; one read of a and b."""
    cdef Py_ssize_t n_rows = a.shape[0], n = a.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            out[i] = _row_kl(&a[i, 0], &b[i, 0], n, s)


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


cdef inline double _row_ce(const floating *x, Py_ssize_t n, Py_ssize_t t, double w_t,
                           const floating *q, const double *w, double s, double eps,
                           floating *g, double gscale, int stream) noexcept nogil:
    """Cross-entropy of softmax(x s) against class t (q == NULL; weight w_t, label smoothing eps)
    or against the distribution (1 - eps) q + eps / C (weighted by w when not NULL). When g is not
    NULL, writes gscale * d loss / d x into g (a write pass over the row while it is in cache).

    Class target: loss = (1 - eps) w_t (lse - z_t) + eps / C * sum_c w_c (lse - z_c)  (torch);
    distribution target: loss = sum_c u_c (lse - z_c), u_c = w_c ((1 - eps) q_c + eps / C);
    lse - z_c = (M - x_c) s + log S. Gradient: (sum_c u_c) softmax - u with u the target weights."""
    cdef RowLSE r = _row_lse(x, n, s)
    cdef double loss, sum_u = 0.0, sum_ud = 0.0, qa = 1.0 - eps, qb = eps / n
    cdef double alpha, beta, u_t
    if r.status != _ROW_FINITE:
        if g != NULL:
            _fill_row(g, n, NAN)
        return NAN
    if q == NULL:
        loss = qa * w_t * ((r.m - x[t]) * s + r.log_S)
        if eps > 0.0:
            if floating is float:
                fi_dots_f(x, NULL, w, n, r.m, 1.0, 0.0, &sum_u, &sum_ud)
            else:
                fi_dots_d(x, NULL, w, n, r.m, 1.0, 0.0, &sum_u, &sum_ud)
            loss = loss + qb * (s * sum_ud + sum_u * r.log_S)
        if g != NULL:
            alpha = gscale * s * (qa * w_t + qb * sum_u) * exp(-r.log_S)
            beta = gscale * s * qb
            if floating is float:
                fi_write_grad_f(x, NULL, w, g, n, <float>r.m, <float>s, alpha, beta, 1.0, 0.0, stream)
            else:
                fi_write_grad_d(x, NULL, w, g, n, r.m, s, alpha, beta, 1.0, 0.0, stream)
            u_t = w[t] if w != NULL else 1.0
            g[t] = <floating>(alpha * exp((x[t] - r.m) * s) - beta * u_t - gscale * s * qa * w_t)
        return loss
    if floating is float:
        fi_dots_f(x, q, w, n, r.m, qa, qb, &sum_u, &sum_ud)
    else:
        fi_dots_d(x, q, w, n, r.m, qa, qb, &sum_u, &sum_ud)
    loss = s * sum_ud + sum_u * r.log_S
    if g != NULL:
        alpha = gscale * s * sum_u * exp(-r.log_S)
        beta = gscale * s
        if floating is float:
            fi_write_grad_f(x, q, w, g, n, <float>r.m, <float>s, alpha, beta, qa, qb, stream)
        else:
            fi_write_grad_d(x, q, w, g, n, r.m, s, alpha, beta, qa, qb, stream)
    return loss


def softmax_ce_index(const floating[:, ::1] x, const int64_t[::1] target, const double[::1] row_weight,
                     bint has_ignore, int64_t ignore_index, const double[::1] weight, bint has_weight,
                     double s, double eps, double[::1] loss, floating[:, ::1] grad, bint want_grad,
                     double gscale):
    """Per-row cross-entropy against class indices (already checked by softmax_ce_check_targets);
    ignored rows get loss 0 (and gradient 0) without reading their logits."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    cdef const double *w = &weight[0] if has_weight else NULL
    cdef int stream = want_grad and _stream_output(n_rows, n, sizeof(floating))
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            if has_ignore and target[i] == ignore_index:
                loss[i] = 0.0
                if want_grad:
                    _fill_row(&grad[i, 0], n, 0.0)
            else:
                loss[i] = _row_ce(&x[i, 0], n, target[i], row_weight[i], NULL, w, s, eps,
                                  &grad[i, 0] if want_grad else NULL, gscale, stream)


def softmax_ce_prob(const floating[:, ::1] x, const floating[:, ::1] q, const double[::1] weight,
                    bint has_weight, double s, double eps, double[::1] loss, floating[:, ::1] grad,
                    bint want_grad, double gscale):
    """Per-row cross-entropy against target distributions q (rows of the logits' shape)."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    cdef const double *w = &weight[0] if has_weight else NULL
    cdef int stream = want_grad and _stream_output(n_rows, n, sizeof(floating))
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            loss[i] = _row_ce(&x[i, 0], n, 0, 1.0, &q[i, 0], w, s, eps,
                              &grad[i, 0] if want_grad else NULL, gscale, stream)

# Section of _kernels.pyx: SciPy drop-in (fastinfo.scipy) kernels.
#
# scipy_weighted_lse_rows: for output row i, a row a[a_index[i]] and weights b[b_index[i]] (an empty
# index is the identity, so a broadcast operand is read through its own compact rows and never
# materialised); a and b are C-contiguous (rows, C) of one float type, C >= 1. Writes the row
# maximum over nonzero weights m[i] (float64), the signed sum S[i] = sum b exp(a - m[i]) (float64),
# the weight at the maximum W[i] = sum of b where a = m[i] (float64) and nan[i] (uint8: a NaN entry with a nonzero weight). The caller allocates the outputs.
# Method: csrc/scipy_logsumexp.h (blocked online max and rescaled sum, one read); rows run in
# parallel, each row's sum in a fixed order, so results do not depend on the thread count.

cdef extern from "csrc/scipy_logsumexp.h":
    void fi_wlse_row_f(const float *a, const float *b, Py_ssize_t n, double *m, double *s, double *w,
                       int *nan_seen) nogil
    void fi_wlse_row_d(const double *a, const double *b, Py_ssize_t n, double *m, double *s, double *w,
                       int *nan_seen) nogil


def scipy_weighted_lse_rows(const floating[:, ::1] a, const floating[:, ::1] b,
                            const int64_t[::1] a_index, const int64_t[::1] b_index,
                            double[::1] m_out, double[::1] s_out, double[::1] w_out,
                            unsigned char[::1] nan_out):
    """Per output row: max of a over nonzero weights, sum b exp(a - max), NaN flag (see above)."""
    cdef Py_ssize_t n_rows = m_out.shape[0], n = a.shape[1], i, ia, ib
    cdef bint a_identity = a_index.shape[0] == 0, b_identity = b_index.shape[0] == 0
    cdef int nan
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=num_threads_for(n_rows)):
            ia = i if a_identity else a_index[i]
            ib = i if b_identity else b_index[i]
            nan = 0
            if floating is float:
                fi_wlse_row_f(&a[ia, 0], &b[ib, 0], n, &m_out[i], &s_out[i], &w_out[i], &nan)
            else:
                fi_wlse_row_d(&a[ia, 0], &b[ib, 0], n, &m_out[i], &s_out[i], &w_out[i], &nan)
            nan_out[i] = <unsigned char>nan

/* fastinfo: the distribution kernels under their stable names (fi_entropy_row_f, ...), each
   calling the clone in use; included by distributions.h once per element type with ST and SFX
   defined (undefined at the end). No include guard: it is meant to be included more than once. */

static inline double FI_T(fi_entropy_row)(const ST *p, Py_ssize_t n, int *status) {
    return FI_DISPATCH(fi_entropy_row, p, n, status);
}
static inline double FI_T(fi_pq_row)(int kind, const ST *p, const ST *q, Py_ssize_t n, double eps, int *status) {
    return FI_DISPATCH(fi_pq_row, kind, p, q, n, eps, status);
}
static inline void FI_T(fi_entropy_rows)(const ST *p, Py_ssize_t n_rows, Py_ssize_t n, double *res, int *status) {
    FI_DISPATCH(fi_entropy_rows, p, n_rows, n, res, status);
}
static inline void FI_T(fi_pq_rows)(int kind, const ST *p, const ST *q, const int64_t *p_row, const int64_t *q_row,
                                    Py_ssize_t n_rows, Py_ssize_t n, double eps, double *res, int *status) {
    FI_DISPATCH(fi_pq_rows, kind, p, q, p_row, q_row, n_rows, n, eps, res, status);
}
static inline void FI_T(fi_chunk_pass1)(const ST *p, const ST *q, Py_ssize_t n, double eps, double *out4) {
    FI_DISPATCH(fi_chunk_pass1, p, q, n, eps, out4);
}
static inline void FI_T(fi_chunk_pass2)(int kind, int careful, const ST *p, const ST *q, Py_ssize_t n, double S,
                                        double Tq, double eps, double *out3) {
    FI_DISPATCH(fi_chunk_pass2, kind, careful, p, q, n, S, Tq, eps, out3);
}

#undef ST
#undef SFX

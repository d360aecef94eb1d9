/* fastinfo: the softmax kernels under their stable names (fi_lse_row_f, ...), each calling the
   clone in use; included by softmax.h once per element type with ST and SFX defined, and for
   half-precision elements OT (the output type, default ST), FT (the scratch row's compute type,
   default ST) and FI_API_READERS 0 for the writers-only suffixes hh and bb (all undefined at the
   end). No include guard: it is meant to be included more than once. See softmax_rows.h for what
   each kernel computes. */
#ifndef OT
#define OT ST
#endif
#ifndef FT
#define FT ST
#endif
#ifndef FI_API_READERS
#define FI_API_READERS 1
#endif

#if FI_API_READERS

static inline int FI_T(fi_lse_row)(const ST *x, Py_ssize_t n, double s, double *m, double *log_S) {
    return FI_DISPATCH(fi_lse_row, x, n, s, m, log_S);
}
static inline void FI_T(fi_lse_update)(fi_lse_state *st, const ST *x, Py_ssize_t n, double s) {
    FI_DISPATCH(fi_lse_update, st, x, n, s);
}
static inline double FI_T(fi_softmax_entropy_row)(const ST *x, Py_ssize_t n, double s) {
    return FI_DISPATCH(fi_softmax_entropy_row, x, n, s);
}
static inline double FI_T(fi_softmax_kl_row)(const ST *a, const ST *b, Py_ssize_t n, double s) {
    return FI_DISPATCH(fi_softmax_kl_row, a, b, n, s);
}
static inline void FI_T(fi_dots)(const ST *x, const ST *q, const double *w, Py_ssize_t n, double m,
                                 double qa, double qb, double *sum_u, double *sum_ud) {
    FI_DISPATCH(fi_dots, x, q, w, n, m, qa, qb, sum_u, sum_ud);
}
/* segments of a row seen in pieces (linear_rows.h): see fi_seg_* in softmax_rows.h */
static inline double FI_T(fi_max)(const ST *x, Py_ssize_t n, int *nan_seen) {
    return FI_DISPATCH(fi_seg_max, x, n, nan_seen);
}
static inline double FI_T(fi_sumexp)(const ST *x, Py_ssize_t n, FT m, FT s) {
    return FI_DISPATCH(fi_seg_sumexp, x, n, m, s);
}
static inline void FI_T(fi_sumexp_ent)(const ST *x, Py_ssize_t n, FT m, FT s, double *S, double *U) {
    FI_DISPATCH(fi_seg_sumexp_ent, x, n, m, s, S, U);
}
static inline void FI_T(fi_sumexp_kl)(const ST *a, const ST *b, Py_ssize_t n, FT ma, FT mb, FT s,
                                      double *A, double *B, double *U) {
    FI_DISPATCH(fi_seg_sumexp_kl, a, b, n, ma, mb, s, A, B, U);
}
#endif

static inline void FI_T(fi_normalize_rows)(const ST *x, OT *y, Py_ssize_t n_rows, Py_ssize_t n, double s,
                                           int log_output, FT *scratch, int nt) {
    FI_DISPATCH(fi_normalize_rows, x, y, n_rows, n, s, log_output, scratch, nt);
}
static inline void FI_T(fi_write_logsoftmax)(const ST *x, OT *y, Py_ssize_t n, double m, double s, double c, int nt) {
    FI_DISPATCH(fi_write_logsoftmax, x, y, n, m, s, c, nt);
}
static inline void FI_T(fi_write_softmax)(const ST *x, OT *y, Py_ssize_t n, double m, double s, double inv_S, int nt) {
    FI_DISPATCH(fi_write_softmax, x, y, n, m, s, inv_S, nt);
}
static inline void FI_T(fi_write_grad)(const ST *x, const ST *q, const double *w, OT *g, Py_ssize_t n,
                                       double m, double s, double alpha, double beta, double qa, double qb, int nt) {
    FI_DISPATCH(fi_write_grad, x, q, w, g, n, m, s, alpha, beta, qa, qb, nt);
}
#undef ST
#undef SFX
#undef OT
#undef FT
#undef FI_API_READERS

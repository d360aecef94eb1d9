/* fastinfo: one clone of the bandwidth loops (bandwidth.h), with FI_ISA and FI_KFN defined.
   No include guard: it is meant to be included more than once. */

FI_KFN double FI_CAT(fi_read_loop, FI_ISA)(const double *x, Py_ssize_t n) {
    const Py_ssize_t L = FI_I(lanes_d);
    FI_I(vec_d) a0 = FI_I(splat_d)(0.0), a1 = a0, a2 = a0, a3 = a0;
    Py_ssize_t i = 0;
    double total;
    for (; i + 4 * L <= n; i += 4 * L) {
        a0 = a0 + FI_I(load_d)(x + i);
        a1 = a1 + FI_I(load_d)(x + i + L);
        a2 = a2 + FI_I(load_d)(x + i + 2 * L);
        a3 = a3 + FI_I(load_d)(x + i + 3 * L);
    }
    total = FI_I(hsum_d)((a0 + a1) + (a2 + a3));
    for (; i < n; i++) total += x[i];
    return total;
}

FI_KFN void FI_CAT(fi_copy_loop, FI_ISA)(double *y, const double *x, Py_ssize_t n) {
    const Py_ssize_t L = FI_I(lanes_d);
    Py_ssize_t i = 0, head = fi_nt_head(y, sizeof(double), n, FI_I(nt_align));
    if (head < 0) {
        memcpy(y, x, (size_t)n * sizeof(double));
        return;
    }
    for (; i < head; i++) y[i] = x[i];
    for (; i + 4 * L <= n; i += 4 * L) {
        FI_I(stream_d)(y + i, FI_I(load_d)(x + i));
        FI_I(stream_d)(y + i + L, FI_I(load_d)(x + i + L));
        FI_I(stream_d)(y + i + 2 * L, FI_I(load_d)(x + i + 2 * L));
        FI_I(stream_d)(y + i + 3 * L, FI_I(load_d)(x + i + 3 * L));
    }
    for (; i < n; i++) y[i] = x[i];
    FI_I(fence)();
}

/* Type-generic body of scipy_logsumexp.h: FT is the element type, SFX its name suffix (f or d). */

static void FI_WLSE_T(fi_wlse_row)(const FT *a, const FT *b, Py_ssize_t n, double *m_out, double *s_out,
                             double *w_out, int *nan_seen)
{
    double m = -INFINITY, s = 0.0, w = 0.0;
    Py_ssize_t start, j;
    int nan = 0;
    for (start = 0; start < n; start += FI_WLSE_BLOCK) {
        const Py_ssize_t end = start + FI_WLSE_BLOCK < n ? start + FI_WLSE_BLOCK : n;
        double block_max = -INFINITY, partial = 0.0;
        for (j = start; j < end; j++) {
            const double aj = (double)a[j], bj = (double)b[j];
            if (bj != 0.0) {           /* true for NaN weights too */
                nan |= (aj != aj) | (bj != bj);
                if (aj > block_max)
                    block_max = aj;
            }
        }
        if (block_max > m) {
            if (s != 0.0)
                s *= exp(m - block_max);
            m = block_max;
            w = 0.0;               /* the weights at the maximum: those of the new maximum only */
        }
        if (!(m > -INFINITY && m < INFINITY))
            continue;              /* nothing yet, or +inf: the front-end hands the row to SciPy */
        for (j = start; j < end; j++) {
            const double bj = (double)b[j];
            if (bj != 0.0) {
                const double aj = (double)a[j];
                partial += bj * exp(aj - m);
                if (aj == m)
                    w += bj;
            }
        }
        s += partial;
    }
    *m_out = m;
    *s_out = s;
    *w_out = w;
    *nan_seen = nan;
}

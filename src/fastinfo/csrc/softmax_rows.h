/* fastinfo: the softmax-family row kernels, written once for both element types; a type-generic
   body included by softmax.h once per element type, with these defined (undefined at the end):
     FT, SFX    element type and name suffix (FI_T(fi_max) is fi_max_f or fi_max_d)
     FV, IV     its vector and the same-width integer vector, LANES lanes
     DV         a double vector of LANES lanes, accumulated with FI_ADD, weights loaded with FI_LOADW
     FI_TOD, FI_FROMD   convert FV to DV and back
     FI_EXP_LO  where fi_exp_SFX flushes to 0
     FI_FUSED(m, s)     when fi_write_logsoftmax_SFX may use one FMA
   No include guard: it is meant to be included more than once. */

/* max(x[0:n]) ignoring NaN (-inf when there is none). NaN is otherwise detected by the sums
   it turns into NaN; only a block without any number above -inf is searched for NaN here
   (sets *nan_seen), since its sum is skipped. */
FI_CLONES static double FI_T(fi_max)(const FT *x, Py_ssize_t n, int *nan_seen) {
    FV m0 = FI_T(fi_splat)(-INFINITY), m1 = m0, m2 = m0, m3 = m0, v;
    Py_ssize_t i = 0;
    FT best = -INFINITY;
    int j;
    for (; i + 4 * LANES <= n; i += 4 * LANES) {
        v = FI_T(fi_load)(x + i);
        m0 = FI_T(fi_select)(v > m0, v, m0);
        v = FI_T(fi_load)(x + i + LANES);
        m1 = FI_T(fi_select)(v > m1, v, m1);
        v = FI_T(fi_load)(x + i + 2 * LANES);
        m2 = FI_T(fi_select)(v > m2, v, m2);
        v = FI_T(fi_load)(x + i + 3 * LANES);
        m3 = FI_T(fi_select)(v > m3, v, m3);
    }
    for (; i < n; i++)
        if (x[i] > best) best = x[i];
    for (j = 0; j < LANES; j++) {
        if (m0[j] > best) best = m0[j];
        if (m1[j] > best) best = m1[j];
        if (m2[j] > best) best = m2[j];
        if (m3[j] > best) best = m3[j];
    }
    if (best == -INFINITY)
        for (i = 0; i < n; i++)
            if (x[i] != x[i]) *nan_seen = 1;
    return (double)best;
}

/* sum of exp((x - m) * s) over x[0:n], accumulated in double lanes in a fixed order; two
   exps are added in the element type first (one rounding of a two-term sum: at most half an ulp relative). */
static inline __attribute__((always_inline)) double FI_T(fi_sumexp_body)(const FT *x, Py_ssize_t n, FT m, FT s,
                                                                       int scaled) {
    const FV vm = FI_T(fi_splat)(m), vs = FI_T(fi_splat)(s);
    fi_v4d acc0[2] = {{0}}, acc1[2] = {{0}};
    Py_ssize_t i = 0;
    for (; i + 4 * LANES <= n; i += 4 * LANES) {
        FV t0 = FI_T(fi_load)(x + i) - vm, t1 = FI_T(fi_load)(x + i + LANES) - vm;
        FV t2 = FI_T(fi_load)(x + i + 2 * LANES) - vm, t3 = FI_T(fi_load)(x + i + 3 * LANES) - vm;
        if (scaled) { t0 *= vs; t1 *= vs; t2 *= vs; t3 *= vs; }
        FI_ADD(acc0, FI_TOD(FI_T(fi_exp)(t0) + FI_T(fi_exp)(t1)));
        FI_ADD(acc1, FI_TOD(FI_T(fi_exp)(t2) + FI_T(fi_exp)(t3)));
    }
    for (; i < n; i += LANES) {
        FV v = (n - i >= LANES) ? FI_T(fi_load)(x + i) : FI_T(fi_load_tail)(x + i, n - i, -INFINITY);
        FI_ADD(acc0, FI_TOD(FI_T(fi_exp)((v - vm) * vs)));
    }
    return fi_sum8d(acc0) + fi_sum8d(acc1);
}
FI_CLONES static double FI_T(fi_sumexp)(const FT *x, Py_ssize_t n, FT m, FT s) {
    return s == (FT)1 ? FI_T(fi_sumexp_body)(x, n, m, s, 0) : FI_T(fi_sumexp_body)(x, n, m, s, 1);
}

/* S = sum e^t and U = sum e^t * t with t = (x - m) * s (softmax entropy = log S - U/S). */
FI_CLONES static void FI_T(fi_sumexp_ent)(const FT *x, Py_ssize_t n, FT m, FT s, double *S, double *U) {
    const FV vm = FI_T(fi_splat)(m), vs = FI_T(fi_splat)(s), lo = FI_T(fi_splat)((FT)FI_EXP_LO);
    fi_v4d accS[2] = {{0}}, accU[2] = {{0}};
    Py_ssize_t i = 0;
    for (; i < n; i += LANES) {
        FV v = (n - i >= LANES) ? FI_T(fi_load)(x + i) : FI_T(fi_load_tail)(x + i, n - i, -INFINITY);
        FV t = (v - vm) * vs;
        FV e = FI_T(fi_exp)(t);
        t = FI_T(fi_select)(t < lo, lo, t);   /* e = 0 there: 0 * lo, not 0 * -inf */
        FI_ADD(accS, FI_TOD(e));
        FI_ADD(accU, FI_TOD(e) * FI_TOD(t));
    }
    *S = fi_sum8d(accS);
    *U = fi_sum8d(accU);
}

/* Sa = sum e^ta, Sb = sum e^tb, U = sum e^ta * (a - b) * s, ta = (a - ma) s, tb = (b - mb) s. */
FI_CLONES static void FI_T(fi_sumexp_kl)(const FT *a, const FT *b, Py_ssize_t n, FT ma, FT mb, FT s,
                                       double *Sa, double *Sb, double *U) {
    const FV vma = FI_T(fi_splat)(ma), vmb = FI_T(fi_splat)(mb), vs = FI_T(fi_splat)(s);
    const FV lo = FI_T(fi_splat)((FT)FI_EXP_LO), zero = FI_T(fi_splat)((FT)0);
    fi_v4d accA[2] = {{0}}, accB[2] = {{0}}, accU[2] = {{0}};
    Py_ssize_t i = 0;
    for (; i < n; i += LANES) {
        FV va, vb, ta, ea, eb, d;
        if (n - i >= LANES) { va = FI_T(fi_load)(a + i); vb = FI_T(fi_load)(b + i); }
        else { va = FI_T(fi_load_tail)(a + i, n - i, -INFINITY); vb = FI_T(fi_load_tail)(b + i, n - i, -INFINITY); }
        ta = (va - vma) * vs;
        ea = FI_T(fi_exp)(ta);
        eb = FI_T(fi_exp)((vb - vmb) * vs);
        d = FI_T(fi_select)(ta < lo, zero, va - vb);  /* p = 0 contributes 0, also where a = b = -inf */
        FI_ADD(accA, FI_TOD(ea));
        FI_ADD(accB, FI_TOD(eb));
        FI_ADD(accU, FI_TOD(ea) * FI_TOD(d));
    }
    *Sa = fi_sum8d(accA);
    *Sb = fi_sum8d(accB);
    *U = fi_sum8d(accU) * (double)s;
}

/* Store one vector of an output row: streaming when nt (the caller checked alignment). */
static inline __attribute__((always_inline)) void FI_T(fi_store_out)(FT *p, FV v, int nt) {
    if (nt) FI_T(fi_store_nt)(p, v);
    else FI_T(fi_store)(p, v);
}

/* How many leading elements of y[0:n] to write one by one, and whether to stream the rest. */
static inline Py_ssize_t FI_T(fi_out_head)(FT *y, Py_ssize_t n, int *nt) {
    Py_ssize_t head = *nt ? fi_nt_head(y, sizeof(FT), n) : -1;
    if (head < 0) { *nt = 0; return 0; }
    return head;
}

/* y = (x - m) * s - c, computed in double and rounded once. y may be x (in place).
   FI_FUSED(m, s): x * s - (m * s + c) in one FMA, used when m * s + c is small enough that its
   rounding in double is far below the result's precision. nt: streaming stores. */
FI_CLONES static void FI_T(fi_write_logsoftmax)(const FT *x, FT *y, Py_ssize_t n, double m, double s, double c,
                                              int nt) {
    Py_ssize_t i, head = FI_T(fi_out_head)(y, n, &nt);
    for (i = 0; i < head; i++) y[i] = (FT)(((double)x[i] - m) * s - c);
    if (FI_FUSED(m, s)) {
        const double mc = m * s + c;
        for (; i + LANES <= n; i += LANES)
            FI_T(fi_store_out)(y + i, FI_FROMD(FI_TOD(FI_T(fi_load)(x + i)) * s - mc), nt);
    } else {
        for (; i + LANES <= n; i += LANES)
            FI_T(fi_store_out)(y + i, FI_FROMD((FI_TOD(FI_T(fi_load)(x + i)) - m) * s - c), nt);
    }
    for (; i < n; i++) y[i] = (FT)(((double)x[i] - m) * s - c);
    if (nt) fi_nt_fence();
}

/* y = exp((x - m) * s) * inv_S. y may be x (in place). nt: streaming stores. */
FI_CLONES static void FI_T(fi_write_softmax)(const FT *x, FT *y, Py_ssize_t n, FT m, FT s, double inv_S, int nt) {
    const FV vm = FI_T(fi_splat)(m), vs = FI_T(fi_splat)(s);
    Py_ssize_t i, head = FI_T(fi_out_head)(y, n, &nt);
    for (i = 0; i < head; i++) y[i] = (FT)(exp(((double)x[i] - (double)m) * (double)s) * inv_S);
    for (; i + LANES <= n; i += LANES) {
        DV e = FI_TOD(FI_T(fi_exp)((FI_T(fi_load)(x + i) - vm) * vs)) * inv_S;
        FI_T(fi_store_out)(y + i, FI_FROMD(e), nt);
    }
    if (i < n) {
        DV e = FI_TOD(FI_T(fi_exp)((FI_T(fi_load_tail)(x + i, n - i, -INFINITY) - vm) * vs)) * inv_S;
        FI_T(fi_store_tail)(y + i, n - i, FI_FROMD(e));
    }
    if (nt) fi_nt_fence();
}

/* e = exp((x - m) * s) written to y[0:n] (a scratch row; y may also be x: each vector is read first),
   and sum e returned, added as in fi_sumexp (softmax: the write pass then only rescales them). */
FI_CLONES static double FI_T(fi_sumexp_store)(const FT *x, FT *y, Py_ssize_t n, FT m, FT s) {
    const FV vm = FI_T(fi_splat)(m), vs = FI_T(fi_splat)(s);
    fi_v4d acc0[2] = {{0}}, acc1[2] = {{0}};
    Py_ssize_t i = 0;
    for (; i + 4 * LANES <= n; i += 4 * LANES) {
        FV e0 = FI_T(fi_exp)((FI_T(fi_load)(x + i) - vm) * vs);
        FV e1 = FI_T(fi_exp)((FI_T(fi_load)(x + i + LANES) - vm) * vs);
        FV e2 = FI_T(fi_exp)((FI_T(fi_load)(x + i + 2 * LANES) - vm) * vs);
        FV e3 = FI_T(fi_exp)((FI_T(fi_load)(x + i + 3 * LANES) - vm) * vs);
        FI_T(fi_store)(y + i, e0);
        FI_T(fi_store)(y + i + LANES, e1);
        FI_T(fi_store)(y + i + 2 * LANES, e2);
        FI_T(fi_store)(y + i + 3 * LANES, e3);
        FI_ADD(acc0, FI_TOD(e0 + e1));
        FI_ADD(acc1, FI_TOD(e2 + e3));
    }
    for (; i < n; i += LANES) {
        FV v = (n - i >= LANES) ? FI_T(fi_load)(x + i) : FI_T(fi_load_tail)(x + i, n - i, -INFINITY);
        FV e = FI_T(fi_exp)((v - vm) * vs);
        if (n - i >= LANES) FI_T(fi_store)(y + i, e);
        else FI_T(fi_store_tail)(y + i, n - i, e);
        FI_ADD(acc0, FI_TOD(e));
    }
    return fi_sum8d(acc0) + fi_sum8d(acc1);
}

/* y = e * f in double, rounded once (y may be e). nt: streaming stores. */
FI_CLONES static void FI_T(fi_scale)(const FT *e, FT *y, Py_ssize_t n, double f, int nt) {
    Py_ssize_t i, head = FI_T(fi_out_head)(y, n, &nt);
    for (i = 0; i < head; i++) y[i] = (FT)((double)e[i] * f);
    for (; i + LANES <= n; i += LANES)
        FI_T(fi_store_out)(y + i, FI_FROMD(FI_TOD(FI_T(fi_load)(e + i)) * f), nt);
    for (; i < n; i++) y[i] = (FT)((double)e[i] * f);
    if (nt) fi_nt_fence();
}

/* The target weights u_j = (w ? w_j : 1) * (q ? qa * q_j + qb : 1) of one full vector at i. */
static inline __attribute__((always_inline)) DV FI_T(fi_target_u)(const FT *q, const double *w, Py_ssize_t i,
                                                                double qa, double qb) {
    DV u = {0};
    u = u + 1.0;
    if (w) u = FI_LOADW(w + i);
    if (q) u = u * (FI_TOD(FI_T(fi_load)(q + i)) * qa + qb);
    return u;
}
static inline double FI_T(fi_target_u1)(const FT *q, const double *w, Py_ssize_t i, double qa, double qb) {
    double u = w ? w[i] : 1.0;
    return q ? u * ((double)q[i] * qa + qb) : u;
}

/* g = alpha * exp((x - m) * s) - beta * u (u as in fi_target_u). g may be x. nt: streaming stores. */
FI_CLONES static void FI_T(fi_write_grad)(const FT *x, const FT *q, const double *w, FT *g, Py_ssize_t n,
                                        FT m, FT s, double alpha, double beta, double qa, double qb, int nt) {
    const FV vm = FI_T(fi_splat)(m), vs = FI_T(fi_splat)(s);
    Py_ssize_t i, j, head = FI_T(fi_out_head)(g, n, &nt);
    for (i = 0; i < head; i++)
        g[i] = (FT)(alpha * exp(((double)x[i] - (double)m) * (double)s)
                    - (beta != 0.0 ? beta * FI_T(fi_target_u1)(q, w, i, qa, qb) : 0.0));
    if (beta == 0.0) {
        for (; i + LANES <= n; i += LANES)
            FI_T(fi_store_out)(g + i, FI_FROMD(FI_TOD(FI_T(fi_exp)((FI_T(fi_load)(x + i) - vm) * vs)) * alpha), nt);
    } else {
        for (; i + LANES <= n; i += LANES) {
            DV r = FI_TOD(FI_T(fi_exp)((FI_T(fi_load)(x + i) - vm) * vs)) * alpha - beta * FI_T(fi_target_u)(q, w, i, qa, qb);
            FI_T(fi_store_out)(g + i, FI_FROMD(r), nt);
        }
    }
    if (i < n) {
        FT buf[LANES];
        FI_T(fi_store)(buf, FI_T(fi_exp)((FI_T(fi_load_tail)(x + i, n - i, -INFINITY) - vm) * vs));
        for (j = 0; i + j < n; j++)
            g[i + j] = (FT)(alpha * (double)buf[j] - (beta != 0.0 ? beta * FI_T(fi_target_u1)(q, w, i + j, qa, qb) : 0.0));
    }
    if (nt) fi_nt_fence();
}

/* sum_u = sum u_j and sum_ud = sum u_j * (m - x_j) (u as in fi_target_u). */
FI_CLONES static void FI_T(fi_dots)(const FT *x, const FT *q, const double *w, Py_ssize_t n, double m,
                                  double qa, double qb, double *sum_u, double *sum_ud) {
    fi_v4d accU[2] = {{0}}, accD[2] = {{0}};
    Py_ssize_t i = 0;
    double su, sd;
    for (; i + LANES <= n; i += LANES) {
        DV u = FI_T(fi_target_u)(q, w, i, qa, qb);
        FI_ADD(accU, u);
        FI_ADD(accD, u * (m - FI_TOD(FI_T(fi_load)(x + i))));
    }
    su = fi_sum8d(accU);
    sd = fi_sum8d(accD);
    for (; i < n; i++) {
        double u = FI_T(fi_target_u1)(q, w, i, qa, qb);
        su += u;
        sd += u * (m - (double)x[i]);
    }
    *sum_u = su;
    *sum_ud = sd;
}

#undef FT
#undef SFX
#undef FV
#undef IV
#undef DV
#undef LANES
#undef FI_ADD
#undef FI_LOADW
#undef FI_TOD
#undef FI_FROMD
#undef FI_EXP_LO
#undef FI_FUSED

/* fastinfo: the fused linear head block functions, written once for both compute types; a
   type-generic body included by linear.h once per type, with these defined (undefined at the end):
     FT, SFX       compute type and name suffix (FI_T(fi_lin_load) is fi_lin_load_f or _d)
     FI_LIN_GEMM   the BLAS gemm of that type (a function pointer set by fi_lin_set_gemm)
     FI_LIN_OWN    the element kind of FT (FI_LIN_F32 or FI_LIN_F64)
   Logits blocks are row-major (rows x vocabulary entries) with leading dimension ldc; in BLAS's
   column-major terms a block is C (len x rows) = head_block (len x d) times hidden_block^T (d x rows).
   No include guard: it is meant to be included more than once. */

/* ---------------- operands: blocks of rows, read in place or widened into a buffer ---------------- */

/* dst[r * ld + j] = element (row(first + r), j) of mat, j < width, converted to FT. */
static void FI_T(fi_lin_load)(const fi_lin_matrix *mat, const int64_t *rows, Py_ssize_t first, Py_ssize_t count,
                              Py_ssize_t width, FT *dst, Py_ssize_t ld) {
    Py_ssize_t r, j;
    for (r = 0; r < count; r++) {
        Py_ssize_t row = rows ? (Py_ssize_t)rows[first + r] : first + r;
        const char *src = mat->data + row * mat->stride0;
        FT *out = dst + r * ld;
        const Py_ssize_t step = mat->stride1;
        switch (mat->kind) {
        case FI_LIN_F64:
            if (step == (Py_ssize_t)sizeof(double)) {
                const double *p = (const double *)src;
                for (j = 0; j < width; j++) out[j] = (FT)p[j];
            } else {
                for (j = 0; j < width; j++) out[j] = (FT) * (const double *)(src + j * step);
            }
            break;
        case FI_LIN_F32:
            if (step == (Py_ssize_t)sizeof(float)) {
                const float *p = (const float *)src;
                for (j = 0; j < width; j++) out[j] = (FT)p[j];
            } else {
                for (j = 0; j < width; j++) out[j] = (FT) * (const float *)(src + j * step);
            }
            break;
        case FI_LIN_F16:
            if (step == 2) {
                const uint16_t *p = (const uint16_t *)src;
                for (j = 0; j < width; j++) out[j] = (FT)fi_lin_f16(p[j]);
            } else {
                for (j = 0; j < width; j++) out[j] = (FT)fi_lin_f16(*(const uint16_t *)(src + j * step));
            }
            break;
        default: /* FI_LIN_BF16 */
            if (step == 2) {
                const uint16_t *p = (const uint16_t *)src;
                for (j = 0; j < width; j++) out[j] = (FT)fi_lin_bf16(p[j]);
            } else {
                for (j = 0; j < width; j++) out[j] = (FT)fi_lin_bf16(*(const uint16_t *)(src + j * step));
            }
            break;
        }
    }
}

/* Rows first .. first + count - 1 (through rows when not NULL) of mat as a BLAS operand: the
   operand itself when it is direct and those rows are evenly spaced in it, else a copy widened to FT
   in buf (leading dimension max(1, width)). *ld receives the leading dimension. */
static const FT *FI_T(fi_lin_block)(const fi_lin_matrix *mat, const int64_t *rows, Py_ssize_t first,
                                    Py_ssize_t count, Py_ssize_t width, FT *buf, Py_ssize_t *ld) {
    if (mat->direct && (rows == NULL || count == 0 || rows[first + count - 1] - rows[first] == count - 1)) {
        Py_ssize_t row = rows && count ? (Py_ssize_t)rows[first] : first;
        *ld = mat->ld;
        return (const FT *)(mat->data + row * mat->stride0);
    }
    *ld = width > 1 ? width : 1;
    FI_T(fi_lin_load)(mat, rows, first, count, width, buf, *ld);
    return buf;
}

/* C[r * ldc + j] = s * (hidden_r . head_{v0 + j} + bias_{v0 + j}) for r < nrows, j < len, by one gemm
   (bias: copied into C first, then C += s * product). Returns the head block used (in place or in
   wbuf), its leading dimension in *ldw, for the gradient's second product. */
static const FT *FI_T(fi_lin_logits)(const fi_lin_model *mdl, double s, const FT *H, Py_ssize_t ldh,
                                     Py_ssize_t nrows, Py_ssize_t v0, Py_ssize_t len, FT *C, Py_ssize_t ldc,
                                     FT *wbuf, Py_ssize_t *ldw) {
    const FT *W = FI_T(fi_lin_block)(&mdl->head, NULL, v0, len, mdl->width, wbuf, ldw);
    FT alpha = (FT)s, beta = (FT)0;
    Py_ssize_t r, j;
    if (mdl->bias) {
        const FT *b = (const FT *)mdl->bias + v0;
        for (r = 0; r < nrows; r++) memcpy(C + r * ldc, b, (size_t)len * sizeof(FT));
        beta = (FT)1;
    }
    if (nrows == 0 || len == 0) return W;
    if (mdl->width == 0) {   /* logits are the bias (or 0): nothing for BLAS (k = 0) */
        if (!mdl->bias)
            for (r = 0; r < nrows; r++)
                for (j = 0; j < len; j++) C[r * ldc + j] = (FT)0;
        return W;
    }
    {
        char ta = 'T', tb = 'N';
        int m = (int)len, n = (int)nrows, k = (int)mdl->width;
        int lda = (int)*ldw, ldb = (int)ldh, ldcc = (int)ldc;
        FI_LIN_GEMM(&ta, &tb, &m, &n, &k, &alpha, (FT *)W, &lda, (FT *)H, &ldb, &beta, C, &ldcc);
    }
    return W;
}

/* ---------------- folding one row's block of logits into its statistics ---------------- */
/* Each function is the loop body of the corresponding row kernel of _kernels_softmax.pxi
   (_row_lse, _row_entropy, _row_kl) with s = 1 (the temperature is in the logits), applied to
   sub-blocks of at most _SOFTMAX_BLOCK = 2048 elements (a max pass, then the sum pass from L1). */

#define FI_LIN_SEG 2048

/* Online max and sum-exp. */
static void FI_T(fi_lin_push_lse)(double *st, const FT *x, Py_ssize_t n) {
    Py_ssize_t start, len = 0;
    for (start = 0; start < n && st[FI_LIN_BAD] == 0.0; start += len) {
        int nan_seen = 0;
        double bm;
        len = fi_lin_min(FI_LIN_SEG, n - start);
        bm = FI_T(fi_max)(x + start, len, &nan_seen);
        if (nan_seen) st[FI_LIN_BAD] = 1.0;
        if (bm > st[FI_LIN_M]) {
            if (st[FI_LIN_S] > 0.0) st[FI_LIN_S] *= exp(st[FI_LIN_M] - bm);
            st[FI_LIN_M] = bm;
        }
        if (st[FI_LIN_M] == INFINITY) st[FI_LIN_BAD] = 1.0;
        else if (st[FI_LIN_M] > -INFINITY) st[FI_LIN_S] += FI_T(fi_sumexp)(x + start, len, (FT)st[FI_LIN_M], (FT)1);
    }
    if (st[FI_LIN_S] != st[FI_LIN_S]) st[FI_LIN_BAD] = 1.0;
}

/* Online entropy sums: U = sum e^t t, t = y - M; when the max rises by -d, U <- e^d (U + d S). */
static void FI_T(fi_lin_push_entropy)(double *st, const FT *x, Py_ssize_t n) {
    Py_ssize_t start, len = 0;
    for (start = 0; start < n && st[FI_LIN_BAD] == 0.0; start += len) {
        int nan_seen = 0;
        double bm, bS, bU;
        len = fi_lin_min(FI_LIN_SEG, n - start);
        bm = FI_T(fi_max)(x + start, len, &nan_seen);
        if (nan_seen) st[FI_LIN_BAD] = 1.0;
        if (bm > st[FI_LIN_M]) {
            if (st[FI_LIN_S] > 0.0) {
                double d = st[FI_LIN_M] - bm, r = exp(d);
                st[FI_LIN_U] = r * (st[FI_LIN_U] + d * st[FI_LIN_S]);
                st[FI_LIN_S] = r * st[FI_LIN_S];
            }
            st[FI_LIN_M] = bm;
        }
        if (st[FI_LIN_M] == INFINITY) {
            st[FI_LIN_BAD] = 1.0;
        } else if (st[FI_LIN_M] > -INFINITY) {
            FI_T(fi_sumexp_ent)(x + start, len, (FT)st[FI_LIN_M], (FT)1, &bS, &bU);
            st[FI_LIN_S] += bS;
            st[FI_LIN_U] += bU;
        }
    }
    if (st[FI_LIN_S] != st[FI_LIN_S] || st[FI_LIN_U] != st[FI_LIN_U]) st[FI_LIN_BAD] = 1.0;
}

/* Online KL sums of two rows a (model p) and b (model q): Sa, Sb and U = sum e^(a - Ma) (a - b).
   report: also U2 = sum e^(b - Mb) (b - a) (the reverse KL), UE = the entropy sum of a, the argmax
   of both. */
static void FI_T(fi_lin_push_kl)(double *st, const FT *a, const FT *b, Py_ssize_t n, Py_ssize_t offset,
                                 int report) {
    Py_ssize_t start, len = 0, where;
    for (start = 0; start < n && st[FI_LIN_BAD] == 0.0; start += len) {
        int nan_seen = 0;
        double bma, bmb, ma, mb, bA, bB, bU, xA, xB, xU, eS, eU;
        len = fi_lin_min(FI_LIN_SEG, n - start);
        bma = FI_T(fi_max)(a + start, len, &nan_seen);
        bmb = FI_T(fi_max)(b + start, len, &nan_seen);
        if (nan_seen || bma == INFINITY || bmb == INFINITY) {
            st[FI_LIN_BAD] = 1.0;
            break;
        }
        if (bma > st[FI_LIN_M]) {
            if (st[FI_LIN_S] > 0.0) {
                double d = st[FI_LIN_M] - bma, r = exp(d);
                st[FI_LIN_UE] = r * (st[FI_LIN_UE] + d * st[FI_LIN_S]);
                st[FI_LIN_S] *= r;
                st[FI_LIN_U] *= r;
            }
            st[FI_LIN_M] = bma;
            if (report) {
                FI_LIN_FIND_FIRST(a + start, len, bma, where);
                st[FI_LIN_ARG] = (double)(offset + start + where);
            }
        }
        if (bmb > st[FI_LIN_M2]) {
            if (st[FI_LIN_S2] > 0.0) {
                double r = exp(st[FI_LIN_M2] - bmb);
                st[FI_LIN_S2] *= r;
                st[FI_LIN_U2] *= r;
            }
            st[FI_LIN_M2] = bmb;
            if (report) {
                FI_LIN_FIND_FIRST(b + start, len, bmb, where);
                st[FI_LIN_ARG2] = (double)(offset + start + where);
            }
        }
        if (st[FI_LIN_M] > -INFINITY || st[FI_LIN_M2] > -INFINITY) {
            /* a reference of 0 for a side that is all -inf so far makes its exps 0, as they should be */
            ma = st[FI_LIN_M] > -INFINITY ? st[FI_LIN_M] : 0.0;
            mb = st[FI_LIN_M2] > -INFINITY ? st[FI_LIN_M2] : 0.0;
            FI_T(fi_sumexp_kl)(a + start, b + start, len, (FT)ma, (FT)mb, (FT)1, &bA, &bB, &bU);
            st[FI_LIN_S] += bA;
            st[FI_LIN_S2] += bB;
            st[FI_LIN_U] += bU;
            if (report) {
                FI_T(fi_sumexp_kl)(b + start, a + start, len, (FT)mb, (FT)ma, (FT)1, &xA, &xB, &xU);
                st[FI_LIN_U2] += xU;
                if (st[FI_LIN_M] > -INFINITY) {
                    FI_T(fi_sumexp_ent)(a + start, len, (FT)ma, (FT)1, &eS, &eU);
                    st[FI_LIN_UE] += eU;
                }
            }
        }
    }
    if (st[FI_LIN_S] != st[FI_LIN_S] || st[FI_LIN_S2] != st[FI_LIN_S2] || st[FI_LIN_U] != st[FI_LIN_U])
        st[FI_LIN_BAD] = 1.0;
}

/* ---------------- the statistics pass: one item ---------------- */

/* Scratch of one thread (compute type, sizes in elements): hbuf, hbuf2 (block_rows x d of each model),
   wbuf (block_vocab x max d), cbuf, cbuf2 (block_rows x ldc), dhbuf (block_rows x d). */
typedef struct {
    FT *hbuf, *hbuf2, *wbuf, *cbuf, *cbuf2, *dhbuf;
    Py_ssize_t ldc;
} FI_T(fi_lin_scratch);

static void FI_T(fi_lin_stats_item)(const fi_lin_task *t, Py_ssize_t item, const FI_T(fi_lin_scratch) *sc) {
    const Py_ssize_t a = item / t->n_groups, g = item % t->n_groups;
    const Py_ssize_t r0 = a * t->block_rows, nr = fi_lin_min(t->block_rows, t->n_rows - r0);
    const Py_ssize_t n_blocks = (t->n_vocab + t->block_vocab - 1) / t->block_vocab;
    const Py_ssize_t b_first = g * t->blocks_per_group, b_end = fi_lin_min(n_blocks, b_first + t->blocks_per_group);
    const int two = (t->flags & (FI_LIN_KL | FI_LIN_REPORT)) != 0;
    double *states = t->states + (g * t->n_rows + r0) * FI_LIN_NF;
    Py_ssize_t ldh, ldh2 = 0, ldw, b, r;
    const FT *H = FI_T(fi_lin_block)(&t->model[0].hidden, t->rows, r0, nr, t->model[0].width, sc->hbuf, &ldh);
    const FT *H2 = two ? FI_T(fi_lin_block)(&t->model[1].hidden, t->rows, r0, nr, t->model[1].width, sc->hbuf2,
                                            &ldh2) : NULL;
    for (b = b_first; b < b_end; b++) {
        const Py_ssize_t v0 = b * t->block_vocab, len = fi_lin_min(t->block_vocab, t->n_vocab - v0);
        FI_T(fi_lin_logits)(&t->model[0], t->scale, H, ldh, nr, v0, len, sc->cbuf, sc->ldc, sc->wbuf, &ldw);
        if (two)
            FI_T(fi_lin_logits)(&t->model[1], t->scale, H2, ldh2, nr, v0, len, sc->cbuf2, sc->ldc, sc->wbuf, &ldw);
        for (r = 0; r < nr; r++) {
            double *st = states + r * FI_LIN_NF;
            const FT *x = sc->cbuf + r * sc->ldc;
            const FT *y = two ? sc->cbuf2 + r * sc->ldc : NULL;
            const int64_t target = t->target ? t->target[r0 + r] : -1;
            if (target >= v0 && target < v0 + len) {
                st[FI_LIN_YT] = (double)x[target - v0];
                if (two) st[FI_LIN_YT2] = (double)y[target - v0];
            }
            if (t->flags & FI_LIN_CE) {
                FI_T(fi_lin_push_lse)(st, x, len);
                if (t->flags & FI_LIN_SMOOTH) {
                    double sum_u, sum_ud;   /* sum_ud = sum u (0 - y): u = w, or 1 */
                    FI_T(fi_dots)(x, NULL, t->weight ? t->weight + v0 : NULL, len, 0.0, 1.0, 0.0, &sum_u, &sum_ud);
                    st[FI_LIN_WY] -= sum_ud;
                }
            } else if (t->flags & FI_LIN_ENTROPY) {
                FI_T(fi_lin_push_entropy)(st, x, len);
            } else {
                FI_T(fi_lin_push_kl)(st, x, y, len, v0, (t->flags & FI_LIN_REPORT) != 0);
            }
        }
    }
}

/* ---------------- the gradient pass: one item ---------------- */

/* Turn row r of a logits block (vocabulary v0 .. v0 + len) into d loss / d logits in place:
   alpha exp(y - M) - beta u_j, and at the target also - ct (softmax_cross_entropy_with_grad's _row_ce). */
static void FI_T(fi_lin_grad_row)(const fi_lin_task *t, Py_ssize_t rr, FT *x, Py_ssize_t v0, Py_ssize_t len) {
    const double alpha = t->row_alpha[rr], m = t->row_m[rr];
    const int64_t target = t->target[rr];
    const double *w = t->weight ? t->weight + v0 : NULL;
    Py_ssize_t j;
    if (alpha != alpha) {
        for (j = 0; j < len; j++) x[j] = (FT)NAN;
        return;
    }
    if (target >= v0 && target < v0 + len) {
        const double yt = (double)x[target - v0];
        const double ut = t->weight ? t->weight[target] : 1.0;
        FI_T(fi_write_grad)(x, NULL, w, x, len, (FT)m, (FT)1, alpha, t->beta, 1.0, 0.0, 0);
        x[target - v0] = (FT)(alpha * exp(yt - m) - t->beta * ut - t->row_ct[rr]);
    } else {
        FI_T(fi_write_grad)(x, NULL, w, x, len, (FT)m, (FT)1, alpha, t->beta, 1.0, 0.0, 0);
    }
}

static void FI_T(fi_lin_grad_item)(const fi_lin_task *t, Py_ssize_t item, const FI_T(fi_lin_scratch) *sc) {
    const Py_ssize_t a = item / t->n_groups, g = item % t->n_groups;
    const Py_ssize_t r0 = a * t->block_rows, nr = fi_lin_min(t->block_rows, t->n_rows - r0);
    const Py_ssize_t n_blocks = (t->n_vocab + t->block_vocab - 1) / t->block_vocab;
    const Py_ssize_t b_first = g * t->blocks_per_group, b_end = fi_lin_min(n_blocks, b_first + t->blocks_per_group);
    const fi_lin_model *mdl = &t->model[0];
    const Py_ssize_t d = mdl->width, ldc = sc->ldc;
    const int consecutive = t->rows == NULL || nr == 0 || t->rows[r0 + nr - 1] - t->rows[r0] == nr - 1;
    FT *grad_head = (FT *)t->grad_head;
    FT *dH;
    Py_ssize_t ldh, ldw, ld_dh, b, r, j;
    int scatter = 0;
    const FT *H = FI_T(fi_lin_block)(&mdl->hidden, t->rows, r0, nr, d, sc->hbuf, &ldh);
    const FT *W;
    if (t->grad_hidden_partial) {
        dH = (FT *)t->grad_hidden + (g * t->n_rows + r0) * d;
        ld_dh = d;
    } else if (t->grad_hidden_kind == FI_LIN_OWN && consecutive) {
        dH = (FT *)t->grad_hidden + (t->rows && nr ? (Py_ssize_t)t->rows[r0] : r0) * t->grad_hidden_ld;
        ld_dh = t->grad_hidden_ld;
    } else {
        dH = sc->dhbuf;
        ld_dh = d;
        scatter = 1;
    }
    if (d == 0) ld_dh = 1;
    for (b = b_first; b < b_end; b++) {
        const Py_ssize_t v0 = b * t->block_vocab, len = fi_lin_min(t->block_vocab, t->n_vocab - v0);
        const int64_t done = b - b_first + 1;
        W = FI_T(fi_lin_logits)(mdl, t->scale, H, ldh, nr, v0, len, sc->cbuf, ldc, sc->wbuf, &ldw);
        for (r = 0; r < nr; r++) FI_T(fi_lin_grad_row)(t, r0 + r, sc->cbuf + r * ldc, v0, len);
        if (d > 0 && nr > 0) {
            /* grad_hidden (d x rows, column-major) += head_block^T (d x len) G^T (len x rows) */
            char ta = 'N', tb = 'N';
            int m = (int)d, n = (int)nr, k = (int)len, lda = (int)ldw, ldb = (int)ldc, ldd = (int)ld_dh;
            FT one = (FT)1, beta = b == b_first ? (FT)0 : (FT)1;
            FI_LIN_GEMM(&ta, &tb, &m, &n, &k, &one, (FT *)W, &lda, sc->cbuf, &ldb, &beta, dH, &ldd);
        }
        if (a > 0) fi_lin_wait(&t->progress[item - t->n_groups], done);
        if (d > 0 && nr > 0) {
            /* grad_head_block (d x len, column-major) (+)= hidden_rows^T (d x rows) G (rows x len) */
            char ta = 'N', tb = 'T';
            int m = (int)d, n = (int)len, k = (int)nr, lda = (int)ldh, ldb = (int)ldc, ldd = (int)d;
            FT one = (FT)1, beta = a == 0 ? (FT)0 : (FT)1;
            FI_LIN_GEMM(&ta, &tb, &m, &n, &k, &one, (FT *)H, &lda, sc->cbuf, &ldb, &beta, grad_head + v0 * d, &ldd);
        }
        if (t->grad_bias) {
            double *gb = t->grad_bias + v0;
            for (r = 0; r < nr; r++) {
                const FT *x = sc->cbuf + r * ldc;
                for (j = 0; j < len; j++) gb[j] += (double)x[j];
            }
        }
        __atomic_store_n(&t->progress[item], done, __ATOMIC_RELEASE);
    }
    if (d > 0 && nr > 0 && b_end == b_first) {   /* no vocabulary: the gradient is 0 */
        for (r = 0; r < nr; r++)
            for (j = 0; j < d; j++) dH[r * ld_dh + j] = (FT)0;
    }
    if (scatter) {
        for (r = 0; r < nr; r++) {
            const Py_ssize_t row = t->rows ? (Py_ssize_t)t->rows[r0 + r] : r0 + r;
            const FT *src = dH + r * ld_dh;
            if (t->grad_hidden_kind == FI_LIN_OWN) {
                memcpy((FT *)t->grad_hidden + row * t->grad_hidden_ld, src, (size_t)d * sizeof(FT));
            } else {   /* a float32 hidden computed in double */
                float *dst = (float *)t->grad_hidden + row * t->grad_hidden_ld;
                for (j = 0; j < d; j++) dst[j] = (float)src[j];
            }
        }
    }
}

#undef FT
#undef SFX
#undef FI_LIN_GEMM
#undef FI_LIN_OWN

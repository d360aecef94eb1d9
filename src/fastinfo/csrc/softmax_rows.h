/* fastinfo: the softmax-family row kernels, written once; a type- and clone-generic body included by
   softmax_clone.h once per (clone, element type), with these defined (undefined at the end):
     FI_ISA            the clone (v4, v3, base); FI_KFN / FI_KIN the attributes of its kernels
                       (static, its target) and of its inline helpers (left defined)
     ST, SFX           the element type in memory and the name suffix (FI_K(fi_lse_row) is
                       fi_lse_row_f_v4, ...)
     FT, CSFX          the compute type (float or double) and its suffix for the vector layer,
                       FI_COMPUTE_FLOAT 1 for float
     FI_LOAD_ST(p), FI_LOAD_TAIL_ST(p, k, fill), FI_STORE_ST(p, v), FI_STORE_TAIL_ST(p, k, v),
     FI_STREAM_ST(p, v), FI_LOADW_ST(p)   the element loads and stores: ST in memory <-> a vector
                       of FT (FI_LOADW_ST: a double vector of half the float lanes); a
                       half-precision ST needs only these six
     FI_EXP_LO         where the clone's exp flushes to 0 (-87 float, -708 double)
     FI_FUSED(m, s)    when the log_softmax write may use one FMA (x s - (m s + c))
   and, for half-precision elements (float16 / bfloat16 bits: ST uint16_t, FT float), optionally:
     FI_LD1_ST(e)      one element e as FT (default: e itself)
     OT, FI_STORE_OT(p, v), FI_STORE_TAIL_OT(p, k, v), FI_STREAM_OT(p, v), FI_FILL1_OT(p, x)
                       the element type of the outputs and its stores (default: ST's), one double x
     FI_NARROW_OUT(lo, hi)   two double vectors -> the FV that is stored (default: FI_V(narrow),
                       to nearest; to odd before a half-precision store, so that it rounds once)
     FI_READERS        0 when an earlier include of the same input type defined the kernels that
                       write nothing (lse_update, entropy, KL, dots): the writers of a half output
   No include guard: it is meant to be included more than once.

   Method (per row, blocks of FI_SOFTMAX_BLOCK elements, which stay in L1): one pass per block
   computes sum exp((x - M) s) relative to the running max M and the block's own max; a block whose
   max is above M (rare after the first blocks: ln(n / FI_SOFTMAX_BLOCK) of them on average for
   exchangeable data) rescales the sums so far by exp((M - max) s) and is summed again, from L1,
   relative to its max. The first block with a number gets a max pass first. So each row is read
   from memory once, at about one exp per element. Sums are in double, in a fixed lane order. */

#ifndef FI_LD1_ST
#define FI_LD1_ST(e) (e)
#endif
#ifndef OT
#define OT ST
#define FI_STORE_OT(p, v) FI_STORE_ST(p, v)
#define FI_STORE_TAIL_OT(p, k, v) FI_STORE_TAIL_ST(p, k, v)
#define FI_STREAM_OT(p, v) FI_STREAM_ST(p, v)
#define FI_FILL1_OT(p, x) (*(p) = (OT)(x))
#endif
#ifndef FI_NARROW_OUT
#define FI_NARROW_OUT(lo, hi) FI_V(narrow)(lo, hi)
#endif
#ifndef FI_READERS
#define FI_READERS 1
#endif

#define FV FI_V(vec)
#define FM FI_V(mask)
#define DV FI_VD(vec)
#define LANES ((Py_ssize_t)FI_V(lanes))
#define DLANES ((Py_ssize_t)FI_VD(lanes))
#define PARTS (FI_V(lanes) / FI_VD(lanes))

/* Part h (0 or 1) of a compute vector as doubles, and parts joined back (float: halves). */
FI_KIN DV FI_K(fi_part)(FV v, int h) {
#if FI_COMPUTE_FLOAT
    return h ? FI_V(hi)(v) : FI_V(lo)(v);
#else
    (void)h;
    return v;
#endif
}
FI_KIN FV FI_K(fi_join)(const DV p[2]) {
#if FI_COMPUTE_FLOAT
    return FI_NARROW_OUT(p[0], p[1]);
#else
    return p[0];
#endif
}
FI_KIN FV FI_K(fi_load_or_tail)(const ST *x, Py_ssize_t i, Py_ssize_t n, FT fill) {
    return n - i >= LANES ? FI_LOAD_ST(x + i) : FI_LOAD_TAIL_ST(x + i, n - i, fill);
}

/* max(x[0:n]) ignoring NaN (-inf when there is none); a block without any number above -inf is
   searched for NaN (sets *nan_seen), since its sum is skipped. */
FI_KIN double FI_K(fi_block_max)(const ST *x, Py_ssize_t n, int *nan_seen) {
    FV m0 = FI_V(splat)(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    Py_ssize_t i = 0;
    double best;
    for (; i + 4 * LANES <= n; i += 4 * LANES) {
        FI_PREFETCH(x + i, 4 * LANES * sizeof(ST));
        m0 = FI_V(max)(FI_LOAD_ST(x + i), m0);
        m1 = FI_V(max)(FI_LOAD_ST(x + i + LANES), m1);
        m2 = FI_V(max)(FI_LOAD_ST(x + i + 2 * LANES), m2);
        m3 = FI_V(max)(FI_LOAD_ST(x + i + 3 * LANES), m3);
    }
    for (; i < n; i += LANES)
        m0 = FI_V(max)(FI_K(fi_load_or_tail)(x, i, n, (FT)-INFINITY), m0);
    best = (double)FI_V(hmax)(FI_V(max)(FI_V(max)(m0, m1), FI_V(max)(m2, m3)));
    if (best == -INFINITY)
        for (i = 0; i < n; i++)
            if (FI_LD1_ST(x[i]) != FI_LD1_ST(x[i])) *nan_seen = 1;
    return best;
}

/* acc += exp((x - m) s) over x[0:n], in double lanes; with want_max, *mx = lane-wise max(*mx, x)
   ignoring NaN; with e, the exps are also stored in e[0:n]. scaled and want_max are constants
   after inlining.
   Float: two exps are added in float first (one conversion to double for two vectors), unless a
   lane of the pair's sum reaches 1: those pairs (the one holding the block's max term,
   exp(0) = 1, and the rare pairs of two large terms) are widened and added in double exactly.
   The terms are <= 1 (relative to a max at least theirs; a pass relative to a smaller max is
   discarded and redone), so the float roundings then sum to at most 2^-24 S_f,
   S_f <= S - 1 the terms of the pairs added in float, and the error they put in log S is at most
   2^-24 (S - 1) / S <= 2^-24 log S: half an ulp relative to log S whatever the row. Rounding
   every pair in float instead would put up to 2^-25 absolute into S = 1 + eps, which for a
   confident row is most of log S = log(1 + eps) (the largest log-probability off by 1e3 float
   ulps). FI_PAIR_EXACT(s2): the pair goes to double. */
#define FI_PAIR_EXACT(s2) FI_V(any)(FI_V(gt)((s2), FI_V(splat)((FT)0.99999994f)))   /* s2 >= 1 */
FI_KIN void FI_K(fi_sumexp_acc)(const ST *x, Py_ssize_t n, FT m, FT s, int scaled, int want_max,
                                DV acc[2], FV *mx, FT *e) {
    const FV vm = FI_V(splat)(m), vs = FI_V(splat)(s);
    FV mx0 = FI_V(splat)(-INFINITY), mx1 = mx0;
    Py_ssize_t i = 0;
    for (; i + 2 * LANES <= n; i += 2 * LANES) {
        FV v0, v1, t0, t1, e0, e1;
        FI_PREFETCH(x + i, 2 * LANES * sizeof(ST));
        v0 = FI_LOAD_ST(x + i);
        v1 = FI_LOAD_ST(x + i + LANES);
        t0 = v0 - vm;
        t1 = v1 - vm;
        if (want_max) { mx0 = FI_V(max)(v0, mx0); mx1 = FI_V(max)(v1, mx1); }
        if (scaled) { t0 = t0 * vs; t1 = t1 * vs; }
        e0 = FI_V(exp)(t0);
        e1 = FI_V(exp)(t1);
        if (e) { FI_V(store)(e + i, e0); FI_V(store)(e + i + LANES, e1); }
#if FI_COMPUTE_FLOAT
        {
            FV s2 = e0 + e1;
            if (FI_PAIR_EXACT(s2)) {
                FI_V(acc)(acc, e0);
                FI_V(acc)(acc, e1);
            } else {
                FI_V(acc)(acc, s2);
            }
        }
#else
        acc[0] = acc[0] + e0;
        acc[1] = acc[1] + e1;
#endif
    }
    for (; i < n; i += LANES) {
        FV v = FI_K(fi_load_or_tail)(x, i, n, (FT)-INFINITY), t = v - vm, ev;
        if (want_max) mx0 = FI_V(max)(v, mx0);
        if (scaled) t = t * vs;
        ev = FI_V(exp)(t);
        if (e) {
            if (n - i >= LANES) FI_V(store)(e + i, ev);
            else FI_V(store_tail)(e + i, n - i, ev);
        }
        FI_V(acc)(acc, ev);
    }
    if (want_max) *mx = FI_V(max)(FI_V(max)(mx0, mx1), *mx);
}
FI_KIN double FI_K(fi_sumexp)(const ST *x, Py_ssize_t n, FT m, FT s, FT *e) {
    DV acc[2];
    acc[0] = FI_VD(splat)(0.0);
    acc[1] = acc[0];
    if (s == (FT)1) FI_K(fi_sumexp_acc)(x, n, m, s, 0, 0, acc, NULL, e);
    else FI_K(fi_sumexp_acc)(x, n, m, s, 1, 0, acc, NULL, e);
    return FI_I(acctotal)(acc);
}

FI_KIN int FI_K(fi_has_nan)(const ST *x, Py_ssize_t n) {
    Py_ssize_t j;
    for (j = 0; j < n; j++)
        if (FI_LD1_ST(x[j]) != FI_LD1_ST(x[j])) return 1;
    return 0;
}

#if FI_READERS
/* Adds the block x[0:n] (n <= FI_SOFTMAX_BLOCK) to the online state (for kernels that see a row in
   pieces; the row kernels below keep the sums in vector lanes instead). A block whose max is above
   the running max is summed relative to its max (see fi_lse_row_body). */
FI_KIN void FI_K(fi_lse_block)(fi_lse_state *st, const ST *x, Py_ssize_t n, double s) {
    double bm = FI_K(fi_block_max)(x, n, &st->nan_seen);
    if (st->m == INFINITY || bm == INFINITY) {
        st->m = INFINITY;
        if (FI_K(fi_has_nan)(x, n)) st->nan_seen = 1;
        return;
    }
    if (bm > st->m) {
        if (st->S > 0.0) st->S = st->S * exp((st->m - bm) * s);
        st->m = bm;
    }
    if (st->m > -INFINITY) st->S += FI_K(fi_sumexp)(x, n, (FT)st->m, (FT)s, NULL);
}

/* The online state after x[0:n] (any n), block by block. */
FI_KFN void FI_K(fi_lse_update)(fi_lse_state *st, const ST *x, Py_ssize_t n, double s) {
    Py_ssize_t start, len;
    for (start = 0; start < n; start += len) {
        len = n - start > FI_SOFTMAX_BLOCK ? FI_SOFTMAX_BLOCK : n - start;
        FI_K(fi_lse_block)(st, x + start, len, s);
    }
}
#endif /* FI_READERS */

/* The log_softmax write of the previous row, done block by block while the next row's sums are
   computed (fi_log_softmax_rows), so that the stores of one row and the loads of the next stream
   together. status FI_ROW_FINITE: y = (x - m) s - c; otherwise NaN. */
typedef struct {
    const ST *x;
    OT *y;
    double m, s, c;
    int status, nt;
} FI_K(fi_prev_row);

FI_KIN void FI_K(fi_write_logsoftmax_body)(const ST *x, OT *y, Py_ssize_t n, double m, double s, double c,
                                          int nt, int fused);

/* The first index at or after i (0 < i) where y + index starts a 64-byte line, or n: the
   pipelined write cuts the previous row at these, so that no line is split between two blocks'
   writes (a split line gets a plain store from one block and a streaming store from the other:
   a partial write-combining flush; 55 -> 48 ms for the float32 (4096, 32000) log_softmax on AMD
   Zen 4). Unchanged i when y's elements cannot be line-aligned. */
FI_KIN Py_ssize_t FI_K(fi_line_up)(const OT *y, Py_ssize_t i, Py_ssize_t n) {
    Py_ssize_t k = fi_nt_head(y + i, sizeof(OT), n - i, 64);
    return k < 0 ? i : i + k;
}

FI_KIN void FI_K(fi_write_prev_block)(const FI_K(fi_prev_row) *p, Py_ssize_t start, Py_ssize_t len) {
    Py_ssize_t j;
    if (p->status != FI_ROW_FINITE) {
        for (j = 0; j < len; j++) FI_FILL1_OT(p->y + start + j, NAN);
    } else {
        FI_K(fi_write_logsoftmax_body)(p->x + start, p->y + start, len, p->m, p->s, p->c, p->nt, FI_FUSED(p->m, p->s));
    }
}

/* Online log-sum-exp of one row: status (FI_ROW_*), and when finite the max *m and
   log sum exp((x - m) s) *log_S. The sums stay in vector lanes for the whole row; a block is added
   to them relative to the running max M, and a block whose max is above M (rare after the first
   blocks) rescales the lanes by exp((M - max) s) and is summed again, from L1, relative to its
   max, so that the row's largest term is exp(0) = 1 exactly and every other keeps its relative
   accuracy (a sum relative to an older, smaller max would carry the rounding of the largest t
   into every output near 0). The first block with a number gets a max pass first. With e, the
   exps are stored in e[0:n] and block k's reference max in ref[k] (-inf: the block was not
   summed, it is all -inf). scaled is a constant after inlining. */
FI_KIN int FI_K(fi_lse_row_body)(const ST *x, Py_ssize_t n, FT s, int scaled, double *m, double *log_S,
                                 FT *e, double *ref, const FI_K(fi_prev_row) *prev) {
    double M = -INFINITY, bm, r;
    DV S[2];
    int nan_seen = 0;
    Py_ssize_t start, len, k;
    S[0] = FI_VD(splat)(0.0);
    S[1] = S[0];
    for (start = 0, k = 0; start < n; start += len, k++) {
        const ST *xb = x + start;
        FT *eb = e ? e + start : NULL;
        len = n - start > FI_SOFTMAX_BLOCK ? FI_SOFTMAX_BLOCK : n - start;
        if (prev) {
            /* the previous row's elements [ws, we): this block's, moved up to line boundaries */
            Py_ssize_t ws = start == 0 ? 0 : FI_K(fi_line_up)(prev->y, start, n);
            Py_ssize_t we = start + len >= n ? n : FI_K(fi_line_up)(prev->y, start + len, n);
            if (we > ws) FI_K(fi_write_prev_block)(prev, ws, we - ws);
        }
        if (ref) ref[k] = -INFINITY;
        if (M == INFINITY) {
            if (FI_K(fi_has_nan)(xb, len)) nan_seen = 1;
            continue;
        }
        if (M > -INFINITY) {
            DV t[2];
            FV mx = FI_V(splat)(-INFINITY);
            t[0] = FI_VD(splat)(0.0);
            t[1] = t[0];
            FI_K(fi_sumexp_acc)(xb, len, (FT)M, s, scaled, 1, t, &mx, eb);
            if (FI_V(any)(FI_V(gt)(mx, FI_V(splat)((FT)M)))) {
                bm = (double)FI_V(hmax)(mx);
                if (bm == INFINITY) {
                    M = INFINITY;
                    if (FI_K(fi_has_nan)(xb, len)) nan_seen = 1;
                    continue;
                }
                r = exp((M - bm) * (double)s);
                S[0] = S[0] * r;
                S[1] = S[1] * r;
                M = bm;
                t[0] = FI_VD(splat)(0.0);
                t[1] = t[0];
                FI_K(fi_sumexp_acc)(xb, len, (FT)M, s, scaled, 0, t, NULL, eb);
            }
            S[0] = S[0] + t[0];
            S[1] = S[1] + t[1];
            if (ref) ref[k] = M;
            continue;
        }
        bm = FI_K(fi_block_max)(xb, len, &nan_seen);   /* S is 0 until the first number */
        if (bm > M) M = bm;
        if (M == INFINITY) {
            if (FI_K(fi_has_nan)(xb, len)) nan_seen = 1;
        } else if (M > -INFINITY) {
            FI_K(fi_sumexp_acc)(xb, len, (FT)M, s, scaled, 0, S, NULL, eb);
            if (ref) ref[k] = M;
        }
    }
    {
        double total = FI_I(acctotal)(S);
        if (nan_seen || total != total) return FI_ROW_NAN;
        if (M == INFINITY) return FI_ROW_POSINF;
        if (M == -INFINITY) return FI_ROW_NEGINF;
        *m = M;
        *log_S = log(total);
        return FI_ROW_FINITE;
    }
}

FI_KFN int FI_K(fi_lse_row)(const ST *x, Py_ssize_t n, double s, double *m, double *log_S) {
    if ((FT)s == (FT)1) return FI_K(fi_lse_row_body)(x, n, (FT)s, 0, m, log_S, NULL, NULL, NULL);
    return FI_K(fi_lse_row_body)(x, n, (FT)s, 1, m, log_S, NULL, NULL, NULL);
}

#if FI_READERS
/* ---------------- entropy: H = log S - U / S, S = sum e^t, U = sum e^t t, t = (x - M) s ------- */

/* S and U lanes of a block relative to m, and the lane-wise max (want_max). t below FI_EXP_LO
   (e = 0) is clamped there, so that it adds 0 * lo and not 0 * -inf. */
FI_KIN void FI_K(fi_sumexp_ent_acc)(const ST *x, Py_ssize_t n, FT m, FT s, int want_max, DV accS[2], DV accU[2], FV *mx) {
    const FV vm = FI_V(splat)(m), vs = FI_V(splat)(s), lo = FI_V(splat)((FT)FI_EXP_LO);
    FV mx0 = FI_V(splat)(-INFINITY);
    Py_ssize_t i;
    for (i = 0; i < n; i += LANES) {
        FV v, t, e;
        FI_PREFETCH(x + i, LANES * sizeof(ST));
        v = FI_K(fi_load_or_tail)(x, i, n, (FT)-INFINITY);
        t = (v - vm) * vs;
        if (want_max) mx0 = FI_V(max)(v, mx0);
        e = FI_V(exp)(t);
        t = FI_V(max)(t, lo);
        FI_V(acc)(accS, e);
        FI_V(accmul)(accU, e, t);
    }
    if (want_max) *mx = FI_V(max)(mx0, *mx);
}

/* Softmax entropy of one row in nats (NaN for a row with NaN or +inf, or all -inf). When the max
   rises by -d (d = (M_old - M_new) s < 0): U <- e^d (U + d S), S <- e^d S, lane by lane. */
FI_KFN double FI_K(fi_softmax_entropy_row)(const ST *x, Py_ssize_t n, double s) {
    double M = -INFINITY, bm, d, r, tS, tU;
    DV S[2], U[2];
    int nan_seen = 0, h;
    Py_ssize_t start, len;
    S[0] = FI_VD(splat)(0.0);
    S[1] = S[0];
    U[0] = S[0];
    U[1] = S[0];
    for (start = 0; start < n; start += len) {
        const ST *xb = x + start;
        len = n - start > FI_SOFTMAX_BLOCK ? FI_SOFTMAX_BLOCK : n - start;
        if (M > -INFINITY) {
            DV bS[2], bU[2];
            FV mx = FI_V(splat)(-INFINITY);
            bS[0] = FI_VD(splat)(0.0);
            bS[1] = bS[0];
            bU[0] = bS[0];
            bU[1] = bS[0];
            FI_K(fi_sumexp_ent_acc)(xb, len, (FT)M, (FT)s, 1, bS, bU, &mx);
            if (FI_V(any)(FI_V(gt)(mx, FI_V(splat)((FT)M)))) {
                /* a new max: rescale, and sum the block again relative to it (see fi_lse_row_body) */
                bm = (double)FI_V(hmax)(mx);
                if (bm == INFINITY) return NAN;
                d = (M - bm) * s;
                r = exp(d);
                for (h = 0; h < 2; h++) {
                    U[h] = r * (U[h] + d * S[h]);
                    S[h] = r * S[h];
                }
                M = bm;
                bS[0] = FI_VD(splat)(0.0);
                bS[1] = bS[0];
                bU[0] = bS[0];
                bU[1] = bS[0];
                FI_K(fi_sumexp_ent_acc)(xb, len, (FT)M, (FT)s, 0, bS, bU, NULL);
            }
            for (h = 0; h < 2; h++) {
                S[h] = S[h] + bS[h];
                U[h] = U[h] + bU[h];
            }
        } else {
            bm = FI_K(fi_block_max)(xb, len, &nan_seen);
            if (bm == INFINITY) return NAN;
            if (bm > M) M = bm;
            if (M > -INFINITY) FI_K(fi_sumexp_ent_acc)(xb, len, (FT)M, (FT)s, 0, S, U, NULL);
        }
    }
    tS = FI_I(acctotal)(S);
    tU = FI_I(acctotal)(U);
    if (nan_seen || !(M > -INFINITY) || tS != tS) return NAN;
    return log(tS) - tU / tS;
}

/* ---------------- KL(softmax(a s) || softmax(b s)) ---------------- */

/* Sa, Sb, U lanes: sum e^ta, sum e^tb, sum e^ta (a - b) (times s by the caller), ta = (a - ma) s,
   tb = (b - mb) s, and the lane-wise maxima (want_max). p = 0 (ta below the exp's range)
   contributes 0, also where a = b = -inf. fi_kl_vec: the three terms of one vector. */
FI_KIN void FI_K(fi_kl_vec)(FV va, FV vb, FV vma, FV vmb, FV vs, FV *ea, FV *eb, FV *eu) {
    const FV lo = FI_V(splat)((FT)FI_EXP_LO), zero = FI_V(splat)((FT)0);
    FV ta = (va - vma) * vs;
    *ea = FI_V(exp)(ta);
    *eb = FI_V(exp)((vb - vmb) * vs);
    *eu = *ea * FI_V(select)(FI_V(lt)(ta, lo), zero, va - vb);
}
FI_KIN void FI_K(fi_sumexp_kl_acc)(const ST *a, const ST *b, Py_ssize_t n, FT ma, FT mb, FT s, int want_max,
                                   DV accA[2], DV accB[2], DV accU[2], FV *mxa, FV *mxb) {
    const FV vma = FI_V(splat)(ma), vmb = FI_V(splat)(mb), vs = FI_V(splat)(s);
    FV mxa0 = FI_V(splat)(-INFINITY), mxb0 = mxa0, ea, eb, eu;
    Py_ssize_t i = 0;
#if FI_COMPUTE_FLOAT
    /* two vectors at a time, their terms added in float before the double accumulators unless
       a lane of either exp pair reaches 1 (then all three in double: as in fi_sumexp_acc;
       e (a - b) is a float product) */
    for (; i + 2 * LANES <= n; i += 2 * LANES) {
        FV va0, vb0, va1, vb1, ea1, eb1, eu1;
        FI_PREFETCH(a + i, 2 * LANES * sizeof(ST));
        FI_PREFETCH(b + i, 2 * LANES * sizeof(ST));
        va0 = FI_LOAD_ST(a + i);
        vb0 = FI_LOAD_ST(b + i);
        va1 = FI_LOAD_ST(a + i + LANES);
        vb1 = FI_LOAD_ST(b + i + LANES);
        if (want_max) {
            mxa0 = FI_V(max)(FI_V(max)(va0, va1), mxa0);
            mxb0 = FI_V(max)(FI_V(max)(vb0, vb1), mxb0);
        }
        FI_K(fi_kl_vec)(va0, vb0, vma, vmb, vs, &ea, &eb, &eu);
        FI_K(fi_kl_vec)(va1, vb1, vma, vmb, vs, &ea1, &eb1, &eu1);
        {
            FV sa = ea + ea1, sb = eb + eb1;
            if (FI_PAIR_EXACT(sa) || FI_PAIR_EXACT(sb)) {
                FI_V(acc)(accA, ea);
                FI_V(acc)(accA, ea1);
                FI_V(acc)(accB, eb);
                FI_V(acc)(accB, eb1);
                FI_V(acc)(accU, eu);
                FI_V(acc)(accU, eu1);
            } else {
                FI_V(acc)(accA, sa);
                FI_V(acc)(accB, sb);
                FI_V(acc)(accU, eu + eu1);
            }
        }
    }
#endif
    for (; i < n; i += LANES) {
        FV va, vb;
        FI_PREFETCH(a + i, LANES * sizeof(ST));   /* the main loop of the double clones */
        FI_PREFETCH(b + i, LANES * sizeof(ST));
        va = FI_K(fi_load_or_tail)(a, i, n, (FT)-INFINITY);
        vb = FI_K(fi_load_or_tail)(b, i, n, (FT)-INFINITY);
        if (want_max) {
            mxa0 = FI_V(max)(va, mxa0);
            mxb0 = FI_V(max)(vb, mxb0);
        }
        FI_K(fi_kl_vec)(va, vb, vma, vmb, vs, &ea, &eb, &eu);
        FI_V(acc)(accA, ea);
        FI_V(acc)(accB, eb);
        FI_V(acc)(accU, eu);
    }
    if (want_max) {
        *mxa = FI_V(max)(mxa0, *mxa);
        *mxb = FI_V(max)(mxb0, *mxb);
    }
}

FI_KIN void FI_K(fi_zero3)(DV a[2], DV b[2], DV c[2]) {
    a[0] = FI_VD(splat)(0.0);
    a[1] = a[0];
    b[0] = a[0];
    b[1] = a[0];
    c[0] = a[0];
    c[1] = a[0];
}

/* KL(softmax(a s) || softmax(b s)) = U s / Sa - (lse(a s) - lse(b s)); both rows read once, with
   online maxima (a new max on either side: rescale and sum the block again, as fi_lse_row_body). */
FI_KFN double FI_K(fi_softmax_kl_row)(const ST *a, const ST *b, Py_ssize_t n, double s) {
    double Ma = -INFINITY, Mb = -INFINITY, bma, bmb, ra, rb, tA, tB, tU;
    DV Sa[2], Sb[2], U[2];
    int nan_seen = 0, h;
    Py_ssize_t start, len;
    FI_K(fi_zero3)(Sa, Sb, U);
    for (start = 0; start < n; start += len) {
        const ST *ab = a + start, *bb = b + start;
        len = n - start > FI_SOFTMAX_BLOCK ? FI_SOFTMAX_BLOCK : n - start;
        if (Ma == -INFINITY || Mb == -INFINITY) {
            /* a side without a number yet: a max pass first, as for the first block of lse */
            bma = FI_K(fi_block_max)(ab, len, &nan_seen);
            bmb = FI_K(fi_block_max)(bb, len, &nan_seen);
            if (bma == INFINITY || bmb == INFINITY) return NAN;
            if (bma > Ma) {
                if (Ma > -INFINITY) {
                    ra = exp((Ma - bma) * s);
                    for (h = 0; h < 2; h++) { Sa[h] = Sa[h] * ra; U[h] = U[h] * ra; }
                }
                Ma = bma;
            }
            if (bmb > Mb) {
                if (Mb > -INFINITY) {
                    rb = exp((Mb - bmb) * s);
                    for (h = 0; h < 2; h++) Sb[h] = Sb[h] * rb;
                }
                Mb = bmb;
            }
            if (Ma == -INFINITY && Mb == -INFINITY) continue;
            /* a reference of 0 for a side whose block is all -inf makes its exps 0, as they should be */
            FI_K(fi_sumexp_kl_acc)(ab, bb, len, (FT)(Ma > -INFINITY ? Ma : 0.0), (FT)(Mb > -INFINITY ? Mb : 0.0),
                                   (FT)s, 0, Sa, Sb, U, NULL, NULL);
            continue;
        }
        {
            DV tSa[2], tSb[2], tUb[2];
            FV mxa = FI_V(splat)(-INFINITY), mxb = mxa;
            FI_K(fi_zero3)(tSa, tSb, tUb);
            FI_K(fi_sumexp_kl_acc)(ab, bb, len, (FT)Ma, (FT)Mb, (FT)s, 1, tSa, tSb, tUb, &mxa, &mxb);
            if (FI_V(any)(FI_V(gt)(mxa, FI_V(splat)((FT)Ma)) | FI_V(gt)(mxb, FI_V(splat)((FT)Mb)))) {
                bma = (double)FI_V(hmax)(mxa);
                bmb = (double)FI_V(hmax)(mxb);
                if (bma == INFINITY || bmb == INFINITY) return NAN;
                if (bma > Ma) {
                    ra = exp((Ma - bma) * s);
                    for (h = 0; h < 2; h++) { Sa[h] = Sa[h] * ra; U[h] = U[h] * ra; }
                    Ma = bma;
                }
                if (bmb > Mb) {
                    rb = exp((Mb - bmb) * s);
                    for (h = 0; h < 2; h++) Sb[h] = Sb[h] * rb;
                    Mb = bmb;
                }
                FI_K(fi_zero3)(tSa, tSb, tUb);
                FI_K(fi_sumexp_kl_acc)(ab, bb, len, (FT)Ma, (FT)Mb, (FT)s, 0, tSa, tSb, tUb, NULL, NULL);
            }
            for (h = 0; h < 2; h++) {
                Sa[h] = Sa[h] + tSa[h];
                Sb[h] = Sb[h] + tSb[h];
                U[h] = U[h] + tUb[h];
            }
        }
    }
    tA = FI_I(acctotal)(Sa);
    tB = FI_I(acctotal)(Sb);
    tU = FI_I(acctotal)(U);
    if (nan_seen || !(Ma > -INFINITY && Mb > -INFINITY) || tA != tA || tB != tB || tU != tU) return NAN;
    return tU * s / tA - ((Ma - Mb) * s + log(tA) - log(tB));
}

#endif /* FI_READERS */

/* ---------------- elementwise outputs ---------------- */

FI_KIN void FI_K(fi_store_out)(OT *p, FV v, int nt) {
    if (nt) FI_STREAM_OT(p, v);
    else FI_STORE_OT(p, v);
}

/* How many leading elements of y[0:n] to write one by one, and whether to stream the rest. */
FI_KIN Py_ssize_t FI_K(fi_out_head)(OT *y, Py_ssize_t n, int *nt) {
    /* a vector of half-precision outputs is smaller than the clone's streaming alignment: align
       to the vector itself, so that the head stays below one vector */
    const size_t vbytes = (size_t)LANES * sizeof(OT);
    const size_t align = (size_t)FI_I(nt_align) < vbytes ? (size_t)FI_I(nt_align) : vbytes;
    Py_ssize_t head = *nt ? fi_nt_head(y, sizeof(OT), n, align) : -1;
    if (head < 0) { *nt = 0; return 0; }
    return head;
}

FI_KIN void FI_K(fi_fill)(OT *y, Py_ssize_t n, double value) {
    Py_ssize_t j;
    for (j = 0; j < n; j++) FI_FILL1_OT(y + j, value);
}

/* The write passes: every element is computed by the same vector arithmetic wherever it sits
   (the unaligned head before streaming stores and the row's tail go through masked loads and
   stores), so that the output does not depend on the output's alignment. */

/* y = (x - m) s - c, computed in double and rounded once; y may be x (in place). FI_FUSED(m, s):
   x s - (m s + c) in one FMA, used when m s + c is small enough that its rounding in double is far
   below the result's precision. nt: streaming stores (the body leaves the fence to its caller). */
FI_KIN FV FI_K(fi_logsoftmax_vec)(FV v, double m, double s, double c, double mc, int fused) {
    DV p[2];
    int h;
    for (h = 0; h < PARTS; h++)
        p[h] = fused ? FI_K(fi_part)(v, h) * s - mc : (FI_K(fi_part)(v, h) - m) * s - c;
    return FI_K(fi_join)(p);
}
#ifdef FI_HALF_SAFE
/* Half-precision outputs without temperature (s = 1): the double result fl(x - (m + c)) (fused) or
   fl(fl(x - m) - c) is within 2^-52 (|y| + |m + c| + |c|) of y = x - D, D = fl(m + c). In float,
   with D = hi + lo + d (hi = fl32(D), lo = fl32(D - hi), the difference exact in double,
   |d| <= 2^-48 |D|): f = fl32(fl32(x - hi) - lo) is within 2^-23 |f| (1 + 2^-22) + 2^-47 |D| of y,
   so within 2^-23 |f| (1 + 2^-20) + 2^-46.9 (|D| + |c|) of the double result. Where
   |f| >= T = 2^-19 (|D| + |c|), that is below 2^-23 |f| (1 + 2^-4) < 2.2 float ulps of f (|f| <
   2^24 ulps): a lane more than FI_HALF_MARGIN ulps from every half midpoint (FI_HALF_SAFE) rounds
   as the double does. A vector with a lane near a midpoint, below T (float16: or below its
   normal range) takes the double computation: the same bits whatever the path. */
typedef struct {
    FV hi, lo;
    uint32_t min_bits;
} FI_K(fi_lsm_fast);

FI_KIN void FI_K(fi_lsm_fast_init)(FI_K(fi_lsm_fast) *k, double mc, double c) {
    const float hi = (float)mc;
    const float t = (float)(0x1p-18 * (fabs(mc) + fabs(c)));   /* 2 T: >= T after rounding */
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    k->hi = FI_V(splat)(hi);
    k->lo = FI_V(splat)((float)(mc - (double)hi));
    k->min_bits = bits > FI_HALF_MIN_BITS ? bits : FI_HALF_MIN_BITS;
}
#endif

FI_KIN FV FI_K(fi_logsoftmax_vec_any)(FV v, double m, double s, double c, double mc, int fused,
                                      const void *fast) {
#ifdef FI_HALF_SAFE
    if (fast) {
        const FI_K(fi_lsm_fast) *k = (const FI_K(fi_lsm_fast) *)fast;
        FV f = (v - k->hi) - k->lo;
        if (FI_HALF_SAFE(f, k->min_bits)) return f;
    }
#else
    (void)fast;
#endif
    return FI_K(fi_logsoftmax_vec)(v, m, s, c, mc, fused);
}
FI_KIN void FI_K(fi_write_logsoftmax_run)(const ST *x, OT *y, Py_ssize_t n, double m, double s, double c,
                                         int nt, int fused, const void *fast) {
    const double mc = m * s + c;
    Py_ssize_t i = 0, head = FI_K(fi_out_head)(y, n, &nt);
    if (head > 0) {
        FI_STORE_TAIL_OT(y, head, FI_K(fi_logsoftmax_vec_any)(FI_LOAD_TAIL_ST(x, head, (FT)0), m, s, c, mc, fused, fast));
        i = head;
    }
    for (; i + LANES <= n; i += LANES) {
        FI_PREFETCH(x + i, LANES * sizeof(ST));
        FI_K(fi_store_out)(y + i, FI_K(fi_logsoftmax_vec_any)(FI_LOAD_ST(x + i), m, s, c, mc, fused, fast), nt);
    }
    if (i < n)
        FI_STORE_TAIL_OT(y + i, n - i, FI_K(fi_logsoftmax_vec_any)(FI_LOAD_TAIL_ST(x + i, n - i, (FT)0), m, s, c, mc, fused, fast));
}
FI_KIN void FI_K(fi_write_logsoftmax_body)(const ST *x, OT *y, Py_ssize_t n, double m, double s, double c,
                                          int nt, int fused) {
#ifdef FI_HALF_SAFE
    if (s == 1.0 && fi_half_fast_writes) {
        FI_K(fi_lsm_fast) k;
        FI_K(fi_lsm_fast_init)(&k, m * s + c, c);
        if (fused) FI_K(fi_write_logsoftmax_run)(x, y, n, m, s, c, nt, 1, &k);
        else FI_K(fi_write_logsoftmax_run)(x, y, n, m, s, c, nt, 0, &k);
        return;
    }
#endif
    if (fused) FI_K(fi_write_logsoftmax_run)(x, y, n, m, s, c, nt, 1, NULL);
    else FI_K(fi_write_logsoftmax_run)(x, y, n, m, s, c, nt, 0, NULL);
}
FI_KFN void FI_K(fi_write_logsoftmax)(const ST *x, OT *y, Py_ssize_t n, double m, double s, double c, int nt) {
    if (FI_FUSED(m, s)) FI_K(fi_write_logsoftmax_body)(x, y, n, m, s, c, nt, 1);
    else FI_K(fi_write_logsoftmax_body)(x, y, n, m, s, c, nt, 0);
    if (nt) FI_I(fence)();
}

/* y = exp((x - m) s) inv_S; y may be x (in place). nt: streaming stores. */
FI_KIN FV FI_K(fi_softmax_vec)(FV v, FV vm, FV vs, double inv_S) {
    FV e = FI_V(exp)((v - vm) * vs);
    DV p[2];
    int h;
    for (h = 0; h < PARTS; h++) p[h] = FI_K(fi_part)(e, h) * inv_S;
    return FI_K(fi_join)(p);
}
FI_KFN void FI_K(fi_write_softmax)(const ST *x, OT *y, Py_ssize_t n, double m, double s, double inv_S, int nt) {
    const FV vm = FI_V(splat)((FT)m), vs = FI_V(splat)((FT)s);
    Py_ssize_t i = 0, head = FI_K(fi_out_head)(y, n, &nt);
    if (head > 0) {
        FI_STORE_TAIL_OT(y, head, FI_K(fi_softmax_vec)(FI_LOAD_TAIL_ST(x, head, (FT)-INFINITY), vm, vs, inv_S));
        i = head;
    }
    for (; i + LANES <= n; i += LANES) {
        FI_PREFETCH(x + i, LANES * sizeof(ST));
        FI_K(fi_store_out)(y + i, FI_K(fi_softmax_vec)(FI_LOAD_ST(x + i), vm, vs, inv_S), nt);
    }
    if (i < n)
        FI_STORE_TAIL_OT(y + i, n - i, FI_K(fi_softmax_vec)(FI_LOAD_TAIL_ST(x + i, n - i, (FT)-INFINITY), vm, vs, inv_S));
    if (nt) FI_I(fence)();
}

/* y = e f in double, rounded once (y may be e). nt: streaming stores. */
FI_KIN FV FI_K(fi_scale_vec)(FV v, double f) {
    DV p[2];
    int h;
    for (h = 0; h < PARTS; h++) p[h] = FI_K(fi_part)(v, h) * f;
    return FI_K(fi_join)(p);
}
FI_KIN void FI_K(fi_scale)(const FT *e, OT *y, Py_ssize_t n, double f, int nt) {
    Py_ssize_t i = 0, head = FI_K(fi_out_head)(y, n, &nt);
    if (head > 0) {
        FI_STORE_TAIL_OT(y, head, FI_K(fi_scale_vec)(FI_V(load_tail)(e, head, (FT)0), f));
        i = head;
    }
    for (; i + LANES <= n; i += LANES)
        FI_K(fi_store_out)(y + i, FI_K(fi_scale_vec)(FI_V(load)(e + i), f), nt);
    if (i < n)
        FI_STORE_TAIL_OT(y + i, n - i, FI_K(fi_scale_vec)(FI_V(load_tail)(e + i, n - i, (FT)0), f));
    if (nt) FI_I(fence)();
}

/* log_softmax (log_output) or softmax of n_rows consecutive rows of n elements, y may be x.
   log_softmax: the online pass, then one write pass while the row is in cache. softmax with a
   scratch row of n elements of the compute type (n <= FI_SOFTMAX_STORE_BLOCKS blocks): the sum pass stores each
   block's exps e = exp((x - M_k) s) there (M_k the running max when the block was summed; the
   scratch stays in L2, so y is written once, without being read for ownership), and the write
   pass multiplies block k by exp((M_k - M) s) / S in double: one exp per element. Without the
   scratch, softmax computes the exps again in the write pass. nt: streaming stores. */
FI_KFN void FI_K(fi_normalize_rows)(const ST *x, OT *y, Py_ssize_t n_rows, Py_ssize_t n, double s,
                                    int log_output, FT *scratch, int nt) {
    double block_ref[FI_SOFTMAX_STORE_BLOCKS];
    Py_ssize_t row, start, len, k;
    const int scaled = (FT)s != (FT)1;
    if (log_output) {
        /* row r's write pass runs inside row r+1's sum pass, block by block (fi_prev_row); y may be
           x, and row r+1's sums read only row r+1 */
        FI_K(fi_prev_row) prev;
        int have_prev = 0;
        for (row = 0; row < n_rows; row++, x += n, y += n) {
            double m = NAN, log_S = NAN;
            int status = scaled ? FI_K(fi_lse_row_body)(x, n, (FT)s, 1, &m, &log_S, NULL, NULL, have_prev && fi_pipeline_rows ? &prev : NULL)
                                : FI_K(fi_lse_row_body)(x, n, (FT)s, 0, &m, &log_S, NULL, NULL, have_prev && fi_pipeline_rows ? &prev : NULL);
            if (have_prev && !fi_pipeline_rows) FI_K(fi_write_prev_block)(&prev, 0, n);
            prev.x = x;
            prev.y = y;
            prev.m = m;
            prev.s = s;
            prev.c = log_S;
            prev.status = status;
            prev.nt = nt;
            have_prev = 1;
        }
        if (have_prev) FI_K(fi_write_prev_block)(&prev, 0, n);
        if (nt) FI_I(fence)();
        return;
    }
    for (row = 0; row < n_rows; row++, x += n, y += n) {
        double m = NAN, log_S = NAN, inv_S;
        int status;
        if (scratch == NULL) {
            status = FI_K(fi_lse_row)(x, n, s, &m, &log_S);
            if (status != FI_ROW_FINITE) FI_K(fi_fill)(y, n, NAN);
            else FI_K(fi_write_softmax)(x, y, n, m, s, exp(-log_S), nt);
            continue;
        }
        if (scaled) status = FI_K(fi_lse_row_body)(x, n, (FT)s, 1, &m, &log_S, scratch, block_ref, NULL);
        else status = FI_K(fi_lse_row_body)(x, n, (FT)s, 0, &m, &log_S, scratch, block_ref, NULL);
        if (status != FI_ROW_FINITE) {
            FI_K(fi_fill)(y, n, NAN);
            continue;
        }
        inv_S = exp(-log_S);
        for (start = 0, k = 0; start < n; start += len, k++) {
            len = n - start > FI_SOFTMAX_BLOCK ? FI_SOFTMAX_BLOCK : n - start;
            if (block_ref[k] == -INFINITY) FI_K(fi_fill)(y + start, len, 0.0);
            else FI_K(fi_scale)(scratch + start, y + start, len, exp((block_ref[k] - m) * s) * inv_S, nt);
        }
    }
}

/* ---------------- cross-entropy gradient and target dots ---------------- */

/* The target weights u_j = (w ? w_j : 1) * (q ? qa * q_j + qb : 1) of DLANES elements at i. */
FI_KIN DV FI_K(fi_target_u)(const ST *q, const double *w, Py_ssize_t i, double qa, double qb) {
    DV u = FI_VD(splat)(1.0);
    if (w) u = FI_VD(load)(w + i);
    if (q) u = u * (FI_LOADW_ST(q + i) * qa + qb);
    return u;
}
FI_KIN double FI_K(fi_target_u1)(const ST *q, const double *w, Py_ssize_t i, double qa, double qb) {
    double u = w ? w[i] : 1.0;
    return q ? u * ((double)FI_LD1_ST(q[i]) * qa + qb) : u;
}

/* g = alpha exp((x - m) s) - beta u (u as in fi_target_u); g may be x. nt: streaming stores.
   Elements i .. i + k - 1 (k <= LANES; the rest of the lanes are computed and dropped). */
FI_KIN FV FI_K(fi_grad_vec)(FV v, FV vm, FV vs, const ST *q, const double *w, Py_ssize_t i, Py_ssize_t k,
                            double alpha, double beta, double qa, double qb) {
    FV e = FI_V(exp)((v - vm) * vs);
    DV p[2];
    int h;
    for (h = 0; h < PARTS; h++) {
        p[h] = FI_K(fi_part)(e, h) * alpha;
        if (beta != 0.0) {
            if (k == LANES) {
                p[h] = p[h] - beta * FI_K(fi_target_u)(q, w, i + h * DLANES, qa, qb);
            } else {
                double u[FI_VD(lanes)];
                Py_ssize_t j;
                for (j = 0; j < DLANES; j++)
                    u[j] = h * DLANES + j < k ? FI_K(fi_target_u1)(q, w, i + h * DLANES + j, qa, qb) : 0.0;
                p[h] = p[h] - beta * FI_VD(load)(u);
            }
        }
    }
    return FI_K(fi_join)(p);
}
FI_KFN void FI_K(fi_write_grad)(const ST *x, const ST *q, const double *w, OT *g, Py_ssize_t n,
                                double m, double s, double alpha, double beta, double qa, double qb, int nt) {
    const FV vm = FI_V(splat)((FT)m), vs = FI_V(splat)((FT)s);
    Py_ssize_t i = 0, head = FI_K(fi_out_head)(g, n, &nt);
    if (head > 0) {
        FI_STORE_TAIL_OT(g, head, FI_K(fi_grad_vec)(FI_LOAD_TAIL_ST(x, head, (FT)-INFINITY), vm, vs, q, w, 0, head,
                                                   alpha, beta, qa, qb));
        i = head;
    }
    for (; i + LANES <= n; i += LANES) {
        FI_PREFETCH(x + i, LANES * sizeof(ST));
        if (q) FI_PREFETCH(q + i, LANES * sizeof(ST));
        FI_K(fi_store_out)(g + i, FI_K(fi_grad_vec)(FI_LOAD_ST(x + i), vm, vs, q, w, i, LANES, alpha, beta, qa, qb), nt);
    }
    if (i < n)
        FI_STORE_TAIL_OT(g + i, n - i, FI_K(fi_grad_vec)(FI_LOAD_TAIL_ST(x + i, n - i, (FT)-INFINITY), vm, vs, q, w, i,
                                                        n - i, alpha, beta, qa, qb));
    if (nt) FI_I(fence)();
}

#if FI_READERS
/* sum_u = sum u_j and sum_ud = sum u_j (m - x_j) (u as in fi_target_u). */
FI_KFN void FI_K(fi_dots)(const ST *x, const ST *q, const double *w, Py_ssize_t n, double m,
                          double qa, double qb, double *sum_u, double *sum_ud) {
    DV accU = FI_VD(splat)(0.0), accD = accU;
    Py_ssize_t i = 0;
    double su, sd;
    for (; i + DLANES <= n; i += DLANES) {
        DV u;
        FI_PREFETCH(x + i, DLANES * sizeof(ST));
        if (q) FI_PREFETCH(q + i, DLANES * sizeof(ST));
        u = FI_K(fi_target_u)(q, w, i, qa, qb);
        accU = accU + u;
        accD = accD + u * (m - FI_LOADW_ST(x + i));
    }
    su = FI_VD(hsum)(accU);
    sd = FI_VD(hsum)(accD);
    for (; i < n; i++) {
        double u = FI_K(fi_target_u1)(q, w, i, qa, qb);
        su += u;
        sd += u * (m - (double)FI_LD1_ST(x[i]));
    }
    *sum_u = su;
    *sum_ud = sd;
}

/* ---------------- segments of a row seen in pieces (the fused linear head, linear_rows.h) ------ */

/* max of x[0:n] ignoring NaN (-inf when there is none; *nan_seen set for a NaN in a segment
   without numbers: callers look at every segment's max and flag NaN themselves otherwise). */
FI_KFN double FI_K(fi_seg_max)(const ST *x, Py_ssize_t n, int *nan_seen) {
    return FI_K(fi_block_max)(x, n, nan_seen);
}
/* sum exp((x - m) s) over x[0:n] (m finite, >= every x). */
FI_KFN double FI_K(fi_seg_sumexp)(const ST *x, Py_ssize_t n, FT m, FT s) {
    return FI_K(fi_sumexp)(x, n, m, s, NULL);
}
/* *S = sum e^t, *U = sum e^t t, t = (x - m) s (clamped at FI_EXP_LO, where e^t is 0). */
FI_KFN void FI_K(fi_seg_sumexp_ent)(const ST *x, Py_ssize_t n, FT m, FT s, double *S, double *U) {
    DV aS[2], aU[2];
    aS[0] = FI_VD(splat)(0.0);
    aS[1] = aS[0];
    aU[0] = aS[0];
    aU[1] = aS[0];
    FI_K(fi_sumexp_ent_acc)(x, n, m, s, 0, aS, aU, NULL);
    *S = FI_I(acctotal)(aS);
    *U = FI_I(acctotal)(aU);
}
/* *A = sum e^ta, *B = sum e^tb, *U = sum e^ta (a - b), ta = (a - ma) s, tb = (b - mb) s. */
FI_KFN void FI_K(fi_seg_sumexp_kl)(const ST *a, const ST *b, Py_ssize_t n, FT ma, FT mb, FT s,
                                   double *A, double *B, double *U) {
    DV aA[2], aB[2], aU[2];
    aA[0] = FI_VD(splat)(0.0);
    aA[1] = aA[0];
    aB[0] = aA[0];
    aB[1] = aA[0];
    aU[0] = aA[0];
    aU[1] = aA[0];
    FI_K(fi_sumexp_kl_acc)(a, b, n, ma, mb, s, 0, aA, aB, aU, NULL, NULL);
    *A = FI_I(acctotal)(aA);
    *B = FI_I(acctotal)(aB);
    *U = FI_I(acctotal)(aU);
}
#endif /* FI_READERS */

#undef FV
#undef FM
#undef DV
#undef LANES
#undef DLANES
#undef PARTS
#undef ST
#undef SFX
#undef FT
#undef CSFX
#undef FI_COMPUTE_FLOAT
#undef FI_LOAD_ST
#undef FI_LOAD_TAIL_ST
#undef FI_STORE_ST
#undef FI_STORE_TAIL_ST
#undef FI_STREAM_ST
#undef FI_LOADW_ST
#undef FI_EXP_LO
#undef FI_FUSED
#undef FI_LD1_ST
#undef OT
#undef FI_STORE_OT
#undef FI_STORE_TAIL_OT
#undef FI_STREAM_OT
#undef FI_FILL1_OT
#undef FI_NARROW_OUT
#undef FI_HALF_SAFE
#undef FI_HALF_MIN_BITS
#undef FI_READERS
#undef FI_PAIR_EXACT

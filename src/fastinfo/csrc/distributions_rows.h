/* fastinfo: the distribution-family row passes, written once; a type- and clone-generic body
   included by distributions_clone.h once per (clone, element type), with FI_ISA, FI_KFN, FI_KIN
   (the clone, left defined) and ST, SFX, FI_LOADW_ST(p), FI_LOADW_TAIL_ST(p, k, fill) (the element
   type in memory, its name suffix, and its load as a double vector) and optionally FI_LD1_ST(e)
   (one element as a double; for float16 / bfloat16 bits) and FI_LOADF_ST(p), FI_LOADF_TAIL_ST(p, k,
   fill) (their loads as float vectors: the float pass 2 of the entropy and cross-entropy) and
   FI_ENTR_TABLE (the p log p table of the half type: the one-pass entropy) defined;
   these are undefined at the end. No include guard: it is meant to be included more than once.

   All arithmetic is in double. Pass 1 sums p (and q + eps) and finds the smallest entry of each
   (a negative one is reported); pass 2 sums SciPy's entr / rel_entr terms of the normalised entries
   a = p/S, b = (q+eps)/T with the clone's vector log, reading the row again from L2. Lanes are
   flushed into outer accumulators every FI_BLOCK entries (error growth (FI_BLOCK/lanes + n/FI_BLOCK)
   ulp, not n/lanes); the order is fixed by the source, so results do not depend on the thread
   count. While pass 2 reads a row from cache, it prefetches the row that pass 1 reads next, so
   that memory keeps streaming while the logs are computed. */

#ifndef FI_LD1_ST
#define FI_LD1_ST(e) ((double)(e))   /* one element as a double (half-precision bits: widened) */
#endif
#define DV FI_VD(vec)
#define DM FI_VD(mask)
#define DLANES ((Py_ssize_t)FI_VD(lanes))

FI_KIN DV FI_K(fi_loadw)(const ST *p, Py_ssize_t i, Py_ssize_t n, double fill) {
    return n - i >= DLANES ? FI_LOADW_ST(p + i) : FI_LOADW_TAIL_ST(p + i, n - i, fill);
}

/* Pass 1: S = sum p, Tq = sum (q + eps) and whether p (q) has a negative entry; q may be NULL. */
FI_KIN void FI_K(fi_pass1)(const ST *p, const ST *q, Py_ssize_t n, double eps, double *S, double *Tq,
                           double *negp, double *negq) {
    const DV zero = FI_VD(splat)(0.0), veps = FI_VD(splat)(eps);
    DV sp = zero, sq = zero, op = zero, oq = zero, minp = zero, minq = zero, sp2 = zero, sq2 = zero;
    Py_ssize_t i, start, stop;
    for (start = 0; start < n; start = stop) {
        stop = n - start > FI_BLOCK ? start + FI_BLOCK : n;
        /* two accumulators (even and odd vectors): one add's latency per vector would bound the
           loop below the memory bandwidth */
        for (i = start; i + 2 * DLANES <= stop; i += 2 * DLANES) {
            DV u, u2;
            FI_PREFETCH_LIGHT(p + i, 2 * DLANES * sizeof(ST));
            if (q != NULL) FI_PREFETCH_LIGHT(q + i, 2 * DLANES * sizeof(ST));
            u = FI_LOADW_ST(p + i);
            u2 = FI_LOADW_ST(p + i + DLANES);
            sp = sp + u;
            sp2 = sp2 + u2;
            minp = FI_VD(min)(FI_VD(min)(u, u2), minp);
            if (q != NULL) {
                DV v = FI_LOADW_ST(q + i), v2 = FI_LOADW_ST(q + i + DLANES);
                sq = sq + (v + veps);
                sq2 = sq2 + (v2 + veps);
                minq = FI_VD(min)(FI_VD(min)(v, v2), minq);
            }
        }
        for (; i + DLANES <= stop; i += DLANES) {
            DV u = FI_LOADW_ST(p + i);
            sp = sp + u;
            minp = FI_VD(min)(u, minp);
            if (q != NULL) {
                DV v = FI_LOADW_ST(q + i);
                sq = sq + (v + veps);
                minq = FI_VD(min)(v, minq);
            }
        }
        if (i < stop) {
            /* the row's tail: the lanes past it hold 0 and add nothing (not even eps) */
            DM in = FI_VD(lt)(FI_VD(iota)(), FI_VD(splat)((double)(stop - i)));
            DV u = FI_LOADW_TAIL_ST(p + i, stop - i, 0.0);
            sp = sp + u;
            minp = FI_VD(min)(u, minp);
            if (q != NULL) {
                DV v = FI_LOADW_TAIL_ST(q + i, stop - i, 0.0);
                sq = sq + FI_VD(select)(in, v + veps, zero);
                minq = FI_VD(min)(v, minq);
            }
        }
        op = op + (sp + sp2);
        sp = zero;
        sp2 = zero;
        oq = oq + (sq + sq2);
        sq = zero;
        sq2 = zero;
    }
    *S = FI_VD(hsum)(op);
    *Tq = FI_VD(hsum)(oq);
    *negp = FI_VD(hmin)(minp) < 0.0 ? 1.0 : 0.0;
    *negq = FI_VD(hmin)(minq) < 0.0 ? 1.0 : 0.0;
}

/* The terms of one vector of entries (u from p, v from q) added to acc, for pass 2 (fast). */
typedef struct {
    DV acc, ymin;
    FI_VD(bits) tbits;
    DM inf;
} FI_K(fi_terms);

FI_KIN void FI_K(fi_term_vec)(const int kind, FI_K(fi_terms) *t, DV u, DV v, DV invS, DV invT, DV veps) {
    const DV zero = FI_VD(splat)(0.0), one = FI_VD(splat)(1.0), half = FI_VD(splat)(0.5);
    DV a = u * invS, b, y;
    if (kind == FI_ENTROPY) {
        /* a <= 1 up to the rounding of p * (1/S): the clamp keeps every term >= 0. a = 0 takes the
           log of 0, which the vector log makes finite (-1023 ln 2), and 0 times that is 0. The
           subnormal a (0 < a < DBL_MIN), which the vector log cannot take, are found by the
           smallest of (bits - 1) as unsigned integers (0 wraps to the largest). */
        y = FI_VD(min)(a, one);
        t->tbits = FI_VD(minbits1)(t->tbits, y);
        t->acc = t->acc - a * FI_VD(log)(y);
    } else if (kind == FI_CROSS) {
        /* as the entropy, with the log of b (a = 0 makes the term 0 whatever b is; a > 0 = b
           makes the row +inf) */
        b = (v + veps) * invT;
        y = FI_VD(min)(b, one);
        t->inf = t->inf | (FI_VD(gt)(a, zero) & FI_VD(eq)(b, zero));
        t->tbits = FI_VD(minbits1)(t->tbits, y);
        t->acc = t->acc - a * FI_VD(log)(y);
    } else if (kind == FI_KL) {
        DV r;
        DM pos = FI_VD(gt)(a, zero), ok;
        b = (v + veps) * invT;
        r = a / b;
        ok = pos & FI_VD(le)(r, FI_VD(splat)(DBL_MAX));
        y = FI_VD(select)(ok, r, one);
        t->inf = t->inf | (pos & ~ok);
        t->ymin = FI_VD(min)(y, t->ymin);
        t->acc = t->acc + a * FI_VD(log)(y);
    } else {
        DV m, ya, yb;
        b = v * invT;
        m = half * (a + b);
        ya = FI_VD(select)(FI_VD(gt)(a, zero), a / m, one);
        yb = FI_VD(select)(FI_VD(gt)(b, zero), b / m, one);
        t->ymin = FI_VD(min)(FI_VD(min)(ya, yb), t->ymin);
        t->acc = t->acc + half * (a * FI_VD(log)(ya) + b * FI_VD(log)(yb));
    }
}

/* Pass 2 (fast): the sum of the terms over the row, the inverse sums multiplied (callers keep
   S and T in [2^-1000, 2^1000]). *inf: a term is +inf (a > 0 = b, or a/b overflowing); *tiny: a
   log argument is below DBL_MIN, which the vector log cannot take (the row is then redone
   carefully). kind is a constant after inlining. next_p, next_q (may be NULL): the rows of n
   entries that pass 1 reads next, prefetched into L2 while the logs are computed. */
FI_KIN double FI_K(fi_pass2_fast)(const int kind, const ST *p, const ST *q, Py_ssize_t n, double S, double Tq,
                                  double eps, double *inf, double *tiny, const ST *next_p, const ST *next_q) {
    const DV zero = FI_VD(splat)(0.0), one = FI_VD(splat)(1.0);
    const DV invS = FI_VD(splat)(1.0 / S), invT = FI_VD(splat)(1.0 / Tq), veps = FI_VD(splat)(eps);
    DV outer = zero;
    FI_K(fi_terms) t, t2;    /* even and odd vectors of the block (t2: its own flags) */
    Py_ssize_t i, start, stop;
    t.acc = zero;
    t.ymin = one;
    t.tbits = FI_VD(allbits)();
    t.inf = FI_VD(lt)(one, zero);   /* all false */
    t2 = t;
    for (start = 0; start < n; start = stop) {
        stop = n - start > FI_BLOCK ? start + FI_BLOCK : n;
        for (i = start; i + 2 * DLANES <= stop; i += 2 * DLANES) {
            if (next_p != NULL) {
                /* the same entries of the next rows (a line is fetched once; the repeats are cheap) */
                __builtin_prefetch(next_p + i, 0, 2);
                if (next_q != NULL) __builtin_prefetch(next_q + i, 0, 2);
            }
            if (DLANES == 4) {
                /* 4-lane clones (AVX2: 16 registers): the two vectors' terms are computed from
                   zero and added to the one accumulator together; a second accumulator spilled
                   to memory, its store and reload on the loop's dependency chain */
                DV keep = t.acc, r1;
                t.acc = zero;
                FI_K(fi_term_vec)(kind, &t, FI_LOADW_ST(p + i), kind == FI_ENTROPY ? zero : FI_LOADW_ST(q + i),
                                  invS, invT, veps);
                r1 = t.acc;
                t2.acc = zero;
                FI_K(fi_term_vec)(kind, &t2, FI_LOADW_ST(p + i + DLANES),
                                  kind == FI_ENTROPY ? zero : FI_LOADW_ST(q + i + DLANES), invS, invT, veps);
                t.acc = keep + (r1 + t2.acc);
                t2.acc = zero;
            } else {
                /* two independent chains */
                FI_K(fi_term_vec)(kind, &t, FI_LOADW_ST(p + i), kind == FI_ENTROPY ? zero : FI_LOADW_ST(q + i),
                                  invS, invT, veps);
                FI_K(fi_term_vec)(kind, &t2, FI_LOADW_ST(p + i + DLANES),
                                  kind == FI_ENTROPY ? zero : FI_LOADW_ST(q + i + DLANES), invS, invT, veps);
            }
        }
        for (; i + DLANES <= stop; i += DLANES)
            FI_K(fi_term_vec)(kind, &t, FI_LOADW_ST(p + i), kind == FI_ENTROPY ? zero : FI_LOADW_ST(q + i),
                              invS, invT, veps);
        if (i < stop)
            FI_K(fi_term_vec)(kind, &t, FI_LOADW_TAIL_ST(p + i, stop - i, 0.0),
                              kind == FI_ENTROPY ? zero : FI_LOADW_TAIL_ST(q + i, stop - i, 0.0), invS, invT, veps);
        outer = outer + (t.acc + t2.acc);
        t.acc = zero;
        t2.acc = zero;
    }
    *inf = FI_VD(any)(t.inf | t2.inf) ? 1.0 : 0.0;
    *tiny = FI_VD(hmin)(FI_VD(min)(t.ymin, t2.ymin)) < DBL_MIN || FI_VD(bits_below)(t.tbits, DBL_MIN)
            || FI_VD(bits_below)(t2.tbits, DBL_MIN) ? 1.0 : 0.0;
    return FI_VD(hsum)(outer);
}

#ifdef FI_LOADF_ST
/* Pass 2 of the entropy and the cross-entropy for half-precision input, in float: the entries have
   at most 11 significant bits, and every term -a log b of these two is >= 0 (no cancellation), so
   float arithmetic with a float log (half.h, below 1e-7 relative) keeps each per-row result within
   about 2e-7 of the float64 computation; the terms are summed in double as in pass 2 above, with
   twice the lanes of it. Callers keep S and T in [2^-100, 2^100] (1/S and 1/T normal floats);
   *tiny: a log argument below FLT_MIN (the row is then redone carefully, in double). */
FI_KIN double FI_K(fi_pass2_float)(const int kind, const ST *p, const ST *q, Py_ssize_t n, double S, double Tq,
                                   double eps, double *inf, double *tiny, const ST *next_p, const ST *next_q) {
    typedef FI_I(vec_f) FVf;
    const FVf zero = FI_I(splat_f)(0.0f), one = FI_I(splat_f)(1.0f);
    const FVf invS = FI_I(splat_f)((float)(1.0 / S)), invT = FI_I(splat_f)((float)(1.0 / Tq));
    const FVf veps = FI_I(splat_f)((float)eps);
    const Py_ssize_t lanes = (Py_ssize_t)FI_I(lanes_f);
    const Py_ssize_t line = 64 / (Py_ssize_t)sizeof(ST);
    DV acc[2], outer[2];
    FVf ymin = one, infv = zero;
    Py_ssize_t i, start, stop;
    acc[0] = FI_VD(splat)(0.0);
    acc[1] = acc[0];
    outer[0] = acc[0];
    outer[1] = acc[0];
    for (start = 0; start < n; start = stop) {
        stop = n - start > FI_BLOCK ? start + FI_BLOCK : n;
        for (i = start; i < stop; i += lanes) {
            FVf pv = stop - i >= lanes ? FI_LOADF_ST(p + i) : FI_LOADF_TAIL_ST(p + i, stop - i, 0.0f);
            FVf a = pv * invS, y;
            if (next_p != NULL && i % line == 0) {
                __builtin_prefetch(next_p + i, 0, 2);
                if (next_q != NULL) __builtin_prefetch(next_q + i, 0, 2);
            }
            if (kind == FI_ENTROPY) {
                /* a <= 1 up to rounding: the clamp keeps every term >= 0 */
                y = FI_I(select_f)(FI_I(gt_f)(a, zero), FI_I(min_f)(a, one), one);
            } else {
                FVf qv = stop - i >= lanes ? FI_LOADF_ST(q + i) : FI_LOADF_TAIL_ST(q + i, stop - i, 0.0f);
                FVf b = (qv + veps) * invT;
                /* b >= 0 (pass 1 checked q): b > 0 fails only at b == 0, which makes a > 0 infinite */
                y = FI_I(select_f)(FI_I(gt_f)(a, zero) & FI_I(gt_f)(b, zero), FI_I(min_f)(b, one), one);
                infv = FI_I(max_f)(FI_I(select_f)(FI_I(gt_f)(a, zero) & ~FI_I(gt_f)(b, zero), one, zero), infv);
            }
            ymin = FI_I(min_f)(y, ymin);
            FI_I(acc_f)(acc, zero - a * FI_I(log_f)(y));
        }
        outer[0] = outer[0] + acc[0];
        outer[1] = outer[1] + acc[1];
        acc[0] = FI_VD(splat)(0.0);
        acc[1] = acc[0];
    }
    *inf = FI_I(hmax_f)(infv) > 0.0f ? 1.0 : 0.0;
    *tiny = FI_I(hmin_f)(ymin) < FLT_MIN ? 1.0 : 0.0;
    return FI_I(acctotal)(outer);
}
#define FI_FLOAT_PASS2_OK(kind, S, Tq) (((kind) == FI_ENTROPY || (kind) == FI_CROSS) \
    && (S) >= 0x1p-100 && (S) <= 0x1p100 && (Tq) >= 0x1p-100 && (Tq) <= 0x1p100)
#else
#define FI_FLOAT_PASS2_OK(kind, S, Tq) 0
#endif

/* The fast pass 2: in float where FI_FLOAT_PASS2_OK (half-precision entropy and cross-entropy),
   else in double. */
FI_KIN double FI_K(fi_pass2_any)(const int kind, const ST *p, const ST *q, Py_ssize_t n, double S, double Tq,
                                 double eps, double *inf, double *tiny, const ST *next_p, const ST *next_q) {
#ifdef FI_LOADF_ST
    if (FI_FLOAT_PASS2_OK(kind, S, Tq))
        return FI_K(fi_pass2_float)(kind, p, q, n, S, Tq, eps, inf, tiny, next_p, next_q);
#endif
    return FI_K(fi_pass2_fast)(kind, p, q, n, S, Tq, eps, inf, tiny, next_p, next_q);
}

/* Pass 2 (careful): true division by S and T (as SciPy) and libc log, which also takes
   subnormals; for sums outside [2^-1000, 2^1000] and rows with a subnormal log argument. */
FI_KIN double FI_K(fi_pass2_careful)(const int kind, const ST *p, const ST *q, Py_ssize_t n, double S,
                                     double Tq, double eps, double *inf) {
    double acc[FI_LANES], outer[FI_LANES], finf[FI_LANES];
    Py_ssize_t i, start, stop;
    int j;
    for (j = 0; j < FI_LANES; j++) { acc[j] = 0.0; outer[j] = 0.0; finf[j] = 0.0; }
    for (start = 0; start < n; start = stop) {
        stop = n - start > FI_BLOCK ? start + FI_BLOCK : n;
        for (i = start, j = 0; i < stop; i++, j = (j + 1) % FI_LANES)
            acc[j] += fi_term_careful(kind, FI_LD1_ST(p[i]), kind == FI_ENTROPY ? 0.0 : FI_LD1_ST(q[i]), S, Tq, eps,
                                      &finf[j]);
        for (j = 0; j < FI_LANES; j++) { outer[j] += acc[j]; acc[j] = 0.0; }
    }
    *inf = fi_lanes_total(finf);
    return fi_lanes_total(outer);
}

FI_KIN double FI_K(fi_pass2_dispatch)(const int kind, const ST *p, const ST *q, Py_ssize_t n, double S,
                                      double Tq, double eps, const ST *next_p, const ST *next_q) {
    double inf = 0.0, tiny = 0.0, total = 0.0;
    /* Sums outside [2^-1000, 2^1000] would make 1/S or 1/T lose precision or overflow. */
    int careful = !(S >= 0x1p-1000 && S <= 0x1p1000 && Tq >= 0x1p-1000 && Tq <= 0x1p1000);
    if (!careful) {
        total = FI_K(fi_pass2_any)(kind, p, q, n, S, Tq, eps, &inf, &tiny, next_p, next_q);
        /* rare: a log argument below DBL_MIN; redo the row with libc log */
        careful = inf == 0.0 && tiny > 0.0;
    }
    if (careful)
        total = FI_K(fi_pass2_careful)(kind, p, q, n, S, Tq, eps, &inf);
    if (inf > 0.0) return INFINITY;
    return total + 0.0;  /* + 0.0 turns a -0.0 total into 0.0 */
}

#ifdef FI_ENTR_TABLE
/* Entropy of a half-precision row in one pass, without a log per entry: S = sum p (double lanes)
   and A = sum p log p from FI_ENTR_TABLE (each value's p log p in double; the half formats have
   65,536 values), then H = log S - A / S, which is sum -a log a over a = p / S. Returns 0 (the
   caller then takes the two passes) when A is not finite (a negative, infinite or NaN entry), S is
   outside [2^-100, 2^100], H is not > 0, or the difference cancels: |A / S| + |log S| > 2^10 H.
   Otherwise the roundings (of the table entries and of sums with lane and block accumulators,
   below 2^-40 of |A|, and of log S) stay below 2^-30 of H, far inside the contract's 1e-6. */
FI_KIN int FI_K(fi_entropy_table)(const ST *p, Py_ssize_t n, double *H) {
    const double *T = FI_ENTR_TABLE;
    DV s0 = FI_VD(splat)(0.0), s1 = s0, so = s0;
    double a[8], ao[8], S, A, logS, h;
    Py_ssize_t i, start, stop;
    int j;
    for (j = 0; j < 8; j++) { a[j] = 0.0; ao[j] = 0.0; }
    for (start = 0; start < n; start = stop) {
        stop = n - start > FI_BLOCK ? start + FI_BLOCK : n;
        for (i = start; i + 8 <= stop; i += 8) {
            FI_PREFETCH(p + i, 8 * sizeof(ST));
            a[0] += T[p[i]];
            a[1] += T[p[i + 1]];
            a[2] += T[p[i + 2]];
            a[3] += T[p[i + 3]];
            a[4] += T[p[i + 4]];
            a[5] += T[p[i + 5]];
            a[6] += T[p[i + 6]];
            a[7] += T[p[i + 7]];
        }
        for (j = 0; i < stop; i++, j++) a[j] += T[p[i]];
        /* the block again, from L1: its sum */
        for (i = start; i + 2 * DLANES <= stop; i += 2 * DLANES) {
            s0 = s0 + FI_LOADW_ST(p + i);
            s1 = s1 + FI_LOADW_ST(p + i + DLANES);
        }
        for (; i < stop; i += DLANES) s0 = s0 + FI_K(fi_loadw)(p, i, stop, 0.0);
        so = so + (s0 + s1);
        s0 = FI_VD(splat)(0.0);
        s1 = s0;
        for (j = 0; j < 8; j++) { ao[j] += a[j]; a[j] = 0.0; }
    }
    S = FI_VD(hsum)(so);
    A = fi_lanes_total(ao);
    if (!(fabs(A) <= DBL_MAX) || !(S >= 0x1p-100 && S <= 0x1p100)) return 0;
    logS = log(S);
    h = logS - A / S;
    if (!(h > 0.0) || fabs(A / S) + fabs(logS) > 1024.0 * h) return 0;
    *H = h;
    return 1;
}
#endif

/* Entropy of one row; status 1 if a negative entry. next: the row to prefetch (may be NULL). */
FI_KIN double FI_K(fi_entropy_row1)(const ST *p, Py_ssize_t n, int *status, const ST *next) {
    double S, Tq, negp, negq;
#ifdef FI_ENTR_TABLE
    if (fi_entr_use_table && FI_ENTR_TABLE != NULL) {
        double h;
        (void)next;
        if (FI_K(fi_entropy_table)(p, n, &h)) {
            *status = 0;
            return h;
        }
    }
#endif
    FI_K(fi_pass1)(p, NULL, n, 0.0, &S, &Tq, &negp, &negq);
    *status = 0;
    if (negp > 0.0) { *status = 1; return NAN; }
    if (!(S > 0.0 && S <= DBL_MAX)) return NAN;  /* zero, NaN or inf sum */
    return FI_K(fi_pass2_dispatch)(FI_ENTROPY, p, p, n, S, 1.0, 0.0, next, NULL);
}

/* kind FI_CROSS, FI_KL or FI_JS of one row; status 1 if p has a negative entry, 2 if q. */
FI_KIN double FI_K(fi_pq_row1)(int kind, const ST *p, const ST *q, Py_ssize_t n, double eps, int *status,
                               const ST *next_p, const ST *next_q) {
    double S, Tq, negp, negq;
    if (kind == FI_JS) eps = 0.0;
    FI_K(fi_pass1)(p, q, n, eps, &S, &Tq, &negp, &negq);
    *status = 0;
    if (negp > 0.0) { *status = 1; return NAN; }
    if (negq > 0.0) { *status = 2; return NAN; }
    if (!(S > 0.0 && S <= DBL_MAX && Tq > 0.0 && Tq <= DBL_MAX)) return NAN;
    if (kind == FI_CROSS) return FI_K(fi_pass2_dispatch)(FI_CROSS, p, q, n, S, Tq, eps, next_p, next_q);
    if (kind == FI_KL) return FI_K(fi_pass2_dispatch)(FI_KL, p, q, n, S, Tq, eps, next_p, next_q);
    return FI_K(fi_pass2_dispatch)(FI_JS, p, q, n, S, Tq, 0.0, next_p, next_q);
}

FI_KFN double FI_K(fi_entropy_row)(const ST *p, Py_ssize_t n, int *status) {
    return FI_K(fi_entropy_row1)(p, n, status, NULL);
}
FI_KFN double FI_K(fi_pq_row)(int kind, const ST *p, const ST *q, Py_ssize_t n, double eps, int *status) {
    return FI_K(fi_pq_row1)(kind, p, q, n, eps, status, NULL, NULL);
}

/* Entropy of n_rows consecutive rows of n entries into res[], status[] (as fi_entropy_row); each
   row's pass 2 prefetches the next row (the result of a row is the same as fi_entropy_row's). */
FI_KFN void FI_K(fi_entropy_rows)(const ST *p, Py_ssize_t n_rows, Py_ssize_t n, double *res, int *status) {
    Py_ssize_t r;
    for (r = 0; r < n_rows; r++)
        res[r] = FI_K(fi_entropy_row1)(p + r * n, n, &status[r], r + 1 < n_rows ? p + (r + 1) * n : NULL);
}

/* kind FI_CROSS, FI_KL or FI_JS of n_rows rows: row r reads p + p_row[r] * n and q + q_row[r] * n
   (p_row / q_row NULL: row r); pass 2 prefetches the next rows of both. */
FI_KFN void FI_K(fi_pq_rows)(int kind, const ST *p, const ST *q, const int64_t *p_row, const int64_t *q_row,
                             Py_ssize_t n_rows, Py_ssize_t n, double eps, double *res, int *status) {
    Py_ssize_t r, ip, iq;
    for (r = 0; r < n_rows; r++) {
        const ST *next_p = NULL, *next_q = NULL;
        ip = p_row ? (Py_ssize_t)p_row[r] : r;
        iq = q_row ? (Py_ssize_t)q_row[r] : r;
        if (r + 1 < n_rows) {
            next_p = p + (p_row ? (Py_ssize_t)p_row[r + 1] : r + 1) * n;
            next_q = q + (q_row ? (Py_ssize_t)q_row[r + 1] : r + 1) * n;
        }
        res[r] = FI_K(fi_pq_row1)(kind, p + ip * n, q + iq * n, n, eps, &status[r], next_p, next_q);
    }
}

/* Chunks of long rows (split into fixed-size chunks, independent of the thread count):
   pass 1 of a chunk into out4 = (S, T, negatives of p, negatives of q); q NULL for entropy. */
FI_KFN void FI_K(fi_chunk_pass1)(const ST *p, const ST *q, Py_ssize_t n, double eps, double *out4) {
    FI_K(fi_pass1)(p, q, n, eps, &out4[0], &out4[1], &out4[2], &out4[3]);
}

/* pass 2 of a chunk, given the row's sums, into out3 = (sum of terms, inf flag, tiny flag) */
FI_KFN void FI_K(fi_chunk_pass2)(int kind, int careful, const ST *p, const ST *q, Py_ssize_t n, double S,
                                 double Tq, double eps, double *out3) {
    double *o = out3;
    if (careful) {
        if (kind == FI_ENTROPY) o[0] = FI_K(fi_pass2_careful)(FI_ENTROPY, p, p, n, S, 1.0, 0.0, &o[1]);
        else if (kind == FI_CROSS) o[0] = FI_K(fi_pass2_careful)(FI_CROSS, p, q, n, S, Tq, eps, &o[1]);
        else if (kind == FI_KL) o[0] = FI_K(fi_pass2_careful)(FI_KL, p, q, n, S, Tq, eps, &o[1]);
        else o[0] = FI_K(fi_pass2_careful)(FI_JS, p, q, n, S, Tq, 0.0, &o[1]);
        o[2] = 0.0;
    } else {
        if (kind == FI_ENTROPY) o[0] = FI_K(fi_pass2_any)(FI_ENTROPY, p, p, n, S, 1.0, 0.0, &o[1], &o[2], NULL, NULL);
        else if (kind == FI_CROSS) o[0] = FI_K(fi_pass2_any)(FI_CROSS, p, q, n, S, Tq, eps, &o[1], &o[2], NULL, NULL);
        else if (kind == FI_KL) o[0] = FI_K(fi_pass2_any)(FI_KL, p, q, n, S, Tq, eps, &o[1], &o[2], NULL, NULL);
        else o[0] = FI_K(fi_pass2_any)(FI_JS, p, q, n, S, Tq, 0.0, &o[1], &o[2], NULL, NULL);
    }
}

#undef DV
#undef DM
#undef DLANES
#undef ST
#undef SFX
#undef FI_LOADW_ST
#undef FI_LOADW_TAIL_ST
#undef FI_LD1_ST
#undef FI_LOADF_ST
#undef FI_LOADF_TAIL_ST
#undef FI_FLOAT_PASS2_OK
#undef FI_ENTR_TABLE

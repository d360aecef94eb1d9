/* fastinfo: the distribution-family row passes, written once for both element types; a
   type-generic body included by distributions.h once per element type with FT (element type) and
   SFX (name suffix, f or d) defined (undefined at the end). No include guard: it is meant to be
   included more than once. */

/* Pass 1: sums (q shifted by eps) and negative counts, in lanes; q may be NULL. */
FI_INLINE void FI_T(fi_pass1)(const FT *p, const FT *q, Py_ssize_t n, double eps,
                                     double *S, double *Tq, double *negp, double *negq)
{
    double sp[FI_LANES], sq[FI_LANES], np_[FI_LANES], nq[FI_LANES];
    double op[FI_LANES], oq[FI_LANES];
    Py_ssize_t i = 0, start, stop;
    int j;
    for (j = 0; j < FI_LANES; j++) {
        sp[j] = 0.0; sq[j] = 0.0; np_[j] = 0.0; nq[j] = 0.0; op[j] = 0.0; oq[j] = 0.0;
    }
    for (start = 0; start < n; start = stop) {
        stop = n - start > FI_BLOCK ? start + FI_BLOCK : n;
        if (q == NULL) {
            for (i = start; i + FI_LANES <= stop; i += FI_LANES)
                for (j = 0; j < FI_LANES; j++) {
                    double u = (double)p[i + j];
                    sp[j] += u;
                    np_[j] += u < 0.0 ? 1.0 : 0.0;
                }
            for (j = 0; i < stop; i++, j++) {
                double u = (double)p[i];
                sp[j] += u;
                np_[j] += u < 0.0 ? 1.0 : 0.0;
            }
        } else {
            for (i = start; i + FI_LANES <= stop; i += FI_LANES)
                for (j = 0; j < FI_LANES; j++) {
                    double u = (double)p[i + j], v = (double)q[i + j];
                    sp[j] += u;
                    sq[j] += v + eps;
                    np_[j] += u < 0.0 ? 1.0 : 0.0;
                    nq[j] += v < 0.0 ? 1.0 : 0.0;
                }
            for (j = 0; i < stop; i++, j++) {
                double u = (double)p[i], v = (double)q[i];
                sp[j] += u;
                sq[j] += v + eps;
                np_[j] += u < 0.0 ? 1.0 : 0.0;
                nq[j] += v < 0.0 ? 1.0 : 0.0;
            }
        }
        for (j = 0; j < FI_LANES; j++) {
            op[j] += sp[j]; sp[j] = 0.0; oq[j] += sq[j]; sq[j] = 0.0;
        }
    }
    *S = fi_lanes_total(op);
    *Tq = fi_lanes_total(oq);
    *negp = fi_lanes_total(np_);
    *negq = fi_lanes_total(nq);
}

/* Pass 2: the sum of fi_term over the row (q unused for the entropy). float input is
   widened block by block into an L1-resident double buffer first, so that the float and
   double instantiations run the same full-width double loop. */
FI_INLINE double FI_T(fi_pass2)(const int kind, const int careful, const FT *p,
                                   const FT *q, Py_ssize_t n, double S, double Tq,
                                   double eps, double *inf, double *tiny)
{
    double acc[FI_LANES], outer[FI_LANES], finf[FI_LANES], ftiny[FI_LANES];
    double pbuf[sizeof(FT) == sizeof(double) ? 1 : FI_BLOCK];
    double qbuf[sizeof(FT) == sizeof(double) ? 1 : FI_BLOCK];  /* no VLA (MSVC) */
    const double invS = 1.0 / S, invT = 1.0 / Tq;
    Py_ssize_t i, start, len;
    int j;
    for (j = 0; j < FI_LANES; j++) { acc[j] = 0.0; outer[j] = 0.0; finf[j] = 0.0; ftiny[j] = 0.0; }
    for (start = 0; start < n; start += len) {
        const double *pb, *qb;
        len = n - start > FI_BLOCK ? FI_BLOCK : n - start;
        if (sizeof(FT) == sizeof(double)) {
            pb = (const double *)(const void *)(p + start);
            qb = (const double *)(const void *)(q + start);
        } else {
            for (i = 0; i < len; i++) pbuf[i] = (double)p[start + i];
            if (kind != FI_ENTROPY)
                for (i = 0; i < len; i++) qbuf[i] = (double)q[start + i];
            pb = pbuf;
            qb = kind == FI_ENTROPY ? pbuf : qbuf;
        }
        for (i = 0; i + FI_LANES <= len; i += FI_LANES)
            for (j = 0; j < FI_LANES; j++)
                acc[j] += fi_term(kind, careful, pb[i + j], kind == FI_ENTROPY ? 0.0 : qb[i + j],
                                  S, invS, Tq, invT, eps, &finf[j], &ftiny[j]);
        for (j = 0; i < len; i++, j++)
            acc[j] += fi_term(kind, careful, pb[i], kind == FI_ENTROPY ? 0.0 : qb[i],
                              S, invS, Tq, invT, eps, &finf[j], &ftiny[j]);
        for (j = 0; j < FI_LANES; j++) { outer[j] += acc[j]; acc[j] = 0.0; }
    }
    *inf = fi_lanes_total(finf);
    *tiny = fi_lanes_total(ftiny);
    return fi_lanes_total(outer);
}

FI_INLINE double FI_T(fi_pass2_dispatch)(const int kind, const FT *p, const FT *q,
                                                Py_ssize_t n, double S, double Tq,
                                                double eps)
{
    double inf, tiny, total;
    /* Sums outside [2^-1000, 2^1000] would make 1/S or 1/T lose precision or overflow. */
    int careful = !(S >= 0x1p-1000 && S <= 0x1p1000 && Tq >= 0x1p-1000 && Tq <= 0x1p1000);
    if (!careful) {
        total = FI_T(fi_pass2)(kind, 0, p, q, n, S, Tq, eps, &inf, &tiny);
        /* rare: a log argument below DBL_MIN; redo the row with libc log */
        careful = inf == 0.0 && tiny > 0.0;
    }
    if (careful)
        total = FI_T(fi_pass2)(kind, 1, p, q, n, S, Tq, eps, &inf, &tiny);
    if (inf > 0.0) return INFINITY;
    return total + 0.0;  /* + 0.0 turns a -0.0 total into 0.0 */
}

/* Entropy of one row; status 1 if a negative entry. */
static FI_DIST_CLONES double FI_T(fi_entropy_row)(const FT *p, Py_ssize_t n, int *status)
{
    double S, Tq, negp, negq;
    FI_T(fi_pass1)(p, NULL, n, 0.0, &S, &Tq, &negp, &negq);
    *status = 0;
    if (negp > 0.0) { *status = 1; return NAN; }
    if (!(S > 0.0 && S <= DBL_MAX)) return NAN;  /* zero, NaN or inf sum */
    return FI_T(fi_pass2_dispatch)(FI_ENTROPY, p, p, n, S, 1.0, 0.0);
}

/* kind FI_CROSS, FI_KL or FI_JS of one row; status 1 if p has a negative entry, 2 if q. */
static FI_DIST_CLONES double FI_T(fi_pq_row)(int kind, const FT *p, const FT *q,
                                                Py_ssize_t n, double eps, int *status)
{
    double S, Tq, negp, negq;
    if (kind == FI_JS) eps = 0.0;
    FI_T(fi_pass1)(p, q, n, eps, &S, &Tq, &negp, &negq);
    *status = 0;
    if (negp > 0.0) { *status = 1; return NAN; }
    if (negq > 0.0) { *status = 2; return NAN; }
    if (!(S > 0.0 && S <= DBL_MAX && Tq > 0.0 && Tq <= DBL_MAX)) return NAN;
    if (kind == FI_CROSS)
        return FI_T(fi_pass2_dispatch)(FI_CROSS, p, q, n, S, Tq, eps);
    if (kind == FI_KL)
        return FI_T(fi_pass2_dispatch)(FI_KL, p, q, n, S, Tq, eps);
    return FI_T(fi_pass2_dispatch)(FI_JS, p, q, n, S, Tq, 0.0);
}

/* Chunks of long rows (split into fixed-size chunks, independent of the thread count):
   pass 1 of a chunk into out4 = (S, FT, negatives of p, negatives of q); q NULL for entropy. */
static FI_DIST_CLONES void FI_T(fi_chunk_pass1)(const FT *p, const FT *q, Py_ssize_t n,
                                                   double eps, double *out4)
{
    FI_T(fi_pass1)(p, q, n, eps, &out4[0], &out4[1], &out4[2], &out4[3]);
}

/* pass 2 of a chunk, given the row's sums, into out3 = (sum of terms, inf count, tiny count) */
static FI_DIST_CLONES void FI_T(fi_chunk_pass2)(int kind, int careful, const FT *p,
                                                   const FT *q, Py_ssize_t n, double S,
                                                   double Tq, double eps, double *out3)
{
    double *o = out3;
    if (careful) {
        if (kind == FI_ENTROPY) o[0] = FI_T(fi_pass2)(FI_ENTROPY, 1, p, p, n, S, 1.0, 0.0, &o[1], &o[2]);
        else if (kind == FI_CROSS) o[0] = FI_T(fi_pass2)(FI_CROSS, 1, p, q, n, S, Tq, eps, &o[1], &o[2]);
        else if (kind == FI_KL) o[0] = FI_T(fi_pass2)(FI_KL, 1, p, q, n, S, Tq, eps, &o[1], &o[2]);
        else o[0] = FI_T(fi_pass2)(FI_JS, 1, p, q, n, S, Tq, 0.0, &o[1], &o[2]);
        o[2] = 0.0;
    } else {
        if (kind == FI_ENTROPY) o[0] = FI_T(fi_pass2)(FI_ENTROPY, 0, p, p, n, S, 1.0, 0.0, &o[1], &o[2]);
        else if (kind == FI_CROSS) o[0] = FI_T(fi_pass2)(FI_CROSS, 0, p, q, n, S, Tq, eps, &o[1], &o[2]);
        else if (kind == FI_KL) o[0] = FI_T(fi_pass2)(FI_KL, 0, p, q, n, S, Tq, eps, &o[1], &o[2]);
        else o[0] = FI_T(fi_pass2)(FI_JS, 0, p, q, n, S, Tq, 0.0, &o[1], &o[2]);
    }
}

#undef FT
#undef SFX

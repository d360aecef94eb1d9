/* fastinfo: the x86-64-v4 clone of the vector layer (AVX-512F/BW/DQ/VL intrinsics): 16 float and
   8 double lanes, predicate masks (__mmask16 / __mmask8), masked loads and stores for row tails,
   vscalefps/pd for 2^n in exp, a table log. Same API as simd_generic.h; included by vec.h. */
#include <immintrin.h>

#define FI_V4 FI_INLINE FI_TARGET_V4

typedef __m512 fi_v4_vec_f;
typedef __mmask16 fi_v4_mask_f;
typedef __m512d fi_v4_vec_d;
typedef __mmask8 fi_v4_mask_d;
enum { fi_v4_lanes_f = 16, fi_v4_lanes_d = 8, fi_v4_nt_align = 64 };

/* ---- float ---- */
FI_V4 __m512 fi_v4_splat_f(float c) { return _mm512_set1_ps(c); }
FI_V4 __m512 fi_v4_load_f(const float *p) { return _mm512_loadu_ps(p); }
FI_V4 void fi_v4_store_f(float *p, __m512 v) { _mm512_storeu_ps(p, v); }
/* masked: the lanes at and after k are neither read nor written (no fault past the row) */
FI_V4 __m512 fi_v4_load_tail_f(const float *p, Py_ssize_t k, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << k) - 1u), p);
}
FI_V4 void fi_v4_store_tail_f(float *p, Py_ssize_t k, __m512 v) {
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << k) - 1u), v);
}
FI_V4 __mmask16 fi_v4_lt_f(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
FI_V4 __mmask16 fi_v4_gt_f(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
FI_V4 __m512 fi_v4_select_f(__mmask16 m, __m512 a, __m512 b) { return _mm512_mask_blend_ps(m, b, a); }
/* a > b ? a : b (vmaxps returns its second operand when either is NaN) */
FI_V4 __m512 fi_v4_max_f(__m512 a, __m512 b) { return _mm512_max_ps(a, b); }
FI_V4 float fi_v4_hmax_f(__m512 v) { return _mm512_reduce_max_ps(v); }
FI_V4 int fi_v4_any_f(__mmask16 m) { return m != 0; }
FI_V4 __m512d fi_v4_lo_f(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
FI_V4 __m512d fi_v4_hi_f(__m512 v) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)); }
FI_V4 __m512 fi_v4_narrow_f(__m512d lo, __m512d hi) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
}
FI_V4 __m512d fi_v4_loadw_f(const float *p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
FI_V4 __m512d fi_v4_loadw_tail_f(const float *p, Py_ssize_t k, double fill) {
    __mmask8 m = (__mmask8)((1u << k) - 1u);
    return _mm512_mask_blend_pd(m, _mm512_set1_pd(fill), _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, p)));
}

/* e^t for t <= 88, lane-wise: the same reduction and degree-6 polynomial as the generic clones
   (simd_generic.h), with 2^n applied by vscalefps and the lanes below -87 (and -inf) zeroed by the
   compare mask; NaN lanes pass the compare (unordered) and stay NaN. */
FI_V4 __m512 fi_v4_exp_f(__m512 t) {
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __mmask16 keep = _mm512_cmp_ps_mask(t, _mm512_set1_ps(-87.0f), _CMP_NLT_UQ);
    __m512 k = _mm512_fmadd_ps(t, _mm512_set1_ps(1.44269504088896341f), magic);
    __m512 r, p;
    k = _mm512_sub_ps(k, magic);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), t);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
    p = _mm512_fmadd_ps(_mm512_set1_ps(1.381454058e-03f), r, _mm512_set1_ps(8.368745446e-03f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166838899e-02f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666652113e-01f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.999999404e-01f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(keep, p, k);
}
FI_V4 void fi_v4_stream_f(float *p, __m512 v) { _mm512_stream_ps(p, v); }

/* ---- double ---- */
FI_V4 __m512d fi_v4_splat_d(double c) { return _mm512_set1_pd(c); }
FI_V4 __m512d fi_v4_load_d(const double *p) { return _mm512_loadu_pd(p); }
FI_V4 void fi_v4_store_d(double *p, __m512d v) { _mm512_storeu_pd(p, v); }
FI_V4 __m512d fi_v4_load_tail_d(const double *p, Py_ssize_t k, double fill) {
    return _mm512_mask_loadu_pd(_mm512_set1_pd(fill), (__mmask8)((1u << k) - 1u), p);
}
FI_V4 void fi_v4_store_tail_d(double *p, Py_ssize_t k, __m512d v) {
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << k) - 1u), v);
}
FI_V4 __m512d fi_v4_loadw_d(const double *p) { return _mm512_loadu_pd(p); }
FI_V4 __m512d fi_v4_loadw_tail_d(const double *p, Py_ssize_t k, double fill) { return fi_v4_load_tail_d(p, k, fill); }
FI_V4 __mmask8 fi_v4_lt_d(__m512d a, __m512d b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
FI_V4 __mmask8 fi_v4_le_d(__m512d a, __m512d b) { return _mm512_cmp_pd_mask(a, b, _CMP_LE_OQ); }
FI_V4 __mmask8 fi_v4_gt_d(__m512d a, __m512d b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
FI_V4 __mmask8 fi_v4_eq_d(__m512d a, __m512d b) { return _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ); }
FI_V4 __m512d fi_v4_select_d(__mmask8 m, __m512d a, __m512d b) { return _mm512_mask_blend_pd(m, b, a); }
FI_V4 __m512d fi_v4_max_d(__m512d a, __m512d b) { return _mm512_max_pd(a, b); }
/* a < b ? a : b (vminpd returns its second operand when either is NaN) */
FI_V4 __m512d fi_v4_min_d(__m512d a, __m512d b) { return _mm512_min_pd(a, b); }
FI_V4 double fi_v4_hmax_d(__m512d v) { return _mm512_reduce_max_pd(v); }
FI_V4 double fi_v4_hmin_d(__m512d v) { return _mm512_reduce_min_pd(v); }
/* Sum of the lanes in a fixed order: pairs, pairs of pairs, then the two halves. */
FI_V4 double fi_v4_hsum_d(__m512d v) {
    double a[8];
    _mm512_storeu_pd(a, v);
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}
FI_V4 int fi_v4_any_d(__mmask8 m) { return m != 0; }
/* the bits of doubles as unsigned integers minus one: a running unsigned min finds the smallest
   positive entry (0 wraps to the largest); the generic clones keep that entry itself */
typedef __m512i fi_v4_bits_d;
FI_V4 __m512i fi_v4_allbits_d(void) { return _mm512_set1_epi64(-1); }
FI_V4 __m512i fi_v4_minbits1_d(__m512i acc, __m512d v) {
    return _mm512_min_epu64(acc, _mm512_sub_epi64(_mm512_castpd_si512(v), _mm512_set1_epi64(1)));
}
FI_V4 int fi_v4_bits_below_d(__m512i acc, double below) {
    return _mm512_cmplt_epu64_mask(acc, _mm512_set1_epi64((long long)(fi_to_bits(below) - 1))) != 0;
}
FI_V4 __m512d fi_v4_iota_d(void) { return _mm512_set_pd(7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0); }

/* e^t for t <= 709: the generic clones' reduction and degree-13 polynomial (simd_generic.h), with
   vscalefpd for 2^n and the lanes below -708 (and -inf) zeroed; NaN stays NaN. */
FI_V4 __m512d fi_v4_exp_d(__m512d t) {
    const __m512d magic = _mm512_set1_pd(6755399441055744.0);
    __mmask8 keep = _mm512_cmp_pd_mask(t, _mm512_set1_pd(-708.0), _CMP_NLT_UQ);
    __m512d k = _mm512_fmadd_pd(t, _mm512_set1_pd(1.4426950408889634), magic);
    __m512d r, p;
    k = _mm512_sub_pd(k, magic);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(6.93147180369123816490e-01), t);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(1.90821492927058770002e-10), r);
    p = _mm512_fmadd_pd(_mm512_set1_pd(1.6059043836821613e-10), r, _mm512_set1_pd(2.08767569878681e-09));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(2.505210838544172e-08));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(2.755731922398589e-07));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(2.7557319223985893e-06));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(2.48015873015873e-05));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.0001984126984126984));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.001388888888888889));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.008333333333333333));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.041666666666666664));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.16666666666666666));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.5));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    return _mm512_maskz_scalef_pd(keep, p, k);
}

/* Natural log of a finite normal x >= DBL_MIN, lane-wise, without a division (the generic clones'
   atanh form needs one, and vdivpd is the slowest instruction of the entropy loop): other inputs
   give finite garbage, as in simd_generic.h (0 gives -1023 ln 2). x = 2^k m with m in
   [0.703125, 1.40625), from the bits: t = bits(x) - bits(0.703125), k = t >> 52 (arithmetic),
   m = x 2^-k; the top 4 mantissa bits of t pick one of 16 intervals of m (16ths of a binade, the
   one around 1 centred on c = 1) and a table gives invc ~ 1/c and log c = -log(invc) for its
   centre c. Then r = m invc - 1 (one FMA; |r| <= 0.0313, and r = m - 1 exactly when c = 1, so
   the relative error stays small near 1), log x = hi + (r + (r^2 (r g(r) - 1/2) + k LN2_LO + e)),
   hi = k LN2_HI + log c rounded, e its rounding error, g(r) = (log1p(r) - r + r^2/2)/r^3
   by a degree-6 fit (relative error of log1p below 2^-54 on the range). Each invc was chosen
   (fastinfo's own search, tools/make_log_table.py, which prints the tables below) so that log c
   rounds to a double within 3e-3 ulp. Error: at most
   three half-ulp roundings of the result's size (r, r + the small terms, the final sum), all three
   only for m next to the c = 1 interval with k = 0 (x in [0.953, 0.985) or [1.031, 1.094)), so
   below 1.5 ulp; measured against 120-bit mpmath over 6.5e5 arguments: 1.21 ulp. The generic
   clones' atanh log stays below 1 ulp, at the cost of a division per lane. */
static const double fi_v4_log_invc[16] __attribute__((aligned(64))) = {
    0x1.642c839abea42p+0,  /* j =  0: c = 0.718750, |log error| 1.3e-04 ulp */
    0x1.5555517c5aaabp+0,  /* j =  1: c = 0.750000, |log error| 6.5e-04 ulp */
    0x1.47ae18a56801ep+0,  /* j =  2: c = 0.781250, |log error| 8.1e-04 ulp */
    0x1.3b13b5912928cp+0,  /* j =  3: c = 0.812500, |log error| 6.0e-04 ulp */
    0x1.2f6850af064fdp+0,  /* j =  4: c = 0.843750, |log error| 4.2e-04 ulp */
    0x1.249247dbb31c1p+0,  /* j =  5: c = 0.875000, |log error| 1.3e-03 ulp */
    0x1.1a7b90fa5ad10p+0,  /* j =  6: c = 0.906250, |log error| 1.9e-03 ulp */
    0x1.11110fd4f502cp+0,  /* j =  7: c = 0.937500, |log error| 6.4e-04 ulp */
    0x1.084211f88b54bp+0,  /* j =  8: c = 0.968750, |log error| 5.0e-04 ulp */
    0x1.0000000000000p+0,  /* j =  9: c = 1 */
    0x1.e1e1dca3d4d65p-1,  /* j = 10: c = 1.062500, |log error| 9.2e-05 ulp */
    0x1.c71c6c428b497p-1,  /* j = 11: c = 1.125000, |log error| 5.4e-04 ulp */
    0x1.af286f93695c7p-1,  /* j = 12: c = 1.187500, |log error| 4.7e-04 ulp */
    0x1.9999a11dbecf3p-1,  /* j = 13: c = 1.250000, |log error| 1.0e-03 ulp */
    0x1.86185ea916658p-1,  /* j = 14: c = 1.312500, |log error| 4.3e-04 ulp */
    0x1.745d1483e1b9ap-1,  /* j = 15: c = 1.375000, |log error| 1.4e-03 ulp */
};
static const double fi_v4_log_logc[16] __attribute__((aligned(64))) = {
    -0x1.522adad06e516p-2, -0x1.269615885da89p-2,
    -0x1.f991e0d50518fp-3, -0x1.a93eeff838f57p-3,
    -0x1.5bf42752ae336p-3, -0x1.1178df2464072p-3,
    -0x1.93359c03b8c4cp-4, -0x1.085978d43ebefp-4,
    -0x1.041605b75365dp-5, 0x0.0p+0,
    0x1.f0a3651ff46b3p-5, 0x1.e270a88bc9e68p-4,
    0x1.5ff2f50e44da6p-3, 0x1.c8ff56e4efee7p-3,
    0x1.1675d23edf9d8p-2, 0x1.4618c3b71934ep-2,
};
/* g(r) = (log1p(r) - r + r^2/2) / r^3 on [-0.0294, 0.0313], degree 6 (lowest first); relative error of log1p: 3.5e-17 */
static const double fi_v4_log_g[7] = {0x1.55555555555e1p-2, -0x1.000000002484ep-2, 0x1.99999992ea275p-3, -0x1.55554b97a133ap-3, 0x1.2492a2cd36565p-3, -0x1.00536fd3bf827p-3, 0x1.c51489a82e068p-4};

FI_V4 __m512d fi_v4_log_d(__m512d x) {
    const __m512d ti0 = _mm512_load_pd(fi_v4_log_invc), ti1 = _mm512_load_pd(fi_v4_log_invc + 8);
    const __m512d tl0 = _mm512_load_pd(fi_v4_log_logc), tl1 = _mm512_load_pd(fi_v4_log_logc + 8);
    __m512i ux = _mm512_castpd_si512(x);
    __m512i t = _mm512_sub_epi64(ux, _mm512_set1_epi64(0x3FE6800000000000LL));
    __m512i ki = _mm512_srai_epi64(t, 52);
    __m512d m = _mm512_castsi512_pd(_mm512_sub_epi64(ux, _mm512_slli_epi64(ki, 52)));
    __m512d k = _mm512_cvtepi64_pd(ki);
    __m512i idx = _mm512_srli_epi64(t, 48);  /* vpermt2pd reads the low 4 bits */
    __m512d invc = _mm512_permutex2var_pd(ti0, idx, ti1);
    __m512d logc = _mm512_permutex2var_pd(tl0, idx, tl1);
    __m512d r = _mm512_fmsub_pd(m, invc, _mm512_set1_pd(1.0));
    __m512d r2 = _mm512_mul_pd(r, r);
    __m512d g = _mm512_set1_pd(fi_v4_log_g[6]), hi, lo;
    g = _mm512_fmadd_pd(g, r, _mm512_set1_pd(fi_v4_log_g[5]));
    g = _mm512_fmadd_pd(g, r, _mm512_set1_pd(fi_v4_log_g[4]));
    g = _mm512_fmadd_pd(g, r, _mm512_set1_pd(fi_v4_log_g[3]));
    g = _mm512_fmadd_pd(g, r, _mm512_set1_pd(fi_v4_log_g[2]));
    g = _mm512_fmadd_pd(g, r, _mm512_set1_pd(fi_v4_log_g[1]));
    g = _mm512_fmadd_pd(g, r, _mm512_set1_pd(fi_v4_log_g[0]));
    g = _mm512_fmsub_pd(g, r, _mm512_set1_pd(0.5));
    /* hi = k LN2_HI + log c, and its rounding error exactly (k LN2_HI is exact, |k LN2_HI| >= |log c|
       unless k = 0, when hi = log c): hi can sit in the binade above the result, where half an ulp
       of hi is a whole ulp of the result */
    hi = _mm512_fmadd_pd(k, _mm512_set1_pd(0x1.62e42fefa3800p-1), logc);
    lo = _mm512_add_pd(_mm512_fmsub_pd(k, _mm512_set1_pd(0x1.62e42fefa3800p-1), hi), logc);
    lo = _mm512_fmadd_pd(k, _mm512_set1_pd(0x1.ef35793c76730p-45), lo);
    lo = _mm512_fmadd_pd(r2, g, lo);
    return _mm512_add_pd(hi, _mm512_add_pd(r, lo));
}
FI_V4 void fi_v4_stream_d(double *p, __m512d v) { _mm512_stream_pd(p, v); }
FI_V4 void fi_v4_fence(void) { _mm_sfence(); }

FI_V4 void fi_v4_acc_f(__m512d acc[2], __m512 v) { acc[0] = acc[0] + fi_v4_lo_f(v); acc[1] = acc[1] + fi_v4_hi_f(v); }
FI_V4 void fi_v4_acc_d(__m512d acc[2], __m512d v) { acc[0] = acc[0] + v; }
FI_V4 void fi_v4_accmul_f(__m512d acc[2], __m512 a, __m512 b) {
    acc[0] = _mm512_fmadd_pd(fi_v4_lo_f(a), fi_v4_lo_f(b), acc[0]);
    acc[1] = _mm512_fmadd_pd(fi_v4_hi_f(a), fi_v4_hi_f(b), acc[1]);
}
FI_V4 void fi_v4_accmul_d(__m512d acc[2], __m512d a, __m512d b) { acc[0] = _mm512_fmadd_pd(a, b, acc[0]); }
FI_V4 double fi_v4_acctotal(const __m512d acc[2]) { return fi_v4_hsum_d(acc[0]) + fi_v4_hsum_d(acc[1]); }

#undef FI_V4

/* fastinfo: one clone of the vector layer in GCC/Clang vector extensions (portable C). Included by
   vec.h once per clone with FI_ISA (the clone's name), FI_VBYTES (the vector size in bytes) and
   FI_FN (the function attributes: always inline, and the clone's target) defined.
   No include guard: it is meant to be included more than once.

   Masks are integer vectors of the lane width (-1 true, 0 false), as vector comparisons give. */

typedef float FI_I(vec_f) __attribute__((vector_size(FI_VBYTES)));
typedef int32_t FI_I(mask_f) __attribute__((vector_size(FI_VBYTES)));
typedef double FI_I(vec_d) __attribute__((vector_size(FI_VBYTES)));
typedef int64_t FI_I(mask_d) __attribute__((vector_size(FI_VBYTES)));
typedef float FI_I(half_f) __attribute__((vector_size(FI_VBYTES / 2)));

enum { FI_I(lanes_f) = FI_VBYTES / 4, FI_I(lanes_d) = FI_VBYTES / 8, FI_I(nt_align) = 16 };

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
/* On x86, a few operations that the vector extensions spell as several instructions (max, min,
   a blend, a mask test) use the one instruction that does them, with the same semantics. */
#if defined(__x86_64__) && FI_VBYTES == 32
#include <immintrin.h>
#define FI_GEN_AVX 1
#define FI_GEN_SSE2 0
#elif defined(__SSE2__) && FI_VBYTES == 16
#define FI_GEN_AVX 0
#define FI_GEN_SSE2 1
#else
#define FI_GEN_AVX 0
#define FI_GEN_SSE2 0
#endif

/* ---- float ---- */
FI_FN FI_I(vec_f) FI_I(splat_f)(float c) { FI_I(vec_f) v = {0}; return v + c; }
FI_FN FI_I(vec_f) FI_I(load_f)(const float *p) { FI_I(vec_f) v; memcpy(&v, p, sizeof v); return v; }
FI_FN void FI_I(store_f)(float *p, FI_I(vec_f) v) { memcpy(p, &v, sizeof v); }
/* The first k (< lanes) elements of p, the other lanes set to fill. */
FI_FN FI_I(vec_f) FI_I(load_tail_f)(const float *p, Py_ssize_t k, float fill) {
    float buf[FI_I(lanes_f)];
    Py_ssize_t j;
    for (j = 0; j < FI_I(lanes_f); j++) buf[j] = j < k ? p[j] : fill;
    return FI_I(load_f)(buf);
}
FI_FN void FI_I(store_tail_f)(float *p, Py_ssize_t k, FI_I(vec_f) v) {
    float buf[FI_I(lanes_f)];
    Py_ssize_t j;
    FI_I(store_f)(buf, v);
    for (j = 0; j < k; j++) p[j] = buf[j];
}
FI_FN FI_I(mask_f) FI_I(lt_f)(FI_I(vec_f) a, FI_I(vec_f) b) { return a < b; }
FI_FN FI_I(mask_f) FI_I(gt_f)(FI_I(vec_f) a, FI_I(vec_f) b) { return a > b; }
FI_FN FI_I(vec_f) FI_I(select_f)(FI_I(mask_f) m, FI_I(vec_f) a, FI_I(vec_f) b) {
#if FI_GEN_AVX
    return (FI_I(vec_f))_mm256_blendv_ps((__m256)b, (__m256)a, (__m256)m);
#else
    return (FI_I(vec_f))((m & (FI_I(mask_f))a) | (~m & (FI_I(mask_f))b));
#endif
}
/* a > b ? a : b (so NaN in a gives b), as maxps does */
FI_FN FI_I(vec_f) FI_I(max_f)(FI_I(vec_f) a, FI_I(vec_f) b) {
#if FI_GEN_AVX
    return (FI_I(vec_f))_mm256_max_ps((__m256)a, (__m256)b);
#elif FI_GEN_SSE2
    return (FI_I(vec_f))_mm_max_ps((__m128)a, (__m128)b);
#else
    return FI_I(select_f)(a > b, a, b);
#endif
}
FI_FN int FI_I(any_f)(FI_I(mask_f) m) {
#if FI_GEN_AVX
    return _mm256_movemask_ps((__m256)m) != 0;
#elif FI_GEN_SSE2
    return _mm_movemask_ps((__m128)m) != 0;
#else
    int j, r = 0;
    for (j = 0; j < FI_I(lanes_f); j++) r |= m[j] != 0;
    return r;
#endif
}
FI_FN float FI_I(hmax_f)(FI_I(vec_f) v) {
    float best = v[0];
    int j;
    for (j = 1; j < FI_I(lanes_f); j++)
        if (v[j] > best) best = v[j];
    return best;
}
/* float <-> double halves: one conversion instruction each on x86 (vcvtps2pd / vcvtpd2ps). */
#if FI_GEN_AVX
FI_FN FI_I(vec_d) FI_I(lo_f)(FI_I(vec_f) v) { return (FI_I(vec_d))_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)v)); }
FI_FN FI_I(vec_d) FI_I(hi_f)(FI_I(vec_f) v) { return (FI_I(vec_d))_mm256_cvtps_pd(_mm256_extractf128_ps((__m256)v, 1)); }
FI_FN FI_I(vec_f) FI_I(narrow_f)(FI_I(vec_d) lo, FI_I(vec_d) hi) {
    return (FI_I(vec_f))_mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps((__m256d)lo)),
                                             _mm256_cvtpd_ps((__m256d)hi), 1);
}
FI_FN FI_I(vec_d) FI_I(loadw_f)(const float *p) { return (FI_I(vec_d))_mm256_cvtps_pd(_mm_loadu_ps(p)); }
#elif FI_GEN_SSE2
FI_FN FI_I(vec_d) FI_I(lo_f)(FI_I(vec_f) v) { return (FI_I(vec_d))_mm_cvtps_pd((__m128)v); }
FI_FN FI_I(vec_d) FI_I(hi_f)(FI_I(vec_f) v) { return (FI_I(vec_d))_mm_cvtps_pd(_mm_movehl_ps((__m128)v, (__m128)v)); }
FI_FN FI_I(vec_f) FI_I(narrow_f)(FI_I(vec_d) lo, FI_I(vec_d) hi) {
    return (FI_I(vec_f))_mm_movelh_ps(_mm_cvtpd_ps((__m128d)lo), _mm_cvtpd_ps((__m128d)hi));
}
FI_FN FI_I(vec_d) FI_I(loadw_f)(const float *p) {
    double two;   /* two floats as 8 bytes: p is only float-aligned, so no double load */
    memcpy(&two, p, sizeof two);
    __m128 v = _mm_castpd_ps(_mm_set_sd(two));
    return (FI_I(vec_d))_mm_cvtps_pd(v);
}
#else
FI_FN FI_I(vec_d) FI_I(lo_f)(FI_I(vec_f) v) {
    FI_I(half_f) h;
    memcpy(&h, &v, sizeof h);
    return __builtin_convertvector(h, FI_I(vec_d));
}
FI_FN FI_I(vec_d) FI_I(hi_f)(FI_I(vec_f) v) {
    FI_I(half_f) h;
    memcpy(&h, (const char *)&v + sizeof h, sizeof h);
    return __builtin_convertvector(h, FI_I(vec_d));
}
FI_FN FI_I(vec_f) FI_I(narrow_f)(FI_I(vec_d) lo, FI_I(vec_d) hi) {
    FI_I(half_f) a = __builtin_convertvector(lo, FI_I(half_f)), b = __builtin_convertvector(hi, FI_I(half_f));
    FI_I(vec_f) v;
    memcpy(&v, &a, sizeof a);
    memcpy((char *)&v + sizeof a, &b, sizeof b);
    return v;
}
/* lanes_d floats from p, as doubles (the distribution kernels compute in double) */
FI_FN FI_I(vec_d) FI_I(loadw_f)(const float *p) {
    FI_I(half_f) h;
    memcpy(&h, p, sizeof h);
    return __builtin_convertvector(h, FI_I(vec_d));
}
#endif

/* e^t, lane-wise, for t <= 88 (the softmax kernels call it with t = (x - max) / T, up to a small
   positive headroom): t = n ln2 + r with n = round(t/ln2) (by adding 1.5*2^23) and a Cody-Waite
   split of ln2, so r is exact enough; e^r on |r| <= ln2/2 by a polynomial of degree 6 (minimax,
   1 + r fixed; error below 4e-9 relative); 2^n written into the exponent bits. Below -87.0f
   (2^n would leave the normal range) and for -inf the lane is 0; NaN stays NaN. */
FI_FN FI_I(vec_f) FI_I(exp_f)(FI_I(vec_f) t) {
    const FI_I(vec_f) magic = FI_I(splat_f)(12582912.0f);
    FI_I(mask_f) under = t < FI_I(splat_f)(-87.0f);
    FI_I(vec_f) k = t * 1.44269504088896341f + magic;
    FI_I(mask_f) n = (FI_I(mask_f))k - (FI_I(mask_f))magic;
    FI_I(vec_f) r, p;
    k = k - magic;
    r = t - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    p = 1.0f + r * (1.0f + r * (4.999999404e-01f + r * (1.666652113e-01f + r * (4.166838899e-02f + r * (8.368745446e-03f + r * 1.381454058e-03f)))));
    p = p * (FI_I(vec_f))((n + 127) << 23);
    return (FI_I(vec_f))(~under & (FI_I(mask_f))p);
}

FI_FN void FI_I(stream_f)(float *p, FI_I(vec_f) v) {
#if defined(__SSE2__)
    int j;
    for (j = 0; j < FI_I(lanes_f); j += 4) {
        __m128 h;
        memcpy(&h, (const char *)&v + 4 * j, sizeof h);
        _mm_stream_ps(p + j, h);
    }
#else
    FI_I(store_f)(p, v);
#endif
}

/* ---- double ---- */
FI_FN FI_I(vec_d) FI_I(splat_d)(double c) { FI_I(vec_d) v = {0}; return v + c; }
FI_FN FI_I(vec_d) FI_I(load_d)(const double *p) { FI_I(vec_d) v; memcpy(&v, p, sizeof v); return v; }
FI_FN void FI_I(store_d)(double *p, FI_I(vec_d) v) { memcpy(p, &v, sizeof v); }
FI_FN FI_I(vec_d) FI_I(load_tail_d)(const double *p, Py_ssize_t k, double fill) {
    double buf[FI_I(lanes_d)];
    Py_ssize_t j;
    for (j = 0; j < FI_I(lanes_d); j++) buf[j] = j < k ? p[j] : fill;
    return FI_I(load_d)(buf);
}
FI_FN void FI_I(store_tail_d)(double *p, Py_ssize_t k, FI_I(vec_d) v) {
    double buf[FI_I(lanes_d)];
    Py_ssize_t j;
    FI_I(store_d)(buf, v);
    for (j = 0; j < k; j++) p[j] = buf[j];
}
FI_FN FI_I(vec_d) FI_I(loadw_d)(const double *p) { return FI_I(load_d)(p); }
FI_FN FI_I(vec_d) FI_I(loadw_tail_d)(const double *p, Py_ssize_t k, double fill) { return FI_I(load_tail_d)(p, k, fill); }
FI_FN FI_I(vec_d) FI_I(loadw_tail_f)(const float *p, Py_ssize_t k, double fill) {
    double buf[FI_I(lanes_d)];
    Py_ssize_t j;
    for (j = 0; j < FI_I(lanes_d); j++) buf[j] = j < k ? (double)p[j] : fill;
    return FI_I(load_d)(buf);
}
FI_FN FI_I(mask_d) FI_I(lt_d)(FI_I(vec_d) a, FI_I(vec_d) b) { return a < b; }
FI_FN FI_I(mask_d) FI_I(le_d)(FI_I(vec_d) a, FI_I(vec_d) b) { return a <= b; }
FI_FN FI_I(mask_d) FI_I(gt_d)(FI_I(vec_d) a, FI_I(vec_d) b) { return a > b; }
FI_FN FI_I(mask_d) FI_I(eq_d)(FI_I(vec_d) a, FI_I(vec_d) b) { return a == b; }
FI_FN FI_I(vec_d) FI_I(select_d)(FI_I(mask_d) m, FI_I(vec_d) a, FI_I(vec_d) b) {
#if FI_GEN_AVX
    return (FI_I(vec_d))_mm256_blendv_pd((__m256d)b, (__m256d)a, (__m256d)m);
#else
    return (FI_I(vec_d))((m & (FI_I(mask_d))a) | (~m & (FI_I(mask_d))b));
#endif
}
/* a > b ? a : b and a < b ? a : b (NaN in a gives b), as maxpd / minpd do */
FI_FN FI_I(vec_d) FI_I(max_d)(FI_I(vec_d) a, FI_I(vec_d) b) {
#if FI_GEN_AVX
    return (FI_I(vec_d))_mm256_max_pd((__m256d)a, (__m256d)b);
#elif FI_GEN_SSE2
    return (FI_I(vec_d))_mm_max_pd((__m128d)a, (__m128d)b);
#else
    return FI_I(select_d)(a > b, a, b);
#endif
}
FI_FN FI_I(vec_d) FI_I(min_d)(FI_I(vec_d) a, FI_I(vec_d) b) {
#if FI_GEN_AVX
    return (FI_I(vec_d))_mm256_min_pd((__m256d)a, (__m256d)b);
#elif FI_GEN_SSE2
    return (FI_I(vec_d))_mm_min_pd((__m128d)a, (__m128d)b);
#else
    return FI_I(select_d)(a < b, a, b);
#endif
}
FI_FN double FI_I(hmax_d)(FI_I(vec_d) v) {
    double best = v[0];
    int j;
    for (j = 1; j < FI_I(lanes_d); j++)
        if (v[j] > best) best = v[j];
    return best;
}
FI_FN double FI_I(hmin_d)(FI_I(vec_d) v) {
    double best = v[0];
    int j;
    for (j = 1; j < FI_I(lanes_d); j++)
        if (v[j] < best) best = v[j];
    return best;
}
/* Sum of the lanes in a fixed order (pairs, then pairs of pairs). */
FI_FN double FI_I(hsum_d)(FI_I(vec_d) v) {
#if FI_VBYTES == 16
    return v[0] + v[1];
#elif FI_VBYTES == 32
    return (v[0] + v[1]) + (v[2] + v[3]);
#else
#error "unsupported vector size"
#endif
}
/* The smallest positive entry seen, lane-wise, for subnormal detection: a running minimum of the
   entries with zeros replaced by +inf (compare, blend, min: no 64-bit unsigned compare, which
   AVX2 lacks), kept as the double's bits (the AVX-512 clone's type for it). */
typedef uint64_t FI_I(bits_d) __attribute__((vector_size(FI_VBYTES)));
FI_FN FI_I(bits_d) FI_I(allbits_d)(void) { FI_I(vec_d) v = {0}; return (FI_I(bits_d))(v + INFINITY); }
FI_FN FI_I(bits_d) FI_I(minbits1_d)(FI_I(bits_d) acc, FI_I(vec_d) v) {
    FI_I(vec_d) zero = {0};
    return (FI_I(bits_d))FI_I(min_d)((FI_I(vec_d))acc, FI_I(select_d)(v > zero, v, zero + INFINITY));
}
/* some lane holds a positive double below `below` */
FI_FN int FI_I(bits_below_d)(FI_I(bits_d) acc, double below) {
    FI_I(vec_d) m = (FI_I(vec_d))acc;
    int j, r = 0;
    for (j = 0; j < FI_I(lanes_d); j++) r |= m[j] < below;
    return r;
}
FI_FN FI_I(vec_d) FI_I(iota_d)(void) {
    FI_I(vec_d) v;
    int j;
    for (j = 0; j < FI_I(lanes_d); j++) v[j] = (double)j;
    return v;
}
FI_FN int FI_I(any_d)(FI_I(mask_d) m) {
#if FI_GEN_AVX
    return _mm256_movemask_pd((__m256d)m) != 0;
#elif FI_GEN_SSE2
    return _mm_movemask_pd((__m128d)m) != 0;
#else
    int j, r = 0;
    for (j = 0; j < FI_I(lanes_d); j++) r |= m[j] != 0;
    return r;
#endif
}

/* e^t for t <= 709 (see exp_f): n = round(t/ln2) by adding 1.5*2^52, Cody-Waite ln2, degree-13
   Taylor polynomial on |r| <= ln2/2 (truncation below 1e-17 relative), 2^n in the exponent bits.
   Below -708.0 and for -inf the lane is 0; NaN stays NaN. */
FI_FN FI_I(vec_d) FI_I(exp_d)(FI_I(vec_d) t) {
    const FI_I(vec_d) magic = FI_I(splat_d)(6755399441055744.0);
    FI_I(mask_d) under = t < FI_I(splat_d)(-708.0);
    FI_I(vec_d) k = t * 1.4426950408889634 + magic;
    FI_I(mask_d) n = (FI_I(mask_d))k - (FI_I(mask_d))magic;
    FI_I(vec_d) r, p;
    k = k - magic;
    r = t - k * 6.93147180369123816490e-01;
    r = r - k * 1.90821492927058770002e-10;
    p = 1.0 + r * (1.0 + r * (0.5 + r * (0.16666666666666666 + r * (0.041666666666666664 + r * (0.008333333333333333 + r * (0.001388888888888889 + r * (0.0001984126984126984 + r * (2.48015873015873e-05 + r * (2.7557319223985893e-06 + r * (2.755731922398589e-07 + r * (2.505210838544172e-08 + r * (2.08767569878681e-09 + r * (1.6059043836821613e-10)))))))))))));
    p = p * (FI_I(vec_d))((n + 1023) << 52);
    return (FI_I(vec_d))(~under & (FI_I(mask_d))p);
}

/* Natural log of a finite normal x >= DBL_MIN, lane-wise; other inputs give finite garbage (the
   callers mask them, and check the smallest argument so that rows with a subnormal one are
   redone with libc log). x = 2^k m with m in [sqrt(2)/2, sqrt(2)) (integer arithmetic on the
   bits); f = m - 1 is exact (Sterbenz); with s = f/(2+f), log(m) = 2 atanh(s) = 2s + s R(z),
   z = s^2, R(z) = z P(z), P(z) = sum_{j>=1} 2 z^(j-1)/(2j+1), z <= (3 - 2 sqrt(2))^2 = 0.02944.
   P is its degree-6 Chebyshev economisation on [0, zmax] (coefficients computed in mpmath from
   40 exact Taylor terms, fastinfo's own fit): |error| <= 3.2e-16, which moves log(m) by at most
   4.7e-18 relative (0.04 ulp). Since 2s = f - s f, log(m) = f - (f^2/2 - s (f^2/2 + R)): the big
   term f is exact and the correction is < |f|/5; k log 2 is k*LN2_HI (exact: 32 significant
   bits, |k| < 1200) plus k*LN2_LO. Measured against mpmath (tests/test_distributions.py): < 1 ulp. */
FI_FN FI_I(vec_d) FI_I(log_d)(FI_I(vec_d) x) {
    const double LN2_HI = 0x1.62e42fee00000p-1;
    const double LN2_LO = 0x1.a39ef35793c76p-33;
    typedef uint64_t FI_I(uvec_d) __attribute__((vector_size(FI_VBYTES)));
    FI_I(uvec_d) ux = (FI_I(uvec_d))x;
    /* kk = k + 1024 >= 1 for every positive normal x, so the shift is logical */
    FI_I(uvec_d) kk = (ux - UINT64_C(0x3fe6a09e667f3bcd) + UINT64_C(0x4000000000000000)) >> 52;
    FI_I(vec_d) m = (FI_I(vec_d))(ux - (kk << 52) + UINT64_C(0x4000000000000000));
    FI_I(vec_d) k = ((FI_I(vec_d))(kk | UINT64_C(0x4330000000000000)) - 0x1p52) - 1024.0;
    FI_I(vec_d) f = m - 1.0;
    FI_I(vec_d) s = f / (2.0 + f);
    FI_I(vec_d) z = s * s;
    FI_I(vec_d) R = z * (0x1.5555555555558p-1 + z * (0x1.9999999995288p-2 + z * (0x1.2492492df9f94p-2
                  + z * (0x1.c71c62dba6605p-3 + z * (0x1.7462b73112de7p-3 + z * (0x1.39fe142880193p-3
                  + z * 0x1.2b5baa716e7eap-3))))));
    FI_I(vec_d) hfsq = 0.5 * f * f;
    return k * LN2_HI - ((hfsq - (s * (hfsq + R) + k * LN2_LO)) - f);
}

FI_FN void FI_I(stream_d)(double *p, FI_I(vec_d) v) {
#if defined(__SSE2__)
    int j;
    for (j = 0; j < FI_I(lanes_d); j += 2) {
        __m128d h;
        memcpy(&h, (const char *)&v + 8 * j, sizeof h);
        _mm_stream_pd(p + j, h);
    }
#else
    FI_I(store_d)(p, v);
#endif
}

/* Double accumulators of a float vector's lanes (acc[0] the low half, acc[1] the high half) and of
   a double vector's (acc[0]); fixed lane order, so the sums do not depend on anything but the data. */
FI_FN void FI_I(acc_f)(FI_I(vec_d) acc[2], FI_I(vec_f) v) { acc[0] += FI_I(lo_f)(v); acc[1] += FI_I(hi_f)(v); }
FI_FN void FI_I(acc_d)(FI_I(vec_d) acc[2], FI_I(vec_d) v) { acc[0] += v; }
/* acc += a * b in double */
FI_FN void FI_I(accmul_f)(FI_I(vec_d) acc[2], FI_I(vec_f) a, FI_I(vec_f) b) {
    acc[0] += FI_I(lo_f)(a) * FI_I(lo_f)(b);
    acc[1] += FI_I(hi_f)(a) * FI_I(hi_f)(b);
}
FI_FN void FI_I(accmul_d)(FI_I(vec_d) acc[2], FI_I(vec_d) a, FI_I(vec_d) b) { acc[0] += a * b; }
FI_FN double FI_I(acctotal)(const FI_I(vec_d) acc[2]) { return FI_I(hsum_d)(acc[0]) + FI_I(hsum_d)(acc[1]); }

FI_FN void FI_I(fence)(void) {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

#undef FI_GEN_AVX
#undef FI_GEN_SSE2

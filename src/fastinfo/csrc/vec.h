/* fastinfo: vector types, loads and stores, and the exp / log polynomials of the dense kernels
   (softmax.h, distributions.h). Included by _kernels.pyx through those headers. */
#ifndef FASTINFO_VEC_H
#define FASTINFO_VEC_H

#include <Python.h>

#include <float.h>
#include <math.h>
#include <string.h>
#include <stdint.h>

#if !defined(__GNUC__)
#error "fastinfo's dense kernels use GCC/Clang vector extensions"
#endif

/* Everything a row function calls is force-inlined: a call out of a target_clones function
   would run baseline (SSE2) code. */
#define FI_INLINE static inline __attribute__((always_inline))

/* Names of the type-generic bodies (softmax_rows.h, distributions_rows.h, vec_ops.h): each is
   included once per element type with FT (the element type) and SFX (the name suffix, f or d)
   defined, and FI_T(fi_max) names fi_max_f or fi_max_d. */
#define FI_CAT_(a, b) a##_##b
#define FI_CAT(a, b) FI_CAT_(a, b)
#define FI_T(name) FI_CAT(name, SFX)

/* Hot row functions get AVX-512 and AVX2+FMA clones picked at load time (ifunc) next to the
   portable baseline; define FI_NO_CLONES to build the baseline only. */
#if defined(__x86_64__) && defined(__linux__) && !defined(FI_NO_CLONES) && (defined(__clang__) ? (__clang_major__ >= 14) : (__GNUC__ >= 11))
#define FI_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FI_CLONES
#endif

#pragma GCC diagnostic ignored "-Wpsabi"

typedef float fi_v8f __attribute__((vector_size(32)));
typedef int32_t fi_v8i __attribute__((vector_size(32)));
typedef double fi_v8d __attribute__((vector_size(64)));
typedef int64_t fi_v8l __attribute__((vector_size(64)));

typedef double fi_v4d __attribute__((vector_size(32)));

/* Double accumulators are kept as two 4-lane halves: GCC keeps those in registers
   across loop iterations, where an 8-lane double vector would live in memory. */
static inline __attribute__((always_inline)) void fi_add8d(fi_v4d acc[2], fi_v8d v) {
    union { fi_v8d v; fi_v4d h[2]; } u;
    u.v = v;
    acc[0] += u.h[0];
    acc[1] += u.h[1];
}
/* Fixed-order sum of the 8 lanes. */
static inline __attribute__((always_inline)) double fi_sum8d(const fi_v4d acc[2]) {
    return ((acc[0][0] + acc[0][1]) + (acc[0][2] + acc[0][3]))
         + ((acc[1][0] + acc[1][1]) + (acc[1][2] + acc[1][3]));
}

typedef int64_t fi_v4l __attribute__((vector_size(32)));
static inline __attribute__((always_inline)) void fi_add4d(fi_v4d acc[2], fi_v4d v) { acc[0] += v; }

/* Streaming (non-temporal) stores for outputs much larger than the caches: no read for
   ownership of the destination lines, so a write pass costs one write of the output. */
#if defined(__SSE2__)
#include <emmintrin.h>
#define FI_HAVE_NT 1
static inline __attribute__((always_inline)) void fi_store_nt_f(float *p, fi_v8f v) {
    union { fi_v8f v; __m128 h[2]; } u;
    u.v = v;
    _mm_stream_ps(p, u.h[0]);
    _mm_stream_ps(p + 4, u.h[1]);
}
static inline __attribute__((always_inline)) void fi_store_nt_d(double *p, fi_v4d v) {
    union { fi_v4d v; __m128d h[2]; } u;
    u.v = v;
    _mm_stream_pd(p, u.h[0]);
    _mm_stream_pd(p + 2, u.h[1]);
}
static inline void fi_nt_fence(void) { _mm_sfence(); }
#else
#define FI_HAVE_NT 0
static inline void fi_store_nt_f(float *p, fi_v8f v) { memcpy(p, &v, sizeof v); }
static inline void fi_store_nt_d(double *p, fi_v4d v) { memcpy(p, &v, sizeof v); }
static inline void fi_nt_fence(void) {}
#endif
/* Elements to handle one by one before y + i is 16-byte aligned for streaming stores. */
static inline Py_ssize_t fi_nt_head(const void *y, size_t itemsize, Py_ssize_t n) {
    uintptr_t mis = (uintptr_t)y & 15;
    Py_ssize_t k;
    if (!FI_HAVE_NT || mis % itemsize) return -1;   /* -1: not possible, use plain stores */
    k = mis ? (Py_ssize_t)((16 - mis) / itemsize) : 0;
    return k < n ? k : n;
}

#define FI_TOD_F(v) __builtin_convertvector((v), fi_v8d)
#define FI_FROMD_F(v) __builtin_convertvector((v), fi_v8f)
#define FI_ID(v) (v)

static inline __attribute__((always_inline)) fi_v8d fi_load_v8d(const double *p) {
    fi_v8d v; memcpy(&v, p, sizeof v); return v;
}
static inline __attribute__((always_inline)) fi_v4d fi_load_v4d(const double *p) {
    fi_v4d v; memcpy(&v, p, sizeof v); return v;
}

/* ---------------- element vectors: splat, select, loads and stores (vec_ops.h) ---------------- */
#define FT float
#define SFX f
#define FV fi_v8f
#define IV fi_v8i
#define LANES 8
#include "vec_ops.h"

#define FT double
#define SFX d
#define FV fi_v4d
#define IV fi_v4l
#define LANES 4
#include "vec_ops.h"

/* ---------------- exp, one per element type ---------------- */
/* e^t for t <= 0, lane-wise: t = n ln2 + r with n = round(t/ln2) (by adding 1.5*2^23) and a
   Cody-Waite split of ln2, so r is exact enough; e^r on |r| <= ln2/2 by a polynomial of degree
   6 (minimax, 1 + r fixed; error below 4e-9 relative); 2^n written into the exponent bits.
   Below -87.0f (2^n would leave the normal range) and for -inf the lane is set to 0 at the
   end, whatever was computed there; NaN stays NaN (t < -87.0f is false for NaN). */
static inline __attribute__((always_inline)) fi_v8f fi_exp_f(fi_v8f t) {
    const fi_v8f magic = fi_splat_f((float)12582912.0f);
    fi_v8i under = t < fi_splat_f((float)-87.0f);
    fi_v8f k = t * (float)1.44269504088896341f + magic;
    fi_v8i n = (fi_v8i)k - (fi_v8i)magic;
    fi_v8f r, p;
    k = k - magic;
    r = t - k * (float)0.693359375f;
    r = r - k * (float)-2.12194440e-4f;
    p = 1.0f + r * (1.0f + r * (4.999999404e-01f + r * (1.666652113e-01f + r * (4.166838899e-02f + r * (8.368745446e-03f + r * 1.381454058e-03f)))));
    p = p * (fi_v8f)((n + 127) << 23);
    return (fi_v8f)(~under & (fi_v8i)p);
}

/* e^t for t <= 0, lane-wise: t = n ln2 + r with n = round(t/ln2) (by adding 1.5*2^52) and a
   Cody-Waite split of ln2, so r is exact enough; e^r on |r| <= ln2/2 by a polynomial of degree
   13 (Taylor; error below 1e-17 relative); 2^n written into the exponent bits.
   Below -708.0 (2^n would leave the normal range) and for -inf the lane is set to 0 at the
   end, whatever was computed there; NaN stays NaN (t < -708.0 is false for NaN). */
static inline __attribute__((always_inline)) fi_v4d fi_exp_d(fi_v4d t) {
    const fi_v4d magic = fi_splat_d((double)6755399441055744.0);
    fi_v4l under = t < fi_splat_d((double)-708.0);
    fi_v4d k = t * (double)1.4426950408889634 + magic;
    fi_v4l n = (fi_v4l)k - (fi_v4l)magic;
    fi_v4d r, p;
    k = k - magic;
    r = t - k * (double)6.93147180369123816490e-01;
    r = r - k * (double)1.90821492927058770002e-10;
    p = 1.0 + r * (1.0 + r * (0.5 + r * (0.16666666666666666 + r * (0.041666666666666664 + r * (0.008333333333333333 + r * (0.001388888888888889 + r * (0.0001984126984126984 + r * (2.48015873015873e-05 + r * (2.7557319223985893e-06 + r * (2.755731922398589e-07 + r * (2.505210838544172e-08 + r * (2.08767569878681e-09 + r * (1.6059043836821613e-10)))))))))))));
    p = p * (fi_v4d)((n + 1023) << 52);
    return (fi_v4d)(~under & (fi_v4l)p);
}

/* ---------------- log ---------------- */
FI_INLINE double fi_from_bits(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }
FI_INLINE uint64_t fi_to_bits(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }

/* Natural log of a finite normal x >= DBL_MIN; other inputs give garbage (callers mask them,
   and count subnormal arguments so that such rare rows are redone with libc log).
   Branch-free so that loops calling it vectorise.
   x = 2^k m with m in [sqrt(2)/2, sqrt(2)) (integer arithmetic on the bits, no int<->float
   conversion instructions needed); f = m - 1 is exact (Sterbenz); with s = f/(2+f),
   log(m) = 2 atanh(s) = 2s + s R(z), z = s^2, R(z) = z P(z), P(z) = sum_{j>=1} 2 z^(j-1)/(2j+1),
   z <= zmax = (3 - 2 sqrt(2))^2 = 0.02944. P is replaced by its degree-6 Chebyshev
   economisation on [0, zmax] (coefficients computed in mpmath from 40 exact Taylor terms,
   fastinfo's own fit): |error| <= dropped Chebyshev coefficients + Taylor tail + coefficient
   rounding <= 3.2e-16, which moves log(m) by at most z |err| / 2 <= 4.7e-18 relative (0.04 ulp).
   Since 2s = f - s f, log(m) = f - (f^2/2 - s (f^2/2 + R)): the big term f is exact and the
   correction is < |f|/5, so its rounding costs well under an ulp; k log 2 is added as
   k*LN2_HI (exact: LN2_HI has 32 significant bits, |k| < 1200) plus k*LN2_LO.
   Measured against mpmath (tests/test_distributions.py): max error < 1 ulp. */
FI_INLINE double fi_log_normal(double x)
{
    const double LN2_HI = 0x1.62e42fee00000p-1;
    const double LN2_LO = 0x1.a39ef35793c76p-33;
    uint64_t ux = fi_to_bits(x);
    /* kk = k + 1024 >= 1 for every positive normal x, so the shift is logical */
    uint64_t kk = (ux - UINT64_C(0x3fe6a09e667f3bcd) + UINT64_C(0x4000000000000000)) >> 52;
    double m = fi_from_bits(ux - (kk << 52) + UINT64_C(0x4000000000000000));
    double k = (fi_from_bits(kk | UINT64_C(0x4330000000000000)) - 0x1p52) - 1024.0;
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double R = z * (0x1.5555555555558p-1 + z * (0x1.9999999995288p-2 + z * (0x1.2492492df9f94p-2
             + z * (0x1.c71c62dba6605p-3 + z * (0x1.7462b73112de7p-3 + z * (0x1.39fe142880193p-3
             + z * 0x1.2b5baa716e7eap-3))))));
    double hfsq = 0.5 * f * f;
    return k * LN2_HI - ((hfsq - (s * (hfsq + R) + k * LN2_LO)) - f);
}

#endif /* FASTINFO_VEC_H */

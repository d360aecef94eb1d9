/* fastinfo: float16 and bfloat16 elements for one clone of the vector layer (vec.h includes it
   after the clone's simd_generic.h / simd_avx512.h, with FI_ISA, and for the generic clones
   FI_VBYTES and FI_FN, defined). No include guard: it is meant to be included more than once.

   The elements are uint16_t bit patterns (half.h). Per clone:
     load_f16 / load_bf16 (p)                 lanes_f elements -> a float vector, widened exactly
     load_tail_f16 / load_tail_bf16 (p, k, fill)   the first k (< lanes_f), the rest fill
     loadw_f16 / loadw_bf16 (p), loadw_tail_... (p, k, fill)   lanes_d elements -> a double vector
     store_f16 / store_bf16 (p, v), store_tail_..., stream_...   a float vector -> half bits, to
                                              nearest even (NaN stays a quiet NaN)
     narrow_odd_f (lo, hi)                    two double vectors -> the float vector rounded to
                                              odd, so that a store after it rounds once (half.h)
     f16_safe / bf16_safe (f, min_bits)       1 when every lane of f is more than FI_HALF_MARGIN
                                              float ulps from each midpoint of the half grid and
                                              its magnitude's bits are >= min_bits (below: the
                                              caller's error bound does not hold, or float16's
                                              coarser subnormal grid): then every value within
                                              FI_HALF_MARGIN ulps of f rounds to the same half
     min_f, hmin_f, log_f                     for the float pass of the half-precision entropy and
                                              cross-entropy (distributions_rows.h)
   Widening uses F16C vcvtph2ps in the AVX2 clone, AVX-512 vcvtph2ps zmm in the AVX-512 clone,
   and the exact integer scheme of half.h in the baseline; bfloat16 is a 16-bit shift everywhere.
   (AVX-512 BF16's vcvtneps2bf16 is not part of x86-64-v4, so bfloat16 stores round in integers.) */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#if defined(FI_HALF_V4)
/* ---------------- x86-64-v4: AVX-512F/BW/VL intrinsics, 16 float lanes ---------------- */
#define FI_HV FI_INLINE FI_TARGET_V4

FI_HV __mmask16 fi_v4_first16(Py_ssize_t k) { return (__mmask16)((1u << k) - 1u); }

FI_HV __m512 fi_v4_load_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p)); }
FI_HV __m512 fi_v4_load_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p)), 16));
}
FI_HV __m512 fi_v4_load_tail_f16(const uint16_t *p, Py_ssize_t k, float fill) {
    __mmask16 m = fi_v4_first16(k);
    return _mm512_mask_blend_ps(m, _mm512_set1_ps(fill), _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)));
}
FI_HV __m512 fi_v4_load_tail_bf16(const uint16_t *p, Py_ssize_t k, float fill) {
    __mmask16 m = fi_v4_first16(k);
    __m512 v = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
    return _mm512_mask_blend_ps(m, _mm512_set1_ps(fill), v);
}
FI_HV __m512d fi_v4_loadw_f16(const uint16_t *p) {
    return _mm512_cvtps_pd(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)));
}
FI_HV __m512d fi_v4_loadw_bf16(const uint16_t *p) {
    __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)), 16);
    return _mm512_cvtps_pd(_mm256_castsi256_ps(w));
}
FI_HV __m512d fi_v4_loadw_tail_f16(const uint16_t *p, Py_ssize_t k, double fill) {
    __mmask8 m = (__mmask8)((1u << k) - 1u);
    __m512d v = _mm512_cvtps_pd(_mm256_cvtph_ps(_mm_maskz_loadu_epi16(m, p)));
    return _mm512_mask_blend_pd(m, _mm512_set1_pd(fill), v);
}
FI_HV __m512d fi_v4_loadw_tail_bf16(const uint16_t *p, Py_ssize_t k, double fill) {
    __mmask8 m = (__mmask8)((1u << k) - 1u);
    __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_maskz_loadu_epi16(m, p)), 16);
    return _mm512_mask_blend_pd(m, _mm512_set1_pd(fill), _mm512_cvtps_pd(_mm256_castsi256_ps(w)));
}
FI_HV __m256i fi_v4_to_f16(__m512 v) { return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
FI_HV __m256i fi_v4_to_bf16(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                   _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));  /* NaN: quiet, truncated */
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}
FI_HV void fi_v4_store_f16(uint16_t *p, __m512 v) { _mm256_storeu_si256((__m256i *)(void *)p, fi_v4_to_f16(v)); }
FI_HV void fi_v4_store_bf16(uint16_t *p, __m512 v) { _mm256_storeu_si256((__m256i *)(void *)p, fi_v4_to_bf16(v)); }
FI_HV void fi_v4_store_tail_f16(uint16_t *p, Py_ssize_t k, __m512 v) { _mm256_mask_storeu_epi16(p, fi_v4_first16(k), fi_v4_to_f16(v)); }
FI_HV void fi_v4_store_tail_bf16(uint16_t *p, Py_ssize_t k, __m512 v) { _mm256_mask_storeu_epi16(p, fi_v4_first16(k), fi_v4_to_bf16(v)); }
FI_HV void fi_v4_stream_f16(uint16_t *p, __m512 v) { _mm256_stream_si256((__m256i *)(void *)p, fi_v4_to_f16(v)); }
FI_HV void fi_v4_stream_bf16(uint16_t *p, __m512 v) { _mm256_stream_si256((__m256i *)(void *)p, fi_v4_to_bf16(v)); }

/* Truncation by the instruction's own rounding mode, then the last bit set where inexact. A double
   beyond FLT_MAX truncates to FLT_MAX (odd): it rounds to inf in both half formats, as it should. */
FI_HV __m256 fi_v4_odd8(__m512d d) {
    __m256 t = _mm512_cvt_roundpd_ps(d, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __mmask8 inexact = _mm512_cmp_pd_mask(_mm512_cvtps_pd(t), d, _CMP_NEQ_UQ);
    __m256i u = _mm256_castps_si256(t);
    return _mm256_castsi256_ps(_mm256_mask_or_epi32(u, inexact, u, _mm256_set1_epi32(1)));
}
FI_HV __m512 fi_v4_narrow_odd_f(__m512d lo, __m512d hi) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(fi_v4_odd8(lo)), fi_v4_odd8(hi), 1);
}
/* A float f in a binade of the half format has its half-grid midpoints where the bits below the
   half significand are 100..0 (13 bits for float16, 16 for bfloat16). f is more than
   FI_HALF_MARGIN float ulps from every midpoint when those bits differ from 100..0 by more than
   FI_HALF_MARGIN (the midpoints of the neighbouring binades are thousands of ulps away). */
#define FI_HALF_MARGIN 4u
FI_HV int fi_v4_half_safe_(__m512 f, uint32_t min_bits, uint32_t low_mask, uint32_t mid) {
    __m512i u = _mm512_castps_si512(f);
    __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    __m512i l = _mm512_sub_epi32(_mm512_and_si512(u, _mm512_set1_epi32((int)low_mask)),
                                 _mm512_set1_epi32((int)(mid - FI_HALF_MARGIN)));
    __mmask16 bad = _mm512_cmple_epu32_mask(l, _mm512_set1_epi32((int)(2u * FI_HALF_MARGIN)))
                    | _mm512_cmplt_epu32_mask(a, _mm512_set1_epi32((int)min_bits));
    return bad == 0;
}
FI_HV int fi_v4_f16_safe(__m512 f, uint32_t min_bits) { return fi_v4_half_safe_(f, min_bits, 0x1fffu, 0x1000u); }
FI_HV int fi_v4_bf16_safe(__m512 f, uint32_t min_bits) { return fi_v4_half_safe_(f, min_bits, 0xffffu, 0x8000u); }
/* the AVX-512 round-to-odd narrowing is cheap: the half writers use it directly */
FI_HV __m512 fi_v4_narrow_f16_f(__m512d lo, __m512d hi) { return fi_v4_narrow_odd_f(lo, hi); }
FI_HV __m512 fi_v4_narrow_bf16_f(__m512d lo, __m512d hi) { return fi_v4_narrow_odd_f(lo, hi); }
/* float helpers of the half-precision distribution pass: min, smallest lane, log (half.h) */
typedef int32_t fi_v4_i32v __attribute__((vector_size(64)));
FI_HV __m512 fi_v4_min_f(__m512 a, __m512 b) { return _mm512_min_ps(a, b); }
FI_HV float fi_v4_hmin_f(__m512 v) { return _mm512_reduce_min_ps(v); }
FI_HV __m512 fi_v4_log_f(__m512 x) { return (__m512)FI_V_LOG_F(__m512, fi_v4_i32v, x); }
#undef FI_HV

#else
/* ---------------- generic clones: GCC vector extensions of FI_VBYTES bytes ---------------- */
typedef uint16_t FI_I(hvec) __attribute__((vector_size(FI_VBYTES / 2)));    /* lanes_f halves */
typedef uint16_t FI_I(hvec_d) __attribute__((vector_size(FI_VBYTES / 4)));  /* lanes_d halves */
typedef uint32_t FI_I(uvec_f) __attribute__((vector_size(FI_VBYTES)));
typedef int32_t FI_I(ivec_h) __attribute__((vector_size(FI_VBYTES / 2)));   /* lanes_d int32 */
typedef uint32_t FI_I(uvec_h) __attribute__((vector_size(FI_VBYTES / 2)));
typedef int64_t FI_I(lvec_d) __attribute__((vector_size(FI_VBYTES)));
#if FI_VBYTES == 32 && defined(FI_HALF_F16C)
#define FI_HALF_HW 1   /* the AVX2 clone: F16C */
#else
#define FI_HALF_HW 0
#endif

FI_FN FI_I(vec_f) FI_I(widen_f16)(FI_I(hvec) h) {
#if FI_HALF_HW
    __m128i x;
    memcpy(&x, &h, sizeof x);
    return (FI_I(vec_f))_mm256_cvtph_ps(x);
#else
    return FI_V_F16_TO_F32(FI_I(vec_f), FI_I(uvec_f), h);
#endif
}
FI_FN FI_I(hvec) FI_I(to_f16)(FI_I(vec_f) v) {
#if FI_HALF_HW
    __m128i x = _mm256_cvtps_ph((__m256)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    FI_I(hvec) h;
    memcpy(&h, &x, sizeof h);
    return h;
#else
    return FI_V_F32_TO_F16(FI_I(hvec), FI_I(uvec_f), FI_I(mask_f), FI_I(vec_f), v);
#endif
}
FI_FN FI_I(vec_f) FI_I(load_f16)(const uint16_t *p) { FI_I(hvec) h; memcpy(&h, p, sizeof h); return FI_I(widen_f16)(h); }
FI_FN FI_I(vec_f) FI_I(load_bf16)(const uint16_t *p) {
    FI_I(hvec) h;
    memcpy(&h, p, sizeof h);
    return FI_V_BF16_TO_F32(FI_I(vec_f), FI_I(uvec_f), h);
}
FI_FN FI_I(vec_f) FI_I(load_tail_f16)(const uint16_t *p, Py_ssize_t k, float fill) {
    float buf[FI_I(lanes_f)];
    Py_ssize_t j;
    for (j = 0; j < FI_I(lanes_f); j++) buf[j] = j < k ? fi_f16_to_f32(p[j]) : fill;
    return FI_I(load_f)(buf);
}
FI_FN FI_I(vec_f) FI_I(load_tail_bf16)(const uint16_t *p, Py_ssize_t k, float fill) {
    float buf[FI_I(lanes_f)];
    Py_ssize_t j;
    for (j = 0; j < FI_I(lanes_f); j++) buf[j] = j < k ? fi_bf16_to_f32(p[j]) : fill;
    return FI_I(load_f)(buf);
}
FI_FN FI_I(vec_d) FI_I(loadw_f16)(const uint16_t *p) {
    FI_I(hvec_d) h;
    memcpy(&h, p, sizeof h);
#if FI_HALF_HW
    {
        __m128i x = _mm_loadl_epi64((const __m128i *)(const void *)p);   /* 4 halves */
        return (FI_I(vec_d))_mm256_cvtps_pd(_mm_cvtph_ps(x));
    }
#else
    return __builtin_convertvector(FI_V_F16_TO_F32(FI_I(half_f), FI_I(uvec_h), h), FI_I(vec_d));
#endif
}
FI_FN FI_I(vec_d) FI_I(loadw_bf16)(const uint16_t *p) {
    FI_I(hvec_d) h;
    memcpy(&h, p, sizeof h);
    return __builtin_convertvector((FI_I(half_f))(__builtin_convertvector(h, FI_I(uvec_h)) << 16), FI_I(vec_d));
}
FI_FN FI_I(vec_d) FI_I(loadw_tail_f16)(const uint16_t *p, Py_ssize_t k, double fill) {
    double buf[FI_I(lanes_d)];
    Py_ssize_t j;
    for (j = 0; j < FI_I(lanes_d); j++) buf[j] = j < k ? (double)fi_f16_to_f32(p[j]) : fill;
    return FI_I(load_d)(buf);
}
FI_FN FI_I(vec_d) FI_I(loadw_tail_bf16)(const uint16_t *p, Py_ssize_t k, double fill) {
    double buf[FI_I(lanes_d)];
    Py_ssize_t j;
    for (j = 0; j < FI_I(lanes_d); j++) buf[j] = j < k ? (double)fi_bf16_to_f32(p[j]) : fill;
    return FI_I(load_d)(buf);
}
FI_FN FI_I(hvec) FI_I(to_bf16)(FI_I(vec_f) v) { return FI_V_F32_TO_BF16(FI_I(hvec), FI_I(uvec_f), v); }
FI_FN void FI_I(store_f16)(uint16_t *p, FI_I(vec_f) v) { FI_I(hvec) h = FI_I(to_f16)(v); memcpy(p, &h, sizeof h); }
FI_FN void FI_I(store_bf16)(uint16_t *p, FI_I(vec_f) v) { FI_I(hvec) h = FI_I(to_bf16)(v); memcpy(p, &h, sizeof h); }
FI_FN void FI_I(store_tail_f16)(uint16_t *p, Py_ssize_t k, FI_I(vec_f) v) {
    FI_I(hvec) h = FI_I(to_f16)(v);
    memcpy(p, &h, (size_t)k * sizeof(uint16_t));
}
FI_FN void FI_I(store_tail_bf16)(uint16_t *p, Py_ssize_t k, FI_I(vec_f) v) {
    FI_I(hvec) h = FI_I(to_bf16)(v);
    memcpy(p, &h, (size_t)k * sizeof(uint16_t));
}
/* Streaming stores of the half vector (FI_VBYTES / 2 bytes): 16 bytes in the AVX2 clone; the
   baseline's 8 bytes are written plainly. */
FI_FN void FI_I(stream_f16)(uint16_t *p, FI_I(vec_f) v) {
#if FI_VBYTES == 32 && defined(__SSE2__)
    FI_I(hvec) h = FI_I(to_f16)(v);
    __m128i x;
    memcpy(&x, &h, sizeof x);
    _mm_stream_si128((__m128i *)(void *)p, x);
#else
    FI_I(store_f16)(p, v);
#endif
}
FI_FN void FI_I(stream_bf16)(uint16_t *p, FI_I(vec_f) v) {
#if FI_VBYTES == 32 && defined(__SSE2__)
    FI_I(hvec) h = FI_I(to_bf16)(v);
    __m128i x;
    memcpy(&x, &h, sizeof x);
    _mm_stream_si128((__m128i *)(void *)p, x);
#else
    FI_I(store_bf16)(p, v);
#endif
}
FI_FN FI_I(vec_f) FI_I(narrow_odd_f)(FI_I(vec_d) lo, FI_I(vec_d) hi) {
    FI_I(half_f) a = FI_V_ROUND_ODD(FI_I(half_f), FI_I(ivec_h), FI_I(vec_d), FI_I(lvec_d), lo);
    FI_I(half_f) b = FI_V_ROUND_ODD(FI_I(half_f), FI_I(ivec_h), FI_I(vec_d), FI_I(lvec_d), hi);
#if FI_VBYTES == 32 && defined(__x86_64__)
    /* joined in registers: two 16-byte stores read back as one 32-byte load would stall the
       store forwarding (a third of the AVX2 clone's time in log_softmax into half out=) */
    return (FI_I(vec_f))_mm256_insertf128_ps(_mm256_castps128_ps256((__m128)a), (__m128)b, 1);
#else
    FI_I(vec_f) v;
    memcpy(&v, &a, sizeof a);
    memcpy((char *)&v + sizeof a, &b, sizeof b);
    return v;
#endif
}
/* Two double vectors -> the float vector whose float16 (bfloat16) rounding to nearest even is
   that of the doubles, rounded once: the plain float rounding, unless some lane lands exactly on
   a midpoint of the half grid (or, for float16, in its subnormal range, whose grid is coarser):
   only there can rounding twice differ from rounding once, and those vectors (rare) take the
   round-to-odd narrowing. Off the midpoints the two roundings agree: the midpoints are floats and
   rounding to float is monotone, so the double and its float lie on the same side of each. */
FI_FN FI_I(vec_f) FI_I(narrow_f16_f)(FI_I(vec_d) lo, FI_I(vec_d) hi) {
    FI_I(vec_f) f = FI_I(narrow_f)(lo, hi);
    FI_I(uvec_f) u = (FI_I(uvec_f))f, a = u & 0x7fffffffu;
    if (FI_I(any_f)((FI_I(mask_f))(((u & 0x1fffu) == 0x1000u) | ((a < 0x38800000u) & (a != 0u)))))
        return FI_I(narrow_odd_f)(lo, hi);
    return f;
}
FI_FN FI_I(vec_f) FI_I(narrow_bf16_f)(FI_I(vec_d) lo, FI_I(vec_d) hi) {
    FI_I(vec_f) f = FI_I(narrow_f)(lo, hi);
    FI_I(uvec_f) u = (FI_I(uvec_f))f;
    if (FI_I(any_f)((FI_I(mask_f))((u & 0xffffu) == 0x8000u)))
        return FI_I(narrow_odd_f)(lo, hi);
    return f;
}
/* as the AVX-512 clone's f16_safe / bf16_safe (the bits below the half significand against 100..0) */
#ifndef FI_HALF_MARGIN
#define FI_HALF_MARGIN 4u
#endif
FI_FN int FI_I(half_safe_)(FI_I(vec_f) f, uint32_t min_bits, uint32_t low_mask, uint32_t mid) {
    FI_I(uvec_f) u = (FI_I(uvec_f))f, a = u & 0x7fffffffu, l = (u & low_mask) - (mid - FI_HALF_MARGIN);
    return !FI_I(any_f)((FI_I(mask_f))((l <= 2u * FI_HALF_MARGIN) | (a < min_bits)));
}
FI_FN int FI_I(f16_safe)(FI_I(vec_f) f, uint32_t min_bits) { return FI_I(half_safe_)(f, min_bits, 0x1fffu, 0x1000u); }
FI_FN int FI_I(bf16_safe)(FI_I(vec_f) f, uint32_t min_bits) { return FI_I(half_safe_)(f, min_bits, 0xffffu, 0x8000u); }
FI_FN FI_I(vec_f) FI_I(min_f)(FI_I(vec_f) a, FI_I(vec_f) b) { return FI_I(select_f)(a < b, a, b); }
FI_FN float FI_I(hmin_f)(FI_I(vec_f) v) {
    float best = v[0];
    int j;
    for (j = 1; j < FI_I(lanes_f); j++)
        if (v[j] < best) best = v[j];
    return best;
}
FI_FN FI_I(vec_f) FI_I(log_f)(FI_I(vec_f) x) { return FI_V_LOG_F(FI_I(vec_f), FI_I(mask_f), x); }
#undef FI_HALF_HW
#endif

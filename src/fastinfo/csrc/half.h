/* fastinfo: float16 and bfloat16 elements of the dense kernels (included by vec.h).

   Half-precision arrays reach the kernels as their 16-bit patterns (uint16_t) and are widened
   to float32 in registers as they are loaded; every sum is then accumulated in double as for
   float32 input. Outputs in a half dtype are computed in double and rounded once, to nearest
   even, when they are stored.

   Widening is exact. float16 -> float32 without F16C: the exponent and mantissa bits shifted
   into float position read as a float 2^-112 times the value (subnormal halves become float
   subnormals), so one multiplication by 2^112 rescales every finite value exactly; exponent 31
   (inf, NaN) gets the float exponent 255. bfloat16 is the upper half of a float32: a 16-bit shift.

   Rounding once: a double is first rounded to float32 *to odd* (truncate, then set the last bit
   when inexact), then float32 -> half to nearest even. Rounding to odd with at least two extra
   bits (float32 keeps 24 bits, float16 11, bfloat16 8) makes the two steps equal to one correct
   rounding of the double (Boldo and Melquiond, "When double rounding is odd", 2005).
   float32 -> float16 without F16C follows the usual scheme (F. Giesen's float_to_half_fast3_rtne):
   magnitudes at or above 65536 go to inf, NaN stays a quiet NaN, magnitudes below 2^-14 (float16
   subnormals) are rounded by adding 0.5 (as a float, so the FPU rounds to nearest even), the rest
   by adding 0xfff plus the last kept bit to the float bits and shifting. */
#ifndef FASTINFO_HALF_H
#define FASTINFO_HALF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Element codes (as in _validation.py): 0 float32/float64 values, 1 float16, 2 bfloat16 bits. */
enum { FI_FLOAT16 = 1, FI_BFLOAT16 = 2 };

/* ---------------- scalars (heads, tails and the portable paths) ---------------- */

static inline __attribute__((always_inline)) float fi_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline __attribute__((always_inline)) uint32_t fi_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline __attribute__((always_inline)) float fi_f16_to_f32(uint16_t h)
{
    uint32_t em = (uint32_t)(h & 0x7fff) << 13;
    float f = fi_f32_from_bits(em) * 0x1p112f;
    uint32_t u = fi_f32_bits(f) | (em >= (0x7c00u << 13) ? 0x7f800000u : 0u);
    return fi_f32_from_bits(u | ((uint32_t)(h & 0x8000) << 16));
}

static inline __attribute__((always_inline)) float fi_bf16_to_f32(uint16_t h)
{
    return fi_f32_from_bits((uint32_t)h << 16);
}

/* The float32 nearest to d, rounded to odd (see above). */
static inline __attribute__((always_inline)) float fi_round_odd_f32(double d)
{
    float f = (float)d;
    uint32_t u = fi_f32_bits(f);
    double back = (double)f;
    if (back != d && d == d) {
        if (fabs(back) > fabs(d)) u -= 1;   /* rounded away from zero: step back (magnitude) */
        u |= 1;
    }
    return fi_f32_from_bits(u);
}

static inline __attribute__((always_inline)) uint16_t fi_f32_to_f16(float x)
{
    uint32_t u = fi_f32_bits(x), sign = (u >> 16) & 0x8000, a = u & 0x7fffffff, o;
    if (a >= 0x47800000u) {                      /* >= 65536, inf or NaN */
        o = a > 0x7f800000u ? 0x7e00u : 0x7c00u;
    } else if (a < 0x38800000u) {                /* below 2^-14: a float16 subnormal or 0 */
        o = fi_f32_bits(fi_f32_from_bits(a) + 0.5f) - fi_f32_bits(0.5f);
    } else {
        o = (a + 0xc8000fffu + ((a >> 13) & 1)) >> 13;   /* exponent rebased by -112 (mod 2^32) */
    }
    return (uint16_t)(o | sign);
}

static inline __attribute__((always_inline)) uint16_t fi_f32_to_bf16(float x)
{
    uint32_t u = fi_f32_bits(x);
    if ((u & 0x7fffffff) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static inline __attribute__((always_inline)) uint16_t fi_d_to_f16(double d) { return fi_f32_to_f16(fi_round_odd_f32(d)); }
static inline __attribute__((always_inline)) uint16_t fi_d_to_bf16(double d) { return fi_f32_to_bf16(fi_round_odd_f32(d)); }

/* ---------------- vectors: any lane count (GCC vector extensions, no ISA needed) ----------------
   UV: a uint32 vector of the float vector's lanes, IV the int32 one, HV the uint16 vector of as many
   lanes, LV an int64 vector of the double vector DV's lanes. Statement expressions, so that one
   definition serves every vector width. */

/* float16 bits (HV) -> float32 values (FV), exact. */
#define FI_V_F16_TO_F32(FV, UV, h) ({                                                        \
    UV w_ = __builtin_convertvector((h), UV);                                                \
    UV em_ = (w_ & 0x7fffu) << 13;                                                           \
    UV u_ = (UV)((FV)em_ * 0x1p112f) | ((UV)(em_ >= (0x7c00u << 13)) & 0x7f800000u);        \
    (FV)(u_ | ((w_ & 0x8000u) << 16)); })

/* bfloat16 bits (HV) -> float32 values (FV), exact. */
#define FI_V_BF16_TO_F32(FV, UV, h) ((FV)(__builtin_convertvector((h), UV) << 16))

/* double values (DV) -> the float32 (FV) nearest, rounded to odd. The residual r = d - (double)f
   is exact; its 64-bit patterns are narrowed to their low and high 32-bit words so that every mask
   is built on 32-bit lanes: r != 0 (inexact) and r of the other sign than f (f was rounded away
   from zero: step its magnitude back by one). An infinite f (d infinite, or beyond FLT_MAX, which
   rounds to inf in every half format too) and NaN are kept as they are. */
#define FI_V_ROUND_ODD(FV, IV, DV, LV, d) ({                                                 \
    DV d_ = (d);                                                                             \
    FV f_ = __builtin_convertvector(d_, FV);                                                 \
    LV r_ = (LV)(d_ - __builtin_convertvector(f_, DV));                                      \
    IV lo_ = __builtin_convertvector(r_, IV), hi_ = __builtin_convertvector(r_ >> 32, IV);   \
    IV u_ = (IV)f_;                                                                          \
    IV inexact_ = ((lo_ | (hi_ & 0x7fffffff)) != 0) & ((u_ & 0x7f800000) != 0x7f800000);      \
    IV up_ = inexact_ & ((hi_ ^ u_) < 0);                                                    \
    (FV)((u_ + up_) | (inexact_ & 1)); })

/* float32 values (FV) -> float16 bits (HV), to nearest even. */
#define FI_V_F32_TO_F16(HV, UV, IV, FV, x) ({                                                \
    UV u_ = (UV)(x), a_ = u_ & 0x7fffffffu, sign_ = (u_ >> 16) & 0x8000u;                   \
    UV big_ = (UV)(a_ > 0x7f800000u) & 0x7e00u;                                              \
    UV inf_ = (UV)(a_ <= 0x7f800000u) & 0x7c00u;                                             \
    UV sub_ = (UV)((FV)a_ + 0.5f) - 0x3f000000u;                                             \
    UV norm_ = (a_ + 0xc8000fffu + ((a_ >> 13) & 1u)) >> 13;                                 \
    IV is_big_ = (IV)(a_ >= 0x47800000u), is_sub_ = (IV)(a_ < 0x38800000u);                  \
    UV o_ = ((UV)is_big_ & (big_ | inf_)) | ((UV)(~is_big_ & is_sub_) & sub_)               \
          | ((UV)(~is_big_ & ~is_sub_) & norm_);                                             \
    __builtin_convertvector(o_ | sign_, HV); })

/* float32 values (FV) -> bfloat16 bits (HV), to nearest even; NaN stays a quiet NaN. */
#define FI_V_F32_TO_BF16(HV, UV, x) ({                                                       \
    UV u_ = (UV)(x);                                                                         \
    UV nan_ = (UV)((u_ & 0x7fffffffu) > 0x7f800000u);                                        \
    UV r_ = (u_ + 0x7fffu + ((u_ >> 16) & 1u)) >> 16;                                        \
    __builtin_convertvector((nan_ & ((u_ >> 16) | 0x40u)) | (~nan_ & r_), HV); })

/* Natural log of a finite normal float x > 0, lane-wise (other inputs: finite garbage; callers mask
   them and check for arguments below FLT_MIN). x = 2^k m with m in [sqrt(1/2), sqrt(2)) from the
   bits, f = m - 1 exact; log(1 + f) = f - f^2/2 + f^3 P(f) with Cephes' degree-8 P (S. L. Moshier,
   Cephes logf: relative error below 1e-7 on the range); k log 2 as k 0.693359375 (exact) plus
   k (-2.12194440e-4). Used for half-precision input, whose per-row results need 1e-6. */
#define FI_V_LOG_F(FV, IV, x) ({                                                             \
    IV u_ = (IV)(x);                                                                         \
    IV k_ = (u_ - 0x3f3504f3) >> 23;                                                         \
    FV f_ = (FV)(u_ - (k_ << 23)) - 1.0f;                                                    \
    FV z_ = f_ * f_;                                                                         \
    FV p_ = 7.0376836292e-2f * f_ - 1.1514610310e-1f;                                        \
    FV kf_ = __builtin_convertvector(k_, FV);                                                \
    p_ = p_ * f_ + 1.1676998740e-1f;                                                         \
    p_ = p_ * f_ - 1.2420140846e-1f;                                                         \
    p_ = p_ * f_ + 1.4249322787e-1f;                                                         \
    p_ = p_ * f_ - 1.6668057665e-1f;                                                         \
    p_ = p_ * f_ + 2.0000714765e-1f;                                                         \
    p_ = p_ * f_ - 2.4999993993e-1f;                                                         \
    p_ = p_ * f_ + 3.3333331174e-1f;                                                         \
    FV y_ = f_ * z_ * p_ + kf_ * -2.12194440e-4f - 0.5f * z_;                                \
    (f_ + y_) + kf_ * 0.693359375f; })

#endif /* FASTINFO_HALF_H */

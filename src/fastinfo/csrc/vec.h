/* fastinfo: the vector layer of the dense kernels (softmax.h, distributions.h).

   Each dense kernel is compiled once per instruction set ("clone") and per element type, and the
   clone is chosen at load time (fi_dense_select, called when _kernels is imported):
     v4    x86-64-v4 (AVX-512F/BW/DQ/VL): 16 float / 8 double lanes    simd_avx512.h
     v3    x86-64-v3 (AVX2 + FMA):         8 float / 4 double lanes    simd_generic.h, 32-byte vectors
     base  any CPU (SSE2 on x86-64):       4 float / 2 double lanes    simd_generic.h, 16-byte vectors
   Every clone defines the same small API (fi_<isa>_<op>_<f|d>: splat, loads and stores, masks,
   select, min/max, exp, log, widening float -> double; simd_half.h adds float16 / bfloat16 loads
   and stores), and a kernel body (softmax_rows.h,
   distributions_rows.h) is written once against that API and included once per (clone, type).
   The lane count sets the summation order, so results can differ in the last bits between clones
   (FASTINFO_ISA or another CPU), never between thread counts on one clone. */
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

#pragma GCC diagnostic ignored "-Wpsabi"

/* Everything a kernel calls is force-inlined, so that it is compiled for the kernel's clone. */
#define FI_INLINE static inline __attribute__((always_inline))

/* Names. A type-generic body is included with SFX (element-type suffix, f or d) and FI_ISA (clone:
   v4, v3 or base) defined: FI_T(fi_max) is fi_max_f, FI_K(fi_max) is fi_max_f_v4, and
   FI_V(exp) is the clone's primitive fi_v4_exp_f for the compute type CSFX. */
#define FI_CAT_(a, b) a##_##b
#define FI_CAT(a, b) FI_CAT_(a, b)
#define FI_T(name) FI_CAT(name, SFX)
#define FI_K(name) FI_CAT(FI_CAT(name, SFX), FI_ISA)
#define FI_I(name) FI_CAT(FI_CAT(fi, FI_ISA), name)
#define FI_V(op) FI_I(FI_CAT(op, CSFX))
#define FI_VD(op) FI_I(FI_CAT(op, d))

enum { FI_ISA_BASE = 0, FI_ISA_AVX2 = 1, FI_ISA_AVX512 = 2 };

/* The x86 clones need GCC >= 11 or Clang >= 14 (target("arch=x86-64-v4")); FI_NO_CLONES builds
   the portable baseline only. */
#if defined(__x86_64__) && !defined(FI_NO_CLONES) && (defined(__clang__) ? (__clang_major__ >= 14) : (__GNUC__ >= 11))
#define FI_X86_CLONES 1
#else
#define FI_X86_CLONES 0
#endif

/* Software prefetch for the streaming loops: FI_PREFETCH(p, bytes) asks for the lines of
   [p + fi_prefetch_ahead, + bytes), the data a loop iteration reading [p, p + bytes) will read
   fi_prefetch_ahead bytes later. On the Intel Xeon VMs this project runs on, the hardware
   prefetchers keep too few lines in flight for a loop that spends ~20 vector instructions per line:
   a one-thread exp-sum loop read 7.6 GB/s without and 14.0 GB/s with a 2 KiB lead (16.7 GB/s
   is a bare read loop's). A prefetch cannot fault, so reading ahead past the end of an array is
   harmless. fi_prefetch_ahead is set from Python (dense_set_prefetch) only to compare.
   FI_PREFETCH_LIGHT is for the light loops (a few instructions per line: the distributions' pass
   1 sums), with its own distance fi_prefetch_light: on AMD Zen 4 their hardware prefetch keeps up
   and a software one slows them (the float64 entropy of (4096, 32000), 2 threads: 58.7 ms without,
   62.5 ms with a 2 KiB lead; on Zen 4 the other loops run the same with and without, except the
   half-precision entropy table loop, 25.1 -> 21.0 ms with it), so it is 0 on AMD CPUs. */
static Py_ssize_t fi_prefetch_ahead = 2048;
static Py_ssize_t fi_prefetch_light = 2048;
FI_INLINE void fi_prefetch_at(const void *p, size_t bytes, Py_ssize_t ahead) {
    uintptr_t a = (uintptr_t)p + (uintptr_t)ahead;   /* an address, not a pointer past the end */
    size_t o;
    for (o = 0; o < bytes; o += 64) __builtin_prefetch((const void *)(a + o), 0, 3);
}
#define FI_PREFETCH(p, bytes) fi_prefetch_at((p), (bytes), fi_prefetch_ahead)
#define FI_PREFETCH_LIGHT(p, bytes) fi_prefetch_at((p), (bytes), fi_prefetch_light)
/* The light loops' default distance on this CPU (see above). */
static Py_ssize_t fi_prefetch_light_default(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_is("amd")) return 0;
#endif
    return 2048;
}

FI_INLINE double fi_from_bits(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }
FI_INLINE uint64_t fi_to_bits(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }

/* Elements to write one by one before y is aligned to `align` bytes for streaming stores
   (-1: impossible, the element size does not divide the misalignment; use plain stores). */
FI_INLINE Py_ssize_t fi_nt_head(const void *y, size_t itemsize, Py_ssize_t n, size_t align) {
    uintptr_t mis = (uintptr_t)y & (align - 1);
    Py_ssize_t k;
    if (mis % itemsize) return -1;
    k = mis ? (Py_ssize_t)((align - mis) / itemsize) : 0;
    return k < n ? k : n;
}

/* ---------------- the clones ---------------- */
#include "half.h"   /* float16 / bfloat16 scalars and the portable vector conversions */

#define FI_ISA base
#define FI_VBYTES 16
#define FI_FN FI_INLINE
#include "simd_generic.h"
#include "simd_half.h"
#undef FI_ISA
#undef FI_VBYTES
#undef FI_FN

#if FI_X86_CLONES
#define FI_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#define FI_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#define FI_ISA v3
#define FI_VBYTES 32
#define FI_FN FI_INLINE FI_TARGET_V3
#include "simd_generic.h"
#define FI_HALF_F16C 1   /* x86-64-v3 includes F16C */
#include "simd_half.h"
#undef FI_HALF_F16C
#undef FI_ISA
#undef FI_VBYTES
#undef FI_FN
#include "simd_avx512.h"
#define FI_HALF_V4 1
#include "simd_half.h"
#undef FI_HALF_V4
#endif

/* ---------------- which clone runs ---------------- */
/* The best clone this CPU can run. */
static int fi_cpu_isa(void) {
#if FI_X86_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
            && __builtin_cpu_supports("bmi2"))
        return FI_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
        return FI_ISA_AVX2;
#endif
    return FI_ISA_BASE;
}

static int fi_dense_isa = FI_ISA_BASE;

/* Use the clone `requested` (or the best below it that the CPU runs); returns the one in use. */
static int fi_dense_select(int requested) {
    int best = fi_cpu_isa();
    fi_dense_isa = requested < best ? requested : best;
    if (fi_dense_isa < FI_ISA_BASE) fi_dense_isa = FI_ISA_BASE;
    return fi_dense_isa;
}

static const char *fi_dense_isa_name(int isa) {
    return isa == FI_ISA_AVX512 ? "x86-64-v4 (AVX-512, 16 float / 8 double lanes)"
         : isa == FI_ISA_AVX2 ? "x86-64-v3 (AVX2+FMA, 8 float / 4 double lanes)"
         : "baseline (4 float / 2 double lanes)";
}

/* FI_DISPATCH(fi_max, args...) calls fi_max_SFX_<clone in use>(args...) */
#if FI_X86_CLONES
#define FI_DISPATCH(name, ...) (fi_dense_isa == FI_ISA_AVX512 ? FI_CAT(FI_T(name), v4)(__VA_ARGS__) : fi_dense_isa == FI_ISA_AVX2 ? FI_CAT(FI_T(name), v3)(__VA_ARGS__) : FI_CAT(FI_T(name), base)(__VA_ARGS__))
#else
#define FI_DISPATCH(name, ...) FI_CAT(FI_T(name), base)(__VA_ARGS__)
#endif

#endif /* FASTINFO_VEC_H */

# Section of _kernels.pyx: softmax family kernels (logits).
#
# Input: logits as a C-contiguous (rows, C) array, C >= 1, the class axis last (the front-ends in
# _softmax.py move it there); the front-ends allocate every output. Float32 or float64 (fused),
# double accumulators. Method: per row, an online max and rescaled sum-exp over blocks that fit in
# L1 (so the row is read from memory once), then, for elementwise outputs (log_softmax, softmax,
# the cross-entropy gradient), one write pass while the row is in cache. softmax keeps the exps of
# the sum pass in a per-thread scratch row and its write pass only rescales them per block (rows up
# to 131072 elements; longer rows compute exp again in the write pass). Per-row results only;
# reductions over rows are done by the caller in a fixed order, so any thread count gives the
# same bits.
#
# exp: glibc's scalar exp does not vectorise, so the C block below has its own 8-lane exp for
# arguments t <= 0 (the only ones softmax needs: t = (x - max) / T), in float32 for float32 input
# (minimax degree 6 on |r| <= ln2/2: error below 4e-9 relative, so about 1 ulp with rounding)
# and float64 for float64 input (degree 13: truncation below 1e-17 relative). Results below the
# normal range (t < -87 in float32, t < -708 in float64) are 0. The block functions are compiled
# three times (baseline x86-64, x86-64-v3 = AVX2+FMA, x86-64-v4 = AVX-512, whose 32 vector
# registers keep the unrolled exp loops free of spills: about 10% less time in the sum-exp pass)
# and picked at load time. FMA contraction may differ between those levels (last-bit differences
# between machines); on one machine results do not depend on the thread count.
#
# One source for both types: the row functions are written once, as C preprocessor templates
# (FI_DEFINE_VECTOR_OPS, FI_DEFINE_ROW_KERNELS) instantiated for float (suffix _f) and double
# (suffix _d); only the two exp polynomials are written per type. The C block is a raw string
# (r""") so the macros' line continuations reach the C compiler.

cdef extern from *:
    r"""
    #include <math.h>
    #include <string.h>
    #include <stdint.h>

    #if !defined(__GNUC__)
    #error "fastinfo's softmax kernels use GCC/Clang vector extensions"
    #endif

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

    static inline __attribute__((always_inline)) fi_v8d fi_load_v8d(const double *p) {
        fi_v8d v; memcpy(&v, p, sizeof v); return v;
    }
    static inline __attribute__((always_inline)) fi_v4d fi_load_v4d(const double *p) {
        fi_v4d v; memcpy(&v, p, sizeof v); return v;
    }

    /* ---------------- the row kernels, written once for both element types ----------------
       FI_DEFINE_VECTOR_OPS and FI_DEFINE_ROW_KERNELS are templates: SFX is the name suffix (f or d),
       FT the element type, FV / IV its vector and same-width integer vector, LANES the lanes of FV,
       DV a double vector of LANES lanes (accumulated with ADD, weights loaded with LOADW), TOD / FROMD
       convert FV to DV and back, EXP_LO is where fi_exp_SFX flushes to 0, FUSED the condition under
       which fi_write_logsoftmax_SFX may use one FMA. Only the exp polynomials are written per type. */
    #define FI_ID(v) (v)

    #define FI_DEFINE_VECTOR_OPS(SFX, FT, FV, IV, LANES)                                                                    \
    static inline __attribute__((always_inline)) FV fi_splat_##SFX(FT c) { FV v = {0}; return v + c; }                      \
    static inline __attribute__((always_inline)) FV fi_select_##SFX(IV mask, FV a, FV b) {                                  \
        return (FV)((mask & (IV)a) | (~mask & (IV)b));                                                                      \
    }                                                                                                                       \
    static inline __attribute__((always_inline)) FV fi_load_##SFX(const FT *p) { FV v; memcpy(&v, p, sizeof v); return v; } \
    static inline __attribute__((always_inline)) void fi_store_##SFX(FT *p, FV v) { memcpy(p, &v, sizeof v); }              \
    /* The first k (< LANES) elements of p, the other lanes set to fill. */                                                 \
    static inline __attribute__((always_inline)) FV fi_load_tail_##SFX(const FT *p, Py_ssize_t k, FT fill) {                \
        FT buf[LANES]; Py_ssize_t j;                                                                                        \
        for (j = 0; j < LANES; j++) buf[j] = j < k ? p[j] : fill;                                                           \
        return fi_load_##SFX(buf);                                                                                          \
    }                                                                                                                       \
    static inline __attribute__((always_inline)) void fi_store_tail_##SFX(FT *p, Py_ssize_t k, FV v) {                      \
        FT buf[LANES]; Py_ssize_t j;                                                                                        \
        fi_store_##SFX(buf, v);                                                                                             \
        for (j = 0; j < k; j++) p[j] = buf[j];                                                                              \
    }

    FI_DEFINE_VECTOR_OPS(f, float, fi_v8f, fi_v8i, 8)
    FI_DEFINE_VECTOR_OPS(d, double, fi_v4d, fi_v4l, 4)

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

    #define FI_DEFINE_ROW_KERNELS(SFX, FT, FV, IV, DV, LANES, ADD, LOADW, TOD, FROMD, EXP_LO, FUSED)                            \
    /* max(x[0:n]) ignoring NaN (-inf when there is none). NaN is otherwise detected by the sums                                \
       it turns into NaN; only a block without any number above -inf is searched for NaN here                                   \
       (sets *nan_seen), since its sum is skipped. */                                                                           \
    FI_CLONES static double fi_max_##SFX(const FT *x, Py_ssize_t n, int *nan_seen) {                                            \
        FV m0 = fi_splat_##SFX(-INFINITY), m1 = m0, m2 = m0, m3 = m0, v;                                                        \
        Py_ssize_t i = 0;                                                                                                       \
        FT best = -INFINITY;                                                                                                    \
        int j;                                                                                                                  \
        for (; i + 4 * LANES <= n; i += 4 * LANES) {                                                                            \
            v = fi_load_##SFX(x + i);                                                                                           \
            m0 = fi_select_##SFX(v > m0, v, m0);                                                                                \
            v = fi_load_##SFX(x + i + LANES);                                                                                   \
            m1 = fi_select_##SFX(v > m1, v, m1);                                                                                \
            v = fi_load_##SFX(x + i + 2 * LANES);                                                                               \
            m2 = fi_select_##SFX(v > m2, v, m2);                                                                                \
            v = fi_load_##SFX(x + i + 3 * LANES);                                                                               \
            m3 = fi_select_##SFX(v > m3, v, m3);                                                                                \
        }                                                                                                                       \
        for (; i < n; i++)                                                                                                      \
            if (x[i] > best) best = x[i];                                                                                       \
        for (j = 0; j < LANES; j++) {                                                                                           \
            if (m0[j] > best) best = m0[j];                                                                                     \
            if (m1[j] > best) best = m1[j];                                                                                     \
            if (m2[j] > best) best = m2[j];                                                                                     \
            if (m3[j] > best) best = m3[j];                                                                                     \
        }                                                                                                                       \
        if (best == -INFINITY)                                                                                                  \
            for (i = 0; i < n; i++)                                                                                             \
                if (x[i] != x[i]) *nan_seen = 1;                                                                                \
        return (double)best;                                                                                                    \
    }                                                                                                                           \
                                                                                                                                \
    /* sum of exp((x - m) * s) over x[0:n], accumulated in double lanes in a fixed order; two                                   \
       exps are added in the element type first (one rounding of a two-term sum: at most half an ulp relative). */              \
    static inline __attribute__((always_inline)) double fi_sumexp_body_##SFX(const FT *x, Py_ssize_t n, FT m, FT s,             \
                                                                           int scaled) {                                        \
        const FV vm = fi_splat_##SFX(m), vs = fi_splat_##SFX(s);                                                                \
        fi_v4d acc0[2] = {{0}}, acc1[2] = {{0}};                                                                                \
        Py_ssize_t i = 0;                                                                                                       \
        for (; i + 4 * LANES <= n; i += 4 * LANES) {                                                                            \
            FV t0 = fi_load_##SFX(x + i) - vm, t1 = fi_load_##SFX(x + i + LANES) - vm;                                          \
            FV t2 = fi_load_##SFX(x + i + 2 * LANES) - vm, t3 = fi_load_##SFX(x + i + 3 * LANES) - vm;                          \
            if (scaled) { t0 *= vs; t1 *= vs; t2 *= vs; t3 *= vs; }                                                             \
            ADD(acc0, TOD(fi_exp_##SFX(t0) + fi_exp_##SFX(t1)));                                                                \
            ADD(acc1, TOD(fi_exp_##SFX(t2) + fi_exp_##SFX(t3)));                                                                \
        }                                                                                                                       \
        for (; i < n; i += LANES) {                                                                                             \
            FV v = (n - i >= LANES) ? fi_load_##SFX(x + i) : fi_load_tail_##SFX(x + i, n - i, -INFINITY);                       \
            ADD(acc0, TOD(fi_exp_##SFX((v - vm) * vs)));                                                                        \
        }                                                                                                                       \
        return fi_sum8d(acc0) + fi_sum8d(acc1);                                                                                 \
    }                                                                                                                           \
    FI_CLONES static double fi_sumexp_##SFX(const FT *x, Py_ssize_t n, FT m, FT s) {                                            \
        return s == (FT)1 ? fi_sumexp_body_##SFX(x, n, m, s, 0) : fi_sumexp_body_##SFX(x, n, m, s, 1);                          \
    }                                                                                                                           \
                                                                                                                                \
    /* S = sum e^t and U = sum e^t * t with t = (x - m) * s (softmax entropy = log S - U/S). */                                 \
    FI_CLONES static void fi_sumexp_ent_##SFX(const FT *x, Py_ssize_t n, FT m, FT s, double *S, double *U) {                    \
        const FV vm = fi_splat_##SFX(m), vs = fi_splat_##SFX(s), lo = fi_splat_##SFX((FT)EXP_LO);                               \
        fi_v4d accS[2] = {{0}}, accU[2] = {{0}};                                                                                \
        Py_ssize_t i = 0;                                                                                                       \
        for (; i < n; i += LANES) {                                                                                             \
            FV v = (n - i >= LANES) ? fi_load_##SFX(x + i) : fi_load_tail_##SFX(x + i, n - i, -INFINITY);                       \
            FV t = (v - vm) * vs;                                                                                               \
            FV e = fi_exp_##SFX(t);                                                                                             \
            t = fi_select_##SFX(t < lo, lo, t);   /* e = 0 there: 0 * lo, not 0 * -inf */                                       \
            ADD(accS, TOD(e));                                                                                                  \
            ADD(accU, TOD(e) * TOD(t));                                                                                         \
        }                                                                                                                       \
        *S = fi_sum8d(accS);                                                                                                    \
        *U = fi_sum8d(accU);                                                                                                    \
    }                                                                                                                           \
                                                                                                                                \
    /* Sa = sum e^ta, Sb = sum e^tb, U = sum e^ta * (a - b) * s, ta = (a - ma) s, tb = (b - mb) s. */                           \
    FI_CLONES static void fi_sumexp_kl_##SFX(const FT *a, const FT *b, Py_ssize_t n, FT ma, FT mb, FT s,                        \
                                           double *Sa, double *Sb, double *U) {                                                 \
        const FV vma = fi_splat_##SFX(ma), vmb = fi_splat_##SFX(mb), vs = fi_splat_##SFX(s);                                    \
        const FV lo = fi_splat_##SFX((FT)EXP_LO), zero = fi_splat_##SFX((FT)0);                                                 \
        fi_v4d accA[2] = {{0}}, accB[2] = {{0}}, accU[2] = {{0}};                                                               \
        Py_ssize_t i = 0;                                                                                                       \
        for (; i < n; i += LANES) {                                                                                             \
            FV va, vb, ta, ea, eb, d;                                                                                           \
            if (n - i >= LANES) { va = fi_load_##SFX(a + i); vb = fi_load_##SFX(b + i); }                                       \
            else { va = fi_load_tail_##SFX(a + i, n - i, -INFINITY); vb = fi_load_tail_##SFX(b + i, n - i, -INFINITY); }        \
            ta = (va - vma) * vs;                                                                                               \
            ea = fi_exp_##SFX(ta);                                                                                              \
            eb = fi_exp_##SFX((vb - vmb) * vs);                                                                                 \
            d = fi_select_##SFX(ta < lo, zero, va - vb);  /* p = 0 contributes 0, also where a = b = -inf */                    \
            ADD(accA, TOD(ea));                                                                                                 \
            ADD(accB, TOD(eb));                                                                                                 \
            ADD(accU, TOD(ea) * TOD(d));                                                                                        \
        }                                                                                                                       \
        *Sa = fi_sum8d(accA);                                                                                                   \
        *Sb = fi_sum8d(accB);                                                                                                   \
        *U = fi_sum8d(accU) * (double)s;                                                                                        \
    }                                                                                                                           \
                                                                                                                                \
    /* Store one vector of an output row: streaming when nt (the caller checked alignment). */                                  \
    static inline __attribute__((always_inline)) void fi_store_out_##SFX(FT *p, FV v, int nt) {                                 \
        if (nt) fi_store_nt_##SFX(p, v);                                                                                        \
        else fi_store_##SFX(p, v);                                                                                              \
    }                                                                                                                           \
                                                                                                                                \
    /* How many leading elements of y[0:n] to write one by one, and whether to stream the rest. */                              \
    static inline Py_ssize_t fi_out_head_##SFX(FT *y, Py_ssize_t n, int *nt) {                                                  \
        Py_ssize_t head = *nt ? fi_nt_head(y, sizeof(FT), n) : -1;                                                              \
        if (head < 0) { *nt = 0; return 0; }                                                                                    \
        return head;                                                                                                            \
    }                                                                                                                           \
                                                                                                                                \
    /* y = (x - m) * s - c, computed in double and rounded once. y may be x (in place).                                         \
       FUSED (a condition on m, s): x * s - (m * s + c) in one FMA, used when m * s + c is small enough that its                \
       rounding in double is far below the result's precision. nt: streaming stores. */                                         \
    FI_CLONES static void fi_write_logsoftmax_##SFX(const FT *x, FT *y, Py_ssize_t n, double m, double s, double c,             \
                                                  int nt) {                                                                     \
        Py_ssize_t i, head = fi_out_head_##SFX(y, n, &nt);                                                                      \
        for (i = 0; i < head; i++) y[i] = (FT)(((double)x[i] - m) * s - c);                                                     \
        if (FUSED) {                                                                                                            \
            const double mc = m * s + c;                                                                                        \
            for (; i + LANES <= n; i += LANES)                                                                                  \
                fi_store_out_##SFX(y + i, FROMD(TOD(fi_load_##SFX(x + i)) * s - mc), nt);                                       \
        } else {                                                                                                                \
            for (; i + LANES <= n; i += LANES)                                                                                  \
                fi_store_out_##SFX(y + i, FROMD((TOD(fi_load_##SFX(x + i)) - m) * s - c), nt);                                  \
        }                                                                                                                       \
        for (; i < n; i++) y[i] = (FT)(((double)x[i] - m) * s - c);                                                             \
        if (nt) fi_nt_fence();                                                                                                  \
    }                                                                                                                           \
                                                                                                                                \
    /* y = exp((x - m) * s) * inv_S. y may be x (in place). nt: streaming stores. */                                            \
    FI_CLONES static void fi_write_softmax_##SFX(const FT *x, FT *y, Py_ssize_t n, FT m, FT s, double inv_S, int nt) {          \
        const FV vm = fi_splat_##SFX(m), vs = fi_splat_##SFX(s);                                                                \
        Py_ssize_t i, head = fi_out_head_##SFX(y, n, &nt);                                                                      \
        for (i = 0; i < head; i++) y[i] = (FT)(exp(((double)x[i] - (double)m) * (double)s) * inv_S);                            \
        for (; i + LANES <= n; i += LANES) {                                                                                    \
            DV e = TOD(fi_exp_##SFX((fi_load_##SFX(x + i) - vm) * vs)) * inv_S;                                                 \
            fi_store_out_##SFX(y + i, FROMD(e), nt);                                                                            \
        }                                                                                                                       \
        if (i < n) {                                                                                                            \
            DV e = TOD(fi_exp_##SFX((fi_load_tail_##SFX(x + i, n - i, -INFINITY) - vm) * vs)) * inv_S;                          \
            fi_store_tail_##SFX(y + i, n - i, FROMD(e));                                                                        \
        }                                                                                                                       \
        if (nt) fi_nt_fence();                                                                                                  \
    }                                                                                                                           \
                                                                                                                                \
    /* e = exp((x - m) * s) written to y[0:n] (a scratch row; y may also be x: each vector is read first),                      \
       and sum e returned, added as in fi_sumexp (softmax: the write pass then only rescales them). */                          \
    FI_CLONES static double fi_sumexp_store_##SFX(const FT *x, FT *y, Py_ssize_t n, FT m, FT s) {                               \
        const FV vm = fi_splat_##SFX(m), vs = fi_splat_##SFX(s);                                                                \
        fi_v4d acc0[2] = {{0}}, acc1[2] = {{0}};                                                                                \
        Py_ssize_t i = 0;                                                                                                       \
        for (; i + 4 * LANES <= n; i += 4 * LANES) {                                                                            \
            FV e0 = fi_exp_##SFX((fi_load_##SFX(x + i) - vm) * vs);                                                             \
            FV e1 = fi_exp_##SFX((fi_load_##SFX(x + i + LANES) - vm) * vs);                                                     \
            FV e2 = fi_exp_##SFX((fi_load_##SFX(x + i + 2 * LANES) - vm) * vs);                                                 \
            FV e3 = fi_exp_##SFX((fi_load_##SFX(x + i + 3 * LANES) - vm) * vs);                                                 \
            fi_store_##SFX(y + i, e0);                                                                                          \
            fi_store_##SFX(y + i + LANES, e1);                                                                                  \
            fi_store_##SFX(y + i + 2 * LANES, e2);                                                                              \
            fi_store_##SFX(y + i + 3 * LANES, e3);                                                                              \
            ADD(acc0, TOD(e0 + e1));                                                                                            \
            ADD(acc1, TOD(e2 + e3));                                                                                            \
        }                                                                                                                       \
        for (; i < n; i += LANES) {                                                                                             \
            FV v = (n - i >= LANES) ? fi_load_##SFX(x + i) : fi_load_tail_##SFX(x + i, n - i, -INFINITY);                       \
            FV e = fi_exp_##SFX((v - vm) * vs);                                                                                 \
            if (n - i >= LANES) fi_store_##SFX(y + i, e);                                                                       \
            else fi_store_tail_##SFX(y + i, n - i, e);                                                                          \
            ADD(acc0, TOD(e));                                                                                                  \
        }                                                                                                                       \
        return fi_sum8d(acc0) + fi_sum8d(acc1);                                                                                 \
    }                                                                                                                           \
                                                                                                                                \
    /* y = e * f in double, rounded once (y may be e). nt: streaming stores. */                                                 \
    FI_CLONES static void fi_scale_##SFX(const FT *e, FT *y, Py_ssize_t n, double f, int nt) {                                  \
        Py_ssize_t i, head = fi_out_head_##SFX(y, n, &nt);                                                                      \
        for (i = 0; i < head; i++) y[i] = (FT)((double)e[i] * f);                                                               \
        for (; i + LANES <= n; i += LANES)                                                                                      \
            fi_store_out_##SFX(y + i, FROMD(TOD(fi_load_##SFX(e + i)) * f), nt);                                                \
        for (; i < n; i++) y[i] = (FT)((double)e[i] * f);                                                                       \
        if (nt) fi_nt_fence();                                                                                                  \
    }                                                                                                                           \
                                                                                                                                \
    /* The target weights u_j = (w ? w_j : 1) * (q ? qa * q_j + qb : 1) of one full vector at i. */                             \
    static inline __attribute__((always_inline)) DV fi_target_u_##SFX(const FT *q, const double *w, Py_ssize_t i,               \
                                                                    double qa, double qb) {                                     \
        DV u = {0};                                                                                                             \
        u = u + 1.0;                                                                                                            \
        if (w) u = LOADW(w + i);                                                                                                \
        if (q) u = u * (TOD(fi_load_##SFX(q + i)) * qa + qb);                                                                   \
        return u;                                                                                                               \
    }                                                                                                                           \
    static inline double fi_target_u1_##SFX(const FT *q, const double *w, Py_ssize_t i, double qa, double qb) {                 \
        double u = w ? w[i] : 1.0;                                                                                              \
        return q ? u * ((double)q[i] * qa + qb) : u;                                                                            \
    }                                                                                                                           \
                                                                                                                                \
    /* g = alpha * exp((x - m) * s) - beta * u (u as in fi_target_u). g may be x. nt: streaming stores. */                      \
    FI_CLONES static void fi_write_grad_##SFX(const FT *x, const FT *q, const double *w, FT *g, Py_ssize_t n,                   \
                                            FT m, FT s, double alpha, double beta, double qa, double qb, int nt) {              \
        const FV vm = fi_splat_##SFX(m), vs = fi_splat_##SFX(s);                                                                \
        Py_ssize_t i, j, head = fi_out_head_##SFX(g, n, &nt);                                                                   \
        for (i = 0; i < head; i++)                                                                                              \
            g[i] = (FT)(alpha * exp(((double)x[i] - (double)m) * (double)s)                                                     \
                        - (beta != 0.0 ? beta * fi_target_u1_##SFX(q, w, i, qa, qb) : 0.0));                                    \
        if (beta == 0.0) {                                                                                                      \
            for (; i + LANES <= n; i += LANES)                                                                                  \
                fi_store_out_##SFX(g + i, FROMD(TOD(fi_exp_##SFX((fi_load_##SFX(x + i) - vm) * vs)) * alpha), nt);              \
        } else {                                                                                                                \
            for (; i + LANES <= n; i += LANES) {                                                                                \
                DV r = TOD(fi_exp_##SFX((fi_load_##SFX(x + i) - vm) * vs)) * alpha - beta * fi_target_u_##SFX(q, w, i, qa, qb); \
                fi_store_out_##SFX(g + i, FROMD(r), nt);                                                                        \
            }                                                                                                                   \
        }                                                                                                                       \
        if (i < n) {                                                                                                            \
            FT buf[LANES];                                                                                                      \
            fi_store_##SFX(buf, fi_exp_##SFX((fi_load_tail_##SFX(x + i, n - i, -INFINITY) - vm) * vs));                         \
            for (j = 0; i + j < n; j++)                                                                                         \
                g[i + j] = (FT)(alpha * (double)buf[j] - (beta != 0.0 ? beta * fi_target_u1_##SFX(q, w, i + j, qa, qb) : 0.0)); \
        }                                                                                                                       \
        if (nt) fi_nt_fence();                                                                                                  \
    }                                                                                                                           \
                                                                                                                                \
    /* sum_u = sum u_j and sum_ud = sum u_j * (m - x_j) (u as in fi_target_u). */                                               \
    FI_CLONES static void fi_dots_##SFX(const FT *x, const FT *q, const double *w, Py_ssize_t n, double m,                      \
                                      double qa, double qb, double *sum_u, double *sum_ud) {                                    \
        fi_v4d accU[2] = {{0}}, accD[2] = {{0}};                                                                                \
        Py_ssize_t i = 0;                                                                                                       \
        double su, sd;                                                                                                          \
        for (; i + LANES <= n; i += LANES) {                                                                                    \
            DV u = fi_target_u_##SFX(q, w, i, qa, qb);                                                                          \
            ADD(accU, u);                                                                                                       \
            ADD(accD, u * (m - TOD(fi_load_##SFX(x + i))));                                                                     \
        }                                                                                                                       \
        su = fi_sum8d(accU);                                                                                                    \
        sd = fi_sum8d(accD);                                                                                                    \
        for (; i < n; i++) {                                                                                                    \
            double u = fi_target_u1_##SFX(q, w, i, qa, qb);                                                                     \
            su += u;                                                                                                            \
            sd += u * (m - (double)x[i]);                                                                                       \
        }                                                                                                                       \
        *sum_u = su;                                                                                                            \
        *sum_ud = sd;                                                                                                           \
    }

    /* float: 8 lanes, double accumulators as two 4-lane halves; double: 4 lanes. */
    FI_DEFINE_ROW_KERNELS(f, float, fi_v8f, fi_v8i, fi_v8d, 8, fi_add8d, fi_load_v8d, FI_TOD_F, FI_FROMD_F,
                          -87.0f, fabs(m * s) < 1048576.0)
    FI_DEFINE_ROW_KERNELS(d, double, fi_v4d, fi_v4l, fi_v4d, 4, fi_add4d, fi_load_v4d, FI_ID, FI_ID,
                          -708.0, 0)

    """
    double fi_max_f(const float *x, Py_ssize_t n, int *nan_seen) nogil
    double fi_max_d(const double *x, Py_ssize_t n, int *nan_seen) nogil
    double fi_sumexp_f(const float *x, Py_ssize_t n, float m, float s) nogil
    double fi_sumexp_d(const double *x, Py_ssize_t n, double m, double s) nogil
    void fi_sumexp_ent_f(const float *x, Py_ssize_t n, float m, float s, double *S, double *U) nogil
    void fi_sumexp_ent_d(const double *x, Py_ssize_t n, double m, double s, double *S, double *U) nogil
    void fi_sumexp_kl_f(const float *a, const float *b, Py_ssize_t n, float ma, float mb, float s,
                        double *Sa, double *Sb, double *U) nogil
    void fi_sumexp_kl_d(const double *a, const double *b, Py_ssize_t n, double ma, double mb, double s,
                        double *Sa, double *Sb, double *U) nogil
    void fi_write_logsoftmax_f(const float *x, float *y, Py_ssize_t n, double m, double s, double c, int nt) nogil
    void fi_write_logsoftmax_d(const double *x, double *y, Py_ssize_t n, double m, double s, double c, int nt) nogil
    void fi_write_softmax_f(const float *x, float *y, Py_ssize_t n, float m, float s, double inv_S, int nt) nogil
    void fi_write_softmax_d(const double *x, double *y, Py_ssize_t n, double m, double s, double inv_S, int nt) nogil
    double fi_sumexp_store_f(const float *x, float *y, Py_ssize_t n, float m, float s) nogil
    double fi_sumexp_store_d(const double *x, double *y, Py_ssize_t n, double m, double s) nogil
    void fi_scale_f(const float *e, float *y, Py_ssize_t n, double f, int nt) nogil
    void fi_scale_d(const double *e, double *y, Py_ssize_t n, double f, int nt) nogil
    void fi_write_grad_f(const float *x, const float *q, const double *w, float *g, Py_ssize_t n,
                         float m, float s, double alpha, double beta, double qa, double qb, int nt) nogil
    void fi_write_grad_d(const double *x, const double *q, const double *w, double *g, Py_ssize_t n,
                         double m, double s, double alpha, double beta, double qa, double qb, int nt) nogil
    void fi_dots_f(const float *x, const float *q, const double *w, Py_ssize_t n, double m,
                   double qa, double qb, double *sum_u, double *sum_ud) nogil
    void fi_dots_d(const double *x, const double *q, const double *w, Py_ssize_t n, double m,
                   double qa, double qb, double *sum_u, double *sum_ud) nogil


# Rows are processed in blocks of this many elements (8 KiB of float32, 16 KiB of float64):
# a block is read from memory once for its max and then again from L1 for its exp-sum.
cdef enum:
    _SOFTMAX_BLOCK = 2048

cdef enum:
    _ROW_FINITE = 0    # finite max: m and log_S are set
    _ROW_NAN = 1       # a NaN in the row
    _ROW_POSINF = 2    # +inf in the row (logsumexp +inf, everything else NaN)
    _ROW_NEGINF = 3    # every element -inf, or an empty row (logsumexp -inf)


cdef struct RowLSE:
    double m        # max of the row (of x, not of x/T)
    double log_S    # log sum exp((x - m) / T); logsumexp(x / T) = m / T + log_S
    int status


cdef inline double _block_max(const floating *x, Py_ssize_t n, int *nan_seen) noexcept nogil:
    if floating is float:
        return fi_max_f(x, n, nan_seen)
    else:
        return fi_max_d(x, n, nan_seen)


cdef inline int _threads_for_rows(Py_ssize_t n_rows, Py_ssize_t n) noexcept nogil:
    """OpenMP threads for n_rows rows of n elements: one below ~64k elements, where waking a
    team costs more than it saves."""
    if n_rows * n < 65536:
        return 1
    return num_threads_for(n_rows)


cdef Py_ssize_t _stream_min_bytes = 64 << 20


def softmax_set_stream_min_bytes(Py_ssize_t n_bytes):
    """Set the output size above which elementwise outputs use streaming stores; returns the old
    value (for tests, which exercise both store paths on small arrays)."""
    global _stream_min_bytes
    old = _stream_min_bytes
    _stream_min_bytes = n_bytes
    return old


cdef inline int _stream_output(Py_ssize_t n_rows, Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    """Streaming stores for elementwise outputs over 64 MiB (far beyond the caches), where the
    output is not going to be read back from cache anyway."""
    return n_rows * n * itemsize > _stream_min_bytes


cdef inline Py_ssize_t _block_len(Py_ssize_t start, Py_ssize_t n) noexcept nogil:
    return _SOFTMAX_BLOCK if n - start > _SOFTMAX_BLOCK else n - start


cdef inline bint _has_nan(const floating *x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        if x[j] != x[j]:
            return True
    return False


cdef inline RowLSE _row_lse(const floating *x, Py_ssize_t n, double s) noexcept nogil:
    """Online max and rescaled sum-exp of one row: when a block raises the running max M,
    the sum so far is multiplied by exp((M_old - M_new) s). A NaN makes the sum NaN (blocks
    that are skipped report NaN through nan_seen); only a row holding +inf is searched again."""
    cdef RowLSE res
    cdef double M = -INFINITY, S = 0.0, bm
    cdef int nan_seen = 0
    cdef Py_ssize_t start = 0, length
    res.m = NAN
    res.log_S = NAN
    while start < n:
        length = _block_len(start, n)
        bm = _block_max(x + start, length, &nan_seen)
        if bm > M:
            if S > 0.0:
                S = S * exp((M - bm) * s)
            M = bm
        if -INFINITY < M < INFINITY:
            if floating is float:
                S += fi_sumexp_f(x + start, length, <float>M, <float>s)
            else:
                S += fi_sumexp_d(x + start, length, M, s)
        start += length
    if nan_seen or S != S or (M == INFINITY and _has_nan(x, n)):
        res.status = _ROW_NAN
    elif M == INFINITY:
        res.status = _ROW_POSINF
    elif M == -INFINITY:
        res.status = _ROW_NEGINF
    else:
        res.status = _ROW_FINITE
        res.m = M
        res.log_S = log(S)
    return res


cdef inline void _fill_row(floating *y, Py_ssize_t n, double value) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        y[j] = <floating>value


def softmax_logsumexp(const floating[:, ::1] x, double[::1] out):
    """out[i] = logsumexp(x[i, :]). x: (rows, C >= 1) C-contiguous; out: (rows,) float64."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    cdef RowLSE r
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            r = _row_lse(&x[i, 0], n, 1.0)
            if r.status == _ROW_FINITE:
                out[i] = r.m + r.log_S
            elif r.status == _ROW_POSINF:
                out[i] = INFINITY
            elif r.status == _ROW_NEGINF:
                out[i] = -INFINITY
            else:
                out[i] = NAN


cdef enum:
    # softmax rows of up to this many blocks (131072 elements) keep their exps from the sum pass
    _SOFTMAX_STORE_BLOCKS = 64


cdef inline void _row_softmax(const floating *x, floating *y, Py_ssize_t n, double s, floating *scratch,
                              int stream) noexcept nogil:
    """y = softmax(x s) for a row of at most _SOFTMAX_STORE_BLOCKS blocks; y may be x.
    The sum pass writes each block's exps e = exp((x - M_k) s) into a thread's scratch row
    (which stays in L2, so y is written once, without being read for ownership), M_k the
    running max when the block was summed; the write pass multiplies block k by
    exp((M_k - M) s) / S in double: one exp per element instead of two (for the blocks at the
    final max the factor is 1 / S, as in fi_write_softmax). A block that was all -inf when
    summed is skipped there and set to 0 here."""
    cdef double block_m[_SOFTMAX_STORE_BLOCKS]
    cdef double M = -INFINITY, S = 0.0, bm, inv_S
    cdef int nan_seen = 0
    cdef Py_ssize_t start = 0, length, k = 0
    while start < n:
        length = _block_len(start, n)
        bm = _block_max(x + start, length, &nan_seen)
        if bm > M:
            if S > 0.0:
                S = S * exp((M - bm) * s)
            M = bm
        if -INFINITY < M < INFINITY:
            if floating is float:
                S += fi_sumexp_store_f(x + start, scratch + start, length, <float>M, <float>s)
            else:
                S += fi_sumexp_store_d(x + start, scratch + start, length, M, s)
        block_m[k] = M
        k += 1
        start += length
    if nan_seen or S != S or not (-INFINITY < M < INFINITY):
        _fill_row(y, n, NAN)
        return
    inv_S = 1.0 / S
    start = 0
    k = 0
    while start < n:
        length = _block_len(start, n)
        if block_m[k] == -INFINITY:
            _fill_row(y + start, length, 0.0)
        elif floating is float:
            fi_scale_f(scratch + start, y + start, length, exp((block_m[k] - M) * s) * inv_S, stream)
        else:
            fi_scale_d(scratch + start, y + start, length, exp((block_m[k] - M) * s) * inv_S, stream)
        k += 1
        start += length


cdef inline void _row_normalize(const floating *x, floating *y, Py_ssize_t n, double s, bint log_output,
                                int stream) noexcept nogil:
    """y = log_softmax(x s) or softmax(x s) of one row (y may be x): the online pass, then one
    write pass while the row is in cache."""
    cdef RowLSE r = _row_lse(x, n, s)
    if r.status != _ROW_FINITE:
        _fill_row(y, n, NAN)
    elif floating is float:
        if log_output:
            fi_write_logsoftmax_f(x, y, n, r.m, s, r.log_S, stream)
        else:
            fi_write_softmax_f(x, y, n, <float>r.m, <float>s, exp(-r.log_S), stream)
    else:
        if log_output:
            fi_write_logsoftmax_d(x, y, n, r.m, s, r.log_S, stream)
        else:
            fi_write_softmax_d(x, y, n, r.m, s, exp(-r.log_S), stream)


def softmax_normalize(const floating[:, ::1] x, floating[:, ::1] out, double s, bint log_output):
    """out = log_softmax(x * s) (log_output) or softmax(x * s) along rows; out may be x.
    One online pass for (max, sum-exp), then one write pass (the row is then in cache)."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    cdef int stream = _stream_output(n_rows, n, sizeof(floating))
    cdef bint keep_exps = not log_output and n <= _SOFTMAX_STORE_BLOCKS * _SOFTMAX_BLOCK
    cdef floating *scratch = NULL
    if n_rows == 0:
        return
    with nogil, parallel(num_threads=nt):
        # softmax: a scratch row per thread for the exps (without it, the two-exp path)
        scratch = <floating *>malloc(n * sizeof(floating)) if keep_exps else NULL
        for i in prange(n_rows, schedule='static'):
            if scratch != NULL:
                _row_softmax(&x[i, 0], &out[i, 0], n, s, scratch, stream)
            else:
                _row_normalize(&x[i, 0], &out[i, 0], n, s, log_output, stream)
        free(scratch)


cdef inline double _row_entropy(const floating *x, Py_ssize_t n, double s) noexcept nogil:
    """H = log S - U / S with S = sum e^t, U = sum e^t t, t = (x - M) s, kept online: when the
    max rises by -d (d = (M_old - M_new) s < 0), U <- e^d (U + d S) and S <- e^d S."""
    cdef double M = -INFINITY, S = 0.0, U = 0.0, bm, d, r, bS, bU
    cdef int nan_seen = 0
    cdef Py_ssize_t start = 0, length
    while start < n:
        length = _block_len(start, n)
        bm = _block_max(x + start, length, &nan_seen)
        if bm > M:
            if S > 0.0:
                d = (M - bm) * s
                r = exp(d)
                U = r * (U + d * S)
                S = r * S
            M = bm
        if M == INFINITY:
            return NAN
        if M > -INFINITY:
            if floating is float:
                fi_sumexp_ent_f(x + start, length, <float>M, <float>s, &bS, &bU)
            else:
                fi_sumexp_ent_d(x + start, length, M, s, &bS, &bU)
            S += bS
            U += bU
        start += length
    if nan_seen or not M > -INFINITY:
        return NAN
    return log(S) - U / S


def softmax_entropy_rows(const floating[:, ::1] x, double s, double[::1] out):
    """out[i] = H(softmax(x[i] * s)) in nats; one read of x."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            out[i] = _row_entropy(&x[i, 0], n, s)


cdef inline double _row_kl(const floating *a, const floating *b, Py_ssize_t n, double s) noexcept nogil:
    """KL(softmax(a s) || softmax(b s)) = U / Sa - (lse(a s) - lse(b s)), U = sum e^ta (a - b) s;
    both rows are read once, block by block, with online maxima."""
    cdef double Ma = -INFINITY, Mb = -INFINITY, Sa = 0.0, Sb = 0.0, U = 0.0
    cdef double bma, bmb, r, bA, bB, bU
    cdef int nan_seen = 0
    cdef Py_ssize_t start = 0, length
    while start < n:
        length = _block_len(start, n)
        bma = _block_max(a + start, length, &nan_seen)
        bmb = _block_max(b + start, length, &nan_seen)
        if bma == INFINITY or bmb == INFINITY:
            return NAN
        if bma > Ma:
            if Sa > 0.0:
                r = exp((Ma - bma) * s)
                Sa = r * Sa
                U = r * U
            Ma = bma
        if bmb > Mb:
            if Sb > 0.0:
                Sb = Sb * exp((Mb - bmb) * s)
            Mb = bmb
        if Ma > -INFINITY or Mb > -INFINITY:
            # a reference of 0 for a side whose block is all -inf makes its exps 0, as they should be
            if floating is float:
                fi_sumexp_kl_f(a + start, b + start, length, <float>(Ma if Ma > -INFINITY else 0.0),
                               <float>(Mb if Mb > -INFINITY else 0.0), <float>s, &bA, &bB, &bU)
            else:
                fi_sumexp_kl_d(a + start, b + start, length, Ma if Ma > -INFINITY else 0.0,
                               Mb if Mb > -INFINITY else 0.0, s, &bA, &bB, &bU)
            Sa += bA
            Sb += bB
            U += bU
        start += length
    if nan_seen or not (Ma > -INFINITY and Mb > -INFINITY):
        return NAN
    return U / Sa - ((Ma - Mb) * s + log(Sa) - log(Sb))


def softmax_kl_rows(const floating[:, ::1] a, const floating[:, ::1] b, double s, double[::1] out):
    """out[i] = KL(softmax(a[i] s) || softmax(b[i] s)) in nats; one read of a and b."""
    cdef Py_ssize_t n_rows = a.shape[0], n = a.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            out[i] = _row_kl(&a[i, 0], &b[i, 0], n, s)


def softmax_ce_check_targets(const int64_t[::1] target, Py_ssize_t n_classes, bint has_ignore,
                             int64_t ignore_index, const double[::1] weight, bint has_weight,
                             double[::1] row_weight):
    """row_weight[i] = weight[target[i]] (1 without weight; 0 where ignored). Returns the index
    of the first target outside [0, n_classes) that is not ignore_index, or -1."""
    cdef Py_ssize_t i, n_rows = target.shape[0], bad = -1
    cdef int64_t t
    with nogil:
        for i in range(n_rows):
            t = target[i]
            if has_ignore and t == ignore_index:
                row_weight[i] = 0.0
            elif t < 0 or t >= n_classes:
                bad = i
                break
            else:
                row_weight[i] = weight[t] if has_weight else 1.0
    return bad


cdef inline double _row_ce(const floating *x, Py_ssize_t n, Py_ssize_t t, double w_t,
                           const floating *q, const double *w, double s, double eps,
                           floating *g, double gscale, int stream) noexcept nogil:
    """Cross-entropy of softmax(x s) against class t (q == NULL; weight w_t, label smoothing eps)
    or against the distribution (1 - eps) q + eps / C (weighted by w when not NULL). When g is not
    NULL, writes gscale * d loss / d x into g (a write pass over the row while it is in cache).

    Class target: loss = (1 - eps) w_t (lse - z_t) + eps / C * sum_c w_c (lse - z_c)  (torch);
    distribution target: loss = sum_c u_c (lse - z_c), u_c = w_c ((1 - eps) q_c + eps / C);
    lse - z_c = (M - x_c) s + log S. Gradient: (sum_c u_c) softmax - u with u the target weights."""
    cdef RowLSE r = _row_lse(x, n, s)
    cdef double loss, sum_u = 0.0, sum_ud = 0.0, qa = 1.0 - eps, qb = eps / n
    cdef double alpha, beta, u_t
    if r.status != _ROW_FINITE:
        if g != NULL:
            _fill_row(g, n, NAN)
        return NAN
    if q == NULL:
        loss = qa * w_t * ((r.m - x[t]) * s + r.log_S)
        if eps > 0.0:
            if floating is float:
                fi_dots_f(x, NULL, w, n, r.m, 1.0, 0.0, &sum_u, &sum_ud)
            else:
                fi_dots_d(x, NULL, w, n, r.m, 1.0, 0.0, &sum_u, &sum_ud)
            loss = loss + qb * (s * sum_ud + sum_u * r.log_S)
        if g != NULL:
            alpha = gscale * s * (qa * w_t + qb * sum_u) * exp(-r.log_S)
            beta = gscale * s * qb
            if floating is float:
                fi_write_grad_f(x, NULL, w, g, n, <float>r.m, <float>s, alpha, beta, 1.0, 0.0, stream)
            else:
                fi_write_grad_d(x, NULL, w, g, n, r.m, s, alpha, beta, 1.0, 0.0, stream)
            u_t = w[t] if w != NULL else 1.0
            g[t] = <floating>(alpha * exp((x[t] - r.m) * s) - beta * u_t - gscale * s * qa * w_t)
        return loss
    if floating is float:
        fi_dots_f(x, q, w, n, r.m, qa, qb, &sum_u, &sum_ud)
    else:
        fi_dots_d(x, q, w, n, r.m, qa, qb, &sum_u, &sum_ud)
    loss = s * sum_ud + sum_u * r.log_S
    if g != NULL:
        alpha = gscale * s * sum_u * exp(-r.log_S)
        beta = gscale * s
        if floating is float:
            fi_write_grad_f(x, q, w, g, n, <float>r.m, <float>s, alpha, beta, qa, qb, stream)
        else:
            fi_write_grad_d(x, q, w, g, n, r.m, s, alpha, beta, qa, qb, stream)
    return loss


def softmax_ce_index(const floating[:, ::1] x, const int64_t[::1] target, const double[::1] row_weight,
                     bint has_ignore, int64_t ignore_index, const double[::1] weight, bint has_weight,
                     double s, double eps, double[::1] loss, floating[:, ::1] grad, bint want_grad,
                     double gscale):
    """Per-row cross-entropy against class indices (already checked by softmax_ce_check_targets);
    ignored rows get loss 0 (and gradient 0) without reading their logits."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    cdef const double *w = &weight[0] if has_weight else NULL
    cdef int stream = want_grad and _stream_output(n_rows, n, sizeof(floating))
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            if has_ignore and target[i] == ignore_index:
                loss[i] = 0.0
                if want_grad:
                    _fill_row(&grad[i, 0], n, 0.0)
            else:
                loss[i] = _row_ce(&x[i, 0], n, target[i], row_weight[i], NULL, w, s, eps,
                                  &grad[i, 0] if want_grad else NULL, gscale, stream)


def softmax_ce_prob(const floating[:, ::1] x, const floating[:, ::1] q, const double[::1] weight,
                    bint has_weight, double s, double eps, double[::1] loss, floating[:, ::1] grad,
                    bint want_grad, double gscale):
    """Per-row cross-entropy against target distributions q (rows of the logits' shape)."""
    cdef Py_ssize_t n_rows = x.shape[0], n = x.shape[1], i
    cdef int nt = _threads_for_rows(n_rows, n)
    cdef const double *w = &weight[0] if has_weight else NULL
    cdef int stream = want_grad and _stream_output(n_rows, n, sizeof(floating))
    if n_rows == 0:
        return
    with nogil:
        for i in prange(n_rows, schedule='static', num_threads=nt):
            loss[i] = _row_ce(&x[i, 0], n, 0, 1.0, &q[i, 0], w, s, eps,
                              &grad[i, 0] if want_grad else NULL, gscale, stream)

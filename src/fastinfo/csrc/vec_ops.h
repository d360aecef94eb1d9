/* fastinfo: splat, select, loads and stores of one element vector type; a type-generic body,
   included by vec.h once per element type with FT (element), SFX (name suffix), FV (its vector),
   IV (the same-width integer vector) and LANES (lanes of FV) defined; they are undefined at the end.
   No include guard: it is meant to be included more than once. */

static inline __attribute__((always_inline)) FV FI_T(fi_splat)(FT c) { FV v = {0}; return v + c; }
static inline __attribute__((always_inline)) FV FI_T(fi_select)(IV mask, FV a, FV b) {
    return (FV)((mask & (IV)a) | (~mask & (IV)b));
}
static inline __attribute__((always_inline)) FV FI_T(fi_load)(const FT *p) { FV v; memcpy(&v, p, sizeof v); return v; }
static inline __attribute__((always_inline)) void FI_T(fi_store)(FT *p, FV v) { memcpy(p, &v, sizeof v); }
/* The first k (< LANES) elements of p, the other lanes set to fill. */
static inline __attribute__((always_inline)) FV FI_T(fi_load_tail)(const FT *p, Py_ssize_t k, FT fill) {
    FT buf[LANES]; Py_ssize_t j;
    for (j = 0; j < LANES; j++) buf[j] = j < k ? p[j] : fill;
    return FI_T(fi_load)(buf);
}
static inline __attribute__((always_inline)) void FI_T(fi_store_tail)(FT *p, Py_ssize_t k, FV v) {
    FT buf[LANES]; Py_ssize_t j;
    FI_T(fi_store)(buf, v);
    for (j = 0; j < k; j++) p[j] = buf[j];
}

#undef FT
#undef SFX
#undef FV
#undef IV
#undef LANES

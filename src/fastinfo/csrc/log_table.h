#ifndef FASTINFO_LOG_TABLE_H
#define FASTINFO_LOG_TABLE_H

/* fastinfo: the tables of the division-free vector log (log_d of the AVX-512 clone, simd_avx512.h,
   and of the AVX2 clone, simd_generic.h; included once by vec.h before the clones).

   Natural log of a finite normal x >= DBL_MIN, lane-wise, without a division (the baseline clone's
   atanh form needs one, and vdivpd is the slowest instruction of the entropy loop): other inputs
   give finite garbage, as the atanh form in simd_generic.h (0 gives -1023 ln 2). x = 2^k m with m in
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
   below 1.5 ulp; measured against 120-bit mpmath over 6.5e5 arguments: 1.21 ulp. The baseline
   clone's atanh log stays below 1 ulp, at the cost of a division per lane. */
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


#endif /* FASTINFO_LOG_TABLE_H */

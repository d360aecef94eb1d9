"""Compute the tables and the polynomial of the AVX-512 vector log (src/fastinfo/csrc/simd_avx512.h).

    python tools/make_log_table.py          # prints the C initialisers (needs mpmath)

m in [0.703125, 1.40625) is split into 16 intervals by the top 4 mantissa bits of
bits(m) - bits(0.703125); interval j has centre c_j (c_9 = 1). For each j != 9 the script picks,
among invc = (1/c_j)(1 + 1e-9 s), |s| <= 300 (|1 - invc c| <= 3e-7, so the range of r barely grows), the one whose log(1/invc) is closest to a double (so
that the table's log c is nearly exact: Gal's accurate tables), and prints invc and log c. (c_j is a
short binary fraction, so the first-order change of log(1/invc) with s is a whole number of ulps;
the second-order change varies the rest.)
Then it fits g(r) = (log1p(r) - r + r^2/2) / r^3 on the range of r = m invc - 1 by Chebyshev
interpolation of degree 6 and prints the coefficients (lowest first) and the relative error of
log1p(r) = r - r^2/2 + r^3 g(r) with them.
"""
import struct

import mpmath as mp

mp.mp.dps = 50
OFFSET = 0x3FE6800000000000


def from_bits(u):
    return struct.unpack("<d", struct.pack("<Q", u))[0]


def ulp(x):
    x = abs(x)
    m, e = mp.frexp(x)
    return mp.ldexp(1, e - 53)


def main():
    rows = []
    for j in range(16):
        c = from_bits(OFFSET + (2 * j + 1) * (1 << 47))
        if j == 9:
            rows.append((j, c, 1.0, 0.0, 0.0))
            continue
        best = None
        for s in range(-300, 301):
            invc = float(mp.mpf(1) / c * (1 + mp.mpf(s) * mp.mpf("1e-9")))
            exact = -mp.log(mp.mpf(invc))
            err = abs(exact - mp.mpf(float(exact))) / ulp(float(exact))
            if best is None or err < best[0]:
                best = (err, invc, float(exact))
        rows.append((j, c, best[1], best[2], float(best[0])))
    lo = hi = 0.0
    for j, c, invc, _, _ in rows:
        start, end = from_bits(OFFSET + j * (1 << 48)), from_bits(OFFSET + (j + 1) * (1 << 48))
        lo, hi = min(lo, start * invc - 1), max(hi, end * invc - 1)
    print("static const double fi_v4_log_invc[16] __attribute__((aligned(64))) = {")
    for j, c, invc, _, err in rows:
        note = "c = 1" if j == 9 else f"c = {c:.6f}, |log error| {err:.1e} ulp"
        print(f"    {float.hex(invc)},  /* j = {j:2d}: {note} */")
    print("};")
    print("static const double fi_v4_log_logc[16] __attribute__((aligned(64))) = {")
    for j in range(0, 16, 2):
        print(f"    {float.hex(rows[j][3])}, {float.hex(rows[j + 1][3])},")
    print("};")

    def g(r):
        if abs(r) < mp.mpf("1e-20"):
            return mp.mpf(1) / 3 - r / 4
        return (mp.log1p(r) - r + r * r / 2) / r ** 3

    lo, hi = mp.mpf(lo) * 1.0001, mp.mpf(hi) * 1.0001
    poly = mp.chebyfit(g, [lo, hi], 7)
    coeffs = [float(x) for x in poly[::-1]]
    worst = 0
    for i in range(4001):
        r = lo + (hi - lo) * i / 4000
        if r == 0:
            continue
        approx = r - r * r / 2 + r ** 3 * mp.polyval([mp.mpf(x) for x in coeffs[::-1]], r)
        worst = max(worst, abs(approx / mp.log1p(r) - 1))
    print(f"/* g(r) = (log1p(r) - r + r^2/2) / r^3 on [{float(lo):.4f}, {float(hi):.4f}], degree 6 (lowest "
          f"first); relative error of log1p: {float(worst):.1e} */")
    print("static const double fi_v4_log_g[7] = {" + ", ".join(float.hex(x) for x in coeffs) + "};")


if __name__ == "__main__":
    main()

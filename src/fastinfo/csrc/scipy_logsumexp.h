/* fastinfo: weighted log-sum-exp rows for the SciPy drop-in (fastinfo.scipy.logsumexp with b).

   Per row of a (n values) and weights b (n values, same type), one read of both:
       m = max{a_j : b_j != 0}        (-inf when every b_j is 0)
       S = sum_{b_j != 0} b_j exp(a_j - m)   (signed, accumulated in double)
       W = sum_{a_j = m} b_j                 (the weight of the maximum)
   so that log|sum b e^a| = m + log|S| and its sign is the sign of S. Entries whose weight is 0
   are skipped entirely (SciPy: "even if an element of a is infinite or NaN, it adds nothing to
   the sum if the corresponding weight is zero"). The row is read in blocks: each block's maximum
   first, the running sum rescaled by exp(m_old - m_new) when the maximum rises, then the block's
   terms summed into a block partial (sequential within 512 entries, partials added in order: the
   same order for any thread count). The front-end (fastinfo/scipy.py) uses m + log|S| where m and
   S are finite, S != 0 and W != 0 (SciPy's own formula log1p(S/W - 1) + log|W| + m is finite
   exactly then), and hands the other rows (NaN, infinities, cancellation) to SciPy, whose naive
   sum then decides them as it does for SciPy.
   *nan_seen is set when an entry with b_j != 0 has a NaN a_j or a NaN b_j.

   The body is written once (scipy_logsumexp_body.h) and included for float and double.
   Included by _kernels.pyx (section _kernels_scipy.pxi). */
#ifndef FASTINFO_SCIPY_LOGSUMEXP_H
#define FASTINFO_SCIPY_LOGSUMEXP_H

#include <Python.h>
#include <math.h>

#define FI_WLSE_BLOCK 512
#define FI_WLSE_CAT_(a, b) a##_##b
#define FI_WLSE_CAT(a, b) FI_WLSE_CAT_(a, b)
#define FI_WLSE_T(name) FI_WLSE_CAT(name, SFX)    /* fi_wlse_row_f / fi_wlse_row_d */

#define FT float
#define SFX f
#include "scipy_logsumexp_body.h"
#undef FT
#undef SFX

#define FT double
#define SFX d
#include "scipy_logsumexp_body.h"
#undef FT
#undef SFX

#endif /* FASTINFO_SCIPY_LOGSUMEXP_H */

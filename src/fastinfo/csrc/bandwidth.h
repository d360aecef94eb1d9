/* fastinfo: the machine's memory bandwidth, measured by fastinfo's own loops (for `fastinfo bench`,
   which prints each dense workload's share of it): a read loop (a sum, four independent
   accumulators) and a copy loop (streaming stores when the destination is aligned, as the dense
   kernels' outputs are written), compiled for each clone of the vector layer; the clone in use runs.
   Included by _kernels_softmax.pxi. */
#ifndef FASTINFO_BANDWIDTH_H
#define FASTINFO_BANDWIDTH_H

#include "vec.h"

#define FI_ISA base
#define FI_KFN static
#include "bandwidth_clone.h"
#undef FI_ISA
#undef FI_KFN

#if FI_X86_CLONES
#define FI_ISA v3
#define FI_KFN static FI_TARGET_V3
#include "bandwidth_clone.h"
#undef FI_ISA
#undef FI_KFN

#define FI_ISA v4
#define FI_KFN static FI_TARGET_V4
#include "bandwidth_clone.h"
#undef FI_ISA
#undef FI_KFN
#endif

/* sum of x[0:n] (its value only keeps the loads from being optimised away) */
static double fi_read_loop(const double *x, Py_ssize_t n) {
#if FI_X86_CLONES
    if (fi_dense_isa == FI_ISA_AVX512) return fi_read_loop_v4(x, n);
    if (fi_dense_isa == FI_ISA_AVX2) return fi_read_loop_v3(x, n);
#endif
    return fi_read_loop_base(x, n);
}

/* y[0:n] = x[0:n] */
static void fi_copy_loop(double *y, const double *x, Py_ssize_t n) {
#if FI_X86_CLONES
    if (fi_dense_isa == FI_ISA_AVX512) { fi_copy_loop_v4(y, x, n); return; }
    if (fi_dense_isa == FI_ISA_AVX2) { fi_copy_loop_v3(y, x, n); return; }
#endif
    fi_copy_loop_base(y, x, n);
}

#endif /* FASTINFO_BANDWIDTH_H */

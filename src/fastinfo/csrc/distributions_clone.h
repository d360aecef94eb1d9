/* fastinfo: one clone of the distribution kernels: distributions_rows.h for float, double, float16
   and bfloat16 input (read and computed in double), and the clone's vector log as a test hook. Included by
   distributions.h once per clone, with FI_ISA, FI_KFN and FI_KIN defined. No include guard: it is
   meant to be included more than once. */

#define ST float
#define SFX f
#define FI_LOADW_ST(p) FI_I(loadw_f)(p)
#define FI_LOADW_TAIL_ST(p, k, fill) FI_I(loadw_tail_f)(p, k, fill)
#include "distributions_rows.h"

#define ST double
#define SFX d
#define FI_LOADW_ST(p) FI_I(loadw_d)(p)
#define FI_LOADW_TAIL_ST(p, k, fill) FI_I(loadw_tail_d)(p, k, fill)
#include "distributions_rows.h"

/* float16 and bfloat16 bits, widened to double as they are loaded */
#define ST uint16_t
#define SFX h
#define FI_LOADW_ST(p) FI_I(loadw_f16)(p)
#define FI_LOADW_TAIL_ST(p, k, fill) FI_I(loadw_tail_f16)(p, k, fill)
#define FI_LD1_ST(e) ((double)fi_f16_to_f32(e))
#define FI_LOADF_ST(p) FI_I(load_f16)(p)
#define FI_LOADF_TAIL_ST(p, k, fill) FI_I(load_tail_f16)(p, k, fill)
#define FI_ENTR_TABLE fi_entr_table[0]
#include "distributions_rows.h"

#define ST uint16_t
#define SFX b
#define FI_LOADW_ST(p) FI_I(loadw_bf16)(p)
#define FI_LOADW_TAIL_ST(p, k, fill) FI_I(loadw_tail_bf16)(p, k, fill)
#define FI_LD1_ST(e) ((double)fi_bf16_to_f32(e))
#define FI_LOADF_ST(p) FI_I(load_bf16)(p)
#define FI_LOADF_TAIL_ST(p, k, fill) FI_I(load_tail_bf16)(p, k, fill)
#define FI_ENTR_TABLE fi_entr_table[1]
#include "distributions_rows.h"

/* The clone's vector log, elementwise: x finite > 0; arguments below DBL_MIN take libc log, as
   the kernels do (they redo such rows carefully). */
FI_KFN void FI_CAT(fi_dist_log, FI_ISA)(const double *x, double *out, Py_ssize_t n) {
    Py_ssize_t i, j;
    for (i = 0; i + FI_I(lanes_d) <= n; i += FI_I(lanes_d))
        FI_I(store_d)(out + i, FI_I(log_d)(FI_I(load_d)(x + i)));
    if (i < n) {
        double buf[FI_I(lanes_d)];
        for (j = 0; j < FI_I(lanes_d); j++) buf[j] = i + j < n ? x[i + j] : 1.0;
        FI_I(store_d)(buf, FI_I(log_d)(FI_I(load_d)(buf)));
        for (j = 0; i + j < n; j++) out[i + j] = buf[j];
    }
    for (i = 0; i < n; i++)
        if (x[i] < DBL_MIN) out[i] = log(x[i]);
}

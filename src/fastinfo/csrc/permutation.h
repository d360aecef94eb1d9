/* fastinfo: permutations drawn exactly as numpy.random.Generator.permutation(n) (included by _kernels.pyx). */
#ifndef FASTINFO_PERMUTATION_H
#define FASTINFO_PERMUTATION_H

#include <Python.h>
#include <stdint.h>
#include "numpy/random/bitgen.h"

static uint64_t fi_uniform_upto(bitgen_t *bg, uint64_t top) {
    /* a uniform integer on [0, top] by masked rejection */
    uint64_t mask = top, value;
    if (top == 0) return 0;
    mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4;
    mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32;
    if (top <= 0xFFFFFFFFULL) {
        do { value = bg->next_uint32(bg->state) & mask; } while (value > top);
    } else {
        do { value = bg->next_uint64(bg->state) & mask; } while (value > top);
    }
    return value;
}
static void fi_fill_permutation(bitgen_t *bg, Py_ssize_t n, Py_ssize_t *perm) {
    Py_ssize_t i, j, t;
    for (i = 0; i < n; i++) perm[i] = i;
    for (i = n - 1; i > 0; i--) {
        j = (Py_ssize_t)fi_uniform_upto(bg, (uint64_t)i);
        t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}
/* The next permutation in draw order, for loops that draw inside a parallel region: the
   draw and its index are taken together under one lock, so permutation number p is always
   the p-th draw whichever thread takes it. */
static Py_ssize_t fi_next_permutation(bitgen_t *bg, Py_ssize_t *counter, Py_ssize_t n,
                                      Py_ssize_t *perm) {
    Py_ssize_t p;
#ifdef _OPENMP
#pragma omp critical(fi_permutation_draw)
#endif
    {
        p = (*counter)++;
        fi_fill_permutation(bg, n, perm);
    }
    return p;
}

#endif /* FASTINFO_PERMUTATION_H */

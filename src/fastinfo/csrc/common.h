/* fastinfo: OpenMP shim (fork safety, thread count) and build information (included by _kernels.pyx). */
#ifndef FASTINFO_COMMON_H
#define FASTINFO_COMMON_H

#include <Python.h>

#ifdef _OPENMP
#include <omp.h>
/* GNU libgomp is not fork-safe: a child forked after the parent ran a parallel region
   hangs in its next parallel region (the pool threads do not exist in the child).
   In a forked child every kernel therefore runs serially (as PyTorch does). */
static volatile int fi_forked_child = 0;
#if !defined(_WIN32)
#include <pthread.h>
static void fi_mark_forked_child(void) { fi_forked_child = 1; }
static int fi_register_atfork(void) { return pthread_atfork(NULL, NULL, fi_mark_forked_child); }
#else
static int fi_register_atfork(void) { return 0; }
#endif
static int fi_max_threads(void) { return fi_forked_child ? 1 : omp_get_max_threads(); }
static int fi_openmp_enabled(void) { return 1; }
#else
static int fi_register_atfork(void) { return 0; }
static int fi_max_threads(void) { return 1; }
static int fi_openmp_enabled(void) { return 0; }
#endif
#if defined(__clang__)
static const char *fi_compiler(void) { return "clang " __clang_version__; }
#elif defined(__GNUC__)
static const char *fi_compiler(void) { return "gcc " __VERSION__; }
#elif defined(_MSC_VER)
#define FI_STR2(x) #x
#define FI_STR(x) FI_STR2(x)
static const char *fi_compiler(void) { return "msvc " FI_STR(_MSC_VER); }
#else
static const char *fi_compiler(void) { return "unknown"; }
#endif

#endif /* FASTINFO_COMMON_H */

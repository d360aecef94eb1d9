#!/usr/bin/env bash
# Build fastinfo's extension with AddressSanitizer + UndefinedBehaviorSanitizer into a
# separate copy of the source tree and run the test suite against that copy.
#
#   tools/sanitize.sh                 # whole suite (minus tests that cannot run under ASan)
#   tools/sanitize.sh tests/test_softmax.py -k logsumexp    # extra args go to pytest
#   tools/sanitize.sh --selftest      # prove the harness catches a heap overflow and UB, then exit
#
# Any ASan/UBSan report aborts the interpreter (halt_on_error=1, -fno-sanitize-recover),
# so pytest exits non-zero and so does this script. The checkout's own in-place build is
# never touched: the sanitized .so lives in a temp copy (FASTINFO_SANITIZE_DIR to keep it).
#
# Excluded under ASan (stated reasons):
#   -m "not no_sanitizer": tests marked `no_sanitizer` (e.g. the 8 GiB large-input test:
#     ASan's shadow memory and redzones make it ~2-3x the RAM and far too slow; dask
#     cluster spawns re-exec interpreters with LD_PRELOAD and time out).
# Environment knobs: SANITIZE_PYTEST_ARGS (extra pytest args), HYPOTHESIS_PROFILE.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python}"
CC_BIN="${CC:-gcc}"

SELFTEST=0
if [ "${1:-}" = "--selftest" ]; then SELFTEST=1; shift; fi

WORK="${FASTINFO_SANITIZE_DIR:-$(mktemp -d -t fastinfo-asan-XXXXXX)}"
if [ -z "${FASTINFO_SANITIZE_DIR:-}" ]; then
    trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK/tree"

# 1. Copy only what the build needs (no .so, no build/ of the checkout).
cp "$ROOT/setup.py" "$ROOT/pyproject.toml" "$WORK/tree/"
[ -f "$ROOT/README.md" ] && cp "$ROOT/README.md" "$WORK/tree/"
rm -rf "$WORK/tree/src"
mkdir -p "$WORK/tree/src"
cp -r "$ROOT/src/fastinfo" "$WORK/tree/src/fastinfo"
find "$WORK/tree/src" \( -name '*.so' -o -name '*.c' -o -name '__pycache__' \) -prune -exec rm -rf {} +

if [ $SELFTEST = 1 ]; then
    # deliberately broken functions, only in the temp copy
    cat >>"$WORK/tree/src/fastinfo/_kernels.pyx" <<'PYX'


def _selftest_heap_overflow(double[::1] a):
    cdef double *p = &a[0]
    return p[a.shape[0] + 1]


def _selftest_undefined_shift(int s):
    cdef int one = 1
    return one << s
PYX
fi

# 2. Build the instrumented extension in place inside the copy.
echo "sanitize.sh: building the ASan/UBSan extension in $WORK/tree" >&2
# -fno-wrapv: Python's own CFLAGS carry -fwrapv, which defines signed overflow away; undo it so
# UBSan reports signed overflow (e.g. an int row*stride product that should be 64-bit).
# FASTINFO_SANITIZE_WRAPV=1 keeps -fwrapv.
NOWRAPV="-fno-wrapv"
[ "${FASTINFO_SANITIZE_WRAPV:-0}" = "1" ] && NOWRAPV=""
( cd "$WORK/tree" && FASTINFO_SANITIZE=1 CC="$CC_BIN" CFLAGS="${CFLAGS:-} $NOWRAPV" \
    "$PY" setup.py build_ext --inplace -q >"$WORK/build.log" 2>&1 ) || {
    cat "$WORK/build.log" >&2; echo "sanitize.sh: build failed" >&2; exit 2; }

# 3. Runtime libraries: ASan must be first in the process (Python itself is not instrumented).
LIBASAN="$("$CC_BIN" -print-file-name=libasan.so)"
LIBUBSAN="$("$CC_BIN" -print-file-name=libubsan.so)"
for lib in "$LIBASAN" "$LIBUBSAN"; do
    [ -e "$lib" ] || { echo "sanitize.sh: $lib not found (install the compiler's sanitizer runtime)" >&2; exit 2; }
done
PRELOAD="$(readlink -f "$LIBASAN"):$(readlink -f "$LIBUBSAN")"
# detect_leaks=0: CPython deliberately leaks interned objects at exit.
# allocator_may_return_null=1: a huge np.empty must raise MemoryError, not abort.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=0:handle_segv=1:symbolize=1:verify_asan_link_order=0${ASAN_EXTRA_OPTIONS:+:$ASAN_EXTRA_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:abort_on_error=1"
export FASTINFO_SANITIZED=1   # tests may consult it
export FASTINFO_SANITIZE_PKGROOT="$WORK/tree/src"   # test_hardening_memory checks the import comes from here
export PYTHONFAULTHANDLER=1

# 4. Check that the sanitized copy is what gets imported, and that ASan is live in it.
LD_PRELOAD="$PRELOAD" "$PY" - "$WORK/tree/src" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1])
import fastinfo, fastinfo._kernels as k
assert k.__file__.startswith(sys.argv[1]), k.__file__
import ctypes
ctypes.CDLL(None).__asan_init  # raises AttributeError if ASan is not loaded
print("sanitize.sh: using", k.__file__, "(ASan runtime loaded)", file=sys.stderr)
PYEOF

if [ $SELFTEST = 1 ]; then
    fails=0
    for call in "_selftest_heap_overflow(np.zeros(5))" "_selftest_undefined_shift(40)"; do
        if LD_PRELOAD="$PRELOAD" PYTHONPATH="$WORK/tree/src" "$PY" -c \
            "import numpy as np, fastinfo._kernels as k; print(k.$call)" >"$WORK/selftest.log" 2>&1; then
            echo "sanitize.sh selftest: $call was NOT caught" >&2; fails=1
        else
            echo "sanitize.sh selftest: caught $call: $(grep -m1 -E 'AddressSanitizer|runtime error' "$WORK/selftest.log")" >&2
        fi
    done
    exit $fails
fi

# 5. Run the suite against the copy. -p no:cacheprovider keeps the checkout clean.
# --capture=sys: pytest's default fd-level capture swallows what the sanitizer runtime writes
# to file descriptor 2 when it aborts the interpreter; with sys-level capture the report reaches
# the terminal.
cd "$ROOT"
set +e
LD_PRELOAD="$PRELOAD" "$PY" -m pytest -o pythonpath="$WORK/tree/src" -p no:cacheprovider --capture=sys \
    -m "not no_sanitizer" ${SANITIZE_PYTEST_ARGS:-} "$@"
status=$?
set -e
if [ $status -ge 128 ]; then
    echo "sanitize.sh: FAILED: the interpreter died (exit $status): a sanitizer report (see above) aborts with SIGABRT=134" >&2
elif [ $status -ne 0 ]; then
    echo "sanitize.sh: FAILED: pytest exit $status (test failures; no sanitizer report, which would abort the run)" >&2
fi
exit $status

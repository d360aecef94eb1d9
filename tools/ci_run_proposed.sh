#!/usr/bin/env bash
# Proposed .ci/run (the integrator owns .ci/run): the normal suite, then the same suite against
# an AddressSanitizer + UndefinedBehaviorSanitizer build of the extension.
#
# Budget (90 min on 2 cores): install+build ~2 min, normal suite (hardening part < 3 min),
# sanitized build ~1-2 min + sanitized suite (hypothesis examples cut to 30 per test) < 15 min.
set -euo pipefail
cd "$(dirname "$0")/.."

pip install -e ".[test]"
# pytest imports the extension from src/ (pythonpath = ["src"]): make sure the in-place .so exists
python setup.py build_ext --inplace -q

python -m pytest

# Sanitized run. Any ASan/UBSan report aborts the interpreter -> non-zero exit -> CI fails.
# Tests marked no_sanitizer (the 8 GiB 2^31-element cases) are deselected inside sanitize.sh.
# FASTINFO_FUZZ_EXAMPLES lowers the hypothesis budget (instrumented code runs 2-5x slower).
FASTINFO_FUZZ_EXAMPLES="${FASTINFO_FUZZ_EXAMPLES_SANITIZED:-30}" \
    timeout --signal=TERM 1800 tools/sanitize.sh -q

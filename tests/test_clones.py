"""Every clone of the dense kernels against the references.

The softmax and distribution kernels are compiled for x86-64-v4 (AVX-512), x86-64-v3 (AVX2) and a
portable baseline, and the best clone the CPU runs is picked at import; the rest of the suite
tests that one. Here the reference tests (tests/test_softmax.py, tests/test_distributions.py and
the dense part of the hypothesis fuzz suite, the thread-count tests of
tests/test_hardening_concurrency.py) run again in a subprocess for every lower clone, with
``FASTINFO_ISA`` set; clones the CPU lacks are skipped (a CI machine may have AVX2 only).
"""
import os
import subprocess
import sys

import pytest

import fastinfo
from fastinfo import _kernels

ORDER = ["baseline", "avx2", "avx512"]
HERE = os.path.dirname(os.path.abspath(__file__))
DENSE_FUZZ = "logsumexp or softmax or out_aliasing or cross_entropy or perplexity or distributions or negative_entry"
CONCURRENCY = "threadpool_limits_bitwise_identical or eight_threads_mixed_functions"


@pytest.mark.slow
@pytest.mark.parametrize("isa", ORDER)
def test_reference_tests_pass_on_every_clone(isa):
    cpu = _kernels.cpu_isa()
    if ORDER.index(isa) > ORDER.index(cpu):
        pytest.skip(f"this CPU does not run the {isa} clone")
    if isa == cpu:
        pytest.skip(f"{isa} is the clone in use: the rest of the suite tests it")
    src = os.path.dirname(os.path.dirname(fastinfo.__file__))
    env = dict(os.environ, FASTINFO_ISA=isa, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    probe = subprocess.run([sys.executable, "-c", "import fastinfo._kernels as k; print(k.dense_isa())"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0 and probe.stdout.strip() == isa, probe.stderr
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", f"pythonpath={src}",
           os.path.join(HERE, "test_softmax.py"), os.path.join(HERE, "test_distributions.py"),
           os.path.join(HERE, "test_hardening_fuzz.py"), os.path.join(HERE, "test_hardening_concurrency.py"),
           "-k", f"(not test_hardening_fuzz.py and not test_hardening_concurrency.py) or ({DENSE_FUZZ}) or {CONCURRENCY}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200, cwd=os.path.dirname(HERE))
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[:3000] + out.stderr[-2000:]  # a sanitizer report heads stderr

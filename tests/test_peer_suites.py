"""scikit-learn's and SciPy's own test files pass against fastinfo's drop-ins with only their imports
changed (tools/peer_suites.py reads them from the installed packages and rewrites the imports)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.no_sanitizer   # SciPy's array-API conftest imports optional backends; slow under ASan
def test_peer_test_files_pass_against_the_dropins():
    pytest.importorskip("sklearn")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "peer_suites.py")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    lines = {line.split(":")[0]: line for line in proc.stdout.splitlines() if ": " in line}
    for name in ("scikit-learn test_mutual_info.py", "SciPy test_logsumexp.py", "SciPy test_entropy.py"):
        assert name in lines, proc.stdout
        assert " passed" in lines[name] and "failed" not in lines[name] and "error" not in lines[name], lines[name]

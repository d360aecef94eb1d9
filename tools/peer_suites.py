"""Run the peers' own test files against fastinfo's drop-ins, with only their imports changed.

    python tools/peer_suites.py            # all three; prints pytest's summary line of each

scikit-learn's ``feature_selection/tests/test_mutual_info.py`` runs with its import of
``mutual_info_classif, mutual_info_regression`` taken from ``fastinfo.sklearn`` (and
``SKLEARN_RUN_FLOAT32_TESTS=1``, ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED=all``: every seed); SciPy's ``special/tests/test_logsumexp.py`` with
``logsumexp, softmax, log_softmax`` from ``fastinfo.scipy``, and ``stats/tests/test_entropy.py``
with ``stats.entropy`` replaced by ``fastinfo.scipy.entropy``. The files are read from the installed
packages and rewritten into a temporary directory, next to a copy of the package's conftest.py
(SciPy's array-API fixtures, scikit-learn's ``global_random_seed``); nothing of theirs is kept in
this repository.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import scipy
import sklearn


def _rewrite_sklearn(text):
    old = "from sklearn.feature_selection import mutual_info_classif, mutual_info_regression"
    assert old in text, "scikit-learn's test file changed its import"
    return text.replace(old, "from fastinfo.sklearn import mutual_info_classif, mutual_info_regression")


def _keep_decorators(text, names):
    """SciPy's ``make_xp_test_case(f)`` looks ``f`` up in SciPy's capability table: the decorators
    keep naming SciPy's own functions (``_scipy_<name>``); only the calls go to fastinfo."""
    def fix(match):
        inner = match.group(1)
        for name in names:
            inner = re.sub(rf"\b{name}\b", f"_scipy_{name}", inner)
        return f"make_xp_test_case({inner})"
    return re.sub(r"make_xp_test_case\(([^)]*)\)", fix, text)


def _rewrite_logsumexp(text):
    old = "from scipy.special import log_softmax, logsumexp, softmax"
    assert old in text, "SciPy's test_logsumexp.py changed its import"
    text = _keep_decorators(text, ["logsumexp", "softmax", "log_softmax"])
    return text.replace(old, "from fastinfo.scipy import log_softmax, logsumexp, softmax\n"
                             "from scipy.special import (log_softmax as _scipy_log_softmax,\n"
                             "    logsumexp as _scipy_logsumexp, softmax as _scipy_softmax)")


def _rewrite_entropy(text):
    assert "stats.entropy" in text, "SciPy's test_entropy.py no longer calls stats.entropy"
    text = re.sub(r"\bstats\.entropy\b", "_fastinfo_entropy", text)
    text = _keep_decorators(text, ["_fastinfo_entropy"]).replace("_scipy__fastinfo_entropy", "_scipy_entropy")
    return ("from fastinfo.scipy import entropy as _fastinfo_entropy\n"
            "from scipy.stats import entropy as _scipy_entropy\n" + text)


SUITES = [
    ("scikit-learn test_mutual_info.py", os.path.join(os.path.dirname(sklearn.__file__), "feature_selection",
                                                       "tests", "test_mutual_info.py"), _rewrite_sklearn),
    ("SciPy test_logsumexp.py", os.path.join(os.path.dirname(scipy.__file__), "special", "tests",
                                             "test_logsumexp.py"), _rewrite_logsumexp),
    ("SciPy test_entropy.py", os.path.join(os.path.dirname(scipy.__file__), "stats", "tests",
                                           "test_entropy.py"), _rewrite_entropy),
]


def run(name, path, rewrite, extra=()):
    with tempfile.TemporaryDirectory(prefix="fastinfo-peer-") as tmp:
        with open(path, encoding="utf-8") as f:
            text = rewrite(f.read())
        target = os.path.join(tmp, "test_peer_" + os.path.basename(path))
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
        package = scipy if "scipy" in path else sklearn     # their fixtures (xp, global_random_seed, ...)
        shutil.copy(os.path.join(os.path.dirname(package.__file__), "conftest.py"), tmp)
        env = dict(os.environ, SKLEARN_RUN_FLOAT32_TESTS="1", SKLEARN_TESTS_GLOBAL_RANDOM_SEED="all")
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                               "--rootdir", tmp, target, *extra], cwd=tmp, env=env, capture_output=True, text=True)
        summary = [line for line in proc.stdout.splitlines() if line.strip()][-1:]
        print(f"{name}: {summary[0] if summary else proc.stderr[-2000:]}")
        if proc.returncode not in (0, 5):
            print(proc.stdout[-6000:])
        return proc.returncode


def main():
    return max(run(*suite) for suite in SUITES)


if __name__ == "__main__":
    sys.exit(main())

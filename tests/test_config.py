"""``fastinfo.show_config``: version, compiler, OpenMP, default thread count (and the rest of config())."""
import os
import subprocess
import sys

import pytest

import fastinfo as fi
from fastinfo import _config, _kernels


def test_show_config_prints_version_compiler_openmp_threads(capsys):
    fi.show_config()
    out = capsys.readouterr().out
    assert out.startswith(f"fastinfo {fi.__version__}\n")
    assert "compiler" in out and _kernels.compiler() in out
    assert "openmp" in out and str(_kernels.openmp_enabled()) in out
    assert "default_threads" in out


def test_show_config_prints_every_config_entry_once(capsys):
    info = _config.config()
    fi.show_config()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"fastinfo {info['fastinfo']}"
    printed = {}
    for line in lines[1:]:
        key, sep, value = line.partition(" : ")
        assert sep, line
        printed[key.strip()] = value
    assert set(printed) == set(info) - {"fastinfo"}
    for key, value in printed.items():
        assert value == str(info[key])


def test_config_values_have_the_documented_types():
    info = _config.config()
    assert isinstance(info["fastinfo"], str) and info["fastinfo"] == fi.__version__
    assert isinstance(info["openmp"], bool)
    assert isinstance(info["default_threads"], int) and info["default_threads"] >= 1
    assert info["compiler"] and info["compiler"] != "unknown"
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "dispatch" in info["simd"] and info["simd"].startswith(_kernels.dense_simd())
    if not info["openmp"]:
        assert info["default_threads"] == 1


def test_default_threads_follows_threadpoolctl():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = _config.config()["default_threads"]
    with threadpoolctl.threadpool_limits(1, "openmp"):
        assert _config.config()["default_threads"] == 1
    assert _config.config()["default_threads"] == before


def test_default_threads_follows_omp_num_threads():
    src = os.path.dirname(os.path.dirname(fi.__file__))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = "import fastinfo._config as c; print(c.config()['default_threads'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


def test_public_names_exported():
    for name in fi.__all__:
        assert hasattr(fi, name), name
    assert callable(fi.show_config)


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_fastinfo_isa_forces_a_lower_clone(isa):
    order = ["baseline", "avx2", "avx512"]
    src = os.path.dirname(os.path.dirname(fi.__file__))
    env = dict(os.environ, FASTINFO_ISA=isa.upper(), PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = "import fastinfo, fastinfo._kernels as k; fastinfo.show_config(); print(k.dense_isa(), k.cpu_isa())"
    out = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    cpu = _kernels.cpu_isa()
    if order.index(isa) > order.index(cpu):
        assert out.returncode != 0 and "cannot run" in out.stderr  # the warning, raised as an error here
        return
    assert out.returncode == 0, out.stderr
    used, reported_cpu = out.stdout.split("\n")[-2].split()
    assert used == isa and reported_cpu == cpu
    assert f"FASTINFO_ISA={isa.upper()}" in out.stdout


def test_fastinfo_isa_unknown_value_warns_and_uses_the_best_clone():
    src = os.path.dirname(os.path.dirname(fi.__file__))
    env = dict(os.environ, FASTINFO_ISA="sse9", PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = "import warnings, fastinfo._kernels as k; print(k.dense_isa())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "FASTINFO_ISA='sse9'" in out.stderr and out.stdout.strip() == _kernels.cpu_isa()

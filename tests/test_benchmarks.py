"""The benchmark suite cannot rot: every asv benchmark runs once on its smallest size, and the
side-by-side comparison (``fastinfo._bench``) runs end to end on tiny sizes.

A peer that is not installed (e.g. PyTorch, never a test dependency) raises ``NotImplementedError``
in ``setup`` exactly as asv expects, and that case alone is skipped; fastinfo itself must always run.
"""
import csv
import importlib
import importlib.util
import inspect
import io
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastinfo import _kernels

# JIDT (a JVM through jpype) never starts inside the test process, which forks and may run under
# sanitizers; test_jidt_rows_in_a_subprocess runs the JIDT rows in a process of their own.
os.environ["FASTINFO_BENCH_NO_JVM"] = "1"

ASV_DIR = Path(__file__).resolve().parents[1] / "asv_bench"
PACKAGE = "fastinfo_asv_benchmarks"
MODULES = ["softmax", "distributions", "estimators", "sklearn", "linear", "scipy", "dynamics"]
PREFIXES = ("time_", "peakmem_", "mem_", "track_")


def _load_suite():
    if PACKAGE not in sys.modules:
        init = ASV_DIR / "benchmarks" / "__init__.py"
        spec = importlib.util.spec_from_file_location(
            PACKAGE, init, submodule_search_locations=[str(init.parent)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = package
        spec.loader.exec_module(package)
    return {name: importlib.import_module(f"{PACKAGE}.{name}") for name in MODULES}


SUITE = _load_suite()


@pytest.fixture(autouse=True)
def one_thread():
    """Run the smoke runs on one thread: this file checks that the suite works, not how fast.

    Shared CI runners are often oversubscribed, and OpenMP threads that spin-wait for a descheduled
    sibling make many tiny parallel calls slow; thread behaviour is tested in the family tests.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _benchmark_methods(cls):
    return [name for name, _ in inspect.getmembers(cls, inspect.isfunction) if name.startswith(PREFIXES)]


def _benchmark_classes():
    for module_name, module in SUITE.items():
        for name, cls in vars(module).items():
            if (isinstance(cls, type) and not name.startswith("_") and cls.__module__ == module.__name__
                    and _benchmark_methods(cls)):
                yield module_name, cls


def _cases():
    for module_name, cls in _benchmark_classes():
        smallest = cls.params[-1][0]
        for combo in itertools.product(*cls.params[:-1]):
            params = (*combo, smallest)
            yield pytest.param(cls, params, id=f"{module_name}.{cls.__name__}-" + "-".join(map(str, params)))


@pytest.mark.parametrize("cls, params", list(_cases()))
def test_benchmark_runs_once_on_smallest_size(cls, params):
    bench = cls()
    try:
        bench.setup(*params)
    except NotImplementedError as exc:
        if params[0] == "fastinfo":
            raise
        pytest.skip(f"peer {params[0]!r} not installed: {exc}")
    for method in _benchmark_methods(cls):
        getattr(bench, method)(*params)
    if hasattr(bench, "teardown"):
        bench.teardown(*params)


def test_every_module_has_benchmarks_and_sizes_ascend():
    classes = list(_benchmark_classes())
    assert {module for module, _ in classes} == set(MODULES)
    common = importlib.import_module(f"{PACKAGE}._common")
    for _, cls in classes:
        assert issubclass(cls, common.Benchmark)  # warm-up on the smallest size in setup
        assert cls.param_names[0] == "implementation" and cls.params[0][0] == "fastinfo"
        assert len(cls.params) == len(cls.param_names) == 3
        sizes = [np.prod(s) for s in cls.params[-1]]
        assert sizes == sorted(sizes), f"{cls.__name__}: the last parameter must ascend (smallest first)"
        assert any(m.startswith("time_") for m in _benchmark_methods(cls))


def test_fixed_workload_sizes_are_in_the_suite():
    softmax, distributions, estimators, sklearn, linear, scipy_dropin, dynamics = (SUITE[m] for m in MODULES)
    assert (4096, 32000) in softmax.LogSoftmax.params[-1]  # W1
    assert (4096, 32000) in softmax.SoftmaxCrossEntropy.params[-1]  # W2
    assert (2048, 32000) in softmax.SoftmaxKLDivergence.params[-1]  # W3
    assert (4096, 32000) in distributions.Entropy.params[-1]  # W4
    assert {10_000, 100_000, 1_000_000} <= set(estimators.MutualInfoKSG1D.params[-1])  # W5
    assert 20_000 in estimators.MutualInfoKSG4D.params[-1]  # W6
    assert (10_000, 50) in estimators.MutualInfoFeatures.params[-1]  # W7
    assert (10_000, 50) in sklearn.MutualInfoRegression.params[-1]
    assert (4096, 32000) in scipy_dropin.LogSumExpRows.params[-1]  # S1
    assert (4096, 32000) in scipy_dropin.LogSoftmaxRows.params[-1]  # S2
    assert (4096, 32000) in scipy_dropin.EntropyRows.params[-1]  # S3
    assert (100_000_000,) in scipy_dropin.LogSumExpWholeArray.params[-1]  # S4
    for cls in (softmax.LogSoftmax, softmax.SoftmaxCrossEntropy, softmax.SoftmaxKLDivergence, distributions.Entropy):
        assert {"fastinfo", "scipy", "torch"} <= set(cls.params[0])
    assert {"fastinfo", "sklearn", "ennemi"} <= set(estimators.MutualInfoKSG1D.params[0])
    assert (8192, 768, 50257) in linear.LinearCrossEntropy.params[-1]  # W8
    assert (8192, 768, 50257) in linear.LinearCrossEntropyWithGrad.params[-1]  # W9
    assert {"fastinfo", "torch", "numpy-product"} <= set(linear.LinearCrossEntropy.params[0])
    for cls in (dynamics.TransferEntropy, dynamics.ConditionalMutualInfo, dynamics.ActiveInformationStorage):
        assert 50_000 in cls.params[-1] and {"fastinfo", "jidt"} <= set(cls.params[0])  # W10-W12
    assert 10_000 in dynamics.TransferEntropyTest.params[-1]


def test_seeded_data_is_reproducible():
    common = importlib.import_module(f"{PACKAGE}._common")
    a = common.logits((4, 7), "float32", "W1")
    b = common.logits((4, 7), "float32", "W1")
    assert a.dtype == np.float32 and np.array_equal(a, b)
    x, y = common.gaussian_pair(2000, 1, "float64", "W5")
    assert abs(np.corrcoef(x, y)[0, 1] - 0.6) < 0.05
    assert np.isclose(np.std(x, ddof=1), 1.0)


# ----------------------------------------------------------------------------- compare / fastinfo bench


@pytest.fixture(scope="module")
def tiny_report():
    from fastinfo import _bench

    out = io.StringIO()
    old, sys.stdout = sys.stdout, out
    try:
        status = _bench.main(["--tiny", "--format", "json", "--threads", "1"])
    finally:
        sys.stdout = old
    assert status == 0
    return json.loads(out.getvalue())


def test_compare_runs_every_workload_and_peers_agree(tiny_report):
    rows = tiny_report["rows"]
    assert {r["workload"] for r in rows} == {f"W{i}" for i in range(1, 13)} | {f"S{i}" for i in range(1, 5)}
    for row in rows:
        if row["status"] == "not installed":
            assert row["peer_min"] is None and row["speedup"] is None
            continue
        assert row["status"] == "ok", row
        assert row["fastinfo_min"] > 0 and row["fastinfo_peak_extra_mib"] is not None
        if row["peer"] == "(none: fastinfo alone)":  # W8 at 65,536 tokens, the W10 test (smaller here)
            assert row["peer_min"] is None and row["speedup"] is None
            continue
        assert row["peer_min"] > 0
        if row["floor"]:  # the bare product: timed, its result not compared
            assert row["agrees"] is None and row["speedup"] == pytest.approx(row["peer_min"] / row["fastinfo_min"])
            continue
        assert row["speedup"] == pytest.approx(row["peer_min"] / row["fastinfo_min"])
        # Each peer computes the same quantity as fastinfo (no row compares different work).
        assert row["agrees"] is True, row
    # SciPy is a dependency, so the SciPy routes always run.
    scipy_rows = [r for r in rows if r["peer"].startswith("scipy")]
    assert len(scipy_rows) == 9 and all(r["status"] == "ok" for r in scipy_rows)  # W1-W3 f32, W4 f64 and f32, S1-S4
    dense = [r for r in rows if r["workload"] in ("W1", "W2", "W3", "W4")]
    assert all(r["fastinfo_gbps"] > 0 and r["copy_gbps"] > 0 and r["read_gbps"] > 0 for r in dense)
    # % of floor: compulsory bytes / time / the matching bandwidth (copy for W1, read otherwise)
    for r in dense:
        floor = r["copy_gbps"] if r["workload"] == "W1" else r["read_gbps"]
        assert r["floor_pct"] == pytest.approx(100 * r["fastinfo_gbps"] / floor)
    floors = [r for r in rows if r["floor"]]
    assert {r["peer"] for r in floors} >= {"numpy h @ W.T (floor)"} and all(r["workload"] == "W8" for r in floors)
    assert "fastinfo's C loops" in tiny_report["meta"]["memory bandwidth GB/s"]
    assert tiny_report["meta"]["dense kernels"] == _kernels.dense_simd()
    # every dense workload also on half-precision input (bfloat16 needs ml_dtypes), with its ratio
    # to fastinfo's float32 time of the same workload in the same run
    half = {(r["workload"], r["variant"], r["dtype"]) for r in dense if r["dtype"] in ("float16", "bfloat16")}
    assert {(w, v, "float16") for w, v in (("W1", ""), ("W1", "out="), ("W2", ""), ("W3", ""), ("W4", ""))} <= half
    for r in dense:
        reference = [f for f in dense if f["workload"] == r["workload"] and f["variant"] == r["variant"]
                     and f["dtype"] == "float32"][0]
        assert r["vs_float32"] == pytest.approx(r["fastinfo_min"] / reference["fastinfo_min"])


def test_memory_bandwidth_loops_read_and_copy_exactly():
    x = np.arange(1000.0) + 0.5
    for threads in (1, 3):
        assert _kernels.memory_read(x, threads) == pytest.approx(float(x.sum()))
        for offset in (0, 1, 3):  # unaligned destinations take plain stores for the head
            y = np.zeros(1003)
            _kernels.memory_copy(y[offset:offset + 1000], x, threads)
            assert np.array_equal(y[offset:offset + 1000], x) and not y[:offset].any()
    with pytest.raises(ValueError, match="y: shape"):
        _kernels.memory_copy(np.zeros(999), x, 1)


def test_compare_reports_missing_peers_without_crashing(monkeypatch):
    from fastinfo import _bench

    def missing():
        raise ModuleNotFoundError("No module named 'torch'")

    monkeypatch.setattr(_bench, "_import_torch", missing)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert _bench.main(["--tiny", "--only", "W1,W4", "--dtypes", "float32", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {r["workload"] for r in rows} == {"W1", "W4"}
    torch_rows = [r for r in rows if r["peer"].startswith("torch")]
    # W1, W1 out=, W4 float64 and float32
    assert len(torch_rows) == 4 and all(r["status"] == "not installed" for r in torch_rows)


def test_compare_table_and_bad_options(capsys):
    from fastinfo import _bench

    assert _bench.main(["--tiny", "--only", "W2", "-v"]) == 0
    text = capsys.readouterr().out
    assert "speed-up" in text and "copy GB/s" in text and "% of floor" in text and "W2 softmax_cross_entropy" in text
    assert "peak memory method" in text
    assert _bench.main(["--tiny", "--only", "W13"]) == 2
    assert _bench.main(["--tiny", "--threads", "0"]) == 2
    assert _bench.main(["--tiny", "--dtypes", "float8"]) == 2


def _load_dask_bench():
    path = Path(__file__).resolve().parent.parent / "asv_bench" / "dask_bench.py"
    spec = importlib.util.spec_from_file_location("fastinfo_dask_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dask_bench_projection_and_tables():
    pytest.importorskip("dask")
    bench = _load_dask_bench()
    # greedy list scheduling in priority order, each task paying the overhead; never below the
    # scheduler's serial time
    assert bench.project([1.0] * 4, [0] * 4, 2, 0.0) == 2.0
    assert bench.project([3.0, 1.0, 1.0, 1.0], [1, 0, 0, 0], 2, 0.0) == 3.0
    assert bench.project([1.0] * 4, [0] * 4, 1, 0.5) == 6.0
    assert bench.project([0.001] * 100, [0] * 100, 64, 0.01) == pytest.approx(1.0)
    # the cluster's chunks are the in-memory table's
    for kind, chunk in (("rows", 7), ("columns", 3)):
        local, _ = bench.build_table(kind, 20, 5, chunk)
        assert local.shape == (20, 5)
        func = bench.table_chunk if kind == "rows" else bench.feature_chunk
        if kind == "rows":
            assert np.array_equal(local[7:14], func(1, 1, 7, 5))
        else:
            assert np.array_equal(local[:, 3:], func(1, 1, 20, 2))


@pytest.mark.no_sanitizer  # a JVM does not run under AddressSanitizer's LD_PRELOAD
def test_jidt_rows_in_a_subprocess():
    pytest.importorskip("jpype", reason="JIDT's jpype1 is not installed (asv_bench/requirements-jidt.txt)")
    pytest.importorskip("idtxl", reason="idtxl-uv (JIDT's jar) is not installed")
    env = {k: v for k, v in os.environ.items() if k != "FASTINFO_BENCH_NO_JVM"}
    proc = subprocess.run([sys.executable, "-m", "fastinfo", "bench", "--tiny", "--threads", "1", "--only",
                           "W10,W11,W12", "--format", "json"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    jidt = [r for r in rows if r["peer"].startswith("JIDT")]
    if all(r["status"] == "not installed" for r in jidt):
        pytest.skip("JIDT did not start (no Java runtime?)")
    assert {r["workload"] for r in jidt} == {"W10", "W11", "W12"}
    for row in jidt:   # the same estimates as JIDT's, on JIDT's conventions
        assert row["status"] == "ok" and row["agrees"] is True and row["max_abs_diff"] < 1e-9, row

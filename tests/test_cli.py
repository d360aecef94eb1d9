"""The ``fastinfo`` command line, run as a subprocess (``python -m fastinfo``) on files made here."""
import csv
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fastinfo as fi
from fastinfo import _cli

PACKAGE_ROOT = os.path.dirname(os.path.dirname(fi.__file__))


def run_cli(*args, timeout=120, python_code=None):
    """Run ``python -m fastinfo ARGS`` against the package under test; return the CompletedProcess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    command = [sys.executable, "-m", "fastinfo"] if python_code is None else [sys.executable, "-c", python_code]
    return subprocess.run(command + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_json(*args, timeout=120):
    result = run_cli(*args, "--format", "json", timeout=timeout)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


class InProcess:
    """``fastinfo._cli.main(args)`` in this process (faster than a subprocess), shaped like CompletedProcess."""

    def __init__(self, capsys):
        self.capsys = capsys

    def __call__(self, *args):
        self.capsys.readouterr()
        status = _cli.main([str(a) for a in args])
        captured = self.capsys.readouterr()
        return subprocess.CompletedProcess(args, status, captured.out, captured.err)


@pytest.fixture
def cli(capsys):
    return InProcess(capsys)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fastinfo: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""


# =============================================================================
# help, version, bench
# =============================================================================


@pytest.mark.parametrize("command", [[], ["demo"], ["mi"], ["logits"], ["bench"]])
def test_help_for_every_subcommand(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert "Traceback" not in result.stderr
    if not command:
        for name in ("demo", "mi", "logits", "bench"):
            assert name in result.stdout


def test_version_and_no_command():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"fastinfo {fi.__version__}"
    result = run_cli()
    assert result.returncode == 2
    assert "usage:" in result.stdout


def test_unknown_subcommand_is_one_line():
    assert_one_line_error(run_cli("frobnicate"), "frobnicate")


def test_bench_without_bench_module():
    # None in sys.modules makes ``import fastinfo._bench`` fail as if the module were missing
    code = ("import sys; sys.modules['fastinfo._bench'] = None; from fastinfo._cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    assert_one_line_error(run_cli("bench", "--quick", python_code=code), "fastinfo._bench")
    result = run_cli("bench", "--help", python_code=code)
    assert result.returncode == 0 and "usage: fastinfo bench" in result.stdout


def test_main_returns_status_in_process(tmp_path, capsys):
    assert _cli.main(["mi", str(tmp_path / "missing.csv"), "--target", "y"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("fastinfo: error: table file not found")


# =============================================================================
# demo
# =============================================================================

DEMO_NAMES = {
    "mi_ksg1_d1_rho0.5", "mi_ksg2_d1_rho0.5", "mi_ksg1_d1_rho0.9", "mi_ksg2_d1_rho0.9",
    "mi_ksg1_d3_rho0.6", "mi_ksg2_d3_rho0.6", "entropy_knn_d1", "entropy_knn_d2", "mi_mixed",
    "mi_discrete", "logsumexp", "softmax_entropy", "softmax_cross_entropy", "softmax_kl_self", "softmax_kl_t2",
}


def _have(module):
    return importlib.util.find_spec(module) is not None


def test_demo_json_rows_and_values():
    data = run_json("demo", timeout=180)
    rows = {row["name"]: row for row in data["rows"]}
    assert set(rows) == DEMO_NAMES
    for row in rows.values():
        assert isinstance(row["estimate"], float), row
        assert row["seconds"] > 0
    # Analytic values of the Gaussian constructions.
    assert rows["mi_ksg1_d1_rho0.5"]["true"] == pytest.approx(-0.5 * math.log(1 - 0.25), rel=1e-12)
    assert rows["mi_ksg1_d3_rho0.6"]["true"] == pytest.approx(-1.5 * math.log(1 - 0.36), rel=1e-12)
    assert rows["entropy_knn_d1"]["true"] == pytest.approx(0.5 * math.log(2 * math.pi * math.e), rel=1e-12)
    # Estimators from 4000 samples land near the truth (statistical tolerance).
    for name in DEMO_NAMES:
        if name.startswith(("mi_ksg", "entropy_knn")):
            assert abs(rows[name]["estimate"] - rows[name]["true"]) < 0.15, rows[name]
    assert abs(rows["mi_mixed"]["estimate"] - rows["mi_mixed"]["true"]) < 0.06
    assert abs(rows["mi_discrete"]["estimate"] - rows["mi_discrete"]["true"]) < 0.01
    # Deterministic softmax quantities are exact up to float32 input rounding.
    for name in ("logsumexp", "softmax_entropy", "softmax_kl_t2"):
        assert rows[name]["estimate"] == pytest.approx(rows[name]["true"], rel=1e-5), rows[name]
    assert abs(rows["softmax_kl_self"]["estimate"]) < 1e-6
    assert abs(rows["softmax_cross_entropy"]["estimate"] - rows["softmax_cross_entropy"]["true"]) < 0.5
    # Peers are timed when installed.
    if _have("sklearn"):
        assert rows["mi_ksg1_d1_rho0.5"]["peer_seconds"] > 0
        assert rows["mi_ksg1_d1_rho0.5"]["speedup"] > 0
    if _have("scipy"):
        assert rows["softmax_cross_entropy"]["peer_seconds"] > 0
        assert rows["softmax_cross_entropy"]["peer_estimate"] == pytest.approx(
            rows["softmax_cross_entropy"]["estimate"], rel=1e-5)
    assert data["seconds"] < 60  # the demo's budget is 10 s on a quiet 2-core machine


def test_demo_table_and_csv():
    small = ["--samples", "400", "--tokens", "64", "--vocab", "300", "--repeats", "1", "--no-peers"]
    result = run_cli("demo", *small, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    header = result.stdout.splitlines()[2]
    for column in ("quantity", "true", "fastinfo", "time", "peer", "speed-up"):
        assert column in header
    for quantity in ("KSG-1, d=1 rho=0.5", "KSG-2, d=3 rho=0.6", "Kozachenko-Leonenko", "Ross", "plug-in",
                     "logsumexp", "H(softmax(logits))", "cross-entropy", "KL(p || p), mean", "KL(p || p at T=2)"):
        assert quantity in result.stdout
    result = run_cli("demo", *small, "--format", "csv", timeout=120)
    assert result.returncode == 0, result.stderr
    records = list(csv.DictReader(result.stdout.splitlines()))
    assert {r["name"] for r in records} == DEMO_NAMES
    assert all(r["peer"] == "" for r in records)


# =============================================================================
# mi
# =============================================================================


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(7)
    n = 400
    columns = {
        "signal": rng.normal(size=n),
        "weak": rng.normal(size=n),
        "noise": rng.normal(size=n),
    }
    animal = rng.choice(np.array(["cat", "dog", "bird"]), size=n)
    columns["y"] = 2.0 * columns["signal"] + 0.4 * columns["weak"] + 1.5 * (animal == "dog") \
        + 0.3 * rng.normal(size=n)
    path = tmp_path / "table.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["signal", "weak", "animal", "noise", "y"])
        for i in range(n):
            writer.writerow([repr(float(columns["signal"][i])), repr(float(columns["weak"][i])), animal[i],
                             repr(float(columns["noise"][i])), repr(float(columns["y"][i]))])
    return path, columns, animal


def test_mi_csv_matches_library(table):
    path, columns, animal = table
    data = run_json("mi", path, "--target", "y", "--discrete", "animal")
    _, codes = np.unique(animal, return_inverse=True)
    names = ["signal", "weak", "animal", "noise"]
    X = np.column_stack([columns["signal"], columns["weak"], codes.astype(float), columns["noise"]])
    expected = fi.mutual_info_features(X, columns["y"], k=3, discrete_features=[False, False, True, False])
    by_name = {c["column"]: c for c in data["columns"]}
    assert set(by_name) == set(names)
    for j, name in enumerate(names):
        assert by_name[name]["mi_nats"] == pytest.approx(expected[j], rel=1e-12, abs=1e-15)
        assert by_name[name]["mi_bits"] == pytest.approx(expected[j] / math.log(2), rel=1e-12, abs=1e-15)
    assert [c["rank"] for c in data["columns"]] == [1, 2, 3, 4]
    assert [c["column"] for c in data["columns"]] == [names[j] for j in np.argsort(-expected, kind="stable")]
    assert data["columns"][0]["column"] == "signal"
    assert by_name["animal"]["kind"] == "discrete"
    assert data["rows"] == 400 and data["k"] == 3


def test_mi_discrete_string_target_top_and_k(table):
    path, columns, animal = table
    data = run_json("mi", path, "--target", "animal", "--discrete", "animal", "--k", "5", "--top", "2")
    _, codes = np.unique(animal, return_inverse=True)
    X = np.column_stack([columns["signal"], columns["weak"], columns["noise"], columns["y"]])
    expected = fi.mutual_info_features(X, codes, k=5, discrete_target=True)
    assert data["target_kind"] == "discrete"
    assert len(data["columns"]) == 2
    order = np.argsort(-expected, kind="stable")[:2]
    assert [c["column"] for c in data["columns"]] == [["signal", "weak", "noise", "y"][j] for j in order]
    assert data["columns"][0]["mi_nats"] == pytest.approx(expected[order[0]], rel=1e-12)


def test_mi_table_and_csv_formats(table):
    path, _, _ = table
    result = run_cli("mi", path, "--target", "y", "--discrete", "animal")
    assert result.returncode == 0, result.stderr
    assert "MI (nats)" in result.stdout and "MI (bits)" in result.stdout and "signal" in result.stdout
    result = run_cli("mi", path, "--target", "y", "--discrete", "animal", "--format", "csv")
    records = list(csv.DictReader(result.stdout.splitlines()))
    assert [r["rank"] for r in records] == ["1", "2", "3", "4"]
    assert float(records[0]["mi_bits"]) == pytest.approx(float(records[0]["mi_nats"]) / math.log(2), rel=1e-12)


def test_mi_npy_and_npz(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3))
    y = X[:, 1] + 0.2 * rng.normal(size=300)
    expected = fi.mutual_info_features(X, y, k=3)
    np.save(tmp_path / "t.npy", np.column_stack([X, y]))
    np.savez(tmp_path / "single.npz", np.column_stack([X, y]))
    np.savez(tmp_path / "named.npz", a=X[:, 0], b=X[:, 1], c=X[:, 2], target=y)
    for path, target, names in ((tmp_path / "t.npy", "3", ["0", "1", "2"]),
                                (tmp_path / "single.npz", "3", ["0", "1", "2"]),
                                (tmp_path / "named.npz", "target", ["a", "b", "c"])):
        data = run_json("mi", path, "--target", target)
        got = {c["column"]: c["mi_nats"] for c in data["columns"]}
        assert got == pytest.approx(dict(zip(names, expected)), rel=1e-12)
        assert data["columns"][0]["column"] == names[1]


def test_mi_errors(table, tmp_path, cli):
    path, _, _ = table
    # through the real entry point: one line, exit status 2, no traceback
    assert_one_line_error(run_cli("mi", tmp_path / "missing.csv", "--target", "y"), "not found", "missing.csv")
    assert_one_line_error(run_cli("mi", path, "--target", "y"), "'animal'", "not numeric")
    # the rest in-process (same code path, faster)
    assert_one_line_error(cli("mi", path, "--target", "nope"), "'nope'")
    assert_one_line_error(cli("mi", path, "--target", "y", "--discrete", "animal,zebra"), "'zebra'")
    assert_one_line_error(cli("mi", path, "--target", "y", "--discrete", "animal", "--k", "0"), "--k")
    assert_one_line_error(cli("mi", path, "--target", "y", "--discrete", "animal", "--k", "400"), "k")
    assert_one_line_error(cli("mi", path, "--target", "y", "--top", "zero"), "--top")
    assert_one_line_error(cli("mi", path), "--target")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,y\n1,2,3\n4,5\n")
    assert_one_line_error(cli("mi", ragged, "--target", "y"), "line 3")
    np.savez(tmp_path / "mismatch.npz", a=np.zeros(10), y=np.zeros(12))
    assert_one_line_error(cli("mi", tmp_path / "mismatch.npz", "--target", "y"), "different numbers of rows")
    np.save(tmp_path / "one_d.npy", np.zeros(10))
    assert_one_line_error(cli("mi", tmp_path / "one_d.npy", "--target", "0"), "2-D")
    missing_value = tmp_path / "missing_value.csv"
    missing_value.write_text("a,y\n1,2\n,3\n2,4\n5,1\n")
    assert_one_line_error(cli("mi", missing_value, "--target", "y"), "'a'", "empty cell")
    if not _have("pyarrow"):
        (tmp_path / "t.parquet").write_bytes(b"PAR1")
        assert_one_line_error(cli("mi", tmp_path / "t.parquet", "--target", "y"), "pyarrow")


# =============================================================================
# logits
# =============================================================================


@pytest.fixture
def logits_files(tmp_path):
    rng = np.random.default_rng(11)
    n, c = 1000, 37
    logits = 3.0 * rng.normal(size=(n, c))
    other = logits + rng.normal(size=(n, c))
    targets = rng.integers(0, c, size=n)
    targets[::9] = -100
    np.save(tmp_path / "logits.npy", logits)
    np.save(tmp_path / "other.npy", other)
    np.save(tmp_path / "targets.npy", targets)
    return tmp_path, logits, other, targets


def _expected_report(logits, other, targets, temperature=1.0):
    keep = targets != -100
    loss = fi.softmax_cross_entropy(logits, targets, ignore_index=-100, reduction="none", temperature=temperature)
    mean = fi.softmax_cross_entropy(logits, targets, ignore_index=-100, temperature=temperature)
    kept = np.asarray(loss, dtype=np.float64)[keep]
    se = kept.std(ddof=1) / math.sqrt(kept.size)
    entropy = np.asarray(fi.softmax_entropy(logits, temperature=temperature), dtype=np.float64)[keep].mean()
    report = {"tokens": int(keep.sum()), "ignored": int((~keep).sum()), "cross_entropy": mean,
              "cross_entropy_se": se, "perplexity": math.exp(mean),
              "perplexity_low": math.exp(mean - 1.96 * se), "perplexity_high": math.exp(mean + 1.96 * se),
              "entropy": entropy}
    if other is not None:
        kl_pq = np.asarray(fi.softmax_kl_divergence(logits, other, temperature=temperature), dtype=np.float64)
        kl_qp = np.asarray(fi.softmax_kl_divergence(other, logits, temperature=temperature), dtype=np.float64)
        report.update({
            "against_cross_entropy": fi.softmax_cross_entropy(other, targets, ignore_index=-100,
                                                              temperature=temperature),
            "kl_logits_against": kl_pq[keep].mean(),
            "kl_against_logits": kl_qp[keep].mean(),
            "top1_agreement": np.mean((logits.argmax(-1) == other.argmax(-1))[keep]),
        })
    return report


def _check_report(data, expected, rel=1e-12):
    for key, value in expected.items():
        if isinstance(value, (int, np.integer)):
            assert data[key] == value, key
        else:
            assert data[key] == pytest.approx(float(value), rel=rel), key


@pytest.mark.parametrize("chunk_rows", [7, 128, 100000])
def test_logits_streamed_equals_in_memory(logits_files, chunk_rows):
    path, logits, other, targets = logits_files
    data = run_json("logits", path / "logits.npy", path / "targets.npy", "--ignore-index", "-100",
                    "--against", path / "other.npy", "--chunk-rows", chunk_rows)
    expected = _expected_report(logits, other, targets)
    _check_report(data, expected)
    # the acceptance criterion: mean CE equals the in-memory reduction="mean" to 1e-12 relative
    assert abs(data["cross_entropy"] - expected["cross_entropy"]) <= 1e-12 * abs(expected["cross_entropy"])
    assert data["rows"] == 1000 and data["classes"] == 37


def test_logits_temperature_float32_and_nd_layouts(logits_files):
    path, logits, _, targets = logits_files
    data = run_json("logits", path / "logits.npy", path / "targets.npy", "--ignore-index", "-100",
                    "--temperature", "2.5", "--chunk-rows", "100")
    _check_report(data, _expected_report(logits, None, targets, temperature=2.5))

    logits32 = logits.astype(np.float32)
    np.save(path / "logits32.npy", logits32)
    data = run_json("logits", path / "logits32.npy", path / "targets.npy", "--ignore-index", "-100",
                    "--chunk-rows", "99")
    # float32 per-row losses are summed in float64 after rounding to float32, so the streamed mean
    # agrees with the in-memory mean (accumulated before rounding) to float32 precision
    _check_report(data, _expected_report(logits32, None, targets), rel=1e-6)

    # N-D logits with the class axis last, C order and Fortran order on disk; flat targets too
    expected = _expected_report(logits, None, targets)
    cube = logits.reshape(10, 100, 37)
    np.save(path / "cube.npy", cube)
    np.save(path / "cube_f.npy", np.asfortranarray(cube))
    np.save(path / "targets2d.npy", targets.reshape(10, 100))
    np.save(path / "targets2d_f.npy", np.asfortranarray(targets.reshape(10, 100)))
    for logits_name, targets_name in (("cube.npy", "targets2d.npy"), ("cube_f.npy", "targets2d_f.npy"),
                                      ("cube.npy", "targets.npy")):
        data = run_json("logits", path / logits_name, path / targets_name, "--ignore-index", "-100",
                        "--chunk-rows", "230")
        _check_report(data, expected)


def test_logits_table_and_csv(logits_files):
    path, _, _, _ = logits_files
    result = run_cli("logits", path / "logits.npy", path / "targets.npy", "--ignore-index", "-100",
                     "--against", path / "other.npy")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for label in ("tokens", "cross-entropy", "perplexity", "predictive entropy", "KL(logits || against)",
                  "KL(against || logits)", "top-1 agreement"):
        assert label in result.stdout
    result = run_cli("logits", path / "logits.npy", path / "targets.npy", "--ignore-index", "-100",
                     "--format", "csv")
    records = {r["quantity"]: r["value"] for r in csv.DictReader(result.stdout.splitlines())}
    assert int(records["tokens"]) == 888
    assert float(records["perplexity"]) == pytest.approx(math.exp(float(records["cross_entropy"])), rel=1e-12)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB is Linux behaviour")
def test_logits_memory_bounded_by_chunk(tmp_path):
    rows, classes = 24000, 1000  # 96 MB of float32 logits
    logits = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(rows, classes))
    rng = np.random.default_rng(5)
    for start in range(0, rows, 4000):
        logits[start:start + 4000] = rng.standard_normal((4000, classes), dtype=np.float32)
    logits.flush()
    del logits
    np.save(tmp_path / "big_targets.npy", rng.integers(0, classes, size=rows))
    np.save(tmp_path / "small.npy", np.zeros((10, classes), dtype=np.float32))
    np.save(tmp_path / "small_targets.npy", np.zeros(10, dtype=np.int64))
    code = ("import sys, resource; from fastinfo._cli import main; status = main(sys.argv[1:]); "
            "sys.stdout.flush(); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
            "sys.exit(status)")

    def peak_kib(name, targets):
        result = run_cli("logits", tmp_path / name, tmp_path / targets, "--chunk-rows", "500", "--format", "json",
                         python_code=code)
        assert result.returncode == 0, result.stderr
        return int(result.stderr.strip().splitlines()[-1]), json.loads(result.stdout)

    baseline, _ = peak_kib("small.npy", "small_targets.npy")
    peak, data = peak_kib("big.npy", "big_targets.npy")
    assert data["tokens"] == rows
    assert peak - baseline < 48 * 1024, (peak, baseline)  # far below the 96 MB file


def test_logits_errors(logits_files, cli):
    path, logits, _, targets = logits_files
    L, T = path / "logits.npy", path / "targets.npy"
    # through the real entry point: one line, exit status 2, no traceback
    assert_one_line_error(run_cli("logits", path / "nope.npy", T), "not found", "nope.npy")
    # -100 is out of range when it is not declared as --ignore-index; the message names the value
    assert_one_line_error(run_cli("logits", L, T), "-100")
    # the rest in-process (same code path, faster)
    assert_one_line_error(cli("logits", L, path / "nope.npy"), "not found", "nope.npy")
    (path / "text.npy").write_text("not an array\n")
    assert_one_line_error(cli("logits", path / "text.npy", T), "not a .npy file")
    bad = targets.copy()
    bad[5] = 37
    np.save(path / "bad_targets.npy", bad)
    assert_one_line_error(cli("logits", L, path / "bad_targets.npy", "--ignore-index", "-100"), "37")
    np.save(path / "short_targets.npy", targets[:10])
    assert_one_line_error(cli("logits", L, path / "short_targets.npy"), "(10,)", "(1000, 37)")
    np.save(path / "float_targets.npy", targets.astype(np.float64))
    assert_one_line_error(cli("logits", L, path / "float_targets.npy"), "integer")
    np.save(path / "one_d.npy", logits[0])
    assert_one_line_error(cli("logits", path / "one_d.npy", T), "2-D")
    np.save(path / "narrow.npy", logits[:, :10])
    assert_one_line_error(cli("logits", L, T, "--ignore-index", "-100", "--against", path / "narrow.npy"),
                          "--against", "(1000, 10)")
    assert_one_line_error(cli("logits", L, T, "--chunk-rows", "0"), "--chunk-rows")
    assert_one_line_error(cli("logits", L, T, "--temperature", "-1"), "--temperature")
    assert_one_line_error(cli("logits", L, T, "--ignore-index", "x"), "--ignore-index")
    assert_one_line_error(cli("logits", L), "TARGETS")


# --------------------------------------------------------------------------- half precision, safetensors


def _write_safetensors(path, tensors, header_extra=None):
    """A .safetensors file written by hand from the format's definition (8-byte little-endian header
    length, JSON header of dtype / shape / data_offsets, the bytes), so the reader is tested without
    the safetensors package; ``tensors`` maps names to ``(dtype name, array)``."""
    header, blobs, offset = {}, [], 0
    for name, (dtype_name, arr) in tensors.items():
        data = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype_name, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header.update(header_extra or {})
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def _half_dtypes():
    try:
        import ml_dtypes
    except ImportError:
        return [np.float16]
    return [np.float16, ml_dtypes.bfloat16]


@pytest.mark.parametrize("dtype", _half_dtypes(), ids=lambda d: np.dtype(d).name)
def test_logits_half_precision_npy_read_as_they_are(logits_files, dtype):
    """float16 .npy and bfloat16 .npy (numpy.save writes ml_dtypes' bfloat16 as V2) give the
    in-memory results of the same half-precision arrays, streamed in chunks."""
    path, logits, other, targets = logits_files
    half, other_half = logits.astype(dtype), other.astype(dtype)
    np.save(path / "half.npy", half)
    np.save(path / "other_half.npy", other_half)
    expected = _expected_report(half, other_half, targets)
    for chunk_rows in (7, 1000):
        data = run_json("logits", path / "half.npy", path / "targets.npy", "--ignore-index", "-100",
                        "--against", path / "other_half.npy", "--chunk-rows", chunk_rows)
        # per-row float32 losses summed in float64: float32 precision against the in-memory mean
        _check_report(data, expected, rel=1e-6)


def test_logits_safetensors_hand_written(logits_files, cli):
    path, logits, other, targets = logits_files
    bits16 = logits.astype(np.float16)
    # bfloat16 bits by rounding float32 to nearest even (no ml_dtypes needed)
    u = logits.astype(np.float32).view(np.uint32)
    bf_bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    bf_values = (bf_bits.astype(np.uint32) << 16).view(np.float32)
    f = path / "eval.safetensors"
    _write_safetensors(f, {"logits": ("BF16", bf_bits), "labels": ("I64", targets), "f16": ("F16", bits16),
                           "f32": ("F32", logits.astype(np.float32)), "f64": ("F64", logits),
                           "probs": ("F32", np.abs(logits).astype(np.float32))},
                       {"__metadata__": {"format": "np"}})
    data = run_json("logits", f, f, "--key", "logits", "--targets-key", "labels", "--ignore-index", "-100",
                    "--chunk-rows", 64)
    _check_report(data, _expected_report(bf_values, None, targets), rel=1e-6)   # bfloat16 values, exactly
    for key, values in (("f16", bits16), ("f32", logits.astype(np.float32)), ("f64", logits)):
        data = run_json("logits", f, path / "targets.npy", "--key", key, "--ignore-index", "-100",
                        "--against", path / "other.npy", "--chunk-rows", 100)
        _check_report(data, _expected_report(values, other, targets), rel=1e-6)
    single = path / "single.safetensors"
    _write_safetensors(single, {"only": ("F16", bits16)})
    _check_report(run_json("logits", single, path / "targets.npy", "--ignore-index", "-100"),
                  _expected_report(bits16, None, targets), rel=1e-6)
    # errors: one line each, naming the option or the tensor
    assert_one_line_error(cli("logits", f, path / "targets.npy"), "6 tensors", "--key")
    assert_one_line_error(cli("logits", f, path / "targets.npy", "--key", "nope"), "'nope'", "'labels'")
    assert_one_line_error(cli("logits", f, f, "--key", "f16", "--targets-key", "f32"), "integer", "float32")
    assert_one_line_error(cli("logits", path / "logits.npy", path / "targets.npy", "--key", "x"), "--key", ".npy")
    bad = path / "bad.safetensors"
    bad.write_bytes((40).to_bytes(8, "little") + b"{not json" + b" " * 31)
    assert_one_line_error(cli("logits", bad, path / "targets.npy"), "not JSON")
    _write_safetensors(bad, {"x": ("C64", np.zeros((2, 3), np.complex64))})
    assert_one_line_error(cli("logits", bad, path / "targets.npy"), "C64")
    _write_safetensors(bad, {"x": ("F32", np.zeros((2, 3), np.float32))})
    raw = bad.read_bytes()
    bad.write_bytes(raw[:-8])                                       # truncated data
    assert_one_line_error(cli("logits", bad, path / "targets.npy"), "does not fit")


def test_logits_safetensors_written_by_the_safetensors_package(logits_files):
    st_numpy = pytest.importorskip("safetensors.numpy")
    path, logits, _, targets = logits_files
    tensors = {"logits16": logits.astype(np.float16), "labels": targets, "logits32": logits.astype(np.float32)}
    try:
        import ml_dtypes

        tensors["logits_bf16"] = logits.astype(ml_dtypes.bfloat16)
    except ImportError:
        pass
    f = path / "pkg.safetensors"
    st_numpy.save_file(tensors, str(f))
    for key, values in tensors.items():
        if key == "labels":
            continue
        data = run_json("logits", f, f, "--key", key, "--targets-key", "labels", "--ignore-index", "-100",
                        "--chunk-rows", 333)
        _check_report(data, _expected_report(values, None, targets), rel=1e-6)


@pytest.fixture
def hidden_files(tmp_path):
    rng = np.random.default_rng(21)
    hidden = rng.standard_normal((1000, 24))
    head = rng.standard_normal((37, 24)) * 0.6
    bias = rng.standard_normal(37)
    other = rng.standard_normal((1000, 9))
    other_head = rng.standard_normal((37, 9))
    targets = rng.integers(0, 37, size=1000)
    targets[::9] = -100
    for name, value in dict(hidden=hidden, head=head, bias=bias, other=other, other_head=other_head,
                            targets=targets).items():
        np.save(tmp_path / f"{name}.npy", value)
    return tmp_path, hidden, head, bias, other, other_head, targets


@pytest.mark.parametrize("chunk_rows", [7, 128, 100000])
def test_logits_from_hidden_states_equals_the_logits_report(hidden_files, chunk_rows):
    path, hidden, head, bias, other, other_head, targets = hidden_files
    data = run_json("logits", "--head", path / "head.npy", "--bias", path / "bias.npy", path / "hidden.npy",
                    path / "targets.npy", "--ignore-index", "-100", "--against", path / "other.npy",
                    "--against-head", path / "other_head.npy", "--chunk-rows", chunk_rows, "--temperature", "1.5")
    expected = _expected_report(hidden @ head.T + bias, other @ other_head.T, targets, temperature=1.5)
    _check_report(data, expected, rel=1e-10)
    assert data["rows"] == 1000 and data["classes"] == 37 and data["hidden_size"] == 24
    assert data["head"].endswith("head.npy") and data["against_head"].endswith("other_head.npy")


def test_logits_from_hidden_states_shared_head_table_and_float32(hidden_files):
    path, hidden, head, bias, other, _, targets = hidden_files
    # --against without --against-head: the second model shares the head and bias
    shared = path / "shared.npy"
    np.save(shared, hidden[::-1].copy())
    data = run_json("logits", "--head", path / "head.npy", "--bias", path / "bias.npy", path / "hidden.npy",
                    path / "targets.npy", "--ignore-index", "-100", "--against", shared)
    _check_report(data, _expected_report(hidden @ head.T + bias, hidden[::-1] @ head.T + bias, targets), rel=1e-10)
    np.save(path / "hidden32.npy", hidden.astype(np.float32))
    np.save(path / "head32.npy", head.astype(np.float32))
    data = run_json("logits", "--head", path / "head32.npy", path / "hidden32.npy", path / "targets.npy",
                    "--ignore-index", "-100", "--chunk-rows", "99")
    logits32 = hidden.astype(np.float32) @ head.astype(np.float32).T
    _check_report(data, _expected_report(logits32, None, targets), rel=1e-5)
    result = run_cli("logits", "--head", path / "head.npy", path / "hidden.npy", path / "targets.npy",
                     "--ignore-index", "-100", "--against", path / "other.npy", "--against-head",
                     path / "other_head.npy")
    assert result.returncode == 0, result.stderr
    for label in ("hidden states", "head", "cross-entropy", "perplexity", "predictive entropy",
                  "KL(logits || against)", "top-1 agreement"):
        assert label in result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB is Linux behaviour")
def test_logits_from_hidden_states_memory_bounded(tmp_path):
    rows, d, classes = 24000, 64, 5000  # the logits would be 458 MiB of float32
    rng = np.random.default_rng(6)
    hidden = np.lib.format.open_memmap(tmp_path / "hidden.npy", mode="w+", dtype=np.float32, shape=(rows, d))
    hidden[:] = rng.standard_normal((rows, d), dtype=np.float32)
    hidden.flush()
    del hidden
    np.save(tmp_path / "head.npy", rng.standard_normal((classes, d), dtype=np.float32) * 0.2)
    np.save(tmp_path / "targets.npy", rng.integers(0, classes, size=rows))
    np.save(tmp_path / "small.npy", np.zeros((10, d), dtype=np.float32))
    np.save(tmp_path / "small_targets.npy", np.zeros(10, dtype=np.int64))
    code = ("import sys, resource; from fastinfo._cli import main; status = main(sys.argv[1:]); "
            "sys.stdout.flush(); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
            "sys.exit(status)")

    def peak_kib(name, targets):
        result = run_cli("logits", "--head", tmp_path / "head.npy", tmp_path / name, tmp_path / targets,
                         "--format", "json", python_code=code)
        assert result.returncode == 0, result.stderr
        return int(result.stderr.strip().splitlines()[-1]), json.loads(result.stdout)

    baseline, _ = peak_kib("small.npy", "small_targets.npy")
    peak, data = peak_kib("hidden.npy", "targets.npy")
    assert data["tokens"] == rows and math.isfinite(data["cross_entropy"])
    assert peak - baseline < 48 * 1024, (peak, baseline)


def test_logits_from_hidden_states_errors(hidden_files, cli):
    path, *_ = hidden_files
    H, T, W = path / "hidden.npy", path / "targets.npy", path / "head.npy"
    assert_one_line_error(run_cli("logits", "--head", path / "nope.npy", H, T), "not found", "nope.npy")
    assert_one_line_error(cli("logits", H, T, "--bias", path / "bias.npy"), "--bias", "--head")
    assert_one_line_error(cli("logits", "--head", W, H, T, "--against-head", W), "--against")
    assert_one_line_error(cli("logits", "--head", path / "other_head.npy", H, T), "(37, 9)", "d = 24")
    assert_one_line_error(cli("logits", "--head", W, H, T, "--bias", path / "targets.npy"), "--bias", "(37,)")
    assert_one_line_error(cli("logits", "--head", W, H, T, "--ignore-index", "-100", "--against",
                              path / "other.npy"), "--against", "d = 9")
    np.save(path / "short_head.npy", np.zeros((30, 9)))
    assert_one_line_error(cli("logits", "--head", W, H, T, "--ignore-index", "-100", "--against",
                              path / "other.npy", "--against-head", path / "short_head.npy"), "vocabulary")
    assert_one_line_error(cli("logits", "--head", W, H, T), "-100")
    np.save(path / "short_targets.npy", np.zeros(10, dtype=int))
    assert_one_line_error(cli("logits", "--head", W, H, path / "short_targets.npy"), "(10,)", "(1000, 24)")


def test_progress_bar_disabled_by_quiet_or_without_terminal(capsys):
    import argparse

    # stderr is captured here (not a terminal): no bar either way; --quiet always disables it
    assert _cli.progress(10, "x", argparse.Namespace(quiet=False)).disable
    assert _cli.progress(10, "x", argparse.Namespace(quiet=True)).disable

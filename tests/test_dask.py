"""Dask support: every Dask result against the in-memory NumPy result.

Chunkings include uneven row chunks and chunks along the class axis (which the Dask layer
must rechunk); schedulers are the threaded one and a two-process ``dask.distributed``
``LocalCluster`` started here.
"""
import logging
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.exceptions import AxisError
from numpy.testing import assert_allclose, assert_array_equal

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

from dask.core import get_dependencies  # noqa: E402

import fastinfo as fi  # noqa: E402
from fastinfo import _dask as fastinfo_dask  # noqa: E402

SRC = str(Path(fi.__file__).resolve().parent.parent)

# dask.distributed warns when a graph carries large embedded data ("Sending large graph of size
# ..."): no fastinfo call may do that (its inputs travel as chunks or scattered futures). The
# distributed fixtures below also lower the warning's threshold so that the small arrays of these
# tests would trip it if they were embedded.
pytestmark = pytest.mark.filterwarnings("error:Sending large graph:UserWarning")

N_ROWS, N_CLASSES = 53, 13

# (row chunks, class chunks): one chunk; even rows; uneven rows; class axis split (rechunked)
CHUNKINGS = [
    ((N_ROWS,), (N_CLASSES,)),
    (7, N_CLASSES),
    ((20, 3, 30), (N_CLASSES,)),
    ((1, 25, 27), (5, 8)),
    (10, 4),
]
DTYPES = [np.float32, np.float64]


def rtol_for(dtype):
    return 1e-12 if np.dtype(dtype) == np.float64 else 1e-6


def threads(x):
    return dask.compute(x, scheduler="threads")[0]


def assert_grad_close(grad, expected, dtype):
    """The "mean" gradient is the chunk's "sum" gradient over the global denominator: the
    same to ~1 ulp, and to rounding relative to the gradient's scale where entries cancel."""
    assert grad.dtype == expected.dtype and grad.shape == expected.shape
    scale = float(np.max(np.abs(expected), initial=0.0))
    assert_allclose(grad, expected, rtol=4 * rtol_for(dtype), atol=rtol_for(dtype) * scale)


def check_close(lazy_result, expected, dtype, *, reduction=False, compute=threads, reduction_rtol=1e-12):
    value = compute(lazy_result)
    if reduction:
        # float64 accumulation for both dtypes: only the combine order differs
        assert np.ndim(value) == 0 and isinstance(value, float)  # numpy.float64
        assert_allclose(float(value), expected, rtol=reduction_rtol, atol=0)
    else:
        assert value.dtype == np.asarray(expected).dtype
        assert value.shape == np.shape(expected)
        assert_allclose(value, expected, rtol=rtol_for(dtype), atol=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20240801)
    logits = 3.0 * rng.standard_normal((N_ROWS, N_CLASSES))
    logits_q = 3.0 * rng.standard_normal((N_ROWS, N_CLASSES))
    target = rng.integers(0, N_CLASSES, N_ROWS)
    target[::4] = -100
    target_probs = rng.random((N_ROWS, N_CLASSES))
    target_probs /= target_probs.sum(axis=1, keepdims=True)
    p = rng.random((N_ROWS, N_CLASSES))
    p[p < 0.1] = 0.0
    q = rng.random((N_ROWS, N_CLASSES)) + 0.01
    weight = rng.random(N_CLASSES) + 0.5
    return dict(logits=logits, logits_q=logits_q, target=target, target_probs=target_probs,
                p=p, q=q, weight=weight)


def as_dask(arr, chunks):
    return da.from_array(arr, chunks=chunks)


# =============================================================================
# Dispatch and import
# =============================================================================


def test_import_does_not_import_dask():
    code = (
        "import sys, numpy as np, fastinfo as fi\n"
        "fi.show_config\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_numpy_path_unchanged(data):
    import inspect

    from fastinfo import _softmax

    assert inspect.unwrap(fi.softmax) is inspect.unwrap(_softmax.softmax)
    assert fi.softmax.__name__ == "softmax" and fi.softmax.__doc__ == _softmax.softmax.__doc__
    result = fi.softmax_entropy(data["logits"])
    assert isinstance(result, np.ndarray)
    assert_array_equal(result, _softmax.softmax_entropy(data["logits"]))
    assert type(fi.softmax_cross_entropy(data["logits"], data["target"], ignore_index=-100)) is float
    # the public functions pickle by reference (stdlib pickle, e.g. for multiprocessing)
    assert pickle.loads(pickle.dumps(fi.softmax_cross_entropy)) is fi.softmax_cross_entropy


def test_is_dask_array():
    from fastinfo._dask import is_dask_array

    assert is_dask_array(da.zeros(3))
    assert not is_dask_array(np.zeros(3))
    assert not is_dask_array([1.0, 2.0])


# =============================================================================
# Softmax family
# =============================================================================


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["logsumexp", "log_softmax", "softmax", "softmax_entropy"])
def test_single_input(name, dtype, chunks, data):
    logits = data["logits"].astype(dtype)
    lazy = getattr(fi, name)(as_dask(logits, chunks))
    assert isinstance(lazy, da.Array)
    check_close(lazy, getattr(fi, name)(logits), dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.bool_])
def test_dtype_policy(dtype, data):
    x = (data["logits"] * 3).astype(dtype)
    for name in ["softmax_entropy", "log_softmax"]:
        expected = getattr(fi, name)(x)
        lazy = getattr(fi, name)(as_dask(x, (10, 5)))
        assert lazy.dtype == expected.dtype
        assert_array_equal(threads(lazy), expected)
    p = np.abs(x)
    assert_array_equal(threads(fi.entropy(as_dask(p, 10))), fi.entropy(p))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_three_dimensional_any_axis(axis, data):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 7, 9))
    xd = as_dask(x, (4, 3, 5))
    for name, kwargs in [("logsumexp", {}), ("log_softmax", {"temperature": 0.7}),
                         ("softmax_entropy", {"base": 2})]:
        check_close(getattr(fi, name)(xd, axis=axis, **kwargs), getattr(fi, name)(x, axis=axis, **kwargs), np.float64)
    check_close(fi.logsumexp(xd, axis=axis, keepdims=True), fi.logsumexp(x, axis=axis, keepdims=True), np.float64)


def test_one_dimensional(data):
    x = data["logits"][0]
    xd = as_dask(x, 5)
    value = threads(fi.logsumexp(xd))
    assert value.shape == () and value == pytest.approx(float(fi.logsumexp(x)), rel=1e-12)
    check_close(fi.softmax(xd), fi.softmax(x), np.float64)
    check_close(fi.softmax_cross_entropy(xd, 3, reduction="sum"), fi.softmax_cross_entropy(x, 3, reduction="sum"),
                np.float64, reduction=True)


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("options", [
    {},
    {"ignore_index": -100, "weight": True},
    {"ignore_index": -100, "label_smoothing": 0.1, "temperature": 1.7},
])
def test_cross_entropy_integer_target(options, reduction, dtype, chunks, data):
    options = dict(options)
    if options.pop("weight", False):
        options["weight"] = data["weight"]
    logits = data["logits"].astype(dtype)
    target = data["target"].copy()
    if "ignore_index" not in options:
        target[target < 0] = 1
    logits_d, target_d = as_dask(logits, chunks), as_dask(target, chunks[0])
    expected = fi.softmax_cross_entropy(logits, target, reduction=reduction, **options)
    lazy = fi.softmax_cross_entropy(logits_d, target_d, reduction=reduction, **options)
    assert isinstance(lazy, da.Array)
    check_close(lazy, expected, dtype, reduction=reduction != "none")

    loss_expected, grad_expected = fi.softmax_cross_entropy_with_grad(logits, target, reduction=reduction, **options)
    loss, grad = fi.softmax_cross_entropy_with_grad(logits_d, target_d, reduction=reduction, **options)
    assert isinstance(loss, da.Array) and isinstance(grad, da.Array)
    loss, grad = dask.compute(loss, grad, scheduler="threads")
    check_close(loss, loss_expected, dtype, reduction=reduction != "none", compute=lambda v: v)
    assert_grad_close(grad, grad_expected, dtype)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("chunks", [(7, N_CLASSES), ((20, 3, 30), (5, 8))])
def test_cross_entropy_probability_target(reduction, chunks, data):
    logits, target = data["logits"], data["target_probs"]
    options = {"label_smoothing": 0.2, "weight": data["weight"]}
    expected = fi.softmax_cross_entropy(logits, target, reduction=reduction, **options)
    lazy = fi.softmax_cross_entropy(as_dask(logits, chunks), as_dask(target, (11, 6)), reduction=reduction, **options)
    check_close(lazy, expected, np.float64, reduction=reduction != "none")
    loss, grad = fi.softmax_cross_entropy_with_grad(as_dask(logits, chunks), target, reduction=reduction, **options)
    loss_expected, grad_expected = fi.softmax_cross_entropy_with_grad(logits, target, reduction=reduction, **options)
    check_close(loss, loss_expected, np.float64, reduction=reduction != "none")
    assert_grad_close(threads(grad), grad_expected, np.float64)


def test_cross_entropy_dask_weight_and_class_axis_first(data):
    logits = np.ascontiguousarray(data["logits"].T)  # (C, N): class axis 0
    target, weight = data["target"], data["weight"]
    options = {"ignore_index": -100}
    for reduction in ["none", "mean"]:
        expected = fi.softmax_cross_entropy(logits, target, axis=0, reduction=reduction, weight=weight, **options)
        lazy = fi.softmax_cross_entropy(as_dask(logits, (4, 9)), target, axis=0, reduction=reduction,
                                        weight=as_dask(weight, 5), **options)
        check_close(lazy, expected, np.float64, reduction=reduction != "none")
    loss, grad = fi.softmax_cross_entropy_with_grad(as_dask(logits, (4, 9)), as_dask(target, 9), axis=0,
                                                    weight=as_dask(weight, 5), **options)
    loss_expected, grad_expected = fi.softmax_cross_entropy_with_grad(logits, target, axis=0, weight=weight,
                                                                      **options)
    assert_allclose(threads(loss), loss_expected, rtol=1e-12)
    assert_grad_close(threads(grad), grad_expected, np.float64)


def test_cross_entropy_all_ignored_mean_is_nan(data):
    logits = data["logits"]
    target = np.full(N_ROWS, -100)
    expected = fi.softmax_cross_entropy(logits, target, ignore_index=-100)
    assert np.isnan(expected)
    value = threads(fi.softmax_cross_entropy(as_dask(logits, 10), as_dask(target, 10), ignore_index=-100))
    assert np.isnan(value)
    loss, grad = dask.compute(*fi.softmax_cross_entropy_with_grad(as_dask(logits, 10), target, ignore_index=-100))
    loss_expected, grad_expected = fi.softmax_cross_entropy_with_grad(logits, target, ignore_index=-100)
    assert np.isnan(loss)
    assert_array_equal(grad, grad_expected)


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_perplexity(dtype, chunks, data):
    logits = data["logits"].astype(dtype)
    target = data["target"]
    for options in [{"ignore_index": -100}, {"ignore_index": -100, "temperature": 2.5}]:
        expected = fi.perplexity(logits, target, **options)
        lazy = fi.perplexity(as_dask(logits, chunks), as_dask(target, chunks[0]), **options)
        assert isinstance(lazy, da.Array) and lazy.shape == ()
        check_close(lazy, expected, dtype, reduction=True)


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_softmax_kl_divergence(reduction, dtype, chunks, data):
    p, q = data["logits"].astype(dtype), data["logits_q"].astype(dtype)
    options = {"temperature": 1.3, "base": 2}
    expected = fi.softmax_kl_divergence(p, q, reduction=reduction, **options)
    lazy = fi.softmax_kl_divergence(as_dask(p, chunks), as_dask(q, (9, 6)), reduction=reduction, **options)
    check_close(lazy, expected, dtype, reduction=reduction != "none")


def test_same_chunking_same_bits(data):
    logits, target = data["logits"], data["target"]
    chunks = ((20, 3, 30), (5, 8))
    runs = [threads(fi.softmax_cross_entropy(as_dask(logits, chunks), as_dask(target, 9),
                                             ignore_index=-100, weight=data["weight"])) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    runs = [threads(fi.perplexity(as_dask(logits, chunks), target, ignore_index=-100)) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]


def test_mixed_numpy_and_dask(data):
    logits, target = data["logits"], data["target"]
    expected = fi.softmax_cross_entropy(logits, target, ignore_index=-100, reduction="none")
    # NumPy logits, Dask target: the logits follow the target's row chunks
    check_close(fi.softmax_cross_entropy(logits, as_dask(target, 8), ignore_index=-100, reduction="none"),
                expected, np.float64)
    check_close(fi.softmax_cross_entropy(as_dask(logits, (8, 5)), target.tolist(), ignore_index=-100,
                                         reduction="none"), expected, np.float64)


def _half_dtypes():
    try:
        import ml_dtypes
    except ImportError:
        return [np.float16]
    return [np.float16, ml_dtypes.bfloat16]


@pytest.mark.parametrize("dtype", _half_dtypes(), ids=lambda d: np.dtype(d).name)
def test_half_precision_chunks(dtype, data):
    """float16 / bfloat16 Dask arrays: chunks stay in their half dtype (the kernels read them as
    they are) and every function equals the in-memory call on the same array (float32 results)."""
    x, xq = data["logits"].astype(dtype), data["logits_q"].astype(dtype)
    target = data["target"]
    chunks = ((20, 3, 30), (5, 8))
    xd, xqd, td = as_dask(x, chunks), as_dask(xq, (9, 6)), as_dask(target, 9)
    assert xd.dtype == dtype
    for name in ("logsumexp", "log_softmax", "softmax", "softmax_entropy"):
        lazy = getattr(fi, name)(xd)
        assert lazy.dtype == np.float32
        assert_array_equal(threads(lazy), getattr(fi, name)(x))
    assert_array_equal(threads(fi.softmax_kl_divergence(xd, xqd)), fi.softmax_kl_divergence(x, xq))
    assert_array_equal(threads(fi.softmax_cross_entropy(xd, td, ignore_index=-100, reduction="none")),
                       fi.softmax_cross_entropy(x, target, ignore_index=-100, reduction="none"))
    for reduction in ("sum", "mean"):
        assert_allclose(threads(fi.softmax_cross_entropy(xd, td, ignore_index=-100, reduction=reduction)),
                        fi.softmax_cross_entropy(x, target, ignore_index=-100, reduction=reduction), rtol=1e-12)
    assert_allclose(threads(fi.perplexity(xd, td, ignore_index=-100)), fi.perplexity(x, target, ignore_index=-100),
                    rtol=1e-12)
    loss, grad = dask.compute(*fi.softmax_cross_entropy_with_grad(xd, td, ignore_index=-100), scheduler="threads")
    loss0, grad0 = fi.softmax_cross_entropy_with_grad(x, target, ignore_index=-100)
    assert_allclose(loss, loss0, rtol=1e-12)
    assert_grad_close(grad, grad0, np.float32)
    probs = fi.softmax(xq).astype(dtype)
    assert_array_equal(threads(fi.softmax_cross_entropy(xd, as_dask(probs, chunks), reduction="none")),
                       fi.softmax_cross_entropy(x, probs, reduction="none"))
    p, q = np.abs(x), np.abs(xq)
    assert_array_equal(threads(fi.entropy(as_dask(p, chunks))), fi.entropy(p))
    assert_array_equal(threads(fi.kl_divergence(as_dask(p, chunks), q)), fi.kl_divergence(p, q))
    with pytest.raises(TypeError, match="target"):
        fi.softmax_cross_entropy(xd, as_dask(target.astype(dtype), 9))
    with pytest.raises(TypeError, match="out="):
        fi.softmax_cross_entropy_with_grad(xd, td, out=np.empty_like(x))


def test_torch_tensor_beside_a_dask_array(data):
    torch = pytest.importorskip("torch")
    logits = torch.from_numpy(data["logits"]).to(torch.float16)
    target = data["target"]
    expected = fi.softmax_cross_entropy(logits, target, ignore_index=-100, reduction="none")
    assert_array_equal(threads(fi.softmax_cross_entropy(logits, as_dask(target, 8), ignore_index=-100,
                                                        reduction="none")), expected)


# =============================================================================
# Distribution family
# =============================================================================


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_distributions(dtype, chunks, data):
    p, q = data["p"].astype(dtype), data["q"].astype(dtype)
    pd_, qd = as_dask(p, chunks), as_dask(q, chunks)
    check_close(fi.entropy(pd_, base=2), fi.entropy(p, base=2), dtype)
    check_close(fi.cross_entropy(pd_, qd), fi.cross_entropy(p, q), dtype)
    check_close(fi.kl_divergence(pd_, q, eps=1e-3), fi.kl_divergence(p, q, eps=1e-3), dtype)
    check_close(fi.js_divergence(p, qd, base=2), fi.js_divergence(p, q, base=2), dtype)


def test_distributions_broadcast(data):
    p, q = data["p"], data["q"][0]
    for name in ["cross_entropy", "kl_divergence", "js_divergence"]:
        check_close(getattr(fi, name)(as_dask(p, (10, 5)), q), getattr(fi, name)(p, q), np.float64)
        check_close(getattr(fi, name)(q[None, :], as_dask(p, 7)), getattr(fi, name)(q[None, :], p), np.float64)


def test_distributions_axis_zero(data):
    p, q = data["p"], data["q"]
    pd_, qd = as_dask(p, (10, 5)), as_dask(q, (7, 13))
    for name in ["cross_entropy", "kl_divergence", "js_divergence"]:
        check_close(getattr(fi, name)(pd_, qd, axis=0), getattr(fi, name)(p, q, axis=0), np.float64)
    check_close(fi.entropy(pd_, axis=0), fi.entropy(p, axis=0), np.float64)


# =============================================================================
# Estimators
# =============================================================================


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(7)
    n = 300
    x = rng.standard_normal((n, 4))
    x[:, 1] += 0.8 * x[:, 0]
    x[:, 3] = 0.5 * x[:, 2] + 0.5 * rng.standard_normal(n)
    labels = rng.integers(0, 3, n)
    return x, labels


@pytest.mark.parametrize("chunks", [(300, 4), (70, 1), ((100, 7, 193), (3, 1))])
def test_mutual_info_matrix_exact(chunks, table):
    x, _ = table
    expected = fi.mutual_info_matrix(x, k=4)
    lazy = fi.mutual_info_matrix(as_dask(x, chunks), k=4)
    assert isinstance(lazy, da.Array) and lazy.shape == (4, 4)
    assert_array_equal(threads(lazy), expected)


def test_mutual_info_matrix_float32_and_base(table):
    x = table[0].astype(np.float32)
    assert_array_equal(threads(fi.mutual_info_matrix(as_dask(x, 64), base=2)), fi.mutual_info_matrix(x, base=2))


@pytest.fixture
def tile_side(monkeypatch):
    """Force the columns per tile of both estimators (the sizing rule picks them from the data)."""
    def force(side):
        monkeypatch.setattr(fastinfo_dask, "_columns_per_tile", lambda n, m, cores: side)
        monkeypatch.setattr(fastinfo_dask, "_features_per_tile", lambda n, m, cores: side)
    return force


def wide_table(n, m, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, m))
    x[:, 1::3] += 0.7 * x[:, ::3][:, : x[:, 1::3].shape[1]]
    x[:, 2::5] = np.round(2 * x[:, 2::5])  # ties
    return x


@pytest.mark.parametrize("one_chunk", [True, False])
@pytest.mark.parametrize("side", [1, 2, 3, 7])
@pytest.mark.parametrize("chunks", [(-1, -1), (61, -1), ((40, 1, 159), (2, 5))])
def test_mutual_info_matrix_tiles_any_chunking_bitwise(side, chunks, one_chunk, tile_side, monkeypatch):
    # tiles of 1, 2, 3 (uneven last block) and 7 (one block) columns; row chunks, mixed chunks;
    # the result assembled into one chunk (small matrices) or left in tiles (large ones)
    x = wide_table(200, 7, side)
    tile_side(side)
    if not one_chunk:
        monkeypatch.setattr(fastinfo_dask, "_ONE_CHUNK_BYTES", 0)
    expected = fi.mutual_info_matrix(x, k=3)
    lazy = fi.mutual_info_matrix(as_dask(x, chunks), k=3)
    n_blocks = 1 if one_chunk else -(-7 // side)
    assert lazy.chunks[0] == lazy.chunks[1] and len(lazy.chunks[0]) == n_blocks
    assert_array_equal(threads(lazy), expected)
    assert_array_equal(dask.compute(lazy, scheduler="sync")[0], expected)


@pytest.mark.parametrize("one_chunk", [True, False])
def test_mutual_info_matrix_graph_one_preparation_per_column(one_chunk, tile_side, monkeypatch):
    # one preparation task per column, one task per tile of the upper triangle (and, for a tiled
    # result, a transpose per lower tile); a tile task reads the prepared columns of its two
    # column blocks only
    x = wide_table(120, 10, 3)
    tile_side(3)
    if not one_chunk:
        monkeypatch.setattr(fastinfo_dask, "_ONE_CHUNK_BYTES", 0)
    lazy = fi.mutual_info_matrix(as_dask(x, (50, 4)), k=3)
    graph = dict(lazy.__dask_graph__())
    prep = [key for key in graph if isinstance(key, tuple) and str(key[0]).startswith("fastinfo-prepare-column")]
    tile_prefix = "fastinfo-matrix-tile" if one_chunk else lazy.name
    tiles = [key for key in graph if isinstance(key, tuple) and str(key[0]).startswith(tile_prefix)]
    assert sorted(key[1] for key in prep) == list(range(10))
    n_blocks = 4  # 3 + 3 + 3 + 1 columns
    upper = [key for key in tiles if key[1] <= key[2]]
    assert len(upper) == n_blocks * (n_blocks + 1) // 2
    assert len(tiles) == (len(upper) if one_chunk else n_blocks * n_blocks)
    for key in tiles:
        deps = set(get_dependencies(graph, key))
        if key[1] > key[2]:
            assert deps == {(lazy.name, key[2], key[1])}
        else:
            assert all(d in prep for d in deps) and len(deps) <= 6
    if one_chunk:
        assert set(get_dependencies(graph, (lazy.name, 0, 0))) == set(upper)
    assert_array_equal(threads(lazy), fi.mutual_info_matrix(x, k=3))


def test_mutual_info_matrix_small_and_kdtree_path(tile_side):
    from fastinfo import _kernels

    x = wide_table(40, 5, 4)
    for m in (1, 2, 5):
        for side in (1, 2):
            tile_side(side)
            assert_array_equal(threads(fi.mutual_info_matrix(as_dask(x[:, :m], 13), k=2)),
                               fi.mutual_info_matrix(x[:, :m], k=2))
    old = _kernels._set_grid2(False)  # the private KD-tree switch: the same values
    try:
        tile_side(2)
        general = threads(fi.mutual_info_matrix(as_dask(x, 13), k=3))
    finally:
        _kernels._set_grid2(old)
    assert_array_equal(general, fi.mutual_info_matrix(x, k=3))
    with pytest.raises(ValueError, match="at least one dimension"):
        fi.mutual_info_matrix(as_dask(x[:, :0], 13))


def test_mutual_info_estimators_any_openmp_threads(tile_side):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    x = wide_table(400, 6, 5)
    y = x[:, 0] - x[:, 4]
    tile_side(2)
    with threadpoolctl.threadpool_limits(1, "openmp"):
        matrix_one, features_one = dask.compute(fi.mutual_info_matrix(as_dask(x, 90)),
                                                fi.mutual_info_features(as_dask(x, 90), y), scheduler="threads")
    assert_array_equal(matrix_one, fi.mutual_info_matrix(x))
    assert_array_equal(features_one, fi.mutual_info_features(x, y))


def test_tile_sizing_from_the_data():
    side = fastinfo_dask._columns_per_tile
    # tiny columns: many pairs per task (tasks of at least _TASK_SECONDS_MIN); huge ones: one pair
    assert side(1000, 400, 2) > 5
    assert side(10**9, 400, 2) == 1
    # more cores: smaller tiles (more tasks); never more columns than the table has
    assert side(100_000, 400, 64) <= side(100_000, 400, 2)
    assert side(100, 3, 2) == 3
    # the prepared columns of a tile stay within _TILE_BYTES_MAX
    s = side(5 * 10**6, 2000, 1)
    assert 2 * s * 26 * 5 * 10**6 <= fastinfo_dask._TILE_BYTES_MAX
    features = fastinfo_dask._features_per_tile
    assert features(100_000, 10_000, 2) > 1 and -(-10_000 // features(100_000, 10_000, 2)) >= 16
    assert features(100, 3, 2) == 3


def test_mutual_info_tiles_fuzz():
    # any table shape, row and column chunking, tile side and k: the in-memory values, bitwise
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    def chunks_of(total, data):
        cuts = sorted(data.draw(st.sets(st.integers(1, max(total - 1, 1)), max_size=3)))
        cuts = [c for c in cuts if 0 < c < total]
        return tuple(b - a for a, b in zip([0] + cuts, cuts + [total]))

    @hypothesis.settings(max_examples=25, deadline=None)
    @hypothesis.given(st.data())
    def check(data):
        n = data.draw(st.integers(4, 90))
        m = data.draw(st.integers(1, 6))
        k = data.draw(st.integers(1, min(5, n - 1)))
        side = data.draw(st.integers(1, m))
        seed = data.draw(st.integers(0, 2**16))
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, m))
        if data.draw(st.booleans()):
            x = np.round(x)  # ties and duplicates
        chunks = (chunks_of(n, data), chunks_of(m, data))
        y = x[:, 0] + rng.standard_normal(n)
        old = (fastinfo_dask._columns_per_tile, fastinfo_dask._features_per_tile)
        fastinfo_dask._columns_per_tile = fastinfo_dask._features_per_tile = lambda n, m, cores: side
        try:
            matrix, features = dask.compute(fi.mutual_info_matrix(as_dask(x, chunks), k=k),
                                            fi.mutual_info_features(as_dask(x, chunks), y, k=k), scheduler="threads")
        finally:
            fastinfo_dask._columns_per_tile, fastinfo_dask._features_per_tile = old
        assert_array_equal(matrix, fi.mutual_info_matrix(x, k=k))
        assert_array_equal(features, fi.mutual_info_features(x, y, k=k))

    check()


def test_mutual_info_features_exact(table):
    x, labels = table
    y = x[:, 0] + 0.3 * x[:, 3]
    xd = as_dask(x, (64, 3))
    assert_array_equal(threads(fi.mutual_info_features(xd, y, k=3)), fi.mutual_info_features(x, y, k=3))
    assert_array_equal(threads(fi.mutual_info_features(xd, as_dask(labels, 50), discrete_target=True)),
                       fi.mutual_info_features(x, labels, discrete_target=True))
    xm = x.copy()
    xm[:, 1] = labels
    mask = np.array([False, True, False, False])
    assert_array_equal(threads(fi.mutual_info_features(as_dask(xm, 80), y, discrete_features=mask)),
                       fi.mutual_info_features(xm, y, discrete_features=mask))


@pytest.mark.parametrize("side", [1, 3, 10])
def test_mutual_info_features_tiles_bitwise(side, tile_side):
    x = wide_table(150, 10, 11)
    labels = np.random.default_rng(1).integers(0, 4, 150)
    x[:, 3] = labels[::-1]
    x[:, 7] = labels % 2
    mask = np.zeros(10, dtype=bool)
    mask[[3, 7]] = True
    y = x[:, 0] + 0.5 * x[:, 5]
    tile_side(side)
    for chunks in ((-1, -1), (37, 4)):
        xd = as_dask(x, chunks)
        lazy = fi.mutual_info_features(xd, y, discrete_features=mask)
        assert len(lazy.chunks[0]) == -(-10 // side)
        assert_array_equal(threads(lazy), fi.mutual_info_features(x, y, discrete_features=mask))
        for discrete_target in (False, True):
            target = labels if discrete_target else y
            assert_array_equal(
                threads(fi.mutual_info_features(xd, as_dask(target, 40), discrete_features=mask,
                                                discrete_target=discrete_target, base=2)),
                fi.mutual_info_features(x, target, discrete_features=mask, discrete_target=discrete_target, base=2))
    assert threads(fi.mutual_info_features(as_dask(x[:, :0], 50), y)).shape == (0,)


def test_mutual_info_features_target_prepared_once(tile_side):
    x = wide_table(100, 9, 12)
    tile_side(2)
    lazy = fi.mutual_info_features(as_dask(x, 30), x[:, 0] + x[:, 1])
    graph = lazy.__dask_graph__()
    targets = [key for key in dict(graph) if str(key).startswith("fastinfo-prepare-target")]
    assert len(targets) == 1
    tiles = [key for key in dict(graph) if isinstance(key, tuple) and key[0] == lazy.name]
    assert len(tiles) == 5 and all(targets[0] in get_dependencies(dict(graph), key) for key in tiles)


# =============================================================================
# Errors: eager where the shape allows, at compute time for values
# =============================================================================


def same_error(func, numpy_args, dask_args, **kwargs):
    """The Dask call raises at graph construction the very error of the NumPy call."""
    with pytest.raises(Exception) as numpy_error:
        func(*numpy_args, **kwargs)
    with pytest.raises(numpy_error.type, match=re.escape(str(numpy_error.value))):
        func(*dask_args, **kwargs)


def test_errors_at_graph_construction(data):
    logits, target, p = data["logits"], data["target"], data["p"]
    ld, td, pd_ = as_dask(logits, 10), as_dask(target, 10), as_dask(p, 10)
    ce = fi.softmax_cross_entropy
    same_error(ce, (logits, target), (ld, td), reduction="avg", ignore_index=-100)
    same_error(ce, (logits, target), (ld, td), label_smoothing=1.5, ignore_index=-100)
    same_error(ce, (logits, target), (ld, td), temperature=0.0, ignore_index=-100)
    same_error(ce, (logits, target), (ld, td), weight=np.ones(3), ignore_index=-100)
    same_error(fi.softmax, (logits,), (ld,), temperature=-1.0)
    same_error(fi.softmax_entropy, (logits,), (ld,), base=1)
    same_error(fi.entropy, (p,), (pd_,), base=-2.0)
    same_error(fi.softmax_kl_divergence, (logits, logits), (ld, ld), reduction="max")
    same_error(fi.softmax_kl_divergence, (logits, logits[0]), (ld, logits[0]))
    same_error(ce, (logits, target > 0), (ld, td > 0))  # boolean target: neither indices nor probabilities
    same_error(fi.logsumexp, (logits.astype(np.complex128),), (ld.astype(np.complex128),))
    with pytest.raises(AxisError):
        fi.log_softmax(ld, axis=2)
    with pytest.raises(AxisError):
        fi.perplexity(ld, td, axis=-3)
    with pytest.raises(TypeError, match="out="):
        fi.softmax(ld, out=np.empty_like(logits))
    unknown = ld[ld[:, 0] > 0]  # rows selected by value: unknown chunk sizes
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        fi.softmax_entropy(unknown)


def test_shape_errors_at_graph_construction(data):
    ld = as_dask(data["logits"], 10)
    with pytest.raises(ValueError, match="target"):
        fi.softmax_cross_entropy(ld, as_dask(data["target"][:-1], 10))
    with pytest.raises(ValueError, match="target"):
        fi.softmax_cross_entropy_with_grad(ld, data["target_probs"][:, :-1])
    with pytest.raises(ValueError, match="target"):
        fi.perplexity(ld, np.zeros((N_ROWS, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"logits_q|shape"):
        fi.softmax_kl_divergence(ld, data["logits"][:, :5])
    with pytest.raises(ValueError, match=r"\bq\b|shape"):
        fi.js_divergence(as_dask(data["p"], 10), data["q"][:7])
    x = as_dask(np.random.default_rng(0).standard_normal((20, 3)), 5)
    with pytest.raises(ValueError, match="k"):
        fi.mutual_info_matrix(x, k=20)
    with pytest.raises(ValueError, match="base"):
        fi.mutual_info_matrix(x, base=1)
    with pytest.raises(ValueError, match="same length"):
        fi.mutual_info_features(x, np.zeros(19))
    with pytest.raises(ValueError, match="discrete_features"):
        fi.mutual_info_features(x, np.zeros(20), discrete_features=np.array([True, False]))


def test_estimator_errors_match_in_memory(table):
    x, labels = table
    xd = as_dask(x, 100)
    same_error(fi.mutual_info_matrix, (x,), (xd,), k=300)
    same_error(fi.mutual_info_matrix, (x,), (xd,), k=0)
    same_error(fi.mutual_info_matrix, (x[:, :, None],), (xd[:, :, None],))
    same_error(fi.mutual_info_features, (x, labels[:-1]), (xd, labels[:-1]))
    same_error(fi.mutual_info_features, (x, x[:, :2]), (xd, x[:, :2]))
    same_error(fi.mutual_info_features, (x, labels), (xd, labels), discrete_features=[True])
    same_error(fi.mutual_info_features, (x, labels), (xd, labels), discrete_target="yes")
    same_error(fi.mutual_info_features, (x, labels), (xd, labels), k=300)


def test_value_errors_at_compute_time(data):
    logits, target = data["logits"], data["target"].copy()
    target[30] = 99
    lazy = fi.softmax_cross_entropy(as_dask(logits, 10), as_dask(target, 10), ignore_index=-100)
    with pytest.raises(ValueError, match="99"):
        threads(lazy)
    loss, grad = fi.softmax_cross_entropy_with_grad(as_dask(logits, 10), target, ignore_index=-100,
                                                    weight=data["weight"])
    with pytest.raises(ValueError, match="99"):
        dask.compute(loss, grad, scheduler="threads")
    with pytest.raises(ValueError, match="-100"):
        threads(fi.perplexity(as_dask(logits, 10), data["target"]))  # ignore_index=None
    p = data["p"].copy()
    p[40, 2] = -0.5
    with pytest.raises(ValueError):
        fi.entropy(p)
    with pytest.raises(ValueError):
        threads(fi.entropy(as_dask(p, 10)))
    x = np.random.default_rng(0).standard_normal((30, 3))
    x[5, 1] = np.nan
    with pytest.raises(ValueError):
        threads(fi.mutual_info_matrix(as_dask(x, 10)))


# =============================================================================
# Fused linear head family: hidden chunked by rows, the head in memory
# =============================================================================

LINEAR_ROW_CHUNKS = [(N_ROWS,), 7, (20, 3, 30)]


@pytest.fixture(scope="module")
def linear_data():
    rng = np.random.default_rng(20240901)
    d, n_vocab = 16, 700  # the head is 89 KB: scattered to a cluster (above the 64 KiB threshold)
    hidden = rng.standard_normal((N_ROWS, d))
    head = rng.standard_normal((n_vocab, d)) * 0.5
    bias = rng.standard_normal(n_vocab)
    target = rng.integers(0, n_vocab, N_ROWS)
    target[::5] = -100
    hidden_q = rng.standard_normal((N_ROWS, 9))
    head_q = rng.standard_normal((n_vocab, 9))
    weight = rng.random(n_vocab) + 0.5
    return dict(hidden=hidden, head=head, bias=bias, target=target, hidden_q=hidden_q, head_q=head_q, weight=weight)


def _linear_dask(data, chunks, dtype, d_chunks=None):
    hidden = data["hidden"].astype(dtype)
    return hidden, da.from_array(hidden, chunks=(chunks, d_chunks or hidden.shape[1]))


def linear_reduction_rtol(dtype):
    """Dask against NumPy for a reduced fused-head loss. float64: only the combine order differs.
    float32: the logits come from BLAS sgemm on blocks of rows, and OpenBLAS picks its kernel by
    the block's shape (and by OPENBLAS_CORETYPE), so a row's float32 logits, hence its loss, may
    round differently when the rows are chunked (seen: 4e-9 relative with the Haswell kernels)."""
    return 1e-12 if np.dtype(dtype) == np.float64 else 1e-6


@pytest.mark.parametrize("chunks", LINEAR_ROW_CHUNKS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_linear_cross_entropy_and_grad(reduction, dtype, chunks, linear_data):
    hidden, hd = _linear_dask(linear_data, chunks, dtype, d_chunks=5)  # d split: rechunked to one chunk
    head, bias, target = linear_data["head"].astype(dtype), linear_data["bias"], linear_data["target"]
    options = dict(bias=bias, ignore_index=-100, label_smoothing=0.1, weight=linear_data["weight"], temperature=1.5)
    lazy = fi.linear_cross_entropy(hd, head, da.from_array(target, chunks=11), reduction=reduction, **options)
    check_close(lazy, fi.linear_cross_entropy(hidden, head, target, reduction=reduction, **options), dtype,
                reduction=reduction != "none", reduction_rtol=linear_reduction_rtol(dtype))
    lazy = fi.linear_cross_entropy_with_grad(hd, head, target, reduction=reduction, **options)
    got = dask.compute(*lazy, scheduler="threads")
    want = fi.linear_cross_entropy_with_grad(hidden, head, target, reduction=reduction, **options)
    if reduction == "none":
        assert_allclose(got[0], want[0], rtol=rtol_for(dtype))
    else:
        assert_allclose(float(got[0]), want[0], rtol=linear_reduction_rtol(dtype))
    for g, w in zip(got[1:], want[1:]):
        assert_grad_close(g, w, dtype)


@pytest.mark.parametrize("chunks", LINEAR_ROW_CHUNKS)
def test_linear_entropy_kl_perplexity(chunks, linear_data):
    hidden, hd = _linear_dask(linear_data, chunks, np.float64)
    head, bias, target = linear_data["head"], linear_data["bias"], linear_data["target"]
    check_close(fi.linear_softmax_entropy(hd, head, bias=bias, base=2),
                fi.linear_softmax_entropy(hidden, head, bias=bias, base=2), np.float64)
    check_close(fi.linear_perplexity(hd, head, target, ignore_index=-100),
                fi.linear_perplexity(hidden, head, target, ignore_index=-100), np.float64, reduction=True)
    hq = linear_data["hidden_q"]
    for reduction in ("none", "mean", "sum"):
        lazy = fi.linear_kl_divergence(hd, head, hq, linear_data["head_q"], bias_p=bias, reduction=reduction)
        check_close(lazy, fi.linear_kl_divergence(hidden, head, hq, linear_data["head_q"], bias_p=bias,
                                                  reduction=reduction), np.float64, reduction=reduction != "none")


def test_linear_nd_hidden_and_errors(linear_data):
    rng = np.random.default_rng(3)
    head = linear_data["head"]
    hidden = rng.standard_normal((4, 6, head.shape[1]))
    target = rng.integers(0, head.shape[0], (4, 6))
    hd = da.from_array(hidden, chunks=(3, 4, 16))
    check_close(fi.linear_cross_entropy(hd, head, target, reduction="none"),
                fi.linear_cross_entropy(hidden, head, target, reduction="none"), np.float64)
    got = dask.compute(*fi.linear_cross_entropy_with_grad(hd, head, target, reduction="sum"), scheduler="threads")
    want = fi.linear_cross_entropy_with_grad(hidden, head, target, reduction="sum")
    assert_allclose(float(got[0]), want[0], rtol=1e-12)
    assert_grad_close(got[1], want[1], np.float64)
    assert_grad_close(got[2], want[2], np.float64)
    # shape, dtype and keyword errors at graph construction, with the in-memory messages
    with pytest.raises(ValueError, match=r"hidden and head must have the same width d"):
        fi.linear_cross_entropy(hd, head[:, :5], target)
    with pytest.raises(ValueError, match=r"target must have shape \(4, 6\)"):
        fi.linear_cross_entropy(hd, head, target[:3])
    with pytest.raises(ValueError, match=r"bias must have shape"):
        fi.linear_softmax_entropy(hd, head, bias=np.zeros(3))
    with pytest.raises(ValueError, match=r"weight must have shape"):
        fi.linear_cross_entropy(hd, head, target, weight=np.ones(3))
    with pytest.raises(TypeError, match=r"target must hold integer"):
        fi.linear_cross_entropy(hd, head, target.astype(float))
    with pytest.raises(TypeError, match=r"hidden must be real"):
        fi.linear_softmax_entropy(hd.astype(complex), head)
    with pytest.raises(ValueError, match="reduction"):
        fi.linear_cross_entropy(hd, head, target, reduction="avg")
    with pytest.raises(ValueError, match="hidden_p and hidden_q must have the same rows"):
        fi.linear_kl_divergence(hd, head, hidden[:3], head)
    bad = target.copy()
    bad[2, 2] = 10**6
    with pytest.raises(ValueError, match="1000000"):
        threads(fi.linear_cross_entropy(hd, head, bad))
    with pytest.raises(ValueError, match="1000000"):
        dask.compute(*fi.linear_cross_entropy_with_grad(hd, head, bad)[:2], scheduler="threads")


def test_linear_dask_head_and_same_bits(linear_data):
    hidden, hd = _linear_dask(linear_data, 7, np.float32)
    head = linear_data["head"].astype(np.float32)
    target = linear_data["target"]
    head_d = da.from_array(head, chunks=(300, 8))   # a Dask head: made one chunk
    a = threads(fi.linear_cross_entropy(hd, head_d, target, ignore_index=-100))
    b = threads(fi.linear_cross_entropy(hd, head, target, ignore_index=-100))
    assert a == b   # the same chunking gives the same bits
    assert_allclose(a, fi.linear_cross_entropy(hidden, head, target, ignore_index=-100),
                    rtol=linear_reduction_rtol(np.float32))


# =============================================================================
# dask.distributed: two worker processes
# =============================================================================


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    # the worker processes import the fastinfo under test (this source tree, with its built kernels)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = SRC + (os.pathsep + old if old else "")
    try:
        cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                           dashboard_address=":0", silence_logs=logging.ERROR)
        client = distributed.Client(cluster)
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def test_distributed_workers_import_this_fastinfo(client):
    files = client.run(lambda: __import__("fastinfo").__file__)
    assert len(files) == 2
    assert all(Path(f).resolve() == Path(fi.__file__).resolve() for f in files.values())


def test_distributed_softmax_and_distributions(client, data):
    logits, target, weight = data["logits"], data["target"], data["weight"]
    chunks = ((20, 3, 30), (5, 8))
    ld, td = as_dask(logits, chunks), as_dask(target, 11)
    results = client.compute([
        fi.softmax_cross_entropy(ld, td, ignore_index=-100, weight=weight),
        fi.softmax_cross_entropy(ld, td, ignore_index=-100, reduction="none"),
        fi.perplexity(ld, td, ignore_index=-100),
        fi.log_softmax(ld, temperature=0.5),
        fi.entropy(as_dask(data["p"], chunks)),
        fi.softmax_kl_divergence(ld, data["logits_q"], reduction="sum"),
    ], sync=True)
    expected = [
        fi.softmax_cross_entropy(logits, target, ignore_index=-100, weight=weight),
        fi.softmax_cross_entropy(logits, target, ignore_index=-100, reduction="none"),
        fi.perplexity(logits, target, ignore_index=-100),
        fi.log_softmax(logits, temperature=0.5),
        fi.entropy(data["p"]),
        fi.softmax_kl_divergence(logits, data["logits_q"], reduction="sum"),
    ]
    for value, reference in zip(results, expected):
        assert_allclose(value, reference, rtol=1e-12)
    loss, grad = fi.softmax_cross_entropy_with_grad(ld, td, ignore_index=-100, weight=weight, label_smoothing=0.1)
    loss, grad = client.compute([loss, grad], sync=True)
    loss_expected, grad_expected = fi.softmax_cross_entropy_with_grad(logits, target, ignore_index=-100,
                                                                      weight=weight, label_smoothing=0.1)
    assert_allclose(loss, loss_expected, rtol=1e-12)
    assert_grad_close(grad, grad_expected, np.float64)
    # the threaded scheduler and the cluster add the same partials in the same order
    assert client.compute(fi.perplexity(ld, td, ignore_index=-100), sync=True) == threads(
        fi.perplexity(ld, td, ignore_index=-100))


def test_distributed_estimators_and_errors(client, table, data, tile_side):
    x, labels = table
    xd = as_dask(x, (100, 2))
    tile_side(2)
    matrix, features = client.compute([fi.mutual_info_matrix(xd, k=3),
                                       fi.mutual_info_features(xd, labels, discrete_target=True)], sync=True)
    assert_array_equal(matrix, fi.mutual_info_matrix(x, k=3))
    assert_array_equal(features, fi.mutual_info_features(x, labels, discrete_target=True))
    target = data["target"].copy()
    target[7] = 1234
    with pytest.raises(ValueError, match="1234"):
        client.compute(fi.softmax_cross_entropy(as_dask(data["logits"], 10), target, ignore_index=-100), sync=True)


def test_distributed_linear_head_broadcast_not_in_graph(client, linear_data):
    hidden, head, bias, target = (linear_data[k] for k in ("hidden", "head", "bias", "target"))
    hd = as_dask(hidden, (20, 16))
    lazy = [fi.linear_cross_entropy(hd, head, target, bias=bias, ignore_index=-100),
            fi.linear_softmax_entropy(hd, head, bias=bias),
            fi.linear_kl_divergence(hd, head, linear_data["hidden_q"], linear_data["head_q"], reduction="sum")]
    # the head travels as a scattered key, never as data inside the graph
    for item in lazy:
        large = [v for v in dict(item.__dask_graph__()).values()
                 if isinstance(v, np.ndarray) and v.nbytes >= head.nbytes]
        assert not large
    got = client.compute(lazy, sync=True)
    assert_allclose(got[0], fi.linear_cross_entropy(hidden, head, target, bias=bias, ignore_index=-100), rtol=1e-12)
    assert_allclose(got[1], fi.linear_softmax_entropy(hidden, head, bias=bias), rtol=1e-12)
    assert_allclose(got[2], fi.linear_kl_divergence(hidden, head, linear_data["hidden_q"], linear_data["head_q"],
                                                    reduction="sum"), rtol=1e-12)
    loss, g_hidden, g_head, g_bias = client.compute(
        list(fi.linear_cross_entropy_with_grad(hd, head, target, bias=bias, ignore_index=-100)), sync=True)
    want = fi.linear_cross_entropy_with_grad(hidden, head, target, bias=bias, ignore_index=-100)
    assert_allclose(loss, want[0], rtol=1e-12)
    for g, w in zip((g_hidden, g_head, g_bias), want[1:]):
        assert_grad_close(g, w, np.float64)


# =============================================================================
# dask.distributed: the estimators on clusters of threads (and one case on processes above)
# =============================================================================


@pytest.fixture(scope="module")
def thread_cluster():
    """Two workers of two threads each in this process, with the large-graph warning (an error
    here) lowered to 200 kB: arrays of 400 kB embedded in a graph would trip it."""
    distributed = pytest.importorskip("distributed")
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "200kB"}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=False,
                                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster:
            with distributed.Client(cluster, set_as_default=False) as client:
                yield client


def test_large_graph_warning_is_an_error_here(thread_cluster):
    # the check that guards the tests below: embedding a 400 kB array does raise
    with thread_cluster.as_current(), pytest.raises(UserWarning, match="Sending large graph"):
        thread_cluster.compute(da.from_array(np.zeros(50_000), chunks=-1).sum(), sync=True)


@pytest.mark.parametrize("side", [1, 3])
def test_distributed_threads_matrix_and_features_bitwise(side, thread_cluster, tile_side):
    x = wide_table(10_000, 5, 21)  # 400 kB: a graph embedding it would raise
    y = x[:, 0] + 0.5 * x[:, 3] + np.random.default_rng(3).standard_normal(10_000)
    labels = (x[:, 2] > 0).astype(np.int64) + (x[:, 4] > 1)
    tile_side(side)
    with thread_cluster.as_current():
        # the table on the workers in row chunks (as a store read by rows would give it)
        scattered = thread_cluster.scatter(x, hash=False)  # futures held here until the compute is done
        xd = thread_cluster.persist(da.from_delayed(dask.delayed(scattered), x.shape, x.dtype).rechunk((2_500, 5)))
        scattered_y = thread_cluster.scatter(y, hash=False)
        yd = da.from_delayed(dask.delayed(scattered_y), y.shape, y.dtype)
        lazy = [fi.mutual_info_matrix(xd),
                fi.mutual_info_features(xd, y),                  # NumPy y: scattered by fastinfo
                fi.mutual_info_features(xd, labels, discrete_target=True),
                fi.mutual_info_features(x, yd, base=2)]          # NumPy X: scattered by fastinfo
        got = thread_cluster.compute(lazy, sync=True)
    expected = [fi.mutual_info_matrix(x), fi.mutual_info_features(x, y),
                fi.mutual_info_features(x, labels, discrete_target=True), fi.mutual_info_features(x, y, base=2)]
    for value, reference in zip(got, expected):
        assert_array_equal(value, reference)

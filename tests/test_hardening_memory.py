"""Memory: 64-bit indexing of large inputs, memory-mapped files, no leaks in 10,000 calls.

* ``test_large_array_over_2_31_elements``: a (2^16, 2^15+1) float32 array (8 GiB,
  2^31 + 2^16 elements) in RAM; runs only when ``psutil.virtual_memory().available`` is at
  least 3x its size (the machine is shared), else skips saying so.
* ``test_zero_page_array_over_2_31_elements``: the same shape from ``np.zeros`` (untouched
  pages are the shared zero page, so it costs almost no RAM and runs on this 2-core, 24 GiB
  shared machine); markers beyond element 2^31 and in the last rows must be seen. (A sparse
  8 GiB memmap was tried first: faulting in its holes alone takes ~35 s here, too slow for CI.)
* ``test_npy_memmap``: a 256 MiB sparse ``.npy`` opened with ``mmap_mode="r"``.
* ``test_no_leaks``: 10,000 calls of every public function (and error paths) keep RSS flat.

The leak test is marked ``no_sanitizer``: ASan keeps freed memory in a quarantine, so RSS grows
by design there. The large cases are marked ``slow`` and ``no_sanitizer`` (under ASan every access is checked
against shadow memory: the 8 GiB scans take minutes and the in-RAM case needs more memory).
"""
import gc
import math
import os
import time

import numpy as np
import pytest

import fastinfo as fi

psutil = pytest.importorskip("psutil")

GiB = 1 << 30
MiB = 1 << 20
BIG_SHAPE = (1 << 16, (1 << 15) + 1)  # 2^31 + 2^16 float32 elements
SANITIZED = os.environ.get("FASTINFO_SANITIZED") == "1"


def _chunked_logsumexp(a, chunk=2048):
    out = np.empty(a.shape[0])
    for s in range(0, a.shape[0], chunk):
        block = np.asarray(a[s:s + chunk], dtype=np.float64)
        m = block.max(axis=1, keepdims=True)
        out[s:s + chunk] = np.log(np.exp(block - m).sum(axis=1)) + m[:, 0]
    return out


def _chunked_entropy(a, chunk=2048):
    out = np.empty(a.shape[0])
    for s in range(0, a.shape[0], chunk):
        block = np.asarray(a[s:s + chunk], dtype=np.float64)
        total = block.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = block / total
            h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        out[s:s + chunk] = np.where(total[:, 0] > 0, h, np.nan)  # a slice summing to zero gives NaN
    return out


def _mark_big(a):
    """Distinct values in the last rows and beyond element 2^31 (flat index), so a 32-bit
    index (wrapping to the start of the array) would read the wrong numbers."""
    n_rows, n_cols = a.shape
    flat_2_31 = 1 << 31
    row, col = divmod(flat_2_31, n_cols)  # the first element at flat index >= 2^31
    marks = [(row, col, 9.0), (n_rows - 1, n_cols - 1, 7.5), (n_rows - 1, 0, 3.25), (n_rows - 2, n_cols // 2, 5.0),
             (0, 0, 1.0)]
    for r, c, v in marks:
        a[r, c] = v
    return marks


def _check_big(a):
    got = fi.logsumexp(a)
    assert got.shape == (a.shape[0],) and got.dtype == np.float32
    want = _chunked_logsumexp(a)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    last = np.asarray(a[-1], dtype=np.float64)
    assert abs(got[-1] - (np.log(np.exp(last - last.max()).sum()) + last.max())) < 1e-4
    h = fi.entropy(a)
    np.testing.assert_allclose(h, _chunked_entropy(a), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.no_sanitizer
def test_large_array_over_2_31_elements():
    nbytes = math.prod(BIG_SHAPE) * 4
    available = psutil.virtual_memory().available
    if available < 3 * nbytes:
        pytest.skip(f"needs 3x {nbytes / GiB:.1f} GiB available for the in-RAM 2^31-element case; "
                    f"only {available / GiB:.1f} GiB available (the sparse-memmap test covers 64-bit indexing)")
    a = np.ones(BIG_SHAPE, dtype=np.float32)
    _mark_big(a)
    _check_big(a)


@pytest.mark.slow
@pytest.mark.no_sanitizer
def test_zero_page_array_over_2_31_elements():
    """2^31 + 2^16 float32 elements without 8 GiB of RAM: ``np.zeros`` is calloc'd, untouched
    pages are the kernel's shared (huge) zero page, so only the written markers and the output
    become resident. Zeros are valid logits (logsumexp = log C) and probabilities (NaN entropy)."""
    nbytes = math.prod(BIG_SHAPE) * 4
    available = psutil.virtual_memory().available
    if available < 1.5 * nbytes:
        pytest.skip(f"if fastinfo copied the input it would need {nbytes / GiB:.1f} GiB; "
                    f"{available / GiB:.1f} GiB available, want 1.5x")
    a = np.zeros(BIG_SHAPE, dtype=np.float32)
    marks = _mark_big(a)
    rss_before = psutil.Process().memory_info().rss
    got = fi.logsumexp(a)
    assert psutil.Process().memory_info().rss - rss_before < GiB, "logsumexp copied its 8 GiB input"
    assert got.dtype == np.float32 and got.shape == (BIG_SHAPE[0],)
    marked_rows = sorted({r for r, _, _ in marks})
    unmarked = np.setdiff1d(np.arange(BIG_SHAPE[0]), marked_rows)
    np.testing.assert_allclose(got[unmarked], np.log(BIG_SHAPE[1]), rtol=1e-6)
    for r in marked_rows:
        row = a[r].astype(np.float64)
        want = np.log(np.exp(row - row.max()).sum()) + row.max()
        assert abs(float(got[r]) - want) < 1e-5 * abs(want), (r, got[r], want)
    # per-row results of a view that starts beyond element 2^31 - 2^16
    tail = a[-3:]
    np.testing.assert_allclose(fi.entropy(tail), _chunked_entropy(tail), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fi.logsumexp(tail), _chunked_logsumexp(tail), rtol=1e-6)
    h = fi.entropy(a)
    assert np.isnan(h[unmarked]).all() and not np.isnan(h[marked_rows]).any()


@pytest.mark.slow
def test_npy_memmap(tmp_path):
    """A 256 MiB read-only .npy memmap of float32 logits; the file is sparse (``open_memmap``
    only writes its last byte) and random data is written to one block of rows in four."""
    path = tmp_path / "logits.npy"
    shape = (4096, 16384)  # 256 MiB of float32
    w = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    rng = np.random.default_rng(0)
    for s in range(0, shape[0], 1024):
        w[s:s + 256] = rng.standard_normal((256, shape[1]), dtype=np.float32) * 4
    w.flush()
    del w
    a = np.load(path, mmap_mode="r")
    assert isinstance(a, np.memmap) and not a.flags.writeable
    got = fi.logsumexp(a)
    np.testing.assert_allclose(got, _chunked_logsumexp(a), rtol=1e-5)
    sub = a[::7, ::3]  # strided view of the memmap
    np.testing.assert_allclose(fi.logsumexp(sub, axis=0), _chunked_logsumexp(np.asarray(sub).T), rtol=1e-5)
    target = (np.arange(shape[0]) * 31) % shape[1]
    loss = fi.softmax_cross_entropy(a, target, reduction="none")
    want = _chunked_logsumexp(a) - np.asarray(a[np.arange(shape[0]), target], dtype=np.float64)
    np.testing.assert_allclose(loss, want, rtol=1e-4, atol=1e-4)
    p = np.abs(a[:512])
    np.testing.assert_allclose(fi.entropy(p), _chunked_entropy(p), rtol=1e-5)


# =============================================================================
# Leaks
# =============================================================================

N_CALLS = int(os.environ.get("FASTINFO_LEAK_CALLS", "10000"))
LEAK_LIMIT = 4 * MiB


def _leak_calls():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((8, 16))
    logits32 = logits.astype(np.float32)
    target = rng.integers(0, 16, 8)
    bad_target = target.copy()
    bad_target[3] = 99
    p = rng.random((8, 16))
    q = rng.random((8, 16))
    x = rng.standard_normal(24)
    y = x + rng.standard_normal(24)
    z = rng.standard_normal(24)
    X = np.column_stack([x, y, z])
    labels = np.arange(24) % 3
    dup = np.zeros(24)
    scores = rng.standard_normal((6, 6))
    hidden = rng.standard_normal((8, 5))
    head = rng.standard_normal((16, 5))
    calls = {
        "logsumexp": lambda: fi.logsumexp(logits),
        "log_softmax": lambda: fi.log_softmax(logits32),
        "softmax": lambda: fi.softmax(logits),
        "softmax_out": lambda: fi.softmax(logits, out=np.empty_like(logits)),
        "softmax_entropy": lambda: fi.softmax_entropy(logits),
        "softmax_cross_entropy": lambda: fi.softmax_cross_entropy(logits, target, weight=np.ones(16),
                                                                  label_smoothing=0.1),
        "softmax_cross_entropy_with_grad": lambda: fi.softmax_cross_entropy_with_grad(logits, target),
        "perplexity": lambda: fi.perplexity(logits, target),
        "softmax_kl_divergence": lambda: fi.softmax_kl_divergence(logits, logits32),
        "entropy": lambda: fi.entropy(p),
        "cross_entropy": lambda: fi.cross_entropy(p, q),
        "kl_divergence": lambda: fi.kl_divergence(p, q),
        "js_divergence": lambda: fi.js_divergence(p, q),
        "mutual_info_ksg": lambda: fi.mutual_info_ksg(x, y),
        "conditional_mutual_info_ksg": lambda: fi.conditional_mutual_info_ksg(x, y, z),
        "entropy_knn": lambda: fi.entropy_knn(x),
        "mutual_info_mixed": lambda: fi.mutual_info_mixed(x, labels),
        "mutual_info_discrete": lambda: fi.mutual_info_discrete(labels, labels[::-1]),
        "mutual_info_from_joint": lambda: fi.mutual_info_from_joint(p),
        "mutual_info_matrix": lambda: fi.mutual_info_matrix(X),
        "mutual_info_features": lambda: fi.mutual_info_features(X, y),
        "mutual_info_test": lambda: fi.mutual_info_test(x, y, n_permutations=3, random_state=0),
        "infonce_bound": lambda: fi.infonce_bound(scores),
        "linear_cross_entropy": lambda: fi.linear_cross_entropy(hidden, head, target, bias=logits[0],
                                                                label_smoothing=0.1),
        "linear_cross_entropy_with_grad": lambda: fi.linear_cross_entropy_with_grad(hidden, head, target),
        "linear_perplexity": lambda: fi.linear_perplexity(hidden.astype(np.float32), head, target),
        "linear_softmax_entropy": lambda: fi.linear_softmax_entropy(hidden, head),
        "linear_kl_divergence": lambda: fi.linear_kl_divergence(hidden, head, logits32, logits[:, ::-1].repeat(2, 0)),
    }
    try:
        import fastinfo.sklearn as fsk

        calls["sklearn.mutual_info_regression"] = lambda: fsk.mutual_info_regression(X, y, random_state=0)
        calls["sklearn.mutual_info_classif"] = lambda: fsk.mutual_info_classif(X, labels, random_state=0)
    except ImportError:
        pass

    def raises(fn):
        def call():
            try:
                fn()
            except (ValueError, TypeError):
                return
            raise AssertionError("expected an error")
        return call

    # error paths (allocations before the error must be released too)
    calls["error: target out of range"] = raises(lambda: fi.softmax_cross_entropy(logits, bad_target))
    calls["error: duplicate samples"] = raises(lambda: fi.entropy_knn(dup))
    calls["error: negative probability"] = raises(lambda: fi.entropy(-p))
    calls["error: k too large"] = raises(lambda: fi.mutual_info_ksg(x, y, k=24))
    calls["error: linear target out of range"] = raises(lambda: fi.linear_cross_entropy_with_grad(hidden, head,
                                                                                                 bad_target))
    return calls


def _rss():
    gc.collect()
    return psutil.Process().memory_info().rss


@pytest.mark.no_sanitizer  # ASan's quarantine (freed memory held back) and redzones make RSS meaningless
def test_no_leaks():
    """10,000 calls of every function (fewer for a slow one, see below) keep RSS flat.

    Run with one OpenMP thread: on a loaded 2-core machine a 2-thread team around a
    microsecond kernel costs milliseconds of barrier waiting and would blow the time budget;
    the thread-local scratch of the kernels is still allocated and freed inside ``parallel()``.
    A function whose warm-up shows > 200 us per call gets ``max(1000, 2 s / cost)`` calls, so the
    test stays near 30 s even on a busy machine (the count used is in the failure message)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    calls = _leak_calls()
    missing = []
    growth = {}
    t0 = time.perf_counter()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        for name, call in calls.items():
            try:
                call()
            except NotImplementedError:
                missing.append(name)
                continue
            n_warm = 100
            start = time.perf_counter()
            for _ in range(n_warm):  # warm-up: allocator pools, caches, first-call imports
                call()
            cost = (time.perf_counter() - start) / n_warm
            n = N_CALLS if cost * N_CALLS <= 2.0 else max(1000, int(2.0 / cost))
            before = _rss()
            for _ in range(n):
                call()
            growth[name] = (_rss() - before, n)
    elapsed = time.perf_counter() - t0
    leaky = {k: f"{g / MiB:.2f} MiB over {n} calls" for k, (g, n) in growth.items() if g > LEAK_LIMIT}
    assert not leaky, f"RSS grew: {leaky}"
    assert not missing, f"not implemented (leak-checked only the others, {elapsed:.1f} s): {missing}"


@pytest.mark.skipif(os.environ.get("FASTINFO_SANITIZED") != "1", reason="only under tools/sanitize.sh")
def test_sanitized_extension_is_the_one_imported():
    """Under tools/sanitize.sh the suite must import the instrumented copy, with ASan live."""
    import ctypes

    import fastinfo._kernels as kernels

    root = os.environ["FASTINFO_SANITIZE_PKGROOT"]
    assert os.path.abspath(kernels.__file__).startswith(os.path.abspath(root)), kernels.__file__
    assert hasattr(ctypes.CDLL(None), "__asan_init")


def _unaligned(values):
    """A copy of ``values`` whose data starts one byte past an aligned address (as a buffer
    unpickled at an odd offset can): legal for NumPy, but the kernels must not load from it."""
    values = np.ascontiguousarray(values)
    raw = np.zeros(values.nbytes + 1, dtype=np.uint8)
    out = raw[1:].view(values.dtype).reshape(values.shape)
    out[...] = values
    assert not out.flags.aligned
    return out


def test_unaligned_inputs_and_out_give_the_aligned_results():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((7, 13))
    target = rng.integers(0, 13, 7)
    p = rng.random((7, 13))
    x, y = rng.standard_normal((2, 300))
    pairs = [
        (fi.logsumexp(_unaligned(logits)), fi.logsumexp(logits)),
        (fi.log_softmax(_unaligned(logits)), fi.log_softmax(logits)),
        (fi.softmax_cross_entropy(_unaligned(logits), _unaligned(target), reduction="none"),
         fi.softmax_cross_entropy(logits, target, reduction="none")),
        (fi.softmax_kl_divergence(_unaligned(logits), _unaligned(logits[::-1])),
         fi.softmax_kl_divergence(logits, logits[::-1])),
        (fi.entropy(_unaligned(p)), fi.entropy(p)),
        (fi.kl_divergence(_unaligned(p), _unaligned(p[::-1])), fi.kl_divergence(p, p[::-1])),
        (fi.mutual_info_ksg(_unaligned(x), _unaligned(x + y)), fi.mutual_info_ksg(x, x + y)),
        (fi.entropy_knn(_unaligned(x)), fi.entropy_knn(x)),
        (fi.linear_softmax_entropy(_unaligned(logits), _unaligned(p)), fi.linear_softmax_entropy(logits, p)),
        (fi.linear_cross_entropy(_unaligned(logits), p, _unaligned(target % 7), bias=_unaligned(p[:, 0]), reduction="none"),
         fi.linear_cross_entropy(logits, p, target % 7, bias=p[:, 0].copy(), reduction="none")),
    ]
    for got, want in pairs:
        np.testing.assert_array_equal(got, want)
    out = _unaligned(np.zeros_like(logits))
    assert fi.softmax(logits, out=out) is out
    np.testing.assert_array_equal(out, fi.softmax(logits))
    inplace = _unaligned(logits)
    fi.log_softmax(inplace, out=inplace)
    np.testing.assert_array_equal(inplace, fi.log_softmax(logits))

"""Seeded data and peer imports shared by the benchmark modules (no benchmarks here).

Kept independent of ``fastinfo._bench`` on purpose: asv runs these files against old commits,
which may not have that module.
"""
import importlib

import numpy as np


class Benchmark:
    """Base of every benchmark class: parameters ``(implementation, dtype, size)``, size last and ascending.

    Subclasses define ``prepare(implementation, dtype, size)``, which builds the data and returns a
    zero-argument call. ``setup`` first runs the call once on the smallest size, so that one-time
    costs (lazy imports, starting the OpenMP thread pool) are not timed, then prepares the real size.
    """

    timeout = 300

    def setup(self, implementation, dtype, size):
        self.prepare(implementation, dtype, self.params[-1][0])()
        self.call = self.prepare(implementation, dtype, size)

SEED = 20240601


def rng(tag):
    """A reproducible generator per benchmark (same data for every implementation)."""
    return np.random.default_rng([SEED, sum(map(ord, tag))])


def require(module):
    """Import a peer library, or raise ``NotImplementedError`` so that asv skips the benchmark."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise NotImplementedError(f"{module} is not installed ({exc})") from exc


def fastinfo_function(name, module="fastinfo"):
    """A public fastinfo function; ``NotImplementedError`` if this commit does not have it (asv history).

    fastinfo itself failing to import is an error, never a skip.
    """
    importlib.import_module("fastinfo")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise NotImplementedError(f"{module} does not exist in this version") from exc
    except AttributeError as exc:
        raise NotImplementedError(f"{module}.{name} does not exist in this version") from exc


def numpy_dtype(name):
    """The NumPy dtype of a benchmark's dtype parameter; "bfloat16" is ml_dtypes' (skipped without it)."""
    if name == "bfloat16":
        return np.dtype(require("ml_dtypes").bfloat16)
    return np.dtype(name)


def to_torch(arr):
    """A torch tensor sharing ``arr``'s memory (bfloat16 through its 16-bit patterns)."""
    torch = require("torch")
    if arr.dtype.name == "bfloat16":
        return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(arr)


def fastinfo_reads(dtype):
    """``NotImplementedError`` (an asv skip) when this fastinfo version rejects the dtype (bfloat16 before 0.2)."""
    fastinfo = importlib.import_module("fastinfo")
    try:
        fastinfo.logsumexp(np.zeros((2, 3), dtype=dtype))
    except TypeError as exc:
        raise NotImplementedError(f"this fastinfo version does not read {dtype}: {exc}") from exc


def logits(shape, dtype, tag):
    """Logits drawn from N(0, 3^2) (rounded to ``dtype``: float16 and bfloat16 too)."""
    return (3.0 * rng(tag).standard_normal(shape, dtype=np.float32)).astype(numpy_dtype(dtype), copy=False)


def probabilities(shape, dtype, tag):
    """Rows of uniform(0, 1) draws normalised to sum to one."""
    p = rng(tag).random(shape)
    p /= p.sum(axis=-1, keepdims=True)
    return p.astype(numpy_dtype(dtype), copy=False)


def standardise(a):
    """Centre and scale each column to unit sample variance (as scikit-learn scales)."""
    a = a - a.mean(axis=0)
    return a / a.std(axis=0, ddof=1)


def gaussian_pair(n, d, dtype, tag, rho=0.6):
    """``(x, y)``, each ``(n, d)`` (``(n,)`` for ``d == 1``), corr(x_j, y_j) = rho; MI = -d/2 log(1 - rho^2)."""
    generator = rng(tag)
    x = generator.standard_normal((n, d))
    y = rho * x + np.sqrt(1.0 - rho * rho) * generator.standard_normal((n, d))
    x, y = standardise(x).astype(dtype), standardise(y).astype(dtype)
    if d == 1:
        return np.ascontiguousarray(x[:, 0]), np.ascontiguousarray(y[:, 0])
    return x, y


def features(n, m, dtype, tag):
    """``X`` of shape ``(n, m)`` and a continuous target depending non-linearly on the first columns."""
    generator = rng(tag)
    X = generator.standard_normal((n, m))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, min(2, m - 1)] + 0.3 * generator.standard_normal(n)
    return standardise(X).astype(dtype), standardise(y[:, None])[:, 0].astype(dtype)


_FLOORS = {}


def memory_floor_gbps(kind):
    """The machine's read or copy bandwidth in GB/s (bytes read + written for copy), measured once
    per process by fastinfo's own loops at OpenMP's default thread count, as ``fastinfo bench``
    does; NaN for a fastinfo that does not have them (asv history)."""
    if kind not in _FLOORS:
        import time

        try:
            from fastinfo import _kernels

            threads = _kernels.max_threads()
            read, copy = _kernels.memory_read, _kernels.memory_copy
        except (ImportError, AttributeError):
            return float("nan")
        src = np.ones(2**24)  # 128 MiB, beyond the caches
        dst = np.zeros_like(src)
        best = {"read": float("inf"), "copy": float("inf")}
        for _ in range(4):
            start = time.perf_counter()
            read(src, threads)
            best["read"] = min(best["read"], time.perf_counter() - start)
            start = time.perf_counter()
            copy(dst, src, threads)
            best["copy"] = min(best["copy"], time.perf_counter() - start)
        _FLOORS["read"] = src.nbytes / best["read"] / 1e9
        _FLOORS["copy"] = 2 * src.nbytes / best["copy"] / 1e9
    return _FLOORS[kind]


def percent_of_floor(call, nbytes, kind, repeats=3):
    """Compulsory bytes / best time of ``call`` / the read or copy bandwidth, in %."""
    import time

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return 100.0 * nbytes / best / 1e9 / memory_floor_gbps(kind)

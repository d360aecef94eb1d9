"""The SciPy drop-in ``fastinfo.scipy`` against SciPy itself (the same call, the same values).

S1 ``logsumexp(x, axis=-1)`` and S2 ``log_softmax(x, axis=-1)`` on float32 (4096, 32000); S3
``entropy(p, axis=1)`` on float64 (4096, 32000); S4 ``logsumexp(x)`` (``axis=None``) of 1e8 float64;
plus SciPy's defaults on other layouts (``entropy`` of a C array along axis 0, weighted
``logsumexp``).
"""
import numpy as np

from ._common import Benchmark, fastinfo_function, logits, probabilities, require, rng

IMPLEMENTATIONS = ["fastinfo", "scipy"]
ROW_SHAPES = [(64, 1000), (512, 32000), (4096, 32000)]


def _function(implementation, name, peer_module):
    if implementation == "fastinfo":
        return fastinfo_function(name, module="fastinfo.scipy")
    return getattr(require(peer_module), name)


class _Rows(Benchmark):
    params = [IMPLEMENTATIONS, ["float32", "float64"], ROW_SHAPES]
    param_names = ["implementation", "dtype", "shape"]


class LogSumExpRows(_Rows):
    """S1 at (4096, 32000) float32: one value per row."""

    def prepare(self, implementation, dtype, shape):
        x = logits(shape, dtype, "S1")
        logsumexp = _function(implementation, "logsumexp", "scipy.special")
        return lambda: logsumexp(x, axis=-1)

    def time_logsumexp(self, implementation, dtype, shape):
        self.call()

    def peakmem_logsumexp(self, implementation, dtype, shape):
        self.call()


class LogSoftmaxRows(_Rows):
    """S2 at (4096, 32000) float32: a new output array."""

    def prepare(self, implementation, dtype, shape):
        x = logits(shape, dtype, "S2")
        log_softmax = _function(implementation, "log_softmax", "scipy.special")
        return lambda: log_softmax(x, axis=-1)

    def time_log_softmax(self, implementation, dtype, shape):
        self.call()

    def peakmem_log_softmax(self, implementation, dtype, shape):
        self.call()


class EntropyRows(_Rows):
    """S3 at (4096, 32000) float64: ``entropy(p, axis=1)``."""

    def prepare(self, implementation, dtype, shape):
        p = probabilities(shape, dtype, "S3")
        entropy = _function(implementation, "entropy", "scipy.stats")
        return lambda: entropy(p, axis=1)

    def time_entropy(self, implementation, dtype, shape):
        self.call()


class EntropyDefaultAxis(Benchmark):
    """SciPy's default ``axis=0`` on a C-ordered array: the columns are copied in blocks."""

    params = [IMPLEMENTATIONS, ["float64"], [(1000, 64), (32000, 512)]]
    param_names = ["implementation", "dtype", "shape"]

    def prepare(self, implementation, dtype, shape):
        p = probabilities(shape[::-1], dtype, "S3-columns").T.copy()
        entropy = _function(implementation, "entropy", "scipy.stats")
        return lambda: entropy(p)

    def time_entropy(self, implementation, dtype, shape):
        self.call()


class LogSumExpWholeArray(Benchmark):
    """S4 at 1e8 float64: ``axis=None``, one long row reduced in fixed chunks."""

    params = [IMPLEMENTATIONS, ["float64"], [(1_000_000,), (10_000_000,), (100_000_000,)]]
    param_names = ["implementation", "dtype", "shape"]
    timeout = 600

    def prepare(self, implementation, dtype, shape):
        x = rng("S4").standard_normal(shape).astype(dtype)
        logsumexp = _function(implementation, "logsumexp", "scipy.special")
        return lambda: logsumexp(x)

    def time_logsumexp(self, implementation, dtype, shape):
        self.call()

    def peakmem_logsumexp(self, implementation, dtype, shape):
        self.call()


class WeightedLogSumExp(Benchmark):
    """``logsumexp(x, axis=-1, b=w)`` with per-class weights of both signs."""

    params = [IMPLEMENTATIONS, ["float64", "float32"], [(64, 1000), (512, 32000)]]
    param_names = ["implementation", "dtype", "shape"]

    def prepare(self, implementation, dtype, shape):
        x = logits(shape, dtype, "S-weighted")
        w = np.where(rng("S-weights").random(shape[-1]) < 0.1, -0.5, 1.0).astype(dtype)
        logsumexp = _function(implementation, "logsumexp", "scipy.special")
        return lambda: logsumexp(x, axis=-1, b=w, return_sign=True)

    def time_logsumexp(self, implementation, dtype, shape):
        self.call()

"""Softmax family on logits: fastinfo against SciPy/NumPy and PyTorch (CPU).

W1 ``log_softmax`` float32 (4096, 32000); W2 mean ``softmax_cross_entropy`` float32 (4096, 32000)
with int64 targets; W3 mean ``softmax_kl_divergence`` of two float32 (2048, 32000).
"""
import numpy as np

from ._common import Benchmark, fastinfo_function, logits, require

IMPLEMENTATIONS = ["fastinfo", "scipy", "torch"]
DTYPES = ["float32", "float64"]
SHAPES = [(64, 1000), (512, 32000), (4096, 32000)]


class _Logits(Benchmark):
    params = [IMPLEMENTATIONS, DTYPES, SHAPES]
    param_names = ["implementation", "dtype", "shape"]

    def _torch(self):
        torch = require("torch")
        return torch, require("torch.nn.functional")


class LogSoftmax(_Logits):
    """W1 at (4096, 32000) float32: ``log_softmax`` over the last axis, a new output array."""

    def prepare(self, implementation, dtype, shape):
        x = logits(shape, dtype, "W1")
        if implementation == "fastinfo":
            log_softmax = fastinfo_function("log_softmax")
            return lambda: log_softmax(x)
        elif implementation == "scipy":
            from scipy.special import log_softmax

            return lambda: log_softmax(x, axis=-1)
        else:
            torch, F = self._torch()
            xt = torch.from_numpy(x)
            return lambda: F.log_softmax(xt, dim=-1)

    def time_log_softmax(self, implementation, dtype, shape):
        self.call()

    def peakmem_log_softmax(self, implementation, dtype, shape):
        self.call()


class Logsumexp(_Logits):
    """``logsumexp`` over the last axis (one value per row)."""

    def prepare(self, implementation, dtype, shape):
        x = logits(shape, dtype, "W1")
        if implementation == "fastinfo":
            logsumexp = fastinfo_function("logsumexp")
            return lambda: logsumexp(x)
        elif implementation == "scipy":
            from scipy.special import logsumexp

            return lambda: logsumexp(x, axis=-1)
        else:
            torch, _ = self._torch()
            xt = torch.from_numpy(x)
            return lambda: torch.logsumexp(xt, dim=-1)

    def time_logsumexp(self, implementation, dtype, shape):
        self.call()

    def peakmem_logsumexp(self, implementation, dtype, shape):
        self.call()


class SoftmaxCrossEntropy(_Logits):
    """W2 at (4096, 32000) float32: mean cross-entropy against int64 class indices."""

    def prepare(self, implementation, dtype, shape):
        x = logits(shape, dtype, "W2")
        target = np.random.default_rng(2).integers(0, shape[1], shape[0], dtype=np.int64)
        if implementation == "fastinfo":
            cross_entropy = fastinfo_function("softmax_cross_entropy")
            return lambda: cross_entropy(x, target)
        elif implementation == "scipy":
            from scipy.special import log_softmax

            rows = np.arange(shape[0])
            return lambda: -np.mean(log_softmax(x, axis=-1)[rows, target], dtype=np.float64)
        else:
            torch, F = self._torch()
            xt, tt = torch.from_numpy(x), torch.from_numpy(target)
            return lambda: F.cross_entropy(xt, tt).item()

    def time_softmax_cross_entropy(self, implementation, dtype, shape):
        self.call()

    def peakmem_softmax_cross_entropy(self, implementation, dtype, shape):
        self.call()


class SoftmaxKLDivergence(_Logits):
    """W3 at (2048, 32000) float32: mean over rows of KL(softmax(p) || softmax(q))."""

    params = [IMPLEMENTATIONS, DTYPES, [(64, 1000), (256, 32000), (2048, 32000)]]

    def prepare(self, implementation, dtype, shape):
        p = logits(shape, dtype, "W3-p")
        q = logits(shape, dtype, "W3-q")
        if implementation == "fastinfo":
            kl = fastinfo_function("softmax_kl_divergence")
            return lambda: kl(p, q, reduction="mean")
        elif implementation == "scipy":
            from scipy.special import log_softmax

            def call():
                log_p, log_q = log_softmax(p, axis=-1), log_softmax(q, axis=-1)
                return np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1, dtype=np.float64))

            return call
        else:
            torch, F = self._torch()
            pt, qt = torch.from_numpy(p), torch.from_numpy(q)
            # kl_div(input, target) sums target * (log target - input): KL(p || q) with target = log p.
            return lambda: F.kl_div(F.log_softmax(qt, dim=-1), F.log_softmax(pt, dim=-1),
                                         log_target=True, reduction="batchmean").item()

    def time_softmax_kl_divergence(self, implementation, dtype, shape):
        self.call()

    def peakmem_softmax_kl_divergence(self, implementation, dtype, shape):
        self.call()

"""Softmax family on logits: fastinfo against SciPy/NumPy and PyTorch (CPU).

W1 ``log_softmax`` float32 (4096, 32000) (also into a preallocated ``out=``); W2 mean
``softmax_cross_entropy`` float32 (4096, 32000) with int64 targets; W3 mean ``softmax_kl_divergence``
of two float32 (2048, 32000). Each also in float16 and bfloat16 (the same logits rounded), read as
they are; ``LogSoftmaxOut`` writes into an ``out=`` of the input's dtype (half precision into half).
SciPy does not take bfloat16 (skipped). The ``track_percent_of_floor`` benchmarks give each call's
share of the memory floor: its compulsory bytes / its time / the machine's read bandwidth (copy
bandwidth for log_softmax), measured by fastinfo's own loops as ``fastinfo bench`` does.
"""
import numpy as np

from ._common import Benchmark, fastinfo_function, fastinfo_reads, logits, percent_of_floor, require, to_torch

IMPLEMENTATIONS = ["fastinfo", "scipy", "torch"]
DTYPES = ["float32", "float64", "float16", "bfloat16"]
SHAPES = [(64, 1000), (512, 32000), (4096, 32000)]


class _Logits(Benchmark):
    params = [IMPLEMENTATIONS, DTYPES, SHAPES]
    param_names = ["implementation", "dtype", "shape"]

    def _torch(self):
        torch = require("torch")
        return torch, require("torch.nn.functional")

    def _fastinfo(self, name, dtype):
        function = fastinfo_function(name)
        fastinfo_reads(logits((2, 3), dtype, "probe").dtype)
        return function

    @staticmethod
    def _scipy_dtype(dtype):
        if dtype == "bfloat16":
            raise NotImplementedError("SciPy does not take bfloat16 arrays")


class LogSoftmax(_Logits):
    """W1 at (4096, 32000) float32: ``log_softmax`` over the last axis, a new output array."""

    def prepare(self, implementation, dtype, shape):
        x = logits(shape, dtype, "W1")
        if implementation == "fastinfo":
            log_softmax = self._fastinfo("log_softmax", dtype)
            return lambda: log_softmax(x)
        elif implementation == "scipy":
            self._scipy_dtype(dtype)
            from scipy.special import log_softmax

            return lambda: log_softmax(x, axis=-1)
        else:
            torch, F = self._torch()
            xt = to_torch(x)
            return lambda: F.log_softmax(xt, dim=-1)

    def time_log_softmax(self, implementation, dtype, shape):
        self.call()

    def peakmem_log_softmax(self, implementation, dtype, shape):
        self.call()


class LogSoftmaxOut(_Logits):
    """W1 into a preallocated output (``out=``) of the input's dtype (half precision into half, each
    element rounded once): the kernel's own traffic, without first-touch page faults of a new
    array; SciPy has no ``out=``."""

    params = [["fastinfo", "torch"], DTYPES, SHAPES]

    def prepare(self, implementation, dtype, shape):
        x = logits(shape, dtype, "W1")
        self.nbytes = 2 * x.nbytes
        out = np.zeros_like(x)
        if implementation == "fastinfo":
            log_softmax = self._fastinfo("log_softmax", dtype)
            try:
                log_softmax(x[:2, :3], out=out[:2, :3])
            except ValueError as exc:  # fastinfo before 0.2: no half-precision out=
                raise NotImplementedError(f"out= of dtype {dtype}: {exc}") from exc
            return lambda: log_softmax(x, out=out)
        torch, _ = self._torch()
        xt, out_t = to_torch(x), to_torch(out)
        return lambda: torch.log_softmax(xt, -1, out=out_t)

    def time_log_softmax_out(self, implementation, dtype, shape):
        self.call()

    def track_percent_of_floor(self, implementation, dtype, shape):
        return percent_of_floor(self.call, self.nbytes, "copy")

    track_percent_of_floor.unit = "%"


class Logsumexp(_Logits):
    """``logsumexp`` over the last axis (one value per row)."""

    def prepare(self, implementation, dtype, shape):
        x = logits(shape, dtype, "W1")
        if implementation == "fastinfo":
            logsumexp = self._fastinfo("logsumexp", dtype)
            return lambda: logsumexp(x)
        elif implementation == "scipy":
            self._scipy_dtype(dtype)
            from scipy.special import logsumexp

            return lambda: logsumexp(x, axis=-1)
        else:
            torch, _ = self._torch()
            xt = to_torch(x)
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
        self.nbytes = x.nbytes + target.nbytes
        if implementation == "fastinfo":
            cross_entropy = self._fastinfo("softmax_cross_entropy", dtype)
            return lambda: cross_entropy(x, target)
        elif implementation == "scipy":
            self._scipy_dtype(dtype)
            from scipy.special import log_softmax

            rows = np.arange(shape[0])
            return lambda: -np.mean(log_softmax(x, axis=-1)[rows, target], dtype=np.float64)
        else:
            torch, F = self._torch()
            xt, tt = to_torch(x), torch.from_numpy(target)
            return lambda: F.cross_entropy(xt, tt).item()

    def time_softmax_cross_entropy(self, implementation, dtype, shape):
        self.call()

    def peakmem_softmax_cross_entropy(self, implementation, dtype, shape):
        self.call()

    def track_percent_of_floor(self, implementation, dtype, shape):
        return percent_of_floor(self.call, self.nbytes, "read")

    track_percent_of_floor.unit = "%"


class SoftmaxKLDivergence(_Logits):
    """W3 at (2048, 32000) float32: mean over rows of KL(softmax(p) || softmax(q))."""

    params = [IMPLEMENTATIONS, DTYPES, [(64, 1000), (256, 32000), (2048, 32000)]]

    def prepare(self, implementation, dtype, shape):
        p = logits(shape, dtype, "W3-p")
        q = logits(shape, dtype, "W3-q")
        self.nbytes = p.nbytes + q.nbytes
        if implementation == "fastinfo":
            kl = self._fastinfo("softmax_kl_divergence", dtype)
            return lambda: kl(p, q, reduction="mean")
        elif implementation == "scipy":
            self._scipy_dtype(dtype)
            from scipy.special import log_softmax

            def call():
                log_p, log_q = log_softmax(p, axis=-1), log_softmax(q, axis=-1)
                return np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1, dtype=np.float64))

            return call
        else:
            torch, F = self._torch()
            pt, qt = to_torch(p), to_torch(q)
            # kl_div(input, target) sums target * (log target - input): KL(p || q) with target = log p.
            return lambda: F.kl_div(F.log_softmax(qt, dim=-1), F.log_softmax(pt, dim=-1),
                                         log_target=True, reduction="batchmean").item()

    def time_softmax_kl_divergence(self, implementation, dtype, shape):
        self.call()

    def peakmem_softmax_kl_divergence(self, implementation, dtype, shape):
        self.call()

    def track_percent_of_floor(self, implementation, dtype, shape):
        return percent_of_floor(self.call, self.nbytes, "read")

    track_percent_of_floor.unit = "%"

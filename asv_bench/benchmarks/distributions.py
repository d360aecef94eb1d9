"""Distribution family on probabilities: fastinfo against SciPy and PyTorch (CPU).

W4 ``entropy`` of float64 probabilities (4096, 32000); also float32, float16 and bfloat16 (the same
probabilities rounded, read as they are). SciPy does not take bfloat16 (skipped).
``track_percent_of_floor``: its share of the read bandwidth (see softmax.py).
"""
from ._common import (Benchmark, fastinfo_function, fastinfo_reads, percent_of_floor, probabilities, require,
                      to_torch)

IMPLEMENTATIONS = ["fastinfo", "scipy", "torch"]
DTYPES = ["float64", "float32", "float16", "bfloat16"]


def _fastinfo(name, dtype):
    function = fastinfo_function(name)
    fastinfo_reads(probabilities((2, 3), dtype, "probe").dtype)
    return function


def _no_scipy_bfloat16(dtype):
    if dtype == "bfloat16":
        raise NotImplementedError("SciPy does not take bfloat16 arrays")


SHAPES = [(64, 1000), (512, 32000), (4096, 32000)]


class Entropy(Benchmark):
    """W4 at (4096, 32000) float64: ``-sum p log p`` per row."""

    params = [IMPLEMENTATIONS, DTYPES, SHAPES]
    param_names = ["implementation", "dtype", "shape"]

    def prepare(self, implementation, dtype, shape):
        p = probabilities(shape, dtype, "W4")
        self.nbytes = p.nbytes
        if implementation == "fastinfo":
            entropy = _fastinfo("entropy", dtype)
            return lambda: entropy(p)
        elif implementation == "scipy":
            _no_scipy_bfloat16(dtype)
            from scipy.stats import entropy

            return lambda: entropy(p, axis=-1)
        else:
            torch = require("torch")
            pt = to_torch(p)
            return lambda: torch.special.entr(pt).sum(-1)

    def time_entropy(self, implementation, dtype, shape):
        self.call()

    def peakmem_entropy(self, implementation, dtype, shape):
        self.call()

    def track_percent_of_floor(self, implementation, dtype, shape):
        return percent_of_floor(self.call, self.nbytes, "read")

    track_percent_of_floor.unit = "%"


class KLDivergence(Benchmark):
    """``sum p log(p / q)`` per row of two probability arrays."""

    params = [IMPLEMENTATIONS, DTYPES, [(64, 1000), (512, 32000), (2048, 32000)]]
    param_names = ["implementation", "dtype", "shape"]

    def prepare(self, implementation, dtype, shape):
        p = probabilities(shape, dtype, "KL-p")
        q = probabilities(shape, dtype, "KL-q")
        if implementation == "fastinfo":
            kl_divergence = _fastinfo("kl_divergence", dtype)
            return lambda: kl_divergence(p, q)
        elif implementation == "scipy":
            _no_scipy_bfloat16(dtype)
            from scipy.stats import entropy

            return lambda: entropy(p, q, axis=-1)
        else:
            torch = require("torch")
            pt, qt = to_torch(p), to_torch(q)
            return lambda: torch.special.xlogy(pt, pt / qt).sum(-1)

    def time_kl_divergence(self, implementation, dtype, shape):
        self.call()

    def peakmem_kl_divergence(self, implementation, dtype, shape):
        self.call()

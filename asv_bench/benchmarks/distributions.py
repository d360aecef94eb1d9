"""Distribution family on probabilities: fastinfo against SciPy and PyTorch (CPU).

W4 ``entropy`` of float64 probabilities (4096, 32000).
"""
from ._common import Benchmark, fastinfo_function, probabilities, require

IMPLEMENTATIONS = ["fastinfo", "scipy", "torch"]
DTYPES = ["float64", "float32"]
SHAPES = [(64, 1000), (512, 32000), (4096, 32000)]


class Entropy(Benchmark):
    """W4 at (4096, 32000) float64: ``-sum p log p`` per row."""

    params = [IMPLEMENTATIONS, DTYPES, SHAPES]
    param_names = ["implementation", "dtype", "shape"]

    def prepare(self, implementation, dtype, shape):
        p = probabilities(shape, dtype, "W4")
        if implementation == "fastinfo":
            entropy = fastinfo_function("entropy")
            return lambda: entropy(p)
        elif implementation == "scipy":
            from scipy.stats import entropy

            return lambda: entropy(p, axis=-1)
        else:
            torch = require("torch")
            pt = torch.from_numpy(p)
            return lambda: torch.special.entr(pt).sum(-1)

    def time_entropy(self, implementation, dtype, shape):
        self.call()

    def peakmem_entropy(self, implementation, dtype, shape):
        self.call()


class KLDivergence(Benchmark):
    """``sum p log(p / q)`` per row of two probability arrays."""

    params = [IMPLEMENTATIONS, DTYPES, [(64, 1000), (512, 32000), (2048, 32000)]]
    param_names = ["implementation", "dtype", "shape"]

    def prepare(self, implementation, dtype, shape):
        p = probabilities(shape, dtype, "KL-p")
        q = probabilities(shape, dtype, "KL-q")
        if implementation == "fastinfo":
            kl_divergence = fastinfo_function("kl_divergence")
            return lambda: kl_divergence(p, q)
        elif implementation == "scipy":
            from scipy.stats import entropy

            return lambda: entropy(p, q, axis=-1)
        else:
            torch = require("torch")
            pt, qt = torch.from_numpy(p), torch.from_numpy(q)
            return lambda: torch.special.xlogy(pt, pt / qt).sum(-1)

    def time_kl_divergence(self, implementation, dtype, shape):
        self.call()

    def peakmem_kl_divergence(self, implementation, dtype, shape):
        self.call()

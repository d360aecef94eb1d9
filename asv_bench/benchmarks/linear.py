"""Fused linear head family (hidden states and an unembedding matrix): fastinfo against PyTorch (CPU).

W8 ``linear_cross_entropy`` float32 at tokens 8192, d 768, V 50,257 (GPT-2 small) against
``F.cross_entropy(F.linear(h, W), t)``; the implementation ``"numpy-product"`` times the bare product
``h @ W.T`` alone, the floor of the workload (it computes only the logits). W9
``linear_cross_entropy_with_grad`` against torch autograd (forward + backward of the same expression).
Sizes are ``(tokens, d, V)``.
"""
import numpy as np

from ._common import Benchmark, fastinfo_function, require, rng

DTYPES = ["float32", "float64"]
SIZES = [(64, 64, 1000), (1024, 768, 50257), (8192, 768, 50257)]


def _data(size, dtype, tag):
    tokens, d, n_vocab = size
    generator = rng(tag)
    hidden = generator.standard_normal((tokens, d), dtype=np.float32).astype(dtype)
    head = (generator.standard_normal((n_vocab, d), dtype=np.float32) / np.sqrt(d)).astype(dtype)
    return hidden, head, generator.integers(0, n_vocab, tokens, dtype=np.int64)


def _warm_fastinfo():
    from fastinfo import _linear

    _linear._load_blas()  # the one-time look-up of SciPy's BLAS


class LinearCrossEntropy(Benchmark):
    """W8 at (8192, 768, 50257) float32: mean cross-entropy of hidden @ head.T, logits never stored."""

    params = [["fastinfo", "torch", "numpy-product"], DTYPES, SIZES]
    param_names = ["implementation", "dtype", "size"]

    def prepare(self, implementation, dtype, size):
        hidden, head, target = _data(size, dtype, "W8")
        if implementation == "fastinfo":
            cross_entropy = fastinfo_function("linear_cross_entropy")
            _warm_fastinfo()
            return lambda: cross_entropy(hidden, head, target)
        if implementation == "numpy-product":
            return lambda: hidden @ head.T
        torch = require("torch")
        F = require("torch.nn.functional")
        h, w, t = torch.from_numpy(hidden), torch.from_numpy(head), torch.from_numpy(target)
        return lambda: F.cross_entropy(F.linear(h, w), t).item()

    def time_linear_cross_entropy(self, implementation, dtype, size):
        self.call()

    def peakmem_linear_cross_entropy(self, implementation, dtype, size):
        self.call()


class LinearCrossEntropyWithGrad(Benchmark):
    """W9 at (8192, 768, 50257) float32: loss and the gradients of hidden and head."""

    params = [["fastinfo", "torch"], DTYPES, SIZES]
    param_names = ["implementation", "dtype", "size"]

    def prepare(self, implementation, dtype, size):
        hidden, head, target = _data(size, dtype, "W8")
        if implementation == "fastinfo":
            with_grad = fastinfo_function("linear_cross_entropy_with_grad")
            _warm_fastinfo()
            return lambda: with_grad(hidden, head, target)
        torch = require("torch")
        F = require("torch.nn.functional")
        h0, w0, t = torch.from_numpy(hidden), torch.from_numpy(head), torch.from_numpy(target)

        def call():
            h, w = h0.detach().requires_grad_(), w0.detach().requires_grad_()
            F.cross_entropy(F.linear(h, w), t).backward()
            return h.grad, w.grad

        return call

    def time_linear_cross_entropy_with_grad(self, implementation, dtype, size):
        self.call()

    def peakmem_linear_cross_entropy_with_grad(self, implementation, dtype, size):
        self.call()


class LinearSoftmaxEntropy(Benchmark):
    """Predictive entropy per token from hidden states (torch: the entropy of log_softmax(F.linear))."""

    params = [["fastinfo", "torch"], DTYPES, SIZES]
    param_names = ["implementation", "dtype", "size"]

    def prepare(self, implementation, dtype, size):
        hidden, head, _ = _data(size, dtype, "W8")
        if implementation == "fastinfo":
            entropy = fastinfo_function("linear_softmax_entropy")
            _warm_fastinfo()
            return lambda: entropy(hidden, head)
        torch = require("torch")
        F = require("torch.nn.functional")
        h, w = torch.from_numpy(hidden), torch.from_numpy(head)

        def call():
            log_p = F.log_softmax(F.linear(h, w), dim=-1)
            return -(log_p.exp() * log_p).sum(-1)

        return call

    def time_linear_softmax_entropy(self, implementation, dtype, size):
        self.call()

    def peakmem_linear_softmax_entropy(self, implementation, dtype, size):
        self.call()

"""Softmax family front-ends (validate -> call kernel -> shape result).

PLACEHOLDER MODULE: every function below is replaced by the real implementation.
"""


def logsumexp(x, axis=-1, keepdims=False):
    raise NotImplementedError("not implemented yet")


def log_softmax(x, axis=-1, *, temperature=1.0, out=None):
    raise NotImplementedError("not implemented yet")


def softmax(x, axis=-1, *, temperature=1.0, out=None):
    raise NotImplementedError("not implemented yet")


def softmax_entropy(logits, axis=-1, *, temperature=1.0, base=None):
    raise NotImplementedError("not implemented yet")


def softmax_cross_entropy(logits, target, axis=-1, *, reduction="mean", ignore_index=None, label_smoothing=0.0, weight=None, temperature=1.0):
    raise NotImplementedError("not implemented yet")


def softmax_cross_entropy_with_grad(logits, target, axis=-1, *, reduction="mean", ignore_index=None, label_smoothing=0.0, weight=None, temperature=1.0):
    raise NotImplementedError("not implemented yet")


def perplexity(logits, target, axis=-1, *, ignore_index=None, temperature=1.0):
    raise NotImplementedError("not implemented yet")


def softmax_kl_divergence(logits_p, logits_q, axis=-1, *, temperature=1.0, reduction="none", base=None):
    raise NotImplementedError("not implemented yet")

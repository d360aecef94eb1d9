"""Distribution family front-ends (probabilities, normalised along axis).

PLACEHOLDER MODULE: every function below is replaced by the real implementation.
"""


def entropy(p, axis=-1, *, base=None):
    raise NotImplementedError("not implemented yet")


def cross_entropy(p, q, axis=-1, *, base=None, eps=0.0):
    raise NotImplementedError("not implemented yet")


def kl_divergence(p, q, axis=-1, *, base=None, eps=0.0):
    raise NotImplementedError("not implemented yet")


def js_divergence(p, q, axis=-1, *, base=None):
    raise NotImplementedError("not implemented yet")

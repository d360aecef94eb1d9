"""fastinfo: fast information theory on large arrays.

Softmax family (from logits), fused linear head losses (from hidden states), distribution family (from probabilities) and
k-nearest-neighbour estimators of entropy and mutual information, computed by
compiled OpenMP kernels behind a NumPy-style API. See ``shared/API.md`` for the contract.
"""
from ._config import __version__, show_config
from ._softmax import (
    logsumexp,
    log_softmax,
    softmax,
    softmax_entropy,
    softmax_cross_entropy,
    softmax_cross_entropy_with_grad,
    perplexity,
    softmax_kl_divergence,
)
from ._linear import (
    linear_cross_entropy,
    linear_cross_entropy_with_grad,
    linear_perplexity,
    linear_softmax_entropy,
    linear_kl_divergence,
)
from ._distributions import entropy, cross_entropy, kl_divergence, js_divergence
from ._estimators import (
    mutual_info_ksg,
    conditional_mutual_info_ksg,
    entropy_knn,
    mutual_info_mixed,
    mutual_info_discrete,
    mutual_info_from_joint,
    mutual_info_matrix,
    mutual_info_features,
    mutual_info_test,
    infonce_bound,
)
from ._dynamics import transfer_entropy_ksg, active_information_storage_ksg, transfer_entropy_test
from ._dask import dask_dispatch as _dask_dispatch

# Dask arrays are routed to fastinfo._dask (which imports Dask only when given one);
# NumPy input goes straight to the front-ends above.
logsumexp = _dask_dispatch(logsumexp)
log_softmax = _dask_dispatch(log_softmax)
softmax = _dask_dispatch(softmax)
softmax_entropy = _dask_dispatch(softmax_entropy)
softmax_cross_entropy = _dask_dispatch(softmax_cross_entropy)
softmax_cross_entropy_with_grad = _dask_dispatch(softmax_cross_entropy_with_grad)
perplexity = _dask_dispatch(perplexity)
softmax_kl_divergence = _dask_dispatch(softmax_kl_divergence)
linear_cross_entropy = _dask_dispatch(linear_cross_entropy)
linear_cross_entropy_with_grad = _dask_dispatch(linear_cross_entropy_with_grad)
linear_perplexity = _dask_dispatch(linear_perplexity)
linear_softmax_entropy = _dask_dispatch(linear_softmax_entropy)
linear_kl_divergence = _dask_dispatch(linear_kl_divergence)
entropy = _dask_dispatch(entropy)
cross_entropy = _dask_dispatch(cross_entropy)
kl_divergence = _dask_dispatch(kl_divergence)
js_divergence = _dask_dispatch(js_divergence)
mutual_info_matrix = _dask_dispatch(mutual_info_matrix)
mutual_info_features = _dask_dispatch(mutual_info_features)

__all__ = [
    "__version__",
    "show_config",
    "logsumexp",
    "log_softmax",
    "softmax",
    "softmax_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_grad",
    "perplexity",
    "softmax_kl_divergence",
    "linear_cross_entropy",
    "linear_cross_entropy_with_grad",
    "linear_perplexity",
    "linear_softmax_entropy",
    "linear_kl_divergence",
    "entropy",
    "cross_entropy",
    "kl_divergence",
    "js_divergence",
    "mutual_info_ksg",
    "conditional_mutual_info_ksg",
    "entropy_knn",
    "mutual_info_mixed",
    "mutual_info_discrete",
    "mutual_info_from_joint",
    "mutual_info_matrix",
    "mutual_info_features",
    "mutual_info_test",
    "infonce_bound",
    "transfer_entropy_ksg",
    "active_information_storage_ksg",
    "transfer_entropy_test",
]

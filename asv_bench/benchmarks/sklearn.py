"""The scikit-learn drop-in ``fastinfo.sklearn`` against scikit-learn itself (same call, same values)."""
import numpy as np

from ._common import Benchmark, fastinfo_function, features, require

IMPLEMENTATIONS = ["fastinfo", "sklearn"]
DTYPES = ["float64", "float32"]
SHAPES = [(500, 5), (10_000, 50)]


def _function(implementation, name):
    if implementation == "fastinfo":
        return fastinfo_function(name, module="fastinfo.sklearn")
    return getattr(require("sklearn.feature_selection"), name)


class _DropIn(Benchmark):
    params = [IMPLEMENTATIONS, DTYPES, SHAPES]
    param_names = ["implementation", "dtype", "shape"]
    number = 1
    repeat = (1, 5, 60.0)
    timeout = 600


class MutualInfoRegression(_DropIn):
    """W7 through the drop-in: ``mutual_info_regression(X, y)`` on (10,000, 50)."""

    def prepare(self, implementation, dtype, shape):
        X, y = features(*shape, dtype, "W7")
        function = _function(implementation, "mutual_info_regression")
        return lambda: function(X, y, random_state=0)

    def time_mutual_info_regression(self, implementation, dtype, shape):
        self.call()

    def peakmem_mutual_info_regression(self, implementation, dtype, shape):
        self.call()


class MutualInfoClassif(_DropIn):
    """``mutual_info_classif(X, labels)`` with 4 classes derived from the continuous target."""

    def prepare(self, implementation, dtype, shape):
        X, y = features(*shape, dtype, "W7")
        labels = np.searchsorted(np.quantile(y, [0.25, 0.5, 0.75]), y)
        function = _function(implementation, "mutual_info_classif")
        return lambda: function(X, labels, random_state=0)

    def time_mutual_info_classif(self, implementation, dtype, shape):
        self.call()

    def peakmem_mutual_info_classif(self, implementation, dtype, shape):
        self.call()

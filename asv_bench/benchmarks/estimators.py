"""kNN estimators: fastinfo against scikit-learn and ennemi.

W5 ``mutual_info_ksg`` 1-D x 1-D, n = 10,000 / 100,000 / 1,000,000, k = 3, Gaussian rho = 0.6;
W6 ``mutual_info_ksg`` 4-D x 4-D, n = 20,000; W7 ``mutual_info_features`` on (10,000, 50).
Every implementation computes the raw KSG algorithm 1 estimate on the same standardised data
(scikit-learn additionally adds 1e-10 noise and clips at 0; ennemi runs with ``preprocess=False``).
"""
from ._common import Benchmark, fastinfo_function, features, gaussian_pair, require

K = 3
DTYPES = ["float64", "float32"]


class _Estimator(Benchmark):
    param_names = ["implementation", "dtype", "n"]
    number = 1
    repeat = (1, 5, 60.0)
    timeout = 600


class MutualInfoKSG1D(_Estimator):
    """W5: KSG mutual information of two scalar variables (bivariate Gaussian, rho = 0.6)."""

    params = [["fastinfo", "sklearn", "ennemi"], DTYPES, [1_000, 10_000, 100_000, 1_000_000]]

    def prepare(self, implementation, dtype, n):
        x, y = gaussian_pair(n, 1, dtype, "W5")
        if implementation == "fastinfo":
            mutual_info_ksg = fastinfo_function("mutual_info_ksg")
            return lambda: mutual_info_ksg(x, y, k=K)
        elif implementation == "sklearn":
            mutual_info_regression = require("sklearn.feature_selection").mutual_info_regression
            x2 = x[:, None]
            return lambda: mutual_info_regression(x2, y, n_neighbors=K, random_state=0)
        else:
            ennemi = require("ennemi")
            return lambda: ennemi.estimate_mi(y, x, k=K, preprocess=False)

    def time_mutual_info_ksg(self, implementation, dtype, n):
        self.call()

    def peakmem_mutual_info_ksg(self, implementation, dtype, n):
        self.call()


class MutualInfoKSG4D(_Estimator):
    """W6: KSG mutual information of two 4-D variables (rho = 0.6 per coordinate pair)."""

    params = [["fastinfo", "ennemi"], DTYPES, [1_000, 20_000]]

    def prepare(self, implementation, dtype, n):
        x, y = gaussian_pair(n, 4, dtype, "W6")
        if implementation == "fastinfo":
            mutual_info_ksg = fastinfo_function("mutual_info_ksg")
            return lambda: mutual_info_ksg(x, y, k=K)
        else:
            require("ennemi")
            # ennemi's public estimate_mi takes a 1-D y; its KSG core takes multivariate x and y.
            estimate = require("ennemi._entropy_estimators")._estimate_single_mi
            return lambda: estimate(x, y, k=K)

    def time_mutual_info_ksg(self, implementation, dtype, n):
        self.call()

    def peakmem_mutual_info_ksg(self, implementation, dtype, n):
        self.call()


class MutualInfoFeatures(_Estimator):
    """W7 at (10,000, 50): the MI of every column of X with a continuous target."""

    params = [["fastinfo", "sklearn", "ennemi"], DTYPES, [(500, 5), (10_000, 50)]]
    param_names = ["implementation", "dtype", "shape"]

    def prepare(self, implementation, dtype, shape):
        X, y = features(*shape, dtype, "W7")
        if implementation == "fastinfo":
            mutual_info_features = fastinfo_function("mutual_info_features")
            return lambda: mutual_info_features(X, y, k=K)
        elif implementation == "sklearn":
            mutual_info_regression = require("sklearn.feature_selection").mutual_info_regression
            return lambda: mutual_info_regression(X, y, n_neighbors=K, random_state=0)
        else:
            ennemi = require("ennemi")
            return lambda: ennemi.estimate_mi(y, X, k=K, preprocess=False)

    def time_mutual_info_features(self, implementation, dtype, shape):
        self.call()

    def peakmem_mutual_info_features(self, implementation, dtype, shape):
        self.call()


class MutualInfoMatrix(_Estimator):
    """``mutual_info_matrix``: all column pairs of a (n, 8) table (no peer computes it in one call)."""

    params = [["fastinfo"], DTYPES, [(500, 8), (10_000, 8)]]
    param_names = ["implementation", "dtype", "shape"]

    def prepare(self, implementation, dtype, shape):
        X, _ = features(*shape, dtype, "matrix")
        mutual_info_matrix = fastinfo_function("mutual_info_matrix")
        return lambda: mutual_info_matrix(X, k=K)

    def time_mutual_info_matrix(self, implementation, dtype, shape):
        self.call()


class MutualInfoTest(_Estimator):
    """``mutual_info_test`` with 999 permutations (target: under 1 s at n = 10,000)."""

    params = [["fastinfo"], ["float64"], [200, 10_000]]

    def prepare(self, implementation, dtype, n):
        x, y = gaussian_pair(n, 1, dtype, "test")
        mutual_info_test = fastinfo_function("mutual_info_test")
        return lambda: mutual_info_test(x, y, k=K, n_permutations=999, random_state=0)

    def time_mutual_info_test(self, implementation, dtype, n):
        self.call()

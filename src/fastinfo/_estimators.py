"""Estimators from samples: KSG, Frenzel-Pompe, Kozachenko-Leonenko, Ross, plug-in.

PLACEHOLDER MODULE: every function below is replaced by the real implementation.
"""


def mutual_info_ksg(x, y, *, k=3, algorithm=1, base=None):
    raise NotImplementedError("not implemented yet")


def conditional_mutual_info_ksg(x, y, z, *, k=3, base=None):
    raise NotImplementedError("not implemented yet")


def entropy_knn(x, *, k=3, base=None):
    raise NotImplementedError("not implemented yet")


def mutual_info_mixed(x, labels, *, k=3, base=None):
    raise NotImplementedError("not implemented yet")


def mutual_info_discrete(a, b, *, base=None):
    raise NotImplementedError("not implemented yet")


def mutual_info_from_joint(pxy, *, base=None):
    raise NotImplementedError("not implemented yet")


def mutual_info_matrix(X, *, k=3, base=None):
    raise NotImplementedError("not implemented yet")


def mutual_info_features(X, y, *, k=3, discrete_features=False, discrete_target=False, base=None):
    raise NotImplementedError("not implemented yet")


def mutual_info_test(x, y, *, k=3, n_permutations=999, random_state=None, base=None):
    raise NotImplementedError("not implemented yet")


def infonce_bound(scores):
    raise NotImplementedError("not implemented yet")

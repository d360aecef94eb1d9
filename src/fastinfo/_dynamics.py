"""Information dynamics of time series: transfer entropy, active information storage, their
permutation test.

Embedding (the convention of JIDT and TRENTOOL): at time ``t`` the target's past is the
``target_history`` values ``target[t-1-(target_history-1)*target_tau], ..., target[t-1]``; the
source's past is the ``source_history`` values ending at ``source[t-delay]``, spaced by
``source_tau``. Samples are the times ``t0 <= t <= n - 1``, ``t0`` the first time at which every
past exists. Each embedding is one strided view of the series (no copy per lag), made contiguous
once; the estimators are those of :mod:`fastinfo._estimators` on the embedded samples.
"""
import numbers

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._estimators import (_ksg_from_marginals, _marginal_pair, check_local, check_n_permutations,
                          cmi_from_samples, cmi_permutation_null)
from ._validation import as_samples, check_k, check_same_length, log_base_divisor

__all__ = ["transfer_entropy_ksg", "active_information_storage_ksg", "transfer_entropy_test"]


def _check_positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    value = int(value)
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value}")
    return value


def _check_samples(n, t0, what):
    if n - t0 < 1:
        raise ValueError(
            f"time series too short: {what} needs more than {t0} time steps for one sample; got n={n}")
    return n - t0


def embed(series, history, tau, last_lag, t0):
    """Rows ``t = t0 .. n-1`` of ``[series[t-last_lag-(history-1)*tau], ..., series[t-last_lag]]``
    (oldest first; each lag contributes the series' ``d`` values): a ``(n - t0, history * d)``
    C-contiguous float64 array, read through one strided view of ``series`` ((n, d), float64)."""
    n, d = series.shape
    m = n - t0
    first = t0 - last_lag - (history - 1) * tau
    if first < 0 or m < 1:
        raise AssertionError("embedding out of range")   # callers check t0
    s0, s1 = series.strides
    view = as_strided(series[first:], shape=(m, history, d), strides=(s0, tau * s0, s1),
                      writeable=False)
    return np.ascontiguousarray(view).reshape(m, history * d)


class _TransferEntropySamples:
    """The validated, embedded samples of a transfer entropy: ``source_past``, ``target_now``
    and ``conditioning`` (target past, then the condition at ``t - 1``)."""

    def __init__(self, source, target, k, target_history, source_history, delay, target_tau,
                 source_tau, condition):
        target_history = _check_positive_int(target_history, "target_history")
        source_history = _check_positive_int(source_history, "source_history")
        delay = _check_positive_int(delay, "delay")
        target_tau = _check_positive_int(target_tau, "target_tau")
        source_tau = _check_positive_int(source_tau, "source_tau")
        source = as_samples(source, "source")
        target = as_samples(target, "target")
        series = {"source": source, "target": target}
        if condition is not None:
            condition = as_samples(condition, "condition")
            series["condition"] = condition
        check_same_length(**series)
        n = source.shape[0]
        t0 = max((target_history - 1) * target_tau + 1, (source_history - 1) * source_tau + delay)
        m = _check_samples(n, t0, "transfer entropy with these histories, taus and delay")
        self.k = check_k(k, m)
        self.source_past = embed(source, source_history, source_tau, delay, t0)
        self.target_now = embed(target, 1, 1, 0, t0)
        z = [embed(target, target_history, target_tau, 1, t0)]
        if condition is not None:
            z.append(embed(condition, 1, 1, 1, t0))
        self.conditioning = z[0] if len(z) == 1 else np.concatenate(z, axis=1)


def transfer_entropy_ksg(source, target, *, k=4, target_history=1, source_history=1, delay=1,
                         target_tau=1, source_tau=1, condition=None, local=False, base=None):
    r"""Transfer entropy from ``source`` to ``target`` by the Frenzel-Pompe (KSG) estimator.

    :math:`T_{S \to X} = I(S^{(l)}_{t-\delta} ; X_t \mid X^{(k)}_{t-1})`, the conditional mutual
    information between the source's past and the target's next value given the target's past,
    estimated by :func:`conditional_mutual_info_ksg` over the embedded samples.

    Embedding (JIDT's and TRENTOOL's convention): at time ``t`` the target's past is the
    ``target_history`` values ``target[t-1-(target_history-1)*target_tau], ..., target[t-1]``;
    the source's past is the ``source_history`` values ending at ``source[t-delay]``, spaced by
    ``source_tau``; a ``(n, d)`` series contributes its ``d`` values at each lag. The samples are
    the times from ``t0 = max((target_history-1)*target_tau + 1, (source_history-1)*source_tau +
    delay)`` to ``n - 1``.

    Parameters
    ----------
    source, target : array_like, shape (n,) or (n, d)
        Time series, samples in time order, of the same length.
    k : int, default 4
        Neighbours in the joint space (JIDT's default).
    target_history, source_history, delay, target_tau, source_tau : int, default 1
        Embedding lengths, spacings and the source-target delay, each ``>= 1``.
    condition : array_like, shape (n,) or (n, c), optional
        Other series whose values at ``t - 1`` join the conditioning set (conditional transfer
        entropy).
    local : bool, default False
        Return the local transfer entropy instead, one value per sample (time ``t0 .. n-1``);
        their mean is the estimate.
    base : float, optional
        Logarithm base of the result (``None``: nats).

    Returns
    -------
    float, or ndarray of shape (n - t0,) when ``local``

    Raises
    ------
    ValueError
        Series of different lengths, a series too short for one sample, non-finite values,
        histories, taus or delay below 1, or ``k`` not below the number of samples.

    References
    ----------
    T. Schreiber, "Measuring information transfer", Phys. Rev. Lett. 85, 461 (2000);
    S. Frenzel, B. Pompe, Phys. Rev. Lett. 99, 204101 (2007);
    J. T. Lizier, "JIDT: an information-theoretic toolkit for studying the dynamics of complex
    systems", Front. Robot. AI 1:11 (2014).

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> rng = np.random.default_rng(0)
    >>> s = rng.normal(size=5000)
    >>> x = np.zeros(5000)
    >>> x[1:] = 0.8 * s[:-1] + 0.6 * rng.normal(size=4999)
    >>> round(fi.transfer_entropy_ksg(s, x), 1)   # exact: -0.5 log(1 - 0.64) = 0.51
    0.5
    >>> round(fi.transfer_entropy_ksg(x, s), 1)   # no flow from x to s
    0.0
    """
    local = check_local(local)
    divisor = log_base_divisor(base)
    te = _TransferEntropySamples(source, target, k, target_history, source_history, delay,
                                 target_tau, source_tau, condition)
    return cmi_from_samples(te.source_past, te.target_now, te.conditioning, te.k, local, divisor)


def active_information_storage_ksg(x, *, k=4, history=1, tau=1, local=False, base=None):
    r"""Active information storage of a time series by the KSG estimator (algorithm 1).

    :math:`A_X = I(X^{(k)}_{t-1} ; X_t)`: the mutual information between the series' past, the
    ``history`` values ``x[t-1-(history-1)*tau], ..., x[t-1]``, and its next value ``x[t]``, over
    the times ``t = (history-1)*tau + 1 .. n-1``.

    Parameters
    ----------
    x : array_like, shape (n,) or (n, d)
        Time series, samples in time order.
    k : int, default 4
    history, tau : int, default 1
        Embedding length and spacing, each ``>= 1``.
    local : bool, default False
        Return the local values instead, one per sample; their mean is the estimate.
    base : float, optional

    Returns
    -------
    float, or ndarray of shape (n - (history-1)*tau - 1,) when ``local``

    References
    ----------
    J. T. Lizier, M. Prokopenko, A. Y. Zomaya, "Local measures of information storage in complex
    distributed computation", Information Sciences 208, 39 (2012).

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> rng = np.random.default_rng(0)
    >>> x = np.zeros(5000)
    >>> for t in range(1, 5000):
    ...     x[t] = 0.8 * x[t - 1] + 0.6 * rng.normal()
    >>> round(fi.active_information_storage_ksg(x), 1)   # exact: -0.5 log(1 - 0.64) = 0.51
    0.5
    """
    local = check_local(local)
    divisor = log_base_divisor(base)
    history = _check_positive_int(history, "history")
    tau = _check_positive_int(tau, "tau")
    x = as_samples(x, "x")
    n = x.shape[0]
    t0 = (history - 1) * tau + 1
    m = _check_samples(n, t0, "active information storage with this history and tau")
    k = check_k(k, m)
    past = embed(x, history, tau, 1, t0)
    now = embed(x, 1, 1, 0, t0)
    value = _ksg_from_marginals(*_marginal_pair(past, now), k, 1, m, local)
    if local:
        return value / divisor
    return float(value / divisor)


def transfer_entropy_test(source, target, *, n_permutations=999, random_state=None, k=4,
                          target_history=1, source_history=1, delay=1, target_tau=1, source_tau=1,
                          condition=None, base=None):
    r"""Permutation test of zero transfer entropy from ``source`` to ``target``.

    The estimate is ``transfer_entropy_ksg(source, target, ...)`` with the same options. The null
    distribution is the estimator on the source-past vectors permuted over time (the target's
    next values, its past and the condition stay in place), for ``n_permutations`` permutations
    drawn as ``rng = numpy.random.default_rng(random_state)`` then ``perm = rng.permutation(m)``
    (``m`` samples) once per permutation, in order. The p-value is
    :math:`(1 + \#\{\text{null} \ge \text{estimate}\}) / (1 + \text{n\_permutations})`.
    The structures of the target side (the ``(target, past)`` and past search trees) are built
    once; the permutations run in parallel, each drawn in order under the generator's lock, so the
    result does not depend on the thread count.

    Parameters
    ----------
    source, target : array_like, shape (n,) or (n, d)
    n_permutations : int, default 999
    random_state : None, int, or numpy Generator / SeedSequence / BitGenerator
        Passed to ``numpy.random.default_rng``.
    k, target_history, source_history, delay, target_tau, source_tau, condition, base
        As for :func:`transfer_entropy_ksg`.

    Returns
    -------
    estimate, p_value : float, float

    Examples
    --------
    >>> import numpy as np, fastinfo as fi
    >>> rng = np.random.default_rng(0)
    >>> s = rng.normal(size=1000)
    >>> x = np.zeros(1000)
    >>> x[1:] = 0.5 * s[:-1] + rng.normal(size=999)
    >>> est, p = fi.transfer_entropy_test(s, x, n_permutations=99, random_state=0)
    >>> p
    0.01
    """
    divisor = log_base_divisor(base)
    n_permutations = check_n_permutations(n_permutations)
    te = _TransferEntropySamples(source, target, k, target_history, source_history, delay,
                                 target_tau, source_tau, condition)
    estimate = cmi_from_samples(te.source_past, te.target_now, te.conditioning, te.k, False, divisor)
    rng = np.random.default_rng(random_state)
    null = cmi_permutation_null(te.source_past, te.target_now, te.conditioning, te.k, rng,
                                n_permutations, divisor)
    p_value = (1.0 + float(np.count_nonzero(null >= estimate))) / (1.0 + n_permutations)
    return estimate, float(p_value)

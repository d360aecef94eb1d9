"""Information dynamics: fastinfo against JIDT (through jpype; asv_bench/requirements-jidt.txt).

W10 ``transfer_entropy_ksg``, k = 4, histories 1 (coupled autoregressive pair); W11
``conditional_mutual_info_ksg`` (1, 1 | 2); W12 ``active_information_storage_ksg``, history 5; all
n = 50,000 at the quoted size. JIDT runs with fastinfo's conventions: no normalisation, no added
noise, max-norm, KSG algorithm 1 (its AIS default is algorithm 2), k = 4. The permutation test
(W10 test: 999 permutations, n = 10,000) is timed for fastinfo alone.
"""
import numpy as np

from ._common import Benchmark, fastinfo_function, rng

K = 4


def coupled(n, tag):
    """source iid N(0, 1); target[t] = 0.5 target[t-1] + 0.8 source[t-1] + 0.6 noise."""
    r = rng(tag)
    source = r.standard_normal(n)
    noise = r.standard_normal(n)
    target = np.zeros(n)
    for t in range(1, n):
        target[t] = 0.5 * target[t - 1] + 0.8 * source[t - 1] + 0.6 * noise[t]
    return source, target


def jidt():
    """(jpype, JIDT's kraskov package), or NotImplementedError (asv: skipped) when not installed."""
    from fastinfo import _bench

    try:
        return _bench._import_jidt()
    except ImportError as exc:
        raise NotImplementedError(f"JIDT is not installed ({exc})") from exc


def jidt_calculator(cls, **properties):
    from fastinfo import _bench

    return _bench._jidt_calculator(cls, None, k=K, **properties)


class _Dynamics(Benchmark):
    param_names = ["implementation", "dtype", "n"]
    number = 1
    repeat = (1, 5, 60.0)
    timeout = 600


class TransferEntropy(_Dynamics):
    """W10: transfer entropy, histories 1."""

    params = [["fastinfo", "jidt"], ["float64"], [1_000, 50_000]]

    def prepare(self, implementation, dtype, n):
        source, target = coupled(n, "W10")
        if implementation == "fastinfo":
            transfer_entropy_ksg = fastinfo_function("transfer_entropy_ksg")
            return lambda: transfer_entropy_ksg(source, target, k=K)
        jpype, kraskov = jidt()
        calc = jidt_calculator(kraskov.TransferEntropyCalculatorKraskov)
        js, jt = jpype.JArray(jpype.JDouble)(source), jpype.JArray(jpype.JDouble)(target)

        def call():
            calc.initialise(1)
            calc.setObservations(js, jt)
            return calc.computeAverageLocalOfObservations()
        return call

    def time_transfer_entropy(self, implementation, dtype, n):
        self.call()


class TransferEntropyTest(_Dynamics):
    """W10 test: 999 permutations (fastinfo alone)."""

    params = [["fastinfo"], ["float64"], [1_000, 10_000]]

    def prepare(self, implementation, dtype, n):
        source, target = coupled(n, "W10-test")
        transfer_entropy_test = fastinfo_function("transfer_entropy_test")
        return lambda: transfer_entropy_test(source, target, k=K, n_permutations=999, random_state=0)

    def time_transfer_entropy_test(self, implementation, dtype, n):
        self.call()


class ConditionalMutualInfo(_Dynamics):
    """W11: conditional MI (1, 1 | 2)."""

    params = [["fastinfo", "jidt"], ["float64"], [1_000, 50_000]]

    def prepare(self, implementation, dtype, n):
        r = rng("W11")
        z = r.standard_normal((n, 2))
        x = z[:, 0] + r.standard_normal(n)
        y = z[:, 1] + 0.5 * x + r.standard_normal(n)
        if implementation == "fastinfo":
            conditional_mutual_info_ksg = fastinfo_function("conditional_mutual_info_ksg")
            return lambda: conditional_mutual_info_ksg(x, y, z, k=K)
        jpype, kraskov = jidt()
        calc = jidt_calculator(kraskov.ConditionalMutualInfoCalculatorMultiVariateKraskov1)
        matrix = jpype.JArray(jpype.JDouble, 2)
        jx, jy, jz = matrix(x[:, None]), matrix(y[:, None]), matrix(z)

        def call():
            calc.initialise(1, 1, 2)
            calc.setObservations(jx, jy, jz)
            return calc.computeAverageLocalOfObservations()
        return call

    def time_conditional_mutual_info(self, implementation, dtype, n):
        self.call()


class ActiveInformationStorage(_Dynamics):
    """W12: active information storage, history 5."""

    params = [["fastinfo", "jidt"], ["float64"], [1_000, 50_000]]

    def prepare(self, implementation, dtype, n):
        _, x = coupled(n, "W12")
        if implementation == "fastinfo":
            active_information_storage_ksg = fastinfo_function("active_information_storage_ksg")
            return lambda: active_information_storage_ksg(x, k=K, history=5)
        jpype, kraskov = jidt()
        calc = jidt_calculator(kraskov.ActiveInfoStorageCalculatorKraskov, ALG_NUM=1)
        jx = jpype.JArray(jpype.JDouble)(x)

        def call():
            calc.initialise(5, 1)
            calc.setObservations(jx)
            return calc.computeAverageLocalOfObservations()
        return call

    def time_active_information_storage(self, implementation, dtype, n):
        self.call()

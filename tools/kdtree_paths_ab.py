"""A/B of the KD-tree's fixed-dimension paths (csrc/kdtree_lowd.h) against the generic tree code,
in one process, on the W10-W12 workloads of ``fastinfo bench`` and the transfer-entropy test.

    python tools/kdtree_paths_ab.py [--rounds 3]

Prints the minimum time of each path over alternating rounds (the machine may be noisy: the two
paths are measured in turn, never in different runs). Both paths give the same estimates (the
tests check it bitwise); the script asserts it too.
"""
import argparse
import time

import numpy as np

import fastinfo as fi
from fastinfo import _kernels
from fastinfo._bench import coupled_autoregressive


def _best(f, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=50_000)
    args = parser.parse_args()
    n = args.n
    source, target = coupled_autoregressive(n, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    z = rng.standard_normal((n, 2))
    x = z[:, 0] + rng.standard_normal(n)
    y = z[:, 1] + 0.5 * x + rng.standard_normal(n)
    _, series = coupled_autoregressive(n, np.random.default_rng(3))
    s10, t10 = coupled_autoregressive(10_000, np.random.default_rng(4), c=0.05, sigma=1.0)
    cases = [
        ("W10 transfer_entropy_ksg", lambda: fi.transfer_entropy_ksg(source, target, k=4), 3),
        ("W11 conditional_mutual_info_ksg", lambda: fi.conditional_mutual_info_ksg(x, y, z, k=4), 3),
        ("W12 active_information_storage_ksg", lambda: fi.active_information_storage_ksg(series, k=4, history=5), 3),
        ("transfer_entropy_test 99 permutations", lambda: fi.transfer_entropy_test(s10, t10, k=4, n_permutations=99,
                                                                                  random_state=0), 1),
    ]
    old = _kernels._set_kd_lowd(True)
    try:
        for name, f, repeats in cases:
            times = {False: float("inf"), True: float("inf")}
            values = {}
            for _ in range(args.rounds):
                for on in (False, True):
                    _kernels._set_kd_lowd(on)
                    values[on] = f()
                    times[on] = min(times[on], _best(f, repeats))
            assert repr(values[False]) == repr(values[True]), (name, values)
            print(f"{name:40s} generic {times[False] * 1e3:8.1f} ms   fixed-dimension {times[True] * 1e3:8.1f} ms"
                  f"   ({times[False] / times[True]:.2f}x)")
    finally:
        _kernels._set_kd_lowd(old)


if __name__ == "__main__":
    main()

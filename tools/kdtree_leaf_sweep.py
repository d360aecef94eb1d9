"""Leaf-size sweep of the fixed-dimension KD-tree paths (csrc/kdtree_lowd.h).

For each dimension d and each leaf multiplier, times a workload whose time is dominated by one
kind of tree: ``entropy_knn`` of d-D data (the k-NN tree alone) and ``mutual_info_ksg`` of a d-D x
and a 1-D y (the d-D range-count tree; the (d+1)-D k-NN tree keeps its setting, so differences
between multipliers come from the count tree). Gaussian samples with correlated coordinates,
k = 4, minimum of --repeat runs. Prints one row per (kind, d, n) with the time of each multiplier
and the best one. Results do not depend on the leaf size (tests check this); only speed does.

    python tools/kdtree_leaf_sweep.py --dims 4,5,6 --sizes 20000,100000
"""
import argparse
import time

import numpy as np

import fastinfo as fi
from fastinfo import _kernels


def data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d + 1))
    x[:, 1:] += 0.6 * x[:, :-1]
    return x


def best_time(f, repeat):
    f()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="knn,count")
    ap.add_argument("--dims", default="2,3,4,5,6,7")
    ap.add_argument("--sizes", default="20000,100000")
    ap.add_argument("--mults", default="1,2,3,4,6,8")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    mults = [int(m) for m in args.mults.split(",")]
    for kind in args.kinds.split(","):
        for d in (int(v) for v in args.dims.split(",")):
            for n in (int(v) for v in args.sizes.split(",")):
                x = data(n, d)
                if kind == "knn":
                    f = lambda: fi.entropy_knn(x[:, :d], k=4)           # noqa: E731
                else:
                    f = lambda: fi.mutual_info_ksg(x[:, :d], x[:, d], k=4)  # noqa: E731
                old = _kernels._set_kd_lowd_leaf_mult(kind, d, mults[0])
                times = {}
                try:
                    for m in mults:
                        _kernels._set_kd_lowd_leaf_mult(kind, d, m)
                        times[m] = best_time(f, args.repeat)
                finally:
                    _kernels._set_kd_lowd_leaf_mult(kind, d, old)
                best = min(times, key=times.get)
                cells = "  ".join(f"x{m} {1e3 * t:7.1f}" for m, t in times.items())
                print(f"{kind:5s} d={d} n={n:>7,}  {cells}   best x{best} (now x{old})", flush=True)


if __name__ == "__main__":
    main()

"""Time the dense workloads W1-W4 (float32 logsumexp, W2 mean cross-entropy, W1 log_softmax into
out=, W3 mean KL, W4 float64 entropy; the bench's shapes) for the fastinfo package found at SRC (a
source tree with a built extension, e.g. a worktree of an older commit, see
tools/build_v01_avx2.sh), to compare builds and clones by alternating processes:

    python tools/dense_build_ab.py SRC [--repeats 9]
    FASTINFO_ISA=avx2 python tools/dense_build_ab.py src

Prints the package path, the dense clone in use and the minimum time of each workload in ms.
"""
import argparse
import sys
import time

import numpy as np


def _best(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    sys.path.insert(0, args.src)
    import fastinfo as fi

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 32000), dtype=np.float32)
    y = rng.standard_normal((2048, 32000), dtype=np.float32)
    target = rng.integers(0, 32000, 4096)
    out = np.empty_like(x)
    p = rng.random((4096, 32000))
    p /= p.sum(axis=1, keepdims=True)
    r = args.repeats
    row = {
        "logsumexp": _best(lambda: fi.logsumexp(x), r),
        "W2": _best(lambda: fi.softmax_cross_entropy(x, target), r),
        "W1 out=": _best(lambda: fi.log_softmax(x, out=out), r),
        "W3": _best(lambda: fi.softmax_kl_divergence(x[:2048], y), r),
        "W4": _best(lambda: fi.entropy(p, axis=1), r),
    }
    clone = fi._kernels.dense_simd() if hasattr(fi._kernels, "dense_simd") else "(no dense_simd: 0.1)"
    print(f"{fi.__file__}  {clone.split(' (')[0]}  " + "  ".join(f"{k} {v:.1f}" for k, v in row.items()))


if __name__ == "__main__":
    main()

"""Time ``fastinfo.entropy(p, axis=1)`` on the W4 array (float64 (4096, 32000)) for the fastinfo
package found at SRC (a source tree with a built extension, e.g. a worktree of an older commit),
to compare builds and clones by alternating processes:

    python tools/entropy_build_ab.py SRC [--repeats 9]
    FASTINFO_ISA=avx2 python tools/entropy_build_ab.py src

Prints the package path, the dense clone in use and the minimum and median times.
"""
import argparse
import sys
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    sys.path.insert(0, args.src)
    import fastinfo as fi

    rng = np.random.default_rng(0)
    p = rng.random((4096, 32000))
    p /= p.sum(axis=1, keepdims=True)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fi.entropy(p, axis=1)
        times.append(time.perf_counter() - t)
    clone = fi._kernels.dense_simd() if hasattr(fi._kernels, "dense_simd") else "(no dense_simd: 0.1)"
    times.sort()
    print(f"{fi.__file__}  {clone}  entropy f64 (4096, 32000): min {times[0] * 1e3:.1f} ms, "
          f"median {times[len(times) // 2] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()

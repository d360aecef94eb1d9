"""Cycles per element of the dense kernels, in memory and in cache, next to the memory floor:
where the time of W1-W4 goes on this machine.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python tools/dense_cycles.py [--threads 2]

For each workload it prints, per core (time x clock x threads / elements):
  - "memory": the bench's array (4096 or 2048 rows of 32,000), read from memory;
  - "cache":  the same kernel on 32 rows per thread, repeated (4-8 MiB of input per thread,
              which stays in the 32 MiB L3 between calls; W1's streaming stores still go to memory);
  - "floor":  the compulsory bytes of one element at the machine's read (W2-W4) or copy (W1)
              bandwidth, measured in the same run by fastinfo's C loops.
A kernel whose "cache" figure is close to its "memory" figure is bound by its instructions,
not by memory: it reaches the floor only with fewer instructions per element.

The clock is measured here, with a chain of dependent integer adds (one cycle each) compiled
with the system's C compiler; a machine that changes its clock under vector load (AVX-512
licences) runs the kernels at a lower clock than this, so the cycle figures are upper bounds.
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

_CLOCK_C = r"""
#include <stdint.h>
/* n dependent adds, four per iteration (a 1-cycle latency each on x86-64) */
uint64_t fi_add_chain(uint64_t n) {
    uint64_t a = 0, i;
    for (i = 0; i < n; i++) {
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(a));
    }
    return a;
}
"""


def clock_ghz(repeats=5):
    """The core clock in GHz while one thread runs a dependent integer chain."""
    with tempfile.TemporaryDirectory() as d:
        src, lib = os.path.join(d, "clock.c"), os.path.join(d, "clock.so")
        with open(src, "w") as f:
            f.write(_CLOCK_C)
        subprocess.run(["cc", "-O1", "-shared", "-fPIC", src, "-o", lib], check=True)
        chain = ctypes.CDLL(lib).fi_add_chain
        chain.argtypes = [ctypes.c_uint64]
        chain.restype = ctypes.c_uint64
        n = 50_000_000
        chain(n // 10)
        best = min(_timed(lambda: chain(n)) for _ in range(repeats))
        return 4 * n / best / 1e9


def _timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def _best(f, calls, repeats=5):
    f()
    return min(_timed(lambda: [f() for _ in range(calls)]) for _ in range(repeats)) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    import fastinfo as fi
    from fastinfo import _bench

    ghz = clock_ghz()
    read_bw, copy_bw, _ = _bench.memory_bandwidth(args.threads)
    rng = np.random.default_rng(0)
    v = 32000
    small = 32 * args.threads
    x = rng.standard_normal((4096, v), dtype=np.float32)
    x2 = rng.standard_normal((2048, v), dtype=np.float32)
    out = np.empty_like(x)
    target = rng.integers(0, v, 4096)
    p = rng.random((4096, v))
    p /= p.sum(axis=1, keepdims=True)
    cases = [
        # name, bytes per element, floor bandwidth, call on (rows, slice of rows)
        ("W1 log_softmax f32 out=", 8, copy_bw, lambda r: fi.log_softmax(x[:r], out=out[:r]), 4096),
        ("W2 cross-entropy f32", 4, read_bw, lambda r: fi.softmax_cross_entropy(x[:r], target[:r]), 4096),
        ("   logsumexp f32", 4, read_bw, lambda r: fi.logsumexp(x[:r]), 4096),
        ("W3 KL 2x f32", 8, read_bw, lambda r: fi.softmax_kl_divergence(x[:r], x2[:r]), 2048),
        ("W4 entropy f64", 8, read_bw, lambda r: fi.entropy(p[:r], axis=1), 4096),
    ]
    print(f"clock {ghz:.2f} GHz (dependent adds), read {read_bw:.1f} GB/s, copy {copy_bw:.1f} GB/s, "
          f"{args.threads} threads, clone {fi._kernels.dense_simd()}")
    print(f"{'workload':26s} {'memory':>8s} {'cache':>8s} {'floor':>8s}   cycles per element per core")
    per = ghz * args.threads
    for name, nbytes, bw, call, rows in cases:
        t_mem = _best(lambda: call(rows), 3) / (rows * v)
        old = fi._kernels.softmax_set_stream_min_bytes(0)   # streaming stores at any size, as on the full array
        try:
            t_cache = _best(lambda: call(small), 50) / (small * v)
        finally:
            fi._kernels.softmax_set_stream_min_bytes(old)
        t_floor = nbytes / (bw * 1e9)
        print(f"{name:26s} {t_mem * 1e9 * per:8.2f} {t_cache * 1e9 * per:8.2f} {t_floor * 1e9 * per:8.2f}")


if __name__ == "__main__":
    main()

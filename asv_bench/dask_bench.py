"""fastinfo on Dask: two standalone benchmarks (issue 8).

1. ``perplexity``: perplexity of a large memory-mapped float32 logits file, read chunk by
   chunk through ``dask.array`` on the threaded scheduler. Reports the throughput and the
   peak resident memory of the process during the computation (sampled every 5 ms), which
   stays near (threads + 1) x chunk size, not the file size. Every chunk opens its own
   short-lived memory map, so pages of finished chunks leave the process's RSS.
   The Dask value is checked against the in-memory ``fi.perplexity`` on the whole map.

2. ``mi-matrix``: ``mutual_info_matrix`` of an (n, m) Gaussian table, in one process with one
   OpenMP thread, in one process with every OpenMP thread, and through Dask on a
   ``LocalCluster`` of two single-threaded worker processes (one task per column pair).
   Reports the speed-up of the cluster over the single-threaded process and checks that
   the matrices are identical.

Usage (the issue's sizes; reduce them on a shared machine)::

    python asv_bench/dask_bench.py perplexity --gib 4
    python asv_bench/dask_bench.py mi-matrix --rows 1000000 --cols 32

Run from a tree where ``import fastinfo`` gives the built package (e.g. ``PYTHONPATH=src``);
the cluster's workers inherit ``PYTHONPATH``.
"""
import argparse
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


class PeakRSS:
    """Sample this process's resident set size in a background thread."""

    def __init__(self, interval=0.005):
        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


class MemmapRows:
    """Array-like view of a raw (rows, classes) file; each slice is a fresh, short-lived memmap."""

    def __init__(self, path, shape, dtype):
        self.path, self.shape, self.dtype = str(path), tuple(shape), np.dtype(dtype)
        self.ndim = len(shape)

    def __getitem__(self, index):
        rows = index[0] if isinstance(index, tuple) else index
        start, stop, step = rows.indices(self.shape[0])
        assert step == 1
        row_bytes = self.shape[1] * self.dtype.itemsize
        block = np.memmap(self.path, dtype=self.dtype, mode="r", offset=start * row_bytes,
                          shape=(stop - start, self.shape[1]))
        rest = index[1:] if isinstance(index, tuple) else ()
        return block[(slice(None),) + tuple(rest)]


def write_logits(path, n_rows, n_classes, seed=0, rows_per_write=2048):
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for start in range(0, n_rows, rows_per_write):
            rows = min(rows_per_write, n_rows - start)
            (2.0 * rng.standard_normal((rows, n_classes), dtype=np.float32)).tofile(f)
    return rng.integers(0, n_classes, n_rows)


def bench_perplexity(args):
    import dask
    import dask.array as da

    import fastinfo as fi

    n_classes = args.classes
    n_rows = int(args.gib * 2**30) // (4 * n_classes)
    chunk_rows = max(1, int(args.chunk_mib * 2**20) // (4 * n_classes))
    directory = Path(args.dir or tempfile.gettempdir())
    path = directory / f"fastinfo_dask_logits_{n_rows}x{n_classes}.f32"
    print(f"logits file {path}: ({n_rows}, {n_classes}) float32 = {n_rows * n_classes * 4 / 2**30:.2f} GiB; "
          f"chunks of {chunk_rows} rows = {chunk_rows * n_classes * 4 / 2**20:.0f} MiB; "
          f"{args.workers} threads")
    t0 = time.perf_counter()
    target = write_logits(path, n_rows, n_classes)
    target[::17] = -100
    print(f"  wrote the file in {time.perf_counter() - t0:.1f} s")
    try:
        logits = da.from_array(MemmapRows(path, (n_rows, n_classes), np.float32),
                               chunks=(chunk_rows, n_classes), asarray=False, fancy=False,
                               meta=np.empty((0, 0), np.float32))
        lazy = fi.perplexity(logits, da.from_array(target, chunks=chunk_rows), ignore_index=-100)
        times = []
        for _ in range(args.repeat):
            with PeakRSS() as rss, dask.config.set(scheduler="threads", num_workers=args.workers):
                t0 = time.perf_counter()
                value = float(lazy.compute())
                times.append(time.perf_counter() - t0)
        gib = n_rows * n_classes * 4 / 2**30
        print(f"  dask perplexity = {value:.12g}: {min(times):.2f} s ({gib / min(times):.2f} GiB/s), "
              f"peak RSS {rss.peak / 2**20:.0f} MiB (baseline {rss.baseline / 2**20:.0f} MiB, "
              f"+{(rss.peak - rss.baseline) / 2**20:.0f} MiB for a {gib * 1024:.0f} MiB file)")
        if args.check:
            with PeakRSS() as rss:
                whole = np.memmap(path, dtype=np.float32, mode="r", shape=(n_rows, n_classes))
                t0 = time.perf_counter()
                expected = fi.perplexity(whole, target, ignore_index=-100)
                elapsed = time.perf_counter() - t0
                del whole
            print(f"  in-memory fi.perplexity on one map of the whole file = {expected:.12g} ({elapsed:.2f} s, "
                  f"peak RSS +{(rss.peak - rss.baseline) / 2**20:.0f} MiB); "
                  f"relative difference {abs(value - expected) / expected:.1e}")
    finally:
        os.unlink(path)


def _process_cpu_seconds():
    return time.process_time()


def bench_mi_matrix(args):
    import dask.array as da
    from threadpoolctl import threadpool_limits

    import fastinfo as fi

    rng = np.random.default_rng(1)
    n, m = args.rows, args.cols
    # correlated Gaussian columns
    mixing = rng.standard_normal((m, m)) / math.sqrt(m)
    table = rng.standard_normal((n, m)) @ (np.eye(m) + mixing)
    print(f"mutual_info_matrix of a ({n}, {m}) table, k={args.k}: {m * (m - 1) // 2} pairs")

    with threadpool_limits(1, "openmp"):
        t0, c0 = time.perf_counter(), time.process_time()
        serial = fi.mutual_info_matrix(table, k=args.k)
        t_serial, cpu_serial = time.perf_counter() - t0, time.process_time() - c0
    print(f"  one process, 1 OpenMP thread:        {t_serial:8.2f} s (CPU {cpu_serial:.2f} s)")
    if args.threaded:
        t0 = time.perf_counter()
        threaded = fi.mutual_info_matrix(table, k=args.k)
        t_threaded = time.perf_counter() - t0
        print(f"  one process, all OpenMP threads:     {t_threaded:8.2f} s (x{t_serial / t_threaded:.2f})")
    else:
        threaded, t_threaded = serial, math.nan

    from distributed import Client, LocalCluster, get_task_stream, wait

    # the worker processes import the same fastinfo as this process
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(Path(fi.__file__).resolve().parent.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        x = da.from_array(table, chunks=(max(1, n // 8), m))
        x = client.persist(x)  # the table lives on the workers, as it would in a real cluster
        wait(x)
        # warm-up: the workers import fastinfo (and SciPy) once, outside the timing
        fi.mutual_info_matrix(da.from_array(table[:200, :2], chunks=100), k=args.k).compute()
        cpu_before = client.run(_process_cpu_seconds)
        with get_task_stream(client) as stream:
            t0 = time.perf_counter()
            clustered = fi.mutual_info_matrix(x, k=args.k).compute()
            t_cluster = time.perf_counter() - t0
        cpu_after = client.run(_process_cpu_seconds)
        cpu_cluster = sum(cpu_after[w] - cpu_before[w] for w in cpu_after)
        busy = sum(s["stop"] - s["start"] for task in stream.data for s in task["startstops"]
                   if s["action"] == "compute")
    print(f"  LocalCluster, {args.workers} workers x 1 thread:    {t_cluster:8.2f} s "
          f"(speed-up over one single-threaded process x{t_serial / t_cluster:.2f}, "
          f"over the multi-threaded process x{t_threaded / t_cluster:.2f})")
    # Under contention from other jobs wall-clock speed-ups mean little; these do not depend on it much:
    print(f"  workers' compute time {busy:.2f} s = x{busy / t_serial:.2f} the single-threaded process's; "
          f"workers busy in parallel x{busy / t_cluster:.2f} of the wall time (ideal {args.workers})")
    print(f"  workers' CPU time {cpu_cluster:.2f} s = x{cpu_cluster / cpu_serial:.2f} the single-threaded process's")
    same = np.array_equal(clustered, serial, equal_nan=True) and np.array_equal(threaded, serial, equal_nan=True)
    print(f"  identical matrices: {same}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    p = sub.add_parser("perplexity", help="perplexity of a memory-mapped logits file through Dask")
    p.add_argument("--gib", type=float, default=4.0, help="file size in GiB (default 4)")
    p.add_argument("--classes", type=int, default=32000)
    p.add_argument("--chunk-mib", type=float, default=64.0)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--dir", default=None, help="directory of the temporary file (default: tempdir)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the in-memory comparison (which maps the whole file)")
    p.set_defaults(func=bench_perplexity)
    q = sub.add_parser("mi-matrix", help="mutual_info_matrix on a 2-worker LocalCluster")
    q.add_argument("--rows", type=int, default=1_000_000)
    q.add_argument("--cols", type=int, default=32)
    q.add_argument("--k", type=int, default=3)
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--no-threaded", dest="threaded", action="store_false",
                   help="skip the one-process run with every OpenMP thread")
    q.set_defaults(func=bench_mi_matrix)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""fastinfo on Dask: standalone benchmarks (issues 8 and 18).

1. ``perplexity``: perplexity of a large memory-mapped float32 logits file, read chunk by
   chunk through ``dask.array`` on the threaded scheduler. Reports the throughput and the
   peak resident memory of the process during the computation (sampled every 5 ms), which
   stays near (threads + 1) x chunk size, not the file size. Every chunk opens its own
   short-lived memory map, so pages of finished chunks leave the process's RSS.
   The Dask value is checked against the in-memory ``fi.perplexity`` on the whole map.

2. ``mi-matrix`` and ``mi-features`` (issue 18): ``mutual_info_matrix`` of an (n, m) table of
   correlated Gaussian columns (default (1,000,000, 32), chunked by rows on the cluster) and
   ``mutual_info_features`` of a wide (n, m) table (default (100,000, 2,000), blocks of 250 whole
   columns, or row chunks with ``--layout rows``) against a NumPy target. The tables are built
   chunk by chunk on the workers (seeded per chunk; the graph never carries them) and persisted.
   Each repeat runs, interleaved, the in-memory call in one process with ``--threads`` OpenMP
   threads and the Dask call on a ``LocalCluster(n_workers=2, threads_per_worker=1)``; it
   reports wall times, CPU times (the in-memory process's; the cluster's task threads' and whole
   worker processes'), and checks the results are identical. Then the scheduler's per-task
   overhead, measured with independent no-op tasks, and a projection to N workers: the measured
   fastinfo task durations scheduled greedily in priority order on N workers, each task paying
   that overhead, and at least (tasks x overhead) for the scheduler. ``plot`` turns the
   ``--json`` records into a table and a figure.

Usage (the issue's sizes; run timings under the machine's benchmark lock)::

    python asv_bench/dask_bench.py perplexity --gib 4
    flock /work/bench.lock python asv_bench/dask_bench.py mi-matrix --rows 200000 --cols 12 --repeat 5
    flock /work/bench.lock python asv_bench/dask_bench.py mi-matrix --json matrix.json
    flock /work/bench.lock python asv_bench/dask_bench.py mi-features --json features.json
    python asv_bench/dask_bench.py plot matrix.json features.json --out docs/_static/figures/dask_projection.png

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


def _task_threads_cpu_seconds():
    """CPU seconds of this worker's task threads (the ThreadPoolExecutor threads that run the
    tasks, not the event loop, comms, profiler or monitor threads)."""
    import psutil

    ids = {t.native_id for t in threading.enumerate() if "Dask-Default-Threads" in t.name}
    return sum(t.user_time + t.system_time for t in psutil.Process().threads() if t.id in ids)


# ----------------------------------------------------------------------------- estimators on a cluster
# The tables are built chunk by chunk on the workers (seeded per chunk), so the graph never carries
# them; the in-memory call gets the same table from the same chunk function.


def table_chunk(seed, index, rows, cols):
    """Chunk ``index`` of a table of correlated Gaussian columns (the same for any process)."""
    mixing = np.random.default_rng(seed).standard_normal((cols, cols)) / math.sqrt(cols)
    block = np.random.default_rng([seed, index]).standard_normal((rows, cols))
    return block @ (np.eye(cols) + mixing)


def feature_chunk(seed, index, rows, cols):
    """Chunk ``index`` (a block of columns) of a wide table of independent Gaussian columns."""
    return np.random.default_rng([seed, index]).standard_normal((rows, cols))


def _blocks(n, size):
    return [(start, min(size, n - start)) for start in range(0, n, size)]


def build_table(kind, n, m, chunk, seed=1):
    """(NumPy table, function of a client returning the same table as a persisted Dask array).
    ``kind="rows"``: chunks of ``chunk`` rows and every column; ``"columns"``: blocks of ``chunk``
    whole columns."""
    import dask
    import dask.array as da

    if kind == "rows":
        parts = [(i, (rows, m)) for i, (_, rows) in enumerate(_blocks(n, chunk))]
        make = lambda i, shape: table_chunk(seed, i, shape[0], shape[1])  # noqa: E731
        axis = 0
    else:
        parts = [(i, (n, cols)) for i, (_, cols) in enumerate(_blocks(m, chunk))]
        make = lambda i, shape: feature_chunk(seed, i, shape[0], shape[1])  # noqa: E731
        axis = 1
    local = np.concatenate([make(i, shape) for i, shape in parts], axis=axis)

    def on_cluster(client):
        func = table_chunk if kind == "rows" else feature_chunk
        arrays = [da.from_delayed(dask.delayed(func, pure=True)(seed, i, *shape), shape=shape, dtype=np.float64)
                  for i, shape in parts]
        x = da.concatenate(arrays, axis=axis)
        x = client.persist(x)
        from distributed import wait

        wait(x)
        return x

    return local, on_cluster


def _noop(i):
    return i


def scheduler_overhead(client, n_tasks=4000, repeat=3):
    """Seconds per task of the scheduler and workers for independent no-op tasks (min of repeats)."""
    best = math.inf
    for r in range(repeat):
        t0 = time.perf_counter()
        futures = client.map(_noop, range(r * n_tasks, (r + 1) * n_tasks), pure=False)
        client.gather(futures)
        best = min(best, (time.perf_counter() - t0) / n_tasks)
        del futures
    return best


def project(durations, priorities, workers, overhead):
    """Makespan of the tasks on ``workers`` single-threaded workers: greedy list scheduling in
    priority order (the scheduler's order: higher first), each task costing its measured duration
    plus ``overhead``, and at least the scheduler's serial time ``len(durations) * overhead``."""
    import heapq

    order = sorted(range(len(durations)), key=lambda i: -priorities[i])
    free = [0.0] * workers
    heapq.heapify(free)
    end = 0.0
    for i in order:
        start = heapq.heappop(free)
        finish = start + durations[i] + overhead
        end = max(end, finish)
        heapq.heappush(free, finish)
    return max(end, len(durations) * overhead)


def _task_records(stream, prefix):
    """(duration, group) of the compute of each task whose key starts with ``prefix``."""
    out = []
    for task in stream:
        key = task["key"]
        group = key[0] if isinstance(key, tuple) else key
        if not str(group).startswith(prefix):
            continue
        for s in task["startstops"]:
            if s["action"] == "compute":
                out.append((s["stop"] - s["start"], str(group)))
    return out


def bench_estimator(args):
    """Interleaved: the in-memory call (OpenMP threads) and the same call on a LocalCluster."""
    from distributed import Client, LocalCluster, get_task_stream

    import fastinfo as fi

    n, m = args.rows, args.cols
    kind = "rows" if args.bench == "mi-matrix" else args.layout
    chunk = args.chunk or (max(1, n // 8) if kind == "rows" else 250)
    local, on_cluster = build_table(kind, n, m, chunk)
    if args.bench == "mi-matrix":
        label = f"mutual_info_matrix of a ({n}, {m}) table, k={args.k}: {m * (m - 1) // 2} pairs"
        call = lambda x: fi.mutual_info_matrix(x, k=args.k)  # noqa: E731
        y = None
    else:
        y = local[:, : min(m, 8)].sum(axis=1) + np.random.default_rng(2).standard_normal(n)
        label = f"mutual_info_features of a ({n}, {m}) table, k={args.k}"
        call = lambda x: fi.mutual_info_features(x, y, k=args.k)  # noqa: E731
    print(f"{label}; cluster input chunked by {kind} ({chunk} per chunk); "
          f"{args.workers} workers x 1 thread vs one process with {args.threads} OpenMP threads")

    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(Path(fi.__file__).resolve().parent.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    from threadpoolctl import threadpool_limits

    rows = []
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        x = on_cluster(client)
        # warm-up: the workers import fastinfo once, outside the timings
        if args.bench == "mi-matrix":
            fi.mutual_info_matrix(x[:2000, :3], k=args.k).compute()
        else:
            fi.mutual_info_features(x[:2000, :3], y[:2000], k=args.k).compute()
        overhead = scheduler_overhead(client)
        expected = None
        for rep in range(args.repeat):
            with threadpool_limits(args.threads, "openmp"):
                t0, c0 = time.perf_counter(), time.process_time()
                expected = call(local)
                t_mem, cpu_mem = time.perf_counter() - t0, time.process_time() - c0
            cpu_before = client.run(_process_cpu_seconds)
            task_cpu_before = client.run(_task_threads_cpu_seconds)
            with get_task_stream(client) as stream:
                t0 = time.perf_counter()
                got = call(x).compute()
                t_cluster = time.perf_counter() - t0
            task_cpu_after = client.run(_task_threads_cpu_seconds)
            cpu_after = client.run(_process_cpu_seconds)
            cpu_cluster = sum(cpu_after[w] - cpu_before[w] for w in cpu_after)
            task_cpu = sum(task_cpu_after[w] - task_cpu_before[w] for w in task_cpu_after)
            records = _task_records(stream.data, "fastinfo-")
            task_seconds = sum(d for d, _ in records)
            identical = np.array_equal(got, expected, equal_nan=True)
            rows.append(dict(t_mem=t_mem, cpu_mem=cpu_mem, t_cluster=t_cluster, cpu_cluster=cpu_cluster,
                             task_cpu=task_cpu, task_seconds=task_seconds, n_tasks=len(records),
                             identical=identical, records=records))
            print(f"  repeat {rep}: in-memory {t_mem:7.2f} s (CPU {cpu_mem:7.2f} s) | cluster {t_cluster:7.2f} s "
                  f"(task threads' CPU {task_cpu:7.2f} s, worker processes' CPU {cpu_cluster:7.2f} s, "
                  f"task durations {task_seconds:7.2f} s, {len(records)} fastinfo tasks) "
                  f"| wall x{t_cluster / t_mem:.3f}, task CPU x{task_cpu / cpu_mem:.3f}, "
                  f"process CPU x{cpu_cluster / cpu_mem:.3f} | identical: {identical}")
    summary = {}
    for key in ("t_mem", "cpu_mem", "t_cluster", "cpu_cluster", "task_cpu", "task_seconds"):
        values = [r[key] for r in rows]
        summary[key] = (min(values), float(np.median(values)))
    wall_ratios = [r["t_cluster"] / r["t_mem"] for r in rows]
    cpu_ratios = [r["task_cpu"] / r["cpu_mem"] for r in rows]
    process_ratios = [r["cpu_cluster"] / r["cpu_mem"] for r in rows]
    print(f"  min / median: in-memory {summary['t_mem'][0]:.2f} / {summary['t_mem'][1]:.2f} s "
          f"(CPU {summary['cpu_mem'][0]:.2f} / {summary['cpu_mem'][1]:.2f} s), "
          f"cluster {summary['t_cluster'][0]:.2f} / {summary['t_cluster'][1]:.2f} s "
          f"(task CPU {summary['task_cpu'][0]:.2f} / {summary['task_cpu'][1]:.2f} s); "
          f"wall ratio (cluster / in-memory, same repeat) min {min(wall_ratios):.3f} "
          f"median {np.median(wall_ratios):.3f}; "
          f"task CPU ratio min {min(cpu_ratios):.3f} median {np.median(cpu_ratios):.3f}; "
          f"worker process CPU ratio min {min(process_ratios):.3f} median {np.median(process_ratios):.3f}; "
          f"all identical: {all(r['identical'] for r in rows)}")
    print(f"  scheduler + worker overhead per task (no-op tasks): {overhead * 1e3:.2f} ms "
          f"({1 / overhead:.0f} tasks/s)")
    # projection to N workers from the fastest repeat's task durations
    best = min(rows, key=lambda r: r["t_cluster"])
    durations = [d for d, _ in best["records"]]
    priorities = [1 if "prepare" in g else 0 for _, g in best["records"]]
    projection = []
    for workers in args.project:
        projection.append((workers, project(durations, priorities, workers, overhead)))
    print("  projected wall time on N single-threaded workers (measured task durations + per-task overhead):")
    print("    " + "  ".join(f"N={w}: {t:.2f} s" for w, t in projection))
    if args.json:
        import json

        record = dict(bench=args.bench, rows=n, cols=m, k=args.k, layout=kind, chunk=chunk, workers=args.workers,
                      threads=args.threads, overhead_seconds=overhead,
                      repeats=[{k: v for k, v in r.items() if k != "records"} for r in rows],
                      projection=projection, task_durations=durations)
        Path(args.json).write_text(json.dumps(record, indent=1))
        print(f"  wrote {args.json}")


def plot(args):
    """Table and plot of the JSON records written by mi-matrix / mi-features --json."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(Path(p).read_text()) for p in args.records]
    fig, ax = plt.subplots(figsize=(10.0, 4.6))
    header = ["workload", "in-memory, 2 threads: wall min / median", "cluster, 2 workers: wall min / median",
              "wall ratio min / median", "task CPU ratio min / median", "fastinfo tasks",
              "projected N=8", "N=32", "N=32 from task CPU"]
    table = []
    for r in records:
        name = (f"matrix ({r['rows']:,}, {r['cols']})" if r["bench"] == "mi-matrix"
                else f"features ({r['rows']:,}, {r['cols']:,}), {r['layout']}")
        reps = r["repeats"]

        def stat(values):
            return min(values), float(np.median(values))

        t_mem = stat([x["t_mem"] for x in reps])
        t_cl = stat([x["t_cluster"] for x in reps])
        wall = stat([x["t_cluster"] / x["t_mem"] for x in reps])
        cpu = stat([x["task_cpu"] / x["cpu_mem"] for x in reps])
        proj = dict((int(w), t) for w, t in r["projection"])
        table.append([name, f"{t_mem[0]:.2f} / {t_mem[1]:.2f} s", f"{t_cl[0]:.2f} / {t_cl[1]:.2f} s",
                      f"{wall[0]:.3f} / {wall[1]:.3f}", f"{cpu[0]:.3f} / {cpu[1]:.3f}",
                      f"{reps[0]['n_tasks']}", f"{proj.get(8, math.nan):.2f} s", f"{proj.get(32, math.nan):.2f} s"])
        ws = [int(w) for w, _ in r["projection"]]
        ts = [t for _, t in r["projection"]]
        (line,) = ax.plot(ws, ts, marker="o", label=f"{name}: projection")
        ax.plot([r["workers"]], [t_cl[0]], marker="*", markersize=12, color=line.get_color(), linestyle="none",
                label=f"{name}: measured, {r['workers']} workers")
        ax.plot(ws, [ts[0] * ws[0] / w for w in ws], linestyle=":", color=line.get_color())
        # on a shared machine the measured durations include time the task threads waited for a
        # core: the same projection with each duration scaled to the task threads' CPU time
        best = min(reps, key=lambda x: x["t_cluster"])
        scale = min(1.0, best["task_cpu"] / best["task_seconds"]) if best["task_seconds"] > 0 else 1.0
        scaled = [d * scale for d in r["task_durations"]]
        ax.plot(ws, [project(scaled, scaled, w, r["overhead_seconds"]) for w in ws], linestyle="--",
                marker=".", color=line.get_color(), label=f"{name}: projection from task CPU")
        table[-1].append(f"{project(scaled, scaled, 32, r['overhead_seconds']):.2f} s")
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header] + table:
        lines.append("   * - " + row[0])
        lines += [f"     - {cell}" for cell in row[1:]]
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("single-threaded workers")
    ax.set_ylabel("wall time (s)")
    ax.set_title("fastinfo estimators on dask.distributed (dotted: linear scaling)", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print("\n".join(lines))
    print(f"wrote {args.out}")


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
    for bench, rows, cols in (("mi-matrix", 1_000_000, 32), ("mi-features", 100_000, 2_000)):
        q = sub.add_parser(bench, help=f"{bench}: a LocalCluster against one process, interleaved")
        q.add_argument("--rows", type=int, default=rows)
        q.add_argument("--cols", type=int, default=cols)
        q.add_argument("--k", type=int, default=3)
        q.add_argument("--workers", type=int, default=2)
        q.add_argument("--threads", type=int, default=2, help="OpenMP threads of the in-memory call")
        q.add_argument("--repeat", type=int, default=3)
        q.add_argument("--chunk", type=int, default=None,
                       help="rows per chunk (mi-matrix, default n/8) or columns per block (mi-features, 250)")
        q.add_argument("--project", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
        q.add_argument("--json", default=None, help="write the measurements to this JSON file")
        if bench == "mi-features":
            q.add_argument("--layout", choices=["columns", "rows"], default="columns",
                           help="the cluster table's chunks: blocks of whole columns, or row chunks")
        q.set_defaults(func=bench_estimator)
    q = sub.add_parser("plot", help="table and plot of --json records")
    q.add_argument("records", nargs="+")
    q.add_argument("--out", default="docs/_static/figures/dask_projection.png")
    q.set_defaults(func=plot)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""Measure fastinfo and make the figures and tables of the documentation.

Run from the repository root after building the extension in place::

    python setup.py build_ext --inplace
    python docs/make_figures.py            # full sizes (a few minutes)
    python docs/make_figures.py --quick    # small sizes, under 2 minutes

The published figures and the README table come from one command on a quiet machine (the lock
keeps other benchmarks off the cores while it runs)::

    flock /work/bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python docs/make_figures.py --threads 2 --readme

It writes into ``docs/_static/figures/`` (commit the results; the Sphinx build does not run this):

- ``ksg_timing.png`` / ``.csv``: time of the KSG estimator vs ``n`` (log-log), fastinfo against
  scikit-learn's ``mutual_info_regression`` and ennemi's ``estimate_mi`` (1-D x and y, k = 3,
  Gaussian rho = 0.6), min of repeats, all in this process.
- ``dense_bandwidth.png`` / ``.csv``: effective GB/s (bytes read + written / time) of the dense
  kernels, fastinfo against the SciPy route, next to the machine's read and copy bandwidth measured
  in the same run by fastinfo's own C loops, and each kernel's "% of floor" (its compulsory bytes /
  its time / the matching bandwidth: copy for log_softmax, read for the reductions).
- ``dense_accuracy.csv``: error of the dense kernels against high-precision references (mpmath
  for float64, a float64 computation for float32), fastinfo and SciPy.
- ``ksg_accuracy.png`` / ``.csv``: KSG estimates against the true MI of correlated Gaussians over
  rho and n, both algorithms, mean and spread over seeds.
- ``linear_memory_time.png`` / ``.csv``: time and peak extra memory of ``linear_cross_entropy`` from
  hidden states (d 768, V 50,257, float32) against tokens, next to PyTorch's
  ``F.cross_entropy(F.linear(h, W), t)`` and the bare product ``h @ W.T`` (NumPy), same process.
- ``side_by_side.csv``: the side-by-side table of ``fastinfo bench`` (``asv_bench/compare.py``):
  workloads W1-W9, every installed peer, min of repeats, speed-up, GB/s, % of the memory floor,
  extra memory. With ``--readme`` the same run also replaces the results table of ``README.md``
  (between its ``<!-- fastinfo bench: begin ...`` and ``<!-- fastinfo bench: end -->`` lines).
- ``benchmarks.json``: every number above, with the machine and build they were measured on.

It needs matplotlib (the ``docs`` extra), mpmath, scikit-learn and ennemi (the ``test`` and ``bench``
extras). A function that is not implemented in this checkout (``NotImplementedError``) or a peer that is not
installed is reported and left out; the rest still runs. Timings on a shared machine are noisy:
compare ratios measured in the same run, and rerun on a quiet machine for publication.
"""
import argparse
import contextlib
import csv
import datetime
import gc
import json
import math
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

import fastinfo as fi  # noqa: E402

OUT_DEFAULT = os.path.join(HERE, "_static", "figures")
SECTIONS = ("side_by_side", "ksg_timing", "dense_bandwidth", "dense_accuracy", "ksg_accuracy", "linear_memory_time",
            "dynamics_local")

COLORS = {"fastinfo": "#1f77b4", "scikit-learn": "#ff7f0e", "ennemi": "#2ca02c", "scipy": "#7f7f7f",
          "torch": "#d62728", "numpy": "#7f7f7f"}


def log(message):
    print(message, file=sys.stderr, flush=True)


def best_time(func, repeats, budget=0.3):
    """Minimum wall time over repeated calls, after one untimed warm-up.

    At least ``repeats`` timed calls; fast functions get more (up to 50, within about ``budget``
    seconds), because on a shared machine the minimum of many short runs is the stable number.
    """
    start = time.perf_counter()
    func()
    first = time.perf_counter() - start
    if repeats <= 1 and first > 0.3:   # slow call: warm-up effects are negligible, keep it
        return first
    repeats = max(repeats, min(50, int(budget / max(first, 1e-9))))
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def available(func, *args, **kwargs):
    """Run ``func`` once on tiny input; False if it is still a placeholder."""
    try:
        func(*args, **kwargs)
    except NotImplementedError:
        return False
    return True


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    log(f"wrote {os.path.relpath(path)}")


def gaussian_pair(n, rho, rng, dim=1):
    """``dim`` independent pairs of standard normals with correlation ``rho``; true MI in nats."""
    x = rng.standard_normal((n, dim))
    y = rho * x + math.sqrt(1.0 - rho * rho) * rng.standard_normal((n, dim))
    true_mi = -0.5 * dim * math.log(1.0 - rho * rho)
    if dim == 1:
        return x[:, 0], y[:, 0], true_mi
    return x, y, true_mi


def plt_module():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "font.size": 10,
                         "axes.grid": True, "grid.alpha": 0.3})
    return plt


def not_measured_figure(path, title):
    """A figure that says it was not measured (keeps the docs building before a kernel lands)."""
    plt = plt_module()
    fig, ax = plt.subplots(figsize=(6.4, 2.0))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{title}: not measured in this checkout\n(rerun python docs/make_figures.py)",
            ha="center", va="center", fontsize=11)
    fig.savefig(path)
    plt.close(fig)
    log(f"wrote {os.path.relpath(path)} (placeholder)")


# ------------------------------------------------------------------------------------------------
# KSG time vs n
# ------------------------------------------------------------------------------------------------

def ksg_timing(out, quick, results):
    sizes = [1_000, 10_000, 100_000] if quick else [1_000, 10_000, 100_000, 1_000_000]
    rng = np.random.default_rng(0)
    impls = {}
    if available(fi.mutual_info_ksg, np.arange(10.0), np.arange(10.0) ** 2, k=3):
        impls["fastinfo"] = lambda x, y: fi.mutual_info_ksg(x, y, k=3)
    else:
        log("ksg_timing: fastinfo.mutual_info_ksg is not implemented in this checkout; left out")
    try:
        from sklearn.feature_selection import mutual_info_regression

        impls["scikit-learn"] = lambda x, y: mutual_info_regression(x[:, None], y, n_neighbors=3, random_state=0)
    except ImportError:
        log("ksg_timing: scikit-learn is not installed; left out")
    try:
        import ennemi

        impls["ennemi"] = lambda x, y: ennemi.estimate_mi(y, x, k=3)
    except ImportError:
        log("ksg_timing: ennemi is not installed; left out")

    rows = []
    for n in sizes:
        x, y, true_mi = gaussian_pair(n, 0.6, rng)
        for name, func in impls.items():
            repeats = 1 if (n >= 1_000_000 or (quick and n >= 100_000)) else 3
            seconds = best_time(lambda: func(x, y), repeats, budget=0.3 if quick else 1.0)
            rows.append((name, n, seconds))
            log(f"  ksg n={n:>9,} {name:<13} {seconds:9.4f} s")
    write_csv(os.path.join(out, "ksg_timing.csv"), ["implementation", "n", "seconds"],
              [(name, n, f"{s:.6g}") for name, n, s in rows])
    results["ksg_timing"] = [{"implementation": name, "n": n, "seconds": s} for name, n, s in rows]

    # Speed-up table (peer time / fastinfo time) for the page.
    table = []
    fastinfo_time = {n: s for name, n, s in rows if name == "fastinfo"}
    for name, n, s in rows:
        if name != "fastinfo":
            ratio = f"{s / fastinfo_time[n]:.1f}x" if n in fastinfo_time else "n/a"
            fi_s = f"{fastinfo_time[n]:.4f}" if n in fastinfo_time else "not built"
            table.append((f"mutual_info_ksg 1-D, n = {n:,}", name, f"{s:.4f}", fi_s, ratio))
    results["ksg_speedups"] = table

    plt = plt_module()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name in impls:
        ns = [n for m, n, _ in rows if m == name]
        ts = [s for m, _, s in rows if m == name]
        ax.loglog(ns, ts, "o-", color=COLORS.get(name), label=name)
    if "fastinfo" in impls:
        n0, t0 = sizes[0], fastinfo_time[sizes[0]]
        guide = [t0 * (n * math.log(n)) / (n0 * math.log(n0)) for n in sizes]
        ax.loglog(sizes, guide, ":", color="black", alpha=0.6, label=r"$\propto n \log n$")
    ax.set_xlabel("number of samples n")
    ax.set_ylabel("time (s), min of repeats")
    ax.set_title("KSG mutual information, 1-D x and y, k = 3")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "ksg_timing.png"))
    plt.close(fig)
    log(f"wrote {os.path.relpath(os.path.join(out, 'ksg_timing.png'))}")


# ------------------------------------------------------------------------------------------------
# Dense kernels: effective bandwidth
# ------------------------------------------------------------------------------------------------

def memory_bandwidth(threads):
    """(read GB/s, copy GB/s, how) at ``threads`` threads, by fastinfo's own loops (as fastinfo bench)."""
    from fastinfo import _bench

    return _bench.memory_bandwidth(threads)


def dense_bandwidth(out, quick, results):
    import scipy.special
    import scipy.stats

    rows_, classes = (512, 32000) if quick else (4096, 32000)
    repeats = 3 if quick else 5
    rng = np.random.default_rng(1)
    logits = (3.0 * rng.standard_normal((rows_, classes))).astype(np.float32)
    logits_q = (3.0 * rng.standard_normal((rows_ // 2, classes))).astype(np.float32)
    logits_p = logits[: rows_ // 2]
    target = rng.integers(0, classes, size=rows_)
    probs = rng.random((rows_, classes))
    probs /= probs.sum(axis=1, keepdims=True)
    out_buffer = np.empty_like(logits)

    def scipy_ce():
        lq = scipy.special.log_softmax(logits, axis=-1)
        return -np.take_along_axis(lq, target[:, None], axis=1).mean()

    def scipy_kl():
        a = scipy.special.log_softmax(logits_p, axis=-1)
        b = scipy.special.log_softmax(logits_q, axis=-1)
        return (np.exp(a) * (a - b)).sum(axis=-1).mean()

    def scipy_softmax_entropy():
        lq = scipy.special.log_softmax(logits, axis=-1)
        return -(np.exp(lq) * lq).sum(axis=-1)

    # (label, bytes moved by an ideal kernel, the bandwidth that bounds it, fastinfo call, SciPy route)
    kernels = [
        (f"log_softmax f32 {rows_}x{classes} out=", 2 * logits.nbytes, "copy",
         lambda: fi.log_softmax(logits, out=out_buffer), lambda: scipy.special.log_softmax(logits, axis=-1)),
        (f"softmax_cross_entropy f32 {rows_}x{classes}", logits.nbytes, "read",
         lambda: fi.softmax_cross_entropy(logits, target), scipy_ce),
        (f"softmax_kl_divergence f32 2x{rows_ // 2}x{classes}", logits_p.nbytes + logits_q.nbytes, "read",
         lambda: fi.softmax_kl_divergence(logits_p, logits_q, reduction="mean"), scipy_kl),
        (f"softmax_entropy f32 {rows_}x{classes}", logits.nbytes, "read",
         lambda: fi.softmax_entropy(logits), scipy_softmax_entropy),
        (f"entropy f64 {rows_}x{classes}", probs.nbytes, "read",
         lambda: fi.entropy(probs), lambda: scipy.stats.entropy(probs, axis=-1)),
    ]
    from fastinfo import _config

    threads = _config.config()["default_threads"]
    read_gbs, copy_gbs, how = memory_bandwidth(threads)
    floors = {"read": read_gbs, "copy": copy_gbs}
    log(f"  bandwidth: read {read_gbs:.1f} GB/s, copy {copy_gbs:.1f} GB/s ({how})")
    rows = []
    for label, nbytes, floor, fast, peer in kernels:
        try:
            fast_s = best_time(fast, repeats)
        except NotImplementedError:
            fast_s = None
        peer_s = best_time(peer, max(1, repeats - 1), budget=0.0)
        rows.append((label, nbytes, floor, fast_s, peer_s))
        shown = "not built" if fast_s is None else f"{fast_s:.4f} s"
        log(f"  {label:<46} fastinfo {shown:>10}   scipy {peer_s:.4f} s")

    def gbs(nbytes, seconds):
        return None if seconds is None else nbytes / seconds / 1e9

    write_csv(os.path.join(out, "dense_bandwidth.csv"),
              ["kernel", "fastinfo (s)", "SciPy route (s)", "speed-up", "fastinfo GB/s", "floor", "% of floor"],
              [(label, "not built" if f is None else f"{f:.4f}", f"{p:.4f}",
                "n/a" if f is None else f"{p / f:.1f}x",
                "n/a" if f is None else f"{gbs(n, f):.1f}", f"{floor} {floors[floor]:.1f} GB/s",
                "n/a" if f is None else f"{100 * gbs(n, f) / floors[floor]:.0f}")
               for label, n, floor, f, p in rows])
    results["dense_bandwidth"] = {
        "read_gb_per_s": read_gbs, "copy_gb_per_s": copy_gbs, "bandwidth_method": how, "threads": threads,
        "kernels": [{"kernel": label, "bytes": n, "floor": floor, "fastinfo_seconds": f, "scipy_seconds": p,
                     "fastinfo_gb_per_s": gbs(n, f), "scipy_gb_per_s": gbs(n, p),
                     "fastinfo_pct_of_floor": None if f is None else 100 * gbs(n, f) / floors[floor]}
                    for label, n, floor, f, p in rows],
    }

    plt = plt_module()
    fig, ax = plt.subplots(figsize=(7.6, 4.4))
    names = [label.split(" ")[0] + "\n" + label.split(" ")[1] for label, *_ in rows]
    positions = np.arange(len(rows))
    width = 0.38
    fast_gbs = [gbs(n, f) or 0.0 for _, n, _, f, _ in rows]
    peer_gbs = [gbs(n, p) for _, n, _, _, p in rows]
    ax.bar(positions - width / 2, fast_gbs, width, color=COLORS["fastinfo"], label="fastinfo")
    ax.bar(positions + width / 2, peer_gbs, width, color=COLORS["scipy"], label="SciPy route")
    for pos, (_, n, floor, f, _) in zip(positions, rows):
        ax.plot([pos - 0.45, pos + 0.45], [floors[floor]] * 2, color="black", linestyle="--", linewidth=1)
        if f is None:
            ax.text(pos - width / 2, 0.2, "not built", rotation=90, ha="center", va="bottom", fontsize=8)
        else:
            ax.text(pos - width / 2, gbs(n, f), f"{100 * gbs(n, f) / floors[floor]:.0f}%", ha="center",
                    va="bottom", fontsize=7)
    ax.plot([], [], color="black", linestyle="--", linewidth=1,
            label=f"floor: read {read_gbs:.1f} / copy {copy_gbs:.1f} GB/s")
    ax.set_xticks(positions)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("effective GB/s (bytes read + written / time)")
    ax.set_title(f"Dense kernels, float32 logits / float64 probabilities, {threads} threads "
                 f"(% of the memory floor over the bars)", fontsize=9)
    ax.set_ylim(0, 1.3 * max([read_gbs, copy_gbs] + fast_gbs + peer_gbs))
    ax.legend(fontsize=8, loc="upper left", ncol=3)
    ax.grid(axis="x", visible=False)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "dense_bandwidth.png"))
    plt.close(fig)
    log(f"wrote {os.path.relpath(os.path.join(out, 'dense_bandwidth.png'))}")


# ------------------------------------------------------------------------------------------------
# Dense kernels: error against high-precision references
# ------------------------------------------------------------------------------------------------

def _mp_rows(func, logits):
    import mpmath

    return np.array([float(func(mpmath, [mpmath.mpf(float(v)) for v in row])) for row in logits])


def _mp_logsumexp(mp, row):
    return mp.log(mp.fsum(mp.exp(v) for v in row))


def _mp_entropy(mp, row):
    lse = _mp_logsumexp(mp, row)
    return -mp.fsum(mp.exp(v - lse) * (v - lse) for v in row)


def dense_accuracy(out, quick, results):
    import mpmath
    import scipy.special

    mpmath.mp.dps = 40
    rng = np.random.default_rng(2)
    n_rows, classes = (4, 2000) if quick else (16, 4000)
    logits64 = 3.0 * rng.standard_normal((n_rows, classes))
    logits_q64 = 3.0 * rng.standard_normal((n_rows, classes))
    target = rng.integers(0, classes, size=n_rows)
    logits32 = logits64.astype(np.float32)

    lse_ref = _mp_rows(_mp_logsumexp, logits64)
    ent_ref = _mp_rows(_mp_entropy, logits64)
    # KL(softmax(p) || softmax(q)) per row, in mpmath
    kl_ref = []
    for p_row, q_row in zip(logits64, logits_q64):
        mp_p = [mpmath.mpf(float(v)) for v in p_row]
        mp_q = [mpmath.mpf(float(v)) for v in q_row]
        lp, lq = _mp_logsumexp(mpmath, mp_p), _mp_logsumexp(mpmath, mp_q)
        kl_ref.append(float(mpmath.fsum(mpmath.exp(a - lp) * ((a - lp) - (b - lq)) for a, b in zip(mp_p, mp_q))))
    kl_ref = np.array(kl_ref)
    log_softmax_ref = logits64 - lse_ref[:, None]   # exact to float64 rounding of one subtraction
    ce_ref = float(np.mean(lse_ref - logits64[np.arange(n_rows), target]))

    def rel(value, ref):
        value = np.asarray(value, dtype=np.float64)
        return float(np.max(np.abs(value - ref) / np.maximum(np.abs(ref), 1.0)))

    def ulp32(value, ref):
        value = np.asarray(value, dtype=np.float64)
        spacing = np.spacing(np.maximum(np.abs(ref), 1.0).astype(np.float32)).astype(np.float64)
        return float(np.max(np.abs(value - ref) / spacing))

    def scipy_kl(a, b):
        la = scipy.special.log_softmax(a, axis=-1)
        lb = scipy.special.log_softmax(b, axis=-1)
        return (np.exp(la) * (la - lb)).sum(axis=-1)

    def scipy_entropy(a):
        la = scipy.special.log_softmax(a, axis=-1)
        return -(np.exp(la) * la).sum(axis=-1)

    def scipy_ce(a):
        la = scipy.special.log_softmax(a, axis=-1)
        return -np.take_along_axis(la, target[:, None], axis=1).mean()

    # float32 results are compared with the float64 result of the same float32 input.
    ref32_lse = _mp_rows(_mp_logsumexp, logits32.astype(np.float64))
    ref32_log_softmax = logits32.astype(np.float64) - ref32_lse[:, None]
    cases = [
        ("logsumexp", "float64", "relative", lse_ref,
         lambda: fi.logsumexp(logits64), lambda: scipy.special.logsumexp(logits64, axis=-1)),
        ("log_softmax", "float64", "relative", log_softmax_ref,
         lambda: fi.log_softmax(logits64), lambda: scipy.special.log_softmax(logits64, axis=-1)),
        ("softmax_entropy", "float64", "relative", ent_ref,
         lambda: fi.softmax_entropy(logits64), lambda: scipy_entropy(logits64)),
        ("softmax_cross_entropy (mean)", "float64", "relative", ce_ref,
         lambda: fi.softmax_cross_entropy(logits64, target), lambda: scipy_ce(logits64)),
        ("softmax_kl_divergence", "float64", "relative", kl_ref,
         lambda: fi.softmax_kl_divergence(logits64, logits_q64), lambda: scipy_kl(logits64, logits_q64)),
        ("log_softmax", "float32", "ulp", ref32_log_softmax,
         lambda: fi.log_softmax(logits32), lambda: scipy.special.log_softmax(logits32, axis=-1)),
        ("logsumexp", "float32", "ulp", ref32_lse,
         lambda: fi.logsumexp(logits32), lambda: scipy.special.logsumexp(logits32, axis=-1)),
    ]
    rows = []
    for name, dtype, unit, ref, fast, peer in cases:
        measure = ulp32 if unit == "ulp" else rel
        try:
            fast_err = measure(fast(), ref)
        except NotImplementedError:
            fast_err = None
        peer_err = measure(peer(), ref)
        rows.append((name, dtype, unit, fast_err, peer_err))

    def fmt(err, unit):
        if err is None:
            return "not built"
        return f"{err:.2f} ulp" if unit == "ulp" else f"{err:.1e}"

    write_csv(os.path.join(out, "dense_accuracy.csv"),
              ["function", "dtype", "fastinfo max error", "SciPy max error"],
              [(name, dtype, fmt(f, unit), fmt(p, unit)) for name, dtype, unit, f, p in rows])
    results["dense_accuracy"] = {
        "logits": f"N(0, 3^2), {n_rows} rows x {classes} classes",
        "float64_reference": "mpmath, 40 digits; error = |value - ref| / max(|ref|, 1)",
        "float32_reference": "float64 result of the float32 input; error in float32 ulp at max(|ref|, 1)",
        "rows": [{"function": n, "dtype": d, "unit": u, "fastinfo": f, "scipy": p} for n, d, u, f, p in rows],
    }
    for name, dtype, unit, f, p in rows:
        log(f"  {name:<30} {dtype:<8} fastinfo {fmt(f, unit):>10}   scipy {fmt(p, unit):>10}")


# ------------------------------------------------------------------------------------------------
# KSG accuracy on Gaussians
# ------------------------------------------------------------------------------------------------

def ksg_accuracy(out, quick, results):
    if not available(fi.mutual_info_ksg, np.arange(10.0), np.arange(10.0) ** 2, k=3):
        log("ksg_accuracy: fastinfo.mutual_info_ksg is not implemented in this checkout; "
            "writing a figure that says so")
        not_measured_figure(os.path.join(out, "ksg_accuracy.png"), "KSG accuracy on Gaussians")
        return
    rhos = [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95]
    sizes = [100, 1_000, 10_000]
    n_seeds = 6 if quick else 40
    k = 3
    rows = []
    for algorithm in (1, 2):
        for n in sizes:
            for rho in rhos:
                estimates = []
                for seed in range(n_seeds):
                    x, y, true_mi = gaussian_pair(n, rho, np.random.default_rng([seed, n, int(rho * 100)]))
                    estimates.append(fi.mutual_info_ksg(x, y, k=k, algorithm=algorithm))
                estimates = np.array(estimates)
                rows.append((algorithm, n, rho, true_mi, estimates.mean(), estimates.std(ddof=1),
                             np.percentile(estimates, 10), np.percentile(estimates, 90)))
        log(f"  ksg accuracy: algorithm {algorithm} done")
    write_csv(os.path.join(out, "ksg_accuracy.csv"),
              ["algorithm", "n", "rho", "true MI (nats)", "mean estimate", "std over seeds", "p10", "p90"],
              [(a, n, r, f"{t:.5f}", f"{m:.5f}", f"{s:.5f}", f"{lo:.5f}", f"{hi:.5f}")
               for a, n, r, t, m, s, lo, hi in rows])
    results["ksg_accuracy"] = {"k": k, "seeds": n_seeds, "rows": [
        {"algorithm": a, "n": n, "rho": r, "true": t, "mean": m, "std": s, "p10": lo, "p90": hi}
        for a, n, r, t, m, s, lo, hi in rows]}

    plt = plt_module()
    fig, axes = plt.subplots(2, 2, figsize=(9.6, 7.0), sharex=True, sharey="row")
    fine = np.linspace(0.0, 0.95, 200)
    size_colors = dict(zip(sizes, ["#d62728", "#9467bd", "#1f77b4"]))
    for col, algorithm in enumerate((1, 2)):
        top, bottom = axes[0, col], axes[1, col]
        top.plot(fine, -0.5 * np.log(1 - fine ** 2), color="black", lw=1.2, label=r"true $-\frac{1}{2}\log(1-\rho^2)$")
        bottom.axhline(0.0, color="black", lw=1.2)
        for offset, n in zip((-0.012, 0.0, 0.012), sizes):
            sel = [r for r in rows if r[0] == algorithm and r[1] == n]
            rho = np.array([r[2] for r in sel]) + offset
            mean = np.array([r[4] for r in sel])
            std = np.array([r[5] for r in sel])
            bias = mean - np.array([r[3] for r in sel])
            top.errorbar(rho, mean, yerr=std, fmt="o", ms=3.5, capsize=2, color=size_colors[n], label=f"n = {n:,}")
            bottom.errorbar(rho, bias, yerr=std, fmt="o-", ms=3.5, capsize=2, lw=0.8, color=size_colors[n])
        top.set_title(f"algorithm {algorithm}")
        bottom.set_xlabel(r"correlation $\rho$")
    axes[0, 0].set_ylabel("estimate (nats)")
    axes[1, 0].set_ylabel("estimate - true (nats)")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"KSG on bivariate Gaussians, k = {k}: mean ± std over {n_seeds} seeds")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "ksg_accuracy.png"))
    plt.close(fig)
    log(f"wrote {os.path.relpath(os.path.join(out, 'ksg_accuracy.png'))}")


# ------------------------------------------------------------------------------------------------
# The fused linear head: time and memory against tokens
# ------------------------------------------------------------------------------------------------

def linear_memory_time(out, quick, results):
    from fastinfo import _bench, _linear

    d, n_vocab = 768, 50257
    tokens = [256, 512, 1024] if quick else [1024, 2048, 4096, 8192]
    alone = [2048] if quick else [16384, 65536]   # fastinfo only: the peers would need 6-26 GB of logits
    repeats = 1 if quick else 2
    memory = _bench.PeakMemory()
    _linear._load_blas()
    impls = {"fastinfo": lambda h, w, t: (lambda: fi.linear_cross_entropy(h, w, t)),
             "numpy": lambda h, w, t: (lambda: h @ w.T)}
    try:
        torch, F = _bench._import_torch()
        impls["torch"] = lambda h, w, t: (lambda ht=torch.from_numpy(h), wt=torch.from_numpy(w),
                                          tt=torch.from_numpy(t): F.cross_entropy(F.linear(ht, wt), tt).item())
    except ImportError:
        log("linear_memory_time: torch is not installed, left out")
    rows = []
    for n in tokens + alone:
        data = _bench._linear_data("W8", n, d, n_vocab)
        h, w, t = data["h"], data["W"], data["t"]
        for name, make in impls.items():
            if n in alone and name != "fastinfo":
                continue
            call = make(h, w, t)
            gc.collect()
            _, peak = memory.measure(call)
            seconds = min(_timed(call) for _ in range(repeats))
            rows.append((name, n, round(seconds, 4), None if peak is None else round(peak / 2**20, 1)))
            log(f"  {name} tokens={n}: {seconds:.3f} s, peak extra {rows[-1][3]} MiB")
            del call
        del data, h, w, t
    write_csv(os.path.join(out, "linear_memory_time.csv"), ["implementation", "tokens", "seconds",
                                                            "peak extra MiB"], rows)
    results["linear_memory_time"] = {"d": d, "vocab": n_vocab, "memory_method": memory.method, "rows": rows}
    plt = plt_module()
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9.6, 3.6))
    labels = {"fastinfo": "fastinfo.linear_cross_entropy", "torch": "torch F.cross_entropy(F.linear(h, W), t)",
              "numpy": "bare product h @ W.T (NumPy)"}
    for name in impls:
        points = [(n, s, m) for impl, n, s, m in rows if impl == name]
        xs = [p[0] for p in points]
        ax_t.plot(xs, [p[1] for p in points], "o-", color=COLORS[name], label=labels[name])
        ax_m.plot(xs, [max(p[2] or 0.0, 1.0) for p in points], "o-", color=COLORS[name], label=labels[name])
    for ax in (ax_t, ax_m):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("tokens (d = 768, V = 50,257, float32)")
    ax_t.set_yscale("log")
    ax_t.set_ylabel("time (s)")
    ax_m.set_yscale("log")
    ax_m.set_ylabel("peak extra memory (MiB)")
    ax_t.legend(fontsize=8)
    ax_t.set_title("time, 2 threads")
    ax_m.set_title("memory: logits never stored")
    fig.tight_layout()
    path = os.path.join(out, "linear_memory_time.png")
    fig.savefig(path)
    plt.close(fig)
    log(f"wrote {os.path.relpath(path)}")


# ------------------------------------------------------------------------------------------------
# Information dynamics: local transfer entropy and storage over time
# ------------------------------------------------------------------------------------------------

def switching_coupling(n, rng):
    """source iid N(0, 1); target[t] = 0.6 target[t-1] + c(t) source[t-1] + 0.5 noise, with the
    coupling c(t) = 0.9 in the middle third of the series and 0 elsewhere (the guide's example)."""
    source = rng.normal(size=n)
    noise = rng.normal(size=n)
    coupling = np.where((np.arange(n) >= n // 3) & (np.arange(n) < 2 * n // 3), 0.9, 0.0)
    target = np.zeros(n)
    for t in range(1, n):
        target[t] = 0.6 * target[t - 1] + coupling[t] * source[t - 1] + 0.5 * noise[t]
    return source, target, coupling


def dynamics_local(out, quick, results):
    n = 3000 if quick else 30000
    source, target, coupling = switching_coupling(n, np.random.default_rng(2026))
    local_te = fi.transfer_entropy_ksg(source, target, local=True)          # times 1 .. n-1
    local_ais = fi.active_information_storage_ksg(target, local=True)        # times 1 .. n-1
    window = max(n // 100, 10)
    kernel = np.ones(window) / window
    smooth_te = np.convolve(local_te, kernel, mode="same")
    smooth_ais = np.convolve(local_ais, kernel, mode="same")
    t = np.arange(1, n)
    te = fi.transfer_entropy_ksg(source, target)
    rows = [(int(i), round(float(a), 5), round(float(b), 5)) for i, a, b in
            zip(t[::window], smooth_te[::window], smooth_ais[::window])]
    write_csv(os.path.join(out, "dynamics_local.csv"), ["t", "local TE (moving mean)", "local AIS (moving mean)"],
              rows)
    results["dynamics_local"] = {"n": n, "window": window, "transfer_entropy": te}
    plt = plt_module()
    fig, ax = plt.subplots(figsize=(9.6, 3.4))
    ax.plot(t, local_te, ",", color="#c6dbef", alpha=0.5)
    ax.plot(t, smooth_te, color=COLORS["fastinfo"], label=f"local transfer entropy source -> target "
                                                          f"(moving mean of {window})")
    ax.plot(t, smooth_ais, color="#2ca02c", label="local active information storage of target (moving mean)")
    on = np.flatnonzero(coupling)
    ax.axvspan(on[0], on[-1], color="#fdd0a2", alpha=0.35, label="coupling on")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_ylim(-1.0, 2.0)
    ax.set_xlabel("time t")
    ax.set_ylabel("nats")
    ax.set_title(f"Local values over time (n = {n:,}, k = 4, histories 1); average TE = {te:.3f} nats")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = os.path.join(out, "dynamics_local.png")
    fig.savefig(path)
    plt.close(fig)
    log(f"wrote {os.path.relpath(path)}")


def _timed(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------------
# The side-by-side table of the benchmark suite (fastinfo bench / asv_bench/compare.py)
# ------------------------------------------------------------------------------------------------

def side_by_side(out, quick, results, threads=None, readme=False):
    import contextlib
    import importlib.util
    import io

    header = ["workload", "what", "peer", "peer (s)", "fastinfo (s)", "speed-up",
              "fastinfo GB/s", "read GB/s", "copy GB/s", "% of floor", "extra memory MiB (fastinfo / peer)"]
    path = os.path.join(out, "side_by_side.csv")
    if importlib.util.find_spec("fastinfo._bench") is None:
        log("side_by_side: fastinfo bench is not available in this checkout")
        write_csv(path, header, [("W1-W9", "fastinfo bench is not available in this checkout",
                                  "", "", "", "", "", "", "", "", "")])
        return
    from fastinfo import _bench

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        # --quick leaves out W5 here (ksg_timing measures the same workload) to stay under 2 minutes
        args = ["--quick", "--only", "W1,W2,W3,W4,W6,W7,W8,W9"] if quick else []
        if threads is not None:
            args += ["--threads", str(threads)]
        status = _bench.main(args + ["--format", "json"])
    if status not in (0, None):
        log(f"side_by_side: fastinfo bench exited with status {status}")
    report = json.loads(buffer.getvalue())
    records = report["rows"]

    def number(value, fmt):
        try:
            return format(float(value), fmt)
        except (TypeError, ValueError):
            return ""

    rows = []
    for r in records:
        ok = r.get("status") == "ok"
        speedup = number(r.get("speedup"), ".1f")
        memory = " / ".join(number(r.get(key), ".1f") or "-"
                            for key in ("fastinfo_peak_extra_mib", "peer_peak_extra_mib"))
        dense = r.get("fastinfo_gbps") is not None
        rows.append((r.get("workload", ""), r.get("title", ""), r.get("peer", ""),
                     number(r.get("peer_min"), ".4f") if ok else r.get("status", ""),
                     number(r.get("fastinfo_min"), ".4f"),
                     f"{speedup}x" if ok and speedup else "",
                     number(r.get("fastinfo_gbps"), ".1f"),
                     number(r.get("read_gbps"), ".1f") if dense else "",
                     number(r.get("copy_gbps"), ".1f") if dense else "",
                     number(r.get("floor_pct"), ".0f") if dense else "",
                     memory))
    write_csv(path, header, rows)
    results["side_by_side"] = records
    results["side_by_side_meta"] = report["meta"]
    log(f"  {len(rows)} rows from fastinfo bench{' --quick' if quick else ''}")
    if readme:
        table = _bench.format_markdown([_bench.Row(**r) for r in records], report["meta"])
        write_readme_table(table, threads)


README = os.path.join(HERE, "..", "README.md")
README_BEGIN = "<!-- fastinfo bench: begin (docs/make_figures.py --readme writes this part) -->"
README_END = "<!-- fastinfo bench: end -->"


def write_readme_table(table, threads):
    """Replace the results table of README.md (between its markers) with this run's."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    if README_BEGIN not in text or README_END not in text:
        log("side_by_side: README.md has no fastinfo bench markers; left unchanged")
        return
    machine = machine_info()
    load = machine["load_average_1min"]
    option = f" --threads {threads}" if threads is not None else ""
    head = (f"Measured {machine['date_utc']} UTC on {machine['cpu_count']} CPUs"
            + (f" (load average {load:.1f} at the start)" if load is not None else "")
            + (f", commit {machine['git_commit']}" if machine["git_commit"] else "")
            + f", by `python docs/make_figures.py{option} --readme` (the table is"
            + f" `fastinfo bench{option} --format markdown`):\n\n")
    before = text[: text.index(README_BEGIN) + len(README_BEGIN)]
    after = text[text.index(README_END):]
    with open(README, "w", encoding="utf-8") as f:
        f.write(before + "\n" + head + table.rstrip() + "\n" + after)
    log(f"wrote {os.path.relpath(README)} (results table)")


# ------------------------------------------------------------------------------------------------

def machine_info():
    from fastinfo import _config

    info = _config.config()
    info.update({
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "git_commit": _git_commit(),
    })
    return info


def _git_commit():
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (under 2 minutes)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})")
    parser.add_argument("--out", default=OUT_DEFAULT, help="output directory (default: docs/_static/figures)")
    parser.add_argument("--threads", type=int, default=None,
                        help="thread limit for every section (threadpoolctl; fastinfo bench --threads)")
    parser.add_argument("--readme", action="store_true",
                        help="also write the side_by_side run's table into README.md (between its markers)")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    os.makedirs(args.out, exist_ok=True)

    json_path = os.path.join(args.out, "benchmarks.json")
    results = {}
    if os.path.exists(json_path):  # keep the sections that are not rerun
        with open(json_path, encoding="utf-8") as f:
            results = json.load(f)
    results["machine"] = machine_info()
    results["quick"] = args.quick
    started = time.perf_counter()
    limits = contextlib.nullcontext()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=args.threads)
    with limits:
        results["machine"] = machine_info()  # the thread count in effect
        for name in sections:
            log(f"[{name}]")
            section_start = time.perf_counter()
            if name == "side_by_side":
                side_by_side(args.out, args.quick, results, threads=args.threads, readme=args.readme)
            else:
                globals()[name](args.out, args.quick, results)
            log(f"[{name}] {time.perf_counter() - section_start:.1f} s")
    if "ksg_speedups" in results:
        write_csv(os.path.join(args.out, "ksg_speedups.csv"),
                  ["workload", "peer", "peer (s)", "fastinfo (s)", "speed-up"], results["ksg_speedups"])
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, default=float)
    machine = results["machine"]
    with open(os.path.join(args.out, "measured_on.txt"), "w", encoding="utf-8") as f:
        f.write(f"Measured on {machine['date_utc']} UTC: {machine['cpu_count']} CPUs ({machine['platform']}), "
                f"fastinfo {machine['fastinfo']} built with {machine['compiler']}, OpenMP "
                f"{'on' if machine['openmp'] else 'off'}, {machine['default_threads']} threads, "
                f"NumPy {machine['numpy']}, SciPy {machine['scipy']}"
                f"{', quick sizes (--quick)' if args.quick else ''}"
                f"{'; commit ' + machine['git_commit'] if machine['git_commit'] else ''}"
                + (f"; load average at the start {machine['load_average_1min']:.1f}"
                   if machine["load_average_1min"] is not None else "") + ".\n")
    log(f"wrote {os.path.relpath(json_path)}; total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

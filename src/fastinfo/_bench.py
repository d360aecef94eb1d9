"""Side-by-side comparison of fastinfo with the libraries users would pick (``fastinfo bench``).

Runs the fixed workloads W1-W12 and S1-S4 of the benchmark suite for fastinfo and every installed peer
(NumPy/SciPy, PyTorch CPU, scikit-learn, ennemi, JIDT through jpype) in one process, interleaved, and prints
peer time / fastinfo time (min and median of repeats), fastinfo's effective bandwidth for
the dense kernels next to the machine's read and copy bandwidth measured in the same run, and
the peak extra memory of each call.

The memory floor of a dense workload is the time its compulsory bytes (every input read once,
every output written once) take at the machine's bandwidth: the read bandwidth for the
reductions (W2-W4), the copy bandwidth (bytes read + written) for log_softmax (W1). Both are
measured at the bench's thread count by fastinfo's own compiled loops (``_kernels.memory_read``,
``_kernels.memory_copy``: a vector sum, and a copy with streaming stores as the kernels write
large outputs), and each dense row prints "% of floor" = floor / fastinfo's time.

Workloads (names and sizes are quoted outside the project; do not change them):

====  ===========================================================================
W1    ``log_softmax`` float32 (4096, 32000) (also into a preallocated ``out=``, against torch)
W2    mean ``softmax_cross_entropy`` float32 (4096, 32000), int64 targets
W3    mean ``softmax_kl_divergence`` of two float32 (2048, 32000)
W4    ``entropy`` of float64 probabilities (4096, 32000)
      (W1-W4 also on half-precision input, float16 and bfloat16: the same values rounded, read as
      they are; W1 ``out=`` in the input's dtype, W4 also float32. ``--dtypes`` picks the rows.
      Their "vs f32" column is the fastinfo time over fastinfo's float32 time of the same
      workload in the same run.)
W5    ``mutual_info_ksg`` 1-D x 1-D, n = 10,000 / 100,000 / 1,000,000, k = 3, Gaussian rho = 0.6
W6    ``mutual_info_ksg`` 4-D x 4-D, n = 20,000, k = 3, Gaussian rho = 0.6 per coordinate pair
W7    ``mutual_info_features`` (and the ``fastinfo.sklearn`` drop-in) on X of shape (10,000, 50);
      the drop-in also on (100,000, 20)
W8    ``linear_cross_entropy`` float32, tokens 8192, d 768, V 50,257 (GPT-2 small) against
      ``F.cross_entropy(F.linear(h, W), t)``, and the bare product ``h @ W.T`` (NumPy and torch) in the
      same run, the floor of this workload; also tokens 65,536 (13 GB of logits) for fastinfo alone
W9    ``linear_cross_entropy_with_grad`` at the W8 shapes against torch autograd (forward + backward
      of the same expression)
W10   ``transfer_entropy_ksg``, k = 4, histories 1, n = 50,000 (coupled autoregressive pair) against JIDT's
      ``TransferEntropyCalculatorKraskov``; also ``transfer_entropy_test`` with 999 permutations at
      n = 10,000 (fastinfo alone)
W11   ``conditional_mutual_info_ksg`` (1, 1 | 2), k = 4, n = 50,000, against JIDT's
      ``ConditionalMutualInfoCalculatorMultiVariateKraskov1``
W12   ``active_information_storage_ksg``, history 5, k = 4, n = 50,000, against JIDT's
      ``ActiveInfoStorageCalculatorKraskov`` (algorithm 1)
S1    ``fastinfo.scipy.logsumexp(x, axis=-1)``, float32 (4096, 32000), against ``scipy.special``
S2    ``fastinfo.scipy.log_softmax(x, axis=-1)``, float32 (4096, 32000)
S3    ``fastinfo.scipy.entropy(p, axis=1)``, float64 probabilities (4096, 32000), against ``scipy.stats``
S4    ``fastinfo.scipy.logsumexp(x)`` (``axis=None``: the whole array), 100,000,000 float64
====  ===========================================================================

A "floor" row (the bare matrix product) computes only part of the work: its speed-up column is
floor time / fastinfo time (1.0 means fastinfo costs exactly the product) and its result is not
compared. A workload without any peer (W8 at 65,536 tokens) has one row with fastinfo's time and
peak memory only.

Every peer computes the same quantity as fastinfo on the same data; the largest absolute
difference of the results is checked for every pair (shown with ``--verbose``) so that no
row compares different work. Estimator data are standardised (unit sample variance,
``ddof=1``) up front, so scikit-learn's own rescaling is the identity up to rounding.

Peak extra memory is the resident-set high-water mark during one call minus the resident set
just before it. On Linux it is exact: the kernel's high-water mark (``VmHWM``) is reset by
writing ``5`` to ``/proc/self/clear_refs`` before the call and read after it, and glibc's
adaptive mmap threshold is pinned so that freed temporaries cannot be silently reused from
already-resident heap memory (see ``_pin_glibc_mmap_threshold``), and the free heap pages that
earlier calls left resident are returned to the OS before each measured call
(``malloc_trim``). Pinning makes every
temporary above 128 KiB a fresh mapping, page faults and all, which slows calls whose
temporaries lie between 128 KiB and 32 MiB (W10-W12: 4-16 % here) and is not how
users' processes allocate; so every workload is timed first, with the allocator as it comes,
and the peaks are measured afterwards, one more call per implementation with the threshold
pinned. Elsewhere a thread samples the resident set with psutil every 0.5 ms (which can miss
short peaks); without psutil the column is empty. Memory used by worker processes (none of
the default calls start any) is not counted.
"""
import argparse
import contextlib
import csv
import gc
import io
import json
import os
import platform
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

SEED = 20240601
RHO = 0.6
K = 3

# Sizes per preset: "full" is the quoted workload, "quick" for development runs,
# "tiny" for the test suite (seconds in total).
DENSE_SHAPES = {
    "W1": {"full": (4096, 32000), "quick": (256, 32000), "tiny": (16, 1000)},
    "W2": {"full": (4096, 32000), "quick": (256, 32000), "tiny": (16, 1000)},
    "W3": {"full": (2048, 32000), "quick": (128, 32000), "tiny": (16, 1000)},
    "W4": {"full": (4096, 32000), "quick": (256, 32000), "tiny": (16, 1000)},
    # the SciPy drop-in (fastinfo.scipy) with SciPy's own calls
    "S1": {"full": (4096, 32000), "quick": (256, 32000), "tiny": (16, 1000)},
    "S2": {"full": (4096, 32000), "quick": (256, 32000), "tiny": (16, 1000)},
    "S3": {"full": (4096, 32000), "quick": (256, 32000), "tiny": (16, 1000)},
    "S4": {"full": (100_000_000,), "quick": (10_000_000,), "tiny": (300_000,)},  # one long row (chunked)
}
KSG_1D_SIZES = {"full": (10_000, 100_000, 1_000_000), "quick": (10_000, 100_000), "tiny": (500,)}
KSG_4D_SIZE = {"full": 20_000, "quick": 5_000, "tiny": 300}
FEATURES_SHAPE = {"full": (10_000, 50), "quick": (2_000, 10), "tiny": (300, 3)}
DROPIN_LONG_SHAPE = {"full": (100_000, 20), "quick": (10_000, 5), "tiny": (400, 2)}  # the drop-in only
LINEAR_SHAPES = {"full": (8192, 768, 50257), "quick": (1024, 768, 50257), "tiny": (64, 32, 1000)}  # W8, W9
DYNAMICS_SIZE = {"full": 50_000, "quick": 10_000, "tiny": 400}                   # W10-W12
TE_TEST_SIZE = {"full": (10_000, 999), "quick": (2_000, 199), "tiny": (200, 19)}   # W10 test: n, permutations
LINEAR_LONG_TOKENS = {"full": 65536, "quick": 8192, "tiny": 256}  # W8, fastinfo alone
REPEATS = {"full": (7, 3), "quick": (3, 2), "tiny": (1, 1)}  # (dense, estimators)


# --------------------------------------------------------------------------- data


def _rng(tag):
    # One independent, reproducible stream per workload.
    return np.random.default_rng([SEED, sum(map(ord, tag))])


# dtype parameter of the dense workloads -> (NumPy dtype name, short label)
DENSE_DTYPES = {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16"}
HALF_DTYPES = ("float16", "bfloat16")


def numpy_dtype(dtype):
    """A NumPy dtype from a dtype or its name ("bfloat16": ml_dtypes', an ImportError without it)."""
    if isinstance(dtype, str) and dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def make_logits(shape, dtype, rng):
    """Logits drawn from N(0, 3^2): the spread of a trained language model's outputs."""
    return (3.0 * rng.standard_normal(shape, dtype=np.float32)).astype(numpy_dtype(dtype), copy=False)


def make_probabilities(shape, dtype, rng):
    """Rows of uniform(0, 1) draws normalised to sum to one."""
    p = rng.random(shape, dtype=np.float64)
    p /= p.sum(axis=-1, keepdims=True)
    return p.astype(numpy_dtype(dtype), copy=False)


def _to_torch(arr):
    """A torch tensor sharing ``arr``'s memory (bfloat16 through its 16-bit patterns)."""
    torch, _ = _import_torch()
    if arr.dtype.name == "bfloat16":
        return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(arr)


def standardise(a):
    """Centre and scale each column to unit sample variance (``ddof=1``, as scikit-learn scales)."""
    a = a - a.mean(axis=0)
    return a / a.std(axis=0, ddof=1)


def make_gaussian_pair(n, d, rho, rng):
    """``(x, y)`` of shape ``(n, d)`` (``(n,)`` if ``d == 1``), corr(x_j, y_j) = rho, all else independent.

    The true mutual information is ``-d/2 log(1 - rho^2)`` nats.
    """
    x = rng.standard_normal((n, d))
    y = rho * x + np.sqrt(1.0 - rho * rho) * rng.standard_normal((n, d))
    x, y = standardise(x), standardise(y)
    if d == 1:
        return np.ascontiguousarray(x[:, 0]), np.ascontiguousarray(y[:, 0])
    return x, y


def make_features(n, m, rng):
    """``X`` of shape (n, m) and a target ``y`` that depends on the first few columns non-linearly."""
    X = rng.standard_normal((n, m))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, min(2, m - 1)] + 0.3 * rng.standard_normal(n)
    return standardise(X), standardise(y[:, None])[:, 0]


# --------------------------------------------------------------------------- peers


def _import_torch():
    import torch
    import torch.nn.functional as F

    return torch, F


def _import_sklearn_mi():
    from sklearn.feature_selection import mutual_info_regression

    return mutual_info_regression


def _import_ennemi():
    import ennemi

    return ennemi


JIDT_THREADS = None


def _import_jidt():
    """JIDT's Kraskov calculators through jpype, the JVM started once per process with the
    ``infodynamics.jar`` that the ``idtxl-uv`` wheel ships (asv_bench/requirements-jidt.txt)."""
    if os.environ.get("FASTINFO_BENCH_NO_JVM"):
        # the test suite's own process never hosts a JVM (forks, sanitizers); its subprocess runs JIDT
        raise ImportError("JIDT left out: FASTINFO_BENCH_NO_JVM is set")
    import jpype
    import jpype.imports  # noqa: F401
    import idtxl

    if not jpype.isJVMStarted():
        jar = os.path.join(os.path.dirname(idtxl.__file__), "infodynamics.jar")
        if not os.path.isfile(jar):
            raise ImportError(f"idtxl ships no infodynamics.jar at {jar}")
        try:
            jpype.startJVM(jpype.getDefaultJVMPath(), f"-Djava.class.path={jar}", convertStrings=True)
        except (OSError, jpype.JVMNotFoundException) as exc:     # no Java runtime
            raise ImportError(f"no Java runtime for JIDT: {exc}") from exc
    from infodynamics.measures.continuous import kraskov

    return jpype, kraskov


def _jidt_calculator(cls, threads, **properties):
    """A JIDT calculator with fastinfo's conventions: raw data (no normalisation, no added noise),
    max-norm, KSG ``k``, the bench's thread count."""
    calc = cls()
    for key, value in {"NORMALISE": "false", "NOISE_LEVEL_TO_ADD": "0", "NORM_TYPE": "MAX_NORM",
                       "NUM_THREADS": "USE_ALL" if threads is None else str(threads), **properties}.items():
        calc.setProperty(key, str(value))
    return calc


def _as_numpy(result):
    """Any result (float, ndarray, torch tensor, or a tuple of them, concatenated) as a flat float ndarray
    (no copy for float32/64)."""
    if isinstance(result, (tuple, list)):
        parts = [_as_numpy(r) for r in result if r is not None]
        return np.concatenate([p.astype(np.float64) for p in parts]) if parts else np.empty(0)
    if hasattr(result, "detach"):
        result = result.detach().cpu()
        if result.dtype.is_floating_point and result.element_size() == 2:  # float16 / bfloat16
            result = result.float()
        result = result.numpy()
    result = np.asarray(result)
    return result.ravel() if result.dtype.kind == "f" and result.itemsize >= 4 else result.astype(np.float64).ravel()


def _max_abs_difference(a, b, chunk=1 << 22):
    """``max |a - b|`` in float64 over flat arrays, by chunks (results can be 500 MB); NaN if any is NaN."""
    worst = 0.0
    for start in range(0, a.size, chunk):
        diff = np.abs(a[start:start + chunk].astype(np.float64) - b[start:start + chunk].astype(np.float64))
        if np.isnan(diff).any():
            return float("nan")
        worst = max(worst, float(diff.max()))
    return worst


def _torch_threads(threads):
    if threads is not None:
        torch, _ = _import_torch()
        torch.set_num_threads(threads)


@dataclass
class Implementation:
    """A named way of computing a workload: ``factory(data, threads)`` returns a zero-argument call.

    The factory does the untimed preparation (imports, conversion to torch tensors); an
    ``ImportError`` from it means "not installed".
    """

    name: str
    factory: object
    clips_at_zero: bool = False  # the peer clips negative estimates at 0 (scikit-learn): compare max(fastinfo, 0)
    floor: bool = False  # computes only part of the work (the bare product): timed, not compared


@dataclass
class Workload:
    key: str
    title: str
    make_data: object  # () -> dict
    fastinfo: Implementation
    peers: list
    bytes_moved: object = None  # data -> bytes read + written by the fastinfo call, dense kernels only
    floor: str = None  # "read" or "copy": the bandwidth that bounds the dense kernel
    tolerance: float = 1e-6
    repeats_kind: int = 0  # 0 dense, 1 estimator
    dtype: str = None  # the input dtype of a dense workload (its "vs f32" ratio compares within the key)
    variant: str = ""  # rows of one key and variant differ only in dtype ("out=" for W1 out=)


def _shape(shape):
    return "x".join(str(n) for n in shape)


def _fastinfo_call(name, *args, **kwargs):
    import fastinfo

    function = getattr(fastinfo, name)
    return lambda: function(*args, **kwargs)


# Agreement with a peer that computes and returns in half precision (torch on half tensors): its
# result carries the half dtype's rounding, about 2^-9 (bfloat16) or 2^-12 (float16) relative, and
# torch's mean reductions also accumulate in that dtype: measured on W2 bfloat16 (4096, 32000),
# torch's mean is 14.9375 where the float64 value of the same logits is 14.8315 (fastinfo: 14.83149068),
# 2^-7 relative. Allowed: 2^-6 (bfloat16) and 2^-9 (float16) relative to the result's magnitude.
def _half_tolerance(dtype, magnitude):
    return {"bfloat16": 2.0 ** -6, "float16": 2.0 ** -9}.get(dtype, 0.0) * magnitude


def _w1(shape, dtype="float32"):
    label = DENSE_DTYPES[dtype]

    def make():
        return {"x": make_logits(shape, dtype, _rng("W1"))}

    def scipy_factory(d, threads):
        from scipy.special import log_softmax

        return lambda: log_softmax(d["x"], axis=-1)

    def torch_factory(d, threads):
        torch, F = _import_torch()
        _torch_threads(threads)
        x = _to_torch(d["x"])
        return lambda: F.log_softmax(x, dim=-1)

    peers = [Implementation("torch F.log_softmax", torch_factory)]
    if dtype not in HALF_DTYPES:
        peers.append(Implementation("scipy.special.log_softmax", scipy_factory))
    return Workload(
        "W1", f"log_softmax {label} {_shape(shape)}", make,
        Implementation("fastinfo.log_softmax", lambda d, t: _fastinfo_call("log_softmax", d["x"])),
        peers,
        bytes_moved=lambda d: d["x"].nbytes + 4 * d["x"].size, floor="copy",  # a float32 output for half input
        tolerance=max(1e-4, _half_tolerance(dtype, 40.0)), dtype=dtype,
    )


def _w1_out(shape, dtype="float32"):
    """W1 again into a preallocated output of the input's dtype (half into half): the kernel's own
    bandwidth, without first-touch page faults."""
    label = DENSE_DTYPES[dtype]

    def make():
        return {"x": make_logits(shape, dtype, _rng("W1"))}

    def fastinfo_factory(d, threads):
        import fastinfo

        out = np.zeros_like(d["x"])
        return lambda: fastinfo.log_softmax(d["x"], out=out)

    def torch_factory(d, threads):
        torch, _ = _import_torch()
        _torch_threads(threads)
        x = _to_torch(d["x"])
        out = torch.zeros_like(x)
        return lambda: torch.log_softmax(x, -1, out=out)

    return Workload(
        "W1", f"log_softmax {label} {_shape(shape)} out=", make,
        Implementation("fastinfo.log_softmax(out=)", fastinfo_factory),
        [Implementation("torch log_softmax(out=)", torch_factory)],
        bytes_moved=lambda d: 2 * d["x"].nbytes, floor="copy",
        tolerance=max(1e-4, _half_tolerance(dtype, 40.0)), dtype=dtype, variant="out=",
    )


def _w2(shape, dtype="float32"):
    label = DENSE_DTYPES[dtype]

    def make():
        rng = _rng("W2")
        x = make_logits(shape, dtype, rng)
        return {"x": x, "target": rng.integers(0, shape[1], shape[0], dtype=np.int64)}

    def scipy_factory(d, threads):
        from scipy.special import log_softmax

        x, target = d["x"], d["target"]
        rows = np.arange(x.shape[0])
        return lambda: float(-np.mean(log_softmax(x, axis=-1)[rows, target], dtype=np.float64))

    def torch_factory(d, threads):
        torch, F = _import_torch()
        _torch_threads(threads)
        x, target = _to_torch(d["x"]), torch.from_numpy(d["target"])
        return lambda: F.cross_entropy(x, target).item()

    peers = [Implementation("torch F.cross_entropy", torch_factory)]
    if dtype not in HALF_DTYPES:
        peers.append(Implementation("scipy log_softmax + gather", scipy_factory))
    return Workload(
        "W2", f"softmax_cross_entropy mean {label} {_shape(shape)}", make,
        Implementation("fastinfo.softmax_cross_entropy",
                       lambda d, t: _fastinfo_call("softmax_cross_entropy", d["x"], d["target"])),
        peers,
        bytes_moved=lambda d: d["x"].nbytes + d["target"].nbytes, floor="read",
        tolerance=max(1e-4, _half_tolerance(dtype, 12.0)), dtype=dtype,
    )


def _w3(shape, dtype="float32"):
    label = DENSE_DTYPES[dtype]

    def make():
        rng = _rng("W3")
        return {"p": make_logits(shape, dtype, rng), "q": make_logits(shape, dtype, rng)}

    def scipy_factory(d, threads):
        from scipy.special import log_softmax

        def call():
            log_p = log_softmax(d["p"], axis=-1)
            log_q = log_softmax(d["q"], axis=-1)
            return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1, dtype=np.float64)))

        return call

    def torch_factory(d, threads):
        torch, F = _import_torch()
        _torch_threads(threads)
        p, q = _to_torch(d["p"]), _to_torch(d["q"])
        # kl_div(input, target) = sum target * (log target - input) / rows, with target = log softmax(p):
        # the mean over rows of KL(softmax(p) || softmax(q)).
        return lambda: F.kl_div(F.log_softmax(q, dim=-1), F.log_softmax(p, dim=-1),
                                log_target=True, reduction="batchmean").item()

    peers = [Implementation("torch F.kl_div(log_softmax)", torch_factory)]
    if dtype not in HALF_DTYPES:
        peers.append(Implementation("scipy log_softmax + numpy", scipy_factory))
    return Workload(
        "W3", f"softmax_kl_divergence mean 2x {label} {_shape(shape)}", make,
        Implementation("fastinfo.softmax_kl_divergence",
                       lambda d, t: _fastinfo_call("softmax_kl_divergence", d["p"], d["q"], reduction="mean")),
        peers,
        bytes_moved=lambda d: d["p"].nbytes + d["q"].nbytes, floor="read",
        tolerance=max(1e-4, _half_tolerance(dtype, 40.0)), dtype=dtype,
    )


def _w4(shape, dtype="float64"):
    label = DENSE_DTYPES[dtype]

    def make():
        return {"p": make_probabilities(shape, dtype, _rng("W4"))}

    def scipy_factory(d, threads):
        from scipy.stats import entropy

        return lambda: entropy(d["p"], axis=-1)

    def torch_factory(d, threads):
        torch, _ = _import_torch()
        _torch_threads(threads)
        p = _to_torch(d["p"])
        return lambda: torch.special.entr(p).sum(-1)

    peers = [Implementation("torch special.entr().sum(-1)", torch_factory)]
    if dtype not in HALF_DTYPES:
        peers.append(Implementation("scipy.stats.entropy", scipy_factory))
    return Workload(
        "W4", f"entropy {label} {_shape(shape)}", make,
        Implementation("fastinfo.entropy", lambda d, t: _fastinfo_call("entropy", d["p"])),
        peers,
        bytes_moved=lambda d: d["p"].nbytes + 8 * d["p"].shape[0], floor="read",
        tolerance={"float64": 1e-10, "float32": 1e-4}.get(dtype, _half_tolerance(dtype, 12.0)), dtype=dtype,
    )


def _w5(n):
    def make():
        x, y = make_gaussian_pair(n, 1, RHO, _rng(f"W5-{n}"))
        return {"x": x, "y": y}

    def sklearn_factory(d, threads):
        mutual_info_regression = _import_sklearn_mi()
        x2 = d["x"][:, None]
        return lambda: mutual_info_regression(x2, d["y"], n_neighbors=K, random_state=0)

    def ennemi_factory(d, threads):
        ennemi = _import_ennemi()
        # preprocess=False: no rescaling and no added noise, the raw KSG algorithm 1 estimate.
        return lambda: ennemi.estimate_mi(d["y"], d["x"], k=K, preprocess=False, max_threads=threads)

    return Workload(
        "W5", f"mutual_info_ksg 1-D n={n:,}", make,
        Implementation("fastinfo.mutual_info_ksg", lambda d, t: _fastinfo_call("mutual_info_ksg", d["x"], d["y"], k=K)),
        [Implementation("sklearn mutual_info_regression", sklearn_factory, clips_at_zero=True),
         Implementation("ennemi estimate_mi", ennemi_factory)],
        tolerance=1e-5, repeats_kind=1,  # ennemi approximates digamma to ~1e-6
    )


def _w6(n):
    def make():
        x, y = make_gaussian_pair(n, 4, RHO, _rng("W6"))
        return {"x": x, "y": y}

    def ennemi_factory(d, threads):
        _import_ennemi()
        # ennemi's public estimate_mi takes a 1-D y; its KSG core takes multivariate x and y.
        from ennemi._entropy_estimators import _estimate_single_mi

        return lambda: _estimate_single_mi(d["x"], d["y"], k=K)

    return Workload(
        "W6", f"mutual_info_ksg 4-D x 4-D n={n:,}", make,
        Implementation("fastinfo.mutual_info_ksg", lambda d, t: _fastinfo_call("mutual_info_ksg", d["x"], d["y"], k=K)),
        [Implementation("ennemi KSG (_estimate_single_mi)", ennemi_factory)],
        tolerance=1e-5, repeats_kind=1,  # ennemi approximates digamma to ~1e-6
    )


def _w7(shape):
    def make():
        X, y = make_features(*shape, _rng("W7"))
        return {"X": X, "y": y}

    def sklearn_factory(d, threads):
        mutual_info_regression = _import_sklearn_mi()
        return lambda: mutual_info_regression(d["X"], d["y"], n_neighbors=K, random_state=0)

    def ennemi_factory(d, threads):
        ennemi = _import_ennemi()
        return lambda: ennemi.estimate_mi(d["y"], d["X"], k=K, preprocess=False, max_threads=threads)

    return Workload(
        "W7", f"mutual_info_features {_shape(shape)}", make,
        Implementation("fastinfo.mutual_info_features",
                       lambda d, t: _fastinfo_call("mutual_info_features", d["X"], d["y"], k=K)),
        [Implementation("sklearn mutual_info_regression", sklearn_factory, clips_at_zero=True),
         Implementation("ennemi estimate_mi", ennemi_factory)],
        tolerance=1e-5, repeats_kind=1,  # ennemi approximates digamma to ~1e-6
    )


def _w7_dropin(shape):
    def make():
        X, y = make_features(*shape, _rng("W7"))
        return {"X": X, "y": y}

    def fastinfo_factory(d, threads):
        from fastinfo.sklearn import mutual_info_regression

        return lambda: mutual_info_regression(d["X"], d["y"], n_neighbors=K, random_state=0)

    def sklearn_factory(d, threads):
        mutual_info_regression = _import_sklearn_mi()
        return lambda: mutual_info_regression(d["X"], d["y"], n_neighbors=K, random_state=0)

    return Workload(
        "W7", f"sklearn drop-in {_shape(shape)}", make,
        Implementation("fastinfo.sklearn.mutual_info_regression", fastinfo_factory),
        [Implementation("sklearn mutual_info_regression", sklearn_factory)],
        tolerance=1e-10, repeats_kind=1,
    )


def _linear_data(tag, tokens, d, n_vocab):
    """Hidden states N(0, 1), a head of N(0, 1/d) rows (logits of unit scale), uniform targets."""
    rng = _rng(tag)
    hidden = rng.standard_normal((tokens, d), dtype=np.float32)
    head = rng.standard_normal((n_vocab, d), dtype=np.float32) * np.float32(1.0 / np.sqrt(d))
    return {"h": hidden, "W": head, "t": rng.integers(0, n_vocab, tokens, dtype=np.int64)}


def _w8(shape, tokens=None):
    n_tokens, d, n_vocab = shape
    if tokens is not None:
        n_tokens = tokens

    def make():
        return _linear_data("W8", n_tokens, d, n_vocab)

    def torch_factory(data, threads):
        torch, F = _import_torch()
        _torch_threads(threads)
        h, w, t = (torch.from_numpy(data[k]) for k in ("h", "W", "t"))
        return lambda: F.cross_entropy(F.linear(h, w), t).item()

    def torch_product(data, threads):
        torch, _ = _import_torch()
        _torch_threads(threads)
        h, w = torch.from_numpy(data["h"]), torch.from_numpy(data["W"])
        return lambda: h @ w.T

    def numpy_product(data, threads):
        h, w = data["h"], data["W"]
        return lambda: h @ w.T

    def fastinfo_factory(data, threads):
        from fastinfo import _linear

        _linear._load_blas()  # the one-time look-up of SciPy's BLAS (imports scipy.linalg): not measured
        return _fastinfo_call("linear_cross_entropy", data["h"], data["W"], data["t"])

    title = f"linear_cross_entropy f32 tokens={n_tokens:,} d={d} V={n_vocab:,}"
    fastinfo = Implementation("fastinfo.linear_cross_entropy", fastinfo_factory)
    peers = [] if tokens is not None else [
        Implementation("torch F.cross_entropy(F.linear)", torch_factory),
        Implementation("numpy h @ W.T (floor)", numpy_product, floor=True),
        Implementation("torch h @ W.T (floor)", torch_product, floor=True),
    ]
    return Workload("W8", title, make, fastinfo, peers, tolerance=1e-4)


def _w9(shape):
    n_tokens, d, n_vocab = shape

    def make():
        return _linear_data("W8", n_tokens, d, n_vocab)

    def fastinfo_factory(data, threads):
        import fastinfo
        from fastinfo import _linear

        _linear._load_blas()
        h, w, t = data["h"], data["W"], data["t"]
        return lambda: fastinfo.linear_cross_entropy_with_grad(h, w, t)[:3]

    def torch_factory(data, threads):
        torch, F = _import_torch()
        _torch_threads(threads)
        h0, w0, t = (torch.from_numpy(data[k]) for k in ("h", "W", "t"))

        def call():
            h, w = h0.detach().requires_grad_(), w0.detach().requires_grad_()
            loss = F.cross_entropy(F.linear(h, w), t)
            loss.backward()
            return loss.detach(), h.grad, w.grad

        return call

    return Workload(
        "W9", f"linear_cross_entropy_with_grad f32 tokens={n_tokens:,} d={d} V={n_vocab:,}", make,
        Implementation("fastinfo.linear_cross_entropy_with_grad", fastinfo_factory),
        [Implementation("torch autograd F.cross_entropy(F.linear)", torch_factory)],
        tolerance=1e-4,
    )


def coupled_autoregressive(n, rng, a=0.5, c=0.8, sigma=0.6):
    """source iid N(0, 1); target[t] = a target[t-1] + c source[t-1] + sigma noise (the W10 data)."""
    source = rng.standard_normal(n)
    noise = rng.standard_normal(n)
    target = np.zeros(n)
    for t in range(1, n):
        target[t] = a * target[t - 1] + c * source[t - 1] + sigma * noise[t]
    return source, target


def _w10(n):
    def make():
        source, target = coupled_autoregressive(n, _rng("W10"))
        return {"source": source, "target": target}

    def jidt_factory(d, threads):
        jpype, kraskov = _import_jidt()
        calc = _jidt_calculator(kraskov.TransferEntropyCalculatorKraskov, threads, k=4)
        jarray = jpype.JArray(jpype.JDouble)
        source, target = jarray(d["source"]), jarray(d["target"])

        def call():
            calc.initialise(1)          # target history 1 (source history, taus, delay: 1)
            calc.setObservations(source, target)
            return float(calc.computeAverageLocalOfObservations())
        return call

    return Workload(
        "W10", f"transfer_entropy_ksg k=4 histories 1 n={n:,}", make,
        Implementation("fastinfo.transfer_entropy_ksg",
                       lambda d, t: _fastinfo_call("transfer_entropy_ksg", d["source"], d["target"], k=4)),
        [Implementation("JIDT TransferEntropyCalculatorKraskov", jidt_factory)],
        tolerance=1e-6, repeats_kind=1,  # JIDT's digamma is exact to ~1e-10 here
    )


def _w10_test(n, n_permutations):
    def make():
        source, target = coupled_autoregressive(n, _rng("W10-test"), c=0.05, sigma=1.0)
        return {"source": source, "target": target}

    return Workload(
        "W10", f"transfer_entropy_test {n_permutations} permutations n={n:,}", make,
        Implementation("fastinfo.transfer_entropy_test",
                       lambda d, t: _fastinfo_call("transfer_entropy_test", d["source"], d["target"], k=4,
                                                   n_permutations=n_permutations, random_state=0)),
        [], repeats_kind=1, variant="test",
    )


def _w11(n):
    def make():
        rng = _rng("W11")
        z = rng.standard_normal((n, 2))
        x = z[:, 0] + rng.standard_normal(n)
        y = z[:, 1] + 0.5 * x + rng.standard_normal(n)
        return {"x": x, "y": y, "z": z}

    def jidt_factory(d, threads):
        jpype, kraskov = _import_jidt()
        calc = _jidt_calculator(kraskov.ConditionalMutualInfoCalculatorMultiVariateKraskov1, threads, k=4)
        matrix = jpype.JArray(jpype.JDouble, 2)
        x, y, z = matrix(d["x"][:, None]), matrix(d["y"][:, None]), matrix(d["z"])

        def call():
            calc.initialise(1, 1, 2)
            calc.setObservations(x, y, z)
            return float(calc.computeAverageLocalOfObservations())
        return call

    return Workload(
        "W11", f"conditional_mutual_info_ksg (1, 1 | 2) k=4 n={n:,}", make,
        Implementation("fastinfo.conditional_mutual_info_ksg",
                       lambda d, t: _fastinfo_call("conditional_mutual_info_ksg", d["x"], d["y"], d["z"], k=4)),
        [Implementation("JIDT ConditionalMutualInfoCalculatorMultiVariateKraskov1", jidt_factory)],
        tolerance=1e-6, repeats_kind=1,
    )


def _w12(n):
    def make():
        _, target = coupled_autoregressive(n, _rng("W12"))
        return {"x": target}

    def jidt_factory(d, threads):
        jpype, kraskov = _import_jidt()
        # JIDT's AIS defaults to KSG algorithm 2; the contract's (and W12's) is algorithm 1
        calc = _jidt_calculator(kraskov.ActiveInfoStorageCalculatorKraskov, threads, k=4, ALG_NUM=1)
        x = jpype.JArray(jpype.JDouble)(d["x"])

        def call():
            calc.initialise(5, 1)      # history 5, tau 1
            calc.setObservations(x)
            return float(calc.computeAverageLocalOfObservations())
        return call

    return Workload(
        "W12", f"active_information_storage_ksg history 5 k=4 n={n:,}", make,
        Implementation("fastinfo.active_information_storage_ksg",
                       lambda d, t: _fastinfo_call("active_information_storage_ksg", d["x"], k=4, history=5)),
        [Implementation("JIDT ActiveInfoStorageCalculatorKraskov", jidt_factory)],
        tolerance=1e-6, repeats_kind=1,
    )


def _scipy_dropin(key, title, make, name, peer_module, kwargs, bytes_moved, tolerance):
    """A SciPy drop-in row: ``fastinfo.scipy.<name>`` against ``<peer_module>.<name>``, same arguments."""
    def fastinfo_factory(d, threads):
        import fastinfo.scipy

        function = getattr(fastinfo.scipy, name)
        return lambda: function(d["x"], **kwargs)

    def scipy_factory(d, threads):
        import importlib

        function = getattr(importlib.import_module(peer_module), name)
        return lambda: function(d["x"], **kwargs)

    return Workload(key, title, make, Implementation(f"fastinfo.scipy.{name}", fastinfo_factory),
                    [Implementation(f"{peer_module}.{name}", scipy_factory)],
                    bytes_moved=bytes_moved, tolerance=tolerance)


def _s1(shape):
    return _scipy_dropin("S1", f"scipy drop-in logsumexp axis=-1 f32 {_shape(shape)}",
                         lambda: {"x": make_logits(shape, np.float32, _rng("S1"))}, "logsumexp", "scipy.special",
                         {"axis": -1}, lambda d: d["x"].nbytes + 4 * d["x"].shape[0], 1e-4)


def _s2(shape):
    return _scipy_dropin("S2", f"scipy drop-in log_softmax axis=-1 f32 {_shape(shape)}",
                         lambda: {"x": make_logits(shape, np.float32, _rng("S2"))}, "log_softmax", "scipy.special",
                         {"axis": -1}, lambda d: 2 * d["x"].nbytes, 1e-4)


def _s3(shape):
    return _scipy_dropin("S3", f"scipy drop-in entropy axis=1 f64 {_shape(shape)}",
                         lambda: {"x": make_probabilities(shape, np.float64, _rng("S3"))}, "entropy", "scipy.stats",
                         {"axis": 1}, lambda d: d["x"].nbytes + 8 * d["x"].shape[0], 1e-10)


def _s4(shape):
    return _scipy_dropin("S4", f"scipy drop-in logsumexp axis=None f64 n={shape[0]:,}",
                         lambda: {"x": _rng("S4").standard_normal(shape)}, "logsumexp", "scipy.special",
                         {}, lambda d: d["x"].nbytes, 1e-9)


def _available_dtypes(dtypes):
    """``dtypes`` without bfloat16 when ml_dtypes (NumPy's bfloat16) is not installed."""
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        return [d for d in dtypes if d != "bfloat16"]
    return list(dtypes)


def workloads(preset="full", dtypes=("float32", "float16", "bfloat16")):
    """The list of workloads for a size preset (``"full"``, ``"quick"`` or ``"tiny"``); W1-W3 for
    each of ``dtypes`` (float32, float64, float16, bfloat16), W4 in float64 and, when other dtypes
    are asked for, in each of them (float32 included, the half-precision rows' reference)."""
    dtypes = _available_dtypes(dtypes)
    w4_dtypes = ["float64"] + (["float32"] if any(d != "float64" for d in dtypes) else [])
    w4_dtypes += [d for d in dtypes if d in HALF_DTYPES]
    out = []
    for dtype in [d for d in dtypes if d != "float64"] or ["float32"]:
        out += [_w1(DENSE_SHAPES["W1"][preset], dtype), _w1_out(DENSE_SHAPES["W1"][preset], dtype)]
    for dtype in [d for d in dtypes if d != "float64"] or ["float32"]:
        out.append(_w2(DENSE_SHAPES["W2"][preset], dtype))
    for dtype in [d for d in dtypes if d != "float64"] or ["float32"]:
        out.append(_w3(DENSE_SHAPES["W3"][preset], dtype))
    out += [_w4(DENSE_SHAPES["W4"][preset], dtype) for dtype in w4_dtypes]
    out += [_w5(n) for n in KSG_1D_SIZES[preset]]
    out.append(_w6(KSG_4D_SIZE[preset]))
    out.append(_w7(FEATURES_SHAPE[preset]))
    out.append(_w7_dropin(FEATURES_SHAPE[preset]))
    out.append(_w7_dropin(DROPIN_LONG_SHAPE[preset]))
    out.append(_w8(LINEAR_SHAPES[preset]))
    out.append(_w8(LINEAR_SHAPES[preset], tokens=LINEAR_LONG_TOKENS[preset]))
    out.append(_w9(LINEAR_SHAPES[preset]))
    out += [_w10(DYNAMICS_SIZE[preset]), _w10_test(*TE_TEST_SIZE[preset]), _w11(DYNAMICS_SIZE[preset]),
            _w12(DYNAMICS_SIZE[preset])]
    out += [_s1(DENSE_SHAPES["S1"][preset]), _s2(DENSE_SHAPES["S2"][preset]), _s3(DENSE_SHAPES["S3"][preset]),
            _s4(DENSE_SHAPES["S4"][preset])]
    return out


# --------------------------------------------------------------------------- measurement


def _read_status_kib(field_name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise OSError(field_name)


def _hwm_available():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _read_status_kib("VmHWM")
        return True
    except OSError:
        return False


def _pin_glibc_mmap_threshold(nbytes=128 * 1024):
    """Make every large allocation a fresh mapping that is returned to the OS when freed.

    glibc raises its mmap threshold (up to 32 MiB) after a large block is freed, and later blocks
    then reuse heap memory that is already resident, invisible to a resident-set measurement.
    Setting the threshold explicitly turns that adaptation off. Blocks above 32 MiB (every
    temporary of the full-size dense workloads) are mapped fresh either way, so timings there do
    not change. Returns whether it was applied.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        M_MMAP_THRESHOLD = -3
        return bool(libc.mallopt(M_MMAP_THRESHOLD, nbytes))
    except (OSError, AttributeError):
        return False


def _release_free_heap():
    """Return glibc's free heap pages (every arena) to the OS, so that a measured call cannot
    reuse memory that earlier calls left resident; False where malloc_trim is missing."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


class PeakMemory:
    """Peak extra resident memory of one call (see the module docstring for the method). With
    VmHWM, glibc's mmap threshold is pinned at the first measurement, for the rest of the
    process: time calls before measuring their peaks."""

    def __init__(self):
        self.method = "VmHWM" if _hwm_available() else None
        self._pin_pending = self.method == "VmHWM"
        if self.method is None:
            try:
                import psutil

                self._process = psutil.Process()
                self.method = "psutil-sampling"
            except ImportError:
                self.method = "unavailable"

    def _pin(self):
        if self._pin_pending:
            self._pin_pending = False
            if _pin_glibc_mmap_threshold():
                self.method += " (glibc mmap threshold pinned at 128 KiB, after the timings)"

    def measure(self, call):
        """Run ``call()`` once; return ``(result, peak extra bytes or None)``."""
        self._pin()
        if self.method.startswith("VmHWM"):
            gc.collect()
            _release_free_heap()
            before = _read_status_kib("VmRSS")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            result = call()
            return result, max(0, _read_status_kib("VmHWM") - before) * 1024
        if self.method == "psutil-sampling":
            before = self._process.memory_info().rss
            peak = [before]
            done = threading.Event()

            def sample():
                while not done.is_set():
                    peak[0] = max(peak[0], self._process.memory_info().rss)
                    time.sleep(0.0005)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                result = call()
            finally:
                done.set()
                sampler.join()
            peak[0] = max(peak[0], self._process.memory_info().rss)
            return result, peak[0] - before
        return call(), None


def memory_bandwidth(threads, nbytes=256 * 2**20, repeats=5):
    """The machine's memory bandwidth in GB/s at ``threads`` threads: ``(read, copy, method)``.

    read: bytes read per second by fastinfo's compiled read loop over ``nbytes``; copy: bytes
    read + written per second by its copy loop (streaming stores), ``nbytes`` each way; each the
    best of ``repeats``, every thread on one contiguous chunk. Without fastinfo's extension (the
    bench still runs the peers) NumPy's sum and ``np.copyto`` are timed instead, which
    understate both.
    """
    n = nbytes // 8
    src = np.ones(n)
    dst = np.zeros(n)
    try:
        from fastinfo import _kernels

        def read():
            return _kernels.memory_read(src, threads)

        def copy():
            _kernels.memory_copy(dst, src, threads)

        method = f"fastinfo's C loops, {threads} thread{'s' if threads != 1 else ''}"
    except ImportError:
        chunks = [(dst[lo:hi], src[lo:hi]) for lo, hi in _split(n, threads)]
        pool = ThreadPoolExecutor(threads)

        def read():
            return sum(pool.map(lambda c: float(c[1].sum()), chunks))

        def copy():
            list(pool.map(lambda c: np.copyto(c[0], c[1]), chunks))

        method = f"NumPy sum / np.copyto, {threads} threads (fastinfo not importable)"
    read()
    copy()  # first touch of dst
    best_read = best_copy = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        read()
        best_read = min(best_read, time.perf_counter() - start)
        start = time.perf_counter()
        copy()
        best_copy = min(best_copy, time.perf_counter() - start)
    return nbytes / best_read / 1e9, 2 * nbytes / best_copy / 1e9, method


def _split(n, parts):
    bounds = [n * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass
class Row:
    workload: str
    title: str
    peer: str
    fastinfo_impl: str
    status: str = "ok"  # ok | not installed | fastinfo error | peer error
    peer_min: float = None
    peer_median: float = None
    fastinfo_min: float = None
    fastinfo_median: float = None
    speedup: float = None
    fastinfo_gbps: float = None
    read_gbps: float = None
    copy_gbps: float = None
    floor_pct: float = None  # dense rows: compulsory bytes / fastinfo min / matching bandwidth, in %
    fastinfo_peak_extra_mib: float = None
    peer_peak_extra_mib: float = None
    max_abs_diff: float = None
    agrees: bool = None
    detail: str = ""
    dtype: str = None
    vs_float32: float = None  # fastinfo min / fastinfo's float32 min of the same workload (dense rows)
    variant: str = ""
    floor: bool = False  # the peer is the bare product (the floor of a fused workload), not compared


def _describe_error(exc):
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 120 else text[:117] + "..."


def run_workload(workload, threads, repeats, bandwidth, log):
    """bandwidth: ``(read GB/s, copy GB/s)`` measured in this run. The rows' peak memory is left
    empty: measure_peaks fills it, after every workload is timed."""
    # Time fastinfo and every installed peer of one workload, interleaved; return table rows.
    log(f"{workload.key}: {workload.title}: building data")
    data = workload.make_data()
    gc.collect()
    calls, rows, results, errors = {}, [], {}, {}

    impls = [workload.fastinfo] + list(workload.peers)
    for impl in impls:
        try:
            calls[impl.name] = impl.factory(data, threads)
        except ImportError as exc:
            errors[impl.name] = ("not installed", _describe_error(exc))
    # One untimed call each: warm-up, and the result for the agreement check.
    floors = {impl.name for impl in impls if impl.floor}
    for name in list(calls):
        try:
            result = calls[name]()
            results[name] = None if name in floors else _as_numpy(result)
            del result
        except Exception as exc:  # report, never crash: the other implementations still run
            errors[name] = ("error", _describe_error(exc))
            del calls[name]
    times = {name: [] for name in calls}
    order = list(calls)
    for r in range(repeats):
        # Rotate the order so no implementation always runs right after the same neighbour.
        shift = r % max(1, len(order))
        for name in order[shift:] + order[:shift]:
            gc.disable()  # as timeit does; arrays are freed by reference counting regardless
            try:
                start = time.perf_counter()
                result = calls[name]()
                times[name].append(time.perf_counter() - start)
            finally:
                gc.enable()
            del result
    fi = workload.fastinfo.name
    if not workload.peers:  # fastinfo alone: its time and peak memory
        row = Row(workload.key, workload.title, "(none: fastinfo alone)", fi, read_gbps=bandwidth[0],
                  copy_gbps=bandwidth[1], dtype=workload.dtype, variant=workload.variant)
        if fi in errors:
            row.status, row.detail = "fastinfo " + errors[fi][0], "fastinfo: " + errors[fi][1]
        else:
            row.fastinfo_min, row.fastinfo_median = min(times[fi]), statistics.median(times[fi])
        rows.append(row)
        log(f"  fastinfo alone: {row.status} fastinfo={_fmt_time(row.fastinfo_min)}")
    for peer in workload.peers:
        row = Row(workload.key, workload.title, peer.name, fi, read_gbps=bandwidth[0], copy_gbps=bandwidth[1],
                  dtype=workload.dtype, variant=workload.variant, floor=peer.floor)
        details = []
        if peer.name in errors:
            row.status = errors[peer.name][0]
            details.append(errors[peer.name][1])
        if fi in errors:
            if row.status == "ok":
                row.status = "fastinfo " + errors[fi][0]
            details.append("fastinfo: " + errors[fi][1])
        row.detail = "; ".join(details)
        if peer.name in times:
            row.peer_min, row.peer_median = min(times[peer.name]), statistics.median(times[peer.name])
        if fi in times:
            row.fastinfo_min, row.fastinfo_median = min(times[fi]), statistics.median(times[fi])
            if workload.bytes_moved is not None:
                row.fastinfo_gbps = workload.bytes_moved(data) / row.fastinfo_min / 1e9
                floor_gbps = row.copy_gbps if workload.floor == "copy" else row.read_gbps
                row.floor_pct = 100.0 * row.fastinfo_gbps / floor_gbps
        if row.peer_min is not None and row.fastinfo_min is not None and peer.floor:
            row.speedup = row.peer_min / row.fastinfo_min
            row.detail = "floor: computes only the logits product (speed-up = floor time / fastinfo time)"
        elif row.peer_min is not None and row.fastinfo_min is not None:
            row.speedup = row.peer_min / row.fastinfo_min
            a, b = results[fi], results[peer.name]
            if peer.clips_at_zero:
                a = np.maximum(a, 0.0)
            if a.shape == b.shape:
                with np.errstate(invalid="ignore"):
                    row.max_abs_diff = _max_abs_difference(a, b)
                row.agrees = bool(row.max_abs_diff <= workload.tolerance)  # False for NaN
            else:
                row.max_abs_diff, row.agrees = float("nan"), False
                row.detail = f"result shapes differ: {a.shape} vs {b.shape}"
        rows.append(row)
        log(f"  {peer.name}: {row.status} peer={_fmt_time(row.peer_min)} fastinfo={_fmt_time(row.fastinfo_min)}"
            f" max|diff|={row.max_abs_diff}")
    del data, calls, results
    gc.collect()
    return rows


def measure_peaks(workload, rows, threads, memory, log):
    """Fill the peak extra memory of ``rows`` (run_workload's rows of ``workload``): one call of
    each implementation that was timed, on freshly built data (see the module docstring)."""
    timed = {r.fastinfo_impl for r in rows if r.fastinfo_min is not None}
    timed |= {r.peer for r in rows if r.peer_min is not None}
    if not timed:
        return
    log(f"{workload.key}: {workload.title}: peak memory")
    data = workload.make_data()
    gc.collect()
    peaks = {}
    for impl in [workload.fastinfo] + list(workload.peers):
        if impl.name not in timed:
            continue
        try:
            call = impl.factory(data, threads)
            gc.collect()
            result, peak = memory.measure(call)
            peaks[impl.name] = _mib(peak)
            del result, call
        except Exception as exc:  # it ran in the timings: report, never crash
            log(f"  {impl.name}: peak memory not measured: {_describe_error(exc)}")
    for row in rows:
        if row.fastinfo_min is not None:
            row.fastinfo_peak_extra_mib = peaks.get(row.fastinfo_impl)
        if row.peer_min is not None:
            row.peer_peak_extra_mib = peaks.get(row.peer)
    del data
    gc.collect()


def _mib(nbytes):
    return None if nbytes is None else nbytes / 2**20


def add_float32_ratios(rows):
    """Set ``vs_float32`` of every dense row: its fastinfo time over the fastinfo time of the
    float32 row of the same workload and variant in this run (1.0 for that row itself)."""
    reference = {(r.workload, r.variant): r.fastinfo_min for r in rows
                 if r.dtype == "float32" and r.fastinfo_min is not None}
    for r in rows:
        base = reference.get((r.workload, r.variant))
        if r.dtype is not None and base and r.fastinfo_min is not None:
            r.vs_float32 = r.fastinfo_min / base
    return rows


# --------------------------------------------------------------------------- output


def _fmt_time(t):
    if t is None:
        return "-"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.1f} ms"
    return f"{t * 1e6:.0f} us"


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _cells(rows, verbose):
    header = ["workload", "peer", "peer min", "peer med", "fastinfo min", "fastinfo med", "speed-up",
              "vs f32", "fastinfo GB/s", "read GB/s", "copy GB/s", "% of floor", "peak MiB fastinfo",
              "peak MiB peer", "check"]
    if verbose:
        header.append("max |diff|")
    lines = []
    for r in rows:
        peer = r.peer if r.status == "ok" else f"{r.peer}: {r.status}"
        check = "floor" if r.floor else "-" if r.agrees is None else ("ok" if r.agrees else "DIFFERS")
        dense = r.workload in DENSE_SHAPES
        line = [f"{r.workload} {r.title}", peer, _fmt_time(r.peer_min), _fmt_time(r.peer_median),
                _fmt_time(r.fastinfo_min), _fmt_time(r.fastinfo_median),
                "-" if r.speedup is None else f"{r.speedup:.1f}x",
                "-" if r.vs_float32 is None else f"{r.vs_float32:.2f}x",
                _fmt(r.fastinfo_gbps, ".1f"), _fmt(r.read_gbps, ".1f") if dense else "-",
                _fmt(r.copy_gbps, ".1f") if dense else "-", _fmt(r.floor_pct, ".0f") if dense else "-",
                _fmt(r.fastinfo_peak_extra_mib, ".1f"), _fmt(r.peer_peak_extra_mib, ".1f"), check]
        if verbose:
            line.append(_fmt(r.max_abs_diff, ".2e"))
        lines.append(line)
    return header, lines


def format_table(rows, meta, verbose=False):
    header, lines = _cells(rows, verbose)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = io.StringIO()
    for key, value in meta.items():
        out.write(f"# {key}: {value}\n")
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for line in lines:
        out.write("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() + "\n")
    if verbose:
        for r in rows:
            if r.detail:
                out.write(f"# {r.workload} {r.peer}: {r.detail}\n")
    return out.getvalue()


def format_markdown(rows, meta, verbose=False):
    header, lines = _cells(rows, verbose)
    out = io.StringIO()
    out.write("| " + " | ".join(header) + " |\n")
    out.write("|" + "|".join("---" for _ in header) + "|\n")
    for line in lines:
        out.write("| " + " | ".join(str(x) for x in line) + " |\n")
    out.write("\n" + "\n".join(f"- {key}: {value}" for key, value in meta.items()) + "\n")
    return out.getvalue()


def format_csv(rows):
    out = io.StringIO()
    names = list(Row.__dataclass_fields__)
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in vars(r).items()})
    return out.getvalue()


def format_json(rows, meta):
    return json.dumps({"meta": meta, "rows": [vars(r) for r in rows]}, indent=2)


def _dense_clone():
    try:
        from fastinfo import _kernels

        return _kernels.dense_simd()
    except Exception as exc:  # the benchmark still runs the peers
        return f"unknown ({exc})"


def _versions():
    from importlib import metadata

    out = {}
    try:  # the fastinfo actually imported (a source tree on PYTHONPATH or an installation)
        import fastinfo

        out["fastinfo"] = f"{fastinfo.__version__} ({os.path.dirname(fastinfo.__file__)})"
    except Exception as exc:  # the benchmark still runs the peers
        out["fastinfo"] = f"import failed: {exc}"
    for name in ("numpy", "scipy", "torch", "scikit-learn", "ennemi"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# --------------------------------------------------------------------------- command line


def build_parser(prog="fastinfo bench"):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Time fastinfo against NumPy/SciPy, PyTorch, scikit-learn and ennemi on the "
                    "fixed workloads W1-W12 and S1-S4 (the SciPy drop-in), side by side in one process.")
    parser.add_argument("--threads", type=int, default=None,
                        help="thread limit for every library (threadpoolctl for OpenMP/BLAS, "
                             "torch.set_num_threads, ennemi max_threads); default: library defaults")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    size.add_argument("--tiny", action="store_true", help="smallest sizes, one repeat (for tests)")
    parser.add_argument("--only", default=None, help="comma-separated workloads, e.g. W1,W5")
    parser.add_argument("--dtypes", default="float32,float16,bfloat16",
                        help="comma-separated input dtypes of the dense workloads W1-W4 among float32, "
                             "float64, float16, bfloat16 (default: float32,float16,bfloat16; W4 always "
                             "runs its quoted float64; bfloat16 needs ml_dtypes)")
    parser.add_argument("--repeat", type=int, default=None, help="timed repeats per implementation")
    parser.add_argument("--format", choices=("table", "markdown", "json", "csv"), default="table")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="progress on stderr, the max abs difference of every peer's result, details")
    return parser


def main(argv=None):
    """Entry point of ``fastinfo bench`` and ``asv_bench/compare.py``; returns the exit status."""
    args = build_parser().parse_args(argv)
    preset = "tiny" if args.tiny else "quick" if args.quick else "full"
    if args.threads is not None and args.threads < 1:
        print("--threads must be >= 1", file=sys.stderr)
        return 2
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    unknown_dtypes = set(dtypes) - set(DENSE_DTYPES)
    if unknown_dtypes or not dtypes:
        print(f"--dtypes: unknown dtype(s) {sorted(unknown_dtypes)}; choose from {', '.join(DENSE_DTYPES)}",
              file=sys.stderr)
        return 2
    selected = workloads(preset, dtypes)
    if args.only:
        wanted = {w.strip().upper() for w in args.only.split(",") if w.strip()}
        unknown = wanted - {w.key for w in selected}
        if unknown:
            print(f"--only: unknown workload(s) {sorted(unknown)}; choose from W1..W9, S1..S4", file=sys.stderr)
            return 2
        selected = [w for w in selected if w.key in wanted]

    def log(message):
        if args.verbose:
            print(message, file=sys.stderr, flush=True)

    limits = contextlib.nullcontext()
    if args.threads is not None:
        try:
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(limits=args.threads)
        except ImportError:
            os.environ["OMP_NUM_THREADS"] = str(args.threads)  # too late for loaded runtimes; best effort
            log("threadpoolctl is not installed: --threads only reaches torch and ennemi")

    memory = PeakMemory()
    rows = []
    with limits:
        n_threads = args.threads or os.cpu_count() or 1
        read_n, copy_n, bandwidth_method = memory_bandwidth(
            n_threads, nbytes=(32 if preset == "tiny" else 256) * 2**20)
        by_workload = []
        for workload in selected:
            repeats = args.repeat or REPEATS[preset][workload.repeats_kind]
            by_workload.append((workload, run_workload(workload, args.threads, repeats, (read_n, copy_n), log)))
        # peaks after every timing: measuring them pins glibc's mmap threshold for the process
        for workload, workload_rows in by_workload:
            measure_peaks(workload, workload_rows, args.threads, memory, log)
            rows += workload_rows
    add_float32_ratios(rows)
    meta = {
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} logical cores".strip(),
        "python": sys.version.split()[0],
        "versions": ", ".join(f"{k} {v}" for k, v in _versions().items()),
        "threads": args.threads if args.threads is not None else f"library defaults ({os.cpu_count()} cores)",
        "sizes": preset,
        "memory bandwidth GB/s": f"read {read_n:.1f}, copy {copy_n:.1f} (read + write) ({bandwidth_method})",
        "% of floor": "compulsory bytes / fastinfo min / bandwidth (copy for W1, read for W2-W4)",
        "dense kernels": _dense_clone(),
        "peak memory method": memory.method,
        "times": "min and median of repeats, interleaved in one process; speed-up = peer min / fastinfo min; "
                 "vs f32 = fastinfo min / fastinfo's float32 min of the same workload",
    }
    if args.format == "json":
        print(format_json(rows, meta))
    elif args.format == "markdown":
        print(format_markdown(rows, meta, args.verbose), end="")
    elif args.format == "csv":
        print(format_csv(rows), end="")
    else:
        print(format_table(rows, meta, args.verbose), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

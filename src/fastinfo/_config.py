"""Version and build configuration (``fastinfo.show_config``)."""
import os
import platform
import sys
from importlib import metadata

from . import _kernels

try:
    __version__ = metadata.version("fastinfo")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"


def config():
    """Build and runtime configuration as a dict (what :func:`show_config` prints)."""
    return {
        "fastinfo": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": _module_version("numpy"),
        "scipy": _module_version("scipy"),
        "compiler": _kernels.compiler(),
        "openmp": _kernels.openmp_enabled(),
        "default_threads": _kernels.max_threads(),
        "simd": _simd(),
    }


def _simd():
    """The clone of the dense kernels in use, how it was chosen, and the best one this CPU has."""
    text = f"{_kernels.dense_simd()}; runtime dispatch"
    requested = os.environ.get("FASTINFO_ISA", "").strip()
    if requested:
        text += f", FASTINFO_ISA={requested}"
    if _kernels.dense_isa() != _kernels.cpu_isa():
        text += f" (the CPU runs {_kernels.cpu_isa()})"
    return text


def show_config():
    """Print fastinfo's version, the compiler, whether OpenMP is enabled and the default thread count.

    Also the Python, NumPy and SciPy versions, the platform, and the clone of the vectorised
    softmax and distribution kernels in use (``simd``): x86-64-v4 (AVX-512, 16 float / 8 double
    lanes), x86-64-v3 (AVX2, 8 / 4) or the portable baseline, the best this CPU runs unless the
    environment variable ``FASTINFO_ISA`` (``avx512``, ``avx2`` or ``baseline``, read at import)
    asks for a lower one. ``default_threads`` is what OpenMP
    would use now, so it follows ``OMP_NUM_THREADS`` and ``threadpoolctl.threadpool_limits``.

    Examples
    --------
    >>> import fastinfo as fi
    >>> fi.show_config()  # doctest: +ELLIPSIS
    fastinfo ...
    """
    info = config()
    print(f"fastinfo {info['fastinfo']}")
    width = max(len(key) for key in info)
    for key, value in info.items():
        if key != "fastinfo":
            print(f"  {key:<{width}} : {value}")


def _module_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"

"""Build the single compiled extension ``fastinfo._kernels``.

OpenMP is used when the compiler can build, link and run a tiny OpenMP program;
otherwise the extension is built serial with a warning (never a failed install).
``FASTINFO_OPENMP=0`` forces a serial build. ``FASTINFO_SANITIZE=1`` adds
AddressSanitizer and UndefinedBehaviorSanitizer instrumentation. Link-time optimisation
(``-flto``, partitions compiled in parallel) is used when the compiler supports it;
``FASTINFO_LTO=0`` builds without it.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

OPENMP_TEST = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d\n", n > 0);
    return 0;
}
"""


def _compiler():
    return os.environ.get("CC") or sysconfig.get_config_var("CC").split()[0] or "cc"


def openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or ([], []) if it does not work."""
    if os.environ.get("FASTINFO_OPENMP", "1").strip().lower() in ("0", "false", "no", "off"):
        print("fastinfo: FASTINFO_OPENMP=0, building the serial extension", file=sys.stderr)
        return [], []
    flags = ["-fopenmp"]
    tmp = tempfile.mkdtemp(prefix="fastinfo-omp-")
    try:
        src = os.path.join(tmp, "omp_test.c")
        exe = os.path.join(tmp, "omp_test")
        with open(src, "w") as f:
            f.write(OPENMP_TEST)
        subprocess.run([_compiler(), *flags, src, "-o", exe], check=True, capture_output=True, timeout=120)
        out = subprocess.run([exe], check=True, capture_output=True, timeout=60).stdout.strip()
        if out != b"1":
            raise RuntimeError(f"unexpected output {out!r}")
        return flags, flags
    except Exception as exc:  # any failure means: build serial
        warnings.warn(f"fastinfo: OpenMP is not usable ({exc}); building a serial extension")
        return [], []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def lto_flags():
    """Return (compile_args, link_args) for a parallel link-time optimisation, or ([], []).

    The extension is one translation unit (5 MB of C); gcc spends most of its build in the back
    end, which runs on one core. With ``-flto`` the compile step stops after the early passes and
    the link (``-flto=auto``) splits the unit into partitions compiled on every core: 76 s instead
    of about 150 s on 2 cores, 70 s instead of 155 s for the sanitizer build. Used when a tiny
    shared object builds and links with these flags (gcc; not clang, which rejects ``-flto=auto``);
    ``FASTINFO_LTO=0`` turns it off."""
    if os.environ.get("FASTINFO_LTO", "1").strip().lower() in ("0", "false", "no", "off"):
        return [], []
    tmp = tempfile.mkdtemp(prefix="fastinfo-lto-")
    try:
        src = os.path.join(tmp, "lto_test.c")
        obj = os.path.join(tmp, "lto_test.o")
        lib = os.path.join(tmp, "lto_test.so")
        with open(src, "w") as f:
            f.write("static int twice(int x) { return 2 * x; }\nint fi_lto_probe(int x) { return twice(x) + 1; }\n")
        cc = _compiler()
        subprocess.run([cc, "-fPIC", "-O2", "-flto", "-c", src, "-o", obj], check=True, capture_output=True, timeout=120)
        subprocess.run([cc, "-shared", "-O2", "-flto=auto", obj, "-o", lib], check=True, capture_output=True, timeout=120)
        return ["-flto"], ["-flto=auto"]
    except Exception as exc:  # no LTO: the same extension, built on one core
        print(f"fastinfo: link-time optimisation not usable ({exc}); building without it", file=sys.stderr)
        return [], []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


omp_compile, omp_link = openmp_flags()
lto_compile, lto_link = lto_flags()
opt_args = ["-O3", "-fno-math-errno", "-fno-trapping-math"]
compile_args = [*opt_args, *omp_compile, *lto_compile]
# with LTO the link compiles the partitions: it gets the same optimisation flags
link_args = [*omp_link, *lto_link, *(opt_args if lto_link else [])]
if os.environ.get("FASTINFO_SANITIZE", "0") == "1":
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    # -g1: function names and line tables for the reports' stack traces, without the full debug
    # information of -g (which makes the 5 MB generated C take 245 s instead of 155 s to build)
    compile_args = [a for a in compile_args if a != "-O3"] + ["-O1", "-g1", *san]
    link_args = [a for a in link_args if a != "-O3"] + (["-O1", "-g1"] if lto_link else []) + san
elif os.environ.get("FASTINFO_NATIVE", "0") == "1":
    compile_args.append("-march=native")
    link_args.append("-march=native")

extensions = [
    Extension(
        "fastinfo._kernels",
        ["src/fastinfo/_kernels.pyx"],
        # the C kernels (csrc/*.h) and the Cython sections (*.pxi): a change to any rebuilds
        depends=sorted(glob("src/fastinfo/csrc/*.h") + glob("src/fastinfo/*.pxi")),
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
        },
    ),
)

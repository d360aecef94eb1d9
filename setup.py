"""Build the single compiled extension ``fastinfo._kernels``.

OpenMP is used when the compiler can build, link and run a tiny OpenMP program;
otherwise the extension is built serial with a warning (never a failed install).
``FASTINFO_OPENMP=0`` forces a serial build. ``FASTINFO_SANITIZE=1`` adds
AddressSanitizer and UndefinedBehaviorSanitizer instrumentation.
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


omp_compile, omp_link = openmp_flags()
compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math", *omp_compile]
link_args = [*omp_link]
if os.environ.get("FASTINFO_SANITIZE", "0") == "1":
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    compile_args = [a for a in compile_args if a != "-O3"] + ["-O1", "-g", *san]
    link_args += san
elif os.environ.get("FASTINFO_NATIVE", "0") == "1":
    compile_args.append("-march=native")

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

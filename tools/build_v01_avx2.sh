#!/bin/sh
# Build release 0.1 (357b275) for AVX2 only, to compare FASTINFO_ISA=avx2 with it
# (tools/dense_build_ab.py): a copy of the commit in DIR (default /tmp/fastinfo-v01-avx2), built in
# place with -march=x86-64-v3 -DFI_NO_CLONES. 0.1's distribution kernels (csrc/distributions.h)
# declared their own target_clones without looking at FI_NO_CLONES, so that build would still run
# their AVX-512 clone: the copy is patched to honour it.
set -eu
DIR=${1:-/tmp/fastinfo-v01-avx2}
REPO=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$DIR"
mkdir -p "$DIR"
git -C "$REPO" archive 357b275 | tar -x -C "$DIR"
cd "$DIR"
sed -i 's/^compile_args = \["-O3", \(.*\)\]$/compile_args = ["-O3", "-march=x86-64-v3", "-DFI_NO_CLONES", \1]/' setup.py
grep -q 'x86-64-v3' setup.py
sed -i 's/^#if defined(__GNUC__) \&\& !defined(__clang__) \&\& defined(__x86_64__) \&\& defined(__linux__) \&\& defined(__GLIBC__) \&\& (__GNUC__ >= 11)$/#if !defined(FI_NO_CLONES) \&\& defined(__GNUC__) \&\& !defined(__clang__) \&\& defined(__x86_64__) \&\& defined(__linux__) \&\& defined(__GLIBC__) \&\& (__GNUC__ >= 11)/' src/fastinfo/csrc/distributions.h
grep -q '!defined(FI_NO_CLONES) && defined(__GNUC__)' src/fastinfo/csrc/distributions.h
python setup.py build_ext --inplace -q
if nm "$DIR"/src/fastinfo/_kernels*.so | grep -q arch_x86_64_v4; then echo "an AVX-512 clone is still built" >&2; exit 1; fi
echo "$DIR/src"

#!/usr/bin/env bash
# Build DyNet 2.1.2 (the original C++ toolkit) into a separate venv, the benchmark peer.
#
# Usage: bash benchmarks/make_dynet_venv.sh [VENV_DIR]     (default: .venv-dynet in the repo root)
# Environment: PYTHON (default python3), JOBS (default 2), DYNET_SRC_DIR (scratch dir, default a temp dir).
#
# DyNet is built from its PyPI sdist with its own default flags (CMake Release with GCC:
# -funroll-loops -Ofast -march=native -DNDEBUG, plus -DEIGEN_FAST_MATH -fno-finite-math-only) against the system Eigen 3.4
# (Debian: apt-get install -y libeigen3-dev).  Its old build needs cython<3, numpy<2, setuptools<70 and,
# under CMake 4, CMAKE_POLICY_VERSION_MINIMUM=3.5.  `setup.py build` compiles libdynet.so (installed into the
# venv's lib/ by DyNet's own `make install`, where the extension's rpath points) and the Cython module; we
# copy the module files into the venv's site-packages ourselves because DyNet's wheel step fails on LICENSE.txt.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$here/.venv-dynet}"
python="${PYTHON:-python3}"
jobs="${JOBS:-2}"
eigen="${EIGEN3_INCLUDE_DIR:-/usr/include/eigen3}"

if [ ! -f "$eigen/Eigen/Core" ]; then
  echo "make_dynet_venv: Eigen 3.4 headers not found in $eigen;" \
       "install them (apt-get install -y libeigen3-dev) or set EIGEN3_INCLUDE_DIR" >&2
  exit 1
fi

"$python" -m venv "$venv"
venv="$(cd "$venv" && pwd)"
"$venv/bin/pip" install -q "cython<3" "numpy<2" "setuptools<70" wheel

src="${DYNET_SRC_DIR:-$(mktemp -d)}"
mkdir -p "$src"
"$venv/bin/pip" download -q --no-deps --no-binary :all: dynet==2.1.2 -d "$src"
tar xzf "$src"/dyNET-2.1.2.tar.gz -C "$src"
cd "$src/dyNET-2.1.2"

CMAKE_POLICY_VERSION_MINIMUM=3.5 EIGEN3_INCLUDE_DIR="$eigen" MAKE_FLAGS="-j$jobs" \
  "$venv/bin/python" setup.py build

site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
built="$(find build -name '_dynet*.so' -print -quit)"
if [ -z "$built" ]; then
  echo "make_dynet_venv: the build produced no _dynet*.so under $src/dyNET-2.1.2/build" >&2
  exit 1
fi
cp "$built" "$site/"
for f in dynet.py dynet_config.py dynet_viz.py; do
  found="$(find build -path '*python*' -name "$f" -print -quit)"
  [ -n "$found" ] && cp "$found" "$site/"
done
if [ ! -f "$venv/lib/libdynet.so" ]; then
  cp "$(find build -name 'libdynet.so' -print -quit)" "$venv/lib/"
fi
# The flags libdynet.so was compiled with (DyNet's CMakeLists sets them as plain variables, so the
# CMake cache does not hold them; the generated flags.make does).
grep -h '^CXX_FLAGS' "$(find build -path '*dynet.dir*' -name flags.make -print -quit)" \
  | sed 's/^CXX_FLAGS *= */CXX_FLAGS=/' > "$venv/dynet-build-flags.txt" || true
cd "$venv"
"$venv/bin/python" -c 'import dynet as dy; print("dynet", dy.__file__, "ok:", dy.inputVector([1.0, 2.0]).npvalue())'
echo "make_dynet_venv: DyNet 2.1.2 is ready in $venv"

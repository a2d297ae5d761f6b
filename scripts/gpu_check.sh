#!/usr/bin/env bash
# The cuda backend's check on a GPU machine (issue 8): one prepared run, results under $OUT.
#
#   bash scripts/gpu_check.sh prepare   # on a machine with network: fetch what the GPU machine lacks
#                                       # (cmeel-eigen to build, scipy to run) into .whl/ (git-ignored)
#   bash scripts/gpu_check.sh           # on the GPU machine, from the repo root, .whl/ carried along
#
# The GPU machine has Python 3.12 with CuPy, PyTorch, pybind11, scikit-build-core, pluggy, pytest and
# hypothesis, and no network.  The run:
#   1. prints nvidia-smi;
#   2. installs the carried wheels into a target folder on PYTHONPATH;
#   3. installs the project with --no-build-isolation --no-deps (if the cpu_eigen C++ build fails it
#      retries without CMake, so that the cuda check still runs; cpu_eigen then reports unavailable);
#   4. runs `python -m dynet_api backends`, `python -m dynet_api verify --backend cuda`,
#      `pytest tests/test_cuda.py` and `python -m benchmarks.run --dynet-backend cuda`.
# Every step runs under `timeout` inside a total budget (GPU_CHECK_BUDGET seconds, default 460), so
# the whole script ends within about 8 minutes; a step that no longer fits is reported as skipped.
# Files written to $OUT: gpu_check.log (everything), nvidia-smi.txt, backends.txt, verify.txt,
# verify.json, tests.txt, bench.txt.  The exit status is 0 only when every step passed.
set -u -o pipefail

PY=${PYTHON:-python3}
WHEELS=(cmeel-eigen==3.4.1 scipy==1.17.1)  # scipy: the reference kernels' special functions (~37 MB)

prepare() {
  local exclude
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p .whl "$(dirname "$exclude")"
  grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}"
  ls -la .whl
}

if [[ "${1:-}" == "prepare" ]]; then
  prepare
  exit $?
fi

OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

BUDGET=${GPU_CHECK_BUDGET:-460}
START=$SECONDS
RESULTS=()
FAILED=0

# step NAME MAX_SECONDS OUTFILE CMD...: run CMD under timeout (at most MAX_SECONDS, at most what is left
# of the budget), its output also in $OUT/OUTFILE ("-" for none).
step() {
  local name=$1 max=$2 file=$3
  shift 3
  local left=$((BUDGET - (SECONDS - START)))
  local t=$((left < max ? left : max))
  if ((t < 15)); then
    echo "== $name: skipped, the time budget is spent"
    RESULTS+=("$name: SKIPPED (time budget spent)")
    FAILED=1
    return 1
  fi
  echo "== $name (limit ${t}s): $*"
  local t0=$SECONDS rc
  if [[ "$file" == "-" ]]; then
    timeout -k 5 "$t" "$@"
    rc=$?
  else
    timeout -k 5 "$t" "$@" 2>&1 | tee "$OUT/$file"
    rc=${PIPESTATUS[0]}
  fi
  local status="rc=$rc"
  ((rc == 124 || rc == 137)) && status="TIMED OUT after ${t}s"
  RESULTS+=("$name: $status in $((SECONDS - t0))s")
  ((rc == 0)) || FAILED=1
  return "$rc"
}

# The whole run; its output also goes to $OUT/gpu_check.log.
main() {
echo "== gpu_check: $(date -u +%FT%TZ) on $(hostname), budget ${BUDGET}s"
{ nvidia-smi || echo "nvidia-smi failed (rc $?)"; } 2>&1 | tee "$OUT/nvidia-smi.txt"

if compgen -G ".whl/*.whl" >/dev/null; then
  echo "== carried wheels: $(ls .whl)"
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl; then
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "installing the carried wheels failed"
    FAILED=1
  fi
else
  echo "== no .whl/ folder: the C++ build will need its requirements already installed"
fi

if ! step install 240 - "$PY" -m pip install --no-build-isolation --no-deps --no-index .; then
  echo "== the full install failed: installing without the C++ (cpu_eigen) build"
  step install-without-cmake 90 - "$PY" -m pip install --no-build-isolation --no-deps --no-index \
    -C wheel.cmake=false . || {
    echo "== the project could not be installed: stopping"
    printf '  %s\n' "${RESULTS[@]}"
    return 1
  }
fi

"$PY" - <<'EOF'
import platform
print("python", platform.python_version())
for name in ("numpy", "cupy", "torch"):
    try:
        m = __import__(name)
        print(name, m.__version__)
    except Exception as e:  # report, do not stop: the steps below say what fails
        print(name, "not importable:", e)
try:
    import cupy
    rt = cupy.cuda.runtime
    props = rt.getDeviceProperties(0)
    print("GPU 0:", props["name"].decode(), "compute", cupy.cuda.Device(0).compute_capability,
          "CUDA runtime", rt.runtimeGetVersion(), "driver", rt.driverGetVersion())
except Exception as e:
    print("cupy cannot see a GPU:", e)
EOF

step backends 60 backends.txt "$PY" -m dynet_api backends
step verify 200 verify.txt "$PY" -m dynet_api verify --backend cuda --json "$OUT/verify.json"
step tests 150 tests.txt "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py
step bench 150 bench.txt "$PY" -m benchmarks.run --dynet-backend cuda --seconds 1.5 --rounds 2

echo "== summary ($((SECONDS - START))s)"
printf '  %s\n' "${RESULTS[@]}"
return "$FAILED"
}

main 2>&1 | tee -a "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"

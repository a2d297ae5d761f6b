#!/usr/bin/env bash
# The cuda backend on a real GPU (issue 18: verify, measure, fix): one prepared run, results in $OUT.
#
#   bash scripts/gpu_check.sh prepare   # on a machine with network: fetch what the GPU machine lacks
#                                       # (cmeel-eigen to build cpu_eigen, scipy-openblas32 for its BLAS)
#                                       # into .whl/ (git-ignored)
#   bash scripts/gpu_check.sh           # on the GPU machine, from the repo root, .whl/ carried along
#
# The GPU machine has Python 3.12 with CuPy (cupy-cuda13x), PyTorch with CUDA, numpy, scipy, pluggy,
# safetensors, pybind11, scikit-build-core, cmake, ninja, pytest and hypothesis, and no network.
# The run:
#   1. prints nvidia-smi and the versions;
#   2. installs the carried wheels into a target folder on PYTHONPATH, and the project editable
#      (--no-build-isolation --no-deps --no-index), so that `python -m benchmarks...` from the repo
#      root imports the built package, its C accelerator included;
#   3. checks: `python -m dynet_api verify --backend cuda` (every op forward and backward, random ops,
#      trainers dense and sparse, the autobatch section) and, at the same time (the host emulation
#      tests use the CPU), `pytest tests/test_cuda.py` without its test that repeats the same verify;
#   4. measures, GPU against GPU: `python -m benchmarks.run` (Tree-LSTM and LM, Adam, cuda and
#      cpu_eigen beside PyTorch on the same GPU), `python -m benchmarks.minibatch` (the Tree-LSTM at 64
#      trees per graph, autobatch on and off) and `python -m benchmarks.launches` (CUDA kernels
#      per update as CUPTI sees them, the project's kernel-call counts, GPU busy time, host share:
#      the four tasks one instance per graph with autobatch off and on, and the Tree-LSTM at 64
#      trees per graph with it on, with a cProfile of where the host's time goes).
# Every step runs under `timeout` inside a total budget (GPU_CHECK_BUDGET seconds, default 420); a
# step that no longer fits is reported as skipped.  CuPy's compiled kernels are kept in
# .cupy_cache/ (CUPY_CACHE_DIR) and packed into $OUT/cupy_cache.tgz: carried back as .cupy_cache/,
# a second run skips their compilation.
# Files written to $OUT (at most 8 come back from the device machine): gpu_check.log (everything,
# verify's and the tests' output included), verify.json, bench.txt, minibatch.txt, launches.txt,
# launches64.txt, cupy_cache.tgz.  The exit status is 0 only when every step passed.
# GPU_CHECK_SKIP="bench minibatch launches" leaves those steps out (a rerun after a fix);
# GPU_CHECK_UPDATES (default 2) and GPU_CHECK_CPROFILE (functions to list; default 0: none) are
# the launches step's --updates and --cprofile.
# GPU_CHECK_BACKEND / GPU_CHECK_TORCH_DEVICE (default cuda / cuda) let the script's flow be tried on
# a machine without a GPU (e.g. reference_numpy / cpu).
set -u -o pipefail

PY=${PYTHON:-python3}
WHEELS=(cmeel-eigen==3.4.1 scipy-openblas32==0.3.34.481.3)

prepare() {
  local exclude
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p .whl "$(dirname "$exclude")"
  for pat in /.whl/ /.cupy_cache/; do
    grep -qx "$pat" "$exclude" 2>/dev/null || echo "$pat" >>"$exclude"
  done
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
export CUPY_CACHE_DIR=$PWD/.cupy_cache
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
BACKEND=${GPU_CHECK_BACKEND:-cuda}
TDEV=${GPU_CHECK_TORCH_DEVICE:-cuda}

BUDGET=${GPU_CHECK_BUDGET:-420}
START=$SECONDS
RESULTS=()
FAILED=0

# limit MAX: at most MAX seconds, at most what is left of the budget (0: nothing left).
limit() {
  local left=$((BUDGET - (SECONDS - START)))
  local t=$((left < $1 ? left : $1))
  ((t < 15)) && t=0
  echo "$t"
}

# step NAME MAX_SECONDS OUTFILE CMD...: run CMD under timeout, its output also in $OUT/OUTFILE ("-":
# none); the result is recorded in RESULTS.
step() {
  local name=$1 t
  t=$(limit "$2")
  local file=$3
  shift 3
  if [[ " ${GPU_CHECK_SKIP:-} " == *" $name "* ]]; then
    echo "== $name: skipped (GPU_CHECK_SKIP)"
    return 0
  fi
  if ((t == 0)); then
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
    timeout -k 5 "$t" "$@" > >(tee "$OUT/$file") 2>&1
    rc=$?
  fi
  local status="rc=$rc"
  ((rc == 124 || rc == 137)) && status="TIMED OUT after ${t}s"
  RESULTS+=("$name: $status in $((SECONDS - t0))s")
  ((rc == 0)) || FAILED=1
  return "$rc"
}

main() {
echo "== gpu_check: $(date -u +%FT%TZ) on $(hostname), budget ${BUDGET}s, $(nproc) CPUs"
nvidia-smi || echo "nvidia-smi failed (rc $?)"

if compgen -G ".whl/*.whl" >/dev/null; then
  echo "== carried wheels: $(ls .whl)"
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl; then
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "installing the carried wheels failed"
    FAILED=1
  fi
else
  echo "== no .whl/ folder: the C++ build needs cmeel-eigen already installed"
fi
[[ -d .cupy_cache ]] && echo "== carried CuPy kernel cache: $(find .cupy_cache -type f | wc -l) files"

step install 200 - "$PY" -m pip install -q --no-build-isolation --no-deps --no-index \
  -Cbuild-dir=build/gpu -e . || {
  echo "== the project could not be installed: stopping"
  printf '  %s\n' "${RESULTS[@]}"
  return 1
}

"$PY" - <<'EOF'
import platform
print("python", platform.python_version())
for name in ("numpy", "scipy", "cupy", "torch"):
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
import dynet_api._fastgraph as fg  # the C accelerator must be the one running the benchmarks
print("dynet_api accelerator:", fg.__file__)
EOF
step backends 60 - "$PY" -m dynet_api backends

# verify (GPU) and the pytest file (mostly host emulation, CPU) side by side
local tv tt
tv=$(limit 200)
tt=$(limit 200)
if ((tv > 0)); then
  echo "== verify + tests side by side (limits ${tv}s / ${tt}s)"
  local t0=$SECONDS
  timeout -k 5 "$tv" "$PY" -m dynet_api verify --backend "$BACKEND" --json "$OUT/verify.json" >/tmp/verify.txt 2>&1 &
  local pv=$!
  timeout -k 5 "$tt" "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py \
    -k "not test_gpu_verify_passes_every_check" >/tmp/tests.txt 2>&1 &
  local pt=$!
  wait $pv; local rv=$?
  wait $pt; local rt=$?
  cat /tmp/verify.txt /tmp/tests.txt
  RESULTS+=("verify: rc=$rv" "tests: rc=$rt (both in $((SECONDS - t0))s)")
  ((rv == 0 && rt == 0)) || FAILED=1
else
  RESULTS+=("verify, tests: SKIPPED (time budget spent)")
  FAILED=1
fi

step bench 120 bench.txt "$PY" -m benchmarks.run --dynet-backend "$BACKEND,cpu_eigen" --torch-device "$TDEV" \
  --tasks treelstm rnnlm-batch --trainer adam --seconds 1.5 --rounds 2 --no-dynet
step minibatch 90 minibatch.txt "$PY" -m benchmarks.minibatch --dynet-backend "$BACKEND,cpu_eigen" \
  --torch-device "$TDEV" --tasks treelstm --minibatch 64 --autobatch 0,1 --seconds 1.5 --rounds 2 --no-dynet
step launches 100 launches.txt "$PY" -m benchmarks.launches --dynet-backend "$BACKEND" --torch-device "$TDEV" \
  --tasks treelstm rnnlm-batch bilstm-tagger bilstm-tagger-withchar --minibatch 0 --autobatch 0,1 \
  --updates "${GPU_CHECK_UPDATES:-3}" --cprofile "${GPU_CHECK_CPROFILE:-0}"
step launches64 60 launches64.txt "$PY" -m benchmarks.launches --dynet-backend "$BACKEND" --torch-device "$TDEV" \
  --tasks treelstm --minibatch 64 --autobatch 1 --updates "${GPU_CHECK_UPDATES:-3}" --cprofile 15

[[ -d .cupy_cache ]] && tar czf "$OUT/cupy_cache.tgz" .cupy_cache
echo "== summary ($((SECONDS - START))s)"
printf '  %s\n' "${RESULTS[@]}"
return "$FAILED"
}

main 2>&1 | tee -a "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"

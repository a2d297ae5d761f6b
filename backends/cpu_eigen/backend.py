"""CpuEigenBackend: tensors, kernels and trainer rules implemented in ``_cpu_eigen``.

Tensors are ``_cpu_eigen.Tensor`` objects (float32, column-major, batch last).
The per-op kernel tables serve the node-by-node executor and the conformance
suite; graphs normally run through :meth:`make_executor`, which executes whole
node ranges and the backward pass inside C++.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np

from dynet_api import config
from dynet_api.backend import Backend, BackendUnavailable
from dynet_api.config import parse_mem_mb
from dynet_api.dim import Dim
from dynet_api.ops import OP_LIST, OPS, kernels_by_name
from dynet_api.trainers import RULES

from . import _cpu_eigen as _m

F32 = np.float32


def _dim_of(t) -> Dim:
    s = tuple(t.shape)
    return Dim(s[:-1] or (1,), s[-1]) if len(s) > 1 else Dim(s or (1,))


def _check_call(name: str, xs, attrs, shape) -> None:
    """The op's shape rule on a single-op kernel call's operands; ``_cpu_eigen`` runs it before
    the kernel, so a call with inconsistent attributes or dims raises instead of reading out
    of bounds (the graph has checked its own nodes already)."""
    op = OPS[name]
    if op.leaf:
        return
    want = op.shape(op, [_dim_of(x) for x in xs], attrs)
    if want.shape != tuple(shape):
        raise ValueError(f"{name}: output shape {tuple(shape)} does not match the shape rule's {want.shape}")


_m.set_shape_check(_check_call)


def _scaled(t, f: float):
    """``t`` times the weight-decay factor ``f`` (``t`` itself when f is 1)."""
    if f == 1.0:
        return t
    out = _m.from_numpy(_m.to_numpy(t))
    _m.scale(out, float(f), None)
    return out


def _check_attr_names() -> None:
    """The kernels read attributes by name, compiled to places in the attribute tuple
    (csrc/op_attrs.h): a module built from another op table would read the wrong ones."""
    built = {name: tuple(names.split(",")) for name, names in _m.op_attr_names().items()}
    want = {op.name: op.attrs for op in OP_LIST if op.attrs}
    if built != want:
        differ = sorted(n for n in built.keys() | want.keys() if built.get(n) != want.get(n))
        raise BackendUnavailable(
            f"cpu_eigen was built from another op table (the attributes of {', '.join(differ)} differ): "
            "run `python scripts/gen_op_attrs.py`, then reinstall (pip install .)")


def _check_update_rules() -> None:
    """The rule kernels take their codes, state counts and hyper keys from the trainer records
    (csrc/update_rules_table.h): a module built from other records would misread them."""
    states, keys = _m.update_rule_table()
    want = {r.name: r.n_states for r in RULES.values()}
    want_keys = {k for r in RULES.values() for k in r.hyper_keys}
    if states != want or not want_keys <= set(keys):
        differ = sorted(n for n in states.keys() | want.keys() if states.get(n) != want.get(n))
        raise BackendUnavailable(
            f"cpu_eigen was built from other trainer records (rules {', '.join(differ) or '-'}, hyper keys "
            f"{', '.join(sorted(want_keys - set(keys))) or '-'} differ): run `python scripts/gen_update_rules.py`, "
            "then reinstall (pip install .)")


def _kernels():
    """Kernel tables keyed by op name, for the ops both the op table and the C++ side know."""
    fwd: dict = {}
    bwd: dict = {}
    for code, name in enumerate(_m.kernel_names()):
        if name not in OPS or name in ("input", "parameter", "lookup"):
            continue
        op = OPS[name]

        def f(xs, attrs, dim, code=code):
            return _m.fwd_op(code, xs, attrs, dim.shape)

        fwd[name] = f
        if _m.has_backward(code):

            def b(xs, y, dy, attrs, dim, i, op=op, code=code):
                if tuple(y.shape) != dim.shape or tuple(dy.shape) != dim.shape:
                    raise ValueError(f"{op.name}: y and dy must have the output's shape {dim.shape}")
                return _m.bwd_op(code, xs, y, dy, attrs, i)

            bwd[name] = b
    # The leaves' kernels are Python: they read their attributes by name like every Python kernel.
    fwd.update(kernels_by_name({
        "input": lambda xs, a, dim: _m.from_numpy(np.asarray(a.data, F32).reshape(dim.shape)),
        # the weights: the stored values times the collection's weight-decay factor
        "parameter": lambda xs, a, dim: _scaled(a.storage.value, a.storage.wscale.factor),
        "lookup": lambda xs, a, dim: _scaled(_m.gather_batch(a.storage.value, a.indices), a.storage.wscale.factor),
    }))
    return fwd, bwd


def load_fast_gemm() -> str:
    """Route large matrix products through the AVX2+FMA build when this CPU has both.

    ``DYNET_CPU_EIGEN_ISA=baseline`` keeps the baseline build.  Returns the instruction set in use.
    """
    if os.environ.get("DYNET_CPU_EIGEN_ISA") != "baseline" and _m.cpu_has_avx2_fma():
        try:
            from . import _gemm_avx2
        except ImportError:
            pass
        else:
            _m.use_fast_gemm(_gemm_avx2.sgemm_acc, _gemm_avx2.set_threads)
            return "avx2+fma"
    _m.use_fast_gemm(None, None)
    return "baseline"


def load_blas() -> str:
    """Route the largest matrix products through OpenBLAS (the scipy-openblas32 wheel) when installed.

    Its SGEMM picks AVX-512 kernels on CPUs that have them (the Eigen builds stop at AVX2).
    ``DYNET_CPU_EIGEN_BLAS=0`` keeps every product on Eigen.  Returns the library's
    configuration line, or "" when products stay on Eigen.
    """
    _m.unuse_blas()
    if os.environ.get("DYNET_CPU_EIGEN_BLAS", "1") == "0":
        return ""
    try:
        import scipy_openblas32 as sob
    except ImportError:
        return ""
    path = os.path.join(sob.get_lib_dir(), sob.get_library(fullname=True))
    why = _m.use_blas(path, "scipy_")
    if why:
        warnings.warn(f"cpu_eigen: OpenBLAS not used ({why}); matrix products stay on Eigen", stacklevel=2)
        return ""
    return _m.blas()


class CpuEigenBackend(Backend):
    name = "cpu_eigen"
    batches_itself = True  # its C++ executor groups nodes (csrc/executor.cpp, csrc/autobatch_core.h)
    autobatch_default = True  # batching of products never loses (benchmarks/README.md)
    devices = ("CPU",)
    dtype = F32

    def __init__(self) -> None:
        _check_attr_names()
        _check_update_rules()
        self.forward_kernels, self.backward_kernels = _kernels()
        # Ops of the table with no C++ kernel yet: graph construction rejects them cleanly.
        self.unsupported = {name: "no C++ kernel yet" for name in OPS if name not in self.forward_kernels}
        self.gemm_isa = load_fast_gemm()
        self.blas = load_blas()
        self.configure()

    def configure(self) -> None:
        """Apply the ``threads`` and ``mem`` settings (``--dynet-threads``, ``--dynet-mem``)."""
        threads = int(config.settings.get("threads") or 1)
        if threads < 1:
            raise ValueError(f"threads: must be at least 1, got {threads}")
        _m.set_threads(threads)
        _m.set_mem_limit(parse_mem_mb(config.settings.get("mem")))

    def set_autobatch(self, strategy: int) -> None:
        # The C++ executor groups nodes as the front end's scheduler does (csrc/autobatch_core.h: 1
        # DyNet's agenda, 2 level by level) and runs each group as one kernel call; results equal
        # the unbatched executor's up to float32 rounding.
        _m.set_autobatch(int(strategy))

    # --- tensors
    def from_numpy(self, a):
        return _m.from_numpy(np.asarray(a))

    def to_numpy(self, t):
        if isinstance(t, _m.Tensor):
            return _m.to_numpy(t)
        return np.array(t, dtype=F32)

    def zeros(self, shape):
        return _m.zeros(list(shape))

    def ones(self, shape):
        return _m.full(list(shape), 1.0)

    def add(self, a, b):
        return _m.add(a, b)

    # --- parameter storage
    def iadd(self, dst, src):
        _m.iadd(dst, src)

    def assign(self, dst, a):
        _m.assign(dst, np.asarray(a))

    def fill(self, dst, value):
        _m.fill(dst, float(value))

    def clear_rows(self, dst, rows):
        _m.clear_rows(dst, list(rows))

    def scale(self, dst, s, rows=None):
        _m.scale(dst, float(s), None if rows is None else list(rows))

    def clip(self, dst, left, right):
        _m.clip(dst, float(left), float(right))

    def gather_batch(self, table, rows):
        return _m.gather_batch(table, list(rows))

    def scatter_add_batch(self, dst, rows, src):
        _m.scatter_add_batch(dst, list(rows), src)

    def sq_norm(self, t, rows=None):
        return _m.sq_norm(t, None if rows is None else list(rows))

    def sq_norm_all(self, parts) -> float:
        return _m.sq_norm_all(parts if type(parts) is list else list(parts))

    def update(self, rule: str, w, g, states: list, rows: Sequence[int] | None, hyper: dict) -> None:
        _m.update(rule, w, g, list(states), None if rows is None else list(rows), hyper)

    def update_all(self, rule: str, items, hyper: dict) -> None:
        # one call for every parameter; each gradient is zeroed in the pass that steps it
        _m.update_all(rule, items if type(items) is list else list(items), hyper)

    # a whole Trainer.update() in one C++ call (csrc/trainer_step.cpp), when it can
    trainer_step = staticmethod(_m.trainer_step)

    def seed(self, seed: int) -> None:
        _m.seed(int(seed) & 0xFFFFFFFF)

    # --- whole graphs
    def make_executor(self, graph):
        self.configure()
        _m.set_profiling(bool(int(config.settings.get("profiling") or 0)))  # time kernel calls (--dynet-profiling)
        return _m.Executor(graph)

    def kernel_counts(self) -> dict:
        """The executor's kernel calls per op, ``{name: (nodes, calls, seconds)}`` (see dynet_api.profiling)."""
        return _m.kernel_counts()

    def reset_kernel_counts(self) -> None:
        _m.reset_kernel_counts()

"""What the cuda backend's op code runs on: an array module plus kernel tables.

:class:`Device` is the small interface the op kernels (:mod:`.opkernels`, the
reference's kernel set) and the trainer rules (:mod:`.updates`) are built over:
``xp`` (an array module with NumPy's API), ``special`` (its special functions),
``ew`` / ``red`` / ``raw`` (the ElementwiseKernels, ReductionKernels and
RawKernels by name), index arrays and random numbers.
:class:`CupyDevice` is the real one; :mod:`.hostemu` provides the same
interface over NumPy and the same CUDA C compiled for the CPU, for tests on
machines without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np

from dynet_api.backend import BackendUnavailable

from . import cusrc
from .ewspec import ELEMENTWISE, REDUCTIONS

INSTALL_HINT = "cupy is not installed (pip install 'dynet_api[cuda]')"

# C parameter types of the RawKernels -> the NumPy types their arguments must have.
ARG_DTYPES = {"float": np.float32, "double": np.float64, "int": np.int32, "long long": np.int64}


class Device:
    """Base of the devices: index-array cache and argument checks shared by both."""

    name = "?"
    xp: Any = None
    special: Any = None  # scipy.special's interface: erf, gammaln, digamma
    ew: dict[str, Callable] = {}
    red: dict[str, Callable] = {}
    raw: dict[str, Callable] = {}
    _INDEX_CACHE_MAX = 4096

    def __init__(self) -> None:
        self._index_cache: dict[tuple, Any] = {}

    def index(self, seq: Sequence[int]) -> Any:
        """An int32 index array on the device; repeated index tuples (an op's attributes) are sent once."""
        key = tuple(seq)
        a = self._index_cache.get(key)
        if a is None:
            if len(self._index_cache) >= self._INDEX_CACHE_MAX:
                self._index_cache.clear()
            a = self.xp.asarray(np.asarray(key, dtype=np.int32))
            self._index_cache[key] = a
        return a

    # Random numbers (float32 unless said otherwise).
    def seed(self, seed: int) -> None:
        raise NotImplementedError

    def normal(self, mean: float, std: float, shape: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def uniform(self, low: float, high: float, shape: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def uniform64(self, shape: tuple[int, ...]) -> Any:
        """U[0, 1) samples in float64 (Gumbel noise needs the precision near 0 and 1)."""
        raise NotImplementedError

    def asnumpy(self, a: Any) -> np.ndarray:
        raise NotImplementedError


@cache
def _arg_spec(sig: cusrc.KernelSig) -> tuple:
    """Per parameter: (is a pointer, the NumPy dtype or scalar type it takes, its name), worked out
    once per kernel (each launch checks its arguments against it)."""
    return tuple((p.pointer, np.dtype(ARG_DTYPES[p.ctype]) if p.pointer else ARG_DTYPES[p.ctype], p.name)
                 for p in sig.params)


def check_raw_args(sig: cusrc.KernelSig, args: tuple, is_array: Callable[[Any], bool]) -> list:
    """Validate and convert a RawKernel's arguments against its C signature."""
    spec = _arg_spec(sig)
    if len(args) != len(spec):
        raise TypeError(f"cuda kernel {sig.name}: {len(args)} arguments for {len(spec)} parameters")
    out = []
    for (pointer, want, name), a in zip(spec, args):
        if pointer:
            if not is_array(a):
                raise TypeError(f"cuda kernel {sig.name}: parameter {name} needs an array, got {type(a).__name__}")
            if a.dtype != want:
                raise TypeError(f"cuda kernel {sig.name}: parameter {name} needs {want}, got {a.dtype}")
            if not a.flags.c_contiguous:
                raise ValueError(f"cuda kernel {sig.name}: parameter {name} must be C-contiguous")
            out.append(a)
        else:
            out.append(want(a))
    return out


class _RawCall:
    """``k(grid, block, *args)`` for one kernel of a CuPy RawModule (compiled on first use)."""

    def __init__(self, module, sig: cusrc.KernelSig, cupy) -> None:
        self.module, self.sig, self.cupy = module, sig, cupy
        self.fn = None

    def __call__(self, grid: int, block: int, *args) -> None:
        conv = check_raw_args(self.sig, args, lambda a: isinstance(a, self.cupy.ndarray))
        if self.fn is None:
            self.fn = self.module.get_function(self.sig.name)
        self.fn((int(grid),), (int(block),), tuple(conv))


class CupyDevice(Device):
    """CuPy on the current CUDA device: NVRTC-compiled kernels, cuBLAS products, CuPy's generator."""

    name = "cupy"

    def __init__(self, cupy) -> None:
        super().__init__()
        import cupyx.scipy.special

        self.xp = cupy
        self.special = cupyx.scipy.special
        pre = cusrc.elementwise_preamble()
        self.ew = {n: cupy.ElementwiseKernel(s.ins, s.outs, s.op, f"dn_{n}", preamble=pre)
                   for n, s in ELEMENTWISE.items()}
        self.red = {n: cupy.ReductionKernel(s.ins, s.outs, s.map, s.reduce, s.post, s.identity, f"dn_{n}",
                                            reduce_type=s.rtype, preamble=pre)
                    for n, s in REDUCTIONS.items()}
        src = cusrc.raw_module_source()
        module = cupy.RawModule(code=src)
        self.raw = {s.name: _RawCall(module, s, cupy) for s in cusrc.kernel_signatures(src)}
        self._seed: int | None = None
        self._rs = None  # cuRAND generator, made on first use

    @property
    def rs(self):
        if self._rs is None:
            self._rs = self.xp.random.RandomState(self._seed)
        return self._rs

    def seed(self, seed: int) -> None:
        self._seed = int(seed) % (2**63)
        self._rs = None

    def normal(self, mean, std, shape):
        return self.rs.normal(mean, std, shape, dtype=np.float32)

    def uniform(self, low, high, shape):
        return self.rs.uniform(low, high, shape, dtype=np.float32)

    def uniform64(self, shape):
        return self.rs.random_sample(shape, dtype=np.float64)

    def asnumpy(self, a):
        return self.xp.asnumpy(a)


def _why(e: BaseException) -> str:
    """An exception as one short line (CuPy's errors can span lines), for the backends table."""
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= 300 else text[:297] + "..."


def open_cupy() -> tuple[CupyDevice, tuple[str, ...]]:
    """The CuPy device and the names of the visible GPUs, or BackendUnavailable saying why not."""
    try:
        import cupy
    except ImportError:
        raise BackendUnavailable(INSTALL_HINT) from None
    except Exception as e:  # a broken install (missing CUDA libraries...) must not break discovery
        raise BackendUnavailable(f"cupy cannot be imported: {_why(e)}") from None
    try:
        n = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as e:
        raise BackendUnavailable(f"no CUDA device: {_why(e)}") from None
    if n < 1:
        raise BackendUnavailable("no CUDA device: the CUDA runtime sees 0 devices")
    try:  # one tiny kernel: the driver, NVRTC and the allocator all work
        probe = float((cupy.arange(4, dtype=cupy.float32) * 2).sum())
    except Exception as e:
        raise BackendUnavailable(f"CUDA device present but CuPy cannot run kernels: {_why(e)}") from None
    if probe != 12.0:
        raise BackendUnavailable(f"CUDA device present but a probe kernel computed {probe} instead of 12")
    return CupyDevice(cupy), tuple(f"GPU:{k}" for k in range(n))

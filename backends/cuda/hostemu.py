"""The cuda backend's device emulated on the CPU, for tests on machines without a GPU.

:class:`HostDevice` has the interface of :class:`.device.CupyDevice` with
NumPy as the array module and scipy.special as its special functions (so the
reference's kernel set runs on it as it runs on CuPy), and with every CUDA C
kernel of the backend (the RawKernels in ``kernels/*.cu`` and the rendered
ElementwiseKernels and ReductionKernels) compiled as C++ by the host compiler
and called through ctypes.  Blocks run one after another with one thread each, which every
kernel supports.  So the CPU-side tests run the backend's own op code and its
own CUDA C arithmetic; what they cannot check is CuPy's kernel launching and
the warp-level parts (shuffles, atomics between threads).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from math import prod
from pathlib import Path

import numpy as np
import scipy.special

from . import cusrc
from .device import Device, check_raw_args
from .ewspec import ELEMENTWISE, REDUCTIONS, params

_CTYPES = {"float": ctypes.c_float, "double": ctypes.c_double, "int": ctypes.c_int, "long long": ctypes.c_longlong}


def find_cxx() -> str | None:
    """The host C++ compiler: $CXX, else c++ / g++ / clang++ on the PATH."""
    for c in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if c and shutil.which(c):
            return shutil.which(c)
    return None


def host_source() -> str:
    """The translation unit the host compiler builds: every kernel plus a launcher for each."""
    spec = cusrc.render_spec_kernels()
    raw = "".join(f'#include "{p.name}"\n' for p in cusrc.raw_files())
    sigs = cusrc.kernel_signatures(spec) + cusrc.kernel_signatures(cusrc.raw_module_source())
    return '#include "host_emulation.h"\n' + spec + "\n" + raw + "\n" + cusrc.render_host_launchers(sigs)


def build_library(cxx: str | None = None, build_dir: str | os.PathLike | None = None) -> Path:
    """Compile the host translation unit (cached by its text and the kernel sources)."""
    cxx = cxx or find_cxx()
    if cxx is None:
        raise RuntimeError("hostemu: no C++ compiler found (set CXX)")
    src = host_source()
    h = hashlib.sha256(src.encode())
    for p in sorted(cusrc.KERNEL_DIR.iterdir()):
        h.update(p.name.encode() + p.read_bytes())
    h.update(cxx.encode())
    d = Path(build_dir or tempfile.gettempdir()) / "dynet_cuda_hostemu"
    d.mkdir(parents=True, exist_ok=True)
    lib = d / f"kernels_{h.hexdigest()[:16]}.so"
    if lib.exists():
        return lib
    tu = d / f"kernels_{h.hexdigest()[:16]}.cpp"
    tu.write_text(src)
    tmp = lib.with_suffix(f".{os.getpid()}.tmp")
    cmd = [cxx, "-x", "c++", "-std=c++17", "-O1", "-shared", "-fPIC", "-I", str(cusrc.KERNEL_DIR),
           "-o", str(tmp), str(tu)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"hostemu: {' '.join(cmd)} failed:\n{r.stderr[-4000:]}")
    os.replace(tmp, lib)
    return lib


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


class _Launcher:
    """``k(grid, block, *args)``: runs a kernel's ``grid`` blocks on the host; ``block`` is ignored (one thread)."""

    def __init__(self, lib, sig: cusrc.KernelSig) -> None:
        self.sig = sig
        self.fn = getattr(lib, f"dn_launch_{sig.name}")
        self.fn.argtypes = [ctypes.c_longlong] + [ctypes.c_void_p if p.pointer else _CTYPES[p.ctype]
                                                   for p in sig.params]
        self.fn.restype = None

    def __call__(self, grid: int, block: int, *args) -> None:
        conv = check_raw_args(self.sig, args, lambda a: isinstance(a, np.ndarray))
        if grid < 1 or block < 1:
            raise ValueError(f"cuda kernel {self.sig.name}: empty launch ({grid} blocks of {block})")
        self.fn(int(grid), *[_ptr(a) if p.pointer else a for p, a in zip(self.sig.params, conv, strict=True)])


def _inputs(name: str, ps, args, shape) -> list[np.ndarray]:
    out = []
    for (t, pname), a in zip(ps, args, strict=True):
        dt = np.dtype(t)
        if isinstance(a, np.ndarray):
            if a.dtype != dt:
                raise TypeError(f"kernel dn_{name}: input {pname} is {a.dtype}, the kernel takes {dt}")
            out.append(np.ascontiguousarray(np.broadcast_to(a, shape)))
        else:
            out.append(np.full(shape, a, dt))
    return out


class _Elementwise:
    """CuPy's ElementwiseKernel call convention: broadcast inputs, optional output arrays written in place."""

    def __init__(self, name: str, launcher: _Launcher) -> None:
        spec = ELEMENTWISE[name]
        self.name, self.ins, self.outs, self.launch = name, params(spec.ins), params(spec.outs), launcher

    def __call__(self, *args):
        nin, nout = len(self.ins), len(self.outs)
        if len(args) not in (nin, nin + nout):
            raise TypeError(f"kernel dn_{self.name}: {len(args)} arguments; takes {nin} inputs (+ {nout} outputs)")
        shapes = [a.shape for a in args if isinstance(a, np.ndarray)]
        if not shapes:
            raise TypeError(f"kernel dn_{self.name}: needs at least one array argument")
        shape = np.broadcast_shapes(*shapes)
        ins = _inputs(self.name, self.ins, args[:nin], shape)
        outs = []
        for (t, pname), o in zip(self.outs, args[nin:], strict=False):
            ok = isinstance(o, np.ndarray) and o.dtype == np.dtype(t) and o.shape == shape and o.flags.c_contiguous
            if not ok:
                raise TypeError(f"kernel dn_{self.name}: output {pname} must be a C-contiguous {t} array "
                                f"of shape {shape}")
            outs.append(o)
        outs += [np.empty(shape, np.dtype(t)) for t, _ in self.outs[len(outs):]]
        self.launch(1, 1, prod(shape), *ins, *outs)
        return outs[0] if nout == 1 else tuple(outs)


class _Reduction:
    """CuPy's ReductionKernel call convention: ``k(*inputs, axis=None, keepdims=False)``."""

    def __init__(self, name: str, launcher: _Launcher) -> None:
        spec = REDUCTIONS[name]
        self.name, self.ins, self.outs, self.launch = name, params(spec.ins), params(spec.outs), launcher

    def __call__(self, *args, axis=None, keepdims: bool = False):
        if len(args) != len(self.ins):
            raise TypeError(f"kernel dn_{self.name}: {len(args)} arguments for {len(self.ins)} inputs")
        shape = np.broadcast_shapes(*[a.shape for a in args if isinstance(a, np.ndarray)])
        nd = len(shape)
        if axis is None:
            axes = tuple(range(nd))
        else:
            axes = tuple(sorted({k % nd for k in ((axis,) if isinstance(axis, int) else axis)}))
        keep = [k for k in range(nd) if k not in axes]
        m = prod(shape[k] for k in keep)
        r = prod(shape[k] for k in axes)
        ins = [np.ascontiguousarray(a.transpose(keep + list(axes))).reshape(m, r)
               for a in _inputs(self.name, self.ins, args, shape)]
        out = np.empty(m, np.dtype(self.outs[0][0]))
        self.launch(1, 1, m, r, *ins, out)
        if keepdims:
            return out.reshape(tuple(1 if k in axes else shape[k] for k in range(nd)))
        return out.reshape(tuple(shape[k] for k in keep))


class HostDevice(Device):
    """NumPy plus the backend's CUDA C compiled for the host."""

    name = "hostemu"

    def __init__(self, cxx: str | None = None, build_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.xp, self.special = np, scipy.special
        self.library = build_library(cxx, build_dir)
        lib = ctypes.CDLL(str(self.library))
        spec = cusrc.render_spec_kernels()
        launch = {s.name: _Launcher(lib, s) for s in cusrc.kernel_signatures(spec)}
        self.ew = {n: _Elementwise(n, launch[f"dn_ew_{n}"]) for n in ELEMENTWISE}
        self.red = {n: _Reduction(n, launch[f"dn_red_{n}"]) for n in REDUCTIONS}
        self.raw = {s.name: _Launcher(lib, s) for s in cusrc.kernel_signatures(cusrc.raw_module_source())}
        self._rs = np.random.RandomState()

    def seed(self, seed: int) -> None:
        self._rs = np.random.RandomState(int(seed) % (2**32))

    def normal(self, mean, std, shape):
        return self._rs.normal(mean, std, shape).astype(np.float32)

    def uniform(self, low, high, shape):
        return self._rs.uniform(low, high, shape).astype(np.float32)

    def uniform64(self, shape):
        return self._rs.random_sample(shape)

    def asnumpy(self, a):
        return np.asarray(a)

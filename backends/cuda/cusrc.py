"""The backend's CUDA C sources: reading them, and rendering the kernel tables as CUDA C.

``kernels/*.cu`` hold the RawKernels, ``kernels/*.cuh`` the device functions.
NVRTC (through CuPy) has no include path for them, so :func:`source` inlines
the ``#include "..."`` lines.  :func:`render_spec_kernels` writes every
ElementwiseKernel and ReductionKernel of :mod:`.ewspec` as a plain
``__global__`` kernel, so nvcc can check them and the host emulation can run
them with the same semantics (inputs read-only, outputs by reference).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from .ewspec import CTYPES, ELEMENTWISE, REDUCTIONS, params

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"[ \t]*$', re.M)
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)


def raw_files() -> list[Path]:
    """The RawKernel sources, in a fixed order."""
    return sorted(KERNEL_DIR.glob("*.cu"))


def source(name: str, _seen: set | None = None) -> str:
    """A kernel file's text with its local includes inlined (each file once)."""
    seen = set() if _seen is None else _seen
    if name in seen:
        return ""
    seen.add(name)
    path = KERNEL_DIR / name
    try:
        text = path.read_text()
    except OSError as e:
        raise FileNotFoundError(f"cuda backend: kernel source {path} is missing ({e})") from None
    return _INCLUDE.sub(lambda m: source(m.group(1), seen), text)


def raw_module_source() -> str:
    """All RawKernels in one translation unit, as CuPy's RawModule compiles it."""
    seen: set = set()
    return "\n".join(source(p.name, seen) for p in raw_files())


def elementwise_preamble() -> str:
    return source("elementwise.cuh")


class Param(NamedTuple):
    ctype: str  # "float", "int", "long long"
    name: str
    pointer: bool
    const: bool


class KernelSig(NamedTuple):
    name: str
    params: tuple[Param, ...]


def _parse_param(text: str, kernel: str) -> Param:
    t = " ".join(text.replace("*", " * ").split())
    pointer = "*" in t
    const = t.startswith("const ")
    words = [w for w in t.replace("*", " ").split() if w not in ("const", "__restrict__")]
    name = words[-1]
    ctype = " ".join(words[:-1])
    if ctype not in ("float", "double", "int", "long long"):
        raise ValueError(f"cuda kernel {kernel}: unsupported parameter type {text.strip()!r}")
    return Param(ctype, name, pointer, const)


def kernel_signatures(src: str) -> list[KernelSig]:
    """Every ``extern "C" __global__`` kernel in ``src`` with its parameters."""
    sigs = []
    for m in _KERNEL.finditer(src):
        name, plist = m.group(1), m.group(2)
        ps = tuple(_parse_param(p, name) for p in plist.split(",") if p.strip())
        sigs.append(KernelSig(name, ps))
    return sigs


# ---------------------------------------------------------------- rendering the tables as kernels

_LOOP = "for (long long {v} = (long long)blockIdx.x * blockDim.x + threadIdx.x; {v} < {n}; " \
        "{v} += (long long)blockDim.x * gridDim.x)"


def _ew_kernel(name: str) -> str:
    spec = ELEMENTWISE[name]
    ins, outs = params(spec.ins), params(spec.outs)
    args = ["long long n"]
    args += [f"const {CTYPES[t]}* p_{v}" for t, v in ins]
    args += [f"{CTYPES[t]}* p_{v}" for t, v in outs]
    body = [f"    const {CTYPES[t]} {v} = p_{v}[i];" for t, v in ins]
    body += [f"    {CTYPES[t]}& {v} = p_{v}[i];" for t, v in outs]
    body.append(f"    {spec.op};")
    return (f'extern "C" __global__ void dn_ew_{name}({", ".join(args)}) {{\n'
            f"  {_LOOP.format(v='i', n='n')} {{\n" + "\n".join(body) + "\n  }\n}\n")


def _red_kernel(name: str) -> str:
    """Reduces each row of an (M, R) input to one value (the reduced axes moved last)."""
    spec = REDUCTIONS[name]
    ins, outs = params(spec.ins), params(spec.outs)
    rt = spec.rtype
    args = ["long long M", "long long R"]
    args += [f"const {CTYPES[t]}* p_{v}" for t, v in ins]
    args += [f"{CTYPES[t]}* p_{v}" for t, v in outs]
    loads = "".join(f"      const {CTYPES[t]} {v} = p_{v}[row * R + r];\n" for t, v in ins)
    outref = "".join(f"    {CTYPES[t]}& {v} = p_{v}[row];\n" for t, v in outs)
    return (f'extern "C" __global__ void dn_red_{name}({", ".join(args)}) {{\n'
            f"  {_LOOP.format(v='row', n='M')} {{\n"
            f"    {rt} a = ({rt})({spec.identity});\n"
            f"    for (long long r = 0; r < R; ++r) {{\n{loads}"
            f"      {rt} b = ({rt})({spec.map});\n"
            f"      a = ({rt})({spec.reduce});\n"
            f"    }}\n{outref}    {spec.post};\n  }}\n}}\n")


def render_spec_kernels() -> str:
    """One CUDA C translation unit holding every elementwise and reduction kernel."""
    parts = ["// Generated from dynet_backends/cuda/ewspec.py: do not edit.", '#include "elementwise.cuh"', ""]
    parts += [_ew_kernel(n) for n in ELEMENTWISE]
    parts += [_red_kernel(n) for n in REDUCTIONS]
    return "\n".join(parts)


def render_host_launchers(sigs: list[KernelSig]) -> str:
    """Host functions that run a kernel's blocks in turn, one thread each (host emulation)."""
    out = []
    for s in sigs:
        decl = ", ".join(["long long dn_grid"] + [
            f"{'const ' if p.const else ''}{p.ctype}{'*' if p.pointer else ''} {p.name}" for p in s.params])
        call = ", ".join(p.name for p in s.params)
        out.append(
            f'extern "C" void dn_launch_{s.name}({decl}) {{\n'
            f"  gridDim.x = (unsigned int)dn_grid; blockDim.x = 1; threadIdx.x = 0;\n"
            f"  for (long long k = 0; k < dn_grid; ++k) {{ blockIdx.x = (unsigned int)k; {s.name}({call}); }}\n}}\n")
    return "\n".join(out)

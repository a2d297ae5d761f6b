"""The reference kernels as the shared kernel library (issue 13).

The reference backend's kernel set is written once over an array module ``xp``; the
cuda backend runs the same code over CuPy and replaces only its CUDA C kernels.
These tests check the seams: no kernel module calls NumPy behind ``xp``'s back, the
portable helpers equal what they replace, the special functions are scipy's, the cuda
backend restates no reference kernel, and a trainer rule that does not exist is refused
with a clear error.
"""

from __future__ import annotations

import ast
import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.special
from dynet_backends import reference_numpy
from dynet_backends.reference_numpy import kernels
from dynet_backends.reference_numpy.kernels import BWD, FWD, Kernels
from dynet_backends.reference_numpy.portable import NumpyRandom, windows
from numpy.lib.stride_tricks import sliding_window_view

from dynet_api.dim import Dim
from dynet_api.plugins import registry

REF_DIR = Path(reference_numpy.__file__).parent
# The modules of the kernel set and the trainer rules: all of their array calls go through xp.
SHARED = ("kernelset", "leaves", "arithmetic", "unary", "reductions", "shape", "losses", "linalg_conv", "fused",
          "layout", "updates")
# What those modules may take from NumPy itself: dtypes and constants, no functions of arrays.
NUMPY_CONSTANTS = {"float32", "intp", "nan", "inf", "finfo"}


def _numpy_uses(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    return [(n.lineno, n.attr) for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "np"]


@pytest.mark.parametrize("module", SHARED)
def test_shared_kernels_call_numpy_only_through_xp(module):
    """A kernel that called ``np.`` directly would compute on the host under CuPy (or fail there)."""
    path = REF_DIR / f"{module}.py"
    bad = [(line, attr) for line, attr in _numpy_uses(path) if attr not in NUMPY_CONSTANTS]
    assert bad == [], f"{path.name} calls NumPy outside xp: {bad}"
    tree = ast.parse(path.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m.startswith("scipy") for m in imported), "special functions come from the constructor"


def test_every_op_has_one_kernel_set_entry():
    from dynet_api.ops import OPS

    assert set(FWD) == set(OPS)
    assert set(BWD) == {n for n, op in OPS.items() if not op.leaf}


@pytest.mark.parametrize("shape, window, axes", [((7, 5, 2), (3, 2), (0, 1)), ((4, 6), (3,), (1,)),
                                                   ((5, 4, 3, 2), (2, 2), (0, 1)), ((3, 3), (3,), (1,))])
def test_windows_equal_numpys_sliding_window_view(shape, window, axes):
    x = np.arange(math.prod(shape), dtype=np.float32).reshape(shape)
    for a in (x, x[::-1], np.asfortranarray(x)):  # strided and Fortran-ordered inputs too
        want = sliding_window_view(a, window, axis=axes)
        got = windows(np, a, window, axes)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_special_functions_are_scipys_in_the_inputs_dtype():
    d = Dim((4,))
    x = np.array([[0.5], [1.0], [3.0], [10.0]], np.float32)
    # lgamma(1/2) = log(sqrt(pi)), lgamma(1) = 0, lgamma(3) = log(2), lgamma(10) = log(9!)
    want = [math.log(math.sqrt(math.pi)), 0.0, math.log(2.0), math.log(362880.0)]
    y = FWD["lgamma"]([x], None, d)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[:, 0], want, rtol=1e-6, atol=1e-7)
    # d lgamma / dx = digamma: -gamma - 2 log 2, -gamma, 3/2 - gamma, H_9 - gamma
    g = BWD["lgamma"]([x], y, np.ones_like(x), None, d, 0)
    np.testing.assert_allclose(g[:, 0], [-1.9635100260, -0.5772156649, 0.9227843351, 2.2517525891], rtol=1e-6)
    e = FWD["erf"]([x.astype(np.float64)], None, d)
    assert e.dtype == np.float64
    np.testing.assert_allclose(e[:, 0], [math.erf(v) for v in (0.5, 1.0, 3.0, 10.0)], rtol=1e-15)
    # a pole of the gamma function: +Inf (math.lgamma raised ValueError there)
    assert FWD["lgamma"]([np.zeros((1, 1), np.float32)], None, Dim((1,)))[0, 0] == np.inf


def test_a_kernel_set_takes_its_array_module_and_generator_from_the_constructor():
    """Two sets over NumPy with their own generators: same seed, same draws; each set its own stream."""
    a, b = Kernels(np, scipy.special, NumpyRandom()), Kernels(np, scipy.special, NumpyRandom())
    d = Dim((3, 2), 2)
    a.rng.seed(7)
    b.rng.seed(7)
    attrs = (0.0, 1.0, d)
    first = a.FWD["random_normal"]([], attrs, d)
    np.testing.assert_array_equal(first, b.FWD["random_normal"]([], attrs, d))
    assert first.dtype == np.float32 and first.shape == d.shape
    assert not np.array_equal(a.FWD["random_normal"]([], attrs, d), first)
    kernels.RANDOM.seed(7)  # the reference backend's own generator is another one, seeded the same way
    np.testing.assert_array_equal(FWD["random_normal"]([], attrs, d), first)


def test_the_cuda_backend_replaces_only_its_cuda_c_kernels():
    """Every op the cuda backend has no CUDA C for runs the reference's own method, not a restatement."""
    from dynet_backends.cuda import hostemu
    from dynet_backends.cuda.ewspec import UNARY
    from dynet_backends.cuda.opkernels import CudaKernels

    if hostemu.find_cxx() is None:
        pytest.skip("no host C++ compiler for the emulated cuda device")
    ops = CudaKernels(hostemu.HostDevice())
    own = set(UNARY) | {"pick", "pickneglogsoftmax", "hinge", "vanilla_lstm_c", "vanilla_lstm_h"}
    for table in (ops.FWD, ops.BWD):
        for name, k in table.items():
            k = inspect.unwrap(k)  # under the wrapper handing attributes by name (dynet_api.ops.by_name)
            where = Path(getattr(k, "__func__", k).__code__.co_filename)
            assert where.parent.name == ("cuda" if name in own else "reference_numpy"), (name, where)
    assert set(ops.FWD) == set(FWD) and set(ops.BWD) == set(BWD)
    assert Path(CudaKernels.index_add.__code__.co_filename).parent.name == "cuda"  # scatter-add of repeated rows


def test_an_unknown_update_rule_is_refused_by_name():
    be = registry.get("reference_numpy")
    w, g = be.zeros((2, 3)), be.zeros((2, 3))
    for rows in (None, [1]):
        with pytest.raises(ValueError, match="reference_numpy: unknown update rule 'nope'; known: adadelta, adagrad, "):
            be.update("nope", w, g, [], rows, {})

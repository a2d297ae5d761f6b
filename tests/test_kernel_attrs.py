"""Python kernels read their attributes by the names of the op records (issue 13).

* every record's attribute names are Python identifiers (and its ``Attrs`` named tuple has them);
* every Python backend's kernels (reference_numpy, cuda over the host emulation, the minimal
  plugin template, cpu_eigen's Python leaves) run the conformance samples of every op with
  attributes when handed attributes that refuse positional reads (``a[0]``, unpacking,
  iteration), and give the reference's values;
* a guard over the backends' source: no ``a[<digit>]`` / ``attrs[<digit>]`` and no unpacking of
  ``a`` / ``attrs``;
* attributes that do not fit the record are refused naming the op and its attributes.
"""

from __future__ import annotations

import ast
import importlib.util
import keyword
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.special
from dynet_backends.reference_numpy import ReferenceNumpyBackend
from dynet_backends.reference_numpy.kernels import FWD, Kernels
from dynet_backends.reference_numpy.portable import NumpyRandom

from dynet_api.conformance.opcheck import grad_inputs, run_kernels
from dynet_api.conformance.samples import compute_ops, samples
from dynet_api.dim import Dim
from dynet_api.ops import OP_LIST, OPS, attrs_class, by_name
from dynet_api.plugins import registry

ROOT = Path(__file__).resolve().parents[1]
REF = registry.get("reference_numpy")


# ------------------------------------------------------------------ the records' names


def test_every_record_names_its_attributes_as_python_identifiers():
    for op in OP_LIST:
        for name in op.attrs:
            assert name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_"), (op.name, name)
        assert len(set(op.attrs)) == len(op.attrs), op.name
        if op.attrs:
            assert op.Attrs._fields == op.attrs, op.name
            t = tuple(range(len(op.attrs)))
            a = op.Attrs(*t)
            assert a == t and hash(a) == hash(t)  # compares and hashes as the node's plain tuple
        else:
            assert op.Attrs is None, op.name


@pytest.mark.parametrize("names", [("strides", "from", "to"), ("x", "x"), ("_hidden",), ("2d",)])
def test_a_record_with_unusable_attribute_names_is_refused(names):
    with pytest.raises(ValueError, match=r"op demo: attribute names must be distinct Python identifiers"):
        attrs_class("demo", names)


def test_strided_select_keeps_dynets_keywords():
    assert OPS["strided_select"].attrs == ("strides", "range_from", "range_to")
    import dynet_api as dy

    x = dy.inputTensor(np.arange(12.0).reshape(3, 4))
    got = dy.strided_select(x, strides=[2, 1], range_from=[1, 1], range_to=[3, 3]).npvalue()
    np.testing.assert_array_equal(got, np.arange(12.0).reshape(3, 4)[1:3:2, 1:3])


# ------------------------------------------------------------------ every Python backend hands named attributes


class PositionalRead(AssertionError):
    """A kernel read its attributes by position."""


def _strict(op):
    """``op.Attrs`` that refuses reads by position: indexing, unpacking and iteration."""

    def refuse(self, *_):
        raise PositionalRead(f"{op.name}: a kernel read its attributes by position, not by name {op.attrs}")

    return type(op.Attrs.__name__, (op.Attrs,), {"__slots__": (), "__getitem__": refuse, "__iter__": refuse})


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _backends() -> dict:
    """Each Python backend, its kernel tables built while every record's Attrs is strict."""
    out = {}
    ref = ReferenceNumpyBackend()
    k = Kernels(np, scipy.special, NumpyRandom())
    ref.forward_kernels, ref.backward_kernels = k.FWD, k.BWD
    out["reference_numpy"] = ref
    minimal = _load(ROOT / "examples" / "plugin_template_minimal" / "dynet_backend_minimal" / "__init__.py",
                    "_strict_dynet_backend_minimal")
    out["minimal_numpy"] = minimal.MinimalBackend()
    from dynet_backends.cuda import hostemu
    from dynet_backends.cuda.backend import CudaBackend

    if hostemu.find_cxx() is not None:
        out["cuda_hostemu"] = CudaBackend(hostemu.HostDevice(), ("HOSTEMU:0",), "cuda_hostemu")
    try:
        ce = registry.get("cpu_eigen")
    except (ValueError, RuntimeError):
        pass
    else:
        from dynet_backends.cpu_eigen.backend import _kernels

        fwd, bwd = _kernels()  # its Python leaves; its C++ kernels take the plain tuple
        out["cpu_eigen"] = SimpleNamespace(forward_kernels=fwd, backward_kernels=bwd, from_numpy=ce.from_numpy,
                                           to_numpy=ce.to_numpy)
    return out


@pytest.fixture(scope="module")
def strict_backends():
    with pytest.MonkeyPatch.context() as mp:
        for op in OP_LIST:
            if op.Attrs is not None:
                mp.setattr(op, "Attrs", _strict(op))
        built = _backends()  # the wrappers keep the strict classes; the records get theirs back
    yield built
    sys.modules.pop("_strict_dynet_backend_minimal", None)


BACKENDS = ["reference_numpy", "minimal_numpy", "cuda_hostemu"]
WITH_ATTRS = [op for op in compute_ops() if op.attrs]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", WITH_ATTRS, ids=lambda op: op.name)
def test_kernels_read_attributes_by_name(strict_backends, backend, op):
    """Value and gradients of each conformance sample of ``op``, attributes by name only, against
    the reference (whose own tables are the ones the backend serves)."""
    if backend not in strict_backends:
        pytest.skip(f"{backend}: no host C++ compiler for the emulated device")
    be = strict_backends[backend]
    if op.name not in be.forward_kernels:
        pytest.skip(f"{backend} has no {op.name} kernel")
    cases = samples(op, first=2, others=1)
    assert cases, op.name
    for s in cases:
        xs = s.inputs(np.float32)
        up = s.upstream(op.shape(op, list(s.dims), s.attrs), np.float32)
        grads = [i for i in grad_inputs(s) if op.name in be.backward_kernels]
        got = run_kernels(be, s, xs, up, grads)
        want = run_kernels(REF, s, xs, up, grads)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=f"{s.repro()}: {key}")


@pytest.mark.parametrize("backend", BACKENDS + ["cpu_eigen"])
def test_every_python_kernel_of_an_op_with_attributes_is_handed_them_by_name(strict_backends, backend):
    """Every table entry of an op with attributes goes through dynet_api.ops.by_name (a kernel put in
    a table directly would get the plain tuple); cpu_eigen's C++ kernels read the tuple themselves."""
    if backend not in strict_backends:
        pytest.skip(f"{backend} is not available here")
    be = strict_backends[backend]
    python_only = {"input", "parameter", "lookup"} if backend == "cpu_eigen" else set(OPS)
    for kind, table in (("forward", be.forward_kernels), ("backward", be.backward_kernels)):
        for name, k in table.items():
            op = OPS[name]
            if op.attrs and name in python_only:
                cls = getattr(k, "attrs_class", None)
                assert cls is not None and cls.__mro__[1] is OPS[name].Attrs, (kind, name)


@pytest.mark.parametrize("backend", BACKENDS + ["cpu_eigen"])
def test_leaf_kernels_read_attributes_by_name(strict_backends, backend):
    if backend not in strict_backends:
        pytest.skip(f"{backend} is not available here")
    be = strict_backends[backend]
    fwd = be.forward_kernels
    table = np.arange(12, dtype=np.float32).reshape(3, 4)
    storage = SimpleNamespace(value=be.from_numpy(table), wscale=SimpleNamespace(factor=0.5))
    data = np.arange(6, dtype=np.float32).reshape(3, 2, 1)
    d = Dim((3, 2))
    cases = {
        "input": (([], (data, d), d), data),
        "constant": (([], (1.5, d), d), np.full(d.shape, 1.5, np.float32)),
        "parameter": (([], (storage, True, Dim((3, 4))), Dim((3, 4))), table * 0.5),
        "lookup": (([], (storage, (3, 1), True, Dim((3,), 2)), Dim((3,), 2)), table[:, [3, 1]] * 0.5),
    }
    for name, (args, want) in cases.items():
        if name in fwd:
            np.testing.assert_allclose(be.to_numpy(fwd[name](*args)).reshape(want.shape), want, err_msg=name)
    for op in OP_LIST:
        if op.random and op.name in fwd:
            (sample,) = op.sample_attrs([])
            y = be.to_numpy(fwd[op.name]([], tuple(sample) + (d,), d))
            assert y.shape == d.shape and np.isfinite(y).all(), op.name


# ------------------------------------------------------------------ a guard over the source


SOURCES = sorted(
    [p for p in (ROOT / "backends").rglob("*.py")]
    + [p for p in (ROOT / "examples").glob("plugin_template*/**/*.py")])
ATTR_NAMES = {"a", "attrs"}


def _positional_reads(tree: ast.AST) -> list[int]:
    """Lines that index ``a`` / ``attrs`` with a number or a slice, or unpack them."""
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in ATTR_NAMES:
            sl = node.slice
            if isinstance(sl, ast.UnaryOp):
                sl = sl.operand
            if isinstance(sl, ast.Slice) or (isinstance(sl, ast.Constant) and isinstance(sl.value, int)):
                bad.append(node.lineno)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in ATTR_NAMES:
            if any(isinstance(t, ast.Tuple | ast.List) for t in node.targets):
                bad.append(node.lineno)
        elif isinstance(node, ast.Starred) and isinstance(node.value, ast.Name) and node.value.id in ATTR_NAMES:
            bad.append(node.lineno)
    return bad


def test_the_guard_finds_positional_reads():
    code = "def f(xs, a, d):\n    x = a[0]\n    k, ax = a\n    g(*attrs)\n    return attrs[-1], a[1:]\n"
    assert sorted(_positional_reads(ast.parse(code))) == [2, 3, 4, 5, 5]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_python_kernel_reads_attributes_by_position(path):
    bad = _positional_reads(ast.parse(path.read_text()))
    assert not bad, f"{path.relative_to(ROOT)}, lines {bad}: read the attributes by name (a.<name>, dynet_api.ops)"


# ------------------------------------------------------------------ attributes that do not fit the record


@pytest.mark.parametrize("attrs, got", [((), "got 0 values"), (None, "got None"), (1.0, "got a float")])
def test_attributes_that_do_not_fit_the_record_are_refused_by_name(attrs, got):
    x = np.ones((3, 1), np.float32)
    with pytest.raises(TypeError, match=rf"elu: its kernels take the attributes \(alpha\) as a tuple, {got}"):
        FWD["elu"]([x], attrs, Dim((3,)))


def test_a_kernels_own_errors_pass_through():
    def kernel(xs, a, d):
        raise IndexError("the kernel's own")

    with pytest.raises(IndexError, match="the kernel's own"):
        by_name(OPS["elu"], kernel)([], (1.0,), Dim((1,)))

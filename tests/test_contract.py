"""The backend contract (dynet_api.backend): every first-party backend and the plugin template implement
its methods with compatible signatures, executors have every method the graph calls, and a backend whose
executor lacks one is refused with a clear error."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import pytest
from dynet_backends.reference_numpy import ReferenceNumpyBackend

import dynet_api as dy
from dynet_api import config
from dynet_api.backend import (
    EXECUTOR_METHODS,
    Backend,
    GraphExecutor,
    contract_methods,
    missing_executor_methods,
    signature_mismatches,
)
from dynet_api.conformance.switch import using
from dynet_api.graph import PyExecutor, _cg
from dynet_api.plugins import registry

TEMPLATE = Path(__file__).resolve().parents[1] / "examples" / "plugin_template" / "dynet_backend_template"


def _template_backend():
    spec = importlib.util.spec_from_file_location("dynet_backend_template", TEMPLATE / "__init__.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("dynet_backend_template", mod)
    spec.loader.exec_module(mod)
    return mod.CountingBackend()


def _backends():
    out = {"reference_numpy": registry.get("reference_numpy"), "cpu_eigen": registry.get("cpu_eigen")}
    from dynet_backends.cuda import hostemu
    from dynet_backends.cuda.backend import CudaBackend

    if hostemu.find_cxx() is not None:
        out["cuda (host emulation)"] = CudaBackend(hostemu.HostDevice(), ("HOSTEMU:0",), "cuda_hostemu")
    out["plugin template"] = _template_backend()
    return out


BACKENDS = _backends()


@pytest.mark.parametrize("name", list(BACKENDS))
def test_backend_methods_match_the_contract(name):
    be = BACKENDS[name]
    assert isinstance(be, Backend)
    assert signature_mismatches(be, contract_methods()) == []
    for op in be.forward_kernels:
        assert callable(be.forward_kernels[op])


@pytest.mark.parametrize("name", list(BACKENDS))
def test_executors_have_every_method_the_graph_calls(name):
    be = BACKENDS[name]
    with using(be):
        dy.renew_cg()
        dy.tanh(dy.inputTensor([1.0])).value()  # binds the graph to the backend
        ex = _cg.executor
        assert missing_executor_methods(ex) == []
        assert isinstance(ex, GraphExecutor)
        # methods written in C++ (cpu_eigen) have no Python signature and are checked by name only
        assert signature_mismatches(ex, {m: inspect.signature(getattr(GraphExecutor, m))
                                         for m in EXECUTOR_METHODS}) == []


def test_a_wrong_signature_is_reported():
    class Bad(ReferenceNumpyBackend):
        name = "bad_signature"

        def update(self, rule, w, g):  # the contract passes states, rows and hyper too
            pass

    assert signature_mismatches(Bad(), contract_methods()) == [
        "update(rule, w, g): the contract calls it as update(rule, w, g, states, rows, hyper)"]


def test_a_backend_whose_executor_lacks_truncate_is_refused():
    class HalfExecutor:
        def __init__(self, graph):
            self.inner = PyExecutor(graph, ReferenceNumpyBackend())

        def __getattr__(self, name):
            if name == "truncate":
                raise AttributeError(name)
            return getattr(self.inner, name)

    class NoTruncate(ReferenceNumpyBackend):
        name = "no_truncate"

        def make_executor(self, graph):
            return HalfExecutor(graph)

    be = NoTruncate()
    prev = config._backend
    try:
        with pytest.raises(TypeError, match=r"backend 'no_truncate': its executor HalfExecutor lacks truncate"):
            with using(be):
                dy.renew_cg()
                dy.tanh(dy.inputTensor([1.0])).value()
    finally:
        config._backend = prev
        _cg.renew()


@pytest.mark.parametrize("bad", [7, -1, "x"])
def test_cpu_eigen_refuses_a_node_naming_a_later_or_no_node(bad):
    """The executor reads each node's input ids from the graph's tuples: an id that is not an earlier
    node (a graph edited by hand) is a clear error naming the node and its op, not a read outside
    the graph's records."""
    with using(BACKENDS["cpu_eigen"]):
        dy.renew_cg()
        x = dy.inputVector([1.0, 2.0])
        y = dy.tanh(x)
        cg = _cg
        op, _, attrs = cg.nodes[y.i]
        cg.nodes[y.i] = (op, (bad,), attrs)
        with pytest.raises((RuntimeError, TypeError), match=r"node 1 \(tanh\) names input|integer"):
            y.value()
        dy.renew_cg()

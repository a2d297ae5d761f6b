"""Graph construction with and without the C accelerator (dynet_api._fastgraph).

The same program runs in two subprocesses, one with ``DYNET_API_PURE_PYTHON=1``; both
must build identical graphs (ops, operand ids, attributes, dims, gradient flags) and raise
the same errors.  The expectations below are written out by hand as well, so a bug shared
by both paths still fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import dynet_api

PROGRAM = r"""
import json, numpy as np
import dynet_api as dy
from dynet_api import graph, io

dy.renew_cg()
out = {"fast": graph._fastgraph is not None}
# every C twin, by the type of the callable the package hands out
out["c_parts"] = sorted(k for k, f in {"lookup": dy.lookup, "cmult": dy.cmult, "tanh": dy.tanh,
                                        "format_values": io._format_values_c}.items()
                        if "dynet_api._fastgraph" in (type(f).__module__, getattr(f, "__module__", None)))
pc = dy.ParameterCollection()
W = pc.add_parameters((3, 2))
b = pc.add_parameters(3)
L = pc.add_lookup_parameters((5, 3))
W.set_value(np.arange(6.0).reshape(3, 2) / 10 - 0.2)
b.set_value([0.1, -0.2, 0.3])
L.init_row(1, [0.5, -0.5, 0.25])
x = dy.inputVector([1.0, 2.0])
y = W * x + b                         # parameter nodes via _node, matmul, add
z = dy.tanh(y) - y                    # unary, sub (negate + add)
s = dy.scalarInput(2.0)
u = s * z + 1.5 - 2 * z               # 1x1 operand scales (cmult), plus_const, scalar_mult
v = 3 - (-u) * 0.5                    # negate, scalar_mult, const_minus
w = dy.cmult(v, dy.logistic(L[1] * 1.0 + y))  # lookup, add2
e = dy.esum([w, v, dy.nobackprop(w)])         # variadic add, nograd op
cg = dy.cg()
out["nodes"] = [[op.name, list(ids), repr(attrs)[:40]] for op, ids, attrs in cg.nodes]
out["dims"] = [repr(d) for d in cg.dims]
out["ng"] = list(cg.ng)
out["value"] = [round(float(a), 5) for a in np.ravel(e.npvalue())]

def err(f):
    n = len(cg.nodes)
    try:
        f()
    except Exception as ex:
        return [type(ex).__name__, str(ex), len(cg.nodes) - n]
    return None

out["errors"] = [
    err(lambda: dy.tanh("a")),
    err(lambda: dy.cmult(x, 3)),
    err(lambda: dy.esum([x, None])),
    err(lambda: x + W),                # shape error: no node added
    err(lambda: x - W),                # shape error before -W is added
    err(lambda: W * W),
    err(lambda: x + "a"),              # NotImplemented both ways: TypeError
    err(lambda: x * [1]),
    err(lambda: dy.tanh(x, x)),
]
old = x
dy.renew_cg()
out["stale"] = [err(lambda: old + old), err(lambda: dy.tanh(old)), err(lambda: -old), err(lambda: old * 2.0),
                err(lambda: dy.cmult(old, old))]
out["params_again"] = (W * dy.inputVector([1.0, 1.0])).npvalue().shape
dy.renew_cg(immediate_compute=True, check_validity=True)
a = dy.inputVector([0.0, 1.0])
out["immediate"] = [err(lambda: dy.log(a)), len(dy.cg().nodes), round(float((a + 1).npvalue()[1]), 5)]
out["subclass"] = [type(a).__name__, isinstance(W, dy.Expression), isinstance(a + a, dy.Expression)]
print(json.dumps(out))
"""


def _run(pure: bool) -> dict:
    env = dict(os.environ)
    env.pop("DYNET_API_PURE_PYTHON", None)
    if pure:
        env["DYNET_API_PURE_PYTHON"] = "1"
    env["DYNET_BACKEND"] = "reference_numpy"
    # The same dynet_api this test imported (installed or checkout), not whatever the cwd holds.
    here = os.path.dirname(os.path.dirname(os.path.abspath(dynet_api.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([here] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    r = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=120,
                       cwd=tempfile.gettempdir())
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs() -> tuple[dict, dict]:
    return _run(pure=True), _run(pure=False)


def test_pure_python_is_forced_by_the_env_var(runs):
    pure, _ = runs
    assert pure["fast"] is False
    assert pure["c_parts"] == []  # the variable reaches every module with a C fast path (accelerator.py)


def test_accelerator_is_used_where_built(runs):
    _, fast = runs
    try:
        from dynet_api import _fastgraph  # noqa: F401
    except ImportError:
        pytest.skip("dynet_api._fastgraph is not built here (pure Python only)")
    assert fast["fast"] is True
    assert fast["c_parts"] == ["cmult", "format_values", "lookup", "tanh"]


def test_both_paths_build_the_same_graph_and_raise_the_same_errors(runs):
    pure, fast = runs
    for key in pure:
        if key not in ("fast", "c_parts"):
            assert fast[key] == pure[key], key


def test_graph_matches_hand_expectations(runs):
    pure, _ = runs
    names = [n[0] for n in pure["nodes"]]
    # W * x: the right operand is resolved first, then W's parameter node is added
    assert names[:5] == ["input", "parameter", "matmul", "parameter", "add"]
    assert pure["nodes"][2][1] == [1, 0] and pure["nodes"][4][1] == [2, 3]
    # tanh(y) - y: tanh, then negate(y), then add(tanh, -y)
    assert names[5:8] == ["tanh", "negate", "add"] and pure["nodes"][7][1] == [5, 6]
    assert names[9] == "cmult"  # s * z with s 1x1
    assert "plus_const" in names and "scalar_mult" in names and "const_minus" in names
    assert names[-1] == "sum" and "nobackprop" in names
    i = names.index("nobackprop")
    assert pure["ng"][i] is False and pure["ng"][-1] is True and pure["ng"][0] is False  # input: no gradient


def test_errors_name_the_op_and_leave_the_graph_unchanged(runs):
    pure, _ = runs
    t, c, e, sh, sub, mm, nadd, nmul, arity = pure["errors"]
    assert t[0] == "TypeError" and t[1].startswith("tanh: expected an Expression, got str") and t[2] == 0
    assert c[0] == "TypeError" and c[1].startswith("cmult: expected an Expression, got int") and c[2] == 0
    assert e[0] == "TypeError" and e[1].startswith("sum: expected an Expression, got NoneType") and e[2] == 0
    for r in (sh, sub, mm):
        assert r[0] == "DimError" and r[2] == 0, r
    assert nadd[0] == nmul[0] == "TypeError" and nadd[2] == nmul[2] == 0
    assert arity[0] == "TypeError" and arity[2] == 0
    for r in pure["stale"]:
        assert r[0] == "StaleExpressionError" and "stale expression" in r[1] and r[2] == 0
    assert pure["params_again"] == [3]


def test_immediate_compute_removes_a_failing_node(runs):
    pure, _ = runs
    (kind, msg, added), n, val = pure["immediate"]
    assert kind == "RuntimeError" and "log" in msg and added == 0
    assert n == 1 and val == 2.0
    assert pure["subclass"] == ["MutableExpression", True, True]


def test_products_and_scalings_interleaved_pick_their_op_every_time():
    """``a * b`` is a product unless an operand is 1x1 or of length 1 (then cmult); the C path
    remembers that per Dim, so the same Dims asked again, in both orders, must still decide alike."""
    dy = dynet_api
    dy.renew_cg()
    m = dy.inputTensor(np.ones((3, 3)))
    v = dy.inputVector([1.0, 2.0, 3.0])
    s = dy.scalarInput(2.0)
    one = dy.inputVector([4.0])
    cases = [(m, v, "matmul"), (s, v, "cmult"), (v, one, "cmult"), (m, v, "matmul"), (one, m, "cmult"),
             (s, s, "cmult"), (m, m, "matmul"), (v, s, "cmult")]
    for _ in range(3):
        for a, b, want in cases:
            e = a * b
            assert dy.cg().nodes[e.i][0].name == want
    np.testing.assert_allclose((s * v).npvalue(), [2.0, 4.0, 6.0])
    np.testing.assert_allclose((m * v).npvalue(), [6.0, 6.0, 6.0])

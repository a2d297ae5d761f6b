"""``python -m dynet_api verify`` / ``backends``, run in-process, on the reference and on broken backends.

The broken backends are the reference with one kernel (or update rule, or
random op) wrapped; they are registered for the test through the plugin
registry, as a third-party plugin would be, and removed afterwards.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from dynet_backends.reference_numpy import ReferenceNumpyBackend

from dynet_api.__main__ import main
from dynet_api.backend import BackendUnavailable
from dynet_api.conformance.samples import compute_ops
from dynet_api.hookspecs import BackendSpec, hookimpl
from dynet_api.plugins import registry


def make_backend(name: str, fwd: dict | None = None, bwd: dict | None = None, drop=(), unsupported=None,
                 rules: dict | None = None, base=ReferenceNumpyBackend) -> type:
    """A subclass of ``base`` whose listed kernels are wrapped (``wrap(original) -> kernel``) or removed."""
    fk = dict(base.forward_kernels)
    bk = dict(base.backward_kernels)
    for op, wrap in (fwd or {}).items():
        fk[op] = wrap(fk[op])
    for op, wrap in (bwd or {}).items():
        bk[op] = wrap(bk[op])
    for op in drop:
        fk.pop(op, None)
        bk.pop(op, None)
    attrs = {"name": name, "forward_kernels": fk, "backward_kernels": bk, "unsupported": dict(unsupported or {})}
    if rules:
        def update(self, rule, w, g, states, rows, hyper, _rules=rules):
            base.update(self, rule, w, g, states, rows, hyper)
            if rule in _rules:
                _rules[rule](w)
        attrs["update"] = update
    return type(f"Test_{name}", (base,), attrs)


@pytest.fixture
def register():
    """Register backend classes under their names for one test, through a plugin object."""
    added = []

    def reg(*classes, factory=None):
        class Plugin:
            @hookimpl
            def dynet_api_backends(self):
                return [BackendSpec(c.name, factory or c, priority=-100) for c in classes]

        registry.discover()
        registry.register_plugin(Plugin(), f"test-plugin-{len(added)}")
        added.extend(c.name for c in classes)

    yield reg
    for name in added:
        registry.records.pop(name, None)
    for p in [p for n, p in registry.pm.list_name_plugin() if n.startswith("test-plugin-")]:
        registry.pm.unregister(p)


def run(capsys, *argv) -> tuple[int, str]:
    rc = main(list(argv))
    return rc, capsys.readouterr().out


def off_by(delta):
    return lambda k: (lambda xs, a, d: k(xs, a, d) + np.float32(delta))


# ----------------------------------------------------------------- the reference passes


def test_verify_reference_passes_every_op(capsys, tmp_path):
    out_json = tmp_path / "report.json"
    rc, out = run(capsys, "verify", "--backend", "reference_numpy", "--json", str(out_json))
    assert rc == 0, out[-3000:]
    assert "-- PASS" in out
    report = json.loads(out_json.read_text())
    assert report["ok"] is True
    names = {op.name for op in compute_ops()}
    assert set(report["ops"]) == names  # every non-leaf op of the table has a row...
    assert all(row["status"] == "pass" for row in report["ops"].values())
    assert all(row["cases"] >= 1 for row in report["ops"].values())  # ...with at least one sample
    # finite differences ran for the smooth ops, with float64 accuracy
    assert report["ops"]["tanh"]["fd"]["x0"]["max_abs"] < 1e-6
    assert report["summary"]["trainer"]["passed"] == report["summary"]["trainer"]["checked"] >= 9
    assert report["summary"]["leaf"]["passed"] == 4 and report["summary"]["random"]["passed"] == 4
    for name in names:
        assert f"\n{name} " in out  # one table row per op


def test_verify_ops_filter_and_unknown_names(capsys):
    rc, out = run(capsys, "verify", "--backend", "reference_numpy", "--ops", "tanh,AdamTrainer")
    assert rc == 0
    assert "\ntanh " in out and "AdamTrainer sparse" in out and "\nexp " not in out
    rc = main(["verify", "--backend", "reference_numpy", "--ops", "tanhh"])
    assert rc == 2
    assert "unknown op or trainer 'tanhh'" in capsys.readouterr().err


def test_unknown_backend_exits_2_with_installed_names(capsys):
    rc = main(["verify", "--backend", "no_such_backend"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "unknown backend 'no_such_backend'" in err and "reference_numpy" in err


def test_backends_table_lists_reference_and_counts(capsys):
    rc, out = run(capsys, "backends")
    assert rc == 0
    row = next(line for line in out.splitlines() if line.startswith("reference_numpy "))
    from dynet_api.ops import OP_LIST

    assert f"{len(OP_LIST)}/{len(OP_LIST)}" in row and "available" in row and "CPU" in row


# ----------------------------------------------------------------- broken backends fail, naming what broke


def test_forward_off_by_1e_2_fails_and_names_the_op(capsys, register):
    register(make_backend("off_tanh", fwd={"tanh": off_by(1e-2)}))
    rc, out = run(capsys, "verify", "--backend", "off_tanh", "--ops", "tanh,exp")
    assert rc == 1
    assert "off_tanh-tanh-vector: fail" in out and "tanh (vector): value off on the kernel path" in out
    assert "max abs err 0.01" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("tanh ", "exp "))}
    assert rows["tanh"].endswith("FAIL") and rows["exp"].endswith("pass")
    assert "ops 1/2 pass, 1 FAIL (tanh)" in out


def test_wrong_gradient_of_one_input_fails_naming_op_and_input(capsys, register):
    def wrong(k):
        return lambda xs, y, dy, a, d, i: k(xs, y, dy, a, d, i) * (np.float32(1.01) if i == 1 else 1)

    register(make_backend("bad_cmult_grad", bwd={"cmult": wrong}))
    rc, out = run(capsys, "verify", "--backend", "bad_cmult_grad", "--ops", "cmult")
    assert rc == 1
    assert "cmult (vector): gradient of input 1 off on the kernel path" in out
    assert "gradient of input 0 off" not in out  # input 0 is right and is not blamed
    assert "gradient of input 1 off on the graph path" in out  # the front end sees it too


def test_wrong_output_shape_is_reported(capsys, register):
    def flat(k):
        return lambda xs, a, d: k(xs, a, d).reshape(-1)

    register(make_backend("flat_exp", fwd={"exp": flat}))
    rc, out = run(capsys, "verify", "--backend", "flat_exp", "--ops", "exp")
    assert rc == 1 and "exp (matrix): value off" in out and "shape (12,), expected (3, 4, 1)" in out


def test_missing_op_is_a_coverage_failure_unless_declared(capsys, register):
    register(make_backend("gappy", drop=["erf", "lgamma"], unsupported={"lgamma": "no special functions yet"}))
    rc, out = run(capsys, "verify", "--backend", "gappy", "--ops", "erf,lgamma,exp")
    assert rc == 1
    assert "coverage: backend 'gappy' has no forward or backward kernel for op 'erf'" in out
    assert "declared unsupported (listed, not failures):\n  lgamma: no special functions yet" in out
    assert "1 FAIL (erf), 1 declared unsupported" in out
    rc, out = run(capsys, "verify", "--backend", "gappy", "--ops", "lgamma,exp")
    assert rc == 0, out


def test_wrong_trainer_rule_fails_naming_the_trainer(capsys, register):
    register(make_backend("bad_adam", rules={"adam": lambda w: w.__iadd__(np.float32(1e-3))}))
    rc, out = run(capsys, "verify", "--backend", "bad_adam", "--ops", "AdamTrainer,SimpleSGDTrainer")
    assert rc == 1
    assert "AdamTrainer (rule 'adam', sparse): W after update 1 off" in out
    assert "trainers 1/2 pass, 1 FAIL (AdamTrainer)" in out


def test_sparse_update_touching_other_rows_fails(capsys, register):
    class Dense(ReferenceNumpyBackend):
        name = "dense_rows"

        def update(self, rule, w, g, states, rows, hyper):
            super().update(rule, w, g, states, None, hyper)  # ignores the rows: a dense update

    register(Dense)
    rc, out = run(capsys, "verify", "--backend", "dense_rows", "--ops", "MomentumSGDTrainer")
    assert rc == 1
    assert "MomentumSGDTrainer (rule 'momentum', sparse): lookup table after update 2 off" in out
    assert "MomentumSGDTrainer (rule 'momentum', dense)" not in out


def test_random_op_ignoring_the_seed_fails(capsys, register):
    def unseeded(k):
        rng = np.random.default_rng()
        return lambda xs, a, d: rng.normal(a[0], a[1], d.shape).astype(np.float32)

    def biased(k):
        return lambda xs, a, d: k(xs, a, d) + np.float32(0.1)

    register(make_backend("unseeded", fwd={"random_normal": unseeded, "random_uniform": biased}))
    rc, out = run(capsys, "verify", "--backend", "unseeded", "--ops", "random_normal,random_uniform")
    assert rc == 1
    assert "random_normal(0.5, 2.0): the same seed gave different values" in out
    assert "random_uniform(-1.0, 3.0): sample mean" in out


def test_unavailable_backend_exits_2_with_reason(capsys, register):
    class NoGPU(ReferenceNumpyBackend):
        name = "needs_gpu"

    def factory():
        raise BackendUnavailable("no CUDA device on this machine")

    register(NoGPU, factory=factory)
    rc = main(["verify", "--backend", "needs_gpu"])
    assert rc == 2 and "no CUDA device on this machine" in capsys.readouterr().err


def test_graph_path_checks_the_backend_executor(capsys, register):
    """A backend whose whole-graph executor is wrong fails even though its kernels are right."""
    from dynet_api.graph import PyExecutor

    class Skewed(PyExecutor):
        def value(self, i):
            v = super().value(i)
            return v * np.float32(1.001) if self.cg.nodes[i][0].name == "softmax" else v

    class Fused(ReferenceNumpyBackend):
        name = "fused_exec"

        def make_executor(self, graph):
            return Skewed(graph, self)

    register(Fused)
    rc, out = run(capsys, "verify", "--backend", "fused_exec", "--ops", "softmax")
    assert rc == 1 and "value off on the graph path" in out and "on the kernel path" not in out


# ----------------------------------------------------------------- the shipped pytest suite


def test_pytest_suite_runs_on_a_chosen_backend(tmp_path):
    """What a third-party backend's CI runs: pytest --pyargs dynet_api.conformance.suite --conformance-backend."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "dynet_api.conformance.suite",
           "--conformance-backend", "reference_numpy", "--conformance-ops", "tanh,pick", "-rs", "--co"]
    if "dynet_api_conformance" not in {ep.name for ep in md.entry_points(group="pytest11")}:
        cmd[3:3] = ["-p", "dynet_api.conformance.pytest_plugin"]  # an editable install made before the entry point
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "test_op[reference_numpy-tanh-batched]" in out.stdout
    assert "test_op[reference_numpy-pick-batched-indices=0_1_2,dim=0]" in out.stdout
    assert "test_op[reference_numpy-exp-" not in out.stdout
    run_cmd = [c for c in cmd if c != "--co"]
    out = subprocess.run(run_cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "dynet_api conformance: declared gaps" in out.stdout
    assert "reference_numpy: implements" in out.stdout


FAKE_GPU_PLUGIN = '''
from dynet_api.backend import BackendUnavailable
from dynet_api.hookspecs import BackendSpec, hookimpl
from dynet_api.plugins import registry


class FakeGpu:
    @hookimpl
    def dynet_api_backends(self):
        def factory():
            raise BackendUnavailable("no GPU in this test")
        return [BackendSpec("fake_gpu", factory)]


registry.discover()
registry.register_plugin(FakeGpu(), "fake_gpu_plugin")
'''


def test_pytest_suite_skips_a_backend_that_cannot_run_with_its_reason(tmp_path):
    (tmp_path / "fake_gpu_plugin.py").write_text(FAKE_GPU_PLUGIN)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "fake_gpu_plugin", "-rs",
           "--pyargs", "dynet_api.conformance.suite", "--conformance-backend", "fake_gpu,reference_numpy",
           "--conformance-ops", "exp"]
    if "dynet_api_conformance" not in {ep.name for ep in md.entry_points(group="pytest11")}:
        cmd[3:3] = ["-p", "dynet_api.conformance.pytest_plugin"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "backend 'fake_gpu' cannot run here" in out.stdout and "no GPU in this test" in out.stdout
    assert "fake_gpu: not checked" in out.stdout  # the end-of-run section says so too
    assert " passed" in out.stdout  # reference_numpy's exp cases ran beside it


# ----------------------------------------------------------------- a new op is picked up with no change to the suite


@pytest.fixture
def new_op():
    """Declare an op in the table (with reference kernels) for one test, then take it out again."""
    from dynet_api import ops
    from dynet_api.graph import _cg

    fwd, bwd = ReferenceNumpyBackend.forward_kernels, ReferenceNumpyBackend.backward_kernels
    added = []

    def add(name, f, b, **kw):
        op = ops._op(name, kw.pop("nargs", 1), kw.pop("shape", ops.s_same), **kw)
        fwd[name], bwd[name] = f, b
        added.append(op)
        _cg.executor = None  # executors index kernels by op id: let the next graph build a fresh one
        _cg.renew()
        return op

    yield add
    for op in reversed(added):
        ops.OP_LIST.remove(op)
        del ops.OPS[op.name]
        fwd.pop(op.name)
        bwd.pop(op.name)
    _cg.executor = None
    _cg.renew()


def test_a_new_op_is_checked_as_soon_as_it_is_declared(capsys, new_op):
    new_op("softplus_t", lambda xs, a, d: np.logaddexp(0, xs[0]),
           lambda xs, y, dy, a, d, i: dy / (1 + np.exp(-xs[0])))
    rc, out = run(capsys, "verify", "--backend", "reference_numpy", "--ops", "softplus_t", "-v")
    assert rc == 0, out
    assert "  batched-unbatched" not in out and "  3d-batched " in out  # one-operand samples from the pool
    assert "ops 1/1 pass" in out


def test_a_wrong_reference_gradient_is_caught_by_finite_differences(capsys, new_op):
    new_op("softplus_bad", lambda xs, a, d: np.logaddexp(0, xs[0]),
           lambda xs, y, dy, a, d, i: dy / (1 + np.exp(xs[0])))  # sign error: sigmoid(-x)
    rc, out = run(capsys, "verify", "--backend", "reference_numpy", "--ops", "softplus_bad")
    assert rc == 1
    assert "softplus_bad (vector): gradient of input 0 disagrees with central finite differences" in out


def test_an_op_with_attributes_but_no_samples_is_reported(capsys, new_op):
    new_op("scaled_t", lambda xs, a, d: xs[0] * a[0], lambda xs, y, dy, a, d, i: dy * a[0], attrs=("k",))
    rc, out = run(capsys, "verify", "--backend", "reference_numpy", "--ops", "scaled_t")
    assert rc == 1
    assert "op 'scaled_t' has attributes ('k',) but no sample_attrs in its op-table entry" in out


def test_nonfinite_check_catches_a_kernel_that_hides_nan():
    """rectify written as max(0, x) in C turns NaN into 0: the non-finite check must say so."""
    from dynet_api.conformance.nonfinite import check_nonfinite
    from dynet_api.ops import OPS

    def hides_nan(k):
        return lambda xs, a, d: np.nan_to_num(k(xs, a, d), nan=0.0)

    def makes_nan(k):
        return lambda xs, a, d: np.where(np.isinf(xs[0]), np.nan, k(xs, a, d))

    ref = registry.get("reference_numpy")
    bad = make_backend("hides_nan", fwd={"rectify": hides_nan, "tanh": makes_nan})()
    r = check_nonfinite(bad, ref, OPS["rectify"])
    assert r.failed and "operand 0[0] = nan" in r.messages[0] and "NaN at []" in r.messages[0], r.messages
    assert check_nonfinite(bad, ref, OPS["tanh"]).failed  # tanh(Inf) is 1, not NaN
    assert not check_nonfinite(bad, ref, OPS["logistic"]).failed
    assert not check_nonfinite(ref, ref, OPS["rectify"]).failed

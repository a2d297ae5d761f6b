"""Conformance of every selected backend against the reference, one pytest case per check.

Test ids read ``<backend>-<op>-<sample>`` (``cpu_eigen-tanh-batched``).  A
backend that cannot run on this machine is skipped with its reason; an op a
backend lacks fails as a coverage gap unless the backend declares it in
``Backend.unsupported``, in which case it is skipped with the declared reason
and listed at the end of the run.
"""

from __future__ import annotations

import pytest

from dynet_api.conformance import selection
from dynet_api.conformance.autobatch import MIXED_SEEDS, check_autobatch, check_mixed
from dynet_api.conformance.edge import attr_domain_ops, check_attr_domains, edge_case
from dynet_api.conformance.nonfinite import check_nonfinite
from dynet_api.conformance.opcheck import check_sample
from dynet_api.conformance.randomness import check_random
from dynet_api.conformance.results import UNSUPPORTED, CaseResult
from dynet_api.conformance.runner import leaf_ops, leaf_result
from dynet_api.conformance.samples import compute_ops, missing_samples_reason, random_ops, samples
from dynet_api.conformance.trainercheck import VARIANTS, check_trainer, trainer_classes

TARGETS = selection.targets()
selection.settings["targets"] = TARGETS
_ONLY = selection.op_filter()
OPS = [op for op in compute_ops() if _ONLY is None or op.name in _ONLY]


def _params(items):
    """pytest params over (backend name, item); a backend that cannot run gets one case saying why."""
    out = []
    for t in TARGETS:
        if t.backend is None:
            out.append(pytest.param(t.name, None, id=f"{t.name}-unavailable"))
        else:
            out.extend(pytest.param(t.name, item, id=f"{t.name}-{ident}") for item, ident in items)
    return out


def _backend(name: str):
    """The backend to check; skips (installed, cannot run here) or fails (not installed: a typo)."""
    selection.settings["used"] = True
    t = next(t for t in TARGETS if t.name == name)
    if t.backend is None:
        if t.installed:
            pytest.skip(f"backend {t.name!r} cannot run here: {t.reason}")
        pytest.fail(t.reason)
    return t.backend


def _conclude(res: CaseResult) -> None:
    if res.status == UNSUPPORTED:
        pytest.skip("; ".join(res.messages))
    assert not res.failed, res.explain()


CASES = [(s, s.id) for op in OPS for s in samples(op)]


@pytest.mark.parametrize("backend_name, sample", _params(CASES))
def test_op(backend_name, sample):
    """Forward value and each input's gradient against the reference (and finite differences on the reference)."""
    _conclude(check_sample(_backend(backend_name), selection.reference(), sample))


@pytest.mark.parametrize("backend_name, op", _params([(op, f"{op.name}-nonfinite") for op in OPS if samples(op)]))
def test_nonfinite(backend_name, op):
    """NaN, +Inf and -Inf inputs give the reference's pattern of non-finite outputs."""
    _conclude(check_nonfinite(_backend(backend_name), selection.reference(), op))


@pytest.mark.parametrize("backend_name, op", _params([(op, f"{op.name}-attr-domains") for op in attr_domain_ops()
                                                      if _ONLY is None or op.name in _ONLY]))
def test_attr_domains(backend_name, op):
    """Attributes outside their declared domain (and NaN) are refused with a ValueError naming the op."""
    res = check_attr_domains(_backend(backend_name), op)
    if res.status == "skip":
        pytest.skip("; ".join(res.messages))
    _conclude(res)


@pytest.mark.parametrize("backend_name, op", _params([(op, f"{op.name}-autobatch") for op in OPS if samples(op)]))
def test_autobatch(backend_name, op):
    """A forest of instances of the op (distinct operands; shared weights) gives the same values and
    gradients with autobatching on and off."""
    res = check_autobatch(_backend(backend_name), op)
    if res.status == "skip":
        pytest.skip("; ".join(res.messages))
    _conclude(res)


@pytest.mark.parametrize("backend_name, seed", _params([(s, f"mixed-forest-{s}") for s in MIXED_SEEDS]
                                                        if _ONLY is None else []))
def test_autobatch_mixed(backend_name, seed):
    """Instances drawn from the whole table (lookups of repeated rows, batched beside unbatched
    inputs, shared and distinct parameters, chains of ops), batched against unbatched."""
    _conclude(check_mixed(_backend(backend_name), seed))


NO_SAMPLES = [op for op in OPS if not samples(op)]


@pytest.mark.parametrize("op", NO_SAMPLES or [None], ids=lambda o: getattr(o, "name", "none"))
def test_op_has_samples(op):
    """Every op of the table yields conformance cases; an op without them is reported, not skipped."""
    if op is None:
        return
    pytest.fail(missing_samples_reason(op))


@pytest.mark.parametrize("backend_name, name", _params([(n, f"{n}-front-end") for n in leaf_ops()
                                                        if _ONLY is None or n in _ONLY]))
def test_leaf(backend_name, name):
    """Inputs, constants, parameters and lookups read back through the front end, gradients into storage."""
    _conclude(leaf_result(_backend(backend_name), name))


@pytest.mark.parametrize("backend_name, op", _params([(op, op.name) for op in random_ops()
                                                      if _ONLY is None or op.name in _ONLY]))
def test_random(backend_name, op):
    """Seed determinism, fresh draws, and moments within statistical bounds."""
    _conclude(check_random(_backend(backend_name), op))


TRAINERS = [((cls, v), f"{cls.__name__}-{v}") for cls in trainer_classes() for v in VARIANTS]


@pytest.mark.parametrize("backend_name, trainer", _params(TRAINERS if _ONLY is None else []))
def test_trainer(backend_name, trainer):
    """Two updates (one clipped) of each trainer, sparse and dense, against the reference."""
    be = _backend(backend_name)
    cls, variant = trainer
    _conclude(check_trainer(be, selection.reference(), cls, variant))


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from dynet_api.conformance.strategies import edge_cases
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    given = None


EDGE_OPS = [(op, f"{op.name}-edge") for op in OPS if not op.attrs or op.sample_attrs is not None]

if given is not None:

    @pytest.mark.parametrize("backend_name, op", _params(EDGE_OPS))
    @settings(max_examples=selection.settings["edge_examples"], deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def test_edge_cases(backend_name, op, data):
        """Random dims and attributes: rejected with an error naming the op, or computed at the inferred shape."""
        be = _backend(backend_name)
        if op.name not in be.forward_kernels:
            pytest.skip(f"{backend_name} has no kernel for {op.name} (see test_op)")
        dims, attrs = data.draw(edge_cases(op), label="dims, attrs")
        msg = edge_case(be, op, dims, attrs)
        assert msg is None, msg



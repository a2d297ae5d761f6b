"""``Trainer.update``'s dispatch: the backend's trainer step first, the update in Python when there
is none or it declines.  With the C accelerator the dispatch is ``_fastgraph.StepFirst``; these
checks hold for it and for the Python method alike (the pure-Python run takes the latter)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import dynet_api as dy
from dynet_api.accelerator import fastgraph


def _trained(step, rows: int = 3):
    """A trainer whose ``_backend_step`` is ``step`` (None: no backend step), after one backward, and
    the list of the trainers the step was called with."""
    pc = dy.ParameterCollection()
    p = pc.add_parameters((rows,), init=dy.ConstInitializer(1.0))
    tr = dy.SimpleSGDTrainer(pc, 0.5)
    calls: list = []
    tr._backend_step = None if step is None else (lambda t: calls.append(t) or step(t))
    dy.renew_cg()
    loss = dy.sum_elems(p)
    loss.value()
    loss.backward()
    return pc, tr, calls


@pytest.mark.parametrize("step", [None, lambda t: False, lambda t: 0])
def test_no_step_or_a_declining_one_runs_the_update_in_python(step):
    pc, tr, calls = _trained(step)
    assert tr.update() is None
    assert len(calls) == (0 if step is None else 1)
    np.testing.assert_allclose(pc.parameters_list()[0].as_array(), [0.5, 0.5, 0.5])  # 1 - 0.5 * 1
    assert tr.updates == 1


def test_a_step_that_takes_the_update_is_the_whole_update():
    pc, tr, calls = _trained(lambda t: True)
    assert tr.update() is None
    assert calls == [tr]  # called with the trainer
    np.testing.assert_array_equal(pc.parameters_list()[0].as_array(), [1.0, 1.0, 1.0])  # Python's did not run
    assert tr.updates == 0


def test_a_steps_error_propagates_and_the_python_update_does_not_run():
    def boom(t):
        raise KeyError("from the step")

    pc, tr, _ = _trained(boom)
    with pytest.raises(KeyError, match="from the step"):
        tr.update()
    np.testing.assert_array_equal(pc.parameters_list()[0].as_array(), [1.0, 1.0, 1.0])

    class Bad:
        def __bool__(self):
            raise ValueError("no truth")

    _, tr, _ = _trained(lambda t: Bad())
    with pytest.raises(ValueError, match="no truth"):
        tr.update()


def test_update_takes_no_arguments_and_says_so():
    _, tr, _ = _trained(None)
    with pytest.raises(TypeError, match="update"):
        tr.update(1)
    with pytest.raises(TypeError, match="update"):
        tr.update(x=1)
    with pytest.raises(TypeError):
        dy.Trainer.update()


def test_update_reads_as_the_python_method_does():
    """help(), Sphinx and inspect see the specification's name, signature and docstring."""
    u = dy.AdamTrainer.update
    assert u.__name__ == "update" and u.__qualname__ == "Trainer.update"
    assert "One training step" in u.__doc__
    assert list(inspect.signature(u).parameters) == ["self"]
    assert inspect.isroutine(u)
    _, tr, _ = _trained(None)
    assert tr.update.__self__ is tr


def test_a_subclass_calling_super_update_gets_the_dispatch():
    seen = []

    class Logged(dy.SimpleSGDTrainer):
        def update(self) -> None:
            seen.append("before")
            super().update()
            seen.append("after")

    pc = dy.ParameterCollection()
    p = pc.add_parameters((2,), init=dy.ConstInitializer(1.0))
    tr = Logged(pc, 0.25)
    dy.renew_cg()
    loss = dy.sum_elems(p)
    loss.value()
    loss.backward()
    tr.update()
    assert seen == ["before", "after"] and tr.updates == 1
    np.testing.assert_allclose(p.as_array(), [0.75, 0.75])


@pytest.mark.skipif(fastgraph is None, reason="the C accelerator is not built")
def test_the_c_dispatch_is_installed_and_checks_its_arguments():
    assert isinstance(dy.Trainer.__dict__["update"], fastgraph.StepFirst)
    assert dy.Trainer.update.__wrapped__.__qualname__ == "Trainer.update"
    with pytest.raises(TypeError, match="callable"):
        fastgraph.StepFirst(1, 2)


def test_the_step_is_read_as_python_reads_it_through_a_property_or_a_later_class_change():
    """The dispatch reads ``_backend_step`` where the class keeps it: its slot, or a subclass's
    property, and again after the class changes (a class attribute set later hides the slot)."""
    seen: list[str] = []

    class OwnStep(dy.SimpleSGDTrainer):
        @property
        def _backend_step(self):
            return lambda t: seen.append("property") or True

        @_backend_step.setter
        def _backend_step(self, v) -> None:
            pass

    class Later(dy.SimpleSGDTrainer):
        pass

    pc = dy.ParameterCollection()
    p = pc.add_parameters((2,), init=dy.ConstInitializer(1.0))
    later, own = Later(pc, 0.5), OwnStep(pc, 0.5)
    later._backend_step = lambda t: seen.append("slot") or True
    for tr in (later, own, later):
        tr.update()
    assert seen == ["slot", "property", "slot"]
    Later._backend_step = None  # hides the slot: no step, the Python update runs
    dy.renew_cg()
    dy.sum_elems(p).backward()
    later.update()
    assert seen == ["slot", "property", "slot"] and later.updates == 1
    np.testing.assert_array_equal(p.as_array(), [0.5, 0.5])

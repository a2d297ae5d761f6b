"""A backend's ``trainer_step`` (cpu_eigen's C++ twin of ``Trainer.update()``) against the Python
update, which is its specification.

Two identical models train side by side on the same graphs, one through the backend's step and
one with it switched off; after every update the weights, every state tensor and the trainer's
counters must be identical (both end in the same rule kernels, so bit for bit).  The cases cover
dense and lookup parameters, sparse and dense lookup updates, frozen parameters, a parameter the
graph did not use, clipping that scales and clipping off, and every trainer class; each also
checks that the backend's step really ran, and that it declines (leaving Python's update to run)
under weight decay.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

import dynet_api as dy
from dynet_api.plugins import registry
from dynet_api.trainers import __all__ as TRAINERS


@pytest.fixture(autouse=True)
def cpu_eigen():
    if "cpu_eigen" not in registry.names():
        pytest.skip("cpu_eigen is not installed")
    rec = registry.load("cpu_eigen")
    if rec.backend is None:
        pytest.skip(f"cpu_eigen: {rec.error}")
    before = dy.backend_name()
    dy.set_backend("cpu_eigen")
    yield
    dy.set_backend(before)


def _model(rng_seed: int):
    rng = np.random.default_rng(rng_seed)
    pc = dy.ParameterCollection()
    W = pc.add_parameters((5, 4), init=rng.normal(0, 0.5, (5, 4)))
    b = pc.add_parameters(5, init=rng.normal(0, 0.5, 5))
    F = pc.add_parameters((5, 4), init=rng.normal(0, 0.5, (5, 4)))  # frozen
    U = pc.add_parameters(3, init=rng.normal(0, 0.5, 3))  # used on odd steps only
    E = pc.add_lookup_parameters((7, 4), init=rng.normal(0, 0.5, (7, 4)))
    F.set_updated(False)
    return pc, (W, b, F, U, E)


def _step(params, k: int, scale: float) -> None:
    W, b, F, U, E = params
    dy.renew_cg()
    x = dy.esum([dy.lookup(E, (3 * k + j) % 7) for j in range(2)])
    h = dy.tanh(W * x + b) + F * x
    loss = dy.squared_norm(h) * scale
    if k % 2:
        loss = loss + dy.sum_elems(U)
    loss.value()
    loss.backward()


def _state(pc, tr) -> list[np.ndarray]:
    out = []
    for st in pc.all_storages():
        out.append(st.host())
        out += [st.backend.to_numpy(t) for t in st.states.get(tr._state_key, ())]
    return out


def _counters(tr) -> tuple:
    return (tr.updates, tr.updates_since_status, tr.clips, tr.clips_since_status, tr.learning_rate)


@pytest.mark.parametrize("decay", [0.0, 1e-3, 0.3])
@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("clip", ["scales", "off", "never"])
@pytest.mark.parametrize("trainer", [t for t in TRAINERS if t != "Trainer"])
def test_the_backend_step_is_the_python_update(trainer, clip, sparse, decay):
    runs = []
    taken = []
    for fast in (False, True):
        pc, params = _model(3)
        pc.set_weight_decay(decay)
        tr = getattr(dy, trainer)(pc)
        tr.set_sparse_updates(sparse)
        tr.set_clip_threshold({"scales": 0.05, "off": 0.0, "never": 1e9}[clip])
        step = tr._backend_step
        assert step is not None  # cpu_eigen offers one
        if fast:
            def counted(t, step=step):
                r = step(t)
                taken.append(r)
                return r
            tr._backend_step = counted
        else:
            tr._backend_step = None
        seen = []
        for k in range(5):
            _step(params, k, 1.0 + k)
            tr.update()
            seen.append((_state(pc, tr), _counters(tr)))
        runs.append(seen)
    for k, ((s0, c0), (s1, c1)) in enumerate(zip(*runs, strict=True)):
        assert c0 == c1, f"update {k}: counters {c0} != {c1}"
        for a, b in zip(s0, s1, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"update {k}")
    # the first update makes the states in Python, except for a rule without states (plain and
    # cyclical SGD), which stores none; the whole-tensor rule
    # (eg) always runs there, and so does the update whose decay folds the factor into the values
    # (0.7 ** 4 < 0.25: the fourth)
    if trainer != "EGTrainer":
        stateless = getattr(dy, trainer).n_states == 0
        assert taken[0] is stateless and all(taken[1:3] + taken[4:]), taken
        assert taken[3] is (decay < 0.3), taken
        assert stateless == all(tr._state_key not in st.states for st in pc.all_storages())
    assert pc.all_storages()[0].wscale.factor != 1.0 or decay == 0.0
    if clip == "scales":
        assert runs[1][-1][1][2] > 0  # clipping really scaled


def test_the_backend_step_declines_for_a_subcollections_trainer():
    """A subcollection's trainer scales its own values (the root's factor covers more): Python's."""
    pc = dy.ParameterCollection()
    pc.set_weight_decay(1e-3)
    sub = pc.add_subcollection("sub")
    W = sub.add_parameters((3, 2), init=np.ones((3, 2)))
    tr = dy.AdamTrainer(sub)
    for k in range(2):
        dy.renew_cg()
        loss = dy.squared_norm(W * dy.inputVector([1.0, -1.0]))
        loss.value()
        loss.backward()
        if k:
            assert tr._backend_step(tr) is False
        tr.update()
    assert tr.updates == 2
    assert pc._wscale.factor == 1.0  # the values were scaled instead


@pytest.mark.parametrize("trainer", ["SimpleSGDTrainer", "AdamTrainer", "CyclicalSGDTrainer", "MomentumSGDTrainer"])
def test_settings_changed_between_updates_are_read(trainer):
    """The step reads the trainer's state from its slots and its dict on every update: a learning
    rate, a clipping threshold, sparse updates, a rule argument or a schedule bound changed by the
    user between updates is used by the next one, as in Python's update (and counters written by
    the step read back in Python)."""
    runs = []
    for fast in (False, True):
        pc, params = _model(21)
        tr = getattr(dy, trainer)(pc)
        taken = []
        if fast:
            step = tr._backend_step
            tr._backend_step = lambda t, step=step, taken=taken: taken.append(step(t)) or taken[-1]
        else:
            tr._backend_step = None
        seen = []
        for k in range(6):
            if k == 2:
                tr.learning_rate = 0.05
                tr.set_clip_threshold(0.02)
            if k == 3:
                tr.set_sparse_updates(False)
                tr.updates = 40  # Adam's bias correction follows the counter
                if trainer == "AdamTrainer":
                    tr.beta_1 = 0.5
                if trainer == "MomentumSGDTrainer":
                    tr.mom = 0.3
                if trainer == "CyclicalSGDTrainer":
                    tr.e_max, tr.it, tr.gamma = 0.3, 7, 0.99  # (gamma 1, the default, skips pow)
            if k == 4:
                tr.set_clip_threshold(0.0)
            _step(params, k, 1.0 + k)
            tr.update()
            seen.append((_state(pc, tr), _counters(tr)))
        runs.append(seen)
        if fast:
            assert all(taken[2:]), taken  # from the update after U's first (its states made in Python)
    for k, ((s0, c0), (s1, c1)) in enumerate(zip(*runs, strict=True)):
        assert c0 == c1, f"update {k}: counters {c0} != {c1}"
        for a, b in zip(s0, s1, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"update {k}")


@pytest.mark.parametrize("trainer", [t for t in TRAINERS if t != "Trainer"])
def test_every_setting_an_update_reads_is_in_a_slot(trainer):
    """The module's trainers keep their settings in object slots (and their counters in the
    ``_counts`` array), which the backend's step reads at fixed offsets (an instance-dict lookup
    each was half a small update's cost): a record argument added without its slot would still
    work, through the dict, but slowly."""
    tr = getattr(dy, trainer)(dy.ParameterCollection())
    assert vars(tr) == {}
    assert all(hasattr(tr, a.name) for a in type(tr).record.args if not a.is_lr)


def test_a_subclass_keeping_a_setting_as_a_property_is_read_through_it():
    """An attribute a subclass turns into a property is read as Python reads it, not from the
    base's slot."""

    class Capped(dy.SimpleSGDTrainer):
        @property
        def clip_threshold(self) -> float:
            return 1e-3

        @clip_threshold.setter
        def clip_threshold(self, v: float) -> None:
            pass

    runs = _clip_1e3_runs(Capped, 23)
    assert runs[0][1] == runs[1][1] and runs[0][1][2] == 3
    for a, b in zip(runs[0][0], runs[1][0], strict=True):
        np.testing.assert_array_equal(a, b)


def _clip_1e3_runs(subclass, seed: int, prepare=lambda tr: None) -> list:
    """Three updates by ``subclass(pc, 0.1)``, whose clipping threshold is 1e-3 its own way, and by
    plain SGD set to it; per run: the values, the counters and the trainer (``prepare`` sees each
    trainer before its updates)."""
    runs = []
    for cls in (subclass, dy.SimpleSGDTrainer):
        pc, params = _model(seed)
        tr = cls(pc, 0.1)
        if cls is dy.SimpleSGDTrainer:
            tr.set_clip_threshold(1e-3)
        prepare(tr)
        for k in range(3):
            _step(params, k, 1.0)
            tr.update()
        runs.append(([st.host() for st in pc.all_storages()], _counters(tr), tr))
    return runs


def _recording_steps(taken: dict, own: type, watched: list):
    """A ``prepare`` for :func:`_clip_1e3_runs`: each trainer's backend step records in
    ``taken[type]`` whether it ran, and ``watched`` (what a test collects) is emptied once an
    ``own`` trainer is made (its constructor's entries)."""

    def prepare(tr) -> None:
        step, mine = tr._backend_step, taken.setdefault(type(tr), [])
        tr._backend_step = lambda t: mine.append(step(t)) or mine[-1]
        if isinstance(tr, own):
            watched.clear()

    return prepare


def test_a_subclass_with_its_own_attribute_hooks_sees_every_read_and_write():
    """A class with its own ``__getattribute__`` and ``__setattr__`` has the step's reads and
    writes go through them, as Python's update's do, though the names are slots."""
    writes: list[str] = []

    class Hooked(dy.SimpleSGDTrainer):
        def __getattribute__(self, name: str):
            if name == "clip_threshold":
                return 1e-3
            return super().__getattribute__(name)

        def __setattr__(self, name: str, v) -> None:
            writes.append(name)
            super().__setattr__(name, v)

    taken: dict = {}
    runs = _clip_1e3_runs(Hooked, 29, _recording_steps(taken, Hooked, writes))
    assert taken[Hooked] == taken[dy.SimpleSGDTrainer] == [True] * 3  # the backend's step ran every update
    assert runs[0][1] == runs[1][1]
    assert runs[0][1][2] == 3  # every update clipped at the hooked threshold
    # the backend step's counter writes went through __setattr__
    assert writes.count("updates") == writes.count("clips") == 3
    for a, b in zip(runs[0][0], runs[1][0], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_subclass_keeping_its_own_counters_counts_them_its_own_way():
    """Where a class replaces a counter property (``updates``, ``clips``, ...) the step adds to what
    that class keeps, as Python's update does, not to the base's ``_counts`` array."""
    seen: list[int] = []

    class Counting(dy.SimpleSGDTrainer):
        @property
        def clips(self) -> int:
            return self.__dict__.get("own_clips", 0)

        @clips.setter
        def clips(self, v: int) -> None:
            seen.append(v)
            self.__dict__["own_clips"] = v

    taken: dict = {}
    runs = _clip_1e3_runs(lambda pc, lr: _capped(Counting(pc, lr)), 31, _recording_steps(taken, Counting, seen))
    assert taken[Counting] == [True] * 3
    assert runs[0][1] == runs[1][1] and runs[0][1][2] == 3
    assert seen == [1, 2, 3] and runs[0][2]._counts[2] == 0  # the base's array was left alone


def _capped(tr):
    tr.set_clip_threshold(1e-3)
    return tr


@pytest.mark.parametrize("trainer", ["AdamTrainer", "CyclicalSGDTrainer"])
def test_counters_set_from_python_steer_the_next_step(trainer):
    """Adam's bias correction and the cyclical schedule read the counters the step keeps in place:
    set from Python, both paths continue from the set values."""
    runs = []
    for fast in (True, False):
        pc, params = _model(11)
        tr = getattr(dy, trainer)(pc)
        if not fast:
            tr._backend_step = None
        for k in range(4):
            if k == 2:
                tr.updates = 40
                if trainer == "CyclicalSGDTrainer":
                    tr.it = 1500
            _step(params, k, 1.0)
            tr.update()
        runs.append((_state(pc, tr), _counters(tr), getattr(tr, "it", None)))
    assert runs[0][1:] == runs[1][1:] and runs[0][1][0] == 42
    for a, b in zip(runs[0][0], runs[1][0], strict=True):
        np.testing.assert_array_equal(a, b)


def test_trainers_stepping_in_turn_each_count_their_own_updates():
    """The step keeps the last counters array it opened: two trainers stepping in turn, one of them
    given a new array, each count in their own (the same counts as Python's update)."""
    pc1, params1 = _model(3)
    pc2, params2 = _model(4)
    a, b = dy.SimpleSGDTrainer(pc1), dy.AdamTrainer(pc2)
    for k in range(5):
        if k == 3:
            old = b._counts
            b._counts = type(old)("q", old)  # a new array, the same counts
            old[0] = 99  # the old one no longer counts
        for tr, params in ((a, params1), (b, params2), (a, params1)):
            _step(params, k, 1.0)
            tr.update()
    assert (a.updates, a.updates_since_status) == (10, 10)
    assert (b.updates, b.updates_since_status) == (5, 5)
    assert old[0] == 99


def test_a_counter_takes_only_an_int64():
    pc, _ = _model(1)
    tr = dy.AdamTrainer(pc)
    with pytest.raises(TypeError, match=r"AdamTrainer\.updates must be an int"):
        tr.updates = 1.5
    with pytest.raises(OverflowError, match=r"AdamTrainer\.clips must be an int"):
        tr.clips = 2**63
    assert (tr.updates, tr.clips) == (0, 0)


def test_a_new_trainer_starts_from_fresh_states():
    """States are keyed per trainer, not by id(): a trainer made after another was collected (which
    may reuse its id) steps from zero moments, and the collected one's states are dropped."""
    pc, params = _model(7)
    tr = dy.AdamTrainer(pc)
    _step(params, 0, 1.0)
    tr.update()
    del tr
    gc.collect()
    assert all(not st.states for st in pc.all_storages())
    start = [st.host() for st in pc.all_storages()]
    tr = dy.AdamTrainer(pc)
    _step(params, 1, 1.0)
    tr.update()
    fresh, fresh_params = _model(7)
    for st, a in zip(fresh.all_storages(), start, strict=True):
        st.set_host(a)
    tr2 = dy.AdamTrainer(fresh)
    _step(fresh_params, 1, 1.0)
    tr2.update()
    for a, b in zip(pc.all_storages(), fresh.all_storages(), strict=True):
        np.testing.assert_array_equal(a.host(), b.host())


def test_a_subclass_with_its_own_after_update_runs_it():
    """A twin computes only the method it was written for: a subclass's own _after_update is called."""

    class Halving(dy.CyclicalSGDTrainer):
        def _after_update(self) -> None:
            self.learning_rate = self.learning_rate / 2

    pc, params = _model(9)
    tr = Halving(pc, 0.01, 0.1)
    for k in range(3):
        _step(params, k, 1.0)
        tr.update()
    assert tr.learning_rate == pytest.approx(0.01 / 8)


def test_a_hook_patched_onto_the_class_later_is_seen():
    """The backend's step reads what a class says of its update once per class version: a method
    assigned to the class afterwards is called from the next update on."""

    class Later(dy.SimpleSGDTrainer):
        pass

    pc, params = _model(11)
    tr = Later(pc, 0.1)
    for k in range(2):
        _step(params, k, 1.0)
        tr.update()
    assert tr.learning_rate == 0.1

    def after(self) -> None:
        self.learning_rate = 0.5

    Later._after_update = after
    _step(params, 2, 1.0)
    tr.update()
    assert tr.learning_rate == 0.5


# DyNet 2.1.2's weights after one update of W = ones(8) on the loss dot(W, x), clipping off, for
# x = GRADIENT (run in DyNet's venv; its float32 second moments overflow to inf for the huge
# gradients, whose weights then do not move).
GRADIENT = [1e20, -1e20, 3e19, 1e-3, 0.0, 2e-30, 1e19, 1.0]
DYNET_AFTER_ONE_UPDATE = {
    "AdamTrainer": [1.0, 1.0, 1.0, 0.99900031, 1.0, 1.0, 0.99900001, 0.99900001],
    "RMSPropTrainer": [1.0, 1.0, 1.0, 0.9969849, 1.0, 1.0, 0.99683774, 0.99683774],
    "AdagradTrainer": [1.0, 1.0, 1.0, 0.89999998, 1.0, 1.0, 0.89999998, 0.89999998],
    "AdadeltaTrainer": [1.0, 1.0, 1.0, 0.99902409, 1.0, 1.0, 0.99552786, 0.99552792],
}


@pytest.mark.parametrize("trainer", sorted(DYNET_AFTER_ONE_UPDATE))
def test_huge_gradients_without_clipping_give_dynets_weights(trainer):
    """Without clipping nothing bounds the gradient: the update takes the exact kernels, whose
    sqrt(inf) is inf (the reciprocal estimates would give NaN weights)."""
    pc = dy.ParameterCollection()
    W = pc.add_parameters(8, init=np.ones(8))
    tr = getattr(dy, trainer)(pc)
    tr.set_clip_threshold(0)
    dy.renew_cg()
    loss = dy.dot_product(W, dy.inputVector(GRADIENT))
    loss.value()
    loss.backward()
    tr.update()
    np.testing.assert_allclose(W.as_array(), DYNET_AFTER_ONE_UPDATE[trainer], rtol=2e-6)


def test_an_update_reached_from_inside_a_step_runs_in_python():
    """Python code that an update runs while reading a setting (here a learning rate's __float__)
    may update another trainer: inside the backend's step, that inner update runs in Python (the
    step's scratch is in use), and both trainers end as Python's update alone leaves them."""
    runs = []
    for fast in (False, True):
        pc, params = _model(31)
        other_pc, other_params = _model(32)
        other = dy.SimpleSGDTrainer(other_pc, 0.1)
        inner: list = []

        class Rate:
            def __init__(self, trainer, params) -> None:
                self.trainer, self.params = trainer, params

            def __float__(self) -> float:
                _step(self.params, 0, 1.0)  # a new graph: the outer update has read its gradients
                self.trainer.update()
                return 0.1

        tr = dy.SimpleSGDTrainer(pc, 0.1)
        outer: list = []
        if fast:
            step = other._backend_step
            other._backend_step = lambda t, step=step, inner=inner: inner.append(step(t)) or inner[-1]
            tr._backend_step = lambda t, step=step, outer=outer: outer.append(step(t)) or outer[-1]
        else:
            tr._backend_step = other._backend_step = None
        for k in range(5):
            _step(params, k, 1.0)
            tr._learning_rate = Rate(other, other_params)
            tr.update()
        if fast:  # from the third update on the outer update is the backend's step: the inner one declines
            assert outer[2:] == [True] * 3 and inner[2:] == [False] * 3, (outer, inner)
        runs.append([st.host() for st in pc.all_storages()] + [st.host() for st in other_pc.all_storages()])
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)

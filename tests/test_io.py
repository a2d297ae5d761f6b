"""Model files in DyNet's text format (io.cc): hand-written files, byte layout, round trips, errors.

The layout, from DyNet's TextFileSaver: a header
``#Parameter# <name> {d0,d1} <bytes> ZERO_GRAD`` where bytes = 16 per value + 1
(doubled for ``FULL_GRAD``), then one line of values in column-major order, each
printed ``%+.8e`` and followed by a space.  A ``#LookupParameter#`` record prints
the row dims then the row count, and its rows follow each other.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

import dynet_api as dy
import dynet_api.io as dio


def vals(*xs) -> str:
    """A values line as DyNet writes it."""
    return "".join(f"{x:+.8e} " for x in xs) + "\n"


def no_temp_files(folder) -> bool:
    return not [f for f in os.listdir(folder) if ".tmp" in f]


class MLP:
    """A savable object in DyNet's protocol: ``spec``, ``from_spec`` and ``param_collection()``."""

    def __init__(self, pc: dy.ParameterCollection, n_in: int, n_hid: int) -> None:
        self.pc = pc.add_subcollection()
        self.W = self.pc.add_parameters((n_hid, n_in))
        self.b = self.pc.add_parameters(n_hid)
        self.E = self.pc.add_lookup_parameters((5, n_in))
        self.spec = (n_in, n_hid)

    def param_collection(self) -> dy.ParameterCollection:
        return self.pc

    @staticmethod
    def from_spec(spec, pc):
        return MLP(pc, *spec)


# ---------------------------------------------------------------- hand-written DyNet files


def test_hand_written_file_loads(tmp_path):
    f = tmp_path / "model.txt"
    f.write_text(
        "#Parameter# /W {2,3} 97 ZERO_GRAD\n" + vals(1, 2, 3, 4, 5, 6)
        + "#Parameter# /b {2} 33 ZERO_GRAD\n" + vals(-0.5, 0.25)
        + "#LookupParameter# /E {3,4} 193 ZERO_GRAD\n" + vals(*range(12))
    )
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 3))
    b = pc.add_parameters(2)
    E = pc.add_lookup_parameters((4, 3))
    pc.populate(str(f))
    np.testing.assert_array_equal(W.as_array(), [[1, 3, 5], [2, 4, 6]])  # column-major
    np.testing.assert_array_equal(b.as_array(), [-0.5, 0.25])
    # rows are contiguous: row i holds values 3i, 3i+1, 3i+2
    np.testing.assert_array_equal(E.as_array(), np.arange(12).reshape(4, 3))
    dy.renew_cg()
    assert E[2].vec_value() == [6.0, 7.0, 8.0]


def test_hand_written_matrix_rows_and_full_grad(tmp_path):
    f = tmp_path / "model.txt"
    f.write_text(
        "#Parameter# /v {2} 66 FULL_GRAD\n" + vals(1.5, -2.5) + vals(0.5, 0.5)
        + "#LookupParameter# /M {2,2,3} 193 ZERO_GRAD\n" + vals(*range(12))
    )
    pc = dy.ParameterCollection()
    v = pc.add_parameters(2)
    M = pc.add_lookup_parameters((3, 2, 2))
    pc.populate(str(f))
    np.testing.assert_array_equal(v.as_array(), [1.5, -2.5])
    # row k is the 2x2 matrix of values 4k..4k+3 in column-major order
    for k in range(3):
        np.testing.assert_array_equal(M.row_as_array(k), np.arange(4 * k, 4 * k + 4).reshape(2, 2, order="F"))


def test_hand_written_file_single_parameter_by_key(tmp_path):
    f = tmp_path / "model.txt"
    f.write_text("#Parameter# /a {3} 49 ZERO_GRAD\n" + vals(1, 2, 3)
                 + "#Parameter# /b {3} 49 ZERO_GRAD\n" + vals(4, 5, 6))
    pc = dy.ParameterCollection()
    p = pc.add_parameters(3)
    p.populate(str(f), "/b")
    np.testing.assert_array_equal(p.as_array(), [4, 5, 6])
    q = pc.load_param(str(f), "/a")
    assert q.name() == "/a"
    np.testing.assert_array_equal(q.as_array(), [1, 2, 3])


# ---------------------------------------------------------------- the bytes we write


def test_save_matches_dynet_bytes(tmp_path):
    pc = dy.ParameterCollection()
    E = pc.lookup_parameters_from_numpy(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, -6.0]]))
    W = pc.add_parameters((2, 3), init=np.array([[1.0, -0.5, 0.0], [2.5, 1e-3, -3.0]]))
    s = pc.add_parameters(1, init=0.1)
    f = tmp_path / "m.txt"
    pc.save(str(f))
    # Parameters first (creation order), then lookups; float32 1e-3 and 0.1 print as DyNet prints them
    expected = (
        f"#Parameter# {W.name()} {{2,3}} 97 ZERO_GRAD\n"
        "+1.00000000e+00 +2.50000000e+00 -5.00000000e-01 +1.00000005e-03 +0.00000000e+00 -3.00000000e+00 \n"
        f"#Parameter# {s.name()} {{1}} 17 ZERO_GRAD\n"
        "+1.00000001e-01 \n"
        f"#LookupParameter# {E.name()} {{2,3}} 97 ZERO_GRAD\n"
        "+1.00000000e+00 +2.00000000e+00 +3.00000000e+00 +4.00000000e+00 +5.00000000e+00 -6.00000000e+00 \n"
    )
    assert f.read_text() == expected
    assert (E.name(), W.name(), s.name()) == ("/_0", "/_1", "/_2")
    # the byte count is exactly the length of the line(s) that follow
    lines = expected.split("\n")
    assert len(lines[1]) + 1 == 97 and len(lines[3]) + 1 == 17


def test_save_with_key_renames_the_prefix(tmp_path):
    pc = dy.ParameterCollection()
    sub = pc.add_subcollection("enc")
    sub.add_parameters(2, init=1.0, name="W")
    sub.add_lookup_parameters((2, 1), init=2.0, name="E")
    f = tmp_path / "m.txt"
    sub.save(str(f), "/model")
    heads = [line for line in f.read_text().splitlines() if line.startswith("#")]
    assert heads == ["#Parameter# /model/W {2} 33 ZERO_GRAD", "#LookupParameter# /model/E {1,2} 33 ZERO_GRAD"]
    with pytest.raises(ValueError, match="Key should start with '/'"):
        sub.save(str(f), "model")
    with pytest.raises(ValueError, match="Key should start with '/'"):
        sub.save(str(f), "/a b")


# ---------------------------------------------------------------- round trips


def _build(seed: int):
    dy.reset_random_seed(seed)
    pc = dy.ParameterCollection()
    W = pc.add_parameters((3, 4), init=dy.NormalInitializer(0, 10.0))
    sub = pc.add_subcollection("s")
    E = sub.add_lookup_parameters((6, 2, 3))
    b = sub.add_parameters(5, init=dy.UniformInitializer(1e-5))
    F = pc.add_lookup_parameters((4, 7))
    return pc, [W, E, b, F]


def test_save_populate_round_trip_is_exact(tmp_path):
    pc, items = _build(1)
    f = tmp_path / "m.txt"
    pc.save(str(f))
    pc2, items2 = _build(2)
    assert not np.array_equal(items[0].as_array(), items2[0].as_array())
    pc2.populate(str(f))
    for a, b in zip(items, items2, strict=True):
        np.testing.assert_array_equal(a.as_array(), b.as_array())
    g = tmp_path / "m2.txt"
    pc2.save(str(g))
    assert f.read_bytes() == g.read_bytes()


def test_populate_with_key_from_appended_file(tmp_path):
    f = tmp_path / "m.txt"
    pc_a, items_a = _build(1)
    pc_b, items_b = _build(2)
    pc_a.save(str(f), "/a")
    pc_b.save(str(f), "/b", append=True)
    pc, items = _build(3)
    pc.populate(str(f), "/b")
    for x, y in zip(items, items_b, strict=True):
        np.testing.assert_array_equal(x.as_array(), y.as_array())
    pc.populate(str(f), "/a")
    for x, y in zip(items, items_a, strict=True):
        np.testing.assert_array_equal(x.as_array(), y.as_array())


def test_parameter_and_lookup_save_populate(tmp_path):
    pc, (W, E, _, _) = _build(1)
    f = tmp_path / "p.txt"
    W.save(str(f), "/W")
    E.save(str(f), "/E", append=True)
    pc2, (W2, E2, _, _) = _build(2)
    W2.populate(str(f), "/W")
    E2.populate(str(f), "/E")
    np.testing.assert_array_equal(W2.as_array(), W.as_array())
    np.testing.assert_array_equal(E2.as_array(), E.as_array())
    E3 = pc2.load_lookup_param(str(f), "/E")
    assert E3.name() == "/E" and E3.shape() == (6, 2, 3)
    np.testing.assert_array_equal(E3.as_array(), E.as_array())


# ---------------------------------------------------------------- dy.save / dy.load


def test_dy_save_load_and_meta(tmp_path):
    pc = dy.ParameterCollection()
    W = pc.add_parameters((2, 3), name="W")
    E = pc.add_lookup_parameters((4, 2), name="E")
    mlp = MLP(pc, 3, 4)
    base = str(tmp_path / "model")
    dy.save(base, [W, mlp, E])
    with open(base + ".meta", "rb") as fh:
        meta = []
        while True:
            try:
                meta.append(pickle.load(fh))
            except EOFError:
                break
    assert meta == [("Parameters", "/W"), (MLP, (3, 4), "/_0/"), ("LookupParameters", "/E")]
    heads = [line.split()[1] for line in open(base + ".data") if line.startswith("#")]
    assert heads == ["/W", "/_0/_0", "/_0/_1", "/_0/_2", "/E"]

    pc2 = dy.ParameterCollection()
    W2, mlp2, E2 = dy.load(base, pc2)
    assert isinstance(mlp2, MLP) and mlp2.spec == (3, 4)
    assert W2.name() == "/W" and E2.name() == "/E"
    np.testing.assert_array_equal(W2.as_array(), W.as_array())
    np.testing.assert_array_equal(E2.as_array(), E.as_array())
    for a, b in ((mlp.W, mlp2.W), (mlp.b, mlp2.b), (mlp.E, mlp2.E)):
        np.testing.assert_array_equal(a.as_array(), b.as_array())

    pc3 = dy.ParameterCollection()
    gen = dy.load_generator(base, pc3)
    first = next(gen)
    assert first.name() == "/W"
    assert len(list(gen)) == 2


def test_dy_save_rejects_unsavable_objects(tmp_path):
    base = str(tmp_path / "model")
    with pytest.raises(TypeError, match="not savable"):
        dy.save(base, [object()])
    assert no_temp_files(tmp_path)


# ---------------------------------------------------------------- atomic saves


def test_failed_rename_keeps_old_file(tmp_path, monkeypatch):
    pc = dy.ParameterCollection()
    p = pc.add_parameters(3, init=1.0)
    f = tmp_path / "m.txt"
    pc.save(str(f))
    old = f.read_bytes()
    p.set_value([5.0, 6.0, 7.0])

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        pc.save(str(f))
    monkeypatch.undo()
    assert f.read_bytes() == old
    assert no_temp_files(tmp_path)


def test_failed_write_midway_keeps_old_file(tmp_path, monkeypatch):
    pc = dy.ParameterCollection()
    p = pc.add_parameters(50, init=1.0)
    f = tmp_path / "m.txt"
    pc.save(str(f))
    old = f.read_bytes()
    p.set_value(np.arange(50.0))
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            raise OSError(28, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()
            return False

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: HalfWriter(real_fdopen(fd, *a, **k)))
    with pytest.raises(OSError, match="No space left"):
        pc.save(str(f))
    with pytest.raises(OSError, match="No space left"):
        dy.save(str(tmp_path / "model"), [p])
    monkeypatch.undo()
    assert f.read_bytes() == old
    assert no_temp_files(tmp_path)
    assert not (tmp_path / "model.data").exists()


def test_dy_save_is_all_or_nothing(tmp_path):
    pc = dy.ParameterCollection()
    W = pc.add_parameters(2, init=1.0, name="W")
    base = str(tmp_path / "model")
    dy.save(base, [W])
    data, meta = open(base + ".data", "rb").read(), open(base + ".meta", "rb").read()

    class Unpicklable(MLP):
        pass

    bad = Unpicklable(pc, 2, 2)  # a local class cannot be pickled
    bad.spec = (2, 2)
    W.set_value([3.0, 4.0])
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        dy.save(base, [W, bad])
    assert open(base + ".data", "rb").read() == data
    assert open(base + ".meta", "rb").read() == meta
    assert no_temp_files(tmp_path)


# ---------------------------------------------------------------- mismatched loads leave everything unchanged


def _three():
    pc = dy.ParameterCollection()
    a = pc.add_parameters((2, 3), init=1.0)
    b = pc.add_parameters(4, init=2.0)
    E = pc.add_lookup_parameters((5, 2), init=3.0)
    return pc, (a, b, E)


def _snapshot(items):
    return [x.as_array().copy() for x in items]


def _unchanged(items, snap):
    for x, s in zip(items, snap, strict=True):
        np.testing.assert_array_equal(x.as_array(), s)


def test_shape_mismatch_names_parameter_and_shapes(tmp_path):
    f = tmp_path / "m.txt"
    f.write_text("#Parameter# /a {2,3} 97 ZERO_GRAD\n" + vals(*range(6))
                 + "#Parameter# /b {2,2} 65 ZERO_GRAD\n" + vals(1, 2, 3, 4)
                 + "#LookupParameter# /E {2,5} 161 ZERO_GRAD\n" + vals(*range(10)))
    pc, items = _three()
    snap = _snapshot(items)
    with pytest.raises(ValueError) as ei:
        pc.populate(str(f))
    msg = str(ei.value)
    assert "/b" in msg and "{2,2}" in msg and "{4}" in msg and str(f) in msg
    _unchanged(items, snap)  # /a matched but was not written either


def test_lookup_row_count_mismatch(tmp_path):
    f = tmp_path / "m.txt"
    f.write_text("#Parameter# /a {2,3} 97 ZERO_GRAD\n" + vals(*range(6))
                 + "#Parameter# /b {4} 65 ZERO_GRAD\n" + vals(1, 2, 3, 4)
                 + "#LookupParameter# /E {2,6} 193 ZERO_GRAD\n" + vals(*range(12)))
    pc, items = _three()
    snap = _snapshot(items)
    with pytest.raises(ValueError, match=r"/E.*\{2,6\}.*\{2,5\}"):
        pc.populate(str(f))
    _unchanged(items, snap)


@pytest.mark.parametrize("extra", [True, False])
def test_count_mismatch(tmp_path, extra):
    text = ("#Parameter# /a {2,3} 97 ZERO_GRAD\n" + vals(*range(6))
            + "#LookupParameter# /E {2,5} 161 ZERO_GRAD\n" + vals(*range(10)))
    if extra:
        text = ("#Parameter# /a {2,3} 97 ZERO_GRAD\n" + vals(*range(6))
                + "#Parameter# /b {4} 65 ZERO_GRAD\n" + vals(1, 2, 3, 4)
                + "#Parameter# /c {4} 65 ZERO_GRAD\n" + vals(1, 2, 3, 4)
                + "#LookupParameter# /E {2,5} 161 ZERO_GRAD\n" + vals(*range(10)))
    f = tmp_path / "m.txt"
    f.write_text(text)
    pc, items = _three()
    snap = _snapshot(items)
    with pytest.raises(ValueError, match="parameter"):
        pc.populate(str(f))
    _unchanged(items, snap)


def test_single_parameter_mismatch_and_missing_key(tmp_path):
    f = tmp_path / "m.txt"
    f.write_text("#Parameter# /a {3,2} 97 ZERO_GRAD\n" + vals(*range(6)))
    pc, (a, b, E) = _three()
    with pytest.raises(ValueError, match=r"\{2,3\}.*\{3,2\}"):
        a.populate(str(f), "/a")
    np.testing.assert_array_equal(a.as_array(), np.ones((2, 3)))
    with pytest.raises(KeyError, match="/zz"):
        a.populate(str(f), "/zz")
    with pytest.raises(KeyError, match="/zz"):
        pc.load_param(str(f), "/zz")
    with pytest.raises(ValueError, match="non-empty key"):
        pc.load_param(str(f), "")
    n = len(pc.parameters_list())
    with pytest.raises(KeyError):
        pc.load_lookup_param(str(f), "/a")  # /a is not a lookup record
    assert len(pc.parameters_list()) == n


# ---------------------------------------------------------------- damaged files


GOOD = "#Parameter# /a {2,3} 97 ZERO_GRAD\n" + vals(*range(6)) + "#Parameter# /b {4} 65 ZERO_GRAD\n" + vals(1, 2, 3, 4)


@pytest.mark.parametrize(
    "text, line",
    [
        (GOOD[: GOOD.index("#Parameter# /b") + 40], 3),  # truncated inside the values of /b
        (GOOD[: GOOD.index("#Parameter# /b")] + "#Parameter# /b {4} 65 ZERO_GRAD\n", 3),  # header, no values
        (GOOD.replace("+3.00000000e+00", "+3.0000abc0e+00", 1), 1),  # not a number
        (GOOD.replace("#Parameter# /b", "#Paramter# /b"), 3),  # bad record kind
        (GOOD.replace("{4}", "{4,x}"), 3),  # bad dimension
        (GOOD.replace("97 ZERO_GRAD\n", "97 FULL_GRAD\n"), 1),  # promised gradients are missing
    ],
    ids=["truncated", "no-values", "not-a-number", "bad-kind", "bad-dim", "missing-grads"],
)
def test_damaged_file_says_so(tmp_path, text, line):
    f = tmp_path / "bad.txt"
    f.write_text(text)
    pc, items = _three()
    a, b = items[0], items[1]
    snap = _snapshot(items)
    with pytest.raises(ValueError, match=rf"bad\.txt.*line {line}\b"):
        pc.populate(str(f))
    with pytest.raises(ValueError, match=r"bad\.txt"):
        a.populate(str(f), "/a")
    _unchanged(items, snap)
    del b


def test_missing_file(tmp_path):
    pc = dy.ParameterCollection()
    pc.add_parameters(2)
    with pytest.raises(OSError, match="nope.txt"):
        pc.populate(str(tmp_path / "nope.txt"))


def test_read_records_parses_what_format_record_writes():
    r = dio.Record("#LookupParameter#", "/E", (2, 3), np.arange(6.0))
    text = dio.format_record(r)
    assert text.startswith("#LookupParameter# /E {2,3} 97 ZERO_GRAD\n")
    r2 = dio.Record("#Parameter#", "/W", (2,), np.array([1.0, 2.0]), np.array([0.5, -0.5]))
    assert dio.format_record(r2) == "#Parameter# /W {2} 66 FULL_GRAD\n" + vals(1, 2) + vals(0.5, -0.5)


def test_saved_files_get_ordinary_permissions(tmp_path):
    # the temporary file must not leave the model readable by its owner only
    mask = os.umask(0o022)
    try:
        pc = dy.ParameterCollection()
        p = pc.add_parameters(2)
        pc.save(str(tmp_path / "m.txt"))
        dy.save(str(tmp_path / "model"), [p])
    finally:
        os.umask(mask)
    for name in ("m.txt", "model.data", "model.meta"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o644, name

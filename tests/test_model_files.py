"""Model files at the edges: foreign bytes, names that differ, non-finite values, targets that must not be
replaced, leftovers of killed saves, and the safetensors format."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import io as dio


class MLP:
    """A savable object in DyNet's protocol: ``spec``, ``from_spec`` and ``param_collection()``."""

    def __init__(self, pc: dy.ParameterCollection, n_in: int, n_hid: int) -> None:
        self.pc = pc.add_subcollection()
        self.W = self.pc.add_parameters((n_hid, n_in))
        self.spec = (n_in, n_hid)

    def param_collection(self) -> dy.ParameterCollection:
        return self.pc

    @staticmethod
    def from_spec(spec, pc):
        return MLP(pc, *spec)


def _model(named: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    pc = dy.ParameterCollection()
    W = pc.add_parameters((3, 4), name="W" if named else "")
    b = pc.add_parameters(3, name="b" if named else "")
    E = pc.add_lookup_parameters((6, 2), name="E" if named else "")
    W.set_value(rng.standard_normal((3, 4)))
    b.set_value(rng.standard_normal(3))
    E.init_from_array(rng.standard_normal((6, 2)))
    return pc, [W, b, E]


def _values(items):
    return [x.as_array().copy() for x in items]


def _temps(folder) -> list[str]:
    return [f for f in os.listdir(folder) if ".tmp-" in f]


# ---------------------------------------------------------------- foreign and damaged files


@pytest.mark.parametrize("content", [bytes(range(256)) * 8, b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
                                     b"hello world\nthis is text\n"], ids=["random", "empty", "png", "text"])
@pytest.mark.parametrize("suffix", [".txt", ".safetensors"])
def test_a_file_that_is_not_a_model_names_the_file(tmp_path, content, suffix):
    f = tmp_path / ("junk" + suffix)
    f.write_bytes(content)
    pc, items = _model()
    before = _values(items)
    if not content and suffix == ".txt":  # an empty text file holds no records: a count mismatch
        with pytest.raises(ValueError, match=r"junk\.txt.*Number of parameter"):
            pc.populate(str(f))
    else:
        with pytest.raises(ValueError, match=rf"junk{suffix.replace('.', '[.]')}: not a DyNet-format model"):
            pc.populate(str(f))
    for x, v in zip(items, before):
        np.testing.assert_array_equal(x.as_array(), v)


# ---------------------------------------------------------------- names


def test_populate_by_position_warns_about_each_name_that_differs(tmp_path):
    f = str(tmp_path / "m.txt")
    src, src_items = _model(named=True)
    src.save(f)
    dst, items = _model(named=False, seed=1)
    with pytest.warns(UserWarning, match=r"3 parameter name\(s\) differ: 'W' in the file -> '_0' in the model; "
                                         r"'b' in the file -> '_1'.*'E' in the file"):
        dst.populate(f)
    for x, y in zip(items, src_items):  # still loaded, by position, as DyNet does
        np.testing.assert_array_equal(x.as_array(), y.as_array())


def test_strict_populate_raises_and_loads_nothing(tmp_path):
    f = str(tmp_path / "m.txt")
    _model(named=True)[0].save(f)
    dst, items = _model(named=False, seed=1)
    before = _values(items)
    with pytest.raises(ValueError, match=r"m\.txt: 3 parameter name\(s\) differ.*strict=True"):
        dst.populate(f, strict=True)
    for x, v in zip(items, before):
        np.testing.assert_array_equal(x.as_array(), v)


def test_same_names_load_silently_under_another_prefix(tmp_path):
    f = str(tmp_path / "m.txt")
    outer = dy.ParameterCollection()
    sub = outer.add_subcollection("enc")
    sub.add_parameters(2, name="W")
    sub.save(f)
    other = dy.ParameterCollection().add_subcollection("dec")
    other.add_parameters(2, name="W")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other.populate(f)


# ---------------------------------------------------------------- non-finite values


@pytest.mark.parametrize("suffix", [".txt", ".safetensors"])
def test_nan_or_inf_in_a_file_warns_naming_the_parameter(tmp_path, suffix):
    f = str(tmp_path / ("m" + suffix))
    pc, (W, b, E) = _model()
    b.set_value(np.array([1.0, np.nan, np.inf]))
    pc.save(f)
    dst, items = _model(seed=2)
    with pytest.warns(RuntimeWarning, match=r"parameter /b holds NaN or Inf"):
        dst.populate(f)
    assert np.isnan(items[1].as_array()[1])


# ---------------------------------------------------------------- targets that must not be replaced


def test_saving_over_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    pc, _ = _model()
    with pytest.raises(OSError, match=r"pipe: it is not a regular file"):
        pc.save(str(fifo))
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    os.mkfifo(tmp_path / "model.meta")  # dy.save checks both of its targets before writing either
    with pytest.raises(OSError, match=r"model\.meta: it is not a regular file"):
        dy.save(str(tmp_path / "model"), [_model()[1][0]])
    assert not (tmp_path / "model.data").exists()
    assert _temps(tmp_path) == []


def test_saving_over_a_directory_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match="it is a directory"):
        _model()[0].save(str(tmp_path / "d"))


@pytest.mark.parametrize("suffix", [".txt", ".safetensors"])
def test_saving_over_a_write_protected_file_is_refused(tmp_path, suffix):
    f = tmp_path / ("m" + suffix)
    f.write_bytes(b"keep me")
    os.chmod(f, 0o444)  # the checks read the mode bits: CI runs as root, which bypasses them
    with pytest.raises(PermissionError, match="write-protected"):
        _model()[0].save(str(f))
    assert f.read_bytes() == b"keep me"
    assert _temps(tmp_path) == []


def test_saving_through_a_symlink_writes_its_target(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    pc, items = _model()
    pc.save(str(link))
    assert link.is_symlink() and real.read_text().startswith("#Parameter# /W")


# ---------------------------------------------------------------- temporary files


def test_temporary_files_name_target_and_process(tmp_path, monkeypatch):
    seen = []
    real = dio._open_temp

    def spy(target):
        fd, tmp = real(target)
        seen.append(os.path.basename(tmp))
        return fd, tmp

    monkeypatch.setattr(dio, "_open_temp", spy)
    _model()[0].save(str(tmp_path / "model.txt"))
    assert seen and seen[0].startswith(".model.txt.tmp-") and f"-{os.getpid()}-" in seen[0]
    assert _temps(tmp_path) == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_leftovers_of_dead_saves_are_removed_live_ones_kept(tmp_path):
    target = tmp_path / "model.txt"
    prefix = dio._temp_prefix(str(target))
    dead = tmp_path / f"{prefix}{_dead_pid()}-abcd1234"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = tmp_path / f"{prefix}{sleeper.pid}-abcd1234"
        mine = tmp_path / f"{prefix}{os.getpid()}-ffff0000"  # a concurrent save in this very process
        other_target = tmp_path / f"{dio._temp_prefix(str(tmp_path / 'other.txt'))}{_dead_pid()}-00000000"
        for p in (dead, live, mine, other_target):
            p.write_text("partial")
        _model()[0].save(str(target))
        assert not dead.exists()
        assert live.exists() and mine.exists()  # never delete a file whose owner may still write it
        assert other_target.exists()  # another target's leftovers are that target's business
    finally:
        sleeper.kill()
        sleeper.wait()


# ---------------------------------------------------------------- safetensors


def test_safetensors_round_trip_of_a_collection(tmp_path):
    f = str(tmp_path / "m.safetensors")
    src, src_items = _model()
    src.save(f)
    dst, items = _model(seed=3)
    dst.populate(f)
    for x, y in zip(items, src_items):
        np.testing.assert_array_equal(x.as_array(), y.as_array())
    W = dst.add_parameters((3, 4), name="W2")
    W.populate(f, "/W")
    np.testing.assert_array_equal(W.as_array(), src_items[0].as_array())
    L = dy.ParameterCollection().load_lookup_param(f, "/E")
    np.testing.assert_array_equal(L.as_array(), src_items[2].as_array())


def test_safetensors_and_text_hold_the_same_values(tmp_path):
    src, src_items = _model()
    src.save(str(tmp_path / "m.txt"))
    src.save(str(tmp_path / "m.safetensors"))
    a = dio.read_records(str(tmp_path / "m.txt"))
    b = dio.read_records(str(tmp_path / "m.safetensors"))
    assert [(r.kind, r.name, r.dims) for r in a] == [(r.kind, r.name, r.dims) for r in b]
    for r, s in zip(a, b):
        np.testing.assert_allclose(r.values, s.values, rtol=1e-7)


def test_dy_save_and_load_with_safetensors(tmp_path):
    pc = dy.ParameterCollection()
    mlp = MLP(pc, 3, 2)
    E = pc.add_lookup_parameters((4, 2), name="emb")
    base = str(tmp_path / "model.safetensors")
    dy.save(base, [mlp, E])
    assert os.path.exists(base) and os.path.exists(base + ".meta")
    pc2 = dy.ParameterCollection()
    mlp2, E2 = dy.load(base, pc2)
    np.testing.assert_array_equal(mlp2.W.as_array(), mlp.W.as_array())
    np.testing.assert_array_equal(E2.as_array(), E.as_array())


def test_safetensors_append_is_refused_and_nothing_changes(tmp_path):
    f = tmp_path / "m.safetensors"
    _model()[0].save(str(f))
    before = f.read_bytes()
    with pytest.raises(ValueError, match="appending to a .safetensors file is not supported"):
        _model(seed=4)[0].save(str(f), append=True)
    assert f.read_bytes() == before and _temps(tmp_path) == []


def test_safetensors_shape_mismatch_leaves_the_model_untouched(tmp_path):
    f = str(tmp_path / "m.safetensors")
    _model()[0].save(f)
    pc = dy.ParameterCollection()
    a = pc.add_parameters((3, 4))
    pc.add_parameters(5)
    pc.add_lookup_parameters((6, 2))
    before = a.as_array().copy()
    with pytest.raises(ValueError, match=r"m\.safetensors: Dimensions of parameter /b"):
        pc.populate(f)
    np.testing.assert_array_equal(a.as_array(), before)


def test_values_are_written_in_chunks_with_or_without_the_c_formatter(monkeypatch):
    v = np.random.default_rng(5).standard_normal(2 * dio.CHUNK + 7).astype(np.float32)
    v[:4] = [0.0, np.inf, -np.inf, 1e-40]
    want = ("".join("%+.8e " % x for x in v.astype(np.float64)) + "\n").encode()
    chunks = list(dio._values_chunks(v))
    assert len(chunks) == 3 and b"".join(chunks) == want
    monkeypatch.setattr(dio, "_format_values_c", None)  # a build without the C accelerator
    assert b"".join(dio._values_chunks(v)) == want

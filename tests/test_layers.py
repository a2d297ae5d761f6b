"""The front end's layers: the format layer alone, the graph renewed through the process state's
listener, and the import-linter contracts of pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import dynet_api as dy
from dynet_api import config, io


@pytest.mark.parametrize("suffix", [".txt", ".safetensors"])
def test_the_format_layer_writes_and_reads_named_arrays_without_parameters(tmp_path, suffix):
    """io.py knows records, not parameters: plain arrays in, the same values (column-major) out."""
    w = np.arange(6, dtype=np.float32).reshape(2, 3) / 4 - 0.5
    table = np.arange(12, dtype=np.float32).reshape(3, 4)  # a lookup record: row dims (3,), 4 rows
    entries = [(io.PARAM, "/w", (2, 3), lambda: w), (io.LOOKUP, "/E", (3, 4), lambda: table)]
    fname = str(tmp_path / f"m{suffix}")
    io.write_records(fname, entries)
    got = io.read_records(fname)
    assert [(r.kind, r.name, r.dims) for r in got] == [(io.PARAM, "/w", (2, 3)), (io.LOOKUP, "/E", (3, 4))]
    np.testing.assert_array_equal(got[0].values, [-0.5, 0.25, -0.25, 0.5, 0.0, 0.75])  # by columns
    np.testing.assert_array_equal(got[1].values, table.reshape(-1, order="F"))
    assert io.find_record(fname, "/E", io.LOOKUP).dims == (3, 4)
    with pytest.raises(KeyError, match="Could not find key /w in the model file"):
        io.find_record(fname, "/w", io.LOOKUP)


def test_set_backend_renews_the_graph_through_the_process_states_listener():
    """config (below the graph) tells the graph of a new backend; the old expressions go stale."""
    prev = config.backend().name
    other = "reference_numpy" if prev != "reference_numpy" else "cpu_eigen"
    dy.renew_cg()
    x = dy.inputVector([1.0, 2.0])
    ver = dy.cg_version()
    try:
        dy.set_backend(other)
        assert dy.cg_version() == ver + 1
        with pytest.raises(dy.StaleExpressionError):
            dy.tanh(x)
        assert dy.tanh(dy.inputVector([0.0])).npvalue().tolist() == [0.0]
    finally:
        dy.set_backend(prev)


def test_the_layer_contracts_hold():
    """`lint-imports` (CI runs it too) with the contracts of pyproject.toml: no import upward."""
    exe = shutil.which("lint-imports")
    root = Path(__file__).resolve().parent.parent
    if exe is None or not (root / "pyproject.toml").exists():
        pytest.skip("import-linter is not installed here (pip install import-linter)")
    r = subprocess.run([exe], cwd=root, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 kept, 0 broken" in r.stdout

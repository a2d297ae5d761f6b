"""The README's main job and xor.py run end to end on every available backend and learn."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from dynet_api.plugins import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _backends() -> list:
    out = []
    for name in registry.names():
        rec = registry.load(name)
        out.append(pytest.param(name, marks=[] if rec.backend else pytest.mark.skip(reason=f"{name}: {rec.error}")))
    return out


def _run(script: str, *args: str) -> str:
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), *args],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.mark.parametrize("backend", _backends())
def test_xor_learns(backend):
    out = _run("xor.py", "--dynet-backend", backend, "--dynet-seed", "3")
    assert "accuracy 4/4" in out
    losses = [float(x) for x in re.findall(r"loss ([0-9.]+)", out)]
    assert losses[-1] < losses[0] / 4


@pytest.mark.parametrize("backend", _backends())
def test_digits_main_job_reaches_stated_accuracy(backend):
    out = _run("digits_mlp.py", "--dynet-backend", backend, "--no-progress")
    assert f"backend {backend}" in out
    acc = float(re.search(r"final held-out accuracy: ([0-9.]+)", out).group(1))
    assert acc >= 0.95, out  # the README states about 97%
    losses = [float(x) for x in re.findall(r"train loss ([0-9.]+)", out)]
    assert losses[-1] < losses[0] / 5

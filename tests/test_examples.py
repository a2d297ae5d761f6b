"""The examples run on every available backend and learn.

The README's main job (digits_mlp.py) and xor.py run in full; the DyNet paper's
programs run for a few steps.

Each example runs in a subprocess with ``--dynet-backend NAME --quick``; its
per-epoch training loss must fall and it must print its final metric line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from dynet_api.plugins import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# script, extra arguments, the final metric line's pattern
EXAMPLES = [
    ("rnnlm.py", [], r"final held-out perplexity: ([0-9.]+)"),
    ("bilstm_tagger.py", [], r"final held-out tag accuracy: ([0-9.]+)"),
    ("bilstm_tagger.py", ["--chars"], r"final held-out tag accuracy: ([0-9.]+)"),
    ("treelstm.py", [], r"final held-out node accuracy: ([0-9.]+)"),
    ("attention.py", [], r"final held-out exact match: ([0-9.]+)"),
]


def _backends() -> list:
    out = []
    for name in registry.names():
        rec = registry.load(name)
        out.append(pytest.param(name, marks=[] if rec.backend else pytest.mark.skip(reason=f"{name}: {rec.error}")))
    return out


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("script,extra,metric", EXAMPLES, ids=[" ".join([e[0]] + e[1]) for e in EXAMPLES])
def test_example_learns(script, extra, metric, backend):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), "--quick", "--no-progress",
                        "--dynet-backend", backend, "--dynet-seed", "7", *extra],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    losses = [float(x) for x in re.findall(r"epoch \d+: train loss ([0-9.]+)", out)]
    assert len(losses) >= 2, out
    assert losses[-1] < 0.9 * losses[0], out  # the loss falls over the few epochs
    m = re.search(metric, out)
    assert m, out
    assert float(m.group(1)) >= 0.0


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

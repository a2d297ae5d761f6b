"""examples/plugin_template: installed with pip, its backend shows up in ``backends`` and passes ``verify``.

Installed into a temporary ``--target`` folder (no change to the environment)
and used through PYTHONPATH in fresh interpreters, which is how an entry
point of a separately installed package is found.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[1] / "examples" / "plugin_template"
MINIMAL = Path(__file__).resolve().parents[1] / "examples" / "plugin_template_minimal"


def _setuptools_builds_wheels() -> bool:
    """setuptools >= 70.1 builds wheels by itself; older ones need the separate ``wheel`` package."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    from importlib.metadata import version

    major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _install(tmp_path_factory, template: Path) -> dict:
    """pip-install a template folder into a temporary target; the environment that finds it."""
    tmp = tmp_path_factory.mktemp(template.name)
    src = tmp / "src"
    shutil.copytree(template, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    # Without network access when a wheel-capable setuptools is already here (the test extra pins one);
    # else pip fetches it into an isolated build.
    isolation = ["--no-build-isolation"] if _setuptools_builds_wheels() else []
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *isolation,
                        "--target", str(target), str(src)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.fail(f"pip install of the template failed:\n{r.stdout}\n{r.stderr}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("DYNET_BACKEND", None)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    return _install(tmp_path_factory, TEMPLATE)


@pytest.fixture(scope="module")
def installed_minimal(tmp_path_factory) -> dict:
    return _install(tmp_path_factory, MINIMAL)


def dynet_api(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dynet_api", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_template_backend_is_listed(installed):
    r = dynet_api(installed, "backends")
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith("counting_numpy "))
    assert "available" in row and "-10" in row
    total = int(row.split("/")[1].split()[0])
    assert f"{total - 1}/{total}" in row  # everything but its one declared gap


def test_template_backend_passes_verify(installed):
    r = dynet_api(installed, "verify", "--backend", "counting_numpy", "--edge-examples", "5")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "-- PASS" in r.stdout
    assert "declared unsupported (listed, not failures):\n  lgamma:" in r.stdout


def test_template_backend_counts_and_is_not_the_default(installed):
    code = ("import dynet_api as dy\n"
            "assert dy.backend_name() != 'counting_numpy', dy.backend_name()  # priority -10: never the default\n"
            "b = dy.set_backend('counting_numpy')\n"
            "x = dy.inputTensor([1.0, 2.0])\n"
            "print(round(float(dy.sum_elems(dy.tanh(x)).scalar_value()), 5), b.calls[('forward', 'tanh')])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=installed, timeout=120)
    assert r.returncode == 0, r.stderr
    value, calls = r.stdout.split()
    assert float(value) == pytest.approx(math.tanh(1.0) + math.tanh(2.0), abs=1e-5)
    assert calls == "1"  # one forward call of the tanh kernel


def test_minimal_template_written_from_scratch_passes_verify(installed_minimal):
    """The from-scratch template inherits nothing but the contract's base class, implements every
    required method itself, and passes verify; the text report gives each declared gap its reason."""
    r = dynet_api(installed_minimal, "verify", "--backend", "minimal_numpy", "--edge-examples", "5")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "-- PASS" in r.stdout
    assert "conv2d: not in the minimal template" in r.stdout
    code = ("import dynet_backend_minimal as m, dynet_api.backend as b\n"
            "optional = {'make_executor', 'supported_ops', 'update_all', 'sq_norm_all', 'set_autobatch'}\n"
            "required = [k for k in b.contract_methods() if k not in optional]\n"
            "missing = [k for k in required if k not in vars(m.MinimalBackend)]\n"
            "assert not missing, missing\n"
            "assert m.MinimalBackend.__mro__[1:] == (b.Backend, object), m.MinimalBackend.__mro__\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=installed_minimal,
                       timeout=60)
    assert r.returncode == 0, r.stderr

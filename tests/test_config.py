"""DyNet's ``--dynet-*`` flags, ``dynet_config.set`` and backend choice.

Flags are read when ``dynet_api`` is imported, so everything that depends on the
command line or the environment runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dynet_api import config


def run(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -c code args...`` with a clean DYNET_BACKEND unless ``env`` sets one."""
    e = {k: v for k, v in os.environ.items() if k != "DYNET_BACKEND"}
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=e, timeout=60)


VALUE = "import dynet_api as dy; dy.renew_cg(); print(dy.inputVector([1]).value(), dy.backend_name())"
DRAW = ("import dynet_api as dy, json; pc = dy.ParameterCollection(); W = pc.add_parameters((3, 2)); "
        "E = pc.add_lookup_parameters((4, 2)); print(json.dumps([W.as_array().tolist(), E.as_array().tolist()]))")


# ---------------------------------------------------------------- parse_argv


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--dynet-seed", "5"], {"random_seed": 5}),
        (["--dynet-seed=5"], {"random_seed": 5}),
        (["--dynet_seed", "5"], {"random_seed": 5}),
        (["--dynet-backend", "reference_numpy"], {"backend": "reference_numpy"}),
        (["--dynet-backend=cpu_eigen"], {"backend": "cpu_eigen"}),
        (["--dynet-mem", "512"], {"mem": "512"}),
        (["--dynet-mem=1024,512,256"], {"mem": "1024,512,256"}),
        (["--dynet-weight-decay", "1e-6"], {"weight_decay": 1e-6}),
        (["--dynet_weight_decay=0.25"], {"weight_decay": 0.25}),
        (["--dynet-autobatch", "1"], {"autobatch": 1}),
        (["--dynet-autobatch=0"], {"autobatch": 0}),
        (["train.py", "--epochs", "3", "--dynet-seed", "9", "-v", "--dynet-autobatch", "1", "x"],
         {"random_seed": 9, "autobatch": 1}),
        (["--epochs", "3", "--dynet-something-else", "4"], {}),
    ],
)
def test_parse_argv(argv, expected):
    before = list(argv)
    assert config.parse_argv(argv) == expected
    assert argv == before  # the program's own arguments are left alone


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--dynet-seed"], "--dynet-seed needs a value"),
        (["--dynet-seed", "abc"], "--dynet-seed: bad value 'abc'"),
        (["--dynet-autobatch=yes"], "--dynet-autobatch: bad value"),
        (["--dynet-weight-decay", "1.5"], "weight decay parameter must be between 0 and 1"),
        (["--dynet-weight-decay=-0.1"], "weight decay parameter must be between 0 and 1"),
    ],
)
def test_parse_argv_errors(argv, match):
    with pytest.raises(ValueError, match=match):
        config.parse_argv(argv)


def test_dynet_config_set_rejects_unknown_and_bad_settings():
    from dynet_api import dynet_config

    with pytest.raises(TypeError):
        dynet_config.set(no_such_setting=1)
    with pytest.raises(ValueError, match="weight decay"):
        config.set_values(weight_decay=2.0)
    assert "random_seed" in dynet_config.get()


# ---------------------------------------------------------------- backend choice in a fresh interpreter


def test_unknown_backend_flag_lists_installed_names():
    r = run("import dynet_api as dy; dy.renew_cg(); dy.inputVector([1]).value()", "--dynet-backend", "nope")
    assert r.returncode != 0
    assert "unknown backend 'nope'" in r.stderr
    assert "reference_numpy" in r.stderr


def test_unknown_backend_from_environment():
    r = run(VALUE, env={"DYNET_BACKEND": "nope"})
    assert r.returncode != 0
    assert "unknown backend 'nope'" in r.stderr and "reference_numpy" in r.stderr


def test_unknown_backend_from_dynet_config():
    r = run("from dynet_api import dynet_config; dynet_config.set(backend='nope'); " + VALUE)
    assert r.returncode != 0
    assert "unknown backend 'nope'" in r.stderr and "reference_numpy" in r.stderr


@pytest.mark.parametrize("args", [["--dynet-backend", "reference_numpy"], ["--dynet-backend=reference_numpy"],
                                  ["--dynet_backend", "reference_numpy"]])
def test_backend_flag_works(args):
    r = run(VALUE, *args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1.0", "reference_numpy"]


def test_dynet_config_set_backend_before_first_use_wins_over_environment():
    r = run("from dynet_api import dynet_config; dynet_config.set(backend='reference_numpy'); " + VALUE,
            env={"DYNET_BACKEND": "nope"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1.0", "reference_numpy"]


def test_flag_wins_over_environment():
    r = run(VALUE, "--dynet-backend", "reference_numpy", env={"DYNET_BACKEND": "nope"})
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- seed, weight decay, mem, autobatch


def test_seed_flag_and_dynet_config_seed_give_the_same_initial_values():
    a = run(DRAW, "--dynet-seed", "7")
    b = run(DRAW, "--dynet-seed=7")
    c = run("from dynet_api import dynet_config; dynet_config.set(random_seed=7); " + DRAW)
    d = run(DRAW, "--dynet-seed", "8")
    for r in (a, b, c, d):
        assert r.returncode == 0, r.stderr
    assert json.loads(a.stdout) == json.loads(b.stdout) == json.loads(c.stdout)
    assert json.loads(a.stdout) != json.loads(d.stdout)


def test_weight_decay_flag():
    code = ("import dynet_api as dy; pc = dy.ParameterCollection(); p = pc.add_parameters(2, init=1.0); "
            "t = dy.SimpleSGDTrainer(pc); dy.renew_cg(); l = dy.sum_elems(p * 0.0); l.forward(); l.backward(); "
            "t.update(); print(pc.get_weight_decay(), *p.as_array().tolist())")
    r = run(code, "--dynet-weight-decay", "0.25")
    assert r.returncode == 0, r.stderr
    assert [float(x) for x in r.stdout.split()] == [0.25, 0.75, 0.75]


def test_bad_weight_decay_flag_fails_at_import():
    r = run("import dynet_api", "--dynet-weight-decay", "2")
    assert r.returncode != 0
    assert "weight decay parameter must be between 0 and 1" in r.stderr


def test_mem_and_autobatch_flags_are_accepted():
    code = ("import dynet_api as dy; from dynet_api import dynet_config; dy.renew_cg(); "
            "v = dy.esum([dy.inputVector([1, 2]), dy.inputVector([3, 4])]).vec_value(); "
            "g = dynet_config.get(); print(g['mem'], g['autobatch'], *v)")
    r = run(code, "--dynet-mem", "512", "--dynet-autobatch", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["512", "1", "4.0", "6.0"]

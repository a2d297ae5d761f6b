"""The text report of ``verify`` says why a row is unsupported or failed, and shows finite differences only when run."""

from __future__ import annotations

import io

from dynet_api.conformance.compare import Err
from dynet_api.conformance.report import write_text
from dynet_api.conformance.results import FAIL, PASS, UNSUPPORTED, CaseResult
from dynet_api.conformance.runner import Report


def _text(results: list[CaseResult]) -> str:
    out = io.StringIO()
    write_text(Report("b", "reference_numpy", results=results, tolerance="t"), out)
    return out.getvalue()


def _case(section, name, status=PASS, msg=None, fd=None):
    r = CaseResult(section, "b", name, "c0", status=status, value=Err(0.0, 0.0, True))
    if msg:
        r.messages.append(msg)
    if fd:
        r.fd = fd
    return r


def test_unsupported_leaf_and_op_rows_give_their_reason():
    text = _text([_case("op", "tanh"), _case("op", "conv2d", UNSUPPORTED, "declared unsupported by b: no im2col"),
                  _case("leaf", "parameter", UNSUPPORTED, "needs op 'sum_dim'")])
    assert "unsupported: declared unsupported by b: no im2col" in text
    leaf_line = next(line for line in text.splitlines() if line.strip().startswith("parameter"))
    assert leaf_line.rstrip().endswith("unsupported: needs op 'sum_dim'")


def test_failed_trainer_row_gives_its_reason():
    text = _text([_case("trainer", "AdamTrainer", FAIL, "weights differ after 3 updates")])
    assert "FAIL" in text.upper() and "fail: weights differ after 3 updates" in text


def test_finite_difference_column_only_when_that_check_ran():
    without = _text([_case("op", "tanh")])
    assert "finite diff" not in without.splitlines()[2] and "add --fd" in without
    with_fd = _text([_case("op", "tanh", fd={"x0": Err(1e-9, 1e-8, True)})])
    assert "finite diff (reference)" in with_fd and "x0 1.0e-09/1.0e-08" in with_fd and "add --fd" not in with_fd

"""pytest plugin of the conformance suite (entry point ``pytest11: dynet_api_conformance``).

Adds the options that pick what ``dynet_api.conformance.suite`` checks and
lists, at the end of the run, the gaps each checked backend declares::

    pytest --pyargs dynet_api.conformance.suite --conformance-backend my_backend

It does nothing else, so it costs nothing in test runs that do not use it: pytest loads every
installed plugin at start, so this module imports the package only inside its hooks.
"""

from __future__ import annotations


def pytest_addoption(parser) -> None:
    g = parser.getgroup("dynet_api conformance")
    g.addoption("--conformance-backend", action="append", default=[], metavar="NAME",
                help="backend to check (repeatable, or comma-separated); default: every installed backend, "
                     "or $DYNET_API_CONFORMANCE_BACKENDS")
    g.addoption("--conformance-against", default=None, metavar="NAME",
                help="backend giving the expected numbers (default reference_numpy)")
    g.addoption("--conformance-ops", default=None, metavar="A,B",
                help="only these ops (default: the whole op table, or $DYNET_API_CONFORMANCE_OPS)")
    g.addoption("--conformance-edge-examples", type=int, default=None, metavar="N",
                help="hypothesis examples per op for the edge-case test (default 20)")


def pytest_configure(config) -> None:
    from . import selection

    selection.configure(config.getoption("conformance_backend"), config.getoption("conformance_against"),
                        config.getoption("conformance_ops"), config.getoption("conformance_edge_examples"))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    from . import selection

    if not selection.settings.get("used"):
        return
    tr = terminalreporter
    tr.section("dynet_api conformance: declared gaps")
    for t in selection.settings.get("targets", []):
        if t.backend is None:
            tr.write_line(f"{t.name}: not checked ({t.reason})")
            continue
        from ..ops import OP_LIST

        table = {o.name for o in OP_LIST}
        gaps = getattr(t.backend, "unsupported", {}) or {}
        have = len(t.backend.supported_ops() & table)
        tr.write_line(f"{t.name}: implements {have}/{len(table)} ops; declared gaps: {len(gaps) or 'none'}")
        for op, why in sorted(gaps.items()):
            tr.write_line(f"  {op}: {why}")

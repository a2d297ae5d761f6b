"""The conformance suite: checks that a backend computes what the reference computes.

Driven by the op table (:mod:`dynet_api.ops`): every op's samples come from
its entry, so a new op is checked as soon as it is declared.  Shipped inside
``dynet_api`` so that a third-party backend runs it on itself:

* ``python -m dynet_api verify --backend NAME`` (:func:`verify` + :mod:`.report`);
* ``pytest --pyargs dynet_api.conformance.suite --conformance-backend NAME``
  (the pytest plugin registered under ``pytest11``).

Modules: :mod:`.samples` (cases from the op table), :mod:`.compare`
(tolerances), :mod:`.opcheck` (one op sample: values, gradients, finite
differences), :mod:`.leaves`, :mod:`.randomness`, :mod:`.trainercheck`,
:mod:`.edge` (random shapes and attributes), :mod:`.runner`, :mod:`.report`.
"""

from __future__ import annotations

from .compare import TOLERANCES, Tol, tolerance
from .results import CaseResult
from .runner import Report, verify
from .samples import Sample, samples

__all__ = ["verify", "Report", "CaseResult", "Sample", "samples", "tolerance", "Tol", "TOLERANCES"]

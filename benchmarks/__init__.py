"""Speed comparisons with PyTorch (``python -m benchmarks.run``).

``python -m`` puts the checkout first on ``sys.path``, which would make the source
tree's ``dynet_api`` (without its compiled graph accelerator) shadow the installed
one; the checkout is moved to the end so that the installed package is measured.
"""

import os as _os
import sys as _sys

_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if "dynet_api" not in _sys.modules:
    _here = [p for p in _sys.path if _os.path.abspath(p or ".") == _root]
    if _here:
        _sys.path[:] = [p for p in _sys.path if p not in _here] + [_root]

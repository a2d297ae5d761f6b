"""The shipped conformance suite run over every installed backend (see dynet_api/conformance/suite).

Pick backends with ``--conformance-backend NAME`` (pytest plugin from the
package's ``pytest11`` entry point) or ``DYNET_API_CONFORMANCE_BACKENDS``.
"""

from dynet_api.conformance.suite.test_conformance import *  # noqa: F401,F403

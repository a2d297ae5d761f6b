"""dynet_api: DyNet's dynamic-graph programming model on pluggable backends.

``import dynet_api as dy`` runs DyNet 2.x Python programs.  The backend is
chosen on first use: ``dynet_config.set(backend=...)``, ``--dynet-backend NAME``,
``DYNET_BACKEND``, else the highest-priority available backend.
"""

from . import config as _config
from .config import set_backend  # noqa: F401

_config.load_from_command_line()

from . import dynet_config  # noqa: E402,F401
from .builders import *  # noqa: E402,F401,F403
from .dim import Dim  # noqa: E402,F401
from .functions import *  # noqa: E402,F401,F403
from .functions.inputs import MutableExpression  # noqa: E402,F401
from .graph import ComputationGraph, Expression, GraphThreadError, StaleExpressionError  # noqa: E402,F401
from .ops import OPS, DimError, check_attr  # noqa: E402,F401
from .param_files import load, load_generator, save  # noqa: E402,F401
from .params import (  # noqa: E402,F401
    ConstInitializer,
    FromFileInitializer,
    GlorotInitializer,
    IdentityInitializer,
    LookupParameters,
    Model,
    NormalInitializer,
    NumpyInitializer,
    ParameterCollection,
    Parameters,
    PyInitializer,
    SaxeInitializer,
    UniformInitializer,
)
from .session import (  # noqa: E402,F401
    DeviceInfo,
    DynetParams,
    available_devices,
    cg,
    cg_checkpoint,
    cg_revert,
    cg_version,
    dump_cg,
    get_device_info,
    init,
    init_from_params,
    print_graphviz,
    print_text_graphviz,
    renew_cg,
    reset_random_seed,
)
from .tensor import Tensor  # noqa: E402,F401
from .trainers import *  # noqa: E402,F401,F403

__version__ = "0.1.0"
HAVE_CUDA = False


def backend_name() -> str:
    """The name of the backend new graphs run on (chosen now if not yet chosen)."""
    return _config.backend().name

from . import workers as _workers  # noqa: E402,F401  (forked children get their own random streams)

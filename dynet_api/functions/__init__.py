"""DyNet's expression functions: thin wrappers that turn Python arguments into op attributes and
add one node (primitives) or a few (composites, as DyNet writes them).

The modules follow the sections of the op table (:mod:`dynet_api.ops`), each importing only the
ones listed before it:

* :mod:`.arithmetic`: arithmetic, elementwise math (trig and rounding included), gradient control;
* :mod:`.inputs`: inputs, constants, random tensors, parameters and lookups in the graph;
* :mod:`.reductions`: sums, means, moments, extrema, cumulative sums and the softmax family;
* :mod:`.shape`: transpose, reshape, concatenation, selection, picks and ``Expression[...]``;
* :mod:`.losses`: losses and distances;
* :mod:`.linalg`: linear algebra, convolution and pooling;
* :mod:`.nn`: dropout and noise, normalisation and the fused LSTM pieces the builders use;
* :mod:`.evaluation`: evaluating several expressions together, moving one between devices.
"""

from . import arithmetic, evaluation, inputs, linalg, losses, nn, reductions, shape
from .arithmetic import *  # noqa: F403
from .evaluation import *  # noqa: F403
from .inputs import *  # noqa: F403
from .linalg import *  # noqa: F403
from .losses import *  # noqa: F403
from .nn import *  # noqa: F403
from .reductions import *  # noqa: F403
from .shape import *  # noqa: F403

__all__ = [*arithmetic.__all__, *inputs.__all__, *reductions.__all__, *shape.__all__, *losses.__all__,
           *linalg.__all__, *nn.__all__, *evaluation.__all__]

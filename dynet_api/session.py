"""Module-level graph and process functions of DyNet's API (``renew_cg``, ``cg_checkpoint``...)."""

from __future__ import annotations

import sys

from . import config
from .graph import ComputationGraph, _cg, graphviz_text


def renew_cg(immediate_compute: bool = False, check_validity: bool = False, autobatching=None) -> ComputationGraph:
    """Starts a new, empty computation graph; expressions of the old one become stale.

    Args:
        immediate_compute (bool): compute each node's value as soon as it is added.
        check_validity (bool): check every new node's value for NaN and Inf.
        autobatching: if given, turn automatic batching on (truthy) or off for this graph.

    Returns:
        ComputationGraph: the (single) graph.
    """
    return _cg.renew(immediate_compute, check_validity, autobatching)


def cg() -> ComputationGraph:
    """The current computation graph (there is one per process, renewed in place by :func:`renew_cg`)."""
    return _cg


def cg_version() -> int:
    """The version number of the current graph; it grows by one with every :func:`renew_cg`."""
    return _cg.ver


def cg_checkpoint() -> None:
    """Remembers the graph's current size, so that :func:`cg_revert` can drop the nodes added after it."""
    _cg.checkpoint()


def cg_revert() -> None:
    """Drops the nodes added since the last :func:`cg_checkpoint`; their expressions must not be used again."""
    _cg.revert()


def print_text_graphviz() -> None:
    """Prints the current graph in Graphviz's dot format (one line per node)."""
    print(graphviz_text(_cg))


def print_graphviz(**kwargs) -> None:
    """Prints the current graph in Graphviz's dot format.

    Args:
        kwargs: DyNet's display options (``compact``, ``show_dims``...), accepted and ignored.
    """
    print(graphviz_text(_cg))


def dump_cg(filename: str = "", show_values: bool = True, show_gradients: bool = True,
            nan_check_only: bool = False) -> None:
    """Writes one line per node of the current graph: the op, its operands and dims, and its value when
    computed.

    Args:
        filename (str): the file to write; empty: standard output.
        show_values (bool): include the computed values.
        show_gradients (bool): accepted for DyNet compatibility (gradients are not listed).
        nan_check_only (bool): accepted for DyNet compatibility.
    """
    lines = []
    for j, (op, ids, _attrs) in enumerate(_cg.nodes):
        line = f"v{j} = {op.name}({', '.join('v%d' % k for k in ids)}) {_cg.dims[j]}"
        if show_values and j < _cg.n_eval:
            line += f" value={_cg.value_array(j).ravel().tolist()}"
        lines.append(line)
    text = "\n".join(lines) + "\n"
    if filename:
        with open(filename, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def reset_random_seed(seed: int) -> None:
    """Reseeds the backend's random generator (dropout masks, random inputs, initialisers).

    Args:
        seed (int): the new seed.
    """
    config.reset_random_seed(int(seed))


def available_devices() -> list[bytes]:
    """Device names as bytes, as DyNet's Python 3 module returns them."""
    return [d.encode() for d in config.backend().devices]


class DeviceInfo:
    """A device's description, as :func:`get_device_info` returns it.

    Args:
        name (str): the device name (``"CPU"``, ``"GPU:0"``...).
        device_id (int): its position among the backend's devices.
        type (int): DyNet's device type code (-1: unspecified).
    """
    def __init__(self, name: str, device_id: int = 0, type: int = -1) -> None:  # noqa: A002 - DyNet's name
        self.name, self.id, self.type = name, device_id, type


def get_device_info(name: str) -> DeviceInfo:
    """The :class:`DeviceInfo` of a device of the current backend.

    Args:
        name (str): a name from :func:`available_devices`.
    """
    names = [d.decode() for d in available_devices()]
    if name not in names:
        raise ValueError(f"unknown device {name!r}; devices of backend {config.backend().name!r}: {names}")
    return DeviceInfo(name, names.index(name))


class DynetParams:
    """DyNet's explicit initialisation settings; fill them with the ``set_*`` methods, then call ``init()``."""

    def __init__(self) -> None:
        self._values: dict = {}

    def from_args(self, shared_parameters=None) -> None:
        """Reads the ``--dynet-*`` flags of ``sys.argv``.

        Args:
            shared_parameters: accepted for DyNet compatibility.
        """
        self._values.update(config.parse_argv(sys.argv[1:]))

    def from_config(self, conf: dict) -> None:
        """Takes the settings of the dict ``conf`` (keys as in ``dynet_config.set``).

        Args:
            conf (dict): setting name -> value; unknown keys are ignored.
        """
        self._values.update({k: v for k, v in conf.items() if k in config.settings})

    def set_mem(self, mem) -> None:
        """Sets the memory request (accepted; memory is managed by the backend).

        Args:
            mem: megabytes, or DyNet's comma-separated pools.
        """
        self._values["mem"] = mem

    def set_random_seed(self, seed: int) -> None:
        """Sets the random seed.

        Args:
            seed (int): the seed.
        """
        self._values["random_seed"] = int(seed)

    def set_autobatch(self, autobatch) -> None:
        """Turns automatic batching on or off.

        Args:
            autobatch (int): 0 off, non-zero on.
        """
        self._values["autobatch"] = int(autobatch)

    def set_profiling(self, profiling) -> None:
        """Sets the profiling level.

        Args:
            profiling (int): 0 off.
        """
        self._values["profiling"] = int(profiling)

    def set_weight_decay(self, wd: float) -> None:
        """Sets the weight decay applied after each update.

        Args:
            wd (float): lambda, in [0, 1).
        """
        self._values["weight_decay"] = float(wd)

    def set_shared_parameters(self, shared) -> None:
        """Sets DyNet's shared-parameters flag.

        Args:
            shared (bool): the flag.
        """
        self._values["shared_parameters"] = int(bool(shared))

    def set_requested_gpus(self, n: int) -> None:
        """Sets the number of GPUs requested.

        Args:
            n (int): the number of GPUs.
        """
        self._values["requested_gpus"] = int(n)

    def set_gpu_mask(self, mask) -> None:
        """Accepted for DyNet compatibility; has no effect.

        Args:
            mask: DyNet's per-GPU mask.
        """
        pass

    def set_cpu_mode(self) -> None:
        """Requests the CPU (no GPU)."""
        self._values["requested_gpus"] = 0

    def init(self) -> None:
        """Applies these settings (as :func:`init_from_params`)."""
        init_from_params(self)


def init(shared_parameters=None) -> None:
    """Reads the ``--dynet-*`` command-line flags again and applies them (importing the package already did).

    Args:
        shared_parameters: accepted for DyNet compatibility.
    """
    config.load_from_command_line()
    config.configure_from_settings()


def init_from_params(params: DynetParams) -> None:
    """Applies the settings of a :class:`DynetParams`.

    Args:
        params (DynetParams): the settings.
    """
    config.set_values(**params._values)
    if "random_seed" in params._values:
        config.reset_random_seed(int(params._values["random_seed"]))
    config.configure_from_settings()

"""Module-level graph and process functions of DyNet's API (``renew_cg``, ``cg_checkpoint``...)."""

from __future__ import annotations

import sys

from . import config, runtime
from .graph import ComputationGraph, _cg, graphviz_text


def renew_cg(immediate_compute: bool = False, check_validity: bool = False, autobatching=None) -> ComputationGraph:
    return _cg.renew(immediate_compute, check_validity, autobatching)


def cg() -> ComputationGraph:
    return _cg


def cg_version() -> int:
    return _cg.ver


def cg_checkpoint() -> None:
    _cg.checkpoint()


def cg_revert() -> None:
    _cg.revert()


def print_text_graphviz() -> None:
    print(graphviz_text(_cg))


def print_graphviz(**kwargs) -> None:
    print(graphviz_text(_cg))


def dump_cg(filename: str = "", show_values: bool = True, show_gradients: bool = True,
            nan_check_only: bool = False) -> None:
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
    runtime.reset_random_seed(int(seed))


def available_devices() -> list[bytes]:
    """Device names as bytes, as DyNet's Python 3 module returns them."""
    return [d.encode() for d in runtime.backend().devices]


class DeviceInfo:
    def __init__(self, name: str, device_id: int = 0, type: int = -1) -> None:  # noqa: A002 - DyNet's name
        self.name, self.id, self.type = name, device_id, type


def get_device_info(name: str) -> DeviceInfo:
    names = [d.decode() for d in available_devices()]
    if name not in names:
        raise ValueError(f"unknown device {name!r}; devices of backend {runtime.backend().name!r}: {names}")
    return DeviceInfo(name, names.index(name))


class DynetParams:
    """DyNet's explicit initialisation object; ``init()`` applies its settings."""

    def __init__(self) -> None:
        self._values: dict = {}

    def from_args(self, shared_parameters=None) -> None:
        self._values.update(config.parse_argv(sys.argv[1:]))

    def from_config(self, conf: dict) -> None:
        self._values.update({k: v for k, v in conf.items() if k in config.settings})

    def set_mem(self, mem) -> None:
        self._values["mem"] = mem

    def set_random_seed(self, seed: int) -> None:
        self._values["random_seed"] = int(seed)

    def set_autobatch(self, autobatch) -> None:
        self._values["autobatch"] = int(autobatch)

    def set_profiling(self, profiling) -> None:
        self._values["profiling"] = int(profiling)

    def set_weight_decay(self, wd: float) -> None:
        self._values["weight_decay"] = float(wd)

    def set_shared_parameters(self, shared) -> None:
        self._values["shared_parameters"] = int(bool(shared))

    def set_requested_gpus(self, n: int) -> None:
        self._values["requested_gpus"] = int(n)

    def set_gpu_mask(self, mask) -> None:
        pass

    def set_cpu_mode(self) -> None:
        self._values["requested_gpus"] = 0

    def init(self) -> None:
        init_from_params(self)


def init(shared_parameters=None) -> None:
    """Read ``--dynet-*`` flags again (import already did)."""
    config.load_from_command_line()
    runtime.configure_from_settings()


def init_from_params(params: DynetParams) -> None:
    config.set_values(**params._values)
    if "random_seed" in params._values:
        runtime.reset_random_seed(int(params._values["random_seed"]))
    runtime.configure_from_settings()

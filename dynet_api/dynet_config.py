"""DyNet's ``dynet_config`` module: settings made before the first graph is used.

``from dynet_api import dynet_config; dynet_config.set(backend="reference_numpy",
random_seed=1)``.  Settings that pick the backend or the seed take effect when the
first graph is built (the backend is chosen lazily), so calling ``set`` after
``import dynet_api`` works as long as nothing has been computed yet.
"""

from __future__ import annotations

from . import config


def set(mem=None, random_seed=None, autobatch=None, profiling=None, weight_decay=None,  # noqa: A001
        shared_parameters=None, requested_gpus=None, gpu_mask=None, backend=None, threads=None) -> None:
    given = {k: v for k, v in dict(mem=mem, random_seed=random_seed, autobatch=autobatch, profiling=profiling,
                                   weight_decay=weight_decay, shared_parameters=shared_parameters,
                                   requested_gpus=requested_gpus, backend=backend, threads=threads).items()
             if v is not None}
    config.set_values(**given)
    config.configure_from_settings()


def set_gpu(flag: bool = True) -> None:
    config.set_values(requested_gpus=1 if flag else 0)


def gpu() -> bool:
    return bool(config.settings["requested_gpus"])


def get() -> dict:
    return dict(config.settings)

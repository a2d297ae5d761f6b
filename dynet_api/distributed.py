"""Data-parallel training over MPI (``mpiexec -n N python train.py``), through ``mpi4py``.

Each rank runs the same DyNet-style loop on its shard of the data.  ``DistributedTrainer``
wraps any trainer: before each ``update()`` it combines every parameter's gradient across
ranks in a fixed, small number of collectives (one ``Allgather`` of the lookup rows' counts,
one ``Allgatherv`` of the rows, then one ``Allreduce`` per bucket of flat float buffers), then
lets the wrapped trainer clip and step on the combined gradient, exactly as one process
would on the union of the ranks' batches.  Gradients are summed by default (DyNet's losses
are sums); ``average=True`` divides by the number of ranks.

Checkpoints hold the parameters (the collection's atomic save) plus, in a second file
written atomically beside them, the trainer's state (moments, update count, learning rate),
the random state and the caller's position in the data.  Only rank 0 writes; every rank reads.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import config
from .io import write_atomic
from .params import ParameterCollection

INSTALL_HINT = 'distributed training needs mpi4py and an MPI library: pip install "dynet_api[mpi]" (mpi4py, mpich)'


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:  # the extra is not installed
        raise ImportError(f"{INSTALL_HINT} ({e})") from e
    return MPI


class World:
    """The MPI world this process belongs to: ``rank``, ``size`` and the communicator."""

    def __init__(self, comm: Any = None) -> None:
        MPI = _mpi()
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)


_world: World | None = None


def init(abort_on_error: bool = True) -> World:
    """Join MPI's world (once per process).  With ``abort_on_error`` an uncaught exception on any
    rank prints its traceback with the rank and aborts the whole job, so the others never wait
    forever in a collective (mpiexec then ends every rank)."""
    global _world
    if _world is None:
        _world = World()
        if abort_on_error and _world.size > 1:
            _install_abort_hook(_world)
    return _world


def _install_abort_hook(world: World) -> None:
    previous = sys.excepthook

    def hook(kind, value, tb):
        # The reason goes in the first line, written and flushed at once: mpiexec forwards a rank's
        # output asynchronously and drops what it has not forwarded when the job is aborted (the
        # traceback after it could be cut off); a short pause gives the forwarder time.
        reason = "".join(traceback.format_exception_only(kind, value)).strip()
        sys.stderr.write(f"dynet_api.distributed: rank {world.rank} of {world.size} failed ({reason}); "
                         "aborting the job\n")
        sys.stderr.flush()
        previous(kind, value, tb)
        sys.stderr.flush()
        time.sleep(0.5)
        world.abort(1)

    sys.excepthook = hook


def shard(data: Sequence, rank: int | None = None, size: int | None = None, equal: bool = True) -> Sequence:
    """This rank's part of ``data``: items ``rank, rank + size, ...`` (disjoint).  With ``equal`` every
    rank gets ``len(data) // size`` items (the last few are left out), so that all ranks make the
    same number of steps: a rank with one batch more would wait forever in its last collective."""
    if rank is None or size is None:
        w = init()
        rank, size = w.rank, w.size
    if not 0 <= rank < size:
        raise ValueError(f"shard: rank {rank} outside [0, {size})")
    end = (len(data) // size) * size if equal else len(data)
    return data[rank:end:size]


def broadcast_parameters(pc: ParameterCollection, world: World | None = None, root: int = 0) -> None:
    """Give every parameter rank ``root``'s values (one ``Bcast`` of one flat buffer)."""
    world = world or init()
    storages = pc.all_storages()
    sizes = [st.dim.total() for st in storages]
    if world.rank == root:
        buf = np.concatenate([st.host().ravel().astype(np.float32) for st in storages]) if storages \
            else np.zeros(0, np.float32)
    else:
        buf = np.empty(sum(sizes), np.float32)
    world.comm.Bcast(buf, root=root)
    if world.rank != root:
        off = 0
        for st, n in zip(storages, sizes, strict=True):
            st.set_host(buf[off:off + n].reshape(st.dim.shape))
            off += n


class DistributedTrainer:
    """Wraps a trainer: ``update()`` combines the gradients across ranks, then steps once.

    ``bucket_bytes`` sizes the dense buckets; each bucket's ``Iallreduce`` starts as soon as it is
    packed, so packing the next bucket overlaps it.  ``comm_seconds`` accumulates the time spent
    in collectives (for the benchmark's communication share)."""

    def __init__(self, trainer, world: World | None = None, average: bool = False,
                 bucket_bytes: int = 4 << 20) -> None:
        self.trainer = trainer
        self.world = world or init()
        self.average = bool(average)
        self.bucket_bytes = int(bucket_bytes)
        self.comm_seconds = 0.0

    def __getattr__(self, name: str):  # learning rate, clipping, status...: the wrapped trainer's
        return getattr(self.__dict__["trainer"], name) if "trainer" in self.__dict__ else \
            object.__getattribute__(self, name)

    def __setattr__(self, name: str, value) -> None:
        if name in ("trainer", "world", "average", "bucket_bytes", "comm_seconds"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.trainer, name, value)

    def update(self) -> None:
        if self.world.size > 1:
            self.allreduce_gradients()
        self.trainer.update()

    # ---- the gradient exchange
    def allreduce_gradients(self) -> None:
        MPI, comm, size = self.world.MPI, self.world.comm, self.world.size
        storages = [st for st in self.trainer.model.all_storages() if st.updated]
        dense = [st for st in storages if not st.lookup]
        lookups = [st for st in storages if st.lookup]
        scale = 1.0 / size if self.average else 1.0
        t0 = time.perf_counter()
        # the union of the looked-up rows: one Allgather of counts and one Allgatherv of (table, row)
        union: list[np.ndarray] = []
        if lookups:
            mine = np.array([(k, r) for k, st in enumerate(lookups) for r in sorted(st.touched)],
                            np.int64).reshape(-1, 2)
            counts = np.zeros(size, np.int64)
            comm.Allgather(np.array([mine.size], np.int64), counts)
            flat = np.empty(int(counts.sum()), np.int64)
            comm.Allgatherv(mine.ravel(), [flat, counts, MPI.INT64_T])
            pairs = flat.reshape(-1, 2)
            union = [np.unique(pairs[pairs[:, 0] == k, 1]) for k in range(len(lookups))]
        # buckets: dense parameters (plus one has-gradient flag each), then the lookup rows
        pieces: list[tuple] = []  # (storage, kind, rows)
        for st in dense:
            pieces.append((st, "dense", None))
        for st, rows in zip(lookups, union, strict=True):
            if rows.size:
                pieces.append((st, "rows", rows))
        buckets: list[list[tuple]] = []
        cur: list[tuple] = []
        nbytes = 0
        for p in pieces:
            cur.append(p)
            nbytes += 4 * (p[0].dim.total() if p[1] == "dense" else p[2].size * _row_size(p[0]))
            if nbytes >= self.bucket_bytes:
                buckets.append(cur)
                cur, nbytes = [], 0
        if cur:
            buckets.append(cur)
        inflight = []
        for bucket in buckets:
            buf = self._pack(bucket)
            inflight.append((bucket, buf, comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)))
        for bucket, buf, req in inflight:
            req.Wait()
            self._unpack(bucket, buf, scale)
        self.comm_seconds += time.perf_counter() - t0

    @staticmethod
    def _pack(bucket: list[tuple]) -> np.ndarray:
        parts = []
        for st, kind, rows in bucket:
            be = st.backend
            if kind == "dense":
                g = be.to_numpy(st.grad).ravel() if st.has_grad else np.zeros(st.dim.total(), np.float32)
                parts.append(g.astype(np.float32, copy=False))
                parts.append(np.array([1.0 if st.has_grad else 0.0], np.float32))
            else:
                parts.append(np.asarray(be.to_numpy(be.gather_batch(st.grad, rows.tolist())),
                                        np.float32).ravel())
        return np.concatenate(parts)

    @staticmethod
    def _unpack(bucket: list[tuple], buf: np.ndarray, scale: float) -> None:
        off = 0
        for st, kind, rows in bucket:
            be = st.backend
            if kind == "dense":
                n = st.dim.total()
                g, flag = buf[off:off + n], buf[off + n]
                off += n + 1
                if flag > 0:
                    be.assign(st.grad, (g * scale).reshape(st.dim.shape))
                    st.has_grad = True
            else:
                n = rows.size * _row_size(st)
                g = buf[off:off + n]
                off += n
                r = rows.tolist()
                if st.touched:
                    be.clear_rows(st.grad, sorted(st.touched))
                src = be.from_numpy((g * scale).reshape(_batch_rows_shape(st, rows.size)))
                be.scatter_add_batch(st.grad, r, src)
                st.touched = set(r)


def _row_size(st) -> int:
    """Values in one row of a lookup table (stored with the rows on the last axis)."""
    return st.dim.total() // st.dim.shape[-1]


def _batch_rows_shape(st, n: int) -> tuple[int, ...]:
    """The shape ``gather_batch`` gives for ``n`` rows: the row's shape, then ``n``."""
    return tuple(st.dim.shape[:-1]) + (n,)


# ------------------------------------------------------------------ checkpoints


def _arr(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, np.float32)
    return {"shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


def _unarr(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["data"]), np.float32).reshape(d["shape"]).copy()


_TRAINER_FIELDS = ("learning_rate", "clipping_enabled", "clip_threshold", "sparse_updates", "updates", "clips",
                   "updates_since_status", "clips_since_status",
                   # CyclicalSGDTrainer's schedule
                   "e_min", "e_max", "step_size", "gamma", "it")


def trainer_state(trainer) -> dict:
    """The trainer's state as plain data: its scalar fields and every parameter's moment tensors."""
    trainer = getattr(trainer, "trainer", trainer) if isinstance(trainer, DistributedTrainer) else trainer
    # hasattr, not vars(): learning_rate is a property (a checkpoint lost a decayed rate)
    fields = {k: getattr(trainer, k) for k in _TRAINER_FIELDS if hasattr(trainer, k)}
    moments = []
    for st in trainer.model.all_storages():
        states = st.states.get(trainer._state_key)
        moments.append(None if states is None else [_arr(st.backend.to_numpy(t)) for t in states])
    return {"kind": type(trainer).__name__, "fields": fields, "moments": moments}


def set_trainer_state(trainer, state: dict) -> None:
    """Restore what ``trainer_state`` gave, on a trainer of the same kind over the same collection."""
    trainer = trainer.trainer if isinstance(trainer, DistributedTrainer) else trainer
    if state["kind"] != type(trainer).__name__:
        raise ValueError(f"checkpoint: trainer state is for {state['kind']}, not {type(trainer).__name__}")
    storages = trainer.model.all_storages()
    if len(storages) != len(state["moments"]):
        raise ValueError(f"checkpoint: {len(state['moments'])} parameters' states, the collection has "
                         f"{len(storages)}")
    for k, v in state["fields"].items():
        setattr(trainer, k, v)
    for st, moms in zip(storages, state["moments"], strict=True):
        if moms is None:
            st.states.pop(trainer._state_key, None)
        else:
            st.states[trainer._state_key] = [st.backend.from_numpy(_unarr(m).reshape(st.dim.shape)) for m in moms]


def save_checkpoint(path: str, pc: ParameterCollection, trainer, data_state: Any = None,
                    world: World | None = None) -> None:
    """Rank 0 writes ``path`` (the parameters, atomically) and ``path + '.state'`` (trainer, random
    and data state, atomically).  Every rank reseeds its backend's random stream from the shared
    generator here, so that a resumed run draws what an uninterrupted one draws."""
    world = world if world is not None else _world
    seed = int(config.rng.integers(1, 2**31 - 1))
    be = config.backend()
    be.seed(seed + (world.rank if world is not None else 0))
    if world is None or world.rank == 0:
        pc.save(path)
        state = {"trainer": trainer_state(trainer), "rng": config.rng.bit_generator.state,
                 "backend_seed": seed, "data": data_state}
        write_atomic(path + ".state", json.dumps(state))
    if world is not None:
        world.barrier()


def load_checkpoint(path: str, pc: ParameterCollection, trainer, world: World | None = None) -> Any:
    """Load what ``save_checkpoint`` wrote (on every rank); gives back the saved data state."""
    world = world if world is not None else _world
    if not os.path.exists(path + ".state"):
        raise FileNotFoundError(f"checkpoint: no state file {path + '.state'}")
    with open(path + ".state") as f:
        state = json.load(f)
    pc.populate(path)
    set_trainer_state(trainer, state["trainer"])
    config.rng.bit_generator.state = state["rng"]
    config.backend().seed(int(state["backend_seed"]) + (world.rank if world is not None else 0))
    return state["data"]

"""The program each MPI rank runs for tests/test_distributed.py (``mpiexec -n 2 python mpi_worker.py MODE OUT``).

Modes: ``equiv-sgd``/``equiv-adam`` (2 ranks vs one process on the union), ``fail`` (rank 1 raises),
``kill`` (rank 1 dies by SIGKILL), ``full``/``resume`` (checkpoint at step 3, then exact resume).
"""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np

import dynet_api as dy
from dynet_api import distributed

STEPS = 6
VOCAB, EMB, CLASSES = 10, 4, 3
# per step, per rank: (word, label) pairs; rank 0 only sees words < 5, rank 1 only words >= 5
BATCHES = [[[((s + i) % 5, (s * 7 + i) % CLASSES) for i in range(3)],
            [(5 + (s * 3 + i) % 5, (s + 2 * i) % CLASSES) for i in range(2)]] for s in range(STEPS)]


class Model:
    def __init__(self, kind: str, dropout: float = 0.0) -> None:
        self.pc = dy.ParameterCollection()
        self.E = self.pc.add_lookup_parameters((VOCAB, EMB), name="E")
        self.W = self.pc.add_parameters((CLASSES, EMB), name="W")
        self.b = self.pc.add_parameters(CLASSES, name="b")
        self.U = self.pc.add_parameters((CLASSES, EMB), name="U")  # used by words >= 5 only (rank 1)
        self.dropout = dropout
        self.trainer = dy.AdamTrainer(self.pc, 0.05) if kind == "adam" else dy.SimpleSGDTrainer(self.pc, 0.5)
        self.trainer.set_clip_threshold(2.0)  # low enough to clip: clipping must see the combined gradient

    def loss(self, batch):
        dy.renew_cg()
        losses = []
        for w, y in batch:
            h = self.E[w]
            if self.dropout:
                h = dy.dropout(h, self.dropout)
            s = self.W * h + self.b
            if w >= 5:
                s = s + self.U * h
            losses.append(dy.pickneglogsoftmax(s, y))
        return dy.esum(losses)

    def values(self) -> dict:
        return {p.name(): p.as_array().tolist() for p in self.pc.parameters_list() + self.pc.lookup_parameters_list()}


def equiv(kind: str, out: str) -> None:
    world = distributed.init()
    dy.reset_random_seed(1 + world.rank)  # different inits: the broadcast must make them equal
    average = kind.endswith("-avg")  # averaged gradients equal one process on the mean of the ranks' losses
    kind = kind.removesuffix("-avg")
    m = Model(kind)
    if average:  # no clipping: clipped steps would hide a factor 2 in the gradients
        m.trainer.set_clip_threshold(-1)
    distributed.broadcast_parameters(m.pc, world)
    start = m.values()
    tr = distributed.DistributedTrainer(m.trainer, world, average=average)
    for s in range(STEPS):
        m.loss(BATCHES[s][world.rank]).backward()
        tr.update()
    mine = m.values()
    others = world.comm.gather(mine, root=0)
    if world.rank == 0:  # one process on the union, from the same start
        single = Model(kind)
        if average:
            single.trainer.set_clip_threshold(-1)
        for p in single.pc.parameters_list() + single.pc.lookup_parameters_list():
            p.set_value(np.array(start[p.name()])) if not hasattr(p, "init_from_array") else \
                p.init_from_array(np.array(start[p.name()]))
        for s in range(STEPS):
            loss = single.loss(BATCHES[s][0] + BATCHES[s][1])
            (loss * (1.0 / world.size) if average else loss).backward()
            single.trainer.update()
        with open(out, "w") as f:
            json.dump({"ranks": others, "single": single.values(), "start": start,
                       "clips": m.trainer.clips}, f)


def failing(mode: str) -> None:
    world = distributed.init()
    m = Model("sgd")
    tr = distributed.DistributedTrainer(m.trainer, world)
    for s in range(STEPS):
        if s == 2 and world.rank == 1:
            if mode == "fail":
                raise RuntimeError("rank 1 fails on purpose")
            os.kill(os.getpid(), signal.SIGKILL)
        m.loss(BATCHES[s][world.rank]).backward()
        tr.update()


def checkpointed(mode: str, out: str) -> None:
    world = distributed.init()
    dy.reset_random_seed(11)
    m = Model("adam", dropout=0.3)
    distributed.broadcast_parameters(m.pc, world)
    tr = distributed.DistributedTrainer(m.trainer, world)
    ckpt = os.path.join(os.path.dirname(out), "ckpt")
    start = 0
    if mode == "resume":
        start = distributed.load_checkpoint(ckpt, m.pc, tr, world)["step"]
    for s in range(start, STEPS):
        m.loss(BATCHES[s][world.rank]).backward()
        tr.update()
        if mode == "full" and s == 2:
            distributed.save_checkpoint(ckpt, m.pc, tr, {"step": s + 1}, world)
    others = world.comm.gather(m.values(), root=0)
    if world.rank == 0:
        with open(out, "w") as f:
            json.dump({"ranks": others, "updates": m.trainer.updates}, f)


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    if mode.startswith("equiv-"):
        equiv(mode[6:], out)
    elif mode in ("fail", "kill"):
        failing(mode)
    else:
        checkpointed(mode, out)

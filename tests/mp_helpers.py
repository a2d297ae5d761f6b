"""Run as ``python mp_helpers.py METHOD`` (fork or spawn): two worker processes draw from dynet_api's
random streams (an initialiser and a backend random op) and print, as JSON, what each drew and
what the parent draws next.  Under spawn the workers seed through ``workers.seed_worker``."""

from __future__ import annotations

import json
import multiprocessing as mp
import sys

import dynet_api as dy


def draws() -> list[float]:
    pc = dy.ParameterCollection()
    init = pc.add_parameters(3).as_array().tolist()  # the initialisers' generator
    dy.renew_cg()
    return init + dy.random_normal(3).npvalue().tolist()  # the backend's generator


def child(q, worker: int, method: str) -> None:
    if method == "spawn":
        from dynet_api import workers

        workers.seed_worker(7, worker)
    q.put((worker, draws()))


def main(method: str) -> None:
    dy.reset_random_seed(7)
    dy.renew_cg()
    ctx = mp.get_context(method)
    q = ctx.Queue()
    ps = [ctx.Process(target=child, args=(q, i, method)) for i in (1, 2)]
    for p in ps:
        p.start()
    got = dict(q.get(timeout=60) for _ in ps)
    for p in ps:
        p.join(timeout=60)
    print(json.dumps({"workers": {str(k): v for k, v in sorted(got.items())}, "parent": draws()}))


if __name__ == "__main__":
    main(sys.argv[1])

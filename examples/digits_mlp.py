"""The main job: an MLP classifies handwritten digits, trained with minibatches.

Data: the 1,797 8x8 digit images that ship inside scikit-learn (UCI optical
recognition of handwritten digits), split 80/20 with a fixed seed, pixels scaled
to [0, 1].  Model: 64 -> 128 (rectify, dropout) -> 128 (rectify) -> 10, trained
with Adam on minibatches of 32 (``inputTensor(batched=True)`` +
``pickneglogsoftmax_batch`` + ``sum_batches``).

Run: python examples/digits_mlp.py [--dynet-backend NAME] [--epochs N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import dynet_api as dy


def load_digits(seed: int):
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(int)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    n_test = len(y) // 5
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])


class MLP:
    def __init__(self, m: dy.ParameterCollection, sizes: list[int], dropout: float) -> None:
        self.layers = [(m.add_parameters((o, i)), m.add_parameters(o, init=0.0)) for i, o in zip(sizes, sizes[1:])]
        self.dropout = dropout

    def __call__(self, x: dy.Expression, train: bool) -> dy.Expression:
        for k, (W, b) in enumerate(self.layers):
            x = W * x + b
            if k < len(self.layers) - 1:
                x = dy.rectify(x)
                if train and k == 0 and self.dropout > 0:
                    x = dy.dropout(x, self.dropout)
        return x


def evaluate(model: MLP, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    correct = 0
    for s in range(0, len(y), batch):
        dy.renew_cg()
        scores = model(dy.inputTensor(x[s:s + batch].T, batched=True), train=False).npvalue()
        correct += int((scores.reshape(10, -1).argmax(axis=0) == y[s:s + batch]).sum())
    return correct / len(y)


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--distributed", action="store_true", help="one of N MPI ranks (mpiexec -n N ...)")
    args, _ = ap.parse_known_args()  # leaves --dynet-* flags to dynet_api

    dy.reset_random_seed(args.seed)
    (xtr, ytr), (xte, yte) = load_digits(args.seed)
    m = dy.ParameterCollection()
    model = MLP(m, [64, 128, 128, 10], dropout=0.2)
    trainer = dy.AdamTrainer(m, alpha=0.002)
    if args.distributed:  # each rank trains on its shard; gradients are averaged, as the loss is a mean
        from dynet_api import distributed

        world = distributed.init()
        xtr, ytr = distributed.shard(xtr, world.rank, world.size), distributed.shard(ytr, world.rank, world.size)
        distributed.broadcast_parameters(m, world)
        trainer = distributed.DistributedTrainer(trainer, world, average=True)
    rng = np.random.default_rng(args.seed)
    print(f"backend {dy.backend_name()}: {len(ytr)} training and {len(yte)} held-out images")

    from tqdm import tqdm

    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = rng.permutation(len(ytr))
        total, batches = 0.0, range(0, len(order), args.batch)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{args.epochs}", disable=args.no_progress, leave=False)
        for s in bar:
            ids = order[s:s + args.batch]
            dy.renew_cg()
            scores = model(dy.inputTensor(xtr[ids].T, batched=True), train=True)
            loss = dy.sum_batches(dy.pickneglogsoftmax_batch(scores, ytr[ids].tolist())) / len(ids)
            total += loss.value() * len(ids)
            loss.backward()
            trainer.update()
            bar.set_postfix(loss=f"{loss.value():.3f}")
        acc = evaluate(model, xte, yte)
        print(f"epoch {epoch + 1}: train loss {total / len(ytr):.4f}, held-out accuracy {acc:.4f}")
    acc = evaluate(model, xte, yte)
    print(f"trained in {time.perf_counter() - start:.1f}s; final held-out accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()

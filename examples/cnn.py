"""A small convolutional network classifies scikit-learn's 8x8 handwritten digits.

Data: the 1,797 digit images that ship inside scikit-learn, split 80/20 with a
fixed seed, pixels scaled to [0, 1].  Each image enters as an {8,8,1} tensor
(height, width, channels) with the minibatch as the batch dimension, DyNet's
convolution layout.  Model: conv2d 3x3 (1 -> 8 channels, SAME) + rectify,
maxpooling2d 2x2 stride 2 -> {4,4,8}; conv2d 3x3 (8 -> 16, SAME) + rectify,
maxpooling2d 2x2 stride 2 -> {2,2,16}; reshape to 64; affine to 10 classes.
Trained with Adam on minibatches (``pickneglogsoftmax_batch`` + ``sum_batches``).

Run: python examples/cnn.py [--dynet-backend NAME] [--epochs N] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _support import parse_args, progress  # examples/_support.py

import dynet_api as dy


def load_digits(seed: int):
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    x = (d.images / 16.0).astype(np.float32)  # (n, 8, 8)
    y = d.target.astype(int)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    n_test = len(y) // 5
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])


class ConvNet:
    def __init__(self, m: dy.ParameterCollection, c1: int = 8, c2: int = 16, classes: int = 10) -> None:
        self.f1 = m.add_parameters((3, 3, 1, c1), init=dy.NormalInitializer(0.0, 2.0 / 9))
        self.b1 = m.add_parameters(c1, init=0.0)
        self.f2 = m.add_parameters((3, 3, c1, c2), init=dy.NormalInitializer(0.0, 2.0 / (9 * c1)))
        self.b2 = m.add_parameters(c2, init=0.0)
        self.flat = 2 * 2 * c2
        self.W = m.add_parameters((classes, self.flat))
        self.b = m.add_parameters(classes, init=0.0)

    def __call__(self, images: np.ndarray, train: bool) -> dy.Expression:
        """Class scores {10} x batch for images shaped (n, 8, 8)."""
        x = dy.inputTensor(images.transpose(1, 2, 0)[:, :, None, :], batched=True)  # {8,8,1} x n
        h = dy.rectify(dy.conv2d_bias(x, self.f1, self.b1, stride=[1, 1], is_valid=False))
        h = dy.maxpooling2d(h, ksize=[2, 2], stride=[2, 2])
        h = dy.rectify(dy.conv2d_bias(h, self.f2, self.b2, stride=[1, 1], is_valid=False))
        h = dy.maxpooling2d(h, ksize=[2, 2], stride=[2, 2])
        h = dy.reshape(h, (self.flat,), batch_size=len(images))
        if train:
            h = dy.dropout(h, 0.1)
        return self.W * h + self.b


def evaluate(model: ConvNet, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    correct = 0
    for s in range(0, len(y), batch):
        dy.renew_cg()
        scores = model(x[s:s + batch], train=False).npvalue()
        correct += int((scores.reshape(10, -1).argmax(axis=0) == y[s:s + batch]).sum())
    return correct / len(y)


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="3 epochs on 800 training images (a smoke run)")
    ap.add_argument("--no-progress", action="store_true")
    args = parse_args(ap)  # --dynet-* flags are left to dynet_api

    dy.reset_random_seed(args.seed)
    (xtr, ytr), (xte, yte) = load_digits(args.seed)
    epochs = args.epochs
    if args.quick:
        xtr, ytr, epochs = xtr[:800], ytr[:800], min(epochs, 3)
    m = dy.ParameterCollection()
    model = ConvNet(m)
    trainer = dy.AdamTrainer(m, alpha=0.003)
    rng = np.random.default_rng(args.seed)
    print(f"backend {dy.backend_name()}: {len(ytr)} training and {len(yte)} held-out images, "
          f"{m.parameter_count()} parameters")

    start = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(ytr))
        total, batches = 0.0, range(0, len(order), args.batch)
        bar = progress(batches, f"epoch {epoch + 1}/{epochs}", args.no_progress)
        for s in bar:
            ids = order[s:s + args.batch]
            dy.renew_cg()
            scores = model(xtr[ids], train=True)
            loss = dy.sum_batches(dy.pickneglogsoftmax_batch(scores, ytr[ids].tolist())) / len(ids)
            value = loss.value()
            total += value * len(ids)
            loss.backward()
            trainer.update()
            bar.set_postfix(loss=f"{value:.3f}", refresh=False)  # drawn at tqdm's own pace
        acc = evaluate(model, xte, yte)
        print(f"epoch {epoch + 1}: train loss {total / len(ytr):.4f}, held-out accuracy {acc:.4f}")
    acc = evaluate(model, xte, yte)
    print(f"trained in {time.perf_counter() - start:.1f}s; final held-out accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()

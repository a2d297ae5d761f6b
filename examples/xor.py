"""An MLP learns XOR with SimpleSGD: the smallest complete DyNet program.

Run: python examples/xor.py [--dynet-backend NAME] [--epochs N] [--quick]
"""

from __future__ import annotations

import argparse

from _support import backend_name, parse_args, progress  # examples/_support.py

import dynet_api as dy

DATA = [([0, 0], 0), ([0, 1], 1), ([1, 0], 1), ([1, 1], 0)]


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="100 epochs (a smoke run)")
    ap.add_argument("--no-progress", action="store_true")
    args = parse_args(ap)  # --dynet-* flags are left to dynet_api
    if args.quick:
        args.epochs = min(args.epochs, 100)

    m = dy.ParameterCollection()
    W = m.add_parameters((args.hidden, 2))
    b = m.add_parameters(args.hidden)
    V = m.add_parameters((1, args.hidden))
    a = m.add_parameters(1)
    trainer = dy.SimpleSGDTrainer(m, learning_rate=0.2)

    print(f"backend {backend_name(dy)}: {len(DATA)} points, {args.epochs} epochs")
    total = 0.0
    bar = progress(range(args.epochs), "epochs", args.no_progress)
    for epoch in bar:
        total = 0.0
        for inputs, target in DATA:
            dy.renew_cg()
            x = dy.vecInput(2)
            x.set(inputs)
            y = dy.scalarInput(target)
            out = dy.logistic(V * dy.tanh(W * x + b) + a)
            loss = dy.binary_log_loss(out, y)
            total += loss.value()
            loss.backward()
            trainer.update()
        bar.set_postfix(loss=f"{total / len(DATA):.4f}", refresh=False)
        if epoch % 50 == 0 or epoch == args.epochs - 1:
            bar.write(f"epoch {epoch}: loss {total / len(DATA):.4f}")  # above the bar, on a terminal
    correct = 0
    for inputs, target in DATA:
        dy.renew_cg()
        out = dy.logistic(V * dy.tanh(W * dy.inputVector(inputs) + b) + a)
        correct += int((out.value() > 0.5) == bool(target))
    print(f"final loss {total / len(DATA):.4f}, accuracy {correct}/{len(DATA)}")
    return total / len(DATA)


if __name__ == "__main__":
    main()

"""A minibatched LSTM language model over Python source tokens (the DyNet paper's LM task).

Data: the token streams of a few modules of Python's own standard library (the
``.py`` files of the interpreter running this script), read with ``tokenize``;
each logical line is a sentence, rare tokens become <unk>.  Nothing is downloaded.
The last tenth of the lines is held out for perplexity.

Sentences are sorted by length and cut into minibatches; shorter sentences in a
batch are padded and masked, so one graph computes a whole batch with
``lookup_batch`` and ``pickneglogsoftmax_batch``.

Run: python examples/rnnlm.py [--dynet-backend NAME] [--epochs N] [--quick]
Under DyNet itself, change the import to ``import dynet as dy``.
"""

from __future__ import annotations

import argparse
import io
import math
import random
import tokenize
from collections import Counter

from _support import backend_name, parse_args, progress, stdlib_source  # examples/_support.py

import dynet_api as dy  # under DyNet: import dynet as dy

MODULES = ["textwrap", "string", "shlex", "fnmatch", "calendar", "difflib", "argparse"]
SKIP = {tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER,
        tokenize.ENCODING}


def stdlib_lines(modules: list[str], max_len: int) -> list[list[str]]:
    """Token strings of every logical line of the given stdlib modules (strings shortened to <str>)."""
    lines, cur = [], []
    for name in modules:
        src = stdlib_source(name)
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.NEWLINE:
                if 1 < len(cur) <= max_len:
                    lines.append(cur)
                cur = []
            elif tok.type not in SKIP:
                cur.append("<str>" if tok.type == tokenize.STRING else tok.string)
    return lines


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--min-count", type=int, default=3)
    ap.add_argument("--max-len", type=int, default=40)
    ap.add_argument("--sentences", type=int, default=0, help="use only this many lines (0: all)")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--quick", action="store_true", help="a tiny setting for tests: 3 epochs of 320 lines")
    ap.add_argument("--no-progress", action="store_true")
    args = parse_args(ap)  # --dynet-* flags are left to the library
    if args.quick:
        args.epochs, args.sentences, args.embed, args.hidden, args.max_len = 3, 320, 32, 48, 20

    random.seed(1)
    lines = stdlib_lines(MODULES, args.max_len)
    random.shuffle(lines)
    if args.sentences:
        lines = lines[:args.sentences]
    n_dev = max(len(lines) // 10, 1)
    train, dev = lines[n_dev:], lines[:n_dev]
    counts = Counter(t for s in train for t in s)
    vocab = ["<s>", "</s>", "<unk>"] + sorted(t for t, c in counts.items() if c >= args.min_count)
    w2i = {w: i for i, w in enumerate(vocab)}
    S, E, UNK = 0, 1, 2

    def ids(s):
        return [S] + [w2i.get(t, UNK) for t in s] + [E]

    print(f"{len(train)} training lines, {len(dev)} held out, vocabulary {len(vocab)}, backend {backend_name(dy)}")

    pc = dy.ParameterCollection()
    lookup = pc.add_lookup_parameters((len(vocab), args.embed))
    rnn = dy.VanillaLSTMBuilder(args.layers, args.embed, args.hidden, pc)
    softmax = dy.StandardSoftmaxBuilder(args.hidden, len(vocab), pc)
    trainer = dy.AdamTrainer(pc, alpha=0.005)

    def batch_loss(batch, train_mode: bool):
        """Summed negative log-likelihood of a batch of id lists (padded with </s>, masked)."""
        dy.renew_cg()
        if train_mode:
            rnn.set_dropout(args.dropout)
        else:
            rnn.disable_dropout()
        n = max(len(s) for s in batch)
        state = rnn.initial_state()
        if train_mode:
            rnn.set_dropout_masks(len(batch))
        losses, words = [], 0
        for t in range(n - 1):
            cur = [s[t] if t < len(s) else E for s in batch]
            nxt = [s[t + 1] if t + 1 < len(s) else E for s in batch]
            mask = [1.0 if t + 1 < len(s) else 0.0 for s in batch]
            state = state.add_input(dy.lookup_batch(lookup, cur))
            loss = softmax.neg_log_softmax_batch(state.output(), nxt)
            if 0.0 in mask:
                loss = dy.cmult(loss, dy.inputTensor(mask, batched=True))
            losses.append(loss)
            words += int(sum(mask))
        return dy.sum_batches(dy.esum(losses)), words

    def batches(data):
        data = sorted(data, key=len)
        out = [data[i:i + args.batch] for i in range(0, len(data), args.batch)]
        return out

    train_ids = [ids(s) for s in train]
    dev_batches = batches([ids(s) for s in dev])
    first_loss = last_loss = 0.0
    for epoch in range(args.epochs):
        order = batches(train_ids)
        random.shuffle(order)
        total, words = 0.0, 0
        bar = progress(order, f"epoch {epoch}", args.no_progress)
        for batch in bar:
            loss, n = batch_loss(batch, True)
            total += loss.value()
            words += n
            loss.backward()
            trainer.update()
        last_loss = total / words
        if epoch == 0:
            first_loss = last_loss
        dev_total, dev_words = 0.0, 0
        for batch in dev_batches:
            loss, n = batch_loss(batch, False)
            dev_total += loss.value()
            dev_words += n
        print(f"epoch {epoch}: train loss {last_loss:.4f} (ppl {math.exp(last_loss):.1f}), "
              f"held-out ppl {math.exp(dev_total / dev_words):.1f}")
    ppl = math.exp(dev_total / dev_words)
    print(f"final held-out perplexity: {ppl:.2f} (train loss {first_loss:.4f} -> {last_loss:.4f})")
    return ppl



if __name__ == "__main__":
    main()

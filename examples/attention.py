"""A character-level encoder-decoder with attention (as in DyNet's attention example).

Task: rewrite Python identifiers from snake_case to CamelCase, character by
character (``get_line_number`` -> ``GetLineNumber``).  The identifiers are the
names containing an underscore found in a few modules of Python's own standard
library (read with ``tokenize`` from the interpreter running this script), so
nothing is downloaded; a tenth of them is held out.  The output is mostly a copy
of the input with characters dropped and capitalised, so the decoder has to
attend to the right source position at every step.

Model: a bidirectional LSTM encoder over the source characters, an LSTM decoder
fed the previous character and the previous attention context, and MLP attention
(Bahdanau et al., 2015) over the encoder states.

Run: python examples/attention.py [--dynet-backend NAME] [--epochs N] [--quick]
Under DyNet itself, change the import to ``import dynet as dy``.
"""

from __future__ import annotations

import argparse
import io
import random
import tokenize

from _support import backend_name, parse_args, progress, stdlib_source  # examples/_support.py

import dynet_api as dy  # under DyNet: import dynet as dy

MODULES = ["textwrap", "string", "shlex", "fnmatch", "calendar", "difflib", "argparse",
           "inspect", "typing", "subprocess", "pathlib", "tokenize", "ast", "os"]
EOS = "<EOS>"


def camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def stdlib_identifiers(modules: list[str], max_len: int) -> list[tuple[str, str]]:
    seen: set[str] = set()
    for name in modules:
        src = stdlib_source(name)
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            w = tok.string.strip("_")
            if tok.type == tokenize.NAME and "_" in w and "__" not in w and len(w) <= max_len:
                seen.add(w)
    return [(w, camel(w)) for w in sorted(seen)]


class Seq2Seq:
    def __init__(self, pc, nchars: int, embed: int, hidden: int, att: int) -> None:
        self.E = pc.add_lookup_parameters((nchars, embed))
        self.enc_f = dy.VanillaLSTMBuilder(1, embed, hidden, pc)
        self.enc_b = dy.VanillaLSTMBuilder(1, embed, hidden, pc)
        self.dec = dy.VanillaLSTMBuilder(1, 2 * hidden + embed, hidden, pc)
        self.att_w1 = pc.add_parameters((att, 2 * hidden))
        self.att_w2 = pc.add_parameters((att, hidden))
        self.att_v = pc.add_parameters((1, att))
        self.out_w = pc.add_parameters((nchars, hidden))
        self.out_b = pc.add_parameters(nchars)
        self.hidden = hidden

    def encode(self, src: list[int]):
        embs = [self.E[c] for c in src]
        fwd = self.enc_f.initial_state().transduce(embs)
        bwd = self.enc_b.initial_state().transduce(embs[::-1])[::-1]
        return dy.concatenate_cols([dy.concatenate([f, b]) for f, b in zip(fwd, bwd, strict=True)])

    def attend(self, enc, w1enc, state):
        scores = self.att_v * dy.tanh(dy.colwise_add(w1enc, self.att_w2 * state.output()))
        weights = dy.softmax(dy.transpose(scores))
        return enc * weights

    def start(self, enc, eos: int):
        state = self.dec.initial_state().add_input(dy.concatenate([dy.vecInput(2 * self.hidden), self.E[eos]]))
        return state, self.att_w1 * enc

    def loss(self, src: list[int], tgt: list[int], eos: int):
        enc = self.encode(src)
        state, w1enc = self.start(enc, eos)
        losses = []
        prev = eos
        for c in tgt + [eos]:
            ctx = self.attend(enc, w1enc, state)
            state = state.add_input(dy.concatenate([ctx, self.E[prev]]))
            losses.append(dy.pickneglogsoftmax(dy.affine_transform([self.out_b, self.out_w, state.output()]), c))
            prev = c
        return dy.esum(losses), len(losses)

    def generate(self, src: list[int], eos: int, max_len: int) -> list[int]:
        enc = self.encode(src)
        state, w1enc = self.start(enc, eos)
        out, prev = [], eos
        for _ in range(max_len):
            ctx = self.attend(enc, w1enc, state)
            state = state.add_input(dy.concatenate([ctx, self.E[prev]]))
            prev = int(dy.affine_transform([self.out_b, self.out_w, state.output()]).npvalue().argmax())
            if prev == eos:
                break
            out.append(prev)
        return out


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=0, help="identifiers used (0: all)")
    ap.add_argument("--embed", type=int, default=24)
    ap.add_argument("--hidden", type=int, default=48)
    ap.add_argument("--att", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4, help="sequences per graph and update")
    ap.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate")
    ap.add_argument("--max-len", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="a tiny setting for tests: 4 epochs of 96 identifiers")
    ap.add_argument("--no-progress", action="store_true")
    args = parse_args(ap)  # --dynet-* flags are left to the library
    if args.quick:
        args.epochs, args.pairs, args.hidden, args.max_len = 4, 96, 32, 10

    random.seed(1)
    pairs = stdlib_identifiers(MODULES, args.max_len)
    random.shuffle(pairs)
    if args.pairs:
        pairs = pairs[:args.pairs]
    n_dev = max(len(pairs) // 10, 1)
    train, dev = pairs[n_dev:], pairs[:n_dev]
    chars = [EOS] + sorted({ch for s, t in pairs for ch in s + t})
    c2i = {c: i for i, c in enumerate(chars)}
    eos = c2i[EOS]
    print(f"{len(train)} training identifiers, {len(dev)} held out, {len(chars)} characters; "
          f"e.g. {train[0][0]} -> {train[0][1]}; backend {backend_name(dy)}")

    pc = dy.ParameterCollection()
    model = Seq2Seq(pc, len(chars), args.embed, args.hidden, args.att)
    trainer = dy.AdamTrainer(pc, alpha=args.lr)

    def ids(s: str) -> list[int]:
        return [c2i[ch] for ch in s]

    first_loss = last_loss = 0.0
    for epoch in range(args.epochs):
        random.shuffle(train)
        total, nchars = 0.0, 0
        chunks = [train[i:i + args.batch] for i in range(0, len(train), args.batch)]
        bar = progress(chunks, f"epoch {epoch}", args.no_progress)
        for chunk in bar:
            dy.renew_cg()
            parts = [model.loss(ids(s), ids(t), eos) for s, t in chunk]
            loss = dy.esum([p for p, _ in parts])
            total += loss.value()
            nchars += sum(n for _, n in parts)
            loss.backward()
            trainer.update()
        last_loss = total / nchars
        if epoch == 0:
            first_loss = last_loss
        exact = 0
        for s, t in dev:
            dy.renew_cg()
            exact += int("".join(chars[c] for c in model.generate(ids(s), eos, len(s) + 5)) == t)
        print(f"epoch {epoch}: train loss {last_loss:.4f}, held-out exact match {exact}/{len(dev)}")
    dy.renew_cg()
    sample = dev[0][0]
    print(f"{sample} -> {''.join(chars[c] for c in model.generate(ids(sample), eos, len(sample) + 5))}")
    acc = exact / len(dev)
    print(f"final held-out exact match: {acc:.4f} (train loss {first_loss:.4f} -> {last_loss:.4f})")
    return acc


if __name__ == "__main__":
    main()

"""A BiLSTM sequence tagger, optionally with character BiLSTMs for rare words (the DyNet paper's tagger).

Data: the tokens of a few modules of Python's standard library (the ``.py`` files of
the interpreter running this script, read with ``tokenize``), one logical line per
sentence.  Each token is tagged with its role, computed by simple rules from the
token stream: keyword, function or class name after ``def``/``class``, attribute
after ``.``, call (a name before ``(``), assignment target (before ``=`` outside
brackets), keyword argument (before ``=`` inside brackets), other name, operator,
number, string; calls, targets and other names are further split by the name's
case (UPPER constants, Capitalised classes, the rest).  The same word takes
different tags in different contexts, so the tagger has to read the sentence, and
the case of a rare word is visible only to the character model.  Nothing is downloaded; the last tenth of the
lines is held out.

Words seen fewer than ``--min-count`` times in training are rare: without
``--chars`` they share an <unk> embedding; with ``--chars`` they are represented by
the final states of a forward and a backward character LSTM.

Run: python examples/bilstm_tagger.py [--chars] [--dynet-backend NAME] [--epochs N] [--quick]
Under DyNet itself, change the import to ``import dynet as dy``.
"""

from __future__ import annotations

import argparse
import io
import keyword
import os
import random
import tokenize
from collections import Counter

import dynet_api as dy  # under DyNet: import dynet as dy

try:
    from tqdm import tqdm
except ImportError:  # progress bars are optional
    def tqdm(it, **kw):
        return it

MODULES = ["textwrap.py", "string.py", "shlex.py", "fnmatch.py", "calendar.py", "difflib.py", "argparse.py"]
SKIP = {tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER, tokenize.ENCODING}


def shape(w: str) -> str:
    """A name's case class: constants (UPPER), classes (Capitalised) or the rest."""
    core = w.strip("_")
    if len(core) > 1 and core.isupper():
        return "-UP"
    return "-Cap" if core[:1].isupper() else ""


def tag_line(toks: list) -> list[tuple[str, str]]:
    """(word, tag) for the tokens of one logical line."""
    out, depth = [], 0
    for k, t in enumerate(toks):
        prev = toks[k - 1].string if k else ""
        nxt = toks[k + 1].string if k + 1 < len(toks) else ""
        if t.type == tokenize.NAME:
            if keyword.iskeyword(t.string):
                tag = "KW"
            elif prev in ("def", "class"):
                tag = "DEF"
            elif prev == ".":
                tag = "ATTR"
            elif nxt == "(":
                tag = "CALL"
            elif nxt == "=":
                tag = "KWARG" if depth else "TARGET"
            else:
                tag = "NAME"
            if tag in ("NAME", "CALL", "TARGET"):
                tag += shape(t.string)
            word = t.string
        elif t.type == tokenize.OP:
            depth += t.string in "([{"
            depth -= t.string in ")]}"
            tag, word = "OP", t.string
        elif t.type == tokenize.NUMBER:
            tag, word = "NUM", t.string
        else:
            tag, word = "STR", "<str>" if t.type == tokenize.STRING else t.string
        out.append((word, tag))
    return out


def stdlib_sentences(modules: list[str], max_len: int) -> list[list[tuple[str, str]]]:
    root = os.path.dirname(os.__file__)
    sents, cur = [], []
    for name in modules:
        with open(os.path.join(root, name), encoding="utf8") as f:
            src = f.read()
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.NEWLINE:
                if 1 < len(cur) <= max_len:
                    sents.append(tag_line(cur))
                cur = []
            elif tok.type not in SKIP:
                cur.append(tok)
    return sents


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chars", action="store_true", help="character BiLSTMs for rare words")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=1500, help="lines used (0: all)")
    ap.add_argument("--embed", type=int, default=32)
    ap.add_argument("--char-embed", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--mlp", type=int, default=32)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--max-len", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="a tiny setting for tests: 3 epochs of 120 lines")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--distributed", action="store_true", help="one of N MPI ranks (mpiexec -n N ...)")
    args, _ = ap.parse_known_args()  # leaves --dynet-* flags to the library
    if args.quick:
        args.epochs, args.sentences, args.max_len = 3, 120, 15

    random.seed(1)
    sents = stdlib_sentences(MODULES, args.max_len)
    random.shuffle(sents)
    if args.sentences:
        sents = sents[:args.sentences]
    n_dev = max(len(sents) // 10, 1)
    train, dev = sents[n_dev:], sents[:n_dev]
    counts = Counter(w for s in train for w, _ in s)
    words = ["<unk>"] + sorted(w for w, c in counts.items() if c >= args.min_count)
    w2i = {w: i for i, w in enumerate(words)}
    tags = sorted({t for s in train for _, t in s})
    t2i = {t: i for i, t in enumerate(tags)}
    chars = ["<w>", "</w>", "<unk>"] + sorted({ch for s in train for w, _ in s for ch in w})
    c2i = {c: i for i, c in enumerate(chars)}
    print(f"{len(train)} training lines, {len(dev)} held out, {len(words)} frequent words, tags {' '.join(tags)}, "
          f"chars {'on' if args.chars else 'off'}")

    pc = dy.ParameterCollection()
    wlookup = pc.add_lookup_parameters((len(words), args.embed))
    clookup = pc.add_lookup_parameters((len(chars), args.char_embed))
    cfwd = dy.VanillaLSTMBuilder(1, args.char_embed, args.embed // 2, pc)
    cbwd = dy.VanillaLSTMBuilder(1, args.char_embed, args.embed // 2, pc)
    birnn = dy.BiRNNBuilder(1, args.embed, 2 * args.hidden, pc, dy.VanillaLSTMBuilder)
    H = pc.add_parameters((args.mlp, 2 * args.hidden))
    Hb = pc.add_parameters(args.mlp)
    O = pc.add_parameters((len(tags), args.mlp))
    Ob = pc.add_parameters(len(tags))
    trainer = dy.AdamTrainer(pc, alpha=0.005)
    if args.distributed:  # each rank trains on its shard; summed losses, so gradients are summed
        from dynet_api import distributed

        world = distributed.init()
        train = distributed.shard(train, world.rank, world.size)
        distributed.broadcast_parameters(pc, world)
        trainer = distributed.DistributedTrainer(trainer, world)

    def word_rep(w: str, f0, b0):
        if w in w2i or not args.chars:
            return wlookup[w2i.get(w, 0)]
        cids = [c2i["<w>"]] + [c2i.get(ch, c2i["<unk>"]) for ch in w] + [c2i["</w>"]]
        ces = [clookup[c] for c in cids]
        return dy.concatenate([f0.transduce(ces)[-1], b0.transduce(reversed(ces))[-1]])

    def tag_scores(sent):
        f0, b0 = cfwd.initial_state(), cbwd.initial_state()
        reps = birnn.transduce([word_rep(w, f0, b0) for w, _ in sent])
        return [O * dy.tanh(H * r + Hb) + Ob for r in reps]

    def is_rare(w: str) -> bool:
        return w not in w2i

    first_loss = last_loss = 0.0
    for epoch in range(args.epochs):
        random.shuffle(train)
        total, nwords = 0.0, 0
        bar = train if args.no_progress else tqdm(train, desc=f"epoch {epoch}", leave=False)
        for sent in bar:
            dy.renew_cg()
            loss = dy.esum([dy.pickneglogsoftmax(s, t2i[t]) for s, (_, t) in zip(tag_scores(sent), sent, strict=True)])
            total += loss.value()
            nwords += len(sent)
            loss.backward()
            trainer.update()
        last_loss = total / nwords
        if epoch == 0:
            first_loss = last_loss
        good = n = good_rare = n_rare = 0
        for sent in dev:
            dy.renew_cg()
            for s, (w, t) in zip(tag_scores(sent), sent, strict=True):
                ok = int(int(s.npvalue().argmax()) == t2i.get(t, -1))
                good += ok
                n += 1
                if is_rare(w):
                    good_rare += ok
                    n_rare += 1
        acc = good / n
        print(f"epoch {epoch}: train loss {last_loss:.4f}, held-out accuracy {acc:.3f} "
              f"(rare words {good_rare}/{n_rare})")
    print(f"final held-out tag accuracy: {acc:.4f} (rare words {good_rare / max(n_rare, 1):.4f}; "
          f"train loss {first_loss:.4f} -> {last_loss:.4f})")
    return acc


if __name__ == "__main__":
    main()

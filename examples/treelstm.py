"""A binary Tree-LSTM classifying every node of a tree (the DyNet paper's Tree-LSTM task).

The paper trains on sentiment treebank trees, where every node carries a label;
here the trees and labels come from Python's own standard library, so nothing is
downloaded.  Each expression on the right of an assignment, a ``return`` or an
expression statement in a few stdlib modules is parsed with ``ast`` and turned into
a binary tree over its tokens: a node with several children (a call with its
arguments, an operator with its operands...) is binarised by folding the children
from the left.  Every node is labelled, as in a sentiment treebank: a leaf with its
token's kind (NAME, CONST, TOKEN), an inner node with the kind of expression it
belongs to (CALL, ATTRIBUTE, ARITH, LOGIC, INDEX, COLLECTION).  The inner labels
depend on how the parts combine, which is what the tree model has to learn.

The Tree-LSTM is written by hand over DyNet's operations (as in DyNet's own Python
example), with the N-ary Tree-LSTM equations of Tai et al. (2015), a forget gate per
child, and a softmax loss at every node.

Run: python examples/treelstm.py [--dynet-backend NAME] [--epochs N] [--quick]
Under DyNet itself, change the import to ``import dynet as dy``.
"""

from __future__ import annotations

import argparse
import ast
import random
from collections import Counter

from _support import backend_name, parse_args, progress, stdlib_source  # examples/_support.py

import dynet_api as dy  # under DyNet: import dynet as dy

MODULES = ["textwrap", "string", "shlex", "fnmatch", "calendar", "difflib", "argparse"]
LABELS = ["NAME", "CONST", "TOKEN", "CALL", "ATTRIBUTE", "ARITH", "LOGIC", "INDEX", "COLLECTION"]
OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%", ast.FloorDiv: "//", ast.Pow: "**",
       ast.USub: "-", ast.UAdd: "+", ast.Not: "not", ast.Invert: "~", ast.And: "and", ast.Or: "or", ast.Eq: "==",
       ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.In: "in", ast.NotIn: "not in",
       ast.Is: "is", ast.IsNot: "is not", ast.BitOr: "|", ast.BitAnd: "&", ast.LShift: "<<", ast.RShift: ">>"}


class Tree:
    """A labelled binary tree: a leaf holds a word, an inner node two children."""

    def __init__(self, label: str, word: str | None = None, kids: tuple = ()) -> None:
        self.label, self.word, self.kids = label, word, kids

    def nodes(self):
        for k in self.kids:
            yield from k.nodes()
        yield self

    def leaves(self) -> list[str]:
        return [n.word for n in self.nodes() if n.word is not None]


class Unsupported(Exception):
    pass


def leaf(word: str, label: str) -> Tree:
    return Tree(label, word=word)


def fold(label: str, kids: list) -> Tree:
    t = kids[0]
    for k in kids[1:]:
        t = Tree(label, kids=(t, k))
    return t


def to_tree(n) -> Tree:
    """The binary tree of an expression (raises Unsupported for the kinds left out)."""
    if isinstance(n, ast.Name):
        return leaf(n.id, "NAME")
    if isinstance(n, ast.Constant):
        v = n.value
        return leaf("<str>" if isinstance(v, (str, bytes)) else repr(v) if isinstance(v, (bool, type(None))) or
                    (isinstance(v, int) and abs(v) < 10) else "<num>", "CONST")
    if isinstance(n, ast.Attribute):
        return fold("ATTRIBUTE", [to_tree(n.value), leaf(n.attr, "NAME")])
    if isinstance(n, ast.Call):
        kids = [to_tree(n.func)] + [to_tree(a) for a in n.args] + [to_tree(k.value) for k in n.keywords]
        return fold("CALL", kids if len(kids) > 1 else kids + [leaf("()", "TOKEN")])
    if isinstance(n, ast.BinOp):
        return fold("ARITH", [to_tree(n.left), leaf(OPS.get(type(n.op), "?"), "TOKEN"), to_tree(n.right)])
    if isinstance(n, ast.UnaryOp):
        label = "LOGIC" if isinstance(n.op, ast.Not) else "ARITH"
        return fold(label, [leaf(OPS.get(type(n.op), "?"), "TOKEN"), to_tree(n.operand)])
    if isinstance(n, ast.BoolOp):
        kids = [to_tree(n.values[0])]
        for v in n.values[1:]:
            kids += [leaf(OPS[type(n.op)], "TOKEN"), to_tree(v)]
        return fold("LOGIC", kids)
    if isinstance(n, ast.Compare):
        kids = [to_tree(n.left)]
        for op, v in zip(n.ops, n.comparators, strict=True):
            kids += [leaf(OPS.get(type(op), "?"), "TOKEN"), to_tree(v)]
        return fold("LOGIC", kids)
    if isinstance(n, ast.Subscript):
        return fold("INDEX", [to_tree(n.value), to_tree(n.slice)])
    if isinstance(n, (ast.Tuple, ast.List, ast.Set)):
        opener = {ast.Tuple: "(", ast.List: "[", ast.Set: "{"}[type(n)]
        return fold("COLLECTION", [leaf(opener, "TOKEN")] + [to_tree(e) for e in n.elts])
    raise Unsupported(type(n).__name__)


def stdlib_trees(modules: list[str], min_leaves: int, max_leaves: int) -> list[Tree]:
    trees = []
    for name in modules:
        mod = ast.parse(stdlib_source(name))
        for node in ast.walk(mod):
            if isinstance(node, (ast.Assign, ast.Return, ast.Expr)) and node.value is not None:
                try:
                    t = to_tree(node.value)
                except Unsupported:
                    continue
                if t.kids and min_leaves <= len(t.leaves()) <= max_leaves:
                    trees.append(t)
    return trees


class TreeLSTM:
    """Binary Tree-LSTM (Tai et al., 2015) over DyNet operations, one node label classifier on top."""

    def __init__(self, pc, nwords: int, wdim: int, hdim: int, nlabels: int) -> None:
        self.E = pc.add_lookup_parameters((nwords, wdim))
        self.W = pc.add_parameters((3 * hdim, wdim))          # leaves: i, o, u from the word
        self.Wb = pc.add_parameters(3 * hdim)
        self.U = pc.add_parameters((3 * hdim, 2 * hdim))      # inner nodes: i, o, u from [h_l; h_r]
        self.Ub = pc.add_parameters(3 * hdim)
        self.UF = pc.add_parameters((2 * hdim, 2 * hdim))     # one forget gate per child
        self.UFb = pc.add_parameters(2 * hdim)
        self.O = pc.add_parameters((nlabels, hdim))
        self.Ob = pc.add_parameters(nlabels)
        self.hdim = hdim

    def _gates(self, a):
        h = self.hdim
        return (dy.logistic(dy.pickrange(a, 0, h)), dy.logistic(dy.pickrange(a, h, 2 * h)),
                dy.tanh(dy.pickrange(a, 2 * h, 3 * h)))

    def encode(self, t: Tree, w2i: dict, out: list):
        """(h, c) of ``t``; appends (node, h) for every node to ``out``."""
        if t.word is not None:
            i, o, u = self._gates(dy.affine_transform([self.Wb, self.W, self.E[w2i.get(t.word, 0)]]))
            c = dy.cmult(i, u)
        else:
            (h1, c1), (h2, c2) = (self.encode(k, w2i, out) for k in t.kids)
            hh = dy.concatenate([h1, h2])
            i, o, u = self._gates(dy.affine_transform([self.Ub, self.U, hh]))
            f = dy.logistic(dy.affine_transform([self.UFb, self.UF, hh]))
            f1, f2 = dy.pickrange(f, 0, self.hdim), dy.pickrange(f, self.hdim, 2 * self.hdim)
            c = dy.cmult(i, u) + dy.cmult(f1, c1) + dy.cmult(f2, c2)
        h = dy.cmult(o, dy.tanh(c))
        out.append((t, h))
        return h, c

    def scores(self, t: Tree, w2i: dict) -> list:
        nodes: list = []
        self.encode(t, w2i, nodes)
        return [(n, dy.affine_transform([self.Ob, self.O, h])) for n, h in nodes]


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--trees", type=int, default=1200, help="trees used (0: all)")
    ap.add_argument("--wdim", type=int, default=32)
    ap.add_argument("--hdim", type=int, default=48)
    ap.add_argument("--batch", type=int, default=8, help="trees per graph and update")
    ap.add_argument("--min-count", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a tiny setting for tests: 3 epochs of 96 trees")
    ap.add_argument("--no-progress", action="store_true")
    args = parse_args(ap)  # --dynet-* flags are left to the library
    if args.quick:
        args.epochs, args.trees, args.hdim = 3, 96, 32

    random.seed(1)
    trees = stdlib_trees(MODULES, 3, 16)
    random.shuffle(trees)
    if args.trees:
        trees = trees[:args.trees]
    n_dev = max(len(trees) // 10, 1)
    train, dev = trees[n_dev:], trees[:n_dev]
    counts = Counter(w for t in train for w in t.leaves())
    words = ["<unk>"] + sorted(w for w, c in counts.items() if c >= args.min_count)
    w2i = {w: i for i, w in enumerate(words)}
    l2i = {lab: i for i, lab in enumerate(LABELS)}
    print(f"{len(train)} training trees ({sum(len(list(t.nodes())) for t in train)} labelled nodes), "
          f"{len(dev)} held out, {len(words)} words, backend {backend_name(dy)}")

    pc = dy.ParameterCollection()
    model = TreeLSTM(pc, len(words), args.wdim, args.hdim, len(LABELS))
    trainer = dy.AdamTrainer(pc, alpha=0.005)

    first_loss = last_loss = 0.0
    for epoch in range(args.epochs):
        random.shuffle(train)
        total, nnodes = 0.0, 0
        chunks = [train[i:i + args.batch] for i in range(0, len(train), args.batch)]
        bar = progress(chunks, f"epoch {epoch}", args.no_progress)
        for chunk in bar:
            dy.renew_cg()
            losses = [dy.pickneglogsoftmax(s, l2i[n.label]) for t in chunk for n, s in model.scores(t, w2i)]
            loss = dy.esum(losses)
            total += loss.value()
            nnodes += len(losses)
            loss.backward()
            trainer.update()
        last_loss = total / nnodes
        if epoch == 0:
            first_loss = last_loss
        good = n = good_root = 0
        for t in dev:
            dy.renew_cg()
            scored = model.scores(t, w2i)
            for node, s in scored:
                good += int(int(s.npvalue().argmax()) == l2i[node.label])
                n += 1
            good_root += int(int(scored[-1][1].npvalue().argmax()) == l2i[t.label])
        acc, root = good / n, good_root / len(dev)
        print(f"epoch {epoch}: train loss {last_loss:.4f}, held-out node accuracy {acc:.3f}, root accuracy {root:.3f}")
    print(f"final held-out node accuracy: {acc:.4f}, root accuracy {root:.4f} "
          f"(train loss {first_loss:.4f} -> {last_loss:.4f})")
    return acc


if __name__ == "__main__":
    main()

"""PyTorch twins of the minibatched tasks (N instances per update), batched by hand as an expert would.

The dynet_api and DyNet side (:class:`benchmarks.tasks_dynet.Minibatched`) write the code for
one instance and leave the batching to the toolkit; here the batching is written out:

* the taggers run the N sentences as one packed batch: word embeddings gathered for the packed
  positions, the rare words of all N sentences spelled in one padded batch per direction (as the
  single-instance twin does per sentence), one bidirectional ``nn.LSTM`` call over the
  ``PackedSequence``, and the MLP and ``cross_entropy`` over the packed rows alone, whose targets
  are packed the same way (the packing is the mask: padding never reaches the loss);
* the Tree-LSTM runs level by level across the minibatch: every preterminal of the N trees in one
  product, then for each height h all nodes of height h of all N trees in one call (their
  children's states gathered by index from the levels below), and one output layer and
  ``cross_entropy`` over every node.

Same nets, sizes, data, optimizers (DyNet's Adam by default) and summed losses as the
single-instance twins of :mod:`benchmarks.tasks_torch`, whose ``load_dynet`` they inherit.
:class:`PerInstance` sums a single-instance twin over the same N items: the tests check that the
hand-batched twins compute the same loss as it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from . import data as D
from . import tasks_torch as T
from .tasks_dynet import MINIBATCH_UNITS


def _items(k: int, size: int) -> list[int]:
    return list(range(k * size, (k + 1) * size))


class PerInstance(T._Task):
    """A single-instance twin run over minibatch ``k``'s N items, their losses summed (the reference
    the hand-batched twins are checked against)."""

    def __init__(self, task: T.BiLSTMTagger | T.TreeLSTM, size: int) -> None:
        self.task, self.size = task, size
        self.name, self.unit = task.name, MINIBATCH_UNITS[task.name]
        self.net, self.opts, self.data = task.net, task.opts, task.data

    def units(self, k: int) -> int:
        return self.size

    def _loss(self, k: int) -> torch.Tensor:
        return torch.stack([self.task._loss(j) for j in _items(k, self.size)]).sum()

    def load_dynet(self, w: dict) -> None:
        self.task.load_dynet(w)


class BiLSTMTaggerBatch(T.BiLSTMTagger):
    """N sentences per update as one packed batch (see the module doc)."""

    def __init__(self, size: int, data: D.TagData | None = None, withchar: bool = False, trainer: str = "adam",
                 **sizes) -> None:
        super().__init__(data, withchar, trainer=trainer, **sizes)
        self.size = size
        self.unit = MINIBATCH_UNITS[self.name]
        self._batches: dict[int, tuple] = {}

    def units(self, k: int) -> int:
        return self.size

    def _minibatch(self, k: int):
        """Packed word ids and tags, and for the rare words: their packed rows, padded spellings
        forwards and reversed (L, n) and the index of each word's last character."""
        if k not in self._batches:
            sents = sorted((self.data.item(j) for j in _items(k, self.size)), key=lambda s: -len(s[0]))
            lens = [len(w) for w, _ in sents]
            T_, B = lens[0], len(sents)
            words = np.zeros((T_, B), dtype=np.int64)
            tags = np.zeros((T_, B), dtype=np.int64)
            for b, (w, t) in enumerate(sents):
                words[:len(w), b] = w
                tags[:len(t), b] = t
            lengths = torch.tensor(lens)
            ids = pack_padded_sequence(torch.from_numpy(words), lengths)
            packed_tags = pack_padded_sequence(torch.from_numpy(tags), lengths).data
            chars = None
            if self.withchar:
                # packed row of each (t, b): pack the flat position t * B + b and invert
                where = pack_padded_sequence(torch.arange(T_ * B).view(T_, B), lengths).data
                row_of = torch.empty(T_ * B, dtype=torch.int64)
                row_of[where] = torch.arange(len(where))
                rare = [(t, b) for b, (w, _) in enumerate(sents) for t in range(len(w)) if w[t] in self.data.rare]
                if rare:
                    spells = [[0] + self.data.spelling[sents[b][0][t]] + [0] for t, b in rare]
                    n = [len(s) for s in spells]
                    pad = np.zeros((2, max(n), len(rare)), dtype=np.int64)
                    for c, s in enumerate(spells):
                        pad[0, :len(s), c] = s
                        pad[1, :len(s), c] = s[::-1]
                    rows = row_of[torch.tensor([t * B + b for t, b in rare])]
                    last = torch.tensor([m - 1 for m in n]).view(1, -1, 1)
                    chars = (rows, torch.from_numpy(pad[0]), torch.from_numpy(pad[1]), last)
            self._batches[k] = T.on_device((ids, packed_tags, chars))
        return self._batches[k]

    def _loss(self, k: int) -> torch.Tensor:
        ids, tags, chars = self._minibatch(k)
        n = self.net
        x = n.emb(ids.data)
        if chars is not None:
            rows, spell, rev, last = chars
            of, _ = n.cfwd(n.cemb(spell))
            ob, _ = n.cbwd(n.cemb(rev))
            idx = last.expand(1, -1, of.shape[-1])
            x = x.index_copy(0, rows, torch.cat([of.gather(0, idx)[0], ob.gather(0, idx)[0]], dim=1))
        hs, _ = n.lstm(PackedSequence(x, ids.batch_sizes))
        scores = n.O(torch.tanh(n.H(hs.data)))
        return F.cross_entropy(scores, tags, reduction="sum")


class TreeLSTMBatch(T.TreeLSTM):
    """N trees per update, level by level across the minibatch (see the module doc)."""

    def __init__(self, size: int, data: D.TreeData | None = None, trainer: str = "adam", **sizes) -> None:
        super().__init__(data, trainer=trainer, **sizes)
        self.size = size
        self.unit = MINIBATCH_UNITS[self.name]
        self._levels: dict[int, tuple] = {}

    def units(self, k: int) -> int:
        return self.size

    def _minibatch(self, k: int):
        """Leaf words; per height h >= 1 the rows of the left and right children of its nodes; the
        labels of every node.  Rows number the nodes height by height (leaves first), so the
        states of heights 0..h-1 are the first rows of the stacked states when height h runs."""
        if k not in self._levels:
            nodes: list[tuple] = []  # (height, label, word) for a leaf, (height, label, left, right) above

            def visit(t) -> int:
                if D.is_leaf(t):
                    nodes.append((0, t[0], t[1]))
                else:
                    left, right = visit(t[1]), visit(t[2])
                    nodes.append((1 + max(nodes[left][0], nodes[right][0]), t[0], left, right))
                return len(nodes) - 1

            for j in _items(k, self.size):
                visit(self.data.item(j))
            order = sorted(range(len(nodes)), key=lambda i: nodes[i][0])  # stable: by height
            row = np.empty(len(nodes), dtype=np.int64)
            row[order] = np.arange(len(nodes))
            heights = [nodes[i][0] for i in order]
            words = torch.tensor([nodes[i][2] for i in order if nodes[i][0] == 0])
            levels = []
            for h in range(1, heights[-1] + 1):
                at = [i for i in order if nodes[i][0] == h]
                levels.append((torch.from_numpy(row[[nodes[i][2] for i in at]]),
                               torch.from_numpy(row[[nodes[i][3] for i in at]])))
            labels = torch.tensor([nodes[i][1] for i in order])
            self._levels[k] = T.on_device((words, levels, labels))
        return self._levels[k]

    def _loss(self, k: int) -> torch.Tensor:
        words, levels, labels = self._minibatch(k)
        n = self.net
        i, o, u = F.linear(n.emb(words), n.W_iou, n.b_iou).chunk(3, dim=1)
        cs = torch.sigmoid(i) * torch.tanh(u)
        hs = torch.sigmoid(o) * torch.tanh(cs)
        for left, right in levels:
            h1, h2, c1, c2 = hs[left], hs[right], cs[left], cs[right]
            i, o, u = F.linear(torch.cat([h1, h2], dim=1), n.U_iou, n.b_iou).chunk(3, dim=1)
            f1 = torch.sigmoid(F.linear(h1, n.U_f[0], n.b_f))
            f2 = torch.sigmoid(F.linear(h2, n.U_f[1], n.b_f))
            c = torch.sigmoid(i) * torch.tanh(u) + f1 * c1 + f2 * c2
            hs = torch.cat([hs, torch.sigmoid(o) * torch.tanh(c)])
            cs = torch.cat([cs, c])
        return F.cross_entropy(n.out(hs), labels, reduction="sum")


def make_minibatched(name: str, size: int, trainer: str = "adam", data=None):
    """The hand-batched twin of task ``name`` with ``size`` instances per update."""
    if name == "bilstm-tagger":
        return BiLSTMTaggerBatch(size, data, withchar=False, trainer=trainer)
    if name == "bilstm-tagger-withchar":
        return BiLSTMTaggerBatch(size, data, withchar=True, trainer=trainer)
    if name == "treelstm":
        return TreeLSTMBatch(size, data, trainer=trainer)
    raise ValueError(f"{name}: no minibatched variant; known: {', '.join(MINIBATCH_UNITS)}")

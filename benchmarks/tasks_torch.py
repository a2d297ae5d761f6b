"""PyTorch twins of the benchmark tasks, written as a PyTorch expert would write them.

Same sizes, data, losses (summed) and optimizer as :mod:`benchmarks.tasks_dynet`:
plain SGD, or DyNet's Adam (alpha 0.001, betas 0.9 / 0.999, eps 1e-8) as
``torch.optim.Adam`` for the dense parameters and ``torch.optim.SparseAdam`` for the
sparse embeddings (DyNet's sparse updates: only the rows a step used move, and
only their moments decay); no clipping on either side, as DyNet's scripts set it.
Idiomatic PyTorch wherever the structure allows:
fused ``nn.LSTM`` over whole sequences (the LM runs the padded minibatch in one
call, the taggers run one bidirectional LSTM, the character model packs all
rare words of a sentence into one batch per direction, padded, reading each word's
last state with one gather), ``nn.Embedding(sparse=True)``
with SGD's sparse updates, one batched output layer and ``cross_entropy`` per
update, and for the Tree-LSTM every preterminal computed in one batched product
with per-node recursion only where the tree forces it.  One thread
(``torch.set_num_threads(1)``), no anomaly detection, denormals flushed to zero.

The twins run on the CPU unless :func:`set_device` names another device (``--torch-device cuda``
in :mod:`benchmarks.run` and :mod:`benchmarks.minibatch`: the GPU side of the cuda backend's
table).  Each update ends with ``loss.item()``, which waits for the device, so wall-clock timing
is exact there too.

``load_dynet(weights)`` copies a dynet_api twin's parameters (``tasks_dynet``'s
``weights()``), mapping DyNet's LSTM gate order (i, f, o, g; forget bias 1 added
at run time) onto PyTorch's (i, f, g, o).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from . import data as D

torch.set_num_threads(1)
torch.autograd.set_detect_anomaly(False)
torch.set_flush_denormal(True)  # as cpu_eigen does while a graph runs (and benchmarks/chain.py for PyTorch)


DEVICE = torch.device("cpu")


def set_device(name: str) -> None:
    """Run the twins built from now on on device ``name`` ("cpu", "cuda", "cuda:1"); a clear error
    when this PyTorch cannot use it."""
    global DEVICE
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise SystemExit(f"--torch-device {name}: not a device PyTorch knows ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--torch-device {name}: this PyTorch ({torch.__version__}) sees no CUDA device")
    DEVICE = dev


def on_device(obj):
    """``obj`` with every tensor and PackedSequence in it (nested in tuples and lists; None and
    plain values kept) moved to :data:`DEVICE` (a PackedSequence keeps its lengths on the CPU)."""
    if isinstance(obj, (torch.Tensor, PackedSequence)):
        return obj.to(DEVICE)
    if isinstance(obj, (tuple, list)):
        return type(obj)(on_device(o) for o in obj)
    return obj


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)


def _load_lstm(lstm: nn.LSTM, dy_weights: list, suffix: str = "", forget_bias: float = 1.0) -> None:
    """DyNet W_x {4h, in}, W_h {4h, h}, b {4h} in gate order i, f, o, g -> nn.LSTM (i, f, g, o)."""
    wx, wh, b = (np.asarray(w, dtype=np.float32) for w in dy_weights)
    h = wh.shape[1]
    perm = np.concatenate([np.arange(0, 2 * h), np.arange(3 * h, 4 * h), np.arange(2 * h, 3 * h)])
    b = b.copy()
    b[h:2 * h] += forget_bias
    with torch.no_grad():
        getattr(lstm, "weight_ih_l0" + suffix).copy_(_t(wx[perm]))
        getattr(lstm, "weight_hh_l0" + suffix).copy_(_t(wh[perm]))
        getattr(lstm, "bias_ih_l0" + suffix).copy_(_t(b[perm]))
        getattr(lstm, "bias_hh_l0" + suffix).zero_()


ADAM = {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-8}  # DyNet's AdamTrainer defaults


def new_optimizers(net: nn.Module, kind: str, lr: float) -> list:
    """SGD over everything, or Adam over the dense parameters plus SparseAdam over sparse embeddings."""
    if kind == "sgd":
        return [torch.optim.SGD(net.parameters(), lr=lr)]
    if kind != "adam":
        raise ValueError(f"unknown trainer {kind!r}; known: sgd, adam")
    sparse = [m.weight for m in net.modules() if isinstance(m, nn.Embedding) and m.sparse]
    ids = {id(p) for p in sparse}
    dense = [p for p in net.parameters() if id(p) not in ids]
    opts = [torch.optim.Adam(dense, **ADAM)]
    if sparse:
        opts.append(torch.optim.SparseAdam(sparse, **ADAM))
    return opts


class _Task:
    name = ""
    unit = ""
    trainer_kind = "sgd"

    def _new_optimizer(self, lr: float) -> None:
        self.net.to(DEVICE)  # before the optimizers: they hold the parameters of the device
        self.opts = new_optimizers(self.net, self.trainer_kind, lr)

    def _loss(self, k: int) -> torch.Tensor:
        raise NotImplementedError

    def units(self, k: int) -> int:
        raise NotImplementedError

    def loss(self, k: int) -> float:
        with torch.no_grad():
            return self._loss(k).item()

    def step(self, k: int) -> tuple[float, int]:
        for opt in self.opts:
            opt.zero_grad(set_to_none=True)
        loss = self._loss(k)
        loss.backward()
        for opt in self.opts:
            opt.step()
        return loss.item(), self.units(k)


class _LMNet(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, embed, sparse=True)
        self.lstm = nn.LSTM(embed, hidden)
        self.out = nn.Linear(hidden, vocab)


class RNNLMBatch(_Task):
    name, unit = "rnnlm-batch", "words/sec"

    def __init__(self, data: D.LMData | None = None, embed: int = 256, hidden: int = 256, lr: float = 0.001,
                 trainer: str = "sgd") -> None:
        self.trainer_kind = trainer
        self.data = data or D.lm_data()
        self.net = _LMNet(self.data.vocab, embed, hidden)
        self._new_optimizer(lr)
        self._tensors: dict[int, tuple] = {}

    def units(self, k: int) -> int:
        return self.data.words(k)

    def _batch(self, k: int):
        """(inputs, targets) of shape (T, B): <s> then the sentence; padding targets are ignored."""
        j = k % len(self.data.batches)
        if j not in self._tensors:
            sents = self.data.batches[j]
            T, B = len(sents[0]), len(sents)
            tgt = np.full((T, B), -100, dtype=np.int64)
            for b, s in enumerate(sents):
                tgt[:len(s), b] = s
            inp = np.zeros((T, B), dtype=np.int64)
            inp[1:] = np.maximum(tgt[:-1], 0)
            self._tensors[j] = on_device((torch.from_numpy(inp), torch.from_numpy(tgt)))
        return self._tensors[j]

    def _loss(self, k: int) -> torch.Tensor:
        inp, tgt = self._batch(k)
        n = self.net
        hs, _ = n.lstm(n.emb(inp))
        logits = n.out(hs)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.view(-1), ignore_index=-100, reduction="sum")

    def load_dynet(self, w: dict) -> None:
        n = self.net
        _load_lstm(n.lstm, [w["Wx"], w["Wh"], w["b"]])
        with torch.no_grad():
            n.emb.weight.copy_(_t(w["E"]))
            n.out.weight.copy_(_t(w["W"]))
            n.out.bias.copy_(_t(w["bias"]))


class _TaggerNet(nn.Module):
    def __init__(self, vocab: int, n_tags: int, wdim: int, hidden: int, mlp: int, withchar: bool, n_chars: int,
                 cdim: int, chidden: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, wdim, sparse=True)
        self.lstm = nn.LSTM(wdim, hidden, bidirectional=True)
        self.H = nn.Linear(2 * hidden, mlp, bias=False)
        self.O = nn.Linear(mlp, n_tags, bias=False)
        if withchar:
            self.cemb = nn.Embedding(n_chars, cdim, sparse=True)
            self.cfwd = nn.LSTM(cdim, chidden)  # reads spellings left to right
            self.cbwd = nn.LSTM(cdim, chidden)  # reads them right to left


class BiLSTMTagger(_Task):
    unit = "words/sec"

    def __init__(self, data: D.TagData | None = None, withchar: bool = False, wdim: int = 128, hidden: int = 50,
                 mlp: int = 32, cdim: int = 20, chidden: int = 64, lr: float = 0.1, trainer: str = "sgd") -> None:
        self.trainer_kind = trainer
        self.name = "bilstm-tagger-withchar" if withchar else "bilstm-tagger"
        self.data = data or D.tag_data()
        self.withchar = withchar
        self.net = _TaggerNet(self.data.vocab, self.data.n_tags, wdim, hidden, mlp, withchar, self.data.n_chars,
                              cdim, chidden)
        self._new_optimizer(lr)
        self._tensors: dict[int, tuple] = {}

    def units(self, k: int) -> int:
        return len(self.data.item(k)[0])

    def _sentence(self, k: int):
        """Word ids, tag ids, and for rare words: positions, the padded spellings (L, n) forwards and
        reversed (padding after the word either way), and the index of each word's last character.

        Padding after the word leaves the state at its last character exact, so both directions run
        as plain padded batches read with one gather: twice as fast here as a bidirectional LSTM
        over a ``pack_padded_sequence`` (1.5 vs 2.9 ms per sentence, forward and backward)."""
        j = k % len(self.data.sents)
        if j not in self._tensors:
            words, tags = self.data.item(j)
            chars = None
            if self.withchar:
                pos = [i for i, w in enumerate(words) if w in self.data.rare]
                if pos:
                    spells = [[0] + self.data.spelling[words[i]] + [0] for i in pos]
                    lens = [len(s) for s in spells]
                    pad = np.zeros((2, max(lens), len(pos)), dtype=np.int64)
                    for c, s in enumerate(spells):
                        pad[0, :len(s), c] = s
                        pad[1, :len(s), c] = s[::-1]
                    last = torch.tensor([n - 1 for n in lens]).view(1, -1, 1)
                    chars = (torch.tensor(pos), torch.from_numpy(pad[0]), torch.from_numpy(pad[1]), last)
            self._tensors[j] = on_device((torch.tensor(words), torch.tensor(tags), chars))
        return self._tensors[j]

    def _loss(self, k: int) -> torch.Tensor:
        words, tags, chars = self._sentence(k)
        n = self.net
        x = n.emb(words)
        if chars is not None:
            pos, spell, rev, last = chars
            of, _ = n.cfwd(n.cemb(spell))
            ob, _ = n.cbwd(n.cemb(rev))
            idx = last.expand(1, -1, of.shape[-1])
            x = x.index_copy(0, pos, torch.cat([of.gather(0, idx)[0], ob.gather(0, idx)[0]], dim=1))
        hs, _ = n.lstm(x.unsqueeze(1))
        scores = n.O(torch.tanh(n.H(hs.squeeze(1))))
        return F.cross_entropy(scores, tags, reduction="sum")

    def load_dynet(self, w: dict) -> None:
        n = self.net
        _load_lstm(n.lstm, w["fwd"])
        _load_lstm(n.lstm, w["bwd"], "_reverse")
        with torch.no_grad():
            n.emb.weight.copy_(_t(w["E"]))
            n.H.weight.copy_(_t(w["H"]))
            n.O.weight.copy_(_t(w["O"]))
        if self.withchar:
            _load_lstm(n.cfwd, w["cfwd"])
            _load_lstm(n.cbwd, w["cbwd"])
            with torch.no_grad():
                n.cemb.weight.copy_(_t(w["C"]))


class _TreeNet(nn.Module):
    def __init__(self, vocab: int, n_labels: int, wdim: int, hidden: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, wdim, sparse=True)
        self.W_iou = nn.Parameter(torch.empty(3 * hidden, wdim))  # preterminal gates i, o, u
        self.U_iou = nn.Parameter(torch.empty(3 * hidden, 2 * hidden))  # internal gates from [h_l; h_r]
        self.U_f = nn.Parameter(torch.empty(2, hidden, hidden))  # forget gates of the left and right child
        self.b_iou = nn.Parameter(torch.zeros(3 * hidden))  # shared by both kinds of node
        self.b_f = nn.Parameter(torch.zeros(hidden))
        self.out = nn.Linear(hidden, n_labels, bias=False)
        for p in (self.W_iou, self.U_iou, self.U_f):
            nn.init.xavier_uniform_(p)


class TreeLSTM(_Task):
    name, unit = "treelstm", "trees/sec"

    def __init__(self, data: D.TreeData | None = None, wdim: int = 128, hidden: int = 128, lr: float = 0.05,
                 trainer: str = "sgd") -> None:
        self.trainer_kind = trainer
        self.data = data or D.tree_data()
        self.hidden = hidden
        self.net = _TreeNet(self.data.vocab, self.data.n_labels, wdim, hidden)
        self._new_optimizer(lr)
        self._trees: dict[int, tuple] = {}

    def units(self, k: int) -> int:
        return 1

    def _prepared(self, k: int):
        """Leaf words, the tree with each leaf replaced by its index in that list, and the labels
        in the order ``_loss`` stacks states: internal nodes in post-order, then the leaves."""
        j = k % len(self.data.trees)
        if j not in self._trees:
            words: list[int] = []
            leaf_labels: list[int] = []
            labels: list[int] = []

            def index(t):
                if D.is_leaf(t):
                    words.append(t[1])
                    leaf_labels.append(t[0])
                    return (t[0], len(words) - 1)
                node = (t[0], index(t[1]), index(t[2]))
                labels.append(t[0])
                return node

            shape = index(self.data.item(j))
            self._trees[j] = on_device((torch.tensor(words), shape, torch.tensor(labels + leaf_labels)))
        return self._trees[j]

    def _node(self, t, hl, cl, hs: list):
        if D.is_leaf(t):
            i = t[1]
            return hl[i:i + 1], cl[i:i + 1]
        h1, c1 = self._node(t[1], hl, cl, hs)
        h2, c2 = self._node(t[2], hl, cl, hs)
        n = self.net
        i, o, u = F.linear(torch.cat([h1, h2], dim=1), n.U_iou, n.b_iou).chunk(3, dim=1)
        f1 = torch.sigmoid(F.linear(h1, n.U_f[0], n.b_f))
        f2 = torch.sigmoid(F.linear(h2, n.U_f[1], n.b_f))
        c = torch.sigmoid(i) * torch.tanh(u) + f1 * c1 + f2 * c2
        h = torch.sigmoid(o) * torch.tanh(c)
        hs.append(h)
        return h, c

    def _loss(self, k: int) -> torch.Tensor:
        words, shape, labels = self._prepared(k)
        n = self.net
        i, o, u = F.linear(n.emb(words), n.W_iou, n.b_iou).chunk(3, dim=1)
        cl = torch.sigmoid(i) * torch.tanh(u)
        hl = torch.sigmoid(o) * torch.tanh(cl)
        hs: list = []
        self._node(shape, hl, cl, hs)
        h_all = torch.cat(hs + [hl], dim=0)
        return F.cross_entropy(n.out(h_all), labels, reduction="sum")

    def load_dynet(self, w: dict) -> None:
        n = self.net
        with torch.no_grad():
            n.emb.weight.copy_(_t(w["E"]))
            n.W_iou.copy_(_t(np.concatenate(w["WS"])))
            n.U_iou.copy_(_t(np.concatenate(w["US"])))
            n.U_f.copy_(_t(np.stack(w["UFS"])))
            bi, bo, bu, bf = w["BS"]
            n.b_iou.copy_(_t(np.concatenate([bi, bo, bu])))
            n.b_f.copy_(_t(bf))
            n.out.weight.copy_(_t(w["W"]))


def make(name: str, trainer: str = "sgd"):
    """A fresh PyTorch task by its benchmark name."""
    if name == "rnnlm-batch":
        return RNNLMBatch(trainer=trainer)
    if name == "bilstm-tagger":
        return BiLSTMTagger(withchar=False, trainer=trainer)
    if name == "bilstm-tagger-withchar":
        return BiLSTMTagger(withchar=True, trainer=trainer)
    if name == "treelstm":
        return TreeLSTM(trainer=trainer)
    raise ValueError(f"unknown benchmark task {name!r}")

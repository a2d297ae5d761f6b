"""The DyNet paper's benchmark tasks written with ``dynet_api``, in DyNet's own style.

Each follows the matching script of DyNet's benchmark suite (dynet-benchmark,
``dynet-py/``): a fresh graph per update (``dy.renew_cg``), builders for the
recurrent parts, ``pickneglogsoftmax(_batch)`` losses summed with ``esum``,
one trainer update per minibatch / sentence / tree.  Differences from those
scripts, kept identical on the PyTorch side: no ``dy.noise`` on the tagger's
embeddings, no wasted LSTM step after the last LM prediction, and the
Tree-LSTM's output gate uses its own bias (DyNet's script reuses ``bi``).

The trainer is plain SGD (``trainer="sgd"``) or, as DyNet's scripts use,
``dy.AdamTrainer(model)`` with its defaults (``trainer="adam"``); either way clipping
is off, as those scripts set it (``set_clip_threshold(-1)``), and lookup tables get
DyNet's default sparse (touched rows only) updates.

The same code runs on DyNet 2.1.2 itself (the benchmark peer,
:mod:`benchmarks.dynet_peer`): with ``BENCH_DYNET_MODULE=dynet`` in the environment
it imports ``dynet`` instead of ``dynet_api``.

Every task has ``step(k) -> (loss, units)``: build, forward, backward and
update on data item ``k``; ``loss(k)`` only evaluates; the per-instance tasks build
item ``k`` into the current graph with ``_instance(k)``, which :class:`Minibatched` calls for
N items per graph (autobatching's benchmarks, :mod:`benchmarks.minibatch`); ``weights()`` returns the
parameters as NumPy arrays for the PyTorch twin to copy (tests check that the
twins compute the same loss from the same weights).
"""

from __future__ import annotations

import importlib
import os
import time

import numpy as np

from . import data as D

MODULE_ENV = "BENCH_DYNET_MODULE"
dy = importlib.import_module(os.environ.get(MODULE_ENV, "dynet_api"))
TRAINERS = ("sgd", "adam")


def new_trainer(model, kind: str, lr: float):
    """``kind`` "sgd" (learning rate ``lr``) or "adam" (DyNet's defaults, as its scripts); clipping off."""
    if kind == "sgd":
        trainer = dy.SimpleSGDTrainer(model, lr)
    elif kind == "adam":
        trainer = dy.AdamTrainer(model)
    else:
        raise ValueError(f"unknown trainer {kind!r}; known: {', '.join(TRAINERS)}")
    trainer.set_clip_threshold(-1.0)
    return trainer


class _Task:
    name = ""
    unit = ""
    trainer_kind = "sgd"

    def _new_trainer(self, lr: float) -> None:
        self.trainer = new_trainer(self.model, self.trainer_kind, lr)

    def _graph(self, k: int):
        """A fresh graph holding item ``k``'s loss."""
        dy.renew_cg()
        return self._instance(k)

    def _instance(self, k: int):
        """Item ``k``'s loss, built into the current graph (the per-instance code)."""
        raise NotImplementedError

    def units(self, k: int) -> int:
        raise NotImplementedError

    def loss(self, k: int) -> float:
        return self._graph(k).value()

    def step(self, k: int) -> tuple[float, int]:
        loss = self._graph(k)
        v = loss.value()
        loss.backward()
        self.trainer.update()
        return v, self.units(k)

    def step_phases(self, k: int) -> dict[str, float]:
        """``step`` with each phase timed (seconds): graph construction, forward, backward, update."""
        t0 = time.perf_counter()
        loss = self._graph(k)
        t1 = time.perf_counter()
        loss.value()
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        self.trainer.update()
        t4 = time.perf_counter()
        return {"construct": t1 - t0, "forward": t2 - t1, "backward": t3 - t2, "update": t4 - t3}


def _lstm_weights(builder) -> list[np.ndarray]:
    """W_x {4h, in}, W_h {4h, h}, b {4h} of a one-layer VanillaLSTMBuilder (gates i, f, o, g)."""
    return [p.as_array() for p in builder.get_parameters()[0]]


class RNNLMBatch(_Task):
    """LSTM language model over minibatches of 16 sentences (rnnlm-batch.py)."""

    name, unit = "rnnlm-batch", "words/sec"

    def __init__(self, data: D.LMData | None = None, embed: int = 256, hidden: int = 256, lr: float = 0.001,
                 trainer: str = "sgd") -> None:
        self.trainer_kind = trainer
        self.data = data or D.lm_data()
        v = self.data.vocab
        self.model = m = dy.ParameterCollection()
        self.E = m.add_lookup_parameters((v, embed))
        self.rnn = dy.VanillaLSTMBuilder(1, embed, hidden, m)
        self.W = m.add_parameters((v, hidden))
        self.b = m.add_parameters((v,))
        self._new_trainer(lr)

    def units(self, k: int) -> int:
        return self.data.words(k)

    def _graph(self, k: int):
        sents = self.data.batches[k % len(self.data.batches)]
        n, S = len(sents), 0
        dy.renew_cg()
        s = self.rnn.initial_state().add_input(dy.lookup_batch(self.E, [S] * n))
        losses = []
        for i in range(len(sents[0])):
            wids = [sent[i] if len(sent) > i else S for sent in sents]
            score = dy.affine_transform([self.b, self.W, s.output()])
            loss = dy.pickneglogsoftmax_batch(score, wids)
            if len(sents[-1]) <= i:  # mask the sentences that have ended
                mask = [1.0 if len(sent) > i else 0.0 for sent in sents]
                loss = loss * dy.reshape(dy.inputVector(mask), (1,), n)
            losses.append(loss)
            if i + 1 < len(sents[0]):
                s = s.add_input(dy.lookup_batch(self.E, wids))
        return dy.sum_batches(dy.esum(losses))

    def weights(self) -> dict[str, np.ndarray]:
        wx, wh, b = _lstm_weights(self.rnn)
        return {"E": self.E.as_array(), "Wx": wx, "Wh": wh, "b": b, "W": self.W.as_array(), "bias": self.b.as_array()}


class BiLSTMTagger(_Task):
    """BiLSTM tagger, one sentence per update (bilstm-tagger.py / bilstm-tagger-withchar.py).

    With ``withchar`` a rare word is represented by the last states of a forward and
    a backward character LSTM (20-dim characters, 64 hidden each way) instead of its
    embedding, as DyNet's benchmark does for words seen at most 5 times.
    """

    unit = "words/sec"

    def __init__(self, data: D.TagData | None = None, withchar: bool = False, wdim: int = 128, hidden: int = 50,
                 mlp: int = 32, cdim: int = 20, chidden: int = 64, lr: float = 0.1, trainer: str = "sgd") -> None:
        self.trainer_kind = trainer
        self.name = "bilstm-tagger-withchar" if withchar else "bilstm-tagger"
        self.data = data or D.tag_data()
        self.withchar = withchar
        self.model = m = dy.ParameterCollection()
        self.E = m.add_lookup_parameters((self.data.vocab, wdim))
        self.H = m.add_parameters((mlp, 2 * hidden))
        self.O = m.add_parameters((self.data.n_tags, mlp))
        self.fwd = dy.LSTMBuilder(1, wdim, hidden, m)
        self.bwd = dy.LSTMBuilder(1, wdim, hidden, m)
        if withchar:
            if 2 * chidden != wdim:
                raise ValueError(f"{self.name}: character states (2 x {chidden}) must match the word "
                                 f"embedding ({wdim})")
            self.C = m.add_lookup_parameters((self.data.n_chars, cdim))
            self.cfwd = dy.LSTMBuilder(1, cdim, chidden, m)
            self.cbwd = dy.LSTMBuilder(1, cdim, chidden, m)
        self._new_trainer(lr)

    def units(self, k: int) -> int:
        return len(self.data.item(k)[0])

    def _word_rep(self, w: int, cf, cb):
        if not self.withchar or w not in self.data.rare:
            return self.E[w]
        char_embs = [self.C[c] for c in [0] + self.data.spelling[w] + [0]]
        fw = cf.transduce(char_embs)
        bw = cb.transduce(reversed(char_embs))
        return dy.concatenate([fw[-1], bw[-1]])

    def _instance(self, k: int):
        words, tags = self.data.item(k)
        cf = self.cfwd.initial_state() if self.withchar else None
        cb = self.cbwd.initial_state() if self.withchar else None
        wembs = [self._word_rep(w, cf, cb) for w in words]
        fw = self.fwd.initial_state().transduce(wembs)
        bw = self.bwd.initial_state().transduce(reversed(wembs))
        errs = []
        for f, b, t in zip(fw, reversed(bw), tags, strict=True):
            r = self.O * dy.tanh(self.H * dy.concatenate([f, b]))
            errs.append(dy.pickneglogsoftmax(r, t))
        return dy.esum(errs)

    def weights(self) -> dict[str, np.ndarray]:
        w = {"E": self.E.as_array(), "H": self.H.as_array(), "O": self.O.as_array(),
             "fwd": _lstm_weights(self.fwd), "bwd": _lstm_weights(self.bwd)}
        if self.withchar:
            w.update(C=self.C.as_array(), cfwd=_lstm_weights(self.cfwd), cbwd=_lstm_weights(self.cbwd))
        return w


class TreeLSTM(_Task):
    """Binary Tree-LSTM, one tree per update, a softmax loss at every node (treenn.py).

    Preterminals: i, o, u gates from the word embedding, c = i*u.  Internal nodes:
    i, o, u from [h_l; h_r], one forget gate per child; the gate biases are shared
    between the two kinds of node, as in DyNet's script.
    """

    name, unit = "treelstm", "trees/sec"

    def __init__(self, data: D.TreeData | None = None, wdim: int = 128, hidden: int = 128, lr: float = 0.05,
                 trainer: str = "sgd") -> None:
        self.trainer_kind = trainer
        self.data = data or D.tree_data()
        self.model = m = dy.ParameterCollection()
        self.E = m.add_lookup_parameters((self.data.vocab, wdim))
        self.WS = [m.add_parameters((hidden, wdim)) for _ in "iou"]
        self.US = [m.add_parameters((hidden, 2 * hidden)) for _ in "iou"]
        self.UFS = [m.add_parameters((hidden, hidden)) for _ in "ff"]
        self.BS = [m.add_parameters(hidden) for _ in "iouf"]
        self.W = m.add_parameters((self.data.n_labels, hidden))
        self._new_trainer(lr)

    def units(self, k: int) -> int:
        return 1

    def _expr_for_tree(self, tree, losses: list):
        bi, bo, bu, bf = self.BS
        if D.is_leaf(tree):
            label, word = tree
            emb = self.E[word]
            Wi, Wo, Wu = self.WS
            i = dy.logistic(dy.affine_transform([bi, Wi, emb]))
            o = dy.logistic(dy.affine_transform([bo, Wo, emb]))
            u = dy.tanh(dy.affine_transform([bu, Wu, emb]))
            c = dy.cmult(i, u)
        else:
            label, left, right = tree
            h1, c1 = self._expr_for_tree(left, losses)
            h2, c2 = self._expr_for_tree(right, losses)
            Ui, Uo, Uu = self.US
            Uf1, Uf2 = self.UFS
            e = dy.concatenate([h1, h2])
            i = dy.logistic(dy.affine_transform([bi, Ui, e]))
            o = dy.logistic(dy.affine_transform([bo, Uo, e]))
            f1 = dy.logistic(dy.affine_transform([bf, Uf1, h1]))
            f2 = dy.logistic(dy.affine_transform([bf, Uf2, h2]))
            u = dy.tanh(dy.affine_transform([bu, Uu, e]))
            c = dy.cmult(i, u) + dy.cmult(f1, c1) + dy.cmult(f2, c2)
        h = dy.cmult(o, dy.tanh(c))
        losses.append(dy.pickneglogsoftmax(self.W * h, label))
        return h, c

    def _instance(self, k: int):
        losses: list = []
        self._expr_for_tree(self.data.item(k), losses)
        return dy.esum(losses)

    def weights(self) -> dict[str, np.ndarray]:
        return {"E": self.E.as_array(), "WS": [p.as_array() for p in self.WS], "US": [p.as_array() for p in self.US],
                "UFS": [p.as_array() for p in self.UFS], "BS": [p.as_array() for p in self.BS], "W": self.W.as_array()}


def make(name: str, trainer: str = "sgd", data=None):
    """A fresh task (new parameters) by its benchmark name; ``data`` replaces the default data set."""
    if name == "rnnlm-batch":
        return RNNLMBatch(data, trainer=trainer)
    if name == "bilstm-tagger":
        return BiLSTMTagger(data, withchar=False, trainer=trainer)
    if name == "bilstm-tagger-withchar":
        return BiLSTMTagger(data, withchar=True, trainer=trainer)
    if name == "treelstm":
        return TreeLSTM(data, trainer=trainer)
    raise ValueError(f"unknown benchmark task {name!r}; known: {', '.join(TASKS)}")


TASKS = ("rnnlm-batch", "bilstm-tagger", "bilstm-tagger-withchar", "treelstm")

# The per-instance tasks that also run N instances per graph (autobatching's benchmarks), and their unit.
MINIBATCH_UNITS = {"bilstm-tagger": "sentences/sec", "bilstm-tagger-withchar": "sentences/sec",
                   "treelstm": "trees/sec"}


class Minibatched(_Task):
    """N instances per graph, as DyNet's autobatching is meant to be used: each instance built by
    the single-instance task's own code (``_instance``), the N losses summed with ``esum``, one
    backward and one trainer update.  Minibatch ``k`` holds items ``k*N .. k*N+N-1``; the unit is
    instances (trees or sentences) per second, so minibatch sizes compare."""

    def __init__(self, task: _Task, size: int) -> None:
        if task.name not in MINIBATCH_UNITS:
            raise ValueError(f"{task.name}: no minibatched variant; known: {', '.join(MINIBATCH_UNITS)}")
        if size < 1:
            raise ValueError(f"{task.name}: minibatch size must be at least 1, got {size}")
        self.task, self.size = task, size
        self.name, self.unit = task.name, MINIBATCH_UNITS[task.name]
        self.model, self.trainer, self.data = task.model, task.trainer, task.data

    def items(self, k: int) -> list[int]:
        return list(range(k * self.size, (k + 1) * self.size))

    def units(self, k: int) -> int:
        return self.size

    def _graph(self, k: int):
        dy.renew_cg()
        return dy.esum([self.task._instance(j) for j in self.items(k)])

    def weights(self) -> dict[str, np.ndarray]:
        return self.task.weights()


def make_minibatched(name: str, size: int, trainer: str = "adam", data=None) -> Minibatched:
    """``size`` instances of task ``name`` per graph and update (fresh parameters)."""
    if name not in MINIBATCH_UNITS:
        raise ValueError(f"{name}: no minibatched variant; known: {', '.join(MINIBATCH_UNITS)}")
    return Minibatched(make(name, trainer, data), size)

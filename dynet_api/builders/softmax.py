"""DyNet's softmax builders (dynet/cfsm-builder.cc): a plain softmax layer and the
class-factored softmax p(w | x) = p(class(w) | x) p(w | class(w), x).

Neither has a ``spec``: as in DyNet they cannot be saved with ``dy.save`` (save their
``param_collection()`` instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import config
from .. import functions as F
from ..graph import Expression, _cg
from ..params import ConstInitializer, ParameterCollection
from ._base import as_size, matmul

_ZERO = ConstInitializer(0.0)


def _draw(probs: np.ndarray) -> int:
    """DyNet's sampling loop: subtract probabilities from one uniform draw."""
    p = config.rng.random()
    for k, q in enumerate(probs):
        p -= q
        if p < 0.0:
            return k
    return len(probs) - 1


class SoftmaxBuilder:
    """Base: parameters are loaded into each graph on first use (constants if update=False)."""

    def _exprs(self, update: bool) -> dict:
        key = (_cg.ver, bool(update))
        if self._loaded_key != key:
            self._loaded_key = key
            self._loaded = {}
        return self._loaded

    def _param(self, p, update: bool) -> Expression:
        cache = self._exprs(update)
        e = cache.get(id(p))
        if e is None:
            e = cache[id(p)] = p.expr(update=bool(update))
        return e

    def _affine(self, w, b, x, update: bool) -> Expression:
        if not isinstance(x, Expression):
            raise TypeError(f"{type(self).__name__}: expected an Expression, got {type(x).__name__}")
        we = self._param(w, update)
        if b is None:
            return matmul(we, x)
        return F.affine_transform([self._param(b, update), we, x])

    def full_logits(self, x: Expression, update: bool = True) -> Expression:
        """The unnormalised scores of every class for the input ``x``.

        Args:
            x (Expression): the input ``{input_dim}``.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        raise NotImplementedError

    def neg_log_softmax(self, x: Expression, c: int, update: bool = True) -> Expression:
        """``-log p(c | x)``.

        Args:
            x (Expression): the input ``{input_dim}``.
            c (int): the class.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        raise NotImplementedError

    def neg_log_softmax_batch(self, x: Expression, cs: Sequence[int], update: bool = True) -> Expression:
        """``-log p(cs[k] | x_k)`` per batch element.

        Args:
            x (Expression): a batch of inputs.
            cs (list[int]): one class per batch element.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        raise NotImplementedError

    def full_log_distribution(self, x: Expression, update: bool = True) -> Expression:
        """``log p(. | x)`` over every class.

        Args:
            x (Expression): the input ``{input_dim}``.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        return F.log_softmax(self.full_logits(x, update))

    def param_collection(self) -> ParameterCollection:
        """The subcollection holding the builder's parameters."""
        return self._pc


class StandardSoftmaxBuilder(SoftmaxBuilder):
    """log p(c | x) = log_softmax(W x + b); W {num_classes, input_dim}, b {num_classes} (zeros),
    in subcollection ``standard-softmax-builder``."""

    def __init__(self, input_dim: int, num_classes: int, pc: ParameterCollection, bias: bool = True) -> None:
        """Creates W and b in a subcollection of ``pc``.

        Args:
            input_dim (int): the input size.
            num_classes (int): the number of classes.
            pc (ParameterCollection): the collection.
            bias (bool): whether to use the bias b.
        """
        if not isinstance(pc, ParameterCollection):
            raise TypeError(f"StandardSoftmaxBuilder: pc must be a ParameterCollection, got {type(pc).__name__}")
        self.input_dim = as_size(input_dim, "StandardSoftmaxBuilder: input_dim")
        self.num_classes = as_size(num_classes, "StandardSoftmaxBuilder: num_classes")
        self.bias = bool(bias)
        self._pc = pc.add_subcollection("standard-softmax-builder")
        self.p_w = self._pc.add_parameters((self.num_classes, self.input_dim))
        self.p_b = self._pc.add_parameters((self.num_classes,), init=_ZERO) if self.bias else None
        self._loaded_key = None

    def full_logits(self, x: Expression, update: bool = True) -> Expression:
        """``W x + b``: the scores of every class.

        Args:
            x (Expression): the input ``{input_dim}``.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        return self._affine(self.p_w, self.p_b, x, update)

    def neg_log_softmax(self, x: Expression, c: int, update: bool = True) -> Expression:
        """``-log softmax(W x + b)[c]``.

        Args:
            x (Expression): the input ``{input_dim}``.
            c (int): the class.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        return F.pickneglogsoftmax(self.full_logits(x, update), c)

    def neg_log_softmax_batch(self, x: Expression, cs: Sequence[int], update: bool = True) -> Expression:
        """:meth:`neg_log_softmax` per batch element.

        Args:
            x (Expression): a batch of inputs (batch size ``len(cs)``).
            cs (list[int]): one class per batch element.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        cs = list(cs)
        bd = _cg.dims[x._check()].bd
        if bd != len(cs):
            raise ValueError(f"Inputs of StandardSoftmaxBuilder::neg_log_softmax should have same batch size, "
                             f"got {bd} for rep and {len(cs)} for classidxs")
        return F.pickneglogsoftmax_batch(self.full_logits(x, update), cs)

    def sample(self, x: Expression) -> int:
        """A class drawn from ``softmax(W x + b)``.

        Args:
            x (Expression): the input ``{input_dim}``.
        """
        return _draw(np.asarray(F.softmax(self.full_logits(x)).npvalue()).reshape(-1))


class ClassFactoredSoftmaxBuilder(SoftmaxBuilder):
    """Words grouped into classes read from ``cluster_file`` (lines ``<class> <word> [freq]``).

    ``word_dict`` maps every word to its id (ids 0..n-1).  Parameters, in subcollection
    ``class-factored-softmax-builder`` and DyNet's order: class scores W_c {classes, in},
    b_c {classes}, then for every class with more than one word W_w {words in class, in},
    b_w {words in class} (biases zero; omitted with ``bias=False``).

    ``full_logits`` reproduces DyNet exactly, including its mixing of domains: a word's
    entry is ``softmax(word scores)[w] + log p(class)`` (a probability plus a log
    probability), and a word outside every class gets -10000.  ``neg_log_softmax``
    is the exact -log p(w | x).
    """

    def __init__(self, input_dim: int, cluster_file: str, word_dict: dict, pc: ParameterCollection,
                 bias: bool = True) -> None:
        """Reads the clusters and creates the parameters in a subcollection of ``pc``.

        Args:
            input_dim (int): the input size.
            cluster_file (str): lines ``<class> <word> [freq]``.
            word_dict (dict): word -> id, ids ``0..n-1``.
            pc (ParameterCollection): the collection.
            bias (bool): whether to use biases.
        """
        if not isinstance(pc, ParameterCollection):
            raise TypeError(f"ClassFactoredSoftmaxBuilder: pc must be a ParameterCollection, got {type(pc).__name__}")
        self.input_dim = as_size(input_dim, "ClassFactoredSoftmaxBuilder: input_dim")
        self.bias = bool(bias)
        self._read_clusters(cluster_file, word_dict)
        self._pc = pc.add_subcollection("class-factored-softmax-builder")
        n = len(self.cidx2words)
        self.p_r2c = self._pc.add_parameters((n, self.input_dim))
        self.p_cbias = self._pc.add_parameters((n,), init=_ZERO) if self.bias else None
        self.p_rc2ws: list = [None] * n
        self.p_rcwbiases: list = [None] * n
        for c, words in enumerate(self.cidx2words):
            if len(words) > 1:
                self.p_rc2ws[c] = self._pc.add_parameters((len(words), self.input_dim))
                if self.bias:
                    self.p_rcwbiases[c] = self._pc.add_parameters((len(words),), init=_ZERO)
        self._loaded_key = None

    def _read_clusters(self, fname: str, word_dict: dict) -> None:
        ids = sorted(word_dict.values()) if word_dict else []
        if ids != list(range(len(ids))):
            raise ValueError("ClassFactoredSoftmaxBuilder: word_dict should map words to unique ids 0..n-1")
        class_ids: dict[str, int] = {}
        self.cidx2words: list[list[int]] = []
        self.widx2cidx: list[int] = []
        self.widx2cwidx: list[int] = []
        try:
            with open(fname, encoding="utf8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise ValueError(f"Could not find cluster file {fname} in ClassFactoredSoftmax ({e})") from None
        for lineno, line in enumerate(lines, 1):
            parts = line.replace("\t", " ").split()
            if len(parts) < 2:
                raise ValueError(f"Invalid format in cluster file {fname} in ClassFactoredSoftmax (line {lineno}: "
                                 f"{line!r}; expected '<class> <word>')")
            cname, word = parts[0], parts[1]
            if word not in word_dict:
                raise ValueError(f"ClassFactoredSoftmaxBuilder: word {word!r} of {fname} line {lineno} "
                                 "is not in word_dict")
            c = class_ids.setdefault(cname, len(class_ids))
            w = int(word_dict[word])
            if w >= len(self.widx2cidx):
                grow = w + 1 - len(self.widx2cidx)
                self.widx2cidx += [-1] * grow
                self.widx2cwidx += [0] * grow
            if c >= len(self.cidx2words):
                self.cidx2words.append([])
            self.widx2cidx[w] = c
            self.widx2cwidx[w] = len(self.cidx2words[c])
            self.cidx2words[c].append(w)
        if not self.cidx2words:
            raise ValueError(f"ClassFactoredSoftmaxBuilder: cluster file {fname} has no entries")

    # ---------------------------------------------------------------- scores
    def _class_of(self, w: int) -> int:
        w = int(w)
        if not 0 <= w < len(self.widx2cidx) or self.widx2cidx[w] < 0:
            raise ValueError(f"Word ID {w} missing from clusters in ClassFactoredSoftmaxBuilder::neg_log_softmax")
        return self.widx2cidx[w]

    def class_logits(self, x: Expression, update: bool = True) -> Expression:
        """The scores of the classes.

        Args:
            x (Expression): the input ``{input_dim}``.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        return self._affine(self.p_r2c, self.p_cbias, x, update)

    def class_log_distribution(self, x: Expression, update: bool = True) -> Expression:
        """``log p(class | x)`` over the classes.

        Args:
            x (Expression): the input ``{input_dim}``.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        return F.log_softmax(self.class_logits(x, update))

    def subclass_logits(self, x: Expression, classid: int, update: bool = True) -> Expression:
        """The scores of the words of class ``classid``.

        Args:
            x (Expression): the input ``{input_dim}``.
            classid (int): the class.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        c = int(classid)
        if not 0 <= c < len(self.cidx2words):
            raise IndexError(f"ClassFactoredSoftmaxBuilder: class {c} out of range ({len(self.cidx2words)} classes)")
        if self.p_rc2ws[c] is None:
            raise ValueError(f"ClassFactoredSoftmaxBuilder: class {c} has a single word and no word scores")
        return self._affine(self.p_rc2ws[c], self.p_rcwbiases[c], x, update)

    def subclass_log_distribution(self, x: Expression, classid: int, update: bool = True) -> Expression:
        """``log p(word | class, x)`` over the words of class ``classid``.

        Args:
            x (Expression): the input ``{input_dim}``.
            classid (int): the class.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        return F.log_softmax(self.subclass_logits(x, classid, update))

    def initialize_expressions(self, update: bool = True) -> None:
        """Loads every class's word parameters into the graph now (normally done on first use).

        Args:
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        for c in range(len(self.cidx2words)):
            if self.p_rc2ws[c] is not None:
                self._param(self.p_rc2ws[c], update)
                if self.p_rcwbiases[c] is not None:
                    self._param(self.p_rcwbiases[c], update)

    def neg_log_softmax(self, x: Expression, c: int, update: bool = True) -> Expression:
        """``-log p(c | x) = -log p(class(c) | x) - log p(c | class(c), x)``.

        Args:
            x (Expression): the input ``{input_dim}``.
            c (int): the word id.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        cl = self._class_of(c)
        cnlp = F.pickneglogsoftmax(self.class_logits(x, update), cl)
        if len(self.cidx2words[cl]) <= 1:
            return cnlp
        return cnlp + F.pickneglogsoftmax(self.subclass_logits(x, cl, update), self.widx2cwidx[int(c)])

    def neg_log_softmax_batch(self, x: Expression, cs: Sequence[int], update: bool = True) -> Expression:
        """:meth:`neg_log_softmax` per batch element.

        Args:
            x (Expression): a batch of inputs.
            cs (list[int]): one word id per batch element.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        cs = list(cs)
        bd = _cg.dims[x._check()].bd
        if bd != len(cs):
            raise ValueError(f"ClassFactoredSoftmaxBuilder.neg_log_softmax_batch: {len(cs)} ids for batch size {bd}")
        return F.concatenate_to_batch([self.neg_log_softmax(F.pick_batch_elem(x, i), w, update)
                                       for i, w in enumerate(cs)])

    def full_logits(self, x: Expression, update: bool = True) -> Expression:
        """A score per word, as DyNet computes it (see the class notes).

        Args:
            x (Expression): the input ``{input_dim}``.
            update (bool): if False, the parameters enter the graph as constants (no gradient).
        """
        cscores = self.class_log_distribution(x, update)
        full: list = [None] * len(self.widx2cidx)
        for w, c in enumerate(self.widx2cidx):
            if c < 0:
                full[w] = F.scalarInput(-10000.0)
        for c, words in enumerate(self.cidx2words):
            cscore = F.pick(cscores, c)
            if len(words) <= 1:
                for w in words:
                    full[w] = cscore
            else:
                wdist = F.softmax(self.subclass_logits(x, c, update))
                for k, w in enumerate(words):
                    full[w] = F.pick(wdist, k) + cscore
        return F.concatenate(full)

    def sample(self, x: Expression) -> int:
        """A word id drawn by sampling a class, then a word of that class.

        Args:
            x (Expression): the input ``{input_dim}``.
        """
        c = _draw(np.asarray(F.softmax(self.class_logits(x)).npvalue()).reshape(-1))
        words = self.cidx2words[c]
        if len(words) <= 1:
            return words[0]
        k = _draw(np.asarray(F.softmax(self.subclass_logits(x, c)).npvalue()).reshape(-1))
        return words[k]

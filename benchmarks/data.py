"""One seeded synthetic data generator shared by the dynet_api and PyTorch benchmarks.

The DyNet paper's benchmarks read the Penn Treebank (tagging, language model)
and the Stanford Sentiment Treebank (Tree-LSTM).  Their speed depends on the
*shapes* of that data, not its words, so this module draws data with the same
shapes from a seeded generator:

* sentence lengths from a Gamma distribution with mean 24 and sd ~11, clipped
  to [2, 80] (right-skewed like newswire sentences);
* word ids from a Zipf distribution (exponent 1) over the vocabulary, id 0
  reserved (``<s>`` for the LM, unused otherwise);
* a tag per token: each word has a fixed most likely tag (tags themselves Zipf
  distributed over 45 tags), replaced by a random tag 10% of the time;
* a spelling per word (1 + Poisson(5) characters from a 60-symbol alphabet,
  character id 0 is the padding symbol ``<*>``); a word is *rare*, and spelled
  out by the character BiLSTM, when it occurs at most 5 times in the generated
  training corpus, DyNet's rule (``wc[w] > 5``) -- with a WSJ-like corpus size
  about 7% of tokens;
* binary trees over such sentences, SST-style: each word under a preterminal,
  internal nodes split their span at a random point, a label (of 5) at every
  node.  A leaf-level node is ``(label, word)``; an internal one is
  ``(label, left, right)``.

Everything is a pure function of the seed, so both sides of a benchmark see
the same data in the same order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

MEAN_LEN = 24.0
SD_LEN = 11.0
N_TAGS = 45
N_CHARS = 60  # including the padding symbol 0
N_LABELS = 5
RARE_COUNT = 5


def _lengths(rng: np.random.Generator, n: int) -> np.ndarray:
    shape = (MEAN_LEN / SD_LEN) ** 2
    lens = rng.gamma(shape, MEAN_LEN / shape, size=n)
    return np.clip(np.rint(lens), 2, 80).astype(np.int64)


def _zipf_probs(n: int, skip_first: bool = True) -> np.ndarray:
    """Zipf(1) probabilities over ids 0..n-1 (id 0 gets none when ``skip_first``)."""
    p = np.zeros(n)
    start = 1 if skip_first else 0
    p[start:] = 1.0 / np.arange(1, n - start + 1)
    return p / p.sum()


def sentences(seed: int, n: int, vocab: int) -> list[list[int]]:
    """``n`` sentences of word ids in [1, vocab), Zipfian, lengths around 24."""
    if vocab < 2 or n < 1:
        raise ValueError(f"sentences: need n >= 1 and vocab >= 2, got n={n}, vocab={vocab}")
    rng = np.random.default_rng(seed)
    lens = _lengths(rng, n)
    words = rng.choice(vocab, size=int(lens.sum()), p=_zipf_probs(vocab))
    bounds = np.cumsum(lens)[:-1]
    return [s.tolist() for s in np.split(words, bounds)]


@dataclass(frozen=True)
class LMData:
    """Minibatches for the LSTM language model, DyNet's rnnlm-batch recipe.

    Sentences end with ``<s>`` (id 0, also the start symbol); they are sorted by
    length, longest first, cut into consecutive minibatches, and the minibatch
    order is shuffled once.  Each batch is a list of sentences, longest first.
    """

    vocab: int
    batch_size: int
    batches: list[list[list[int]]]

    def words(self, k: int) -> int:
        """Words predicted in batch ``k`` (every token including the final ``<s>``)."""
        return sum(len(s) for s in self.batches[k % len(self.batches)])


@functools.lru_cache(maxsize=8)
def lm_data(seed: int = 1, vocab: int = 10000, batch_size: int = 16, n_batches: int = 64) -> LMData:
    sents = [s + [0] for s in sentences(seed, batch_size * n_batches, vocab)]
    sents.sort(key=lambda s: -len(s))
    batches = [sents[i:i + batch_size] for i in range(0, len(sents), batch_size)]
    order = np.random.default_rng(seed + 1).permutation(len(batches))
    return LMData(vocab, batch_size, [batches[i] for i in order])


@dataclass(frozen=True)
class TagData:
    """Tagged sentences plus spellings; ``sents[k]`` is ``(word ids, tag ids)``."""

    vocab: int
    n_tags: int
    n_chars: int
    sents: list[tuple[list[int], list[int]]]
    spelling: list[list[int]]  # word id -> character ids (no padding)
    rare: frozenset  # word ids spelled out by the character model

    def item(self, k: int) -> tuple[list[int], list[int]]:
        return self.sents[k % len(self.sents)]


@functools.lru_cache(maxsize=8)
def tag_data(seed: int = 2, vocab: int = 20000, n_tags: int = N_TAGS, n_sents: int = 20000,
             keep: int = 512) -> TagData:
    """A training corpus of ``n_sents`` sentences defines the rare words; ``keep`` of them are served."""
    rng = np.random.default_rng(seed)
    corpus = sentences(seed, n_sents, vocab)
    counts = np.bincount(np.concatenate([np.asarray(s) for s in corpus]), minlength=vocab)
    rare = frozenset(np.flatnonzero(counts <= RARE_COUNT).tolist())
    best_tag = rng.choice(n_tags, size=vocab, p=_zipf_probs(n_tags, skip_first=False))
    sents = []
    for s in corpus[:keep]:
        w = np.asarray(s)
        tags = np.where(rng.random(len(s)) < 0.1, rng.integers(0, n_tags, len(s)), best_tag[w])
        sents.append((s, tags.tolist()))
    spell_len = 1 + rng.poisson(5.0, size=vocab)
    spelling = [rng.integers(1, N_CHARS, int(k)).tolist() for k in spell_len]
    return TagData(vocab, n_tags, N_CHARS, sents, spelling, rare)


def _tree(rng: np.random.Generator, words: list[int]):
    label = int(rng.integers(N_LABELS))
    if len(words) == 1:
        return (label, words[0])
    cut = int(rng.integers(1, len(words)))
    return (label, _tree(rng, words[:cut]), _tree(rng, words[cut:]))


def is_leaf(node) -> bool:
    """A preterminal ``(label, word)``, as opposed to ``(label, left, right)``."""
    return len(node) == 2


def tree_size(node) -> int:
    """Number of labelled nodes (= losses): 2 * words - 1."""
    return 1 if is_leaf(node) else 1 + tree_size(node[1]) + tree_size(node[2])


@dataclass(frozen=True)
class TreeData:
    vocab: int
    n_labels: int
    trees: list

    def item(self, k: int):
        return self.trees[k % len(self.trees)]


@functools.lru_cache(maxsize=8)
def tree_data(seed: int = 3, vocab: int = 20000, n_trees: int = 512) -> TreeData:
    """Binary trees over Zipfian sentences; recursion depth stays below the max length (80)."""
    rng = np.random.default_rng(seed + 1)
    return TreeData(vocab, N_LABELS, [_tree(rng, s) for s in sentences(seed, n_trees, vocab)])

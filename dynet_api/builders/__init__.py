"""DyNet's RNN and softmax builders, written once over the op table (no backend code)."""

from ._base import RNNState, StackedRNNState
from .birnn import BiRNNBuilder
from .lstm import (
    CompactVanillaLSTMBuilder,
    CoupledLSTMBuilder,
    FastLSTMBuilder,
    LSTMBuilder,
    SparseLSTMBuilder,
    VanillaLSTMBuilder,
)
from .simple import GRUBuilder, SimpleRNNBuilder
from .softmax import ClassFactoredSoftmaxBuilder, SoftmaxBuilder, StandardSoftmaxBuilder

__all__ = [
    "BiRNNBuilder",
    "ClassFactoredSoftmaxBuilder",
    "CompactVanillaLSTMBuilder",
    "CoupledLSTMBuilder",
    "FastLSTMBuilder",
    "GRUBuilder",
    "LSTMBuilder",
    "RNNState",
    "SimpleRNNBuilder",
    "SoftmaxBuilder",
    "SparseLSTMBuilder",
    "StackedRNNState",
    "StandardSoftmaxBuilder",
    "VanillaLSTMBuilder",
]

"""Shared fixtures: every test starts on a fresh graph with a fixed seed."""

from __future__ import annotations

import numpy as np
import pytest

import dynet_api as dy

SEED = 1234


@pytest.fixture(autouse=True)
def fresh_graph():
    """A new computation graph and reseeded generators, so tests are independent and repeatable."""
    dy.reset_random_seed(SEED)
    dy.renew_cg()
    yield
    dy.renew_cg()


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded NumPy generator for test data (independent of the library's own)."""
    return np.random.default_rng(SEED)

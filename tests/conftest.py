"""Shared fixtures. Federations are expensive enough (key ceremony) to share per module."""

from __future__ import annotations

import numpy as np
import pytest

import mpclr


@pytest.fixture(scope="session")
def fed_fast():
    fed = mpclr.Federation(manifest="exploration", hospitals=3, preset="fast", rotations=[1, 2, 4, -1])
    yield fed
    fed.close()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def secret_of(party):
    """White-box access to a party's key share, for relation checks in tests only."""
    return party._sk

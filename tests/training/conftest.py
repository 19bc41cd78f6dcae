"""A train-preset federation shared by the training tests (its key ceremony takes seconds)."""

import pytest

import mpclr


@pytest.fixture(scope="session")
def fed_train():
    fed = mpclr.Federation(manifest="exploration", hospitals=2, preset="train")
    yield fed
    fed.close()

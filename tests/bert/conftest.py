"""Fixtures shared by the bert/ tests."""

import keras
import pytest
from bert_examples import TINY

from bert import BertConfig


@pytest.fixture
def tiny_dict():
    return dict(TINY)


@pytest.fixture
def tiny_config():
    return BertConfig.from_dict(TINY)


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test starts and ends with the default float32 policy and a fixed seed."""
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")

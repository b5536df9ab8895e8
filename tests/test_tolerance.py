"""The tests' path tolerance (support/tolerance.py) still catches a real error.

It accepts what two execution paths give (a sentence alone and in a padded
batch) and fails on a 1e-4 change of any one output value of the tiny model,
on every output; ids and lengths stay exact.
"""

import numpy as np
import pytest
from conftest import random_tiny_layer
from support.tolerance import PATH_ATOL, PATH_RTOL, assert_same_up_to_path

KEYS = ("word_emb", "lstm_outputs1", "lstm_outputs2", "elmo", "default")


@pytest.fixture(scope="module")
def outputs():
    layer = random_tiny_layer(output_mode="dict")
    alone = layer([["0", "0", "0", "1", "3", "00", "ï"]])
    batch = layer([["0"], ["0", "0", "0", "1", "3", "00", "ï"]])
    return {k: v.numpy() for k, v in alone.items()}, {k: v.numpy()[1:] for k, v in batch.items()}


def test_two_paths_agree_within_the_rule(outputs):
    alone, batch = outputs
    assert_same_up_to_path(batch, alone)


@pytest.mark.parametrize("key", KEYS)
def test_a_1e_4_error_in_one_value_fails(outputs, key):
    alone, _ = outputs
    want = alone[key]
    assert PATH_ATOL + PATH_RTOL * np.abs(want).max() < 1e-4  # so any one value can fail
    for index in (np.unravel_index(np.abs(want).argmax(), want.shape), (0,) * want.ndim):
        wrong = want.copy()
        wrong[index] += 1e-4
        with pytest.raises(AssertionError, match="Not equal to tolerance"):
            assert_same_up_to_path(wrong, want, err_msg=key)


def test_ids_and_lengths_stay_exact(outputs):
    alone, _ = outputs
    with pytest.raises(AssertionError, match="not equal"):
        assert_same_up_to_path(alone["sequence_len"] + 1, alone["sequence_len"])

"""Empty is a value: no tokens gives sequence_len 0 and zero vectors, never an error.

Every input form of `ElmoLayer` (sentences, dense and ragged tokens, char ids
from `batch_to_ids`) with sentences that hold no token, all-empty batches,
empty batches and T = 0, eagerly and in a `tf.function`. A real sentence next
to an empty one gives what it gives alone (to the path tolerance).
"""

import numpy as np
import pytest
import tensorflow as tf
from conftest import traced_calls
from support.tolerance import assert_same_up_to_path

from keras_elmo import ElmoLayer, batch_to_ids


@pytest.fixture(scope="module")
def layer():
    from conftest import TINY_OPTIONS

    layer = ElmoLayer(TINY_OPTIONS, output_mode="dict")
    layer.build()
    rng = np.random.default_rng(3)
    for var in layer.weights:  # every weight non-zero, so a zero output means "no token"
        var.assign(rng.normal(0, 0.5, var.shape).astype("float32"))
    return layer


def _widths(layer):
    p = layer.projection_dim
    widths = {key: 2 * p for key in layer.sequence_keys()}
    widths["word_emb"] = p
    return widths


def _assert_empty(layer, out, batch, steps):
    """Every output has the right shape and is exactly zero; lengths are 0."""
    assert out["sequence_len"].dtype == tf.int32
    np.testing.assert_array_equal(out["sequence_len"].numpy(), np.zeros(batch, np.int32))
    for key, width in _widths(layer).items():
        value = out[key].numpy()
        assert value.shape == (batch, steps, width), key
        assert (value == 0).all(), key
    assert out["default"].shape == (batch, 2 * layer.projection_dim)
    assert (out["default"].numpy() == 0).all()


# (input form, make the input, batch, T)
EMPTY_CASES = {
    "one empty sentence": ("sentences", lambda: tf.constant([""]), 1, 0),
    "whitespace-only sentences": ("sentences", lambda: tf.constant(["   ", "\t\u00a0"]), 2, 0),
    "no sentences": ("sentences", lambda: tf.constant([], tf.string), 0, 0),
    "tokens T=0": ("tokens", lambda: tf.zeros([2, 0], tf.string), 2, 0),
    "tokens all padding": ("tokens", lambda: tf.constant([["", ""], ["", ""]]), 2, 2),
    "tokens B=0": ("tokens", lambda: tf.zeros([0, 3], tf.string), 0, 3),
    "ragged empty rows": ("ragged", lambda: tf.ragged.constant([[], []], tf.string), 2, 0),
    "batch_to_ids([[]])": ("char ids", lambda: tf.constant(batch_to_ids([[]])), 1, 0),
    "batch_to_ids([[], []])": ("char ids", lambda: tf.constant(batch_to_ids([[], []])), 2, 0),
    "batch_to_ids([])": ("char ids", lambda: tf.constant(batch_to_ids([])), 0, 0),
}


@pytest.fixture(scope="module")
def graphs(layer):
    """One traced graph per input form, for inputs of any shape."""
    return traced_calls(layer)


@pytest.mark.parametrize("mode", ["eager", "tf.function"])
@pytest.mark.parametrize("case", sorted(EMPTY_CASES))
def test_no_tokens_gives_zeros(layer, graphs, case, mode):
    form, make, batch, steps = EMPTY_CASES[case]
    inputs = make()
    out = layer(inputs) if mode == "eager" else graphs[form](inputs)
    _assert_empty(layer, out, batch, steps)


def test_batch_to_ids_of_empty_batches_has_the_padded_shape():
    assert batch_to_ids([]).shape == (0, 0, 50)
    assert batch_to_ids([[]]).shape == (1, 0, 50)
    assert batch_to_ids([[], []], max_chars=7).shape == (2, 0, 7)
    assert batch_to_ids([]).dtype == np.int32


@pytest.mark.parametrize(
    "make",
    [
        lambda: tf.constant(["", "hi there"]),
        lambda: tf.constant([["", ""], ["hi", "there"]]),
        lambda: tf.constant(batch_to_ids([[], ["hi", "there"]])),
    ],
    ids=["sentences", "tokens", "char ids"],
)
def test_empty_row_beside_a_real_one(layer, make):
    out = layer(make())
    alone = layer(tf.constant(["hi there"]))
    np.testing.assert_array_equal(out["sequence_len"].numpy(), [0, 2])
    for key in _widths(layer):
        assert (out[key].numpy()[0] == 0).all(), key
        assert_same_up_to_path(out[key].numpy()[1], alone[key].numpy()[0])
    assert (out["default"].numpy()[0] == 0).all()
    assert_same_up_to_path(out["default"].numpy()[1], alone["default"].numpy()[0])


def test_elmo_output_mode_and_mask(layer):
    elmo = ElmoLayer.from_config({**layer.get_config(), "output_mode": "elmo"})
    elmo.build()
    for src, dst in zip(layer.weights, elmo.weights):
        dst.assign(src)
    inputs = tf.constant(["", " "])
    out = elmo(inputs)
    assert out.shape == (2, 0, 2 * layer.projection_dim)
    assert elmo.compute_mask(inputs).shape == (2, 0)


def test_token_cache_with_no_tokens(layer):
    cached = ElmoLayer.from_config(layer.get_config())
    cached.build()
    for src, dst in zip(layer.weights, cached.weights):
        dst.assign(src)
    cached.cache_vocabulary(["hi", "there"])
    _assert_empty(cached, cached(tf.constant([""])), 1, 0)
    _assert_empty(cached, cached(tf.zeros([0, 2], tf.string)), 0, 2)
    out = cached(tf.constant(["", "hi there"]))
    ref = layer(tf.constant(["hi there"]))
    assert_same_up_to_path(out["elmo"].numpy()[1], ref["elmo"].numpy()[0])


@pytest.mark.parametrize(
    "inputs,batch",
    [([""], 1), ([" ", "\u2003"], 2), ([], 0), ([[]], 1), ([[], []], 2)],
    ids=["['']", "whitespace", "[]", "[[]]", "[[], []]"],
)
def test_python_lists(layer, inputs, batch):
    _assert_empty(layer, layer(inputs), batch, 0)


def test_python_list_with_an_empty_sentence(layer):
    out = layer(["", "hi"])
    alone = layer(["hi"])
    np.testing.assert_array_equal(out["sequence_len"].numpy(), [0, 1])
    assert (out["elmo"].numpy()[0] == 0).all()
    assert_same_up_to_path(out["elmo"].numpy()[1], alone["elmo"].numpy()[0])

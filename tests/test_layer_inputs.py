"""Plain Python inputs (the README's quick start): lists of token lists and
lists of sentences go into `ElmoLayer` and `ElmoTokenizer` like tensors do.

References: the same sentences as `tf.constant` string tensors, and as char
ids made by the numpy `batch_to_ids`, which never sees the list conversion.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from support.tolerance import assert_same_up_to_path

from keras_elmo import ElmoLayer, ElmoTokenizer, batch_to_ids
from keras_elmo.text import tokenization

TOKENS = [["The", "cat", "sat", "."], ["Hello", "!"], ["Café", "naïve", "日本語", "🙂", "!", "ok"]]
LONGEST = max(map(len, TOKENS))
PADDED = [s + [""] * (LONGEST - len(s)) for s in TOKENS]
SENTENCES = [" ".join(s) for s in TOKENS]


@pytest.fixture(scope="module")
def layer(fixture_dir):
    return ElmoLayer.from_original(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")


@pytest.fixture(scope="module")
def expected(layer):
    """The vectors of TOKENS from numpy char ids, and the real-token mask."""
    mask = np.array([[j < len(s) for j in range(LONGEST)] for s in TOKENS])
    return layer(batch_to_ids(TOKENS)).numpy(), mask


def close(actual, wanted):
    assert_same_up_to_path(np.asarray(actual), wanted)


def test_padded_token_list_equals_string_tensor(layer, expected):
    vectors, mask = expected
    close(layer(PADDED), layer(tf.constant(PADDED)).numpy())
    close(layer(PADDED), vectors)
    np.testing.assert_array_equal(layer.compute_mask(tf.constant(PADDED)).numpy(), mask)


def test_ragged_token_list_equals_padded_list(layer, expected):
    vectors, _ = expected
    ragged = layer(TOKENS).numpy()
    assert ragged.shape == vectors.shape
    close(ragged, layer(PADDED).numpy())
    close(ragged, vectors)
    # Padding positions are exactly zero.
    for i, s in enumerate(TOKENS):
        assert not ragged[i, len(s) :].any()


def test_sentence_list_equals_string_tensor(layer, expected):
    vectors, _ = expected
    from_list = layer(SENTENCES).numpy()
    close(from_list, layer(tf.constant(SENTENCES)).numpy())
    close(from_list, vectors)


def test_tuples_and_numpy_arrays(layer, expected):
    vectors, _ = expected
    close(layer(tuple(tuple(s) for s in TOKENS)), vectors)
    close(layer(np.array(PADDED, dtype=object)), vectors)
    close(layer(np.array(SENTENCES)), vectors)
    close(layer([np.array(s) for s in TOKENS]), vectors)
    close(layer([[t.encode() for t in s] for s in TOKENS]), vectors)  # UTF-8 bytes


def test_dict_output_lengths_from_lists(fixture_dir):
    layer = ElmoLayer.from_original(
        fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5", output_mode="dict"
    )
    out = layer(TOKENS)
    np.testing.assert_array_equal(out["sequence_len"].numpy(), [len(s) for s in TOKENS])
    close(out["elmo"], layer(tf.constant(PADDED))["elmo"].numpy())


def test_lists_through_a_model_and_predict(layer, expected):
    """A functional model on the same layer: predict (a traced graph) on the
    list turned into a tensor agrees with the eager call on the list."""
    vectors, mask = expected
    tokens = keras.Input(shape=(None,), dtype="string")
    pooled = keras.layers.GlobalAveragePooling1D()(layer(tokens))  # masked mean
    model = keras.Model(tokens, pooled)
    predicted = model.predict(tf.constant(PADDED), verbose=0)
    means = [vectors[i, : len(s)].mean(axis=0) for i, s in enumerate(TOKENS)]
    close(predicted, np.stack(means))

    sentences = keras.Input(shape=(), dtype="string")
    raw_model = keras.Model(sentences, layer(ElmoTokenizer()(sentences)))
    close(raw_model.predict(tf.constant(SENTENCES), verbose=0), vectors)


def test_tokenizer_takes_a_sentence_list():
    tokenizer = ElmoTokenizer(mode="punctuation")
    sentences = ["Don't stop, please.", "Hi"]
    tokens = tokenizer(sentences).numpy().astype(str)
    python = [tokenization.tokenize_python(s, "punctuation") for s in sentences]
    assert [[t for t in row if t] for row in tokens] == python


@pytest.mark.parametrize(
    "bad, words",
    [
        (["The cat", ["Hello"]], ["element 0", "str"]),
        ([["The", "cat"], "Hello !"], ["element 1", "str"]),
        ([["The", 3]], ["token 1 of sentence 0", "int", "batch_to_ids"]),
        ([[["The"]]], ["token 0 of sentence 0", "list"]),
        ([None], ["element 0", "NoneType"]),
    ],
)
def test_bad_lists_name_the_element(layer, bad, words):
    with pytest.raises(TypeError) as err:
        layer(bad)
    for word in words:
        assert word in str(err.value)


def test_empty_lists_convert_to_empty_batches():
    # The conversion alone; what the layer returns for them is issue 12's.
    assert tokenization.python_strings_to_tensor([], "x").shape == (0,)
    assert tokenization.python_strings_to_tensor([[], []], "x").shape == (2, 0)
    assert tokenization.python_strings_to_tensor([[], ["a"]], "x").numpy().tolist() == [
        [b""],
        [b"a"],
    ]


def test_other_inputs_pass_through_unchanged():
    ids = batch_to_ids(TOKENS)
    assert tokenization.python_strings_to_tensor(ids, "x") is ids
    tensor = tf.constant(SENTENCES)
    assert tokenization.python_strings_to_tensor(tensor, "x") is tensor

"""Char ids: hand-computed expectations and numpy == graph on every input."""

import numpy as np
import pytest
import tensorflow as tf

from keras_elmo import batch_to_ids, tokens_to_char_ids

PAD = 261  # 260 + 1


def expected(raw):
    """Spec layout from a list of raw (unshifted) ids, padded, shifted by +1."""
    raw = raw + [260] * (50 - len(raw))
    return np.array(raw) + 1


def test_ascii_token_layout():
    ids = batch_to_ids([["ab"]])
    assert ids.shape == (1, 1, 50) and ids.dtype == np.int32
    np.testing.assert_array_equal(ids[0, 0], expected([258, 97, 98, 259]))


def test_multibyte_and_emoji_are_utf8_bytes():
    ids = batch_to_ids([["é", "🙂"]])
    np.testing.assert_array_equal(ids[0, 0], expected([258, 0xC3, 0xA9, 259]))
    np.testing.assert_array_equal(ids[0, 1], expected([258, 0xF0, 0x9F, 0x99, 0x82, 259]))


def test_long_token_truncated_to_48_bytes():
    token = "".join(chr(ord("a") + i % 26) for i in range(60))
    ids = batch_to_ids([[token]])[0, 0]
    np.testing.assert_array_equal(ids, expected([258] + list(token.encode()[:48]) + [259]))
    assert ids[-1] == 259 + 1


def test_sentence_boundary_tokens():
    ids = batch_to_ids([["<S>", "</S>"]])[0]
    np.testing.assert_array_equal(ids[0], expected([258, 256, 259]))
    np.testing.assert_array_equal(ids[1], expected([258, 257, 259]))


def test_padding_rows_are_zero_and_shape_is_longest():
    ids = batch_to_ids([["a", "b", "c"], ["d"]])
    assert ids.shape == (2, 3, 50)
    assert (ids[1, 1:] == 0).all() and (ids[1, 0] > 0).all()


def test_empty_string_token_is_a_real_token_in_lists():
    # AllenNLP's batch_to_ids([["", "empty", "token", ""]]) row for "":
    # begin-of-word 259, end-of-word 260, then padding 261 (ids shifted by +1).
    ids = batch_to_ids([["", "empty", "token", ""], ["a"]])
    np.testing.assert_array_equal(ids[0, 0], expected([258, 259]))
    np.testing.assert_array_equal(ids[0, 0][:4], [259, 260, 261, 261])
    np.testing.assert_array_equal(ids[0, 3], ids[0, 0])
    np.testing.assert_array_equal(ids[0, 1], expected([258] + list(b"empty") + [259]))
    assert (ids[1, 1:] == 0).all()  # the batch padding is still zeros
    assert (batch_to_ids([[b""]])[0, 0] == expected([258, 259])).all()


def test_empty_string_is_padding_in_dense_tensors():
    ids = tokens_to_char_ids(tf.constant([["a", ""]])).numpy()
    assert (ids[0, 1] == 0).all()


TOKENS = [
    "The",
    "café",
    "naïve",
    "日本語",
    "🙂👍🏽",
    "x" * 47,
    "y" * 48,
    "z" * 49,
    "é" * 30,
    "<S>",
    "</S>",
    "<s>",
    "a",
    ".",
    "--",
    "\x00",
    "don't",
]


def test_graph_equals_numpy_dense_with_padding():
    rng = np.random.default_rng(0)
    # Python strings throughout: a numpy str array would drop the trailing NUL
    # of "\x00" (turning it into "").
    sentences = [[TOKENS[k] for k in rng.integers(0, len(TOKENS), n)] for n in (5, 1, 9, 3)]
    want = batch_to_ids(sentences)
    longest = want.shape[1]
    dense = [s + [""] * (longest - len(s)) for s in sentences]
    got = tokens_to_char_ids(tf.constant(dense)).numpy()
    np.testing.assert_array_equal(got, want)


def test_graph_equals_numpy_ragged_and_any_rank():
    sentences = [TOKENS[:7], TOKENS[7:]]
    want = batch_to_ids(sentences)
    ragged = tokens_to_char_ids(tf.ragged.constant(sentences)).to_tensor().numpy()
    np.testing.assert_array_equal(ragged, want)
    flat = tokens_to_char_ids(tf.constant(TOKENS)).numpy()
    np.testing.assert_array_equal(flat, batch_to_ids([TOKENS])[0])
    rank3 = tokens_to_char_ids(tf.constant([[TOKENS[:2], TOKENS[2:4]]])).numpy()
    assert rank3.shape == (1, 2, 2, 50)
    np.testing.assert_array_equal(rank3[0, 1], batch_to_ids([TOKENS[2:4]])[0])


def test_bytes_tokens_equal_str_tokens():
    np.testing.assert_array_equal(
        batch_to_ids([[t.encode() for t in TOKENS]]), batch_to_ids([TOKENS])
    )


def test_invalid_utf8_is_a_clear_error():
    with pytest.raises(ValueError, match="sentence 0, token 1.*not valid UTF-8"):
        batch_to_ids([[b"ok", b"\xff\xfe"]])
    with pytest.raises(ValueError, match="not valid UTF-8"):
        batch_to_ids([["lone \udc80 surrogate"]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="not valid UTF-8"):
        tokens_to_char_ids(tf.constant([b"ok", b"\xff\xfe"]))


def test_an_invalid_token_is_shown_as_a_bounded_prefix():
    """A megabyte of a bad token is not copied into the error message."""
    long_bad = b"\xff" + b"x" * 1_000_000
    with pytest.raises(ValueError) as err:
        batch_to_ids([[b"ok", long_bad]])
    assert "not valid UTF-8" in str(err.value) and len(str(err.value)) < 300
    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        tokens_to_char_ids(tf.constant([b"ok", long_bad]))
    message = err.value.message
    # U+FFFD (printed as its escaped UTF-8 bytes) and 39 more characters.
    assert "not valid UTF-8" in message and "\\xef\\xbf\\xbd" + "x" * 39 in message
    assert "x" * 41 not in message and len(message) < 1000


def test_bad_batches_are_clear_errors():
    with pytest.raises(TypeError, match="list of tokens"):
        batch_to_ids(["a sentence as a string"])
    with pytest.raises(TypeError, match="string tokens"):
        tokens_to_char_ids(tf.constant([1, 2]))

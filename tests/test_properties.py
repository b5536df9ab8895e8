"""Property tests (hypothesis), bounded to a few dozen examples each.

- random Unicode tokens (any plane, lone surrogates, NUL, combining marks,
  0-200 characters): `batch_to_ids` equals a per-byte reference written
  here, and the in-graph `tokens_to_char_ids` equals it too; a token holding
  a lone surrogate (not encodable as UTF-8) is a ValueError naming it;
- random sentences: a sentence's vectors are the same alone, in any batch,
  at any padding (tiny random model, the path tolerance of
  support/tolerance.py);
- random `tokens`-signature requests, well-formed or not (wrong sequence_len
  sizes and values, invalid UTF-8): a clean InvalidArgumentError or finite
  outputs, zero beyond each sentence.
"""

import numpy as np
import pytest
import tensorflow as tf
from conftest import random_tiny_layer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.tolerance import assert_same_up_to_path

from keras_elmo import batch_to_ids, tokens_to_char_ids
from keras_elmo.serving import export

FEW = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

# Any code point of any plane (surrogates come from SURROGATE below).
ANY_CHAR = st.characters(codec=None, categories=None)
TOKEN = st.text(ANY_CHAR, min_size=0, max_size=200)
COMBINING = st.sampled_from(["\u0301", "\u0308", "\u20dd", "\U0001f3fd", "\x00", "\u200d"])
SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)  # hypothesis's characters() never gives one
MIXED_TOKEN = st.lists(st.one_of(ANY_CHAR, COMBINING, SURROGATE), max_size=200).map("".join)


def reference_ids(token, max_chars=50):
    """ELMo's char ids of one token, written from the spec byte by byte."""
    raw = token.encode("utf-8")
    if token in ("<S>", "</S>"):
        body = [258, 256 if token == "<S>" else 257, 259]
    else:
        body = [258] + list(raw[: max_chars - 2]) + [259]
    return [c + 1 for c in body + [260] * (max_chars - len(body))]


def has_surrogate(token):
    return any(0xD800 <= ord(c) <= 0xDFFF for c in token)


@FEW
@given(st.lists(st.one_of(TOKEN, MIXED_TOKEN), min_size=1, max_size=6))
def test_char_ids_equal_a_byte_reference_and_the_graph(tokens):
    if any(has_surrogate(t) for t in tokens):
        with pytest.raises(ValueError, match="not valid UTF-8"):
            batch_to_ids([tokens])
        return
    ids = batch_to_ids([tokens])
    assert ids.shape == (1, len(tokens), 50)
    for j, token in enumerate(tokens):
        assert ids[0, j].tolist() == reference_ids(token), token
    encoded = np.array([t.encode("utf-8") for t in tokens], dtype=object)
    graph = tokens_to_char_ids(tf.constant(encoded)).numpy()
    for j, token in enumerate(tokens):
        # In a dense tensor "" is padding: all zeros there.
        want = [0] * 50 if token == "" else reference_ids(token)
        assert graph[j].tolist() == want, token


@pytest.fixture(scope="module")
def tiny():
    layer = random_tiny_layer(output_mode="dict")
    call = tf.function(layer.__call__, input_signature=[tf.TensorSpec([None, None], tf.string)])
    return layer, call


# Real tokens: non-empty, valid UTF-8, no whitespace needed (they are tokens).
WORD = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)
SENTENCE = st.lists(WORD, min_size=1, max_size=7)


def dense(rows, width):
    return tf.constant(
        np.array(
            [[t.encode() for t in r] + [b""] * (width - len(r)) for r in rows], dtype=object
        ).reshape(len(rows), width)
    )


@FEW
@given(st.lists(SENTENCE, min_size=1, max_size=4), st.integers(0, 3), st.randoms())
def test_a_sentence_is_the_same_alone_in_any_batch_at_any_padding(tiny, batch, extra, rnd):
    _, call = tiny
    width = max(len(s) for s in batch) + extra
    order = list(range(len(batch)))
    rnd.shuffle(order)
    together = call(dense([batch[i] for i in order], width))
    for row, i in enumerate(order):
        alone = call(dense([batch[i]], len(batch[i])))
        n = len(batch[i])
        assert together["sequence_len"].numpy()[row] == n
        for key in ("word_emb", "lstm_outputs1", "lstm_outputs2", "elmo"):
            got = together[key].numpy()[row]
            assert_same_up_to_path(got[:n], alone[key].numpy()[0], err_msg=key)
            assert (got[n:] == 0).all(), key
        assert_same_up_to_path(together["default"].numpy()[row], alone["default"].numpy()[0])


@pytest.fixture(scope="module")
def tokens_signature(tiny, tmp_path_factory):
    layer, _ = tiny
    path = export.export_saved_model(layer, tmp_path_factory.mktemp("prop"))
    return tf.saved_model.load(path).signatures["tokens"]


BYTES_TOKEN = st.one_of(WORD.map(str.encode), st.binary(min_size=1, max_size=12), st.just(b""))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    st.integers(0, 4).flatmap(
        lambda b: st.integers(0, 6).flatmap(
            lambda t: st.tuples(
                st.lists(st.lists(BYTES_TOKEN, min_size=t, max_size=t), min_size=b, max_size=b),
                st.lists(st.integers(-2, t + 2), min_size=max(b - 1, 0), max_size=b + 1),
                st.just(t),
            )
        )
    )
)
def test_random_tokens_requests_fail_cleanly_or_give_finite_outputs(tokens_signature, request):
    rows, lengths, width = request
    tokens = tf.constant(np.array([list(r) for r in rows], dtype=object).reshape(len(rows), width))
    seq = tf.constant(lengths, tf.int32, shape=(len(lengths),))
    well_formed = len(lengths) == len(rows) and all(0 <= n <= width for n in lengths)
    used = [t for r, n in zip(rows, lengths) for t in r[: max(n, 0)]] if well_formed else []
    # "" is padding: inside sequence_len it may only end the row.
    padded_at_end = not well_formed or all(
        b"" not in r[:n] or not any(r[r[:n].index(b"") : n]) for r, n in zip(rows, lengths)
    )
    valid = all(_is_utf8(t) for t in used) and padded_at_end
    try:
        out = tokens_signature(tokens=tokens, sequence_len=seq)
    except tf.errors.InvalidArgumentError as err:
        assert "keras_elmo:" in err.message
        assert not (well_formed and valid), err.message
        return
    assert well_formed and valid
    assert out["elmo"].shape[:2] == (len(rows), width)
    got_len = out["sequence_len"].numpy()
    for key in ("word_emb", "lstm_outputs1", "lstm_outputs2", "elmo", "default"):
        assert np.isfinite(out[key].numpy()).all(), key
    for i, (row, n) in enumerate(zip(rows, lengths)):
        assert got_len[i] == sum(1 for t in row[:n] if t)  # trailing "" is padding
        assert (out["elmo"].numpy()[i, n:] == 0).all()


def _is_utf8(data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

"""Request limits on `ElmoLayer` (`max_batch_size`, `max_tokens_per_sentence`,
`max_tokens_per_request`): a request over a limit is an InvalidArgumentError
naming the limit and the request's size; a request at the limit gives what an
unbounded layer gives."""

import numpy as np
import pytest
import tensorflow as tf
from support.tiny_model import traced_calls
from support.tolerance import assert_same_up_to_path

from keras_elmo import ElmoLayer, batch_to_ids, limits
from keras_elmo.errors import InputError
from keras_elmo.layers.bilm import BidirectionalLM

LIMITS = {"max_batch_size": 3, "max_tokens_per_sentence": 4, "max_tokens_per_request": 8}


@pytest.fixture(scope="module")
def layers():
    """(bounded, unbounded) tiny layers with the same random weights."""
    from support.tiny_model import TINY_OPTIONS

    free = ElmoLayer(TINY_OPTIONS, output_mode="dict")
    bounded = ElmoLayer(TINY_OPTIONS, output_mode="dict", **LIMITS)
    free.build()
    bounded.build()
    rng = np.random.default_rng(5)
    for a, b in zip(free.weights, bounded.weights):
        value = rng.normal(0, 0.5, a.shape).astype("float32")
        a.assign(value)
        b.assign(value)
    return bounded, free


@pytest.fixture(scope="module")
def calls(layers):
    """Per input form: the bounded layer eagerly and as one traced graph (any shape)."""
    bounded, _ = layers
    graphs = traced_calls(bounded)
    return {"eager": dict.fromkeys(graphs, bounded), "tf.function": graphs}


def sentences(*lengths):
    return [" ".join(f"w{i}" for i in range(n)) for n in lengths]


def forms(texts):
    """The same request in every input form the layer takes."""
    tokens = [t.split() for t in texts]
    longest = max((len(t) for t in tokens), default=0)
    dense = [t + [""] * (longest - len(t)) for t in tokens]
    return {
        "sentences": tf.constant(texts, tf.string),
        "tokens": tf.constant(dense, tf.string, shape=(len(texts), longest)),
        "ragged": tf.ragged.constant(tokens, tf.string, ragged_rank=1),
        "char ids": tf.constant(batch_to_ids(tokens)),
    }


OVER = [
    ("max_batch_size", sentences(1, 1, 1, 1), r"4 sentences.*max_batch_size=3"),
    ("max_tokens_per_sentence", sentences(5), r"\b5 tokens.*max_tokens_per_sentence=4"),
    ("max_tokens_per_request", sentences(3, 1, 2), r"\b9 token positions.*=8"),
]


@pytest.mark.parametrize("mode", ["eager", "tf.function"])
@pytest.mark.parametrize("limit,texts,message", OVER, ids=[o[0] for o in OVER])
def test_over_a_limit_is_an_invalid_argument_naming_it(calls, limit, texts, message, mode):
    for form, inputs in forms(texts).items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            calls[mode][form](inputs)


@pytest.mark.parametrize("mode", ["eager", "tf.function"])
@pytest.mark.parametrize(
    "texts", [sentences(4, 4), sentences(1, 2, 2), sentences(4), sentences(0, 0, 0)]
)
def test_at_the_limit_gives_the_unbounded_output(layers, calls, texts, mode):
    _, free = layers
    for form, inputs in forms(texts).items():
        got, want = calls[mode][form](inputs), free(inputs)
        for key in want:
            assert_same_up_to_path(got[key].numpy(), want[key].numpy(), err_msg=f"{form}/{key}")


def test_whitespace_padding_does_not_count(layers):
    # Limits count tokens, not characters: a sentence padded with spaces is fine.
    bounded, free = layers
    text = ["  w0 \u00a0  w1   w2  w3    "]
    assert_same_up_to_path(
        bounded(tf.constant(text))["elmo"].numpy(), free(tf.constant(text))["elmo"].numpy()
    )


def test_limits_in_config_and_validated(tiny_options):
    layer = ElmoLayer(tiny_options, **LIMITS)
    config = layer.get_config()
    assert {k: config[k] for k in LIMITS} == LIMITS
    clone = ElmoLayer.from_config(config)
    assert clone.get_config() == config
    unbounded = ElmoLayer(tiny_options).get_config()
    assert {k: unbounded[k] for k in LIMITS} == dict.fromkeys(LIMITS)
    for name in LIMITS:
        for bad in (0, -1, 2.5, True, "8"):
            with pytest.raises(ValueError, match=name):
                ElmoLayer(tiny_options, **{name: bad})


def test_config_saved_before_the_limits_stays_unbounded(tiny_options):
    # Older configs always held max_batch_size=128, which then only sized a
    # stateful layer's carried state.
    old = ElmoLayer(tiny_options).get_config()
    for name in ("max_tokens_per_sentence", "max_tokens_per_request"):
        del old[name]
    old["max_batch_size"] = 128
    layer = ElmoLayer.from_config(old)
    assert layer.max_batch_size is None
    out = layer(tf.constant(["a"] * 130))
    assert out.shape[0] == 130
    stateful = ElmoLayer.from_config({**old, "stateful": True})
    assert stateful.max_batch_size == 128


def test_stateful_state_rows(tiny_options):
    layer = ElmoLayer(tiny_options, stateful=True)
    layer.build()
    assert layer.bilm.state_c.shape[2] == 128  # max_batch_size=None: 128 rows
    layer = ElmoLayer(tiny_options, stateful=True, max_batch_size=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_batch_size=2"):
        layer(tf.constant(["a", "b", "c"]))


def test_state_rows_and_the_request_limit_are_two_arguments(tiny_options):
    rows_only = ElmoLayer(tiny_options, stateful=True, state_rows=4)
    rows_only.build()
    assert rows_only.bilm.state_c.shape[2] == 4 and rows_only.max_batch_size is None
    assert rows_only(tf.constant(["a"] * 4)).shape[0] == 4
    with pytest.raises(tf.errors.InvalidArgumentError, match="state_rows=4"):
        rows_only(tf.constant(["a"] * 5))
    both = ElmoLayer(tiny_options, stateful=True, max_batch_size=2, state_rows=6)
    both.build()
    assert both.bilm.state_c.shape[2] == 6
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_batch_size=2"):
        both(tf.constant(["a"] * 3))
    again = ElmoLayer.from_config(both.get_config())
    assert (again.state_rows, again.max_batch_size) == (6, 2)
    with pytest.raises(ValueError, match="state_rows"):
        ElmoLayer(tiny_options, stateful=True, state_rows=0)


def test_state_rows_have_an_upper_bound_checked_before_allocation(tiny_options):
    over = limits.MAX_STATE_ROWS + 1
    message = f"state_rows={over} is over the limit of {limits.MAX_STATE_ROWS} rows"
    for rows in ({"state_rows": over}, {"max_batch_size": over}):
        with pytest.raises(InputError, match=message):
            ElmoLayer(tiny_options, stateful=True, **rows)
    # A .keras config asking for a billion rows fails before any allocation
    # (Keras's from_config wraps the error in a TypeError, message kept).
    config = {**ElmoLayer(tiny_options, stateful=True).get_config(), "state_rows": 10**9}
    with pytest.raises((InputError, TypeError), match="state_rows=1000000000 is over the limit"):
        ElmoLayer.from_config(config)
    # Not stateful: max_batch_size is a request limit only, no state is allocated.
    ElmoLayer(tiny_options, max_batch_size=10**9).build()
    at = ElmoLayer(tiny_options, stateful=True, state_rows=limits.MAX_STATE_ROWS)
    at.build()
    assert at.bilm.state_c.shape[2] == limits.MAX_STATE_ROWS


def test_embed_stateful_batch_size_bound(fixture_dir, tmp_path, capsys):
    from keras_elmo.cli import main

    src = tmp_path / "in.txt"
    src.write_text("a b\n", encoding="utf-8")
    argv = ["embed", str(src), str(tmp_path / "o.hdf5"), "--options-file"]
    argv += [
        str(fixture_dir / "options.json"),
        "--weight-file",
        str(fixture_dir / "lm_weights.hdf5"),
    ]
    over = str(limits.MAX_STATE_ROWS + 1)
    assert main([*argv, "--quiet", "--stateful", "--batch-size", over]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        f"--stateful batch size: state_rows={over} is over the limit of 8192 rows "
        "of carried state (a stateful layer allocates state for every row; give a smaller "
        "state_rows or batch size)."
    )
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "o.hdf5.partial").exists()


def test_a_config_saved_before_state_rows_keeps_its_rows(tiny_options):
    # Before state_rows, max_batch_size also sized the carried state.
    old = ElmoLayer(tiny_options, stateful=True, max_batch_size=5).get_config()
    del old["state_rows"]
    layer = ElmoLayer.from_config(old)
    layer.build()
    assert (layer.bilm.state_c.shape[2], layer.max_batch_size) == (5, 5)
    bilm_config = {**layer.bilm.get_config(), "max_batch_size": 3}
    del bilm_config["state_rows"]
    assert BidirectionalLM.from_config(bilm_config).state_rows == 3


def test_char_cnn_chunks_give_the_same_vectors(layers, monkeypatch):
    from keras_elmo.layers import token_encoder

    _, free = layers
    words = [f"tok{i}" for i in range(11)]
    ids = tf.constant(batch_to_ids([words, words[:4] + ["x" * 60]]))
    whole = free.token_encoder(ids).numpy()
    monkeypatch.setattr(token_encoder, "CNN_CHUNK_TOKENS", 3)  # 13 distinct + padding: 5 chunks
    for call in (free.token_encoder, tf.function(free.token_encoder.__call__)):
        assert_same_up_to_path(call(ids).numpy(), whole)
    assert (whole[1, 5:] == 0).all() and (whole[0] != 0).any(axis=-1).all()

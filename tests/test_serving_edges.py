"""The exported signatures at their edges: empty requests, a strict `tokens`
signature, invalid UTF-8 and the request limits.

A tiny random model is exported once with small limits and loaded with
`tf.saved_model.load`; expected values come from the layer itself (same
weights, unbounded) or are zeros / error messages written out here.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from support.tolerance import assert_same_up_to_path

from keras_elmo import ElmoLayer, limits
from keras_elmo.serving import export

LIMITS = {"max_batch_size": 3, "max_tokens_per_sentence": 4, "max_tokens_per_request": 8}
KEYS = ["word_emb", "lstm_outputs1", "lstm_outputs2", "elmo", "default", "sequence_len"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from support.tiny_model import TINY_OPTIONS

    layer = ElmoLayer(TINY_OPTIONS, output_mode="dict")
    layer.build()
    rng = np.random.default_rng(11)
    for var in layer.weights:
        var.assign(rng.normal(0, 0.5, var.shape).astype("float32"))
    path = export.export_saved_model(layer, tmp_path_factory.mktemp("edges"), **LIMITS)
    loaded = tf.saved_model.load(path)
    return {
        "layer": layer,
        "path": path,
        "text": loaded.signatures["serving_default"],
        "tokens": loaded.signatures["tokens"],
    }


def text(served, sentences):
    return served["text"](default=tf.constant(sentences, tf.string, shape=(len(sentences),)))


def tokens(served, rows, lengths):
    width = max((len(r) for r in rows), default=0)
    return served["tokens"](
        tokens=tf.constant(rows, tf.string, shape=(len(rows), width)),
        sequence_len=tf.constant(lengths, tf.int32, shape=(len(lengths),)),
    )


def assert_zeros(out, batch, steps, p=6):
    np.testing.assert_array_equal(out["sequence_len"].numpy(), np.zeros(batch, np.int32))
    for key, width in [("word_emb", p), ("lstm_outputs1", 2 * p), ("lstm_outputs2", 2 * p)]:
        assert out[key].shape == (batch, steps, width), key
        assert (out[key].numpy() == 0).all(), key
    assert out["elmo"].shape == (batch, steps, 2 * p)
    assert (out["elmo"].numpy() == 0).all()
    assert out["default"].shape == (batch, 2 * p)
    assert (out["default"].numpy() == 0).all()


# ---------------------------------------------------------------- empty is a value
@pytest.mark.parametrize(
    "sentences,batch",
    [([""], 1), (["  ", "\u00a0\t\u2003"], 2), ([], 0)],
    ids=["['']", "whitespace only", "[]"],
)
def test_text_signature_empty(served, sentences, batch):
    assert_zeros(text(served, sentences), batch, 0)


@pytest.mark.parametrize(
    "rows,lengths,steps",
    [([[], []], [0, 0], 0), ([], [], 0), ([["a", "b"], ["c", "d"]], [0, 0], 2)],
    ids=["T=0", "B=0", "all lengths 0"],
)
def test_tokens_signature_empty(served, rows, lengths, steps):
    assert_zeros(tokens(served, rows, lengths), len(rows), steps)


def test_empty_sentence_beside_a_real_one(served):
    want = served["layer"](tf.constant(["hi"]))
    for out in (text(served, ["", "hi"]), tokens(served, [["JUNK"], ["hi"]], [0, 1])):
        np.testing.assert_array_equal(out["sequence_len"].numpy(), [0, 1])
        for key in KEYS[:-1]:
            assert (out[key].numpy()[0] == 0).all(), key
            assert_same_up_to_path(out[key].numpy()[1], want[key].numpy()[0])


# ---------------------------------------------------------------- strict tokens
@pytest.mark.parametrize(
    "lengths,message",
    [
        ([1], "sequence_len has 1 entries but tokens has 2 rows"),
        ([1, 1, 1], "sequence_len has 3 entries but tokens has 2 rows"),
        ([], "sequence_len has 0 entries but tokens has 2 rows"),
        ([1, -1], r"must be in \[0, T\], T=2 .*from -1 to 1"),
        ([3, 1], r"must be in \[0, T\], T=2 .*from 1 to 3"),
    ],
)
def test_tokens_signature_rejects_bad_sequence_len(served, lengths, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        tokens(served, [["a", "b"], ["c", "d"]], lengths)


def test_invalid_utf8_is_an_invalid_argument(served):
    # Raised as InvalidArgumentError (the raw bytes once broke TensorFlow's own
    # message formatting with a UnicodeDecodeError); bad bytes shown as U+FFFD.
    for call in (
        lambda: text(served, [b"ok caf\xc3 \xff"]),
        lambda: tokens(served, [[b"ok", b"\xed\xa0\x80"]], [2]),  # an encoded surrogate
    ):
        with pytest.raises(tf.errors.InvalidArgumentError, match="not valid UTF-8.*\ufffd"):
            call()
    # Beyond sequence_len, junk bytes are padding: never looked at.
    out = tokens(served, [[b"ok", b"\xff"]], [1])
    np.testing.assert_array_equal(out["sequence_len"].numpy(), [1])


# ---------------------------------------------------------------- limits
OVER = [
    ("max_batch_size", ["a"] * 4, r"4 sentences, over the limit max_batch_size=3"),
    ("max_tokens_per_sentence", ["a b c d e"], r"\b5 tokens .*max_tokens_per_sentence=4"),
    ("max_tokens_per_request", ["a b c", "d", "e f"], r"\b9 token positions.*request=8"),
]


@pytest.mark.parametrize("name,sentences,message", OVER, ids=[o[0] for o in OVER])
def test_over_a_limit(served, name, sentences, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        text(served, sentences)
    rows = [s.split() for s in sentences]
    width = max(len(r) for r in rows)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        tokens(served, [r + [""] * (width - len(r)) for r in rows], [len(r) for r in rows])


def test_tokens_signature_refuses_an_empty_token_inside_a_sentence(served):
    # "" is padding: inside sequence_len it may only end the row.
    with pytest.raises(tf.errors.InvalidArgumentError, match="row 1 .* position 2"):
        tokens(served, [["a", "b", ""], ["c", "", "d"]], [2, 3])
    # Beyond sequence_len the positions are padding whatever they hold; a
    # trailing "" inside it is padding too (sequence_len comes back as 1).
    want = served["layer"](tf.constant([["c"]]))
    for lengths in ([1], [2]):
        out = tokens(served, [["c", "", "d"]], lengths)
        assert out["sequence_len"].numpy().tolist() == [1]
        assert_same_up_to_path(out["elmo"].numpy()[:, :1], want["elmo"].numpy())


def test_tokens_signature_counts_the_padded_width(served):
    # One real token, padded to T=5: the outputs would hold 5 positions.
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_tokens_per_sentence=4"):
        tokens(served, [["a", "", "", "", ""]], [1])


@pytest.mark.parametrize(
    "sentences", [["a b c d", "e f g h"], ["a", "b c", "d e"], ["a b c d"]], ids=str
)
def test_at_the_limit(served, sentences):
    want = served["layer"](tf.constant(sentences))
    rows = [s.split() for s in sentences]
    width = max(len(r) for r in rows)
    padded = [r + [""] * (width - len(r)) for r in rows]
    for out in (text(served, sentences), tokens(served, padded, [len(r) for r in rows])):
        for key in KEYS:
            assert_same_up_to_path(out[key].numpy(), want[key].numpy())


def test_limits_in_metadata(served):
    with open(os.path.join(served["path"], export.METADATA_DIR, export.METADATA_FILE)) as f:
        # The bytes follow the token positions unless given.
        bytes_limit = LIMITS["max_tokens_per_request"] * limits.BYTES_PER_TOKEN_POSITION
        assert json.load(f)["limits"] == {**LIMITS, "max_bytes_per_request": bytes_limit}


def test_default_and_unbounded_limits(tmp_path, tiny_options):
    layer = ElmoLayer(tiny_options, max_batch_size=1)  # the layer's own limits are not used
    module, _ = export.build_serving_module(layer)
    assert module.limits == limits.SERVING_DEFAULTS
    module, signatures = export.build_serving_module(
        layer, max_batch_size=None, max_tokens_per_request=None
    )
    assert module.limits == {
        "max_batch_size": None,
        "max_tokens_per_sentence": limits.SERVING_DEFAULTS["max_tokens_per_sentence"],
        "max_tokens_per_request": None,
        "max_bytes_per_request": None,
    }
    big = ["a"] * (limits.SERVING_DEFAULTS["max_batch_size"] + 1)
    out = signatures["default"](default=tf.constant(big))
    assert out["sequence_len"].shape == (len(big),)
    with pytest.raises(TypeError, match="max_tokens"):
        export.build_serving_module(layer, max_tokens=3)
    with pytest.raises(ValueError, match="max_batch_size"):
        export.export_saved_model(layer, tmp_path, max_batch_size=0)
    assert os.listdir(tmp_path) == []


def test_cli_export_limits(tmp_path, fixture_dir, capsys):
    from keras_elmo import cli

    model = [
        "--options-file",
        str(fixture_dir / "options.json"),
        "--weight-file",
        str(fixture_dir / "lm_weights.hdf5"),
    ]
    argv = ["export", *model, str(tmp_path), "--max-batch-size", "2"]
    argv += ["--max-tokens-per-sentence", "none", "--max-tokens-per-request", "30"]
    assert cli.main(argv) == 0
    with open(tmp_path / "1" / export.METADATA_DIR / export.METADATA_FILE) as f:
        assert json.load(f)["limits"] == {
            "max_batch_size": 2,
            "max_tokens_per_sentence": None,
            "max_tokens_per_request": 30,
            "max_bytes_per_request": 30 * limits.BYTES_PER_TOKEN_POSITION,
        }
    loaded = tf.saved_model.load(str(tmp_path / "1")).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_batch_size=2"):
        loaded(default=tf.constant(["a", "b", "c"]))
    assert loaded(default=tf.constant([" ".join(["w"] * 15)] * 2))["elmo"].shape[:2] == (2, 15)
    for bad in ("0", "-3", "lots"):
        with pytest.raises(SystemExit):
            cli.main(["export", *model, str(tmp_path), "--max-batch-size", bad])
        assert "positive integer or none" in capsys.readouterr().err
    # The help states the defaults.
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name, value in limits.SERVING_DEFAULTS.items():
        assert f"--{name.replace('_', '-')} N|none" in help_text
        assert f"(default {value};" in help_text


def test_request_bytes_limit(tiny_options):
    """Tokens of 100 KiB count as one token each: the bytes are bounded apart."""
    layer = ElmoLayer(tiny_options)
    module, signatures = export.build_serving_module(layer, max_bytes_per_request=20)
    assert module.limits["max_bytes_per_request"] == 20
    out = signatures["default"](default=tf.constant(["a" * 9, "b" * 11]))  # 20 bytes
    assert out["sequence_len"].numpy().tolist() == [1, 1]
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"the request has 21 bytes of strings, over the limit max_bytes_per_request=20",
    ):
        signatures["default"](default=tf.constant(["a" * 10, "b" * 11]))
    # The tokens signature counts every string it holds, also beyond sequence_len.
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_bytes_per_request=20"):
        signatures["tokens"](
            tokens=tf.constant([["a", "b" * 20]]), sequence_len=tf.constant([1], tf.int32)
        )
    out = signatures["tokens"](tokens=tf.constant([["a", "b" * 19]]), sequence_len=[1])
    assert out["sequence_len"].numpy().tolist() == [1]


def test_default_bytes_limit_follows_the_token_positions(tiny_options):
    layer = ElmoLayer(tiny_options)
    per = limits.BYTES_PER_TOKEN_POSITION
    module, signatures = export.build_serving_module(layer)
    assert (
        module.limits["max_bytes_per_request"]
        == limits.SERVING_DEFAULTS["max_bytes_per_request"]
        == limits.SERVING_DEFAULTS["max_tokens_per_request"] * per
    )
    # The case: a few tokens of 100 KiB pass every token limit.
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_bytes_per_request=131072"):
        signatures["default"](default=tf.constant([" ".join(["x" * 102_400] * 2)]))
    module, _ = export.build_serving_module(layer, max_tokens_per_request=100)
    assert module.limits["max_bytes_per_request"] == 100 * per
    module, signatures = export.build_serving_module(
        layer, max_tokens_per_request=None, max_bytes_per_request=None
    )
    assert module.limits["max_bytes_per_request"] is None
    out = signatures["default"](default=tf.constant(["x" * 300_000]))
    assert out["sequence_len"].numpy().tolist() == [1]
    with pytest.raises(ValueError, match="max_bytes_per_request must be a positive integer"):
        export.build_serving_module(layer, max_bytes_per_request=0)


def test_cli_export_bytes_limit(tmp_path, fixture_dir):
    from keras_elmo import cli

    argv = ["export", "--options-file", str(fixture_dir / "options.json")]
    argv += ["--weight-file", str(fixture_dir / "lm_weights.hdf5"), str(tmp_path)]
    assert cli.main([*argv, "--max-bytes-per-request", "1000"]) == 0
    assert cli.main([*argv, "--max-bytes-per-request", "none"]) == 0
    for version, want in (("1", 1000), ("2", None)):
        with open(tmp_path / version / export.METADATA_DIR / export.METADATA_FILE) as f:
            assert json.load(f)["limits"]["max_bytes_per_request"] == want

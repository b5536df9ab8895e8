"""ElmoLayer in real Keras work: raw-text models, fine-tuning, mixed precision,
the token cache and tf.distribute. Tiny models only: these run on CPU."""

import json
import re
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from support.bilm_fixture import fixture_layer
from support.paths import REPO
from support.processes import run_python_json
from support.tiny_model import TINY_OPTIONS
from support.tolerance import assert_same_up_to_path

from keras_elmo import ElmoLayer, ElmoTokenizer, batch_to_ids

POSITIVE = ["a good film", "good acting and a good plot", "I loved it , good", "really good fun"]
NEGATIVE = ["a bad film", "bad acting , bad plot", "I hated it", "really bad and dull"]
SENTENCES = POSITIVE + NEGATIVE
LABELS = [1.0] * len(POSITIVE) + [0.0] * len(NEGATIVE)


def raw_text_model(options=TINY_OPTIONS, mode="whitespace", **elmo_kwargs):
    """The model of the docs: raw sentences in, one probability out."""
    return keras.Sequential(
        [
            keras.Input(shape=(), dtype="string"),
            ElmoTokenizer(mode=mode),
            ElmoLayer(options, **elmo_kwargs),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def dataset(batch_size=4):
    return tf.data.Dataset.from_tensor_slices((SENTENCES, LABELS)).batch(batch_size)


def elmo_of(model):
    return next(layer for layer in model.layers if isinstance(layer, ElmoLayer))


def as_text(tokens):
    return [[t.decode() for t in row] for row in tokens.numpy()]


# ---------------------------------------------------------------- tokenizer
def test_tokenizer_modes():
    text = tf.constant(["Don't stop,  now!", "one"])
    assert as_text(ElmoTokenizer()(text)) == [["Don't", "stop,", "now!"], ["one", "", ""]]
    assert as_text(ElmoTokenizer(mode="punctuation")(text)) == [
        ["Do", "n't", "stop", ",", "now", "!"],
        ["one", "", "", "", "", ""],
    ]
    assert as_text(ElmoTokenizer(max_tokens=5)(text)) == [
        ["Don't", "stop,", "now!"],
        ["one", "", ""],
    ]
    # (batch, 1) like keras.Input(shape=(1,)), and one unbatched sentence.
    assert as_text(ElmoTokenizer()(tf.constant([["a b"], ["c"]]))) == [["a", "b"], ["c", ""]]
    assert [t.decode() for t in ElmoTokenizer()(tf.constant("a b c")).numpy()] == ["a", "b", "c"]


def test_tf_text_tokenizer():
    # Needs the tf-text extra (.ci/run installs it).
    pytest.importorskip("tensorflow_text")
    text = tf.constant(["Don't stop,  now!", "one"])
    # tensorflow_text's UnicodeScriptTokenizer splits where the script changes.
    assert as_text(ElmoTokenizer(mode="tf_text")(text)) == [
        ["Don", "'", "t", "stop", ",", "now", "!"],
        ["one", "", "", "", "", "", ""],
    ]
    assert as_text(ElmoTokenizer(mode="tf_text", max_tokens=2)(text)) == [["Don", "'"], ["one", ""]]
    layer = ElmoTokenizer(mode="tf_text", max_tokens=7, name="tok")
    clone = ElmoTokenizer.from_config(layer.get_config())
    assert (clone.mode, clone.max_tokens, clone.name) == ("tf_text", 7, "tok")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, ElmoTokenizer) and restored.mode == "tf_text"


def test_tf_text_tokenizer_without_the_extra_names_it(monkeypatch):
    # None in sys.modules makes `import tensorflow_text` raise ImportError, as
    # when the package is absent (or installed but broken).
    monkeypatch.setitem(sys.modules, "tensorflow_text", None)
    with pytest.raises(ImportError, match=re.escape("pip install -e '.[tf-text]'")):
        ElmoTokenizer(mode="tf_text")
    config = ElmoTokenizer(mode="punctuation", name="tok").get_config()
    config["mode"] = "tf_text"
    # Keras's from_config re-raises as TypeError, keeping the message.
    with pytest.raises((ImportError, TypeError), match=re.escape("'.[tf-text]'")):
        ElmoTokenizer.from_config(config)
    # The other modes never need it.
    assert as_text(ElmoTokenizer(mode="punctuation")(tf.constant(["a, b"]))) == [["a", ",", "b"]]


def test_tokenizer_config_and_errors():
    layer = ElmoTokenizer(mode="punctuation", max_tokens=7, name="tok")
    clone = ElmoTokenizer.from_config(layer.get_config())
    assert (clone.mode, clone.max_tokens, clone.name) == ("punctuation", 7, "tok")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, ElmoTokenizer) and restored.mode == "punctuation"
    with pytest.raises(ValueError, match="mode"):
        ElmoTokenizer(mode="spacy")
    with pytest.raises(ValueError, match="max_tokens"):
        ElmoTokenizer(max_tokens=0)
    with pytest.raises(ValueError, match="strings"):
        ElmoTokenizer()(tf.constant([1, 2]))
    with pytest.raises(ValueError, match="shape"):
        ElmoTokenizer()(tf.constant([["a", "b"]]))


def test_tokenizer_in_tf_data():
    ds = dataset(batch_size=3).map(lambda s, y: (ElmoTokenizer(mode="punctuation")(s), y))
    tokens, labels = next(iter(ds))
    assert tokens.dtype == tf.string and tokens.shape.rank == 2 and labels.shape == (3,)
    assert as_text(tokens)[2] == ["I", "loved", "it", ",", "good", ""]
    # Unbatched: one sentence at a time, then padded_batch.
    ds = tf.data.Dataset.from_tensor_slices(SENTENCES).map(ElmoTokenizer()).padded_batch(8)
    assert next(iter(ds)).shape == (8, 6)


# ---------------------------------------------------------- raw-text models
@pytest.mark.slow
def test_raw_text_model_fits_and_reloads_in_fresh_process(tmp_path):
    keras.utils.set_random_seed(0)
    model = raw_text_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    history = model.fit(dataset(), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    # The tokenizer output is (batch, T) strings, so the ELMo mask reaches the pooling.
    assert elmo_of(model).output.shape == (None, None, 2 * TINY_OPTIONS["lstm"]["projection_dim"])
    expected = model.predict(tf.constant(SENTENCES), verbose=0)
    path = tmp_path / "raw_text.keras"
    model.save(path)
    script = textwrap.dedent(f"""
        import json, sys
        import keras, tensorflow as tf
        import keras_elmo  # registers the layers; nothing else needed
        model = keras.models.load_model({str(path)!r})
        print(json.dumps(model.predict(tf.constant({SENTENCES!r}), verbose=0).tolist()))
    """)
    got = np.array(run_python_json(["-c", script]), dtype="float32")
    # Another process may pick other kernels (oneDNN, thread split): the path tolerance.
    assert_same_up_to_path(got, expected)


# ------------------------------------------------------------- fine-tuning
def weight_values(model):
    return {v.path: v.numpy().copy() for v in model.weights}


@pytest.mark.parametrize("fine_tune", ["mix", "top", "all"])
def test_fit_trains_exactly_the_fine_tuned_weights(fine_tune):
    keras.utils.set_random_seed(1)
    model = raw_text_model(fine_tune=fine_tune)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy")
    model.build((None,))
    before = weight_values(model)
    model.fit(dataset(), epochs=1, verbose=0)  # two steps
    changed = {
        path
        for path, value in weight_values(model).items()
        if not np.array_equal(value, before[path])
    }
    mix = {p for p in before if "/scalar_mix_0/" in p}
    head = {p for p in before if "/dense" in p}
    top = {p for p in before if "/bilm/lstm_1/" in p}
    bottom = {p for p in before if "/bilm/lstm_0/" in p}
    encoder = {p for p in before if "/token_encoder/" in p}
    expected = mix | head | {"mix": set(), "top": top, "all": top | bottom | encoder}[fine_tune]
    assert changed == expected
    assert {v.path for v in model.trainable_weights} == expected


def test_loss_decreases_on_a_tiny_task():
    keras.utils.set_random_seed(2)
    model = raw_text_model()
    model.compile(
        optimizer=keras.optimizers.Adam(0.2), loss="binary_crossentropy", metrics=["accuracy"]
    )
    history = model.fit(dataset(batch_size=8), epochs=20, verbose=0).history
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    assert history["accuracy"][-1] == 1.0


def test_l2_mix_penalty_is_in_model_losses():
    model = raw_text_model(l2_coef=0.1)
    model.build((None,))
    weights = elmo_of(model).mixes[0].scalar_weights
    weights.assign([0.5, -1.0, 2.0])
    assert len(model.losses) == 1
    np.testing.assert_allclose(float(model.losses[0]), 0.1 * (0.25 + 1.0 + 4.0), rtol=1e-6)
    # fit and evaluate add it to the loss.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="binary_crossentropy")
    x, y = tf.constant(SENTENCES), np.array(LABELS, dtype="float32")
    bce = float(keras.losses.binary_crossentropy(y, model.predict(x, verbose=0)[:, 0]))
    np.testing.assert_allclose(
        model.evaluate(x, y, batch_size=8, verbose=0), bce + 0.525, rtol=1e-5
    )


def test_dropout_only_in_training():
    model = raw_text_model(dropout=0.5)
    x = tf.constant(SENTENCES)
    inference = model(x, training=False).numpy()
    # predict() runs a traced graph, the call runs eagerly: the two may fuse or
    # order float32 sums differently: the path tolerance (support/tolerance.py).
    assert_same_up_to_path(model.predict(x, verbose=0), inference)
    assert_same_up_to_path(model(x).numpy(), inference)
    assert not np.allclose(model(x, training=True).numpy(), inference)
    ones = elmo_of(model)(tf.constant([["a", "b", ""]]), training=True).numpy()
    assert np.all(ones[0, 2] == 0.0)  # padding stays zero under dropout


def gradient_ops(model, prefixes):
    """Ops of the traced training step that compute gradients inside `prefixes`."""

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = keras.losses.binary_crossentropy(y[:, None], model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    graph = train_step.get_concrete_function(
        tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.float32)
    ).graph
    ops = [op.name for op in graph.get_operations() if op.name.startswith("gradient_tape/")]
    # Keras uniquifies name scopes on reuse: bilm/lstm_0 may be bilm_1/lstm_0_2.
    patterns = {
        p: re.compile("/" + "/".join(rf"{part}(_\d+)*" for part in p.split("/")) + "/")
        for p in prefixes
    }
    return {p: [n for n in ops if patterns[p].search(n)] for p in prefixes}


@pytest.mark.slow  # builds and differentiates a model in process, over 5 s
def test_frozen_bilm_costs_no_gradient_computation():
    """The measurable check of "a frozen ElmoLayer costs no gradient memory".

    In the traced training step (what model.fit runs) not one gradient op is
    built for the char CNN or the biLM with fine_tune="mix", so nothing of
    them is kept for a backward pass; "top" builds none for the char CNN.
    ("top" does build backprop ops in the lower LSTM layer, since the top
    layer's input comes from it inside the biLM; they lead to no requested
    gradient, so the runtime prunes them.)
    """
    parts = ("token_encoder", "bilm/lstm_0", "bilm/lstm_1", "scalar_mix")
    counts = {}
    for fine_tune in ("mix", "top", "all"):
        model = raw_text_model(fine_tune=fine_tune)
        counts[fine_tune] = {k: len(v) for k, v in gradient_ops(model, parts).items()}
    assert counts["mix"]["token_encoder"] == 0
    assert counts["mix"]["bilm/lstm_0"] == counts["mix"]["bilm/lstm_1"] == 0
    assert counts["mix"]["scalar_mix"] > 0
    assert counts["top"]["token_encoder"] == 0 and counts["top"]["bilm/lstm_1"] > 0
    assert all(counts["all"][k] > 0 for k in parts), counts

    # Eager custom loops: a tape that watches only the trainable variables
    # records nothing of the frozen biLM, and its weights get no gradient.
    model = raw_text_model(fine_tune="mix")
    x, y = tf.constant(SENTENCES), tf.constant(LABELS)[:, None]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch([v.value for v in model.trainable_variables])
        loss = keras.losses.binary_crossentropy(y, model(x, training=True))
    watched = {v.name for v in tape.watched_variables()}
    assert watched == {v.value.name for v in model.trainable_variables}
    assert all(g is not None for g in tape.gradient(loss, model.trainable_variables))
    assert not any("bilm" in n or "token_encoder" in n for n in watched)
    bilm_weight = elmo_of(model).bilm.lstms[0].weights[0]
    with tf.GradientTape() as tape:
        tape.watch(bilm_weight.value)
        loss = tf.reduce_sum(model(x, training=True))
    assert tape.gradient(loss, bilm_weight.value) is None


# --------------------------------------------------------- mixed precision
@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


# The biLM computes in float32 under any policy; the outputs are the float32
# values rounded once to the policy's dtype, so the error is at most half an
# ulp: relative 2**-11 for float16 and 2**-8 for bfloat16.
@pytest.mark.parametrize(
    "policy, dtype, rtol",
    [("mixed_float16", "float16", 2.0**-11), ("mixed_bfloat16", "bfloat16", 2.0**-8)],
)
def test_mixed_precision(fixture_dir, restore_policy, policy, dtype, rtol):
    tokens = tf.constant([s.split() + [""] * (6 - len(s.split())) for s in SENTENCES])
    reference = fixture_layer(fixture_dir, output_mode="dict")(tokens)
    keras.mixed_precision.set_dtype_policy(policy)
    layer = fixture_layer(fixture_dir, output_mode="dict")
    got = layer(tokens)
    assert layer.compute_dtype == dtype
    assert all(v.dtype == "float32" for v in layer.weights)
    for key in ("elmo", "word_emb", "lstm_outputs1", "lstm_outputs2", "default"):
        assert got[key].dtype == dtype, key
        np.testing.assert_allclose(
            tf.cast(got[key], tf.float32).numpy(),
            reference[key].numpy(),
            rtol=rtol,
            atol=1e-6,
            err_msg=key,
        )
    assert got["sequence_len"].dtype == tf.int32

    # A whole mixed-precision model trains (float16 gets loss scaling).
    keras.utils.set_random_seed(3)
    model = raw_text_model()
    assert elmo_of(model).output.dtype == dtype
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    history = model.fit(dataset(), epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))


# ------------------------------------------------------------- token cache
def test_token_cache_gives_the_same_vectors(fixture_dir, tmp_path):
    vocab = (fixture_dir / "vocab_test.txt").read_text(encoding="utf-8").split("\n")
    in_vocab = [t for t in vocab if t][:8]
    batches = [
        tf.constant(
            [
                in_vocab[:4] + [""],
                ["Zyzzyva", in_vocab[4], "unseen", in_vocab[5], ""],
                [in_vocab[6], "Zyzzyva", "", "", ""],
            ]
        ),
        tf.constant([in_vocab[:3]]),  # every token cached: the CNN gets no token
        tf.constant([["only", "oov", "tokens", "here"]]),
    ]
    layer = fixture_layer(fixture_dir, output_mode="dict")
    expected = [layer(x) for x in batches]
    assert layer.cache_vocabulary(vocab) is layer
    assert len(layer.token_cache.vocabulary) == len(set(vocab) - {""})
    # The config holds the constructor's arguments; the cache travels apart.
    assert layer.get_config()["token_cache_size"] == 0
    for x, want in zip(batches, expected):
        got = layer(x)
        for key in want:
            assert_same_up_to_path(got[key].numpy(), want[key].numpy(), err_msg=key)

    # Saved with the model: vectors in the weights file, vocabulary as an asset.
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, layer(ElmoTokenizer()(inputs))["elmo"])
    sentences = tf.constant([" ".join(in_vocab[:5]), "Zyzzyva and unseen words"])
    want = model(sentences).numpy()
    model.save(tmp_path / "cached.keras")
    loaded = keras.models.load_model(tmp_path / "cached.keras")
    cache = elmo_of(loaded).token_cache
    assert cache.active and cache.vocabulary == layer.token_cache.vocabulary
    np.testing.assert_array_equal(cache.vectors.numpy(), layer.token_cache.vectors.numpy())
    assert_same_up_to_path(loaded(sentences).numpy(), want)


def test_a_token_cache_saved_by_0_2_still_loads(fixture_dir):
    """tests/fixtures/keras-elmo-0.2 (see its SOURCE.md): 0.2 kept the cache's
    vectors as a Keras weight (key "0") and its mutated size in the config.
    Loaded now, the cache is active, holds the token encoder's own vectors, and
    the model gives what a fresh uncached layer from the same weights gives."""
    path = REPO / "tests" / "fixtures" / "keras-elmo-0.2" / "token_cache_model.keras"
    loaded = elmo_of(keras.models.load_model(path))
    vocab = ["The", "cat", "sat", "on", "the", "mat", "."]
    assert loaded.token_cache.active and sorted(loaded.token_cache.vocabulary) == sorted(vocab)
    fresh = fixture_layer(fixture_dir)
    encoded = fresh.token_encoder(batch_to_ids([vocab]))[0].numpy()
    assert_same_up_to_path(loaded.token_cache(tf.constant(vocab)).numpy(), encoded)
    x = tf.constant([vocab, ["a", "dog", "sat", "", "", "", ""]])
    assert_same_up_to_path(loaded(x).numpy(), fresh(x).numpy())


def test_a_raw_text_model_saved_by_0_3_gives_its_numbers():
    """tests/fixtures/keras-elmo-0.3 (see its SOURCE.md): a raw-text model saved
    by 0.3 (tokenizer, token cache, layer norm, set mix weights, pooling and a
    head, and the layer called on raw sentences too) loads and gives the
    numbers 0.3 itself computed for it when it was saved."""
    folder = REPO / "tests" / "fixtures" / "keras-elmo-0.3"
    loaded = keras.models.load_model(folder / "raw_text_model.keras")
    elmo = elmo_of(loaded)
    assert elmo.token_cache.active and len(elmo.token_cache.vocabulary) == 7
    np.testing.assert_array_equal(elmo.mixes[0].gamma.numpy(), [1.5])
    expected = np.load(folder / "expected.npz")
    got = loaded(tf.constant(expected["sentences"]))
    assert sorted(got) == ["probs", "raw", "tokenized"]
    for key in got:
        assert_same_up_to_path(got[key].numpy(), expected[key], err_msg=key)
    # "A dog, unseen, sat!": 7 tokens split off by punctuation, 4 on whitespace.
    assert np.abs(expected["tokenized"][1, 6]).max() > 0 and expected["raw"].shape[1] == 6
    assert np.abs(expected["raw"][1, 4:]).max() == 0


def test_token_cache_errors(tiny_options):
    with pytest.raises(ValueError, match="frozen token encoder"):
        ElmoLayer(tiny_options, fine_tune="all").cache_vocabulary(["a"])
    with pytest.raises(ValueError, match="frozen token encoder"):
        ElmoLayer(tiny_options, fine_tune="all", token_cache_size=3)
    layer = ElmoLayer(tiny_options)
    with pytest.raises(ValueError, match="not a single string"):
        layer.cache_vocabulary("abc")
    with pytest.raises(ValueError, match="no non-empty token"):
        layer.cache_vocabulary(["", ""])
    with pytest.raises(ValueError, match="UTF-8"):
        layer.cache_vocabulary([b"\xff"])
    layer.cache_vocabulary(["a", "b", "a"])
    assert layer.token_cache.vocabulary == ["a", "b"]
    # Another vocabulary replaces the cache; the config does not change.
    layer.cache_vocabulary(["a", "b", "c"])
    assert layer.token_cache.vocabulary == ["a", "b", "c"]
    assert layer.get_config()["token_cache_size"] == 0
    # A layer made for a fixed size refuses another.
    sized = ElmoLayer(tiny_options, token_cache_size=2)
    with pytest.raises(ValueError, match="new layer"):
        sized.cache_vocabulary(["a", "b", "c"])
    sized.cache_vocabulary(["b", "c"])
    assert sized.get_config()["token_cache_size"] == 2
    # Same size again: a refresh (e.g. after new encoder weights) is fine.
    layer.cache_vocabulary(["b", "c"])
    assert_same_up_to_path(
        layer(tf.constant([["b", "c"]])).numpy(), layer(batch_to_ids([["b", "c"]])).numpy()
    )


# ----------------------------------------------------------- tf.distribute
DISTRIBUTED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
import keras, numpy as np
from keras_elmo import ElmoLayer, ElmoTokenizer, tokens_to_char_ids
DATA = json.loads(sys.argv[1])  # the test's sentences, labels and options
SENTENCES, LABELS, TINY_OPTIONS = DATA["sentences"], DATA["labels"], DATA["options"]

def train(strategy):
    keras.utils.set_random_seed(4)
    with strategy.scope():
        model = keras.Sequential([
            keras.Input(shape=(None, 50), dtype="int32"), ElmoLayer(TINY_OPTIONS, fine_tune="top"),
            keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=keras.optimizers.SGD(0.3), loss="binary_crossentropy")
    # Keras 3.15 averages the first distributed batch to build the model,
    # which fails on strings: feed char ids (tokenized in tf.data) instead.
    tokenizer = ElmoTokenizer()
    data = tf.data.Dataset.from_tensor_slices((SENTENCES, LABELS)).batch(4).map(
        lambda s, y: (tokens_to_char_ids(tokenizer(s)), y))
    history = model.fit(data, epochs=3, verbose=0).history
    return history["loss"], [w.numpy().tolist() for w in model.trainable_weights]

devices = ["/cpu:0", "/cpu:1"]
mirrored = tf.distribute.MirroredStrategy(devices)
assert mirrored.num_replicas_in_sync == 2
one = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
two = train(mirrored)
print(json.dumps({"one": one, "two": two}))
"""


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device():
    data = {"sentences": SENTENCES, "labels": LABELS, "options": TINY_OPTIONS}
    result = run_python_json(["-c", DISTRIBUTED, json.dumps(data)], timeout=400)
    (loss_1, weights_1), (loss_2, weights_2) = result["one"], result["two"]
    np.testing.assert_allclose(loss_2, loss_1, rtol=1e-5)
    assert loss_1[-1] < loss_1[0]
    assert len(weights_1) == len(weights_2) > 4  # mix, top LSTM, head
    for w1, w2 in zip(weights_1, weights_2):
        np.testing.assert_allclose(np.array(w2), np.array(w1), rtol=1e-4, atol=1e-6)

"""ElmoPreprocessor: text -> char ids with TensorFlow ops, on every Keras backend.

Backend-independent (marked multi_backend: CI runs them under
KERAS_BACKEND=tensorflow, jax and torch). The expected char ids come from
`batch_to_ids`, the numpy implementation, never from the layer under test.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from support.tiny_model import TINY_OPTIONS
from support.tolerance import assert_same_up_to_path

from keras_elmo import ElmoLayer, ElmoPreprocessor, ElmoTokenizer, batch_to_ids
from keras_elmo.errors import BackendError, InputError
from keras_elmo.text import tokenization

pytestmark = pytest.mark.multi_backend

BACKEND = keras.config.backend()
TOKENS = [["The", "cat", "sat", "."], ["Hello", "!"], ["Über"]]


def numpy_of(x):
    return keras.ops.convert_to_numpy(x)


def is_backend_tensor(x):
    """A tensor of the running backend (a tf.Tensor only on TensorFlow)."""
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[BACKEND]
    return keras.ops.is_tensor(x) and type(x).__module__.split(".")[0].startswith(module[:3])


def test_token_lists_sentences_and_ragged_give_batch_to_ids():
    want = batch_to_ids(TOKENS)
    preprocessor = ElmoPreprocessor()
    for given in (
        TOKENS,
        [" ".join(row) for row in TOKENS],
        tf.ragged.constant(TOKENS),
        np.array([" ".join(row) for row in TOKENS]),
    ):
        got = preprocessor(given)
        assert is_backend_tensor(got), type(got)
        assert keras.backend.standardize_dtype(got.dtype) == "int32"
        np.testing.assert_array_equal(numpy_of(got), want)


def test_punctuation_tokenizer_splits_as_the_python_rules():
    sentences = ["Don't stop, dear.", "Hi!"]
    want = batch_to_ids([tokenization.tokenize_python(s, "punctuation") for s in sentences])
    got = ElmoPreprocessor(tokenizer="punctuation")(sentences)
    np.testing.assert_array_equal(numpy_of(got), want)


def test_bucket_lengths_pad_with_zero_tokens_and_never_cut():
    preprocessor = ElmoPreprocessor(sequence_length=[8, 4])
    for words, steps in ((3, 4), (4, 4), (5, 8), (9, 16), (17, 24)):
        sentence = " ".join(f"w{k}" for k in range(words))
        got = numpy_of(preprocessor([sentence, "a"]))
        assert got.shape == (2, steps, 50), (words, got.shape)
        np.testing.assert_array_equal(got[0, :words], batch_to_ids([sentence.split()])[0])
        assert not got[0, words:].any() and not got[1, 1:].any()
    assert ElmoPreprocessor(sequence_length=6).get_config()["sequence_length"] == [6]
    with pytest.raises(ValueError, match="sequence_length"):
        ElmoPreprocessor(sequence_length=[4, 0])


def test_padding_rule_and_request_limits():
    with pytest.raises(InputError, match="row 1 has an empty string .* position 2"):
        ElmoPreprocessor()([["a", "b", "c"], ["a", "", "b"]])
    limited = ElmoPreprocessor(max_tokens_per_sentence=3, max_batch_size=2)
    assert tuple(limited(["a b c", "d"]).shape) == (2, 3, 50)
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_tokens_per_sentence=3"):
        limited(["a b c d"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_batch_size=2"):
        limited(["a", "b", "c"])


def test_char_ids_pass_through_checked():
    ids = batch_to_ids(TOKENS)
    got = ElmoPreprocessor()(keras.ops.convert_to_tensor(ids))
    np.testing.assert_array_equal(numpy_of(got), ids)
    with pytest.raises(ValueError, match=r"char ids must have shape \(batch, T, 50\)"):
        ElmoPreprocessor()(ids[..., :10])


def test_inside_tf_data_it_gives_tensorflow_tensors():
    preprocessor = ElmoPreprocessor(sequence_length=[4])
    sentences = [" ".join(row) for row in TOKENS]
    data = tf.data.Dataset.from_tensor_slices((sentences, [0, 1, 2])).batch(2)
    batches = list(data.map(lambda text, label: (preprocessor(text), label)))
    assert [tuple(ids.shape) for ids, _ in batches] == [(2, 4, 50), (1, 4, 50)]
    assert all(isinstance(ids, tf.Tensor) for ids, _ in batches)
    np.testing.assert_array_equal(batches[0][0].numpy(), batch_to_ids(TOKENS[:2]))


def test_config_round_trip_and_from_layer():
    layer = ElmoLayer(TINY_OPTIONS, max_tokens_per_request=20)
    preprocessor = layer.preprocessor(tokenizer="punctuation", sequence_length=[16, 32])
    config = preprocessor.get_config()
    assert config["max_tokens_per_request"] == 20 and config["tokenizer"] == "punctuation"
    clone = ElmoPreprocessor.from_config(config)
    assert clone.get_config() == config
    registered = keras.saving.get_registered_object("keras_elmo>ElmoPreprocessor")
    assert registered is ElmoPreprocessor


def test_elmo_layer_reads_text_as_its_char_ids():
    """ElmoLayer's eager call with strings or token lists returns the backend's
    tensor, the same vectors as for the char ids (text goes through the
    preprocessor first on JAX and PyTorch)."""
    layer = ElmoLayer(TINY_OPTIONS)
    want = numpy_of(layer(batch_to_ids(TOKENS)))
    for given in (TOKENS, [" ".join(row) for row in TOKENS]):
        got = layer(given)
        assert is_backend_tensor(got), type(got)
        assert_same_up_to_path(numpy_of(got), want)
    assert not want[1, 2:].any() and want[1, :2].any()


def test_a_string_input_in_a_model_works_only_on_tensorflow():
    text = keras.Input(shape=(), dtype="string")
    layer = ElmoLayer(TINY_OPTIONS)
    if BACKEND == "tensorflow":
        assert layer(text).shape == (None, None, 12)
        return
    with pytest.raises(BackendError, match=f"on the '{BACKEND}' backend a Keras model cannot"):
        layer(text)
    with pytest.raises(BackendError, match="tf.data"):
        ElmoPreprocessor()(text)
    with pytest.raises(BackendError, match="ElmoTokenizer: on the"):
        ElmoTokenizer()(text)


def test_elmo_layer_limits_on_char_ids_and_text():
    layer = ElmoLayer(TINY_OPTIONS, max_tokens_per_sentence=3)
    assert tuple(layer(["a b c"]).shape) == (1, 3, 12)
    for given in (["a b c d"], batch_to_ids([["a", "b", "c", "d"]])):
        with pytest.raises(tf.errors.InvalidArgumentError, match="max_tokens_per_sentence=3"):
            layer(given)


@pytest.mark.slow
def test_bilm_tf_fixture_replayed_from_raw_sentences():
    """The bilm-tf fixture's stateful 10-batch replay, fed the raw sentences
    (whitespace-split by the preprocessor, on every backend): the top layer
    within the originals' 1e-6."""
    from support.bilm_fixture import ATOL, N_BATCHES, fixture_layer, load_fixture

    sentences, expected = load_fixture()
    layer = fixture_layer(stateful=True, output_mode="dict")
    worst = 0.0
    for i in range(N_BATCHES):
        top = numpy_of(layer([s[i] for s in sentences])["lstm_outputs2"])
        for k in range(len(sentences)):
            want = expected[k][i]
            got = top[k, : len(want)]
            assert not top[k, len(want) :].any()
            worst = max(worst, float(np.abs(got - want).max()))
    print(f"{BACKEND}: bilm-tf fixture from raw sentences, max abs error {worst:.2e}")
    assert worst <= ATOL, f"{BACKEND}: max abs error {worst:.2e}"


SENTENCES = ["a good film", "good acting and a good plot", "I loved it , good", "really fun"]
SENTENCES += ["a bad film", "bad acting , bad plot", "I hated it", "really bad and dull"]


@pytest.mark.slow
def test_fit_with_text_through_tf_data_and_the_preprocessor():
    """The way to train on text on every backend: tf.data maps the layer's
    preprocessor (bucketed lengths) and the model takes char ids. The task:
    learn a teacher's scalar mix (same biLM) from its pooled vectors."""
    keras.utils.set_random_seed(0)
    teacher = ElmoLayer(TINY_OPTIONS)
    teacher.build()
    teacher.mixes[0].scalar_weights.assign([1.0, -1.0, 2.0])
    teacher.mixes[0].gamma.assign([3.0])
    student = teacher.clone()
    student.mixes[0].scalar_weights.assign([0.0, 0.0, 0.0])
    student.mixes[0].gamma.assign([1.0])
    preprocessor = student.preprocessor(sequence_length=[4, 8])
    pool = keras.layers.GlobalAveragePooling1D()
    targets = numpy_of(pool(teacher(SENTENCES)))  # mask: real tokens only
    data = tf.data.Dataset.from_tensor_slices((SENTENCES, targets)).batch(4)
    data = data.map(lambda text, target: (preprocessor(text), target))
    char_ids = keras.Input(shape=(None, 50), dtype="int32")
    model = keras.Model(char_ids, keras.layers.GlobalAveragePooling1D()(student(char_ids)))
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    history = model.fit(data, epochs=30, verbose=0).history
    assert history["loss"][-1] < 0.05 * history["loss"][0], history["loss"]
    assert float(numpy_of(student.mixes[0].gamma)[0]) > 1.5  # from 1, toward the teacher's 3

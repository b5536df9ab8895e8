"""Every public layer and every sublayer through the shared checks, plus
direct numeric tests of the sublayers against numpy written here."""

import functools
import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from numpy_reference import NumpyElmo
from support.efml_fixture import ATOL as EFML_ATOL
from support.efml_fixture import EFML
from support.efml_fixture import SENTENCES as EFML_SENTENCES
from support.efml_fixture import expected as efml_expected
from support.layer_checks import run_layer_test
from support.tiny_model import TINY_OPTIONS
from support.tolerance import assert_same_up_to_path

from keras_elmo import ElmoLayer, ElmoPreprocessor, ElmoTokenizer, ScalarMix, batch_to_ids
from keras_elmo.layers.bilm import BidirectionalLM
from keras_elmo.layers.efml_token_encoder import EfmlTokenEncoder
from keras_elmo.layers.lstm import ProjectedLSTM
from keras_elmo.layers.token_cache import TokenCache
from keras_elmo.layers.token_encoder import CharCNNTokenEncoder
from keras_elmo.registration import register_keras_objects
from keras_elmo.training.trainer import SharedSoftmax

SENTENCES = [["The", "cat", "sat", "."], ["Hello", "!"], ["a"]]
P = TINY_OPTIONS["lstm"]["projection_dim"]
UNITS = TINY_OPTIONS["lstm"]["dim"]
N_LAYERS = TINY_OPTIONS["lstm"]["n_layers"]
# The char CNN's variables: the character embedding, a kernel and a bias per
# filter width, carry and transform W and b per highway layer, the projection's
# W and b.
CHAR_CNN_WEIGHTS = (
    1 + 2 * len(TINY_OPTIONS["char_cnn"]["filters"]) + 4 * TINY_OPTIONS["char_cnn"]["n_highway"] + 2
)
# Per ProjectedLSTM: kernel, recurrent kernel, bias, projection; the biLM adds
# its stored initial state (c, h), not trained.
LSTM_WEIGHTS = 4
BILM_WEIGHTS = LSTM_WEIGHTS * N_LAYERS + 2


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_lstm(x, mask, kernel, recurrent, bias, projection, cell_clip, proj_clip):
    """One direction of the projected LSTM, one row at a time, gate order i, j, f, o
    (TensorFlow's LSTMCell, as bilm-tf), forget bias 1 added at run time; a padded
    step leaves the state and emits zeros. kernel (I, 4U), recurrent (P, 4U)."""
    batch, steps, _ = x.shape
    units, proj = projection.shape
    out = np.zeros((batch, steps, proj))
    finals = []
    for b in range(batch):
        c, h = np.zeros(units), np.zeros(proj)
        for t in range(steps):
            if not mask[b, t]:
                continue
            z = x[b, t] @ kernel + h @ recurrent + bias
            i, j, f, o = np.split(z, 4)
            c = np.clip(sigmoid(f + 1.0) * c + sigmoid(i) * np.tanh(j), -cell_clip, cell_clip)
            h = np.clip((sigmoid(o) * np.tanh(c)) @ projection, -proj_clip, proj_clip)
            out[b, t] = h
        finals.append((c, h))
    return out, finals


def char_ids():
    return tf.constant(
        batch_to_ids(SENTENCES, TINY_OPTIONS["char_cnn"]["max_characters_per_token"])
    )


# ------------------------------------------------------------ the shared checks
def test_char_cnn_token_encoder_layer_checks(tmp_path):
    run_layer_test(
        lambda **kw: CharCNNTokenEncoder(TINY_OPTIONS, **kw),
        char_ids(),
        expected_num_trainable_weights=CHAR_CNN_WEIGHTS,
        expected_num_non_trainable_weights=0,
        expected_output_shape=(3, 4, P),
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize("feature_major", [False, True])
def test_projected_lstm_layer_checks(feature_major):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 3, 5, 4)), tf.float32)
    mask = tf.constant([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]]) > 0
    state = (tf.zeros((2, 3, UNITS)), tf.zeros((2, 3, P)))
    run_layer_test(
        lambda **kw: ProjectedLSTM(
            UNITS, P, 4, cell_clip=3, proj_clip=3, feature_major=feature_major, **kw
        ),
        x,
        call_kwargs={"mask": mask, "initial_state": state},
        expected_num_trainable_weights=LSTM_WEIGHTS,
        expected_num_non_trainable_weights=0,
        expected_output_shape=[(2, 3, 5, P), [(2, 3, UNITS), (2, 3, P)]],
        # No tmp_path, no .keras check: a multi-input building block, saved inside ElmoLayer.
        run_mixed_precision=False,  # always run float32 (ElmoLayer forces it)
    )


def test_bidirectional_lm_layer_checks():
    x = tf.random.stateless_normal((3, 5, P), seed=(1, 2))
    mask = tf.constant([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]) > 0
    run_layer_test(
        lambda **kw: BidirectionalLM.from_options(TINY_OPTIONS, **kw),
        x,
        call_kwargs={"mask": mask},
        expected_num_trainable_weights=LSTM_WEIGHTS * N_LAYERS,
        expected_num_non_trainable_weights=2,
        expected_output_shape=[[(3, 5, 2 * P)] * 2, [(2, 2, 3, UNITS), (2, 2, 3, P)]],
        run_mixed_precision=False,
    )


def test_scalar_mix_layer_checks():
    layers = [tf.random.stateless_normal((2, 3, 4), seed=(k, 0)) for k in range(3)]
    mask = tf.constant([[1, 1, 0], [1, 1, 1]]) > 0
    run_layer_test(
        lambda **kw: ScalarMix(3, do_layer_norm=True, **kw),
        layers,
        call_kwargs={"mask": mask},
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
        expected_output_shape=(2, 3, 4),
    )


def test_elmo_tokenizer_layer_checks(tmp_path):
    run_layer_test(
        lambda **kw: ElmoTokenizer(mode="punctuation", **kw),
        tf.constant(["The cat sat.", "Hello, world!"]),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        expected_output_shape=(2, 4),
        expected_symbolic_shape=(2, None),  # the token count depends on the text
        tmp_path=tmp_path,
        run_mixed_precision=False,  # strings in, strings out
        run_training_check=False,  # no weights
    )


def test_elmo_preprocessor_layer_checks(tmp_path):
    layer, out = run_layer_test(
        lambda **kw: ElmoPreprocessor(**kw),
        tf.constant(["The cat sat .", "Hello world"]),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        expected_output_shape=(2, 4, 50),
        expected_symbolic_shape=(2, None, 50),  # the token count depends on the text
        tmp_path=tmp_path,
        run_mixed_precision=False,  # strings in, int char ids out
        run_training_check=False,  # no weights
    )
    # The char ids of the spec: <bow> "c" "a" "t" <eow>, then padding ids; a
    # missing token is all zeros.
    out = np.asarray(out)
    assert out[0, 1, :5].tolist() == [259, ord("c") + 1, ord("a") + 1, ord("t") + 1, 260]
    assert set(out[0, 1, 5:].tolist()) == {261}
    assert not out[1, 2:].any()


# Every output mode (one mix, several mixes; the ELMo vectors or TF Hub's dict),
# each with one of the fine-tune modes (which weights train).
ELMO_MODES = [
    ("elmo", 1, "mix"),
    ("elmo", 2, "top"),
    pytest.param("dict", 1, "all", marks=pytest.mark.slow),  # trains all: ~8 s
    ("dict", 2, "mix"),
]


@pytest.mark.parametrize("output_mode,mixes,fine_tune", ELMO_MODES)
def test_elmo_layer_layer_checks(tmp_path, output_mode, mixes, fine_tune):
    shapes = [(3, 4, 2 * P)] * mixes
    if output_mode == "dict":
        shapes = {
            "word_emb": (3, 4, P),
            **{f"lstm_outputs{k + 1}": (3, 4, 2 * P) for k in range(N_LAYERS)},
            "elmo": (3, 4, 2 * P),
            **{f"elmo_{k}": (3, 4, 2 * P) for k in range(1, mixes)},
            "default": (3, 2 * P),
            "sequence_len": (3,),
        }
    elif mixes == 1:
        shapes = shapes[0]
    # Each mix: its layer weights and gamma. "top" trains the top LSTM layer
    # too, "all" the char CNN and every LSTM layer (never the initial state).
    trained = {"mix": 0, "top": LSTM_WEIGHTS, "all": CHAR_CNN_WEIGHTS + LSTM_WEIGHTS * N_LAYERS}
    trainable = 2 * mixes + trained[fine_tune]
    run_layer_test(
        lambda **kw: ElmoLayer(
            TINY_OPTIONS,
            output_mode=output_mode,
            num_output_representations=mixes,
            fine_tune=fine_tune,
            **kw,
        ),
        char_ids(),
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=2 * mixes + CHAR_CNN_WEIGHTS + BILM_WEIGHTS - trainable,
        expected_output_shape=shapes,
        expected_mask_shape=(3, 4) if output_mode == "elmo" else None,
        tmp_path=tmp_path,
    )


# A vocabulary and its vectors written here, and tokens with the rows they hit.
CACHE_VOCABULARY = ["the", "cat", "sat", "\u00e9t\u00e9"]
CACHE_VECTORS = np.arange(4 * 3, dtype="float32").reshape(4, 3) / 8.0 - 0.5
CACHE_TOKENS = [["cat", "dog", "the", ""], ["\u00e9t\u00e9", "sat", "Cat", "cat"]]


def filled_token_cache(**kwargs):
    cache = TokenCache(3, name="token_cache", **kwargs)
    cache.set_vocabulary(CACHE_VOCABULARY, CACHE_VECTORS)
    return cache


def copy_cache(source, target):
    target.set_vocabulary(source.vocabulary, source.vectors.numpy())


def test_token_cache_layer_checks(tmp_path):
    tokens = tf.constant(CACHE_TOKENS)
    layer, out = run_layer_test(
        filled_token_cache,
        tokens,
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        expected_output_shape=(2, 4, 3),
        tmp_path=tmp_path,
        copy_state=copy_cache,
        run_training_check=False,  # no trainable weights: the vectors are fixed
    )
    rows = {token: k for k, token in enumerate(CACHE_VOCABULARY)}
    want = np.zeros((2, 4, 3), "float32")
    for b, sentence in enumerate(CACHE_TOKENS):
        for t, token in enumerate(sentence):
            if token in rows:
                want[b, t] = CACHE_VECTORS[rows[token]]
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(layer.lookup(tokens).numpy(), [[1, -1, 0, -1], [3, 2, -1, 1]])
    # The config is the constructor's: a layer made from it is empty (zeros).
    assert layer.get_config()["size"] == 0
    empty = TokenCache.from_config(layer.get_config())
    np.testing.assert_array_equal(empty(tokens).numpy(), np.zeros((2, 4, 3)))
    assert empty.weights == [] and layer.weights == []


@functools.cache
def efml_fixture_encoder():
    """The EFML fixture model's token encoder, its files read once."""
    return ElmoLayer.from_elmoformanylangs(EFML / "model_zip").token_encoder


def copy_encoder(source, target):
    if not target.built:
        target.build()
    target.set_lexicons(source.char_lexicon, source.word_lexicon)
    target.set_weights(source.get_weights())


def efml_encoder(**kwargs):
    """A standalone EfmlTokenEncoder holding the fixture's weights and lexicons."""
    source = efml_fixture_encoder()
    encoder = EfmlTokenEncoder(source.options, name="efml_token_encoder", **kwargs)
    copy_encoder(source, encoder)
    return encoder


def test_efml_token_encoder_layer_checks(tmp_path):
    sentence = EFML_SENTENCES[0]
    tokens = tf.constant([sentence, sentence[:2] + [""] * (len(sentence) - 2)])
    source = efml_fixture_encoder()
    width = source.output_dim
    # The character embedding (and the word embedding, when the model has
    # one), a kernel and a bias per filter width, one kernel and bias per
    # highway layer (carry and transform in one), the projection's W and b.
    weights = 1 + bool(source.word_dim) + 2 * len(source.filters) + 2 * source.n_highway + 2
    layer, out = run_layer_test(
        efml_encoder,
        tokens,
        expected_num_trainable_weights=weights,
        expected_num_non_trainable_weights=0,
        expected_output_shape=(2, len(sentence), width),
        tmp_path=tmp_path,
        copy_state=copy_encoder,
    )
    # The same token gives the same vector wherever it stands; "" gives zeros.
    assert_same_up_to_path(out[1, :2], out[0, :2])
    np.testing.assert_array_equal(out[1, 2:], 0.0)
    # EFML's word layer for these tokens (its first output layer, one half per direction).
    want = efml_expected("model_zip")[0][0, :, :width]
    np.testing.assert_allclose(out[0], want, atol=EFML_ATOL, rtol=0)


def test_token_cache_keras_file_carries_the_cache(tmp_path):
    inputs = keras.Input(shape=(4,), dtype="string")
    model = keras.Model(inputs, filled_token_cache()(inputs))
    model.save(tmp_path / "cache.keras")
    loaded = keras.models.load_model(tmp_path / "cache.keras").get_layer("token_cache")
    assert loaded.vocabulary == CACHE_VOCABULARY and loaded.get_config()["size"] == 0
    np.testing.assert_array_equal(loaded.vectors.numpy(), CACHE_VECTORS)
    # An empty cache saves and loads as empty.
    model = keras.Model(inputs, TokenCache(3, name="token_cache")(inputs))
    model.save(tmp_path / "empty.keras")
    loaded = keras.models.load_model(tmp_path / "empty.keras").get_layer("token_cache")
    assert not loaded.active and loaded.vectors is None


def test_token_cache_checks():
    with pytest.raises(ValueError, match="non-negative integer"):
        TokenCache(3, size=-1)
    with pytest.raises(ValueError, match="shape"):
        TokenCache(3).set_vocabulary(["a", "b"], np.zeros((2, 4)))
    sized = TokenCache(3, size=2)
    with pytest.raises(ValueError, match="new layer"):
        sized.set_vocabulary(["a"], np.zeros((1, 3)))
    sized.set_vocabulary(["a", "b"], np.ones((2, 3)))
    assert sized.vocabulary == ["a", "b"]


def test_elmo_layer_mixed_precision_keeps_the_bilm_float32():
    keras.utils.set_random_seed(3)
    layer = ElmoLayer(TINY_OPTIONS, dtype="mixed_bfloat16")
    out = layer(char_ids())
    assert out.dtype == tf.bfloat16
    # The sublayers compute in float32 whatever the outer policy.
    for sub in (layer.token_encoder, layer.bilm, layer.mixes[0]):
        assert sub.compute_dtype == "float32", sub.name


# ------------------------------------------------------------ numbers
@pytest.mark.parametrize("feature_major", [False, True])
def test_projected_lstm_matches_numpy(feature_major):
    keras.utils.set_random_seed(5)
    lstm = ProjectedLSTM(UNITS, P, 4, cell_clip=0.5, proj_clip=0.3, feature_major=feature_major)
    lstm.build()
    rng = np.random.default_rng(1)
    # Large enough weights that both clips bind somewhere.
    lstm.set_weights([rng.normal(size=w.shape).astype("float32") for w in lstm.get_weights()])
    x = rng.normal(size=(2, 3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], bool)
    state = (tf.zeros((2, 3, UNITS)), tf.zeros((2, 3, P)))
    out, (c, h) = lstm(tf.constant(x), tf.constant(mask), state)
    for d in range(2):

        def w(var, d=d):
            # Feature-major layers store W^T (see lstm.py); numpy uses W.
            value = var.numpy()[d]
            return value.T if feature_major else value

        want, finals = numpy_lstm(
            x[d],
            mask,
            w(lstm.kernel),
            w(lstm.recurrent_kernel),
            lstm.bias.numpy()[d],
            w(lstm.projection),
            0.5,
            0.3,
        )
        assert_same_up_to_path(out[d].numpy(), want)
        for b, (fc, fh) in enumerate(finals):
            assert_same_up_to_path(c[d, b].numpy(), fc)
            assert_same_up_to_path(h[d, b].numpy(), fh)
    assert np.abs(out.numpy()).max() == pytest.approx(0.3)  # the projection clip binds


def test_projected_lstm_bfloat16_both_layouts():
    """The bfloat16 step (batch-major in both layouts) against numpy float32.

    The same W in either stored layout: both runs stay within bfloat16's
    rounding of the float32 reference (and above float32's), a row with no
    real step keeps its initial state exactly (h is held in bfloat16 inside
    the loop), and masked positions are exactly zero.
    """
    rng = np.random.default_rng(2)
    weights = [
        rng.normal(size=s, scale=0.5).astype("float32")
        for s in [(2, 4, 4 * UNITS), (2, P, 4 * UNITS), (2, 4 * UNITS), (2, UNITS, P)]
    ]
    x = rng.normal(size=(2, 3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], bool)
    c0 = tf.constant(rng.normal(size=(2, 3, UNITS)).astype("float32") * 0.1)
    h0 = tf.constant(np.full((2, 3, P), 0.1234567, "float32"))  # not a bfloat16 number
    outs = []
    for feature_major in (False, True):
        lstm = ProjectedLSTM(
            UNITS,
            P,
            4,
            cell_clip=3.0,
            proj_clip=3.0,
            matmul_dtype="bfloat16",
            feature_major=feature_major,
        )
        lstm.build()
        t = (lambda a: np.transpose(a, (0, 2, 1))) if feature_major else (lambda a: a)
        lstm.set_weights([t(weights[0]), t(weights[1]), weights[2], t(weights[3])])
        out, (c, h) = lstm(tf.constant(x), tf.constant(mask), (c0, h0))
        np.testing.assert_array_equal(h[:, 2].numpy(), h0[:, 2].numpy())
        np.testing.assert_array_equal(c[:, 2].numpy(), c0[:, 2].numpy())
        assert not np.any(out.numpy()[:, ~mask])
        outs.append(out.numpy())
        zero = (tf.zeros_like(c0), tf.zeros_like(h0))
        got = lstm(tf.constant(x), tf.constant(mask), zero)[0].numpy()
        for d in range(2):
            want, _ = numpy_lstm(
                x[d], mask, weights[0][d], weights[1][d], weights[2][d], weights[3][d], 3.0, 3.0
            )
            rel = np.linalg.norm(got[d] - want) / np.linalg.norm(want)
            assert 2.0**-16 < rel < 2.0**-5, (feature_major, d, rel)
    np.testing.assert_allclose(outs[0], outs[1], atol=2.0**-6)


def test_bidirectional_lm_matches_numpy():
    keras.utils.set_random_seed(6)
    bilm = BidirectionalLM.from_options(TINY_OPTIONS)
    bilm.build()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, P)).astype("float32")
    lengths = [4, 2]
    mask = np.arange(4)[None, :] < np.array(lengths)[:, None]
    outputs, _ = bilm(tf.constant(x), tf.constant(mask))
    # numpy: the forward LSTM reads each row in order, the backward one the
    # row's real tokens reversed; layer 2 adds the skip connection.
    for b, n in enumerate(lengths):
        layer_in = [x[b, :n], x[b, :n][::-1]]
        for k, lstm in enumerate(bilm.lstms):
            layer_out = []
            for d in range(2):

                def w(var, d=d, lstm=lstm):
                    value = var.numpy()[d]
                    return value.T if lstm.feature_major else value

                out, _ = numpy_lstm(
                    layer_in[d][None],
                    np.ones((1, n), bool),
                    w(lstm.kernel),
                    w(lstm.recurrent_kernel),
                    lstm.bias.numpy()[d],
                    w(lstm.projection),
                    3.0,
                    3.0,
                )
                layer_out.append(out[0] + (layer_in[d] if k > 0 else 0.0))
            want = np.concatenate([layer_out[0], layer_out[1][::-1]], -1)
            assert_same_up_to_path(outputs[k][b, :n].numpy(), want)
            layer_in = layer_out


def test_char_cnn_token_encoder_matches_numpy(tmp_path):
    # Random weights, written in the published format and read back by the
    # independent numpy ELMo (tests/numpy_reference.py), which knows the spec's
    # layouts (conv kernels, highway carry/transform, projection).
    keras.utils.set_random_seed(7)
    layer = ElmoLayer(TINY_OPTIONS)
    layer.build()
    rng = np.random.default_rng(3)
    layer.token_encoder.set_weights(
        [
            rng.normal(scale=0.5, size=w.shape).astype("float32")
            for w in layer.token_encoder.get_weights()
        ]
    )
    layer.save_original(tmp_path / "options.json", tmp_path / "weights.hdf5")
    reference = NumpyElmo(layer.options, tmp_path / "weights.hdf5")
    got = layer.token_encoder(char_ids()).numpy()
    for b, sentence in enumerate(SENTENCES):
        for t, token in enumerate(sentence):
            assert_same_up_to_path(got[b, t], reference.token_vector(token), err_msg=token)
        np.testing.assert_array_equal(got[b, len(sentence) :], 0.0)  # padding stays zero


def test_shared_softmax_layer_checks(tmp_path):
    h = tf.random.stateless_normal((3, 4), seed=(5, 0))
    layer, out = run_layer_test(
        lambda **kw: SharedSoftmax(vocab_size=7, dim=4, **kw),
        h,
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
        expected_output_shape=(3, 7),
        tmp_path=tmp_path,
    )
    # Logits of every word: h @ W^T + b, numpy in float64.
    layer.b.assign(tf.random.stateless_normal((7,), seed=(6, 0)))
    w, b = (v.numpy().astype("float64") for v in (layer.w, layer.b))
    want = h.numpy().astype("float64") @ w.T + b
    assert_same_up_to_path(layer(h).numpy(), want)
    assert_same_up_to_path(out, want - b)  # b starts at 0


# The test that puts each registered keras_elmo layer through run_layer_test.
LAYER_CHECKS = {
    CharCNNTokenEncoder: test_char_cnn_token_encoder_layer_checks,
    EfmlTokenEncoder: test_efml_token_encoder_layer_checks,
    TokenCache: test_token_cache_layer_checks,
    ProjectedLSTM: test_projected_lstm_layer_checks,
    BidirectionalLM: test_bidirectional_lm_layer_checks,
    ScalarMix: test_scalar_mix_layer_checks,
    ElmoLayer: test_elmo_layer_layer_checks,
    ElmoTokenizer: test_elmo_tokenizer_layer_checks,
    ElmoPreprocessor: test_elmo_preprocessor_layer_checks,
    SharedSoftmax: test_shared_softmax_layer_checks,
}


def test_every_registered_layer_goes_through_the_shared_checks():
    """A layer class registered with Keras (keras_elmo/registration.py) has its
    run_layer_test here. Models (BiLMTrainer) are not layers under test: their
    fit and saving are tests/test_training.py's."""
    register_keras_objects()
    registered = {
        cls
        for name, cls in keras.saving.get_custom_objects().items()
        if name.startswith("keras_elmo>")
        and issubclass(cls, keras.layers.Layer)
        and not issubclass(cls, keras.Model)
    }
    assert registered == set(LAYER_CHECKS), registered ^ set(LAYER_CHECKS)
    for test in LAYER_CHECKS.values():
        assert "run_layer_test(" in inspect.getsource(test), test.__name__

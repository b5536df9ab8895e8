"""The model's numerics on every Keras backend (keras.ops path) and, on
TensorFlow, the keras.ops path against the TensorFlow kernels.

Tests marked `multi_backend` are written for any backend: char ids go in as
numpy int32, results come out through `keras.ops.convert_to_numpy` and are
compared with numpy. CI runs them with KERAS_BACKEND=tensorflow, jax and
torch; run them by hand the same way:

    KERAS_BACKEND=jax python -m pytest -q -s -m multi_backend tests/test_backends_numerics.py

Each fixture test prints its worst error (`-s` shows it) and records it as
a junit property.
"""

import json

import keras
import numpy as np
import pytest
from keras import ops
from numpy_reference import NumpyElmo
from support.bilm_fixture import ATOL, N_BATCHES, allclose, fixture_layer, load_fixture
from support.tiny_model import random_tiny_layer
from support.tolerance import assert_same_up_to_path

from keras_elmo import ElmoLayer, batch_to_ids
from keras_elmo.layers import backend_path
from keras_elmo.layers import lstm as lstm_lib

BACKEND = keras.backend.backend()
SENTENCES = [
    "The quick brown fox jumped over the lazy dog .".split(),
    "Café naïve 日本語 🙂 !".split(),
    "Short".split(),
    "A longer sentence , with more tokens than the others , to pad them .".split(),
]


def char_ids(sentences):
    return np.asarray(batch_to_ids(sentences), dtype="int32")


def numpy_of(x):
    return ops.convert_to_numpy(x)


def representations(layer, sentences):
    """ElmoLayer's model on char ids: (layers as numpy, word_emb, mask)."""
    layers, tokens, mask, _ = layer._representations(char_ids(sentences))
    # This backend's own tensors (0.3 returned TensorFlow tensors on JAX and torch).
    assert all(ops.is_tensor(x) for x in layers + [tokens, mask])
    return [numpy_of(x) for x in layers], numpy_of(tokens), numpy_of(mask)


def report(record_property, what, worst):
    record_property(f"{BACKEND}:{what}", float(worst))
    print(f"\n[{BACKEND}] {what}: max abs error {worst:.3g} (bound {ATOL:g}, rtol 0)")


@pytest.fixture
def random_files(tmp_path):
    """The tiny model with random weights (skip connections, both clips, and
    clipping that bites) in the original format, and its numpy twin."""
    layer = random_tiny_layer(output_mode="dict")
    layer.bilm.initial_c.assign(np.zeros(layer.bilm.initial_c.shape, "float32"))
    layer.bilm.initial_h.assign(np.zeros(layer.bilm.initial_h.shape, "float32"))
    options, weights = tmp_path / "options.json", tmp_path / "weights.hdf5"
    layer.save_original(options, weights)
    return options, weights, NumpyElmo(json.loads(options.read_text()), weights)


# On TensorFlow the fixture tests run twice: its kernels, then the keras.ops path.
PATHS = ["default"] + (["keras_ops"] if BACKEND == "tensorflow" else [])


@pytest.fixture(params=PATHS)
def model_path(request, monkeypatch):
    monkeypatch.setattr(backend_path, "FORCE_PORTABLE", request.param == "keras_ops")
    return request.param


# ----------------------------------------------------------- every backend
@pytest.mark.multi_backend
def test_fixture_token_vectors_match_the_numpy_reference(fixture_dir, record_property, model_path):
    """The char CNN + highway + projection of the fixture model, on the
    fixture's own sentences, against the independent numpy reference."""
    sentences, _ = load_fixture(fixture_dir)
    layer = fixture_layer(fixture_dir)
    options = json.loads((fixture_dir / "options.json").read_text())
    ref = NumpyElmo(options, fixture_dir / "lm_weights.hdf5")
    worst, vectors = 0.0, {}  # the reference's vector of each distinct token
    for i in range(N_BATCHES):
        batch = [sentences[k][i].split() for k in range(3)]
        layers, tokens, mask = representations(layer, batch)
        for k, sentence in enumerate(batch):
            for token in set(sentence) - vectors.keys():
                vectors[token] = ref.token_vector(token)
            want = np.stack([vectors[token] for token in sentence])
            got = tokens[k, : len(sentence)]
            worst = max(worst, float(np.abs(got - want).max()))
            assert allclose(got, want), (i, k, np.abs(got - want).max())
            assert mask[k].sum() == len(sentence)
            assert (tokens[k, len(sentence) :] == 0).all()
            np.testing.assert_array_equal(layers[0][k], np.concatenate([tokens[k]] * 2, -1))
    report(record_property, f"fixture char-CNN token vectors ({model_path})", worst)


@pytest.mark.multi_backend
def test_fixture_stateful_replay(fixture_dir, record_property, model_path):
    """The 10 fixture batches in order with the state carried (as the original
    code produced them): the top layer within 1e-6 of bilm-tf's numbers."""
    sentences, expected = load_fixture(fixture_dir)
    layer = fixture_layer(fixture_dir, stateful=True)
    worst = 0.0
    for i in range(N_BATCHES):
        batch = [sentences[k][i].split() for k in range(3)]
        top = representations(layer, batch)[0][-1]
        for k in range(3):
            got = top[k, : len(batch[k])]
            assert got.shape == expected[k][i].shape
            worst = max(worst, float(np.abs(got - expected[k][i]).max()))
            assert allclose(got, expected[k][i]), (i, k, np.abs(got - expected[k][i]).max())
    report(record_property, f"fixture stateful 10-batch replay ({model_path})", worst)


@pytest.mark.multi_backend
def test_stateful_carries_and_resets(fixture_dir):
    """The carried state changes the next call; reset_states starts over
    exactly; rows past the batch keep their state; stateless never carries."""
    sentences, _ = load_fixture(fixture_dir)
    batch = [sentences[k][0].split() for k in range(3)]
    layer = fixture_layer(fixture_dir, stateful=True, state_rows=4)
    first = representations(layer, batch)[0][-1]
    kept = numpy_of(layer.bilm.state_c)[:, :, 3].copy()
    second = representations(layer, batch)[0][-1]
    assert not allclose(first, second)
    np.testing.assert_array_equal(numpy_of(layer.bilm.state_c)[:, :, 3], kept)
    layer.reset_states()
    np.testing.assert_array_equal(representations(layer, batch)[0][-1], first)
    stateless = fixture_layer(fixture_dir)
    once = representations(stateless, batch)[0][-1]
    np.testing.assert_array_equal(representations(stateless, batch)[0][-1], once)
    np.testing.assert_array_equal(once, first)


@pytest.mark.multi_backend
@pytest.mark.parametrize("shape", [(2, 0), (0, 3), (0, 0), (2, 3)])
def test_empty_and_all_padding_batches(shape):
    """No tokens at all (an empty batch, T = 0, or padding only): zeros of
    the right shapes, on every backend."""
    layer = random_tiny_layer()
    layers, tokens, mask, _ = layer._representations(np.zeros(shape + (50,), "int32"))
    p = layer.projection_dim
    assert tuple(tokens.shape) == shape + (p,)
    assert [tuple(x.shape) for x in layers] == [shape + (2 * p,)] * 3
    assert all(not np.abs(numpy_of(x)).any() for x in layers)
    assert not numpy_of(mask).any()


@pytest.mark.multi_backend
def test_a_stateful_batch_over_state_rows_is_refused(fixture_dir):
    layer = fixture_layer(fixture_dir, stateful=True, state_rows=2)
    if backend_path.use_tf_kernels():
        import tensorflow as tf

        error = tf.errors.InvalidArgumentError
    else:
        error = ValueError
    with pytest.raises(error, match="state_rows=2"):
        representations(layer, SENTENCES[:3])
    np.testing.assert_array_equal(numpy_of(layer.bilm.state_c), 0.0)


@pytest.mark.multi_backend
def test_skip_connections_and_clipping_match_the_numpy_reference(random_files):
    """The published models' features the fixture lacks: the residual between
    layers and cell/projection clips that bite (random weights, scale 0.5)."""
    options, weights, ref = random_files
    layer = ElmoLayer.from_original(options, weights)
    layers, tokens, _ = representations(layer, SENTENCES)
    for i, sentence in enumerate(SENTENCES):
        want, _ = ref.layers(sentence)
        n = len(sentence)
        for k in range(len(want)):
            assert_same_up_to_path(layers[k][i, :n], want[k], err_msg=f"layer {k}")
            assert (layers[k][i, n:] == 0).all()
    # Alone and in a batch: the same (stateless, padding never leaks).
    alone = representations(layer, SENTENCES[2:3])[0]
    for k in range(len(alone)):
        assert_same_up_to_path(alone[k][0, :1], layers[k][2, :1])


@pytest.mark.multi_backend
def test_biLM_keeps_float32_under_mixed_precision(fixture_dir):
    sentences, _ = load_fixture(fixture_dir)
    batch = [sentences[k][1].split() for k in range(3)]
    plain = representations(fixture_layer(fixture_dir), batch)[0]
    mixed_layer = fixture_layer(fixture_dir, dtype="mixed_float16")
    layers, _, _, _ = mixed_layer._representations(char_ids(batch))
    assert all(keras.backend.standardize_dtype(x.dtype) == "float32" for x in layers)
    for got, want in zip(layers, plain):
        assert_same_up_to_path(numpy_of(got), want)


def _gradients(layer, variables, sentences):
    """d(loss)/d(variables) on this backend, as numpy (zeros where none flows)."""
    ids = char_ids(sentences)

    def loss():
        layers, _, mask, _ = layer._representations(ids)
        mixed = layer.mixes[0](layers, mask=mask)
        return ops.sum(ops.square(mixed))

    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = loss()
        grads = tape.gradient(value, [v.value for v in variables])
    elif BACKEND == "jax":
        import jax

        def pure(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss()

        grads = jax.grad(pure)([v.value for v in variables])
    elif BACKEND == "torch":
        for v in variables:
            v.value.grad = None
        loss().backward()
        grads = [v.value.grad for v in variables]
    else:
        pytest.fail(f"no gradient helper for the {BACKEND} backend")
    return [
        np.zeros(v.shape, "float32") if g is None else np.asarray(numpy_of(g))
        for v, g in zip(variables, grads)
    ]


@pytest.mark.multi_backend
@pytest.mark.parametrize("fine_tune", ["mix", "top", "all"])
def test_gradients_reach_what_fine_tune_trains(fine_tune):
    """fine_tune="all": every weight trains and gets a gradient; "top": the mix
    and the top LSTM; "mix": the mix only. What does not train gets no
    gradient through the stopped activations either: the char CNN unless
    "all", the whole biLM with "mix" (asked for every weight, trainable or not)."""
    layer = random_tiny_layer(fine_tune=fine_tune)
    encoder = layer.token_encoder.weights
    lstms = [w for lstm in layer.bilm.lstms for w in lstm.weights]
    mix = layer.mixes[0].weights
    expected = {
        "mix": mix,
        "top": layer.bilm.lstms[-1].weights + mix,
        "all": encoder + lstms + mix,
    }[fine_tune]
    trainable = [w for w in layer.trainable_weights if any(w is v for v in encoder + lstms + mix)]
    assert sorted(w.path for w in trainable) == sorted(w.path for w in expected)
    stopped = (encoder if fine_tune != "all" else []) + (lstms if fine_tune == "mix" else [])
    variables = trainable + stopped
    grads = _gradients(layer, variables, SENTENCES)
    for var, grad in zip(variables, grads):
        assert np.isfinite(grad).all(), var.path
        trains = any(var is w for w in trainable)
        assert (np.abs(grad).sum() > 0) == trains, (fine_tune, var.path)


@pytest.mark.multi_backend
def test_stateful_training_steps_do_not_backpropagate_into_the_past():
    """Two gradient steps in a row on a stateful layer: the carried state is
    a value, not a path back into the first step's graph (torch would refuse
    a second backward through it)."""
    layer = random_tiny_layer(fine_tune="all", stateful=True, state_rows=4)
    for _ in range(2):
        grads = _gradients(layer, layer.trainable_weights, SENTENCES)
        assert all(np.isfinite(g).all() and np.abs(g).sum() > 0 for g in grads)


@pytest.mark.multi_backend
def test_lstm_layouts_give_one_model(random_files, monkeypatch):
    """The feature-major weight layout (stored W^T) runs the same model."""
    options, weights, _ = random_files
    batch_major = representations(ElmoLayer.from_original(options, weights), SENTENCES)[0]
    monkeypatch.setattr(lstm_lib, "FEATURE_MAJOR_MIN_RECURRENT", 0)
    layer = ElmoLayer.from_original(options, weights)
    assert all(lstm.feature_major for lstm in layer.bilm.lstms)
    for got, want in zip(representations(layer, SENTENCES)[0], batch_major):
        assert_same_up_to_path(got, want)


# ------------------------------------------------------------------ JAX only
@pytest.mark.multi_backend
@pytest.mark.only_backend("jax")  # JAX's jit: runs in the KERAS_BACKEND=jax leg
def test_jax_jit_compiles_the_model_and_eager_calls_reuse_buckets(fixture_dir):
    import jax

    layer = fixture_layer(fixture_dir)
    variables = layer.weights
    values = [v.value for v in variables]

    @jax.jit
    def model(values, ids):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return layer._representations(ids)[0][-1]

    batch = SENTENCES[:2]
    eager = representations(layer, batch)[0][-1]
    assert_same_up_to_path(np.asarray(model(values, char_ids(batch))), eager)
    # Eager calls of T = 1, 3, 5 and 6 (T + 2 <= 8) share one compiled LSTM.
    before = lstm_lib._jax_compiled[0]._cache_size()
    for n in (1, 3, 5, 6):
        representations(layer, [["a"] * n])
    assert lstm_lib._jax_compiled[0]._cache_size() - before <= 1


# ------------------------------------------------ TensorFlow: the two paths
def _portable(monkeypatch, on):
    monkeypatch.setattr(backend_path, "FORCE_PORTABLE", on)


@pytest.mark.only_backend("tensorflow")  # the TensorFlow kernels and tables
@pytest.mark.parametrize("layout", ["auto", "feature_major"])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_keras_ops_path_matches_the_tf_kernels(monkeypatch, layout, layer_norm):
    """On TensorFlow both implementations run: every output of the dict mode
    (word_emb, both LSTM layers, the mix with or without layer norm) agrees
    to the cross-path tolerance, stateless and over a stateful sequence."""
    if layout == "feature_major":
        monkeypatch.setattr(lstm_lib, "FEATURE_MAJOR_MIN_RECURRENT", 0)
    kwargs = {"output_mode": "dict", "do_layer_norm": layer_norm}
    for stateful in (False, True):
        outputs = {}
        for on in (False, True):
            _portable(monkeypatch, on)
            layer = random_tiny_layer(stateful=stateful, state_rows=4, **kwargs)
            calls = [layer(char_ids(SENTENCES)), layer(char_ids(SENTENCES[1:]))]
            outputs[on] = [{k: numpy_of(v) for k, v in out.items()} for out in calls]
        assert_same_up_to_path(outputs[True], outputs[False], err_msg=f"stateful={stateful}")


@pytest.mark.only_backend("tensorflow")  # the TensorFlow kernels and tables
def test_keras_ops_path_has_the_tf_kernels_gradients(monkeypatch):
    grads = {}
    for on in (False, True):
        _portable(monkeypatch, on)
        layer = random_tiny_layer(fine_tune="all")
        grads[on] = _gradients(layer, layer.trainable_weights, SENTENCES)
    for var, g, f in zip(layer.trainable_weights, grads[False], grads[True]):
        assert np.abs(g).sum() > 0, var.path
        np.testing.assert_allclose(f, g, rtol=1e-4, atol=1e-5 * np.abs(g).max(), err_msg=var.path)


def test_the_switch_picks_the_path(monkeypatch):
    monkeypatch.delenv(backend_path.PORTABLE_ENV, raising=False)
    assert backend_path.use_tf_kernels() == (BACKEND == "tensorflow")
    monkeypatch.setenv(backend_path.PORTABLE_ENV, "1")
    assert not backend_path.use_tf_kernels()
    monkeypatch.setenv(backend_path.PORTABLE_ENV, "0")
    assert backend_path.use_tf_kernels() == (BACKEND == "tensorflow")


@pytest.mark.only_backend("tensorflow")  # the TensorFlow kernels and tables
@pytest.mark.parametrize("model", ["model_legacy", "model_zip"])
def test_efml_numeric_part_in_keras_ops_matches_its_tf_encoder(model):
    """ELMoForManyLangs' char CNN + highway + projection on ids (`encode_ids`,
    keras.ops) against its TensorFlow encoder on the same tokens; the string
    lookups that make the ids are TensorFlow tables."""
    import tensorflow as tf
    from support.efml_fixture import EFML
    from support.efml_fixture import SENTENCES as EFML_SENTENCES

    encoder = ElmoLayer.from_elmoformanylangs(EFML / model).token_encoder
    for tokens, boundary in (
        (sorted({t for s in EFML_SENTENCES for t in s}), False),
        (["<bos>", "<eos>"], True),
    ):
        tokens = tf.constant(tokens)
        ids, keys = encoder.char_ids(tokens, boundary=boundary)
        words = encoder._word_table.lookup(keys) if encoder.word_dim else None
        got = numpy_of(encoder.encode_ids(ids, words))
        assert_same_up_to_path(got, encoder.encode_unique(tokens, boundary=boundary).numpy())
        assert np.abs(got).max() > 0

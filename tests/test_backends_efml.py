"""ELMoForManyLangs models on every Keras backend (issue 24, item 3).

On JAX and PyTorch an EFML `ElmoLayer` looks its string tokens up eagerly
(TensorFlow tables, `EfmlTokenEncoder.packed_ids`) and runs the model in
keras.ops (`encode_packed`); on TensorFlow it keeps its graph path. Each
backend must give EFML's own outputs (tests/fixtures/efml):

    KERAS_BACKEND=jax python -m pytest -q -s -m multi_backend tests/test_backends_efml.py
"""

import keras
import numpy as np
import pytest
from keras import ops
from support.efml_fixture import ATOL, EFML, MODELS, SENTENCES, expected
from support.tolerance import assert_same_up_to_path

from keras_elmo import ElmoLayer

BACKEND = keras.backend.backend()


def stacked(outputs, n_lstm_layers):
    """A dict output -> numpy (batch, n_lstm_layers + 1, T, 2P), EFML's layout."""
    word = ops.convert_to_numpy(outputs["word_emb"])
    layers = [np.concatenate([word, word], -1)] + [
        ops.convert_to_numpy(outputs[f"lstm_outputs{k + 1}"]) for k in range(n_lstm_layers)
    ]
    return np.stack(layers, axis=1)


def check_against_efml(stack, model, record_property, what):
    refs = expected(model)
    worst = 0.0
    for k, ref in enumerate(refs):
        got = stack[k, :, : len(SENTENCES[k])]
        assert_same_up_to_path(got, ref, err_msg=f"{model} sentence {k}")
        worst = max(worst, float(np.max(np.abs(got - ref))))
    assert worst <= ATOL
    record_property(f"{BACKEND}:{what}", worst)
    print(f"\n[{BACKEND}] {what}: max abs error {worst:.3g} (EFML's ATOL {ATOL:g})")


@pytest.mark.multi_backend
@pytest.mark.parametrize("model", MODELS)
def test_efml_token_lists_match_efml_on_this_backend(model, record_property):
    layer = ElmoLayer.from_elmoformanylangs(EFML / model, output_mode="dict")
    outputs = layer([list(s) for s in SENTENCES])
    assert all(ops.is_tensor(v) for v in outputs.values())
    check_against_efml(stacked(outputs, layer.n_lstm_layers), model, record_property, model)


@pytest.mark.multi_backend
def test_efml_stateful_second_call_and_warm_up_on_this_backend(record_property):
    # EFML's second sents2elmo call on the same Embedder is the reference for
    # stateful=True (tests/test_efml_layer.py has the TensorFlow twin).
    model = MODELS[1]
    layer = ElmoLayer.from_elmoformanylangs(EFML / model, output_mode="dict", stateful=True)
    tokens = [list(s) for s in SENTENCES]
    check_against_efml(
        stacked(layer(tokens), layer.n_lstm_layers), model, record_property, "first call"
    )
    n = len(SENTENCES)
    first_state = [
        ops.convert_to_numpy(s)[:, :, :n] for s in (layer.bilm.state_c, layer.bilm.state_h)
    ]
    second = stacked(layer(tokens), layer.n_lstm_layers)
    refs = np.load(EFML / f"{model}_outputs_second_call.npz")
    worst = 0.0
    for k, sentence in enumerate(SENTENCES):
        got = second[k, :, : len(sentence)]
        assert_same_up_to_path(got, refs[f"s{k}"], err_msg=f"second call, sentence {k}")
        worst = max(worst, float(np.max(np.abs(got - refs[f"s{k}"]))))
    assert worst <= ATOL
    print(f"\n[{BACKEND}] stateful second call: max abs error {worst:.3g}")
    # One warm-up round of 8 streams = that first stateful call's carried state.
    warmed = ElmoLayer.from_elmoformanylangs(EFML / model).warm_up(SENTENCES, n_streams=8)
    for carried, stored in zip(first_state, (warmed.bilm.initial_c, warmed.bilm.initial_h)):
        assert_same_up_to_path(ops.convert_to_numpy(stored), carried.mean(axis=2))


@pytest.mark.multi_backend
def test_efml_packed_ids_in_a_keras_model_and_a_keras_file(tmp_path):
    # On JAX and PyTorch a Keras model's input is the packed ids (the string
    # lookups stay outside, as text stays in ElmoPreprocessor); on TensorFlow
    # the model takes the string tokens themselves.
    model = MODELS[1]
    layer = ElmoLayer.from_elmoformanylangs(EFML / model, output_mode="dict")
    longest = max(len(s) for s in SENTENCES)
    tokens = np.asarray([s + [""] * (longest - len(s)) for s in SENTENCES], dtype=object)
    if BACKEND == "tensorflow":
        inputs, batch = keras.Input(shape=(None,), dtype="string"), tokens
    else:
        width = layer.token_encoder.packed_width
        inputs = keras.Input(shape=(None, width), dtype="int32")
        batch = layer.token_encoder.packed_ids(tokens).numpy()
    net = keras.Model(inputs, layer(inputs)["elmo"])
    direct = ops.convert_to_numpy(layer(tokens)["elmo"])
    np.testing.assert_array_equal(ops.convert_to_numpy(net(batch)), direct)
    net.save(tmp_path / "efml.keras")
    loaded = keras.saving.load_model(tmp_path / "efml.keras")
    assert_same_up_to_path(ops.convert_to_numpy(loaded(batch)), direct)


@pytest.mark.multi_backend
def test_efml_raw_sentences_and_the_mix_on_this_backend():
    model = MODELS[0]
    layer = ElmoLayer.from_elmoformanylangs(EFML / model, output_mode="dict")
    sentences = [" ".join(s) for s in SENTENCES[:3]]
    outputs = layer(np.asarray(sentences, dtype=object))
    stack = stacked(outputs, layer.n_lstm_layers)
    for k, ref in enumerate(expected(model)[:3]):
        assert_same_up_to_path(stack[k, :, : len(SENTENCES[k])], ref, err_msg=f"sentence {k}")
    lengths = ops.convert_to_numpy(outputs["sequence_len"])
    np.testing.assert_array_equal(lengths, [len(s) for s in SENTENCES[:3]])
    # Positions past a sentence's end are zeros in every output.
    elmo = ops.convert_to_numpy(outputs["elmo"])
    for k, n in enumerate(lengths):
        assert not np.any(elmo[k, n:])
        assert np.all(np.any(elmo[k, :n] != 0, axis=-1))


@pytest.mark.multi_backend
def test_efml_char_ids_are_refused_on_this_backend():
    layer = ElmoLayer.from_elmoformanylangs(EFML / MODELS[0])
    with pytest.raises(ValueError, match="ELMoForManyLangs model; it takes string tokens"):
        layer(np.ones((1, 2, 50), dtype="int32"))


@pytest.mark.only_backend("tensorflow")  # the TensorFlow kernels and tables
def test_packed_keras_ops_path_matches_the_tensorflow_encoder():
    # The TensorFlow backend keeps its graph path (string tables + tf kernels);
    # the packed ids + keras.ops path of JAX and PyTorch gives the same vectors.
    import tensorflow as tf
    from support.efml_fixture import padded

    for model in MODELS:
        encoder = ElmoLayer.from_elmoformanylangs(EFML / model).token_encoder
        tokens = padded(SENTENCES)
        vectors, mask = encoder.encode_packed(encoder.packed_ids(tokens))
        np.testing.assert_array_equal(mask.numpy(), tf.not_equal(tokens, "").numpy())
        assert_same_up_to_path(vectors.numpy(), encoder(tokens).numpy(), err_msg=model)


@pytest.mark.multi_backend
def test_efml_request_limits_on_this_backend():
    import tensorflow as tf

    layer = ElmoLayer.from_elmoformanylangs(EFML / MODELS[0], max_tokens_per_sentence=3)
    too_long = [["a", "b", "c", "d"]]
    packed = layer.token_encoder.packed_ids(np.asarray(too_long, dtype=object)).numpy()
    for inputs in (too_long, ["a b c d"], packed):
        with pytest.raises(tf.errors.InvalidArgumentError, match="max_tokens_per_sentence=3"):
            layer(inputs)
    assert ops.convert_to_numpy(layer([["a", "b", "c"]])).shape[:2] == (1, 3)


@pytest.mark.multi_backend
@pytest.mark.parametrize("fine_tune", ["mix", "all"])
def test_efml_fit_on_this_backend(fine_tune):
    # A Keras model on the packed ids (string tokens on TensorFlow), fit
    # with jit_compile on JAX: the char embedding trains only with "all".
    layer = ElmoLayer.from_elmoformanylangs(EFML / MODELS[1], fine_tune=fine_tune)
    longest = max(len(s) for s in SENTENCES)
    tokens = np.asarray([s + [""] * (longest - len(s)) for s in SENTENCES], dtype=object)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        inputs, batch = keras.Input(shape=(None,), dtype="string"), tf.constant(tokens)
    else:
        inputs = keras.Input(shape=(None, layer.token_encoder.packed_width), dtype="int32")
        batch = layer.token_encoder.packed_ids(tokens).numpy()
    pooled = keras.layers.GlobalAveragePooling1D()(layer(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=BACKEND == "jax",
    )
    chars = ops.convert_to_numpy(layer.token_encoder.char_embed).copy()
    mix = ops.convert_to_numpy(layer.mixes[0].scalar_weights).copy()
    history = model.fit(batch, np.arange(len(SENTENCES)) % 2, epochs=2, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.array_equal(ops.convert_to_numpy(layer.mixes[0].scalar_weights), mix)
    moved = not np.array_equal(ops.convert_to_numpy(layer.token_encoder.char_embed), chars)
    assert moved == (fine_tune == "all")

"""ElmoLayer.from_elmoformanylangs against ELMoForManyLangs' own outputs (tests/fixtures/efml).

The fixtures hold what EFML (elmoformanylangs 0.0.4.post2 on torch 2.13)
computed for two random models, one per torch.save format; SOURCE.md there
says how. Every layer of every sentence must agree within 1e-5.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from support.efml_fixture import ATOL, EFML, MODELS, SENTENCES, all_layers, expected, padded
from support.tolerance import assert_same_up_to_path

from keras_elmo.checkpoints import efml
from keras_elmo.jobs.output import embed_all_layers
from keras_elmo.layers import lstm as lstm_lib
from keras_elmo.layers.elmo_layer import ElmoLayer


def assert_matches_efml(stack, model, indices=None):
    """Row r of `stack` against EFML's output for fixture sentence indices[r]."""
    refs = expected(model)
    for row, k in enumerate(range(len(SENTENCES)) if indices is None else indices):
        got = stack[row, :, : len(SENTENCES[k])]
        assert got.shape == refs[k].shape, (model, k)
        np.testing.assert_allclose(got, refs[k], atol=ATOL, rtol=0, err_msg=f"{model} sentence {k}")


@pytest.fixture(params=["auto", "feature_major"])
def lstm_layout(request, monkeypatch):
    # The published size (4096/512) stores its LSTM weights feature-major;
    # the fixtures are small, so force that layout too.
    if request.param == "feature_major":
        monkeypatch.setattr(lstm_lib, "FEATURE_MAJOR_MIN_RECURRENT", 0)
    return request.param == "feature_major"


@pytest.mark.parametrize("model", MODELS)
def test_every_layer_matches_efml(model, lstm_layout):
    layer = ElmoLayer.from_elmoformanylangs(EFML / model, output_mode="dict")
    assert all(lstm.feature_major == lstm_layout for lstm in layer.bilm.lstms)
    assert layer.n_lstm_layers == expected(model)[0].shape[0] - 1
    assert_matches_efml(all_layers(layer, padded(SENTENCES)), model)


def test_forget_bias_constant_agrees_with_the_lstm():
    assert efml.TF1_FORGET_BIAS == lstm_lib.FORGET_BIAS


@pytest.mark.parametrize("model", MODELS)
def test_stateless_same_sentence_twice_in_a_row(model):
    layer = ElmoLayer.from_elmoformanylangs(EFML / model, output_mode="dict")
    tokens = padded([SENTENCES[1]])
    first = all_layers(layer, tokens)
    second = all_layers(layer, tokens)
    # Same graph, same inputs: bitwise; and both are EFML's first-call numbers.
    np.testing.assert_array_equal(first, second)
    assert_matches_efml(first, model, [1])
    # Rows 1 and 7 of the fixture batch are the same sentence.
    stack = all_layers(layer, padded(SENTENCES))
    assert_same_up_to_path(stack[1, :, :5], stack[7, :, :5])


def test_stateful_carries_state_and_resets():
    layer = ElmoLayer.from_elmoformanylangs(
        EFML / "model_legacy", output_mode="dict", stateful=True, max_batch_size=4
    )
    tokens = padded([SENTENCES[0]])
    first = all_layers(layer, tokens)
    second = all_layers(layer, tokens)
    assert_matches_efml(first, "model_legacy", [0])
    assert np.abs(second[:, 1:] - first[:, 1:]).max() > 1e-3  # the carried state moved it
    layer.reset_states()
    assert_same_up_to_path(all_layers(layer, tokens), first)


def test_raw_sentences_and_python_lists():
    layer = ElmoLayer.from_elmoformanylangs(EFML / "model_legacy", output_mode="dict")
    # Sentences without U+3000 (the in-graph splitter's whitespace differs
    # from a token list's); joined with spaces and split in the graph.
    rows = [k for k, s in enumerate(SENTENCES) if not any("\u3000" in t for t in s)]
    chosen = [SENTENCES[k] for k in rows]
    out = embed_all_layers(
        layer(tf.constant([" ".join(s) for s in chosen])), layer.n_lstm_layers
    ).numpy()
    refs = expected("model_legacy")
    for row, k in enumerate(rows):
        np.testing.assert_allclose(
            out[row, :, : len(SENTENCES[k])], refs[k], atol=ATOL, rtol=0, err_msg=str(k)
        )
    # A Python list of token lists, as the README shows for English.
    listed = embed_all_layers(layer([SENTENCES[2], SENTENCES[4]]), layer.n_lstm_layers).numpy()
    np.testing.assert_allclose(listed[1, :, :1], refs[4], atol=ATOL, rtol=0)


def test_char_ids_are_refused_clearly():
    layer = ElmoLayer.from_elmoformanylangs(EFML / "model_zip")
    ids = np.ones((1, 3, 8), dtype=np.int32)
    with pytest.raises(ValueError, match="ELMoForManyLangs model.*batch_to_ids"):
        layer(ids)


def test_scalar_mix_and_elmo_output():
    layer = ElmoLayer.from_elmoformanylangs(EFML / "model_zip", output_mode="dict")
    layer.mixes[0].scalar_weights.assign([0.3, -0.2, 0.5, 0.1])
    layer.mixes[0].gamma.assign([1.7])
    out = layer(padded(SENTENCES))
    weights = np.exp([0.3, -0.2, 0.5, 0.1])
    weights /= weights.sum()
    for k, ref in enumerate(expected("model_zip")):
        mixed = 1.7 * np.tensordot(weights, ref, axes=1)
        n = len(SENTENCES[k])
        np.testing.assert_allclose(out["elmo"].numpy()[k, :n], mixed, atol=ATOL, rtol=0)
        np.testing.assert_allclose(out["default"].numpy()[k], mixed.mean(axis=0), atol=ATOL, rtol=0)
    assert out["sequence_len"].numpy().tolist() == [len(s) for s in SENTENCES]


def test_keras_file_round_trip(tmp_path):
    layer = ElmoLayer.from_elmoformanylangs(EFML / "model_legacy", output_mode="dict")
    inputs = keras.Input(shape=(None,), dtype="string")
    model = keras.Model(inputs, layer(inputs)["elmo"])
    path = tmp_path / "efml.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    tokens = padded(SENTENCES)
    assert_same_up_to_path(loaded(tokens).numpy(), model(tokens).numpy())
    restored = [lay for lay in loaded.layers if isinstance(lay, ElmoLayer)][0]
    assert restored.is_efml
    assert restored.token_encoder.char_lexicon == layer.token_encoder.char_lexicon
    assert restored.token_encoder.word_lexicon == layer.token_encoder.word_lexicon


@pytest.mark.parametrize(
    "fine_tune, trains_tokens, trains_lstms",
    [("mix", False, [False, False]), ("top", False, [False, True]), ("all", True, [True, True])],
)
def test_fine_tune_modes(fine_tune, trains_tokens, trains_lstms):
    layer = ElmoLayer.from_elmoformanylangs(EFML / "model_legacy", fine_tune=fine_tune)
    tokens = padded(SENTENCES[:3])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(tokens) ** 2)
    variables = layer.trainable_variables
    grads = dict(zip([v.path for v in variables], tape.gradient(loss, variables)))
    encoder_paths = [v.path for v in layer.token_encoder.weights]
    assert any(p in grads for p in encoder_paths) == trains_tokens
    for lstm, trains in zip(layer.bilm.lstms, trains_lstms):
        assert (lstm.kernel.path in grads) == trains
    for path, grad in grads.items():
        assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0, path


def test_empty_sentences_are_zeros():
    layer = ElmoLayer.from_elmoformanylangs(EFML / "model_zip", output_mode="dict")
    out = layer(tf.constant(["", "Москва ."]))
    assert out["sequence_len"].numpy().tolist() == [0, 2]
    assert not np.any(out["elmo"].numpy()[0])
    empty = layer(tf.constant(["", ""]))
    assert empty["elmo"].shape[:2] == (2, 0)


@pytest.mark.parametrize("model", MODELS)
def test_stateful_second_call_matches_efml_second_call(model):
    # EFML's encoder is always stateful; its second sents2elmo call on the
    # same Embedder is the reference for stateful=True (same batch again:
    # each row continues from its own final state).
    layer = ElmoLayer.from_elmoformanylangs(EFML / model, output_mode="dict", stateful=True)
    tokens = padded(SENTENCES)
    assert_matches_efml(all_layers(layer, tokens), model)
    second = all_layers(layer, tokens)
    refs = np.load(EFML / f"{model}_outputs_second_call.npz")
    for k, sentence in enumerate(SENTENCES):
        np.testing.assert_allclose(
            second[k, :, : len(sentence)], refs[f"s{k}"], atol=ATOL, rtol=0, err_msg=str(k)
        )


def test_warm_up_stores_the_mean_final_state():
    # One round of 8 streams = one stateful call on the 8 sentences, whose
    # carried state the test above checks against EFML's second call.
    stateful = ElmoLayer.from_elmoformanylangs(EFML / "model_zip", stateful=True)
    stateful(padded(SENTENCES))
    warmed = ElmoLayer.from_elmoformanylangs(EFML / "model_zip").warm_up(SENTENCES, n_streams=8)
    n = len(SENTENCES)
    for carried, stored in (
        (stateful.bilm.state_c, warmed.bilm.initial_c),
        (stateful.bilm.state_h, warmed.bilm.initial_h),
    ):
        mean = carried.numpy()[:, :, :n].mean(axis=2)
        assert_same_up_to_path(stored.numpy(), mean)


def test_every_efml_language_is_a_preset():
    from keras_elmo.checkpoints import preset_catalog, presets

    for code, (language, _) in preset_catalog.LANGUAGES.items():
        preset = presets.get_preset(f"elmo-efml-{code}")
        assert preset.format == "efml" and language in preset.description
        assert [d.urls for d in preset.downloads] == [preset_catalog.language_urls(code)]
        assert preset.downloads[0].extract


def test_an_efml_preset_downloads_unpacks_and_loads(download_cache, monkeypatch):
    import io
    import zipfile

    from support.http_server import serve

    from keras_elmo.checkpoints import download, efml, presets

    # The zip holds the model in a subdirectory, as an unpacked archive may.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((EFML / "model_zip").iterdir()):
            archive.writestr(f"xx.model/{path.name}", path.read_bytes())
    data = buffer.getvalue()
    with serve({"/170.zip": data}) as server:
        preset = presets.efml_preset("xx", "Testish", server.url("/170.zip"))
        monkeypatch.setitem(presets.PRESETS, preset.name, preset)
        layer = ElmoLayer.from_preset("elmo-efml-xx", progress=False, output_mode="dict")
    assert_matches_efml(all_layers(layer, padded(SENTENCES)), "model_zip")
    monkeypatch.setenv(download.OFFLINE_ENV, "1")
    again = ElmoLayer.from_preset("elmo-efml-xx", output_mode="dict")
    assert_matches_efml(all_layers(again, padded(SENTENCES)), "model_zip")
    assert efml.is_model_dir(download_cache / "presets" / "elmo-efml-xx" / "model" / "xx.model")

"""ElmoLayer against the bilm-tf fixture and an independent numpy ELMo."""

import json

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from numpy_reference import NumpyElmo
from support.bilm_fixture import allclose, fixture_layer, load_fixture
from support.processes import run_python_json
from support.tolerance import assert_same_up_to_path

from keras_elmo import ElmoLayer, batch_to_ids, published_options
from keras_elmo.errors import InputError
from keras_elmo.layers import lstm as lstm_lib

SENTENCES = [
    "The quick brown fox jumped over the lazy dog .".split(),
    "Café naïve 日本語 🙂 !".split(),
    "Short".split(),
    (
        "A much longer sentence that has quite a lot of words in it , more than the "
        "others , to make the padding matter ."
    ).split(),
]


@pytest.fixture
def random_model(tiny_options, tmp_path):
    """A tiny random model written in the original format, and its numpy twin."""

    def make(skip=True, activation="relu"):
        options = dict(tiny_options)
        options["lstm"] = dict(options["lstm"], use_skip_connections=skip)
        options["char_cnn"] = dict(options["char_cnn"], activation=activation)
        layer = ElmoLayer(options, output_mode="dict")
        layer.build()
        rng = np.random.default_rng(1)
        for var in layer.weights:  # make biases and everything non-trivial
            var.assign(rng.normal(0, 0.5, var.shape).astype("float32"))
        layer.bilm.initial_c.assign(np.zeros(layer.bilm.initial_c.shape, "float32"))
        layer.bilm.initial_h.assign(np.zeros(layer.bilm.initial_h.shape, "float32"))
        opt, w = tmp_path / f"opt{skip}{activation}.json", tmp_path / f"w{skip}{activation}.hdf5"
        layer.save_original(opt, w)
        return opt, w, NumpyElmo(json.loads(opt.read_text()), w)

    return make


@pytest.fixture(params=["auto", "feature_major"])
def lstm_layout(request, monkeypatch):
    """Runs a test with the size-chosen LSTM layout (batch-major for the small
    test models) and again with every LSTM forced feature-major."""
    if request.param == "feature_major":
        monkeypatch.setattr(lstm_lib, "FEATURE_MAJOR_MIN_RECURRENT", 0)
    return request.param == "feature_major"


def test_fixture_reproduced_stateful(fixture_dir, lstm_layout):
    sentences, expected = load_fixture(fixture_dir)
    layer = fixture_layer(fixture_dir, stateful=True, output_mode="dict")
    assert all(lstm.feature_major == lstm_layout for lstm in layer.bilm.lstms)
    for i in range(10):
        batch = [sentences[k][i].split() for k in range(3)]
        top = layer(batch_to_ids(batch))["lstm_outputs2"].numpy()
        for k in range(3):
            got = top[k, : len(batch[k])]
            assert got.shape == expected[k][i].shape
            assert allclose(got, expected[k][i]), (i, k, np.abs(got - expected[k][i]).max())


def test_fixture_reproduced_in_small_chunks(fixture_dir, lstm_layout, monkeypatch):
    """The input side computed two positions at a time and every step cut into
    blocks of two rows (the fixture batch is three wide): the same numbers."""
    monkeypatch.setattr(lstm_lib, "CHUNK_ROWS", 2)
    sentences, expected = load_fixture(fixture_dir)
    layer = fixture_layer(fixture_dir, stateful=True, output_mode="dict")
    for i in range(10):
        batch = [sentences[k][i].split() for k in range(3)]
        top = layer(batch_to_ids(batch))["lstm_outputs2"].numpy()
        for k in range(3):
            got = top[k, : len(batch[k])]
            assert allclose(got, expected[k][i]), (i, k, np.abs(got - expected[k][i]).max())


def test_chunked_input_side_matches_numpy_and_gradients(random_model, monkeypatch):
    """Chunks of 3 positions over a batch of 4 sentences (blocks of 3 + 1 rows)
    against the numpy reference, and the same gradients as one chunk."""
    opt, w, ref = random_model()
    grads_whole = _gradients(ElmoLayer.from_original(opt, w, fine_tune="all"))
    monkeypatch.setattr(lstm_lib, "CHUNK_ROWS", 3)
    out = ElmoLayer.from_original(opt, w, output_mode="dict")(batch_to_ids(SENTENCES))
    for i, sentence in enumerate(SENTENCES):
        want, _ = ref.layers(sentence)
        for key, k in (("lstm_outputs1", 1), ("lstm_outputs2", 2)):
            assert_same_up_to_path(out[key][i, : len(sentence)], want[k], err_msg=key)
            assert (out[key].numpy()[i, len(sentence) :] == 0).all()
    grads = _gradients(ElmoLayer.from_original(opt, w, fine_tune="all"))
    for (path, g), f in zip(grads_whole.items(), grads.values()):
        g, f = tf.convert_to_tensor(g).numpy(), tf.convert_to_tensor(f).numpy()
        assert np.abs(g).sum() > 0, path
        np.testing.assert_allclose(f, g, rtol=1e-4, atol=1e-5 * np.abs(g).max(), err_msg=path)


def test_stateful_reset_starts_over(fixture_dir):
    sentences, expected = load_fixture(fixture_dir)
    layer = fixture_layer(fixture_dir, stateful=True, output_mode="dict")
    batch = [sentences[k][0].split() for k in range(3)]
    first = layer(batch_to_ids(batch))["lstm_outputs2"].numpy()
    second = layer(batch_to_ids(batch))["lstm_outputs2"].numpy()
    assert not allclose(first, second)  # the state carried over
    layer.reset_states()
    again = layer(batch_to_ids(batch))["lstm_outputs2"].numpy()
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_matches_numpy_reference(random_model, skip, activation, lstm_layout):
    opt, w, ref = random_model(skip=skip, activation=activation)
    layer = ElmoLayer.from_original(opt, w, output_mode="dict")
    assert all(lstm.feature_major == lstm_layout for lstm in layer.bilm.lstms)
    out = layer(batch_to_ids(SENTENCES))
    for i, sentence in enumerate(SENTENCES):
        want, _ = ref.layers(sentence)
        n = len(sentence)
        assert_same_up_to_path(out["word_emb"][i, :n], want[0, :, : want.shape[-1] // 2])
        assert_same_up_to_path(out["lstm_outputs1"][i, :n], want[1])
        assert_same_up_to_path(out["lstm_outputs2"][i, :n], want[2])
        # Default mix: equal softmax weights, gamma 1 -> the plain average.
        assert_same_up_to_path(out["elmo"][i, :n], want.mean(axis=0))
        assert_same_up_to_path(out["default"][i], want.mean(axis=0).mean(axis=0))
        for key in ("word_emb", "lstm_outputs1", "lstm_outputs2", "elmo"):
            assert (out[key].numpy()[i, n:] == 0).all()
    np.testing.assert_array_equal(out["sequence_len"], [len(s) for s in SENTENCES])


def test_an_empty_token_inside_a_row(random_model):
    opt, w, ref = random_model()
    layer = ElmoLayer.from_original(opt, w, output_mode="dict")
    sentence = ["a", "", "b"]
    # Char ids keep "" as a real token ([bow, eow], AllenNLP's batch_to_ids):
    # the numpy reference's numbers for the three tokens.
    out = layer(batch_to_ids([sentence]))
    want, _ = ref.layers(sentence)
    assert out["sequence_len"].numpy().tolist() == [3]
    assert_same_up_to_path(out["lstm_outputs1"][0], want[1])
    assert_same_up_to_path(out["lstm_outputs2"][0], want[2])
    # String tokens: "" is the padding, so one before a real token is refused,
    # naming the row and the position (eagerly an InputError) ...
    for tokens in (
        [["x"], sentence],
        tf.constant([["x", "", ""], sentence]),
        tf.ragged.constant([["x"], sentence]),
    ):
        with pytest.raises(InputError, match=r"row 1 has an empty string .* position 2"):
            layer(tokens)
    # ... in a graph an InvalidArgumentError with the same message.
    traced = tf.function(layer.__call__, input_signature=[tf.TensorSpec([None, None], tf.string)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="row 0 .* position 2"):
        traced(tf.constant([sentence]))
    # Trailing "" is padding: ["a", "b", ""] is the sentence ["a", "b"].
    want, _ = ref.layers(["a", "b"])
    for out in (layer([["a", "b", ""]]), traced(tf.constant([["a", "b", ""]]))):
        assert out["sequence_len"].numpy().tolist() == [2]
        assert_same_up_to_path(out["lstm_outputs2"][0, :2], want[2])
        assert (out["lstm_outputs2"].numpy()[0, 2] == 0).all()


def test_stateless_is_batch_invariant(fixture_dir):
    layer = fixture_layer(fixture_dir)
    batch = layer(batch_to_ids(SENTENCES)).numpy()
    for i, sentence in enumerate(SENTENCES):
        alone = layer(batch_to_ids([sentence])).numpy()[0]
        n = len(sentence)
        assert_same_up_to_path(batch[i, :n], alone[:n])
        # Extra padding columns change nothing either.
        padded = np.zeros((1, n + 7, 50), np.int32)
        padded[0, :n] = batch_to_ids([sentence])[0]
        assert_same_up_to_path(layer(padded).numpy()[0, :n], alone[:n])


def test_string_tokens_equal_char_ids_exactly(fixture_dir):
    layer = fixture_layer(fixture_dir)
    from_ids = layer(batch_to_ids(SENTENCES)).numpy()
    longest = max(map(len, SENTENCES))
    dense = [s + [""] * (longest - len(s)) for s in SENTENCES]
    np.testing.assert_array_equal(layer(tf.constant(dense)).numpy(), from_ids)
    np.testing.assert_array_equal(layer(tf.ragged.constant(SENTENCES)).numpy(), from_ids)
    raw = tf.constant([" ".join(s) for s in SENTENCES])
    np.testing.assert_array_equal(layer(raw).numpy(), from_ids)


def test_keras_mask_reaches_downstream_layers(fixture_dir):
    tokens = keras.Input(shape=(None,), dtype="string")
    vectors = fixture_layer(fixture_dir)(tokens)
    pooled = keras.layers.GlobalAveragePooling1D()(vectors)  # mask-aware mean
    model = keras.Model(tokens, [vectors, pooled])
    longest = max(map(len, SENTENCES))
    dense = np.array([s + [""] * (longest - len(s)) for s in SENTENCES], dtype=object)
    seq, mean = model(tf.constant(dense.astype(str)))
    for i, s in enumerate(SENTENCES):
        assert_same_up_to_path(mean[i], seq.numpy()[i, : len(s)].mean(axis=0))
    mask = fixture_layer(fixture_dir).compute_mask(tf.constant(dense.astype(str)))
    np.testing.assert_array_equal(mask.numpy(), dense != "")


@pytest.mark.parametrize("size", ["small", pytest.param("original", marks=pytest.mark.slow)])
def test_published_sizes_random_weights(size):
    layer = ElmoLayer(published_options(size), output_mode="dict")
    out = layer(batch_to_ids(SENTENCES[:3]))
    p = published_options(size)["lstm"]["projection_dim"]
    longest = max(len(s) for s in SENTENCES[:3])
    assert out["word_emb"].shape == (3, longest, p)
    for key in ("lstm_outputs1", "lstm_outputs2", "elmo"):
        assert out[key].shape == (3, longest, 2 * p)
        assert np.isfinite(out[key].numpy()).all()
    assert out["default"].shape == (3, 2 * p)
    lengths = [len(s) for s in SENTENCES[:3]]
    mask = layer.compute_mask(batch_to_ids(SENTENCES[:3]))["elmo"].numpy()
    np.testing.assert_array_equal(mask, np.arange(longest)[None, :] < np.array(lengths)[:, None])
    for i, n in enumerate(lengths):
        assert (out["elmo"].numpy()[i, n:] == 0).all() and (
            np.abs(out["elmo"].numpy()[i, :n]).sum(-1) > 0
        ).all()
    params = sum(
        int(np.prod(v.shape))
        for v in layer.trainable_weights + layer.non_trainable_weights
        if "initial_" not in v.path and "scalar_mix" not in v.path
    )
    # Published parameter counts of the biLM (AllenNLP model cards): 13.6M and 93.6M.
    expected = {"small": 13.6e6, "original": 93.6e6}[size]
    assert abs(params - expected) / expected < 0.01
    # The size rule for the LSTM weight layout: only the full size is feature-major.
    assert [lstm.feature_major for lstm in layer.bilm.lstms] == [size == "original"] * 2


def _gradients(layer):
    x = batch_to_ids(SENTENCES)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x)))
    return dict(
        zip([v.path for v in layer.trainable_weights], tape.gradient(loss, layer.trainable_weights))
    )


def test_gradients_reach_every_weight_when_fine_tuning_all(tiny_options, lstm_layout):
    layer = ElmoLayer(tiny_options, fine_tune="all", do_layer_norm=False)
    layer.build()
    assert all(lstm.feature_major == lstm_layout for lstm in layer.bilm.lstms)
    # Non-uniform mix weights so every layer's gradient is distinct.
    grads = _gradients(layer)
    n_expected = len(layer.weights) - 2  # everything but the stored initial state
    assert len(grads) == n_expected
    for path, g in grads.items():
        assert g is not None, path
        assert np.abs(tf.convert_to_tensor(g).numpy()).sum() > 0, path


def test_both_lstm_layouts_give_the_same_gradients(random_model, monkeypatch):
    """The feature-major layout stores each LSTM matrix transposed: same
    function, so the same loss and gradients (transposed for those weights)."""
    opt, w, _ = random_model()
    batch_major = ElmoLayer.from_original(opt, w, fine_tune="all")
    monkeypatch.setattr(lstm_lib, "FEATURE_MAJOR_MIN_RECURRENT", 0)
    feature_major = ElmoLayer.from_original(opt, w, fine_tune="all")
    assert not any(lstm.feature_major for lstm in batch_major.bilm.lstms)
    assert all(lstm.feature_major for lstm in feature_major.bilm.lstms)

    def by_name(grads):  # without the layer's own (uniquified) name
        return {path.split("/", 1)[1]: g for path, g in grads.items()}

    grads_b, grads_f = by_name(_gradients(batch_major)), by_name(_gradients(feature_major))
    assert grads_b.keys() == grads_f.keys()
    for path, g in grads_b.items():
        g, f = tf.convert_to_tensor(g).numpy(), tf.convert_to_tensor(grads_f[path]).numpy()
        if path.split("/")[-1] in ("kernel", "recurrent_kernel", "projection"):
            f = np.swapaxes(f, 1, 2)
        assert np.abs(g).sum() > 0, path
        np.testing.assert_allclose(f, g, rtol=1e-4, atol=1e-5 * np.abs(g).max(), err_msg=path)


def test_only_mix_weights_train_by_default(tiny_options):
    layer = ElmoLayer(tiny_options)
    layer.build()
    grads = _gradients(layer)
    assert sorted(p.split("/")[-1] for p in grads) == ["gamma", "scalar_weights"]
    assert all(g is not None for g in grads.values())


def test_top_fine_tuning_trains_top_lstm_and_mix(tiny_options):
    layer = ElmoLayer(tiny_options, fine_tune="top")
    layer.build()
    grads = _gradients(layer)
    lstm_paths = [p for p in grads if "lstm_" in p]
    assert lstm_paths and all("lstm_1" in p for p in lstm_paths)
    assert not any("token_encoder" in p for p in grads)


def test_l2_penalty_and_multiple_mixes(tiny_options):
    layer = ElmoLayer(tiny_options, num_output_representations=2, l2_coef=0.1)
    layer.build()
    layer.mixes[0].scalar_weights.assign([1.0, 2.0, 3.0])
    outs = layer(batch_to_ids(SENTENCES))
    assert isinstance(outs, list) and len(outs) == 2
    assert not np.allclose(outs[0], outs[1])  # independent mixes
    np.testing.assert_allclose(sum(float(v) for v in layer.losses), 0.1 * (1 + 4 + 9), rtol=1e-6)


def test_dropout_only_in_training(tiny_options):
    layer = ElmoLayer(tiny_options, dropout=0.5)
    x = batch_to_ids(SENTENCES)
    np.testing.assert_array_equal(layer(x), layer(x, training=False))
    assert not np.allclose(layer(x, training=True), layer(x))


def test_original_format_round_trip_is_exact(fixture_dir, tmp_path, lstm_layout):
    layer = fixture_layer(fixture_dir)
    layer.save_original(tmp_path / "o.json", tmp_path / "w.hdf5")
    with (
        h5py.File(fixture_dir / "lm_weights.hdf5", "r") as a,
        h5py.File(tmp_path / "w.hdf5", "r") as b,
    ):
        names = []
        a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert names
        for name in names:
            np.testing.assert_array_equal(a[name][...], b[name][...], err_msg=name)
    again = ElmoLayer.from_original(tmp_path / "o.json", tmp_path / "w.hdf5")
    x = batch_to_ids(SENTENCES)
    np.testing.assert_array_equal(layer(x), again(x))


@pytest.mark.slow
def test_keras_file_round_trip_in_fresh_process(fixture_dir, tmp_path):
    layer = fixture_layer(fixture_dir, num_output_representations=1, l2_coef=0.01)
    layer.build()
    layer.mixes[0].scalar_weights.assign([0.3, -0.2, 0.5])
    layer.warm_up(SENTENCES, n_streams=2)
    tokens = keras.Input(shape=(None,), dtype="string")
    model = keras.Model(tokens, keras.layers.Dense(3)(layer(tokens)))
    longest = max(map(len, SENTENCES))
    dense = [s + [""] * (longest - len(s)) for s in SENTENCES]
    np.save(tmp_path / "want.npy", model(tf.constant(dense)).numpy())
    json.dump(dense, open(tmp_path / "in.json", "w"))
    model.save(tmp_path / "m.keras")
    code = f"""
import json, numpy as np, keras, tensorflow as tf
import keras_elmo  # registers the layers; no custom_objects needed
m = keras.saving.load_model({str(tmp_path / "m.keras")!r})
got = m(tf.constant(json.load(open({str(tmp_path / "in.json")!r})))).numpy()
print(json.dumps(got.tolist()))
"""
    got = np.array(run_python_json(["-c", code]), dtype="float32")
    # Another process may pick other kernels (oneDNN, thread split; on a GPU
    # other cuDNN algorithms): the path tolerance, not bitwise.
    assert_same_up_to_path(got, np.load(tmp_path / "want.npy"))


def test_config_round_trip(tiny_options):
    layer = ElmoLayer(
        tiny_options,
        num_output_representations=2,
        do_layer_norm=True,
        dropout=0.1,
        fine_tune="top",
        output_mode="dict",
        stateful=True,
        max_batch_size=7,
        matmul_dtype="bfloat16",
    )
    clone = ElmoLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_warm_start_is_deterministic_and_used(fixture_dir):
    sentences, _ = load_fixture(fixture_dir)
    text = [s.split() for s in sentences[0]]
    cold = fixture_layer(fixture_dir)
    warm = fixture_layer(fixture_dir).warm_up(text, n_streams=2)
    warm2 = fixture_layer(fixture_dir).warm_up(text, n_streams=2)
    x = batch_to_ids(SENTENCES)
    np.testing.assert_array_equal(warm(x), warm2(x))
    assert not allclose(warm(x), cold(x))
    # Still batch-invariant: the warm state is the same for every sentence.
    alone = warm(batch_to_ids(SENTENCES[:1])).numpy()[0]
    assert_same_up_to_path(warm(x).numpy()[0, : len(SENTENCES[0])], alone)


def test_layer_norm_mix_matches_numpy(tiny_options):
    layer = ElmoLayer(tiny_options, do_layer_norm=True, output_mode="dict")
    layer.build()
    out = layer(batch_to_ids(SENTENCES))
    lengths = [len(s) for s in SENTENCES]
    keys = ["word_emb", "lstm_outputs1", "lstm_outputs2"]
    want = 0
    for key in keys:
        a = out[key].numpy()
        if key == "word_emb":
            a = np.concatenate([a, a], -1)
        real = np.concatenate([a[i, :n] for i, n in enumerate(lengths)])
        normed = (a - real.mean()) / np.sqrt(real.var() + 1e-12)
        want = want + normed / 3
    for i, n in enumerate(lengths):
        assert_same_up_to_path(out["elmo"][i, :n], want[i, :n])


def test_bad_arguments_are_clear(tiny_options):
    with pytest.raises(ValueError, match="fine_tune"):
        ElmoLayer(tiny_options, fine_tune="some")
    with pytest.raises(ValueError, match="num_output_representations"):
        ElmoLayer(tiny_options, num_output_representations=0)
    with pytest.raises(ValueError, match="matmul_dtype must be one of"):
        ElmoLayer(tiny_options, matmul_dtype="int8")
    bad = dict(tiny_options, char_cnn=dict(tiny_options["char_cnn"], activation="gelu"))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        ElmoLayer(bad)
    layer = ElmoLayer(tiny_options)
    with pytest.raises(ValueError, match=r"shape \(batch, T, 50\)"):
        layer(np.zeros((2, 3, 49), np.int32))
    with pytest.raises(ValueError, match="int char ids or strings"):
        layer(np.zeros((2, 3, 50), np.float32))


def test_bad_weight_files_are_clear(fixture_dir, tmp_path):
    src = fixture_dir / "lm_weights.hdf5"
    missing, wrong = tmp_path / "missing.hdf5", tmp_path / "wrong.hdf5"
    for path in (missing, wrong):
        with h5py.File(src, "r") as a, h5py.File(path, "w") as b:
            for key in a:
                a.copy(key, b)
    with h5py.File(missing, "a") as f:
        del f["CNN_high_1/W_carry"]
    with h5py.File(wrong, "a") as f:
        del f["CNN_proj/b_proj"]
        f["CNN_proj/b_proj"] = np.zeros((17,), np.float32)
    opt = fixture_dir / "options.json"
    with pytest.raises(ValueError, match="no dataset 'CNN_high_1/W_carry'"):
        ElmoLayer.from_original(opt, missing)
    with pytest.raises(ValueError, match=r"'CNN_proj/b_proj' has shape \(17,\).*\(16,\)"):
        ElmoLayer.from_original(opt, wrong)
    options = json.loads(opt.read_text())
    options["char_cnn"]["activation"] = "swish"
    (tmp_path / "bad.json").write_text(json.dumps(options))
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        ElmoLayer.from_original(tmp_path / "bad.json", src)
    with pytest.raises(FileNotFoundError, match="weight file not found"):
        ElmoLayer.from_original(opt, tmp_path / "nope.hdf5")


# The optional lower-precision path rounds the operands of the model's matmuls
# and convolutions (8 significant bits for bfloat16, 11 for float16; products
# accumulate in float32) and keeps sums, gates, state and clipping in float32.
# Against the numpy float32 reference the error is a few roundings of each
# product, compounded over the layers and the sequence: bounded here by 2**-5
# (bfloat16) and 2**-8 (float16) relative, and above 2**-16, which float32
# stays far below (so the test fails if a part silently computed in float32).
# Both LSTM weight layouts: the batch-major step reads a feature-major layer's
# W^T through transpose_b, a different code path.
@pytest.mark.parametrize("layout", ["batch", "feature"])
@pytest.mark.parametrize("dtype, bound", [("bfloat16", 2.0**-5), ("float16", 2.0**-8)])
def test_lower_precision_matmuls(random_model, monkeypatch, dtype, bound, layout):
    opt, w, ref = random_model()
    monkeypatch.setattr(
        lstm_lib, "FEATURE_MAJOR_MIN_RECURRENT", 0 if layout == "feature" else 2**62
    )
    layer = ElmoLayer.from_original(opt, w, output_mode="dict", matmul_dtype=dtype)
    assert all(lstm.feature_major == (layout == "feature") for lstm in layer.bilm.lstms)
    assert layer.get_config()["matmul_dtype"] == dtype
    assert all(v.dtype == "float32" for v in layer.weights)
    out = layer(batch_to_ids(SENTENCES))
    for key, k in (("word_emb", 0), ("lstm_outputs1", 1), ("lstm_outputs2", 2)):
        assert out[key].dtype == tf.float32
        got = np.concatenate([out[key][i, : len(s)] for i, s in enumerate(SENTENCES)])
        want = np.concatenate([ref.layers(s)[0][k][:, : got.shape[-1]] for s in SENTENCES])
        rel = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert 2.0**-16 < rel < bound, (key, rel)


def test_old_matmul_dtype_name_still_loads(tiny_options):
    config = ElmoLayer(tiny_options).get_config()
    del config["matmul_dtype"]
    config["lstm_matmul_dtype"] = "bfloat16"  # as 0.2 saved it
    layer = ElmoLayer.from_config(config)
    assert layer.matmul_dtype == "bfloat16"
    assert layer.token_encoder.matmul_dtype == "bfloat16"
    assert all(lstm.matmul_dtype == "bfloat16" for lstm in layer.bilm.lstms)
    with pytest.raises(ValueError, match="contradicts matmul_dtype"):
        ElmoLayer(tiny_options, matmul_dtype="float16", lstm_matmul_dtype="bfloat16")

"""Fine-tuning ElmoLayer on the JAX and PyTorch backends (issue 24, item 4).

Each backend runs in a fresh interpreter with KERAS_BACKEND set (one Python
process cannot switch Keras backends), on the shipped small model
(saved_models/elmo-small-en); the task is a toy tagger
(is a token capitalized?) that a linear head on ELMo vectors learns in a
few steps.

- PyTorch: the layer inside a plain `torch.nn.Module`, trained by an
  ordinary `torch.optim.Adam` loop over `module.parameters()`: the loss goes
  down, the scalar mix moves in every mode, and the biLM moves only where
  `fine_tune` lets it (`"top"`: the top LSTM layer; `"all"`: the char CNN
  and every LSTM layer).
- JAX: `model.fit(..., jit_compile=True)` on sentences of many lengths,
  sent as text through tf.data + the layer's `ElmoPreprocessor`, which pads
  them to two lengths (`sequence_length=[8, 16]`): the train step is traced a
  bounded number of times (a Python counter in a layer of the model runs
  once per trace), the loss goes down, and the biLM stays where it was.
"""

import os
import textwrap

import pytest
from support.paths import REPO
from support.processes import run_python_json

pytestmark = pytest.mark.slow

# Sentences of 12 distinct lengths (3..14 tokens), with a capitalized-token label.
SENTENCES = textwrap.dedent("""
    WORDS = ("The cat sat on the Mat near Paris while John read a Book in London . "
             "Every morning Mary walks her dog to the Old Bridge and back home again .").split()
    SENTENCES = [WORDS[i : i + n] for i, n in enumerate(range(3, 15))]
    SENTENCES += [WORDS[i + 5 : i + 5 + n] for i, n in enumerate(range(3, 15))]

    def labels(sentence):
        return [int(token[:1].isupper()) for token in sentence]
""")

TORCH_SCRIPT = SENTENCES + textwrap.dedent("""
    import json
    import keras
    import numpy as np
    import torch
    import keras_elmo

    torch.manual_seed(0)
    keras.utils.set_random_seed(0)
    ids = torch.from_numpy(keras_elmo.batch_to_ids(SENTENCES, 50).astype("int32"))
    mask = (ids > 0).any(-1)
    target = torch.zeros(mask.shape, dtype=torch.long)
    for row, sentence in enumerate(SENTENCES):
        target[row, : len(sentence)] = torch.tensor(labels(sentence))


    class Tagger(torch.nn.Module):
        def __init__(self, fine_tune):
            super().__init__()
            self.elmo = keras_elmo.ElmoLayer.from_preset("elmo-small-en", fine_tune=fine_tune)
            self.head = torch.nn.Linear(2 * self.elmo.projection_dim, 2)

        def forward(self, char_ids):
            return self.head(self.elmo(char_ids))


    def snapshot(elmo):
        parts = {
            "mix": elmo.mixes[0],
            "char_cnn": elmo.token_encoder,
            "lstm_bottom": elmo.bilm.lstms[0],
            "lstm_top": elmo.bilm.lstms[-1],
        }
        return {
            name: [keras.ops.convert_to_numpy(v.value).copy() for v in part.weights]
            for name, part in parts.items()
        }


    out = {"backend": keras.config.backend()}
    for fine_tune in ("mix", "top", "all"):
        model = Tagger(fine_tune)
        model(ids[:1])  # builds the layer
        elmo_params = {id(v.value) for v in model.elmo.weights}
        params = list(model.parameters())
        before = snapshot(model.elmo)
        optimizer = torch.optim.Adam(params, lr=0.02)
        losses = []
        for step in range(6):
            optimizer.zero_grad()
            logits = model(ids)
            loss = torch.nn.functional.cross_entropy(logits[mask], target[mask])
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
        after = snapshot(model.elmo)
        out[fine_tune] = {
            "losses": losses,
            "elmo_params_in_module": sum(id(p) in elmo_params for p in params),
            "elmo_weights": len(elmo_params),
            "moved": {
                name: max(float(np.abs(a - b).max()) for a, b in zip(after[name], before[name]))
                for name in before
            },
        }
    print(json.dumps(out))
""")

JAX_SCRIPT = SENTENCES + textwrap.dedent("""
    import json
    import keras
    import numpy as np
    import tensorflow as tf
    import keras_elmo

    keras.utils.set_random_seed(0)
    traces = []


    class CountTraces(keras.layers.Layer):
        # Its call runs in Python once per trace of the model, never per jitted step.
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, x):
            traces.append(x.shape[1])  # None while Keras builds the model
            return x


    elmo = keras_elmo.ElmoLayer.from_preset("elmo-small-en", fine_tune="mix")
    # Text reaches the model through tf.data + the preprocessor, which pads
    # the time axis to 8 or 16: two shapes for 12 sentence lengths.
    preprocessor = elmo.preprocessor(sequence_length=[8, 16])


    def prepare(text, y):
        ids = preprocessor(text)
        shape = tf.shape(ids)[:2]
        weights = tf.ones_like(y, tf.float32).to_tensor(shape=shape)
        return ids, y.to_tensor(shape=shape), weights


    texts = [" ".join(sentence) for sentence in SENTENCES]
    targets = tf.ragged.constant([labels(sentence) for sentence in SENTENCES], dtype=tf.int32)
    # Batches of 2 in length order: 6 different longest sentences (4, 6, ... 14).
    data = tf.data.Dataset.from_tensor_slices((texts, targets)).ragged_batch(2)
    data = data.map(prepare).cache()

    char_ids = keras.Input((None, 50), dtype="int32")
    logits = keras.layers.Dense(2)(CountTraces()(elmo(char_ids)))
    model = keras.Model(char_ids, logits)
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
        jit_compile=True,
    )
    frozen = [keras.ops.convert_to_numpy(v.value).copy() for v in elmo.bilm.weights]
    mix = [keras.ops.convert_to_numpy(v.value).copy() for v in elmo.mixes[0].weights]
    traces.clear()
    history = model.fit(data, epochs=5, verbose=0)
    print(json.dumps({
        "backend": keras.config.backend(),
        "jit_compile": bool(model.jit_compile),
        "losses": history.history["loss"],
        "traced_lengths": traces,
        "batch_lengths": sorted({int(x.shape[1]) for x, _, _ in data}),
        "batch_longest": sorted({int(tf.reduce_max(tf.reduce_sum(w, 1))) for _, _, w in data}),
        "sentence_lengths": len({len(s) for s in SENTENCES}),
        "steps": 5 * sum(1 for _ in data),
        "bilm_moved": max(
            float(np.abs(keras.ops.convert_to_numpy(v.value) - b).max())
            for v, b in zip(elmo.bilm.weights, frozen)
        ),
        "mix_moved": max(
            float(np.abs(keras.ops.convert_to_numpy(v.value) - b).max())
            for v, b in zip(elmo.mixes[0].weights, mix)
        ),
    }))
""")


def _run(script, backend):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    return run_python_json(["-c", script], timeout=900, env=env, cwd=REPO)


def test_torch_module_trains_with_torch_optim():
    out = _run(TORCH_SCRIPT, "torch")
    assert out["backend"] == "torch"
    for fine_tune in ("mix", "top", "all"):
        run = out[fine_tune]
        # The keras layer is a torch module: its weights are the module's parameters.
        assert run["elmo_params_in_module"] == run["elmo_weights"] > 0, (fine_tune, run)
        assert run["losses"][-1] < 0.8 * run["losses"][0], (fine_tune, run["losses"])
        assert run["moved"]["mix"] > 1e-3, (fine_tune, run["moved"])
    # The biLM moves only where fine_tune lets it; a frozen part stays bit-exact.
    assert out["mix"]["moved"]["char_cnn"] == 0.0
    assert out["mix"]["moved"]["lstm_bottom"] == out["mix"]["moved"]["lstm_top"] == 0.0
    assert out["top"]["moved"]["char_cnn"] == out["top"]["moved"]["lstm_bottom"] == 0.0
    assert out["top"]["moved"]["lstm_top"] > 1e-4
    for part in ("char_cnn", "lstm_bottom", "lstm_top"):
        assert out["all"]["moved"][part] > 1e-4, out["all"]["moved"]


def test_jax_fit_jit_compiles_once_per_bucket_and_learns():
    out = _run(JAX_SCRIPT, "jax")
    assert out["backend"] == "jax"
    assert out["jit_compile"] is True
    assert out["batch_lengths"] == [8, 16], out["batch_lengths"]
    # One trace per padded length (+1: Keras traces the first shape once more
    # when it builds the optimizer state), not one per sentence length or step.
    assert set(out["traced_lengths"]) <= {8, 16}, out["traced_lengths"]
    assert len(out["traced_lengths"]) <= len(out["batch_lengths"]) + 1, out["traced_lengths"]
    # Unpadded, the 6 different longest sentences of the batches would be 6 shapes.
    assert out["batch_longest"] == [4, 6, 8, 10, 12, 14], out["batch_longest"]
    assert out["sentence_lengths"] == 12 and out["steps"] == 60
    assert out["losses"][-1] < 0.8 * out["losses"][0], out["losses"]
    assert out["mix_moved"] > 1e-3
    assert out["bilm_moved"] == 0.0

"""The ELMoForManyLangs fixtures (tests/fixtures/efml) and what EFML computed for them."""

import json
import pathlib

import numpy as np
import tensorflow as tf

from keras_elmo.jobs.output import embed_all_layers

EFML = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "efml"
MODELS = ["model_legacy", "model_zip"]
SENTENCES = json.loads((EFML / "sentences.json").read_text(encoding="utf-8"))
ATOL = 1e-5


def padded(sentences):
    longest = max(len(s) for s in sentences)
    return tf.constant([s + [""] * (longest - len(s)) for s in sentences])


def expected(model):
    outputs = np.load(EFML / f"{model}_outputs.npz")
    return [outputs[f"s{k}"] for k in range(len(SENTENCES))]


def all_layers(layer, tokens):
    """(batch, n_layers + 1, T, 2P) numpy, EFML's output_layer=-2 layout."""
    return embed_all_layers(layer(tokens), layer.n_lstm_layers).numpy()

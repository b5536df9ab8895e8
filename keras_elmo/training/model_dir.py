"""A trained biLM's directory: write it, read it back, turn it into an `ElmoLayer`.

Files: `options.json` + `weights.hdf5` (the published format), `softmax.npz`
(the LM softmax, needed for perplexity only), `vocab.txt`, `elmo.keras` and
`training_log.json`.
"""

import json
import os

import keras
import numpy as np

from keras_elmo.errors import InputError, MissingFileError
from keras_elmo.layers import elmo_layer
from keras_elmo.layers.elmo_layer import ElmoLayer
from keras_elmo.training import data as data_lib
from keras_elmo.training.trainer import BiLMTrainer

SOFTMAX_FILE = "softmax.npz"
TRAINING_LOG_FILE = "training_log.json"


def copy_bilm_weights(source, target):
    """The token encoder's and biLM's weights from `source` to `target` (each an
    `ElmoLayer` or a `BiLMTrainer`), every shape checked."""
    elmo_layer.assign_pairs(elmo_layer.model_weight_pairs(source, target), "copy_bilm_weights")


def to_elmo_layer(model, **kwargs):
    """An `ElmoLayer` holding copies of the trained encoder and biLM weights.

    (From one `ElmoLayer` to another, `ElmoLayer.clone` copies the mixes,
    lexicons and token cache as well.)
    """
    layer = ElmoLayer(model.options, **kwargs)
    layer.build()
    copy_bilm_weights(model, layer)
    if layer.stateful:
        layer.reset_states()
    return layer


def export_model(model, output_dir, vocab=None, keras_file=True, extra_log=None):
    """Write the trained model to `output_dir`.

    Files: `options.json` + `weights.hdf5` (original format, readable by
    bilm-tf / AllenNLP / `ElmoLayer.from_original`), `softmax.npz` (the LM
    softmax W, b: not part of the published format, needed for perplexity),
    `vocab.txt` when `vocab` is given, `elmo.keras` (a Keras model wrapping the
    `ElmoLayer`, char-id input) and `training_log.json` when `extra_log` is given.
    """
    os.makedirs(output_dir, exist_ok=True)
    layer = to_elmo_layer(model)
    layer.save_original(
        os.path.join(output_dir, "options.json"), os.path.join(output_dir, "weights.hdf5")
    )
    np.savez(
        os.path.join(output_dir, SOFTMAX_FILE), w=model.softmax.w.numpy(), b=model.softmax.b.numpy()
    )
    if vocab is not None:
        data_lib.write_vocab(vocab, os.path.join(output_dir, "vocab.txt"))
    if keras_file:
        inputs = keras.Input((None, model.max_chars), dtype="int32", name="char_ids")
        wrapper = keras.Model(inputs, layer(inputs), name="elmo")
        wrapper.save(os.path.join(output_dir, "elmo.keras"))
    if extra_log is not None:
        with open(os.path.join(output_dir, TRAINING_LOG_FILE), "w", encoding="utf-8") as f:
            json.dump(extra_log, f, indent=1)
    return output_dir


def load_trained(model_dir, n_negative=0):
    """Rebuild a `BiLMTrainer` from an exported directory (options, weights, softmax)."""
    options_file = os.path.join(model_dir, "options.json")
    weight_file = os.path.join(model_dir, "weights.hdf5")
    softmax_file = os.path.join(model_dir, SOFTMAX_FILE)
    if not os.path.isfile(softmax_file):
        raise MissingFileError(
            f"{softmax_file} not found: perplexity needs the LM softmax, which `keras-elmo train` "
            "writes next to weights.hdf5 (it is not part of the published format)."
        )
    layer = ElmoLayer.from_original(options_file, weight_file)
    soft = np.load(softmax_file)
    model = BiLMTrainer(layer.options, int(soft["w"].shape[0]), n_negative=n_negative, dropout=0.0)
    copy_bilm_weights(layer, model)
    model.softmax.set_weights([soft["w"], soft["b"]])
    return model


def perplexity_of_files(model_dir, files, vocab_file=None, batch_size=16, max_len=50):
    """{file: full-softmax perplexities} of a trained model directory on text files."""
    from keras_elmo.training.trainer import perplexity

    vocab = data_lib.load_vocab(vocab_file or os.path.join(model_dir, "vocab.txt"))
    model = load_trained(model_dir)
    if model.vocab_size != len(vocab):
        raise InputError(
            f"the softmax has {model.vocab_size} rows but the vocabulary has {len(vocab)} entries."
        )
    return {
        path: perplexity(model, data_lib.make_dataset(path, vocab, batch_size, max_len=max_len))
        for path in files
    }

"""keras_elmo's Keras objects and their registration with Keras's serialization.

`keras.models.load_model` finds a custom class by its registered name
("keras_elmo>ElmoLayer"); a class is registered when the module defining it
is imported. `register_keras_objects()` imports every such module, so a
`.keras` file holding any keras_elmo object (an `ElmoTokenizer` before an
`ElmoLayer`, a trained `BiLMTrainer`) loads. `import keras_elmo` calls it;
so does every command-line path that loads a `.keras` file (the
`keras-elmo` command skips it at start-up, to answer `--help` without
TensorFlow).

This module imports nothing heavy itself.
"""

import importlib

# Every module that registers a Keras object (tests/test_registration.py
# checks this list against the source: a new registered class in another
# module fails that test until it is listed here).
KERAS_MODULES = (
    "keras_elmo.layers.bilm",
    "keras_elmo.layers.efml_token_encoder",
    "keras_elmo.layers.elmo_layer",
    "keras_elmo.layers.lstm",
    "keras_elmo.layers.preprocessor",
    "keras_elmo.layers.scalar_mix",
    "keras_elmo.layers.token_cache",
    "keras_elmo.layers.token_encoder",
    "keras_elmo.text.tokenizer",
    "keras_elmo.training.trainer",
)


def register_keras_objects():
    """Imports every module that defines a keras_elmo Keras object (registering it)."""
    for name in KERAS_MODULES:
        importlib.import_module(name)

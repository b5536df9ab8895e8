"""keras_elmo: ELMo contextual word vectors as a Keras 3 layer.

The public API is the names in `__all__`. Importing the package registers
its Keras layers, so `keras.models.load_model` reads `.keras` files that
hold them. Inside the `keras-elmo` command line the layers are imported on
first use instead (PEP 562), so that `--help` answers without TensorFlow.
"""

import importlib
import os
import sys

from keras_elmo.version import __version__

# public name -> the module that defines it
_PUBLIC = {
    "ElmoLayer": "keras_elmo.layers.elmo_layer",
    "ElmoTokenizer": "keras_elmo.text.tokenizer",
    "ScalarMix": "keras_elmo.layers.scalar_mix",
    "batch_to_ids": "keras_elmo.text.characters",
    "tokens_to_char_ids": "keras_elmo.text.characters",
    "load_options": "keras_elmo.options",
    "published_options": "keras_elmo.options",
    "export_saved_model": "keras_elmo.serving.export",
    "list_presets": "keras_elmo.checkpoints.presets",
    "ElmoError": "keras_elmo.errors",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_elmo' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))


def _in_command_line():
    """True in the command line (its commands import what they use).

    That is the `keras-elmo` console script, or `python -m keras_elmo.cli`:
    while `-m` imports the package to find the module it runs,
    `sys.argv[0]` is "-m".
    """
    program = sys.argv[0] if sys.argv else ""
    return program == "-m" or os.path.basename(program) in ("keras-elmo", "keras-elmo.exe")


if not _in_command_line():
    # Registers every keras_elmo Keras object with Keras's serialization.
    for _name in ("ElmoLayer", "ElmoTokenizer"):
        __getattr__(_name)

"""keras_elmo: ELMo contextual word vectors as a Keras 3 layer.

The public API is the names in `__all__`; import them from here. Also
stable: `keras_elmo.errors`, the Beam job (`keras_elmo.integrations.beam`'s
`embed_corpus`, `read_embeddings`, ...), the `keras-elmo` commands and
flags, and the file formats; the other modules are internal (docs/api.md
says which is which).

Importing the package registers its Keras layers, so
`keras.models.load_model` reads `.keras` files that hold them, in every
program however it was started. Inside the
`keras-elmo` command itself the layers are imported on first use instead
(PEP 562), so that `--help` answers without TensorFlow; each of its
commands that loads a `.keras` file registers them itself
(`keras_elmo.registration`).
"""

import importlib
import os
import sys

from keras_elmo.version import __version__

# public name -> the module that defines it
_PUBLIC = {
    "ElmoLayer": "keras_elmo.layers.elmo_layer",
    "ElmoPreprocessor": "keras_elmo.layers.preprocessor",
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


# How a program names the `keras-elmo` command when Python runs it:
# the console script, or `python -m` with one of these modules.
_COMMAND_SCRIPTS = ("keras-elmo", "keras-elmo.exe", "keras-elmo-script.py")
_COMMAND_MODULES = ("keras_elmo", "keras_elmo.cli")


def _started_as_command_line():
    """True when this process is the `keras-elmo` command (which imports what it uses).

    That is the console script (`sys.argv[0]` is `keras-elmo`) or exactly
    `python -m keras_elmo.cli` / `python -m keras_elmo`, read from the
    interpreter's own command line (`sys.orig_argv`). Not `sys.argv[0] ==
    "-m"`: that holds while Python imports the parent package of any module
    run with `-m` (`python -m myapp.predict`), where the layers must be
    registered.
    """
    program = sys.argv[0] if sys.argv else ""
    if os.path.basename(program) in _COMMAND_SCRIPTS:
        return True
    args = iter(getattr(sys, "orig_argv", [])[1:])
    for arg in args:
        if arg == "-m":
            return next(args, None) in _COMMAND_MODULES
        if arg.startswith("-m"):
            return arg[2:] in _COMMAND_MODULES
        if arg in ("-X", "-W"):  # options with a separate value
            next(args, None)
        elif arg == "-" or arg == "-c" or not arg.startswith("-"):
            return False  # a script, `-c` or stdin: not the command line
    return False


if not _started_as_command_line():
    # Registers every keras_elmo Keras object with Keras's serialization.
    from keras_elmo import registration as _registration

    _registration.register_keras_objects()

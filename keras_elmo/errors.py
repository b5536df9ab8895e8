"""The errors keras_elmo raises about what a user gave it.

`ElmoError` marks an expected problem with the user's input (a file, a
line, an option value), not a bug: the command line prints such an error
as one line and exits with status 2, and lets every other exception keep
its traceback. The concrete classes also derive from the built-in type a
Python caller would catch (`ValueError`, `FileNotFoundError`).
"""


class ElmoError(Exception):
    """Base class of the errors about what a user gave keras_elmo.

    An `ElmoError` is an expected problem with the user's input (a file, a
    line, an option value), not a bug; catch it to tell the two apart. The
    concrete errors also derive from the built-in type a Python caller would
    catch anyway: `InputError` is a `ValueError` (a file, line, token or
    option value that cannot be used as given), `MissingFileError` a
    `FileNotFoundError`. The `keras-elmo` command prints an `ElmoError` as
    one line and exits with status 2; any other exception keeps its
    traceback.

    Errors raised inside a TensorFlow graph (an over-limit request, invalid
    UTF-8 in a string tensor) are `tf.errors.InvalidArgumentError` instead.

    Example:

    >>> import keras_elmo
    >>> try:
    ...     keras_elmo.published_options("huge")
    ... except keras_elmo.ElmoError as err:
    ...     print(type(err).__name__, isinstance(err, ValueError))
    ...     print(err)
    InputError True
    Unknown published size 'huge'; choose one of ['medium', 'original', 'small'].
    """


class InputError(ElmoError, ValueError):
    """A file, line, token or option value that cannot be used as given."""


class MissingFileError(ElmoError, FileNotFoundError):
    """A file or directory the user named does not exist."""


class BackendError(ElmoError, RuntimeError):
    """A TensorFlow-only feature asked for while Keras runs on another backend.

    SavedModel export, `beam-embed`, biLM training and the `tf_text`
    tokenizer are TensorFlow programs; on JAX or PyTorch they raise this,
    naming the backend and what to do instead, before any work starts.
    """


def keras_backend():
    """The name of the Keras backend this process runs ("tensorflow", "jax", "torch", ...)."""
    import keras

    return keras.config.backend()


def require_tensorflow(feature, instead=None):
    """Raise `BackendError` unless Keras runs on TensorFlow; `instead`: what else to do."""
    backend = keras_backend()
    if backend != "tensorflow":
        other = f", or {instead}" if instead else ""
        raise BackendError(
            f"{feature} needs the TensorFlow backend, but Keras runs on {backend!r}: "
            f"run it with KERAS_BACKEND=tensorflow{other}."
        )

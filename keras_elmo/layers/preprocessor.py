"""`ElmoPreprocessor`: text -> the char ids the ELMo model reads, on every backend.

Everything `ElmoLayer` does with text before its model runs lives here:
Python lists and numpy arrays of strings, raw sentences and their tokenizer,
dense and ragged string tokens, the trailing-padding rule (`""` only at the
end of a row), the raw-text request limits (`keras_elmo.limits`) and the
optional padding of the time axis to a few bucket lengths. It is made of
TensorFlow ops run on the CPU, as keras-hub's preprocessing layers are: in a
`tf.data` pipeline on every Keras backend, and called eagerly it returns the
backend's tensors (a JAX array, a torch tensor), ready for the model.

`ElmoLayer` on TensorFlow runs these same functions inside its own graph
(so a model that takes raw text, the export and Beam keep working as they
did); on JAX and PyTorch its eager call sends text through an
`ElmoPreprocessor` first, and in `fit` the text goes through `tf.data`:

    preprocessor = keras_elmo.ElmoPreprocessor.from_layer(elmo)
    dataset = dataset.map(lambda text, label: (preprocessor(text), label))
"""

import keras
import numpy as np

from keras_elmo import limits as limits_lib
from keras_elmo.text import characters, tokenization

LIMIT_NAMES = limits_lib.LIMIT_NAMES


# ---------------------------------------------------------------- TensorFlow ops
def string_tokens(inputs, who, mode=tokenization.DEFAULT_TOKENIZER, check_padding=True):
    """String inputs -> dense tokens (batch, T), "" as padding; None for other inputs.

    Raw sentences (batch,) are split with the tokenizer `mode`; ragged tokens
    are padded. `check_padding`: refuse a "" before a real token (an
    `InputError` eagerly, an `InvalidArgumentError` in a graph).
    """
    import tensorflow as tf

    if isinstance(inputs, tf.RaggedTensor):
        if inputs.dtype != tf.string:
            raise ValueError(f"{who}: ragged inputs must be string tokens.")
        inputs = inputs.to_tensor(default_value="")
    inputs = tf.convert_to_tensor(inputs)
    if inputs.dtype != tf.string:
        return None
    rank = inputs.shape.rank
    if rank == 1:
        return tokenization.tokenize(inputs, mode)
    if rank != 2:
        raise ValueError(
            f"{who}: string inputs must be sentences (batch,) or tokens (batch, T); "
            f"got rank {rank}."
        )
    if not check_padding:
        return inputs
    return tokenization.check_trailing_padding(inputs, who)


def char_ids_of(inputs, max_chars, who, mode=tokenization.DEFAULT_TOKENIZER):
    """Any supported input -> int32 char ids (batch, T, max_chars)."""
    import tensorflow as tf

    tokens = string_tokens(inputs, who, mode)
    if tokens is not None:
        return characters.tokens_to_char_ids(tokens, max_chars)
    inputs = tf.convert_to_tensor(inputs)
    check_char_ids_spec(inputs.shape, inputs.dtype.name, max_chars, who)
    return tf.cast(inputs, tf.int32)


def check_char_ids_spec(shape, dtype, max_chars, who):
    """Char ids must be integers of shape (batch, T, max_chars); `ValueError` otherwise."""
    if not keras.backend.is_int_dtype(dtype):
        raise ValueError(f"{who}: expected int char ids or strings, got dtype {dtype}.")
    shape = tuple(shape)
    if len(shape) != 3 or (shape[-1] is not None and shape[-1] != max_chars):
        raise ValueError(
            f"{who}: char ids must have shape (batch, T, {max_chars}); got {shape_text(shape)}."
        )


def shape_text(shape):
    """(None, 3) -> "(None, 3)", as TensorFlow writes a shape."""
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def check_limits(inputs, limits, mode=tokenization.DEFAULT_TOKENIZER):
    """The request limits (`{name: limit}`), checked before any model work.

    Returns the inputs; sentences come back tokenized (dense tokens), since
    their token counts are known only after splitting: the split is checked
    while still ragged, before padding it to a dense tensor.
    """
    import tensorflow as tf

    if all(limits.get(name) is None for name in LIMIT_NAMES):
        return inputs
    if not isinstance(inputs, tf.RaggedTensor):
        inputs = tf.convert_to_tensor(inputs)
        if inputs.shape.rank is None or inputs.shape.rank == 0:
            return inputs  # not a batch: the input checks say so
    batch = inputs.nrows() if isinstance(inputs, tf.RaggedTensor) else tf.shape(inputs)[0]
    inputs = limits_lib.after(limits_lib.batch_checks(batch, limits.get("max_batch_size")), inputs)
    if isinstance(inputs, tf.RaggedTensor):
        longest = limits_lib.longest_row(inputs.row_lengths())
    elif inputs.dtype == tf.string and inputs.shape.rank == 1:
        inputs = tokenization.tokenize_ragged(inputs, mode)
        longest = limits_lib.longest_row(inputs.row_lengths())
    else:
        longest = tf.shape(inputs)[1] if inputs.shape.rank >= 2 else 0
    checks = limits_lib.token_checks(
        batch, longest, limits.get("max_tokens_per_sentence"), limits.get("max_tokens_per_request")
    )
    inputs = limits_lib.after(checks, inputs)
    if isinstance(inputs, tf.RaggedTensor) and inputs.dtype == tf.string:
        inputs = inputs.to_tensor(default_value="")
    return inputs


def check_shape_limits(shape, limits):
    """The request limits of a dense batch whose shape is known (char ids on JAX or PyTorch).

    `tf.errors.InvalidArgumentError` naming the limit, as in a TensorFlow
    graph (`keras_elmo.limits`); nothing when the shape is not known yet.
    """
    import tensorflow as tf

    batch, steps = shape[0], shape[1]
    if batch is None or steps is None:
        return
    with tf.device("/cpu:0"):
        limits_lib.batch_checks(tf.constant(batch), limits.get("max_batch_size"))
        limits_lib.token_checks(
            tf.constant(batch),
            tf.constant(steps),
            limits.get("max_tokens_per_sentence"),
            limits.get("max_tokens_per_request"),
        )


def validate_sequence_length(value, who):
    """None, a positive int, or a list of them (bucket lengths) -> None or a sorted tuple."""
    if value is None:
        return None
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(
            f"{who}: sequence_length must be a positive integer, a list of them or None, "
            f"got {value!r}."
        )
    return tuple(sorted(set(values)))


def pad_to_bucket(char_ids, buckets):
    """Char ids (batch, T, C) padded with all-zero tokens to the smallest bucket >= T.

    Past the largest bucket, T is padded to a multiple of it: a bounded set
    of lengths for any input, so JAX's `jit` compiles once per length used.
    """
    import tensorflow as tf

    if buckets is None:
        return char_ids
    steps = tf.shape(char_ids)[1]
    sizes = tf.constant(buckets, tf.int32)
    largest = sizes[-1]
    fits = tf.boolean_mask(sizes, sizes >= steps)
    over = (steps + largest - 1) // largest * largest
    target = tf.cond(tf.size(fits) > 0, lambda: fits[0], lambda: over)
    return tf.pad(char_ids, [[0, 0], [0, target - steps], [0, 0]])


def is_text(inputs):
    """Whether `inputs` are strings (a string tensor, ragged or dense, or a numpy/Python one)."""
    dtype = getattr(inputs, "dtype", None)
    if isinstance(inputs, np.ndarray):
        return inputs.dtype.kind in "USO"
    return dtype is not None and getattr(dtype, "name", str(dtype)) == "string"


# ---------------------------------------------------------------- the layer
@keras.saving.register_keras_serializable(package="keras_elmo")
class ElmoPreprocessor(keras.layers.Layer):
    """Text -> the char ids `(batch, T, max_chars)` an `ElmoLayer` reads, on every backend.

    A Keras preprocessing layer with no weights, made of TensorFlow ops on
    the CPU (as keras-hub's preprocessing layers are): it runs in a
    `tf.data` pipeline under every Keras backend (`dataset.map`, the way to
    feed text to `model.fit` on JAX and PyTorch), and called eagerly it
    returns the current backend's tensor (a `tf.Tensor` on TensorFlow, a
    JAX array, a torch tensor). On TensorFlow it also works inside a model
    that takes raw text.

    Args:
        max_chars: int. Characters per token, the model's
            `max_characters_per_token` (50 for every published model).
            Defaults to `50`.
        tokenizer: str. How raw sentences are split: `"whitespace"` (as
            `ElmoLayer`), `"punctuation"` or `"tf_text"` (TensorFlow only;
            see `ElmoTokenizer`). Defaults to `"whitespace"`.
        sequence_length: int, list of ints or `None`. Pad the time axis to
            the smallest of these lengths that holds the batch's longest
            sentence (past the largest, to a multiple of it), so that JAX's
            `jit` compiles a bounded number of shapes; the padding is
            all-zero tokens, whose ELMo vectors are zero and masked. Nothing
            is ever cut. Defaults to `None` (the longest sentence's length).
        max_batch_size: int or `None`. Request limit: the largest batch.
            Defaults to `None` (any).
        max_tokens_per_sentence: int or `None`. Request limit on the
            longest sentence's tokens, counted before any bucket padding.
            Defaults to `None` (unbounded).
        max_tokens_per_request: int or `None`. Request limit on batch x the
            longest sentence's tokens. Defaults to `None` (unbounded). As in
            `ElmoLayer`, a request over a limit raises
            `tf.errors.InvalidArgumentError` naming it (`keras_elmo.limits`).
        **kwargs: other `keras.layers.Layer` arguments (`name`).

    Call arguments:
        inputs: raw sentences `(batch,)`, string tokens `(batch, T)` (`""`
            only at the end of a row), a ragged `(batch, None)` string
            tensor, Python lists of sentences or of token lists, or int char
            ids `(batch, T, max_chars)` (checked and passed on).

    Returns:
        int32 char ids `(batch, T, max_chars)`, all zeros at padding.

    Example:

    >>> import keras_elmo
    >>> preprocessor = keras_elmo.ElmoPreprocessor()
    >>> ids = preprocessor([["The", "cat"], ["Hi"]])
    >>> tuple(ids.shape)
    (2, 2, 50)
    >>> int(keras_elmo.ElmoPreprocessor(sequence_length=[8, 16])(["one two three"]).shape[1])
    8
    """

    def __init__(
        self,
        max_chars=characters.MAX_CHARS_PER_TOKEN,
        tokenizer=tokenization.DEFAULT_TOKENIZER,
        sequence_length=None,
        max_batch_size=None,
        max_tokens_per_sentence=None,
        max_tokens_per_request=None,
        **kwargs,
    ):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        who = "ElmoPreprocessor"
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 3:
            raise ValueError(f"{who}: max_chars must be an integer >= 3, got {max_chars!r}.")
        tokenization.check_tokenizer(tokenizer, who, "tokenizer")
        self.max_chars = max_chars
        self.tokenizer = tokenizer
        self.sequence_length = validate_sequence_length(sequence_length, who)
        self.limits = {
            "max_batch_size": max_batch_size,
            "max_tokens_per_sentence": max_tokens_per_sentence,
            "max_tokens_per_request": max_tokens_per_request,
        }
        for name, value in self.limits.items():
            limits_lib.validate_limit(name, value, who)
        # Strings and TensorFlow tensors in, whatever the backend (keras-hub's way).
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.supports_jit = False
        self.built = True

    @classmethod
    def from_layer(cls, layer, **overrides):
        """The preprocessor of an `ElmoLayer` (its `max_chars` and request limits)."""
        config = {"max_chars": layer.max_chars}
        config.update({name: getattr(layer, name) for name in LIMIT_NAMES})
        return cls(**{**config, **overrides})

    def __call__(self, inputs, *args, **kwargs):
        import tensorflow as tf

        inputs = tokenization.python_strings_to_tensor(inputs, "ElmoPreprocessor")
        if isinstance(inputs, keras.KerasTensor):
            if keras.config.backend() != "tensorflow" and inputs.dtype == "string":
                raise tokenization.text_in_model_error("ElmoPreprocessor")
            return super().__call__(inputs, *args, **kwargs)
        if keras.config.backend() != "tensorflow" and not isinstance(inputs, tf.RaggedTensor):
            if not is_text(inputs) and not tf.is_tensor(inputs):
                inputs = keras.ops.convert_to_numpy(inputs)  # a backend tensor of char ids
        # Concrete tensors (eager, or a tf.data graph): the TensorFlow ops
        # themselves, on the CPU; their errors (a request over a limit) as raised.
        with tf.device("/cpu:0"):
            outputs = self.call(inputs)
        if keras.config.backend() != "tensorflow" and tf.executing_eagerly():
            return keras.ops.convert_to_tensor(outputs.numpy())
        return outputs

    def call(self, inputs):
        who = "ElmoPreprocessor"
        inputs = check_limits(inputs, self.limits, self.tokenizer)
        return pad_to_bucket(
            char_ids_of(inputs, self.max_chars, who, self.tokenizer), self.sequence_length
        )

    def compute_output_spec(self, inputs):
        shape = tuple(inputs.shape)
        # Raw sentences (batch,) and bucket lengths: known only once the text is read.
        steps = shape[1] if len(shape) >= 2 and self.sequence_length is None else None
        return keras.KerasTensor((shape[0] if shape else None, steps, self.max_chars), "int32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_chars": self.max_chars,
                "tokenizer": self.tokenizer,
                "sequence_length": (
                    list(self.sequence_length) if self.sequence_length is not None else None
                ),
                **self.limits,
            }
        )
        return config

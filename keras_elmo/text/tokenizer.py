"""`ElmoTokenizer`: raw sentences -> string tokens, as a Keras layer.

Put it in front of an `ElmoLayer` to make a model that takes raw text:

    model = keras.Sequential([
        keras.Input(shape=(), dtype="string"),
        ElmoTokenizer(),
        ElmoLayer(options),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(1, activation="sigmoid"),
    ])

It also works in a `tf.data` pipeline (`dataset.map(ElmoTokenizer())`).
The output is a dense rank-2 string tensor (batch, T), "" as padding, which
is what `ElmoLayer` needs to compute its Keras mask in a functional model.
"""

import keras
import tensorflow as tf

from keras_elmo.text import tokenization


@keras.saving.register_keras_serializable(package="keras_elmo")
class ElmoTokenizer(keras.layers.Layer):
    """Splits raw sentences into the string tokens `ElmoLayer` reads.

    A Keras preprocessing layer with no weights: sentences `(batch,)` in,
    dense tokens `(batch, T)` out, `""` as padding, which is what `ElmoLayer`
    needs to compute its Keras mask in a functional model. It runs in the
    graph (so a model that starts with it takes raw text, also when
    exported) and in a `tf.data` pipeline (`dataset.map(ElmoTokenizer())`).
    The tokenizer names are the ones the export and the command line take
    (`keras_elmo.text.tokenization`).

    Args:
        mode: str. The tokenizer: `"whitespace"` (split on runs of
            whitespace, TF Hub's ELMo rule), `"punctuation"` (PTB-like:
            punctuation and English clitics split off; core TF ops only, so
            it runs on any TensorFlow Serving) or `"tf_text"` (TensorFlow
            Text's `UnicodeScriptTokenizer`; needs the tf-text
            extra, and a graph that uses it needs `import tensorflow_text`
            wherever it is loaded). Defaults to `"whitespace"`.
        max_tokens: int or `None`. Keep at most this many tokens of each
            sentence. Defaults to `None` (all of them).
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        inputs: strings `(batch,)`, `(batch, 1)` (as from
            `keras.Input(shape=(1,), dtype="string")`), a single sentence (a
            scalar, as in an unbatched `tf.data` map), or a Python list of
            sentences.

    Returns:
        A dense string tensor `(batch, T)`, `T` the most tokens of any
        sentence (capped at `max_tokens`), shorter rows padded with `""`;
        `(T,)` for a single sentence.

    Example:

    >>> import keras_elmo
    >>> tokenizer = keras_elmo.ElmoTokenizer()
    >>> tokenizer(["The cat sat .", "Hello !"]).numpy().tolist()
    [[b'The', b'cat', b'sat', b'.'], [b'Hello', b'!', b'', b'']]
    >>> punctuation = keras_elmo.ElmoTokenizer(mode="punctuation", max_tokens=4)
    >>> punctuation(["Don't stop, dear."]).numpy().tolist()
    [[b'Do', b"n't", b'stop', b',']]
    """

    def __init__(self, mode="whitespace", max_tokens=None, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        tokenization.check_tokenizer(mode, "ElmoTokenizer", "mode")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise ValueError(
                f"ElmoTokenizer: max_tokens must be a positive integer or None, got {max_tokens!r}."
            )
        self.mode = mode
        self.max_tokens = max_tokens
        self.supports_masking = False

    def _tokenize(self, sentences):
        tokens = tokenization.tokenize(sentences, self.mode)
        if self.max_tokens is not None:
            tokens = tokens[:, : self.max_tokens]
        return tokens

    def __call__(self, *args, **kwargs):
        # A Python list of sentences becomes a string tensor (Keras takes only
        # tensors and arrays as positional inputs).
        if args:
            args = (tokenization.python_strings_to_tensor(args[0], "ElmoTokenizer"),) + args[1:]
            if isinstance(args[0], keras.KerasTensor) and keras.config.backend() != "tensorflow":
                raise tokenization.text_in_model_error("ElmoTokenizer")
        return super().__call__(*args, **kwargs)

    def call(self, inputs):
        if isinstance(inputs, tf.RaggedTensor):
            raise ValueError("ElmoTokenizer: expected dense sentences, got a ragged tensor.")
        inputs = tf.convert_to_tensor(inputs)
        if inputs.dtype != tf.string:
            raise ValueError(f"ElmoTokenizer: expected strings, got dtype {inputs.dtype.name}.")
        rank = inputs.shape.rank
        if rank == 0:
            return self._tokenize(inputs[None])[0]
        if rank == 2 and inputs.shape[1] == 1:
            inputs = inputs[:, 0]
        elif rank != 1:
            raise ValueError(
                f"ElmoTokenizer: expected sentences of shape (batch,) or (batch, 1), got "
                f"{inputs.shape}."
            )
        return self._tokenize(inputs)

    def compute_output_spec(self, inputs):
        shape = tuple(inputs.shape)
        if len(shape) == 0:
            return keras.KerasTensor((None,), dtype="string")
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise ValueError(
                f"ElmoTokenizer: expected sentences of shape (batch,) or (batch, 1), got {shape}."
            )
        return keras.KerasTensor((shape[0], None), dtype="string")

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "max_tokens": self.max_tokens})
        return config

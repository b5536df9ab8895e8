"""A cache of context-free token vectors for a fixed vocabulary.

The char CNN (`CharCNNTokenEncoder`) is the costly part of ELMo for short
sentences, and with a frozen encoder its output for a token never changes.
Like bilm-tf's `dump_token_embeddings` and AllenNLP's `vocab_to_cache`, the
vectors of a vocabulary can be computed once and looked up afterwards; tokens
outside the vocabulary still go through the CNN.

`TokenCache` holds the vocabulary (a string -> row hash table, saved as a
JSON asset of a `.keras` file) and the vectors (a non-trainable (V, P)
variable, saved in the `.keras` weights file; not a Keras weight, see the
class). `ElmoLayer.cache_vocabulary` fills it; `ElmoLayer` reads it.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from keras_elmo.text import characters

VOCABULARY_ASSET = "token_cache_vocabulary.json"


def clean_vocabulary(tokens):
    """Distinct non-empty tokens (str), first occurrence order; UTF-8 checked."""
    if isinstance(tokens, (str, bytes)):
        raise ValueError("token cache: pass a list of tokens, not a single string.")
    seen, out = set(), []
    for k, token in enumerate(tokens):
        if isinstance(token, bytes):
            token = characters.decode_utf8(token, f"token cache: token {k} ({token!r})")
        if not isinstance(token, str):
            raise ValueError(
                f"token cache: tokens must be str or bytes, got {type(token).__name__} at {k}."
            )
        if token and token not in seen:
            seen.add(token)
            out.append(token)
    if not out:
        raise ValueError("token cache: the vocabulary has no non-empty token.")
    return out


@keras.saving.register_keras_serializable(package="keras_elmo")
class TokenCache(keras.layers.Layer):
    """Vocabulary -> precomputed token vectors (V, output_dim).

    Called on string tokens (any shape), it returns their cached vectors
    (shape + (output_dim,)), zeros for tokens not in the vocabulary; an
    empty cache returns zeros. `ElmoLayer` uses the two halves, `lookup`
    (tokens -> rows, -1 where not cached) and `gather` (rows -> vectors), to
    send only the uncached tokens through the char CNN.

    The cache is not a Keras weight, by design: its row count is the size of
    the vocabulary given to `set_vocabulary`, which comes after the layer is
    built (`ElmoLayer.cache_vocabulary` on a loaded model), while Keras
    creates weights once, in `build()`, with fixed shapes. So, as Keras's own
    `StringLookup` keeps its vocabulary and `TextVectorization` its IDF
    weights, the cache is state kept beside the weights: a string -> row hash
    table and a non-trainable float32 `tf.Variable` (V, output_dim). A
    `.keras` file carries both (the vectors through `save_own_variables`, the
    vocabulary as a JSON asset), so a model loaded from its config gets its
    cache back; the config itself holds only the constructor's arguments.

    Args:
        output_dim: the width of the cached vectors (the token encoder's
            projection size).
        size: 0 (default: a vocabulary of any size), or the number of tokens
            the cache must hold; `set_vocabulary` refuses another count.
            Configs written by keras_elmo before this rule record the size of
            the cache saved with them here.
    """

    def __init__(self, output_dim, size=0, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("output_dim", output_dim), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"TokenCache: {name} must be a non-negative integer, got {value!r}."
                )
        self.output_dim = output_dim
        self.size = size
        self.vocabulary = []
        self.vectors = None
        self._table = None
        # Pieces of a cache read back from a `.keras` file: Keras loads the
        # vectors (`load_own_variables`) and then the vocabulary (`load_assets`).
        self._loaded_vectors = None

    def build(self, input_shape=None):
        self.built = True

    @property
    def active(self):
        return self._table is not None

    def set_vocabulary(self, vocabulary, vectors):
        """Store `vocabulary` (clean token list) and its vectors (V, output_dim)."""
        vocabulary = list(vocabulary)
        vectors = np.asarray(vectors, dtype="float32")
        if vectors.shape != (len(vocabulary), self.output_dim):
            raise ValueError(
                f"TokenCache: vectors must have shape {(len(vocabulary), self.output_dim)}, "
                f"got {vectors.shape}."
            )
        if self.size and self.size != len(vocabulary):
            raise ValueError(
                f"TokenCache: this layer holds a cache of {self.size} tokens; a vocabulary "
                f"of {len(vocabulary)} needs a new layer (ElmoLayer(..., token_cache_size=0) "
                f"takes any size)."
            )
        if self.vectors is not None and tuple(self.vectors.shape) == vectors.shape:
            # In place: functions traced before (model.predict) see the new
            # vectors, e.g. after new token encoder weights.
            self.vectors.assign(vectors)
        else:
            self.vectors = tf.Variable(vectors, trainable=False, name="token_cache_vectors")
        if vocabulary != self.vocabulary or self._table is None:
            self.vocabulary = vocabulary
            self._table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(vocabulary, tf.string),
                    tf.range(len(vocabulary), dtype=tf.int64),
                ),
                default_value=-1,
            )

    def lookup(self, tokens):
        """String tokens (any shape) -> int32 rows, -1 where not cached."""
        if self._table is None:
            return tf.fill(tf.shape(tokens), -1)
        return tf.cast(self._table.lookup(tokens), tf.int32)

    def gather(self, rows):
        """Rows (any shape, -1 allowed) -> float32 vectors, zeros at -1."""
        if self.vectors is None:
            return tf.zeros(tf.concat([tf.shape(rows), [self.output_dim]], 0), tf.float32)
        found = tf.gather(tf.convert_to_tensor(self.vectors), tf.maximum(rows, 0))
        return tf.where((rows >= 0)[..., None], found, tf.zeros_like(found))

    def call(self, tokens):
        return tf.cast(self.gather(self.lookup(tokens)), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    # Saved in a `.keras` file: the vectors in the weights file, the
    # vocabulary as an asset.
    def save_own_variables(self, store):
        if self.vectors is not None:
            store["vectors"] = self.vectors.numpy()

    def load_own_variables(self, store):
        # "0": the key of files saved when the vectors were a Keras weight.
        for key in ("vectors", "0"):
            if key in store:
                self._loaded_vectors = store[key]
                return

    def save_assets(self, dir_path):
        with open(os.path.join(dir_path, VOCABULARY_ASSET), "w", encoding="utf-8") as f:
            json.dump(self.vocabulary, f, ensure_ascii=False)

    def load_assets(self, dir_path):
        path = os.path.join(dir_path, VOCABULARY_ASSET)
        vocabulary = []
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                vocabulary = json.load(f)
        vectors, self._loaded_vectors = self._loaded_vectors, None
        if not vocabulary and vectors is None:
            return
        if not vocabulary or vectors is None:
            raise ValueError(
                f"TokenCache: the saved model has the cache's "
                f"{'vectors' if vectors is not None else 'vocabulary'} but not its "
                f"{'vocabulary' if vectors is not None else 'vectors'}."
            )
        self.set_vocabulary(vocabulary, vectors)

    def get_config(self):
        config = super().get_config()
        config.update({"output_dim": self.output_dim, "size": self.size})
        return config


def encode_vocabulary(token_encoder, vocabulary, batch_size=4096):
    """The encoder's vectors of a clean token list, (V, P) numpy, in batches."""
    max_chars = token_encoder.max_chars
    out = []
    for start in range(0, len(vocabulary), batch_size):
        chunk = vocabulary[start : start + batch_size]
        ids = tf.constant(characters.batch_to_ids([chunk], max_chars)[0])
        out.append(token_encoder.encode_unique(ids).numpy())
    return np.concatenate(out, axis=0)

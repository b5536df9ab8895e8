"""A cache of context-free token vectors for a fixed vocabulary.

The char CNN (`CharCNNTokenEncoder`) is the costly part of ELMo for short
sentences, and with a frozen encoder its output for a token never changes.
Like bilm-tf's `dump_token_embeddings` and AllenNLP's `vocab_to_cache`, the
vectors of a vocabulary can be computed once and looked up afterwards; tokens
outside the vocabulary still go through the CNN.

`TokenCache` holds the vocabulary (a string -> row hash table, saved as a
JSON asset of a `.keras` file) and the vectors (a non-trainable (V, P)
weight). `ElmoLayer.cache_vocabulary` fills it; `ElmoLayer` reads it.
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

    Not called as a layer: `ElmoLayer` uses `lookup` and `gather`. `size` is
    the vocabulary size (0: empty cache); the weight is created at once so a
    model rebuilt from its config can load the saved vectors.
    """

    def __init__(self, output_dim, size=0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"TokenCache: size must be a non-negative integer, got {size!r}.")
        self.output_dim = output_dim
        self.size = 0
        self.vocabulary = []
        self.vectors = None
        self._table = None
        if size:
            self._allocate(size)
        self.built = True

    def build(self, input_shape=None):
        # Overridden (and never called) so that Keras does not lock the state
        # at __init__: `set_vocabulary` may create the weight later.
        pass

    def _allocate(self, size):
        self.size = size
        # autocast=False: read as float32 even inside a mixed-precision layer.
        self.vectors = self.add_weight(
            name="vectors",
            shape=(size, self.output_dim),
            initializer="zeros",
            trainable=False,
            autocast=False,
        )

    @property
    def active(self):
        return self.size > 0 and self._table is not None

    def _set_table(self, vocabulary):
        if len(vocabulary) != self.size:
            raise ValueError(
                f"TokenCache: the vocabulary has {len(vocabulary)} tokens, the cache {self.size}."
            )
        self.vocabulary = list(vocabulary)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.vocabulary, tf.string), tf.range(self.size, dtype=tf.int64)
            ),
            default_value=-1,
        )

    def set_vocabulary(self, vocabulary, vectors):
        """Store `vocabulary` (clean token list) and its vectors (V, output_dim)."""
        vectors = np.asarray(vectors, dtype="float32")
        if vectors.shape != (len(vocabulary), self.output_dim):
            raise ValueError(
                f"TokenCache: vectors must have shape {(len(vocabulary), self.output_dim)}, "
                f"got {vectors.shape}."
            )
        if self.size == 0:
            self._allocate(len(vocabulary))
        elif self.size != len(vocabulary):
            raise ValueError(
                f"TokenCache: this layer already has a cache of {self.size} tokens; a vocabulary "
                f"of {len(vocabulary)} needs a new layer (ElmoLayer(..., token_cache_size="
                f"{len(vocabulary)}))."
            )
        self._set_table(vocabulary)
        self.vectors.assign(vectors)

    def lookup(self, tokens):
        """String tokens (any shape) -> int32 rows, -1 where not cached."""
        return tf.cast(self._table.lookup(tokens), tf.int32)

    def gather(self, rows):
        """Rows (any shape, -1 allowed) -> vectors, zeros at -1."""
        found = tf.gather(tf.convert_to_tensor(self.vectors), tf.maximum(rows, 0))
        return tf.where((rows >= 0)[..., None], found, tf.zeros_like(found))

    # The vocabulary travels as an asset of the `.keras` file.
    def save_assets(self, dir_path):
        with open(os.path.join(dir_path, VOCABULARY_ASSET), "w", encoding="utf-8") as f:
            json.dump(self.vocabulary, f, ensure_ascii=False)

    def load_assets(self, dir_path):
        path = os.path.join(dir_path, VOCABULARY_ASSET)
        if not os.path.isfile(path):
            if self.size:
                raise ValueError(f"TokenCache: the saved model has no vocabulary asset ({path}).")
            return
        with open(path, encoding="utf-8") as f:
            vocabulary = json.load(f)
        if vocabulary:
            self._set_table(vocabulary)

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

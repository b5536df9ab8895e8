"""The context-free token encoder of ELMoForManyLangs (EFML) models.

String tokens in, token vectors out; the lexicons are lookup tables in the
graph (core `tf.lookup.StaticHashTable`s), so a SavedModel serves raw text.
Per token, as EFML's `ConvTokenEmbedder` and batcher compute it:

- the token is cut to `max_characters_per_token - 2` Unicode characters
  (code points); its characters are looked up in the char lexicon (unknown:
  `<oov>`) and laid out as [begin, c_1 .. c_n, end, <pad> ...] in
  `max_characters_per_token` slots. EFML puts the id of `<eow>` in the begin
  slot and the id of `<bow>` in the end slot (its batcher unpacks the two the
  other way round; the models were trained so). The tokens `<bos>` and
  `<eos>` (the sentence boundaries) are [begin, their own id, end, <pad> ...];
- char embeddings -> for each filter a valid 1-D convolution, max over the
  positions, + bias, activation -> concat (F) -> `n_highway` highway layers
  (relu, gate on the carried input: g * x + (1 - g) * relu(A x));
- when the model has a word embedding: the cut token looked up in the word
  lexicon (unknown: `<oov>`), its vector placed before the char features;
- a linear projection to P (always).

"" is padding: its vector is zero.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_elmo import options as options_lib

LEXICON_ASSETS = {"char": "efml_char_lexicon.json", "word": "efml_word_lexicon.json"}
CHAR_SPECIALS = options_lib.EFML_CHAR_SPECIALS
WORD_SPECIALS = options_lib.EFML_WORD_SPECIALS


def _table(lexicon, default):
    keys = list(lexicon)
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.string),
            tf.constant([lexicon[k] for k in keys], tf.int64),
        ),
        default_value=default,
    )


@keras.saving.register_keras_serializable(package="keras_elmo")
class EfmlTokenEncoder(keras.layers.Layer):
    """String tokens (...) -> token vectors (..., P) of an EFML model.

    The lexicons are not part of the config: `set_lexicons` installs them
    (`ElmoLayer.from_elmoformanylangs` does), and a `.keras` file carries them
    as assets. Until then the layer has weights but cannot encode.
    """

    def __init__(self, options, **kwargs):
        super().__init__(**kwargs)
        self.options = options_lib.validate_options(options)
        if not options_lib.is_efml(self.options):
            raise ValueError("EfmlTokenEncoder needs ELMoForManyLangs options (kind 'efml').")
        emb = self.options["token_embedder"]
        self.char_dim = emb["char_dim"]
        self.n_chars = emb["n_chars"]
        self.word_dim = emb["word_dim"]
        self.n_words = emb["n_words"]
        self.max_chars = emb["max_characters_per_token"]
        self.activation = emb["activation"]
        self.filters = [tuple(f) for f in emb["filters"]]
        self.n_highway = emb["n_highway"]
        self.n_features = sum(count for _, count in self.filters)
        self.output_dim = self.options["lstm"]["projection_dim"]
        self.char_lexicon, self.word_lexicon = {}, {}
        self._char_table = self._word_table = None
        self.supports_masking = False

    def build(self, input_shape=None):
        # EFML's EmbeddingLayer draws uniform(-0.25, 0.25) (then normalises rows).
        emb_init = keras.initializers.RandomUniform(-0.25, 0.25)
        self.char_embed = self.add_weight(
            name="char_embed", shape=(self.n_chars, self.char_dim), initializer=emb_init
        )
        self.word_embed = None
        if self.word_dim:
            self.word_embed = self.add_weight(
                name="word_embed", shape=(self.n_words, self.word_dim), initializer=emb_init
            )
        self.conv_kernels, self.conv_biases = [], []
        for i, (width, count) in enumerate(self.filters):
            # (width, char_dim, count): tf.nn.conv1d's filter layout.
            self.conv_kernels.append(
                self.add_weight(
                    name=f"conv_kernel_{i}",
                    shape=(width, self.char_dim, count),
                    initializer="glorot_uniform",
                )
            )
            self.conv_biases.append(
                self.add_weight(name=f"conv_bias_{i}", shape=(count,), initializer="zeros")
            )
        f = self.n_features
        self.highway_kernels, self.highway_biases = [], []
        for k in range(self.n_highway):
            # One (F, 2F) matmul: [nonlinear part | gate], as EFML's Linear(F, 2F).
            self.highway_kernels.append(
                self.add_weight(
                    name=f"highway_{k}_kernel", shape=(f, 2 * f), initializer="glorot_uniform"
                )
            )
            # EFML starts the gate bias at 1 (carry the input forward).
            self.highway_biases.append(
                self.add_weight(
                    name=f"highway_{k}_bias",
                    shape=(2 * f,),
                    initializer=keras.initializers.Constant([0.0] * f + [1.0] * f),
                )
            )
        self.w_proj = self.add_weight(
            name="w_proj", shape=(self.word_dim + f, self.output_dim), initializer="glorot_uniform"
        )
        self.b_proj = self.add_weight(name="b_proj", shape=(self.output_dim,), initializer="zeros")
        self.built = True

    # ------------------------------------------------------------------ lexicons
    def set_lexicons(self, char_lexicon, word_lexicon=None):
        """Install the char lexicon (and the word lexicon when word_dim > 0): str -> id."""
        checked = []
        for what, lexicon, specials, rows in (
            ("char", char_lexicon, CHAR_SPECIALS, self.n_chars),
            ("word", word_lexicon or {}, WORD_SPECIALS if self.word_dim else (), self.n_words),
        ):
            if what == "word" and not self.word_dim:
                if lexicon:
                    raise ValueError("EfmlTokenEncoder: a word lexicon for a model without words.")
                checked.append({})
                continue
            lexicon = dict(lexicon)
            missing = [s for s in specials if s not in lexicon]
            if missing:
                raise ValueError(f"EfmlTokenEncoder: the {what} lexicon has no {missing}.")
            bad = [(t, i) for t, i in lexicon.items() if not (isinstance(i, int) and 0 <= i < rows)]
            if bad:
                raise ValueError(
                    f"EfmlTokenEncoder: {what} lexicon entry {bad[0]!r} is outside the "
                    f"{rows}-row embedding."
                )
            checked.append(lexicon)
        self.char_lexicon, self.word_lexicon = checked
        c = self.char_lexicon
        self._char_table = _table(c, c["<oov>"])
        self._word_table = (
            _table(self.word_lexicon, self.word_lexicon["<oov>"]) if self.word_dim else None
        )
        return self

    @property
    def lookup_tables(self):
        """The lexicon tables (resources an exported module must track)."""
        return [t for t in (self._char_table, self._word_table) if t is not None]

    def save_assets(self, dir_path):
        for what, lexicon in (("char", self.char_lexicon), ("word", self.word_lexicon)):
            with open(os.path.join(dir_path, LEXICON_ASSETS[what]), "w", encoding="utf-8") as f:
                json.dump(lexicon, f, ensure_ascii=False)

    def load_assets(self, dir_path):
        lexicons = []
        for what in ("char", "word"):
            path = os.path.join(dir_path, LEXICON_ASSETS[what])
            if not os.path.isfile(path):
                raise ValueError(
                    f"EfmlTokenEncoder: the saved model has no {what} lexicon ({path})."
                )
            with open(path, encoding="utf-8") as f:
                lexicons.append(json.load(f))
        self.set_lexicons(*lexicons)

    # ------------------------------------------------------------------ encoding
    def _check_ready(self):
        if self._char_table is None:
            raise ValueError(
                "EfmlTokenEncoder: no lexicons installed; build the layer with "
                "ElmoLayer.from_elmoformanylangs(model_dir) or load it from a .keras file."
            )

    def char_ids(self, tokens, boundary=False):
        """Distinct tokens (N,) -> (EFML's char ids (N, max_chars) int32, the lookup keys).

        EFML cuts a sentence's tokens before it looks them up (chars and
        words), but appends `<bos>`/`<eos>` uncut: `boundary=True` encodes
        those two as EFML does even when the limit is shorter than they are.
        """
        self._check_ready()
        c = self.char_lexicon
        width = self.max_chars
        body = self.max_chars - 2
        cut = tf.strings.substr(tokens, 0, body, unit="UTF8_CHAR")
        chars = tf.strings.unicode_split(cut, "UTF-8")  # ragged (N, n_i <= body)
        ids = chars.with_flat_values(tf.cast(self._char_table.lookup(chars.flat_values), tf.int32))
        n = tf.cast(chars.row_lengths(), tf.int32)[:, None]
        count = tf.shape(tokens)[0]
        slots = tf.concat(
            [
                tf.fill([count, 1], c["<pad>"]),
                ids.to_tensor(default_value=c["<pad>"], shape=[None, body]),
                tf.fill([count, 1], c["<pad>"]),
            ],
            axis=1,
        )
        pos = tf.range(width)[None, :]
        begin, end = c[options_lib.EFML_BEGIN_OF_WORD], c[options_lib.EFML_END_OF_WORD]
        slots = tf.where(pos == 0, begin, slots)
        slots = tf.where(pos == n + 1, end, slots)
        keys = tokens if boundary else cut
        for name in ("<bos>", "<eos>"):
            special = tf.constant([begin, c[name], end] + [c["<pad>"]] * (width - 3), tf.int32)
            slots = tf.where(tf.equal(keys, name)[:, None], special[None, :], slots)
        return slots, keys

    def _act(self, x):
        return tf.nn.relu(x) if self.activation == "relu" else tf.tanh(x)

    def encode_unique(self, tokens, boundary=False):
        """Distinct tokens (N,) -> (N, P); no dedupe, no padding handling."""
        tokens = tf.convert_to_tensor(tokens, tf.string)
        char_ids, keys = self.char_ids(tokens, boundary)
        x = tf.gather(tf.convert_to_tensor(self.char_embed), char_ids)  # (N, C, d)
        # Every slot after a token's end holds <pad>, so windows that start
        # at or after `used` (one past the last non-<pad> slot of any row) all
        # see the same pad vectors and give one value per filter. Convolving
        # `used + widest` slots keeps all windows that touch a non-pad slot
        # plus at least one pure-pad window when the full row has one: the
        # same max over fewer positions (~4x less for the published sizes).
        widest = max(width for width, _ in self.filters)
        position = tf.range(1, self.max_chars + 1)[None, :]
        used = tf.reduce_max(tf.where(char_ids == self.char_lexicon["<pad>"], 0, position))
        used = tf.maximum(used, 0)  # no tokens: reduce_max gives int32's minimum
        x = x[:, : tf.minimum(used + widest, self.max_chars)]
        pieces = []
        for kernel, bias in zip(self.conv_kernels, self.conv_biases):
            conv = tf.nn.conv1d(x, tf.convert_to_tensor(kernel), stride=1, padding="VALID")
            # EFML adds the bias before the max; a per-channel constant
            # commutes with the max exactly.
            pieces.append(self._act(tf.reduce_max(conv, axis=1) + bias))
        h = tf.concat(pieces, axis=-1)
        f = self.n_features
        for kernel, bias in zip(self.highway_kernels, self.highway_biases):
            z = tf.matmul(h, kernel) + bias
            gate = tf.sigmoid(z[:, f:])
            h = gate * h + (1.0 - gate) * tf.nn.relu(z[:, :f])
        if self.word_dim:
            word_ids = self._word_table.lookup(keys)  # EFML looks the cut token up
            h = tf.concat([tf.gather(tf.convert_to_tensor(self.word_embed), word_ids), h], -1)
        return tf.matmul(h, self.w_proj) + self.b_proj

    def encode_ids(self, char_ids, word_ids=None):
        """The numeric part in `keras.ops` (every backend, static shapes).

        EFML's char ids (N, max_chars) (`char_ids`) and, with a word
        embedding, its word ids (N,) -> (N, P): the same model as
        `encode_unique` without the string lookups (TensorFlow tables) and
        without its truncation of all-padding windows, so the same numbers
        up to float32 rounding.
        """
        char_ids = ops.cast(ops.convert_to_tensor(char_ids), "int32")
        x = ops.take(ops.convert_to_tensor(self.char_embed), char_ids, axis=0)  # (N, C, d)
        pieces = []
        for kernel, bias in zip(self.conv_kernels, self.conv_biases):
            conv = ops.conv(x, ops.convert_to_tensor(kernel), strides=1, padding="valid")
            pooled = ops.max(conv, axis=1) + bias
            pieces.append(ops.relu(pooled) if self.activation == "relu" else ops.tanh(pooled))
        h = ops.concatenate(pieces, axis=-1)
        f = self.n_features
        for kernel, bias in zip(self.highway_kernels, self.highway_biases):
            z = ops.matmul(h, kernel) + bias
            gate = ops.sigmoid(z[:, f:])
            h = gate * h + (1.0 - gate) * ops.relu(z[:, :f])
        if self.word_dim:
            if word_ids is None:
                raise ValueError("EfmlTokenEncoder.encode_ids: this model needs word ids too.")
            word_ids = ops.cast(ops.convert_to_tensor(word_ids), "int32")
            words = ops.take(ops.convert_to_tensor(self.word_embed), word_ids, axis=0)
            h = ops.concatenate([words, h], axis=-1)
        return ops.matmul(h, self.w_proj) + self.b_proj

    def boundary_vectors(self):
        """The vectors of `<bos>` and `<eos>`, (2, P)."""
        if keras.config.backend() != "tensorflow":
            return self.encode_ids(*self._boundary_ids())
        return self.encode_unique(tf.constant(["<bos>", "<eos>"]), boundary=True)

    def _boundary_ids(self):
        """(char ids (2, max_chars), word ids (2,) or None) of `<bos>`, `<eos>`
        as `char_ids(..., boundary=True)` and the word lookup give them."""
        self._check_ready()
        c, w = self.char_lexicon, self.word_lexicon
        begin, end = c[options_lib.EFML_BEGIN_OF_WORD], c[options_lib.EFML_END_OF_WORD]
        names = ("<bos>", "<eos>")
        chars = [[begin, c[n], end] + [c["<pad>"]] * (self.max_chars - 3) for n in names]
        words = [w.get(n, w["<oov>"]) for n in names] if self.word_dim else None
        return np.asarray(chars, np.int32), None if words is None else np.asarray(words, np.int32)

    # ------------------------------------------------------------------ packed ids
    # On JAX and PyTorch the string lookups run eagerly (TensorFlow tables)
    # and the model gets one int32 tensor (B, T, 2 + max_chars) per batch:
    # [1 (a token; 0 at padding), word id (0 without words), char ids ...],
    # all zeros at padding.
    @property
    def packed_width(self):
        return 2 + self.max_chars

    def packed_ids(self, tokens):
        """Dense string tokens (B, T), "" as padding -> packed ids (B, T, 2 + max_chars), TF."""
        self._check_ready()
        tokens = tf.convert_to_tensor(tokens, tf.string)
        shape = tf.shape(tokens)
        flat = tf.reshape(tokens, [-1])
        char_ids, keys = self.char_ids(flat)
        if self.word_dim:
            word_ids = tf.cast(self._word_table.lookup(keys), tf.int32)
        else:
            word_ids = tf.zeros_like(flat, tf.int32)
        real = tf.not_equal(flat, "")
        packed = tf.concat([tf.cast(real, tf.int32)[:, None], word_ids[:, None], char_ids], 1)
        packed = packed * tf.cast(real, tf.int32)[:, None]
        return tf.reshape(packed, tf.concat([shape, [self.packed_width]], 0))

    def encode_packed(self, packed):
        """Packed ids (B, T, 2 + max_chars) -> (token vectors (B, T, P), mask (B, T)), keras.ops."""
        packed = ops.cast(ops.convert_to_tensor(packed), "int32")
        batch, steps = ops.shape(packed)[0], ops.shape(packed)[1]
        flat = ops.reshape(packed, (-1, self.packed_width))
        vectors = self.encode_ids(flat[:, 2:], flat[:, 1] if self.word_dim else None)
        mask = ops.greater(packed[..., 0], 0)
        vectors = ops.reshape(vectors, (batch, steps, self.output_dim))
        return vectors * ops.cast(mask, vectors.dtype)[..., None], mask

    def call(self, tokens):
        tokens = tf.convert_to_tensor(tokens, tf.string)
        shape = tf.shape(tokens)
        flat = tf.reshape(tokens, [-1])
        # Encode each distinct token once, then scatter back.
        unique, index = tf.unique(flat)
        # A leading "" keeps the batch of distinct tokens non-empty (the
        # convolutions do not take zero rows); "" rows are zeroed below.
        encoded = self.encode_unique(tf.concat([[""], unique], 0))
        out = tf.gather(encoded, index + 1)
        out = tf.where(tf.equal(flat, "")[:, None], tf.zeros_like(out), out)
        return tf.reshape(out, tf.concat([shape, [self.output_dim]], 0))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({"options": self.options})
        return config

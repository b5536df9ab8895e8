"""The context-free token encoder: char CNN + highway + projection."""

import keras
import tensorflow as tf
from keras import ops

from keras_elmo import options as options_lib
from keras_elmo.layers import backend_path
from keras_elmo.text import characters

# Distinct tokens go through the CNN in chunks of at most this many rows. The
# conv activations of one token take up to ~400 KB with the published CNN
# (2048 filters x ~45 positions x 4 bytes), so a request of thousands of
# distinct long tokens, encoded in one go, raised a serving process's peak by
# a lot; chunked, the CNN's working memory is bounded whatever the request
# (benchmarks/serving_limits.py; the before/after in docs/reliability.md).
# A batch with fewer distinct tokens skips the loop and runs as before.
CNN_CHUNK_TOKENS = 512


@keras.saving.register_keras_serializable(package="keras_elmo")
class CharCNNTokenEncoder(keras.layers.Layer):
    """ELMo's context-free token encoder: a character CNN, highway layers, a projection.

    For each token: embed its character ids; for each filter a valid 1-D
    convolution over the character positions, max over positions, then the
    activation; concatenate into `F` features (the sum of the filter counts);
    `n_highway` highway layers; a linear projection to `P` (the LSTM's
    `projection_dim`) when `F != P`. This is the first layer of the biLM of
    Peters et al. (2018), after Kim et al. (2016); `ElmoLayer` holds one as
    `elmo.token_encoder`, and its vectors are the `word_emb` output.

    Rows whose ids are all 0 (batch padding) give zero vectors. Each
    distinct token is encoded once per call (a batch of text repeats most
    of its tokens, and the CNN is the costly part), in chunks of
    `CNN_CHUNK_TOKENS` distinct tokens, so its working memory stays bounded.

    Args:
        options: dict. Model options in the published `options.json` layout;
            this layer uses `char_cnn` and `lstm.projection_dim`.
        matmul_dtype: str. `"float32"`, `"bfloat16"` or `"float16"`: the
            operand dtype of the convolutions and matmuls (see `ElmoLayer`'s
            `matmul_dtype`). Defaults to `"float32"`.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`,
            `trainable`).

    Call arguments:
        char_ids: int char ids `(..., max_chars)`, as made by
            `keras_elmo.batch_to_ids` or `keras_elmo.tokens_to_char_ids`.

    Returns:
        Token vectors `(..., P)` of the input's leading shape, zero where a
        row of ids is all 0.

    Example:

    >>> import numpy as np
    >>> import keras_elmo
    >>> from keras_elmo.layers.token_encoder import CharCNNTokenEncoder
    >>> options = keras_elmo.published_options("small")  # random weights here
    >>> encoder = CharCNNTokenEncoder(options)
    >>> vectors = encoder(keras_elmo.batch_to_ids([["cat", "sat", "cat"], ["Hi"]]))
    >>> tuple(vectors.shape)  # P = projection_dim
    (2, 3, 128)
    >>> float(np.abs(vectors[0, 0] - vectors[0, 2]).max()) < 1e-5  # no context: "cat" = "cat"
    True
    >>> float(np.abs(vectors[1, 1:]).max())  # batch padding
    0.0

    Reference:
        - [Peters et al., 2018](https://arxiv.org/abs/1802.05365), "Deep
          contextualized word representations", NAACL.
        - [Kim et al., 2016](https://arxiv.org/abs/1508.06615),
          "Character-Aware Neural Language Models", AAAI.
    """

    def __init__(self, options, matmul_dtype="float32", **kwargs):
        super().__init__(**kwargs)
        self.options = options_lib.validate_options(options)
        self.matmul_dtype = options_lib.validate_matmul_dtype(matmul_dtype, "CharCNNTokenEncoder")
        cnn = self.options["char_cnn"]
        self.char_dim = cnn["embedding"]["dim"]
        self.filters = [tuple(f) for f in cnn["filters"]]
        self.n_highway = cnn["n_highway"]
        self.max_chars = cnn["max_characters_per_token"]
        self.activation = cnn["activation"]
        self.n_features = options_lib.n_filters(self.options)
        self.output_dim = self.options["lstm"]["projection_dim"]
        self.use_projection = options_lib.has_projection(self.options)
        self.supports_masking = False
        self._jax_encode = None  # the compiled _encode_rows of eager JAX calls

    def build(self, input_shape=None):
        # Row 0 is the batch-padding id; the published file stores rows 1..261.
        self.char_embed = self.add_weight(
            name="char_embed",
            shape=(self.options["char_cnn"]["n_characters"], self.char_dim),
            initializer=keras.initializers.RandomUniform(-1.0, 1.0),
        )
        self.conv_kernels, self.conv_biases = [], []
        for i, (width, count) in enumerate(self.filters):
            # (1, width, char_dim, count): the published conv2d layout (HWIO).
            self.conv_kernels.append(
                self.add_weight(
                    name=f"conv_kernel_{i}",
                    shape=(1, width, self.char_dim, count),
                    initializer=keras.initializers.RandomNormal(
                        stddev=(1.0 / (width * self.char_dim)) ** 0.5
                    ),
                )
            )
            self.conv_biases.append(
                self.add_weight(name=f"conv_bias_{i}", shape=(count,), initializer="zeros")
            )
        f = self.n_features
        self.highway = []
        for k in range(self.n_highway):
            stddev = (1.0 / f) ** 0.5
            self.highway.append(
                {
                    "w_carry": self.add_weight(
                        name=f"highway_{k}_w_carry",
                        shape=(f, f),
                        initializer=keras.initializers.RandomNormal(stddev=stddev),
                    ),
                    # bilm-tf starts the carry gate biased towards carrying x.
                    "b_carry": self.add_weight(
                        name=f"highway_{k}_b_carry",
                        shape=(f,),
                        initializer=keras.initializers.Constant(-2.0),
                    ),
                    "w_transform": self.add_weight(
                        name=f"highway_{k}_w_transform",
                        shape=(f, f),
                        initializer=keras.initializers.RandomNormal(stddev=stddev),
                    ),
                    "b_transform": self.add_weight(
                        name=f"highway_{k}_b_transform", shape=(f,), initializer="zeros"
                    ),
                }
            )
        if self.use_projection:
            self.w_proj = self.add_weight(
                name="w_proj",
                shape=(f, self.output_dim),
                initializer=keras.initializers.RandomNormal(stddev=(1.0 / f) ** 0.5),
            )
            self.b_proj = self.add_weight(
                name="b_proj", shape=(self.output_dim,), initializer="zeros"
            )
        self.built = True

    def _low(self, t):
        """`t` as an operand of the convolutions and matmuls (`matmul_dtype`).

        The lower-precision path rounds the operands only: each product's
        result comes back to the compute dtype (`_back`, float32 inside
        ElmoLayer) and the bias, activations and gates that follow stay there.
        """
        t = tf.convert_to_tensor(t)
        return t if self.matmul_dtype == "float32" else tf.cast(t, self.matmul_dtype)

    def _back(self, t):
        return tf.cast(t, self.compute_dtype)

    def _max_over_positions(self, conv):
        """(N, 1, positions, filters) -> (N, filters), in the conv's own dtype.

        In the lower-precision dtypes a max pool over all positions: Eigen's
        `reduce_max` converts bfloat16 element by element and was the slower
        (benchmarks/README.md); the same numbers, a max is exact. The max
        comes before the cast back (exact too: the cast is monotonic).
        """
        if self.matmul_dtype == "float32":
            return tf.reduce_max(conv, axis=[1, 2])
        window = tf.stack([1, 1, tf.shape(conv)[2], 1])
        pooled = tf.raw_ops.MaxPoolV2(
            input=conv, ksize=window, strides=[1, 1, 1, 1], padding="VALID"
        )
        return pooled[:, 0, 0]

    def _act(self, x):
        return tf.nn.relu(x) if self.activation == "relu" else tf.tanh(x)

    def encode_unique(self, char_ids):
        """Encode a 2-D batch of token char ids (N, max_chars) -> (N, P); no dedupe."""
        char_ids = tf.convert_to_tensor(char_ids)
        x = tf.gather(self._low(self.char_embed), char_ids)  # (N, C, d)
        x = tf.expand_dims(x, 1)  # (N, 1, C, d): the conv2d layout of the weights
        # Tokens are short and the rest of each row is the padding char, so
        # most conv windows see padding only and all give the same vector.
        # Windows from position `used` on are pure padding in every row:
        # convolve only up to `used + widest` chars, so every filter still
        # sees all windows that touch a real char plus at least one of the
        # pure-padding windows when the full row has one. The same max, a
        # fraction of the work (~3x less for text).
        is_pad = tf.equal(char_ids, characters.PAD_CHAR + 1)
        position = tf.range(1, self.max_chars + 1)[None, :]
        # 0 when every char is padding (or there are no tokens: reduce_max of
        # nothing is the lowest int, which would make the slice below negative).
        used = tf.maximum(tf.reduce_max(tf.where(is_pad, 0, position)), 0)
        widest = max(width for width, _ in self.filters)
        x = x[:, :, : tf.minimum(used + widest, self.max_chars)]
        pieces = []
        for kernel, bias in zip(self.conv_kernels, self.conv_biases):
            conv = tf.nn.conv2d(x, self._low(kernel), strides=1, padding="VALID")
            pooled = self._back(self._max_over_positions(conv))
            # max over char positions, then bias and activation, as bilm-tf does
            # (adding a per-channel constant commutes with the max exactly).
            pieces.append(self._act(pooled + bias))
        h = tf.concat(pieces, axis=-1)
        for hw in self.highway:
            h_low = self._low(h)
            carry = self._back(tf.matmul(h_low, self._low(hw["w_carry"])))
            transform = self._back(tf.matmul(h_low, self._low(hw["w_transform"])))
            gate = tf.sigmoid(carry + hw["b_carry"])
            transform = tf.nn.relu(transform + hw["b_transform"])
            h = gate * transform + (1.0 - gate) * h
        if self.use_projection:
            h = self._back(tf.matmul(self._low(h), self._low(self.w_proj))) + self.b_proj
        return h

    def _encode_chunked(self, char_ids):
        """`encode_unique` over chunks of CNN_CHUNK_TOKENS rows, one after the other."""
        n = tf.shape(char_ids)[0]
        chunk = CNN_CHUNK_TOKENS
        n_chunks = (n + chunk - 1) // chunk
        pieces = tf.TensorArray(
            self.compute_dtype,
            size=n_chunks,
            infer_shape=False,
            element_shape=tf.TensorShape([None, self.output_dim]),
        )

        def body(i, pieces):
            rows = char_ids[i * chunk : (i + 1) * chunk]
            return i + 1, pieces.write(i, tf.cast(self.encode_unique(rows), self.compute_dtype))

        def chunked():
            # parallel_iterations=1: one chunk's activations alive at a time.
            _, done = tf.while_loop(
                lambda i, _: i < n_chunks, body, [tf.constant(0), pieces], parallel_iterations=1
            )
            return done.concat()

        # Most batches of text fit one chunk: run them without the loop.
        return tf.cond(
            n <= chunk,
            lambda: tf.cast(self.encode_unique(char_ids), self.compute_dtype),
            chunked,
        )

    def call(self, char_ids):
        if not backend_path.use_tf_kernels():
            return self.encode_portable(char_ids)
        char_ids = tf.cast(char_ids, tf.int32)
        shape = tf.shape(char_ids)
        flat = tf.reshape(char_ids, [-1, self.max_chars])
        # Encode each distinct token once (rows compared whole), then scatter.
        unique, index = tf.raw_ops.UniqueV2(x=flat, axis=[0], out_idx=tf.int32)
        # One padding row in front keeps the CNN's batch non-empty: conv2d on
        # zero rows gives malformed shapes, and an input with no tokens at
        # all (an empty batch, T = 0) must still give (..., 0, P) zeros.
        unique = tf.concat([tf.zeros([1, self.max_chars], unique.dtype), unique], axis=0)
        index = index + 1
        is_token = tf.reduce_any(unique > 0, axis=-1, keepdims=True)
        # The all-zero padding row (its output is zeroed below) goes in as
        # padding chars, so it does not stop `encode_unique` from truncating.
        encoded = self._encode_chunked(tf.where(is_token, unique, characters.PAD_CHAR + 1))
        encoded = tf.where(is_token, encoded, tf.zeros_like(encoded))
        out = tf.gather(encoded, index)
        return tf.reshape(out, tf.concat([shape[:-1], [self.output_dim]], 0))

    # ------------------------------------------------ keras.ops (every backend)
    def _low_portable(self, t):
        t = ops.convert_to_tensor(t)
        return t if self.matmul_dtype == "float32" else ops.cast(t, self.matmul_dtype)

    def _matmul_portable(self, a, b):
        """`a @ b` with `matmul_dtype` operands, the result in the compute dtype."""
        product = ops.matmul(self._low_portable(a), self._low_portable(b))
        return ops.cast(product, self.compute_dtype)

    def encode_portable(self, char_ids):
        """The encoder in `keras.ops` with static shapes: (..., max_chars) -> (..., P).

        Every token row goes through the CNN (no distinct-token pass: its
        count is dynamic) over all `max_chars` positions; the same numbers
        as the TensorFlow kernels up to float32 rounding. Rows of all-0 ids
        give zeros. Eager JAX calls run it compiled (once per row count).
        """
        char_ids = ops.cast(ops.convert_to_tensor(char_ids), "int32")
        lead = tuple(ops.shape(char_ids)[:-1])
        flat = ops.reshape(char_ids, (-1, self.max_chars))
        weights = self._portable_weights()
        if backend_path.eager_jax(flat):
            if self._jax_encode is None:
                self._jax_encode = backend_path.jax_jit(self._encode_rows)
            encoded = self._jax_encode(flat, weights)
        else:
            encoded = self._encode_rows(flat, weights)
        return ops.reshape(encoded, lead + (self.output_dim,))

    def _portable_weights(self):
        def value(var):
            return ops.convert_to_tensor(var)

        return {
            "char_embed": value(self.char_embed),
            "conv": [(value(k), value(b)) for k, b in zip(self.conv_kernels, self.conv_biases)],
            "highway": [{name: value(var) for name, var in hw.items()} for hw in self.highway],
            "proj": (value(self.w_proj), value(self.b_proj)) if self.use_projection else None,
        }

    def _encode_rows(self, flat, weights):
        """(N, max_chars) ids -> (N, P), a pure function of the ids and `weights`."""
        is_token = ops.any(ops.greater(flat, 0), axis=-1, keepdims=True)
        # The batch-padding rows go in as padding chars (their output is zeroed).
        flat = ops.where(is_token, flat, characters.PAD_CHAR + 1)
        x = ops.take(self._low_portable(weights["char_embed"]), flat, axis=0)  # (N, C, d)
        pieces = []
        for kernel, bias in weights["conv"]:
            # (1, width, d, count) -> a 1-D conv kernel (width, d, count).
            kernel = self._low_portable(kernel)[0]
            conv = ops.conv(x, kernel, strides=1, padding="valid", data_format="channels_last")
            pooled = ops.cast(ops.max(conv, axis=1), self.compute_dtype)  # max over positions
            # then bias and activation, as bilm-tf does (the max commutes with the bias)
            pieces.append(self._act_portable(pooled + bias))
        h = ops.concatenate(pieces, axis=-1)
        for hw in weights["highway"]:
            gate = ops.sigmoid(self._matmul_portable(h, hw["w_carry"]) + hw["b_carry"])
            transform = ops.relu(self._matmul_portable(h, hw["w_transform"]) + hw["b_transform"])
            h = gate * transform + (1.0 - gate) * h
        if weights["proj"] is not None:
            w_proj, b_proj = weights["proj"]
            h = self._matmul_portable(h, w_proj) + b_proj
        return ops.where(is_token, h, ops.zeros_like(h))

    def _act_portable(self, x):
        return ops.relu(x) if self.activation == "relu" else ops.tanh(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({"options": self.options, "matmul_dtype": self.matmul_dtype})
        return config
